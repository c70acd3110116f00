"""Checking that two diagonal Gaussians are the same, across libraries.

The tool for validating a model ported from one framework to another: the
posterior of a torch VAE against its JAX port, a numpyro prior against a
distrax one, a model against the float64 reference.

Examples
--------
>>> import numpy as np, torch, diaggauss as dg
>>> from torch.distributions import Independent, Normal
>>> q = Independent(Normal(torch.zeros(5, 2), torch.ones(5, 2)), 1)
>>> dg.testing.assert_close(dg.MultivariateNormalDiag(np.zeros((5, 2)), 1.0), q)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["METHODS", "assert_close"]

#: Everything compared by default: parameters, statistics, densities at probe
#: points, the entropy, the KL divergence to a standard normal, and samples made
#: from the same noise.
METHODS = (
    "loc",
    "scale",
    "mean",
    "variance",
    "log_prob",
    "cdf",
    "log_cdf",
    "mahalanobis",
    "entropy",
    "kl_divergence",
    "reparameterize",
)

# (rtol, atol) by the coarser dtype of the two: a few ulp of values of moderate size.
TOLERANCES = {
    "float64": (1e-10, 1e-12),
    "float32": (2e-5, 2e-6),
    "float16": (5e-3, 1e-3),
    "bfloat16": (3e-2, 1e-2),
}
_PROBES = 8


def assert_close(p, q, *, rtol=None, atol=None, methods=METHODS, probes=_PROBES, seed=0):
    """Assert that `p` and `q` are the same diagonal Gaussian, whatever their libraries.

    Parameters
    ----------
    p, q : distributions
        Any two diagonal Gaussians diaggauss reads: its own classes (NumPy,
        PyTorch, JAX, any array-API library; the torch and numpyro classes),
        torch's ``Independent(Normal)`` or a diagonal ``MultivariateNormal``,
        distrax, numpyro and TFP diagonal Gaussians.
    rtol, atol : float, optional
        Tolerances; by default those of the coarser dtype of the two
        (`TOLERANCES`: 1e-10 relative in float64, 2e-5 in float32).
    methods : sequence of str
        What to compare (see `METHODS`). Densities are compared at `probes`
        points drawn around `p` (and, for `reparameterize`, noise), the same
        points for both.
    probes : int
        Probe points per distribution of the batch.
    seed : int
        Seed of the probe points.

    Raises
    ------
    AssertionError
        Naming the first member that differs, its worst index, both values,
        the difference and the tolerance, and how many values differ.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> p = dg.MultivariateNormalDiag(np.zeros(3), np.ones(3))
    >>> q = dg.MultivariateNormalDiag.from_log_scale(np.zeros(3), np.array([0.0, 0.0, 0.1]))
    >>> try:
    ...     dg.testing.assert_close(p, q)
    ... except AssertionError as e:
    ...     print(str(e).splitlines()[0])
    distributions differ in scale: 1 of 3 values, the worst at index (2,)
    """
    from ._convert import as_diaggauss

    p, q = as_diaggauss(p, "p", "assert_close"), as_diaggauss(q, "q", "assert_close")
    _check_shapes(p, q)
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"methods must be among {METHODS}; got {sorted(unknown)}")
    default_rtol, default_atol = max(TOLERANCES[_dtype_name(p)], TOLERANCES[_dtype_name(q)])
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    rng = np.random.default_rng(seed)
    shape = (probes, *p.batch_shape, *p.event_shape)
    noise = rng.standard_normal(shape)
    loc, scale = _host(p.loc), _host(p.scale)
    points = loc + scale * noise
    for name in methods:
        _compare(
            name, _evaluate(p, name, points, noise), _evaluate(q, name, points, noise), rtol, atol
        )


def _check_shapes(p, q):
    bp, bq = tuple(p.batch_shape), tuple(q.batch_shape)
    ep, eq = tuple(p.event_shape), tuple(q.event_shape)
    if (bp, ep) != (bq, eq):
        raise AssertionError(
            f"distributions differ in shape: p has batch_shape={bp}, event_shape={ep}; "
            f"q has batch_shape={bq}, event_shape={eq}"
        )


def _evaluate(d, name, points, noise):
    if name in ("loc", "scale", "mean", "variance"):
        return _host(getattr(d, name))
    if name == "entropy":
        return _host(d.entropy())
    if name == "kl_divergence":
        standard = type(d)._from_parts(d.loc * 0, d.scale * 0 + 1, "scale")
        return _host(d.kl_divergence(standard))
    if name == "reparameterize":
        return _host(d.reparameterize(noise))
    return _host(getattr(d, name)(points))


def _compare(name, a, b, rtol, atol):
    a, b = np.broadcast_arrays(a, b)
    both_nan = np.isnan(a) & np.isnan(b)
    same_inf = np.isinf(a) & (a == b)
    err = np.abs(a - b)
    bad = ~(both_nan | same_inf | (err <= atol + rtol * np.abs(b)))
    if not bad.any():
        return
    excess = np.where(bad, err - rtol * np.abs(b), -np.inf)
    excess = np.where(np.isnan(excess), np.inf, excess)
    worst = np.unravel_index(np.argmax(excess), a.shape) if a.ndim else ()
    worst = tuple(int(i) for i in worst)
    pa, qb, diff = a[worst], b[worst], err[worst]
    rel = diff / abs(qb) if qb and math.isfinite(qb) else math.inf
    raise AssertionError(
        f"distributions differ in {name}: {int(bad.sum())} of {bad.size} values, the worst at "
        f"index {worst}\n  p: {float(pa)!r}\n  q: {float(qb)!r}\n"
        f"  |p - q| = {diff:.6g} (relative {rel:.3g}); tolerance rtol={rtol:g}, atol={atol:g}"
    )


def _host(a):
    from ._gaps import gaps_for
    from ._namespace import get_namespace

    return np.asarray(gaps_for(get_namespace(("value", a))).to_host(a), dtype=np.float64)


def _dtype_name(d):
    name = str(d.dtype).rsplit(".", 1)[-1]
    return name if name in TOLERANCES else "float64"
