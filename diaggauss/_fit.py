"""Fitting: the weighted maximum-likelihood Gaussian; EM for mixtures is in `_fit_mixture`."""

from __future__ import annotations

import math

from ._dispatch import overridable
from ._distribution import MultivariateNormalDiag, get_default_validate_args
from ._dtypes import finish, work_dtype
from ._fit_mixture import FitInfo, fit_mixture
from ._gaps import gaps_for
from ._inputs import points_and_weights
from ._namespace import device_of
from ._validation import check_array

__all__ = ["FitInfo", "fit", "fit_mixture"]


def fit(x, weights=None, *, min_scale=0.0, xp=None, validate_args=None):
    """The weighted maximum-likelihood diagonal Gaussian of points `x`.

    Mean and biased standard deviation in one streamed pass: each block of
    rows gives its weighted count, mean and sum of squared deviations about
    its own first point, and the blocks are combined exactly (Chan et al.),
    in float64 where the library has it. So float32 keeps its digits for
    data far from the origin (within 1e-5 of the float64 answer at an
    offset of 1e4 standard deviations) and for many points (N = 1e7).

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
    x, weights, xp = points_and_weights(x, weights, xp)
    if isinstance(min_scale, bool) or not isinstance(min_scale, (int, float)):
        raise TypeError(f"min_scale must be a real number; got {min_scale!r}")
    if not 0 <= min_scale < math.inf:
        raise ValueError(f"min_scale must be non-negative and finite; got {min_scale!r}")
    wd = work_dtype(x.dtype, xp)
    xw = xp.astype(x, wd) if x.dtype != wd else x
    gaps = gaps_for(xp)
    if gaps.is_concrete(x) and not bool(xp.all(xp.isfinite(x))):
        check_array("x", x, xp.isfinite(x), "finite", xp)
    w = None if weights is None else (xp.astype(weights, wd) if weights.dtype != wd else weights)
    mean, var = streamed_moments(xw, w, xp=xp)
    scale = xp.sqrt(var)
    if min_scale:
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


# Rows per block of `fit`'s pass: at least this many, and sqrt(N) so that no more
# than sqrt(N) blocks are combined (float32 combines where float64 is missing).
FIT_BLOCK_ROWS = 256


def _block_moments(xb, wb, xp):
    """Per block (..., C, R, d): count, first point, mean offset from it, squared deviations."""
    shift = xb[..., :1, :]
    dev = xb - shift  # exact for points near the shift (Sterbenz), whatever the offset
    if wb is None:
        n = xp.full(xb.shape[:-2], float(xb.shape[-2]), dtype=xb.dtype, device=device_of(xb))
        mdev = xp.mean(dev, axis=-2)
        dev = dev - mdev[..., None, :]
        m2 = xp.sum(dev * dev, axis=-2)
    else:
        n = xp.sum(wb, axis=-1)
        safe = xp.where(n > 0, n, xp.ones_like(n))[..., None]
        mdev = xp.sum(wb[..., None] * dev, axis=-2) / safe
        dev = dev - mdev[..., None, :]
        m2 = xp.sum(wb[..., None] * (dev * dev), axis=-2)
    return n, shift[..., 0, :], mdev, m2


@overridable
def streamed_moments(x, w, *, xp):
    """Weighted mean and biased variance of `x` (..., N, d) over N, blocks combined exactly.

    `w` (..., N) or None (every weight 1).

    Examples
    --------
    >>> import numpy as np
    >>> streamed_moments(np.array([[1e4], [1e4 + 2]], dtype=np.float32), None, xp=np)
    (array([10001.], dtype=float32), array([1.], dtype=float32))
    """
    n = x.shape[-2]
    rows = max(FIT_BLOCK_ROWS, math.isqrt(n))
    c = n // rows
    lead = tuple(x.shape[:-2])
    parts = []
    if c:
        main = xp.reshape(x[..., : c * rows, :], (*lead, c, rows, x.shape[-1]))
        wmain = None if w is None else xp.reshape(w[..., : c * rows], (*lead, c, rows))
        parts.append(_block_moments(main, wmain, xp))
    if c * rows < n:
        tail = x[..., None, c * rows :, :]
        parts.append(_block_moments(tail, None if w is None else w[..., None, c * rows :], xp))
    cnt, shift, mdev, m2 = (
        xp.concat([p[i] for p in parts], axis=-2 if i else -1) if len(parts) > 1 else parts[0][i]
        for i in range(4)
    )
    ref = shift[..., :1, :]
    # the blocks' means as offsets from the first block's first point: every term is small
    offset = (shift - ref) + mdev
    acc = xp.float64 if gaps_for(xp).has_float64() else x.dtype
    cnt, offset, m2 = (xp.astype(a, acc) for a in (cnt, offset, m2))
    total = xp.sum(cnt, axis=-1)
    mean_off = xp.sum(cnt[..., None] * offset, axis=-2) / total[..., None]
    spread = offset - mean_off[..., None, :]
    var = (xp.sum(m2, axis=-2) + xp.sum(cnt[..., None] * (spread * spread), axis=-2)) / total[
        ..., None
    ]
    mean = ref[..., 0, :] + xp.astype(mean_off, x.dtype)
    return mean, xp.astype(var, x.dtype)
