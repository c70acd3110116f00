"""Result and working dtypes, and the common rank of a kernel's arrays.

Results have the promoted dtype of the inputs. Float16 and bfloat16 are
computed in float32 (sums over the event axis accumulate there) and cast back.
Arrays of different ranks are given leading unit axes before they meet, so no
operation relies on rank promotion (JAX's ``numpy_rank_promotion("raise")``
refuses it).
"""

from __future__ import annotations

__all__ = ["event_size", "finish", "ranked", "result_dtype", "work_dtype", "working"]

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


def working(xp, *arrays, reduced=()):
    """`arrays` in the working dtype and one rank, and the dtype the result should have.

    Returns ``(dtype, *arrays, *reduced)``. The `reduced` arrays (with the
    event axis summed away, such as ``log Z``) get that rank minus one.
    None entries stay None.
    """
    dtype = arrays[0].dtype
    rank = arrays[0].ndim
    plain = True
    for a in (*arrays, *reduced):
        if a is not None and a.dtype != dtype:
            plain = False
            break
    for a in arrays:
        if a is not None and a.ndim != rank:
            plain = False
            rank = max(rank, a.ndim)
    for a in reduced:
        if a is not None and a.ndim != rank - 1:
            plain = False
    if plain and _WORK_DTYPE.get((id(xp), dtype)) is dtype:
        return (dtype, *arrays, *reduced)
    dtype = result_dtype(xp, *arrays, *reduced)
    wd = work_dtype(dtype, xp)
    out = [_fit(a, wd, rank, xp) for a in arrays] + [_fit(a, wd, rank - 1, xp) for a in reduced]
    return (dtype, *out)


def _fit(a, wd, rank, xp):
    if a is None:
        return None
    if a.dtype != wd:
        a = xp.astype(a, wd)
    return ranked(a, rank, xp)


def ranked(a, rank, xp):
    """`a` with leading unit axes up to `rank` (a view)."""
    if a.ndim >= rank:
        return a
    return xp.reshape(a, (1,) * (rank - a.ndim) + tuple(a.shape))


def finish(out, dtype, xp):
    """`out` in `dtype` (a no-op unless the inputs were 16-bit)."""
    return out if out.dtype == dtype else xp.astype(out, dtype)


def event_size(a, xp):
    """The length of `a`'s last axis: a number, or under ``torch.jit.trace`` an array of its dtype.

    A traced size is an integer tensor; its product with a Python float would
    be rounded to float32 before it meets a float64 sum.
    """
    d = a.shape[-1]
    return d if isinstance(d, int) else xp.astype(d, a.dtype)
