"""diaggauss.backends.torch.MultivariateNormalDiag: a first-class torch Distribution.

Oracles: float64 closed forms (NumPy/SciPy, dense matrices for the KL pairs)
and torch's own Independent(Normal) and MultivariateNormal.
"""

from __future__ import annotations

import copy
import pickle
import textwrap

import numpy as np
import pytest
from helpers import run_python

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")
from torch.distributions import (  # noqa: E402
    Distribution,
    Independent,
    LowRankMultivariateNormal,
    MultivariateNormal,
    Normal,
    constraints,
    kl_divergence,
)

import diaggauss as dg  # noqa: E402
from diaggauss.backends.torch import MultivariateNormalDiag as MVND  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _validation_on():
    before = Distribution._validate_args
    Distribution.set_default_validate_args(True)
    yield
    Distribution.set_default_validate_args(before)


def t64(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def t32(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


@pytest.fixture
def params():
    rng = np.random.default_rng(7)
    return rng.normal(size=(5, 3)), rng.uniform(0.3, 2.0, size=(5, 3)), rng


# -- the forum examples ----------------------------------------------------------


def test_forum_batch_of_five_from_log_sigma():
    rng = np.random.default_rng(0)
    mu, log_sig = t64(rng.normal(size=(5, 2))), t64(rng.normal(size=(5, 2)) * 0.3)
    d = MVND.from_log_scale(mu, log_sig)
    assert d.batch_shape == torch.Size([5])
    assert d.event_shape == torch.Size([2])
    oracle = Independent(Normal(mu, log_sig.exp()), 1)
    x = t64(rng.normal(size=(4, 5, 2)))
    torch.testing.assert_close(d.log_prob(x), oracle.log_prob(x), rtol=1e-12, atol=0)
    torch.testing.assert_close(d.entropy(), oracle.entropy(), rtol=1e-12, atol=0)


def test_forum_shared_diagonal_scale():
    """(n=2, d=5) with one diagonal scale for both rows: Normal(...).log_prob(x).sum(1)."""
    rng = np.random.default_rng(1)
    mu = t64(rng.normal(size=(2, 5)))
    diagonal = t64(rng.uniform(0.5, 2, size=5))
    x = t64(rng.normal(size=(2, 5)))
    d = MVND(mu, diagonal)
    assert d.batch_shape == torch.Size([2])
    torch.testing.assert_close(
        d.log_prob(x), Normal(mu, diagonal).log_prob(x).sum(1), rtol=1e-12, atol=0
    )
    mvn = MultivariateNormal(mu, covariance_matrix=torch.diag(diagonal**2))
    torch.testing.assert_close(d.log_prob(x), mvn.log_prob(x), rtol=1e-12, atol=0)


# -- the Distribution contract -----------------------------------------------------


def test_is_a_distribution_with_constraints():
    d = MVND(torch.zeros(3), torch.ones(3))
    assert isinstance(d, Distribution)
    assert isinstance(d, dg.MultivariateNormalDiag)  # the neutral class does the work
    assert Distribution in type(d).__mro__
    assert d.support is constraints.real_vector
    assert d.has_rsample
    # every parameter the constructors accept, as MultivariateNormal lists all of its own
    assert set(MVND.arg_constraints) == {"loc", "scale", "log_scale", "variance", "precision"}
    for dist in (d, MVND.from_log_scale(torch.zeros(3), torch.zeros(3))):
        for name, constraint in dist.arg_constraints.items():
            assert bool(constraint.check(getattr(dist, name)).all())


@pytest.mark.parametrize("kind", ["scale", "log_scale", "variance", "precision"])
def test_members_against_oracles(params, kind):
    loc, scale, rng = params
    given = {
        "scale": scale,
        "log_scale": np.log(scale),
        "variance": scale**2,
        "precision": 1 / scale**2,
    }[kind]
    ctor = MVND if kind == "scale" else getattr(MVND, f"from_{kind}")
    d = ctor(t64(loc), t64(given))
    assert d.parameterization == kind
    x = rng.normal(size=(2, 5, 3))
    ind = Independent(Normal(t64(loc), t64(scale)), 1)
    mvn = MultivariateNormal(t64(loc), scale_tril=torch.diag_embed(t64(scale)))
    close = {"rtol": 1e-12, "atol": 1e-14}
    torch.testing.assert_close(d.log_prob(t64(x)), ind.log_prob(t64(x)), **close)
    torch.testing.assert_close(d.log_prob(t64(x)), mvn.log_prob(t64(x)), **close)
    torch.testing.assert_close(d.entropy(), mvn.entropy(), **close)
    torch.testing.assert_close(d.mean, mvn.mean, **close)
    torch.testing.assert_close(d.mode, mvn.mode, **close)
    torch.testing.assert_close(d.variance, mvn.variance, **close)
    torch.testing.assert_close(d.stddev, mvn.stddev, **close)
    torch.testing.assert_close(d.covariance_matrix, mvn.covariance_matrix, **close)
    torch.testing.assert_close(d.precision_matrix, mvn.precision_matrix, **close)
    torch.testing.assert_close(d.scale_tril, mvn.scale_tril, **close)
    torch.testing.assert_close(d.loc, t64(loc), **close)
    torch.testing.assert_close(d.scale, t64(scale), **close)
    torch.testing.assert_close(d.log_scale, t64(np.log(scale)), **close)
    torch.testing.assert_close(d.precision, t64(1 / scale**2), **close)
    log_cdf = stats.norm.logcdf(x, loc, scale).sum(-1)
    torch.testing.assert_close(d.log_cdf(t64(x)), t64(log_cdf), **close)
    torch.testing.assert_close(d.cdf(t64(x)), t64(np.exp(log_cdf)), **close)
    maha = np.sqrt((((x - loc) / scale) ** 2).sum(-1))
    torch.testing.assert_close(d.mahalanobis(t64(x)), t64(maha), **close)


def test_log_cdf_far_tail():
    from scipy.special import log_ndtr

    d = MVND(t64([1.0]), t64([2.0]))
    got = d.log_cdf(t64([1.0 - 80.0]))
    assert abs(float(got) - log_ndtr(-40.0)) <= 1e-10 * abs(log_ndtr(-40.0))


def test_broadcast_parameters_follow_torch_convention():
    d = MVND(torch.zeros(4, 3), torch.ones(3))
    assert d.batch_shape == torch.Size([4])
    assert d.scale.shape == torch.Size([4, 3])  # torch broadcasts parameters
    assert d.variance.shape == torch.Size([4, 3])
    assert d.entropy().shape == torch.Size([4])
    d = MVND(torch.zeros(3), 2.0)
    assert d.batch_shape == torch.Size([])
    torch.testing.assert_close(d.stddev, torch.full((3,), 2.0))


def test_sample_and_rsample_with_generator():
    d = MVND(torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0]))
    a = d.sample((3,), generator=torch.Generator().manual_seed(4))
    b = d.sample((3,), generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert a.shape == torch.Size([3, 2])
    assert torch.equal(d.rsample((2,), generator=5), d.rsample((2,), generator=5))
    torch.manual_seed(0)
    c = d.sample((2,))
    torch.manual_seed(0)
    assert torch.equal(c, d.sample((2,)))
    big = d.sample((50000,), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(big.mean(0), d.mean, atol=0.03, rtol=0)
    torch.testing.assert_close(big.std(0), d.stddev, rtol=0.02, atol=0)


def test_rsample_is_reparameterized():
    loc = torch.tensor([0.5, -0.5], dtype=torch.float64, requires_grad=True)
    log_scale = torch.tensor([0.1, -0.2], dtype=torch.float64, requires_grad=True)
    d = MVND.from_log_scale(loc, log_scale)
    x = d.rsample((7,), generator=torch.Generator().manual_seed(0))
    x.sum().backward()
    torch.testing.assert_close(loc.grad, torch.full((2,), 7.0, dtype=torch.float64))
    eps = (x.detach() - loc.detach()) / log_scale.detach().exp()
    torch.testing.assert_close(log_scale.grad, (eps * log_scale.detach().exp()).sum(0))
    assert not d.sample().requires_grad


def test_rsample_and_log_prob():
    d = MVND(t64([[0.0, 1.0], [2.0, 3.0]]), t64([0.5, 2.0]))
    x, lp = d.rsample_and_log_prob((3,), generator=0)
    assert x.shape == torch.Size([3, 2, 2])
    torch.testing.assert_close(lp, d.log_prob(x), rtol=1e-12, atol=0)


def test_expand_getitem_marginal():
    d = MVND.from_log_scale(torch.zeros(3), torch.zeros(3))
    e = d.expand(torch.Size([4, 2]))
    assert e.batch_shape == torch.Size([4, 2])
    assert e.parameterization == "log_scale"
    assert e.log_prob(torch.zeros(3)).shape == torch.Size([4, 2])
    assert e[1:3].batch_shape == torch.Size([2, 2])
    assert e[..., 0].batch_shape == torch.Size([4])
    with pytest.raises(IndexError, match="event axis"):
        e[0, 0, 0]
    m = MVND(torch.arange(4.0), torch.ones(4)).marginal([3, 1])
    torch.testing.assert_close(m.loc, torch.tensor([3.0, 1.0]))
    assert m.event_shape == torch.Size([2])


def test_pickle_and_deepcopy_keep_everything():
    loc = torch.randn(3, 2, requires_grad=True)
    d = MVND.from_variance(loc * 2, torch.ones(3, 2))  # non-leaf parameter
    d.log_prob(torch.zeros(2))  # fills the cache with tensors that carry history
    clone = pickle.loads(pickle.dumps(MVND.from_variance(torch.zeros(3, 2), torch.ones(3, 2))))
    assert clone.parameterization == "variance"
    assert clone.batch_shape == torch.Size([3])
    twin = copy.deepcopy(MVND(torch.zeros(2), torch.ones(2), validate_args=False))
    assert twin._validate_args is False
    torch.testing.assert_close(
        twin.log_prob(torch.zeros(2)), MVND(torch.zeros(2), torch.ones(2)).log_prob(torch.zeros(2))
    )
    again = pickle.loads(pickle.dumps(d))  # derived tensors with history are not pickled
    torch.testing.assert_close(again.log_prob(torch.zeros(2)), d.log_prob(torch.zeros(2)))


# -- validation ---------------------------------------------------------------------


def test_negative_scale_names_scale():
    mu, sigma = torch.zeros(5, 2), torch.ones(5, 2)
    with pytest.raises(
        ValueError, match=r"scale must be positive and finite; got -1\.0 at index \(0, 0\)"
    ):
        MVND(mu, -sigma)
    with pytest.raises(ValueError, match="loc must be finite"):
        MVND(torch.tensor([0.0, float("nan")]), torch.ones(2))
    with pytest.raises(ValueError, match="log_scale must be finite"):
        MVND.from_log_scale(torch.zeros(2), torch.tensor([0.0, float("inf")]))
    big = torch.ones(200, 3)
    big[150, 2] = 0.0
    with pytest.raises(ValueError, match=r"index \(150, 2\)"):  # the reduction path
        MVND(torch.zeros(200, 3), big)


def test_huge_but_valid_values_pass_the_fast_check():
    loc = torch.full((300,), 3e38)  # the fast check's sum overflows; the exact one decides
    MVND(loc, torch.ones(300))


def test_validate_args_default_follows_torch():
    Distribution.set_default_validate_args(False)
    d = MVND(torch.zeros(2), -torch.ones(2))
    assert d._validate_args is False
    Distribution.set_default_validate_args(True)
    with pytest.raises(ValueError, match="scale"):
        MVND(torch.zeros(2), -torch.ones(2))
    MVND(torch.zeros(2), -torch.ones(2), validate_args=False)


def test_value_shape_is_checked():
    d = MVND(torch.zeros(5, 2), torch.ones(2))
    with pytest.raises(ValueError, match="event size d=2"):
        d.log_prob(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="does not broadcast"):
        d.log_prob(torch.zeros(3, 2))
    torch.testing.assert_close(d.log_prob(np.zeros(2)), d.log_prob(torch.zeros(2)))
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(TypeError, match=r"torch array .* jax array"):
        d.log_prob(jnp.zeros(2))


# -- conversions ------------------------------------------------------------------------


def test_to_and_from_torch_distributions(params):
    loc, scale, rng = params
    d = MVND(t64(loc), t64(scale))
    x = t64(rng.normal(size=(5, 3)))
    ind = d.to_independent_normal()
    mvn = d.to_multivariate_normal()
    assert isinstance(ind, Independent)
    assert isinstance(mvn, MultivariateNormal)
    torch.testing.assert_close(ind.log_prob(x), d.log_prob(x), rtol=1e-12, atol=0)
    torch.testing.assert_close(mvn.log_prob(x), d.log_prob(x), rtol=1e-12, atol=0)
    for source in (
        ind,
        mvn,
        MultivariateNormal(t64(loc), covariance_matrix=torch.diag_embed(t64(scale**2))),
        MultivariateNormal(t64(loc), precision_matrix=torch.diag_embed(t64(scale**-2))),
        LowRankMultivariateNormal(
            t64(loc), torch.zeros(5, 3, 2, dtype=torch.float64), t64(scale**2)
        ),
    ):
        back = MVND.from_distribution(source)
        torch.testing.assert_close(back.log_prob(x), d.log_prob(x), rtol=1e-10, atol=0)
    normal = Normal(t64(loc), t64(scale))
    back = MVND.from_distribution(normal, event_dims=1)
    torch.testing.assert_close(back.log_prob(x), d.log_prob(x), rtol=1e-12, atol=0)
    flat = MVND.from_distribution(Normal(torch.zeros(4, 2, 3), torch.ones(4, 2, 3)), event_dims=2)
    assert flat.batch_shape == torch.Size([4])
    assert flat.event_shape == torch.Size([6])
    # a low-rank factor with orthogonal rows still has a diagonal covariance
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    low = LowRankMultivariateNormal(
        torch.zeros(3, dtype=torch.float64), w, torch.ones(3, dtype=torch.float64)
    )
    torch.testing.assert_close(MVND.from_distribution(low).variance, t64([2.0, 5.0, 1.0]))


def test_from_distribution_refuses_what_is_not_diagonal():
    full = MultivariateNormal(
        torch.zeros(2), covariance_matrix=torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    )
    with pytest.raises(ValueError, match=r"not diagonal: entry \(0, 1\) is 0\.5"):
        MVND.from_distribution(full)
    low = LowRankMultivariateNormal(torch.zeros(2), torch.ones(2, 1), torch.ones(2))
    with pytest.raises(ValueError, match="not diagonal"):
        MVND.from_distribution(low)
    with pytest.raises(ValueError, match="event_dims must be given"):
        MVND.from_distribution(Normal(torch.zeros(2), torch.ones(2)))
    with pytest.raises(TypeError, match="accepts Normal"):
        MVND.from_distribution(torch.distributions.Gamma(1.0, 1.0))


# -- KL divergences: every registered pair, both directions, against dense float64 ------


def _dense_kl(mp, sp, mq, sq):
    """KL(N(mp, Sp) || N(mq, Sq)) for dense float64 covariances, batched."""
    d = mp.shape[-1]
    sq_inv = np.linalg.inv(sq)
    dm = mq - mp
    tr = np.einsum("...ij,...ji->...", sq_inv, sp)
    maha = np.einsum("...i,...ij,...j->...", dm, sq_inv, dm)
    return 0.5 * (tr + maha - d + np.linalg.slogdet(sq)[1] - np.linalg.slogdet(sp)[1])


@pytest.fixture
def pair_params():
    rng = np.random.default_rng(3)
    b, d, r = 4, 3, 2
    return {
        "loc_p": rng.normal(size=(b, d)),
        "scale_p": rng.uniform(0.5, 2.0, size=(b, d)),
        "loc_q": rng.normal(size=(b, d)),
        "scale_q": rng.uniform(0.5, 2.0, size=(b, d)),
        "tril": np.tril(rng.normal(size=(b, d, d)), -1)
        + np.einsum("bi,ij->bij", rng.uniform(0.5, 2, size=(b, d)), np.eye(d)),
        "w": rng.normal(size=(b, d, r)),
        "diag": rng.uniform(0.5, 2.0, size=(b, d)),
    }


def _others(p):
    """Every non-diagonal-class partner, with its dense covariance."""
    cov_full = p["tril"] @ np.swapaxes(p["tril"], -1, -2)
    cov_low = p["w"] @ np.swapaxes(p["w"], -1, -2) + np.einsum("bi,ij->bij", p["diag"], np.eye(3))
    return {
        "diag": (
            MVND(t64(p["loc_q"]), t64(p["scale_q"])),
            np.einsum("bi,ij->bij", p["scale_q"] ** 2, np.eye(3)),
        ),
        "independent": (
            Independent(Normal(t64(p["loc_q"]), t64(p["scale_q"])), 1),
            np.einsum("bi,ij->bij", p["scale_q"] ** 2, np.eye(3)),
        ),
        "mvn": (MultivariateNormal(t64(p["loc_q"]), scale_tril=t64(p["tril"])), cov_full),
        "lowrank": (
            LowRankMultivariateNormal(t64(p["loc_q"]), t64(p["w"]), t64(p["diag"])),
            cov_low,
        ),
    }


@pytest.mark.parametrize("other", ["diag", "independent", "mvn", "lowrank"])
def test_kl_both_directions_exact(pair_params, other):
    p_ = pair_params
    ours = MVND.from_log_scale(t64(p_["loc_p"]), t64(np.log(p_["scale_p"])))
    cov_p = np.einsum("bi,ij->bij", p_["scale_p"] ** 2, np.eye(3))
    q, cov_q = _others(p_)[other]
    forward = _dense_kl(p_["loc_p"], cov_p, p_["loc_q"], cov_q)
    backward = _dense_kl(p_["loc_q"], cov_q, p_["loc_p"], cov_p)
    torch.testing.assert_close(kl_divergence(ours, q), t64(forward), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(kl_divergence(q, ours), t64(backward), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.kl_divergence(q), t64(forward), rtol=1e-10, atol=1e-12)
    entropy_p = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * cov_p)[1]
    torch.testing.assert_close(
        ours.cross_entropy(q), t64(forward + entropy_p), rtol=1e-10, atol=1e-12
    )


def test_kl_broadcasts_and_checks_event(pair_params):
    p = MVND(torch.zeros(4, 1, 3), torch.ones(3))
    q = MultivariateNormal(torch.zeros(2, 3), scale_tril=torch.eye(3).expand(2, 3, 3))
    assert kl_divergence(p, q).shape == torch.Size([4, 2])
    assert kl_divergence(q, p).shape == torch.Size([4, 2])
    with pytest.raises(ValueError, match="event shapes"):
        kl_divergence(MVND(torch.zeros(2), torch.ones(2)), MVND(torch.zeros(3), torch.ones(3)))
    with pytest.raises(NotImplementedError):
        kl_divergence(
            MVND(torch.zeros(2), torch.ones(2)),
            Independent(Normal(torch.zeros(2, 2), torch.ones(2, 2)), 2),
        )


def test_wasserstein2(pair_params):
    p_ = pair_params
    p = MVND(t64(p_["loc_p"]), t64(p_["scale_p"]))
    q = MVND(t64(p_["loc_q"]), t64(p_["scale_q"]))
    expected = np.sqrt(
        ((p_["loc_p"] - p_["loc_q"]) ** 2 + (p_["scale_p"] - p_["scale_q"]) ** 2).sum(-1)
    )
    torch.testing.assert_close(p.wasserstein2(q), t64(expected), rtol=1e-12, atol=0)


# -- autograd, vmap, compile ---------------------------------------------------------------


def test_gradcheck_log_prob_and_kl():
    rng = np.random.default_rng(5)
    loc = t64(rng.normal(size=(3, 2))).requires_grad_()
    scale = t64(rng.uniform(0.5, 2, size=(3, 2))).requires_grad_()
    x = t64(rng.normal(size=(3, 2))).requires_grad_()
    assert torch.autograd.gradcheck(lambda lo, s, v: MVND(lo, s).log_prob(v), (loc, scale, x))
    loc_q = t64(rng.normal(size=(3, 2))).requires_grad_()
    ls_q = t64(rng.normal(size=(3, 2)) * 0.3).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda lo, s, lq, lsq: kl_divergence(MVND(lo, s), MVND.from_log_scale(lq, lsq)),
        (loc, scale, loc_q, ls_q),
    )
    big_loc = t64(rng.normal(size=(300, 300))).requires_grad_()  # the large-array path
    big_x = t64(rng.normal(size=(300, 300)))
    assert torch.autograd.gradcheck(
        lambda lo: MVND(lo, torch.ones(300, dtype=torch.float64)).log_prob(big_x).sum(),
        (big_loc,),
        fast_mode=True,
    )


@pytest.mark.parametrize("ctor", ["scale", "log_scale"])
def test_first_and_later_log_prob_calls_agree(ctor):
    """The first call sums per-coordinate terms, later ones reuse the normalizer: same values
    and gradients, against the float64 closed form."""
    rng = np.random.default_rng(8)
    loc_, scale_, x_ = (
        rng.normal(size=(4, 3)),
        rng.uniform(0.3, 3, (4, 3)),
        rng.normal(size=(4, 3)),
    )
    expected = stats.norm.logpdf(x_, loc_, scale_).sum(-1)
    grad_loc = (x_ - loc_) / scale_**2
    grad_scale = -1 / scale_ + (x_ - loc_) ** 2 / scale_**3
    loc = t64(loc_).requires_grad_()
    param = t64(scale_ if ctor == "scale" else np.log(scale_)).requires_grad_()
    d = MVND(loc, param) if ctor == "scale" else MVND.from_log_scale(loc, param)
    for _ in range(3):
        out = d.log_prob(t64(x_))
        torch.testing.assert_close(out, t64(expected), rtol=1e-12, atol=1e-12)
        g_loc, g_param = torch.autograd.grad(out.sum(), (loc, param))
        torch.testing.assert_close(g_loc, t64(grad_loc), rtol=1e-10, atol=1e-12)
        chain = 1.0 if ctor == "scale" else scale_  # d/dlog s = s d/ds
        torch.testing.assert_close(g_param, t64(grad_scale * chain), rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        d32 = MVND(t32(loc_), t32(scale_))
        for _ in range(2):
            torch.testing.assert_close(
                d32.log_prob(t32(x_)).double(), t64(expected), rtol=2e-6, atol=2e-6
            )


def test_func_vmap_log_prob_and_rsample():
    d = MVND(torch.zeros(2), torch.tensor([1.0, 2.0]))
    xs = torch.randn(6, 2)
    out = torch.func.vmap(d.log_prob)(xs)
    torch.testing.assert_close(out, d.log_prob(xs))
    locs = torch.randn(4, 2)
    made = torch.func.vmap(lambda lo: MVND(lo, torch.ones(2)).log_prob(torch.zeros(2)))(locs)
    torch.testing.assert_close(made, MVND(locs, torch.ones(2)).log_prob(torch.zeros(2)))
    draws = torch.func.vmap(lambda _: d.rsample(), randomness="different")(torch.zeros(5))
    assert draws.shape == torch.Size([5, 2])
    assert not torch.equal(draws[0], draws[1])


@pytest.mark.slow
@pytest.mark.subprocess
def test_torch_compile_fullgraph_in_a_fresh_process():
    """Construct, log_prob, rsample, entropy and KL compile as one graph (fresh process:
    the first compile turns validation off process-wide)."""
    code = textwrap.dedent(
        """
        import torch
        from torch.distributions import kl_divergence
        from diaggauss.backends.torch import MultivariateNormalDiag as MVND
        torch.set_num_threads(1)
        p, q = MVND(torch.zeros(2), torch.ones(2)), MVND(torch.ones(2), torch.ones(2))
        kl_divergence(p, q)  # memoise torch's KL dispatch, which is not traceable the first time

        def step(loc, log_scale, x):
            d = MVND.from_log_scale(loc, log_scale)
            q = MVND(torch.zeros_like(loc), torch.ones_like(loc))
            total = d.log_prob(x) + d.entropy() + kl_divergence(d, q) + d.kl_divergence(q)
            return total, d.rsample()

        compiled = torch.compile(step, fullgraph=True)
        loc, log_scale, x = torch.randn(8, 4), torch.randn(8, 4) * 0.1, torch.randn(8, 4)
        got, sample = compiled(loc, log_scale, x)
        want, _ = step(loc, log_scale, x)
        torch.testing.assert_close(got, want)
        assert sample.shape == (8, 4)
        print("ok")
        """
    )
    assert run_python(code).strip().endswith("ok")


@pytest.mark.slow
@pytest.mark.subprocess
def test_torch_compile_before_any_eager_use_traces_cleanly():
    """The first use is compiled (forward and backward): no graph break, no Dynamo warning."""
    code = textwrap.dedent(
        """
        import warnings
        import torch
        from diaggauss.backends.torch import MultivariateNormalDiag as MVND
        torch.set_num_threads(1)

        def step(loc, log_scale, x):
            d = MVND.from_log_scale(loc, log_scale)
            prior = MVND(torch.zeros_like(loc), torch.ones_like(loc))
            kl = torch.distributions.kl_divergence(d, prior)
            return (kl - d.log_prob(x)).mean()

        loc = torch.randn(128, 8, requires_grad=True)
        log_scale = (0.1 * torch.randn(128, 8)).requires_grad_()
        x = torch.randn(128, 8)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loss = torch.compile(step, fullgraph=True)(loc, log_scale, x)
            loss.backward()
        print("\\n".join(str(w.message) for w in caught))
        ref = torch.distributions.Independent(
            torch.distributions.Normal(loc, log_scale.exp()), 1
        )
        std = torch.distributions.Independent(
            torch.distributions.Normal(torch.zeros(8), torch.ones(8)), 1
        )
        want = (torch.distributions.kl_divergence(ref, std) - ref.log_prob(x)).mean()
        g_loc, g_ls = torch.autograd.grad(want, [loc, log_scale])
        torch.testing.assert_close(loss, want)
        torch.testing.assert_close(loc.grad, g_loc)
        torch.testing.assert_close(log_scale.grad, g_ls)
        print("ok")
        """
    )
    lines = run_python(code).strip().splitlines()
    assert lines[-1] == "ok"
    assert not [ln for ln in lines if "Dynamo" in ln or "graph break" in ln.lower()], lines


# -- dtypes and devices --------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_dtype_and_device_follow_loc(device, dtype):
    rng = np.random.default_rng(9)
    d_ = 1024
    loc = torch.as_tensor(rng.normal(size=(3, d_))).to(dtype=dtype, device=device)
    scale = torch.as_tensor(rng.uniform(0.5, 2, size=(3, d_))).to(dtype=dtype, device=device)
    x = torch.as_tensor(rng.normal(size=(3, d_))).to(dtype=dtype, device=device)
    d = MVND(loc, scale)
    lp = d.log_prob(x)
    assert lp.dtype == dtype
    assert lp.device.type == device
    ref = stats.norm.logpdf(
        x.double().cpu().numpy(), loc.double().cpu().numpy(), scale.double().cpu().numpy()
    ).sum(-1)
    rtol = {torch.float16: 2**-10, torch.bfloat16: 2**-7, torch.float32: 1e-5}[dtype]
    np.testing.assert_allclose(lp.double().cpu().numpy(), ref, rtol=rtol)
    assert d.rsample((2,)).dtype == dtype
    assert d.entropy().dtype == dtype
    assert d.rsample((2,)).device.type == device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_generator_and_kl():
    d = MVND(torch.zeros(3, device="cuda"), torch.ones(3, device="cuda"))
    g = torch.Generator(device="cuda").manual_seed(0)
    assert d.sample((2,), generator=g).device.type == "cuda"
    q = d.to_multivariate_normal()
    assert float(kl_divergence(d, q).abs()) < 1e-6


# -- Pyro -------------------------------------------------------------------------------------


def test_pyro_sample_site():
    pyro = pytest.importorskip("pyro")
    from pyro.infer import SVI, Trace_ELBO
    from pyro.optim import Adam

    from diaggauss.backends.pyro import MultivariateNormalDiag as PyroMVND

    torch.manual_seed(0)
    data = torch.randn(200, 3) + torch.tensor([1.0, -2.0, 0.5])

    def model(data):
        mu = pyro.sample("mu", PyroMVND(torch.zeros(3), 10 * torch.ones(3)))
        with pyro.plate("n", data.shape[0]):
            pyro.sample("x", PyroMVND(mu, torch.ones(3)), obs=data)

    def guide(data):
        m = pyro.param("m", torch.zeros(3))
        s = pyro.param("s", torch.ones(3), constraint=constraints.positive)
        pyro.sample("mu", PyroMVND.from_log_scale(m, s.log()))

    pyro.clear_param_store()
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(300):
        svi.step(data)
    posterior_mean = data.sum(0) / (data.shape[0] + 0.01)
    torch.testing.assert_close(pyro.param("m").detach(), posterior_mean, atol=0.1, rtol=0)
    trace = pyro.poutine.trace(model).get_trace(data)
    assert trace.nodes["x"]["fn"].batch_shape == torch.Size([200])


# -- the mixture counterpart ---------------------------------------------------------------


def test_mixture_matches_mixture_same_family():
    from torch.distributions import Categorical, MixtureSameFamily

    from diaggauss.backends.torch import MixtureDiag

    rng = np.random.default_rng(2)
    logits, loc, scale = (
        t64(rng.normal(size=(4, 3))),
        t64(rng.normal(size=(4, 3, 2))),
        t64(rng.uniform(0.5, 2, size=(4, 3, 2))),
    )
    ours = MixtureDiag(logits, loc, scale)
    oracle = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, scale), 1))
    assert ours.batch_shape == oracle.batch_shape
    assert ours.event_shape == oracle.event_shape
    x = t64(rng.normal(size=(5, 4, 2)))
    torch.testing.assert_close(ours.log_prob(x), oracle.log_prob(x), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.mean, oracle.mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.variance, oracle.variance, rtol=1e-10, atol=1e-12)
    assert ours.sample((7,), generator=torch.Generator().manual_seed(0)).shape == (7, 4, 2)
    assert ours.expand(torch.Size([2, 4])).batch_shape == torch.Size([2, 4])
    assert ours.components.batch_shape == torch.Size([4, 3])
    torch.testing.assert_close(ours.collapse().variance, oracle.variance, rtol=1e-10, atol=1e-12)
    clone = pickle.loads(pickle.dumps(ours))
    torch.testing.assert_close(clone.log_prob(x), ours.log_prob(x))
    with pytest.raises(ValueError, match="scale must be positive"):
        MixtureDiag(logits, loc, -scale)


