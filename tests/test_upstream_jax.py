"""The generic distribution tests of numpyro, distrax and TFP, run on diaggauss's JAX classes.

Each upstream suite is the protocol its library's distributions satisfy; the
tests here are our own versions of its generic tests, looped over our classes
and checked against independent references (SciPy, float64 closed forms, and
the peer libraries' own distributions), never against diaggauss itself.

* numpyro's ``test/test_distributions.py`` (the ``CONTINUOUS``-list tests),
  ``test/test_distributions_util``-style KL checks, ``test/test_pickle.py``
  and inference at ``numpyro.sample`` sites (NUTS, SVI), for
  `diaggauss.backends.jax.NumpyroMultivariateNormalDiag`, every constructor.
* distrax's ``distributions/mvn_diag_test.py`` (with its ``EquivalenceTest``
  helpers) and the generic parts of ``distributions/distribution_test.py``,
  for the neutral `diaggauss.MultivariateNormalDiag` holding JAX arrays.
* TFP's ``distributions/mvn_diag_test.py`` against
  ``tensorflow_probability.substrates.jax.distributions.MultivariateNormalDiag``.

Deviations from upstream
------------------------
Assertions adapted to diaggauss's documented behaviour:

* Errors name the argument in diaggauss's own words ("scale must be positive
  and finite; got -1.0 at index (0,) ..."), not numpyro's "got invalid scale
  parameter" or TFP's "Singular"; the exception types are upstream's.
* The neutral class has no default parameters (distrax and TFP default
  ``loc=0`` and ``scale_diag=1``): omitting one raises a `TypeError` ("scale
  is required"). The distrax cases with a ``None`` parameter pass it
  explicitly to our class and leave it out of the peer's.
* The scale must be positive: TFP accepts a negative ``scale_diag`` (the
  covariance is its square), diaggauss rejects it when validating (the
  default of the neutral class). TFP's cases use ``abs(diag)``.
* ``mean``, ``mode``, ``median``, ``stddev`` and ``variance`` are properties
  of the neutral class (torch's convention; numpyro's too), not methods as in
  distrax and TFP; ``covariance()``, ``entropy()`` and the rest are methods.
* Two-distribution methods take a diaggauss distribution: a distrax or TFP
  object raises a `TypeError` that points to ``from_distribution``, and the
  neutral class is not a TFP distribution, so ``tfd.kl_divergence(tfp_p,
  ours)`` is not registered. The "distrax_to_tfp" and "tfp_to_distrax" modes
  of distrax's two-distribution test go through ``from_distribution`` and
  ``to_tfp``.
* numpyro validation is off by default, as in numpyro; the numpyro class's
  ``get_args()`` lists every parameterisation (each is a property), not only
  the one given.
* TFP's graph-mode tests (dynamic batch and event shapes with placeholders)
  become checks that the shapes are static inside ``jax.jit``; its
  ``tf.Variable`` tests become gradient checks; ``scale_identity_multiplier``
  (gone from TFP) becomes a scale of shape ``(..., 1)``.

Bugs these ports found, fixed (each test here failed before its fix):

* `NumpyroMultivariateNormalDiag.has_rsample` was False, so ``rsample``
  raised and ``TraceGraph_ELBO`` / ``RenyiELBO`` scored a guide site as
  non-reparameterised (numpyro's ``has_rsample`` is
  ``set(reparametrized_params) == set(arg_constraints)``).
* Invalid constant parameters escaped validation inside ``jax.jit`` when
  they broadcast (the broadcast ran after ``jax.ensure_compile_time_eval``).
* ``numpyro.distributions.batch_util.vmap_over`` had no rule for the class.
* A NumPy integer seed (``np.int32(0)``) was refused for a JAX key.
* Out-of-range batch indices of JAX parameters were clamped (JAX's gather
  semantics) instead of raising `IndexError` as NumPy and distrax do.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from helpers import spread_from_scale

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

numpyro = pytest.importorskip("numpyro")
distrax = pytest.importorskip("distrax")
tfp = pytest.importorskip("tensorflow_probability.substrates.jax")
stats = pytest.importorskip("scipy.stats")

import numpyro.distributions as nd  # noqa: E402
from numpyro.distributions import constraints  # noqa: E402
from numpyro.distributions.batch_util import promote_batch_shape, vmap_over  # noqa: E402
from numpyro.distributions.gof import InvalidTest, auto_goodness_of_fit  # noqa: E402
from numpyro.distributions.kl import kl_divergence  # noqa: E402
from numpyro.distributions.transforms import SoftplusTransform, biject_to  # noqa: E402

import diaggauss as dg  # noqa: E402
from diaggauss.backends.jax import NumpyroMultivariateNormalDiag as NMVN  # noqa: E402

tfd = tfp.distributions
MVN = dg.MultivariateNormalDiag

KINDS = ("scale", "log_scale", "variance", "precision")


# -- references: float64 NumPy, from the spread as given ----------------------------------


def _to_spread(kind, scale):
    """The parameter of `kind` for standard deviations `scale` (float64 NumPy)."""
    return spread_from_scale(kind, scale, np.float64)


def _ref_scale(kind, spread):
    """Standard deviations from the spread of `kind`, in float64 NumPy."""
    s = np.asarray(spread, dtype=np.float64)
    return {
        "scale": lambda: s,
        "log_scale": lambda: np.exp(s),
        "variance": lambda: np.sqrt(s),
        "precision": lambda: 1 / np.sqrt(s),
    }[kind]()


def _ref_logpdf(x, loc, scale):
    return stats.norm.logpdf(np.asarray(x, np.float64), loc, scale).sum(-1)


def _ref_entropy(loc, scale):
    loc, scale = np.broadcast_arrays(loc, scale)
    return stats.norm.entropy(loc, scale).sum(-1)


def _full_shape(loc, spread):
    return np.broadcast_shapes(np.shape(loc), np.shape(spread) or (1,))


def _jitted(fn):
    """``fn()`` compiled whole: references from the peers cost one compile, not one per op."""
    return jax.jit(fn)()


def _sample_and_score(d, key, sample_shape):
    """Samples of a numpyro distribution and their log densities, in one compiled call.

    (Eager JAX compiles every operation for every new shape; one ``jit`` is cheaper.)
    """

    return _jit_sample_and_score(d, key, tuple(sample_shape))


def _sample_and_score_impl(d, key, sample_shape):
    x = d.sample(key, sample_shape)
    return x, d.log_prob(x)


_jit_sample_and_score = jax.jit(_sample_and_score_impl, static_argnums=2)
_jit_log_prob = jax.jit(lambda d, x: d.log_prob(x))


# ======================================================================================
# numpyro: test/test_distributions.py, generic tests over a CONTINUOUS-style list
# ======================================================================================

# (id, parameterisation, loc, spread): NumPy parameters, as numpyro's list has them
_R = np.random.default_rng(20260101)
CASES = [
    ("scale", "scale", np.array([0.5, -1.0]), np.array([0.7, 1.3])),
    ("scalar_scale", "scale", np.array([0.1, 0.2, -0.3]), 0.5),
    ("broadcast_loc", "scale", np.array([1.0, -2.0]), _R.uniform(0.5, 1.5, size=(4, 2))),
    ("log_scale", "log_scale", _R.normal(size=(3, 2)), np.array([-0.4, 0.3])),
    ("variance", "variance", _R.normal(size=(3, 2)), _R.uniform(0.4, 2.0, size=(2, 1, 2))),
    ("precision", "precision", _R.normal(size=(4, 3)), _R.uniform(0.5, 2.0, size=(4, 3))),
]
CASE_IDS = [c[0] for c in CASES]
case_param = pytest.mark.parametrize("case", CASES, ids=CASE_IDS)


def _numpyro(kind, loc, spread, **kwargs):
    if kind == "scale":
        return NMVN(loc, spread, **kwargs)
    return getattr(NMVN, f"from_{kind}")(loc, spread, **kwargs)


def _make(case, **kwargs):
    _, kind, loc, spread = case
    return _numpyro(kind, loc, spread, **kwargs)


def _ref(case):
    """``(loc, scale)`` of a case in float64, broadcast to the full shape."""
    _, kind, loc, spread = case
    shape = _full_shape(loc, spread)
    return np.broadcast_to(loc, shape), np.broadcast_to(_ref_scale(kind, spread), shape)


@case_param
@pytest.mark.parametrize("prepend_shape", [(), (2,), (2, 3)], ids=str)
def test_numpyro_dist_shape(case, prepend_shape):
    d = _make(case)
    samples = d.sample(jax.random.key(0), sample_shape=prepend_shape)
    assert isinstance(samples, jax.Array)
    expected = prepend_shape + d.batch_shape + d.event_shape
    assert samples.shape == expected
    assert d.shape(prepend_shape) == expected
    assert d.batch_shape + d.event_shape == _full_shape(case[2], case[3])
    # the shapes scipy's sampler gives for the same sizes
    loc, scale = _ref(case)
    assert stats.norm(loc, scale).rvs(size=prepend_shape + loc.shape).shape == expected


@case_param
def test_numpyro_infer_shapes(case):
    _, _, loc, spread = case
    d = _make(case)
    batch_shape, event_shape = type(d).infer_shapes(np.shape(loc), np.shape(spread))
    assert d.batch_shape == batch_shape
    assert d.event_shape == event_shape


@case_param
def test_numpyro_wrappers_keep_has_rsample(case):
    d = _make(case)
    masked = d.mask(False)
    indep = d.expand_by([2]).to_event(1)
    transformed = nd.TransformedDistribution(d, biject_to(constraints.real))
    assert masked.has_rsample == d.has_rsample
    assert indep.has_rsample == d.has_rsample
    assert transformed.has_rsample == d.has_rsample
    assert not d.is_discrete


@case_param
def test_numpyro_has_rsample(case):
    d = _make(case)
    assert d.has_rsample  # sampling is loc + scale * eps (test_numpyro_sample_gradient)
    assert set(d.arg_constraints) == set(d.reparametrized_params)
    d.rsample(jax.random.key(0))
    d.mask(False).rsample(jax.random.key(0))
    d.expand_by([2]).to_event(1).rsample(jax.random.key(0))


@case_param
def test_numpyro_args_attributes(case):
    d = _make(case)
    for name, constraint in d.arg_constraints.items():
        assert constraint.event_dim == 1, name
        assert not constraint.is_discrete
    assert d.support.event_dim == 1
    # every argument numpyro's generic validation would read satisfies its constraint
    for name, value in d.get_args().items():
        assert bool(jnp.all(d.arg_constraints[name](value))), name


def _finite_difference(fn, params, i, eps=1e-4):
    lhs = [p if j != i else p - eps for j, p in enumerate(params)]
    rhs = [p if j != i else p + eps for j, p in enumerate(params)]
    return (fn(*rhs) - fn(*lhs)) / (2 * eps)


@case_param
def test_numpyro_sample_gradient(case):
    _, kind, loc, spread = case
    params = (jnp.asarray(loc), jnp.asarray(spread))
    key = jax.random.key(0)

    @jax.jit
    def fn(*args):
        return jnp.sum(_numpyro(kind, *args).sample(key))

    grads = jax.jit(jax.grad(fn, argnums=(0, 1)))(*params)
    assert len(grads) == 2
    for i in range(2):
        assert jnp.shape(grads[i]) == jnp.shape(params[i])
        expected = _finite_difference(fn, params, i)
        np.testing.assert_allclose(jnp.sum(grads[i]), expected, rtol=1e-5, atol=1e-6)


@case_param
def test_numpyro_jit_log_likelihood(case):
    _, kind, loc, spread = case
    samples = _make(case).sample(jax.random.key(0), sample_shape=(2, 3))

    def log_likelihood(loc, spread):
        return _numpyro(kind, loc, spread).log_prob(samples)

    expected = log_likelihood(loc, spread)
    actual = jax.jit(log_likelihood)(loc, spread)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


@case_param
@pytest.mark.parametrize("prepend_shape", [(), (2, 3)], ids=str)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_numpyro_log_prob(case, prepend_shape, jit):
    d = _make(case)
    samples = d.sample(jax.random.key(0), sample_shape=prepend_shape)
    out = _jit_log_prob(d, samples) if jit else d.log_prob(samples)
    assert out.shape == prepend_shape + d.batch_shape
    loc, scale = _ref(case)
    np.testing.assert_allclose(out, _ref_logpdf(samples, loc, scale), rtol=1e-12, atol=1e-12)
    if not d.batch_shape and not prepend_shape:  # scipy's multivariate normal itself
        ref = stats.multivariate_normal(loc, np.diag(scale**2)).logpdf(np.asarray(samples))
        np.testing.assert_allclose(out, ref, rtol=1e-12)


@case_param
def test_numpyro_entropy_scipy(case):
    loc, scale = _ref(case)
    actual = _make(case).entropy()
    assert actual.shape == loc.shape[:-1]
    np.testing.assert_allclose(actual, _ref_entropy(loc, scale), rtol=1e-12)
    if loc.ndim == 1:
        ref = stats.multivariate_normal(loc, np.diag(scale**2)).entropy()
        np.testing.assert_allclose(actual, ref, rtol=1e-12)


@case_param
def test_numpyro_entropy_samples(case):
    d = _make(case)
    actual = d.entropy()
    neg_log_probs = -_sample_and_score(d, jax.random.key(8), (1000,))[1]
    stderr = neg_log_probs.std(axis=0) / np.sqrt(neg_log_probs.shape[0] - 1)
    z = (actual - neg_log_probs.mean(axis=0)) / stderr
    assert bool(jnp.all(jnp.abs(z) < 5)), z


@case_param
def test_numpyro_cdf(case):
    """numpyro skips multivariate CDFs; ours is the product of the coordinates' CDFs."""
    d = _make(case)
    samples = d.sample(jax.random.key(0), sample_shape=(100,))
    loc, scale = _ref(case)
    expected = stats.norm.cdf(np.asarray(samples), loc, scale).prod(-1)
    np.testing.assert_allclose(jax.jit(d.cdf)(samples), expected, rtol=1e-10, atol=1e-14)
    with pytest.raises(NotImplementedError):
        d.icdf(jnp.full(d.batch_shape + d.event_shape, 0.5))


