"""The benchmark rows, one generator per backend, each run in its own process.

A case times a set of implementations of one operation at one shape in
interleaved rounds (`_timing.compare`) and reports each one's time and its
ratio to the references named for that case: the peer libraries, a
hand-written formula on the same backend, and a floor (one read pass over
what the operation must read, or one GEMM for pairwise work).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from ._timing import compare

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

# (B, d): per-step RL/VAE, small batch, typical, large batch, wide event.
SHAPES = [(1, 2), (64, 16), (4096, 64), (65536, 64), (1024, 1024)]
QUICK_SHAPES = [(1, 2), (4096, 64), (65536, 64)]

# Dense d x d per distribution: keep MultivariateNormal where B * d * d stays small.
DENSE_LIMIT = 1 << 26


class Skip(Exception):
    """A row that cannot run here (a peer not installed, a size it cannot hold)."""


def _rounds(quick: bool, heavy: bool = False) -> dict[str, Any]:
    if heavy:
        return {"rounds": 3 if quick else 7, "block_time": 0.0, "max_time": 15 if quick else 40}
    if quick:
        return {"rounds": 9, "block_time": 0.005, "max_time": 8}
    return {"rounds": 21, "block_time": 0.02, "max_time": 40}


def measure(
    *,
    backend: str,
    device: str,
    op: str,
    mode: str,
    shape: tuple,
    impls: dict[str, Callable[[], object]],
    refs: list[str],
    goals: list[dict] | None = None,
    skipped: dict[str, str] | None = None,
    fastest_of: dict[str, list[str]] | None = None,
    slow: dict[str, Callable[[], object]] | None = None,
    heavy: bool = False,
    quick: bool = False,
) -> dict:
    """Time `impls` together and describe the result as one JSON-able row group.

    `slow` implementations (peers ten or a hundred times slower, which
    allocate heavily) are timed in rounds of their own against the first
    reference, so they do not disturb the rounds of the fast ones; their
    ratios to everything else go through that reference.
    """
    timing = compare(impls, **_rounds(quick, heavy))
    if slow:
        anchor = next(r for r in refs if r in impls)
        apart = compare({anchor: impls[anchor], **slow}, **_rounds(quick, heavy=True))
        for name in slow:
            # per-round ratios to the anchor, carried into the main rounds' scale
            timing.samples[name] = [
                a * s / t
                for a, s, t in zip(
                    timing.samples[anchor][: len(apart.samples[name])],
                    apart.samples[name],
                    apart.samples[anchor],
                    strict=False,
                )
            ]
            timing[name] = timing[anchor] * apart.ratio(name, anchor)
    # A reference that is the faster of several peers, round by round.
    for label, members in (fastest_of or {}).items():
        present = [m for m in members if m in impls]
        if present:
            rounds = zip(*(timing.samples[m] for m in present), strict=True)
            timing.samples[label] = [min(v) for v in rounds]
            timing[label] = min(timing[m] for m in present)
    results = {}
    for name in [*impls, *(slow or {})]:
        results[name] = {
            "time_s": timing[name],
            "ratios": {
                ref: timing.ratio(name, ref) for ref in refs if ref in timing and ref != name
            },
        }
    for goal in goals or []:
        if goal["impl"] in timing and goal["ref"] in timing:
            goal["measured"] = timing.ratio(goal["impl"], goal["ref"])
            goal["met"] = goal["measured"] <= goal["max_ratio"]
    return {
        "backend": backend,
        "device": device,
        "op": op,
        "mode": mode,
        "shape": list(shape),
        "size": math.prod(shape),
        "refs": refs,
        "results": results,
        "goals": [g for g in goals or [] if "measured" in g],
        "skipped": skipped or {},
    }


def _goal(impl: str, ref: str, max_ratio: float, source: str) -> dict:
    return {"impl": impl, "ref": ref, "max_ratio": max_ratio, "source": source}


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------


def torch_cases(quick: bool, device: str = "cpu") -> Iterator[Callable[[], dict]]:
    import torch
    from torch.distributions import (
        Independent,
        LowRankMultivariateNormal,
        MultivariateNormal,
        Normal,
        kl_divergence,
    )

    from diaggauss.backends.torch import MultivariateNormalDiag as MVND

    if device == "cuda":

        def sync(out):
            torch.cuda.synchronize()
            return out

    else:

        def sync(out):
            return out

    gen = torch.Generator(device=device).manual_seed(0)

    def data(b, d):
        x = torch.randn(b, d, generator=gen, device=device)
        loc = torch.randn(b, d, generator=gen, device=device)
        scale = torch.rand(b, d, generator=gen, device=device) + 0.5
        return x, loc, scale

    def hand(x, loc, scale):
        return (-0.5 * ((x - loc) / scale) ** 2 - scale.log() - HALF_LOG_2PI).sum(-1)

    shapes = QUICK_SHAPES if quick else SHAPES
    common = {"backend": "torch", "device": device, "quick": quick}

    def construct_log_prob(b, d):
        def run():
            x, loc, scale = data(b, d)
            torch.distributions.Distribution.set_default_validate_args(True)
            impls = {
                "diaggauss": lambda: sync(MVND(loc, scale).log_prob(x)),
                "hand": lambda: sync(hand(x, loc, scale)),
                "Independent(Normal)": lambda: sync(
                    Independent(Normal(loc, scale), 1).log_prob(x)
                ),
            }
            skipped, slow = {}, {}
            if b * d * d <= DENSE_LIMIT:
                slow["MultivariateNormal"] = lambda: sync(
                    MultivariateNormal(loc, scale_tril=torch.diag_embed(scale)).log_prob(x)
                )
                w = torch.zeros(b, d, 1, device=device)
                slow["LowRankMultivariateNormal(W=0)"] = lambda: sync(
                    LowRankMultivariateNormal(loc, w, scale**2).log_prob(x)
                )
            else:
                skipped["MultivariateNormal"] = f"B*d*d = {b * d * d} floats of dense matrices"
            goals = []
            if (b, d) == (1, 2):
                goals = [
                    _goal("diaggauss", "Independent(Normal)", 0.6, "issue 3"),
                    _goal("diaggauss", "hand", 1.3, "issue 10"),
                ]
            if (b, d) == (4096, 64):
                goals = [
                    _goal("diaggauss", "MultivariateNormal", 0.01, "issue 3 (>= 100x faster)")
                ]
            return measure(
                op="log_prob",
                mode="construct + log_prob, validation on",
                shape=(b, d),
                impls=impls,
                refs=["hand", "Independent(Normal)", "MultivariateNormal"],
                goals=goals,
                skipped=skipped,
                slow=slow,
                **common,
            )

        return run

    def prebuilt_log_prob(b, d):
        def run():
            x, loc, scale = data(b, d)
            ours = MVND(loc, scale, validate_args=False)
            ind = Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)
            impls = {
                "diaggauss": lambda: sync(ours.log_prob(x)),
                "Independent(Normal)": lambda: sync(ind.log_prob(x)),
                "hand": lambda: sync(hand(x, loc, scale)),
                "floor (3 sums)": lambda: sync((x.sum(), loc.sum(), scale.sum())),
            }
            if not quick or (b, d) == (65536, 64):  # compiling costs seconds per shape
                compiled = torch.compile(lambda v: ours.log_prob(v), dynamic=False)
                compiled_hand = torch.compile(hand, dynamic=False)
                impls["diaggauss, torch.compile"] = lambda: sync(compiled(x))
                impls["hand, torch.compile"] = lambda: sync(compiled_hand(x, loc, scale))
            goals = []
            if (b, d) == (65536, 64):
                goals = [
                    _goal("diaggauss", "Independent(Normal)", 0.3, "issue 3"),
                    _goal("diaggauss", "floor (3 sums)", 2.2, "issue 3"),
                    _goal("diaggauss, torch.compile", "floor (3 sums)", 2.2, "issue 3 (report)"),
                ]
            return measure(
                op="log_prob",
                mode="prebuilt, validation off",
                shape=(b, d),
                impls=impls,
                refs=["floor (3 sums)", "Independent(Normal)", "hand"],
                goals=goals,
                **common,
            )

        return run

    def sample(b, d):
        def run():
            _, loc, scale = data(b, d)
            ours = MVND(loc, scale, validate_args=False)
            ind = Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)
            impls = {
                "diaggauss": lambda: sync(ours.rsample()),
                "Independent(Normal)": lambda: sync(ind.rsample()),
                "torch.randn (floor)": lambda: sync(torch.randn(b, d, device=device)),
            }
            slow = {}
            if b * d * d <= DENSE_LIMIT:
                mvn = MultivariateNormal(
                    loc, scale_tril=torch.diag_embed(scale), validate_args=False
                )
                slow["MultivariateNormal"] = lambda: sync(mvn.rsample())
            return measure(
                op="sample",
                mode="prebuilt rsample()",
                shape=(b, d),
                impls=impls,
                refs=["torch.randn (floor)", "Independent(Normal)"],
                slow=slow,
                **common,
            )

        return run

    def kl(b, d):
        def run():
            _, loc, scale = data(b, d)
            _, loc2, scale2 = data(b, d)
            p, q = MVND(loc, scale), MVND(loc2, scale2)
            pi = Independent(Normal(loc, scale), 1)
            qi = Independent(Normal(loc2, scale2), 1)

            def hand_kl():
                return (
                    (scale2 / scale).log() + (scale**2 + (loc - loc2) ** 2) / (2 * scale2**2) - 0.5
                ).sum(-1)

            impls = {
                "diaggauss": lambda: sync(kl_divergence(p, q)),
                "hand": lambda: sync(hand_kl()),
                "Independent(Normal)": lambda: sync(kl_divergence(pi, qi)),
            }
            slow = {}
            if b * d * d <= DENSE_LIMIT:
                pm = MultivariateNormal(loc, scale_tril=torch.diag_embed(scale))
                qm = MultivariateNormal(loc2, scale_tril=torch.diag_embed(scale2))
                slow["MultivariateNormal"] = lambda: sync(kl_divergence(pm, qm))
            return measure(
                op="kl_divergence",
                mode="prebuilt pair",
                shape=(b, d),
                impls=impls,
                refs=["hand", "Independent(Normal)"],
                slow=slow,
                **common,
            )

        return run

    def entropy(b, d):
        def run():
            _, loc, scale = data(b, d)
            impls = {
                "diaggauss": lambda: sync(MVND(loc, scale).entropy()),
                "Independent(Normal)": lambda: sync(Independent(Normal(loc, scale), 1).entropy()),
                "hand": lambda: sync((scale.log() + 0.5 + HALF_LOG_2PI).sum(-1)),
            }
            return measure(
                op="entropy",
                mode="construct + entropy, validation on",
                shape=(b, d),
                impls=impls,
                refs=["hand", "Independent(Normal)"],
                **common,
            )

        return run

    for b, d in shapes:
        yield construct_log_prob(b, d)
    for b, d in shapes:
        yield prebuilt_log_prob(b, d)
    for b, d in shapes:
        yield sample(b, d)
    for b, d in QUICK_SHAPES if quick else shapes:
        yield kl(b, d)
    for b, d in QUICK_SHAPES[:2]:
        yield entropy(b, d)


# ---------------------------------------------------------------------------
# JAX
# ---------------------------------------------------------------------------


def jax_cases(quick: bool) -> Iterator[Callable[[], dict]]:
    import jax
    import jax.numpy as jnp

    import diaggauss as dg

    peers: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for name, module in (
        ("distrax", "distrax"),
        ("numpyro", "numpyro.distributions"),
        ("TFP", "tensorflow_probability.substrates.jax.distributions"),
    ):
        try:
            peers[name] = __import__(module, fromlist=["_"])
        except Exception as e:  # ImportError, or a peer broken against this JAX
            missing[name] = f"not importable: {type(e).__name__}"

    device = jax.devices()[0].platform
    shapes = QUICK_SHAPES if quick else SHAPES
    common = {"backend": "jax", "device": device, "quick": quick}

    def data(b, d):
        k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(k1, (b, d))
        loc = jax.random.normal(k2, (b, d))
        scale = jax.random.uniform(k3, (b, d)) + 0.5
        return x, loc, scale

    def run_jit(f, *args):
        return lambda: jax.block_until_ready(f(*args))

    def construct_log_prob(b, d):
        def run():
            x, loc, scale = data(b, d)
            fns = {
                "diaggauss": lambda x, m, s: dg.MultivariateNormalDiag(m, s).log_prob(x),
                "hand": lambda x, m, s: jnp.sum(
                    -0.5 * ((x - m) / s) ** 2 - jnp.log(s) - HALF_LOG_2PI, axis=-1
                ),
                "floor (3 sums)": lambda x, m, s: (jnp.sum(x), jnp.sum(m), jnp.sum(s)),
            }
            if "distrax" in peers:
                fns["distrax"] = lambda x, m, s: (
                    peers["distrax"].MultivariateNormalDiag(m, s).log_prob(x)
                )
            if "numpyro" in peers:
                fns["numpyro"] = lambda x, m, s: (
                    peers["numpyro"].Normal(m, s).to_event(1).log_prob(x)
                )
            slow = {}
            if "TFP" in peers:
                tfp_fn = jax.jit(
                    lambda x, m, s: peers["TFP"].MultivariateNormalDiag(m, s).log_prob(x)
                )
                slow["TFP"] = run_jit(tfp_fn, x, loc, scale)
            impls = {k: run_jit(jax.jit(f), x, loc, scale) for k, f in fns.items()}
            goals = []
            if (b, d) in {(1, 2), (4096, 64), (65536, 64)}:
                goals = [
                    _goal("diaggauss", "hand", 1.1, "issue 4"),
                    _goal("diaggauss", "faster of distrax, numpyro", 1.05, "issue 10"),
                ]
            return measure(
                op="log_prob",
                mode="construct + log_prob, jit",
                shape=(b, d),
                impls=impls,
                refs=["hand", "faster of distrax, numpyro", "TFP", "floor (3 sums)"],
                goals=goals,
                skipped=missing,
                fastest_of={"faster of distrax, numpyro": ["distrax", "numpyro"]},
                slow=slow,
                **common,
            )

        return run

    def sample(b, d):
        def run():
            _, loc, scale = data(b, d)
            key = jax.random.key(1)
            fns = {
                "diaggauss": lambda k, m, s: dg.MultivariateNormalDiag(m, s).sample(seed=k),
                "jax.random.normal (floor)": lambda k, m, s: jax.random.normal(k, m.shape),
            }
            if "distrax" in peers:
                fns["distrax"] = lambda k, m, s: (
                    peers["distrax"].MultivariateNormalDiag(m, s).sample(seed=k)
                )
            if "numpyro" in peers:
                fns["numpyro"] = lambda k, m, s: (
                    peers["numpyro"].Normal(m, s).to_event(1).sample(k)
                )
            impls = {k: run_jit(jax.jit(f), key, loc, scale) for k, f in fns.items()}
            goals = []
            if (b, d) in {(1, 2), (4096, 64), (65536, 64)}:
                goals = [_goal("diaggauss", "jax.random.normal (floor)", 1.2, "issue 4")]
            return measure(
                op="sample",
                mode="construct + sample, jit",
                shape=(b, d),
                impls=impls,
                refs=["jax.random.normal (floor)", "distrax", "numpyro"],
                goals=goals,
                skipped=missing,
                **common,
            )

        return run

    def kl(b, d):
        def run():
            _, loc, scale = data(b, d)
            loc2, scale2 = loc[::-1], scale[::-1]
            fns = {
                "diaggauss": lambda a, s, c, t: dg.MultivariateNormalDiag(a, s).kl_divergence(
                    dg.MultivariateNormalDiag(c, t)
                ),
                "hand": lambda a, s, c, t: jnp.sum(
                    jnp.log(t / s) + (s**2 + (a - c) ** 2) / (2 * t**2) - 0.5, axis=-1
                ),
            }
            if "distrax" in peers:
                fns["distrax"] = lambda a, s, c, t: (
                    peers["distrax"]
                    .MultivariateNormalDiag(a, s)
                    .kl_divergence(peers["distrax"].MultivariateNormalDiag(c, t))
                )
            if "numpyro" in peers:
                from numpyro.distributions import kl_divergence as nkl

                fns["numpyro"] = lambda a, s, c, t: nkl(
                    peers["numpyro"].Normal(a, s).to_event(1),
                    peers["numpyro"].Normal(c, t).to_event(1),
                )
            slow = {}
            if "TFP" in peers:
                tfp_kl = jax.jit(
                    lambda a, s, c, t: (
                        peers["TFP"]
                        .MultivariateNormalDiag(a, s)
                        .kl_divergence(peers["TFP"].MultivariateNormalDiag(c, t))
                    )
                )
                slow["TFP"] = run_jit(tfp_kl, loc, scale, loc2, scale2)
            impls = {k: run_jit(jax.jit(f), loc, scale, loc2, scale2) for k, f in fns.items()}
            return measure(
                op="kl_divergence",
                mode="construct pair + KL, jit",
                shape=(b, d),
                impls=impls,
                refs=["hand", "faster of distrax, numpyro"],
                skipped=missing,
                fastest_of={"faster of distrax, numpyro": ["distrax", "numpyro"]},
                slow=slow,
                **common,
            )

        return run

    for b, d in shapes:
        yield construct_log_prob(b, d)
    for b, d in shapes:
        yield sample(b, d)
    for b, d in QUICK_SHAPES:
        yield kl(b, d)
    yield jax_fit(quick)


def jax_fit(quick: bool) -> Callable[[], dict]:
    """A whole EM fit on JAX: the first call's compile time apart from the steady state."""

    def run():
        import time

        import jax

        import diaggauss as dg

        configs = _fit_configs(quick)
        name, n, d, k, _ = configs[1 if len(configs) > 1 else 0]  # blobs (200k, 32, 16)
        x = jax.numpy.asarray(_fit_data(name, n, d, k, "float32"))

        def fit():
            gm = dg.GaussianMixtureDiag(k, random_state=jax.random.key(0)).fit(x)
            return jax.block_until_ready(gm.means_)

        start = time.perf_counter()
        fit()
        first = time.perf_counter() - start
        row = measure(
            backend="jax",
            device=jax.devices()[0].platform,
            op="GaussianMixture fit",
            mode=f"{name} N={n}, d={d}, K={k}, float32, compiled once per shape",
            shape=(n, k, d),
            impls={"diaggauss GaussianMixtureDiag": fit},
            refs=[],
            heavy=True,
            quick=quick,
        )
        steady = row["results"]["diaggauss GaussianMixtureDiag"]["time_s"]
        row["compile_s"] = max(first - steady, 0.0)
        # shown apart in the table: the first fit at this shape compiles
        row["results"]["first fit at this shape (compiles)"] = {"time_s": first, "ratios": {}}
        return row

    return run