# -- autograd with the large-array paths (scratch buffers, caches) ---------------------------


def test_large_paths_keep_autograd_intact():
    """Reused temporaries never enter the graph, whichever operand requires grad."""
    import diaggauss as dg

    torch.manual_seed(0)
    n, d = 4096, 64  # above the size where the scratch buffers kick in
    x, loc = torch.randn(n, d, dtype=torch.float64), torch.randn(n, d, dtype=torch.float64)
    ls = (torch.randn(n, d, dtype=torch.float64) * 0.1).requires_grad_()
    lp = MVND.from_log_scale(loc, ls).log_prob(x).sum()
    dg.log_prob(x, loc, torch.ones(d, dtype=torch.float64))  # an unrelated call, no grad
    with torch.no_grad():
        MVND.from_log_scale(loc, ls).log_prob(x * 3)
    (g,) = torch.autograd.grad(lp, ls)
    z = (x - loc) / ls.detach().exp()
    torch.testing.assert_close(g, z**2 - 1)
    q = MVND.from_log_scale(loc.flip(0), ls)
    kl = kl_divergence(MVND(loc, torch.ones(d, dtype=torch.float64)), q).sum()
    kl.backward()  # the scale of q carries grad through the in-place KL path


def test_rsample_and_log_prob_backward_at_size():
    scale = torch.rand(2048, 64, dtype=torch.float64).add_(0.5).requires_grad_()
    d = MVND(torch.zeros(2048, 64, dtype=torch.float64), scale)
    for draw in (d.rsample_and_log_prob, lambda s: MVND(d.loc, scale).rsample_and_log_prob(s)):
        x, lp = draw((2,))
        (x.sum() + lp.sum()).backward()
    import diaggauss as dg

    neutral = dg.MultivariateNormalDiag(torch.zeros(2048, 64, dtype=torch.float64), scale)
    x, lp = neutral.sample_and_log_prob(2, seed=0)
    (x.sum() + lp.sum()).backward()