@case_param
def test_numpyro_independent_shape(case):
    d = _make(case)
    batch_shape, event_shape = d.batch_shape, d.event_shape
    shape = batch_shape + event_shape
    for i in range(len(batch_shape)):
        indep = nd.Independent(d, reinterpreted_batch_ndims=i)
        sample = indep.sample(jax.random.key(0))
        boundary = len(shape) - len(event_shape) - i
        assert indep.batch_shape == shape[:boundary]
        assert indep.event_shape == shape[boundary:]
        assert jnp.shape(indep.log_prob(sample)) == shape[:boundary]


@case_param
def test_numpyro_log_prob_gradient(case):
    _, kind, loc, spread = case
    params = (jnp.asarray(loc, dtype=jnp.float64), jnp.asarray(spread, dtype=jnp.float64))
    value = _make(case).sample(jax.random.key(0))

    @jax.jit
    def fn(*args):
        return jnp.sum(_numpyro(kind, *args).log_prob(value))

    for i in range(2):
        actual = jax.jit(jax.grad(fn, i))(*params)
        assert jnp.shape(actual) == jnp.shape(params[i])
        expected = _finite_difference(fn, params, i)
        np.testing.assert_allclose(jnp.sum(actual), expected, rtol=1e-5, atol=1e-6)


@case_param
def test_numpyro_mean_var(case):
    d = _make(case)
    loc, scale = _ref(case)
    shape = d.batch_shape + d.event_shape
    assert jnp.shape(d.mean) == shape
    assert jnp.shape(d.variance) == shape
    np.testing.assert_allclose(d.mean, loc, rtol=1e-14)
    np.testing.assert_allclose(d.variance, scale**2, rtol=1e-12)
    n = 20000
    samples = np.asarray(jax.jit(lambda k: d.sample(k, (n,)))(jax.random.key(0)))
    # five standard errors: of the mean, scale / sqrt(n); of the std, about scale / sqrt(2n)
    assert np.all(np.abs(samples.mean(0) - loc) < 5 * scale / np.sqrt(n))
    assert np.all(np.abs(samples.std(0) - scale) < 5 * scale / np.sqrt(2 * n))


def _within(constraint, shape, key):
    """numpyro's ``gen_values_within_bounds`` for the constraints of this class."""
    if isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    if constraint is constraints.positive:
        return np.asarray(jnp.exp(jax.random.normal(key, shape)))
    assert constraint in (constraints.real, constraints.real_vector)
    return np.asarray(jax.random.normal(key, shape))


def _outside(constraint, shape, key):
    """numpyro's ``gen_values_outside_bounds`` for the constraints of this class."""
    if isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    if constraint is constraints.positive:
        return np.asarray(-jnp.exp(jax.random.normal(key, shape)))
    assert constraint in (constraints.real, constraints.real_vector)
    return np.full(shape, np.nan)


@case_param
@pytest.mark.parametrize("prepend_shape", [(), (2, 3)], ids=str)
def test_numpyro_distribution_constraints(case, prepend_shape):
    _, kind, loc, spread = case
    names = ("loc", kind)
    key = jax.random.key(1)
    valid, oob = [], []
    for name, param in zip(names, (loc, spread), strict=True):
        key, sub = jax.random.split(key)
        valid.append(_within(NMVN.arg_constraints[name], np.shape(param), sub))
        oob.append(_outside(NMVN.arg_constraints[name], np.shape(param), sub))

    with numpyro.validation_enabled(False):
        assert _numpyro(kind, *oob)  # validation off: builds
    with pytest.raises(ValueError):
        _numpyro(kind, *oob, validate_args=True)
    # (constants inside jit: test_numpyro_invalid_constants_raise_inside_jit)

    d = _numpyro(kind, *valid, validate_args=True)
    values = _within(d.support, prepend_shape + d.batch_shape + d.event_shape, key)
    np.testing.assert_allclose(
        d.log_prob(values),
        _ref_logpdf(values, valid[0], _ref_scale(kind, valid[1])),
        rtol=1e-12,
        atol=1e-12,
    )

    oob_values = _outside(d.support, prepend_shape + d.batch_shape + d.event_shape, key)
    with pytest.warns(UserWarning, match="Out-of-support"):
        out = d.log_prob(oob_values)
    assert bool(jnp.all(out == -jnp.inf))
    with pytest.warns(UserWarning, match="Out-of-support"):
        jax.jit(lambda: _numpyro(kind, *valid, validate_args=True).log_prob(oob_values))()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_numpyro_invalid_constants_raise_inside_jit(case):
    """numpyro's distribution_constraints: out-of-bounds constants raise under jit too."""
    _, kind, loc, spread = case
    key = jax.random.key(1)
    oob = []
    for name, param in zip(("loc", kind), (loc, spread), strict=True):
        key, sub = jax.random.split(key)
        oob.append(_outside(NMVN.arg_constraints[name], np.shape(param), sub))
    with pytest.raises(ValueError):
        jax.jit(lambda: _numpyro(kind, *oob, validate_args=True))()


