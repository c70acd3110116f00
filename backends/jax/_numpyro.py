"""`diaggauss.MultivariateNormalDiag` as a ``numpyro.distributions.Distribution``.

Imported on first access of ``diaggauss.backends.jax.NumpyroMultivariateNormalDiag``
(numpyro is optional). The class follows numpyro's conventions: validation is
off unless asked for (``validate_args=True`` or ``numpyro.enable_validation``),
invalid parameters raise inside ``jax.jit`` when they are constants,
out-of-support values warn and score ``-inf``, and the KL divergence is
registered against itself and numpyro's ``Independent(Normal)``.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
from numpyro.distributions import constraints
from numpyro.distributions.batch_util import vmap_over
from numpyro.distributions.kl import kl_divergence
from numpyro.distributions.util import validate_sample

from diaggauss import _validation
from diaggauss._distribution import MultivariateNormalDiag
from diaggauss._params import PARAMETERISATIONS
from diaggauss._shapes import broadcast_shapes

from ._convert import loc_scale

__all__ = ["NumpyroMultivariateNormalDiag"]

_CONSTRAINTS = {
    "positive": constraints.independent(constraints.positive, 1),
    "real": constraints.real_vector,
}


class NumpyroMultivariateNormalDiag(nd.Distribution):
    """`diaggauss.MultivariateNormalDiag` as a ``numpyro.distributions.Distribution``.

    For ``numpyro.sample`` sites: NUTS, SVI, ``plate``, reparameterised
    sampling; the math is the neutral core's. Build from the scale (this
    constructor) or, with the classmethods, the log-scale, the variance or the
    precision; the spread is kept as given.

    Parameters
    ----------
    loc : array of shape (..., d)
        Means; NumPy data and Python numbers become JAX arrays.
    scale : array of shape (..., d), broadcastable with `loc`, or a number
        Standard deviations.
    validate_args : bool, optional
        As in numpyro: defaults to ``numpyro.distributions.Distribution._validate_args``
        (off unless ``numpyro.enable_validation()``).

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
        **{p.name: _CONSTRAINTS[p.domain] for p in PARAMETERISATIONS.values()},
    }
    support = constraints.real_vector
    # numpyro's has_rsample is ``set(reparametrized_params) == set(arg_constraints)``
    reparametrized_params = tuple(arg_constraints)
    pytree_data_fields = ("loc", "_param")
    pytree_aux_fields = ("_kind",)

    def __init__(self, loc, scale, *, validate_args=None):
        self._init(loc, scale, "scale", validate_args)

    def _init(self, loc, param, kind, validate_args):
        validate = nd.Distribution._validate_args if validate_args is None else validate_args
        # as numpyro does: constants evaluate now, so invalid ones raise even inside jax.jit
        with jax.ensure_compile_time_eval():
            par = PARAMETERISATIONS[kind]
            core = MultivariateNormalDiag._build(_jax_array(loc), _jax_array(param), par, False)
            # broadcast here too: a broadcast outside would turn constants into tracers
            self.loc, self._param = core._full(core._loc), core._full(core._param)
        self._kind = kind
        super().__init__(tuple(core.batch_shape), tuple(core.event_shape), validate_args=False)
        self._validate_args = validate
        if validate:
            self.validate_args(strict=False)

    def validate_args(self, strict=True):
        """Check each parameter whose values are known (also constants inside ``jax.jit``).

        Raises the core's `ValueError`, which names the argument and the first
        bad value; with `strict`, a `RuntimeError` when a parameter is traced.
        """
        par = PARAMETERISATIONS[self._kind]
        with jax.ensure_compile_time_eval():
            for name, a, domain in (
                ("loc", self.loc, "real"),
                (par.name, self._param, par.domain),
            ):
                if isinstance(a, jax.core.Tracer):
                    if strict:
                        raise RuntimeError("Cannot validate arguments inside jitted code.")
                    continue
                good = (
                    _validation.finite(a, jnp)
                    if domain == "real"
                    else _validation.positive_finite(a, jnp)
                )
                _validation.check_array(
                    name, a, good, "finite" if domain == "real" else par.constraint, jnp
                )

    def _core(self):
        return MultivariateNormalDiag._from_parts(self.loc, self._param, self._kind)

    def to_diaggauss(self):
        """The neutral `diaggauss.MultivariateNormalDiag`."""
        return self._core()

    @classmethod
    def infer_shapes(cls, *args, **kwargs):
        """``(batch_shape, event_shape)`` of a distribution built from arguments of these shapes.

        Examples
        --------
        >>> from diaggauss.backends.jax import NumpyroMultivariateNormalDiag as D
        >>> D.infer_shapes((5, 2), (2,))
        ((5,), (2,))
        """
        shapes = [tuple(s) for s in (*args, *kwargs.values())]
        if len(shapes) != 2 or not shapes[0]:
            raise ValueError(f"infer_shapes takes the shapes of loc and the spread; got {shapes}")
        full = broadcast_shapes(*(s if s else (1,) for s in shapes), names=("loc", "spread"))
        return full[:-1], full[-1:]

    # -- parameters --------------------------------------------------------------------

    @property
    def scale(self):
        """The standard deviations, ``batch_shape + event_shape``."""
        return self._core().scale

    @property
    def log_scale(self):
        """``log(scale)``."""
        return self._core().log_scale

    @property
    def precision(self):
        """``1 / scale**2``."""
        return self._core().precision

    @property
    def mean(self):
        """The mean, ``batch_shape + event_shape``."""
        return self.loc

    @property
    def mode(self):
        """The mode, equal to the mean."""
        return self.loc

    @property
    def variance(self):
        """The variances, ``batch_shape + event_shape``."""
        return self._core().variance

    # -- methods --------------------------------------------------------------------------

    def sample(self, key, sample_shape=()):
        """Reparameterised samples ``loc + scale * eps``."""
        return self._core().sample(sample_shape, seed=key)

    @validate_sample
    def log_prob(self, value):
        """Log density at `value` (``-inf`` outside the support when validating)."""
        return self._core().log_prob(value)

    def cdf(self, value):
        """The joint CDF ``P(X <= value)``."""
        return self._core().cdf(value)

    def entropy(self):
        """Differential entropy."""
        return self._core().entropy()