def test_pairwise_and_mixture_backward_with_scale_grad():
    import diaggauss as dg

    torch.manual_seed(1)
    x, loc = torch.randn(3000, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    s = (torch.rand(5, 4, dtype=torch.float64) + 0.5).requires_grad_()
    lp = dg.pairwise_log_prob(x[:100], loc, s)
    dg.pairwise_log_prob(x[100:200], loc, s)
    chunked = dg.pairwise_log_prob(x, loc, s, chunk_size=1000)
    (lp.sum() + chunked.sum()).backward()
    expected = (-1 / s + ((x[:, None] - loc) ** 2 / s**3)).sum(0) + (
        -1 / s + ((x[:100, None] - loc) ** 2 / s**3)
    ).sum(0)
    torch.testing.assert_close(s.grad, expected.detach())
    logits = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    m = dg.MixtureDiag(logits, loc, s)
    m.log_prob(x).sum().backward()
    m.log_prob(x).sum().backward()


def test_prebuilt_distribution_trains_and_follows_in_place_updates():
    """Built once from nn.Parameters, used for several optimiser steps (like Independent)."""
    loc = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    log_sig = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    d = MVND.from_log_scale(loc, log_sig)
    opt = torch.optim.SGD([loc, log_sig], lr=0.1)
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    for _ in range(3):
        opt.zero_grad()
        loss = -d.log_prob(x).mean()
        loss.backward()
        opt.step()
    fresh = MVND.from_log_scale(loc.detach(), log_sig.detach())
    torch.testing.assert_close(d.log_prob(x).detach(), fresh.log_prob(x))
    buf = torch.ones(3, dtype=torch.float64)
    e = MVND(torch.zeros(3, dtype=torch.float64), buf)
    before = e.log_prob(x)
    buf.mul_(2)  # an in-place update of a parameter without grad
    torch.testing.assert_close(
        e.log_prob(x), MVND(torch.zeros(3, dtype=torch.float64), buf.clone()).log_prob(x)
    )
    assert not torch.equal(before, e.log_prob(x))


def test_vmap_through_pairwise_and_mixture():
    import diaggauss as dg

    torch.manual_seed(2)
    x, locs = torch.randn(50, 3), torch.randn(4, 5, 3)
    scale, logits = torch.rand(5, 3) + 0.5, torch.zeros(5)
    got = torch.func.vmap(lambda lo: dg.MixtureDiag(logits, lo, scale).log_prob(x))(locs)
    want = torch.stack([dg.MixtureDiag(logits, lo, scale).log_prob(x) for lo in locs])
    torch.testing.assert_close(got, want)
    xs = torch.randn(3, 40, 3)
    for method in ("gemm", "direct"):
        got = torch.func.vmap(
            lambda xx, m=method: dg.pairwise_log_prob(xx, locs[0], scale, chunk_size=10, method=m)
        )(xs)
        want = torch.stack([dg.pairwise_log_prob(xx, locs[0], scale) for xx in xs])
        torch.testing.assert_close(got, want)


def test_default_dtype_is_read_at_each_conversion():
    import diaggauss as dg

    before = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        assert (
            dg.MultivariateNormalDiag(
                torch.zeros(2, dtype=torch.int64), torch.ones(2, dtype=torch.int64)
            ).dtype
            == torch.float64
        )
        torch.set_default_dtype(torch.float32)
        assert (
            dg.MultivariateNormalDiag(
                torch.zeros(2, dtype=torch.int64), torch.ones(2, dtype=torch.int64)
            ).dtype
            == torch.float32
        )
    finally:
        torch.set_default_dtype(before)