@pytest.mark.parametrize(
    ("loc_shape", "spread_shape"),
    [
        ((2,), (2,)),
        ((3, 2), (3, 2)),
        ((2,), (3, 2)),
        ((3, 2), (2,)),
        ((3, 2), (4, 1, 2)),
    ],
    ids=str,
)
@pytest.mark.parametrize("kind", ["scale", "variance", "precision"])
def test_numpyro_invalid_spread_raises_inside_jit_whatever_the_broadcast(
    kind, loc_shape, spread_shape
):
    def build():
        return _numpyro(kind, np.zeros(loc_shape), -np.ones(spread_shape), validate_args=True)

    with pytest.raises(ValueError, match=f"{kind} must be positive"):
        build()
    with pytest.raises(ValueError, match=f"{kind} must be positive"):
        jax.jit(build)()


def test_numpyro_omnistaging_invalid_param():
    def f(x):
        return NMVN(x + jnp.zeros(2), -np.ones(2), validate_args=True).log_prob(jnp.zeros(2))

    # upstream matches numpyro's "got invalid"; ours names the argument and the value
    with pytest.raises(ValueError, match=r"scale must be positive and finite; got -1\.0"):
        jax.jit(f)(0.0)


def test_numpyro_omnistaging_invalid_sample():
    def f(x):
        return NMVN(x + jnp.zeros(2), np.ones(2), validate_args=True).log_prob(np.full(2, np.nan))

    with pytest.warns(UserWarning, match="Out-of-support"):
        jax.jit(f)(0.0)


def test_numpyro_explicit_validate_args():
    NMVN(jnp.zeros(2), jnp.ones(2), validate_args=False).validate_args()
    d = NMVN(jnp.zeros(2), -jnp.ones(2), validate_args=False)
    with pytest.raises(ValueError, match="scale must be positive"):
        d.validate_args()
    jitted = jax.jit(lambda d, strict: d.validate_args(strict), static_argnames=["strict"])
    jitted(d, False)
    with pytest.raises(RuntimeError, match="Cannot validate arguments"):
        jitted(d, True)


def test_numpyro_validation_follows_numpyro_default():
    # numpyro's own default (on since numpyro 0.20; numpyro.enable_validation sets it)
    default = nd.Distribution._validate_args
    assert NMVN(np.zeros(2), np.ones(2))._validate_args == default
    assert nd.Normal(0.0, 1.0)._validate_args == default
    with numpyro.validation_enabled(False):
        NMVN(np.zeros(2), -np.ones(2))
        assert not NMVN(np.zeros(2), np.ones(2))._validate_args
    with numpyro.validation_enabled(True), pytest.raises(ValueError, match="scale"):
        NMVN(np.zeros(2), -np.ones(2))
    with numpyro.validation_enabled(True), pytest.raises(ValueError, match="log_scale"):
        NMVN.from_log_scale(np.zeros(2), np.array([0.0, np.inf]))
    NMVN(np.zeros(2), -np.ones(2), validate_args=False)  # an explicit False wins


def test_numpyro_vmap_validate_args():
    v = jax.vmap(lambda loc, scale: NMVN(loc, scale, validate_args=True))(
        jnp.zeros((2, 3)), jnp.zeros((2, 3))
    )
    assert v._validate_args
    v = jax.vmap(lambda loc, scale: NMVN(loc, scale, validate_args=False))(
        jnp.zeros((2, 3)), jnp.zeros((2, 3))
    )
    assert not v._validate_args


@case_param
@pytest.mark.parametrize("prepend_shape", [(), (2, 3)], ids=str)
def test_numpyro_expand(case, prepend_shape):
    d = _make(case)
    new_batch_shape = prepend_shape + d.batch_shape
    expanded = d.expand(new_batch_shape)
    assert expanded.batch_shape == new_batch_shape
    loc, scale = _ref(case)
    for sample_shape in [(), (4,)]:
        samples, lp = _sample_and_score(expanded, jax.random.key(0), sample_shape)
        assert samples.shape == sample_shape + new_batch_shape + d.event_shape
        assert lp.shape == sample_shape + new_batch_shape
        np.testing.assert_allclose(lp, _ref_logpdf(samples, loc, scale), rtol=1e-12, atol=1e-12)
    assert expanded.expand((3, *new_batch_shape)).batch_shape == (3, *new_batch_shape)
    if prepend_shape:
        with pytest.raises(ValueError, match="Cannot broadcast distribution of shape"):
            expanded.expand((3, *d.batch_shape))


def test_numpyro_expand_reshaped_distribution():
    d = NMVN(jnp.zeros((1, 6)), jnp.ones(6))
    reshaped = d.expand([4, 1, 1, 1]).to_event(1)
    assert reshaped.batch_shape == (4, 1, 1)
    assert reshaped.event_shape == (1, 6)
    large = reshaped.expand((5, 4, 3, 2))
    assert large.batch_shape == (5, 4, 3, 2)
    with pytest.raises((RuntimeError, ValueError)):
        reshaped.expand((5, 4, 3, 2, 3))
    with pytest.raises((RuntimeError, ValueError)):
        large.expand((4, 3, 2))


@pytest.mark.parametrize(
    ("batch_shape", "mask_shape"),
    [((), ()), ((2,), ()), ((), (2,)), ((2,), (2,)), ((4, 2), (1, 2)), ((2,), (4, 2))],
    ids=str,
)
def test_numpyro_mask(batch_shape, mask_shape):
    d = NMVN(jnp.zeros((*batch_shape, 3)), 1.0)
    mask = nd.Bernoulli(0.5).sample(jax.random.key(0), mask_shape).astype(bool)
    if mask_shape == ():
        mask = bool(mask)
    actual = jax.jit(lambda d, k: d.log_prob(d.sample(k)))(d.mask(mask), jax.random.key(1))
    expected = jnp.broadcast_to(mask, lax.broadcast_shapes(batch_shape, mask_shape))
    np.testing.assert_array_equal(actual != 0, expected)


@case_param
def test_numpyro_dist_pytree(case):
    def f(_):
        return _make(case)

    jax.jit(f)(0)  # flatten / unflatten
    lax.map(f, np.ones(3))  # scan
    expected, actual = f(0), jax.jit(f)(0)
    for name in expected.arg_constraints:
        np.testing.assert_allclose(getattr(actual, name), getattr(expected, name), rtol=1e-15)
    assert actual.batch_shape == expected.batch_shape
    assert actual.event_shape == expected.event_shape
    assert actual.to_diaggauss().parameterization == case[1]
    s_expected = expected.sample(jax.random.key(0))
    s_actual = actual.sample(jax.random.key(0))
    np.testing.assert_allclose(s_actual, s_expected, rtol=1e-15)
    np.testing.assert_allclose(actual.log_prob(s_actual), expected.log_prob(s_expected))


def _tree_equal(a, b):
    leaves = jax.tree.leaves(jax.tree.map(lambda x, y: jnp.allclose(x, y), a, b))
    return jnp.all(jnp.stack(leaves))


@case_param
def test_numpyro_vmap_dist(case):
    _, kind, loc, spread = case
    loc, spread = jnp.asarray(loc), jnp.asarray(spread)

    def make(loc, spread):
        return _numpyro(kind, loc, spread)

    d = make(loc, spread)
    axes_cases = [
        ((0, 0), 0),  # every argument
        ((None, 0), 0),  # one argument, every leaf out on axis 0
        ((0, None), vmap_over(d, loc=0)),  # one argument, its attribute out on axis 0
        ((1, None), vmap_over(d, loc=1)),  # axis 1 in and out
    ]
    for in_axes, out_axes in axes_cases:
        args = [
            jnp.expand_dims(a, ax) if ax is not None else a
            for a, ax in zip((loc, spread), in_axes, strict=True)
        ]
        batched = jax.jit(jax.vmap(make, in_axes=in_axes, out_axes=out_axes))(*args)
        eq = jax.jit(jax.vmap(_tree_equal, in_axes=(out_axes, None)))(batched, d)
        assert bool(jnp.all(eq)), (in_axes, out_axes)
        if in_axes != (0, 0):  # the samples of one case (each compiles anew)
            continue
        sample = d.sample(jax.random.key(0))
        batched_sample = jax.jit(
            jax.vmap(lambda b: b.sample(jax.random.key(0)), in_axes=(out_axes,))
        )(batched)
        assert batched_sample.shape == (1, *sample.shape)
        np.testing.assert_allclose(batched_sample[0], sample, rtol=1e-12, atol=1e-15)
    # numpyro's repair of the batch shape after a vmap (its scan and enum use it)
    out = jax.vmap(make)(loc[None], spread[None])
    assert promote_batch_shape(out).batch_shape == (1, *d.batch_shape)


