"""All-pairs kernels: N points against K diagonal Gaussians, K1 against K2 Gaussians.

Each pairwise quantity is one matrix product over an expanded square. For
``log N(x | m, diag(s**2))`` with ``p = 1 / s**2``:

    log_prob[n, k] = [x**2, x, 1][n] . [-p/2, m p, b][k],
    b[k] = -(sum(m**2 p)/2 + sum(log s) + d/2 log 2 pi),

so the bias folds into the product and nothing follows it. Data and means
are first shifted by a common centre (the mean of the means), which keeps
float32 accurate far from the origin: the uncentred expansion loses every
digit at offset 1e4 (scikit-learn issue 30382 is the same cancellation).
Where the expansion's error bound passes `GEMM_ERROR_LIMIT` or its relative
`GEMM_RELATIVE_LIMIT`, ``method="auto"`` redoes the product at float64 from
the parameters as given. The Mahalanobis, KL and W2 matrices, whose entries
can be 0, check a bound per entry against `PAIR_RELATIVE_LIMIT` and redo
the matrix (at float64, then by the direct form) where one is unresolved.

The product over ``[(x - c)**2, x - c, 1]`` is the kernel `quadratic_product`:
generic here in one expression (XLA and Dask schedule its memory), replaced
by NumPy's and PyTorch's adapters with a blocked version that writes into a
preallocated result.
"""

from __future__ import annotations

import functools

from ._dispatch import overridable
from ._distribution import MultivariateNormalDiag
from ._dtypes import event_size, finish, result_dtype, work_dtype
from ._gaps import gaps_for, quietly
from ._kernels import exp_excess, half_inv_scale, log_ratio, over_scale, scaled_norm
from ._namespace import (
    HALF_LOG_2PI,
    as_array,
    describe,
    device_of,
    get_namespace,
    is_numpy_namespace,
)
from ._params import PARAMETERISATIONS
from ._shapes import broadcast_shapes, positive_int

__all__ = [
    "pairwise_kl_divergence",
    "pairwise_log_prob",
    "pairwise_mahalanobis",
    "pairwise_wasserstein2",
    "quadratic_product",
]

METHODS = ("auto", "gemm", "direct")
# The expansion's rounding error is at most 8 eps sum_j ((x_j - c_j)**2 + (m_j - c_j)**2)
# / s_j**2 (docs/pairwise.md); past this many nats, "auto" computes at float64.
GEMM_ERROR_LIMIT = 1e-2
# ... or past this fraction of the smallest scale a log density of component k
# can have, d/2 log 2 pi + sum |log s_k| (the bound overstates the measured
# error ~16 times, so the values stay within 1e-5 relative of float64's).
GEMM_RELATIVE_LIMIT = 1e-4
# Mahalanobis, KL and W2 matrices: where the bound passes this fraction of an
# entry (the squared distance, the KL), "auto" recomputes the matrix by the
# direct form, whose error is relative to each entry (they can be 0).
PAIR_RELATIVE_LIMIT = 1e-5
# ... or past this many ulp of the result's dtype, where tighter (float64: 9e-13).
PAIR_ULPS = 4096
# Values of the (N, K, d) broadcast per block of the direct form.
DIRECT_BLOCK = 1 << 20


@overridable
def quadratic_product(x, center, b_t, *, reach=False, chunk_rows=None, xp):
    """``[(x - c)**2, x - c, 1] @ b_t``: rows of `x` expanded, times ``(2d + 1, K)`` `b_t`.

    Returns ``(out, reach)``: the (..., N, K) product and, when `reach`, the
    largest ``(x - c)**2`` per coordinate, (..., 1, d), for the error bound.
    `chunk_rows` bounds the rows expanded at once where the library writes
    into preallocated arrays (the adapters' versions); here one expression.
    """
    xc = x - center
    sq = xc * xc
    ones = xp.ones_like(xc[..., :1])  # placed (sharded) as the rows of xc
    out = xp.matmul(xp.concat([sq, xc, ones], axis=-1), b_t)
    return out, (xp.max(sq, axis=-2, keepdims=True) if reach else None)


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")