# ---------------------------------------------------------------------------
# NumPy
# ---------------------------------------------------------------------------


def numpy_cases(quick: bool) -> Iterator[Callable[[], dict]]:
    import numpy as np

    import diaggauss as dg

    try:
        from scipy import stats
    except ImportError:
        stats = None
    shapes = QUICK_SHAPES if quick else SHAPES
    common = {"backend": "numpy", "device": "cpu", "quick": quick}

    def data(b, d):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((b, d), dtype=np.float32)
        loc = rng.standard_normal((b, d), dtype=np.float32)
        scale = rng.random((b, d), dtype=np.float32) + np.float32(0.5)
        return x, loc, scale

    def construct_log_prob(b, d):
        def run():
            x, loc, scale = data(b, d)
            impls = {
                "diaggauss": lambda: dg.MultivariateNormalDiag(loc, scale).log_prob(x),
                "hand": lambda: np.sum(
                    -0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - np.float32(HALF_LOG_2PI),
                    axis=-1,
                ),
                "floor (3 sums)": lambda: (x.sum(), loc.sum(), scale.sum()),
            }
            skipped = {}
            if stats is not None:
                impls["scipy.stats.norm.logpdf(...).sum(-1)"] = lambda: stats.norm.logpdf(
                    x, loc, scale
                ).sum(-1)
            else:
                skipped["scipy"] = "not installed"
            return measure(
                op="log_prob",
                mode="construct + log_prob, validation on",
                shape=(b, d),
                impls=impls,
                refs=["hand", "scipy.stats.norm.logpdf(...).sum(-1)", "floor (3 sums)"],
                skipped=skipped,
                **common,
            )

        return run

    def sample(b, d):
        def run():
            _, loc, scale = data(b, d)
            ours = dg.MultivariateNormalDiag(loc, scale)
            rng = np.random.default_rng(1)
            impls = {
                "diaggauss": lambda: ours.sample(seed=rng),
                "Generator.standard_normal (floor)": lambda: rng.standard_normal(
                    (b, d), dtype=np.float32
                ),
            }
            return measure(
                op="sample",
                mode="prebuilt sample()",
                shape=(b, d),
                impls=impls,
                refs=["Generator.standard_normal (floor)"],
                **common,
            )

        return run

    def kl(b, d):
        def run():
            _, loc, scale = data(b, d)
            loc2, scale2 = loc[::-1], scale[::-1]
            p, q = dg.MultivariateNormalDiag(loc, scale), dg.MultivariateNormalDiag(loc2, scale2)
            impls = {
                "diaggauss": lambda: p.kl_divergence(q),
                "hand": lambda: np.sum(
                    np.log(scale2 / scale)
                    + (scale**2 + (loc - loc2) ** 2) / (2 * scale2**2)
                    - 0.5,
                    axis=-1,
                ),
            }
            return measure(
                op="kl_divergence",
                mode="prebuilt pair",
                shape=(b, d),
                impls=impls,
                refs=["hand"],
                **common,
            )

        return run

    for b, d in shapes:
        yield construct_log_prob(b, d)
    for b, d in QUICK_SHAPES:
        yield sample(b, d)
    for b, d in QUICK_SHAPES:
        yield kl(b, d)