@pytest.mark.parametrize("kind", KINDS)
def test_numpyro_vmap_over_the_spread(kind):
    loc, spread = jnp.zeros((3, 2)), jnp.asarray(_to_spread(kind, np.full(2, 1.5)))
    d = _numpyro(kind, loc, spread)
    out = jax.vmap(
        lambda s: _numpyro(kind, loc, s), in_axes=0, out_axes=vmap_over(d, **{kind: 0})
    )(spread[None])
    np.testing.assert_allclose(getattr(out, kind)[0], getattr(d, kind))


# -- KL divergence ---------------------------------------------------------------------------


def _normal_kl(loc_p, scale_p, loc_q, scale_q):
    """KL of diagonal Gaussians in float64 from the univariate closed form, summed."""
    r = scale_p / scale_q
    return (0.5 * (r**2 + ((loc_p - loc_q) / scale_q) ** 2 - 1) - np.log(r)).sum(-1)


@pytest.mark.parametrize(
    ("batch_p", "batch_q"),
    [((1,), (1,)), ((2, 3), (2, 3)), ((5, 1, 3), (2, 3)), ((1, 3), (5, 2, 3))],
    ids=str,
)
@pytest.mark.parametrize(
    ("kind_p", "kind_q"),
    [
        ("scale", "scale"),
        ("log_scale", "log_scale"),
        ("variance", "scale"),
        ("precision", "log_scale"),
    ],
    ids=str,
)
def test_numpyro_kl_consistency_with_independent_normals(batch_p, batch_q, kind_p, kind_q):
    rng = np.random.default_rng(5)
    event = (4,)
    loc_p, loc_q = rng.normal(size=batch_p + event), rng.normal(size=batch_q + event)
    scale_p = np.exp(0.3 * rng.normal(size=batch_p + event))
    scale_q = np.exp(0.3 * rng.normal(size=batch_q + event))
    p = _numpyro(kind_p, loc_p, _to_spread(kind_p, scale_p))
    q = _numpyro(kind_q, loc_q, _to_spread(kind_q, scale_q))
    expected = _normal_kl(loc_p, scale_p, loc_q, scale_q)
    np.testing.assert_allclose(kl_divergence(p, q), expected, rtol=1e-12)
    # against numpyro's own Independent(Normal), both orders, and numpyro's own KL
    p_uni = nd.Normal(loc_p, scale_p).to_event(1)
    q_uni = nd.Normal(loc_q, scale_q).to_event(1)
    mixed = _jitted(
        lambda: [kl_divergence(p_uni, q_uni), kl_divergence(p, q_uni), kl_divergence(p_uni, q)]
    )
    for out in mixed:
        np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_numpyro_kl_expanded_normal_prior():
    loc, scale = np.array([0.5, -1.0, 2.0]), np.array([0.5, 1.5, 1.0])
    p = NMVN(loc, scale)
    prior = nd.Normal(0.0, 1.0).expand([3]).to_event(1)  # numpyro's standard prior
    expected = _normal_kl(loc, scale, np.zeros(3), np.ones(3))
    np.testing.assert_allclose(kl_divergence(p, prior), expected, rtol=1e-12)
    np.testing.assert_allclose(
        kl_divergence(prior, p), _normal_kl(np.zeros(3), np.ones(3), loc, scale), rtol=1e-12
    )


@pytest.mark.parametrize("shape", [(), (4,), (2, 3)], ids=str)
def test_numpyro_kl_monte_carlo(shape):
    rng = np.random.default_rng(3)
    p = NMVN.from_log_scale(rng.normal(size=(*shape, 2)), 0.3 * rng.normal(size=(*shape, 2)))
    q = NMVN.from_variance(rng.normal(size=(*shape, 2)), np.exp(rng.normal(size=(*shape, 2))))
    actual = kl_divergence(p, q)
    assert actual.shape == shape
    x, log_p = _sample_and_score(p, jax.random.key(0), (20000,))
    diff = log_p - jax.jit(q.log_prob)(x)
    stderr = diff.std(0) / np.sqrt(x.shape[0])
    assert bool(jnp.all(jnp.abs(actual - diff.mean(0)) < 5 * stderr))


@pytest.mark.slow
@case_param
def test_numpyro_gof(case):
    num_samples = 10000
    failure_rate = 2e-5  # numpyro's TEST_FAILURE_RATE
    d = _make(case)
    loc, scale = _ref(case)
    reference = nd.Normal(jnp.asarray(loc), jnp.asarray(scale)).to_event(1)

    def gof(samples, log_probs):
        probs = np.exp(np.asarray(log_probs)).reshape(num_samples, -1)
        samples = np.asarray(samples).reshape(*probs.shape, -1)
        try:
            return np.array(
                [auto_goodness_of_fit(samples[:, b], probs[:, b]) for b in range(probs.shape[1])]
            )
        except InvalidTest:
            pytest.skip("expensive test")

    key = jax.random.PRNGKey(0)
    samples, log_probs = _sample_and_score(d, key, (num_samples,))
    joint = gof(samples, log_probs)
    # numpyro's own Normal(...).to_event(1) draws the same samples from the key and gives
    # them the same densities, hence the same p-values (numpyro's multivariate test is not
    # calibrated: for two of these cases its p-values fall below 2e-5 for both)
    ref_samples, ref_log_probs = _sample_and_score(reference, key, (num_samples,))
    np.testing.assert_allclose(samples, ref_samples, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(log_probs, ref_log_probs, rtol=1e-12)
    assert np.all(joint > failure_rate / joint.size), joint  # familywise, over the batch
    core = d.to_diaggauss()
    for j in range(d.event_shape[0]):  # the (calibrated) univariate test, at upstream's rate
        marginal = jax.jit(core.marginal([j]).log_prob)(samples[..., j : j + 1])
        assert np.all(gof(samples[..., j : j + 1], marginal) > failure_rate), j


@pytest.mark.parametrize("kind", KINDS)
def test_numpyro_pickle(kind):
    d = _numpyro(kind, jnp.arange(6.0).reshape(3, 2), _to_spread(kind, np.full(2, 0.5)))
    back = pickle.loads(pickle.dumps(d))
    assert type(back) is NMVN
    assert back.batch_shape == d.batch_shape
    assert back.event_shape == d.event_shape
    assert back.to_diaggauss().parameterization == kind
    x = jnp.ones((3, 2))
    np.testing.assert_array_equal(back.log_prob(x), d.log_prob(x))


def test_numpyro_transformed_through_softplus():
    """TFP's testDistWithBatchShapeOneThenTransformedThroughSoftplus, with numpyro's class."""
    base = NMVN(jnp.zeros((1, 3)), jnp.ones((1, 3)), validate_args=True)
    d = nd.TransformedDistribution(base, SoftplusTransform())
    samples = d.sample(jax.random.key(0), (5,))
    assert samples.shape == (5, 1, 3)
    assert d.log_prob(samples).shape == (5, 1)


# -- numpyro.sample sites: NUTS, SVI, pickling a run --------------------------------------

_DATA = np.random.default_rng(7).normal(size=(100, 3)) + np.array([1.0, -2.0, 0.5])
_PRIOR_SCALE = 10.0


def _model(data, likelihood):
    mu = numpyro.sample("mu", likelihood(np.zeros(3), _PRIOR_SCALE * np.ones(3)))
    with numpyro.plate("n", data.shape[0]):
        numpyro.sample("x", likelihood(mu, np.ones(3)), obs=data)


def _ours(loc, scale):
    return NMVN(loc, scale)


def _numpyro_normal(loc, scale):
    return nd.Normal(loc, scale).to_event(1)


def _posterior():
    """The conjugate posterior of mu: mean and standard deviation, per coordinate."""
    precision = _DATA.shape[0] + _PRIOR_SCALE**-2
    return _DATA.sum(0) / precision, np.full(3, precision**-0.5)


def test_numpyro_log_density_of_a_model_matches_numpyro_normal():
    from numpyro.infer.util import log_density

    params = {"mu": jnp.array([0.9, -1.7, 0.4])}
    ours, _ = log_density(_model, (_DATA, _ours), {}, params)
    theirs, _ = log_density(_model, (_DATA, _numpyro_normal), {}, params)
    np.testing.assert_allclose(ours, theirs, rtol=1e-13)


@pytest.mark.slow
def test_numpyro_nuts_on_observed_numpy_data():
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(_model), num_warmup=50, num_samples=50, progress_bar=False)
    mcmc.run(jax.random.key(0), _DATA, _ours)
    mu = np.asarray(mcmc.get_samples()["mu"])
    assert mu.shape == (50, 3)
    mean, sd = _posterior()
    # five posterior standard deviations over sqrt(10) (at least ten effective draws)
    assert np.all(np.abs(mu.mean(0) - mean) < 5 * sd / np.sqrt(10)), (mu.mean(0), mean)
    assert np.all((mu.std(0) > sd / 3) & (mu.std(0) < 3 * sd)), (mu.std(0), sd)
    # numpyro's test_pickle: a run pickles and keeps its samples
    back = pickle.loads(pickle.dumps(mcmc))
    np.testing.assert_array_equal(back.get_samples()["mu"], mcmc.get_samples()["mu"])


def _guide(likelihood):
    def guide(data, _):
        m = numpyro.param("m", jnp.zeros(3))
        s = numpyro.param("s", jnp.ones(3), constraint=constraints.positive)
        numpyro.sample("mu", likelihood(m, s))

    return guide


