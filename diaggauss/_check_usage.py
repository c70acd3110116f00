"""The checks of ``python -m diaggauss check`` beyond forward values: what training relies on.

Gradients are compared with float64 central differences (Richardson
extrapolated) of references written out here; compiled training steps
(``torch.compile(fullgraph=True)`` and ``jax.jit`` of ``value_and_grad``) at a
VAE's size and a large one with float64 closed-form gradients; sampling with
z-scores of its moments; ``fit`` and ``fit_mixture`` with float64 estimates;
the torch and numpyro classes with the same float64 values as the neutral one.

Each suite is ``suite(target, inputs) -> [(name, got, want), ...]`` with
arrays on the host (float64), or None where it does not apply to a target.
"""

from __future__ import annotations

import math

import numpy as np

import diaggauss as dg

# Gradients: the dtype's value tolerance, but never below what the float64
# finite-difference reference resolves.
FD_FLOOR = 1e-8
# Fits: EM's fixed point moves by each step's rounding, which the variance's
# E[x^2] - m^2 (two matrix products, as scikit-learn's) amplifies by about
# (distance from the data's centre / width)^2 of a component: ~150 here.
FIT_FACTOR = 10
# Sampling: the largest |z| of a sample moment that passes.
Z_LIMIT = 6.0
# The compiled training steps: (batch, d) of a VAE's posterior and of a large one.
TRAINING_SIZES = ((128, 8), (4096, 64))
_LOG_2PI = math.log(2 * math.pi)


def _host(a):
    from ._check import _Target

    return _Target.back(a)


# -- gradients ----------------------------------------------------------------------------


def _losses_reference():
    """Float64 losses of (loc, scale, loc_q, scale_q), each a sum over the case."""

    def z(a, x):
        return (x - a["loc"]) / a["scale"]

    def log_cdf(v):
        return np.log(0.5 * np.vectorize(math.erfc)(-v / math.sqrt(2)))

    def kl(a):
        r = a["scale"] / a["scale_q"]
        m = (a["loc"] - a["loc_q"]) / a["scale_q"]
        return 0.5 * np.sum(r**2 + m**2 - 1) - np.sum(np.log(r))

    return {
        "log_prob": lambda a, c: (
            np.sum(-0.5 * z(a, c["x"]) ** 2 - np.log(a["scale"])) - 0.5 * _LOG_2PI * c["x"].size
        ),
        "log_cdf": lambda a, c: np.sum(log_cdf(z(a, c["x"]))),
        "mahalanobis": lambda a, c: np.sum(np.sqrt(np.sum(z(a, c["x"]) ** 2, -1))),
        "entropy": lambda a, c: np.sum(np.log(a["scale"])),
        "kl_divergence": lambda a, c: kl(a),
        "cross_entropy": lambda a, c: kl(a) + np.sum(np.log(a["scale"])),
        "wasserstein2": lambda a, c: np.sum(
            np.sqrt(np.sum((a["loc"] - a["loc_q"]) ** 2 + (a["scale"] - a["scale_q"]) ** 2, -1))
        ),
        "reparameterize": lambda a, c: 0.5 * np.sum((a["loc"] + a["scale"] * c["eps"]) ** 2),
        "pairwise_log_prob": lambda a, c: np.sum(
            -0.5 * ((c["pts"][:, None] - a["loc"]) / a["scale"]) ** 2 - np.log(a["scale"])
        ),
    }


def _losses(cls, a, c):
    """The same losses computed by the library (on any backend)."""
    p = cls(a["loc"], a["scale"])
    q = cls(a["loc_q"], a["scale_q"])

    def total(v):
        return v.sum()

    return {
        "log_prob": lambda: total(p.log_prob(c["x"])),
        "log_cdf": lambda: total(p.log_cdf(c["x"])),
        "mahalanobis": lambda: total(p.mahalanobis(c["x"])),
        "entropy": lambda: total(p.entropy()),
        "kl_divergence": lambda: total(p.kl_divergence(q)),
        "cross_entropy": lambda: total(p.cross_entropy(q)),
        "wasserstein2": lambda: total(p.wasserstein2(q)),
        "reparameterize": lambda: 0.5 * total(p.reparameterize(c["eps"]) ** 2),
        "pairwise_log_prob": lambda: total(dg.pairwise_log_prob(c["pts"], a["loc"], a["scale"])),
    }


