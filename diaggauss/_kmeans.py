"""Initialisation of mixtures: k-means on a sample, k-means++ seeding, random starts.

``init="kmeans"`` is scikit-learn's default made cheaper: k-means++ seeding
and Lloyd iterations run on a sample of `KMEANS_SAMPLE` points (all of them
when there are fewer), `KMEANS_RESTARTS` times side by side (each matrix
product serves every run: small data pay for the calls, not the
arithmetic); every point then goes to its
nearest centre (one matrix product; EM's first M-step is the next Lloyd
step), and the caller keeps the start whose mixture has the highest
likelihood. On large data the seeding on every point cost more than
scikit-learn's whole fit; the sample holds enough points per component for
the centres, and EM fixes what it misses.
"""

from __future__ import annotations

import math

from ._gaps import gaps_for
from ._namespace import device_of

__all__ = ["INITS", "initial_responsibilities"]

INITS = ("kmeans", "k-means++", "random", "random_from_data")
# k-means runs behind init="kmeans"; the lowest inertia wins.
KMEANS_RESTARTS = 3
# Points the seeding and the first Lloyd iterations see: at least this many, or per component.
KMEANS_SAMPLE = 8192
KMEANS_SAMPLE_PER_COMPONENT = 256
# Lloyd iterations on the sample, until at most this fraction of the labels change.
KMEANS_SAMPLE_ITER = 100
LLOYD_TOL = 1e-2


def sq_distances(x, xsq, centres, xp):
    """Squared Euclidean distances (N, C) of points `x` with squared norms `xsq` from `centres`.

    The points are centred on the data's mean, which keeps the expansion accurate.
    """
    sq = (
        xsq[:, None]
        + xp.sum(centres * centres, axis=1)[None, :]
        - 2.0 * (x @ xp.matrix_transpose(centres))
    )
    return xp.where(sq > 0, sq, xp.zeros_like(sq))


def _nearest(x, centres, xp):
    """The nearest of each run's centres (R, K, d) for every point: labels (N, R), scores.

    The norms of the points do not change the nearest centre, so the score
    is ``x . c - |c|**2 / 2`` (N, R, K); one matrix product serves every run.
    """
    r, k, d = centres.shape
    flat = xp.reshape(centres, (r * k, d))
    score = x @ xp.matrix_transpose(flat) - 0.5 * xp.sum(flat * flat, axis=1)[None, :]
    score = xp.reshape(score, (x.shape[0], r, k))
    return xp.argmax(score, axis=2), score


def _sample_rows(p, count, stream, xp):
    """`count` indices (R, count) per row of weights `p` (R, N), drawn with replacement.

    The rows, each scaled to sum to 1, are laid end to end under one
    cumulative sum; each row's draws fall in its own stretch of it.
    """
    r, n = p.shape
    cdf = xp.cumulative_sum(xp.reshape(p / xp.sum(p, axis=1, keepdims=True), (-1,)))
    ends = cdf[n - 1 :: n]
    starts = xp.concat([xp.zeros_like(ends[:1]), ends[:-1]])
    u = stream.uniform((r, count), p.dtype, device_of(p))
    idx = xp.searchsorted(cdf, starts[:, None] + u * (ends - starts)[:, None], side="right")
    idx = idx - xp.astype(n * xp.arange(r, device=device_of(p))[:, None], idx.dtype)
    return xp.clip(idx, 0, n - 1)  # a draw rounded past its row's end


