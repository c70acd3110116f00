"""JAX sharding: x split along N over 4 host devices, Explicit and Auto meshes (issue 14).

The checks run in a fresh interpreter (``--xla_force_host_platform_device_count=4``
must come before JAX starts): every kernel under ``jax.jit`` on sharded
points agrees with the unsharded result and keeps the rows sharded; the
compiled HLO of an EM step and of `fit` has exactly one all-reduce outside
the rare exact-variance branch (of the (K, 2d + 1) sums; of the (devices,
2d + 1) moments) and no all-gather; `fit_mixture` on sharded x, eager and
jitted, agrees with the unsharded fit. In this process: ``jax.jit`` of
`fit_mixture` on unsharded x agrees with the eager fit.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_python

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import diaggauss as dg  # noqa: E402

SHARDED = r"""
import re
import jax, jax.numpy as jnp, numpy as np
import diaggauss as dg
from diaggauss import _em
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

assert jax.device_count() == 4, jax.devices()
KIND = {kind!r}
N, D, K = 4096, 8, 3
mesh = jax.make_mesh((4,), ("n",), axis_types=(getattr(AxisType, KIND),))
rng = np.random.default_rng(0)
centres = np.array([[-6.0] * D, [0.0] * D, [6.0] * D])
xn = (centres[rng.integers(0, K, N)] + rng.normal(size=(N, D))).astype(np.float32)
loc = jnp.asarray(rng.normal(size=(K, D)), jnp.float32)
scale = jnp.asarray(rng.uniform(0.5, 2, (K, D)), jnp.float32)
rows = NamedSharding(mesh, P("n"))
x = jax.device_put(jnp.asarray(xn), rows)
xu = jnp.asarray(xn)


def close(a, b, rtol=2e-5, what=""):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=rtol, err_msg=what)


def split_rows(out, what):
    spec = tuple(out.sharding.spec)
    assert spec and spec[0] in ("n", ("n",)), (what, out.sharding)


def collectives(f, *args):
    text = jax.jit(f).lower(*args).compile().as_text()
    entry = text[text.index("ENTRY"):]
    entry = entry[: entry.index("\n}}")]
    return text, re.findall(r"^.*all-reduce\(.*$", entry, re.M)


want = dg.fit_mixture(xu, K, seed=jax.random.key(0))
order = np.argsort(np.asarray(want.loc[:, 0]))
want = [np.asarray(a)[order] for a in (want.loc, want.scale, jnp.exp(want.log_weights))]
with jax.set_mesh(mesh):
    mvn = dg.MultivariateNormalDiag
    one = lambda: mvn(loc[0], scale[0])
    comps = lambda: mvn(loc, scale)
    points = lambda x: mvn(x, jnp.ones_like(x))
    mix = lambda: dg.MixtureDiag(jnp.zeros(K), loc, scale)
    kernels = {{
        "log_prob": lambda x: one().log_prob(x),
        "mahalanobis": lambda x: one().mahalanobis(x),
        "kl_divergence": lambda x: points(x).kl_divergence(one()),
        "pairwise_log_prob": lambda x: dg.pairwise_log_prob(x, loc, scale),
        "pairwise_mahalanobis": lambda x: dg.pairwise_mahalanobis(x, comps()),
        "pairwise_kl_divergence": lambda x: dg.pairwise_kl_divergence(points(x), comps()),
        "mixture_log_prob": lambda x: mix().log_prob(x),
        "responsibilities": lambda x: mix().responsibilities(x),
        "sample": lambda x: points(x).sample(seed=jax.random.key(0)),
    }}
    for name, f in kernels.items():
        got = jax.jit(f)(x)
        close(got, f(xu), rtol=1e-4, what=name)
        split_rows(got, name)
        text, reduces = collectives(f, x)
        assert not reduces and "all-gather(" not in text, (name, reduces)

    # fit: one all-reduce of the (devices, 2d + 1) moments, nothing gathered
    fit = lambda x: (lambda g: (g.loc, g.scale))(dg.fit(x))
    for a, b in zip(jax.jit(fit)(x), fit(xu)):
        close(a, b, what="fit")
    text, reduces = collectives(fit, x)
    assert len(reduces) == 1 and "all-gather(" not in text, reduces
    assert f"f32[4,{{2 * D + 1}}]" in text, "fit's all-reduce is not of the (4, 2d + 1) moments"
    far = x + 1e4  # the exact combination keeps float32's digits far from the origin
    g = jax.jit(fit)(far)
    close(g[1], np.asarray(xn, np.float64).std(0), rtol=1e-4, what="fit at 1e4")

    # one EM step: one all-reduce of (ll, total weight, (K, 2d + 1) sums), nothing gathered
    def step(x):
        xa, _ = _em.design(x, jnp.mean(x, axis=0, keepdims=True), xp=jnp)
        w = jnp.ones_like(xa[:, 0])
        mc = jnp.asarray(centres, jnp.float32)
        return _em.em_step(xa, w, jnp.zeros(K), mc, jnp.ones((K, D)), 1e-6, xp=jnp)

    for a, b in zip(jax.jit(step)(x), step(xu)):
        close(a, b, what="em_step")
    text, reduces = collectives(step, x)
    sums = [r for r in reduces if f"f32[{{K}},{{2 * D + 1}}]" in r]
    # the mean that centres the design is its own (d,) all-reduce
    assert len(sums) == 1 and len(reduces) == 2, reduces
    assert "all-gather(" not in text, "an EM step gathers"

    # fit_mixture: eager and jitted on sharded x, as on unsharded x (fitted outside the mesh)
    for how, got in (
        ("eager", dg.fit_mixture(x, K, seed=jax.random.key(0))),
        ("jit", jax.jit(lambda x, k: dg.fit_mixture(x, K, seed=k))(x, jax.random.key(0))),
    ):
        got = [np.asarray(a) for a in (got.loc, got.scale, jnp.exp(got.log_weights))]
        o = np.argsort(got[0][:, 0])
        for a, b in zip(got, want):
            close(a[o], b, rtol=1e-3, what=how)
