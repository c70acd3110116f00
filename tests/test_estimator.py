"""GaussianMixtureDiag: scikit-learn's GaussianMixture(covariance_type="diag") as the oracle."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from helpers import asarray, to_numpy

import diaggauss as dg

sklearn_mixture = pytest.importorskip("sklearn.mixture")


def _blobs(rng, n=200):
    centres = np.array([[-6.0, 0.0, 1.0], [6.0, 1.0, -1.0], [0.0, 7.0, 0.0]])
    return np.concatenate([rng.normal(c, [1.0, 0.5, 2.0], size=(n, 3)) for c in centres])


def _start(x, k, rng):
    idx = rng.choice(len(x), k, replace=False)
    return np.full(k, 1.0 / k), x[idx] + 0.1, np.full((k, x.shape[1]), 0.5)


def test_import_does_not_load_scikit_learn():
    code = "import sys, diaggauss; print('sklearn' in sys.modules or 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_passes_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(dg.GaussianMixtureDiag(2, random_state=0), on_fail=None)
    bad = {r["check_name"]: str(r["exception"]) for r in results if r["status"] == "failed"}
    assert bad == {}
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= set(dg.GaussianMixtureDiag.SKIPPED_CHECKS)
    assert len(results) > 30


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_start_same_fit_as_scikit_learn(rng, dtype):
    x = _blobs(rng).astype(dtype)
    w0, m0, p0 = _start(x, 3, rng)
    kw = {"weights_init": w0, "means_init": m0, "precisions_init": p0, "max_iter": 30, "tol": 1e-6}
    ours = dg.GaussianMixtureDiag(3, **kw).fit(x)
    theirs = sklearn_mixture.GaussianMixture(3, covariance_type="diag", **kw).fit(x)
    rtol = 1e-8 if dtype == np.float64 else 2e-4
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.converged_ == theirs.converged_
    np.testing.assert_allclose(ours.weights_, theirs.weights_, rtol=rtol)
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=rtol)
    np.testing.assert_allclose(ours.precisions_, theirs.precisions_, rtol=rtol)
    np.testing.assert_allclose(ours.precisions_cholesky_, theirs.precisions_cholesky_, rtol=rtol)
    np.testing.assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=rtol)
    y = _blobs(np.random.default_rng(9), n=20).astype(dtype)
    np.testing.assert_allclose(ours.score_samples(y), theirs.score_samples(y), rtol=10 * rtol)
    np.testing.assert_allclose(ours.predict_proba(y), theirs.predict_proba(y), atol=10 * rtol)
    np.testing.assert_array_equal(ours.predict(y), theirs.predict(y))
    np.testing.assert_allclose(ours.score(y), theirs.score(y), rtol=10 * rtol)
    np.testing.assert_allclose(ours.bic(y), theirs.bic(y), rtol=10 * rtol)
    np.testing.assert_allclose(ours.aic(y), theirs.aic(y), rtol=10 * rtol)
    np.testing.assert_array_equal(ours.fit_predict(x), theirs.fit_predict(x))


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_init_finds_the_blobs(rng, init_params):
    # a tight tol: from "random" starts EM sits near the symmetric point for a while
    x = _blobs(rng)
    kw = {"init_params": init_params, "n_init": 3, "random_state": 0, "tol": 1e-8, "max_iter": 500}
    gm = dg.GaussianMixtureDiag(3, **kw).fit(x)
    sk = sklearn_mixture.GaussianMixture(3, covariance_type="diag", **kw).fit(x)
    assert gm.score(x) >= sk.score(x) - 1e-3
    np.testing.assert_allclose(np.sort(gm.means_[:, 0]), [-6.0, 0.0, 6.0], atol=0.3)


def test_max_iter_zero_is_the_start_and_warm_start_continues(rng):
    x = _blobs(rng)
    w0, m0, p0 = _start(x, 3, rng)
    gm = dg.GaussianMixtureDiag(
        3, max_iter=0, weights_init=w0, means_init=m0, precisions_init=p0
    ).fit(x)
    np.testing.assert_allclose(gm.means_, m0)
    np.testing.assert_allclose(gm.precisions_, p0)
    assert gm.n_iter_ == 0
    assert not gm.converged_
    gm.set_params(max_iter=2, warm_start=True)
    with pytest.warns(Warning, match="did not converge"):
        gm.fit(x)
    first = gm.lower_bound_
    gm.fit(x)
    assert gm.lower_bound_ >= first
    # warm start runs on from where it stopped: the same as one longer cold run
    cold = dg.GaussianMixtureDiag(
        3, max_iter=4, weights_init=w0, means_init=m0, precisions_init=p0, tol=0.0
    )
    with pytest.warns(Warning, match="did not converge"):
        cold.fit(x)
    np.testing.assert_allclose(gm.means_, cold.means_, rtol=1e-10)


def test_params_clone_and_repr():
    from sklearn.base import clone

    gm = dg.GaussianMixtureDiag(4, tol=1e-4, init_params="random")
    assert gm.get_params()["tol"] == 1e-4
    twin = clone(gm)
    assert twin.get_params() == gm.get_params()
    assert repr(gm) == "GaussianMixtureDiag(init_params='random', n_components=4, tol=0.0001)"
    with pytest.raises(ValueError, match="Invalid parameter 'k'"):
        gm.set_params(k=3)


def test_errors_name_the_argument(rng):
    x = _blobs(rng, n=3)
    with pytest.raises(ValueError, match=r"n_samples >= n_components: X has 9 samples"):
        dg.GaussianMixtureDiag(10).fit(x)
    with pytest.raises(ValueError, match="init_params must be one of"):
        dg.GaussianMixtureDiag(2, init_params="kmeans||").fit(x)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(
        ValueError, match=r"X must be finite \(no NaN or inf\); got nan at index \(0, 0\)"
    ):
        dg.GaussianMixtureDiag(2).fit(bad)
    with pytest.raises(ValueError, match=r"reg_covar must be >= 0 and finite; got -1"):
        dg.GaussianMixtureDiag(2, reg_covar=-1.0).fit(x)
    gm = dg.GaussianMixtureDiag(2, random_state=0).fit(x)
    with pytest.raises(ValueError, match="X has 2 features, but GaussianMixtureDiag is expecting"):
        gm.predict(x[:, :2])
    with pytest.raises(AttributeError, match="not fitted yet"):
        dg.GaussianMixtureDiag(2).predict(x)
    with pytest.raises(ValueError, match="NaN or infinity"):
        gm.predict(bad)


def test_every_backend_returns_its_own_arrays(xp, backend, rng):
    x = _blobs(rng)
    seed = 0
    if str(backend) == "jax":
        import jax

        seed = jax.random.key(0)
    gm = dg.GaussianMixtureDiag(3, random_state=seed).fit(asarray(xp, x))
    ref = dg.GaussianMixtureDiag(3, random_state=0).fit(x)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        value = getattr(gm, name)
        assert type(value) is type(asarray(xp, x)), name
    np.testing.assert_allclose(np.sort(to_numpy(gm.means_)[:, 0]), [-6.0, 0.0, 6.0], atol=0.3)
    assert abs(gm.score(asarray(xp, x)) - ref.score(x)) < 1e-6
    labels = gm.predict(asarray(xp, x))
    assert type(labels) is type(asarray(xp, x))
    sample, comps = gm.sample(50)
    assert tuple(sample.shape) == (50, 3)
    assert tuple(comps.shape) == (50,)


def _standardised(name):
    datasets = pytest.importorskip("sklearn.datasets")
    x = getattr(datasets, f"load_{name}")().data
    return x if name == "digits" else (x - x.mean(0)) / x.std(0)


# digits' held-out log-likelihood turns on a few test pixels outside every component's
# support (one such point moves a fit's mean by 1100 nats), so five seeds are a coin
# toss there (seeds 0-4: -3361.0 against -3356.6; train -20.47 against -20.45); sixty
# measure the distribution (at three splits ours is higher on train and held out)
SEEDS = {"digits": 60}


@pytest.mark.parametrize(
    ("name", "k"), [("digits", 10), ("iris", 3), ("wine", 3), ("breast_cancer", 2)]
)
def test_quality_at_least_scikit_learns(name, k):
    """Median over 5 seeds (digits: 60) of the final log-likelihood, on train and held out."""
    from sklearn.model_selection import train_test_split

    x = _standardised(name)
    train, test = train_test_split(x, test_size=0.25, random_state=0)
    ours, theirs = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(SEEDS.get(name, 5)):
            gm = dg.GaussianMixtureDiag(k, random_state=seed).fit(train)
            sk = sklearn_mixture.GaussianMixture(k, covariance_type="diag", random_state=seed)
            sk.fit(train)
            ours.append((gm.score(train), gm.score(test)))
            theirs.append((sk.score(train), sk.score(test)))
    ours, theirs = np.median(ours, axis=0), np.median(theirs, axis=0)
    # ties: the same optimum, each run stopped where a step gained less than tol=1e-3
    assert ours[0] >= theirs[0] - 1e-3, (ours, theirs)
    assert ours[1] >= theirs[1] - 1e-3, (ours, theirs)
