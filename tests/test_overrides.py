"""Every whole-kernel override against the generic kernel it replaces (design.md, Layers 6).

For each override an adapter registers: the same values as the generic
kernel on both sides of each of its size thresholds, bit-identical results on
repeated calls, the same gradients (torch autograd, ``jax.grad``), and the
same values compiled (``torch.compile(fullgraph=True)``, ``jax.jit``). A new
override without a case here fails `test_every_override_has_a_case`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from diaggauss import _dispatch, _kernels
from diaggauss._gaps import gaps_for

RTOL = {"float32": 2e-5, "float64": 1e-12}


def _rows_around(threshold, d):
    """Row counts whose (rows, d) size sits just below, at and above `threshold` elements."""
    rows = threshold // d
    return sorted({max(1, rows - 1), rows, rows + 1})


def _density_args(kernel, rows, d, rng, lead=()):
    """Positional arguments and keywords of a log-density kernel."""
    x = rng.normal(size=(*lead, rows, d))
    loc = rng.normal(size=(rows, d))
    scale = rng.uniform(0.5, 2.0, size=(rows, d))
    log_z = np.log(scale).sum(-1) + d * 0.5 * math.log(2 * math.pi)
    if kernel == "log_prob":
        return (x, loc, scale), {}
    if kernel == "log_prob+log_normalizer":
        return (x, loc, scale), {"log_normalizer": log_z}
    if kernel == "log_normalizer_from_scale":
        return (scale,), {}
    ls = np.log(scale)
    if "tiny" in kernel:  # 1 / scale overflows (silent NaNs once): x == loc there
        ls[:, 0], ls[:, -1] = -100.0, -1e4
        x[..., 0], x[..., -1] = loc[:, 0], loc[:, -1]
    if kernel.startswith("log_prob_from_log_scale"):
        log_z = ls.sum(-1) + d * 0.5 * math.log(2 * math.pi)
        # the half inverse is derived in the tested library and dtype (see _split)
        return (x, loc, ls), (
            {"log_normalizer": log_z, "half_inv": None} if "kept" in kernel else {}
        )
    if kernel == "kl_divergence":  # from the scales as given
        loc_q = rng.normal(size=(rows, d))
        scale_q = rng.uniform(0.5, 2.0, size=(rows, d))
        if lead:  # a batch of p against one q: not one row per pair
            x = x.reshape(-1, d)[: rows * int(np.prod(lead))].reshape(*lead, rows, d)
        return (x, scale + 0 * x, loc_q, scale_q), {}
    if kernel.startswith("kl_divergence_from_log_scale"):
        loc_q = rng.normal(size=(rows, d))
        ls_q = np.log(rng.uniform(0.5, 2.0, size=(rows, d)))
        if lead:  # a batch of p against one q: not one row per pair
            x = x.reshape(-1, d)[: rows * int(np.prod(lead))].reshape(*lead, rows, d)
        if "tiny" in kernel:  # equal tiny scales and means: KL 0, not NaN
            ls_q[:, 0], ls_q[:, -1] = ls[:, 0], ls[:, -1]
            loc_q[:, 0] = loc_q[:, -1] = x[..., 0] = x[..., -1] = 0.0
        args = (x, ls + 0 * x, loc_q, ls_q)
        return args, ({"inv_scale_q": np.exp(-ls_q)} if "inv_scale_q" in kernel else {})
    return (x, loc, 1 / scale, log_z), {}


DENSITY_KERNELS = (
    "log_prob",
    "log_prob+log_normalizer",
    "log_prob_from_log_scale",
    "log_prob_from_log_scale+kept",
    "log_prob_from_log_scale+tiny",
    "log_prob_from_log_scale+tiny+kept",
    "log_prob_from_inv_scale",
    "log_normalizer_from_scale",
    "kl_divergence_from_log_scale",
    "kl_divergence_from_log_scale+inv_scale_q",
    "kl_divergence_from_log_scale+tiny",
    "kl_divergence",
)


def _torch_cases():
    from diaggauss.backends.torch import _overrides as o

    cases = []
    for kernel in DENSITY_KERNELS:
        sizes = [(r, 64) for r in _rows_around(o.SMALL, 64)]
        sizes += [(r, 64) for r in _rows_around(o.LARGE, 64)]
        sizes += [(o.BLOCK_VALUES // 64 * 2 + 5, 64), (3, 2), (1, 2)]
        cases += [(kernel, s, ()) for s in sizes]
        cases.append((kernel, (64, 16), (3,)))  # a sample axis: not one row per distribution
    return cases


def _to(lib, a, dtype):
    if lib == "torch":
        import torch

        return torch.tensor(a, dtype=getattr(torch, dtype))
    if lib == "jax":
        import jax.numpy as jnp

        return jnp.asarray(a, dtype=dtype)
    if lib == "dask":
        import dask.array as da

        return da.from_array(np.asarray(a, dtype=dtype))
    return np.asarray(a, dtype=dtype)


def _namespace(lib):
    import array_api_compat

    return array_api_compat.array_namespace(_to(lib, np.zeros(1), "float64"))


def _close(a, b, dtype):
    np.testing.assert_allclose(_np(a), _np(b), rtol=RTOL[dtype], atol=RTOL[dtype])


def _np(a):
    if hasattr(a, "detach"):
        return a.detach().double().numpy()
    return np.asarray(a, dtype=np.float64)


# -- the registry ---------------------------------------------------------------------------

COVERED = {
    "numpy": {
        "values_ok",
        "quadratic_product",
        "log_prob",
        "log_prob_from_inv_scale",
        "log_prob_from_log_scale",
        "kl_divergence_from_log_scale",
        "kl_divergence",
    },
    "torch": {
        "log_prob",
        "log_normalizer_from_scale",
        "kl_divergence_from_log_scale",
        "kl_divergence",
        "log_prob_from_log_scale",
        "log_prob_from_inv_scale",
        "values_ok",
        "quadratic_product",
    },
    "jax": {
        "log_prob",
        "log_prob_from_log_scale",
        "em_step",
        "m_step",
        "iterate",
        "initial_start",
        "streamed_moments",
    },
    "dask": {"design", "em_step", "m_step", "streamed_moments", "initial_start", "iterate"},
}


@pytest.mark.parametrize("lib", sorted(COVERED))
def test_every_override_has_a_case(lib):
    pytest.importorskip(lib)
    assert set(gaps_for(_namespace(lib)).overrides) == COVERED[lib]


# -- log densities (torch, JAX) ---------------------------------------------------------------


def _call(fn, args, kw, xp):
    return fn(*args, **kw, xp=xp)


def _split(kernel, args, kw, lib, dtype):
    args = [_to(lib, a, dtype) for a in args]
    kw = {k: _to(lib, v, dtype) for k, v in kw.items() if v is not None}
    if "kept" in kernel:
        kw["half_inv"] = _kernels.half_inv_scale(args[2], _namespace(lib))
    return args, kw


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("kernel", "shape", "lead"), _torch_cases())
def test_torch_log_density_overrides(kernel, shape, lead, dtype):
    torch = pytest.importorskip("torch")
    xp = _namespace("torch")
    name = kernel.split("+")[0]
    fn = _dispatch.KERNELS[name].generic
    override = gaps_for(xp).overrides[name]
    rng = np.random.default_rng(hash((kernel, shape, lead)) % 2**32)
    args, kw = _split(kernel, *_density_args(kernel, *shape, rng, lead), "torch", dtype)
    want = _call(fn, args, kw, xp)
    got = _call(override, args, kw, xp)
    _close(got, want, dtype)
    assert torch.equal(got, _call(override, args, kw, xp))  # bit for bit on a repeated call
    with torch.no_grad():  # the streamed forms' own condition
        assert torch.equal(_call(override, args, kw, xp), got)
    # autograd: the same gradients with respect to every input
    leaves = [a.clone().requires_grad_() for a in args]
    lkw = {k: v.clone().requires_grad_() for k, v in kw.items()}
    inputs = [*leaves, *lkw.values()]
    # (given kept values, the log-scale itself is not read: no gradient on either side)
    g_got = torch.autograd.grad(_call(override, leaves, lkw, xp).sum(), inputs, allow_unused=True)
    g_want = torch.autograd.grad(_call(fn, leaves, lkw, xp).sum(), inputs, allow_unused=True)
    for a, b in zip(g_got, g_want, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            _close(a, b, dtype)


@pytest.mark.slow
@pytest.mark.parametrize("kernel", DENSITY_KERNELS)
@pytest.mark.parametrize("shape", [(8, 16), (4096, 64)])
def test_torch_log_density_overrides_compiled(kernel, shape):
    """Compiled with fullgraph (the overrides' compile branch), forward and backward."""
    torch = pytest.importorskip("torch")
    xp = _namespace("torch")
    dispatch = _dispatch.KERNELS[kernel.split("+")[0]]
    rng = np.random.default_rng(7)
    args, kw = _split(kernel, *_density_args(kernel, *shape, rng), "torch", "float64")
    names, n = list(kw), len(args)

    def run(fn, *a):
        return _call(fn, a[:n], dict(zip(names, a[n:], strict=True)), xp)

    torch._dynamo.reset()  # one lambda serves every parameter: reset its recompile count
    compiled = torch.compile(lambda *a: run(dispatch, *a), fullgraph=True, dynamic=False)
    inputs = [*args, *kw.values()]
    want = run(dispatch.generic, *inputs)
    _close(compiled(*inputs), want, "float64")
    assert torch.equal(compiled(*inputs), compiled(*inputs))
    leaves = [a.clone().requires_grad_() for a in inputs]
    g_got = torch.autograd.grad(compiled(*leaves).sum(), leaves, allow_unused=True)
    g_want = torch.autograd.grad(run(dispatch.generic, *leaves).sum(), leaves, allow_unused=True)
    for a, b in zip(g_got, g_want, strict=True):
        assert (a is None) == (b is None)  # given kept values, the log-scale is not read
        if a is not None:
            _close(a, b, "float64")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "kernel",
    [
        "log_prob",
        "log_prob+log_normalizer",
        "log_prob_from_log_scale",
        "log_prob_from_log_scale+kept",
        "log_prob_from_log_scale+tiny",
    ],
)
@pytest.mark.parametrize("shape", [(1, 2), (64, 16), (4096, 64)])
def test_jax_log_density_overrides(kernel, shape, dtype):
    jax = pytest.importorskip("jax")
    xp = _namespace("jax")
    name = kernel.split("+")[0]
    dispatch = _dispatch.KERNELS[name]
    override = gaps_for(xp).overrides[name]
    rng = np.random.default_rng(3)
    args, kw = _split(kernel, *_density_args(kernel, *shape, rng), "jax", dtype)
    want = _call(dispatch.generic, args, kw, xp)
    _close(_call(override, args, kw, xp), want, dtype)
    jitted = jax.jit(lambda *a: _call(dispatch, a, kw, xp))
    _close(jitted(*args), want, dtype)
    np.testing.assert_array_equal(np.asarray(jitted(*args)), np.asarray(jitted(*args)))
    again = _call(override, args, kw, xp)
    np.testing.assert_array_equal(np.asarray(_call(override, args, kw, xp)), np.asarray(again))
    g_got = jax.grad(lambda *a: _call(override, a, kw, xp).sum(), argnums=(0, 1, 2))(*args)
    g_want = jax.grad(lambda *a: _call(dispatch.generic, a, kw, xp).sum(), argnums=(0, 1, 2))(
        *args
    )
    for a, b in zip(g_got, g_want, strict=True):
        _close(a, b, dtype)


