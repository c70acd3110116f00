"""NumPy's whole-kernel overrides: lean log densities and KL, validation, pairwise blocks.

NumPy has no autograd and no tracer, so a fresh temporary may always be
updated in place, and ``einsum`` reduces a sum of squares without the
``z * z`` array. Each function replaces one kernel of the core with the same
signature, for NumPy arrays only; `tests/test_overrides.py` compares each
with the generic kernel on both sides of its threshold.
"""

from __future__ import annotations

import math

import numpy as np

from diaggauss import _kernels, _pairwise, _validation
from diaggauss._dispatch import override

from . import GAPS

# Up to this many parameter values, validation reads them as Python floats:
# cheaper than launching reductions (the per-step case of RL and VAE loops).
FEW_VALUES = 64
# Values of the expanded rows [(x - c)**2, x - c, 1] per block of the pairwise
# product (2 MB in float32: the block stays in cache between being written and
# being multiplied).
CHUNK_ELEMENTS = 1 << 19


# From this many values of the points, the lean forms below pay for their own
# bookkeeping (below it, NumPy's per-call overhead dominates and the generic
# kernels are as fast).
LEAN = 1 << 12
_FLOAT = (np.dtype(np.float32), np.dtype(np.float64))


def _plain(*arrays) -> bool:
    """Large, of one 32- or 64-bit floating dtype: the lean forms apply."""
    first = arrays[0]
    dtype = first.dtype
    return first.size >= LEAN and dtype in _FLOAT and all(a.dtype == dtype for a in arrays)


def _sum_squares(z):
    return np.einsum("...i,...i->...", z, z)


def _in_place(z, op, other):
    """``z op= other`` where broadcasting keeps `z`'s shape (`z` is a fresh temporary)."""
    shape = np.shape(other)
    if shape == z.shape or np.broadcast_shapes(z.shape, shape) == z.shape:
        return op(z, other, out=z)
    return op(z, other)


def _density(maha_sq, log_z):
    """``-maha_sq / 2 - log Z``, in the sum of squares' array where shapes allow."""
    maha_sq *= -0.5
    return _in_place(maha_sq, np.subtract, log_z)


def _small(*arrays) -> bool:
    """One 32- or 64-bit floating dtype (None entries skipped): `_small_density` applies."""
    dtype = arrays[0].dtype
    return dtype in _FLOAT and all(a is None or a.dtype == dtype for a in arrays)


def _small_density(z, log_z):
    """``-sum(z**2) / 2 - log Z`` with einsum's sum of squares.

    1 us faster than ``z * z`` and ``sum``, and silent where a square
    overflows to the ``-inf`` that is the answer (a distance of 5e19 in
    float32): an ``errstate`` would cost as much again.
    """
    return -0.5 * _sum_squares(z) - log_z


@override(_kernels.log_prob, GAPS)
def log_prob(x, loc, scale, *, log_normalizer=None, xp):
    """`diaggauss._kernels.log_prob` with one temporary of the points' size."""
    if x.size < LEAN and _small(x, loc, scale, log_normalizer):
        if log_normalizer is None:
            log_normalizer = _kernels.log_normalizer_from_scale(scale, xp=xp)
        return _small_density((x - loc) / scale, log_normalizer)
    if not _plain(x, loc, scale) or (log_normalizer is not None and not _plain(x, log_normalizer)):
        return _kernels.log_prob.generic(x, loc, scale, log_normalizer=log_normalizer, xp=xp)
    if log_normalizer is None:
        log_normalizer = _kernels.log_normalizer_from_scale(scale, xp=xp)
    z = _in_place(np.subtract(x, loc), np.divide, scale)
    return _density(_sum_squares(z), log_normalizer)


@override(_kernels.log_prob_from_inv_scale, GAPS)
def log_prob_from_inv_scale(x, loc, inv_scale, log_normalizer, *, xp):
    """`diaggauss._kernels.log_prob_from_inv_scale` with one temporary of the points' size."""
    if x.size < LEAN and _small(x, loc, inv_scale, log_normalizer):
        return _small_density((x - loc) * inv_scale, log_normalizer)
    if not _plain(x, loc, inv_scale, log_normalizer):
        return _kernels.log_prob_from_inv_scale.generic(x, loc, inv_scale, log_normalizer, xp=xp)
    z = _in_place(np.subtract(x, loc), np.multiply, inv_scale)
    return _density(_sum_squares(z), log_normalizer)


@override(_kernels.log_prob_from_log_scale, GAPS)
def log_prob_from_log_scale(x, loc, log_scale, *, log_normalizer=None, half_inv=None, xp):
    """`diaggauss._kernels.log_prob_from_log_scale` with one temporary of the points' size."""
    kept = [a for a in (log_normalizer, half_inv) if a is not None]
    if x.size < LEAN and _small(x, loc, log_scale, log_normalizer, half_inv):
        if log_normalizer is None:
            log_normalizer = _kernels.log_normalizer(log_scale, xp=xp)
        h = _kernels.half_inv_scale(log_scale, xp) if half_inv is None else half_inv
        return _small_density((x - loc) * h * h, log_normalizer)
    if not _plain(x, loc, log_scale, *kept):
        return _kernels.log_prob_from_log_scale.generic(
            x, loc, log_scale, log_normalizer=log_normalizer, half_inv=half_inv, xp=xp
        )
    if log_normalizer is None:
        log_normalizer = _kernels.log_normalizer(log_scale, xp=xp)
    z = np.subtract(x, loc)
    if half_inv is None and float(log_scale.min()) >= -_log_max(log_scale.dtype):
        # 1 / scale is finite: one multiply (the minimum reads the parameter once,
        # the generic kernel's second multiply and clamp cost a pass over x and two)
        z = _in_place(z, np.multiply, np.exp(-log_scale))
    else:
        h = _kernels.half_inv_scale(log_scale, np) if half_inv is None else half_inv
        z = _in_place(_in_place(z, np.multiply, h), np.multiply, h)
    return _density(_sum_squares(z), log_normalizer)


