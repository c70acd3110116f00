"""The neutral object as a JAX pytree: jit, vmap, grad, scan, and no leaked tracers."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

import diaggauss as dg  # noqa: E402

MVN = dg.MultivariateNormalDiag
stats = pytest.importorskip("scipy.stats")


@pytest.fixture
def d():
    return MVN.from_log_scale(
        jnp.array([[0.0, 1.0], [2.0, -1.0]]), jnp.array([[0.1, -0.3], [0.0, 0.2]])
    )


def test_flatten_has_explicit_fields(d):
    leaves, treedef = jax.tree_util.tree_flatten(d)
    assert len(leaves) == 2
    assert leaves[0] is d.loc
    assert leaves[1] is d.log_scale
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(d)[0]]
    assert paths == [".loc", ".log_scale"]
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert rebuilt.parameterization == "log_scale"
    np.testing.assert_array_equal(rebuilt.log_prob(jnp.zeros(2)), d.log_prob(jnp.zeros(2)))


def test_unflatten_accepts_placeholders(d):
    treedef = jax.tree_util.tree_structure(d)
    odd = jax.tree_util.tree_unflatten(treedef, [None, object()])
    assert "MultivariateNormalDiag" in repr(odd)


def test_jit_in_and_out(d):
    @jax.jit
    def f(dist, x):
        return dist.log_prob(x), dist.entropy(), dist

    lp, ent, back = f(d, jnp.ones(2))
    x = np.ones(2)
    loc, scale = np.asarray(d.loc), np.exp(np.asarray(d.log_scale))
    np.testing.assert_allclose(lp, stats.norm.logpdf(x, loc, scale).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(ent, stats.norm.entropy(loc, scale).sum(-1), rtol=1e-12)
    assert isinstance(back, MVN)
    assert back.batch_shape == (2,)


def test_construct_inside_jit_skips_value_validation():
    @jax.jit
    def f(loc, scale):
        return MVN(loc, scale).log_prob(jnp.zeros(2))

    out = f(jnp.zeros(2), jnp.array([1.0, -1.0]))  # no tracer error; nothing to check
    assert out.shape == ()


def test_vmap_constructs_and_returns_distributions():
    locs = jnp.arange(6.0).reshape(3, 2)
    scales = jnp.ones((3, 2))
    made = jax.vmap(lambda lo, s: MVN(lo, s))(locs, scales)
    assert isinstance(made, MVN)
    assert made.batch_shape == (3,)
    lp = jax.vmap(lambda dist, x: dist.log_prob(x))(made, locs)
    np.testing.assert_allclose(lp, np.full(3, -np.log(2 * np.pi)), rtol=1e-12)


def test_vmap_over_distribution_in_axes(d):
    xs = jnp.zeros((5, 2, 2))
    out = jax.vmap(lambda x: d.log_prob(x))(xs)
    np.testing.assert_allclose(out, jnp.broadcast_to(d.log_prob(jnp.zeros(2)), (5, 2)), rtol=1e-12)


def test_grad_with_respect_to_the_distribution(d):
    x = jnp.array([0.5, 0.5])
    g = jax.grad(lambda dist: dist.log_prob(x).sum())(d)
    assert isinstance(g, MVN)
    loc, log_scale = np.asarray(d.loc), np.asarray(d.log_scale)
    z = (0.5 - loc) / np.exp(log_scale)
    np.testing.assert_allclose(g.loc, z / np.exp(log_scale), rtol=1e-12)
    np.testing.assert_allclose(g.log_scale, z**2 - 1, rtol=1e-12)


def test_grad_of_kl_in_parameters():
    def kl(loc, log_scale):
        p = MVN.from_log_scale(loc, log_scale)
        q = MVN(jnp.zeros(2), jnp.ones(2))
        return p.kl_divergence(q)

    g_loc, g_ls = jax.grad(kl, argnums=(0, 1))(jnp.array([1.0, -2.0]), jnp.array([0.3, -0.1]))
    np.testing.assert_allclose(g_loc, [1.0, -2.0], rtol=1e-12)
    np.testing.assert_allclose(g_ls, np.exp(2 * np.array([0.3, -0.1])) - 1, rtol=1e-12)


def test_scan_carries_a_distribution():
    d0 = MVN(jnp.zeros(2), jnp.ones(2))

    def step(dist, x):
        new = MVN(dist.loc + x, dist.scale)
        return new, new.log_prob(x)

    final, lps = lax.scan(step, d0, jnp.ones((4, 2)))
    np.testing.assert_allclose(final.loc, [4.0, 4.0])
    assert lps.shape == (4,)


def test_no_leaked_tracer_from_cache():
    d = MVN.from_variance(jnp.zeros(2), jnp.array([2.0, 3.0]))  # built outside jit

    @jax.jit
    def f(x):
        return d.log_prob(x)  # derives inv_scale inside the trace

    f(jnp.ones(2))
    assert "inv_scale" not in d._cache
    # used again eagerly: no UnexpectedTracerError
    expected = stats.norm.logpdf(1.0, 0, np.sqrt([2.0, 3.0])).sum()
    np.testing.assert_allclose(d.log_prob(jnp.ones(2)), expected, rtol=1e-12)


def test_sample_under_jit(d):
    f = jax.jit(lambda dist, key: dist.sample_and_log_prob((3,), seed=key))
    x, lp = f(d, jax.random.key(0))
    assert x.shape == (3, 2, 2)
    np.testing.assert_allclose(lp, d.log_prob(x), rtol=1e-10)


def test_numpy_built_distribution_enters_jit():
    d = MVN(np.zeros(2), np.ones(2))
    out = jax.jit(lambda dist: dist.loc + 1)(d)
    np.testing.assert_array_equal(out, [1.0, 1.0])