def _svi_run(elbo, likelihood, steps=5):
    from numpyro.infer import SVI
    from numpyro.optim import Adam

    svi = SVI(_model, _guide(likelihood), Adam(0.1), elbo)
    result = svi.run(jax.random.key(2), steps, _DATA, likelihood, progress_bar=False)
    return result.losses, result.params


def _elbos():
    from numpyro.infer import RenyiELBO, Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO

    slow = pytest.mark.slow
    return [
        pytest.param(Trace_ELBO, id="Trace_ELBO"),
        pytest.param(TraceMeanField_ELBO, id="TraceMeanField_ELBO", marks=slow),
        pytest.param(TraceGraph_ELBO, id="TraceGraph_ELBO"),
        pytest.param(RenyiELBO, id="RenyiELBO", marks=slow),
    ]


@pytest.mark.parametrize("elbo", _elbos())
def test_numpyro_svi_on_observed_numpy_data(elbo):
    """A few SVI steps, ours in the model and the guide against numpyro's own Normal."""
    losses, params = _svi_run(elbo(), _ours)
    ref_losses, ref_params = _svi_run(elbo(), _numpyro_normal)
    assert losses.shape == (5,)
    assert bool(jnp.all(jnp.isfinite(losses)))
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)
    for name in ("m", "s"):
        np.testing.assert_allclose(params[name], ref_params[name], rtol=1e-10, err_msg=name)


def test_numpyro_init_strategies_and_predictive():
    from numpyro.infer import Predictive
    from numpyro.infer.initialization import init_to_mean, init_to_median, init_to_sample
    from numpyro.infer.util import initialize_model

    for strategy in (init_to_mean, init_to_median, init_to_sample):
        info = initialize_model(
            jax.random.key(0), _model, model_args=(_DATA, _ours), init_strategy=strategy()
        )
        assert info.param_info.z["mu"].shape == (3,)
        assert bool(jnp.all(jnp.isfinite(info.param_info.potential_energy)))
    mean_init = initialize_model(
        jax.random.key(0), _model, model_args=(_DATA, _ours), init_strategy=init_to_mean()
    )
    np.testing.assert_allclose(mean_init.param_info.z["mu"], np.zeros(3), atol=1e-12)
    draws = Predictive(_model, {"mu": jnp.zeros((4, 3))})(jax.random.key(1), _DATA, _ours)
    assert draws["x"].shape == (4, *_DATA.shape)


# ======================================================================================
# distrax: distributions/mvn_diag_test.py (EquivalenceTest against TFP) and the generic
# parts of distributions/distribution_test.py, for the neutral class with JAX arrays
# ======================================================================================

KEY = jax.random.PRNGKey(1234)  # distrax's EquivalenceTest key

# distrax's parameter sets; a None is left out of TFP's call and given explicitly to ours
DISTRAX_PARAMS = {
    "1d std normal": {"scale_diag": np.ones((1,))},
    "2d std normal": {"loc": [0.0, 0.0], "scale_diag": [1.0, 1.0]},
    "2d std normal, None loc": {"scale_diag": [1.0, 1.0]},
    "2d std normal, None scale_diag": {"loc": [0.0, 0.0]},
    "rank-2 parameters": {"loc": np.zeros((3, 2)), "scale_diag": np.ones((3, 2))},
    "broadcasted scale_diag": {"loc": np.zeros((3, 2)), "scale_diag": np.ones((2,))},
    "broadcasted loc": {"loc": np.zeros(2), "scale_diag": np.ones((3, 2))},
}
distrax_params = pytest.mark.parametrize(
    "params", list(DISTRAX_PARAMS.values()), ids=list(DISTRAX_PARAMS)
)

# chex.all_variants, as far as they apply on one CPU device: eager, and jitted with the
# distribution passed through jit as a pytree argument (its flatten / unflatten)
VARIANTS = ["eager", "jit"]
variants = pytest.mark.parametrize("variant", VARIANTS)

# the functions the variants call, by name (one jitted dispatcher: compiled once per
# name, pytree structure and shapes, and reused across tests)
_FUNCTIONS = {
    "sample": lambda d, key, shape: d.sample(shape, seed=key),
    "sample_and_log_prob": lambda d, key, shape: d.sample_and_log_prob(shape, seed=key),
    "log_prob": lambda d, x: d.log_prob(x),
    "prob": lambda d, x: d.prob(x),
    "log_cdf": lambda d, x: d.log_cdf(x),
    "cdf": lambda d, x: d.cdf(x),
    "kl_divergence": lambda p, q: p.kl_divergence(q),
    "cross_entropy": lambda p, q: p.cross_entropy(q),
    # ours are properties except entropy and covariance (see the deviations)
    "methods": lambda d: {
        "entropy": d.entropy(),
        "mean": d.mean,
        "stddev": d.stddev,
        "variance": d.variance,
        "covariance": d.covariance(),
        "mode": d.mode,
        "median": d.median,
    },
}


def _apply(name, static, *args):
    return _FUNCTIONS[name](*args, *static)


_JITTED = jax.jit(_apply, static_argnums=(0, 1))


def _variant(variant, name, *args, static=()):
    """``_FUNCTIONS[name](*args, *static)``, eagerly or jitted (`static` is compile-time)."""
    if variant == "eager":
        return _apply(name, static, *args)
    return _JITTED(name, static, *args)


def _f32(params):
    return {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}


def _ours_from(params, kind="scale", dtype=jnp.float32):
    """The neutral class from distrax-style keyword parameters, JAX arrays of `dtype`."""
    loc = params.get("loc")
    scale = params.get("scale_diag")
    if loc is None:
        loc = np.zeros(np.shape(scale)[-1:])
    if scale is None:
        scale = np.ones(np.shape(loc)[-1:])
    spread = _to_spread(kind, scale)
    loc, spread = jnp.asarray(loc, dtype=dtype), jnp.asarray(spread, dtype=dtype)
    return MVN(loc, spread) if kind == "scale" else getattr(MVN, f"from_{kind}")(loc, spread)


def _tfp_from(params):
    return tfd.MultivariateNormalDiag(**params)


@distrax_params
def test_distrax_event_shape(params):
    params = _f32(params)
    assert _ours_from(params).event_shape == tuple(_tfp_from(params).event_shape)


@distrax_params
def test_distrax_batch_shape(params):
    params = _f32(params)
    assert _ours_from(params).batch_shape == tuple(_tfp_from(params).batch_shape)


def test_distrax_invalid_parameters():
    with pytest.raises(TypeError, match="is required"):  # no defaults: see the deviations
        MVN(None, None)
    with pytest.raises(TypeError, match="loc is required"):
        MVN(None, jnp.array(1.0))
    with pytest.raises((TypeError, ValueError)):
        MVN(jnp.array(1.0), None)
    with pytest.raises(ValueError, match="do not broadcast"):
        MVN(jnp.zeros((3, 5)), jnp.ones((3, 4)))
    with pytest.raises(TypeError):
        MVN(scale=jnp.ones(2))  # loc is not optional


SAMPLE_SHAPES = [(), 3, (3, 4)]


@variants
@distrax_params
@pytest.mark.parametrize("sample_shape", SAMPLE_SHAPES, ids=str)
def test_distrax_sample_shape(variant, params, sample_shape):
    params = _f32(params)
    d = _ours_from(params)
    samples = _variant(variant, "sample", d, KEY, static=(sample_shape,))
    tfp_dist = _tfp_from(params)  # the shape of TFP's samples, without drawing them
    shape = (sample_shape,) if isinstance(sample_shape, int) else sample_shape
    assert samples.shape == (*shape, *tfp_dist.batch_shape, *tfp_dist.event_shape)
    assert samples.dtype == jnp.float32


@pytest.mark.parametrize("params", ["broadcasted scale_diag", "broadcasted loc"])
@pytest.mark.parametrize("sample_shape", [(), (3, 4)], ids=str)
def test_distrax_same_key_same_samples(params, sample_shape):
    d = _ours_from(_f32(DISTRAX_PARAMS[params]))
    theirs = distrax.MultivariateNormalDiag(d.loc, d.scale).sample(
        seed=KEY, sample_shape=sample_shape
    )
    np.testing.assert_allclose(d.sample(sample_shape, seed=KEY), theirs, rtol=1e-6, atol=1e-6)


def _sample_and_log_prob_check(variant, params, sample_shape, kind):
    params = _f32(params)
    d = _ours_from(params, kind)
    with jax.numpy_rank_promotion("raise"):
        samples, log_prob = _variant(
            variant, "sample_and_log_prob", d, KEY, static=(sample_shape,)
        )
        again = _variant(variant, "log_prob", d, samples)
    tfp_dist = _tfp_from(params)
    shape = (sample_shape,) if isinstance(sample_shape, int) else sample_shape
    assert samples.shape == (*shape, *tfp_dist.batch_shape, *tfp_dist.event_shape)
    expected = jax.jit(tfp_dist.log_prob)(samples)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-3)
    np.testing.assert_allclose(log_prob, again, rtol=1e-3)


@variants
@distrax_params
@pytest.mark.parametrize("sample_shape", [(), (3, 4)], ids=str)
def test_distrax_sample_and_log_prob(variant, params, sample_shape):
    _sample_and_log_prob_check(variant, params, sample_shape, "scale")


@variants
@pytest.mark.parametrize("kind", KINDS[1:])
def test_distrax_sample_and_log_prob_every_constructor(variant, kind):
    _sample_and_log_prob_check(variant, DISTRAX_PARAMS["broadcasted scale_diag"], (3, 4), kind)


