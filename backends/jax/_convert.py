"""Conversions between `diaggauss.MultivariateNormalDiag` and distrax, numpyro and TFP."""

from __future__ import annotations

from diaggauss import _convert
from diaggauss._distribution import MultivariateNormalDiag
from diaggauss._namespace import describe

__all__ = ["from_distribution", "to_distrax", "to_numpyro", "to_tfp"]


def _check(d):
    if not isinstance(d, MultivariateNormalDiag):
        raise TypeError(f"expected a diaggauss.MultivariateNormalDiag; got {describe(d)}")
    return d


@_convert.register_exporter("distrax")
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


@_convert.register_exporter("numpyro")
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


@_convert.register_exporter("tfp")
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
    return MultivariateNormalDiag.from_distribution(dist, validate_args=validate_args)


def loc_scale(dist):
    """``(loc, scale)`` of a JAX-ecosystem diagonal Gaussian, or None.

    Also numpyro's ``Independent`` of an expanded ``Normal``
    (``Normal(0., 1.).expand([d]).to_event(1)``, its standard prior) and
    parameters given as NumPy arrays or Python numbers (broadcast to the
    distribution's shape).
    """
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
        shape = None
        if type(base).__name__ == "ExpandedDistribution":  # numpyro's Normal(...).expand(...)
            shape = tuple(base.batch_shape)
            base = base.base_dist
        if type(base).__name__ == "Normal" and dist.reinterpreted_batch_ndims == 1:
            shape = shape or tuple(dist.batch_shape) + tuple(dist.event_shape)
            import jax.numpy as jnp

            return tuple(jnp.broadcast_to(jnp.asarray(a), shape) for a in (base.loc, base.scale))
    return None


@_convert.register_importer
def _import_jax_ecosystem(dist, event_dims):
    parts = loc_scale(dist)
    if parts is None:
        return None
    if event_dims is not None:
        raise ValueError("event_dims is only for a plain Normal")
    return (*parts, "scale")
