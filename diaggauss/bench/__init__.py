"""The benchmark suite: ``python -m diaggauss bench``.

Each backend runs in its own process (a fresh interpreter, threads pinned,
``OPENBLAS_NUM_THREADS=1`` beside torch and JAX), every implementation of a
row is timed in interleaved rounds with its rivals, and every figure is
reported as a ratio to the peers and floors measured in the same run.

Examples
--------
>>> from diaggauss.bench import BACKENDS
>>> "torch" in BACKENDS
True
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["BACKENDS", "BenchError", "format_markdown", "format_table", "run", "write_outputs"]

# backend -> the module that must be importable to run it
BACKENDS = {
    "numpy": "numpy",
    "torch": "torch",
    "jax": "jax",
    "pairwise-numpy": "numpy",
    "pairwise-torch": "torch",
    "python": "numpy",
    # EM on a Dask LocalCluster against NumPy (issue 14); only with --scale
    "scale": "distributed",
}
# Backends that run only when asked for (by name or with scale=True).
ON_REQUEST = ("scale",)


class BenchError(Exception):
    """A usage error: unknown backend, missing framework, unwritable output."""


def available(backend: str) -> bool:
    """Whether the framework behind `backend` can be imported."""
    try:
        return importlib.util.find_spec(BACKENDS[backend]) is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules
        return False


def _env(backend: str) -> dict:
    """Threads pinned per process.

    NumPy's OpenBLAS gets every core when NumPy runs alone and one thread
    beside torch or JAX, whose own pools (torch's OpenMP and MKL, XLA's) keep
    their defaults: on 2 cores the pools otherwise starve each other.
    """
    env = dict(os.environ)
    cores = str(os.cpu_count() or 1)
    alone = backend in ("numpy", "pairwise-numpy", "python")
    env.update(
        OPENBLAS_NUM_THREADS=cores if alone else "1",
        PYTHONUNBUFFERED="1",
        XLA_PYTHON_CLIENT_PREALLOCATE="false",
    )
    env.pop("MKL_NUM_THREADS", None)
    env.pop("OMP_NUM_THREADS", None)
    return env


def _worker(backend: str, quick: bool, tiny: bool, device: str, progress) -> list[dict]:
    cmd = [sys.executable, "-m", "diaggauss.bench._worker", backend, "--device", device]
    if quick:
        cmd.append("--quick")
    if tiny:
        cmd.append("--tiny")
    rows = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(backend)
    ) as proc:
        try:
            for line in proc.stdout:
                msg = json.loads(line)
                if "count" in msg:
                    progress.add(msg["count"], backend)
                    continue
                progress.step(backend, msg)
                rows.append(msg)
        except BaseException:  # Ctrl-C sent to this process alone: the worker must not outlive it
            proc.kill()
            raise
        stderr = proc.stderr.read()
    if proc.returncode != 0:
        raise BenchError(f"the {backend} worker failed: {stderr.strip().splitlines()[-1:]}")
    return rows


class _Progress:
    """A tqdm bar on stderr when tqdm is installed, else one line per row."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.done = 0
        self.total = 0
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=0, file=sys.stderr, unit="row", desc="bench")
            except ImportError:
                self.bar = None

    def add(self, n: int, backend: str) -> None:
        self.total += n
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def step(self, backend: str, row: dict) -> None:
        self.done += 1
        label = row.get("skip") or f"{row.get('op')} {tuple(row.get('shape', ()))}"
        if self.bar is not None:
            self.bar.set_postfix_str(f"{backend}: {label}"[:60])
            self.bar.update(1)
        elif self.enabled:
            print(f"[{self.done}/{self.total}] {backend}: {label}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(
    backends: list[str] | None = None,
    *,
    quick: bool = False,
    tiny: bool = False,
    device: str = "cpu",
    progress: bool = True,
    scale: bool = False,
) -> dict:
    """Run the benchmark rows of `backends` (default: every installed one but "scale").

    With `scale`, the scale-out row ("scale": EM on a Dask LocalCluster with
    1 and 2 workers against NumPy) runs too, or alone when `backends` is None.

    Returns
    -------
    dict
        ``{"meta": ..., "rows": [...], "skipped": {...}}``, JSON-able.

    Raises
    ------
    BenchError
        An unknown backend, or one whose framework is not installed.
    """
    if backends is None:
        backends = [] if scale else [b for b in BACKENDS if available(b) and b not in ON_REQUEST]
    if scale and "scale" not in backends:
        backends = [*backends, "scale"]
    for b in backends:
        if b not in BACKENDS:
            raise BenchError(f"unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
        if not available(b):
            raise BenchError(f"backend {b!r} needs {BACKENDS[b]}, which is not installed")
    bar = _Progress(progress)
    rows, skipped = [], {}
    start = time.time()
    try:
        for b in backends:
            for row in _worker(b, quick, tiny, device, bar):
                if "skip" in row:
                    skipped.setdefault(b, []).append(row["skip"])
                else:
                    rows.append(row)
    finally:
        bar.close()
    return {"meta": _meta(quick, time.time() - start), "rows": rows, "skipped": skipped}


def _meta(quick: bool, seconds: float) -> dict:
    versions = {}
    for name in (
        "diaggauss",
        "numpy",
        "torch",
        "jax",
        "distrax",
        "numpyro",
        "tfp-nightly",
        "scipy",
        "scikit-learn",
        "array-api-compat",
    ):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            continue
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "quick": quick,
        "seconds": round(seconds, 1),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:7.3g} {unit}"
    return f"{seconds * 1e9:7.3g} ns"


def format_table(report: dict) -> str:
    """The report as a text table: one block per row group, then the goals."""
    lines = []
    for row in report["rows"]:
        shape = tuple(row["shape"])
        lines.append(
            f"{row['backend']}/{row['device']}  {row['op']}  [{row['mode']}]"
            + (f"  shape {shape}" if shape else "")
        )
        refs = [
            r
            for r in row["refs"]
            if r in row["results"] or any(r in v["ratios"] for v in row["results"].values())
        ]
        for name, res in row["results"].items():
            ratios = "  ".join(f"{res['ratios'][r]:6.2f}x {r}" for r in refs if r in res["ratios"])
            lines.append(f"    {name:<38} {_fmt_time(res['time_s'])}   {ratios}")
        for name, reason in row.get("skipped", {}).items():
            lines.append(f"    {name:<38} skipped: {reason}")
        lines += [f"    {note}" for note in row.get("notes", [])]
    goals = [(row, g) for row in report["rows"] for g in row.get("goals", [])]
    if goals:
        lines.append("")
        lines.append("goals")
        for row, g in goals:
            where = f"{row['backend']} {row['op']} {tuple(row['shape']) if row['shape'] else ''}"
            lines.append(
                f"  {'met ' if g['met'] else 'MISS'}  {where:<34} {g['impl']} / {g['ref']}: "
                f"{g['measured']:.3g}x (goal <= {g['max_ratio']}x, {g['source']})"
            )
    for backend, reasons in report.get("skipped", {}).items():
        for reason in reasons:
            lines.append(f"  skipped ({backend}): {reason}")
    return "\n".join(lines)


def format_markdown(report: dict, plots: list[Path] | None = None) -> str:
    """The report as Markdown: the goals beside their measured ratios, then one table per row."""
    meta = report["meta"]
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
    lines = [
        f"Measured {meta.get('date', '')} on {meta.get('cpus')} CPU cores "
        f"({meta.get('processor')}), Python {meta.get('python')}; {versions}. "
        f"{'Quick run. ' if meta.get('quick') else ''}Total {meta.get('seconds')} s.",
        "",
        "### Goals",
        "",
        "| row | ratio | goal | measured | |",
        "|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        for g in row.get("goals", []):
            where = f"{row['backend']} {row['op']} {tuple(row['shape']) if row['shape'] else ''}"
            lines.append(
                f"| {where} | {g['impl']} / {g['ref']} | <= {g['max_ratio']} ({g['source']}) | "
                f"{g['measured']:.3g} | {'met' if g['met'] else '**missed**'} |"
            )
    lines.append("")
    current = None
    for row in report["rows"]:
        head = (row["backend"], row["device"], row["op"], row["mode"])
        if head != current:
            current = head
            lines += ["", f"### {row['backend']}/{row['device']}: {row['op']}, {row['mode']}", ""]
        shape = tuple(row["shape"])
        refs = [r for r in row["refs"] if any(r in v["ratios"] for v in row["results"].values())]
        lines.append(f"`{shape}`" if shape else "")
        lines.append("")
        lines.append("| implementation | time | " + " | ".join(f"/ {r}" for r in refs) + " |")
        lines.append("|---|---|" + "---|" * len(refs))
        for name, res in row["results"].items():
            cells = [f"{res['ratios'][r]:.3g}x" if r in res["ratios"] else "" for r in refs]
            lines.append(
                f"| {name} | {_fmt_time(res['time_s']).strip()} | " + " | ".join(cells) + " |"
            )
        for name, reason in row.get("skipped", {}).items():
            lines.append(f"| {name} | skipped: {reason} |" + " |" * len(refs))
        if "memory" in row:
            mem = row["memory"]
            extra = ", ".join(
                f"{k} +{v / 2**20:.1f} MiB" for k, v in mem["extra_peak_bytes"].items()
            )
            output = mem["output_bytes"] / 2**20
            lines += ["", f"Extra peak memory of one call (output {output:.1f} MiB): {extra}."]
        if row.get("notes"):
            lines += ["", *(f"- {note}" for note in row["notes"])]
        lines.append("")
    for path in plots or []:
        lines += [f"![{path.stem}]({path.parent.name}/{path.name})", ""]
    return "\n".join(lines)


def write_outputs(report: dict, out: str | os.PathLike) -> list[Path]:
    """Write ``bench.json``, ``bench.md`` and one log-log PNG per operation to directory `out`."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "bench.json"
        path.write_text(json.dumps(report, indent=1))
    except OSError as e:
        raise BenchError(f"cannot write to --out {str(out)!r}: {e.strerror or e}") from None
    written = [path]
    plots = []
    try:
        plots = _plots(report, out)
    except ImportError:
        print("bench: matplotlib is not installed; no plots", file=sys.stderr)
    markdown = out / "bench.md"
    markdown.write_text(format_markdown(report, plots))
    return [*written, markdown, *plots]


def _plots(report: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list[dict]] = {}
    for row in report["rows"]:
        if row["shape"]:
            groups.setdefault((row["backend"], row["device"], row["op"], row["mode"]), []).append(
                row
            )
    paths = []
    for (backend, device, op, mode), rows in groups.items():
        series: dict[str, list[tuple[int, float]]] = {}
        for row in rows:
            for name, res in row["results"].items():
                series.setdefault(name, []).append((row["size"], res["time_s"]))
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=90)
        for name, points in series.items():
            points.sort()
            style = "--" if "floor" in name else "-"
            width = 2.6 if name.startswith("diaggauss") else 1.3
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                style,
                marker="o",
                markersize=3,
                linewidth=width,
                label=name,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("elements (batch x d)")
        ax.set_ylabel("seconds per call")
        ax.set_title(f"{backend}/{device}: {op}, {mode}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        slug = "".join(c if c.isalnum() else "_" for c in f"{backend}_{op}_{mode}").strip("_")
        while "__" in slug:
            slug = slug.replace("__", "_")
        path = out / f"{slug}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
