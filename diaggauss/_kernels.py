"""The kernels of one diagonal Gaussian: each formula once, in the array API standard.

Every kernel is a pure function of arrays and the namespace ``xp``: it holds
no state, tests no library, size or dtype, and computes in the working dtype
(float32 for 16-bit inputs) before casting back. Shapes broadcast as in
NumPy; the last axis is the event axis of size ``d``. Forms that take derived
values (`log_prob_from_inv_scale`) serve callers that keep them between calls
(the distribution object keeps ``1 / scale`` and ``log Z``).

Adapters may replace a kernel for their library with a faster whole kernel
of the same signature (`diaggauss._dispatch`).
"""

from __future__ import annotations

import math

from ._dispatch import overridable
from ._dtypes import event_size, finish, ranked, working
from ._gaps import gaps_for
from ._namespace import HALF_LOG_2PI, device_of
from ._special import log_ndtr_standard

__all__ = [
    "cross_entropy",
    "cross_entropy_from_log_scale",
    "entropy",
    "entropy_from_log_normalizer",
    "far_responsibilities",
    "gather_component",
    "half_inv_scale",
    "kl_divergence",
    "kl_divergence_from_log_scale",
    "log_cdf",
    "log_ndtr",
    "log_normalizer",
    "log_normalizer_from_scale",
    "log_prob",
    "log_prob_from_inv_scale",
    "log_prob_from_log_scale",
    "log_prob_of_noise",
    "logsumexp",
    "mahalanobis",
    "over_scale",
    "reparameterize",
    "wasserstein2",
]


@overridable
def log_normalizer(log_scale, *, xp):
    """``log Z = sum(log scale) + d/2 log(2 pi)``: minus the log density at the mode."""
    dtype, log_scale = working(xp, log_scale)
    d = event_size(log_scale, xp)
    return finish(xp.sum(log_scale, axis=-1) + d * HALF_LOG_2PI, dtype, xp)


_log_normalizer = log_normalizer


@overridable
def log_normalizer_from_scale(scale, *, xp):
    """``log Z`` from the scale: ``sum(log scale) + d/2 log(2 pi)``."""
    dtype, scale = working(xp, scale)
    return finish(log_normalizer(xp.log(scale), xp=xp), dtype, xp)


@overridable
def log_prob(x, loc, scale, *, log_normalizer=None, xp):
    """``log N(x | loc, diag(scale**2)) = -0.5 * sum(((x - loc) / scale)**2) - log Z``.

    `log_normalizer` is ``log Z`` when the caller keeps it (see `log_normalizer`).
    """
    dtype, x, loc, scale, log_z = working(xp, x, loc, scale, reduced=(log_normalizer,))
    if log_z is None:
        log_z = log_normalizer_from_scale(scale, xp=xp)
    z = (x - loc) / scale
    return finish(-0.5 * xp.sum(z * z, axis=-1) - log_z, dtype, xp)


@overridable
def log_prob_from_log_scale(x, loc, log_scale, *, log_normalizer=None, half_inv=None, xp):
    """`log_prob` from the log-scale, used as is (never ``log(exp(log_scale))``).

    ``(x - loc) / scale`` is ``((x - loc) * h) * h`` with ``h`` the
    `half_inv_scale`: finite where ``1 / scale`` overflows (log-scales below
    -88.7 in float32), so the density is right for any finite log-scale.
    `log_normalizer` and `half_inv` are ``log Z`` and ``h`` when the caller keeps them.
    """
    dtype, x, loc, log_scale, h, log_z = working(
        xp, x, loc, log_scale, half_inv, reduced=(log_normalizer,)
    )
    if log_z is None:
        log_z = _log_normalizer(log_scale, xp=xp)
    if h is None:
        h = half_inv_scale(log_scale, xp)
    z = (x - loc) * h * h
    return finish(-0.5 * xp.sum(z * z, axis=-1) - log_z, dtype, xp)


_HALF_INV_FLOOR: dict = {}


def half_inv_scale(log_scale, xp):
    """``h = exp(-log_scale / 2)``, the log-scale clamped below at `half_inv_floor`.

    ``(v * h) * h`` is ``v / scale`` to a few ulp wherever that is finite,
    and 0 for ``v = 0`` (``v * exp(-log_scale)`` is NaN there once the
    inverse overflows). Below the floor the clamped ``h**2`` is so large
    that any nonzero ``v``, subnormal ones too, gives a square past the
    range, as the exact value does.
    """
    floor = half_inv_floor(log_scale.dtype, xp)
    # a 0-d array: a Python number in maximum breaks torch.compile's graph (compat's
    # result_type), and clip cost 7 us on NumPy's small arrays
    floor = xp.asarray(floor, dtype=log_scale.dtype, device=device_of(log_scale))
    return xp.exp(-0.5 * xp.maximum(log_scale, floor))


