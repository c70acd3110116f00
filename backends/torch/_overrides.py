"""PyTorch's whole-kernel overrides of the core's kernels.

Eager torch runs one kernel launch per operation and cannot fuse: at a few
values the launches are the cost, at millions the passes over memory are.
Each function here replaces one kernel of the core, with its signature, for
torch tensors; it takes its fast form only where that form is exact to
rounding and safe for autograd, ``torch.compile`` and ``torch.func``, and
calls the generic kernel otherwise. `tests/test_overrides.py` compares each
with the generic kernel on both sides of every threshold below.
"""

from __future__ import annotations

import math

import array_api_compat.torch as _xp
import torch
import torch.autograd.forward_ad as _forward_ad

from diaggauss import _kernels, _pairwise, _validation
from diaggauss._dispatch import override
from diaggauss._dtypes import event_size
from diaggauss._namespace import HALF_LOG_2PI

from ._gaps import GAPS, _is_compiling, _is_tracing, _is_wrapped

# Up to this many elements a log density is launch-bound: it is computed as
# one reduction of per-coordinate terms built by one fused kernel (addcmul).
# Under torch.compile it is that form at every size: the compiler then makes
# one pass over the data (two reductions cost it a second one: 1.3x).
SMALL = 1 << 10
# From this many elements, without autograd, the log density streams over
# blocks of rows: the temporaries of one block stay in cache and are reused
# by the allocator, where a full-size temporary would be faulted in afresh.
LARGE = 1 << 18
# Rows per block of the streamed form: about this many values each (2 MB of
# float32: 1.7x the read floor at (65536, 64), against 2.2x for blocks of 2**16).
BLOCK_VALUES = 1 << 19
# Up to this many parameter values on the CPU, validation reads them on the host.
FEW_VALUES = 64
# Values of the expanded rows per block of the pairwise product (see backends/numpy).
CHUNK_ELEMENTS = 1 << 19


_FLOAT = (torch.float32, torch.float64)
_SERIES_REACH = _kernels.EXP_EXCESS_SERIES_BELOW


def _plain(a, b, c, d=None) -> bool:
    """Same floating dtype (32 or 64 bits), none transformed by torch.func: fast forms apply."""
    dtype = a.dtype
    if dtype not in _FLOAT or b.dtype is not dtype or c.dtype is not dtype:
        return False
    if d is not None and d.dtype is not dtype:
        return False
    if _is_compiling():  # the compiler sees through torch.func; its test is not traceable
        return True
    return not (
        _is_wrapped(a) or _is_wrapped(b) or _is_wrapped(c) or (d is not None and _is_wrapped(d))
    )


def _one_pass(x, loc, spread):
    """How the one-reduction form applies: "compiled", "small", or None (it does not)."""
    if _is_compiling():
        return "compiled" if _plain_dtypes(x, loc, spread) else None
    if x.numel() > SMALL or not _plain_dtypes(x, loc, spread):
        return None
    wrapped = _is_wrapped(x) or _is_wrapped(loc) or _is_wrapped(spread)
    return None if wrapped else "small"


def _differentiated(*tensors) -> bool:
    """Whether autograd may record these tensors' ops: the ``out=`` forms would break it.

    Backward mode when a tensor requires grad; forward mode whenever a
    ``torch.autograd.forward_ad.dual_level`` is open (dual tensors do not say so).
    """
    if _forward_ad._current_level >= 0:
        return True
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _plain_dtypes(a, b, c) -> bool:
    dtype = a.dtype
    return dtype in _FLOAT and b.dtype is dtype and c.dtype is dtype


def _streamable(x, *params) -> bool:
    """One distribution per row, on the CPU, without autograd: the streamed form applies."""
    if x.numel() < LARGE or x.dim() < 1 or not x.is_cpu or _is_compiling():
        return False
    if _differentiated(x, *params):
        return False
    return all(p.shape == x.shape and p.is_contiguous() for p in params) and x.is_contiguous()


_CONSTANTS: dict = {}


