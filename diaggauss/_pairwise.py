"""All-pairs kernels: N points against K diagonal Gaussians, K1 against K2 Gaussians.

Each pairwise quantity is one matrix product over an expanded square. For
``log N(x | m, diag(s**2))`` with ``p = 1 / s**2``:

    log_prob[n, k] = [x**2, x, 1][n] . [-p/2, m p, b][k],
    b[k] = -(sum(m**2 p)/2 + sum(log s) + d/2 log 2 pi),

so the bias folds into the product and nothing follows it. Data and means
are first shifted by a common centre (the mean of the means), which keeps
float32 accurate far from the origin: the uncentred expansion loses every
digit at offset 1e4 (scikit-learn issue 30382 is the same cancellation).

Memory: the output is preallocated and filled a block of rows at a time
(``A_block @ B.T`` written into ``out[rows]``) where the library allows writes;
the expanded rows of a block are the only temporary, of fixed size. JAX and
Dask compute in one expression (XLA and Dask schedule the memory themselves).
"""

from __future__ import annotations

from . import _core
from ._backend import HALF_LOG_2PI, backend_for, get_namespace
from ._core import work_dtype
from ._distribution import MultivariateNormalDiag

__all__ = [
    "pairwise_kl_divergence",
    "pairwise_log_prob",
    "pairwise_mahalanobis",
    "pairwise_wasserstein2",
]

# Elements of the expanded-row block per chunk (2 MB in float32: it stays in
# cache between being written and being multiplied).
CHUNK_ELEMENTS = 1 << 19
METHODS = ("auto", "gemm", "direct")


def _components(loc, scale, xp, validate_args, what):
    """`loc`/`scale` (or a distribution in `loc`) as a distribution with batch (..., K)."""
    if isinstance(loc, MultivariateNormalDiag):
        if scale is not None:
            raise TypeError(f"{what}: give loc and scale, or one distribution, not both")
        return loc
    d = MultivariateNormalDiag.__new__(MultivariateNormalDiag)
    d._setup(loc, scale, "scale", validate_args, xp)
    return d


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")


