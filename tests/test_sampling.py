"""Seeds per library, sample statistics, and reparameterize agreement across backends."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import asarray, assert_close, name_of, to_numpy

import diaggauss as dg

MVN = dg.MultivariateNormalDiag


def _dist(xp, dtype=None):
    return MVN(
        asarray(xp, np.array([1.0, -2.0, 0.5]), dtype),
        asarray(xp, np.array([0.5, 2.0, 1.0]), dtype),
    )


def test_sample_statistics(xp, backend):
    d = _dist(xp)
    seed = {"jax": None, "torch": None}.get(str(backend), 0)
    if str(backend) == "jax":
        import jax

        seed = jax.random.key(1)
    x = to_numpy(d.sample((40000,), seed=seed))
    assert x.shape == (40000, 3)
    np.testing.assert_allclose(x.mean(0), [1.0, -2.0, 0.5], atol=0.04)
    np.testing.assert_allclose(x.std(0), [0.5, 2.0, 1.0], rtol=0.03)


def test_numpy_seeds():
    d = _dist(np)
    a = d.sample(5, seed=np.random.default_rng(3))
    b = d.sample(5, seed=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(d.sample(5, seed=7), d.sample(5, seed=7))
    assert not np.array_equal(d.sample(5, seed=7), d.sample(5, seed=8))
    assert d.sample(2).shape == (2, 3)  # None: fresh entropy
    assert d.sample(2, seed=1).dtype == np.float64
    f32 = MVN(np.zeros(2, np.float32), np.ones(2, np.float32))
    assert f32.sample(3, seed=0).dtype == np.float32


def test_torch_seeds():
    torch = pytest.importorskip("torch")
    d = _dist(torch)
    a = d.sample(5, seed=torch.Generator().manual_seed(3))
    b = d.sample(5, seed=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(d.sample(5, seed=11), d.sample(5, seed=11))
    torch.manual_seed(5)
    c = d.sample(5)
    torch.manual_seed(5)
    assert torch.equal(c, d.sample(5))
    with pytest.raises(dg.SeedError, match=r"torch\.Generator"):
        d.sample(seed=np.random.default_rng(0))
    half = MVN(torch.zeros(2, dtype=torch.float16), torch.ones(2, dtype=torch.float16))
    assert half.sample(4, seed=0).dtype == torch.float16


def test_jax_seeds():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    d = _dist(jnp)
    for key in (jax.random.key(3), jax.random.PRNGKey(3)):
        np.testing.assert_array_equal(d.sample(5, seed=key), d.sample(5, seed=key))
    np.testing.assert_array_equal(d.sample(4, seed=9), d.sample(4, seed=jax.random.key(9)))
    with pytest.raises(dg.SeedError, match="needs a key"):
        d.sample(3)
    with pytest.raises(ValueError, match="needs a key"):  # also a ValueError ...
        d.sample_and_log_prob(3)
    with pytest.raises(TypeError, match=r"jax\.random key"):  # ... and a TypeError
        d.sample(3, seed=np.random.default_rng(0))


def test_generic_seeds(xp, backend):
    if str(backend) not in ("array_api_strict", "dask"):
        pytest.skip("libraries without their own random numbers")
    d = _dist(xp)
    a = to_numpy(d.sample(4, seed=np.random.default_rng(2)))
    b = to_numpy(d.sample(4, seed=2))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(dg.SeedError, match=r"numpy\.random\.Generator"):
        d.sample(seed="x")


def test_bad_numpy_seed():
    with pytest.raises(dg.SeedError, match=r"numpy.random.Generator, an int or None .* got str"):
        _dist(np).sample(seed="zero")
    with pytest.raises(TypeError):
        _dist(np).sample(seed=1.5)


def _backends():
    out = [("numpy", np.asarray)]
    try:
        import torch

        out.append(("torch", torch.from_numpy))
    except ImportError:
        pass
    try:
        import jax.numpy as jnp

        out.append(("jax", jnp.asarray))
    except ImportError:
        pass
    try:
        import array_api_strict as xs

        out.append(("array_api_strict", xs.asarray))
    except ImportError:
        pass
    return out


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402


def _normal_floats(lo, hi):
    # XLA on CPU flushes subnormal results to zero; keep every product normal.
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False).map(
        lambda v: 0.0 if abs(v) < 1e-100 else v
    )


_floats = _normal_floats(-1e3, 1e3)
_scales = st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def _problems(draw):
    d = draw(st.integers(1, 5))
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    sample = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    loc = draw(hnp.arrays(np.float64, (*batch, d), elements=_floats))
    scale = draw(hnp.arrays(np.float64, (d,), elements=_scales))
    eps = draw(hnp.arrays(np.float64, (*sample, *batch, d), elements=_normal_floats(-6, 6)))
    return loc, scale, eps


@settings(max_examples=40, deadline=None)
@given(_problems())
def test_reparameterize_agrees_across_backends(problem):
    loc, scale, eps = problem
    expected = loc + scale * eps
    for name, convert in _backends():
        d = MVN(convert(loc), convert(scale))
        got = d.reparameterize(convert(eps))
        assert tuple(got.shape) == expected.shape, name
        np.testing.assert_allclose(to_numpy(got), expected, rtol=1e-15, atol=0, err_msg=name)
        lp = to_numpy(d.log_prob(got))
        ref = (-0.5 * eps**2 - np.log(scale) - 0.5 * np.log(2 * np.pi)).sum(-1)
        np.testing.assert_allclose(lp, ref, rtol=1e-9, atol=1e-9, err_msg=name)


def test_same_noise_same_sample_float32(xp):
    """float32 too: the sample is loc + scale * eps rounded once, everywhere."""
    rng = np.random.default_rng(4)
    loc = rng.normal(size=(4, 3)).astype(np.float32)
    scale = rng.uniform(0.1, 3, size=(4, 3)).astype(np.float32)
    eps = rng.normal(size=(2, 4, 3)).astype(np.float32)
    d = MVN(asarray(xp, loc), asarray(xp, scale))
    got = d.reparameterize(asarray(xp, eps))
    assert name_of(xp) in type(got).__module__ or name_of(xp) in ("numpy", "dask", "jax")
    assert_close(got, loc + scale * eps, xp=xp, dtype=xp.float32, rtol=0)