def _finite_difference(f, params, name):
    """The derivative of `f` in params[name]: Richardson-extrapolated central differences."""
    base = params[name]
    grad = np.empty_like(base)
    for i in np.ndindex(base.shape):
        h = 1e-3 * max(abs(base[i]), 1.0)

        def central(step, i=i):
            up, down = dict(params), dict(params)
            up[name], down[name] = base.copy(), base.copy()
            up[name][i] += step
            down[name][i] -= step
            return (f(up) - f(down)) / (2 * step)

        grad[i] = (4 * central(h / 2) - central(h)) / 3
    return grad


_PARAMS = ("loc", "scale", "loc_q", "scale_q")


def gradients(target, inputs):
    """Autodiff gradients of every loss against float64 finite differences.

    With torch's class (a ``torch.distributions.Distribution``) on torch and
    ``jax.grad`` of the neutral class on JAX.
    """
    if target.backend not in ("torch", "jax"):
        return None
    names = _PARAMS
    host = {k: _host(target(v)) for k, v in inputs.items()}
    params = {k: host[k] for k in names}
    consts = {k: host[k] for k in ("x", "eps", "pts")}
    rows = []
    for loss, ref in _losses_reference().items():
        want = [_finite_difference(lambda p, ref=ref: ref(p, consts), params, n) for n in names]
        got = _autodiff(target, inputs, loss, names)
        rows += [(f"d {loss} / d {n}", g, w) for n, g, w in zip(names, got, want, strict=True)]
    return rows


def _autodiff(target, inputs, loss, names):
    if target.backend == "torch":
        from diaggauss.backends.torch import MultivariateNormalDiag

        leaves = {k: target(inputs[k]).requires_grad_(k in names) for k in inputs}
        value = _losses(MultivariateNormalDiag, leaves, leaves)[loss]()
        grads = target.torch.autograd.grad(value, [leaves[n] for n in names], allow_unused=True)
        return [
            _host(g) if g is not None else np.zeros(inputs[n].shape)
            for g, n in zip(grads, names, strict=True)
        ]
    import jax

    consts = {k: target(inputs[k]) for k in ("x", "eps", "pts")}

    def f(*values):
        a = dict(zip(names, values, strict=True))
        return _losses(dg.MultivariateNormalDiag, a, consts)[loss]()

    grads = jax.grad(f, argnums=tuple(range(len(names))))(*(target(inputs[n]) for n in names))
    return [_host(g) for g in grads]


# -- compiled training steps --------------------------------------------------------------


def _training_reference(loc, log_scale, x, eps):
    """Float64 loss and gradients of a VAE step: -log p(x) + KL(p || N(0, I)) + |z|^2 / 2."""
    s = np.exp(log_scale)
    r = (x - loc) / s
    zs = loc + s * eps
    b = loc.shape[0]
    lp = np.sum(-0.5 * r**2 - log_scale, -1) - 0.5 * _LOG_2PI * loc.shape[-1]
    kl = np.sum(0.5 * (s**2 + loc**2 - 1) - log_scale, -1)
    loss = np.mean(-lp + kl + 0.5 * np.sum(zs**2, -1))
    d_loc = (-r / s + loc + zs) / b
    d_log_scale = (-(r**2) + 1 + s**2 - 1 + zs * s * eps) / b
    return loss, d_loc, d_log_scale


def compiled(target, inputs):
    """A training step compiled whole (forward and backward), at each of `TRAINING_SIZES`."""
    if target.backend not in ("torch", "jax") or target.dtype != "float32":
        return None
    rng = np.random.default_rng(7)
    rows = []
    for b, d in TRAINING_SIZES:
        case = {
            "loc": rng.normal(size=(b, d)),
            "log_scale": rng.uniform(-1.0, 0.5, size=(b, d)),
            "x": rng.normal(size=(b, d)),
            "eps": rng.normal(size=(b, d)),
        }
        arrays = {k: target(v) for k, v in case.items()}
        host = {k: _host(v) for k, v in arrays.items()}
        want = _training_reference(host["loc"], host["log_scale"], host["x"], host["eps"])
        got = (_torch_step if target.backend == "torch" else _jax_step)(target, arrays)
        label = f"{b}x{d}"
        rows += [
            (f"{label} loss", np.asarray(got[0]), np.asarray(want[0])),
            (f"{label} d loss / d loc", got[1], want[1]),
            (f"{label} d loss / d log_scale", got[2], want[2]),
        ]
    return rows


