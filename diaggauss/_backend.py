"""Array namespaces and the registry of backend hooks.

The core is written against the array API standard. Where the standard has a
gap (random numbers, ``log_ndtr``, telling a traced value from a concrete one)
or where one library has a much faster spelling of a primitive (a sum of
squares without a temporary), the core asks the :class:`Backend` registered
for the array's namespace. A backend module under ``diaggauss.backends`` is
imported only when an array of its library is first seen, so ``import
diaggauss`` never imports a framework.
"""

from __future__ import annotations

import importlib
import math
import sys
from typing import Any

import array_api_compat

from ._special import log_ndtr_standard

__all__ = [
    "Backend",
    "SeedError",
    "backend_for",
    "default_float_dtype",
    "ensure_jax_pytrees",
    "get_namespace",
    "library_name",
]


class SeedError(TypeError, ValueError):
    """A ``seed`` that the array's library cannot sample with.

    Subclasses both `TypeError` (a seed of the wrong kind, e.g. a
    ``torch.Generator`` for NumPy arrays) and `ValueError` (a missing JAX key).

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> d = dg.MultivariateNormalDiag(np.zeros(2), np.ones(2))
    >>> try:
    ...     d.sample(seed="abc")
    ... except dg.SeedError as e:
    ...     print("refused")
    refused
    """


class Backend:
    """Hooks for one array library; the generic fallbacks use only the standard.

    A backend module subclasses this and overrides what its library does better
    or what the standard lacks. Instances are stateless.
    """

    #: Short library name used in messages ("numpy", "torch", "jax", ...).
    name = "generic"
    #: Whether a freshly computed temporary may be updated in place.
    inplace = False
    #: Whether the library's compiler fuses elementwise work into reductions
    #: (XLA): the core then writes each result as one reduction of the whole
    #: per-coordinate expression instead of reusing cached partial sums.
    fused_reductions = False

    def is_concrete(self, x) -> bool:
        """Whether `x` holds values that can be read now without tracing or a compute graph."""
        return not array_api_compat.is_lazy_array(x)

    def can_cache(self, value, source) -> bool:
        """Whether `value`, derived from parameter `source`, may be kept for later calls.

        Not for values that only live inside a trace (a JAX tracer kept on an
        object made outside ``jit`` would leak), nor for values with autograd
        history (torch).
        """
        return True

    def version(self, source):
        """A token that changes when `source` is updated in place (None: never tracked).

        NumPy, JAX and the other libraries give none: their parameters are
        treated as immutable; build a new distribution after changing them.
        """
        return None

    def has_float64(self) -> bool:
        """Whether float64 arrays can be made (JAX needs ``jax_enable_x64``)."""
        return True

    def chunk_writes_ok(self, *arrays) -> bool:
        """Whether results computed from `arrays` may be written into a preallocated array."""
        return True

    def can_update(self, z, other, *, grad_safe=True) -> bool:
        """Whether ``z op= other`` may run in place (``inplace`` being True).

        `grad_safe` is False when autograd keeps `z` (the output of exp,
        expm1, ...) for its backward pass.
        """
        return True

    def all_true(self, condition) -> bool:
        """Read a 0-d boolean array on the host (the one sync of validation)."""
        return bool(condition)

    def values_ok(self, dist) -> bool:
        """Whether `dist`'s loc is finite and its spread valid: one host read.

        May answer False for valid values (the core then runs the exact,
        slower check); must never answer True for invalid ones.
        """
        from ._core import values_ok

        return values_ok(dist._loc, dist._param, dist._kind, dist._ns(), self)

    def difference(self, x, loc, *then):
        """``x - loc`` as a temporary the caller will overwrite and drop (never return).

        `then` lists the arrays the caller will combine into it in place.
        """
        return x - loc

    def subtract_from(self, c, a):
        """``c - a`` for a Python number `c` (libraries that wrap scalars slowly override it)."""
        return c - a

    def log_density_terms(self, z, dist, wd):
        """``z**2 / 2 + log scale`` of `dist` at `wd` in one kernel; None where not worth it.

        Where the library has such a kernel and launches dominate, an
        object's first `log_prob` sums these terms instead of building and
        caching the normalizer first: one kernel and one cache entry fewer on
        the construct-and-evaluate path of RL and VAE steps.
        """
        return None

    def expanded_square(self, x, center, capacity, other):
        """Rows ``[(x - c)**2, x - c, 1]`` for the pairwise product; None: use the concat.

        May return a view of a reused buffer (`capacity` rows) for an immediate
        product with `other`.
        """
        return None

    def running_max(self, acc, block, xp):
        """Elementwise maximum of `block` into the first rows (axis -2) of `acc`.

        `acc` None starts from `block` itself: only a backend whose
        `expanded_square` reuses a buffer must copy it (and overrides this).
        Later blocks may have fewer rows. The result feeds a host-side check.
        """
        if acc is None:
            return block
        rows = block.shape[-2]
        if rows == acc.shape[-2]:
            return xp.maximum(acc, block)
        return xp.concat([xp.maximum(acc[..., :rows, :], block), acc[..., rows:, :]], axis=-2)

    def jit(self, fn):
        """`fn` compiled where the library compiles whole functions (JAX); else `fn`."""
        return fn

    def matmul_into(self, a, b, out, index):
        """Write ``a @ b`` into ``out[index]`` (``inplace`` backends only)."""
        out[index] = a @ b

    def add_scaled(self, b, a, alpha):
        """``b + alpha * a``, for libraries that fuse it."""
        return b + alpha * a

    def log_ndtr(self, x, xp):
        """Elementwise ``log(Phi(x))`` of the standard normal CDF."""
        return log_ndtr_standard(x, xp)

    def sum_squares(self, z, xp, *, scratch=False):
        """``sum(z**2, axis=-1)``; `scratch` says `z` is a temporary that may be overwritten."""
        return xp.sum(z * z, axis=-1)

    def random_stream(self, seed, xp):
        """An object with ``normal(shape, dtype, device)`` and ``uniform(...)`` for many draws.

        Every draw consumes the seed's state in turn (a Generator advances, a
        JAX key is split), so a fixed seed gives a fixed sequence.
        """
        return _NumpyStream(numpy_generator(seed, self.name), xp)

    def normal(self, seed, shape, dtype, device, xp):
        """Standard normal noise of `shape` and `dtype` on `device`.

        The generic version draws with NumPy (a ``numpy.random.Generator``, an
        int or None) and converts, which suits any library without its own
        random numbers (array-api-strict, Dask).
        """
        import numpy as np

        rng = numpy_generator(seed, self.name)
        bits = xp.finfo(dtype).bits
        noise = rng.standard_normal(shape, dtype=np.float32 if bits <= 32 else np.float64)
        return xp.asarray(noise, dtype=dtype, device=device)