def kmeans_plusplus(x, xsq, w, k, stream, xp, runs=1):
    """Greedy k-means++ seeding (2 + log k local trials per centre), as scikit-learn.

    `runs` independent seedings at once. Returns the indices (R, K) of the
    points chosen.
    """
    n_local = 2 + int(math.log(k))
    chosen = [_sample_rows(xp.broadcast_to(w[None, :], (runs, w.shape[0])), 1, stream, xp)]
    closest = xp.matrix_transpose(sq_distances(x, xsq, xp.take(x, chosen[0][:, 0], axis=0), xp))
    # column j of the candidates' distances belongs to run j // n_local
    runs_of = n_local * xp.arange(runs, device=device_of(x))
    for _ in range(1, k):
        # all weight on points already chosen (K above the distinct points): any point will do
        p = w[None, :] * closest + 1e-30 * w[None, :]
        candidates = xp.reshape(_sample_rows(p, n_local, stream, xp), (-1,))
        d2 = sq_distances(x, xsq, xp.take(x, candidates, axis=0), xp)  # (N, R * n_local)
        d2 = xp.minimum(xp.repeat(xp.matrix_transpose(closest), n_local, axis=1), d2)
        cost = xp.reshape(w[None, :] @ d2, (runs, n_local))
        best = xp.astype(xp.argmin(cost, axis=1), runs_of.dtype) + runs_of
        closest = xp.matrix_transpose(xp.take(d2, best, axis=1))
        chosen.append(xp.take(candidates, best, axis=0)[:, None])
    return xp.concat(chosen, axis=1)


def one_hot(labels, k, dtype, xp):
    """Labels (N,) or (N, R) as indicators (N, K) or (N, R K) of `dtype`.

    Run r's indicators are columns ``r K`` to ``(r + 1) K``.
    """
    ks = xp.reshape(xp.arange(k, device=device_of(labels)), (1,) * labels.ndim + (k,))
    hot = labels[..., None] == ks
    return xp.astype(xp.reshape(hot, (labels.shape[0], -1)), dtype)


def lloyd(x, xsq, w, centres, xp, max_iter):
    """Lloyd iterations of every run's centres (R, K, d) until few assignments change.

    The runs share each matrix product (the centres of all runs side by
    side); they stop together, once at most `LLOYD_TOL` of every run's
    labels moved. Returns the centres, the labels (N, R) and each run's
    weighted inertia (a list of floats).
    """
    runs, k, d = centres.shape
    labels, score = _nearest(x, centres, xp)
    xw = x * w[:, None]
    for _ in range(max_iter):
        onehot_t = xp.matrix_transpose(one_hot(labels, k, x.dtype, xp))  # (R K, N)
        counts = xp.reshape(onehot_t @ w, (runs, k))
        sums = xp.reshape(onehot_t @ xw, (runs, k, d))
        safe = xp.where(counts > 0, counts, xp.ones_like(counts))
        # an empty cluster keeps its centre
        centres = xp.where(counts[:, :, None] > 0, sums / safe[:, :, None], centres)
        new, score = _nearest(x, centres, xp)
        moved = xp.max(xp.sum(xp.astype(new != labels, xp.int32), axis=0))
        labels = new
        # the last few points to move shift the centres by little; EM moves them anyway
        if int(moved) <= LLOYD_TOL * x.shape[0]:
            break
    inertia = xp.sum(w[:, None] * (xsq[:, None] - 2.0 * xp.max(score, axis=2)), axis=0)
    return centres, labels, [float(v) for v in gaps_for(xp).to_host(inertia)]


def _sample(x, xsq, w, k, stream, xp):
    """Sample rows for the seeding (drawn by weight), or None: all of them, if few."""
    n = x.shape[0]
    m = max(KMEANS_SAMPLE, KMEANS_SAMPLE_PER_COMPONENT * k)
    return None if n <= m else _sample_rows(w[None, :], m, stream, xp)[0]


def _single(x, xsq, w, xp):
    """float64 points, norms and weights as float32, scaled to at most 1.

    k-means needs only its labels, which scaling does not change and float32
    rounding moves only between near-equidistant centres; its matrix
    products take half the time (digits: 10 of a fit's 25 ms were k-means).
    """
    if x.dtype != xp.float64:
        return x, xsq, w
    f32 = xp.float32
    tiny = float(xp.finfo(x.dtype).smallest_normal)
    top = xp.maximum(xp.max(xsq), xp.asarray(tiny, dtype=x.dtype, device=device_of(x)))
    scale = 1.0 / xp.sqrt(top)
    w = w / xp.maximum(xp.max(w), xp.asarray(tiny, dtype=w.dtype, device=device_of(w)))
    return xp.astype(x * scale, f32), xp.astype(xsq / top, f32), xp.astype(w, f32)