# ---------------------------------------------------------------------------
# Pairwise log_prob and EM (torch and NumPy), with scikit-learn as the rival
# ---------------------------------------------------------------------------

PAIRWISE_CONFIGS = [(10000, 256, 64), (100000, 64, 32)]
QUICK_PAIRWISE_CONFIGS = [(10000, 256, 64), (100000, 64, 32)]


def _sklearn():
    try:
        from sklearn.mixture import GaussianMixture
        from sklearn.mixture._gaussian_mixture import _estimate_log_gaussian_prob
    except ImportError:
        return None, None
    return GaussianMixture, _estimate_log_gaussian_prob


def _pairwise_data(n, k, d):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    loc = rng.standard_normal((k, d), dtype=np.float32)
    scale = (rng.random((k, d), dtype=np.float32) + np.float32(0.5)).astype(np.float32)
    return x, loc, scale


def _memory_row(backend: str, impls: list[str], n: int, k: int, d: int) -> dict[str, float]:
    """Peak resident memory added by one call of each implementation, each in a fresh process."""
    import subprocess
    import sys

    out = {}
    for impl in impls:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "diaggauss.bench._memory",
                backend,
                impl,
                str(n),
                str(k),
                str(d),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0 and proc.stdout.strip():
            out[impl] = float(proc.stdout.strip().splitlines()[-1])
    return out


def pairwise_cases(backend: str, quick: bool) -> Iterator[Callable[[], dict]]:
    import numpy as np

    import diaggauss as dg
    from diaggauss._em import design, em_step, natural

    gm_cls, sk_log_prob = _sklearn()
    configs = QUICK_PAIRWISE_CONFIGS if quick else PAIRWISE_CONFIGS
    if backend == "torch":
        import torch

        def conv(a):
            return torch.from_numpy(a)

        def gemm(x, loc):
            return x @ loc.T

    else:

        def conv(a):
            return a

        def gemm(x, loc):
            return x @ loc.T

    from diaggauss._namespace import get_namespace

    def pairwise(n, k, d):
        def run():
            xn, ln, sn = _pairwise_data(n, k, d)
            x, loc, scale = conv(xn), conv(ln), conv(sn)
            impls = {
                "diaggauss": lambda: dg.pairwise_log_prob(x, loc, scale),
                "one GEMM x @ loc.T (floor)": lambda: gemm(x, loc),
            }
            skipped = {}
            if sk_log_prob is not None:
                prec_chol = 1.0 / sn
                impls["scikit-learn _estimate_log_gaussian_prob (NumPy)"] = lambda: sk_log_prob(
                    xn, ln, prec_chol, "diag"
                )
            else:
                skipped["scikit-learn"] = "not installed"
            slow = {}
            if backend == "torch" and not quick:
                from torch.distributions import Independent, Normal

                ind = Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)
                slow["torch broadcast (N, K, d)"] = lambda: (
                    -0.5 * ((x[:, None, :] - loc) / scale) ** 2 - scale.log()
                ).sum(-1)
                slow["Independent(Normal) on x[:, None]"] = lambda: ind.log_prob(x[:, None, :])
            sk = "scikit-learn _estimate_log_gaussian_prob (NumPy)"
            floor = "one GEMM x @ loc.T (floor)"
            goals = [
                _goal("diaggauss", sk, 0.3 if backend == "torch" else 0.7, "issue 5"),
            ]
            if backend == "torch":
                goals.append(_goal("diaggauss", floor, 4.0, "issue 5"))
            row = measure(
                backend=f"pairwise-{backend}",
                device="cpu",
                op="pairwise_log_prob",
                mode=f"N={n}, K={k}, d={d}, float32",
                shape=(n, k, d),
                impls=impls,
                refs=[floor, sk],
                goals=goals,
                skipped=skipped,
                slow=slow,
                heavy=True,
                quick=quick,
            )
            memory = _memory_row(backend, ["diaggauss", "gemm", "sklearn"], n, k, d)
            out_bytes = n * k * 4
            row["memory"] = {"output_bytes": out_bytes, "extra_peak_bytes": memory}
            if "diaggauss" in memory:
                import importlib

                adapter = importlib.import_module(f"diaggauss.backends.{backend}._overrides")

                # one block of expanded rows, plus the expanded parameters (K by
                # 2d + 1, a few copies) and 1 MiB of slack, beside the output (as
                # much as one GEMM of the same output needs)
                # what the library's own GEMM needs beyond its output is not ours
                blas = max(memory.get("gemm", out_bytes), out_bytes)
                allowance = (
                    blas
                    + adapter.CHUNK_ELEMENTS * 4
                    + 16 * k * (2 * d + 1) * 4
                    + (1 << 20)  # page and allocator granularity
                )
                extra = memory["diaggauss"]
                row["memory"]["allowance_bytes"] = allowance
                row["goals"].append(
                    {
                        "impl": "diaggauss",
                        "ref": "output + one chunk (memory)",
                        "max_ratio": 1.0,
                        "source": "issue 5",
                        "measured": extra / allowance,
                        "met": extra <= allowance,
                    }
                )
            return row

        return run

    def em_iteration(n, k, d):
        def run():
            if gm_cls is None:
                raise Skip("scikit-learn not installed: no EM rival")
            xn, _, _ = _pairwise_data(n, k, d)
            gm = gm_cls(
                k,
                covariance_type="diag",
                max_iter=1,
                random_state=0,
                init_params="random_from_data",
            )
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gm.fit(xn)  # the same start for both: sklearn's fitted parameters
            x = conv(xn)
            xp = get_namespace(("x", x))
            w = xp.ones((n,), dtype=x.dtype)
            center = xp.mean(x, axis=0, keepdims=True)
            xa, reach = design(x, center, xp=xp)
            logits = conv(np.log(gm.weights_).astype(np.float32))
            mc = conv(gm.means_.astype(np.float32)) - center
            var = conv(gm.covariances_.astype(np.float32))
            bt = xp.matrix_transpose(natural(logits, mc, var, xp=xp))
            xa_t = xp.matrix_transpose(xa)

            def ours():
                return em_step(xa, w, logits, mc, var, 1e-6, reach=reach, xp=xp)

            def floor():
                # the least an iteration must do: one GEMM for the E-step, one exp, one
                # GEMM for the M-step's sums (component-major, as ours)
                return xp.exp(bt @ xa_t) @ xa

            def theirs():
                _, lr = gm._e_step(xn)
                gm._m_step(xn, lr)

            floor_name = "floor: GEMM + exp + GEMM"
            return measure(
                backend=f"pairwise-{backend}",
                device="cpu",
                op="EM iteration",
                mode=f"N={n}, K={k}, d={d}, float32, same parameters",
                shape=(n, k, d),
                impls={"diaggauss": ours, floor_name: floor, "scikit-learn (NumPy)": theirs},
                refs=["scikit-learn (NumPy)", floor_name],
                goals=[_goal("diaggauss", floor_name, 1.2, "issue 13")],
                heavy=True,
                quick=quick,
            )

        return run

    def whole_fit(name, n, d, k, dtype):
        def run():
            if gm_cls is None:
                raise Skip("scikit-learn not installed: no EM rival")
            import warnings

            xn = _fit_data(name, n, d, k, dtype)
            x = conv(xn)
            # the same settings on both sides: sklearn's defaults
            settings = {"init_params": "kmeans", "n_init": 1, "tol": 1e-3, "max_iter": 100}

            def ours():
                return dg.GaussianMixtureDiag(k, random_state=0, **settings).fit(x)

            def theirs():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return gm_cls(k, covariance_type="diag", random_state=0, **settings).fit(xn)

            sk = "scikit-learn GaussianMixture (NumPy)"
            return measure(
                backend=f"pairwise-{backend}",
                device="cpu",
                op="GaussianMixture fit",
                mode=f"{name} N={n}, d={d}, K={k}, {dtype}, kmeans init",
                shape=(n, k, d),
                impls={"diaggauss GaussianMixtureDiag": ours, sk: theirs},
                refs=[sk],
                goals=[
                    _goal(
                        "diaggauss GaussianMixtureDiag",
                        sk,
                        0.5 if backend == "torch" else 0.6,
                        "issue 13",
                    )
                ],
                heavy=True,
                quick=quick,
            )

        return run

    for n, k, d in configs:
        yield pairwise(n, k, d)
    for n, k, d in configs:
        yield em_iteration(n, k, d)
    for config in _fit_configs(quick):
        yield whole_fit(*config)


