"""Fitting: the weighted maximum-likelihood Gaussian, and EM for diagonal mixtures."""

from __future__ import annotations

import dataclasses
import math

from . import _core
from ._backend import backend_for, get_namespace
from ._distribution import MultivariateNormalDiag, get_default_validate_args
from ._mixture import MixtureDiag
from ._pairwise import pairwise_log_prob

__all__ = ["FitInfo", "fit", "fit_mixture"]

INITS = ("kmeans", "kmeans++", "random")
# k-means runs seeded by k-means++ behind init="kmeans"; the lowest inertia wins.
KMEANS_RESTARTS = 3


def _points_and_weights(x, weights, xp, *, name="x", batched=True):
    if xp is None:
        xp = get_namespace((name, x), ("weights", weights))
    x = _core.as_float_array(name, x, xp)
    if x.ndim < 2 or (not batched and x.ndim != 2):
        want = "(..., N, d)" if batched else "(N, d)"
        raise ValueError(f"{name} must have shape {want}; got {tuple(x.shape)}")
    if x.shape[-2] == 0:
        raise ValueError(f"{name} has no points (shape {tuple(x.shape)})")
    if weights is not None:
        weights = _core.as_float_array(
            "weights", weights, xp, dtype=x.dtype, device=_core._device(x)
        )
        if tuple(weights.shape) != tuple(x.shape[:-1]):
            try:
                _core.broadcast_shapes(tuple(weights.shape), tuple(x.shape[:-1]))
            except ValueError:
                raise ValueError(
                    f"weights must have shape {tuple(x.shape[:-1])} (one per point of {name}); "
                    f"got {tuple(weights.shape)}"
                ) from None
            weights = xp.broadcast_to(weights, tuple(x.shape[:-1]))
        be = backend_for(xp)
        if be.is_concrete(weights):
            good = (weights >= 0) & (weights < math.inf)
            if not be.all_true(xp.all(good)):
                _core.check_array("weights", weights, good, "non-negative and finite", xp)
            if not be.all_true(xp.all(xp.sum(weights, axis=-1) > 0)):
                raise ValueError("weights must not all be zero")
        if weights.dtype != x.dtype:
            weights = xp.astype(weights, x.dtype)
    return x, weights, xp


def fit(x, weights=None, *, min_scale=0.0, xp=None, validate_args=None):
    """The weighted maximum-likelihood diagonal Gaussian of points `x`.

    Mean and biased standard deviation, computed in two passes (the variance
    around the mean, never ``E[x**2] - E[x]**2``), so float32 stays accurate
    for data far from the origin.

    Parameters
    ----------
    x : array of shape (..., N, d)
        Points; leading axes make a batch of fits.
    weights : array of shape (..., N), optional
        Non-negative weights of the points.
    min_scale : float
        Lower bound applied to the fitted scales. With the default 0, a
        coordinate with zero variance raises a `ValueError` that suggests it.

    Returns
    -------
    MultivariateNormalDiag
        Batch shape ``x.shape[:-2]``.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> x = np.array([[0.0, 1.0], [2.0, 3.0]])
    >>> d = dg.fit(x)
    >>> d.loc, d.scale
    (array([1., 2.]), array([1., 1.]))
    """
    x, weights, xp = _points_and_weights(x, weights, xp)
    wd = _core.work_dtype(x.dtype, xp)
    xw = xp.astype(x, wd) if x.dtype != wd else x
    be = backend_for(xp)
    if be.is_concrete(x) and not be.all_true(xp.all(xp.isfinite(x))):
        _core.check_array("x", x, xp.isfinite(x), "finite", xp)
    if weights is None:
        mean = xp.mean(xw, axis=-2)
        dev = xw - xp.expand_dims(mean, axis=-2)
        var = xp.mean(dev * dev, axis=-2)
    else:
        w = xp.expand_dims(xp.astype(weights, wd) if weights.dtype != wd else weights, axis=-1)
        total = xp.sum(w, axis=-2)
        mean = xp.sum(w * xw, axis=-2) / total
        dev = xw - xp.expand_dims(mean, axis=-2)
        var = xp.sum(w * (dev * dev), axis=-2) / total
    scale = xp.sqrt(var)
    if min_scale:
        if not min_scale > 0:
            raise ValueError(f"min_scale must be non-negative; got {min_scale!r}")
        scale = xp.maximum(scale, xp.asarray(min_scale, dtype=wd, device=_core._device(scale)))
    validate = get_default_validate_args() if validate_args is None else validate_args
    if validate and be.is_concrete(scale) and not be.all_true(xp.all(scale > 0)):
        zero = xp.nonzero(xp.reshape(scale <= 0, (-1,)))[0]
        dims = sorted({int(i) % scale.shape[-1] for i in zero[:16]})
        raise ValueError(
            f"x has zero variance along dims {dims} (constant coordinates): the fitted scale "
            "would be 0; pass min_scale > 0 to floor it"
        )
    mean, scale = _core._finish(mean, x.dtype, xp), _core._finish(scale, x.dtype, xp)
    return MultivariateNormalDiag(mean, scale, validate_args=validate_args)


