"""The math of the diagonal Gaussian, once, for every array-API library.

Everything here takes the namespace ``xp`` and the :class:`~._backend.Backend`
``be`` explicitly: the public entry points resolve them once per call (the
functional kernels) or once per object (the distributions) and pass them down,
so a hot call pays one namespace look-up at most.

Parameterisations. A distribution stores its spread as the user gave it:
``kind`` is one of ``"scale"``, ``"log_scale"``, ``"variance"`` or
``"precision"`` and ``param`` holds that array. The converters below derive
the rest without round trips (``log_scale`` is never ``log(exp(log_scale))``).

Dtypes. Float16 and bfloat16 inputs are computed in float32 (event-axis sums
accumulate there) and the results cast back to the input dtype.
"""

from __future__ import annotations

import math

from ._backend import HALF_LOG_2PI, default_float_dtype

KINDS = ("scale", "log_scale", "variance", "precision")

# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------


def broadcast_shapes(*shapes, names=None):
    """NumPy broadcasting of shape tuples, with an error naming the arguments."""
    if len(shapes) == 2 and shapes[0] == shapes[1]:
        return tuple(shapes[0])
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for s in shapes:
        for i, n in enumerate(s, start=ndim - len(s)):
            if n == 1:
                continue
            if out[i] == 1:
                out[i] = n
            elif out[i] != n:
                described = " and ".join(
                    f"{name} of shape {tuple(shape)}"
                    for name, shape in zip(
                        names or [f"#{k}" for k in range(len(shapes))], shapes, strict=True
                    )
                )
                raise ValueError(
                    f"{described} do not broadcast: dimension {i - ndim} has sizes "
                    f"{out[i]} and {n}"
                )
    return tuple(out)


def normalize_sample_shape(sample_shape) -> tuple:
    """``()``, an int or a sequence of non-negative ints, as a tuple."""
    if isinstance(sample_shape, int):
        sample_shape = (sample_shape,)
    if isinstance(sample_shape, str):
        raise TypeError(f"sample_shape must be an int or a tuple of ints; got {sample_shape!r}")
    try:
        shape = tuple(int(n) for n in sample_shape)
    except TypeError:
        raise TypeError(
            f"sample_shape must be an int or a tuple of ints; got {sample_shape!r}"
        ) from None
    if any(n < 0 for n in shape):
        raise ValueError(f"sample_shape must not be negative; got {shape}")
    return shape


def batch_key(index, batch_ndim, what="batch_shape"):
    """An indexing key for ``(*batch, d)`` arrays that indexes the batch only.

    Counts the axes `index` consumes (a boolean array consumes its ndim) and
    refuses more than the batch has: the event axis is never indexed.
    """
    idx = index if isinstance(index, tuple) else (index,)
    used = 0
    ellipsis = False
    for i in idx:
        if i is Ellipsis:
            ellipsis = True
        elif i is not None:
            dtype = getattr(i, "dtype", None)
            used += i.ndim if dtype is not None and "bool" in str(dtype) else 1
    if used > batch_ndim:
        raise IndexError(
            f"too many indices for a batch of {batch_ndim} dimension(s): {used} given; the "
            f"event axis cannot be indexed, use marginal(dims) for a sub-vector"
        )
    return (*idx, slice(None)) if ellipsis else (*idx, Ellipsis, slice(None))


def event_dims(dims, d):
    """`dims` of `marginal` as a slice or a list of distinct coordinates in [0, d)."""
    if isinstance(dims, slice):
        return dims
    seq = [dims] if isinstance(dims, int) else list(dims)
    try:
        keep = [int(k) for k in seq]
    except TypeError:
        raise TypeError(
            f"dims must be an int, a slice or a sequence of ints; got {dims!r}"
        ) from None
    if not keep:
        raise ValueError(f"dims selects no coordinate: {dims!r}")
    bad = [k for k in keep if not -d <= k < d]
    if bad:
        raise ValueError(f"dims {bad} out of range for event size d={d}")
    keep = [k % d for k in keep]
    if len(set(keep)) != len(keep):
        raise ValueError(f"dims must not repeat a coordinate; got {seq}")
    if keep == list(range(keep[0], keep[0] + len(keep))):
        return slice(keep[0], keep[0] + len(keep))  # contiguous: a view
    return keep


# ---------------------------------------------------------------------------
# dtypes and conversion of inputs
# ---------------------------------------------------------------------------

_WORK_DTYPE: dict = {}


def work_dtype(dtype, xp):
    """The dtype computations run in: float32 for 16-bit floats, else `dtype`."""
    # Keyed with the namespace too: dtypes of different libraries may hash
    # alike, and array-api-strict warns when its dtypes meet foreign ones.
    key = (id(xp), dtype)
    try:
        return _WORK_DTYPE[key]
    except KeyError:
        wd = xp.float32 if xp.finfo(dtype).bits < 32 else dtype
        _WORK_DTYPE[key] = wd
        return wd