def _chunk_rows(chunk_size):
    return None if chunk_size is None else positive_int("chunk_size", chunk_size)


def _components(loc, scale, xp, validate_args, what):
    """The components as a `MultivariateNormalDiag`, from arrays or one given."""
    if isinstance(loc, MultivariateNormalDiag):
        if scale is not None:
            raise TypeError(f"{what}: give loc and scale, or one distribution, not both")
        return loc
    if scale is None:
        raise TypeError(f"{what}: scale is required with array loc; got None")
    return MultivariateNormalDiag._build(loc, scale, PARAMETERISATIONS["scale"], validate_args)


def _given(dist):
    """``(loc, spread, parameterisation)`` of `dist`, broadcast to its full shape."""
    par = PARAMETERISATIONS[dist.parameterization]
    given = dist.parameters
    return given["loc"], given[par.name], par


def _points(x, comps, name="x"):
    """``(x, comps, lead)``: `x` (..., N, d) in the components' library, and the batch lead.

    Components of NumPy arrays come into another library's `x`'s.
    """
    xp = get_namespace(("components", comps.loc), (name, x))
    if xp is not comps._ns() and is_numpy_namespace(comps._ns()):
        comps = comps.to_namespace(xp, device=device_of(x))
    x = as_array(name, x, xp, dtype=comps.dtype, device=comps.device)
    d = comps.event_shape[0]
    batch = comps.batch_shape
    if x.ndim < 2 or x.shape[-1] != d:
        raise ValueError(
            f"{name} must have shape (..., N, d) with d={d}, the components' event size; "
            f"got {tuple(x.shape)}"
        )
    if not batch:
        raise ValueError(
            "the components need a batch axis of size K (loc of shape (..., K, d)); got "
            "batch_shape=()"
        )
    lead = broadcast_shapes(
        tuple(x.shape[:-2]), batch[:-1], names=(f"{name}.shape[:-2]", "components batch[:-1]")
    )
    return x, comps, lead


def _lead(a, lead, xp):
    """`a` broadcast to the batch dimensions `lead` before its last two axes."""
    shape = (*lead, *a.shape[-2:])
    return a if tuple(a.shape) == shape else xp.broadcast_to(a, shape)


def pairwise_log_prob(
    x, loc, scale=None, *, method="auto", chunk_size=None, xp=None, validate_args=None
):
    """Log densities of N points under K diagonal Gaussians: an (..., N, K) matrix.

    Parameters
    ----------
    x : array of shape (..., N, d)
        Points. NumPy data is converted to the components' library.
    loc, scale : arrays of shape (..., K, d)
        The components' means and standard deviations (or pass a
        `MultivariateNormalDiag` with batch shape (..., K) as `loc`).
    method : {"auto", "gemm", "direct"}
        "gemm": one matrix product over the centred, expanded square (fast;
        float32 error bounded as in the module notes). "direct": the (N, K, d)
        broadcast, in blocks (the reference). "auto" is "gemm", redone at
        float64 where the float32 error bound would pass `GEMM_ERROR_LIMIT`
        nats or `GEMM_RELATIVE_LIMIT` of the smallest log density a
        component can give (data far from components much narrower than
        that distance).
    chunk_size : int, optional
        Rows of `x` per block where the library writes into preallocated
        results (NumPy, PyTorch; default: blocks of about 2**19 values).
    xp : namespace, optional
    validate_args : bool, optional
        Validate `loc` and `scale` when given as arrays.

    Returns
    -------
    array of shape (..., N, K)

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> x = np.zeros((4, 2))
    >>> loc, scale = np.zeros((3, 2)), np.ones((3, 2))
    >>> lp = dg.pairwise_log_prob(x, loc, scale)
    >>> lp.shape, bool(np.allclose(lp, -np.log(2 * np.pi)))
    ((4, 3), True)
    """
    _check_method(method)
    rows = _chunk_rows(chunk_size)
    if not isinstance(loc, MultivariateNormalDiag):
        xp = xp or get_namespace(("x", x), ("loc", loc), ("scale", scale))
    comps = _components(loc, scale, xp, validate_args, "pairwise_log_prob")
    x, comps, lead = _points(x, comps)
    return _quadratic_matrix(x, *_given(comps), lead, "log_prob", method, rows)