# Whole EM fits against scikit-learn (issue 13): (data, N, d, K, dtype).
FIT_CONFIGS = [
    ("digits", 1797, 64, 10, "float64"),
    ("blobs", 200_000, 32, 16, "float32"),
    ("blobs", 200_000, 32, 16, "float64"),
    ("blobs", 1_000_000, 64, 64, "float32"),
]
QUICK_FIT_CONFIGS = FIT_CONFIGS[:3]


def _fit_configs(quick):
    if max(n for n, _, _ in PAIRWISE_CONFIGS) < 1000:  # the worker's --tiny run
        return [("blobs", 300, 3, 2, "float64")]
    return QUICK_FIT_CONFIGS if quick else FIT_CONFIGS


def _fit_data(name, n, d, k, dtype):
    """scikit-learn's digits, or blobs as ``make_blobs`` draws them (centres in [-10, 10])."""
    import numpy as np

    if name == "digits":
        from sklearn.datasets import load_digits

        return load_digits().data.astype(dtype)
    rng = np.random.default_rng(0)
    centres = rng.uniform(-10, 10, size=(k, d))
    labels = rng.integers(0, k, size=n)
    return (centres[labels] + rng.standard_normal((n, d))).astype(dtype)


# ---------------------------------------------------------------------------
# import time
# ---------------------------------------------------------------------------


