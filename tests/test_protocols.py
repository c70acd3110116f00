"""Each framework's protocol around the math: what torch, Pyro and numpyro users rely on.

References are the frameworks' own behaviour (torch's ``Independent(Normal)``,
numpyro's ``Normal(...).to_event(1)``) and float64 closed forms.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from diaggauss.backends.torch import MultivariateNormalDiag as TMVND  # noqa: E402

RNG = np.random.default_rng(11)
LOC = RNG.normal(size=(4, 3))
SCALE = RNG.uniform(0.5, 2.0, size=(4, 3))


def _kl_reference(loc_p, scale_p, loc_q, scale_q):
    """Float64 closed form of KL(p || q) for diagonal Gaussians."""
    ratio = (scale_p / scale_q) ** 2
    return 0.5 * np.sum(ratio + ((loc_q - loc_p) / scale_q) ** 2 - 1 - np.log(ratio), axis=-1)


# -- torch --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["log_prob", "cdf", "log_cdf", "mahalanobis"])
def test_torch_validation_checks_values_as_torch_does(method):
    d = TMVND(torch.tensor(LOC), torch.tensor(SCALE), validate_args=True)
    reference = torch.distributions.Independent(
        torch.distributions.Normal(torch.tensor(LOC), torch.tensor(SCALE), validate_args=True), 1
    )
    value = torch.zeros(4, 3, dtype=torch.float64)
    value[2, 1] = float("nan")
    with pytest.raises(ValueError, match="Expected value argument") as ours:
        getattr(d, method)(value)
    with pytest.raises(ValueError, match="Expected value argument") as theirs:
        reference.log_prob(value)
    assert type(ours.value) is type(theirs.value)
    # infinities are inside torch's real support: they score, as torch's do
    value[2, 1] = float("inf")
    expected = reference.log_prob(value)
    torch.testing.assert_close(d.log_prob(value), expected)
    # without validation, NaN propagates (torch's behaviour too)
    free = TMVND(torch.tensor(LOC), torch.tensor(SCALE), validate_args=False)
    value[2, 1] = float("nan")
    assert torch.isnan(free.log_prob(value)[2])


def test_torch_validation_at_realistic_size():
    loc, scale = torch.randn(128, 8), torch.rand(128, 8) + 0.1
    d = TMVND(loc, scale, validate_args=True)
    x = torch.randn(16, 128, 8)
    torch.testing.assert_close(
        d.log_prob(x),
        torch.distributions.Independent(torch.distributions.Normal(loc, scale), 1).log_prob(x),
    )
    x[7, 100, 3] = float("nan")
    with pytest.raises(ValueError, match="Expected value argument"):
        d.log_prob(x)


@pytest.mark.parametrize("ctor", ["scale", "log_scale", "variance", "precision"])
def test_torch_arg_constraints_describe_the_constructor(ctor):
    constraints = TMVND.arg_constraints
    assert set(constraints) == {"loc", "scale", "log_scale", "variance", "precision"}
    build = TMVND if ctor == "scale" else getattr(TMVND, f"from_{ctor}")
    for bad in (float("inf"), float("nan")) + ((0.0, -1.0) if ctor != "log_scale" else ()):
        spread = torch.ones(2, 3, dtype=torch.float64)
        spread[1, 2] = bad
        assert not constraints[ctor].check(spread).all()
        with pytest.raises(ValueError, match=ctor):
            build(torch.zeros(2, 3, dtype=torch.float64), spread, validate_args=True)
    loc = torch.zeros(3, dtype=torch.float64)
    loc[1] = float("inf")
    assert not constraints["loc"].check(loc).all()
    with pytest.raises(ValueError, match="loc"):
        TMVND(loc, torch.ones(3, dtype=torch.float64), validate_args=True)
    # transform_to maps any real tensor into values the constructor accepts
    raw = torch.randn(5, 3, dtype=torch.float64) * 10
    spread = torch.distributions.transform_to(constraints[ctor])(raw)
    assert constraints[ctor].check(spread).all()
    build(torch.zeros(5, 3, dtype=torch.float64), spread, validate_args=True)


def test_torch_invalid_parameters_requiring_grad_raise_without_warnings():
    scale = torch.tensor([1.0, -1.0, 2.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="scale"):
            TMVND(torch.zeros(3), scale, validate_args=True)


def test_torch_jit_trace_log_prob_without_copy_construct_warning():
    loc, scale = torch.randn(128, 8), torch.rand(128, 8) + 0.1

    def f(loc, scale, x):
        return TMVND(loc, scale).log_prob(x)

    x = torch.randn(128, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(f, (loc, scale, x))
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "copy construct" in m], messages
    reference = torch.distributions.Independent(torch.distributions.Normal(loc, scale), 1)
    y = torch.randn(128, 8)
    torch.testing.assert_close(traced(loc, scale, y), reference.log_prob(y))


def test_pyro_infer_shapes():
    pyro_backend = pytest.importorskip("diaggauss.backends.pyro")
    pytest.importorskip("pyro")
    D = pyro_backend.MultivariateNormalDiag
    for loc, spread, name in [
        ((5, 2), (2,), "scale"),
        ((2,), (7, 1, 2), "log_scale"),
        ((3, 4), (), "variance"),
        ((1, 4), (6, 1), "precision"),
    ]:
        batch, event = D.infer_shapes(loc=loc, **{name: spread})
        build = D if name == "scale" else getattr(D, f"from_{name}")
        d = build(torch.zeros(loc), torch.ones(spread))
        assert (batch, event) == (d.batch_shape, d.event_shape)
        assert isinstance(batch, torch.Size)
    with pytest.raises(ValueError, match="infer_shapes takes loc"):
        D.infer_shapes(loc=(2,), sigma=(2,))
    with pytest.raises(ValueError, match="broadcast"):
        D.infer_shapes(loc=(3, 2), scale=(4, 2))


def test_torch_non_broadcasting_parameters_raise_value_error():
    with pytest.raises(ValueError, match=r"loc .*\(3, 2\).*scale.*\(4, 2\)"):
        TMVND(torch.zeros(3, 2), torch.ones(4, 2))


# -- numpyro ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def numpyro_classes():
    pytest.importorskip("numpyro")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import numpyro.distributions as nd
    from numpyro.distributions.kl import kl_divergence

    from diaggauss.backends.jax import NumpyroMultivariateNormalDiag

    return NumpyroMultivariateNormalDiag, nd, kl_divergence


def test_numpyro_class_pickles(numpyro_classes):
    N, _, _ = numpyro_classes
    import jax.numpy as jnp

    for build in (N, N.from_log_scale, N.from_variance, N.from_precision):
        d = build(jnp.asarray(LOC), jnp.asarray(SCALE))
        clone = pickle.loads(pickle.dumps(d))
        assert type(clone) is N
        x = jnp.asarray(RNG.normal(size=(4, 3)))
        np.testing.assert_array_equal(np.asarray(clone.log_prob(x)), np.asarray(d.log_prob(x)))
        np.testing.assert_array_equal(np.asarray(clone.variance), np.asarray(d.variance))


def _numpyro_priors(nd, d):
    return {
        "numpy": nd.Normal(np.zeros(d), np.ones(d)).to_event(1),
        "floats": nd.Independent(nd.Normal(0.0, 1.0).expand([d]), 1),
        "standard": nd.Normal(0.0, 1.0).expand([d]).to_event(1),
        "numpy-loc-scale": nd.Normal(LOC[0], SCALE[0]).to_event(1),
    }


@pytest.mark.parametrize("form", ["numpy", "floats", "standard", "numpy-loc-scale"])
def test_numpyro_kl_against_independent_normal_both_orders(numpyro_classes, form):
    N, nd, kl_divergence = numpyro_classes
    import jax.numpy as jnp

    prior = _numpyro_priors(nd, 3)[form]
    loc_q = np.asarray(prior.mean, dtype=np.float64)
    scale_q = np.sqrt(np.asarray(prior.variance, dtype=np.float64))
    post = N(jnp.asarray(LOC), jnp.asarray(SCALE))
    np.testing.assert_allclose(
        np.asarray(kl_divergence(post, prior)),
        _kl_reference(LOC, SCALE, loc_q, scale_q),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        np.asarray(kl_divergence(prior, post)),
        _kl_reference(loc_q, scale_q, LOC, SCALE),
        rtol=1e-12,
    )
    # from_distribution reads the same forms
    import diaggauss as dg

    read = dg.MultivariateNormalDiag.from_distribution(prior)
    np.testing.assert_allclose(np.asarray(read.loc), np.broadcast_to(loc_q, (3,)), rtol=0)
    np.testing.assert_allclose(np.asarray(read.scale), np.broadcast_to(scale_q, (3,)), rtol=0)


def test_numpyro_validation_warns_and_scores_minus_inf(numpyro_classes):
    N, nd, _ = numpyro_classes
    import jax.numpy as jnp

    d = N(jnp.asarray(LOC), jnp.asarray(SCALE), validate_args=True)
    reference = nd.Normal(LOC, SCALE, validate_args=True).to_event(1)
    x = np.zeros((4, 3))
    x[1, 2] = np.nan
    with pytest.warns(UserWarning, match="Out-of-support") as ours:
        got = np.asarray(d.log_prob(x))
    with pytest.warns(UserWarning, match="Out-of-support"):
        expected = np.asarray(reference.log_prob(x))
    assert len(ours) >= 1
    assert got[1] == -np.inf
    assert expected[1] == -np.inf
    np.testing.assert_allclose(got[[0, 2, 3]], expected[[0, 2, 3]], rtol=1e-12)


def test_numpyro_invalid_constants_raise_inside_jit(numpyro_classes):
    N, nd, _ = numpyro_classes
    import jax
    import jax.numpy as jnp

    @jax.jit
    def score(x):
        return N(np.zeros(3), -np.ones(3), validate_args=True).log_prob(x)

    @jax.jit
    def score_reference(x):
        return nd.Normal(np.zeros(3), -np.ones(3), validate_args=True).log_prob(x)

    with pytest.raises(ValueError):
        score_reference(jnp.zeros(3))
    with pytest.raises(ValueError, match="scale"):
        score(jnp.zeros(3))

    # traced parameters cannot be checked, and are not: as numpyro
    @jax.jit
    def traced(scale, x):
        return N(jnp.zeros(3), scale, validate_args=True).log_prob(x)

    assert np.isfinite(float(traced(jnp.ones(3), jnp.zeros(3))))


def test_numpyro_infer_shapes(numpyro_classes):
    N, _, _ = numpyro_classes
    import jax.numpy as jnp

    for loc, spread in [((5, 2), (2,)), ((2,), (7, 1, 2)), ((3, 4), ())]:
        batch, event = N.infer_shapes(loc, spread)
        d = N(jnp.zeros(loc), jnp.ones(spread))
        assert (batch, event) == (d.batch_shape, d.event_shape)
    with pytest.raises(ValueError, match="broadcast"):
        N.infer_shapes((3, 2), (4, 2))


def test_kl_with_a_tfp_object_names_it(numpyro_classes):
    pytest.importorskip("tensorflow_probability")
    import jax.numpy as jnp

    import diaggauss as dg

    d = dg.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3))
    with pytest.raises(TypeError, match=r"tensorflow_probability\S*MultivariateNormalDiag"):
        d.kl_divergence(d.to_tfp())
