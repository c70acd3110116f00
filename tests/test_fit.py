"""fit and fit_mixture: closed forms, scikit-learn as the oracle, float32 far from 0."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import asarray, assert_close, to_numpy

import diaggauss as dg

special = pytest.importorskip("scipy.special")
stats = pytest.importorskip("scipy.stats")


def blobs(rng, centres, n=200, spread=1.0, dtype=np.float64):
    return np.concatenate([rng.normal(c, spread, size=(n, len(c))) for c in centres]).astype(dtype)


def mean_loglik(mix, x):
    return float(np.mean(to_numpy(mix.log_prob(x))))


# -- fit -------------------------------------------------------------------------


def test_fit_matches_closed_forms(xp, rng):
    x = rng.normal(size=(2, 50, 3)) * 2 + 5
    w = rng.uniform(0, 2, size=(2, 50))
    d = dg.fit(asarray(xp, x))
    assert d.batch_shape == (2,)
    assert_close(d.loc, x.mean(1), xp=xp, rtol=1e-12)
    assert_close(d.scale, x.std(1), xp=xp, rtol=1e-12)
    dw = dg.fit(asarray(xp, x), asarray(xp, w))
    mean = (w[..., None] * x).sum(1) / w.sum(1)[:, None]
    var = (w[..., None] * (x - mean[:, None]) ** 2).sum(1) / w.sum(1)[:, None]
    assert_close(dw.loc, mean, xp=xp, rtol=1e-12)
    assert_close(dw.scale, np.sqrt(var), xp=xp, rtol=1e-12)


def test_fit_float32_far_from_origin():
    x = (np.random.default_rng(0).normal(size=(1000, 2)) * 1e-2 + 1e4).astype(np.float32)
    d = dg.fit(x)
    ref = x.astype(np.float64).std(0)
    np.testing.assert_allclose(d.scale, ref, rtol=1e-3)


def test_fit_zero_variance_and_min_scale():
    x = np.array([[1.0, 2.0], [1.0, 3.0]])
    with pytest.raises(ValueError, match=r"zero variance along dims \[0\].*min_scale"):
        dg.fit(x)
    d = dg.fit(x, min_scale=1e-3)
    np.testing.assert_allclose(d.scale, [1e-3, 0.5])
    with pytest.raises(ValueError, match="weights must have shape"):
        dg.fit(x, np.ones(3))
    with pytest.raises(ValueError, match="weights must be non-negative"):
        dg.fit(x, np.array([1.0, -1.0]), min_scale=1e-3)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., N, d\)"):
        dg.fit(np.ones(3))


# -- fit_mixture ------------------------------------------------------------------


@pytest.fixture
def three_blobs(rng):
    centres = np.array([[-8.0, 0.0], [8.0, 1.0], [0.0, 9.0]])
    return blobs(rng, centres, n=150), centres


def test_agrees_with_scikit_learn(three_blobs):
    sklearn = pytest.importorskip("sklearn.mixture")
    x, centres = three_blobs
    mix, info = dg.fit_mixture(x, 3, seed=0, return_info=True)
    gm = sklearn.GaussianMixture(3, covariance_type="diag", random_state=0).fit(x)
    assert info.log_likelihood >= gm.score(x) - 1e-3
    assert info.converged
    assert abs(info.log_likelihood - mean_loglik(mix, x)) < 1e-12
    found = np.sort(mix.loc[:, 0])
    np.testing.assert_allclose(found, np.sort(centres[:, 0]), atol=0.3)
    np.testing.assert_allclose(np.sort(mix.weights), [1 / 3] * 3, atol=1e-6)


def test_harder_data_matches_scikit_learn(rng):
    sklearn = pytest.importorskip("sklearn.mixture")
    x = np.concatenate(
        [rng.normal(0, 1, (300, 4)), rng.normal(1.5, 0.5, (200, 4)), rng.standard_t(3, (100, 4))]
    )
    for k in (2, 4):
        mix = dg.fit_mixture(x, k, seed=1, n_init=3, tol=1e-6, max_iter=500)
        gm = sklearn.GaussianMixture(
            k, covariance_type="diag", random_state=1, n_init=3, tol=1e-6, max_iter=500
        ).fit(x)
        assert mean_loglik(mix, x) >= gm.score(x) - 1e-3


def test_kmeans_init_recovers_well_separated_blobs_for_every_seed(three_blobs):
    """Plain k-means++ seeding puts two seeds in one blob now and then; Lloyd fixes it."""
    x, centres = three_blobs
    for seed in range(40):
        mix = dg.fit_mixture(x, 3, seed=seed, max_iter=20)
        found = np.sort(mix.loc[:, 0])
        np.testing.assert_allclose(found, np.sort(centres[:, 0]), atol=0.3, err_msg=f"seed {seed}")


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e20, 1e30])
def test_kmeans_init_at_any_float64_scale(three_blobs, scale):
    """k-means runs in float32 on float64 data, scaled first: no square overflows or vanishes."""
    x, centres = three_blobs
    for seed in range(5):
        mix = dg.fit_mixture(x * scale, 3, seed=seed, max_iter=20, reg_covar=0.0)
        found = np.sort(mix.loc[:, 0]) / scale
        np.testing.assert_allclose(found, np.sort(centres[:, 0]), atol=0.3, err_msg=f"seed {seed}")


def test_kmeans_restarts_side_by_side_match_one_at_a_time(rng):
    """The batched k-means++ draw and Lloyd runs equal each run done alone (a loop reference)."""
    import array_api_compat.numpy as xp

    from diaggauss import _kmeans
    from diaggauss._gaps import gaps_for

    x = rng.normal(size=(300, 4)) + 6.0 * rng.integers(0, 4, size=(300, 1))
    x = x - x.mean(0)
    xsq, w = (x * x).sum(1), rng.uniform(0.5, 2.0, size=300)
    seeds = _kmeans.kmeans_plusplus(x, xsq, w, 4, gaps_for(xp).random_stream(3), xp, runs=3)
    assert seeds.shape == (3, 4)
    assert all(len(set(row)) == 4 for row in seeds.tolist())
    centres, labels, inertia = _kmeans.lloyd(x, xsq, w, x[seeds], xp, 100)
    for r in range(3):
        one = _kmeans.lloyd(x, xsq, w, x[seeds[r]][None], xp, 100)[2]
        # each run alone stops no later than the runs together: from the joint stop on
        # it only refines, so its labels are those of a Lloyd fixed point or near it
        d2 = ((x[:, None, :] - centres[r][None]) ** 2).sum(-1)
        np.testing.assert_array_equal(labels[:, r], d2.argmin(1))
        assert inertia[r] <= one[0] * (1 + 1e-12) + 1e-9
        np.testing.assert_allclose(inertia[r], (w * d2.min(1)).sum(), rtol=1e-9)


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data"])
def test_inits_and_determinism(three_blobs, init):
    x, _ = three_blobs
    a, ia = dg.fit_mixture(x, 3, init=init, seed=5, return_info=True)
    b, ib = dg.fit_mixture(x, 3, init=init, seed=5, return_info=True)
    np.testing.assert_array_equal(a.loc, b.loc)
    assert ia == ib
    assert dict(ia)["n_iter"] == ia.n_iter >= 1
    assert ia["log_likelihood"] == ia.log_likelihood


def test_sample_weights_equal_repetition(rng):
    x = blobs(rng, [[-3.0, 0.0], [3.0, 0.0]], n=60)
    counts = rng.integers(1, 4, size=x.shape[0])
    repeated = np.repeat(x, counts, axis=0)
    a = dg.fit_mixture(x, 2, seed=0, weights=counts.astype(float), tol=1e-10, max_iter=300)
    b = dg.fit_mixture(repeated, 2, seed=0, tol=1e-10, max_iter=300)
    order_a, order_b = np.argsort(a.loc[:, 0]), np.argsort(b.loc[:, 0])
    np.testing.assert_allclose(a.loc[order_a], b.loc[order_b], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(a.scale[order_a], b.scale[order_b], rtol=1e-6)


def test_float32_tight_clusters_far_from_origin(rng):
    """E[x^2] - m^2 in float32 at offset 1e4 with spreads of 1e-3 goes negative; ours does not."""
    centres = np.array([[1e4, 1e4], [1e4 + 5.0, 1e4 - 5.0], [1e4 - 5.0, 1e4 + 5.0]])
    x32 = blobs(rng, centres, n=200, spread=1e-3).astype(np.float32)
    m64 = dg.fit_mixture(x32.astype(np.float64), 3, seed=0, reg_covar=0.0)
    m32 = dg.fit_mixture(x32, 3, seed=0, reg_covar=0.0)
    o32, o64 = np.argsort(m32.loc[:, 0]), np.argsort(m64.loc[:, 0])
    v32, v64 = (m32.scale**2)[o32], (m64.scale**2)[o64]
    assert np.all(v64 > 0)
    assert np.all(v32 > 0)
    np.testing.assert_allclose(v32, v64, rtol=0.05)
    # the uncentred expansion, at the same responsibilities, cannot resolve them
    r = m64.responsibilities(x32.astype(np.float64)).astype(np.float32)[:, o64]
    nk = r.sum(0)
    mean = (r.T @ x32) / nk[:, None]
    naive = (r.T @ (x32 * x32)) / nk[:, None] - mean * mean
    assert np.any(naive <= 0) or np.max(np.abs(naive - v64) / v64) > 1.0


def test_fit_mixture_on_every_backend(xp, backend, three_blobs):
    x, centres = three_blobs
    seed = 0
    if str(backend) == "jax":
        import jax

        seed = jax.random.key(0)
    mix, info = dg.fit_mixture(asarray(xp, x), 3, seed=seed, return_info=True)
    assert info.converged
    loc = to_numpy(mix.loc)
    np.testing.assert_allclose(np.sort(loc[:, 0]), np.sort(centres[:, 0]), atol=0.3)
    ref = dg.fit_mixture(x, 3, seed=0, return_info=True)[1]
    assert abs(info.log_likelihood - ref.log_likelihood) < 1e-6
    assert_close(mix.weights, np.full(3, 1 / 3), xp=xp, rtol=1e-6)


def test_fit_mixture_errors(three_blobs):
    x, _ = three_blobs
    with pytest.raises(ValueError, match="k must be an int between 1"):
        dg.fit_mixture(x, 0)
    with pytest.raises(ValueError, match="init must be one of"):
        dg.fit_mixture(x, 2, init="kmeans||")
    with pytest.raises(ValueError, match=r"n_init must be >= 1 and finite; got 0"):
        dg.fit_mixture(x, 2, n_init=0)
    with pytest.raises(ValueError, match=r"reg_covar must be >= 0 and finite; got -1\.0"):
        dg.fit_mixture(x, 2, reg_covar=-1.0)
    with pytest.raises(ValueError, match="reg_covar must be >= 0 and finite; got inf"):
        dg.fit_mixture(x, 2, reg_covar=np.inf)
    with pytest.raises(TypeError, match="tol must be a real number; got None"):
        dg.fit_mixture(x, 2, tol=None)
    with pytest.raises(TypeError, match="min_scale must be a real number; got 'a'"):
        dg.fit(x, min_scale="a")
    with pytest.raises(TypeError, match="min_scale must be a real number"):
        dg.fit(x, min_scale=np.ones(2))
    with pytest.raises(ValueError, match=r"k must be an int between 1 and the number of points"):
        dg.fit_mixture(x[:3], 4)
    with pytest.raises(ValueError, match=r"means_init must have shape \(2, 2\); got \(3, 2\)"):
        dg.fit_mixture(x, 2, means_init=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="precisions_init must be positive and finite"):
        dg.fit_mixture(x, 2, precisions_init=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        dg.fit_mixture(x[None], 2)
    with pytest.raises(dg.SeedError):
        dg.fit_mixture(x, 2, seed="zero")


def test_non_finite_data_is_named():
    x = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match=r"x must be finite; got nan at index \(1, 0\)"):
        dg.fit(x)
    with pytest.raises(ValueError, match="x must be finite"):
        dg.fit_mixture(x, 2)


# -- issue 12: fit statistics far from the origin and over many points, in float32 ------------


@pytest.mark.parametrize("weighted", [False, True])
def test_fit_float32_within_1e5_of_float64(xp, rng, weighted):
    """1e4 standard deviations from the origin; the float64 NumPy answer is the reference."""
    for n, offset in ((1000, 1e4), (300_001, 1e4), (1_000_000, 3.0)):
        x = (offset + 0.01 * rng.normal(size=(n, 3))).astype(np.float32)
        if offset == 3.0:
            x = (rng.normal(size=(n, 3)) * 2 + offset).astype(np.float32)
        w = rng.uniform(0.5, 2, size=n).astype(np.float32) if weighted else None
        x64 = x.astype(np.float64)
        w64 = np.ones(n) if w is None else w.astype(np.float64)
        mean = (w64[:, None] * x64).sum(0) / w64.sum()
        sd = np.sqrt((w64[:, None] * (x64 - mean) ** 2).sum(0) / w64.sum())
        d = dg.fit(asarray(xp, x), None if w is None else asarray(xp, w))
        np.testing.assert_allclose(to_numpy(d.loc), mean, rtol=1e-6, err_msg=f"{n}, {offset}")
        np.testing.assert_allclose(to_numpy(d.scale), sd, rtol=1e-5, err_msg=f"{n}, {offset}")


def test_m_step_statistics_float32_within_1e5_of_float64(rng):
    """The M-step's sums over 1e6 float32 rows far from the origin keep 1e-5 of float64's."""
    from diaggauss import _em
    from diaggauss._namespace import numpy_namespace

    xp = numpy_namespace()
    n = 1_000_000
    x = np.concatenate([rng.normal(0, 1, (n // 2, 4)), rng.normal(6, 2, (n // 2, 4))]) + 1e4
    x32 = x.astype(np.float32)
    resp = rng.dirichlet([1.0, 1.0], size=n)
    x64 = x32.astype(np.float64)
    nk = resp.sum(0)
    mean = resp.T @ x64 / nk[:, None]
    var = np.stack([(resp[:, k, None] * (x64 - mean[k]) ** 2).sum(0) for k in range(2)])
    var = var / nk[:, None]
    center = x32.mean(0, keepdims=True)
    xa, _ = _em.design(x32, center, xp=xp)
    w = np.ones(n, np.float32)
    logits, mc, v = _em.m_step(xa, w, resp.astype(np.float32), 0.0, xp=xp)
    np.testing.assert_allclose(np.exp(logits), nk / n, rtol=1e-5)
    np.testing.assert_allclose(mc + center, mean, rtol=1e-6)
    np.testing.assert_allclose(v, var, rtol=1e-5)


def test_em_step_float32_within_1e5_of_float64(xp, backend, rng):
    """One E- and M-step over 1e6 float32 rows at 1e4: every statistic within 1e-5 of float64."""
    from diaggauss import _em

    n = 1_000_000
    x = np.concatenate([rng.normal(0, 1, (n // 2, 4)), rng.normal(6, 2, (n // 2, 4))]) + 1e4
    x32 = x.astype(np.float32)
    loc, var = np.array([[1e4] * 4, [1e4 + 6] * 4]), np.array([[1.0] * 4, [4.0] * 4])
    x64 = x32.astype(np.float64)
    joint = -0.5 * (((x64[:, None, :] - loc) ** 2) / var + np.log(2 * np.pi * var)).sum(-1)
    norm = special.logsumexp(joint + np.log(0.5), axis=1, keepdims=True)
    resp = np.exp(joint + np.log(0.5) - norm)
    nk = resp.sum(0)
    mean = resp.T @ x64 / nk[:, None]
    want_var = np.stack([(resp[:, k, None] * (x64 - mean[k]) ** 2).sum(0) for k in range(2)])
    want_var = want_var / nk[:, None]
    xj = asarray(xp, x32)
    center = xp.mean(xj, axis=0, keepdims=True)
    xa, reach = _em.design(xj, center, xp=xp)
    c = to_numpy(center)
    ll, logits, mc, v = _em.em_step(
        xa,
        asarray(xp, np.ones(n, np.float32)),
        asarray(xp, np.log([0.5, 0.5]).astype(np.float32)),
        asarray(xp, (loc - c).astype(np.float32)),
        asarray(xp, var.astype(np.float32)),
        0.0,
        reach=reach,
        xp=xp,
    )
    np.testing.assert_allclose(to_numpy(ll), norm.mean(), rtol=1e-6)
    np.testing.assert_allclose(np.exp(to_numpy(logits)), nk / n, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(mc) + c, mean, rtol=1e-7)
    np.testing.assert_allclose(to_numpy(v), want_var, rtol=1e-5)


# -- issue 13: starts, max_iter=0, edge cases ------------------------------------------------


def test_user_start_and_max_iter_zero(three_blobs):
    x, centres = three_blobs
    means = centres + 0.5
    mix, info = dg.fit_mixture(x, 3, init=means, max_iter=0, return_info=True)  # an array init
    assert info.n_iter == 0
    assert not info.converged
    assert info.history == ()
    # the start: k-means weights and variances, the given means
    np.testing.assert_allclose(mix.loc, means)
    start = dg.MixtureDiag.from_variance(np.log([0.2, 0.3, 0.5]), means, np.full((3, 2), 2.0))
    same = dg.fit_mixture(x, 3, init=start, max_iter=0)
    np.testing.assert_allclose(same.weights, [0.2, 0.3, 0.5])
    np.testing.assert_allclose(same.components.variance, np.full((3, 2), 2.0))
    prec = dg.fit_mixture(x, 3, precisions_init=np.full((3, 2), 0.25), max_iter=0)
    np.testing.assert_allclose(prec.components.variance, np.full((3, 2), 4.0))
    fitted = dg.fit_mixture(x, 3, init=start, tol=1e-8)
    np.testing.assert_allclose(np.sort(fitted.loc[:, 0]), np.sort(centres[:, 0]), atol=0.3)


def _float64_em(x, logits, loc, var, reg, iters):
    """A float64 NumPy EM written out directly: the reference."""
    for _ in range(iters):
        lp = -0.5 * (((x[:, None, :] - loc) ** 2) / var + np.log(2 * np.pi * var)).sum(-1)
        joint = lp + logits - special.logsumexp(logits)
        resp = np.exp(joint - special.logsumexp(joint, axis=1, keepdims=True))
        nk = resp.sum(0) + 10 * np.finfo(float).eps
        loc = resp.T @ x / nk[:, None]
        var = np.stack([(resp[:, k, None] * (x - loc[k]) ** 2).sum(0) for k in range(len(nk))])
        var = var / nk[:, None] + reg
        logits = np.log(nk / nk.sum())
    return logits, loc, var


def test_em_iterations_match_a_float64_reference(xp, backend, rng):
    x = np.concatenate([rng.normal(-2, 1, (300, 3)), rng.normal(2, 0.5, (200, 3))])
    start = dg.MixtureDiag.from_variance(np.log([0.5, 0.5]), x[[0, -1]], np.ones((2, 3)))
    mix = dg.fit_mixture(asarray(xp, x), 2, init=start, max_iter=7, tol=0.0)
    logits, loc, var = _float64_em(x, np.log([0.5, 0.5]), x[[0, -1]], np.ones((2, 3)), 1e-6, 7)
    assert_close(mix.loc, loc, xp=xp, rtol=1e-9, atol=1e-12)
    assert_close(mix.components.variance, var, xp=xp, rtol=1e-9)
    assert_close(mix.logits, logits, xp=xp, rtol=1e-9, atol=1e-12)


def test_edge_cases_give_results_or_named_errors(rng):
    x = rng.normal(size=(50, 3))
    # duplicate points: every variance at the floor, nothing NaN
    dup = np.repeat(x[:2], 25, axis=0)
    mix = dg.fit_mixture(dup, 3, seed=0)
    assert np.all(np.isfinite(mix.loc))
    assert np.all(mix.components.variance >= 1e-6)
    with pytest.raises(ValueError, match=r"reg_covar=0 leaves components .* zero variance"):
        dg.fit_mixture(dup, 2, seed=0, reg_covar=0.0)
    # a constant column stays at the floor; the others fit
    const = x.copy()
    const[:, 1] = 3.0
    mix = dg.fit_mixture(const, 2, seed=0)
    np.testing.assert_allclose(mix.components.variance[:, 1], 1e-6, rtol=1e-6)
    np.testing.assert_allclose(mix.loc[:, 1], 3.0)
    # a component switched off by a -inf logit (zero weight) stays finite
    start = dg.MixtureDiag.from_variance(np.array([0.0, -np.inf]), x[:2], np.ones((2, 3)))
    mix = dg.fit_mixture(x, 2, init=start)
    assert np.all(np.isfinite(mix.loc))
    assert np.all(np.isfinite(mix.components.variance))
    assert mix.weights[1] < 1e-10
    # a component collapsing onto one far point: its variance is the floor, to 1e-3
    out = np.concatenate([x, [[50.0, 50.0, 50.0]]])
    mix = dg.fit_mixture(out, 2, seed=0)
    lone = int(np.argmin(mix.weights))
    np.testing.assert_allclose(mix.components.variance[lone], 1e-6, rtol=1e-3)
    np.testing.assert_allclose(mix.loc[lone], 50.0)
    # K == N: each point its own component, variance at the floor
    mix = dg.fit_mixture(x[:4], 4, seed=0)
    assert np.all(np.isfinite(mix.logits))


def test_digits_like_constant_columns_never_take_the_exact_path(monkeypatch, rng):
    """8-bit data with constant columns: the variance floor hides the rounding, no fallback."""
    from diaggauss import _em

    x = np.floor(rng.uniform(0, 17, size=(600, 16)) * (rng.uniform(size=(600, 16)) > 0.6))
    x[:, :3] = 0.0
    x[:, 3] = 7.0
    calls = []
    real = _em._exact_variance
    monkeypatch.setattr(_em, "_exact_variance", lambda *a: calls.append(1) or real(*a))
    dg.fit_mixture(x, 6, seed=0)
    assert calls == []