def import_time_case(quick: bool) -> Callable[[], dict]:
    """``import diaggauss`` on top of NumPy, from ``python -X importtime``, median of runs."""

    def run():
        import os
        import re
        import statistics
        import subprocess
        import sys

        # As installed: bytecode cached (a first import writes it), not recompiled each time.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([sys.executable, "-c", "import diaggauss"], check=True, env=env)

        def cumulative(module: str, code: str) -> float:
            out = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", code],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            ).stderr
            pattern = rf"import time:\s+\d+\s+\|\s+(\d+)\s+\|\s*{re.escape(module)}\s*$"
            for line in out.splitlines():
                m = re.search(pattern, line)
                if m:
                    return int(m.group(1)) * 1e-6
            raise Skip(f"{module} not in the import-time report")

        n = 5 if quick else 11
        ours = [cumulative("diaggauss", "import numpy; import diaggauss") for _ in range(n)]
        numpy = [cumulative("numpy", "import numpy") for _ in range(n)]
        results = {
            "import diaggauss (after numpy)": {"time_s": statistics.median(ours), "ratios": {}},
            "import numpy": {"time_s": statistics.median(numpy), "ratios": {}},
        }
        goal = {
            "impl": "import diaggauss (after numpy)",
            "ref": "50 ms",
            "max_ratio": 1.0,
            "source": "issue 2",
            "measured": statistics.median(ours) / 0.050,
        }
        goal["met"] = goal["measured"] <= 1.0
        return {
            "backend": "python",
            "device": "cpu",
            "op": "import",
            "mode": "python -X importtime, cumulative",
            "shape": [],
            "size": 1,
            "refs": [],
            "results": results,
            "goals": [goal],
            "skipped": {},
        }

    return run