def _log_max(dtype):
    """``log`` of the largest float of `dtype`, less one: ``exp(-log_scale)`` is finite above."""
    return math.log(float(np.finfo(dtype).max)) - 1.0


@override(_kernels.kl_divergence_from_log_scale, GAPS)
def kl_divergence_from_log_scale(loc_p, log_scale_p, loc_q, log_scale_q, *, inv_scale_q=None, xp):
    """`diaggauss._kernels.kl_divergence_from_log_scale` with two temporaries."""
    args = (loc_p, log_scale_p, loc_q, log_scale_q)
    if not _plain(*args) or (inv_scale_q is not None and not _plain(loc_p, inv_scale_q)):
        return _kernels.kl_divergence_from_log_scale.generic(*args, inv_scale_q=inv_scale_q, xp=xp)
    if inv_scale_q is None:  # as the generic kernel: 1 / s_q may overflow
        h = _kernels.half_inv_scale(log_scale_q, np)
        u = _in_place(_in_place(np.subtract(loc_p, loc_q), np.multiply, h), np.multiply, h)
    else:
        u = _in_place(np.subtract(loc_p, loc_q), np.multiply, inv_scale_q)
    t = np.subtract(log_scale_p, log_scale_q)
    t *= 2.0
    e = np.expm1(t)
    e -= t
    _series_where_small(e, t)
    total = _in_place(e.sum(axis=-1), np.add, _sum_squares(u))
    total *= 0.5
    return total


@override(_kernels.kl_divergence, GAPS)
def kl_divergence(loc_p, scale_p, loc_q, scale_q, *, xp):
    """`diaggauss._kernels.kl_divergence` at float64: the series taken where needed, no select.

    Float64 has no wider dtype for ``expm1(t) - t``, so the generic kernel
    selects the series under ``|t| < 1/2`` with ``where``, which on the mask
    of ordinary scales ran 12x the hand formula at (4096, 64).
    """
    args = (loc_p, scale_p, loc_q, scale_q)
    if not _plain(*args) or loc_p.dtype != np.float64 or len({a.shape for a in args}) > 1:
        return _kernels.kl_divergence.generic(*args, xp=xp)
    t = _kernels.log_ratio(scale_p, scale_q, np)
    t *= 2.0
    e = np.expm1(t)
    e -= t
    _series_where_small(e, t)
    u = np.subtract(loc_p, loc_q)
    u /= scale_q
    total = e.sum(axis=-1)
    total += _sum_squares(u)
    total *= 0.5
    return total


def _series_where_small(e, t):
    """``e = exp_excess(t)`` from ``e = expm1(t) - t``: the series where the kernel takes it.

    Only the selected elements are summed, with the generic kernel's
    operations, so the values are its values.
    """
    # flat indices, take and put: boolean indexing cost 10x as much at 4M values
    small = np.flatnonzero(np.abs(t) < _kernels.EXP_EXCESS_SERIES_BELOW)
    if small.size:
        np.put(e, small, _kernels.exp_excess_series(t.ravel().take(small), np))


@override(_validation.values_ok, GAPS)
def values_ok(loc, param, domain, *, xp) -> bool:
    """`diaggauss._validation.values_ok`: Python floats for a few values, else the extremes."""
    if loc.size + param.size <= FEW_VALUES:
        return _validation.few_values_ok(loc.tolist(), param.tolist(), domain)
    if loc.size == 0 or param.size == 0:
        return True
    low = float(param.min())
    extremes = (float(loc.min()), float(loc.max()), float(param.max()), low)
    return all(map(math.isfinite, extremes)) and (low > 0 if domain == "positive" else True)


@override(_pairwise.quadratic_product, GAPS)
def quadratic_product(x, center, b_t, *, reach=False, chunk_rows=None, xp):
    """`diaggauss._pairwise.quadratic_product` in blocks of rows, into a preallocated result.

    The expanded rows of one block are the only temporary (allocated once per
    call), so memory stays at the output plus one block.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        # squares past the range become inf, and the caller's error bound with
        # them: it redoes the product in a form that does not square them
        return _quadratic_blocks(x, center, b_t, reach, chunk_rows)


def _quadratic_blocks(x, center, b_t, reach, chunk_rows):
    *lead, n, d = x.shape
    width = 2 * d + 1
    # the running maximum's d columns count against the block's memory too
    rows = chunk_rows or max(1, CHUNK_ELEMENTS // (width + (d if reach else 0)))
    k = b_t.shape[-1]
    out = np.empty((*lead, n, k), dtype=np.result_type(x.dtype, b_t.dtype))
    block = np.empty((*lead, min(rows, n), width), dtype=x.dtype)
    block[..., 2 * d] = 1.0
    top = None
    for i in range(0, n, rows):
        j = min(i + rows, n)
        buf = block[..., : j - i, :]
        xc, sq = buf[..., d : 2 * d], buf[..., :d]
        np.subtract(x[..., i:j, :], center, out=xc)
        np.multiply(xc, xc, out=sq)
        if reach:
            # elementwise while the blocks stream, one reduction at the end (a
            # reduction per block over the row axis cost twice as much)
            if top is None:
                top = sq.copy()
            else:
                head = top[..., : j - i, :]
                np.maximum(head, sq, out=head)
        np.matmul(buf, b_t, out=out[..., i:j, :])
    return out, (top.max(axis=-2, keepdims=True) if reach else None)
