"""One suite, every backend: the ``xp`` fixture and comparison helpers.

Every test that takes ``xp`` runs once per installed array library (NumPy,
array-api-strict, PyTorch, JAX with x64, Dask) and compares with a float64
NumPy/SciPy reference through `assert_close`, which checks the namespace,
dtype and shape before the values.
"""

from __future__ import annotations

import enum
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import numpy as np
import pytest


class Backend(enum.Enum):
    NUMPY = "numpy"
    ARRAY_API_STRICT = "array_api_strict"
    TORCH = "torch"
    JAX = "jax"
    DASK = "dask"

    def __str__(self):
        return self.value


def _load(backend: Backend):
    if backend is Backend.NUMPY:
        import array_api_compat.numpy as xp

        return xp
    if backend is Backend.ARRAY_API_STRICT:
        xp = pytest.importorskip("array_api_strict")
        return xp
    if backend is Backend.TORCH:
        torch = pytest.importorskip("torch")
        torch.set_num_threads(1)
        import array_api_compat.torch as xp

        return xp
    if backend is Backend.JAX:
        jax = pytest.importorskip("jax")
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as xp

        return xp
    if backend is Backend.DASK:
        pytest.importorskip("dask.array")
        import array_api_compat.dask.array as xp

        return xp
    raise AssertionError(backend)


# JAX needs x64 before its first array is made, whichever test comes first.
try:
    import jax

    jax.config.update("jax_enable_x64", True)
except ImportError:
    pass


@pytest.fixture(params=list(Backend), ids=str)
def backend(request) -> Backend:
    return request.param


@pytest.fixture
def xp(backend):
    """The array namespace of one backend."""
    return _load(backend)


@pytest.fixture(params=["float32", "float64"])
def dtype_name(request) -> str:
    return request.param


@pytest.fixture
def dtype(xp, dtype_name):
    return getattr(xp, dtype_name)


@pytest.fixture
def rng():
    return np.random.default_rng(20261123)
