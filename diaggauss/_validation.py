"""Checks of values, and the errors that name what is wrong.

`values_ok` is the kernel run on every construction where values are
concrete: one host read. Only when it answers False does `explain` read the
arrays again to name the argument, the first bad value and its index.
"""

from __future__ import annotations

import math

from ._dispatch import overridable
from ._gaps import gaps_for

__all__ = [
    "check_array",
    "explain",
    "few_values_ok",
    "finite",
    "get_default_validate_args",
    "positive_finite",
    "set_default_validate_args",
    "values_ok",
]


_DEFAULTS = {"validate_args": True}


def set_default_validate_args(value: bool) -> None:
    """Turn validation of parameters on or off for distributions built afterwards.

    Parameters
    ----------
    value : bool
        The default for ``validate_args=None``. Validation starts on, as in
        ``torch.distributions``.

    Examples
    --------
    >>> import diaggauss as dg
    >>> dg.set_default_validate_args(False)
    >>> dg.get_default_validate_args()
    False
    >>> dg.set_default_validate_args(True)
    """
    if value not in (True, False):
        raise TypeError(f"value must be True or False; got {value!r}")
    _DEFAULTS["validate_args"] = bool(value)


def get_default_validate_args() -> bool:
    """The current default for ``validate_args=None`` (see `set_default_validate_args`).

    Examples
    --------
    >>> import diaggauss as dg
    >>> dg.get_default_validate_args()
    True
    """
    return _DEFAULTS["validate_args"]


@overridable
def values_ok(loc, param, domain, *, xp) -> bool:
    """Whether `loc` is finite and `param` lies in `domain` ("real" or "positive").

    Called only where the values can be read (``Gaps.is_concrete``).

    One host read of four reductions without temporaries: the extremes of
    an array are finite exactly when no value is NaN or infinite (NaN
    propagates through ``min`` and ``max``), and a positive minimum makes a
    spread positive.
    """
    if math.prod(loc.shape) == 0 or math.prod(param.shape) == 0:
        return True
    low = xp.min(param)
    ok = xp.isfinite(xp.min(loc)) & xp.isfinite(xp.max(loc)) & xp.isfinite(xp.max(param))
    ok = ok & ((low > 0) if domain == "positive" else xp.isfinite(low))
    return bool(ok)


def few_values_ok(loc_values, param_values, domain) -> bool:
    """`values_ok` of nested lists of Python floats (from ``tolist()``)."""
    loc_values = _flat(loc_values)
    param_values = _flat(param_values)
    # A finite total means no NaN and no infinity among the terms: C-level
    # reductions instead of a Python test per value (``t - t`` is 0 only for a
    # finite ``t``). A total that overflows, or a non-positive spread, gets the
    # exact test (so does an empty spread: ``min(..., default=)`` costs twice ``min``).
    total = sum(loc_values) + sum(param_values)
    if total - total == 0.0 and (
        domain != "positive" or (param_values and min(param_values) > 0.0)
    ):
        return True
    if not all(map(math.isfinite, loc_values)):
        return False
    if domain != "positive":
        return all(map(math.isfinite, param_values))
    return all(0.0 < v < math.inf for v in param_values)


def _flat(values):
    """Flatten the nested lists of ``tolist()`` (a reshape costs more)."""
    if values.__class__ is not list:  # tolist() of a 0-d array
        return [values]
    if len(values) == 1 and values[0].__class__ is list:  # one row: the per-step case
        values = values[0]
    while values and values[0].__class__ is list:
        values = [v for row in values for v in row]
    return values


def finite(a, xp):
    """Elementwise: finite."""
    return xp.isfinite(a)


def positive_finite(a, xp):
    """Elementwise: positive and finite."""
    return (a > 0) & (a < math.inf)


_DOMAINS = {"real": finite, "positive": positive_finite}


def explain(loc, param, par, xp):
    """Raise a `ValueError` naming the first bad argument, if there is one."""
    check_array("loc", loc, finite(loc, xp), "finite", xp)
    check_array(par.name, param, _DOMAINS[par.domain](param, xp), par.constraint, xp)


def check_array(name, a, good, expected, xp):
    """Raise a `ValueError` describing the entries of `a` where `good` is False."""
    import numpy as np

    gaps = gaps_for(xp)
    bad = ~np.asarray(gaps.to_host(good))
    n_bad = int(bad.sum())
    if n_bad == 0:
        return
    first = tuple(int(i[0]) for i in np.nonzero(bad if bad.ndim else bad.reshape(1)))
    values = np.asarray(gaps.to_host(a))
    value = float(values[first] if values.ndim else values)
    size = math.prod(a.shape)
    where = f" at index {first}" if a.ndim else ""
    raise ValueError(
        f"{name} must be {expected}; got {value!r}{where} ({n_bad} of {size} values of "
        f"{name} with shape {tuple(a.shape)} are invalid)"
    )
