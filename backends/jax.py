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
from diaggauss._mixture import MixtureDiag

__all__ = [
    "BACKEND",
    "NumpyroMultivariateNormalDiag",  # noqa: F822  (built on first access, see __getattr__)
    "from_distribution",
    "to_distrax",
    "to_numpyro",
    "to_tfp",
]

_Tracer = jax.core.Tracer


class JaxBackend(Backend):
    """Hooks for JAX arrays."""

    name = "jax"
    inplace = False
    fused_reductions = True

    def is_concrete(self, x) -> bool:
        return not isinstance(x, _Tracer)

    def can_cache(self, value, source) -> bool:
        return not isinstance(value, _Tracer)

    # No log_ndtr override: jax.scipy.special.log_ndtr is off by ~6e5 ulp in
    # float32 near x = 5 and worse in float64 near x = 8 (jax 0.10), while the
    # core's pure-standard version stays within 4 ulp and XLA fuses it.

    def normal(self, seed, shape, dtype, device, xp):
        return jax.random.normal(_key(seed), shape, dtype=dtype)

    def jit(self, fn):
        return jax.jit(fn)

    def has_float64(self) -> bool:
        return bool(jax.config.read("jax_enable_x64"))

    def random_stream(self, seed, xp):
        return _JaxStream(_key(seed))


class _JaxStream:
    """Successive draws from one key, split before every draw."""

    def __init__(self, key):
        self.key = key

    def _next(self):
        self.key, sub = jax.random.split(self.key)
        return sub

    def normal(self, shape, dtype, device):
        return jax.random.normal(self._next(), shape, dtype=dtype)

    def uniform(self, shape, dtype, device):
        return jax.random.uniform(self._next(), shape, dtype=dtype)


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


def _mixture_flatten_with_keys(m):
    return ((GetAttrKey("logits"), m._logits), (GetAttrKey("components"), m._components)), (
        m._validate_args,
    )


def _mixture_flatten(m):
    return (m._logits, m._components), (m._validate_args,)


def _mixture_unflatten(aux, children):
    logits, components = children
    return MixtureDiag._from_parts(logits, components, aux[0])


jax.tree_util.register_pytree_with_keys(
    MixtureDiag, _mixture_flatten_with_keys, _mixture_unflatten, _mixture_flatten
)
_backend._mark_jax_pytrees_registered()


# -- conversions to and from distrax, numpyro and TFP ------------------------------------


def _check(d):
    if not isinstance(d, MultivariateNormalDiag):
        raise TypeError(f"expected a diaggauss.MultivariateNormalDiag; got {type(d).__qualname__}")
    return d


def to_distrax(d):
    """The same distribution as a ``distrax.MultivariateNormalDiag``.

    Examples
    --------
    >>> import jax.numpy as jnp, diaggauss as dg
    >>> from diaggauss.backends.jax import to_distrax
    >>> to_distrax(dg.MultivariateNormalDiag(jnp.zeros((5, 2)), jnp.ones(2))).batch_shape
    (5,)
    """
    import distrax

    d = _check(d)
    return distrax.MultivariateNormalDiag(loc=d.loc, scale_diag=d.scale)


def to_numpyro(d):
    """The same distribution as numpyro's ``Normal(loc, scale).to_event(1)``.

    Examples
    --------
    >>> import jax.numpy as jnp, diaggauss as dg
    >>> from diaggauss.backends.jax import to_numpyro
    >>> to_numpyro(dg.MultivariateNormalDiag(jnp.zeros((5, 2)), jnp.ones(2))).event_shape
    (2,)
    """
    import numpyro.distributions as nd

    d = _check(d)
    return nd.Normal(d.loc, d.scale).to_event(1)


def to_tfp(d):
    """The same distribution as TFP's ``MultivariateNormalDiag`` (JAX substrate).

    Examples
    --------
    >>> import jax.numpy as jnp, diaggauss as dg
    >>> from diaggauss.backends.jax import to_tfp
    >>> to_tfp(dg.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3))).event_shape
    TensorShape([3])
    """
    from tensorflow_probability.substrates.jax import distributions as tfd

    d = _check(d)
    return tfd.MultivariateNormalDiag(loc=d.loc, scale_diag=d.scale)


def from_distribution(dist, *, validate_args=None):
    """A `MultivariateNormalDiag` from a JAX-ecosystem diagonal Gaussian.

    Accepts distrax ``MultivariateNormalDiag`` (and ``Independent(Normal, 1)``),
    numpyro ``Independent(Normal, 1)`` (``Normal(...).to_event(1)``) and the
    numpyro adapter, and TFP ``MultivariateNormalDiag`` or
    ``Independent(Normal, 1)``.

    Raises
    ------
    TypeError
        A distribution of another family.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import numpyro.distributions as nd
    >>> from diaggauss.backends.jax import from_distribution
    >>> from_distribution(nd.Normal(jnp.zeros((5, 2)), 1.0).to_event(1)).batch_shape
    (5,)
    """
    parts = _loc_scale(dist)
    if parts is None:
        raise TypeError(
            "from_distribution accepts distrax MultivariateNormalDiag, numpyro "
            "Normal(...).to_event(1), and TFP MultivariateNormalDiag or "
            f"Independent(Normal, 1); got {type(dist).__module__}.{type(dist).__qualname__}"
        )
    loc, scale = parts
    return MultivariateNormalDiag(loc, scale, validate_args=validate_args)