print("ok")
"""


def _sharded(kind):
    return run_python(
        SHARDED.format(kind=kind),
        timeout=600,
        XLA_FLAGS="--xla_force_host_platform_device_count=4 --xla_cpu_multi_thread_eigen=false",
        JAX_ENABLE_X64="0",
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["Explicit", "Auto"])
def test_sharded_kernels_fit_and_em(kind):
    assert _sharded(kind).strip().endswith("ok")


def _blobs(n, d=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-5.0] * d, [0.0] * d, [5.0] * d])
    return jnp.asarray(centres[rng.integers(0, 3, n)] + rng.normal(size=(n, d)), jnp.float32)


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data", "given"])
def test_jit_fit_mixture_agrees_with_eager(init):
    x = _blobs(900)
    start = {"init": init}
    if init == "given":
        start = {
            "weights_init": jnp.full(3, 1 / 3),
            "means_init": jnp.asarray([[-4.0] * 3, [1.0] * 3, [4.0] * 3]),
            "precisions_init": jnp.ones((3, 3)),
        }

    def fit(x, key):
        return dg.fit_mixture(x, 3, seed=key, return_info=True, **start)

    key = jax.random.key(3)
    want, info = fit(x, key)
    got, got_info = jax.jit(fit)(x, key)
    for a, b in ((got.loc, want.loc), (got.scale, want.scale), (got.logits, want.logits)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
    assert int(got_info.n_iter) == info.n_iter
    assert bool(got_info.converged) == info.converged
    np.testing.assert_allclose(float(got_info.log_likelihood), info.log_likelihood, rtol=1e-5)
    history = np.asarray(got_info.history)
    assert history.shape == (100,)
    np.testing.assert_allclose(history[: info.n_iter], info.history, rtol=1e-5)
    assert np.isnan(history[info.n_iter :]).all()


def test_jit_fit_mixture_on_more_points_than_the_kmeans_sample():
    from diaggauss import _kmeans

    x = _blobs(_kmeans.KMEANS_SAMPLE + 500, seed=1)
    key = jax.random.key(0)
    want = dg.fit_mixture(x, 3, seed=key, max_iter=20)
    got = jax.jit(lambda x, k: dg.fit_mixture(x, 3, seed=k, max_iter=20))(x, key)
    np.testing.assert_allclose(np.asarray(got.loc), np.asarray(want.loc), rtol=1e-4, atol=1e-4)


def test_jit_fit_mixture_max_iter_zero_and_errors():
    x = _blobs(300)
    got, info = jax.jit(lambda x: dg.fit_mixture(x, 3, seed=0, max_iter=0, return_info=True))(x)
    assert int(info.n_iter) == 0
    assert np.asarray(info.history).shape == (0,)
    want = dg.fit_mixture(x, 3, seed=0, max_iter=0)
    np.testing.assert_allclose(np.asarray(got.loc), np.asarray(want.loc), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"n_init must be 1 where x is traced.*got n_init=2"):
        jax.jit(lambda x: dg.fit_mixture(x, 3, seed=0, n_init=2).loc)(x)
