"""Fitting: the weighted maximum-likelihood Gaussian, and EM for diagonal mixtures."""

from __future__ import annotations

import dataclasses
import math

from ._distribution import MultivariateNormalDiag, get_default_validate_args
from ._dtypes import finish, work_dtype
from ._em import e_step, em_step, m_step
from ._gaps import gaps_for
from ._kmeans import initial_responsibilities
from ._mixture import MixtureDiag
from ._namespace import as_array, device_of, get_namespace
from ._shapes import broadcast_shapes
from ._validation import check_array

__all__ = ["FitInfo", "fit", "fit_mixture"]

INITS = ("kmeans", "kmeans++", "random")


def _points_and_weights(x, weights, xp, *, name="x", batched=True):
    if xp is None:
        xp = get_namespace((name, x), ("weights", weights))
    x = as_array(name, x, xp)
    if x.ndim < 2 or (not batched and x.ndim != 2):
        want = "(..., N, d)" if batched else "(N, d)"
        raise ValueError(f"{name} must have shape {want}; got {tuple(x.shape)}")
    if x.shape[-2] == 0:
        raise ValueError(f"{name} has no points (shape {tuple(x.shape)})")
    if weights is not None:
        weights = as_array("weights", weights, xp, dtype=x.dtype, device=device_of(x))
        if tuple(weights.shape) != tuple(x.shape[:-1]):
            try:
                broadcast_shapes(tuple(weights.shape), tuple(x.shape[:-1]))
            except ValueError:
                raise ValueError(
                    f"weights must have shape {tuple(x.shape[:-1])} (one per point of {name}); "
                    f"got {tuple(weights.shape)}"
                ) from None
            weights = xp.broadcast_to(weights, tuple(x.shape[:-1]))
        if gaps_for(xp).is_concrete(weights):
            good = (weights >= 0) & (weights < math.inf)
            if not bool(xp.all(good)):
                check_array("weights", weights, good, "non-negative and finite", xp)
            if not bool(xp.all(xp.sum(weights, axis=-1) > 0)):
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
    wd = work_dtype(x.dtype, xp)
    xw = xp.astype(x, wd) if x.dtype != wd else x
    gaps = gaps_for(xp)
    if gaps.is_concrete(x) and not bool(xp.all(xp.isfinite(x))):
        check_array("x", x, xp.isfinite(x), "finite", xp)
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
        scale = xp.maximum(scale, xp.asarray(min_scale, dtype=wd, device=device_of(scale)))
    validate = get_default_validate_args() if validate_args is None else validate_args
    if validate and gaps.is_concrete(scale) and not bool(xp.all(scale > 0)):
        zero = xp.nonzero(xp.reshape(scale <= 0, (-1,)))[0]
        dims = sorted({int(i) % scale.shape[-1] for i in zero[:16]})
        raise ValueError(
            f"x has zero variance along dims {dims} (constant coordinates): the fitted scale "
            "would be 0; pass min_scale > 0 to floor it"
        )
    mean, scale = finish(mean, x.dtype, xp), finish(scale, x.dtype, xp)
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
    gaps = gaps_for(xp)
    if gaps.is_concrete(x) and not bool(xp.all(xp.isfinite(x))):
        check_array("x", x, xp.isfinite(x), "finite", xp)
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
    wd = work_dtype(x.dtype, xp)
    xw = xp.astype(x, wd) if x.dtype != wd else x
    w = (
        xp.ones((n,), dtype=wd, device=device_of(x))
        if weights is None
        else (xp.astype(weights, wd) if weights.dtype != wd else weights)
    )
    stream = gaps.random_stream(seed)
    best = None
    for attempt in range(n_init):
        resp = initial_responsibilities(xw, w, k, init, stream, xp)
        logits, loc, var = m_step(xw, w, resp, reg_covar, xp=xp)
        history = []
        converged = False
        prev = -math.inf
        n_iter = 0
        for n_iter in range(1, max_iter + 1):  # noqa: B007  (n_iter is reported)
            ll, logits, loc, var = em_step(xw, w, logits, loc, var, reg_covar, xp=xp)
            ll = float(ll)
            history.append(ll)
            if abs(ll - prev) < tol:
                converged = True
                break
            prev = ll
        final, _ = e_step(xw, w, logits, loc, var, xp=xp)
        final = float(final)
        if best is None or final > best[0]:
            best = (final, logits, loc, var, n_iter, converged, tuple(history), attempt)
    final, logits, loc, var, n_iter, converged, history, attempt = best
    mixture = MixtureDiag.from_variance(
        finish(logits, x.dtype, xp), finish(loc, x.dtype, xp), finish(var, x.dtype, xp)
    )
    if return_info:
        return mixture, FitInfo(n_iter, final, converged, history, attempt)
    return mixture
