"""Dask's whole-kernel overrides: statistics streamed chunk by chunk, combined exactly.

The generic EM kernels walk ``xa`` in blocks of 2048 rows; on a Dask array
each slice is a task, and a fit's graph grows into the hundreds of
thousands. Here each kernel runs the generic NumPy code on one chunk of rows
at a time, where it is computed (`dask.array.blockwise`), and returns only
that chunk's statistics: per component the weighted count, the mean and the
sum of squared deviations about that mean (M2), at float64. The chunks'
statistics are merged in a tree with Chan et al.'s exact pairwise formula,
so no chunk's rounding depends on how far its points lie from the others.
A pass reads each chunk of x once, and nothing of N's size reaches the
client.

Within a chunk the generic code keeps its own safeguards (the variance
recomputed around its mean where the sums cannot resolve it, the E-step at
float64 where its bound asks for it): on NumPy values they are concrete.
"""

from __future__ import annotations

import array_api_compat.numpy as npx
import dask.array as da
import numpy as np

from diaggauss import _em, _fit
from diaggauss._dispatch import override

from . import GAPS

__all__ = ["SPLIT_EVERY", "design", "em_step", "m_step", "merge", "streamed_moments"]

# Chunks' statistics merged per task of the reduction tree.
SPLIT_EVERY = 16


def merge(stats, axis=0, keepdims=True):
    """Merge groups' ``[count, mean (d), M2 (d)]`` along `axis`, exactly (Chan et al.).

    ``count`` is the (weighted) number of points, ``M2`` their summed squared
    deviations from ``mean``; merged, ``mean`` is the count-weighted mean and
    ``M2`` gains ``count * (mean - merged mean)**2`` from each group.

    Examples
    --------
    >>> import numpy as np
    >>> from diaggauss.backends.dask._overrides import merge
    >>> a, b = np.array([1.0, 2.0]), np.array([4.0, 6.0, 8.0])
    >>> part = [[len(v), v.mean(), ((v - v.mean()) ** 2).sum()] for v in (a, b)]
    >>> merge(np.array(part), keepdims=False).tolist()  # count, mean, M2 of all five
    [5.0, 4.2, 32.8]
    """
    axis = axis[0] if isinstance(axis, tuple) else axis
    d = (stats.shape[-1] - 1) // 2
    n = stats[..., :1]
    mean, m2 = stats[..., 1 : 1 + d], stats[..., 1 + d :]
    total = np.sum(n, axis=axis, keepdims=True)
    safe = np.where(total > 0, total, 1.0)
    mu = np.sum(n * mean, axis=axis, keepdims=True) / safe
    dev = mean - mu
    m2 = np.sum(m2, axis=axis, keepdims=True) + np.sum(n * dev * dev, axis=axis, keepdims=True)
    out = np.concatenate([total, mu, m2], axis=-1)
    return out if keepdims else np.squeeze(out, axis=axis)


def _merge_em(stats, axis=0, keepdims=True):
    """`merge` for the components' rows; the last row (log-likelihood, weight) is summed."""
    out = np.concatenate(
        [merge(stats[:, :-1], 0), np.sum(stats[:, -1:], axis=0, keepdims=True)], axis=1
    )
    return out if keepdims else out[0]


def _keep(stats, axis=None, keepdims=True):
    return stats


def _reduce(stats, combine):
    """One (G, 2d + 1) array from per-chunk statistics (chunks, G, 2d + 1), in a tree."""
    return da.reduction(
        stats,
        _keep,
        combine,
        combine=combine,
        axis=0,
        keepdims=False,
        dtype=np.float64,
        split_every=SPLIT_EVERY,
        concatenate=True,
        meta=np.empty((0, 0), dtype=np.float64),
    )


def _whole_columns(a):
    """`a` with its last axis in one chunk (rows stay as they are; 1-d arrays are rows)."""
    return a if a.ndim < 2 or a.numblocks[-1] == 1 else a.rechunk({a.ndim - 1: -1})


def _dask(a):
    return a if isinstance(a, da.Array) else da.asarray(np.asarray(a))


# -- the design matrix ----------------------------------------------------------------------


def _design_chunk(x, center):
    """The generic design's matrix alone: its largest squares (a slow reduction) are lazy here."""
    xc = x - center
    return np.concatenate([xc * xc, xc, np.ones((xc.shape[0], 1), dtype=xc.dtype)], axis=1)