def kmeans_labels(x, xsq, w, k, stream, xp):
    """Labels (N, R) of the distinct clusterings of `KMEANS_RESTARTS` k-means runs on a sample.

    The runs go side by side through every matrix product, in float32
    (`_single`). Returns the labels and the sample's rows (None when it is
    every point).
    """
    rows = _sample(x, xsq, w, k, stream, xp)
    x, xsq, w = _single(x, xsq, w, xp)
    if rows is None:
        xs, ssq, ws = x, xsq, w
    else:
        xs, ssq = xp.take(x, rows, axis=0), xp.take(xsq, rows, axis=0)
        ws = xp.ones((rows.shape[0],), dtype=w.dtype, device=device_of(w))
    seeds = kmeans_plusplus(xs, ssq, ws, k, stream, xp, runs=KMEANS_RESTARTS)
    seeds = xp.reshape(xp.take(xs, xp.reshape(seeds, (-1,)), axis=0), (KMEANS_RESTARTS, k, -1))
    centres, labels, inertia = lloyd(xs, ssq, ws, seeds, xp, KMEANS_SAMPLE_ITER)
    # the same clustering found again (easy data) costs the caller nothing
    keep = []
    for i, value in enumerate(inertia):
        if not any(abs(value - inertia[j]) <= 1e-5 * abs(inertia[j]) for j in keep):
            keep.append(i)
    if len(keep) < len(inertia):
        centres = xp.take(centres, xp.asarray(keep, device=device_of(x)), axis=0)
        labels = xp.take(labels, xp.asarray(keep, device=device_of(x)), axis=1)
    if rows is not None:  # every point to its nearest centre; EM's M-step is a Lloyd step
        labels = _nearest(x, centres, xp)[0]
    return labels, rows


def _spikes(indices, n, dtype, xp):
    """(N, K) responsibilities with all of component j's weight on point ``indices[j]``."""
    rows = xp.arange(n, device=device_of(indices))[:, None] == indices[None, :]
    return xp.astype(rows, dtype)


def initial_responsibilities(x, xsq, w, k, init, stream, xp):
    """Candidate starts for EM, by `init` (one of `INITS`): ``(start, runs, rows)``.

    `x` (N, d) is centred on the data's mean, `xsq` its squared norms (N,).
    ``start(idx)`` gives the responsibilities (len(idx), R K) of rows `idx`
    (None: all rows) for `runs` starts side by side, run r in columns
    ``r K`` to ``(r + 1) K``. There is one run, as in scikit-learn, except
    for "kmeans": each distinct clustering of its `KMEANS_RESTARTS` runs,
    for the caller to keep the one whose mixture scores best on `rows` (the
    k-means sample; None for all points): the likelihood, not the inertia,
    is what EM climbs.

    "kmeans": k-means labels as one-hot rows; "k-means++": each component on
    its k-means++ seed alone; "random": uniform random rows, normalised;
    "random_from_data": each component on one distinct point drawn at random.
    """
    n = x.shape[0]
    if init == "random":
        r = stream.uniform((n, k), x.dtype, device_of(x))
        r = r / xp.sum(r, axis=1, keepdims=True)
    elif init == "k-means++":
        r = _spikes(kmeans_plusplus(x, xsq, w, k, stream, xp)[0], n, x.dtype, xp)
    elif init == "random_from_data":
        # distinct points of positive weight: the k smallest of uniform keys
        u = stream.uniform((n,), x.dtype, device_of(x))
        u = xp.where(w > 0, u, xp.full_like(u, 2.0))
        r = _spikes(xp.argsort(u)[:k], n, x.dtype, xp)
    else:
        labels, rows = kmeans_labels(x, xsq, w, k, stream, xp)

        def start(idx):
            return one_hot(labels if idx is None else xp.take(labels, idx, axis=0), k, x.dtype, xp)

        return start, labels.shape[1], rows
    return (lambda idx: r if idx is None else xp.take(r, idx, axis=0)), 1, None
