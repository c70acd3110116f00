"""Array namespaces, and turning what users pass into arrays of one library.

The rule (design.md, "Validation and errors"): NumPy arrays, NumPy scalars and
Python numbers or lists are not "another library". Wherever an array is taken,
they become arrays of the distribution's library, with its dtype and device,
as torch, distrax, TFP and numpyro do. Arrays of two different non-NumPy
libraries (torch and JAX, say) raise a `TypeError` naming both.
"""

from __future__ import annotations

import math
import types
from typing import Any

import array_api_compat

__all__ = [
    "as_array",
    "convert_array",
    "describe",
    "device_of",
    "get_namespace",
    "is_numpy_namespace",
    "library_name",
    "namespace_of_library",
    "numpy_namespace",
    "plain_pair",
]

# type -> namespace; array_namespace() costs ~1-3 us a call, a dict hit ~50 ns.
_NAMESPACE_OF_TYPE: dict[type, Any] = {}
_PYTHON = (int, float, bool, list, tuple)
_NUMPY_NAMESPACE = None


def describe(obj) -> str:
    """The qualified name of `obj`'s type, for messages."""
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__


def library_name(xp) -> str:
    """A short name of the library behind namespace `xp` (``"numpy"``, ``"torch"``...)."""
    name = getattr(xp, "__name__", type(xp).__name__)
    return name.removeprefix("array_api_compat.").split(".")[0]


def numpy_namespace():
    """NumPy's (array-API compatible) namespace."""
    global _NUMPY_NAMESPACE
    if _NUMPY_NAMESPACE is None:
        import array_api_compat.numpy as np_xp

        _NUMPY_NAMESPACE = np_xp
    return _NUMPY_NAMESPACE


def register_array_type(array_type, xp):
    """Record that arrays of `array_type` (and its subclasses) belong to namespace `xp`.

    An adapter registers its library's array type on import, so that lookups
    need no probing (nor tracing, inside ``torch.compile``).
    """
    _NAMESPACE_OF_TYPE[array_type] = xp


def _namespace_of(name, a):
    t = type(a)
    xp = _NAMESPACE_OF_TYPE.get(t)
    if xp is None:
        xp = next((_NAMESPACE_OF_TYPE[b] for b in t.__mro__[1:] if b in _NAMESPACE_OF_TYPE), None)
    if xp is None:
        try:
            xp = array_api_compat.array_namespace(a)
        except TypeError:
            raise TypeError(
                f"{name} must be an array of an array-API library (NumPy, PyTorch, JAX, ...) "
                f"or a Python number or list; got {describe(a)}"
            ) from None
        _NAMESPACE_OF_TYPE[t] = xp
    return xp


def is_numpy_like(a) -> bool:
    """Python numbers and lists, NumPy arrays and NumPy scalars: data any library adopts."""
    if a is None or isinstance(a, _PYTHON):
        return True
    return type(a).__module__ == "numpy"


def get_namespace(*named):
    """The one array namespace of ``(name, value)`` pairs.

    The library of the non-NumPy arrays among them; NumPy arrays, Python
    numbers, lists and None adopt it. With no such array, NumPy's namespace.

    Raises
    ------
    TypeError
        Arrays of two different non-NumPy libraries; the message names both
        arguments and libraries. Objects that are not arrays.
    """
    xp = first = None
    for name, a in named:
        if a is None or isinstance(a, _PYTHON):
            continue
        ns = _namespace_of(name, a)
        if ns is xp or is_numpy_namespace(ns):
            continue
        if xp is None:
            xp, first = ns, (name, a)
            continue
        raise TypeError(
            f"{first[0]} is a {library_name(xp)} array ({describe(first[1])}) but {name} is a "
            f"{library_name(ns)} array ({describe(a)}); arrays of one distribution must come "
            f"from one library (NumPy data and Python numbers convert to it): convert one of "
            f"them first"
        )
    return numpy_namespace() if xp is None else xp


def plain_pair(a, b):
    """The namespace of `a` and `b` if they agree in every way; else None (the slow path).

    They agree when they are arrays of one type already seen, of one real
    floating dtype, one shape (at least 1-d) and one device.
    """
    t = type(a)
    if type(b) is not t:
        return None
    xp = _NAMESPACE_OF_TYPE.get(t)
    if xp is None:
        return None
    dt = a.dtype
    if b.dtype != dt or a.shape != b.shape or not a.shape:
        return None
    if not _REAL_FLOATING.get((id(xp), dt)) or devices_differ(a, b):
        return None
    return xp


def namespace_of_library(lib):
    """The array namespace of `lib`: a namespace, a library module (``torch``), or an array."""
    if not isinstance(lib, types.ModuleType) and hasattr(lib, "shape"):
        return _namespace_of("array", lib)
    return _namespace_of("array", lib.asarray([0.0]))


def convert_array(a, xp, *, device=None):
    """`a` as an array of library `xp` (on `device`), zero-copy through DLPack where possible.

    Falls back to a copy through the host where DLPack cannot share the memory
    (another device, strides it refuses, a torch tensor with autograd history).
    """
    if is_numpy_like(a):
        return as_array("array", a, xp, device=device)
    src = _namespace_of("array", a)
    if src is xp and (device is None or device_of(a) == device):
        return a
    if device is None or _same_device_kind(a, device):
        try:
            out = xp.from_dlpack(a)
            if device is None or device_of(out) == device:
                return out
        except (AttributeError, BufferError, RuntimeError, TypeError, ValueError):
            pass
    from ._gaps import gaps_for

    return xp.asarray(gaps_for(src).to_host(a), device=device)


