"""Bad input gets a named error, valid input never a NaN: every class, backend and dtype.

Each test states one promise of ``docs/index.md``'s "Guarantees" section and
tries every member of its class (every public constructor and method that
takes the argument, the neutral class and the torch, Pyro and numpyro ones),
with hypothesis where the members are many. References are independent of
diaggauss: mpmath for the far-point responsibilities, the exception the
promise names otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diaggauss as dg
from diaggauss import SeedError

from .helpers import asarray, to_numpy

BACKENDS = ("numpy", "array_api_strict", "torch", "jax")

MVN = dg.MultivariateNormalDiag
SPREADS = ("scale", "log_scale", "variance", "precision")
FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _build(cls, kind, loc, spread, **kwargs):
    return (
        cls(loc, spread, **kwargs)
        if kind == "scale"
        else getattr(cls, f"from_{kind}")(loc, spread, **kwargs)
    )


def _classes():
    """(id, class, namespace name) for the neutral class on each backend and the adapters."""
    out = [(f"neutral-{b}", MVN, b) for b in BACKENDS]
    try:
        from diaggauss.backends.torch import MultivariateNormalDiag as TorchMVN

        out.append(("torch-class", TorchMVN, "torch"))
        from diaggauss.backends.pyro import MultivariateNormalDiag as PyroMVN

        out.append(("pyro-class", PyroMVN, "torch"))
    except ImportError:
        pass
    try:
        from diaggauss.backends.jax import NumpyroMultivariateNormalDiag

        out.append(("numpyro-class", NumpyroMultivariateNormalDiag, "jax"))
    except ImportError:
        pass
    return out


CLASSES = _classes()
CLASS_PARAMS = [pytest.param(c, b, id=i) for i, c, b in CLASSES]


def namespace(backend):
    if backend == "numpy":
        import array_api_compat.numpy as xp

        return xp
    if backend == "torch":
        pytest.importorskip("torch")
        import array_api_compat.torch as xp

        return xp
    if backend == "jax":
        return pytest.importorskip("jax.numpy")
    return pytest.importorskip(backend)


def _arrays(backend, *arrays, dtype="float64"):
    xp = namespace(backend)
    return [asarray(xp, np.asarray(a, dtype=dtype)) for a in arrays]


# -- values that are not real numbers ---------------------------------------------------

NOT_REAL = {
    "complex": np.array([1 + 1j, 0.0]),
    "datetime": np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"),
    "timedelta": np.array([1, 2], dtype="timedelta64[s]"),
    "string": np.array(["a", "b"]),
    "object": np.array([None, 1.0], dtype=object),
}
POINT_METHODS = ("log_prob", "prob", "cdf", "log_cdf", "mahalanobis")


@pytest.mark.parametrize(("cls", "backend"), CLASS_PARAMS)
@given(kind=st.sampled_from(sorted(NOT_REAL)), method=st.sampled_from(POINT_METHODS))
@FEW
def test_a_value_that_is_not_real_is_a_type_error_naming_it(cls, backend, kind, method):
    loc, spread = _arrays(backend, np.zeros(2), np.ones(2))
    d = cls(loc, spread)
    if not hasattr(d, method):
        return
    with pytest.raises(TypeError, match=r"^(x|value) must be"):
        getattr(d, method)(NOT_REAL[kind])


@pytest.mark.parametrize(("cls", "backend"), CLASS_PARAMS)
@given(
    kind=st.sampled_from(sorted(NOT_REAL)),
    spread_kind=st.sampled_from(SPREADS),
    which=st.sampled_from(["loc", "spread"]),
)
@FEW
def test_a_parameter_that_is_not_real_is_a_type_error_naming_it(
    cls, backend, kind, spread_kind, which
):
    (good,) = _arrays(backend, np.ones(2))
    bad = NOT_REAL[kind]
    loc, spread = (bad, good) if which == "loc" else (good, bad)
    name = "loc" if which == "loc" else spread_kind
    with pytest.raises(TypeError, match=rf"^{name} must be"):
        _build(cls, spread_kind, loc, spread)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_native_complex_arrays_are_refused_not_truncated(backend):
    xp = namespace(backend)
    z = xp.asarray(np.array([1 + 1j, 0.0], dtype=np.complex64))
    loc, spread = _arrays(backend, np.zeros(2), np.ones(2), dtype="float32")
    with pytest.raises(TypeError, match=r"^x must be real"):
        MVN(loc, spread).log_prob(z)
    with pytest.raises(TypeError, match=r"^loc must be real"):
        MVN(z, spread)
    with pytest.raises(TypeError, match=r"^scale must be real"):
        MVN(loc, z)


@pytest.mark.parametrize(("cls", "backend"), CLASS_PARAMS)
@pytest.mark.parametrize("spread_kind", SPREADS)
def test_a_missing_parameter_is_named(cls, backend, spread_kind):
    (good,) = _arrays(backend, np.ones(2))
    with pytest.raises(TypeError, match=rf"^{spread_kind} is required; got None"):
        _build(cls, spread_kind, good, None)
    with pytest.raises(TypeError, match=r"^loc is required; got None"):
        _build(cls, spread_kind, None, good)


# -- shapes, dims and sizes that are not integers ---------------------------------------

BAD_SHAPES = st.one_of(
    st.floats(allow_nan=False).filter(lambda v: v != int(v) if math.isfinite(v) else True),
    st.text(min_size=1, max_size=3),
    st.tuples(st.floats(0.5, 3.5).filter(lambda v: v != int(v))),
    st.tuples(st.integers(1, 3), st.text(min_size=1, max_size=2)),
    st.just(True),
    st.just((None,)),
)


def _samplers():
    out = [
        pytest.param(cls, backend, method, id=f"{i}-{method}")
        for i, cls, backend in CLASSES
        for method in ("sample", "rsample", "sample_and_log_prob")
    ]
    return out


@pytest.mark.parametrize(("cls", "backend", "method"), _samplers())
@given(shape=BAD_SHAPES)
@FEW
def test_a_sample_shape_that_is_not_ints_is_a_type_error(cls, backend, method, shape):
    loc, spread = _arrays(backend, np.zeros(2), np.ones(2))
    d = cls(loc, spread)
    fn = getattr(d, method, None)
    if fn is None:
        return
    with pytest.raises(TypeError, match="sample_shape"):
        _draw(fn, backend, cls, shape)


@pytest.mark.parametrize(("cls", "backend", "method"), _samplers())
@given(shape=st.lists(st.integers(-5, 3), min_size=1, max_size=3).filter(lambda s: min(s) < 0))
@FEW
def test_a_negative_sample_shape_is_a_value_error(cls, backend, method, shape):
    loc, spread = _arrays(backend, np.zeros(2), np.ones(2))
    fn = getattr(cls(loc, spread), method, None)
    if fn is None:
        return
    with pytest.raises(ValueError, match="sample_shape must not be negative"):
        _draw(fn, backend, cls, tuple(shape))


def _draw(fn, backend, cls, shape):
    if getattr(cls, "__module__", "").endswith("_numpyro"):
        import jax

        return fn(jax.random.key(0), shape)
    if cls is MVN:
        return fn(shape, seed=0)
    return fn(shape)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dims", [True, "0", 1.5, [0, 1.5], [True], None])
def test_marginal_dims_that_are_not_ints_is_a_type_error(backend, dims):
    loc, spread = _arrays(backend, np.zeros(3), np.ones(3))
    with pytest.raises(TypeError, match=r"^dims must be"):
        MVN(loc, spread).marginal(dims)


@pytest.mark.parametrize("fn", ["pairwise_log_prob", "pairwise_mahalanobis"])
@pytest.mark.parametrize("chunk_size", [1.5, "a", True, [2]])
def test_chunk_size_that_is_not_an_int_is_a_type_error(fn, chunk_size):
    x, loc, scale = np.zeros((4, 2)), np.zeros((3, 2)), np.ones((3, 2))
    args = (x, loc, scale) if fn == "pairwise_log_prob" else (x, MVN(loc, scale))
    with pytest.raises(TypeError, match=r"^chunk_size must be"):
        getattr(dg, fn)(*args, chunk_size=chunk_size)


# -- seeds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "seed"),
    [("numpy", -1), ("numpy", -(2**70)), ("torch", 2**70), ("torch", -(2**70)), ("jax", 2**70)],
)
def test_a_seed_out_of_range_is_a_seed_error(backend, seed):
    pytest.importorskip(backend)
    loc, spread = _arrays(backend, np.zeros(2), np.ones(2))
    with pytest.raises(SeedError, match="seed"):
        MVN(loc, spread).sample(2, seed=seed)


# -- devices and batches -----------------------------------------------------------------


def test_parameters_on_two_devices_are_refused_naming_both():
    torch = pytest.importorskip("torch")
    from diaggauss.backends.torch import MultivariateNormalDiag as TorchMVN

    meta, cpu = torch.zeros(2, device="meta"), torch.ones(2)
    for cls in (MVN, TorchMVN):
        with pytest.raises(ValueError, match="loc is on device meta but scale is on device cpu"):
            cls(meta, cpu)


def _mixture_classes():
    out = [pytest.param(dg.MixtureDiag, "numpy", id="neutral")]
    try:
        from diaggauss.backends.torch import MixtureDiag as TorchMixture

        out.append(pytest.param(TorchMixture, "torch", id="torch-class"))
    except ImportError:
        pass
    return out


@pytest.mark.parametrize(("cls", "backend"), _mixture_classes())
@pytest.mark.parametrize("target", [(4,), (2, 4), (3, 2)])
def test_mixture_expand_to_an_incompatible_shape_is_a_named_value_error(cls, backend, target):
    logits, loc, scale = _arrays(
        backend, np.zeros((3, 2)), np.zeros((3, 2, 2)), np.ones((3, 2, 2))
    )
    m = cls(logits, loc, scale)
    with pytest.raises(ValueError, match=r"cannot expand batch_shape=\(3,\) to"):
        m.expand(target)


def test_torch_class_errors_are_ours_not_torch_internals():
    torch = pytest.importorskip("torch")
    from diaggauss.backends.torch import MultivariateNormalDiag as TorchMVN

    p, q = TorchMVN(torch.zeros(3, 2), torch.ones(2)), TorchMVN(torch.zeros(4, 2), torch.ones(2))
    with pytest.raises(ValueError, match="do not broadcast"):
        torch.distributions.kl_divergence(p, q)
    with pytest.raises(ValueError, match="do not broadcast"):
        p.kl_divergence(q)
    with pytest.raises(ValueError, match=r"cannot expand batch_shape=torch.Size\(\[3\]\)"):
        p.expand((4,))


# -- valid input, no NaN: a point far from every component ------------------------------


def _mp_responsibilities(x, logits, loc, scale):
    """Exact responsibilities with mpmath, from the float parameters as given."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 900  # the squares of 1e200 keep their O(1) differences
    rows = []
    for point in np.asarray(x, dtype=np.float64):
        joint = []
        for lw, m, s in zip(logits, loc, scale, strict=True):
            if lw == -np.inf:
                joint.append(mpmath.mpf("-inf"))
                continue
            q = sum(
                ((mpmath.mpf(p) - mpmath.mpf(mu)) / mpmath.mpf(sd)) ** 2
                for p, mu, sd in zip(point, m, s, strict=True)
            )
            joint.append(mpmath.mpf(lw) - sum(mpmath.log(mpmath.mpf(sd)) for sd in s) - q / 2)
        top = max(joint)
        e = [mpmath.exp(j - top) for j in joint]
        rows.append([float(v / sum(e)) for v in e])
    return np.array(rows)


