"""Helpers shared by the tests: conversions and `assert_close`."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np


def name_of(xp) -> str:
    name = xp.__name__
    for prefix in ("array_api_compat.",):
        name = name.removeprefix(prefix)
    return name.split(".")[0]


def to_numpy(a) -> np.ndarray:
    """Any backend's array as a NumPy array (float64 stays float64)."""
    mod = type(a).__module__
    if mod.startswith("torch"):
        a = a.detach().cpu()
        if a.dtype.is_floating_point and a.dtype.itemsize < 4:
            a = a.float()
        return a.numpy()
    if mod.startswith("dask"):
        return np.asarray(a.compute())
    if mod.startswith("array_api_strict"):
        return np.from_dlpack(a)
    return np.asarray(a)


def asarray(xp, a, dtype=None):
    """A NumPy array (or number) as an array of `xp`, optionally cast to `dtype`."""
    a = np.asarray(a)
    if name_of(xp) == "torch":
        import torch

        t = torch.from_numpy(np.array(a, copy=True, order="C"))
        return t if dtype is None else t.to(dtype)
    out = xp.asarray(a)
    return out if dtype is None else xp.astype(out, dtype)


def spread_from_scale(kind, scale, dtype=None):
    """The spread `kind` ("scale", "log_scale", "variance", "precision") of standard deviations
    `scale`, in NumPy (in `dtype` when given): the reference conversion the ports share."""
    scale = np.asarray(scale, dtype=dtype)
    return {
        "scale": lambda: scale,
        "log_scale": lambda: np.log(scale),
        "variance": lambda: scale**2,
        "precision": lambda: scale**-2.0,
    }[kind]()


TOLERANCES = {"float64": 1e-12, "float32": 2e-5, "float16": 4e-3, "bfloat16": 3e-2}


def dtype_str(dtype) -> str:
    """A dtype's plain name ("float32") whatever library it comes from."""
    s = str(dtype)
    if s.startswith(("torch.", "array_api_strict.")):
        return s.split(".")[-1]
    try:
        return np.dtype(dtype).name
    except TypeError:
        return s


def assert_close(actual, expected, *, xp, dtype=None, rtol=None, atol=0.0, shape=None):
    """Check namespace, dtype and shape of `actual`, then its values against `expected`."""
    import array_api_compat

    if name_of(xp) == "array_api_strict":
        assert type(actual).__module__.startswith("array_api_strict"), type(actual)
    else:
        got = array_api_compat.array_namespace(actual)
        assert name_of(got) == name_of(xp), (name_of(got), name_of(xp))
    if dtype is not None:
        assert dtype_str(actual.dtype) == dtype_str(dtype), (actual.dtype, dtype)
    expected = np.asarray(expected, dtype=np.float64)
    want_shape = expected.shape if shape is None else tuple(shape)
    assert tuple(actual.shape) == want_shape, (tuple(actual.shape), want_shape)
    if rtol is None:
        rtol = TOLERANCES[dtype_str(actual.dtype)]
    np.testing.assert_allclose(to_numpy(actual).astype(np.float64), expected, rtol=rtol, atol=atol)


def run_python(code, *, timeout=600, **env):
    """Run `code` in a fresh interpreter (from the tests folder); return its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(pathlib.Path(__file__).parent),
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout
