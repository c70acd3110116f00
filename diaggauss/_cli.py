"""``python -m diaggauss``: the demo (and, as they land, check and bench)."""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys

import numpy as np

import diaggauss as dg

# The forum question: mu and log_sigma of shape (5, 2) -> five 2-D Gaussians.
MU = np.array([[0.0, 0.0], [1.0, -1.0], [2.5, 0.5], [-1.5, 2.0], [0.3, -0.7]])
LOG_SIGMA = np.array([[0.0, 0.0], [-0.5, 0.2], [0.3, -1.0], [-1.2, 0.8], [0.1, 0.1]])
X = np.array([[0.1, -0.2], [1.3, -0.4], [2.0, 1.0], [-1.0, 1.0], [0.0, 0.0]])

FRAMEWORKS = ("numpy", "torch", "jax")


class UsageError(Exception):
    """A bad command line: reported in one line with exit status 2."""


def installed_frameworks() -> list[str]:
    """The frameworks among numpy, torch and jax that can be imported."""
    out = []
    for name in FRAMEWORKS:
        try:
            if importlib.util.find_spec(name) is not None:
                out.append(name)
        except (ImportError, ValueError):
            continue
    return out


def _reference():
    """Float64 closed forms, written out in NumPy: what every backend must reproduce."""
    sigma = np.exp(LOG_SIGMA)
    z = (X - MU) / sigma
    log_prob = (-0.5 * z**2 - LOG_SIGMA - 0.5 * math.log(2 * math.pi)).sum(-1)
    entropy = (LOG_SIGMA + 0.5 + 0.5 * math.log(2 * math.pi)).sum(-1)
    kl = (-LOG_SIGMA + 0.5 * (sigma**2 + MU**2) - 0.5).sum(-1)  # against N(0, I)
    return {"log_prob": log_prob, "entropy": entropy, "kl": kl}


def _to_numpy(a):
    if hasattr(a, "detach"):
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def _framework(name):
    """(asarray, seed, dtype label) for one framework."""
    if name == "numpy":
        return np.asarray, np.random.default_rng(0), "float64"
    if name == "torch":
        import torch

        return (
            lambda a: torch.as_tensor(a, dtype=torch.float32),
            torch.Generator().manual_seed(0),
            "float32",
        )
    import jax
    import jax.numpy as jnp

    return (lambda a: jnp.asarray(a, dtype=jnp.float32)), jax.random.key(0), "float32"


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:8.4f}" for v in np.asarray(values).ravel()) + "]"


def demo(out=sys.stdout) -> int:
    """The forum scenario on every installed framework, and their agreement."""
    print(
        f"diaggauss {dg.__version__}: mu and log_sigma of shape (5, 2) make a batch of "
        "five 2-D Gaussians,\nthe same object with the same numbers on every framework.\n",
        file=out,
    )
    ref = _reference()
    rows = []
    for name in installed_frameworks():
        asarray, seed, label = _framework(name)
        d = dg.MultivariateNormalDiag.from_log_scale(asarray(MU), asarray(LOG_SIGMA))
        q = dg.MultivariateNormalDiag(asarray(np.zeros(2)), asarray(np.ones(2)))
        results = {
            "log_prob": d.log_prob(asarray(X)),
            "entropy": d.entropy(),
            "kl": d.kl_divergence(q),
        }
        sample = d.sample((3,), seed=seed)
        print(f"{name} ({label})", file=out)
        print("  d = dg.MultivariateNormalDiag.from_log_scale(mu, log_sigma)", file=out)
        print(f"  batch_shape {d.batch_shape}, event_shape {d.event_shape}", file=out)
        print(f"  log_prob(x)    {_fmt(_to_numpy(results['log_prob']))}", file=out)
        print(f"  entropy()      {_fmt(_to_numpy(results['entropy']))}", file=out)
        print(f"  KL(d||N(0,I))  {_fmt(_to_numpy(results['kl']))}", file=out)
        print(f"  sample((3,)) -> shape {tuple(sample.shape)}\n", file=out)
        worst = max(
            float(np.max(np.abs(_to_numpy(results[k]) - ref[k]) / np.maximum(np.abs(ref[k]), 1)))
            for k in ref
        )
        rows.append((name, label, worst))
    print("agreement with the float64 reference (log_prob, entropy, KL):", file=out)
    ok = True
    for name, label, worst in rows:
        tol = 1e-12 if label == "float64" else 1e-5
        good = worst <= tol
        ok &= good
        print(
            f"  {name:<6} {label}  worst relative error {worst:.1e}  "
            f"{'agrees' if good else 'DISAGREES'} (tolerance {tol:.0e})",
            file=out,
        )
    if "torch" in [r[0] for r in rows]:
        print(_timing_line(), file=out)
    return 0 if ok else 1


