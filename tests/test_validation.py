"""Bad input: a clear exception naming the argument, what it got and what it expected."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import asarray

import diaggauss as dg

MVN = dg.MultivariateNormalDiag


@pytest.fixture
def xpc(xp, backend):
    """Backends with concrete values; Dask is lazy and has its own test below."""
    if str(backend) == "dask":
        pytest.skip("Dask arrays are lazy: value checks would compute the graph")
    return xp


def test_dask_skips_value_checks_but_not_shapes():
    da = pytest.importorskip("dask.array")
    d = MVN(da.zeros(2), da.asarray(np.array([-1.0, 1.0])))
    assert d.batch_shape == ()
    with pytest.raises(ValueError, match="do not broadcast"):
        MVN(da.zeros((5, 2)), da.ones((3, 2)))
    with pytest.raises(ValueError, match="event size d=2"):
        d.log_prob(da.zeros(3))


def _bad(value, shape=(3, 2), at=(1, 0)):
    a = np.ones(shape)
    a[at] = value
    return a


@pytest.mark.parametrize(
    ("ctor", "name", "value", "expected"),
    [
        (MVN, "scale", -1.0, "positive and finite"),
        (MVN, "scale", 0.0, "positive and finite"),
        (MVN, "scale", math.nan, "positive and finite"),
        (MVN, "scale", math.inf, "positive and finite"),
        (MVN.from_variance, "variance", -2.0, "positive and finite"),
        (MVN.from_variance, "variance", 0.0, "positive and finite"),
        (MVN.from_variance, "variance", math.inf, "positive and finite"),
        (MVN.from_precision, "precision", 0.0, "positive and finite"),
        (MVN.from_precision, "precision", math.nan, "positive and finite"),
        (MVN.from_log_scale, "log_scale", math.inf, "finite"),
        (MVN.from_log_scale, "log_scale", -math.inf, "finite"),
        (MVN.from_log_scale, "log_scale", math.nan, "finite"),
    ],
)
def test_bad_spread(xpc, ctor, name, value, expected):
    loc = asarray(xpc, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=f"{name} must be {expected}") as info:
        ctor(loc, asarray(xpc, _bad(value)))
    message = str(info.value)
    assert "index (1, 0)" in message
    assert "shape (3, 2)" in message
    assert repr(value) in message or str(value) in message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_bad_loc(xpc, value):
    with pytest.raises(ValueError, match="loc must be finite") as info:
        MVN(asarray(xpc, _bad(value)), asarray(xpc, np.ones((3, 2))))
    assert "index (1, 0)" in str(info.value)


def test_huge_finite_values_are_valid(xpc):
    # their sums overflow: validation must not read that as a non-finite value
    big = np.full((3, 2), 1e308)
    d = MVN(asarray(xpc, big), asarray(xpc, big))
    assert d.batch_shape == (3,)
    assert MVN.from_log_scale(asarray(xpc, -big), asarray(xpc, big)).batch_shape == (3,)
    with pytest.raises(ValueError, match="scale must be positive and finite"):
        MVN(asarray(xpc, big), asarray(xpc, _bad(-1e308)))


def test_validation_can_be_turned_off(xpc):
    d = MVN(asarray(xpc, np.zeros(2)), asarray(xpc, np.array([-1.0, 1.0])), validate_args=False)
    assert d.validate_args is False
    dg.set_default_validate_args(False)
    try:
        d = MVN(asarray(xpc, np.zeros(2)), asarray(xpc, np.array([-1.0, 1.0])))
        assert d.validate_args is False
    finally:
        dg.set_default_validate_args(True)
    with pytest.raises(ValueError, match="scale"):
        MVN(asarray(xpc, np.zeros(2)), asarray(xpc, np.array([-1.0, 1.0])))


def test_set_default_validate_args_needs_a_bool():
    with pytest.raises(TypeError, match="True or False"):
        dg.set_default_validate_args("yes")


def test_zero_dimensional_loc(xp):
    with pytest.raises(ValueError, match="loc must have at least one dimension"):
        MVN(asarray(xp, np.float64(0.0)), asarray(xp, np.ones(2)))
    with pytest.raises(ValueError, match="loc must have at least one dimension"):
        MVN(asarray(xp, np.float64(0.0)), 1.0)


def test_shapes_that_do_not_broadcast(xp):
    with pytest.raises(ValueError, match=r"loc of shape \(5, 2\) and scale of shape \(3, 2\)"):
        MVN(asarray(xp, np.zeros((5, 2))), asarray(xp, np.ones((3, 2))))
    with pytest.raises(ValueError, match=r"log_scale of shape \(3,\)"):
        MVN.from_log_scale(asarray(xp, np.zeros(2)), asarray(xp, np.ones(3)))


def test_value_with_wrong_event_size(xp):
    d = MVN(asarray(xp, np.zeros((5, 2))), asarray(xp, np.ones(2)))
    with pytest.raises(ValueError, match=r"event size d=2 .* got shape \(5, 3\)"):
        d.log_prob(asarray(xp, np.zeros((5, 3))))
    with pytest.raises(ValueError, match=r"event size d=2 .* got shape \(\)"):
        d.log_prob(asarray(xp, np.float64(0.0)))
    for method in ("prob", "cdf", "log_cdf", "mahalanobis", "reparameterize"):
        with pytest.raises(ValueError, match="event size d=2"):
            getattr(d, method)(asarray(xp, np.zeros(3)))


def test_value_that_does_not_broadcast_with_batch(xp):
    d = MVN(asarray(xp, np.zeros((5, 2))), asarray(xp, np.ones(2)))
    with pytest.raises(
        ValueError, match=r"x of shape \(3, 2\) does not broadcast with batch_shape=\(5,\)"
    ):
        d.log_prob(asarray(xp, np.zeros((3, 2))))


def test_mixed_libraries_name_both():
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(TypeError, match=r"loc is a torch array .* scale is a jax array"):
        MVN(torch.zeros(2), jnp.ones(2))
    d = MVN(torch.zeros(2), torch.ones(2))
    with pytest.raises(TypeError, match=r"loc is a torch array .* x is a jax array"):
        d.log_prob(jnp.zeros(2))
    with pytest.raises(TypeError, match=r"torch array .* jax array"):
        d.kl_divergence(MVN(jnp.zeros(2), jnp.ones(2)))


def test_numpy_data_adopts_the_other_library():
    """NumPy arrays and Python numbers are not another library: they convert (design.md)."""
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    d = MVN(np.zeros(2), torch.ones(2, dtype=torch.float32))
    assert isinstance(d.loc, torch.Tensor)
    assert d.loc.dtype == torch.float32
    lp = MVN(torch.zeros(2), torch.ones(2)).log_prob(np.zeros(2))
    assert isinstance(lp, torch.Tensor)
    assert lp.dtype == torch.float32
    np.testing.assert_allclose(lp.numpy(), -np.log(2 * np.pi), rtol=1e-6)
    j = MVN(jnp.zeros(2), np.ones(2))
    assert "jax" in type(j.scale).__module__
    np.testing.assert_allclose(j.log_prob(np.zeros(2)), -np.log(2 * np.pi), rtol=1e-6)
    # and a distribution of NumPy arrays meets another library's: it computes in that one
    n = MVN(np.zeros(2), np.ones(2))
    for other, lib in ((torch.ones(2), torch.Tensor), (jnp.ones(2), type(jnp.ones(2)))):
        assert isinstance(n.log_prob(other), lib)
        assert isinstance(n.mahalanobis(other), lib)
        assert isinstance(n.reparameterize(other), lib)
        assert isinstance(n.cdf(other), lib)
    t = MVN(torch.ones(2), torch.ones(2))
    for kl in (n.kl_divergence(t), t.kl_divergence(n), n.wasserstein2(t), t.cross_entropy(n)):
        assert isinstance(kl, torch.Tensor)
    # the torch distribution's float32 wins over NumPy's float64, as for values
    torch.testing.assert_close(n.kl_divergence(t), torch.tensor(1.0, dtype=torch.float32))
    x = torch.zeros(4, 2)
    assert isinstance(dg.pairwise_log_prob(x, np.zeros((3, 2)), np.ones((3, 2))), torch.Tensor)
    assert isinstance(dg.pairwise_log_prob(x, MVN(np.zeros((3, 2)), 1.0)), torch.Tensor)
    m = dg.MixtureDiag(torch.zeros(2), np.zeros((2, 2)), np.ones(2))
    assert isinstance(m.log_prob(np.zeros(2)), torch.Tensor)
    assert isinstance(dg.MixtureDiag(np.zeros(2), np.zeros((2, 2)), 1.0).log_prob(x), torch.Tensor)
    assert isinstance(dg.fit(x + torch.arange(4.0)[:, None], weights=np.ones(4)).loc, torch.Tensor)


def test_not_an_array():
    with pytest.raises(TypeError, match="scale must be an array"):
        MVN(np.zeros(2), "one")


def test_complex_refused():
    with pytest.raises(TypeError, match="loc must be real"):
        MVN(np.zeros(2, dtype=complex), np.ones(2))


def test_kl_with_other_types_and_sizes(xp):
    p = MVN(asarray(xp, np.zeros(2)), asarray(xp, np.ones(2)))
    with pytest.raises(TypeError, match="another MultivariateNormalDiag"):
        p.kl_divergence("q")
    q = MVN(asarray(xp, np.zeros(3)), asarray(xp, np.ones(3)))
    with pytest.raises(ValueError, match="event sizes differ"):
        p.kl_divergence(q)
    r = MVN(asarray(xp, np.zeros((4, 2))), asarray(xp, np.ones(2)))
    s = MVN(asarray(xp, np.zeros((3, 2))), asarray(xp, np.ones(2)))
    with pytest.raises(ValueError, match="do not broadcast"):
        r.wasserstein2(s)


def test_bad_sample_shape(xp):
    d = MVN(asarray(xp, np.zeros(2)), asarray(xp, np.ones(2)))
    with pytest.raises(TypeError, match="sample_shape"):
        d.sample("3", seed=0)


def test_functional_kernels_validate(xpc):
    with pytest.raises(ValueError, match="scale must be positive"):
        dg.log_prob(
            asarray(xpc, np.zeros(2)),
            asarray(xpc, np.zeros(2)),
            asarray(xpc, np.array([1.0, 0.0])),
        )
    with pytest.raises(ValueError, match="scale must be positive"):
        dg.entropy(asarray(xpc, np.array([1.0, -1.0])))
    with pytest.raises(ValueError, match="at least one dimension"):
        dg.entropy(asarray(xpc, np.float64(1.0)))


def test_only_one_host_sync_when_valid():
    """Validation reads the device once: count the host reads of array-api-strict arrays."""
    xps = pytest.importorskip("array_api_strict")
    array = type(xps.zeros(1))
    reads = []
    real = array.__bool__

    def counting(self):
        reads.append(1)
        return real(self)

    MVN(xps.zeros((4, 3)), xps.ones((4, 3)))  # the library's laziness is probed once
    array.__bool__ = counting
    try:
        MVN(xps.zeros((4, 3)), xps.ones((4, 3)))
        MVN.from_log_scale(xps.zeros((4, 3)), xps.zeros(3))
    finally:
        array.__bool__ = real
    assert len(reads) == 2
