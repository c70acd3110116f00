"""PyTorch adapter: torch.Generator noise and the hooks the neutral core asks for."""

from __future__ import annotations

import torch

from diaggauss._backend import Backend, SeedError

__all__ = ["BACKEND"]

_is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor


class TorchBackend(Backend):
    """Hooks for torch tensors."""

    name = "torch"
    inplace = True

    def is_concrete(self, x) -> bool:
        # Traced (torch.compile), transformed (torch.func) or meta tensors
        # have no values to read; validation skips them, as torch does.
        return not (torch.compiler.is_compiling() or _is_wrapped(x) or x.is_meta)

    def can_cache(self, value) -> bool:
        return self.is_concrete(value)

    def can_update(self, z, other) -> bool:
        # In-place ops on functorch-batched tensors fail when `other` is batched and `z` is not.
        return not (_is_wrapped(z) or _is_wrapped(other))

    def all_true(self, condition) -> bool:
        return bool(condition.item())

    def log_ndtr(self, x, xp):
        return torch.special.log_ndtr(x)

    def sum_squares(self, z, xp, *, scratch=False):
        if scratch and not z.requires_grad and not _is_wrapped(z):
            # Square in place: no second (..., d) temporary to allocate and fault in.
            return z.square_().sum(-1)
        return torch.einsum("...i,...i->...", z, z)

    def normal(self, seed, shape, dtype, device, xp):
        return torch.randn(shape, generator=_generator(seed, device), dtype=dtype, device=device)


def _generator(seed, device):
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, int) and not isinstance(seed, bool):
        return torch.Generator(device=device).manual_seed(seed)
    raise SeedError(
        "seed must be a torch.Generator, an int or None (torch's global generator) to "
        f"sample torch tensors; got {type(seed).__module__}.{type(seed).__qualname__}"
    )


BACKEND = TorchBackend()