def _constant(value, like):
    """A cached 0-d tensor holding `value` (a tensor-tensor op costs ~60% of a scalar one)."""
    key = (value, like.dtype, like.device)
    t = _CONSTANTS.get(key)
    if t is None:
        if len(_CONSTANTS) > 256:
            _CONSTANTS.clear()
        with torch.inference_mode(False), torch.no_grad():
            t = _CONSTANTS[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
    return t


def _one_reduction(z, log_scale, mode):
    """``-sum(z**2 / 2 + log s) - d/2 log 2 pi``: one addcmul, one sum, one subtraction."""
    terms = torch.addcmul(log_scale, z, z, value=0.5).sum(-1)
    c = -event_size(z, _xp) * HALF_LOG_2PI
    if mode == "compiled" or _is_tracing():
        # compiled: fused anyway, and a cached constant would be a guarded global;
        # under torch.jit.trace the size is a traced value, not a number to cache
        return c - terms
    return torch.sub(_constant(c, z), terms)


def _row_blocks(x, *params):
    """The flat result to fill, and blocks of rows of `x` and `params` (all of one shape)."""
    d = x.shape[-1]
    flat = [t.reshape(-1, d) for t in (x, *params)]
    n = flat[0].shape[0]
    rows = max(1, BLOCK_VALUES // d)
    blocks = [(slice(i, i + rows), [t[i : i + rows] for t in flat]) for i in range(0, n, rows)]
    return torch.empty(n, dtype=x.dtype), blocks


def _streamed(x, loc, spread, log_z, divide, twice=False):
    """``-sum(((x - loc) op spread)**2) / 2 - log Z`` over blocks of rows (no autograd).

    `op` divides by the scale (`divide`) or multiplies by its inverse, or
    (`twice`) by the half inverse twice.
    """
    log_z = log_z.expand(x.shape[:-1]).reshape(-1)
    out, blocks = _row_blocks(x, loc, spread)
    for rows, (xb, lb, sb) in blocks:
        z = torch.sub(xb, lb)
        if divide:
            z.div_(sb)
        else:
            z.mul_(sb)
            if twice:
                z.mul_(sb)
        torch.add(log_z[rows], z.square_().sum(-1), alpha=0.5, out=out[rows])
    return out.neg_().reshape(x.shape[:-1])


@override(_kernels.log_normalizer_from_scale, GAPS)
def log_normalizer_from_scale(scale, *, xp):
    """`diaggauss._kernels.log_normalizer_from_scale` over blocks of rows when large.

    ``log`` of a block at a time: no full-size temporary to fault in (a
    distribution built and used once pays for its ``log Z`` alone).
    """
    if not (_plain(scale, scale, scale) and _streamable(scale)):
        return _kernels.log_normalizer_from_scale.generic(scale, xp=xp)
    out, blocks = _row_blocks(scale)
    for rows, (sb,) in blocks:
        torch.sum(torch.log(sb), -1, out=out[rows])
    return out.add_(event_size(scale, _xp) * HALF_LOG_2PI).reshape(scale.shape[:-1])


@override(_kernels.log_prob, GAPS)
def log_prob(x, loc, scale, *, log_normalizer=None, xp):
    """`diaggauss._kernels.log_prob`: one reduction when small or compiled, streamed when large.

    Given `log_normalizer` (a kept ``log Z``): the generic formula, streamed
    over rows when large. Without it: the one-reduction form where it applies.
    """
    if log_normalizer is None:
        mode = _one_pass(x, loc, scale)
        if mode:
            return _one_reduction((x - loc) / scale, scale.log(), mode)
        return _kernels.log_prob.generic(x, loc, scale, xp=xp)
    if _plain(x, loc, scale, log_normalizer) and _streamable(x, loc, scale):
        return _streamed(x, loc, scale, log_normalizer, divide=True)
    return _kernels.log_prob.generic(x, loc, scale, log_normalizer=log_normalizer, xp=xp)


@override(_kernels.log_prob_from_log_scale, GAPS)
def log_prob_from_log_scale(x, loc, log_scale, *, log_normalizer=None, half_inv=None, xp):
    """`diaggauss._kernels.log_prob_from_log_scale`: one reduction when small or compiled.

    Given kept values (``log Z`` and the half inverse): streamed over rows when large.
    """
    if log_normalizer is None and half_inv is None:
        mode = _one_pass(x, loc, log_scale)
        if mode:
            h = _half_inv(log_scale, mode)
            return _one_reduction((x - loc) * h * h, log_scale, mode)
        if _inverse_finite(x, loc, log_scale):  # one multiply: a pass over x less
            log_z = _kernels.log_normalizer(log_scale, xp=xp)
            return log_prob_from_inv_scale(x, loc, torch.exp(-log_scale), log_z, xp=xp)
        return _kernels.log_prob_from_log_scale.generic(x, loc, log_scale, xp=xp)
    if (
        log_normalizer is not None
        and half_inv is not None
        and _plain(x, loc, half_inv, log_normalizer)
        and _streamable(x, loc, half_inv)
    ):
        return _streamed(x, loc, half_inv, log_normalizer, divide=False, twice=True)
    return _kernels.log_prob_from_log_scale.generic(
        x, loc, log_scale, log_normalizer=log_normalizer, half_inv=half_inv, xp=xp
    )


@override(_kernels.log_prob_from_inv_scale, GAPS)
def log_prob_from_inv_scale(x, loc, inv_scale, log_normalizer, *, xp):
    """`diaggauss._kernels.log_prob_from_inv_scale`; streamed over rows when large."""
    if _plain(x, loc, inv_scale, log_normalizer) and _streamable(x, loc, inv_scale):
        return _streamed(x, loc, inv_scale, log_normalizer, divide=False)
    return _kernels.log_prob_from_inv_scale.generic(x, loc, inv_scale, log_normalizer, xp=xp)


@override(_kernels.kl_divergence_from_log_scale, GAPS)
def kl_divergence_from_log_scale(loc_p, log_scale_p, loc_q, log_scale_q, *, inv_scale_q=None, xp):
    """`diaggauss._kernels.kl_divergence_from_log_scale`, streamed over rows when large."""
    args = (loc_p, log_scale_p, loc_q, log_scale_q)
    if not (
        _plain(*args) and _streamable(*args) and (inv_scale_q is None or _same(inv_scale_q, loc_p))
    ):
        return _kernels.kl_divergence_from_log_scale.generic(*args, inv_scale_q=inv_scale_q, xp=xp)
    twice = inv_scale_q is None  # as the generic kernel: 1 / s_q may overflow
    out, blocks = _row_blocks(*args, _half_inv(log_scale_q) if twice else inv_scale_q)
    wide = loc_p.dtype is torch.float32  # as the generic kernel: expm1(t) - t at float64
    for rows, (mp, sp, mq, sq, iq) in blocks:
        t = torch.sub(sp, sq).mul_(2.0)
        u = torch.sub(mp, mq).mul_(iq)
        if twice:
            u.mul_(iq)
        if wide:
            w = t.double()
            e = torch.expm1(w).sub_(w).float().addcmul_(u, u)
            torch.sum(e, -1, out=out[rows])
            continue
        torch.sum(_exp_excess(t).addcmul_(u, u), -1, out=out[rows])
    return out.mul_(0.5).reshape(loc_p.shape[:-1])


@override(_kernels.kl_divergence, GAPS)
def kl_divergence(loc_p, scale_p, loc_q, scale_q, *, xp):
    """`diaggauss._kernels.kl_divergence`, streamed over rows when large.

    The generic kernel's forms one cache-sized block of rows at a time
    (eager torch makes a pass per operation, and over blocks those passes
    stay in cache): for float32 one logarithm of the ratio at float64, then
    ``expm1(t) - t``; for float64 `log_ratio` and the series blended in
    without a select (the generic ``where`` ran 35x the hand formula).
    """
    args = (loc_p, scale_p, loc_q, scale_q)
    wide = loc_p.dtype is torch.float32
    if not (_plain(*args) and _streamable(*args)):
        return _kernels.kl_divergence.generic(*args, xp=xp)
    out, blocks = _row_blocks(*args)
    for rows, (mp, sp, mq, sq) in blocks:
        if wide:
            t = torch.div(sp, sq.double()).log_().mul_(2.0)
            e = torch.expm1(t).sub_(t).float()
        else:
            e = _exp_excess(_kernels.log_ratio(sp, sq, xp).mul_(2.0))
        u = torch.sub(mp, mq).div_(sq)
        torch.sum(e.add_(u.mul_(u)), -1, out=out[rows])  # the generic kernel's roundings
    return out.mul_(0.5).reshape(loc_p.shape[:-1])


def _exp_excess(t):
    """`diaggauss._kernels.exp_excess` of a float64 block, without a select.

    The series where the generic kernel takes it, as ``e (1 - small) +
    series``: exact (x * 1, x + 0), and 4x faster than torch.where on a CPU
    block. `t` is the caller's temporary; the result is a fresh one.
    """
    e = torch.expm1(t).sub_(t)
    small = torch.lt(t.abs(), _kernels.EXP_EXCESS_SERIES_BELOW).to(t.dtype)
    series = _series_in_place(t.clamp(-_SERIES_REACH, _SERIES_REACH)).mul_(small)
    return e.mul_(small.neg_().add_(1.0)).add_(series)


def _series_in_place(t):
    """`diaggauss._kernels.exp_excess_series` of a block, its operations in place.

    The same roundings in the same order, so the same values; the whole
    block, since finding its small values (``nonzero``) cost three times more.
    `t` is clamped to the series' interval by the caller: nothing overflows.
    """
    coefficients = _kernels.series_coefficients(torch.finfo(t.dtype).eps)
    acc = torch.full_like(t, coefficients[-1])
    for c in coefficients[-2::-1]:
        acc.mul_(t).add_(c)
    return acc.mul_(t * t)


def _inverse_finite(x, loc, log_scale) -> bool:
    """On the CPU, eager: whether ``exp(-log_scale)`` is finite (one reduction of the parameter).

    Then ``(x - loc) * exp(-log_scale)`` is exact to rounding, and saves the
    generic kernel's second multiply, a pass over the points.
    """
    if not (x.is_cpu and _plain(x, loc, log_scale)) or _is_compiling() or _is_tracing():
        return False
    with torch.no_grad():
        low = float(log_scale.min()) if log_scale.numel() else 0.0
    return low >= 1.0 - math.log(torch.finfo(log_scale.dtype).max)


def _half_inv(log_scale, mode=None):
    """`diaggauss._kernels.half_inv_scale` in plain torch.

    Its factor is a cached 0-d tensor when small and eager (a scalar operand
    cost 2 us more).
    """
    floor = _kernels.half_inv_floor(log_scale.dtype, _xp)
    clamped = torch.clamp(log_scale, min=floor)
    if mode == "small" and not _is_tracing():
        return torch.exp(clamped.mul(_constant(-0.5, clamped)))
    return torch.exp(clamped.mul(-0.5))


def _same(a, like) -> bool:
    return a.dtype is like.dtype and a.shape == like.shape and a.is_contiguous()


@override(_validation.values_ok, GAPS)
def values_ok(loc, param, domain, *, xp) -> bool:
    """`diaggauss._validation.values_ok` with fewer kernels.

    Python floats for a few values on the CPU. Otherwise ``sum(loc) +
    sum(param)`` and ``min(param)`` in one transfer: a finite total means no
    NaN and no infinity (three reductions, against the generic form's ten
    kernels); only a total that overflows or a non-positive minimum gets the
    exact test.
    """
    if loc.numel() + param.numel() <= FEW_VALUES and loc.is_cpu:
        return _validation.few_values_ok(loc.tolist(), param.tolist(), domain)
    if loc.numel() == 0 or param.numel() == 0:
        return _validation.values_ok.generic(loc, param, domain, xp=xp)
    with torch.no_grad():
        total = loc.sum() + param.sum()
        total, low = torch.stack((total, param.amin().to(total.dtype))).tolist()
    if math.isfinite(total) and (low > 0 or domain != "positive"):
        return True
    return _validation.values_ok.generic(loc, param, domain, xp=xp)


@override(_pairwise.quadratic_product, GAPS)
def quadratic_product(x, center, b_t, *, reach=False, chunk_rows=None, xp):
    """`diaggauss._pairwise.quadratic_product` in blocks of rows, into a preallocated result.

    On the CPU without autograd: the expanded rows of one block (allocated
    once per call) are the only temporary. Elsewhere the generic product.
    """
    tensors = (x, center, b_t)
    if (
        _is_compiling()
        or not x.is_cpu
        or any(_is_wrapped(t) for t in tensors)
        or _differentiated(*tensors)
    ):
        return _pairwise.quadratic_product.generic(
            x, center, b_t, reach=reach, chunk_rows=chunk_rows, xp=xp
        )
    *lead, n, d = x.shape
    width = 2 * d + 1
    # the running maximum's d columns count against the block's memory too
    rows = chunk_rows or max(1, CHUNK_ELEMENTS // (width + (d if reach else 0)))
    out = torch.empty((*lead, n, b_t.shape[-1]), dtype=b_t.dtype)
    block = torch.empty((*lead, min(rows, n), width), dtype=x.dtype)
    block[..., 2 * d].fill_(1.0)
    top = None
    for i in range(0, n, rows):
        j = min(i + rows, n)
        buf = block[..., : j - i, :]
        xc, sq = buf[..., d : 2 * d], buf[..., :d]
        torch.sub(x[..., i:j, :], center, out=xc)
        torch.mul(xc, xc, out=sq)
        if reach:
            # elementwise while the blocks stream, one reduction at the end
            if top is None:
                top = sq.clone()
            else:
                head = top[..., : j - i, :]
                torch.maximum(head, sq, out=head)
        target = out[..., i:j, :]
        if target.is_contiguous():
            torch.matmul(buf, b_t, out=target)
        else:
            target.copy_(buf @ b_t)
    return out, (top.amax(dim=-2, keepdim=True) if reach else None)
