"""NumPy adapter: ``numpy.random.Generator`` noise, host reads, SciPy conversions, overrides.

Imported when a NumPy array is first seen by a distribution or kernel.
"""

from __future__ import annotations

import numpy as np

from diaggauss._gaps import Gaps, NumpyStream, numpy_generator

__all__ = ["GAPS", "from_scipy", "to_scipy"]


class NumpyGaps(Gaps):
    """NumPy's answers: its own Generator, values always concrete, nothing cached.

    NumPy arrays are mutable and carry no version, so derived values are
    never kept between calls (the generic `Gaps.can_cache`): in-place updates
    of a parameter are always seen.
    """

    name = "numpy"

    def random_stream(self, seed, draws=None):
        return _Stream(numpy_generator(seed, "NumPy"), self._xp)

    def is_concrete(self, *arrays) -> bool:
        return True

    def to_host(self, x):
        return np.asarray(x)

    def quiet(self):
        return np.errstate(over="ignore", divide="ignore", invalid="ignore")


class _Stream(NumpyStream):
    """Draws from a Generator, returned as they come (NumPy needs no conversion)."""

    def normal(self, shape, dtype, device):
        """Standard normal noise of `shape`."""
        dtype = np.dtype(dtype)
        if dtype in (np.float32, np.float64):
            return self.rng.standard_normal(shape, dtype=dtype)
        return super().normal(shape, dtype, device)

    def uniform(self, shape, dtype, device):
        """Uniform noise on [0, 1)."""
        dtype = np.dtype(dtype)
        if dtype in (np.float32, np.float64):
            return self.rng.random(shape, dtype=dtype)
        return super().uniform(shape, dtype, device)


GAPS = NumpyGaps()

from . import _overrides  # noqa: E402, F401  (registers the overrides on GAPS)
from ._scipy import from_scipy, to_scipy  # noqa: E402