_REAL_FLOATING: dict = {}


def is_real_floating(dtype, xp) -> bool:
    """``xp.isdtype(dtype, "real floating")``, cached (NumPy's costs ~1.5 us a call)."""
    key = (id(xp), dtype)
    try:
        return _REAL_FLOATING[key]
    except KeyError:
        value = _REAL_FLOATING[key] = bool(xp.isdtype(dtype, "real floating"))
        return value


def is_array(a, xp) -> bool:
    return not isinstance(a, int | float | bool | list | tuple) and a is not None


def as_float_array(name, a, xp, dtype=None, device=None):
    """`a` as an array of `xp` with a real floating dtype.

    Python numbers and lists become arrays of `dtype` (or the library default);
    integer and boolean arrays are promoted to the default floating dtype.
    """
    if not is_array(a, xp):
        try:
            a = xp.asarray(a, dtype=dtype, device=device)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} could not be converted to an array: {e}") from None
    if not is_real_floating(a.dtype, xp):
        if xp.isdtype(a.dtype, "complex floating"):
            raise TypeError(f"{name} must be real; got dtype {a.dtype}")
        a = xp.astype(a, dtype if dtype is not None else default_float_dtype(xp))
    return a


def common_float_dtype(xp, *arrays):
    dtype = arrays[0].dtype
    for a in arrays[1:]:
        if a.dtype != dtype:
            dtype = xp.result_type(dtype, a.dtype)
    return dtype


# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------


def prepare(loc, param, kind, xp):
    """Convert `loc` and the spread parameter, check shapes, align the event axis.

    Returns ``(loc, param, batch_shape, d)``. Only metadata is inspected: this
    never reads values, so it runs under any tracer.
    """
    loc_is_array = is_array(loc, xp)
    param_is_array = is_array(param, xp)
    if loc_is_array:
        loc = as_float_array("loc", loc, xp)
    if param_is_array:
        param = as_float_array(kind, param, xp)
    if not loc_is_array:
        ref = param if param_is_array else None
        loc = as_float_array(
            "loc",
            loc,
            xp,
            dtype=None if ref is None else ref.dtype,
            device=None if ref is None else _device(ref),
        )
    if not param_is_array:
        param = as_float_array(kind, param, xp, dtype=loc.dtype, device=_device(loc))
    if loc.ndim == 0:
        raise ValueError(
            "loc must have at least one dimension, the event axis of size d; got a 0-d "
            "array. For a one-dimensional normal give loc of shape (..., 1)."
        )
    if loc.dtype != param.dtype:
        dtype = xp.result_type(loc.dtype, param.dtype)
        loc = xp.astype(loc, dtype)
        param = xp.astype(param, dtype)
    lshape = tuple(loc.shape)
    pshape = tuple(param.shape)
    shape = lshape if lshape == pshape else broadcast_shapes(lshape, pshape, names=("loc", kind))
    d = shape[-1]
    if lshape[-1] != d:
        loc = xp.broadcast_to(loc, (*lshape[:-1], d))
    if not pshape or pshape[-1] != d:
        param = xp.broadcast_to(param, (*pshape[:-1], d))
    return loc, param, shape[:-1], d


def check_value_shape(name, shape, batch_shape, d):
    """Raise a `ValueError` unless `shape` is ``(*sample, *batch, d)`` up to broadcasting."""
    shape = tuple(shape)
    if not shape or shape[-1] != d:
        raise ValueError(
            f"{name} must have the event size d={d} as its last axis, shape "
            f"(*sample_shape, *batch_shape, {d}) with batch_shape={tuple(batch_shape)}; "
            f"got shape {shape}"
        )
    batch_shape = tuple(batch_shape)
    if shape[:-1] != batch_shape:
        try:
            broadcast_shapes(shape[:-1], batch_shape)
        except ValueError:
            raise ValueError(
                f"{name} of shape {shape} does not broadcast with batch_shape={batch_shape}: "
                f"expected (*sample_shape, *batch_shape, {d}) or shapes broadcastable to it"
            ) from None


def _device(a):
    import array_api_compat

    return array_api_compat.device(a)


_CONSTRAINT = {
    "scale": "positive and finite",
    "log_scale": "finite",
    "variance": "positive and finite",
    "precision": "positive and finite",
}


def param_ok(param, kind, xp):
    """Elementwise validity of a spread parameter."""
    if kind == "log_scale":
        return xp.isfinite(param)
    return (param > 0) & (param < math.inf)