class _NumpyStream:
    """Successive draws from one NumPy Generator, converted to the namespace."""

    def __init__(self, rng, xp):
        self.rng = rng
        self.xp = xp

    def _convert(self, a, dtype, device):
        return self.xp.asarray(a, dtype=dtype, device=device)

    def _np_dtype(self, dtype):
        import numpy as np

        return np.float32 if self.xp.finfo(dtype).bits <= 32 else np.float64

    def normal(self, shape, dtype, device):
        a = self.rng.standard_normal(shape, dtype=self._np_dtype(dtype))
        return self._convert(a, dtype, device)

    def uniform(self, shape, dtype, device):
        """Uniform on [0, 1)."""
        return self._convert(self.rng.random(shape, dtype=self._np_dtype(dtype)), dtype, device)


# Up to this many parameter values, validation reads them on the host: cheaper
# than launching reductions (the per-step case in RL and VAE loops).
FEW_VALUES = 64


def flat_values(values):
    """Flatten the nested lists of ``tolist()`` (a reshape op costs more)."""
    if not isinstance(values, list):  # tolist() of a 0-d array
        return [values]
    while values and isinstance(values[0], list):
        values = [v for row in values for v in row]
    return values


def few_values_ok(loc_values, param_values, kind) -> bool:
    """`values_ok` on Python floats: loc finite, the spread valid for `kind`."""
    loc_values = flat_values(loc_values)
    param_values = flat_values(param_values)
    # A finite total means no NaN and no infinity among the terms: two C-level
    # reductions instead of a Python test per value. A total that overflows
    # (or a non-positive spread) gets the exact test.
    if math.isfinite(sum(loc_values) + sum(param_values)) and (
        kind == "log_scale" or not param_values or min(param_values) > 0.0
    ):
        return True
    if not all(map(math.isfinite, loc_values)):
        return False
    if kind == "log_scale":
        return all(map(math.isfinite, param_values))
    return all(0.0 < v < math.inf for v in param_values)


