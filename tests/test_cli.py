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

    def numbers(text):  # everything but the timing line, which varies run to run
        return [ln for ln in text.splitlines() if "construct + log_prob" not in ln]

    assert numbers(run_cli("demo").stdout) == numbers(out)  # seeded noise, fixed data
    if "torch" in installed:
        timing = next(ln for ln in out.splitlines() if "construct + log_prob" in ln)
        assert "Independent(Normal)" in timing
        assert "MultivariateNormal" in timing


@pytest.mark.subprocess
def test_check_json_reports_pass_on_float64():
    import json

    result = run_cli("check", "--json", "--backends", "numpy,array_api_strict")
    report = json.loads(result.stdout)
    float64 = [r for r in report["results"] if r["dtype"] == "float64"]
    assert float64
    assert all(r["passed"] for r in float64)
    assert report["tolerances"]["float64"] <= 1e-12
    assert result.returncode == (0 if report["passed"] else 1)


@pytest.mark.slow
@pytest.mark.subprocess
def test_check_covers_training_on_torch_and_jax():
    import json

    pytest.importorskip("torch")
    pytest.importorskip("jax")
    result = run_cli("check", "--json", "--backends", "torch,jax")
    report = json.loads(result.stdout)
    rows = {(r["check"], r["backend"], r["dtype"]): r for r in report["results"]}
    for backend in ("torch", "jax"):
        for suite in ("values", "classes", "gradients", "compiled", "sampling", "fit"):
            assert (suite, backend, "float32") in rows, (suite, backend)
    failed = [r for r in report["results"] if not r["passed"]]
    assert not failed, failed
    assert result.returncode == 0
    # every row compares something: its worst method names what was checked
    assert rows["compiled", "torch", "float32"]["worst_method"].startswith(("128x8", "4096x64"))
    assert rows["gradients", "jax", "float64"]["worst_error"] <= 1e-8


@pytest.mark.subprocess
def test_check_table():
    result = run_cli("check", "--backends", "numpy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "numpy" in result.stdout
    assert "float64" in result.stdout
    assert "all passed" in result.stdout


@pytest.mark.slow
@pytest.mark.subprocess
def test_bench_quick_writes_json_and_png(tmp_path):
    import json

    pytest.importorskip("matplotlib")
    out = tmp_path / "bench"
    result = run_cli(
        "bench",
        "--quick",
        "--tiny",
        "--backends",
        "numpy,python",
        "--out",
        str(out),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "bench.json").read_text())
    assert report["rows"]
    ops = {row["op"] for row in report["rows"]}
    assert {"log_prob", "import"} <= ops
    for row in report["rows"]:
        for res in row["results"].values():
            assert res["time_s"] > 0
    pngs = list(out.glob("*.png"))
    assert pngs
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "goals" in result.stdout
    assert "### Goals" in (out / "bench.md").read_text()


@pytest.mark.slow
@pytest.mark.subprocess
def test_bench_scale_reports_dask_against_numpy(tmp_path):
    """``bench --scale``: 1 and 2 workers against NumPy, rows and iterations per second, memory."""
    import json

    pytest.importorskip("distributed")
    out = tmp_path / "bench"
    result = run_cli("bench", "--scale", "--tiny", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "bench.json").read_text())
    (row,) = report["rows"]  # --scale alone runs only the scale row
    assert row["backend"] == "scale"
    assert set(row["results"]) == {"NumPy in memory", "Dask, 1 worker", "Dask, 2 workers"}
    for res in row["results"].values():
        assert res["time_s"] > 0
        assert res["rows_per_s"] == pytest.approx(row["shape"][0] / res["time_s"])
        assert res["iterations_per_s"] == pytest.approx(1 / res["time_s"])
    goals = {g["impl"]: g for g in row["goals"]}
    assert {"Dask, 1 worker x workers", "Dask, 2 workers x workers"} <= set(goals)
    memory = goals["client peak memory (Dask, 2 workers)"]
    assert memory["ref"] == "100 MB"
    assert memory["met"] == (memory["measured"] <= 1.0)
    assert "NumPy's rows/s per worker" in result.stdout
    assert "client peak memory" in (out / "bench.md").read_text()


@pytest.mark.subprocess
def test_bench_quality_tiny_matches_a_direct_scikit_learn_fit(tmp_path):
    import json

    import numpy as np

    pytest.importorskip("sklearn")
    from sklearn.datasets import load_iris
    from sklearn.mixture import GaussianMixture
    from sklearn.model_selection import train_test_split

    out = tmp_path / "q"
    result = run_cli("bench", "--quality", "--tiny", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((out / "quality.json").read_text())
    iris = next(r for r in rows if r["data"].startswith("iris"))
    x = load_iris().data
    train, test = train_test_split((x - x.mean(0)) / x.std(0), test_size=0.25, random_state=0)
    fits = [
        GaussianMixture(3, covariance_type="diag", random_state=s).fit(train)
        for s in range(iris["seeds"])
    ]
    np.testing.assert_allclose(iris["train"][1], np.median([g.score(train) for g in fits]))
    np.testing.assert_allclose(iris["held_out"][1], np.median([g.score(test) for g in fits]))
    assert all(np.isfinite(r["train"] + r["held_out"]).all() for r in rows)
    table = (out / "quality.md").read_text()
    assert table.count("\n| ") == len(rows)  # a line per row after the header
    assert f"{iris['held_out'][0]:.4f}" in table


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bench", "--backends", "nope"), "unknown backend 'nope'"),
        (("check", "--backends", "nope"), "unknown backend 'nope'"),
        (("check", "--checks", "speed"), "unknown check 'speed'"),
        (
            ("bench", "--backends", "numpy", "--out", "/proc/diaggauss/out"),
            "cannot write to --out",
        ),
    ],
)
def test_errors_exit_2_with_one_line(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.subprocess
@pytest.mark.parametrize("command", ["bench", "check"])
def test_missing_framework_exits_2(command):
    code = (
        "import sys; sys.modules['torch'] = None; "
        "from diaggauss._cli import main; "
        f"sys.exit(main(['{command}', '--backends', 'torch']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=str(TESTS), timeout=120
    )
    assert result.returncode == 2
    assert "not installed" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("args", "started"),
    [
        # bench draws its progress bar on stderr once its workers start
        (["bench", "--quick", "--backends", "numpy"], "stderr"),
        # check prints its table at the end: interrupt it while it runs
        (["check", "--checks", "values,gradients"], 3.0),
    ],
    ids=["bench", "check"],
)
def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, args, started):
    import select
    import signal
    import time

    if args[0] == "bench":
        args = [*args, "--out", str(tmp_path)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "diaggauss", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(tmp_path),
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    try:
        if started == "stderr":
            ready, _, _ = select.select([proc.stderr], [], [], 120)
            assert ready, "bench printed nothing in 120 s"
            time.sleep(0.5)
        else:
            time.sleep(started)
        assert proc.poll() is None, "the command ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    err = err.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert lines[-1] == f"diaggauss: {args[0]} interrupted", err
    assert not [line for line in lines if "interrupt" in line.lower()][:-1], err
