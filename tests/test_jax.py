"""JAX: transformations, keys, dtypes, sharding, and the JAX ecosystem as oracles."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_python

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

import diaggauss as dg  # noqa: E402
from diaggauss.backends import jax as jax_backend  # noqa: E402

MVN = dg.MultivariateNormalDiag
stats = pytest.importorskip("scipy.stats")


def _params():
    rng = np.random.default_rng(11)
    return rng.normal(size=(4, 3)), rng.uniform(0.5, 2.0, size=(4, 3)), rng.normal(size=(4, 3))


@pytest.fixture
def dist():
    loc, scale, _ = _params()
    return MVN.from_log_scale(jnp.asarray(loc), jnp.asarray(np.log(scale)))


# -- transformations ----------------------------------------------------------------


def test_value_and_grad_with_respect_to_the_distribution(dist):
    _, _, x = _params()

    def nll(d):
        return -d.log_prob(jnp.asarray(x)).sum()

    value, grad = jax.value_and_grad(nll)(dist)
    loc, ls = np.asarray(dist.loc), np.asarray(dist.log_scale)
    z = (x - loc) / np.exp(ls)
    np.testing.assert_allclose(value, -stats.norm.logpdf(x, loc, np.exp(ls)).sum(), rtol=1e-12)
    assert isinstance(grad, MVN)
    np.testing.assert_allclose(grad.loc, -z / np.exp(ls), rtol=1e-12)
    np.testing.assert_allclose(grad.log_scale, 1 - z**2, rtol=1e-12)


def test_checkpoint(dist):
    _, _, x = _params()
    f = jax.checkpoint(lambda d: d.log_prob(jnp.asarray(x)).sum())
    g_ckpt = jax.grad(f)(dist)
    g_plain = jax.grad(lambda d: d.log_prob(jnp.asarray(x)).sum())(dist)
    np.testing.assert_allclose(g_ckpt.loc, g_plain.loc, rtol=1e-12)
    np.testing.assert_allclose(g_ckpt.log_scale, g_plain.log_scale, rtol=1e-12)


def test_tree_map_and_stop_gradient(dist):
    doubled = jax.tree_util.tree_map(lambda a: 2 * a, dist)
    assert isinstance(doubled, MVN)
    assert doubled.parameterization == "log_scale"
    np.testing.assert_allclose(doubled.loc, 2 * np.asarray(dist.loc))

    def f(loc):
        d = MVN(loc, jnp.ones(3))
        frozen = jax.lax.stop_gradient(d)
        return frozen.log_prob(jnp.zeros(3)).sum() + d.loc.sum()

    g = jax.grad(f)(jnp.ones((2, 3)))
    np.testing.assert_allclose(g, np.ones((2, 3)))  # only the unfrozen term
    frozen = jax.lax.stop_gradient(dist)
    assert isinstance(frozen, MVN)


def test_device_put(dist):
    device = jax.devices()[0]
    moved = jax.device_put(dist, device)
    assert isinstance(moved, MVN)
    assert moved.loc.devices() == {device}
    np.testing.assert_allclose(moved.entropy(), dist.entropy(), rtol=1e-12)


def test_vmap_out_axis_carries_into_batch_shape():
    locs = jnp.arange(12.0).reshape(4, 3)
    made = jax.vmap(lambda lo: MVN.from_variance(lo, jnp.full(3, 4.0)))(locs)
    assert made.batch_shape == (4,)
    assert made.parameterization == "variance"
    np.testing.assert_allclose(made.stddev, np.full((4, 3), 2.0))
    nested = jax.vmap(jax.vmap(lambda lo: MVN(lo[None], jnp.ones(1))))(locs)
    assert nested.batch_shape == (4, 3)


def test_scan_over_a_batch_of_distributions(dist):
    def step(total, d):
        return total + d.entropy(), d.log_prob(jnp.zeros(3))

    total, lps = lax.scan(step, jnp.zeros(()), dist)  # scans over the batch axis
    np.testing.assert_allclose(total, dist.entropy().sum(), rtol=1e-12)
    np.testing.assert_allclose(lps, dist.log_prob(jnp.zeros(3)), rtol=1e-12)


# -- keys and sampling -------------------------------------------------------------------


@pytest.mark.parametrize("make_key", [jax.random.key, jax.random.PRNGKey])
def test_sample_under_jit_with_static_shape(dist, make_key):
    key = make_key(3)
    f = jax.jit(lambda d, k: d.sample((5, 2), seed=k))
    x = f(dist, key)
    assert x.shape == (5, 2, 4, 3)
    eager = dist.sample((5, 2), seed=key)
    np.testing.assert_allclose(x, eager, rtol=1e-14, atol=1e-14)  # XLA fuses an FMA under jit
    g = jax.jit(lambda d, k: d.sample_and_log_prob(7, seed=k))
    x, lp = g(dist, key)
    np.testing.assert_allclose(lp, dist.log_prob(x), rtol=1e-10)


def test_same_key_same_noise_as_jax_random(dist):
    key = jax.random.key(5)
    eps = jax.random.normal(key, (2, 4, 3))
    np.testing.assert_allclose(dist.sample(2, seed=key), dist.reparameterize(eps), rtol=1e-15)


# -- dtypes (a fresh process: the suite runs JAX with x64 on) ---------------------------------


def _run(code, **env):
    return run_python(code, timeout=300, **env)


@pytest.mark.subprocess
def test_float32_by_default_and_bfloat16_accumulates_in_float32():
    out = _run(
        """
        import numpy as np, jax, jax.numpy as jnp
        from scipy import stats
        import diaggauss as dg
        d = dg.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3))
        assert d.dtype == jnp.float32 and d.log_prob(jnp.zeros(3)).dtype == jnp.float32
        assert d.sample(seed=jax.random.key(0)).dtype == jnp.float32
        rng = np.random.default_rng(0)
        loc, scale, x = rng.normal(size=4096), rng.uniform(0.5, 2, 4096), rng.normal(size=4096)
        b = lambda a: jnp.asarray(a, dtype=jnp.bfloat16)
        db = dg.MultivariateNormalDiag(b(loc), b(scale))
        lp = jax.jit(lambda d, v: d.log_prob(v))(db, b(x))
        assert lp.dtype == jnp.bfloat16, lp.dtype
        f64 = lambda a: np.asarray(b(a), dtype=np.float64)
        ref = stats.norm.logpdf(f64(x), f64(loc), f64(scale)).sum()
        assert abs(float(lp) - ref) <= 2**-7 * abs(ref), (float(lp), ref)
        assert db.sample(seed=jax.random.key(1)).dtype == jnp.bfloat16
        print("ok")
        """
    )
    assert out.strip() == "ok"


@pytest.mark.subprocess
def test_sharded_log_prob_keeps_the_sharding_without_gathering():
    out = _run(
        """
        import jax, jax.numpy as jnp
        from jax.sharding import NamedSharding, PartitionSpec as P
        import diaggauss as dg
        assert len(jax.devices()) == 8
        mesh = jax.make_mesh((8,), ("samples",))
        sharded = NamedSharding(mesh, P("samples"))
        x = jax.device_put(jnp.arange(64 * 5 * 3, dtype=jnp.float32).reshape(64, 5, 3), sharded)
        d = dg.MultivariateNormalDiag(jnp.zeros((5, 3)), jnp.ones(3))
        f = jax.jit(lambda d, x: d.log_prob(x))
        out = f(d, x)
        assert out.shape == (64, 5)
        expected = NamedSharding(mesh, P("samples"))
        assert out.sharding.is_equivalent_to(expected, out.ndim), out.sharding
        hlo = f.lower(d, x).compile().as_text()
        assert "all-gather" not in hlo and "all-to-all" not in hlo
        ref = d.log_prob(jnp.asarray(jax.device_get(x)))
        assert jnp.allclose(jax.device_get(out), ref, rtol=1e-6)
        print("ok")
        """,
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
    )
    assert out.strip() == "ok"


# -- the ecosystem: conversions and equivalence --------------------------------------------


def _peers():
    out = {}
    for name, module in (
        ("distrax", "distrax"),
        ("numpyro", "numpyro.distributions"),
        ("tfp", "tensorflow_probability.substrates.jax.distributions"),
    ):
        try:
            out[name] = __import__(module, fromlist=["_"])
        except ImportError:
            continue
    return out


PEERS = _peers()


def _peer(name, loc, scale):
    if name == "distrax":
        return PEERS["distrax"].MultivariateNormalDiag(loc, scale)
    if name == "numpyro":
        return PEERS["numpyro"].Normal(loc, scale).to_event(1)
    return PEERS["tfp"].MultivariateNormalDiag(loc, scale)


@pytest.mark.parametrize("peer", ["distrax", "numpyro", "tfp"])
@pytest.mark.parametrize("jitted", [False, True], ids=["eager", "jit"])
def test_equivalence_with_peer(peer, jitted):
    """Every method against the peer, in the style of distrax's EquivalenceTest."""
    if peer not in PEERS:
        pytest.skip(f"{peer} not installed")
    loc, scale, x = (jnp.asarray(a) for a in _params())
    loc_q, scale_q = loc[::-1], scale[::-1]
    maybe_jit = jax.jit if jitted else (lambda f: f)

    def ours(loc, scale, loc_q, scale_q, x):
        p, q = MVN(loc, scale), MVN(loc_q, scale_q)
        return {
            "log_prob": p.log_prob(x),
            "prob": p.prob(x),
            "entropy": p.entropy(),
            "mean": p.mean,
            "mode": p.mode,
            "stddev": p.stddev,
            "variance": jnp.broadcast_to(p.variance, p.mean.shape),
            "kl": p.kl_divergence(q),
            "cross_entropy": p.cross_entropy(q),
        }

    def theirs(loc, scale, loc_q, scale_q, x):
        p, q = _peer(peer, loc, scale), _peer(peer, loc_q, scale_q)
        if peer == "numpyro":
            from numpyro.distributions.kl import kl_divergence

            kl = kl_divergence(p, q)
            mode = p.mean
            stddev = jnp.sqrt(p.variance)
        else:
            kl = p.kl_divergence(q)
            mode = p.mode()
            stddev = p.stddev()
        mean = p.mean if peer == "numpyro" else p.mean()
        variance = p.variance if peer == "numpyro" else p.variance()
        return {
            "log_prob": p.log_prob(x),
            "prob": jnp.exp(p.log_prob(x)),
            "entropy": p.entropy(),
            "mean": mean,
            "mode": mode,
            "stddev": stddev,
            "variance": variance,
            "kl": kl,
            "cross_entropy": p.entropy() + kl,
        }

    a = maybe_jit(ours)(loc, scale, loc_q, scale_q, x)
    b = maybe_jit(theirs)(loc, scale, loc_q, scale_q, x)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-10, atol=1e-12, err_msg=key)
    if peer in ("distrax", "numpyro"):  # same key, same noise, same sample
        key = jax.random.key(0)
        p = _peer(peer, loc, scale)
        theirs_sample = p.sample(seed=key) if peer == "distrax" else p.sample(key)
        np.testing.assert_allclose(MVN(loc, scale).sample(seed=key), theirs_sample, rtol=1e-12)


