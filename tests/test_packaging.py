"""Packaging: no framework at import, and the wheel maps backends/ to diaggauss.backends."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "jax", "jaxlib", "scipy", "dask", "array_api_strict", "matplotlib")


def _run(code: str, **env) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
        cwd=str(ROOT / "tests"),  # never the repository root: no shadowing source tree
    )
    return result.stdout


@pytest.mark.subprocess
def test_import_loads_no_framework():
    code = (
        "import sys, json; before = set(sys.modules); import diaggauss; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    added = json.loads(_run(code))
    leaked = [m for m in added if m.split(".")[0] in FRAMEWORKS]
    assert leaked == []
    # what it does load: itself, numpy and array_api_compat's core, nothing else of size
    roots = {m.split(".")[0] for m in added}
    assert roots <= {"diaggauss", "numpy", "array_api_compat"} | set(sys.stdlib_module_names)


@pytest.mark.subprocess
def test_numpy_use_loads_no_framework():
    code = (
        "import sys, numpy as np, diaggauss as dg; "
        "d = dg.MultivariateNormalDiag(np.zeros((5, 2)), np.ones(2)); "
        "d.log_prob(np.zeros(2)); d.entropy(); d.sample(3, seed=0); d.kl_divergence(d); "
        "print(' '.join(m for m in ('torch', 'jax', 'dask') if m in sys.modules))"
    )
    assert _run(code).strip() == ""


@pytest.mark.subprocess
def test_backend_modules_load_on_first_sight():
    pytest.importorskip("torch")
    code = (
        "import sys, diaggauss as dg; assert 'diaggauss.backends.torch' not in sys.modules; "
        "import torch; d = dg.MultivariateNormalDiag(torch.zeros(2), torch.ones(2)); "
        "print('diaggauss.backends.torch' in sys.modules, 'jax' in sys.modules)"
    )
    assert _run(code).split() == ["True", "False"]


@pytest.mark.subprocess
def test_jax_imported_first_registers_pytrees_at_import():
    pytest.importorskip("jax")
    code = (
        "import jax, numpy as np, diaggauss as dg; "
        "d = dg.MultivariateNormalDiag(np.zeros(2), np.ones(2)); "
        "print(len(jax.tree_util.tree_leaves(d)))"
    )
    assert _run(code).strip() == "2"


def test_installed_import_paths():
    import diaggauss.backends
    import diaggauss.backends.numpy

    assert diaggauss.backends.numpy.__name__ == "diaggauss.backends.numpy"
    assert pathlib.Path(diaggauss.backends.__file__).parent.name == "backends"
    assert "backends" not in sys.modules  # never a top-level package


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("diaggauss-*.whl")
    return path


@pytest.mark.slow
@pytest.mark.subprocess
def test_wheel_contains_backends_under_diaggauss(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "diaggauss/backends/__init__.py" in names
    assert "diaggauss/backends/pyro.py" in names
    for adapter in ("numpy", "torch", "jax"):  # one folder per adapter, every file of it
        here = sorted(p.name for p in (ROOT / "backends" / adapter).glob("*.py"))
        packed = sorted(
            n.split("/")[-1] for n in names if n.startswith(f"diaggauss/backends/{adapter}/")
        )
        assert packed == here, adapter
    assert not any(n.startswith("backends/") for n in names)
    assert not any(n.startswith("tests/") for n in names)


@pytest.mark.slow
@pytest.mark.subprocess
def test_wheel_install_gives_the_same_import_paths(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import json, diaggauss, diaggauss.backends.numpy as b, pkgutil; "
        "print(json.dumps([diaggauss.__file__, b.__name__, "
        "sorted(m.name for m in pkgutil.iter_modules(diaggauss.backends.__path__))]))"
    )
    file, name, modules = json.loads(_run(code, PYTHONPATH=str(target)))
    assert file.startswith(str(target))
    assert name == "diaggauss.backends.numpy"
    import pkgutil

    import diaggauss.backends

    here = sorted(m.name for m in pkgutil.iter_modules(diaggauss.backends.__path__))
    assert modules == here
    assert (
        diaggauss.__version__
        == _run("import diaggauss; print(diaggauss.__version__)", PYTHONPATH=str(target)).strip()
    )
