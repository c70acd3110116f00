"""Shapes: broadcasting with named errors, sample shapes, batch indexing, event selection."""

from __future__ import annotations

import numbers
import operator

import array_api_compat

from ._gaps import gaps_for

__all__ = [
    "batch_key",
    "broadcast_shapes",
    "check_expand",
    "check_value_shape",
    "event_dims",
    "normalize_sample_shape",
    "positive_int",
]


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


def _index(name, v):
    """`v` as a Python int if it is an integer (not a bool, float or string)."""
    if isinstance(v, bool | str | bytes):
        raise TypeError(f"{name} must be an int; got {v!r}")
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an int; got {v!r} ({type(v).__name__})") from None


def normalize_sample_shape(sample_shape, name="sample_shape") -> tuple:
    """``()``, an int or a sequence of non-negative ints, as a tuple."""
    if isinstance(sample_shape, tuple) and not sample_shape:  # torch.Size() too
        return ()
    if isinstance(sample_shape, str | bytes | bool):
        raise TypeError(f"{name} must be an int or a tuple of ints; got {sample_shape!r}")
    try:
        items = (sample_shape,) if not hasattr(sample_shape, "__iter__") else tuple(sample_shape)
    except TypeError:  # a 0-d array: one size if it can be read as an int
        items = (sample_shape,)
    try:
        shape = tuple(_index(name, n) for n in items)
    except TypeError:
        raise _shape_error(name, sample_shape, items) from None
    if any(n < 0 for n in shape):
        raise ValueError(f"{name} must not be negative; got {shape}")
    return shape


def _shape_error(name, sample_shape, items):
    if any(_unknown_int(n) for n in items):
        return TypeError(
            f"{name} must be an int or a tuple of ints known where the function is "
            f"traced; got {sample_shape!r}, an integer array whose value is not known "
            "(traced or lazy). A shape cannot depend on traced values: under jax.jit "
            "mark the argument static (jax.jit(f, static_argnums=...) or "
            "static_argnames=...), or pass a Python int"
        )
    return TypeError(f"{name} must be an int or a tuple of ints; got {sample_shape!r}")


def _unknown_int(v) -> bool:
    """Whether `v` is an integer array that cannot be read as an int (a tracer, a lazy array)."""
    return tuple(getattr(v, "shape", (0,))) == () and "int" in str(getattr(v, "dtype", ""))


def positive_int(name, value):
    """`value` as a positive int, or a named `TypeError` / `ValueError`."""
    n = _index(name, value)
    if n < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return n


def batch_key(index, batch_shape):
    """An indexing key for ``(*batch, d)`` arrays that indexes the batch only.

    Counts the axes `index` consumes (a boolean array consumes its ndim) and
    refuses more than the batch has: the event axis is never indexed. Integer
    indices whose values are known are checked against their axis, because
    some libraries (JAX) clamp out-of-range indices instead of raising.
    """
    idx = index if isinstance(index, tuple) else (index,)
    batch_ndim = len(batch_shape)
    consumed = [_axes_consumed(i) for i in idx]
    used = sum(n for n in consumed if n is not None)
    if used > batch_ndim:
        raise IndexError(
            f"too many indices for a batch of {batch_ndim} dimension(s): {used} given; the "
            f"event axis cannot be indexed, use marginal(dims) for a sub-vector"
        )
    # entries before an Ellipsis index the leading axes, entries after it the trailing ones
    cut = next((k for k, n in enumerate(consumed) if n is None), len(idx))
    axis = 0
    for i, n in zip(idx[:cut], consumed[:cut], strict=True):
        _check_in_range(i, axis, batch_shape)
        axis += n
    axis = batch_ndim
    for i, n in zip(idx[cut + 1 :][::-1], consumed[cut + 1 :][::-1], strict=True):
        axis -= n
        _check_in_range(i, axis, batch_shape)
    ellipsis = cut < len(idx)
    return (*idx, slice(None)) if ellipsis else (*idx, Ellipsis, slice(None))


def _axes_consumed(i):
    """How many batch axes index entry `i` consumes (``None`` for an Ellipsis)."""
    if i is Ellipsis:
        return None
    if i is None:
        return 0
    dtype = getattr(i, "dtype", None)
    return i.ndim if dtype is not None and "bool" in str(dtype) else 1


def _check_in_range(i, axis, batch_shape):
    """Raise an `IndexError` if integer index `i` (known values only) is outside its axis."""
    if isinstance(i, slice | bool) or i is None:
        return
    values = _known_ints(i)
    if not values:
        return
    n = batch_shape[axis]
    bad = [v for v in values if not -n <= v < n]
    if bad:
        raise IndexError(
            f"index {bad[0]} is out of range for batch axis {axis} of size {n} "
            f"(batch shape {tuple(batch_shape)})"
        )


def _known_ints(i):
    """The integer values of index entry `i` when they can be read now, else ``[]``."""
    if isinstance(i, numbers.Integral):  # NumPy integer scalars too
        return [int(i)]
    dtype = getattr(i, "dtype", None)
    if dtype is None:
        if isinstance(i, list | range) and all(isinstance(v, int) for v in i):
            return [v for v in i if not isinstance(v, bool)]
        return []
    try:
        xp = array_api_compat.array_namespace(i)
    except TypeError:
        return []
    if not xp.isdtype(dtype, "integral") or not gaps_for(xp).is_concrete(i):
        return []
    if i.ndim == 0:
        return [int(i)]
    if i.size == 0:
        return []
    return [int(xp.min(i)), int(xp.max(i))]


def check_expand(current, batch_shape):
    """Raise a `ValueError` unless `current` broadcasts to `batch_shape` (what `expand` needs)."""
    try:
        ok = broadcast_shapes(current, batch_shape) == batch_shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"cannot expand batch_shape={current} to {batch_shape}: each dimension must "
            f"match or be 1 in the current batch shape"
        )


def event_dims(dims, d):
    """`dims` of `marginal` as a slice or a list of distinct coordinates in [0, d)."""
    if isinstance(dims, slice):
        return dims
    if isinstance(dims, str | bytes | bool) or not (
        hasattr(dims, "__iter__") or hasattr(dims, "__index__")
    ):
        raise TypeError(f"dims must be an int, a slice or a sequence of ints; got {dims!r}")
    seq = list(dims) if hasattr(dims, "__iter__") else [dims]
    keep = []
    for k in seq:
        try:
            keep.append(_index("dims", k))
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
