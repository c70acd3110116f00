"""Turning what users pass into the arrays a distribution holds.

The rule (design.md, "Validation and errors"): NumPy arrays, NumPy scalars
and Python numbers or lists adopt the library, dtype and device of the other
arrays; arrays of two different non-NumPy libraries raise a `TypeError`
naming both. Only metadata is read here, never values, so it runs under any
tracer.
"""

from __future__ import annotations

import math

from ._gaps import gaps_for
from ._namespace import (
    _namespace_of,
    as_array,
    describe,
    device_of,
    devices_differ,
    get_namespace,
    is_array,
    is_numpy_namespace,
    library_name,
)
from ._shapes import broadcast_shapes, check_value_shape
from ._spread import Parameters
from ._validation import check_array

__all__ = ["as_value", "check_pair", "own_library", "points_and_weights", "prepare"]


def prepare(loc, param, name, xp):
    """`loc` and the spread parameter as arrays of `xp` whose last axes agree.

    NumPy data and Python numbers adopt the dtype and device of the other
    argument when it is an array of `xp`. Only metadata is read, never
    values, so this runs under any tracer. Returns ``(loc, param, batch_shape)``.
    """
    if param is None:
        raise TypeError(f"{name} is required; got None")
    if loc is None:
        raise TypeError("loc is required; got None")
    loc_native = is_array(loc) and _namespace_of("loc", loc) is xp
    param_native = is_array(param) and _namespace_of(name, param) is xp
    if not loc_native:
        loc = _adopt("loc", loc, param if param_native else None, xp)
    if not param_native:
        param = _adopt(name, param, loc, xp)
    loc = as_array("loc", loc, xp)
    param = as_array(name, param, xp)
    if loc.ndim == 0:
        raise ValueError(
            "loc must have at least one dimension, the event axis of size d; got a 0-d "
            "array. For a one-dimensional normal give loc of shape (..., 1)."
        )
    if devices_differ(loc, param):
        raise ValueError(
            f"loc is on device {device_of(loc)} but {name} is on device {device_of(param)}: "
            f"the parameters of a distribution must live on one device"
        )
    lshape, pshape = tuple(loc.shape), tuple(param.shape)
    if lshape == pshape:
        return loc, param, lshape[:-1]
    shape = broadcast_shapes(lshape, pshape, names=("loc", name))
    d = shape[-1]
    if lshape[-1] != d:
        loc = xp.broadcast_to(loc, (*lshape[:-1], d))
    if not pshape or pshape[-1] != d:
        param = xp.broadcast_to(param, (*pshape[:-1], d))
    return loc, param, shape[:-1]


def _adopt(name, a, ref, xp):
    """NumPy data or a Python number as an array of `xp`, with `ref`'s dtype and device."""
    if ref is None:
        return as_array(name, a, xp)
    return as_array(name, a, xp, dtype=ref.dtype, device=device_of(ref))


def own_library(cls, own, xp, loc, param, name):
    """`own` for NumPy data given to a class bound to one library; else a `TypeError`."""
    if library_name(xp) == "numpy":
        return own
    offender = ("loc", loc) if is_array(loc) and _namespace_of("loc", loc) is xp else (name, param)
    raise TypeError(
        f"{cls.__module__}.{cls.__qualname__} holds {library_name(own)} arrays; {offender[0]} "
        f"is a {library_name(xp)} array ({describe(offender[1])}): use "
        f"diaggauss.MultivariateNormalDiag for it, or convert it first"
    )


def as_value(dist, x, name="x"):
    """``(dist, x)``: `x` in `dist`'s library and dtype, checked against its event and batch.

    NumPy data adopts `dist`'s library; a distribution of NumPy arrays given
    another library's `x` comes back in that library (`to_namespace`), as
    NumPy data adopts the other library everywhere.
    """
    loc = dist._loc
    if dist._xp is None:
        dist._ns()
    if type(x) is type(loc) and x.dtype == loc.dtype and x.shape == loc.shape == dist._param.shape:
        return dist, x  # the per-step case: one point per distribution
    xp = dist._xp
    if not (is_array(x) and _namespace_of(name, x) is xp):
        other = get_namespace(("loc", loc), (name, x))  # TypeError naming both libraries
        if other is not xp and is_numpy_namespace(xp) and dist._own_namespace is None:
            dist, xp = dist.to_namespace(other, device=device_of(x)), other
        x = as_array(name, x, xp, dtype=dist.dtype, device=dist.device)
    else:
        x = as_array(name, x, xp, dtype=dist.dtype)
    shape = tuple(x.shape)
    d = loc.shape[-1]
    if shape[:-1] != dist.batch_shape or not shape or shape[-1] != d:
        check_value_shape(name, shape, dist.batch_shape, d)
    return dist, x


