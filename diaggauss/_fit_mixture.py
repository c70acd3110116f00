"""EM for diagonal Gaussian mixtures: `fit_mixture`, and `run_em` behind the estimator."""

from __future__ import annotations

import dataclasses
import math

from ._dtypes import finish, work_dtype
from ._em import design, e_step, em_step, natural, needs_float64
from ._em_loop import initial_start, iterate
from ._gaps import gaps_for
from ._inputs import points_and_weights
from ._kmeans import INITS
from ._mixture import MixtureDiag
from ._namespace import as_array, device_of
from ._validation import check_array

__all__ = ["FitInfo", "fit_mixture", "run_em"]


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

    Notes
    -----
    Under ``jax.jit`` (traced data) the values are JAX arrays, not Python
    numbers: `n_iter`, `log_likelihood` and `converged` are 0-d arrays, and
    `history` an array of ``max_iter`` values, NaN after the `n_iter`
    iterations run. (With JAX, `FitInfo` is a pytree.)

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
    weights_init=None,
    means_init=None,
    precisions_init=None,
    return_info=False,
    xp=None,
):
    """Fit a K-component diagonal Gaussian mixture by expectation-maximisation.

    Parameters
    ----------
    x : array of shape (N, d)
    k : int
        Number of components, at most N.
    init : {"kmeans", "k-means++", "random", "random_from_data"}, MixtureDiag or array
        How each initialisation starts, as scikit-learn's ``init_params``.
        "kmeans": k-means labels (k-means++ seeding and Lloyd iterations on
        a sample of at most ``max(8192, 256 k)`` points, the best of three,
        then Lloyd iterations on all points); "k-means++": each component on
        its k-means++ seed; "random": random responsibilities;
        "random_from_data": each component on one random point ("kmeans++"
        is accepted for "k-means++"). A `MixtureDiag` (K components of
        dimension d) starts from its weights, means and variances; an array
        (K, d) gives the starting means (weights and variances then come
        from the k-means labels).
    n_init : int
        Initialisations to run; the one with the highest final
        log-likelihood is returned.
    max_iter : int
        EM iterations per initialisation; 0 returns the start itself.
    tol : float
        Stop when the mean log-likelihood changes by less than this.
    reg_covar : float
        Added to every variance (keeps components from collapsing). With 0,
        a component of zero variance raises a `ValueError` naming it.
    seed : optional
        As for `MultivariateNormalDiag.sample`: a NumPy Generator or int, a
        torch Generator or int, a JAX key or int. Deterministic for a given
        seed.
    weights : array of shape (N,), optional
        Non-negative sample weights.
    weights_init, means_init, precisions_init : arrays, optional
        Starting weights (K,), means (K, d) or precisions ``1 / variance``
        (K, d); each replaces that part of the start `init` gives, as in
        scikit-learn.
    return_info : bool
        Also return a `FitInfo`.

    Returns
    -------
    MixtureDiag, or (MixtureDiag, FitInfo)
        Arrays of `x`'s library, device and dtype.

    Notes
    -----
    An iteration is two matrix products over ``[xc**2, xc, 1]`` (the data
    centred once on its weighted mean) and one exponential, streamed over
    blocks of rows (`diaggauss._em`) whose sums add in float64. Accuracy:
    weights and means keep about 1e-6 of the float64 answer in float32
    (any offset of the data; N = 1e6 tested); a variance keeps about
    ``16 eps (1 + D**2)`` relative, D its component's distance from the
    data's centre in its own standard deviations (2e-5 at D = 3 in float32;
    the errors measured stay below it). Where the bound
    passes 1e-3 of ``var + reg_covar`` (a tight component far from the
    centre) the variance is recomputed around its own mean, and an E-step
    whose expansion error could pass 1e-2 nats runs at float64. On JAX the
    step is compiled once per shape.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(-5, 1, (100, 2)), rng.normal(5, 1, (100, 2))])
    >>> mix = dg.fit_mixture(x, 2, seed=0)
    >>> np.sort(mix.loc[:, 0]).round()
    array([-5.,  5.])
    """
    run = run_em(
        x,
        k,
        init=init,
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        seed=seed,
        weights=weights,
        weights_init=weights_init,
        means_init=means_init,
        precisions_init=precisions_init,
        final=return_info or n_init > 1,
        xp=xp,
    )
    if return_info:
        return run.mixture, run.info
    return run.mixture


def _real(name, value, low, *, integer=False, high=math.inf):
    kinds = (int,) if integer else (int, float)
    try:
        import numpy as np

        kinds = (*kinds, np.integer) if integer else (*kinds, np.integer, np.floating)
    except ImportError:  # pragma: no cover
        pass
    what = "an int" if integer else "a real number"
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"{name} must be {what}; got {value!r}")
    if not low <= value < high:
        rng = f">= {low}" if high == math.inf else f"in [{low}, {high})"
        raise ValueError(f"{name} must be {rng} and finite; got {value!r}")
    return int(value) if integer else float(value)