@variants
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
def test_distrax_sample_dtype(variant, dtype):
    d = MVN(jnp.array([0.0, 0.0], dtype), jnp.array([1.0, 1.0], dtype))
    samples = _variant(variant, "sample", d, KEY, static=((),))
    assert samples.dtype == d.dtype == dtype


PDF_CASES = {
    "2d dist, 2d value": ({"scale_diag": [1.0, 1.0]}, [0.0, -0.5]),
    "3d dist, broadcasted params, 3d value": (
        {"loc": np.zeros((4, 3)), "scale_diag": 0.3 * np.ones((3,))},
        [-0.1, 0.0, -0.5],
    ),
    "3d dist, broadcasted scale_diag, rank-2 value": (
        {"loc": np.zeros((4, 3)), "scale_diag": 0.1 * np.ones((3,))},
        -0.1 * np.ones((4, 3)),
    ),
    "3d dist, broadcasted scale_diag, rank-3 value": (
        {"loc": np.zeros((4, 3)), "scale_diag": 0.1 * np.ones((3,))},
        -0.1 * np.ones((5, 4, 3)),
    ),
    "2d dist, 2d value, edge case": ({"scale_diag": [1.0, 1.0]}, [200.0, -200.0]),
}
pdf_cases = pytest.mark.parametrize(
    ("params", "value"), list(PDF_CASES.values()), ids=list(PDF_CASES)
)


def _kind_grid(cases, every_kind):
    """The cases with the scale, and the other parameterisations on `every_kind` of them."""
    out = [pytest.param(*c, "scale", id=f"{name}-scale") for name, c in cases.items()]
    for name in every_kind:
        out += [pytest.param(*cases[name], k, id=f"{name}-{k}") for k in KINDS[1:]]
    return out


_PDF_EVERY_KIND = ["3d dist, broadcasted params, 3d value", "2d dist, 2d value, edge case"]


@variants
@pytest.mark.parametrize(("params", "value", "kind"), _kind_grid(PDF_CASES, _PDF_EVERY_KIND))
def test_distrax_pdf(variant, params, value, kind):
    params, value = _f32(params), np.asarray(value)
    d = _ours_from(params, kind)
    tfp_dist = _tfp_from(params)
    for method in ("log_prob", "prob"):
        with jax.numpy_rank_promotion("raise"):
            out = _variant(variant, method, d, jnp.asarray(value))
        expected = _jitted(lambda m=method: getattr(tfp_dist, m)(value))
        assert out.shape == expected.shape, method
        np.testing.assert_allclose(out, expected, rtol=1e-3, err_msg=method)


@variants
@pdf_cases
def test_distrax_cdf(variant, params, value):
    params, value = _f32(params), np.asarray(value)
    d = _ours_from(params)
    # TFP has no multivariate CDF: the univariate Normal's, reduced over the event
    univariate = distrax.Normal(params.get("loc", 0.0), params["scale_diag"])
    for method, reduce in (("log_cdf", jnp.sum), ("cdf", jnp.prod)):
        with jax.numpy_rank_promotion("raise"):
            out = _variant(variant, method, d, jnp.asarray(value))
        expected = _jitted(lambda m=method, r=reduce: r(getattr(univariate, m)(value), -1))
        assert out.shape == expected.shape, method
        np.testing.assert_allclose(out, expected, rtol=1e-3, err_msg=method)


METHOD_PARAMS = {
    "one distribution": {"loc": [0.1, -0.1], "scale_diag": [0.8, 0.5]},
    "broadcasted loc": {"loc": [0.0, 0.1, -0.1], "scale_diag": [[1.5, 0.8, 0.5], [0.8, 0.1, 0.4]]},
    "broadcasted scale_diag": {
        "loc": [[0.0, 0.1, -0.1], [0.2, 0.0, 0.5]],
        "scale_diag": [1.5, 0.8, 0.5],
    },
    "None loc": {"scale_diag": [0.8, 0.5]},
    "None scale_diag": {"loc": [0.1, -0.1]},
}


@variants
@pytest.mark.parametrize(
    ("params", "kind"),
    _kind_grid({k: (v,) for k, v in METHOD_PARAMS.items()}, ["broadcasted loc"]),
)
def test_distrax_method(variant, params, kind):
    """entropy, mean, stddev, variance, covariance, mode (and test_median) against TFP."""
    params = _f32(params)
    d = _ours_from(params, kind)
    with jax.numpy_rank_promotion("raise"):
        out = _variant(variant, "methods", d)
    tfp_dist = _tfp_from(params)
    # TFP has no median for MultivariateNormalDiag: distrax's test_median uses the mean
    names = [m if m != "median" else "mean" for m in out]
    references = _jitted(lambda: [getattr(tfp_dist, m)() for m in names])
    for (method, value), expected in zip(out.items(), references, strict=True):
        assert value.shape == expected.shape, method
        assert value.dtype == jnp.float32, method
        np.testing.assert_allclose(value, expected, rtol=1e-3, atol=1e-6, err_msg=method)


# distrax's modes, the peers' objects going through from_distribution / to_tfp
TWO_DISTRIBUTION_MODES = [
    *((v, "ours_to_ours", kind) for v in VARIANTS for kind in KINDS),
    *((v, mode, "scale") for v in VARIANTS for mode in ("ours_to_tfp", "ours_to_distrax")),
    *(("tfp", "tfp_to_ours", kind) for kind in ("scale", "log_scale")),  # TFP's own method
]


@pytest.mark.parametrize(("variant", "mode", "kind"), TWO_DISTRIBUTION_MODES, ids=str)
def test_distrax_with_two_distributions(variant, mode, kind):
    rng = np.random.default_rng(42)
    params1 = {
        "loc": rng.normal(size=(4, 1, 5)).astype(np.float32),
        "scale_diag": 0.1 + rng.uniform(size=(3, 5)).astype(np.float32),
    }
    params2 = {"loc": np.asarray([-2.4, -1.0, 0.0, 1.2, 6.5], np.float32)}
    tfp1, tfp2 = _tfp_from(params1), _tfp_from(params2)
    ours1, ours2 = _ours_from(params1, kind), _ours_from(params2, kind)
    if mode == "ours_to_tfp":  # a TFP operand goes through from_distribution
        ours1, ours2 = MVN.from_distribution(tfp1), MVN.from_distribution(tfp2)
    elif mode == "ours_to_distrax":
        dx1 = distrax.MultivariateNormalDiag(params1["loc"], params1["scale_diag"])
        dx2 = distrax.MultivariateNormalDiag(params2["loc"])
        ours1, ours2 = MVN.from_distribution(dx1), MVN.from_distribution(dx2)
    for method in ("kl_divergence", "cross_entropy"):
        if mode == "tfp_to_ours":  # TFP's method on ours, converted with to_tfp
            out12, out21 = _jitted(
                lambda m=method: (
                    getattr(tfp1, m)(ours2.to_tfp()),
                    getattr(tfp2, m)(ours1.to_tfp()),
                )
            )
        else:
            out12 = _variant(variant, method, ours1, ours2)
            out21 = _variant(variant, method, ours2, ours1)
        ref12, ref21 = _jitted(lambda m=method: (getattr(tfp1, m)(tfp2), getattr(tfp2, m)(tfp1)))
        np.testing.assert_allclose(out12, ref12, rtol=1e-3)
        np.testing.assert_allclose(out21, ref21, rtol=1e-3)
        assert out12.shape == out21.shape == (4, 3)


def test_distrax_two_distributions_with_peer_objects_point_to_from_distribution():
    p = MVN(jnp.zeros(3), jnp.ones(3))
    for q in (
        tfd.MultivariateNormalDiag(jnp.ones(3), jnp.ones(3)),
        distrax.MultivariateNormalDiag(jnp.ones(3), jnp.ones(3)),
    ):
        for method in (p.kl_divergence, p.cross_entropy):
            with pytest.raises(TypeError, match="from_distribution"):
                method(q)


def test_distrax_jittable():
    d = MVN(jnp.zeros((2, 3)), jnp.ones((2, 3)))

    @jax.jit
    def jitted(event, dist):
        return dist.log_prob(event)

    event = d.sample(seed=KEY)
    np.testing.assert_allclose(jitted(event, d), d.log_prob(event), rtol=1e-12)
    sampler = jax.jit(lambda dist, seed: dist.sample(seed=seed))  # distribution_test
    np.testing.assert_allclose(sampler(d, KEY), d.sample(seed=KEY), rtol=1e-12)


