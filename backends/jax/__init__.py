"""JAX adapter: ``jax.random`` keys, the distributions as pytrees, conversions, overrides.

Importing this module (which diaggauss does by itself once JAX is imported)
registers `diaggauss.MultivariateNormalDiag` and `diaggauss.MixtureDiag` as
pytrees (``_pytrees``). The folder also holds ``_convert`` (to and from
distrax, numpyro and TFP), ``_numpyro`` (a ``numpyro.distributions``
class, imported on first access) and ``_overrides`` (kernels written for
XLA's fusion).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from diaggauss._gaps import Gaps, SeedError

__all__ = [
    "GAPS",
    "NumpyroMultivariateNormalDiag",
    "from_distribution",
    "to_distrax",
    "to_numpyro",
    "to_tfp",
]

_Tracer = jax.core.Tracer

try:  # whether a trace (jit, vmap, grad) is active: there, even ops on constants are traced
    from jax._src.core import trace_state_clean as _no_trace
except ImportError:  # pragma: no cover  (a JAX without it: treat every call as traced)

    def _no_trace():
        return False


class JaxGaps(Gaps):
    """JAX's answers: keys, tracers, immutable arrays."""

    name = "jax"

    def random_stream(self, seed, draws=None):
        return JaxStream(key(seed), draws)

    def is_concrete(self, *arrays) -> bool:
        # A constant closed over by a jitted function is no tracer, but a
        # reduction of it is: inside a trace nothing can be read.
        if not _no_trace():
            return False
        for x in arrays:  # noqa: SIM110  (a loop, not all(): this runs on every construction)
            if isinstance(x, _Tracer):
                return False
        return True

    def to_host(self, x):
        import numpy as np

        return np.asarray(x)

    def can_cache(self, source) -> bool:
        # JAX arrays are immutable: a value derived from a concrete one stays
        # right (a traced one must not outlive its trace).
        return not isinstance(source, _Tracer)

    def has_float64(self) -> bool:
        return bool(jax.config.read("jax_enable_x64"))


class JaxStream:
    """Successive draws from one key.

    A single draw uses the key itself (the same noise as ``jax.random.normal``
    with it); a known number of draws uses as many keys split from it; an
    open-ended stream splits a new key off before every draw.
    """

    def __init__(self, key, draws=None):
        self.key = key
        self.keys = None
        if draws is not None:
            self.keys = [key] if draws == 1 else list(jax.random.split(key, draws))

    def _next(self):
        if self.keys is None:
            self.key, sub = jax.random.split(self.key)
            return sub
        if not self.keys:
            raise RuntimeError("more draws from a JAX key than the caller announced")
        return self.keys.pop(0)

    def normal(self, shape, dtype, device):
        """Standard normal noise of `shape`."""
        return jax.random.normal(self._next(), shape, dtype=dtype)

    def uniform(self, shape, dtype, device):
        """Uniform noise on [0, 1)."""
        return jax.random.uniform(self._next(), shape, dtype=dtype)


def key(seed):
    """A JAX key from a key (typed or legacy) or an int, or a `SeedError`."""
    if seed is None:
        raise SeedError(
            "sampling JAX arrays needs a key: pass seed=jax.random.key(0) (or a legacy "
            "jax.random.PRNGKey(0)); JAX has no global random state"
        )
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):  # NumPy ints too
        seed = int(seed)
        if not -(2**63) <= seed < 2**64:
            raise SeedError(f"seed must be an int in [-2**63, 2**64) for a JAX key; got {seed}")
        return jax.random.key(seed)
    dtype = getattr(seed, "dtype", None)
    if dtype is not None and (
        jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
        or (dtype == jnp.uint32 and seed.ndim >= 1 and seed.shape[-1] in (2, 4))
    ):
        return seed
    raise SeedError(
        "seed must be a jax.random key (jax.random.key or jax.random.PRNGKey) or an int to "
        f"sample JAX arrays; got {type(seed).__module__}.{type(seed).__qualname__}"
    )


GAPS = JaxGaps()

from . import _em, _fit, _overrides, _pytrees  # noqa: E402, F401  (register on import)
from ._convert import from_distribution, to_distrax, to_numpyro, to_tfp  # noqa: E402


def __getattr__(name):
    # numpyro is imported only when its adapter is asked for.
    if name == "NumpyroMultivariateNormalDiag":
        from ._numpyro import NumpyroMultivariateNormalDiag

        return NumpyroMultivariateNormalDiag
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