def values_ok(loc, param, kind, xp, be) -> bool:
    """Whether `loc` is finite and the spread valid, in one host read."""
    ok = xp.all(xp.isfinite(loc)) & xp.all(param_ok(param, kind, xp))
    return be.all_true(ok)


def explain_invalid(loc, param, kind, xp):
    """Raise a `ValueError` naming the first bad argument, if there is one."""
    check_array("loc", loc, xp.isfinite(loc), "finite", xp)
    check_array(kind, param, param_ok(param, kind, xp), _CONSTRAINT[kind], xp)


def check_array(name, a, good, expected, xp):
    """Raise a `ValueError` describing the entries of `a` where `good` is False."""
    bad = ~good
    n_bad = int(xp.sum(xp.astype(bad, xp.int64 if hasattr(xp, "int64") else xp.int32)))
    if n_bad == 0:
        return
    first = tuple(int(i[0]) for i in xp.nonzero(bad if bad.ndim else xp.reshape(bad, (1,))))
    value = float(a[first] if a.ndim else a)
    size = math.prod(a.shape)
    where = f" at index {first}" if a.ndim else ""
    raise ValueError(
        f"{name} must be {expected}; got {value!r}{where} ({n_bad} of {size} values of "
        f"{name} with shape {tuple(a.shape)} are invalid)"
    )


def scale_of(param, kind, xp):
    if kind == "scale":
        return param
    if kind == "log_scale":
        return xp.exp(param)
    if kind == "variance":
        return xp.sqrt(param)
    return 1.0 / xp.sqrt(param)


def log_scale_of(param, kind, xp):
    if kind == "log_scale":
        return param
    if kind == "scale":
        return xp.log(param)
    if kind == "variance":
        return 0.5 * xp.log(param)
    return -0.5 * xp.log(param)


def inv_scale_of(param, kind, xp):
    if kind == "scale":
        return 1.0 / param
    if kind == "log_scale":
        return xp.exp(-param)
    if kind == "variance":
        return 1.0 / xp.sqrt(param)
    return xp.sqrt(param)


def variance_of(param, kind, xp):
    if kind == "variance":
        return param
    if kind == "scale":
        return param * param
    if kind == "log_scale":
        return xp.exp(2.0 * param)
    return 1.0 / param


def precision_of(param, kind, xp):
    if kind == "precision":
        return param
    if kind == "scale":
        return 1.0 / (param * param)
    if kind == "log_scale":
        return xp.exp(-2.0 * param)
    return 1.0 / param


def sum_log_scale(param, kind, xp):
    """``sum(log scale)`` over the event axis, the half log-determinant, in the working dtype."""
    wd = work_dtype(param.dtype, xp)
    if wd != param.dtype:
        param = xp.astype(param, wd)
    return xp.sum(log_scale_of(param, kind, xp), axis=-1)


# ---------------------------------------------------------------------------
# Math. Inputs are arrays of one namespace with prepared shapes; `dtype` is the
# dtype of the result, computations run in work_dtype(dtype).
# ---------------------------------------------------------------------------


def _upcast(xp, wd, *arrays):
    return tuple(a if a.dtype == wd else xp.astype(a, wd) for a in arrays)


def _finish(out, dtype, xp):
    return out if out.dtype == dtype else xp.astype(out, dtype)


def standardize(x, loc, spread, inverse, xp, be):
    """``(x - loc) / scale`` (``inverse`` False) or ``(x - loc) * inv_scale``.

    Writes into the ``x - loc`` temporary where the library allows it and no
    broadcasting would change its shape: one allocation, not two. The result
    may be a reused buffer (`Backend.difference`): callers reduce it and never
    return it.
    """
    return _update(be.difference(x, loc, spread), spread, "*" if inverse else "/", be)


def _fits(small, big):
    if small == big:
        return True
    if len(small) > len(big):
        return False
    return all(s == 1 or s == b for s, b in zip(small[::-1], big[::-1], strict=False))


def mahalanobis_sq(x, loc, spread, inverse, xp, be):
    """``sum(((x - loc) / scale)**2, axis=-1)``."""
    return be.sum_squares(standardize(x, loc, spread, inverse, xp, be), xp, scratch=True)


def neg_log_normalizer(sum_log, d, be):
    """``-(sum(log scale) + d/2 log 2 pi)``: the log density at the mode."""
    return be.subtract_from(-d * HALF_LOG_2PI, sum_log)


def log_prob_from(maha_sq, neg_log_norm, be):
    """Log density from the squared Mahalanobis distance: ``neg_log_norm - maha_sq / 2``."""
    return be.add_scaled(neg_log_norm, maha_sq, -0.5)


