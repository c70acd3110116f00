"""What the array API standard lacks, answered for torch tensors."""

from __future__ import annotations

import numpy as np
import torch

from diaggauss._gaps import Gaps, SeedError

__all__ = ["GAPS", "TorchGaps", "generator"]

_is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_is_compiling = torch.compiler.is_compiling
_is_tracing = torch._C._is_tracing  # torch.jit.trace


# Derived values of parameters with fewer elements are recomputed on every
# call: keeping them saves nothing a per-step loop would see, and computing
# the forms a kept value needs (1 / scale) costs one more kernel launch on
# the construct-and-evaluate path.
CACHE_MIN_ELEMENTS = 1 << 12


class TorchGaps(Gaps):
    """torch's answers: ``torch.Generator`` noise, version counters, traced tensors."""

    name = "torch"

    def random_stream(self, seed, draws=None):
        return TorchStream(seed)

    def is_concrete(self, *arrays) -> bool:
        # Traced (torch.compile), transformed (torch.func) or meta tensors
        # have no values to read; validation skips them, as torch does.
        if _is_compiling():
            return False
        for x in arrays:  # noqa: SIM110  (a loop, not all(): this runs on every construction)
            if _is_wrapped(x) or x.is_meta:
                return False
        return True

    def to_host(self, x):
        x = x.detach()
        if x.is_floating_point() and x.element_size() < 4:
            x = x.float()
        return x.cpu().numpy()

    def can_cache(self, source) -> bool:
        # A value with autograd history would serve a second backward pass
        # through a freed graph; inside torch.compile a cache write is a
        # replayed side effect; functorch transforms batch only what was
        # built inside them.
        return not (
            source.numel() < CACHE_MIN_ELEMENTS  # first: the common small case answers at once
            or _is_compiling()
            or source.requires_grad
            or _is_wrapped(source)
        )

    def version(self, source):
        # the version counter counts in-place updates; the data pointer catches `.data = t`
        return (source._version, source.data_ptr())


class TorchStream:
    """Successive draws from one ``torch.Generator`` (or torch's global one)."""

    def __init__(self, seed):
        self.seed = seed
        self.generators = {}

    def _gen(self, device):
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            return generator(self.seed, device)
        key = str(device)
        if key not in self.generators:  # an int seeds one generator per device, once
            self.generators[key] = generator(self.seed, device)
        return self.generators[key]

    def normal(self, shape, dtype, device):
        """Standard normal noise of `shape`."""
        return torch.randn(shape, generator=self._gen(device), dtype=dtype, device=device)

    def uniform(self, shape, dtype, device):
        """Uniform noise on [0, 1)."""
        return torch.rand(shape, generator=self._gen(device), dtype=dtype, device=device)


def generator(seed, device):
    """A ``torch.Generator`` from a seed (None: torch's global generator), or a `SeedError`."""
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool | np.bool_):
        seed = int(seed)
        if not -(2**63) <= seed < 2**64:
            raise SeedError(
                f"seed must be an int in [-2**63, 2**64) to seed a torch.Generator; got {seed}"
            )
        return torch.Generator(device=device).manual_seed(seed)
    raise SeedError(
        "seed must be a torch.Generator, an int or None (torch's global generator) to "
        f"sample torch tensors; got {type(seed).__module__}.{type(seed).__qualname__}"
    )


GAPS = TorchGaps()
