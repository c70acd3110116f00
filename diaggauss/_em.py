"""The statistics of expectation-maximisation for diagonal mixtures, as kernels.

EM works on the design matrix ``xa = [xc**2, xc, 1]`` (N, 2d + 1) of the
data centred on its weighted mean, ``xc = x - c``, built once per fit
(`design`); means are held centred too. Then an iteration is two matrix
products over `xa` and one exponential:

- E-step: ``joint = xa @ b`` with ``b = [-p/2, m p, bias]`` (2d + 1, K) from
  the parameters (`natural`), normalised over the components;
- M-step: ``resp.T @ xa`` gives every component's weighted count, sum and
  sum of squares (K, 2d + 1) at once.

Both stream over blocks of rows (`BLOCK_VALUES`), so the (rows, K)
temporaries stay in cache, and the per-block sums are added in float64 where
the library has it: float32 sums of a million rows keep their digits.

A variance ``E[xc**2] - mc**2`` loses digits when a component is tight and
far from ``c``. Its rounding error is bounded by ``VARIANCE_ULPS * eps *
E[xc**2]``; where that bound passes ``VARIANCE_RTOL`` of the regularised
variance, the entry is recomputed around its own mean, point by point. A
constant column (8-bit pixels at 0) has ``E[xc**2] == 0`` or the variance
floor ``reg_covar`` far above the bound, so ordinary data never takes that
path.
"""

from __future__ import annotations

import math

from ._dispatch import overridable
from ._gaps import gaps_for
from ._kernels import log_softmax
from ._namespace import HALF_LOG_2PI, device_of

__all__ = [
    "design",
    "e_step",
    "e_sums",
    "em_step",
    "m_step",
    "m_sums",
    "moments",
    "natural",
    "needs_float64",
    "normalise",
    "statistics",
]

# Values of a (rows, K) temporary per block of rows.
BLOCK_VALUES = 1 << 16
# Rows per block at most: each block's float32 product is one partial sum, and MKL's
# over 32768 rows lost 5e-5 of a sum of squares, over 4096 1e-6, over 2048 less.
SUM_ROWS = 2048
# Bound on the rounding error of a block's sums of squares, in ulps of the sum.
VARIANCE_ULPS = 16
# A variance is recomputed exactly where its bound passes this much of var + reg_covar.
VARIANCE_RTOL = 1e-3
# The E-step's expansion error bound, in nats, past which it runs at float64.
ESTEP_ERROR_LIMIT = 1e-2


@overridable
def design(x, center, *, xp):
    """``[xc**2, xc, 1]`` (N, 2d + 1) for ``xc = x - center``, and the largest ``xc**2`` (d,)."""
    xc = x - center
    sq = xc * xc
    ones = xp.ones_like(xc[:, :1])  # placed (sharded) as the rows of xc
    return xp.concat([sq, xc, ones], axis=-1), xp.max(sq, axis=0)


def natural(logits, mc, var, *, xp):
    """``[-p/2, m p, bias]`` transposed, (2d + 1, K): ``xa @ b`` is the joint log density."""
    prec = 1.0 / var
    mp = mc * prec
    d = mc.shape[-1]
    bias = (
        log_softmax(logits, -1, xp)
        - 0.5 * xp.sum(mc * mp, axis=-1)
        - 0.5 * xp.sum(xp.log(var), axis=-1)
        - d * HALF_LOG_2PI
    )
    return xp.matrix_transpose(xp.concat([-0.5 * prec, mp, bias[:, None]], axis=-1))


