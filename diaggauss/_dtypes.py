"""Result and working dtypes.

Results have the promoted dtype of the inputs. Float16 and bfloat16 are
computed in float32 (sums over the event axis accumulate there) and cast back.
"""

from __future__ import annotations

__all__ = ["finish", "result_dtype", "work_dtype", "working"]

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


def result_dtype(xp, *arrays):
    """The promoted dtype of `arrays` (None entries skipped)."""
    dtype = None
    for a in arrays:
        if a is None:
            continue
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype:
            dtype = xp.result_type(dtype, a.dtype)
    return dtype


def working(xp, *arrays):
    """`arrays` cast to the working dtype, and the dtype the result should have.

    Returns ``(dtype, *arrays)``; None entries stay None.
    """
    dtype = arrays[0].dtype
    for a in arrays:
        if a is not None and a.dtype != dtype:
            break
    else:  # one dtype: nothing to promote
        if _WORK_DTYPE.get((id(xp), dtype)) is dtype:
            return (dtype, *arrays)
    dtype = result_dtype(xp, *arrays)
    wd = work_dtype(dtype, xp)
    return (dtype, *(a if a is None or a.dtype == wd else xp.astype(a, wd) for a in arrays))


def finish(out, dtype, xp):
    """`out` in `dtype` (a no-op unless the inputs were 16-bit)."""
    return out if out.dtype == dtype else xp.astype(out, dtype)