def pairwise_mahalanobis(x, p, *, method="auto", chunk_size=None, xp=None):
    """Mahalanobis distances (not squared) of N points from K diagonal Gaussians: (..., N, K).

    Parameters
    ----------
    x : array of shape (..., N, d)
    p : MultivariateNormalDiag with batch shape (..., K)
    method : {"auto", "gemm", "direct"}
        As for `pairwise_log_prob`; "auto" recomputes by the direct form
        (a scaled norm, finite wherever the distance is) when any entry's
        error bound passes `PAIR_RELATIVE_LIMIT` of the squared distance.
    chunk_size : int, optional
        Rows of `x` per block, as for `pairwise_log_prob`.
    xp : namespace, optional

    Returns
    -------
    array of shape (..., N, K)

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> p = dg.MultivariateNormalDiag(np.array([[0.0, 0.0], [3.0, 4.0]]), np.ones(2))
    >>> dg.pairwise_mahalanobis(np.zeros((1, 2)), p)
    array([[0., 5.]])
    """
    _check_method(method)
    rows = _chunk_rows(chunk_size)
    if not isinstance(p, MultivariateNormalDiag):
        raise TypeError(f"p must be a MultivariateNormalDiag; got {describe(p)}")
    x, p, lead = _points(x, p)
    return _quadratic_matrix(x, *_given(p), lead, "mahalanobis", method, rows)


@quietly  # far points: squares past the range give the -inf they are, silently
def _quadratic_matrix(x, loc, spread, par, lead, what, method, rows):
    xp = get_namespace(("x", x), ("loc", loc))
    dtype = result_dtype(xp, x, loc, spread)
    if x.shape[-2] == 0 or loc.shape[-2] == 0:
        return _empty((*lead, x.shape[-2], loc.shape[-2]), dtype, x, xp)
    if method == "direct":
        return _direct(x, loc, spread, par, lead, what, rows)
    wd = work_dtype(dtype, xp)
    out, too_coarse = _gemm(x, loc, spread, par, lead, what, wd, rows, method == "auto")
    if too_coarse:
        del out  # redone below: free its memory first
        # a distance can be 0, where no expansion is relative-accurate: direct
        if (wider := _wider_dtype(wd, xp)) is not None and what != "mahalanobis":
            # From the parameters as given: a log-scale rounded to float32 first
            # would carry its rounding into the precisions (5 ulp at 1e4 nats).
            out, _ = _gemm(x, loc, spread, par, lead, what, wider, rows, False)
            # else precisions past float64's range (log-scales below -354): direct
            if bool(xp.all(xp.isfinite(out))):
                return finish(out, dtype, xp)
        return _direct(x, loc, spread, par, lead, what, rows)
    return finish(out, dtype, xp)


def _empty(shape, dtype, like, xp):
    """The (..., N, K) result when N or K is 0: no reduction over an empty axis runs."""
    return xp.zeros(shape, dtype=dtype, device=device_of(like))


def _at(a, wd, lead, xp):
    """`a` (..., K, d) cast to `wd` and broadcast to the batch lead `lead`."""
    return _lead(a if a.dtype == wd else xp.astype(a, wd), lead, xp)


