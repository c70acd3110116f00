"""``python -m diaggauss check``: every public method, every backend, device and dtype.

Each case is drawn at random, computed on the backend, and compared with a
float64 NumPy reference written out here independently of the library's
kernels. The error of a value is ``|got - want| / max(|want|, 1)`` and a
row (suite x backend x device x dtype) passes when its worst error is within
the tolerance: the dtype's (`TOLERANCES`) for values, the framework classes,
compiled training steps; `FIT_FACTOR` times it for fits; that or the finite-difference floor for
gradients; `Z_LIMIT` standard errors for sampling moments. "values" is here;
the other suites are in `diaggauss._check_usage`.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np

import diaggauss as dg

# Documented per-dtype tolerances on the mixed relative/absolute error above.
TOLERANCES = {"float64": 1e-12, "float32": 1e-5, "float16": 5e-3, "bfloat16": 3e-2}
BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "dask")
_MODULES = {"array_api_strict": "array_api_strict", "dask": "dask.array"}


def installed(backend: str) -> bool:
    """Whether the framework behind `backend` can be imported."""
    try:
        return importlib.util.find_spec(_MODULES.get(backend, backend).split(".")[0]) is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules
        return False


class _Target:
    """How to make arrays of one backend/device/dtype and read them back."""

    def __init__(self, backend, device, dtype):
        self.backend, self.device, self.dtype = backend, device, dtype
        if backend == "numpy":
            self.xp = np
        elif backend == "torch":
            import torch

            self.torch = torch
        elif backend == "jax":
            import jax
            import jax.numpy as jnp

            self.jnp = jnp
            self.jax_device = jax.devices(device)[0]
        elif backend == "array_api_strict":
            import array_api_strict

            self.xp = array_api_strict
        elif backend == "dask":
            import dask.array

            self.da = dask.array

    def __call__(self, a):
        a = np.asarray(a, dtype=np.float64)
        if self.backend == "numpy":
            return a.astype(self.dtype)
        if self.backend == "torch":
            t = self.torch
            return t.as_tensor(a).to(dtype=getattr(t, self.dtype), device=self.device)
        if self.backend == "jax":
            import jax

            return jax.device_put(self.jnp.asarray(a, dtype=self.dtype), self.jax_device)
        if self.backend == "array_api_strict":
            return self.xp.asarray(a.astype(self.dtype))
        return self.da.from_array(a.astype(self.dtype))

    def seed(self):
        if self.backend == "torch":
            return self.torch.Generator(device=self.device).manual_seed(0)
        if self.backend == "jax":
            import jax

            return jax.random.key(0)
        return np.random.default_rng(0)

    @staticmethod
    def back(a):
        mod = type(a).__module__
        if mod.startswith("torch"):
            return a.detach().to("cpu").double().numpy()
        if mod.startswith("dask"):
            return np.asarray(a.compute(), dtype=np.float64)
        if mod.startswith("array_api_strict"):
            return np.from_dlpack(a).astype(np.float64)
        return np.asarray(a, dtype=np.float64)


def targets(backends=None):
    """(backend, device, dtype) triples for the installed frameworks and devices."""
    out = []
    for backend in backends or BACKENDS:
        if not installed(backend):
            continue
        devices = ["cpu"]
        dtypes = ["float32", "float64"]
        if backend in ("numpy", "torch", "jax"):
            dtypes.insert(0, "float16")
        if backend in ("torch", "jax"):
            dtypes.insert(1, "bfloat16")
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                devices.append("cuda")
        if backend == "jax":
            import jax

            jax.config.update("jax_enable_x64", True)
            if any(d.platform == "gpu" for d in jax.devices()):
                devices.append("gpu")
        out += [(backend, dev, dt) for dev in devices for dt in dtypes]
    return out


# -- float64 references, written out -----------------------------------------------------

_LOG_2PI = math.log(2 * math.pi)


def _norm_logcdf(z):
    from math import erfc, log

    return np.vectorize(lambda v: log(0.5 * erfc(-v / math.sqrt(2))))(z)


def _inputs(rng):
    """The random case: a batch of 3 distributions of d = 4, points, noise, a second batch."""
    b, d = 3, 4
    return {
        "loc": rng.normal(size=(b, d)),
        "scale": rng.uniform(0.5, 2.0, size=(b, d)),
        "loc_q": rng.normal(size=(b, d)),
        "scale_q": rng.uniform(0.5, 2.0, size=(b, d)),
        "log_scale": np.log(rng.uniform(0.5, 2.0, size=(b, d))),
        "log_scale_q": np.log(rng.uniform(0.5, 2.0, size=(b, d))),
        "x": rng.normal(size=(2, b, d)),
        "eps": rng.normal(size=(2, b, d)),
        "pts": rng.normal(size=(5, d)),
        "logits": rng.normal(size=b),
    }


def _compute(inputs, make, seed, cls=dg.MultivariateNormalDiag, mixture=dg.MixtureDiag):
    a = {k: make(v) for k, v in inputs.items()}
    p = cls(a["loc"], a["scale"])
    q = cls.from_log_scale(a["loc_q"], a["log_scale_q"])
    ls = cls.from_log_scale(a["loc"], a["log_scale"])
    out = {
        "log_prob": p.log_prob(a["x"]),
        "prob": p.prob(a["x"]),
        "log_cdf": p.log_cdf(a["x"]),
        "cdf": p.cdf(a["x"]),
        "mahalanobis": p.mahalanobis(a["x"]),
        "entropy": ls.entropy(),
        "covariance": p.covariance(),
        "kl_divergence": p.kl_divergence(q),
        "cross_entropy": p.cross_entropy(q),
        "wasserstein2": p.wasserstein2(q),
        "reparameterize": p.reparameterize(a["eps"]),
        "mean": p.mean,
        "stddev": p.stddev,
        "variance": p.variance,
        "precision": p.precision,
        "log_scale": p.log_scale,
        "pairwise_log_prob": dg.pairwise_log_prob(a["pts"], a["loc"], a["scale"]),
        "mixture.log_prob": mixture(a["logits"], a["loc"], a["scale"]).log_prob(a["pts"]),
    }
    fitted = dg.fit(a["pts"])
    out["fit.loc"], out["fit.scale"] = fitted.loc, fitted.scale
    out["marginal.log_prob"] = p.marginal([2, 0]).log_prob(make(inputs["x"][..., [2, 0]]))
    sample, lp = p.sample_and_log_prob((2,), seed=seed)
    out["sample_and_log_prob (self-consistency)"] = (lp, p.log_prob(sample))
    return out


def run_check(backends=None, suites=None):
    """Run every suite on every target; a list of result dicts (JSON-able), one per row.

    `suites` picks among `SUITES` ("values" and those of `diaggauss._check_usage`).
    """
    from . import _check_usage

    inputs = _inputs(np.random.default_rng(20261123))
    runners = {"values": _values, **_check_usage.SUITES}
    results = []
    for backend, device, dtype in targets(backends):
        make = _Target(backend, device, dtype)
        for suite in suites or SUITES:
            tol = _tolerance(suite, dtype)
            row = {"check": suite, "backend": backend, "device": device, "dtype": dtype}
            try:
                compared = runners[suite](make, inputs)
            except Exception as e:  # a crash is a failure, reported, not raised
                failures = [f"{type(e).__name__}: {e}"]
                results.append(
                    {
                        **row,
                        "passed": False,
                        "worst_error": None,
                        "worst_method": None,
                        "tolerance": tol,
                        "failures": failures,
                    }
                )
                continue
            if compared is None:  # the suite does not apply to this target
                continue
            results.append({**row, **_compare(compared, tol)})
    return results


SUITES = ("values", "classes", "gradients", "compiled", "sampling", "fit")


def _tolerance(suite, dtype):
    from . import _check_usage

    if suite == "sampling":
        return _check_usage.Z_LIMIT
    if suite == "gradients":
        return max(TOLERANCES[dtype], _check_usage.FD_FLOOR)
    if suite == "fit":
        return _check_usage.FIT_FACTOR * TOLERANCES[dtype]
    return TOLERANCES[dtype]


def _values(make, inputs):
    """Every method's values against the float64 reference."""
    # the inputs themselves, rounded to the dtype: the reference starts from what the
    # backend actually holds
    refs = _references({k: _Target.back(make(v)) for k, v in inputs.items()})
    got = _compute(inputs, make, make.seed())
    rows = []
    for name, value in got.items():
        if isinstance(value, tuple):  # compare two computed values with each other
            rows.append((name, _Target.back(value[0]), _Target.back(value[1])))
        else:
            rows.append((name, _Target.back(value), refs[name]))
    return rows


