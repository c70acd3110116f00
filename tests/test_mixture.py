"""MixtureDiag on every backend, against SciPy sums over components."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import asarray, assert_close, name_of, to_numpy

import diaggauss as dg

stats = pytest.importorskip("scipy.stats")
special = pytest.importorskip("scipy.special")


@pytest.fixture
def params(rng):
    k, d = 3, 2
    return rng.normal(size=k), rng.normal(size=(k, d)) * 3, rng.uniform(0.5, 2.0, size=(k, d))


def ref_log_prob(x, logits, loc, scale):
    logw = logits - special.logsumexp(logits, axis=-1, keepdims=True)
    comp = stats.norm.logpdf(x[..., None, :], loc, scale).sum(-1)
    return special.logsumexp(comp + logw, axis=-1)


def _seed(backend):
    if str(backend) == "jax":
        import jax

        return jax.random.key(0)
    if str(backend) == "torch":
        import torch

        return torch.Generator().manual_seed(0)
    return np.random.default_rng(0)


def test_log_prob_prob_and_responsibilities(xp, params, rng):
    logits, loc, scale = params
    m = dg.MixtureDiag(asarray(xp, logits), asarray(xp, loc), asarray(xp, scale))
    assert m.batch_shape == ()
    assert m.event_shape == (2,)
    assert m.num_components == 3
    x = rng.normal(size=(4, 5, 2)) * 3
    ref = ref_log_prob(x, logits, loc, scale)
    assert_close(m.log_prob(asarray(xp, x)), ref, xp=xp, rtol=1e-9)
    assert_close(m.prob(asarray(xp, x)), np.exp(ref), xp=xp, rtol=1e-9)
    logw = logits - special.logsumexp(logits)
    joint = stats.norm.logpdf(x[..., None, :], loc, scale).sum(-1) + logw
    resp = np.exp(joint - ref[..., None])
    got = m.responsibilities(asarray(xp, x))
    assert_close(got, resp, xp=xp, rtol=1e-9, atol=1e-15)
    assert_close(xp.sum(got, axis=-1), np.ones((4, 5)), xp=xp, rtol=1e-12)
    comp = m.component_log_prob(asarray(xp, x))
    assert_close(comp, joint - logw, xp=xp, rtol=1e-9)


def test_moments_and_collapse(xp, params):
    logits, loc, scale = params
    m = dg.MixtureDiag(asarray(xp, logits), asarray(xp, loc), asarray(xp, scale))
    w = np.exp(logits - special.logsumexp(logits))
    mean = (w[:, None] * loc).sum(0)
    second = (w[:, None] * (scale**2 + loc**2)).sum(0)
    assert_close(m.weights, w, xp=xp, rtol=1e-12)
    assert_close(m.mean, mean, xp=xp, rtol=1e-12)
    assert_close(m.variance, second - mean**2, xp=xp, rtol=1e-10)
    assert_close(m.stddev, np.sqrt(second - mean**2), xp=xp, rtol=1e-10)
    c = m.collapse()
    assert isinstance(c, dg.MultivariateNormalDiag)
    assert_close(c.mean, mean, xp=xp, rtol=1e-12)
    assert_close(c.variance, second - mean**2, xp=xp, rtol=1e-10)
    assert m.components.batch_shape == (3,)
    assert_close(m.logits, logits, xp=xp)
    assert_close(m.loc, loc, xp=xp)
    assert_close(m.scale, scale, xp=xp)


def test_variance_is_two_pass(xp):
    """Means at 1e4 with unit spread: E[x^2] - E[x]^2 would lose everything in float32."""
    loc = np.array([[1e4 - 1.0], [1e4 + 1.0]], dtype=np.float32)
    m = dg.MixtureDiag(
        asarray(xp, np.zeros(2, np.float32)),
        asarray(xp, loc),
        asarray(xp, np.full((2, 1), 0.5, np.float32)),
    )
    assert_close(m.variance, [1.25], xp=xp, dtype=xp.float32, rtol=1e-6)


def test_cdf(xp, params, rng):
    logits, loc, scale = params
    m = dg.MixtureDiag(asarray(xp, logits), asarray(xp, loc), asarray(xp, scale))
    x = rng.normal(size=(6, 2))
    w = np.exp(logits - special.logsumexp(logits))
    ref = (w * stats.norm.cdf(x[:, None, :], loc, scale).prod(-1)).sum(-1)
    assert_close(m.cdf(asarray(xp, x)), ref, xp=xp, rtol=1e-9)
    assert_close(m.log_cdf(asarray(xp, x)), np.log(ref), xp=xp, rtol=1e-9)


def test_batched_mixtures(xp, rng):
    logits = rng.normal(size=(4, 3))
    loc = rng.normal(size=(3, 2))
    scale = rng.uniform(0.5, 2, size=(4, 3, 2))
    m = dg.MixtureDiag(asarray(xp, logits), asarray(xp, loc), asarray(xp, scale))
    assert m.batch_shape == (4,)
    x = rng.normal(size=(5, 4, 2))
    ref = ref_log_prob(x, logits, loc, scale)
    assert_close(m.log_prob(asarray(xp, x)), ref, xp=xp, rtol=1e-9)
    assert_close(
        m.log_prob(asarray(xp, x[0, 0])),
        ref_log_prob(x[0, 0], logits, loc, scale),
        xp=xp,
        rtol=1e-9,
    )
    assert tuple(m.mean.shape) == (4, 2)
    assert m[1:3].batch_shape == (2,)
    assert_close(m[1].log_prob(asarray(xp, x[:, 1])), ref[:, 1], xp=xp, rtol=1e-9)
    assert m.components.batch_shape == (4, 3)


def test_sample_statistics_and_seeds(xp, backend):
    logits = np.log(np.array([0.2, 0.8]))
    loc = np.array([[-4.0, 0.0], [4.0, 1.0]])
    scale = np.array([[0.5, 1.0], [1.0, 0.5]])
    m = dg.MixtureDiag(asarray(xp, logits), asarray(xp, loc), asarray(xp, scale))
    s = to_numpy(m.sample((20000,), seed=_seed(backend)))
    assert s.shape == (20000, 2)
    np.testing.assert_allclose(s.mean(0), to_numpy(m.mean), atol=0.06)
    np.testing.assert_allclose(s.var(0), to_numpy(m.variance), rtol=0.04)
    np.testing.assert_allclose((s[:, 0] > 0).mean(), 0.8, atol=0.015)
    a = to_numpy(m.sample((5,), seed=_seed(backend)))
    b = to_numpy(m.sample((5,), seed=_seed(backend)))
    np.testing.assert_array_equal(a, b)
    batched = dg.MixtureDiag(asarray(xp, np.zeros((3, 2))), asarray(xp, loc), asarray(xp, scale))
    assert tuple(batched.sample((4,), seed=_seed(backend)).shape) == (4, 3, 2)


def test_parameterisations(xp, params, rng):
    logits, loc, scale = params
    x = rng.normal(size=(3, 2))
    ref = ref_log_prob(x, logits, loc, scale)
    for ctor, given in (
        (dg.MixtureDiag.from_log_scale, np.log(scale)),
        (dg.MixtureDiag.from_variance, scale**2),
        (dg.MixtureDiag.from_precision, scale**-2),
    ):
        m = ctor(asarray(xp, logits), asarray(xp, loc), asarray(xp, given))
        assert_close(m.log_prob(asarray(xp, x)), ref, xp=xp, rtol=1e-9)


def test_validation(xp, backend, params):
    logits, loc, scale = params
    if str(backend) == "dask":
        pytest.skip("lazy values are not checked")
    with pytest.raises(ValueError, match="logits must be finite or -inf"):
        dg.MixtureDiag(
            asarray(xp, np.array([0.0, np.nan, 1.0])), asarray(xp, loc), asarray(xp, scale)
        )
    with pytest.raises(ValueError, match="logits must be finite or -inf"):
        dg.MixtureDiag(
            asarray(xp, np.array([0.0, np.inf, 1.0])), asarray(xp, loc), asarray(xp, scale)
        )
    with pytest.raises(ValueError, match="at least one component"):
        dg.MixtureDiag(asarray(xp, np.full(3, -np.inf)), asarray(xp, loc), asarray(xp, scale))
    off = dg.MixtureDiag(
        asarray(xp, np.array([0.0, -np.inf, 0.0])), asarray(xp, loc), asarray(xp, scale)
    )
    assert_close(off.weights, [0.5, 0.0, 0.5], xp=xp)
    with pytest.raises(ValueError, match="scale must be positive"):
        dg.MixtureDiag(asarray(xp, logits), asarray(xp, loc), asarray(xp, -scale))


def test_shape_errors(xp, params):
    logits, loc, scale = params
    with pytest.raises(ValueError, match=r"logits must have shape \(\.\.\., K\) with K=3"):
        dg.MixtureDiag(asarray(xp, logits[:2]), asarray(xp, loc), asarray(xp, scale))
    with pytest.raises(ValueError, match="component axis"):
        dg.MixtureDiag(asarray(xp, logits), asarray(xp, loc[0]), asarray(xp, scale[0]))
    m = dg.MixtureDiag(asarray(xp, logits), asarray(xp, loc), asarray(xp, scale))
    with pytest.raises(ValueError, match="event size d=2"):
        m.log_prob(asarray(xp, np.zeros(3)))


def test_repr(xp, params):
    m = dg.MixtureDiag(*(asarray(xp, a) for a in params))
    assert "MixtureDiag(K=3" in repr(m)
    assert name_of(xp) in repr(m)


def test_jax_pytree():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    logits, loc, scale = jnp.zeros(2), jnp.array([[-1.0], [1.0]]), jnp.ones((2, 1))
    m = dg.MixtureDiag(logits, loc, scale)
    leaves = jax.tree_util.tree_leaves(m)
    assert len(leaves) == 3
    out = jax.jit(lambda m, x: m.log_prob(x))(m, jnp.zeros((4, 1)))
    np.testing.assert_allclose(
        out,
        ref_log_prob(np.zeros((4, 1)), np.zeros(2), np.array([[-1.0], [1.0]]), np.ones((2, 1))),
    )
    made = jax.vmap(lambda lg: dg.MixtureDiag(lg, loc, scale))(jnp.zeros((5, 2)))
    assert made.batch_shape == (5,)
    g = jax.grad(lambda m: m.log_prob(jnp.ones(1)).sum())(m)
    assert isinstance(g, dg.MixtureDiag)
    s = jax.jit(lambda m, k: m.sample((3,), seed=k))(m, jax.random.key(0))
    assert s.shape == (3, 1)