class _Run:
    __slots__ = ("info", "lower_bound", "mixture")

    def __init__(self, mixture, info, lower_bound):
        self.mixture, self.info, self.lower_bound = mixture, info, lower_bound


def _start_arrays(init, weights_init, means_init, precisions_init, k, d, xp, like):
    """The user's starting weights, means and variances (each None where not given)."""
    if isinstance(init, MixtureDiag):
        if init.num_components != k or init.event_shape != (d,) or init.batch_shape != ():
            raise ValueError(
                f"init must be a MixtureDiag of {k} components of dimension {d} with no batch; "
                f"got {init.num_components} components, event {init.event_shape}, "
                f"batch {init.batch_shape}"
            )
        start = init.to_namespace(xp, device=device_of(like))
        mxp = start._ns()
        if weights_init is None:
            weights_init = mxp.exp(start.log_weights)
        means_init = start.loc if means_init is None else means_init
        if precisions_init is None:
            precisions_init = 1.0 / start.components.variance
    elif init is not None and not isinstance(init, str):
        if means_init is not None:
            raise ValueError("give the starting means as init= or as means_init=, not both")
        means_init = init
    out = []
    for name, value, shape in (
        ("weights_init", weights_init, (k,)),
        ("means_init", means_init, (k, d)),
        ("precisions_init", precisions_init, (k, d)),
    ):
        if value is None:
            out.append(None)
            continue
        a = as_array(name, value, xp, dtype=like.dtype, device=device_of(like))
        if tuple(a.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}; got {tuple(a.shape)}")
        if gaps_for(xp).is_concrete(a):
            good = xp.isfinite(a) if name == "means_init" else (a >= 0) & (a < math.inf)
            if name == "precisions_init":
                good = good & (a > 0)
            if not bool(xp.all(good)):
                want = {"means_init": "finite", "weights_init": "non-negative and finite"}
                check_array(name, a, good, want.get(name, "positive and finite"), xp)
            if name == "weights_init" and not bool(xp.sum(a) > 0):
                raise ValueError("weights_init must not all be zero")
        out.append(a)
    return out


class _Steps:
    """EM steps on one design matrix, at float64 where the E-step's bound asks for it.

    The float64 design is built once, the first time it is needed, and kept
    for the rest of the fit (one per fit; the kernel would rebuild it each step).
    """

    def __init__(self, xa, w, reg_covar, reach, xp):
        self.xa, self.w, self.reg_covar, self.reach, self.xp = xa, w, reg_covar, reach, xp
        self.gaps = gaps_for(xp)
        self.wide = None

    def widen(self, xa, w, params):
        """``((xa, w), None)``, or rows `xa` of the design at float64 and the working dtype.

        Float64 where the E-step's bound for `params` asks for it (see `needs_float64`).
        """
        xp = self.xp
        if not needs_float64(self.reach, *params[1:], xp=xp):
            return (xa, w), None
        d = params[1].shape[1]
        return (design(xp.astype(xa[:, d : 2 * d], xp.float64), 0.0, xp=xp)[0], w), xa.dtype

    def _at(self, mc, var):
        xp = self.xp
        if not needs_float64(self.reach, mc, var, xp=xp):
            return self.xa, self.w, None
        if self.wide is None:
            d = mc.shape[1]
            f64 = xp.float64
            wide_xa = design(xp.astype(self.xa[:, d : 2 * d], f64), 0.0, xp=xp)[0]
            self.wide = (wide_xa, xp.astype(self.w, f64))
        return (*self.wide, self.xa.dtype)

    def step(self, logits, mc, var):
        """``(mean log-likelihood, logits, mc, var)`` after one EM step."""
        xp = self.xp
        xa, w, back = self._at(mc, var)
        if back is None:
            return em_step(xa, w, logits, mc, var, self.reg_covar, xp=xp)
        wide = (xp.astype(a, xa.dtype) for a in (logits, mc, var))
        out = em_step(xa, w, *wide, self.reg_covar, xp=xp)
        return tuple(xp.astype(a, back) for a in out)

    def score(self, logits, mc, var):
        """The mean log-likelihood under the parameters (a float; an array where traced)."""
        xp = self.xp
        xa, w, back = self._at(mc, var)
        params = (
            (logits, mc, var)
            if back is None
            else (xp.astype(a, xa.dtype) for a in (logits, mc, var))
        )
        ll = e_step(xa, w, natural(*params, xp=xp), xp=xp)[0]
        return float(ll) if gaps_for(xp).is_concrete(ll) else ll


