"""What the array API standard lacks, supplied per library: the gaps registry.

The math (`diaggauss._kernels` and friends) is written once in the standard.
Eight things cannot be: random numbers, telling a traced value from a concrete
one, reading a value on the host, computing lazy values now (`Gaps.settle`),
whether a derived value may be kept for later calls and which version of a
parameter it came from, whether float64 exists, and silencing floating-point
warnings (NumPy's) where a result is right all the same. A `Gaps` object
answers those for one library; the generic one below serves any library
without an adapter.

Adapters live in ``diaggauss.backends.<library>`` and are imported only when
an array of their library is first seen (or the user imports them), so
``import diaggauss`` imports no framework. An adapter module defines ``GAPS``
(a `Gaps` instance) and may register whole-kernel overrides
(`diaggauss._dispatch`) and conversions (`diaggauss._convert`) on import.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from typing import Any

import array_api_compat

from ._namespace import describe, library_name

__all__ = ["ADAPTERS", "Gaps", "SeedError", "gaps_for", "load_adapter", "quietly"]


class SeedError(TypeError, ValueError):
    """A ``seed`` that the array's library cannot sample with.

    Subclasses both `TypeError` (a seed of the wrong kind, e.g. a
    ``torch.Generator`` for NumPy arrays) and `ValueError` (a missing JAX key,
    a NumPy seed of -1).

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


class Gaps:
    """The generic answers; an adapter subclasses this for its library.

    Instances are stateless. ``overrides`` maps a kernel's name to the
    library's whole replacement for it (see `diaggauss._dispatch`).
    """

    #: Short library name used in messages ("numpy", "torch", "jax", ...).
    name = "generic"

    def __init__(self):
        self.overrides: dict[str, Any] = {}

    def random_stream(self, seed, draws=None):
        """Successive draws from `seed`: an object with ``normal`` and ``uniform``.

        ``normal(shape, dtype, device)`` and ``uniform(shape, dtype, device)``
        return arrays of this library; each draw advances the seed's state, so
        a fixed seed gives a fixed sequence. `draws` is how many draws the
        caller will make, when it knows (a JAX key serves one draw itself, or
        is split in as many). The generic stream draws with a
        ``numpy.random.Generator`` (from a Generator, an int or None) and
        converts.
        """
        return NumpyStream(numpy_generator(seed, self.name), self._xp)

    def is_concrete(self, *arrays) -> bool:
        """Whether every one of `arrays` holds values that can be read now (not traced, lazy).

        Probed once per array type (array-api-compat reads one value of an
        unknown library's array to find out); a library's adapter answers
        without probing.
        """
        for x in arrays:
            t = type(x)
            lazy = _LAZY_TYPES.get(t)
            if lazy is None:
                lazy = _LAZY_TYPES[t] = array_api_compat.is_lazy_array(x)
            if lazy:
                return False
        return True

    def to_host(self, x):
        """`x` as a NumPy array (the host read behind validation messages)."""
        import numpy as np

        return np.from_dlpack(x)

    def can_cache(self, source) -> bool:
        """Whether values derived from parameter `source` may be kept for later calls.

        Only where `version` can tell when `source` changes: the generic
        answer is no, so mutable arrays (NumPy, array-api-strict, CuPy) are
        read afresh on every call and in-place updates are always followed.
        """
        return False

    def version(self, source):
        """A token that changes whenever `source` changes (used with `can_cache`)."""
        return None

    def has_float64(self) -> bool:
        """Whether float64 arrays can be made (JAX needs ``jax_enable_x64``)."""
        return True

    def settle(self, *arrays):
        """`arrays` with their values computed, as a tuple: the loop of an iterative fit calls it.

        EM settles its few small per-iteration arrays (the parameters and the
        log-likelihood) so that the next iteration starts from values, not from
        the graph of every iteration before it. The generic answer is the
        arrays themselves (eager libraries have nothing to settle; traced
        values must stay traced); a lazy library computes them together, in
        one pass over the data.

        Examples
        --------
        >>> import numpy as np
        >>> from diaggauss._gaps import gaps_for
        >>> from diaggauss._namespace import get_namespace
        >>> a = np.ones(2)
        >>> gaps_for(get_namespace(("a", a))).settle(a)[0] is a
        True
        """
        return arrays

    def quiet(self):
        """A context where the library does not warn of overflow, log(0) or inf - inf.

        For code whose results are right all the same (squares of far points
        past the range give the ``-inf`` that is the answer); NumPy's
        ``errstate``, nothing elsewhere.
        """
        return contextlib.nullcontext()

    _xp = None  # the namespace, set by gaps_for