def _timing_line() -> str:
    """Construct + log_prob of the forum batch in torch, against torch's own options."""
    import torch
    from torch.distributions import Independent, MultivariateNormal, Normal

    from diaggauss.backends.torch import MultivariateNormalDiag
    from diaggauss.bench._timing import compare

    mu = torch.as_tensor(MU, dtype=torch.float32)
    sigma = torch.as_tensor(np.exp(LOG_SIGMA), dtype=torch.float32)
    x = torch.as_tensor(X, dtype=torch.float32)
    t = compare(
        {
            "diaggauss": lambda: MultivariateNormalDiag(mu, sigma).log_prob(x),
            "Independent(Normal)": lambda: Independent(Normal(mu, sigma), 1).log_prob(x),
            "MultivariateNormal": lambda: MultivariateNormal(
                mu, scale_tril=torch.diag_embed(sigma)
            ).log_prob(x),
        },
        rounds=7,
        block_time=0.01,
        max_time=2.0,
    )
    parts = [f"diaggauss {t['diaggauss'] * 1e6:.0f} us"] + [
        f"{name} {t[name] * 1e6:.0f} us ({t.ratio(name, 'diaggauss'):.1f}x slower)"
        for name in ("Independent(Normal)", "MultivariateNormal")
    ]
    return "\ntorch, construct + log_prob of the (5, 2) batch, validation on: " + ", ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m diaggauss",
        description="Batched diagonal Gaussians for every array library.",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="the forum scenario on every installed framework (default)")
    check = sub.add_parser(
        "check",
        help="values, gradients, compiled training, sampling and fits on every backend, "
        "device and dtype, against float64 references",
    )
    check.add_argument("--backends", help="comma-separated: numpy,array_api_strict,torch,jax,dask")
    check.add_argument(
        "--checks",
        help="comma-separated: values,classes,gradients,compiled,sampling,fit (default: all)",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    bench = sub.add_parser("bench", help="benchmark against the peers, as ratios")
    bench.add_argument("--backends", help="comma-separated: numpy,torch,jax,python")
    bench.add_argument("--quick", action="store_true", help="fewer shapes and rounds")
    bench.add_argument("--out", help="directory for bench.json and PNG plots")
    bench.add_argument("--device", default="cpu", help="cpu, or cuda for torch")
    bench.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.add_argument(
        "--quality",
        action="store_true",
        help="fitted log-likelihoods against scikit-learn's (train and held out), not speed",
    )
    bench.add_argument(
        "--scale",
        action="store_true",
        help="EM on a Dask LocalCluster (1 and 2 workers) against NumPy: iterations and rows "
        "per second, client peak memory (alone unless --backends is given)",
    )
    return parser


def check(args, out=sys.stdout) -> int:
    """Run the cross-backend self-check; exit status 1 on any failure."""
    import json

    from diaggauss import _check

    backends = None
    if args.backends:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
        for b in backends:
            if b not in _check.BACKENDS:
                raise UsageError(
                    f"unknown backend {b!r}; choose from {', '.join(_check.BACKENDS)}"
                )
            if not _check.installed(b):
                raise UsageError(f"backend {b!r} is not installed")
    suites = None
    if args.checks:
        suites = [c.strip() for c in args.checks.split(",") if c.strip()]
        for c in suites:
            if c not in _check.SUITES:
                raise UsageError(f"unknown check {c!r}; choose from {', '.join(_check.SUITES)}")
    results = _check.run_check(backends, suites)
    passed = all(r["passed"] for r in results)
    if args.json:
        print(
            json.dumps({"passed": passed, "tolerances": _check.TOLERANCES, "results": results}),
            file=out,
        )
    else:
        print(_check.format_check(results), file=out)
        print(f"\n{'all passed' if passed else 'FAILED'}", file=out)
    return 0 if passed else 1


def bench(args, out=sys.stdout) -> int:
    """Run the benchmark; print the table; write JSON and plots with --out."""
    from diaggauss import bench as bench_mod

    backends = [b.strip() for b in args.backends.split(",")] if args.backends else None
    if args.out:
        _check_writable(args.out)
    if args.quality:
        return _quality(args, out)
    try:
        report = bench_mod.run(
            backends,
            quick=args.quick,
            tiny=args.tiny,
            device=args.device,
            progress=not args.no_progress,
            scale=args.scale,
        )
    except bench_mod.BenchError as e:
        raise UsageError(str(e)) from None
    print(bench_mod.format_table(report), file=out)
    if args.out:
        try:
            paths = bench_mod.write_outputs(report, args.out)
        except bench_mod.BenchError as e:
            raise UsageError(str(e)) from None
        print(f"\nwrote {len(paths)} files to {args.out}", file=out)
    return 0


def _quality(args, out) -> int:
    import importlib.util
    import json
    import os

    from diaggauss.bench import _quality

    if importlib.util.find_spec("sklearn") is None:
        raise UsageError("bench --quality compares with scikit-learn, which is not installed")

    def progress(row):
        if not args.no_progress:
            print(f"quality: {row['data']} ({row['seeds']} seeds)", file=sys.stderr, flush=True)

    table = _quality.format_quality(rows := _quality.run_quality(args.tiny, progress))
    print(table, file=out)
    if args.out:
        with open(os.path.join(args.out, "quality.json"), "w") as f:
            json.dump(rows, f, indent=1)
        with open(os.path.join(args.out, "quality.md"), "w") as f:
            f.write(table + "\n")
        print(f"\nwrote quality.json and quality.md to {args.out}", file=out)
    return 0


def _check_writable(path):
    import os
    import tempfile

    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UsageError(f"cannot write to --out {path!r}: {e.strerror or e}") from None


def main(argv=None) -> int:
    """Entry point of ``python -m diaggauss`` and the ``diaggauss`` script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "bench":
            return bench(args)
        if args.command == "check":
            return check(args)
        return demo()
    except UsageError as e:
        print(f"diaggauss: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C is the user's choice, not a failure to report: one line, the shell's 128 + SIGINT
        print(f"\ndiaggauss: {args.command or 'demo'} interrupted", file=sys.stderr)
        return 130