def _torch_step(target, a):
    torch = target.torch
    from diaggauss.backends.torch import MultivariateNormalDiag

    def step(loc, log_scale, x, eps):
        p = MultivariateNormalDiag.from_log_scale(loc, log_scale)
        prior = MultivariateNormalDiag(torch.zeros_like(loc), torch.ones_like(loc))
        kl = torch.distributions.kl_divergence(p, prior)
        z = p.reparameterize(eps)
        return (-p.log_prob(x) + kl + 0.5 * (z**2).sum(-1)).mean()

    fn = torch.compile(step, fullgraph=True)
    loc, log_scale = a["loc"].requires_grad_(), a["log_scale"].requires_grad_()
    loss = fn(loc, log_scale, a["x"], a["eps"])
    loss.backward()
    return _host(loss), _host(loc.grad), _host(log_scale.grad)


def _jax_step(target, a):
    import jax
    import jax.numpy as jnp

    def step(loc, log_scale, x, eps):
        p = dg.MultivariateNormalDiag.from_log_scale(loc, log_scale)
        prior = dg.MultivariateNormalDiag(jnp.zeros_like(loc), jnp.ones_like(loc))
        z = p.reparameterize(eps)
        return jnp.mean(-p.log_prob(x) + p.kl_divergence(prior) + 0.5 * jnp.sum(z**2, -1))

    loss, grads = jax.jit(jax.value_and_grad(step, argnums=(0, 1)))(
        a["loc"], a["log_scale"], a["x"], a["eps"]
    )
    return _host(loss), _host(grads[0]), _host(grads[1])


# -- sampling -------------------------------------------------------------------------------

SAMPLES = 20000


def sampling(target, inputs):
    """Sample moments as z-scores (want 0, pass within `Z_LIMIT`), and the same draws per seed.

    The rows' "error" is the |z| of the mean, the variance and the correlation
    between coordinates; the reproducibility row is 0 when two draws from equal
    seeds are equal bit for bit.
    """
    p = dg.MultivariateNormalDiag(target(inputs["loc"]), target(inputs["scale"]))
    draws = _host(p.sample((SAMPLES,), seed=target.seed()))
    again = _host(p.sample((SAMPLES,), seed=target.seed()))
    loc, scale = _host(p.loc), _host(p.scale)
    n = SAMPLES
    z_mean = (draws.mean(0) - loc) / (scale / math.sqrt(n))
    z_var = (draws.var(0, ddof=1) / scale**2 - 1) / math.sqrt(2 / (n - 1))
    centred = (draws - draws.mean(0)) / draws.std(0)
    corr = np.einsum("nbi,nbj->bij", centred, centred) / n
    off = corr[:, ~np.eye(loc.shape[-1], dtype=bool)]
    z_corr = off * math.sqrt(n)
    zero = np.zeros(1)
    return [
        ("sample mean (z)", np.abs(z_mean), np.zeros_like(z_mean)),
        ("sample variance (z)", np.abs(z_var), np.zeros_like(z_var)),
        ("sample correlation (z)", np.abs(z_corr), np.zeros_like(z_corr)),
        ("same seed, same draws", zero + (math.inf if np.any(draws != again) else 0.0), zero),
    ]


# -- fitting ----------------------------------------------------------------------------------


def _clusters(rng):
    centers = np.array([[-6.0, 0, 0, 0], [0, 6, 0, 0], [6, 0, 3, 0], [0, -6, -3, 2]])
    widths = rng.uniform(0.5, 1.5, size=centers.shape)
    sizes = (300, 200, 250, 250)
    x = np.concatenate(
        [c + w * rng.normal(size=(m, 4)) for c, w, m in zip(centers, widths, sizes, strict=True)]
    )
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return x, labels