@dataclasses.dataclass(frozen=True)
class FitInfo:
    """What `fit_mixture` did: iterations, the final mean log-likelihood, convergence.

    Attributes
    ----------
    n_iter : int
        EM iterations of the best initialisation.
    log_likelihood : float
        Mean (weighted) log-likelihood of the data under the returned mixture.
    converged : bool
        Whether the change in mean log-likelihood fell below `tol`.
    history : tuple of float
        Mean log-likelihood before each M-step of the best initialisation.
    best_init : int
        Which of the `n_init` initialisations won.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> x = np.random.default_rng(0).normal(size=(200, 2))
    >>> mix, info = dg.fit_mixture(x, 2, seed=0, return_info=True)
    >>> info.converged, info["converged"]
    (True, True)
    """

    n_iter: int
    log_likelihood: float
    converged: bool
    history: tuple = ()
    best_init: int = 0

    def __getitem__(self, key):
        return getattr(self, key)

    def keys(self):
        """The field names, so ``dict(info)`` works."""
        return [f.name for f in dataclasses.fields(self)]


def fit_mixture(
    x,
    k,
    *,
    init="kmeans",
    n_init=1,
    max_iter=100,
    tol=1e-3,
    reg_covar=1e-6,
    seed=None,
    weights=None,
    return_info=False,
    xp=None,
):
    """Fit a K-component diagonal Gaussian mixture by expectation-maximisation.

    Parameters
    ----------
    x : array of shape (N, d)
    k : int
        Number of components.
    init : {"kmeans", "kmeans++", "random"}
        "kmeans": k-means++ seeding refined by Lloyd iterations, as
        scikit-learn's default (three such runs, the lowest inertia kept);
        "kmeans++": the seeding alone; "random": random responsibilities.
    n_init : int
        Initialisations to run; the one with the highest final
        log-likelihood is returned.
    max_iter : int
        EM iterations per initialisation.
    tol : float
        Stop when the mean log-likelihood changes by less than this.
    reg_covar : float
        Added to every variance (keeps components from collapsing).
    seed : optional
        As for `MultivariateNormalDiag.sample`: a NumPy Generator or int, a
        torch Generator or int, a JAX key or int. Deterministic for a given
        seed.
    weights : array of shape (N,), optional
        Non-negative sample weights.
    return_info : bool
        Also return a `FitInfo`.

    Returns
    -------
    MixtureDiag, or (MixtureDiag, FitInfo)

    Notes
    -----
    The E-step scores all components with one matrix product
    (`pairwise_log_prob`). The M-step computes each variance around its own
    mean: with data centred on its weighted mean it uses matrix products, and
    recomputes exactly (point by point) any component whose variance the
    expansion could not resolve in the working precision, so float32 never
    yields negative or zero variances from cancellation. On JAX the step is
    jitted and the variance is computed directly (XLA fuses it).

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(-5, 1, (100, 2)), rng.normal(5, 1, (100, 2))])
    >>> mix = dg.fit_mixture(x, 2, seed=0)
    >>> np.sort(mix.loc[:, 0]).round()
    array([-5.,  5.])
    """
    x, weights, xp = _points_and_weights(x, weights, xp, batched=False)
    n = x.shape[0]
    if backend_for(xp).is_concrete(x) and not backend_for(xp).all_true(xp.all(xp.isfinite(x))):
        _core.check_array("x", x, xp.isfinite(x), "finite", xp)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n:
        raise ValueError(f"k must be an int between 1 and the number of points {n}; got {k!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}; got {init!r}")
    for name, value, low in (("n_init", n_init, 1), ("max_iter", max_iter, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}; got {value!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be non-negative; got {tol!r}")
    if not reg_covar >= 0:
        raise ValueError(f"reg_covar must be non-negative; got {reg_covar!r}")
    be = backend_for(xp)
    wd = _core.work_dtype(x.dtype, xp)
    xw = xp.astype(x, wd) if x.dtype != wd else x
    w = (
        xp.ones((n,), dtype=wd, device=_core._device(x))
        if weights is None
        else (xp.astype(weights, wd) if weights.dtype != wd else weights)
    )
    stream = be.random_stream(seed, xp)
    step = be.jit(_em_step_fused) if be.fused_reductions else None
    best = None
    for attempt in range(n_init):
        resp = _initial_responsibilities(xw, w, k, init, stream, xp)
        logits, loc, var = _m_step(xw, w, resp, reg_covar, xp, be)
        history = []
        converged = False
        prev = -math.inf
        n_iter = 0
        for n_iter in range(1, max_iter + 1):  # noqa: B007  (n_iter is reported)
            if step is not None:
                ll, logits, loc, var = step(xw, w, logits, loc, var, reg_covar)
            else:
                ll, resp = _e_step(xw, w, logits, loc, var, xp)
                logits, loc, var = _m_step(xw, w, resp, reg_covar, xp, be)
            ll = float(ll)
            history.append(ll)
            if abs(ll - prev) < tol:
                converged = True
                break
            prev = ll
        final, _ = _e_step(xw, w, logits, loc, var, xp)
        final = float(final)
        if best is None or final > best[0]:
            best = (final, logits, loc, var, n_iter, converged, tuple(history), attempt)
    final, logits, loc, var, n_iter, converged, history, attempt = best
    mixture = MixtureDiag.from_variance(
        _core._finish(logits, x.dtype, xp),
        _core._finish(loc, x.dtype, xp),
        _core._finish(var, x.dtype, xp),
    )
    if return_info:
        return mixture, FitInfo(n_iter, final, converged, history, attempt)
    return mixture


# -- EM ----------------------------------------------------------------------------------


def _e_step(x, w, logits, loc, var, xp):
    """Mean log-likelihood and responsibilities."""
    comps = MultivariateNormalDiag._from_parts(loc, var, "variance")
    joint = pairwise_log_prob(x, comps, xp=xp) + _core.log_softmax(logits, -1, xp)
    norm = _core.logsumexp(joint, -1, xp)
    ll = xp.sum(w * norm) / xp.sum(w)
    return ll, xp.exp(joint - norm[:, None])


def _m_step(x, w, resp, reg_covar, xp, be):
    """Weights, means and variances from responsibilities."""
    rw = resp * w[:, None]
    eps = xp.finfo(x.dtype).eps
    nk = xp.sum(rw, axis=0) + 10 * eps  # (K,); keeps empty components finite, as sklearn
    logits = xp.log(nk / xp.sum(nk))
    rw_t = xp.matrix_transpose(rw)
    if be.fused_reductions:
        loc = (rw_t @ x) / nk[:, None]
        dev = x[:, None, :] - loc[None, :, :]
        var = xp.sum(rw[:, :, None] * (dev * dev), axis=0) / nk[:, None]
        return logits, loc, var + reg_covar
    # Centred on the weighted data mean, E[x^2] - m^2 is resolved unless a
    # component is very tight far from that centre; those are redone exactly.
    center = xp.sum(w[:, None] * x, axis=0) / xp.sum(w)
    xc = x - center
    mc = (rw_t @ xc) / nk[:, None]
    second = (rw_t @ (xc * xc)) / nk[:, None]
    var = second - mc * mc
    unresolved = var <= 64 * eps * second  # lost (nearly) every digit to cancellation
    if be.all_true(xp.any(unresolved)):
        bad = xp.nonzero(xp.any(unresolved, axis=1))[0]
        exact = _exact_variance(xc, rw, mc, bad, nk, xp)
        rows = xp.reshape(bad, (-1, 1)) == xp.arange(var.shape[0], device=_core._device(var))
        hit = xp.any(rows, axis=0)[:, None]
        var = xp.where(hit, _scatter_rows(exact, bad, var, xp), var)
    return logits, mc + center, var + reg_covar


def _exact_variance(xc, rw, mc, comps, nk, xp):
    """``sum_n rw[n, k] (x_n - m_k)**2 / nk`` for the components `comps`, in blocks of points."""
    r = xp.take(rw, comps, axis=1)  # (N, B)
    m = xp.take(mc, comps, axis=0)  # (B, d)
    n, d = xc.shape
    b = m.shape[0]
    rows = max(1, (1 << 20) // max(b * d, 1))
    total = xp.zeros((b, d), dtype=xc.dtype, device=_core._device(xc))
    for i in range(0, n, rows):
        j = min(i + rows, n)
        dev = xc[i:j, None, :] - m[None, :, :]
        total = total + xp.sum(r[i:j, :, None] * (dev * dev), axis=0)
    return total / xp.take(nk, comps, axis=0)[:, None]


def _scatter_rows(values, rows, like, xp):
    """An array like `like` with ``values[i]`` at row ``rows[i]`` (other rows arbitrary)."""
    k = like.shape[0]
    onehot = xp.astype(
        xp.reshape(rows, (-1, 1)) == xp.arange(k, device=_core._device(like)), like.dtype
    )  # (B, K)
    return xp.matrix_transpose(onehot) @ values


def _em_step_fused(x, w, logits, loc, var, reg_covar):
    """One E and M step, pure: jitted as a whole where the library compiles (JAX)."""
    xp = get_namespace(("x", x))
    be = backend_for(xp)
    ll, resp = _e_step(x, w, logits, loc, var, xp)
    return (ll, *_m_step(x, w, resp, reg_covar, xp, be))


# -- initialisation ------------------------------------------------------------------------


def _sq_distances(x, centres, xp):
    """Squared Euclidean distances (N, C), expanded around the centres' mean."""
    c0 = xp.mean(centres, axis=0, keepdims=True)
    xc, cc = x - c0, centres - c0
    sq = (
        xp.sum(xc * xc, axis=1)[:, None]
        + xp.sum(cc * cc, axis=1)[None, :]
        - 2.0 * (xc @ xp.matrix_transpose(cc))
    )
    return xp.clip(sq, 0.0, None)


def _sample_indices(p, count, stream, xp):
    """`count` indices drawn with probabilities proportional to `p` (N,), with replacement."""
    cdf = xp.cumulative_sum(p)
    u = stream.uniform((count,), p.dtype, _core._device(p)) * cdf[-1]
    idx = xp.searchsorted(cdf, u, side="right")
    return xp.clip(idx, 0, p.shape[0] - 1)


def _kmeans_plusplus(x, w, k, stream, xp):
    """Greedy k-means++ seeding (2 + log k local trials per centre), as scikit-learn."""
    n_local = 2 + int(math.log(k))
    first = _sample_indices(w, 1, stream, xp)
    centres = [xp.take(x, first, axis=0)]
    closest = _sq_distances(x, centres[0], xp)[:, 0]
    for _ in range(1, k):
        candidates = _sample_indices(w * closest, n_local, stream, xp)
        cand_pts = xp.take(x, candidates, axis=0)
        d2 = xp.minimum(closest[:, None], _sq_distances(x, cand_pts, xp))  # (N, n_local)
        best = xp.reshape(xp.argmin(xp.sum(w[:, None] * d2, axis=0)), (1,))
        closest = xp.take(d2, best, axis=1)[:, 0]
        centres.append(xp.take(cand_pts, best, axis=0))
    return xp.concat(centres, axis=0)


def _one_hot(labels, k, dtype, xp):
    return xp.astype(labels[:, None] == xp.arange(k, device=_core._device(labels)), dtype)


def _lloyd(x, w, centres, xp, be, max_iter=30):
    """Lloyd iterations from `centres` until the assignments stop changing.

    Returns the labels and the weighted inertia (sum of squared distances).
    """
    k = centres.shape[0]
    d2 = _sq_distances(x, centres, xp)
    labels = xp.argmin(d2, axis=1)
    for _ in range(max_iter):
        onehot = _one_hot(labels, k, x.dtype, xp) * w[:, None]
        counts = xp.sum(onehot, axis=0)
        sums = xp.matrix_transpose(onehot) @ x
        safe = xp.where(counts > 0, counts, xp.ones_like(counts))
        centres = xp.where(counts[:, None] > 0, sums / safe[:, None], centres)
        d2 = _sq_distances(x, centres, xp)
        new = xp.argmin(d2, axis=1)
        if be.all_true(xp.all(new == labels)):
            break
        labels = new
    inertia = xp.sum(w * xp.min(d2, axis=1))
    return labels, float(inertia)


def _initial_responsibilities(x, w, k, init, stream, xp):
    n = x.shape[0]
    if init == "random":
        r = stream.uniform((n, k), x.dtype, _core._device(x))
        return r / xp.sum(r, axis=1, keepdims=True)
    be = backend_for(xp)
    if init == "kmeans++":
        centres = _kmeans_plusplus(x, w, k, stream, xp)
        return _one_hot(xp.argmin(_sq_distances(x, centres, xp), axis=1), k, x.dtype, xp)
    best = None
    for _ in range(KMEANS_RESTARTS):  # cheap next to EM, and a better start for it
        labels, inertia = _lloyd(x, w, _kmeans_plusplus(x, w, k, stream, xp), xp, be)
        if best is None or inertia < best[1]:
            best = (labels, inertia)
    return _one_hot(best[0], k, x.dtype, xp)
