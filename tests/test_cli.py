"""The command line, end to end in a subprocess."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent


def run_cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "diaggauss", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(TESTS),
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )


@pytest.mark.subprocess
def test_demo_names_every_installed_backend_and_agrees():
    result = run_cli()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    installed = [n for n in ("numpy", "torch", "jax") if importlib.util.find_spec(n)]
    for name in installed:
        assert f"{name} (" in out
        assert "batch_shape (5,), event_shape (2,)" in out
    agreement = out.split("agreement with the float64 reference")[1]
    for name in installed:
        line = next(ln for ln in agreement.splitlines() if ln.strip().startswith(name))
        assert "agrees" in line
        assert "DISAGREES" not in line
    assert run_cli("demo").stdout == out  # deterministic: seeded noise, fixed data