def numpy_generator(seed, library):
    """A ``numpy.random.Generator`` from a NumPy-style seed, or a clear error."""
    import numpy as np

    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, int | np.integer) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.SeedSequence | np.random.BitGenerator):
        return np.random.default_rng(seed)
    raise SeedError(
        f"seed must be a numpy.random.Generator, an int or None to sample {library} arrays; "
        f"got {_describe(seed)}"
    )


def _describe(obj) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__


# Namespace -> Backend, and the backend module that serves each library.
_BY_NAMESPACE: dict[int, tuple[Any, Backend]] = {}
_MODULES = (
    (array_api_compat.is_numpy_namespace, "diaggauss.backends.numpy"),
    (array_api_compat.is_torch_namespace, "diaggauss.backends.torch"),
    (array_api_compat.is_jax_namespace, "diaggauss.backends.jax"),
)


def backend_for(xp) -> Backend:
    """The registered :class:`Backend` for namespace `xp`, loading it on first use."""
    hit = _BY_NAMESPACE.get(id(xp))
    if hit is not None:
        return hit[1]
    for is_namespace, module in _MODULES:
        if is_namespace(xp):
            backend = importlib.import_module(module).BACKEND
            break
    else:
        backend = Backend()
        backend.name = library_name(xp)
    _BY_NAMESPACE[id(xp)] = (xp, backend)
    return backend


def library_name(xp) -> str:
    """A short name of the library behind namespace `xp` (``"numpy"``, ``"torch"``...)."""
    name = getattr(xp, "__name__", type(xp).__name__)
    for prefix in ("array_api_compat.",):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.split(".")[0]


# type -> namespace; array_namespace() costs ~1-3 us a call, a dict hit ~50 ns.
_NAMESPACE_OF_TYPE: dict[type, Any] = {}
_SCALARS = (int, float, bool, list, tuple)


def _namespace_of(name, a):
    t = type(a)
    xp = _NAMESPACE_OF_TYPE.get(t)
    if xp is None:
        try:
            xp = array_api_compat.array_namespace(a)
        except TypeError:
            raise TypeError(
                f"{name} must be an array of an array-API library (NumPy, PyTorch, JAX, ...) "
                f"or a Python number or list; got {_describe(a)}"
            ) from None
        _NAMESPACE_OF_TYPE[t] = xp
    return xp


def get_namespace(*named):
    """The one array namespace shared by ``(name, value)`` pairs.

    Python numbers, lists and None are skipped (they adopt the arrays'
    library). With no array at all, NumPy's namespace is returned.

    Raises
    ------
    TypeError
        If the arrays come from different libraries; the message names both.
    """
    xp = first = None
    for name, a in named:
        if a is None or isinstance(a, _SCALARS):
            continue
        ns = _namespace_of(name, a)
        if xp is None:
            xp, first = ns, (name, a)
        elif ns is not xp:
            raise TypeError(
                f"{first[0]} is a {library_name(xp)} array ({_describe(first[1])}) but {name} "
                f"is a {library_name(ns)} array ({_describe(a)}); all arrays of a distribution "
                f"must come from one library: convert one of them first"
            )
    if xp is None:
        import numpy as np

        xp = _namespace_of("value", np.empty(0))
    return xp


def default_float_dtype(xp, device=None):
    """The library's default real floating dtype (float64 for NumPy, torch's current default...).

    Not cached: torch's default can change (``torch.set_default_dtype``).
    """
    try:
        info = xp.__array_namespace_info__()
        return info.default_dtypes(device=device)["real floating"]
    except (AttributeError, TypeError, ValueError):
        return xp.float64


_jax_pytrees_registered = False


def ensure_jax_pytrees() -> None:
    """Register the distributions as JAX pytrees once JAX has been imported.

    Cheap enough for every constructor: after the first registration, or while
    JAX is absent, it is a global read and a dict look-up.
    """
    if not _jax_pytrees_registered and "jax" in sys.modules:
        importlib.import_module("diaggauss.backends.jax")


def _mark_jax_pytrees_registered() -> None:
    global _jax_pytrees_registered
    _jax_pytrees_registered = True


HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
