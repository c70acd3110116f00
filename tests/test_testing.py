"""``dg.testing.assert_close`` and ``dg.convert``: checking a model ported across libraries."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import diaggauss as dg

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

RNG = np.random.default_rng(11)
LOC = RNG.normal(size=(5, 2))
SCALE = RNG.uniform(0.5, 2.0, size=(5, 2))


def _peers():
    """The same Gaussian in every form diaggauss reads (float64)."""
    from torch.distributions import Independent, MultivariateNormal, Normal

    from diaggauss.backends.jax import NumpyroMultivariateNormalDiag
    from diaggauss.backends.torch import MultivariateNormalDiag as TorchMVND

    t_loc, t_scale = torch.tensor(LOC), torch.tensor(SCALE)
    j_loc, j_scale = jnp.asarray(LOC), jnp.asarray(SCALE)
    peers = {
        "numpy": dg.MultivariateNormalDiag(LOC, SCALE),
        "torch class": TorchMVND.from_log_scale(t_loc, t_scale.log()),
        "torch Independent(Normal)": Independent(Normal(t_loc, t_scale), 1),
        "torch MultivariateNormal": MultivariateNormal(
            t_loc, scale_tril=torch.diag_embed(t_scale)
        ),
        "jax": dg.MultivariateNormalDiag.from_variance(j_loc, j_scale**2),
        "numpyro class": NumpyroMultivariateNormalDiag(j_loc, j_scale),
    }
    for name, module in (("numpyro", "numpyro.distributions"), ("distrax", "distrax")):
        try:
            lib = __import__(module, fromlist=["_"])
        except ImportError:
            continue
        if name == "numpyro":
            peers["numpyro Normal.to_event"] = lib.Normal(j_loc, j_scale).to_event(1)
        else:
            peers["distrax"] = lib.MultivariateNormalDiag(j_loc, j_scale)
    try:
        from tensorflow_probability.substrates.jax import distributions as tfd

        peers["TFP"] = tfd.MultivariateNormalDiag(j_loc, j_scale)
    except ImportError:
        pass
    return peers


@pytest.mark.parametrize("name", list(_peers()))
def test_the_same_gaussian_is_close_in_every_form(name):
    ref = dg.MultivariateNormalDiag(LOC, SCALE)
    other = _peers()[name]
    dg.testing.assert_close(ref, other)
    dg.testing.assert_close(other, ref)


def test_differences_are_reported_like_numpy_testing():
    ref = dg.MultivariateNormalDiag(LOC, SCALE)
    moved = LOC.copy()
    moved[3, 1] += 1e-3
    with pytest.raises(AssertionError) as info:
        dg.testing.assert_close(ref, dg.MultivariateNormalDiag(moved, SCALE))
    message = str(info.value)
    assert message.startswith(
        "distributions differ in loc: 1 of 10 values, the worst at index (3, 1)"
    )
    assert f"p: {float(LOC[3, 1])!r}" in message
    assert f"q: {float(moved[3, 1])!r}" in message
    assert "rtol=1e-10" in message
    with pytest.raises(AssertionError, match=r"differ in shape: p has batch_shape=\(5,\)"):
        dg.testing.assert_close(ref, dg.MultivariateNormalDiag(LOC[:4], SCALE[:4]))
    wider = dg.MultivariateNormalDiag(LOC, SCALE * (1 + 1e-6))
    with pytest.raises(AssertionError, match="differ in scale"):
        dg.testing.assert_close(ref, wider)
    with pytest.raises(AssertionError, match="differ in log_prob"):
        dg.testing.assert_close(ref, wider, methods=("loc", "log_prob"))
    # reparameterized draws near zero have no relative precision, hence the atol
    dg.testing.assert_close(ref, wider, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="methods must be among"):
        dg.testing.assert_close(ref, ref, methods=("nonsense",))


def test_tolerance_follows_the_coarser_dtype():
    ref = dg.MultivariateNormalDiag(LOC, SCALE)
    f32 = dg.MultivariateNormalDiag(
        torch.tensor(LOC, dtype=torch.float32), torch.tensor(SCALE, dtype=torch.float32)
    )
    dg.testing.assert_close(ref, f32)  # float32 rounding passes at float32's tolerance
    with pytest.raises(AssertionError):
        dg.testing.assert_close(ref, f32, rtol=1e-12, atol=0)


def test_convert_moves_a_distribution_between_libraries_and_back():
    from diaggauss.backends.torch import MixtureDiag, MultivariateNormalDiag

    t = MultivariateNormalDiag(torch.tensor(LOC), torch.tensor(SCALE))
    j = dg.convert(t, jnp)
    assert isinstance(j.loc, jax.Array)
    dg.testing.assert_close(j, t)
    back = dg.convert(j, torch.zeros(1))
    assert isinstance(back, MultivariateNormalDiag)
    dg.testing.assert_close(back, t)
    n = dg.convert(t, np.zeros(1))
    assert isinstance(n.loc, np.ndarray)
    # zero-copy where DLPack shares memory: the NumPy array and the tensor are one buffer
    shared = dg.convert(dg.MultivariateNormalDiag(LOC.copy(), SCALE.copy()), torch)
    assert shared.loc.dtype == torch.float64
    m = dg.convert(
        MixtureDiag(torch.zeros(2), torch.tensor(LOC[:2]), torch.tensor(SCALE[:2])), jnp
    )
    assert isinstance(m, dg.MixtureDiag)
    assert isinstance(m.logits, jax.Array)
    assert isinstance(dg.convert(m, torch), MixtureDiag)
    pickle.loads(pickle.dumps(n))


def test_convert_takes_every_form():
    for name, other in _peers().items():
        got = dg.convert(other, np.zeros(1))
        assert isinstance(got.loc, np.ndarray), name
        dg.testing.assert_close(got, dg.MultivariateNormalDiag(LOC, SCALE))


@pytest.mark.parametrize("side", ["p", "q"])
def test_a_plain_normal_says_to_wrap_it_in_independent(side):
    """assert_close takes no event_dims: the message names the argument and the way out."""
    from torch.distributions import Independent, Normal

    ours = dg.MultivariateNormalDiag(LOC, SCALE)
    plain = Normal(torch.tensor(LOC), torch.tensor(SCALE))
    args = (plain, ours) if side == "p" else (ours, plain)
    with pytest.raises(ValueError) as info:
        dg.testing.assert_close(*args)
    message = str(info.value)
    assert message.startswith(f"{side} must be a distribution with an event axis")
    assert "Normal with batch_shape=(5, 2) and event_shape=()" in message
    assert f"Independent({side}, 1)" in message
    assert "assert_close takes no event_dims" in message
    dg.testing.assert_close(ours, Independent(plain, 1))  # as the message says
    with pytest.raises(ValueError, match="like must be a distribution with an event axis"):
        dg.convert(ours, plain)