@pytest.mark.parametrize("peer", ["distrax", "numpyro", "tfp"])
def test_conversions_round_trip(dist, peer):
    if peer not in PEERS:
        pytest.skip(f"{peer} not installed")
    other = getattr(dist, f"to_{peer}")()
    _, _, x = _params()
    np.testing.assert_allclose(
        other.log_prob(jnp.asarray(x)), dist.log_prob(jnp.asarray(x)), rtol=1e-12
    )
    back = MVN.from_distribution(other)
    assert back.batch_shape == dist.batch_shape
    np.testing.assert_allclose(back.scale, dist.scale, rtol=1e-12)
    np.testing.assert_allclose(jax_backend.from_distribution(other).loc, dist.loc)


def test_from_independent_normal_of_each_peer():
    loc, scale, _ = (jnp.asarray(a) for a in _params())
    candidates = []
    if "distrax" in PEERS:
        candidates.append(PEERS["distrax"].Independent(PEERS["distrax"].Normal(loc, scale), 1))
    if "tfp" in PEERS:
        candidates.append(PEERS["tfp"].Independent(PEERS["tfp"].Normal(loc, scale), 1))
    for c in candidates:
        np.testing.assert_allclose(MVN.from_distribution(c).scale, scale)
    if "numpyro" in PEERS:
        with pytest.raises(TypeError, match="from_distribution accepts"):
            jax_backend.from_distribution(PEERS["numpyro"].Normal(loc, scale))  # no event axis


