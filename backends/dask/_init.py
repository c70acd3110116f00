"""Dask's initialisation of mixtures in a bounded number of passes over the data.

The generic ``init="kmeans"`` indexes rows, sorts and runs Lloyd iterations
on the array itself: on a Dask array each step is a compute (101 computes
and 600k tasks for 100k points). Here:

- a sample of about ``max(8192, 256 K)`` points, each kept with probability
  proportional to its weight, is drawn on the workers (one pass) and pulled
  to the client, where the generic NumPy k-means runs on it;
- `LLOYD_PASSES` Lloyd passes over all points follow, each computing only
  the (K, d) sums and (K,) counts;
- the start is each point's nearest centre, lazily: EM's first M-step reads it.

So "kmeans" costs ``2 + LLOYD_PASSES`` passes (the weights' sum, which reads
only the weights, the sample and the Lloyd passes) before the M-step's.
"k-means++" seeds on the sample and "random_from_data" draws K distinct
points of the sample (so by weight, where the generic draws uniformly among
points of positive weight); both take one pass. "random" draws its (N, K)
responsibilities chunk by chunk on the workers. Every draw comes from the
seed: the same seed and chunks give the same start.
"""

from __future__ import annotations

import array_api_compat.numpy as npx
import dask.array as da
import numpy as np

from diaggauss import _em, _em_loop, _kmeans
from diaggauss._dispatch import override
from diaggauss._gaps import NumpyStream

from . import GAPS
from ._overrides import _whole_columns

__all__ = ["LLOYD_PASSES", "initial_responsibilities", "initial_start", "iterate"]

# Lloyd passes over all points after the k-means of the sample.
LLOYD_PASSES = 2


def _pick(xb, wb, ub, ib, rate):
    keep = ub[:, 0] < rate * wb[:, 0]
    return np.concatenate([ib[keep].astype(np.float64), xb[keep].astype(np.float64)], axis=1)


def pull_sample(x, w, k, stream):
    """About ``max(8192, 256 k)`` rows of `x` (N, d) by weight, and their indices, as NumPy.

    One pass over `x` on the workers (a pass over `w` for its sum first);
    at most a bounded number of rows reaches the client.
    """
    rows = x.chunks[0]
    n, d = x.shape
    m = max(_kmeans.KMEANS_SAMPLE, _kmeans.KMEANS_SAMPLE_PER_COMPONENT * k)
    total = float(da.sum(w, dtype=np.float64).compute())
    rate = m / total if total > 0 else np.inf
    u = stream.rng.random((n,), chunks=(rows,))[:, None]
    idx = da.arange(n, chunks=(rows,))[:, None]
    picked = da.map_blocks(
        _pick, x, w[:, None], u, idx, rate,
        chunks=((np.nan,) * len(rows), (d + 1,)), dtype=np.float64,
    )  # fmt: skip
    got = picked.compute()
    return got[:, 1:].astype(x.dtype), got[:, 0].astype(np.int64)


def _labels(xb, centres):
    score = xb @ centres.T - 0.5 * np.sum(centres * centres, axis=1)[None, :]
    return np.argmax(score, axis=1)


def _one_hot(xb, centres):
    k = centres.shape[0]
    return (_labels(xb, centres)[:, None] == np.arange(k)[None, :]).astype(xb.dtype)


def _lloyd_chunk(xb, wb, centres):
    """``[sums (d), count]`` per centre (1, K, d + 1) of one chunk's points, at float64."""
    onehot = _one_hot(xb, centres).astype(np.float64) * wb[:, None]
    sums = onehot.T @ xb.astype(np.float64)
    return np.concatenate([sums, np.sum(onehot, axis=0)[:, None]], axis=1)[None]


def lloyd_passes(x, w, centres, passes=LLOYD_PASSES):
    """`passes` Lloyd steps from `centres` (K, d) over every chunk; the centres as NumPy.

    Each pass computes only (K, d + 1) numbers; an empty cluster keeps its centre.
    """
    k, d = centres.shape
    for _ in range(passes):
        stats = da.blockwise(
            _lloyd_chunk, "zgh", x, "zb", w, "z", centres, None,
            new_axes={"g": k, "h": d + 1}, adjust_chunks={"z": 1},
            concatenate=True, dtype=np.float64, meta=np.empty((0, 0, 0)),
        )  # fmt: skip
        total = da.sum(stats, axis=0).compute()
        counts = total[:, -1:]
        new = total[:, :-1] / np.where(counts > 0, counts, 1.0)
        centres = np.where(counts > 0, new, centres).astype(x.dtype)
    return centres