def _loc_scale(dist):
    """``(loc, scale)`` of a JAX-ecosystem diagonal Gaussian, or None."""
    module = type(dist).__module__.split(".")[0]
    name = type(dist).__name__
    if name == "NumpyroMultivariateNormalDiag":
        return dist.loc, dist.scale
    if module == "distrax" and name == "MultivariateNormalDiag":
        return dist.loc, dist.scale_diag
    if module == "tensorflow_probability" and name == "MultivariateNormalDiag":
        return dist.loc, dist.stddev()
    if module in ("distrax", "numpyro", "tensorflow_probability") and name == "Independent":
        # numpyro keeps the base as .base_dist, distrax and TFP as .distribution
        base = getattr(dist, "base_dist", None) or getattr(dist, "distribution", None)
        if type(base).__name__ == "Normal" and dist.reinterpreted_batch_ndims == 1:
            return base.loc, base.scale
    return None


# -- a numpyro Distribution, built on first access (numpyro is optional) ----------------


def _numpyro_class():
    import numpyro.distributions as nd
    from numpyro.distributions import constraints
    from numpyro.distributions.kl import kl_divergence
    from numpyro.distributions.util import promote_shapes

    class NumpyroMultivariateNormalDiag(nd.Distribution):
        """`diaggauss.MultivariateNormalDiag` as a ``numpyro.distributions.Distribution``.

        For ``numpyro.sample`` sites: NUTS, SVI, ``plate``, reparameterised
        sampling; the math is the neutral core's.

        Examples
        --------
        >>> import jax, jax.numpy as jnp
        >>> from diaggauss.backends.jax import NumpyroMultivariateNormalDiag
        >>> d = NumpyroMultivariateNormalDiag(jnp.zeros((5, 2)), jnp.ones(2))
        >>> d.batch_shape, d.event_shape
        ((5,), (2,))
        >>> d.sample(jax.random.key(0), (3,)).shape
        (3, 5, 2)
        """

        arg_constraints = {  # noqa: RUF012  (numpyro's class-level contract)
            "loc": constraints.real_vector,
            "scale": constraints.independent(constraints.positive, 1),
        }
        support = constraints.real_vector
        reparametrized_params = ("loc", "scale")
        pytree_data_fields = ("loc", "scale")

        def __init__(self, loc, scale, *, validate_args=None):
            loc = jnp.asarray(loc)
            scale = jnp.asarray(scale)
            if scale.ndim == 0:
                scale = jnp.broadcast_to(scale, loc.shape[-1:])
            self.loc, self.scale = promote_shapes(loc, scale)
            core = self._core()
            super().__init__(core.batch_shape, core.event_shape, validate_args=validate_args)

        @classmethod
        def from_log_scale(cls, loc, log_scale, *, validate_args=None):
            """Build from log standard deviations."""
            return cls(loc, jnp.exp(log_scale), validate_args=validate_args)

        def _core(self):
            return MultivariateNormalDiag._from_parts(self.loc, self.scale, "scale")

        def sample(self, key, sample_shape=()):
            return self._core().sample(sample_shape, seed=key)

        def log_prob(self, value):
            return self._core().log_prob(value)

        def cdf(self, value):
            return self._core().cdf(value)

        def entropy(self):
            return self._core().entropy()

        @property
        def mean(self):
            return self._core().mean

        @property
        def variance(self):
            return jnp.broadcast_to(self.scale**2, self.batch_shape + self.event_shape)

        def to_diaggauss(self):
            """The neutral `diaggauss.MultivariateNormalDiag`."""
            return self._core()

    def _as_core(d):
        if isinstance(d, NumpyroMultivariateNormalDiag):
            return d._core()
        parts = _loc_scale(d)
        if parts is None:
            raise NotImplementedError(f"no diagonal-Gaussian view of {type(d).__qualname__}")
        return MultivariateNormalDiag._from_parts(*parts, "scale")

    def _kl(p, q):
        return _as_core(p).kl_divergence(_as_core(q))

    # numpyro dispatches KL with multipledispatch
    kl_divergence.register(NumpyroMultivariateNormalDiag, NumpyroMultivariateNormalDiag)(_kl)
    kl_divergence.register(NumpyroMultivariateNormalDiag, nd.Independent)(_kl)
    kl_divergence.register(nd.Independent, NumpyroMultivariateNormalDiag)(_kl)
    return NumpyroMultivariateNormalDiag


def __getattr__(name):
    # numpyro is imported only when its adapter is asked for.
    if name == "NumpyroMultivariateNormalDiag":
        cls = _numpyro_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