def _gemm(x, loc, spread, par, lead, what, wd, rows, check):
    """The expanded product at dtype `wd`; returns it and whether its bound is too coarse."""
    xp = get_namespace(("x", x), ("loc", loc))
    gaps = gaps_for(xp)
    loc = _at(loc, wd, lead, xp)
    log_scale = par.derive("log_scale", _at(spread, wd, lead, xp), xp)
    x = _at(x, wd, lead, xp)
    center = xp.mean(loc, axis=-2, keepdims=True)
    m = loc - center
    prec = xp.exp(-2.0 * log_scale)
    mp = m * prec
    half_log_2pi = event_size(log_scale, xp) * HALF_LOG_2PI
    if what == "log_prob":
        bias = -(0.5 * xp.sum(m * mp, axis=-1) + xp.sum(log_scale, axis=-1) + half_log_2pi)
        b = xp.concat([-0.5 * prec, mp, bias[..., None]], axis=-1)
    else:  # squared Mahalanobis: [x**2, x, 1] . [p, -2 m p, sum(m**2 p)]
        b = xp.concat([prec, -2.0 * mp, xp.sum(m * mp, axis=-1)[..., None]], axis=-1)
    # Traced or lazy values are not read: they keep the product as computed.
    check = check and gaps.is_concrete(x) and gaps.is_concrete(m)
    out, reach = quadratic_product(
        x, center, xp.matrix_transpose(b), reach=check, chunk_rows=rows, xp=xp
    )
    if check:
        bound = 8 * float(xp.finfo(wd).eps) * xp.sum((reach + m * m) * prec, axis=-1)
        if what == "log_prob":
            check = _too_coarse(bound, log_scale, half_log_2pi, xp)
        else:
            check = not bool(xp.all(_resolved(out, bound[..., None, :], xp, wd)))
    if what == "mahalanobis":
        out = xp.sqrt(xp.clip(out, 0.0, None))  # rounding may dip below zero at distance 0
    return out, check


def _too_coarse(bound, log_scale, half_log_2pi, xp):
    """Whether a column's `bound` passes `GEMM_ERROR_LIMIT` or its relative limit.

    No log density of component k is smaller in magnitude than ``d/2 log 2 pi
    + sum |log s_k|`` allows for; ``d/2 log 2 pi`` alone settles most calls
    with the one value read.
    """
    if bool(xp.max(bound) <= min(GEMM_ERROR_LIMIT, GEMM_RELATIVE_LIMIT * half_log_2pi)):
        return False
    scale = xp.sum(xp.abs(log_scale), axis=-1) + half_log_2pi
    return not bool(xp.all(bound <= xp.clip(GEMM_RELATIVE_LIMIT * scale, None, GEMM_ERROR_LIMIT)))


def _resolved(out, bound, xp, dtype):
    """Which entries of `out` are finite, normal and have `bound` within their relative limit.

    `bound` is the expansion's error bound per entry (broadcasting against
    `out`): for the Mahalanobis distance, columns of ``8 eps sum((reach + m**2)
    prec)`` with `reach` the largest squared deviation of the data from the
    centre per coordinate; for KL and W2, row plus column sums. The limit is
    `PAIR_RELATIVE_LIMIT`, or `PAIR_ULPS` ulp of the result's `dtype` where
    that is tighter (float64 results).
    """
    finfo = xp.finfo(out.dtype)
    floor = float(finfo.smallest_normal) / float(finfo.eps)
    limit = min(PAIR_RELATIVE_LIMIT, PAIR_ULPS * float(xp.finfo(dtype).eps))
    return (bound <= limit * out) & (out >= floor) & (out <= float(finfo.max))