def sample_centres(xs, k, stream):
    """Centres (K, d) of the generic k-means on the sample `xs`: the lowest inertia of its runs."""
    ssq = np.sum(xs * xs, axis=1)
    ones = np.ones(xs.shape[0], dtype=xs.dtype)
    best = None
    runs = _kmeans.kmeans_labels(xs, ssq, ones, k, stream, npx)[0]  # (n, R)
    for labels in runs.T:
        onehot = _kmeans.one_hot(labels, k, xs.dtype, npx)
        counts = np.sum(onehot, axis=0)[:, None]
        centres = (onehot.T @ xs) / np.where(counts > 0, counts, 1)
        dev = xs - centres[labels]
        inertia = float(np.sum(dev * dev))
        if best is None or inertia < best[0]:
            best = (inertia, centres)
    return best[1]


def _spikes(chosen, rows, k, dtype):
    """Lazy (N, K) responsibilities with component j's weight on row ``chosen[j]`` alone."""
    at = da.arange(sum(rows), chunks=(rows,))
    return (at[:, None] == chosen[None, :]).astype(dtype)


def initial_responsibilities(x, xsq, w, k, init, stream, *, xp):
    """`diaggauss._kmeans.initial_responsibilities` in a bounded number of passes.

    One run, for all rows (``runs`` is 1, ``rows`` None); see the module's notes.
    """
    x = _whole_columns(x)
    rows = x.chunks[0]
    w = w.rechunk((rows,))
    if init == "random":
        r = stream.rng.random((x.shape[0], k), chunks=(rows, k), dtype=stream._np_dtype(x.dtype))
        r = (r / da.sum(r, axis=1, keepdims=True)).astype(x.dtype)
        return (lambda idx: r), 1, None
    xs, at = pull_sample(x, w, k, stream)
    local = NumpyStream(stream.numpy, npx)
    if init == "k-means++":
        ssq = np.sum(xs * xs, axis=1)
        ones = np.ones(xs.shape[0], dtype=xs.dtype)
        chosen = at[_kmeans.kmeans_plusplus(xs, ssq, ones, k, local, npx)[0]]
    elif init == "random_from_data":
        chosen = at[stream.numpy.choice(xs.shape[0], k, replace=xs.shape[0] < k)]
    else:
        centres = lloyd_passes(x, w, sample_centres(xs, k, local))
        start = x.map_blocks(_one_hot, centres, chunks=(rows, (k,)), dtype=x.dtype)
        return (lambda idx: start), 1, None
    return (lambda idx: _spikes(chosen, rows, k, x.dtype)), 1, None


@override(_em_loop.initial_start, GAPS)
def initial_start(xc, xsq, steps, k, method, stream, tol, *, xp):
    """`diaggauss._em_loop.initial_start`: one start, its M-step computed (settled).

    The start's responsibilities come from `initial_responsibilities` above;
    settled, the first EM iteration's graph starts from values, so its pass
    does not hold every chunk of x while the start's M-step reduces.
    """
    start, _, _ = initial_responsibilities(xc, xsq, steps.w, k, method, stream, xp=xp)
    return GAPS.settle(*_em.m_step(steps.xa, steps.w, start(None), steps.reg_covar, xp=xp))


@override(_em_loop.iterate, GAPS)
def iterate(step, logits, mc, var, *, max_iter, tol, check=None, report=None, xp):
    """`diaggauss._em_loop.iterate` with each step settled: one compute, one pass over x.

    The next step starts from the values of this one's (K, d) parameters, so
    its graph does not grow with the iterations before it.
    """

    def settled(*params):
        return GAPS.settle(*step(*params))

    logits, mc, var = GAPS.settle(logits, mc, var)  # the start with the parts the user gave
    return _em_loop.iterate.generic(
        settled, logits, mc, var, max_iter=max_iter, tol=tol, check=check, report=report, xp=xp
    )