def over_scale(v, log_scale, xp):
    """``v / exp(log_scale)`` as ``(v * h) * h`` (`half_inv_scale`): finite where the value is."""
    h = half_inv_scale(log_scale, xp)
    return v * h * h


def half_inv_floor(dtype, xp):
    """The log-scale where `half_inv_scale` clamps, midway in its valid interval.

    It must be low enough that ``tiny * h**2`` (``tiny`` the smallest
    subnormal) squares past twice the largest float, and high enough that
    ``h`` itself is finite.
    """
    key = (id(xp), dtype)
    floor = _HALF_INV_FLOOR.get(key)
    if floor is None:
        fi = xp.finfo(dtype)
        log_max = math.log(float(fi.max))
        log_tiny = math.log(float(fi.smallest_normal) * float(fi.eps))
        low = 0.5 * log_max + math.log(2.0) - log_tiny
        floor = _HALF_INV_FLOOR[key] = -0.5 * (low + 2.0 * log_max)
    return floor


@overridable
def log_prob_from_inv_scale(x, loc, inv_scale, log_normalizer, *, xp):
    """`log_prob` from ``1 / scale`` and ``log Z``: ``-sum(((x - loc) * inv_scale)**2)/2 - log Z``.

    The form for callers that keep both (the distribution object).
    """
    dtype, x, loc, inv_scale, log_z = working(xp, x, loc, inv_scale, reduced=(log_normalizer,))
    z = (x - loc) * inv_scale
    return finish(-0.5 * xp.sum(z * z, axis=-1) - log_z, dtype, xp)


@overridable
def log_prob_of_noise(eps, log_normalizer, *, xp):
    """Log density of ``loc + scale * eps`` from the standard normal noise `eps` itself.

    ``-0.5 * sum(eps**2) - log Z``: no subtraction or division, so cheaper and
    more accurate than `log_prob` of the sample.
    """
    dtype, eps, log_z = working(xp, eps, reduced=(log_normalizer,))
    return finish(-0.5 * xp.sum(eps * eps, axis=-1) - log_z, dtype, xp)


@overridable
def mahalanobis(x, loc, scale, *, xp):
    """The Mahalanobis distance ``sqrt(sum(((x - loc) / scale)**2))`` (not squared).

    Scaled by the largest coordinate before squaring, so it is finite
    wherever the distance is representable (1e20 in float32).
    """
    dtype, x, loc, scale = working(xp, x, loc, scale)
    return finish(scaled_norm((x - loc) / scale, xp), dtype, xp)


def scaled_norm(v, xp, w=None):
    """``sqrt(sum(v**2) + sum(w**2))`` over the last axis, without overflow or underflow.

    The squares are taken of values divided by the largest magnitude, so the
    result is finite and exact to rounding wherever it is representable.
    """
    m = xp.max(xp.abs(v), axis=-1)
    if w is not None:
        m = xp.maximum(m, xp.max(xp.abs(w), axis=-1))
    safe = xp.where((m > 0) & (m < float("inf")), m, xp.ones_like(m))[..., None]
    r = v / safe
    total = xp.sum(r * r, axis=-1)
    if w is not None:
        r = w / safe
        total = total + xp.sum(r * r, axis=-1)
    return xp.sqrt(total) * safe[..., 0]


@overridable
def log_ndtr(x, *, xp):
    """``log(Phi(x))``, the log of the standard normal CDF, accurate far in both tails.

    Below 64 bits it is evaluated at float64 where the library has it and
    rounded once: the series' own rounding in float32 is up to 6 ulp (near 0
    and near 12), where the rounded float64 value is within one.
    """
    dtype, x = working(xp, x)
    wide = _wider_dtype(x.dtype, xp)
    if wide is None:
        return finish(log_ndtr_standard(x, xp), dtype, xp)
    bits = xp.finfo(x.dtype).bits
    return finish(xp.astype(log_ndtr_standard(xp.astype(x, wide), xp, bits), x.dtype), dtype, xp)


def _wider_dtype(dtype, xp):
    """float64 where the library has it and `dtype` is narrower; else None."""
    if xp.finfo(dtype).bits >= 64 or not gaps_for(xp).has_float64():
        return None
    return xp.float64