def _redo_entries(out, ok, side_p, side_q, direct, xp):
    """`out` (..., K1, K2) with each entry that is not `ok` recomputed by `direct`.

    `side_p`, `side_q` are the parameter arrays (..., K, d) of each side;
    `direct` takes their rows for the entries' pairs, (P, d) each, and gives
    the P values. Only the unresolved entries are recomputed (the zeros of a
    batch against itself are the diagonal), gathered into place by a
    running count, as the standard has no scatter.
    """
    k1, k2 = out.shape[-2:]
    ok = xp.reshape(xp.broadcast_to(ok, out.shape), (-1,))
    bad = xp.nonzero(~ok)[0]
    batch = bad // (k1 * k2)

    def rows(side, index):
        return [xp.take(xp.reshape(a, (-1, a.shape[-1])), index, axis=0) for a in side]

    vals = direct(rows(side_p, batch * k1 + (bad // k2) % k1), rows(side_q, batch * k2 + bad % k2))
    pos = xp.clip(xp.cumulative_sum(xp.astype(~ok, bad.dtype)) - 1, 0, None)
    filled = xp.take(xp.astype(vals, out.dtype), pos)
    return xp.reshape(xp.where(ok, xp.reshape(out, (-1,)), filled), out.shape)


def _wider_dtype(wd, xp):
    """float64 where the library has it and `wd` is narrower; else None."""
    if xp.finfo(wd).bits >= 64 or not gaps_for(xp).has_float64():
        return None
    return xp.float64


def _direct(x, loc, spread, par, lead, what, rows):
    """The (..., N, K, d) broadcast, in blocks of rows: the reference form."""
    xp = get_namespace(("x", x), ("loc", loc))
    dtype = result_dtype(xp, x, loc, spread)
    wd = work_dtype(dtype, xp)
    k, d = loc.shape[-2:]
    log_scale = par.derive("log_scale", _at(spread, wd, lead, xp), xp)
    loc = _at(loc, wd, lead, xp)[..., None, :, :]
    h = half_inv_scale(log_scale, xp)[..., None, :, :]  # 1 / s may overflow: h twice
    log_z = (xp.sum(log_scale, axis=-1) + event_size(log_scale, xp) * HALF_LOG_2PI)[..., None, :]
    x = _at(x, wd, lead, xp)
    n = x.shape[-2]
    step = rows or max(1, DIRECT_BLOCK // max(k * d, 1))

    def block(i, j):
        z = (x[..., i:j, None, :] - loc) * h * h
        if what == "log_prob":
            return -0.5 * xp.sum(z * z, axis=-1) - log_z
        return scaled_norm(z, xp)  # finite wherever the distance is representable

    if n <= step:
        return finish(block(0, n), dtype, xp)
    parts = [block(i, min(i + step, n)) for i in range(0, n, step)]
    return finish(xp.concat(parts, axis=-2), dtype, xp)


def _pair_components(p, q, what):
    for name, v in (("p", p), ("q", q)):
        if not isinstance(v, MultivariateNormalDiag):
            raise TypeError(f"{what}: {name} must be a MultivariateNormalDiag; got {describe(v)}")
    xp = get_namespace(("p.loc", p.loc), ("q.loc", q.loc))
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"{what}: event sizes differ: p has {p.event_shape}, q has {q.event_shape}"
        )
    for name, v in (("p", p), ("q", q)):
        if not v.batch_shape:
            raise ValueError(
                f"{what}: {name} needs a batch axis of components (batch_shape (..., K)); got ()"
            )
    lead = broadcast_shapes(
        p.batch_shape[:-1], q.batch_shape[:-1], names=("p.batch_shape[:-1]", "q.batch_shape[:-1]")
    )
    dtype = result_dtype(xp, p.loc, q.loc, *(_given(v)[1] for v in (p, q)))
    return xp, lead, dtype, work_dtype(dtype, xp)


def _within(a, b, big, xp):
    """Whether no magnitude in `a` and `b` passes `big` (one value read)."""
    return bool(xp.maximum(xp.max(xp.abs(a)), xp.max(xp.abs(b))) <= big)


def _full_params(dist, lead, xp, wd, form="log_scale"):
    """`dist`'s loc and `form` of spread at `wd`, broadcast to `lead`, from the given spread."""
    loc, spread, par = _given(dist)
    return _at(loc, wd, lead, xp), par.derive(form, _at(spread, wd, lead, xp), xp)


def pairwise_kl_divergence(p, q, *, method="auto"):
    """``KL(p_i || q_j)`` for every pair: a (..., K1, K2) matrix.

    Parameters
    ----------
    p, q : MultivariateNormalDiag
        Batches of shapes (..., K1) and (..., K2) with the same event size.
    method : {"auto", "gemm", "direct"}
        "gemm" expands the square into one product (centred means); "direct"
        broadcasts (K1, K2, d). "auto" is "gemm", redone at float64 and then
        directly where any entry's error bound passes `PAIR_RELATIVE_LIMIT`
        of the entry (nearly equal pairs far from the centre, KL near 0).

    Returns
    -------
    array of shape (..., K1, K2)

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> p = dg.MultivariateNormalDiag(np.zeros((2, 3)), np.ones(3))
    >>> q = dg.MultivariateNormalDiag(np.array([[0.0, 0, 0], [1, 0, 0], [0, 2, 0]]), np.ones(3))
    >>> dg.pairwise_kl_divergence(p, q)
    array([[0. , 0.5, 2. ],
           [0. , 0.5, 2. ]])
    """
    _check_method(method)
    xp, lead, dtype, wd = _pair_components(p, q, "pairwise_kl_divergence")
    if p.batch_shape[-1] == 0 or q.batch_shape[-1] == 0:
        return _empty((*lead, p.batch_shape[-1], q.batch_shape[-1]), dtype, p.loc, xp)
    sides = [_kl_side(v, lead, xp, wd) for v in (p, q)]
    if p.parameterization == q.parameterization == "log_scale":
        sides = [side[:2] for side in sides]  # t from log-scales as given
    if method == "direct":
        views = ([a[..., :, None, :] for a in sides[0]], [a[..., None, :, :] for a in sides[1]])
        return finish(_kl_direct(*views, xp), dtype, xp)
    gaps = gaps_for(xp)
    check = method == "auto" and gaps.is_concrete(p.loc) and gaps.is_concrete(q.loc)
    # unresolved in the working dtype: at float64, from the parameters as given
    for w in (wd, _wider_dtype(wd, xp)) if check else (wd,):
        if w is None:
            break
        params = (*_full_params(p, lead, xp, w), *_full_params(q, lead, xp, w))
        out, bound = _kl_gemm(*params, xp, w, check)
        if not check:
            return finish(out, dtype, xp)
        ok = _resolved(out, bound, xp, dtype)
        if bool(xp.all(ok)):
            return finish(out, dtype, xp)
    direct = functools.partial(_kl_direct, xp=xp)
    return finish(_redo_entries(out, ok, *sides, direct, xp), dtype, xp)


def _kl_side(dist, lead, xp, wd):
    """``[loc, log_scale, scale]`` of one side at `wd`, broadcast to `lead`."""
    return [*_full_params(dist, lead, xp, wd), _full_params(dist, lead, xp, wd, "scale")[1]]


def _kl_direct(side_p, side_q, xp):
    """KL from broadcasting sides: non-negative terms, relative-accurate.

    With scales in the sides, ``t = 2 log(s_p / s_q)`` from them (`log_ratio`):
    a derived ``log s`` would carry ``~|log s| eps`` into ``t``.
    """
    loc_p, ls_p, *s_p = side_p
    loc_q, ls_q, *s_q = side_q
    t = 2.0 * (log_ratio(s_p[0], s_q[0], xp) if s_p else ls_p - ls_q)
    u = over_scale(loc_p - loc_q, ls_q, xp)
    return 0.5 * xp.sum(exp_excess(t, xp) + u * u, axis=-1)


def _kl_gemm(loc_p, ls_p, loc_q, ls_q, xp, wd, check):
    """The expanded product, and where `check` its error bound per entry (else None)."""
    d = loc_p.shape[-1]
    center = xp.mean(loc_q, axis=-2, keepdims=True)
    mp_, mq = loc_p - center, loc_q - center
    prec_q = xp.exp(-2.0 * ls_q)
    var_p = xp.exp(2.0 * ls_p)
    # KL = sum(ls_q - ls_p) - d/2 + (var_p + mp**2) . prec_q / 2
    #      - mp . (mq prec_q) + mq**2 . prec_q / 2
    a_bias = -xp.sum(ls_p, axis=-1) - 0.5 * d
    b_bias = xp.sum(ls_q, axis=-1) + 0.5 * xp.sum(mq * mq * prec_q, axis=-1)
    # placed (sharded) as the rows they join
    ones_p, ones_q = xp.ones_like(a_bias[..., None]), xp.ones_like(b_bias[..., None])
    spread_p = var_p + mp_ * mp_
    a = xp.concat([spread_p, mp_, a_bias[..., None], ones_p], axis=-1)
    b = xp.concat([0.5 * prec_q, -(mq * prec_q), ones_q, b_bias[..., None]], axis=-1)
    out = xp.matmul(a, xp.matrix_transpose(b))
    bound = None
    if check:
        # the terms cancelled: sum |log s|, d/2 and sum((var_p + mp**2 + mq**2) prec_q)
        reach = xp.max(spread_p, axis=-2, keepdims=True)
        rows = xp.sum(xp.abs(ls_p), axis=-1) + 0.5 * d
        cols = xp.sum(xp.abs(ls_q) + (reach + mq * mq) * prec_q, axis=-1)
        bound = 8 * float(xp.finfo(wd).eps) * (rows[..., :, None] + cols[..., None, :])
    # KL >= 0; rounding of the expansion may dip just below zero for p_i == q_j
    return xp.clip(out, 0.0, None), bound


def pairwise_wasserstein2(p, q, *, method="auto"):
    """2-Wasserstein distances (not squared) for every pair: a (..., K1, K2) matrix.

    ``W2**2 = |m_p - m_q|**2 + |s_p - s_q|**2``: a squared Euclidean distance
    between ``[m, s]`` vectors, expanded into one product after centring.

    Parameters
    ----------
    p, q : MultivariateNormalDiag
        Batches of shapes (..., K1) and (..., K2) with the same event size.
    method : {"auto", "gemm", "direct"}
        "auto" is "gemm", redone by the direct form (a scaled norm of the
        differences: no overflow or underflow where W2 is representable)
        where any entry's error bound passes `PAIR_RELATIVE_LIMIT` of W2**2
        or a square would leave the floating range.

    Returns
    -------
    array of shape (..., K1, K2)

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> p = dg.MultivariateNormalDiag(np.zeros((1, 2)), np.ones(2))
    >>> q = dg.MultivariateNormalDiag(np.array([[3.0, 0.0], [0.0, 0.0]]), np.array([1.0, 5.0]))
    >>> dg.pairwise_wasserstein2(p, q)
    array([[5., 4.]])
    """
    _check_method(method)
    xp, lead, dtype, wd = _pair_components(p, q, "pairwise_wasserstein2")
    if p.batch_shape[-1] == 0 or q.batch_shape[-1] == 0:
        return _empty((*lead, p.batch_shape[-1], q.batch_shape[-1]), dtype, p.loc, xp)
    # the scales as given or derived once: exp(log(scale)) would carry ~|log s| eps
    # into differences of nearly equal scales
    (loc_p, s_p), (loc_q, s_q) = (_full_params(v, lead, xp, wd, "scale") for v in (p, q))
    gaps = gaps_for(xp)
    check = method == "auto" and gaps.is_concrete(loc_p) and gaps.is_concrete(loc_q)
    a = xp.concat([loc_p, s_p], axis=-1)
    b = xp.concat([loc_q, s_q], axis=-1)
    center = xp.mean(b, axis=-2, keepdims=True)
    a, b = a - center, b - center
    # squares that would overflow go to the direct form before they are taken
    big = (float(xp.finfo(wd).max) / (8 * a.shape[-1])) ** 0.5
    direct = functools.partial(_w2_direct, xp=xp)
    if method == "direct" or (check and not _within(a, b, big, xp)):
        rows = [loc_p[..., :, None, :], s_p[..., :, None, :]]
        return finish(direct(rows, [loc_q[..., None, :, :], s_q[..., None, :, :]]), dtype, xp)
    a2 = xp.sum(a * a, axis=-1)[..., :, None]
    b2 = xp.sum(b * b, axis=-1)[..., None, :]
    sq = a2 + b2 - 2.0 * xp.matmul(a, xp.matrix_transpose(b))
    out = xp.sqrt(xp.clip(sq, 0.0, None))
    if not check:
        return finish(out, dtype, xp)
    # the bound of the expansion is 8 eps (|a|**2 + |b|**2) per entry; beyond it
    # (near pairs far from the centre, squares out of range) the direct form
    ok = _resolved(sq, 8 * float(xp.finfo(wd).eps) * (a2 + b2), xp, dtype)
    if bool(xp.all(ok)):
        return finish(out, dtype, xp)
    return finish(_redo_entries(out, ok, [loc_p, s_p], [loc_q, s_q], direct, xp), dtype, xp)


def _w2_direct(side_p, side_q, xp):
    """W2 from broadcasting ``[loc, scale]`` sides: a scaled norm, finite where W2 is."""
    return scaled_norm(side_p[0] - side_q[0], xp, side_p[1] - side_q[1])
