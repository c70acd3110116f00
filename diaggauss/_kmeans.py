"""Initialisation of mixtures: k-means++ seeding and Lloyd iterations, on any backend."""

from __future__ import annotations

import math

from ._namespace import device_of

__all__ = ["initial_responsibilities"]

# k-means runs seeded by k-means++ behind init="kmeans"; the lowest inertia wins.
KMEANS_RESTARTS = 3


def sq_distances(x, centres, xp):
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
    u = stream.uniform((count,), p.dtype, device_of(p)) * cdf[-1]
    idx = xp.searchsorted(cdf, u, side="right")
    return xp.clip(idx, 0, p.shape[0] - 1)


def kmeans_plusplus(x, w, k, stream, xp):
    """Greedy k-means++ seeding (2 + log k local trials per centre), as scikit-learn."""
    n_local = 2 + int(math.log(k))
    first = _sample_indices(w, 1, stream, xp)
    centres = [xp.take(x, first, axis=0)]
    closest = sq_distances(x, centres[0], xp)[:, 0]
    for _ in range(1, k):
        candidates = _sample_indices(w * closest, n_local, stream, xp)
        cand_pts = xp.take(x, candidates, axis=0)
        d2 = xp.minimum(closest[:, None], sq_distances(x, cand_pts, xp))  # (N, n_local)
        best = xp.reshape(xp.argmin(xp.sum(w[:, None] * d2, axis=0)), (1,))
        closest = xp.take(d2, best, axis=1)[:, 0]
        centres.append(xp.take(cand_pts, best, axis=0))
    return xp.concat(centres, axis=0)


def one_hot(labels, k, dtype, xp):
    """``labels`` (N,) as an (N, K) indicator matrix of `dtype`."""
    return xp.astype(labels[:, None] == xp.arange(k, device=device_of(labels))[None, :], dtype)


def lloyd(x, w, centres, xp, max_iter=30):
    """Lloyd iterations from `centres` until the assignments stop changing.

    Returns the labels and the weighted inertia (sum of squared distances).
    """
    k = centres.shape[0]
    d2 = sq_distances(x, centres, xp)
    labels = xp.argmin(d2, axis=1)
    for _ in range(max_iter):
        onehot = one_hot(labels, k, x.dtype, xp) * w[:, None]
        counts = xp.sum(onehot, axis=0)
        sums = xp.matrix_transpose(onehot) @ x
        safe = xp.where(counts > 0, counts, xp.ones_like(counts))
        centres = xp.where(counts[:, None] > 0, sums / safe[:, None], centres)
        d2 = sq_distances(x, centres, xp)
        new = xp.argmin(d2, axis=1)
        if bool(xp.all(new == labels)):
            break
        labels = new
    inertia = xp.sum(w * xp.min(d2, axis=1))
    return labels, float(inertia)


def initial_responsibilities(x, w, k, init, stream, xp):
    """(N, K) responsibilities to start EM from, by `init` ("kmeans", "kmeans++", "random")."""
    n = x.shape[0]
    if init == "random":
        r = stream.uniform((n, k), x.dtype, device_of(x))
        return r / xp.sum(r, axis=1, keepdims=True)
    if init == "kmeans++":
        centres = kmeans_plusplus(x, w, k, stream, xp)
        return one_hot(xp.argmin(sq_distances(x, centres, xp), axis=1), k, x.dtype, xp)
    best = None
    for _ in range(KMEANS_RESTARTS):  # cheap next to EM, and a better start for it
        labels, inertia = lloyd(x, w, kmeans_plusplus(x, w, k, stream, xp), xp)
        if best is None or inertia < best[1]:
            best = (labels, inertia)
    return one_hot(best[0], k, x.dtype, xp)
