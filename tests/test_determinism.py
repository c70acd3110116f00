"""The same bits on every call, no memory held after a call, compiled training that runs.

Each test here failed on the design before the redesign (issue 10): the first
and later ``log_prob`` calls of a torch object took different paths, a
per-thread scratch buffer kept the largest temporary alive, and in-place
updates broke ``torch.compile`` with ``backward``.
"""

from __future__ import annotations

import gc
import tracemalloc
import warnings

import numpy as np
import pytest
from helpers import asarray, run_python, to_numpy

import diaggauss as dg

KINDS = ["scale", "log_scale", "variance", "precision"]


def _spread(kind, scale):
    """`scale` given as parameterisation `kind` (a new array)."""
    return {"scale": scale.copy(), "log_scale": np.log(scale), "variance": scale**2}.get(
        kind, 1 / scale**2
    )


def _build(cls, kind, loc, param):
    return cls(loc, param) if kind == "scale" else getattr(cls, f"from_{kind}")(loc, param)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(1, 2), (128, 8), (300, 300), (4096, 64)])
@pytest.mark.parametrize("grad", [False, True])
def test_torch_same_bits_on_every_call(kind, shape, grad):
    """A fresh object's first, second and third call give identical bits, at every size."""
    torch = pytest.importorskip("torch")
    from diaggauss.backends.torch import MultivariateNormalDiag as MVND

    rng = np.random.default_rng(1)
    loc = torch.tensor(rng.normal(size=shape), dtype=torch.float32, requires_grad=grad)
    param = torch.tensor(_spread(kind, rng.uniform(0.5, 2.0, size=shape)), dtype=torch.float32)
    d = _build(MVND, kind, loc, param.requires_grad_(grad))
    x = torch.tensor(rng.normal(size=(3, *shape)), dtype=torch.float32)
    for method in (lambda: d.log_prob(x), lambda: d.kl_divergence(d), d.entropy):
        first, second, third = (method().detach() for _ in range(3))
        assert torch.equal(first, second)
        assert torch.equal(first, third)


@pytest.mark.parametrize("kind", KINDS)
def test_same_bits_on_every_call(xp, backend, kind):
    """The same holds on every backend, including across cache states."""
    rng = np.random.default_rng(2)
    loc = asarray(xp, rng.normal(size=(4096, 2)))
    param = asarray(xp, _spread(kind, rng.uniform(0.5, 2.0, size=(4096, 2))))
    d = _build(dg.MultivariateNormalDiag, kind, loc, param)
    x = asarray(xp, rng.normal(size=(4096, 2)))
    first, second = to_numpy(d.log_prob(x)), to_numpy(d.log_prob(x))
    np.testing.assert_array_equal(first, second)


def test_torch_temporaries_are_not_kept_after_log_prob():
    """No tensor outlives the call: nothing holds the largest temporary seen (64 MB before)."""
    torch = pytest.importorskip("torch")
    from diaggauss.backends.torch import MultivariateNormalDiag as MVND

    shape = (4, 4096, 1024)
    x = torch.randn(shape)
    d = MVND(torch.zeros(shape), torch.ones(shape), validate_args=False)

    def large_tensors():
        gc.collect()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # isinstance() on torch's deprecated attributes
            return {
                id(o)
                for o in gc.get_objects()
                if type(o) is torch.Tensor and o.numel() >= 1 << 20  # exactly: not FakeTensor
            }

    before = large_tensors()
    for _ in range(3):
        d.log_prob(x)
        d.kl_divergence(d)
        dg.pairwise_log_prob(x[0, :512], torch.zeros(8, 1024), torch.ones(8, 1024))
    kept = {id(v) for v in (d._cache[1].values() if d._cache and d._cache[1] else ())}
    new = large_tensors() - before - kept
    assert not new, f"{len(new)} large tensors outlive the calls"


def test_numpy_temporaries_are_not_kept_after_calls():
    """What NumPy allocates during the calls is freed when they return (no reused blocks)."""
    x = np.random.default_rng(0).normal(size=(64, 4096))
    d = dg.MultivariateNormalDiag(np.zeros((64, 4096)), np.ones((64, 4096)))
    comps = dg.MultivariateNormalDiag(np.zeros((8, 4096)), np.ones((8, 4096)))
    tracemalloc.start()
    try:
        for _ in range(2):
            d.log_prob(x)
            d.kl_divergence(d)
            dg.pairwise_log_prob(x, comps)
            dg.pairwise_mahalanobis(x, comps)
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    numpy_domain = tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)
    held = sum(stat.size for stat in snapshot.filter_traces([numpy_domain]).statistics("lineno"))
    assert held < 1 << 16, held