def _same_device_kind(a, device) -> bool:
    return str(device_of(a)).split(":")[0] == str(device).split(":")[0]


def device_of(a):
    """The device `a` lives on (``"cpu"`` for NumPy)."""
    dev = getattr(a, "device", None)
    if dev is None or callable(dev):
        return array_api_compat.device(a)
    # a sharded JAX array reports its sharding, a placement for its own shape only:
    # new arrays of other shapes are left to the library (XLA propagates shardings)
    if getattr(dev, "num_devices", 1) > 1:
        return None
    return dev


def devices_differ(a, b) -> bool:
    """Whether arrays `a` and `b` sit on different devices.

    Never for JAX, which places data itself (a sharded and a replicated
    array report different shardings, yet combine).
    """
    da, db = getattr(a, "device", None), getattr(b, "device", None)
    if da is None or db is None or da == db:
        return False
    return not (array_api_compat.is_jax_array(a) or array_api_compat.is_jax_array(b))


def _check_not_complex(name, a):
    kind = getattr(getattr(a, "dtype", None), "kind", None)  # NumPy's dtype kinds
    if kind == "c":
        raise TypeError(f"{name} must be real; got complex dtype {a.dtype}")
    if kind in ("M", "m", "O", "U", "S", "V"):
        raise TypeError(f"{name} must be a real number array; got dtype {a.dtype} (not a number)")


def as_array(name, a, xp, *, dtype=None, device=None):
    """`a` as an array of `xp` with a real floating dtype.

    NumPy arrays, NumPy scalars and Python numbers or lists become arrays of
    `xp` of `dtype` (else NumPy's own floating dtype, else the library's
    default) on `device`. Integer and boolean arrays are promoted to `dtype`
    or the default floating dtype. Complex and non-numeric data raise a
    `TypeError` naming `name`. Arrays of another library are refused by the
    caller's `get_namespace` before this.
    """
    if not is_array(a) or (is_numpy_like(a) and not is_numpy_namespace(xp)):
        if isinstance(a, _PYTHON) or a is None:
            _check_python(name, a)
        else:
            _check_not_complex(name, a)
        target = dtype
        if target is None and getattr(getattr(a, "dtype", None), "kind", None) == "f":
            target = _floating_of(a, xp)
        # a read-only NumPy array (a broadcast view) is copied: shared, the
        # other library could write through it (torch warns)
        flags = getattr(a, "flags", None)
        copy = True if flags is not None and not flags.writeable else None
        try:
            a = xp.asarray(a, dtype=target, device=device, copy=copy)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"{name} could not be converted to an array: {e}") from None
    dt = a.dtype
    if not _is_real_floating(dt, xp):
        if xp.isdtype(dt, "complex floating"):
            raise TypeError(f"{name} must be real; got complex dtype {dt}")
        if not (xp.isdtype(dt, "integral") or xp.isdtype(dt, "bool")):
            raise TypeError(f"{name} must be a real number array; got dtype {dt}")
        a = xp.astype(a, dtype if dtype is not None else default_float_dtype(xp, device))
    return a


_IS_NUMPY: dict = {}


def is_numpy_namespace(xp) -> bool:
    """Whether `xp` is NumPy's namespace (cached: compat's own test is an lru_cache)."""
    hit = _IS_NUMPY.get(id(xp))
    if hit is None:
        hit = _IS_NUMPY[id(xp)] = library_name(xp) == "numpy"
    return hit


def _check_python(name, a):
    if a is None:
        raise TypeError(f"{name} is required; got None")
    if isinstance(a, complex):
        raise TypeError(f"{name} must be real; got the complex number {a!r}")
    if isinstance(a, list | tuple):
        flat = list(a)
        while flat and isinstance(flat[0], list | tuple):
            flat = [v for row in flat for v in row]
        bad = next((v for v in flat if not isinstance(v, int | float | bool)), None)
        if bad is not None and not hasattr(bad, "dtype"):
            kind = "real" if isinstance(bad, complex) else "a number"
            raise TypeError(f"{name} must hold real numbers; got {bad!r} (not {kind})")


def _floating_of(a, xp):
    """The dtype of `xp` matching NumPy floating array `a` (float16/32/64)."""
    name = a.dtype.name
    out = getattr(xp, name, None)
    return out if out is not None else xp.float64


_REAL_FLOATING: dict = {}


def _is_real_floating(dtype, xp) -> bool:
    key = (id(xp), dtype)
    try:
        return _REAL_FLOATING[key]
    except KeyError:
        value = _REAL_FLOATING[key] = bool(xp.isdtype(dtype, "real floating"))
        return value


def default_float_dtype(xp, device=None):
    """The library's default real floating dtype (float64 for NumPy, torch's current default...).

    Not cached: torch's default can change (``torch.set_default_dtype``).
    """
    try:
        info = xp.__array_namespace_info__()
        return info.default_dtypes(device=device)["real floating"]
    except (AttributeError, TypeError, ValueError):
        return xp.float64


def is_array(a) -> bool:
    """Whether `a` is an array (not None, a Python number or a list)."""
    return a is not None and not isinstance(a, _PYTHON)


HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