def test_from_distribution_torch_and_scipy():
    torch = pytest.importorskip("torch")
    from torch.distributions import Independent, Normal

    d = MVN.from_distribution(Independent(Normal(torch.zeros(5, 2), torch.ones(5, 2)), 1))
    assert d.batch_shape == (5,)
    assert isinstance(d.loc, torch.Tensor)
    frozen = stats.multivariate_normal(np.zeros(2), np.diag([1.0, 4.0]))
    np.testing.assert_allclose(MVN.from_distribution(frozen).scale, [1.0, 2.0])
    with pytest.raises(ValueError, match="not diagonal"):
        MVN.from_distribution(stats.multivariate_normal(np.zeros(2), [[1.0, 0.5], [0.5, 1.0]]))
    with pytest.raises(TypeError, match="does not know"):
        MVN.from_distribution(object())


# -- numpyro sample sites ------------------------------------------------------------------


@pytest.mark.slow
def test_numpyro_adapter_under_nuts():
    numpyro = pytest.importorskip("numpyro")
    from numpyro.infer import MCMC, NUTS

    from diaggauss.backends.jax import NumpyroMultivariateNormalDiag as NMVN

    data = jax.random.normal(jax.random.key(1), (200, 3)) + jnp.array([1.0, -2.0, 0.5])

    def model(data):
        mu = numpyro.sample("mu", NMVN(jnp.zeros(3), 10 * jnp.ones(3)))
        with numpyro.plate("n", data.shape[0]):
            numpyro.sample("x", NMVN(mu, jnp.ones(3)), obs=data)

    mcmc = MCMC(NUTS(model), num_warmup=150, num_samples=150, progress_bar=False)
    mcmc.run(jax.random.key(0), data)
    posterior_mean = np.asarray(data.sum(0) / (data.shape[0] + 0.01))
    np.testing.assert_allclose(mcmc.get_samples()["mu"].mean(0), posterior_mean, atol=0.05)