def _rows(xa, k):
    return max(1, min(SUM_ROWS, BLOCK_VALUES // k))


def _acc_dtype(dtype, xp):
    """float64 for adding block sums where the library has it; else the working dtype."""
    return xp.float64 if gaps_for(xp).has_float64() else dtype


def normalise(joint, axis, xp):
    """Unnormalised responsibilities, their sums and the log normaliser along `axis`."""
    top = xp.max(joint, axis=axis, keepdims=True)
    # a point every component rules out (all -inf) keeps a finite shift
    top = xp.where(xp.isfinite(top), top, xp.zeros_like(top))
    # responsibilities below the smallest normal number are 0 to the sums, but their
    # subnormal results made torch's exp 7x slower on separated clusters
    floor = math.log(xp.finfo(joint.dtype).smallest_normal) + 2
    floor = xp.asarray(floor, dtype=joint.dtype, device=device_of(joint))
    e = xp.exp(xp.maximum(joint - top, floor))
    total = xp.sum(e, axis=axis, keepdims=True)
    return e, total, top + xp.log(total)


def _blocks(n, rows):
    return [(i, min(i + rows, n)) for i in range(0, n, rows)]


def e_step(xa, w, b, *, xp):
    """Weighted mean log-likelihood and the (N, K) responsibilities, given ``b = natural(...)``."""
    e, total, norm = normalise(xa @ b, -1, xp)
    return xp.sum(w * norm[:, 0]) / xp.sum(w), e / total


def needs_float64(reach, mc, var, *, xp) -> bool:
    """Whether the E-step's expansion may be off by more than `ESTEP_ERROR_LIMIT` nats.

    False where float64 is missing or the values are traced; one value read.
    """
    wd = mc.dtype
    gaps = gaps_for(xp)
    if reach is None or xp.finfo(wd).bits >= 64 or not gaps.has_float64():
        return False
    if not gaps.is_concrete(mc):
        return False
    # A point's responsibility for component k matters where it lies within
    # `_maha_reach` of it, so there ``xc**2 <= 2 mc**2 + 2 (x - m)**2``; the data's
    # largest squares `reach` bound it too. The bound of all points at once
    # (reach alone) sent ordinary blobs (K = 64, d = 64) to float64.
    d = mc.shape[-1]
    near = 2 * xp.sum(mc * mc / var, axis=-1) + 2 * _maha_reach(d)
    anywhere = xp.sum(reach[None, :] / var, axis=-1)
    own = xp.sum(mc * mc / var, axis=-1)
    bound = xp.max(xp.minimum(near, anywhere) + own)
    return not bool(8 * float(xp.finfo(wd).eps) * float(bound) <= ESTEP_ERROR_LIMIT)


def _maha_reach(d):
    """A squared Mahalanobis distance few points of a component pass (chi-square, d dof)."""
    return d + 8 * math.sqrt(2 * d) + 20


@overridable
def em_step(xa, w, logits, mc, var, reg_covar, *, reach=None, xp):
    """One E-step and one M-step: ``(mean log-likelihood, logits, mc, var)``.

    `xa` is `design`'s matrix, `mc` the centred means. Where `reach` is given
    and the E-step's expansion error bound passes `ESTEP_ERROR_LIMIT` nats
    (tight components far from the centre), the step runs at float64.
    """
    wd = xa.dtype
    if needs_float64(reach, mc, var, xp=xp):
        f64 = xp.float64
        d = (xa.shape[1] - 1) // 2
        # squares again at float64: float32 squares carry an error of the variances' size
        out = em_step(
            design(xp.astype(xa[:, d : 2 * d], f64), 0.0, xp=xp)[0],
            xp.astype(w, f64),
            *(xp.astype(a, f64) for a in (logits, mc, var)),
            reg_covar,
            xp=xp,
        )
        return tuple(xp.astype(a, wd) for a in out)
    # component-major blocks (K, rows): NumPy reduces over a leading axis at memory speed,
    # over a short trailing one several times slower
    bt = xp.matrix_transpose(natural(logits, mc, var, xp=xp))
    ll, sums = e_sums(xa, w, bt, xp=xp)
    ll = xp.astype(ll / xp.astype(xp.sum(w), ll.dtype), wd)

    def resp(i, j):
        e, total, _ = normalise(bt @ xp.matrix_transpose(xa[i:j, :]), 0, xp)
        return xp.matrix_transpose(e * (w[None, i:j] / total))

    return (ll, *statistics(xa, sums, resp, reg_covar, xp=xp))


@overridable
def m_step(xa, w, resp, reg_covar, *, xp):
    """Log weights, centred means and variances (K, d) from responsibilities `resp` (N, K)."""
    sums = m_sums(xa, w, resp, xp=xp)
    return statistics(xa, sums, lambda i, j: resp[i:j, :] * w[i:j, None], reg_covar, xp=xp)


def e_sums(xa, w, bt, *, xp):
    """The E-step over blocks of rows: ``sum(w * log normaliser)`` and the M-step's sums.

    `bt` is ``natural(...)`` transposed (K, 2d + 1); the sums ``resp.T @ xa``
    (K, 2d + 1) hold the responsibilities weighted by `w`. Both are added
    block by block at float64 where the library has it.
    """
    acc = _acc_dtype(xa.dtype, xp)
    ll = xp.zeros((), dtype=acc, device=device_of(xa))
    sums = xp.zeros((bt.shape[0], xa.shape[1]), dtype=acc, device=device_of(xa))
    for i, j in _blocks(xa.shape[0], _rows(xa, bt.shape[0])):
        block = xa[i:j, :]
        e, total, norm = normalise(bt @ xp.matrix_transpose(block), 0, xp)
        wi = w[None, i:j]
        ll = ll + xp.astype(xp.sum(wi * norm), acc)
        sums = sums + xp.astype((e * (wi / total)) @ block, acc)
    return ll, sums


def m_sums(xa, w, resp, *, xp):
    """``(resp * w).T @ xa`` (K, 2d + 1) over blocks of rows, added at float64 where possible."""
    acc = _acc_dtype(xa.dtype, xp)
    k = resp.shape[1]
    sums = xp.zeros((k, xa.shape[1]), dtype=acc, device=device_of(xa))
    for i, j in _blocks(xa.shape[0], _rows(xa, k)):
        rw = resp[i:j, :] * w[i:j, None]
        sums = sums + xp.astype(xp.matrix_transpose(rw) @ xa[i:j, :], acc)
    return sums


def moments(sums, dtype, reg_covar, *, xp):
    """Log weights, centred means, raw variances, counts, and the unresolved variances.

    From the sums ``resp.T @ xa`` (K, 2d + 1); a variance is unresolved where
    its rounding bound passes `VARIANCE_RTOL` of ``var + reg_covar``.
    """
    d = (sums.shape[1] - 1) // 2
    eps = xp.finfo(dtype).eps
    nk = sums[:, -1] + 10 * eps  # keeps empty components finite, as scikit-learn
    logits = xp.astype(xp.log(nk / xp.sum(nk)), dtype)
    mc = sums[:, d : 2 * d] / nk[:, None]
    second = sums[:, :d] / nk[:, None]
    var = second - mc * mc
    var = xp.where(var > 0, var, xp.zeros_like(var))
    mc, var, second = xp.astype(mc, dtype), xp.astype(var, dtype), xp.astype(second, dtype)
    unresolved = VARIANCE_ULPS * eps * second > VARIANCE_RTOL * (var + reg_covar)
    return logits, mc, var, xp.astype(nk, dtype), unresolved


def statistics(xa, sums, resp, reg_covar, *, xp):
    """Log weights, centred means and variances from the sums ``resp.T @ xa`` (K, 2d + 1).

    `resp(i, j)` gives the weighted responsibilities of rows i to j, read
    again only for the entries whose variance the sums cannot resolve.
    """
    d = (xa.shape[1] - 1) // 2
    logits, mc, var, nk, unresolved = moments(sums, xa.dtype, reg_covar, xp=xp)
    if gaps_for(xp).is_concrete(unresolved) and bool(xp.any(unresolved)):
        bad = xp.nonzero(xp.any(unresolved, axis=1))[0]
        exact = _exact_variance(xa, resp, mc, bad, nk, d, xp)
        var = xp.where(unresolved, _scatter_rows(exact, bad, var, xp), var)
    return logits, mc, var + reg_covar


def _exact_variance(xa, resp, mc, comps, nk, d, xp):
    """``sum_n resp[n, k] (xc_n - m_k)**2 / nk`` for the components `comps`, in blocks of rows."""
    m = xp.take(mc, comps, axis=0)  # (B, d)
    b = m.shape[0]
    total = xp.zeros((b, d), dtype=xa.dtype, device=device_of(xa))
    rows = max(1, BLOCK_VALUES // max(b * d, 1))
    for i, j in _blocks(xa.shape[0], rows):
        r = xp.take(resp(i, j), comps, axis=1)  # (rows, B)
        dev = xa[i:j, None, d : 2 * d] - m[None, :, :]
        total = total + xp.sum(r[:, :, None] * (dev * dev), axis=0)
    return total / xp.take(nk, comps, axis=0)[:, None]


def _scatter_rows(values, rows, like, xp):
    """An array like `like` with ``values[i]`` at row ``rows[i]`` (other rows arbitrary)."""
    k = like.shape[0]
    onehot = xp.astype(
        xp.reshape(rows, (-1, 1)) == xp.arange(k, device=device_of(like))[None, :], like.dtype
    )  # (B, K)
    return xp.matrix_transpose(onehot) @ values