FAR_CASES = {
    # (logits, loc, scale, points): equal scales, different scales, a switched-off component
    "equal-scales": (
        [0.0, 0.0],
        [[0.0, 0.0], [1.0, 1.0]],
        [[1.0, 1.0], [1.0, 1.0]],
        lambda big: [[big, big], [-big, -big], [big, -big], [0.3, 0.3]],
    ),
    "one-axis-ties": (
        np.log([0.25, 0.75]).tolist(),
        [[-1.0], [1.0]],
        [[1.0], [1.0]],
        lambda big: [[big], [-big], [0.0]],
    ),
    "scales-differ": (
        np.log([0.25, 0.75]).tolist(),
        [[0.0, 0.0], [0.0, 0.0]],
        [[1.0, 1.0], [2.0, 2.0]],
        lambda big: [[big, big], [0.0, 1.0]],
    ),
    "same-component-twice": (
        np.log([0.25, 0.75]).tolist(),
        [[1.0], [1.0]],
        [[1.0], [1.0]],
        lambda big: [[big], [-big]],
    ),
    "switched-off": (
        [0.0, -np.inf, 0.0],
        [[0.0], [5.0], [10.0]],
        [[1.0], [1.0], [3.0]],
        lambda big: [[big], [-big], [4.0]],
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(FAR_CASES))
def test_responsibilities_of_a_point_far_from_every_component(backend, dtype, case):
    logits, loc, scale, points = FAR_CASES[case]
    big = 1e200 if dtype == "float64" else 1e20
    x = np.array(points(big), dtype=np.float64)
    args = _arrays(backend, logits, loc, scale, x, dtype=dtype)
    m = dg.MixtureDiag(*args[:3])
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # the -inf densities
        got = to_numpy(m.responsibilities(args[3])).astype(np.float64)
    want = _mp_responsibilities(np.asarray(x, dtype=dtype), logits, loc, scale)
    assert not np.isnan(got).any(), got
    np.testing.assert_allclose(got, want, atol=1e-6 if dtype == "float32" else 1e-12)


def test_responsibilities_of_far_points_under_jit():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    f32 = jnp.float32
    m = dg.MixtureDiag(
        jnp.zeros(2, f32), jnp.array([[0.0, 0.0], [1.0, 1.0]], f32), jnp.ones((2, 2), f32)
    )
    x = jnp.array([[1e20, 1e20], [-1e20, -1e20], [0.3, 0.3]], dtype=f32)
    got = np.asarray(jax.jit(m.responsibilities)(x))
    want = _mp_responsibilities(
        np.asarray(x), [0.0, 0.0], [[0.0, 0.0], [1.0, 1.0]], [[1.0] * 2] * 2
    )
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_responsibilities_sum_to_one_at_huge_finite_log_densities(backend):
    """log_softmax of rows near -1e40 (float64, x = 1e20): each row sums to 1, not K."""
    logits, loc, scale, x = _arrays(
        backend, np.zeros(3), np.zeros((3, 2)), np.ones((3, 2)), [[1e20, 1e20], [0.0, 1.0]]
    )
    got = to_numpy(dg.MixtureDiag(logits, loc, scale).responsibilities(x))
    np.testing.assert_allclose(got, np.full((2, 3), 1 / 3), rtol=1e-12)


def test_responsibilities_of_nan_stay_nan():
    """NaN in, NaN out: the far-point rule applies to finite points only."""
    m = dg.MixtureDiag(np.zeros(2), np.array([[0.0], [1.0]]), np.ones((2, 1)))
    assert np.isnan(m.responsibilities(np.array([[np.nan]]))).all()


# -- empty input, empty output -----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [(), (3,)], ids=["unbatched", "batched"])
def test_zero_points_give_empty_results_of_the_right_shape(backend, batch):
    k, d = 2, 2
    logits, loc, scale = _arrays(
        backend, np.zeros((*batch, k)), np.zeros((*batch, k, d)), np.ones((*batch, k, d))
    )
    (x,) = _arrays(backend, np.zeros((0, *batch, d)))
    m = dg.MixtureDiag(logits, loc, scale)
    for method, tail in [
        ("log_prob", ()),
        ("cdf", ()),
        ("log_cdf", ()),
        ("responsibilities", (k,)),
        ("component_log_prob", (k,)),
    ]:
        assert tuple(getattr(m, method)(x).shape) == (0, *batch, *tail), method
    comp = MVN(loc[..., 0, :], scale[..., 0, :])
    for method in POINT_METHODS:
        assert tuple(getattr(comp, method)(x).shape) == (0, *batch), method


def test_a_traced_sample_shape_says_to_mark_it_static():
    """Under jax.jit a size passed as an argument is a tracer: the message says what to do."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    d = MVN(jnp.zeros(2), jnp.ones(2))
    key = jax.random.key(0)
    for shape_of in (lambda n: n, lambda n: (n, 2)):
        with pytest.raises(TypeError) as info:
            jax.jit(lambda n, f=shape_of: d.sample(f(n), seed=key))(3)
        message = str(info.value)
        assert message.startswith("sample_shape must be an int or a tuple of ints known where")
        assert "traced" in message
        assert "static_argnums" in message
        assert "static_argnames" in message
    static = jax.jit(lambda n: d.sample(n, seed=key), static_argnums=0)
    assert static(3).shape == (3, 2)
    # a concrete 0-d integer array is one size; a float keeps the plain message
    assert d.sample(np.array(3), seed=key).shape == (3, 2)
    with pytest.raises(TypeError, match=r"tuple of ints; got array\(2\.\)$"):
        d.sample(np.array(2.0), seed=key)