def test_numpyro_adapter_protocol():
    pytest.importorskip("numpyro")
    from numpyro.distributions.kl import kl_divergence

    from diaggauss.backends.jax import NumpyroMultivariateNormalDiag as NMVN

    loc, scale, x = (jnp.asarray(a) for a in _params())
    d = NMVN(loc, scale)
    assert d.batch_shape == (4,)
    assert d.event_shape == (3,)
    np.testing.assert_allclose(d.log_prob(x), stats.norm.logpdf(x, loc, scale).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(d.variance, np.asarray(scale) ** 2, rtol=1e-12)
    flat, tree = jax.tree_util.tree_flatten(d)
    assert len(flat) == 2
    back = jax.tree_util.tree_unflatten(tree, flat)
    np.testing.assert_allclose(back.log_prob(x), d.log_prob(x))
    q = NMVN(loc[::-1], scale[::-1])
    np.testing.assert_allclose(
        kl_divergence(d, q), MVN(loc, scale).kl_divergence(MVN(loc[::-1], scale[::-1])), rtol=1e-12
    )
    np.testing.assert_allclose(
        kl_divergence(d, MVN(loc[::-1], scale[::-1]).to_numpyro()), kl_divergence(d, q), rtol=1e-12
    )
    assert NMVN.from_log_scale(loc, jnp.log(scale)).log_prob(x).shape == (4,)


def test_everything_runs_under_rank_promotion_raise():
    """No operation relies on rank promotion: JAX's ``numpy_rank_promotion("raise")`` holds."""
    key = jax.random.key(0)
    d = MVN(jnp.zeros((5, 3)), jnp.ones(3))
    dl = MVN.from_log_scale(jnp.zeros((5, 3)), jnp.full((5, 3), 0.2))
    dv = MVN.from_variance(jnp.zeros((5, 3)), jnp.full(3, 2.0))
    q = MVN(jnp.ones(3), 2 * jnp.ones(3))
    x = jnp.ones((4, 5, 3))
    comps = MVN(jnp.zeros((2, 3)), jnp.ones((2, 3)))
    mix = dg.MixtureDiag(jnp.zeros(2), jnp.zeros((2, 3)), jnp.ones((2, 3)))
    pts = jax.random.normal(key, (50, 3))
    cases = {
        "log_prob": lambda: [m.log_prob(x) for m in (d, dl, dv)],
        "log_prob of one point": lambda: d.log_prob(jnp.ones(3)),
        "sample_and_log_prob": lambda: d.sample_and_log_prob((2,), seed=key),
        "sample": lambda: d.sample((2,), seed=key),
        "mahalanobis": lambda: d.mahalanobis(x),
        "log_cdf": lambda: dl.log_cdf(x),
        "entropy": lambda: dv.entropy(),
        "kl": lambda: [d.kl_divergence(q), q.kl_divergence(dl), dv.kl_divergence(d)],
        "cross_entropy": lambda: d.cross_entropy(q),
        "wasserstein2": lambda: d.wasserstein2(q),
        "reparameterize": lambda: d.reparameterize(x),
        "covariance": lambda: d.covariance(),
        "expand": lambda: d.expand((2, 5)).log_prob(x[:, None]),
        "pairwise": lambda: [
            dg.pairwise_log_prob(jnp.ones((4, 3)), comps),
            dg.pairwise_mahalanobis(jnp.ones((4, 3)), comps),
            dg.pairwise_kl_divergence(comps, comps),
            dg.pairwise_wasserstein2(comps, comps),
        ],
        "mixture": lambda: [
            mix.log_prob(jnp.ones((4, 3))),
            mix.responsibilities(jnp.ones((4, 3))),
            mix.sample((3,), seed=key),
            mix.mean,
            mix.variance,
        ],
        "fit": lambda: dg.fit(pts),
        "fit_mixture": lambda: dg.fit_mixture(pts, 2, seed=0, max_iter=3),
        "functional": lambda: [
            dg.log_prob(x, jnp.zeros(3), jnp.ones(3)),
            dg.kl_divergence(jnp.zeros((5, 3)), jnp.ones(3), jnp.zeros(3), jnp.ones(3)),
        ],
        "jit": lambda: jax.jit(lambda d, x: d.log_prob(x))(d, x),
    }
    allowed = {name: jax.tree_util.tree_leaves(f()) for name, f in cases.items()}
    with jax.numpy_rank_promotion("raise"):
        for name, f in cases.items():
            got = jax.tree_util.tree_leaves(f())
            for a, b in zip(got, allowed[name], strict=True):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, err_msg=name)


def test_constants_closed_over_by_jit_build_and_score():
    """Parameters that are concrete arrays captured by a jitted function: nothing is read.

    Inside the trace even a reduction of a constant is a tracer, so validation
    must not try to read it (it raised TracerBoolConversionError).
    """
    loc, scale = jnp.zeros(8), jnp.ones(8)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 8)))
    want = -0.5 * np.sum(np.asarray(x) ** 2, -1) - 4 * np.log(2 * np.pi)
    got = jax.jit(lambda x: dg.MultivariateNormalDiag(loc, scale).log_prob(x))(x)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    logits, mloc, mscale = jnp.zeros(3), jnp.zeros((3, 8)), jnp.ones((3, 8))
    resp = jax.jit(lambda x: dg.MixtureDiag(logits, mloc, mscale).responsibilities(x))(x)
    np.testing.assert_allclose(resp, np.full((4, 3), 1 / 3), rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda x: dg.log_prob(x, loc, scale))(x), want, rtol=1e-6)
