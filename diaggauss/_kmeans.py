"""Initialisation of mixtures: k-means on a sample, k-means++ seeding, random starts.

``init="kmeans"`` is scikit-learn's default made cheaper: k-means++ seeding
and Lloyd iterations run on a sample of `KMEANS_SAMPLE` points (all of them
when there are fewer), `KMEANS_RESTARTS` times; every point then goes to its
nearest centre (one matrix product; EM's first M-step is the next Lloyd
step), and the caller keeps the start whose mixture has the highest
likelihood. On large data the seeding on every point cost more than
scikit-learn's whole fit; the sample holds enough points per component for
the centres, and EM fixes what it misses.
"""

from __future__ import annotations

import math

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
    """The nearest centre of each point: the norms of the points do not change it."""
    score = x @ xp.matrix_transpose(centres) - 0.5 * xp.sum(centres * centres, axis=1)[None, :]
    return xp.argmax(score, axis=1), score


def _sample_indices(p, count, stream, xp):
    """`count` indices drawn with probabilities proportional to `p` (N,), with replacement."""
    cdf = xp.cumulative_sum(p)
    u = stream.uniform((count,), p.dtype, device_of(p)) * cdf[-1]
    idx = xp.searchsorted(cdf, u, side="right")
    return xp.minimum(idx, xp.full_like(idx, p.shape[0] - 1))  # u rounded up to cdf[-1]


def kmeans_plusplus(x, xsq, w, k, stream, xp):
    """Greedy k-means++ seeding (2 + log k local trials per centre), as scikit-learn.

    Returns the indices (K,) of the points chosen.
    """
    n_local = 2 + int(math.log(k))
    chosen = [_sample_indices(w, 1, stream, xp)]
    closest = sq_distances(x, xsq, xp.take(x, chosen[0], axis=0), xp)[:, 0]
    for _ in range(1, k):
        # all weight on points already chosen (K above the distinct points): any point will do
        candidates = _sample_indices(w * closest + 1e-30 * w, n_local, stream, xp)
        d2 = xp.minimum(closest[:, None], sq_distances(x, xsq, xp.take(x, candidates, axis=0), xp))
        best = xp.reshape(xp.argmin(w[None, :] @ d2), (1,))
        closest = xp.take(d2, best, axis=1)[:, 0]
        chosen.append(xp.take(candidates, best, axis=0))
    return xp.concat(chosen, axis=0)


def one_hot(labels, k, dtype, xp):
    """``labels`` (N,) as an (N, K) indicator matrix of `dtype`."""
    return xp.astype(labels[:, None] == xp.arange(k, device=device_of(labels))[None, :], dtype)


def lloyd(x, xsq, w, centres, xp, max_iter):
    """Lloyd iterations from `centres` until the assignments stop changing.

    Returns the centres, the labels and the weighted inertia.
    """
    k = centres.shape[0]
    labels, score = _nearest(x, centres, xp)
    xw = x * w[:, None]
    for _ in range(max_iter):
        onehot_t = xp.matrix_transpose(one_hot(labels, k, x.dtype, xp))
        counts = onehot_t @ w
        sums = onehot_t @ xw
        safe = xp.where(counts > 0, counts, xp.ones_like(counts))
        # an empty cluster keeps its centre
        centres = xp.where(counts[:, None] > 0, sums / safe[:, None], centres)
        new, score = _nearest(x, centres, xp)
        moved = int(xp.sum(xp.astype(new != labels, xp.int32)))
        labels = new
        # the last few points to move shift the centres by little; EM moves them anyway
        if moved <= LLOYD_TOL * x.shape[0]:
            break
    return centres, labels, float(xp.sum(w * (xsq - 2.0 * xp.max(score, axis=1))))


def _sample(x, xsq, w, k, stream, xp):
    """Sample rows for the seeding (drawn by weight), or None: all of them, if few."""
    n = x.shape[0]
    m = max(KMEANS_SAMPLE, KMEANS_SAMPLE_PER_COMPONENT * k)
    return None if n <= m else _sample_indices(w, m, stream, xp)


def kmeans_labels(x, xsq, w, k, stream, xp):
    """Labels (N,) of the distinct clusterings of `KMEANS_RESTARTS` k-means runs on a sample.

    Returns the list of labels and the sample's rows (None when it is every point).
    """
    rows = _sample(x, xsq, w, k, stream, xp)
    if rows is None:
        xs, ssq, ws = x, xsq, w
    else:
        xs, ssq = xp.take(x, rows, axis=0), xp.take(xsq, rows, axis=0)
        ws = xp.ones((rows.shape[0],), dtype=w.dtype, device=device_of(w))
    out, seen = [], []
    for _ in range(KMEANS_RESTARTS):
        seeds = xp.take(xs, kmeans_plusplus(xs, ssq, ws, k, stream, xp), axis=0)
        centres, labels, inertia = lloyd(xs, ssq, ws, seeds, xp, KMEANS_SAMPLE_ITER)
        # the same clustering found again (easy data) costs the caller nothing
        if any(abs(inertia - s) <= 1e-5 * abs(s) for s in seen):
            continue
        seen.append(inertia)
        if rows is not None:  # every point to its nearest centre; EM's M-step is a Lloyd step
            labels = _nearest(x, centres, xp)[0]
        out.append(labels)
    return out, rows


def _spikes(indices, n, k, dtype, xp):
    """(N, K) responsibilities with all of component j's weight on point ``indices[j]``."""
    rows = xp.arange(n, device=device_of(indices))[:, None] == indices[None, :]
    return xp.astype(rows, dtype)


def initial_responsibilities(x, xsq, w, k, init, stream, xp):
    """Candidate starts for EM, by `init` (one of `INITS`): ``(candidates, rows)``.

    `x` (N, d) is centred on the data's mean, `xsq` its squared norms (N,).
    Each candidate is a function of row indices (or None: all rows) giving
    those rows' (N, K) responsibilities. There is one candidate, as in
    scikit-learn, except for "kmeans": each distinct clustering of its
    `KMEANS_RESTARTS` runs, for the caller to keep the one whose mixture
    scores best on `rows` (the k-means sample; None for all points): the
    likelihood, not the inertia, is what EM climbs.

    "kmeans": k-means labels as one-hot rows; "k-means++": each component on
    its k-means++ seed alone; "random": uniform random rows, normalised;
    "random_from_data": each component on one distinct point drawn at random.
    """
    n = x.shape[0]
    if init == "random":
        r = stream.uniform((n, k), x.dtype, device_of(x))
        r = r / xp.sum(r, axis=1, keepdims=True)
    elif init == "k-means++":
        r = _spikes(kmeans_plusplus(x, xsq, w, k, stream, xp), n, k, x.dtype, xp)
    elif init == "random_from_data":
        # distinct points of positive weight: the k smallest of uniform keys
        u = stream.uniform((n,), x.dtype, device_of(x))
        u = xp.where(w > 0, u, xp.full_like(u, 2.0))
        r = _spikes(xp.argsort(u)[:k], n, k, x.dtype, xp)
    else:
        labels, rows = kmeans_labels(x, xsq, w, k, stream, xp)
        return [_labelled(a, k, x.dtype, xp) for a in labels], rows
    return [lambda idx: r if idx is None else xp.take(r, idx, axis=0)], None


def _labelled(labels, k, dtype, xp):
    return lambda idx: one_hot(
        labels if idx is None else xp.take(labels, idx, axis=0), k, dtype, xp
    )
