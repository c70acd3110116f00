"""Dask adapter: noise drawn chunk-wise on the workers.

Imported when a Dask array is first seen by a distribution or kernel. The
generic stream (`diaggauss._gaps.NumpyStream`) would draw the whole noise
array with NumPy in the client and embed it in the graph (2.4 GB for a
``(20e6, 3)`` float32 sample): here each chunk is drawn where it is
computed, from seeds that a ``numpy.random.Generator`` hands out, so a seed
gives the same sample on every run and any cluster. Values stay lazy: Dask
arrays are never read for validation (`Gaps.is_concrete` is false) and
nothing derived is kept.
"""

from __future__ import annotations

import dask
import dask.array as da
import dask.utils
import numpy as np

from diaggauss._gaps import Gaps, numpy_generator

__all__ = ["GAPS", "NOISE_CHUNK_BYTES"]

#: The most bytes of noise drawn per chunk (fewer where Dask's array.chunk-size says so).
NOISE_CHUNK_BYTES = 32 * 2**20


class DaskGaps(Gaps):
    """Dask's answers: chunk-wise noise; the rest is the generic (lazy) behaviour."""

    name = "dask"

    def random_stream(self, seed, draws=None):
        return DaskStream(numpy_generator(seed, "Dask"))

    def is_concrete(self, *arrays) -> bool:
        return False  # reading a value would compute the graph

    def to_host(self, x):
        return np.asarray(x.compute() if hasattr(x, "compute") else x)

    def settle(self, *arrays):
        """`arrays` computed together, in one ``dask.compute`` (one pass over the data).

        Each comes back as a Dask array of one chunk holding its value, so the
        next iteration's graph starts from values; a 0-d one (a log-likelihood,
        read at once) comes back as a NumPy scalar, so reading it is no compute.
        """
        values = dask.compute(*arrays)
        return tuple(
            (da.from_array(v) if v.ndim else v) if isinstance(a, da.Array) else v
            for a, v in zip(arrays, map(np.asarray, values), strict=True)
        )


class DaskStream:
    """Successive chunk-wise draws from one seed.

    ``dask.array.random.Generator`` spawns one child seed per chunk from the
    NumPy Generator's state: a fixed seed gives a fixed sequence of arrays,
    chunked along every axis but the last (the event axis stays whole, so
    each chunk holds whole vectors).
    """

    def __init__(self, rng: np.random.Generator):
        self.rng = da.random.default_rng(rng)
        self.numpy = rng  # for the few draws made in the client (a sample's k-means)

    @staticmethod
    def _chunks(shape, dtype):
        # Dask's "auto" aims at array.chunk-size (128 MiB by default); the
        # reparameterisation makes a few temporaries per chunk, so the noise
        # uses at most NOISE_CHUNK_BYTES per chunk to fit small workers.
        limit = min(dask.utils.parse_bytes(dask.config.get("array.chunk-size")), NOISE_CHUNK_BYTES)
        auto = ("auto",) * (len(shape) - 1) + (-1,) if shape else "auto"
        return da.core.normalize_chunks(auto, shape, limit=limit, dtype=dtype)

    @staticmethod
    def _np_dtype(dtype):
        return np.float32 if np.dtype(dtype).itemsize <= 4 else np.float64

    def normal(self, shape, dtype, device):
        """Standard normal noise of `shape`, drawn on the workers."""
        shape = tuple(shape)
        np_dtype = self._np_dtype(dtype)
        a = self.rng.standard_normal(shape, chunks=self._chunks(shape, np_dtype), dtype=np_dtype)
        return a if a.dtype == dtype else a.astype(dtype)

    def uniform(self, shape, dtype, device):
        """Uniform noise on [0, 1), drawn on the workers."""
        shape = tuple(shape)
        np_dtype = self._np_dtype(dtype)
        a = self.rng.random(shape, chunks=self._chunks(shape, np_dtype), dtype=np_dtype)
        return a if a.dtype == dtype else a.astype(dtype)


GAPS = DaskGaps()


from . import _init, _overrides  # noqa: E402, F401  (register the overrides on GAPS)