def check_pair(p, q, what):
    """``(p, q, batch)``: `q` checked against `p` for `what`, and the broadcast batch shape.

    A distribution of NumPy arrays beside another library's comes back in it.
    """
    if not isinstance(q, Parameters):
        raise TypeError(
            f"{what} needs another MultivariateNormalDiag; got {describe(q)}" + _convert_hint(q)
        )
    xp, xq = p._ns(), q._ns()
    if xp is not xq:
        get_namespace(("p.loc", p._loc), ("q.loc", q._loc))  # TypeError naming both libraries
        if is_numpy_namespace(xp) and p._own_namespace is None:
            p = _beside(p, q)
        elif is_numpy_namespace(xq) and q._own_namespace is None:
            q = _beside(q, p)
    dp, dq = p._loc.shape[-1], q._loc.shape[-1]
    if dp != dq:
        raise ValueError(f"{what}: event sizes differ, p has d={dp} and q has d={dq}")
    names = ("p.batch_shape", "q.batch_shape")
    return p, q, broadcast_shapes(p.batch_shape, q.batch_shape, names=names)


def _beside(d, other):
    """`d` (of NumPy arrays) in `other`'s library and device, and in its floating dtype.

    NumPy data follows the other distribution's dtype, as NumPy values do in
    `log_prob`; cast on the NumPy side, so no float64 reaches JAX without x64
    (whose truncation warns).
    """
    xn = d._ns()
    want = getattr(xn, str(other.dtype).rsplit(".", 1)[-1], None)  # torch.float32 -> float32
    if want is not None and want != d.dtype:
        cast = [xn.astype(a, want) for a in (d._loc, d._param)]
        d = type(d)._build(*cast, d._par, d._validate_args)
    return d.to_namespace(other._ns(), device=other.device)


def _convert_hint(q) -> str:
    module = type(q).__module__.split(".")[0]
    if module in ("tensorflow_probability", "distrax", "numpyro", "torch", "scipy"):
        return f" (convert it with MultivariateNormalDiag.from_distribution: a {module} object)"
    return ""


def points_and_weights(x, weights, xp, *, name="x", batched=True):
    """`x` (and `weights`) as arrays of one library, checked: ``(x, weights, xp)``."""
    if xp is None:
        xp = get_namespace((name, x), ("weights", weights))
    x = as_array(name, x, xp)
    if x.ndim < 2 or (not batched and x.ndim != 2):
        want = "(..., N, d)" if batched else "(N, d)"
        raise ValueError(f"{name} must have shape {want}; got {tuple(x.shape)}")
    if x.shape[-2] == 0:
        raise ValueError(f"{name} has no points (shape {tuple(x.shape)})")
    if weights is not None:
        weights = as_array("weights", weights, xp, dtype=x.dtype, device=device_of(x))
        if tuple(weights.shape) != tuple(x.shape[:-1]):
            try:
                broadcast_shapes(tuple(weights.shape), tuple(x.shape[:-1]))
            except ValueError:
                raise ValueError(
                    f"weights must have shape {tuple(x.shape[:-1])} (one per point of {name}); "
                    f"got {tuple(weights.shape)}"
                ) from None
            weights = xp.broadcast_to(weights, tuple(x.shape[:-1]))
        if gaps_for(xp).is_concrete(weights):
            good = (weights >= 0) & (weights < math.inf)
            if not bool(xp.all(good)):
                check_array("weights", weights, good, "non-negative and finite", xp)
            if not bool(xp.all(xp.sum(weights, axis=-1) > 0)):
                raise ValueError("weights must not all be zero")
        if weights.dtype != x.dtype:
            weights = xp.astype(weights, x.dtype)
    return x, weights, xp