def run_em(
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
    weights_init=None,
    means_init=None,
    precisions_init=None,
    final=True,
    verbose=0,
    name="x",
    xp=None,
):
    """`fit_mixture`'s work: the best run's mixture, its `FitInfo` and lower bound.

    `name` is what errors call the data (the estimator's ``X``).
    """
    x, weights, xp = points_and_weights(x, weights, xp, name=name, batched=False)
    n, d = x.shape
    gaps = gaps_for(xp)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(
            f"k must be an int between 1 and the number of points {n} (x has shape {(n, d)}); "
            f"got {k!r}"
        )
    if isinstance(init, str):
        init = "k-means++" if init == "kmeans++" else init
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, a MixtureDiag or means; got {init!r}")
    n_init = _real("n_init", n_init, 1, integer=True)
    if n_init > 1 and not gaps.is_concrete(x):
        raise ValueError(
            f"n_init must be 1 where x is traced (jax.jit: the best start is chosen on the host); "
            f"got n_init={n_init}"
        )
    max_iter = _real("max_iter", max_iter, 0, integer=True)
    tol = _real("tol", tol, 0)
    reg_covar = _real("reg_covar", reg_covar, 0)
    wd = work_dtype(x.dtype, xp)
    xw = xp.astype(x, wd) if x.dtype != wd else x
    w = (
        xp.ones((n,), dtype=wd, device=device_of(x))
        if weights is None
        else (xp.astype(weights, wd) if weights.dtype != wd else weights)
    )
    given = _start_arrays(init, weights_init, means_init, precisions_init, k, d, xp, xw)
    wsum = xp.sum(w)
    center = xp.mean(xw, axis=0, keepdims=True) if weights is None else (w[None, :] @ xw) / wsum
    (center,) = gaps.settle(center)  # one pass on a lazy library: x is not kept for it
    xa, reach = design(xw, center, xp=xp)
    # a NaN or infinity anywhere reaches the centre or the largest square: one read, and
    # the full check (naming the index) only then
    if gaps.is_concrete(reach) and not bool(xp.all(xp.isfinite(reach))):
        check_array(name, x, xp.isfinite(x), "finite (no NaN or inf)", xp)
    method = init if isinstance(init, str) else "kmeans"
    everything = all(a is not None for a in given)
    # a start given whole draws nothing (a JAX fit from it needs no key)
    stream = None if everything else gaps.random_stream(seed)
    ones = xp.ones((d, 1), dtype=wd, device=device_of(x))
    xc, xsq = xa[:, d : 2 * d], (xa[:, :d] @ ones)[:, 0]
    steps = _Steps(xa, w, reg_covar, reach, xp)
    best = None
    for attempt in range(n_init):
        if everything:
            logits = var = mc = None
        else:
            logits, mc, var = initial_start(xc, xsq, steps, k, method, stream, tol, xp=xp)
        logits, mc, var = _replace(logits, mc, var, given, center, xp)
        _check_variances(var, reg_covar, reach, xp)

        def report(n_iter, ll, attempt=attempt):
            print(f"  init {attempt + 1}, iteration {n_iter}: mean log-likelihood {ll:.6g}")

        logits, mc, var, n_iter, converged, history, lower = iterate(
            steps.step,
            logits,
            mc,
            var,
            max_iter=max_iter,
            tol=tol,
            check=lambda v: _check_variances(v, reg_covar, reach, xp),
            report=report if verbose else None,
            xp=xp,
        )
        score = steps.score(logits, mc, var) if final or not max_iter else lower
        if verbose:
            print(f"init {attempt + 1}: {n_iter} iterations, converged {converged}")
        if best is None or score > best[0]:
            best = (score, logits, mc, var, n_iter, converged, history, attempt, lower)
    score, logits, mc, var, n_iter, converged, history, attempt, lower = best
    loc = mc + center
    mixture = MixtureDiag.from_variance(
        finish(logits, x.dtype, xp), finish(loc, x.dtype, xp), finish(var, x.dtype, xp)
    )
    return _Run(mixture, FitInfo(n_iter, score, converged, history, attempt), lower)


def _replace(logits, mc, var, given, center, xp):
    """The start, with the parts the user gave in place of the initialisation's."""
    weights_init, means_init, precisions_init = given
    if weights_init is not None:
        p = weights_init / xp.sum(weights_init)
        # a zero weight is a component switched off: -inf without log(0)'s warning
        logits = xp.where(
            p > 0, xp.log(xp.where(p > 0, p, xp.ones_like(p))), xp.full_like(p, -math.inf)
        )
    if means_init is not None:
        mc = means_init - center
    if precisions_init is not None:
        var = 1.0 / precisions_init
    return logits, mc, var


def _check_variances(var, reg_covar, reach, xp):
    """A zero variance (possible only with reg_covar=0) as a named error, not NaN.

    Zero to rounding: below ``(eps * the data's extent)**2``, what is left of
    points that coincide.
    """
    if reg_covar > 0 or not gaps_for(xp).is_concrete(var):
        return
    zero = var <= float(xp.finfo(var.dtype).eps) ** 2 * reach[None, :]
    if not bool(xp.any(zero)):
        return
    flat = xp.nonzero(xp.reshape(zero, (-1,)))[0][:16]
    comps = sorted({int(i) // var.shape[1] for i in flat})
    raise ValueError(
        f"reg_covar=0 leaves components {comps} with zero variance (duplicate points or a "
        "constant column within a component); pass reg_covar > 0 (scikit-learn's default is 1e-6)"
    )