def _jax_array(a):
    """`a` as a JAX array (NumPy data, Python numbers), or as it is (tracers, JAX arrays)."""
    if a is None or isinstance(a, jax.Array):  # None: the core names the missing argument
        return a
    dtype = getattr(a, "dtype", None)
    if dtype is None:
        dtype = np.asarray(a).dtype
    if np.dtype(dtype).kind not in "biuf":  # complex, dates, text: the core names the argument
        return a
    return jnp.asarray(a)


def _constructor(par):
    def build(cls, loc, param, *, validate_args=None):
        self = cls.__new__(cls)
        self._init(loc, param, par.name, validate_args)
        return self

    build.__name__ = build.__qualname__ = f"from_{par.name}"
    build.__doc__ = f"""Build from the {par.meaning}, kept as given.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from diaggauss.backends.jax import NumpyroMultivariateNormalDiag as D
    >>> D.from_{par.name}(jnp.zeros(2), jnp.ones(2)).event_shape
    (2,)
    """
    return classmethod(build)


# one constructor per parameterisation, as the neutral class has them
for _par in PARAMETERISATIONS.values():
    if _par.name != "scale":
        setattr(NumpyroMultivariateNormalDiag, f"from_{_par.name}", _constructor(_par))


def _as_core(d):
    if isinstance(d, NumpyroMultivariateNormalDiag):
        return d._core()
    parts = loc_scale(d)
    if parts is None:
        raise NotImplementedError(f"no diagonal-Gaussian view of {type(d).__qualname__}")
    return MultivariateNormalDiag._build(*parts, PARAMETERISATIONS["scale"], False)


def _kl(p, q):
    return _as_core(p).kl_divergence(_as_core(q))


@vmap_over.register
def _vmap_over(
    dist: NumpyroMultivariateNormalDiag,
    loc=None,
    scale=None,
    log_scale=None,
    variance=None,
    precision=None,
):
    """The rule of numpyro's ``vmap_over``: the spread, whichever name maps it, is one array."""
    spread = next((a for a in (scale, log_scale, variance, precision) if a is not None), None)
    axes = copy.copy(dist)
    axes.loc, axes._param = loc, spread
    return axes


# numpyro dispatches KL with multipledispatch
kl_divergence.register(NumpyroMultivariateNormalDiag, NumpyroMultivariateNormalDiag)(_kl)
kl_divergence.register(NumpyroMultivariateNormalDiag, nd.Independent)(_kl)
kl_divergence.register(nd.Independent, NumpyroMultivariateNormalDiag)(_kl)