NUMPY_DENSITIES = (
    "log_prob",
    "log_prob+log_normalizer",
    "log_prob_from_inv_scale",
    "log_prob_from_log_scale",
    "log_prob_from_log_scale+kept",
    "log_prob_from_log_scale+tiny+kept",
    "kl_divergence_from_log_scale",
    "kl_divergence_from_log_scale+inv_scale_q",
    "kl_divergence_from_log_scale+tiny",
    "kl_divergence",
)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kernel", NUMPY_DENSITIES)
@pytest.mark.parametrize(
    ("shape", "lead"),
    [
        ((1, 2), ()),
        ((63, 64), ()),
        ((64, 64), ()),
        ((65, 64), ()),
        ((64, 16), (3,)),
        ((300, 30), (2,)),
    ],
)
def test_numpy_density_overrides(kernel, shape, lead, dtype):
    """Both sides of `LEAN`: the same values, bits on repeat, broadcasting that changes shape."""
    xp = _namespace("numpy")
    name = kernel.split("+")[0]
    dispatch = _dispatch.KERNELS[name]
    override = gaps_for(xp).overrides[name]
    rng = np.random.default_rng(9)
    args, kw = _split(kernel, *_density_args(kernel, *shape, rng, lead), "numpy", dtype)
    want = _call(dispatch.generic, args, kw, xp)
    got = _call(override, args, kw, xp)
    _close(got, want, dtype)
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, _call(override, args, kw, xp))
    # a spread with more batch dimensions than the points: out of place
    wide = [np.broadcast_to(a, (2, 1, *a.shape)) if i > 0 else a for i, a in enumerate(args)]
    _close(_call(override, wide, kw, xp), _call(dispatch.generic, wide, kw, xp), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_jax_em_step_override(dtype):
    """Both sides of SUM_ROWS, the exact-variance branch, repeat calls, each dtype."""
    pytest.importorskip("jax")
    from diaggauss import _em
    from diaggauss.backends.jax import _em as o

    xp = _namespace("jax")
    rng = np.random.default_rng(4)
    for n in (600, o.SUM_ROWS - 1, 2 * o.SUM_ROWS + 7):
        for tight in (False, True):
            x = np.concatenate([rng.normal(-3, 1, (n // 2, 3)), rng.normal(3, 1, (n - n // 2, 3))])
            spread = np.ones((2, 3))
            if tight:  # a component at 30 with spread 1e-6: the exact variance runs
                x[n // 2 :] = 30 + 1e-3 * rng.normal(size=(n - n // 2, 3))
                spread[1] = 1e-6
            xj = _to("jax", x, dtype)
            center = xp.mean(xj, axis=0, keepdims=True)
            xa, reach = _em.design(xj, center, xp=xp)
            w = _to("jax", np.ones(n), dtype)
            logits = _to("jax", np.log([0.4, 0.6]), dtype)
            mc = _to("jax", [[-3.0, -3, -3], [30.0 if tight else 3.0] * 3], dtype) - center
            var = _to("jax", spread, dtype)
            args = (xa, w, logits, mc, var, 1e-6)
            got = gaps_for(xp).overrides["em_step"](*args, reach=reach, xp=xp)
            want = _em.em_step.generic(*args, reach=reach, xp=xp)
            for a, b in zip(got[:3], want[:3], strict=True):
                _close(a, b, dtype)
            np.testing.assert_allclose(_np(got[3]), _np(want[3]), rtol=max(RTOL[dtype], 1e-5))
            again = gaps_for(xp).overrides["em_step"](*args, reach=reach, xp=xp)
            for a, b in zip(got, again, strict=True):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _em_case(n, tight, dtype, xp):
    """Design, weights and parameters of a two-component fit (one tight and far when `tight`)."""
    from diaggauss import _em

    rng = np.random.default_rng(n)
    x = np.concatenate([rng.normal(-3, 1, (n // 2, 3)), rng.normal(3, 1, (n - n // 2, 3))])
    if tight:
        x[n // 2 :] = 30 + 1e-3 * rng.normal(size=(n - n // 2, 3))
    xj = _to("jax", x, dtype)
    center = xp.mean(xj, axis=0, keepdims=True)
    xa, reach = _em.design(xj, center, xp=xp)
    resp = np.zeros((n, 2))
    resp[: n // 2, 0] = resp[n // 2 :, 1] = 1.0
    resp = 0.9 * resp + 0.05
    return xa, reach, _to("jax", np.ones(n), dtype), _to("jax", resp, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_jax_m_step_override(dtype):
    """Compiled (one product) against the generic blocks: both sides of SUM_ROWS, exact branch."""
    jax = pytest.importorskip("jax")
    from diaggauss import _em
    from diaggauss.backends.jax import _em as o

    xp = _namespace("jax")
    override = gaps_for(xp).overrides["m_step"]
    for n in (600, o.SUM_ROWS - 1, 2 * o.SUM_ROWS + 7):
        for tight in (False, True):
            xa, _, w, resp = _em_case(n, tight, dtype, xp)
            want = _em.m_step.generic(xa, w, resp, 1e-6, xp=xp)
            # eager unsharded keeps the generic kernel; traced, the one-product form
            eager = override(xa, w, resp, 1e-6, xp=xp)
            for a, b in zip(eager, want, strict=True):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            jitted = jax.jit(lambda xa, w, r: override(xa, w, r, 1e-6, xp=xp))
            got = jitted(xa, w, resp)
            for a, b in zip(got[:2], want[:2], strict=True):
                _close(a, b, dtype)
            # float32 partial sums against the generic's float64 ones: mixed responsibilities
            # over clusters 33 apart leave variances of 52 from second moments of 290
            rtol = 1e-12 if dtype == "float64" else 5e-5
            np.testing.assert_allclose(_np(got[2]), _np(want[2]), rtol=rtol)
            for a, b in zip(got, jitted(xa, w, resp), strict=True):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("max_iter", [0, 1, 3, 50])
def test_jax_iterate_override(max_iter):
    """The traced loop (lax.while_loop) against the generic one, with the same EM step."""
    jax = pytest.importorskip("jax")
    from diaggauss import _em, _em_loop

    xp = _namespace("jax")
    override = gaps_for(xp).overrides["iterate"]
    xa, _, w, resp = _em_case(700, False, "float64", xp)
    start = _em.m_step.generic(xa, w, resp, 1e-6, xp=xp)

    def step(*p):
        return _em.em_step(xa, w, *p, 1e-6, xp=xp)

    def run(fn, *p):
        return fn(step, *p, max_iter=max_iter, tol=1e-8, xp=xp)

    want = run(_em_loop.iterate.generic, *start)
    # eager: the generic loop itself
    assert run(override, *start)[3:6] == want[3:6]
    jitted = jax.jit(lambda *p: run(override, *p))
    got = jitted(*start)
    for a, b in zip(got[:3], want[:3], strict=True):
        _close(a, b, "float64")
    assert int(got[3]) == want[3]
    assert bool(got[4]) == want[4]
    history = np.asarray(got[5])
    assert history.shape == (max_iter,)
    np.testing.assert_allclose(history[: want[3]], want[5], rtol=1e-12)
    assert np.isnan(history[want[3] :]).all()
    np.testing.assert_allclose(float(got[6]), want[6], rtol=1e-12)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(jitted(*start)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("method", ["kmeans", "k-means++", "random", "random_from_data"])
def test_jax_initial_start_override(method):
    """The traced start against the generic one from the same key (below the k-means sample;
    above it in tests/test_jax_sharding.py)."""
    jax = pytest.importorskip("jax")
    from diaggauss import _em_loop
    from diaggauss._fit_mixture import _Steps

    xp = _namespace("jax")
    override = gaps_for(xp).overrides["initial_start"]
    xa, _, w, _ = _em_case(800, False, "float32", xp)
    xc = xa[:, 3:6]
    xsq = xp.sum(xa[:, :3], axis=1)

    def start(fn, xa, key):
        steps = _Steps(xa, w, 1e-6, None, xp)
        stream = gaps_for(xp).random_stream(key)
        return fn(xa[:, 3:6], xp.sum(xa[:, :3], axis=1), steps, 2, method, stream, 1e-3, xp=xp)

    key = jax.random.key(2)
    want = start(_em_loop.initial_start.generic, xa, key)
    assert xc.shape == (800, 3)
    assert xsq.shape == (800,)
    jitted = jax.jit(lambda xa, key: start(override, xa, key))
    got = jitted(xa, key)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-4, atol=1e-4)
    for a, b in zip(got, jitted(xa, key), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_jax_streamed_moments_override_unsharded():
    """One device: the generic kernel's bits (the sharded form: tests/test_jax_sharding.py)."""
    pytest.importorskip("jax")
    from diaggauss import _fit

    xp = _namespace("jax")
    override = gaps_for(xp).overrides["streamed_moments"]
    rng = np.random.default_rng(8)
    for lead in ((), (2,)):
        x = _to("jax", rng.normal(size=(*lead, 1000, 3)), "float32")
        for w in (None, _to("jax", rng.uniform(size=(*lead, 1000)), "float32")):
            for a, b in zip(
                override(x, w, xp=xp), _fit.streamed_moments.generic(x, w, xp=xp), strict=True
            ):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# -- validation (NumPy, torch) -------------------------------------------------------------


def _validation_cases(few):
    rng = np.random.default_rng(5)
    out = []
    for n in (few // 2 - 1, few // 2, few // 2 + 1, 3 * few):
        loc = rng.normal(size=n)
        param = rng.uniform(0.5, 2, size=n)
        out.append(("valid", loc, param))
        for what, where, value in (
            ("nan loc", "loc", math.nan),
            ("inf loc", "loc", -math.inf),
            ("nan param", "param", math.nan),
            ("inf param", "param", math.inf),
            ("zero param", "param", 0.0),
            ("negative param", "param", -1.0),
            ("huge loc", "loc", 1.7e308),
        ):
            bad_loc, bad_param = loc.copy(), param.copy()
            (bad_loc if where == "loc" else bad_param)[n // 2] = value
            if what == "huge loc":
                bad_loc[:] = 1.7e308  # the sums overflow; the values are valid
            out.append((what, bad_loc, bad_param))
    return out


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_values_ok_override(lib):
    pytest.importorskip(lib)
    module = __import__(f"diaggauss.backends.{lib}._overrides", fromlist=["FEW_VALUES"])
    xp = _namespace(lib)
    override = gaps_for(xp).overrides["values_ok"]
    from diaggauss import _validation

    for what, loc, param in _validation_cases(module.FEW_VALUES):
        for domain in ("positive", "real"):
            a, b = _to(lib, loc, "float64"), _to(lib, param, "float64")
            want = _validation.values_ok.generic(a, b, domain, xp=xp)
            assert override(a, b, domain, xp=xp) is want, (what, domain, loc.size)
            expected = bool(np.all(np.isfinite(loc)) and np.all(np.isfinite(param)))
            if domain == "positive":
                expected = expected and bool(np.all(param > 0))
            assert want is expected, (what, domain)


# -- the pairwise product (NumPy, torch) -----------------------------------------------------


def _product_reference(x, center, b_t):
    xc = x - center
    rows = np.concatenate([xc * xc, xc, np.ones((*xc.shape[:-1], 1))], axis=-1)
    return rows @ b_t, (xc * xc).max(axis=-2, keepdims=True)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reach", [False, True])
def test_quadratic_product_override(lib, dtype, reach):
    pytest.importorskip(lib)
    module = __import__(f"diaggauss.backends.{lib}._overrides", fromlist=["CHUNK_ELEMENTS"])
    xp = _namespace(lib)
    override = gaps_for(xp).overrides["quadratic_product"]
    from diaggauss import _pairwise

    d, k = 8, 5
    width = 2 * d + 1 + (d if reach else 0)
    rows = module.CHUNK_ELEMENTS // width
    rng = np.random.default_rng(6)
    for n, lead, chunk in (
        (rows - 1, (), None),
        (rows, (), None),
        (2 * rows + 3, (), None),
        (10, (2,), 3),
        (7, (), 7),
        (1, (), None),
    ):
        xn = rng.normal(size=(*lead, n, d)) + 100.0
        cn = xn.mean(axis=-2, keepdims=True)
        bn = rng.normal(size=(*lead, 2 * d + 1, k))
        x, c, b = (_to(lib, a, dtype) for a in (xn, cn, bn))
        want = _pairwise.quadratic_product.generic(x, c, b, reach=reach, chunk_rows=chunk, xp=xp)
        got = override(x, c, b, reach=reach, chunk_rows=chunk, xp=xp)
        ref, ref_reach = _product_reference(xn, cn, bn)
        tol = 1e-4 if dtype == "float32" else 1e-10
        np.testing.assert_allclose(_np(got[0]), ref, rtol=tol, atol=tol * np.abs(ref).max())
        np.testing.assert_allclose(
            _np(got[0]), _np(want[0]), rtol=tol, atol=tol * np.abs(ref).max()
        )
        if reach:
            np.testing.assert_allclose(_np(got[1]), ref_reach, rtol=tol)
            np.testing.assert_array_equal(_np(got[1]), _np(want[1]))
        else:
            assert got[1] is None
        again = override(x, c, b, reach=reach, chunk_rows=chunk, xp=xp)
        np.testing.assert_array_equal(_np(again[0]), _np(got[0]))


def test_torch_quadratic_product_with_autograd_is_generic():
    torch = pytest.importorskip("torch")
    xp = _namespace("torch")
    from diaggauss import _pairwise

    override = gaps_for(xp).overrides["quadratic_product"]
    rng = np.random.default_rng(8)
    x = torch.tensor(rng.normal(size=(50, 4)), requires_grad=True)
    c = torch.tensor(rng.normal(size=(1, 4)))
    b = torch.tensor(rng.normal(size=(9, 3)), requires_grad=True)
    out, _ = override(x, c, b, xp=xp)
    (gx, gb) = torch.autograd.grad(out.sum(), (x, b))
    out2, _ = _pairwise.quadratic_product.generic(x, c, b, xp=xp)
    (hx, hb) = torch.autograd.grad(out2.sum(), (x, b))
    torch.testing.assert_close(gx, hx)
    torch.testing.assert_close(gb, hb)


# -- Dask: per-chunk statistics merged exactly ---------------------------------------------


def _dask_chunks(n, few):
    """Row chunks: one, `few` (below the tree's fan-in SPLIT_EVERY), and many (above it)."""
    from diaggauss.backends.dask import _overrides as o

    return [n, -(-n // few), -(-n // (3 * o.SPLIT_EVERY))]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("tight", [False, True])
def test_dask_em_overrides(dtype, tight):
    """design, em_step and m_step: chunks across SPLIT_EVERY and SUM_ROWS, the exact variance."""
    da = pytest.importorskip("dask.array")
    from diaggauss import _em
    from diaggauss.backends.dask import _overrides as o

    npx = _namespace("numpy")
    dxp = _namespace("dask")
    rng = np.random.default_rng(6)
    n = 2 * _em.SUM_ROWS + 7
    x = np.concatenate([rng.normal(-3, 1, (n // 2, 3)), rng.normal(3, 1, (n - n // 2, 3))])
    spread = np.ones((2, 3))
    if tight:  # a component at 30 with spread 1e-6: the exact variance (and float64 E-step) run
        x[n // 2 :] = 30 + 1e-3 * rng.normal(size=(n - n // 2, 3))
        spread[1] = 1e-6
    x = x.astype(dtype)
    center = x.mean(axis=0, keepdims=True)
    w = rng.uniform(0.5, 2, n).astype(dtype)
    logits = np.log([0.4, 0.6]).astype(dtype)
    mc = (np.array([[-3.0] * 3, [30.0 if tight else 3.0] * 3]) - center).astype(dtype)
    var = spread.astype(dtype)
    xa, reach = _em.design.generic(x, center, xp=npx)
    resp = rng.dirichlet([1, 1], n).astype(dtype)
    want_m = _em.m_step.generic(xa, w, resp, 1e-6, xp=npx)
    for rows in _dask_chunks(n, 3):
        xd = da.from_array(x, chunks=(rows, 3))
        dxa, dreach = o.design(xd, da.from_array(center), xp=dxp)
        np.testing.assert_array_equal(dxa.compute(), xa)
        np.testing.assert_array_equal(dreach.compute(), reach)
        wd = da.from_array(w, chunks=rows)
        # with `reach` (each chunk's design, float64 where its bound asks) and without
        # (the design built block by block from the points, its E-step at float64 where
        # the bound's distance term asks, as fit_mixture's own check on NumPy)
        want = _em.em_step.generic(xa, w, logits, mc, var, 1e-6, reach=reach, xp=npx)
        for dr in (dreach, None):
            got = da.compute(*o.em_step(dxa, wd, logits, mc, var, 1e-6, reach=dr, xp=dxp))
            # from the points, the float64 step squares x - c taken at float64: the tight
            # variance within 5e-8 of a float64 reference, the generic's (x - c at
            # float32) within 6e-5
            loose = 1e-4 if tight and dr is None and dtype == "float32" else 1e-6 if tight else 0
            for a, b in zip(got, want, strict=True):
                assert a.dtype == b.dtype
                np.testing.assert_allclose(a, b, rtol=max(RTOL[dtype], loose))
            again = da.compute(*o.em_step(dxa, wd, logits, mc, var, 1e-6, reach=dr, xp=dxp))
            for a, b in zip(got, again, strict=True):
                np.testing.assert_array_equal(a, b)
        dresp = da.from_array(resp, chunks=(rows, 2))
        # from points (a design made by `design`) and from a design given as it is
        for given in (dxa, da.from_array(xa, chunks=(rows, 7))):
            got_m = da.compute(*o.m_step(given, wd, dresp, 1e-6, xp=dxp))
            for a, b in zip(got_m, want_m, strict=True):
                np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dask_streamed_moments_override(dtype):
    """A batch of weighted fits at an offset of 1e4, chunked along every axis."""
    da = pytest.importorskip("dask.array")
    from diaggauss import _fit
    from diaggauss.backends.dask import _overrides as o

    npx, dxp = _namespace("numpy"), _namespace("dask")
    rng = np.random.default_rng(7)
    n = 3000
    x = (1e4 + rng.normal(size=(2, n, 4))).astype(dtype)
    w = rng.uniform(0, 2, (2, n)).astype(dtype)
    for weights in (None, w):
        want = _fit.streamed_moments.generic(x, weights, xp=npx)
        for rows in _dask_chunks(n, 4):
            xd = da.from_array(x, chunks=(1, rows, 2))
            wd = None if weights is None else da.from_array(weights, chunks=(2, rows // 2 + 1))
            got = da.compute(*o.streamed_moments(xd, wd, xp=dxp))
            for a, b in zip(got, want, strict=True):
                assert a.dtype == b.dtype
                np.testing.assert_allclose(a, b, rtol=RTOL[dtype])
            again = da.compute(*o.streamed_moments(xd, wd, xp=dxp))
            for a, b in zip(got, again, strict=True):
                np.testing.assert_array_equal(a, b)


def _dask_start(xd, w, k, init, seed):
    import dask.array as da

    from diaggauss.backends.dask import GAPS
    from diaggauss.backends.dask import _init as o

    xsq = da.sum(xd * xd, axis=1)
    stream = GAPS.random_stream(seed)
    start, runs, rows = o.initial_responsibilities(
        xd, xsq, w, k, init, stream, xp=_namespace("dask")
    )
    assert rows is None
    assert runs == 1
    return start(None).compute()


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data"])
def test_dask_initial_responsibilities_override(init):
    """Rows summing to one, seeded; every point or a sample of them; k-means finds the clusters."""
    da = pytest.importorskip("dask.array")
    from diaggauss import _kmeans
    from diaggauss.backends.numpy import GAPS as NUMPY

    rng = np.random.default_rng(8)
    k = 3
    m = max(_kmeans.KMEANS_SAMPLE, _kmeans.KMEANS_SAMPLE_PER_COMPONENT * k)
    for n in (m // 2, 3 * m):  # the sample is every point, or a part
        x = np.concatenate([rng.normal(c, 0.3, (n // 3, 2)) for c in (-3, 0, 3)])
        xc = x - x.mean(0)
        xd = da.from_array(xc, chunks=(n // 5, 2))
        w = da.ones(xd.shape[0], chunks=n // 4)
        r = _dask_start(xd, w, k, init, 1)
        assert r.shape == (xd.shape[0], k)
        total = r.sum(1)
        np.testing.assert_allclose(total[total > 0], 1.0)
        np.testing.assert_array_equal(r, _dask_start(xd, w, k, init, 1))
        if init == "kmeans":  # the generic's clusters, found again
            ones = np.ones(len(x))
            start, _, _ = _kmeans.initial_responsibilities(
                xc, (xc * xc).sum(1), ones, k, init, NUMPY.random_stream(1), _namespace("numpy")
            )
            labels = start(None)[:, :k].argmax(1)  # its first run
            np.testing.assert_array_equal(_relabel(r.argmax(1), labels), labels)
        else:
            assert not np.array_equal(r, _dask_start(xd, w, k, init, 2))


def _relabel(a, b):
    """`a`'s labels renamed to the `b` label each most often meets."""
    names = {i: np.bincount(b[a == i]).argmax() for i in np.unique(a)}
    return np.array([names[i] for i in a])


def test_dask_initial_start_and_iterate_overrides():
    """The start is the M-step of the start's responsibilities, settled; iterate settles each
    step and gives the generic loop's results."""
    da = pytest.importorskip("dask.array")
    from diaggauss import _em, _em_loop
    from diaggauss._fit_mixture import _Steps
    from diaggauss.backends.dask import GAPS
    from diaggauss.backends.dask import _init as o

    dxp = _namespace("dask")
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.normal(-3, 1, (2000, 2)), rng.normal(3, 1, (2000, 2))])
    xd = da.from_array(x - x.mean(0), chunks=(900, 2))
    xa, reach = _em.design(xd, 0.0, xp=dxp)
    steps = _Steps(xa, da.ones(len(x), chunks=1000), 1e-6, reach, dxp)
    xsq = da.sum(xd * xd, axis=1)
    start = o.initial_start(xd, xsq, steps, 2, "kmeans", GAPS.random_stream(1), 1e-3, xp=dxp)
    resp = o.initial_responsibilities(xd, xsq, steps.w, 2, "kmeans", GAPS.random_stream(1), xp=dxp)
    want = _em.m_step(xa, steps.w, resp[0](None), 1e-6, xp=dxp)
    for a, b in zip(start, want, strict=True):
        assert len(dict(a.__dask_graph__())) == 1  # a value, not a graph
        np.testing.assert_array_equal(a.compute(), b.compute())
    kw = {"max_iter": 4, "tol": 0.0, "xp": dxp}
    got = o.iterate(steps.step, *start, **kw)
    generic = _em_loop.iterate.generic(steps.step, *start, **kw)
    for a, b in zip(got[:3], generic[:3], strict=True):
        assert len(dict(a.__dask_graph__())) == 1
        np.testing.assert_allclose(a.compute(), b.compute(), rtol=1e-12)
    assert got[3:] == generic[3:]