def quietly(fn):
    """`fn` run in `Gaps.quiet` of its first argument's library (an array)."""

    @functools.wraps(fn)
    def run(x, *args, **kwargs):
        with gaps_for(array_api_compat.array_namespace(x)).quiet():
            return fn(x, *args, **kwargs)

    return run


_LAZY_TYPES: dict = {}


class NumpyStream:
    """Successive draws from one ``numpy.random.Generator``, converted to a namespace."""

    def __init__(self, rng, xp):
        self.rng = rng
        self.xp = xp

    def _np_dtype(self, dtype):
        import numpy as np

        return np.float32 if self.xp.finfo(dtype).bits <= 32 else np.float64

    def normal(self, shape, dtype, device):
        """Standard normal noise of `shape`."""
        a = self.rng.standard_normal(shape, dtype=self._np_dtype(dtype))
        return self.xp.asarray(a, dtype=dtype, device=device)

    def uniform(self, shape, dtype, device):
        """Uniform noise on [0, 1)."""
        a = self.rng.random(shape, dtype=self._np_dtype(dtype))
        return self.xp.asarray(a, dtype=dtype, device=device)


def numpy_generator(seed, library):
    """A ``numpy.random.Generator`` from a NumPy-style seed, or a `SeedError`."""
    import numpy as np

    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence | np.random.BitGenerator):
        return np.random.default_rng(seed)
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool | np.bool_):
        if seed < 0:
            raise SeedError(
                f"seed must be a non-negative int to sample {library} arrays; got {seed}"
            )
        return np.random.default_rng(int(seed))
    raise SeedError(
        f"seed must be a numpy.random.Generator, an int or None to sample {library} arrays; "
        f"got {describe(seed)}"
    )


# The one table that names the adapters: (namespace test, module, type-module prefixes).
# A library's adapter loads when one of its arrays is first seen (gaps_for) or when
# one of its objects is converted (load_adapter).
ADAPTERS = (
    (array_api_compat.is_numpy_namespace, "diaggauss.backends.numpy", ("numpy", "scipy")),
    (array_api_compat.is_torch_namespace, "diaggauss.backends.torch", ("torch", "pyro")),
    (
        array_api_compat.is_jax_namespace,
        "diaggauss.backends.jax",
        ("jax", "jaxlib", "distrax", "numpyro", "tensorflow_probability"),
    ),
    (array_api_compat.is_dask_namespace, "diaggauss.backends.dask", ("dask",)),
)

_BY_NAMESPACE: dict[int, tuple[Any, Gaps]] = {}


def gaps_for(xp) -> Gaps:
    """The `Gaps` of namespace `xp`, importing its adapter on first use."""
    hit = _BY_NAMESPACE.get(id(xp))
    if hit is not None:
        return hit[1]
    for is_namespace, module, _ in ADAPTERS:
        if is_namespace(xp):
            gaps = importlib.import_module(module).GAPS
            break
    else:
        gaps = Gaps()
        gaps.name = library_name(xp)
    gaps._xp = xp
    _BY_NAMESPACE[id(xp)] = (xp, gaps)
    return gaps


def load_adapter(obj) -> bool:
    """Import the adapter that knows `obj`'s library (by its type's module); whether one does."""
    top = type(obj).__module__.split(".")[0]
    if top == "diaggauss":  # our own adapters' classes: their module is already loaded
        return True
    for _, module, prefixes in ADAPTERS:
        if top in prefixes:
            importlib.import_module(module)
            return True
    return False


_jax_pytrees_registered = False


def ensure_jax_pytrees() -> None:
    """Register the distributions as JAX pytrees once JAX has been imported.

    Cheap enough for every constructor: after the first registration, or while
    JAX is absent, it is a global read and a dict look-up.
    """
    if not _jax_pytrees_registered and "jax" in sys.modules:
        importlib.import_module("diaggauss.backends.jax")


def mark_jax_pytrees_registered() -> None:
    """Called by the JAX adapter once the pytrees are registered."""
    global _jax_pytrees_registered
    _jax_pytrees_registered = True