@overridable
def log_cdf(x, loc, scale, *, xp):
    """``log P(X <= x) = sum(log Phi((x - loc) / scale))`` over the event axis."""
    dtype, x, loc, scale = working(xp, x, loc, scale)
    return finish(xp.sum(log_ndtr((x - loc) / scale, xp=xp), axis=-1), dtype, xp)


@overridable
def entropy(scale, *, xp):
    """Differential entropy of ``N(., diag(scale**2))``: ``sum(log s) + d/2 (1 + log 2 pi)``."""
    dtype, scale = working(xp, scale)
    log_z = log_normalizer_from_scale(scale, xp=xp)
    return finish(entropy_from_log_normalizer(log_z, scale.shape[-1]), dtype, xp)


def entropy_from_log_normalizer(log_normalizer, d):
    """Differential entropy ``log Z + d/2 = sum(log scale) + d/2 (1 + log 2 pi)``."""
    return log_normalizer + 0.5 * d


@overridable
def kl_divergence_from_log_scale(loc_p, log_scale_p, loc_q, log_scale_q, *, inv_scale_q=None, xp):
    """``KL(p || q)`` from log-scales, finite where the variances under- or overflow.

    ``t = 2 (log s_p - log s_q)`` and ``u = (m_p - m_q) / s_q`` per coordinate;
    `inv_scale_q` is ``1 / s_q`` when the caller keeps it.
    """
    dtype, t, u, _ = _log_scale_terms(loc_p, log_scale_p, loc_q, log_scale_q, inv_scale_q, xp)
    return finish(_kl_from_terms(t, u, xp), dtype, xp)


@overridable
def kl_divergence(loc_p, scale_p, loc_q, scale_q, *, xp):
    """``KL(p || q)`` from the scales as given: ``t = 2 log(s_p / s_q)``, one logarithm.

    `log_ratio` keeps ``t`` accurate for nearly equal scales, where the
    rounded ratio alone was 2e-5 relative off in float32 (scales 1e-3 apart).
    """
    dtype, loc_p, scale_p, loc_q, scale_q = working(xp, loc_p, scale_p, loc_q, scale_q)
    u = (loc_p - loc_q) / scale_q
    wide = _wider_dtype(scale_p.dtype, xp)
    if wide is not None:
        # One logarithm of the ratio taken in float64: its rounding and the
        # cancellation of expm1(t) - t there stay below float32's half ulp
        # for |t| >= 1e-8, with no select (log_ratio and the series would
        # cost twice the passes for the same float32 result).
        t = 2.0 * xp.log(xp.astype(scale_p, wide) / xp.astype(scale_q, wide))
        g = xp.astype(xp.expm1(t) - t, u.dtype)
        return finish(0.5 * xp.sum(g + u * u, axis=-1), dtype, xp)
    t = 2.0 * log_ratio(scale_p, scale_q, xp)
    return finish(_kl_from_terms(t, u, xp), dtype, xp)


def log_ratio(a, b, xp):
    """``log(a / b)`` for positive `a`, `b`, to a few ulp of its own size.

    ``+-log1p((hi - lo) / lo)`` with ``lo, hi`` the smaller and larger: the
    difference is exact for ratios within 2 (where the rounded ratio would
    carry an absolute error of eps), and ``log1p`` of an argument of 1 or
    more is as accurate as ``log``; one logarithm, not two under a select.
    """
    lo, hi = xp.minimum(a, b), xp.maximum(a, b)
    gap = hi - lo
    # the sign as (a - b) / |a - b|: exactly +-1 (0 where a == b). copysign, sign and
    # where branch on the sign, and ran 10-25x an arithmetic pass on the random signs
    # of ordinary scales (NumPy float64, torch)
    sign = (a - b) / (gap + xp.astype(gap == 0, gap.dtype))
    return sign * xp.log1p(gap / lo)


def _kl_from_terms(t, u, xp):
    """``KL = sum((exp(t) - 1 - t) + u**2) / 2``: the formula, once.

    ``t = 2 log(s_p / s_q)`` and ``u = (m_p - m_q) / s_q`` per coordinate;
    both terms are non-negative, so the sum loses nothing to cancellation.
    """
    return 0.5 * xp.sum(exp_excess(t, xp) + u * u, axis=-1)


# Below this |t|, exp(t) - 1 - t is summed as its series: expm1(t) - t would
# cancel (relative error ~2 eps / |t|: 200 float32 ulp at t = 1e-3); above
# it the subtraction costs at most 3 ulp.
EXP_EXCESS_SERIES_BELOW = 0.5
_SERIES_TERMS: dict = {}