def _compare(compared, tol):
    """Worst ``|got - want| / max(|want|, 1)`` over `compared` rows, and those beyond `tol`."""
    worst, worst_name, failures = 0.0, None, []
    for name, got, want in compared:
        got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
        if got.shape != want.shape:
            failures.append(f"{name}: shape {got.shape}, expected {want.shape}")
            continue
        err = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0), initial=0.0))
        if not np.isfinite(err):
            err = math.inf
        if err > worst or worst_name is None:
            worst, worst_name = err, name
        if err > tol:
            failures.append(f"{name}: error {err:.2e} > {tol:.0e}")
    return {
        "passed": not failures,
        "worst_error": worst,
        "worst_method": worst_name,
        "tolerance": tol,
        "failures": failures,
    }


def _references(a):
    """Float64 values of every checked method, from the inputs as the dtype rounded them."""
    loc, scale, loc_q = a["loc"], a["scale"], a["loc_q"]
    # q and the entropy's distribution are given by log-scale, as rounded
    log_scale_q, log_scale = a["log_scale_q"], a["log_scale"]
    scale_q = np.exp(log_scale_q)
    x, eps, pts, logits = a["x"], a["eps"], a["pts"], a["logits"]
    d = loc.shape[-1]
    z = (x - loc) / scale
    lp = (-0.5 * z**2 - np.log(scale) - 0.5 * _LOG_2PI).sum(-1)
    kl = (
        log_scale_q - np.log(scale) + (scale**2 + (loc - loc_q) ** 2) / (2 * scale_q**2) - 0.5
    ).sum(-1)
    entropy_p = (np.log(scale) + 0.5 + 0.5 * _LOG_2PI).sum(-1)
    entropy = (log_scale + 0.5 + 0.5 * _LOG_2PI).sum(-1)
    pair_lp = (
        -0.5 * (((pts[:, None, :] - loc[None]) / scale[None]) ** 2)
        - np.log(scale)[None]
        - 0.5 * _LOG_2PI
    ).sum(-1)
    logw = logits - np.log(np.exp(logits).sum())
    joint = pair_lp + logw
    m = joint.max(-1, keepdims=True)
    zm = z[..., [2, 0]]
    return {
        "log_prob": lp,
        "prob": np.exp(lp),
        "log_cdf": _norm_logcdf(z).sum(-1),
        "cdf": np.exp(_norm_logcdf(z).sum(-1)),
        "mahalanobis": np.sqrt((z**2).sum(-1)),
        "entropy": entropy,
        "covariance": np.einsum("bi,ij->bij", scale**2, np.eye(d)),
        "kl_divergence": kl,
        "cross_entropy": kl + entropy_p,
        "wasserstein2": np.sqrt(((loc - loc_q) ** 2 + (scale - scale_q) ** 2).sum(-1)),
        "reparameterize": loc + scale * eps,
        "mean": loc,
        "stddev": scale,
        "variance": scale**2,
        "precision": scale**-2,
        "log_scale": np.log(scale),
        "marginal.log_prob": (-0.5 * zm**2 - np.log(scale[:, [2, 0]]) - 0.5 * _LOG_2PI).sum(-1),
        "pairwise_log_prob": pair_lp,
        "mixture.log_prob": (m + np.log(np.exp(joint - m).sum(-1, keepdims=True)))[:, 0],
        "fit.loc": pts.mean(0),
        "fit.scale": pts.std(0),
    }


def format_check(results) -> str:
    """A table: backend x device x dtype, pass/fail, worst error and where."""
    lines = [
        f"{'check':<11}{'backend':<18}{'device':<8}{'dtype':<10}{'result':<8}{'worst error':<14}"
        f"{'tolerance':<11}method"
    ]
    for r in results:
        err = "-" if r["worst_error"] is None else f"{r['worst_error']:.1e}"
        lines.append(
            f"{r['check']:<11}{r['backend']:<18}{r['device']:<8}{r['dtype']:<10}"
            f"{'pass' if r['passed'] else 'FAIL':<8}{err:<14}{r['tolerance']:<11.0e}"
            f"{r['worst_method'] or ''}"
        )
        for f in r["failures"]:
            lines.append(f"    {f}")
    return "\n".join(lines)