def _rows_per_chunk(width, chunk_size):
    if chunk_size is not None:
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive number of rows; got {chunk_size!r}")
        return int(chunk_size)
    return max(1, CHUNK_ELEMENTS // max(width, 1))


def _gemm(rows_of, n, b_t, out_shape, dtype, xp, be, chunk_rows, *operands):
    """``A @ b_t`` where ``rows_of(i, j)`` builds rows ``i:j`` of A (axis -2).

    Written block by block into a preallocated result where the library
    allows writes (and none of `operands` forbids it); in one product otherwise.
    """
    if not be.inplace or n <= chunk_rows or not be.chunk_writes_ok(b_t, *operands):
        return xp.matmul(rows_of(0, n), b_t)
    out = xp.empty(out_shape, dtype=dtype, device=_core._device(b_t))
    for i in range(0, n, chunk_rows):
        j = min(i + chunk_rows, n)
        be.matmul_into(rows_of(i, j), b_t, out, (Ellipsis, slice(i, j), slice(None)))
    return out


def _broadcast_batch(x, lead, xp):
    """`x` broadcast to the batch dimensions `lead` (before its last two axes)."""
    shape = (*lead, *x.shape[-2:])
    return x if tuple(x.shape) == shape else xp.broadcast_to(x, shape)


def _prepare_points(x, comps, xp, name="x"):
    """Check `x` (..., N, d) against components (..., K, d); return float x, batch lead."""
    if _core.is_array(x, xp):
        get_namespace(("loc", comps._loc), (name, x))
    x = _core.as_float_array(name, x, xp, dtype=comps.dtype, device=comps.device)
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
    lead = _core.broadcast_shapes(
        tuple(x.shape[:-2]), batch[:-1], names=(f"{name}.shape[:-2]", "components batch[:-1]")
    )
    return x, lead


def _center(loc, xp):
    """The mean of the means over the component axis: (..., 1, d)."""
    return xp.mean(loc, axis=-2, keepdims=True)


def pairwise_log_prob(
    x, loc, scale=None, *, method="auto", chunk_size=None, xp=None, validate_args=None
):
    """Log densities of N points under K diagonal Gaussians: an (..., N, K) matrix.

    Parameters
    ----------
    x : array of shape (..., N, d)
        Points.
    loc, scale : arrays of shape (..., K, d)
        The components' means and standard deviations (or pass a
        `MultivariateNormalDiag` with batch shape (..., K) as `loc`).
    method : {"auto", "gemm", "direct"}
        "gemm": one matrix product over the centred, expanded square (fast;
        float32 error bounded as in the module notes). "direct": the (N, K, d)
        broadcast, chunked (the reference). "auto" is "gemm", redone at
        float64 in the rare case where the float32 error bound would pass
        `GEMM_ERROR_LIMIT` nats (data far from components much narrower
        than that distance).
    chunk_size : int, optional
        Rows of `x` per block (default: blocks of about 2**20 expanded values).
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
    xp = xp or get_namespace(("x", x), ("loc", getattr(loc, "_loc", loc)), ("scale", scale))
    comps = _components(loc, scale, xp, validate_args, "pairwise_log_prob")
    x, lead = _prepare_points(x, comps, xp)
    if method == "direct":
        return _direct(x, comps, lead, xp, "log_prob", chunk_size)
    return _gemm_quadratic(x, comps, lead, xp, "log_prob", chunk_size, method)


def pairwise_mahalanobis(x, p, *, method="auto", chunk_size=None, xp=None):
    """Mahalanobis distances (not squared) of N points from K diagonal Gaussians: (..., N, K).

    Parameters
    ----------
    x : array of shape (..., N, d)
    p : MultivariateNormalDiag with batch shape (..., K)

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> p = dg.MultivariateNormalDiag(np.array([[0.0, 0.0], [3.0, 4.0]]), np.ones(2))
    >>> dg.pairwise_mahalanobis(np.zeros((1, 2)), p)
    array([[0., 5.]])
    """
    _check_method(method)
    if not isinstance(p, MultivariateNormalDiag):
        raise TypeError(f"p must be a MultivariateNormalDiag; got {type(p).__qualname__}")
    xp = xp or p._ns()
    x, lead = _prepare_points(x, p, xp)
    if method == "direct":
        return _direct(x, p, lead, xp, "mahalanobis", chunk_size)
    return _gemm_quadratic(x, p, lead, xp, "mahalanobis", chunk_size, method)


# The expansion's rounding error is at most 8 eps sum_j ((x_j - c_j)**2 + (m_j - c_j)**2)
# / s_j**2 (module notes); past this many nats, "auto" computes at a wider precision.
GEMM_ERROR_LIMIT = 1e-2


def _gemm_quadratic(x, comps, lead, xp, what, chunk_size, method="auto"):
    """log_prob or Mahalanobis distance through one product over [x**2, x, 1]."""
    be = backend_for(xp)
    dtype = comps.dtype if x.dtype == comps.dtype else xp.result_type(x, comps._loc)
    wd = work_dtype(dtype, xp)
    d = comps.event_shape[0]
    full = (*comps.batch_shape, d)
    (loc,) = _core._upcast(xp, wd, comps._loc)
    loc = _broadcast_batch(xp.broadcast_to(loc, full), lead, xp)
    log_scale = _broadcast_batch(xp.broadcast_to(comps._log_scale(wd), full), lead, xp)
    x = xp.astype(x, wd) if x.dtype != wd else x
    center = _center(loc, xp)
    m = loc - center
    prec = xp.exp(-2.0 * log_scale)
    mp = m * prec
    if what == "log_prob":
        bias = -(0.5 * xp.sum(m * mp, axis=-1) + xp.sum(log_scale, axis=-1) + d * HALF_LOG_2PI)
        b = xp.concat([-0.5 * prec, mp, bias[..., None]], axis=-1)
    else:  # squared Mahalanobis: [x**2, x, 1] . [p, -2 m p, sum(m**2 p)]
        b = xp.concat([prec, -2.0 * mp, xp.sum(m * mp, axis=-1)[..., None]], axis=-1)
    b_t = xp.matrix_transpose(b)
    n = x.shape[-2]
    k = comps.batch_shape[-1]
    xb = _broadcast_batch(x, lead, xp)
    ones_shape = (*lead, 1)
    # The error bound needs max((x - centre)**2) per coordinate: gathered from
    # the squares each block computes anyway (in cache), not by two extra
    # passes over x, which cost 15% of the whole at N=1e5, K=64, d=32. Traced
    # or lazy values are not read and keep the product.
    check = method == "auto" and be.is_concrete(x) and be.is_concrete(m)
    reach = None
    # the running maximum's d columns count against the chunk's memory too
    chunk_rows = _rows_per_chunk(2 * d + 1 + (d if check else 0), chunk_size)

    def rows_of(i, j):
        nonlocal reach
        block = xb[..., i:j, :]
        rows = be.expanded_square(block, center, min(chunk_rows, n), b_t)
        if rows is None:
            xc = block - center
            sq = xc * xc
            ones = xp.ones((*ones_shape[:-1], j - i, 1), dtype=wd, device=_core._device(x))
            rows = xp.concat([sq, xc, ones], axis=-1)
        else:
            sq = rows[..., :d]
        if check:
            # elementwise while the blocks stream; one reduction at the end (a
            # reduction per block over the row axis cost twice as much)
            reach = be.running_max(reach, sq, xp)
        return rows

    out = _gemm(rows_of, n, b_t, (*lead, n, k), wd, xp, be, chunk_rows, xb, center)
    if check and _expansion_too_coarse(xp.max(reach, axis=-2, keepdims=True), m, prec, wd, xp, be):
        del out  # the product is redone below: free its memory first
        wider = _wider_dtype(wd, xp, be)
        if wider is None:
            return _direct(x, comps, lead, xp, what, chunk_size)
        # the same product at double precision: slower, never inaccurate here.
        # From the parameter as given: a log-scale rounded to float32 first
        # would carry its rounding into the precisions (5 ulp at 1e4 nats).
        comps_wide = MultivariateNormalDiag._from_parts(
            xp.astype(comps._loc, wider), xp.astype(comps._param, wider), comps._kind
        )
        out = _gemm_quadratic(xp.astype(x, wider), comps_wide, lead, xp, what, chunk_size, "gemm")
        return _core._finish(out, dtype, xp)
    if what == "mahalanobis":
        out = xp.sqrt(xp.clip(out, 0.0, None))  # rounding may dip below zero at distance 0
    return _core._finish(out, dtype, xp)


def _expansion_too_coarse(reach, m, prec, wd, xp, be):
    """Whether the expansion's error bound exceeds `GEMM_ERROR_LIMIT` (one value read).

    `reach` is the largest squared deviation of the data from the centre per
    coordinate, (..., 1, d); the bound combines it with every component's
    offset `m` and precision `prec`.
    """
    bound = xp.max(xp.sum((reach + m * m) * prec, axis=-1))
    eps = float(xp.finfo(wd).eps)
    return not be.all_true(8 * eps * bound <= GEMM_ERROR_LIMIT)


def _wider_dtype(wd, xp, be):
    """float64 where the library has it and `wd` is narrower; else None."""
    if xp.finfo(wd).bits >= 64 or not be.has_float64():
        return None
    return xp.float64


def _direct(x, comps, lead, xp, what, chunk_size):
    """The (..., N, K, d) broadcast, in blocks of rows: the reference form."""
    be = backend_for(xp)
    dtype = comps.dtype if x.dtype == comps.dtype else xp.result_type(x, comps._loc)
    wd = work_dtype(dtype, xp)
    d = comps.event_shape[0]
    k = comps.batch_shape[-1]
    full = (*comps.batch_shape, d)
    (loc,) = _core._upcast(xp, wd, comps._loc)
    x = xp.astype(x, wd) if x.dtype != wd else x
    loc = _broadcast_batch(xp.broadcast_to(loc, full), lead, xp)[..., None, :, :]
    log_scale = _broadcast_batch(xp.broadcast_to(comps._log_scale(wd), full), lead, xp)
    inv = xp.exp(-log_scale)[..., None, :, :]
    norm = (xp.sum(log_scale, axis=-1) + d * HALF_LOG_2PI)[..., None, :]
    x = _broadcast_batch(x, lead, xp)
    n = x.shape[-2]
    rows = _rows_per_chunk(k * d, chunk_size)

    def block(i, j):
        z = (x[..., i:j, None, :] - loc) * inv
        maha = xp.sum(z * z, axis=-1)
        return -0.5 * maha - norm if what == "log_prob" else xp.sqrt(maha)

    if not be.inplace or n <= rows or not be.chunk_writes_ok(x, loc, inv):
        out = block(0, n)
    else:
        out = xp.empty((*lead, n, k), dtype=wd, device=_core._device(x))
        for i in range(0, n, rows):
            j = min(i + rows, n)
            out[..., i:j, :] = block(i, j)
    return _core._finish(out, dtype, xp)


def _pair_components(p, q, what):
    for name, v in (("p", p), ("q", q)):
        if not isinstance(v, MultivariateNormalDiag):
            raise TypeError(
                f"{what}: {name} must be a MultivariateNormalDiag; got {type(v).__qualname__}"
            )
    xp = p._ns()
    q._ns()
    get_namespace(("p.loc", p._loc), ("q.loc", q._loc))
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"{what}: event sizes differ: p has {p.event_shape}, q has {q.event_shape}"
        )
    for name, v in (("p", p), ("q", q)):
        if not v.batch_shape:
            raise ValueError(
                f"{what}: {name} needs a batch axis of components (batch_shape (..., K)); got ()"
            )
    lead = _core.broadcast_shapes(
        p.batch_shape[:-1], q.batch_shape[:-1], names=("p.batch_shape[:-1]", "q.batch_shape[:-1]")
    )
    dtype = p.dtype if p.dtype == q.dtype else xp.result_type(p._loc, q._loc)
    return xp, lead, dtype, work_dtype(dtype, xp)


def _full_params(dist, lead, xp, wd):
    d = dist.event_shape[0]
    full = (*dist.batch_shape, d)
    (loc,) = _core._upcast(xp, wd, dist._loc)
    log_scale = dist._log_scale(wd)
    loc = _broadcast_batch(xp.broadcast_to(loc, full), lead, xp)
    log_scale = _broadcast_batch(xp.broadcast_to(log_scale, full), lead, xp)
    return loc, log_scale


def pairwise_kl_divergence(p, q, *, method="auto"):
    """``KL(p_i || q_j)`` for every pair: a (..., K1, K2) matrix.

    Parameters
    ----------
    p, q : MultivariateNormalDiag
        Batches of shapes (..., K1) and (..., K2) with the same event size.
    method : {"auto", "gemm", "direct"}
        "gemm" expands the square into one product (centred means); "direct"
        broadcasts (K1, K2, d).

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
    loc_p, ls_p = _full_params(p, lead, xp, wd)
    loc_q, ls_q = _full_params(q, lead, xp, wd)
    d = p.event_shape[0]
    if method == "auto":
        be = backend_for(xp)
        wider = _wider_dtype(wd, xp, be)
        if be.is_concrete(loc_p) and be.is_concrete(loc_q):
            # the expansion below cancels terms up to sum((mp**2 + mq**2 + sp**2) / sq**2)
            c = _center(loc_q, xp)
            reach = xp.max((loc_p - c) ** 2 + xp.exp(2.0 * ls_p), axis=-2, keepdims=True)
            bound = xp.max(xp.sum((reach + (loc_q - c) ** 2) * xp.exp(-2.0 * ls_q), axis=-1))
            if not be.all_true(8 * float(xp.finfo(wd).eps) * bound <= GEMM_ERROR_LIMIT):
                if wider is None:
                    return pairwise_kl_divergence(p, q, method="direct")
                pw, qw = (
                    MultivariateNormalDiag._from_parts(
                        xp.astype(v._loc, wider), xp.astype(v._log_scale(), wider), "log_scale"
                    )
                    for v in (p, q)
                )
                return _core._finish(pairwise_kl_divergence(pw, qw, method="gemm"), dtype, xp)
    if method == "direct":
        t = 2.0 * (ls_p[..., :, None, :] - ls_q[..., None, :, :])
        u = (loc_p[..., :, None, :] - loc_q[..., None, :, :]) * xp.exp(-ls_q[..., None, :, :])
        out = 0.5 * xp.sum(xp.expm1(t) - t + u * u, axis=-1)
        return _core._finish(out, dtype, xp)
    center = _center(loc_q, xp)
    mp_, mq = loc_p - center, loc_q - center
    prec_q = xp.exp(-2.0 * ls_q)
    var_p = xp.exp(2.0 * ls_p)
    # KL = sum(ls_q - ls_p) - d/2 + (var_p + mp**2) . prec_q / 2
    #      - mp . (mq prec_q) + mq**2 . prec_q / 2
    a_bias = -xp.sum(ls_p, axis=-1) - 0.5 * d
    b_bias = xp.sum(ls_q, axis=-1) + 0.5 * xp.sum(mq * mq * prec_q, axis=-1)
    ones_p = xp.ones((*a_bias.shape, 1), dtype=wd, device=_core._device(loc_p))
    ones_q = xp.ones((*b_bias.shape, 1), dtype=wd, device=_core._device(loc_q))
    a = xp.concat([var_p + mp_ * mp_, mp_, a_bias[..., None], ones_p], axis=-1)
    b = xp.concat([0.5 * prec_q, -(mq * prec_q), ones_q, b_bias[..., None]], axis=-1)
    out = xp.matmul(a, xp.matrix_transpose(b))
    # KL >= 0; rounding of the expansion may dip just below zero for p_i == q_j
    return _core._finish(xp.clip(out, 0.0, None), dtype, xp)


def pairwise_wasserstein2(p, q, *, method="auto"):
    """2-Wasserstein distances (not squared) for every pair: a (..., K1, K2) matrix.

    ``W2**2 = |m_p - m_q|**2 + |s_p - s_q|**2``: a squared Euclidean distance
    between ``[m, s]`` vectors, expanded into one product after centring.

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
    loc_p, ls_p = _full_params(p, lead, xp, wd)
    loc_q, ls_q = _full_params(q, lead, xp, wd)
    a = xp.concat([loc_p, xp.exp(ls_p)], axis=-1)
    b = xp.concat([loc_q, xp.exp(ls_q)], axis=-1)
    if method == "direct":
        diff = a[..., :, None, :] - b[..., None, :, :]
        return _core._finish(xp.sqrt(xp.sum(diff * diff, axis=-1)), dtype, xp)
    center = xp.mean(b, axis=-2, keepdims=True)
    a, b = a - center, b - center
    sq = (
        xp.sum(a * a, axis=-1)[..., :, None]
        + xp.sum(b * b, axis=-1)[..., None, :]
        - 2.0 * xp.matmul(a, xp.matrix_transpose(b))
    )
    return _core._finish(xp.sqrt(xp.clip(sq, 0.0, None)), dtype, xp)