@override(_em.design, GAPS)
def design(x, center, *, xp):
    """`diaggauss._em.design` chunk by chunk: one task per chunk of rows of `x`.

    The EM kernels below, given a design made here, build it block by block
    from `x` as they stream (a block of 2048 rows stays in cache) instead of
    reading a whole chunk of it written to memory on every pass.
    """
    x = _whole_columns(x)
    d = x.shape[1]
    args = (center, None) if isinstance(center, float | int) else (_dask(center), "cb")
    xa = da.blockwise(
        _design_chunk, "ij", x, "ib", *args,
        new_axes={"j": 2 * d + 1}, concatenate=True, dtype=x.dtype,
        meta=np.empty((0, 0), dtype=x.dtype),
    )  # fmt: skip
    xa._diaggauss_design = (x, args)
    return xa, da.max(xa[:, :d], axis=0)


# -- EM -------------------------------------------------------------------------------------


def _block_rows(k):
    """Rows per block of the generic E- and M-step sums (`diaggauss._em.SUM_ROWS`)."""
    return max(1, min(_em.SUM_ROWS, _em.BLOCK_VALUES // k))


def _from_design(xa):
    """Row blocks of a chunk of the design: ``(blocks(rows), whole())``."""

    def blocks(rows):
        for i in range(0, xa.shape[0], rows):
            yield i, min(i + rows, xa.shape[0]), xa[i : i + rows]

    return blocks, lambda: xa


def _from_points(x, center):
    """Row blocks of the design of a chunk of points, each built when it is read.

    The blocks are written into one buffer, read before the next is written:
    dask.distributed's workers return freed memory to the system from 64 KiB
    (``MALLOC_TRIM_THRESHOLD_``), and a fresh half-megabyte block per 2048
    rows made the pass 4x slower there.
    """

    def blocks(rows):
        n, d = x.shape
        buf = np.empty((min(rows, n), 2 * d + 1), dtype=x.dtype)
        buf[:, -1] = 1
        for i in range(0, n, rows):
            j = min(i + rows, n)
            block = buf[: j - i]
            xc = np.subtract(x[i:j], center, out=block[:, d : 2 * d])
            np.multiply(xc, xc, out=block[:, :d])
            yield i, j, block

    return blocks, lambda: _design_chunk(x, center)


def _pack(sums, extra, variances):
    """A chunk's (1, K + 1, 2d + 1) statistics: ``[count, mean, M2]`` per component, `extra`."""
    k, d = sums.shape[0], (sums.shape[1] - 1) // 2
    out = np.zeros((1, k + 1, 2 * d + 1))
    out[0, k, : len(extra)] = extra
    nk = sums[:, -1]
    out[0, :k, 0] = nk
    out[0, :k, 1 : d + 1] = sums[:, d : 2 * d] / np.where(nk > 0, nk, 1.0)[:, None]
    out[0, :k, d + 1 :] = variances().astype(np.float64) * nk[:, None]
    return out


def _variances(sums, dtype, reg_covar, whole, resp):
    """A chunk's variances (K, d), recomputed exactly where its sums cannot resolve them."""
    _, _, var, _, unresolved = _em.moments(sums, dtype, reg_covar, xp=npx)
    if not np.any(unresolved):
        return var
    xa = whole()
    return _em.statistics(xa, sums, lambda i, j: resp(xa, i, j), reg_covar, xp=npx)[2] - reg_covar


def _em_chunk(blocks, whole, w, logits, mc, var, reg_covar, dtype):
    k, d = mc.shape
    if w.shape[0] == 0:
        return np.zeros((1, k + 1, 2 * d + 1))
    bt = _em.natural(logits, mc, var, xp=npx).T
    ll, sums = 0.0, 0.0
    for i, j, xa in blocks(_block_rows(k)):
        part_ll, part = _em.e_sums(xa, w[i:j], bt, xp=npx)
        ll, sums = ll + part_ll, sums + part

    def resp(xa, i, j):
        e, total, _ = _em.normalise(bt @ xa[i:j, :].T, 0, npx)
        return (e * (w[None, i:j] / total)).T

    extra = (float(ll), float(np.sum(w, dtype=np.float64)))
    return _pack(sums, extra, lambda: _variances(sums, dtype, reg_covar, whole, resp))


def _em_design_chunk(xa, w, logits, mc, var, reg_covar, check):
    d = (xa.shape[1] - 1) // 2
    dtype = xa.dtype
    # where the caller gives `reach`, the chunk's own largest squares stand for it
    if check and xa.shape[0] and _em.needs_float64(np.max(xa[:, :d], axis=0), mc, var, xp=npx):
        xa = _em.design.generic(xa[:, d : 2 * d].astype(np.float64), 0.0, xp=npx)[0]
        w, logits, mc, var = (a.astype(np.float64) for a in (w, logits, mc, var))
    return _em_chunk(*_from_design(xa), w, logits, mc, var, reg_covar, dtype)


def _em_points_chunk(x, center, w, logits, mc, var, reg_covar):
    dtype = x.dtype
    # The E-step at float64 where its error bound asks (as `diaggauss.fit_mixture` does on
    # NumPy): the bound without the data's largest squares, lazy here, is its distance term
    # alone, the same for every chunk and a little more often float64 than the generic's.
    if _em.needs_float64(np.full(mc.shape[1], np.inf, dtype=mc.dtype), mc, var, xp=npx):
        x, center = x.astype(np.float64), np.asarray(center, dtype=np.float64)
        w, logits, mc, var = (a.astype(np.float64) for a in (w, logits, mc, var))
    return _em_chunk(*_from_points(x, center), w, logits, mc, var, reg_covar, dtype)


def _m_chunk(blocks, whole, w, resp, reg_covar, dtype):
    k = resp.shape[1]
    if w.shape[0] == 0:
        return np.zeros((1, k + 1, 2 * ((whole().shape[1] - 1) // 2) + 1))
    sums = 0.0
    for i, j, xa in blocks(_block_rows(k)):
        sums = sums + _em.m_sums(xa, w[i:j], resp[i:j], xp=npx)

    def weighted(xa, i, j):
        return resp[i:j] * w[i:j, None]

    return _pack(sums, (0.0, 0.0), lambda: _variances(sums, dtype, reg_covar, whole, weighted))


def _m_design_chunk(xa, w, resp, reg_covar):
    return _m_chunk(*_from_design(xa), w, resp, reg_covar, xa.dtype)


def _m_points_chunk(x, center, w, resp, reg_covar):
    return _m_chunk(*_from_points(x, center), w, resp, reg_covar, x.dtype)


def _finish(total, reg_covar, dtype):
    """``[logits, mc, var]`` per component and ``[ll, ...]`` from the merged statistics."""
    k = total.shape[0] - 1
    d = (total.shape[1] - 1) // 2
    eps = np.finfo(dtype).eps
    nk = total[:k, 0] + 10 * eps  # keeps empty components finite, as the generic kernel
    out = np.zeros(total.shape, dtype=dtype)
    out[:k, 0] = np.log(nk / np.sum(nk))
    out[:k, 1 : d + 1] = total[:k, 1 : d + 1]
    out[:k, d + 1 :] = np.maximum(total[:k, d + 1 :] / nk[:, None], 0).astype(dtype) + reg_covar
    wsum = total[k, 1]
    out[k, 0] = total[k, 0] / wsum if wsum else 0.0
    return out


def _statistics(stats, reg_covar, dtype):
    """``(ll, logits, mc, var)`` (lazy) from per-chunk statistics."""
    k = stats.shape[1] - 1
    d = (stats.shape[2] - 1) // 2
    done = _reduce(stats, _merge_em).map_blocks(_finish, reg_covar, dtype, dtype=dtype)
    return done[k, 0], done[:k, 0], done[:k, 1 : d + 1], done[:k, d + 1 :]


def _chunked(xa, w, *others, fuse=True):
    """Blockwise inputs for `xa`: its points and centre where `design` made it (and `fuse`).

    Returns whether they are points, the inputs, and `w` and `others` in the same row chunks.
    """
    source = getattr(xa, "_diaggauss_design", None) if fuse else None
    if source is not None:
        x, center = source
        inputs, rows = (x, "za", *center), x.chunks[0]
    else:
        xa = _whole_columns(xa)
        inputs, rows = (xa, "za"), xa.chunks[0]
    aligned = [_whole_columns(_dask(a)).rechunk({0: rows}) for a in (w, *others)]
    return source is not None, inputs, aligned


def _per_chunk(fn, inputs, k, d, *args):
    return da.blockwise(
        fn, "zgh", *inputs, *args,
        new_axes={"g": k + 1, "h": 2 * d + 1}, adjust_chunks={"z": 1},
        concatenate=True, dtype=np.float64, meta=np.empty((0, 0, 0)),
    )  # fmt: skip


@override(_em.em_step, GAPS)
def em_step(xa, w, logits, mc, var, reg_covar, *, reach=None, xp):
    """`diaggauss._em.em_step`: one task per chunk of rows, statistics merged exactly.

    Lazy: nothing is computed until the caller computes (`Gaps.settle`).
    """
    # `reach` asks for the float64 check, on each chunk's design
    points, inputs, (w,) = _chunked(xa, w, fuse=reach is None)
    k, d = mc.shape
    params = (w, "z", _dask(logits), "k", _dask(mc), "kb", _dask(var), "kb", reg_covar, None)
    if points:
        stats = _per_chunk(_em_points_chunk, inputs, k, d, *params)
    else:
        stats = _per_chunk(_em_design_chunk, inputs, k, d, *params, reach is not None, None)
    return _statistics(stats, reg_covar, xa.dtype)


@override(_em.m_step, GAPS)
def m_step(xa, w, resp, reg_covar, *, xp):
    """`diaggauss._em.m_step`: one task per chunk of rows, statistics merged exactly."""
    points, inputs, (w, resp) = _chunked(xa, w, resp)
    k, d = resp.shape[1], (xa.shape[1] - 1) // 2
    fn = _m_points_chunk if points else _m_design_chunk
    stats = _per_chunk(fn, inputs, k, d, w, "z", resp, "zk", reg_covar, None)
    return _statistics(stats, reg_covar, xa.dtype)[1:]


# -- fit --------------------------------------------------------------------------------------


def _fit_chunk(x, w):
    """``[count, mean, M2]`` (..., 1, 2d + 1) of one chunk, by the generic one-pass kernel.

    The kernel runs on the chunk less its first point, so its mean comes back
    as a small offset from that point: the sum is the mean at float64, which the
    exact merge needs (a float32 mean at 1e4 is off by 5e-4).
    """
    shape = (*x.shape[:-2], 1, 2 * x.shape[-1] + 1)
    if x.shape[-2] == 0:
        return np.zeros(shape)
    shift = x[..., :1, :]
    offset, var = _fit.streamed_moments.generic(x - shift, w, xp=npx)
    mean = shift[..., 0, :].astype(np.float64) + offset.astype(np.float64)
    n = np.sum(w, axis=-1, dtype=np.float64) if w is not None else float(x.shape[-2])
    n = np.broadcast_to(np.asarray(n, dtype=np.float64), x.shape[:-2])[..., None]
    parts = [n, mean, var.astype(np.float64) * n]
    return np.concatenate(parts, axis=-1)[..., None, :]


def _merge_fit(stats, axis, keepdims=True):
    return merge(stats, axis=-2, keepdims=keepdims)


def _moments(total, dtype):
    d = (total.shape[-1] - 1) // 2
    n = total[..., :1]
    var = total[..., 1 + d :] / np.where(n > 0, n, 1.0)
    return np.concatenate([total[..., 1 : 1 + d], var], axis=-1).astype(dtype)


@override(_fit.streamed_moments, GAPS)
def streamed_moments(x, w, *, xp):
    """`diaggauss._fit.streamed_moments`: one task per chunk, chunks merged exactly.

    One pass over `x`; the result stays lazy.
    """
    x = _whole_columns(x)
    lead = "abcdefgh"[: x.ndim - 2]
    d = x.shape[-1]
    w_args = (None, None) if w is None else (_dask(w).rechunk(x.chunks[:-1]), lead + "n")
    stats = da.blockwise(
        _fit_chunk, lead + "nj", x, lead + "nb", *w_args,
        new_axes={"j": 2 * d + 1}, adjust_chunks={"n": 1}, concatenate=True,
        dtype=np.float64, meta=np.empty((0,) * x.ndim),
    )  # fmt: skip
    total = da.reduction(
        stats, _keep, _merge_fit, combine=_merge_fit, axis=x.ndim - 2, keepdims=False,
        dtype=np.float64, split_every=SPLIT_EVERY, concatenate=True,
        meta=np.empty((0,) * (x.ndim - 1)),
    )  # fmt: skip
    out = total.map_blocks(_moments, x.dtype, chunks=(*total.chunks[:-1], (2 * d,)), dtype=x.dtype)
    return out[..., :d], out[..., d:]