@pytest.mark.parametrize("index", [2, slice(-1), (slice(None), slice(-1))], ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_distrax_slice(index, kind):
    rng = np.random.default_rng(42)
    loc = jnp.array(rng.normal(size=(3, 4, 5)))
    scale = rng.uniform(0.1, 1.0, size=(3, 4, 5))
    d = _ours_from({"loc": loc, "scale_diag": scale}, kind, dtype=jnp.float64)
    np.testing.assert_allclose(d[index].mean, loc[index], rtol=1e-12)
    np.testing.assert_allclose(d[index].stddev, scale[index], rtol=1e-12)
    assert d[index].parameterization == kind


def test_distrax_slice_different_parameterization():
    rng = np.random.default_rng(42)
    loc = jnp.array(rng.normal(size=(4,)))
    scale = jnp.array(rng.uniform(size=(3, 4)))
    d = MVN(loc, scale)
    np.testing.assert_allclose(d[0].mean, loc, rtol=1e-12)  # loc is not sliced
    np.testing.assert_allclose(d[0].stddev, scale[0], rtol=1e-12)


def test_distrax_slice_ellipsis():
    rng = np.random.default_rng(42)
    loc = jnp.array(rng.normal(size=(3, 4, 5)))
    scale = jnp.array(rng.uniform(size=(3, 4, 5)))
    d = MVN(loc, scale)
    np.testing.assert_allclose(d[..., -1].mean, loc[:, -1], rtol=1e-12)
    np.testing.assert_allclose(d[..., -1].stddev, scale[:, -1], rtol=1e-12)


# -- distrax distribution_test: sample shapes, seeds, batch indices ------------------------


@pytest.mark.parametrize("variant", ["eager", "jit"])
@pytest.mark.parametrize(
    ("event", "shape", "expected"),
    [
        ((5,), 1, (1, 5)),
        ((5,), np.int16(1), (1, 5)),
        ((5,), np.int32(1), (1, 5)),
        ((5,), np.int64(1), (1, 5)),
        ((5,), (2,), (2, 5)),
        ((5,), [2], (2, 5)),
        ((5,), (np.int32(2),), (2, 5)),
        ((4, 5), (2, 3), (2, 3, 4, 5)),
    ],
    ids=["int", "np.int16", "np.int32", "np.int64", "tuple", "list", "tuple np.int32", "2d"],
)
def test_distrax_sample_multivariate_shape(variant, event, shape, expected):
    d = MVN(jnp.zeros(event), jnp.ones(event[-1:]))
    static = (tuple(shape) if isinstance(shape, list) else shape,)  # jit's static arguments
    out = (
        d.sample(shape, seed=KEY)
        if variant == "eager"
        else _variant(variant, "sample", d, KEY, static=static)
    )
    assert out.shape == expected


def test_distrax_sample_keys():
    d = MVN(jnp.zeros(3), jnp.ones(3))
    from_int = d.sample(5, seed=0)
    np.testing.assert_array_equal(from_int, d.sample(5, seed=jax.random.PRNGKey(0)))
    np.testing.assert_array_equal(from_int, d.sample(5, seed=jax.random.key(0)))


@pytest.mark.parametrize("seed", [0, jax.random.PRNGKey(0), jax.random.key(0)], ids=str)
def test_distrax_convert_seed(seed):
    d = MVN(jnp.zeros(3), jnp.ones(3))
    assert d.sample(2, seed=seed).shape == (2, 3)


@pytest.mark.parametrize("make", [np.int16, np.int32, np.int64, np.uint32])
def test_distrax_convert_numpy_integer_seed(make):
    d = MVN(jnp.zeros(3), jnp.ones(3))
    np.testing.assert_array_equal(d.sample(2, seed=make(0)), d.sample(2, seed=0))


def _index_grid(batch_shape):
    """distrax's to_batch_shape_index reference: the batch coordinates of each member."""
    return np.stack(np.meshgrid(*[np.arange(n) for n in batch_shape], indexing="ij"), -1)


@pytest.mark.parametrize(
    "index",
    [0, slice(-1), (slice(None), 1), (Ellipsis, 2), np.array([0, 1, -1]), (-1, 0)],
    ids=["single", "range", "two_axes", "ellipsis", "np_array", "negative"],
)
def test_distrax_to_batch_shape_index(index):
    batch_shape = (2, 3, 4)
    grid = jnp.asarray(_index_grid(batch_shape), dtype=jnp.float64)
    d = MVN(grid, jnp.ones(3))  # each member's loc is its batch coordinates
    batch_index = index if isinstance(index, tuple) else (index,)
    expected = _index_grid(batch_shape)[(*batch_index, slice(None))]  # never the coordinates
    np.testing.assert_array_equal(d[index].loc, expected)
    assert d[index].batch_shape == expected.shape[:-1]
    jnp_index = jnp.asarray(index) if isinstance(index, np.ndarray) else index
    np.testing.assert_array_equal(d[jnp_index].loc, expected)


def test_distrax_to_batch_shape_index_raises_on_a_long_index():
    d = MVN(jnp.zeros((2, 3, 4, 2)), jnp.ones(2))
    with pytest.raises(IndexError):
        d[1, 2, 3, 4]
    with pytest.raises(IndexError):
        d[1, 2, 3, 0]  # the event axis cannot be indexed


@pytest.mark.parametrize("index", [np.array([-1, 2]), 5, (0, 7)], ids=str)
def test_distrax_to_batch_shape_index_raises_out_of_range(index):
    d = MVN(jnp.zeros((2, 3, 4, 2)), jnp.ones(2))
    with pytest.raises(IndexError):
        d[index]


def test_numpy_backend_raises_out_of_range():
    """The reference behaviour for the test above: NumPy parameters."""
    d = MVN(np.zeros((2, 3, 4, 2)), np.ones(2))
    with pytest.raises(IndexError):
        d[np.array([-1, 2])]
    with pytest.raises(IndexError):
        d[5]


# ======================================================================================
# TFP: distributions/mvn_diag_test.py, against tfd.MultivariateNormalDiag (JAX substrate)
# ======================================================================================


def test_tfp_scalar_params():
    with pytest.raises(ValueError, match="at least one dimension"):
        MVN(jnp.asarray(-1.0), jnp.asarray(5.0))
    with pytest.raises(ValueError, match="at least 1 dimension"):  # TFP's own
        tfd.MultivariateNormalDiag(-1.0, -5.0)


def test_tfp_vector_params():
    d = MVN(jnp.array([-1.0]), jnp.array([5.0]), validate_args=True)
    assert d.sample(3, seed=KEY).shape == (3, 1)
    # TFP accepts the negative scale of its test; ours must be positive (see the deviations)
    tfd.MultivariateNormalDiag([-1.0], [-5.0], validate_args=True)
    with pytest.raises(ValueError, match="scale must be positive"):
        MVN(jnp.array([-1.0]), jnp.array([-5.0]), validate_args=True)


def test_tfp_mean():
    mu, diag = [-1.0, 1.0], [1.0, 5.0]
    d = MVN(jnp.array(mu), jnp.array(diag))
    np.testing.assert_array_equal(d.mean, mu)
    np.testing.assert_array_equal(d.mean, tfd.MultivariateNormalDiag(mu, diag).mean())


def test_tfp_mean_with_broadcast_loc():
    d = MVN(jnp.array([-1.0]), jnp.array([1.0, 5.0]))
    np.testing.assert_array_equal(d.mean, [-1.0, -1.0])
    np.testing.assert_array_equal(d.mean, tfd.MultivariateNormalDiag([-1.0], [1.0, -5.0]).mean())
    assert d.event_shape == (2,)


@pytest.mark.parametrize("kind", KINDS)
def test_tfp_entropy(kind):
    mu, diag = np.array([-1.0, 1.0]), np.array([1.0, 5.0])  # TFP's [-1, 5], made positive
    d = _ours_from({"loc": mu, "scale_diag": diag}, kind, dtype=jnp.float64)
    scipy_mvn = stats.multivariate_normal(mean=mu, cov=np.diag(diag) ** 2)
    np.testing.assert_allclose(d.entropy(), scipy_mvn.entropy(), rtol=1e-12)
    np.testing.assert_allclose(
        d.entropy(), tfd.MultivariateNormalDiag(mu, diag).entropy(), rtol=1e-12
    )


@pytest.mark.parametrize("kind", KINDS)
def test_tfp_sample(kind):
    mu, diag = np.array([-0.5, 0.5]), np.array([0.7, 1.2])
    d = _ours_from({"loc": mu, "scale_diag": diag}, kind, dtype=jnp.float64)
    n = 5000
    samps = np.asarray(d.sample(n, seed=jax.random.key(0)))
    cov = np.diag(diag) ** 2
    # five standard errors: of the mean, sd / sqrt(n); of a covariance entry,
    # sqrt((s_i^2 s_j^2 + c_ij^2) / n)
    assert np.all(np.abs(samps.mean(0) - mu) < 5 * diag / np.sqrt(n))
    se = np.sqrt((np.outer(diag**2, diag**2) + cov**2) / n)
    assert np.all(np.abs(np.cov(samps.T) - cov) < 5 * se)


def test_tfp_singular_scale_raises():
    with pytest.raises(ValueError, match="scale must be positive"):
        MVN(jnp.array([-1.0, 1.0]), jnp.array([1.0, 0.0]), validate_args=True)
    with pytest.raises(ValueError, match="variance must be positive"):
        MVN.from_variance(jnp.array([-1.0, 1.0]), jnp.array([1.0, 0.0]), validate_args=True)


def test_tfp_sample_with_broadcast_scale():
    mu, diag = np.ones([2, 3]) / 10, np.ones([3]) / 2  # a 2-batch of 3-variate normals
    d = MVN(jnp.asarray(mu), jnp.asarray(diag), validate_args=True)
    assert d.mean.shape == (2, 3)
    np.testing.assert_allclose(d.mean, mu)
    n = 1000
    samps = np.asarray(d.sample(n, seed=jax.random.key(1)))
    assert samps.shape == (n, 2, 3)
    centred = samps - mu
    sample_cov = np.matmul(centred.transpose([1, 2, 0]), centred.transpose([1, 0, 2])) / n
    cov = np.diag(diag) ** 2
    se = np.sqrt((np.outer(diag**2, diag**2) + cov**2) / n)
    assert np.all(np.abs(samps.mean(0) - mu) < 5 * diag / np.sqrt(n))
    assert np.all(np.abs(sample_cov - cov) < 5 * se)


def test_tfp_covariance():
    d = MVN(jnp.zeros([2, 3]), jnp.ones(3))
    np.testing.assert_allclose(d.covariance(), np.broadcast_to(np.eye(3), (2, 3, 3)))
    np.testing.assert_allclose(
        d.covariance(), tfd.MultivariateNormalDiag(loc=jnp.zeros([2, 3])).covariance()
    )
    # TFP's scale_identity_multiplier=[3, 2]: a scale of shape (2, 1)
    d = MVN(jnp.zeros(3), jnp.array([[3.0], [2.0]]))
    assert d.batch_shape == (2,)
    assert d.event_shape == (3,)
    np.testing.assert_allclose(d.covariance(), np.stack([9 * np.eye(3), 4 * np.eye(3)]))
    d = MVN(jnp.zeros(3), jnp.array([[3.0, 2, 1], [4, 5, 6]]))
    assert d.batch_shape == (2,)
    assert d.event_shape == (3,)
    expected = np.stack([np.diag([3.0, 2, 1]), np.diag([4.0, 5, 6])]) ** 2
    np.testing.assert_allclose(d.covariance(), expected)
    ref = tfd.MultivariateNormalDiag(jnp.zeros(3), jnp.array([[3.0, 2, 1], [4, 5, 6]]))
    np.testing.assert_allclose(d.covariance(), ref.covariance())


@pytest.mark.parametrize("jitted", [False, True], ids=["static", "jit"])
@pytest.mark.parametrize(("prop", "power"), [("variance", 2), ("stddev", 1)])
def test_tfp_variance_and_stddev(jitted, prop, power):
    def run(loc, scale):
        return getattr(MVN(loc, scale), prop)

    run = jax.jit(run) if jitted else run
    np.testing.assert_allclose(run(jnp.zeros([2, 3]), jnp.ones(3)), np.ones([2, 3]))
    np.testing.assert_allclose(run(jnp.zeros([100, 3]), 3.0), 3.0**power * np.ones([100, 3]))
    np.testing.assert_allclose(
        run(jnp.zeros([100, 3]), jnp.array([3.0, 3.0, 3.0])), 3.0**power * np.ones([100, 3])
    )
    np.testing.assert_allclose(
        run(jnp.zeros(3), jnp.array([[3.0], [2.0]])),
        np.array([[3.0, 3, 3], [2, 2, 2]]) ** power,
    )
    scale = jnp.array([[3.0, 2, 1], [4, 5, 6]])
    out = run(jnp.zeros(3), scale)
    np.testing.assert_allclose(out, np.asarray(scale) ** power)
    ref = tfd.MultivariateNormalDiag(jnp.zeros(3), scale)
    np.testing.assert_allclose(out, getattr(ref, prop)())


@pytest.mark.parametrize("kind", KINDS)
def test_tfp_neg_log_likelihood_of_prob(kind):
    """The gradient through ``prob`` (TFP's reduce_prod regression), every constructor."""
    num_draws, dims = 50, 3
    x = np.zeros([num_draws, dims], dtype=np.float32)
    spread = jnp.asarray(_to_spread(kind, np.ones(dims)), dtype=jnp.float32)

    def neg_log_likelihood(mu):
        d = MVN(mu, spread) if kind == "scale" else getattr(MVN, f"from_{kind}")(mu, spread)
        return -jnp.sum(jnp.log(d.prob(x)))

    grad = jax.grad(neg_log_likelihood)(jnp.ones(dims, dtype=jnp.float32))
    np.testing.assert_allclose(grad, np.tile(num_draws, dims), rtol=1e-6)


def test_tfp_dynamic_batch_and_event_shape():
    """Graph-mode placeholders in TFP; in JAX the shapes are static inside jit."""
    rng = np.random.RandomState(42)
    loc, scale = rng.rand(1, 1, 2), rng.rand(1, 1, 2)

    def shapes(loc, scale):
        d = MVN(loc, scale)
        assert d.batch_shape == (1, 1)
        assert d.event_shape == (2,)
        return d.log_prob(loc)

    assert jax.jit(shapes)(jnp.asarray(loc), jnp.asarray(scale)).shape == (1, 1)
    loc, scale = rng.rand(2, 3, 2), rng.rand(2, 3, 2)
    d = jax.jit(lambda a, b: MVN(a, b))(jnp.asarray(loc), jnp.asarray(scale))
    assert d.batch_shape == (2, 3)
    assert d.event_shape == (2,)


@pytest.mark.parametrize("kind", KINDS)
def test_tfp_kl_identical_gradient_defined(kind):
    dims = 3
    spread = jnp.asarray(_to_spread(kind, np.ones(dims)), dtype=jnp.float32)

    def self_kl(loc):
        d = MVN(loc, spread) if kind == "scale" else getattr(MVN, f"from_{kind}")(loc, spread)
        return d.kl_divergence(d)

    value, gradients = jax.value_and_grad(self_kl)(jnp.zeros(dims, dtype=jnp.float32))
    assert float(value) == 0.0
    assert bool(jnp.all(jnp.isfinite(gradients)))


@pytest.mark.parametrize("kind", KINDS)
def test_tfp_prob_for_large_dim_is_not_nan(kind):
    loc, scale = np.tile([0.0], 1000), np.tile([0.1], 1000)
    d = _ours_from({"loc": loc, "scale_diag": scale}, kind, dtype=jnp.float32)
    p = d.prob(jnp.tile(jnp.float32(1.0), 1000))
    assert not bool(jnp.isnan(p))
    ref = tfd.MultivariateNormalDiag(loc.astype(np.float32), scale.astype(np.float32))
    expected = _jitted(lambda: ref.log_prob(np.ones(1000, np.float32)))
    np.testing.assert_allclose(d.log_prob(jnp.ones(1000)), expected, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_tfp_gradients_reach_loc_and_the_spread(kind):
    """TFP's testVariableLocation / testVariableScaleDiag: gradients flow to both."""
    loc = jnp.array([1.0, 1.0])
    spread = jnp.asarray(_to_spread(kind, np.array([1.0, 2.0])))

    def lp(loc, spread):
        d = MVN(loc, spread) if kind == "scale" else getattr(MVN, f"from_{kind}")(loc, spread)
        return d.log_prob(x)

    x = jnp.array([0.5, -0.3])
    g_loc, g_spread = jax.grad(lp, argnums=(0, 1))(loc, spread)
    tfp_grads = jax.jit(
        jax.grad(lambda a, s: tfd.MultivariateNormalDiag(a, s).log_prob(x), argnums=(0, 1))
    )(loc, jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(g_loc, tfp_grads[0], rtol=1e-12)
    assert bool(jnp.all(jnp.isfinite(g_spread)))
    assert bool(jnp.all(g_spread != 0))
    if kind == "scale":
        np.testing.assert_allclose(g_spread, tfp_grads[1], rtol=1e-12)


@pytest.mark.parametrize("jitted", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("kind", KINDS)
def test_tfp_equivalence_every_constructor(jitted, kind):
    """Every method of each constructor against TFP's MultivariateNormalDiag in float64."""
    rng = np.random.default_rng(9)
    loc, scale = rng.normal(size=(4, 3)), rng.uniform(0.5, 2.0, size=(3,))
    loc_q, scale_q = rng.normal(size=(3,)), rng.uniform(0.5, 2.0, size=(4, 3))
    x = jnp.asarray(rng.normal(size=(2, 4, 3)))

    def ours(loc, spread, loc_q, spread_q, x):
        build = MVN if kind == "scale" else getattr(MVN, f"from_{kind}")
        p, q = build(loc, spread), build(loc_q, spread_q)
        return {
            "log_prob": p.log_prob(x),
            "prob": p.prob(x),
            "entropy": p.entropy(),
            "mean": p.mean,
            "mode": p.mode,
            "stddev": p.stddev,
            "variance": p.variance,
            "covariance": p.covariance(),
            "kl_divergence": p.kl_divergence(q),
            "cross_entropy": p.cross_entropy(q),
        }

    def theirs(loc, scale, loc_q, scale_q, x):
        p = tfd.MultivariateNormalDiag(loc, scale)
        q = tfd.MultivariateNormalDiag(loc_q, scale_q)
        return {
            "log_prob": p.log_prob(x),
            "prob": p.prob(x),
            "entropy": p.entropy(),
            "mean": p.mean(),
            "mode": p.mode(),
            "stddev": p.stddev(),
            "variance": p.variance(),
            "covariance": p.covariance(),
            "kl_divergence": p.kl_divergence(q),
            "cross_entropy": p.cross_entropy(q),
        }

    args = [
        jnp.asarray(a) for a in (loc, _to_spread(kind, scale), loc_q, _to_spread(kind, scale_q))
    ]
    run = jax.jit(ours) if jitted else ours
    a = run(*args, x)
    b = jax.jit(theirs)(*(jnp.asarray(v) for v in (loc, scale, loc_q, scale_q)), x)
    for key in b:
        assert a[key].shape == b[key].shape, key
        np.testing.assert_allclose(a[key], b[key], rtol=1e-10, atol=1e-300, err_msg=key)