@pytest.mark.slow
@pytest.mark.subprocess
def test_compiled_vae_step_with_kl_trains():
    """torch.compile(fullgraph=True) of a loss with a KL term, then backward, at VAE sizes.

    Before the redesign this raised "one of the variables needed for gradient
    computation has been modified by an inplace operation" from 1024 elements.
    """
    pytest.importorskip("torch")
    code = """
    import torch
    from torch.distributions import kl_divergence
    from diaggauss.backends.torch import MultivariateNormalDiag as MVND
    torch.manual_seed(0)

    def loss(mu, log_sig, x):
        q = MVND.from_log_scale(mu, log_sig)
        prior = MVND(torch.zeros_like(mu), torch.ones_like(mu))
        z = q.reparameterize(x.flip(-1))  # fixed noise: compiled and eager draws differ
        return (q.kl_divergence(prior) - q.log_prob(x) + (z * z).sum(-1)).mean()

    def loss_dispatch(mu, log_sig, x):
        q = MVND.from_log_scale(mu, log_sig)
        prior = MVND(torch.zeros_like(mu), torch.ones_like(mu))
        return (kl_divergence(q, prior) - q.log_prob(x)).mean()

    step = torch.compile(loss, fullgraph=True)
    step_dispatch = torch.compile(loss_dispatch, fullgraph=True)
    for shape in [(64, 8), (128, 8), (4096, 64)]:
        mu = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        log_sig = (0.3 * torch.randn(shape, dtype=torch.float64)).requires_grad_()
        x = torch.randn(shape, dtype=torch.float64)
        for fn, compiled in ((loss, step), (loss_dispatch, step_dispatch)):
            fn(mu, log_sig, x)  # torch's KL dispatcher memoizes its pair on an eager call
            want = torch.autograd.grad(fn(mu, log_sig, x), (mu, log_sig))
            got = torch.autograd.grad(compiled(mu, log_sig, x), (mu, log_sig))
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)
        # KL(q || N(0, 1)) per coordinate: (s^2 + m^2 - 1 - 2 log s) / 2
        s2, m2 = (2 * log_sig).exp(), mu**2
        kl_ref = 0.5 * (s2 + m2 - 1 - 2 * log_sig).sum(-1)
        q = MVND.from_log_scale(mu, log_sig)
        prior = MVND(torch.zeros_like(mu), torch.ones_like(mu))
        g_ref = torch.autograd.grad(kl_ref.sum(), (mu, log_sig))
        g = torch.autograd.grad(torch.compile(lambda: q.kl_divergence(prior).sum(),
                                              fullgraph=True)(), (mu, log_sig))
        for a, b in zip(g, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    print("ok")
    """
    assert run_python(code, timeout=900).strip().endswith("ok")


# -- in-place changes of parameters (never a kept value beside a changed parameter) -----------


@pytest.mark.parametrize("kind", KINDS)
def test_numpy_in_place_changes_are_followed(kind):
    """NumPy keeps nothing between calls: a changed parameter is read afresh, loc and spread."""
    from scipy import stats

    rng = np.random.default_rng(3)
    loc = rng.normal(size=(5000, 3))
    scale = rng.uniform(0.5, 2.0, size=(5000, 3))
    param = _spread(kind, scale)
    d = _build(dg.MultivariateNormalDiag, kind, loc, param)
    x = rng.normal(size=(5000, 3))
    d.log_prob(x)
    d.entropy()
    param *= 4.0 if kind != "log_scale" else 1.0
    param += 0.0 if kind != "log_scale" else np.log(2.0)
    loc += 1.0
    new_scale = {"scale": 4 * scale, "log_scale": 2 * scale, "variance": 2 * scale}.get(
        kind, scale / 2
    )
    np.testing.assert_allclose(
        d.log_prob(x), stats.norm.logpdf(x, loc, new_scale).sum(-1), rtol=1e-12
    )
    np.testing.assert_allclose(d.entropy(), stats.norm.entropy(0, new_scale).sum(-1), rtol=1e-12)


def test_mixed_dtype_parameters_follow_in_place_changes():
    """A float64 scale beside a float32 loc is held as given, not as a promoted copy."""
    loc = np.zeros(3, dtype=np.float32)
    scale = np.ones(3)
    d = dg.MultivariateNormalDiag(loc, scale)
    assert d.dtype == np.float64
    before = d.log_prob(np.zeros(3))
    scale *= 2.0
    np.testing.assert_allclose(d.log_prob(np.zeros(3)), before - 3 * np.log(2.0), rtol=1e-12)


@pytest.mark.parametrize("size", [4, 8192])
def test_torch_data_changes_never_mix_old_and_new(size):
    """``.data`` bypasses torch's version counter: results are the old distribution's or the
    new one's (kept values at 8192 rows, none at 4), never a kept log Z beside a fresh
    quadratic term. Tracked in-place changes are always followed."""
    torch = pytest.importorskip("torch")
    from diaggauss.backends.torch import MultivariateNormalDiag as MVND

    rng = np.random.default_rng(4)
    loc = torch.tensor(rng.normal(size=(size, 2)))
    x = torch.tensor(rng.normal(size=(size, 2)))
    scale = rng.uniform(0.5, 2.0, size=(size, 2))

    def close(a, b):
        return torch.allclose(a, b, rtol=1e-12, atol=0)

    for kind in KINDS:
        param = torch.tensor(_spread(kind, scale))
        d = _build(MVND, kind, loc, param)
        d.log_prob(x)
        d.entropy()
        old = _build(MVND, kind, loc, param.clone())
        param.data.mul_(1.5)  # not counted by _version
        new = _build(MVND, kind, loc, param.clone())
        got = (d.log_prob(x), d.entropy(), d.kl_divergence(old))
        as_old = (old.log_prob(x), old.entropy(), old.kl_divergence(old))
        as_new = (new.log_prob(x), new.entropy(), new.kl_divergence(old))
        assert all(map(close, got, as_old)) or all(map(close, got, as_new)), kind
        if size < 4096:
            assert all(map(close, got, as_new)), kind  # nothing kept: the change is seen
        param.mul_(2.0)  # counted: followed in every case
        torch.testing.assert_close(
            d.log_prob(x), _build(MVND, kind, loc, param.clone()).log_prob(x)
        )
