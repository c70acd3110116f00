"""`diaggauss.MultivariateNormalDiag` as a ``numpyro.distributions.Distribution``.

Imported on first access of ``diaggauss.backends.jax.NumpyroMultivariateNormalDiag``
(numpyro is optional).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro.distributions as nd
from numpyro.distributions import constraints
from numpyro.distributions.kl import kl_divergence
from numpyro.distributions.util import promote_shapes

from diaggauss._distribution import MultivariateNormalDiag

from ._convert import loc_scale

__all__ = ["NumpyroMultivariateNormalDiag"]


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
        """Reparameterised samples ``loc + scale * eps``."""
        return self._core().sample(sample_shape, seed=key)

    def log_prob(self, value):
        """Log density at `value`."""
        return self._core().log_prob(value)

    def cdf(self, value):
        """The joint CDF ``P(X <= value)``."""
        return self._core().cdf(value)

    def entropy(self):
        """Differential entropy."""
        return self._core().entropy()

    @property
    def mean(self):
        """The mean, broadcast to ``batch_shape + event_shape``."""
        return self._core().mean

    @property
    def variance(self):
        """The variances, broadcast to ``batch_shape + event_shape``."""
        return self._core().variance

    def to_diaggauss(self):
        """The neutral `diaggauss.MultivariateNormalDiag`."""
        return self._core()


def _as_core(d):
    if isinstance(d, NumpyroMultivariateNormalDiag):
        return d._core()
    parts = loc_scale(d)
    if parts is None:
        raise NotImplementedError(f"no diagonal-Gaussian view of {type(d).__qualname__}")
    return MultivariateNormalDiag._from_parts(*parts, "scale")


def _kl(p, q):
    return _as_core(p).kl_divergence(_as_core(q))


# numpyro dispatches KL with multipledispatch
kl_divergence.register(NumpyroMultivariateNormalDiag, NumpyroMultivariateNormalDiag)(_kl)
kl_divergence.register(NumpyroMultivariateNormalDiag, nd.Independent)(_kl)
kl_divergence.register(nd.Independent, NumpyroMultivariateNormalDiag)(_kl)