def exp_excess(t, xp):
    """``exp(t) - 1 - t`` to a few ulp everywhere: `exp_excess_series` for small ``|t|``.

    Below 64 bits, where the library has float64: ``expm1(t) - t`` there,
    whose cancellation (2e-16 / |t| relative) stays below float32's half ulp
    down to ``|t| = 1e-8``, and ``t**2 / 2`` under it: a third of the
    series' operations (the small calls are launch-bound).
    """
    wide = _wider_dtype(t.dtype, xp)
    if wide is not None:
        w = xp.astype(t, wide)
        return xp.where(xp.abs(t) < 1e-8, 0.5 * (t * t), xp.astype(xp.expm1(w) - w, t.dtype))
    small = xp.abs(t) < EXP_EXCESS_SERIES_BELOW
    series = exp_excess_series(xp.where(small, t, xp.zeros_like(t)), xp)
    return xp.where(small, series, xp.expm1(t) - t)


def exp_excess_series(t, xp):
    """``sum(t**n / n!, n >= 2)``, cut where the rest is below a quarter ulp at ``|t| = 1/2``.

    For ``|t| < EXP_EXCESS_SERIES_BELOW``; overrides call it on the elements
    they select, so the values match the generic kernel's bit for bit.
    """
    coefficients = series_coefficients(float(xp.finfo(t.dtype).eps))
    acc = xp.full_like(t, coefficients[-1])
    for c in coefficients[-2::-1]:
        acc = acc * t + c
    return (t * t) * acc


def series_coefficients(eps):
    """``1/2!, 1/3!, ..., 1/n!`` with the first omitted term below ``eps / 4`` relative."""
    found = _SERIES_TERMS.get(eps)
    if found is None:
        x = EXP_EXCESS_SERIES_BELOW
        n = 2
        # the omitted terms relative to the leading t**2 / 2: about 2 x**(n - 1) / (n + 1)!
        while 2 * x ** (n - 1) / math.factorial(n + 1) >= eps / 4:
            n += 1
        found = _SERIES_TERMS[eps] = tuple(1.0 / math.factorial(k) for k in range(2, n + 1))
    return found


def _log_scale_terms(loc_p, log_scale_p, loc_q, log_scale_q, inv_scale_q, xp):
    """``t = 2 (log s_p - log s_q)`` and ``u = (m_p - m_q) / s_q`` in the working dtype.

    Returns ``(dtype, t, u, log_scale_q)`` with the dtype results should have.
    """
    dtype, loc_p, log_scale_p, loc_q, log_scale_q, inv_scale_q = working(
        xp, loc_p, log_scale_p, loc_q, log_scale_q, inv_scale_q
    )
    if inv_scale_q is None:  # 1 / s_q may overflow
        u = over_scale(loc_p - loc_q, log_scale_q, xp)
    else:
        u = (loc_p - loc_q) * inv_scale_q
    return dtype, 2.0 * (log_scale_p - log_scale_q), u, log_scale_q


@overridable
def cross_entropy_from_log_scale(loc_p, log_scale_p, loc_q, log_scale_q, *, inv_scale_q=None, xp):
    """Cross-entropy ``H(p, q) = -E_p[log q(X)]`` from log-scales."""
    dtype, t, u, log_scale_q = _log_scale_terms(
        loc_p, log_scale_p, loc_q, log_scale_q, inv_scale_q, xp
    )
    return finish(_cross_entropy_from_terms(log_scale_q, xp.exp(t), u, xp), dtype, xp)


@overridable
def cross_entropy(loc_p, scale_p, loc_q, scale_q, *, xp):
    """Cross-entropy ``H(p, q)`` of two diagonal Gaussians from the scales as given."""
    dtype, loc_p, scale_p, loc_q, scale_q = working(xp, loc_p, scale_p, loc_q, scale_q)
    r = scale_p / scale_q
    u = (loc_p - loc_q) / scale_q
    return finish(_cross_entropy_from_terms(xp.log(scale_q), r * r, u, xp), dtype, xp)


def _cross_entropy_from_terms(log_scale_q, ratio_sq, u, xp):
    """``H = sum(log s_q + ((s_p / s_q)**2 + u**2) / 2 + log(2 pi) / 2)``."""
    return xp.sum(log_scale_q + 0.5 * (ratio_sq + u * u) + HALF_LOG_2PI, axis=-1)


@overridable
def wasserstein2(loc_p, scale_p, loc_q, scale_q, *, xp):
    """The 2-Wasserstein distance (not squared): ``sqrt(|m_p - m_q|**2 + |s_p - s_q|**2)``.

    A scaled norm, so it neither overflows nor underflows where the distance
    is representable.
    """
    dtype, loc_p, scale_p, loc_q, scale_q = working(xp, loc_p, scale_p, loc_q, scale_q)
    return finish(scaled_norm(loc_p - loc_q, xp, scale_p - scale_q), dtype, xp)


