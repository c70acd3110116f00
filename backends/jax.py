"""JAX adapter: jax.random keys, and the distributions as pytrees.

Importing this module (which diaggauss does by itself once JAX is imported)
registers `diaggauss.MultivariateNormalDiag` as a pytree with explicit fields:
the data leaves are ``loc`` and the spread parameter as given, the static
metadata is the parameterisation and ``validate_args``. Unflattening never
validates or inspects the leaves, so the object passes through ``jax.jit``,
``jax.vmap`` (also when constructed inside the mapped function), ``jax.grad``
and ``lax.scan``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.tree_util import GetAttrKey

from diaggauss import _backend
from diaggauss._backend import Backend, SeedError
from diaggauss._distribution import MultivariateNormalDiag

__all__ = ["BACKEND"]

_Tracer = jax.core.Tracer


class JaxBackend(Backend):
    """Hooks for JAX arrays."""

    name = "jax"
    inplace = False
    fused_reductions = True

    def is_concrete(self, x) -> bool:
        return not isinstance(x, _Tracer)

    def can_cache(self, value) -> bool:
        return not isinstance(value, _Tracer)

    # No log_ndtr override: jax.scipy.special.log_ndtr is off by ~6e5 ulp in
    # float32 near x = 5 and worse in float64 near x = 8 (jax 0.10), while the
    # core's pure-standard version stays within 4 ulp and XLA fuses it.

    def normal(self, seed, shape, dtype, device, xp):
        return jax.random.normal(_key(seed), shape, dtype=dtype)


def _key(seed):
    if seed is None:
        raise SeedError(
            "sampling JAX arrays needs a key: pass seed=jax.random.key(0) (or a legacy "
            "jax.random.PRNGKey(0)); JAX has no global random state"
        )
    if isinstance(seed, int) and not isinstance(seed, bool):
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


BACKEND = JaxBackend()


def _flatten_with_keys(d):
    children = ((GetAttrKey("loc"), d._loc), (GetAttrKey(d._kind), d._param))
    return children, (d._kind, d._validate_args)


def _flatten(d):
    return (d._loc, d._param), (d._kind, d._validate_args)


def _unflatten(aux, children):
    kind, validate_args = aux
    loc, param = children
    return MultivariateNormalDiag._from_parts(loc, param, kind, validate_args)


jax.tree_util.register_pytree_with_keys(
    MultivariateNormalDiag, _flatten_with_keys, _unflatten, _flatten
)
_backend._mark_jax_pytrees_registered()