def log_prob_fused(z, log_scale, xp):
    """The same log density as one reduction of per-coordinate terms.

    ``sum(-z**2 / 2 - log s) - d/2 log 2 pi`` for libraries whose compiler
    fuses the elementwise work into the reduction (XLA), where a reduction
    followed by more arithmetic on its result ran up to 1.3x slower (measured
    at (65536, 64)).
    """
    d = z.shape[-1]
    return xp.sum(-0.5 * (z * z) - log_scale, axis=-1) - d * HALF_LOG_2PI


def entropy_from(sum_log, d):
    return sum_log + d * (0.5 + HALF_LOG_2PI)


def log_cdf(x, loc, spread, inverse, xp, be):
    """``sum(log Phi((x - loc) / scale), axis=-1)``."""
    z = standardize(x, loc, spread, inverse, xp, be)
    return xp.sum(be.log_ndtr(z, xp), axis=-1)


def _update(z, other, op, be, *, grad_safe=True):
    """``z op= other`` (op one of ``*``, ``/``, ``-``) in place where allowed, else not.

    `z` must be a fresh temporary. The update stays out of place when the
    library forbids it or broadcasting would change `z`'s shape. `grad_safe`:
    the op that made `z` does not keep its output for the backward pass (a
    subtraction does not; exp or expm1 do), so autograd tolerates the update.
    """
    if (
        be.inplace
        and be.can_update(z, other, grad_safe=grad_safe)
        and _fits(tuple(getattr(other, "shape", ())), tuple(z.shape))
    ):
        if op == "*":
            z *= other
        elif op == "/":
            z /= other
        else:
            z -= other
        return z
    if op == "*":
        return z * other
    return z / other if op == "/" else z - other


def kl_divergence(loc_p, log_scale_p, loc_q, log_scale_q, inv_scale_q, xp, be):
    """``KL(p || q)`` from log-scales, finite where the variances under/overflow.

    Per dimension, with ``t = 2 (log s_p - log s_q)``:
    ``(exp(t) - 1 - t) / 2 + ((m_p - m_q) / s_q)**2 / 2``. ``expm1`` keeps the
    first term exact for nearly equal scales, where ``exp(t) - 1`` would cancel.
    Temporaries are updated in place where the library allows.
    """
    t = log_scale_p - log_scale_q
    t = t + t
    if be.fused_reductions:  # one reduction of the whole expression (see log_prob_fused)
        u = (loc_p - loc_q) * inv_scale_q
        return xp.sum(0.5 * ((xp.expm1(t) - t) + u * u), axis=-1)
    e = _update(xp.expm1(t), t, "-", be, grad_safe=False)
    u = _update(be.difference(loc_p, loc_q, inv_scale_q), inv_scale_q, "*", be)
    total = be.add_scaled(xp.sum(e, axis=-1), be.sum_squares(u, xp, scratch=True), 1.0)
    return 0.5 * total


def cross_entropy(loc_p, log_scale_p, loc_q, log_scale_q, inv_scale_q, xp, be):
    """``H(p, q) = -E_p[log q]`` from log-scales."""
    t = log_scale_p - log_scale_q
    r = xp.exp(t + t)
    d = loc_p.shape[-1] if loc_p.ndim else 1
    if be.fused_reductions:
        u = (loc_p - loc_q) * inv_scale_q
        return xp.sum(log_scale_q + 0.5 * (r + u * u) + HALF_LOG_2PI, axis=-1)
    u = _update(be.difference(loc_p, loc_q, inv_scale_q), inv_scale_q, "*", be)
    quad = be.add_scaled(xp.sum(r, axis=-1), be.sum_squares(u, xp, scratch=True), 1.0)
    return be.add_scaled(xp.sum(log_scale_q, axis=-1), quad, 0.5) + d * HALF_LOG_2PI


def wasserstein2(loc_p, scale_p, loc_q, scale_q, xp, be):
    """The 2-Wasserstein distance (not squared) between diagonal Gaussians."""
    dm = be.sum_squares(be.difference(loc_p, loc_q), xp, scratch=True)
    ds = be.sum_squares(scale_p - scale_q, xp, scratch=True)
    return xp.sqrt(be.add_scaled(dm, ds, 1.0))


def diag_embed(v, xp):
    """A batch of diagonal matrices ``(..., d, d)`` with `v` on the diagonal."""
    d = v.shape[-1]
    eye = xp.eye(d, dtype=v.dtype, device=_device(v))
    return v[..., None] * eye


def logsumexp(a, axis, xp):
    """``log(sum(exp(a), axis))``, stable, ``-inf`` where every term is ``-inf``."""
    m = xp.max(a, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    out = xp.log(xp.sum(xp.exp(a - m), axis=axis, keepdims=True)) + m
    return xp.squeeze(out, axis=axis)


def log_softmax(a, axis, xp):
    """``a - logsumexp(a)`` along `axis`."""
    return a - xp.expand_dims(logsumexp(a, axis, xp), axis=axis)