@overridable
def reparameterize(loc, scale, eps, *, xp):
    """``loc + scale * eps``: a sample from standard normal noise `eps`."""
    _, loc, scale, eps = working(xp, loc, scale, eps)
    return loc + scale * eps


def logsumexp(a, axis, xp):
    """``log(sum(exp(a), axis))``, stable, ``-inf`` where every term is ``-inf``."""
    m = xp.max(a, axis=axis, keepdims=True)
    finite = xp.isfinite(m)
    shift = xp.where(finite, m, xp.zeros_like(m))
    total = xp.sum(xp.exp(a - shift), axis=axis, keepdims=True)
    # every term -inf: log(0 + 1) + max, not log(0) (NumPy warns of it)
    out = xp.log(total + xp.astype(~finite, total.dtype)) + xp.where(finite, shift, m)
    return xp.squeeze(out, axis=axis)


def far_responsibilities(x, log_weights, loc, precision, log_scale, *, xp):
    """Mixture responsibilities of points so far out that every log density underflows.

    `x` is ``(..., d)``; the parameters are ``(..., K)`` and ``(..., K, d)``.
    With ``s = max |x_j|`` and ``u = x / s``, the quadratic term of component
    k is ``s**2 A_k + s B_k + C_k``: ``A_k = sum(u**2 / v_k)``, ``B_k = -2
    sum(u m_k / v_k)``, ``C_k = sum(m_k**2 / v_k)`` (``v`` the variances). At
    such ``s`` any difference in ``A`` outweighs every other term, then any
    difference in ``B``; among components that tie in both, the rest of the
    log density, ``log w_k - sum(log s_k) - C_k / 2``, is exact. No term
    overflows.
    """
    s = xp.max(xp.abs(x), axis=-1, keepdims=True)
    u = (x / xp.where(s > 0, s, 1.0))[..., None, :]  # (..., 1, d)
    a = xp.sum(u * u * precision, axis=-1)
    b = -2.0 * xp.sum(u * (loc * precision), axis=-1)
    rest = log_weights - xp.sum(log_scale, axis=-1) - 0.5 * xp.sum(loc * loc * precision, axis=-1)
    rest = xp.broadcast_to(rest, a.shape)
    live = rest > -math.inf
    a = xp.where(live, a, math.inf)
    live = live & (a == xp.min(a, axis=-1, keepdims=True))
    b = xp.where(live, b, math.inf)
    live = live & (b == xp.min(b, axis=-1, keepdims=True))
    return xp.exp(log_softmax(xp.where(live, rest, -math.inf), -1, xp))


def log_softmax(a, axis, xp):
    """``a - logsumexp(a)`` along `axis`.

    Shifted first: at ``|a| ~ 1e40`` the sum ``max + log(sum(...))`` would
    round the log away and every entry would come out 0 (rows summing to K).
    """
    m = xp.max(a, axis=axis, keepdims=True)
    finite = xp.isfinite(m)
    shifted = a - xp.where(finite, m, xp.zeros_like(m))
    total = xp.sum(xp.exp(shifted), axis=axis, keepdims=True)
    # every entry -inf: -inf - log(1), not -inf - log(0) (NaN, and NumPy's warnings)
    return shifted - xp.log(total + xp.astype(~finite, total.dtype))


def gather_component(params, index, sample, xp):
    """``params[..., index, :]`` per sample.

    `params` is (*batch, K, d), `index` (*sample, *batch); the result is
    (*sample, *batch, d).
    """
    batch_k_d = tuple(params.shape)
    full = (*sample, *batch_k_d)
    idx = xp.expand_dims(xp.expand_dims(index, axis=-1), axis=-1)  # (*sample, *batch, 1, 1)
    idx = xp.broadcast_to(idx, (*sample, *batch_k_d[:-2], 1, batch_k_d[-1]))
    source = xp.broadcast_to(params, full)
    if hasattr(xp, "take_along_axis"):
        picked = xp.take_along_axis(source, idx, axis=-2)
    else:  # e.g. Dask: a one-hot contraction
        k = batch_k_d[-2]
        one_hot = xp.astype(
            xp.expand_dims(index, axis=-1)
            == ranked(xp.arange(k, device=device_of(params)), index.ndim + 1, xp),
            params.dtype,
        )
        return xp.sum(xp.expand_dims(one_hot, axis=-1) * source, axis=-2)
    return xp.squeeze(picked, axis=-2)