def _em_reference(x, labels, k, reg_covar, iterations=300):
    """Float64 EM for a diagonal mixture, started from the true labels."""
    resp = np.eye(k)[labels]
    for _ in range(iterations):
        nk = resp.sum(0)
        means = resp.T @ x / nk[:, None]
        var = resp.T @ x**2 / nk[:, None] - means**2 + reg_covar
        logw = np.log(nk / x.shape[0])
        lp = (
            -0.5 * (((x[:, None] - means) ** 2) / var).sum(-1)
            - 0.5 * np.log(var).sum(-1)
            - 0.5 * x.shape[1] * _LOG_2PI
            + logw
        )
        m = lp.max(1, keepdims=True)
        resp = np.exp(lp - m)
        resp /= resp.sum(1, keepdims=True)
    return np.exp(logw), means, var


def fit(target, inputs):
    """`fit` (mean and standard deviation) and `fit_mixture` (EM) against float64 estimates."""
    rng = np.random.default_rng(3)
    x, labels = _clusters(rng)
    data = target(x)
    held = _host(data)
    one = dg.fit(data)
    mixture = dg.fit_mixture(data, 4, seed=0, tol=1e-12, max_iter=300)
    weights, means, var = _em_reference(held, labels, 4, 1e-6)
    got_means = _host(mixture.loc)
    order = np.lexsort(got_means.T[::-1])
    want_order = np.lexsort(means.T[::-1])
    w = _host(mixture.logits)
    w = np.exp(w - w.max())
    w /= w.sum()
    return [
        ("fit.loc", _host(one.loc), held.mean(0)),
        ("fit.scale", _host(one.scale), held.std(0)),
        ("fit_mixture weights", w[order], weights[want_order]),
        ("fit_mixture.loc", got_means[order], means[want_order]),
        ("fit_mixture.variance", _host(mixture.components.variance)[order], var[want_order]),
    ]


# -- the framework classes ------------------------------------------------------------------


def classes(target, inputs):
    """The torch class (a ``torch.distributions.Distribution``) and the numpyro class."""
    if target.backend == "torch":
        from diaggauss.backends.torch import MixtureDiag, MultivariateNormalDiag

        from ._check import _compute, _references

        refs = _references({k: _host(target(v)) for k, v in inputs.items()})
        got = _compute(inputs, target, target.seed(), MultivariateNormalDiag, MixtureDiag)
        return [
            (f"torch class {name}", *_pair(value, refs.get(name))) for name, value in got.items()
        ]
    if target.backend == "jax":
        return _numpyro_rows(target, inputs)
    return None


def _pair(value, want):
    if isinstance(value, tuple):
        return _host(value[0]), _host(value[1])
    return _host(value), want


def _numpyro_rows(target, inputs):
    try:
        from numpyro.distributions.kl import kl_divergence

        from diaggauss.backends.jax import NumpyroMultivariateNormalDiag as N
    except ImportError:
        return None
    from ._check import _references

    refs = _references({k: _host(target(v)) for k, v in inputs.items()})
    a = {k: target(v) for k, v in inputs.items()}
    p = N(a["loc"], a["scale"])
    q = N.from_log_scale(a["loc_q"], a["log_scale_q"])
    ls = N.from_log_scale(a["loc"], a["log_scale"])
    sample = p.sample(target.seed(), (2,))
    return [
        ("numpyro class log_prob", _host(p.log_prob(a["x"])), refs["log_prob"]),
        ("numpyro class cdf", _host(p.cdf(a["x"])), refs["cdf"]),
        ("numpyro class entropy", _host(ls.entropy()), refs["entropy"]),
        ("numpyro class kl_divergence", _host(kl_divergence(p, q)), refs["kl_divergence"]),
        ("numpyro class mean", _host(p.mean), refs["mean"]),
        ("numpyro class variance", _host(p.variance), refs["variance"]),
        (
            "numpyro class sample (self-consistency)",
            _host(p.log_prob(sample)),
            _host(dg.MultivariateNormalDiag(a["loc"], a["scale"]).log_prob(sample)),
        ),
    ]


SUITES = {
    "classes": classes,
    "gradients": gradients,
    "compiled": compiled,
    "sampling": sampling,
    "fit": fit,
}
