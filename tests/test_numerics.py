"""Numerics that naive formulas get wrong: far tails, extreme scales, 16-bit floats."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import asarray, assert_close, name_of, to_numpy

import diaggauss as dg

special = pytest.importorskip("scipy.special")
stats = pytest.importorskip("scipy.stats")


def test_log_cdf_forty_standard_deviations_below(xp):
    loc = np.array([3.0, -1.0])
    scale = np.array([2.0, 0.5])
    x = loc - 40.0 * scale  # z = -40 exactly in binary floating point
    d = dg.MultivariateNormalDiag(asarray(xp, loc), asarray(xp, scale))
    expected = 2 * special.log_ndtr(-40.0)
    assert_close(d.log_cdf(asarray(xp, x)), expected, xp=xp, rtol=1e-10)
    one = dg.MultivariateNormalDiag(asarray(xp, loc[:1]), asarray(xp, scale[:1]))
    assert_close(one.log_cdf(asarray(xp, x[:1])), special.log_ndtr(-40.0), xp=xp, rtol=1e-10)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_log_cdf_tails_both_sides(xp, dtype_name):
    z = np.array([-30.0, -12.0, -5.0, 0.0, 2.0, 6.0, 9.0])
    dtype = getattr(xp, dtype_name)
    d = dg.MultivariateNormalDiag(
        asarray(xp, np.zeros((7, 1)), dtype), asarray(xp, np.ones(1), dtype)
    )
    got = d.log_cdf(asarray(xp, z[:, None], dtype))
    tol = 1e-12 if dtype_name == "float64" else 2e-5
    assert_close(got, special.log_ndtr(z), xp=xp, dtype=dtype, rtol=tol)


def test_extreme_log_scale_float32(xp):
    """log_scale = -60: scale**2 underflows to 0 in float32, KL and entropy must not."""
    dtype = xp.float32
    ls_p = np.array([-60.0, -59.0, -61.0])
    ls_q = np.array([-59.5, -60.0, -60.5])
    loc_p = np.zeros(3)
    loc_q = np.exp(ls_q) * np.array([0.5, -1.0, 2.0])
    loc_q = loc_q.astype(np.float32).astype(np.float64)
    assert np.float32(np.exp(-60.0)) ** 2 == 0.0  # the premise
    p = dg.MultivariateNormalDiag.from_log_scale(
        asarray(xp, loc_p, dtype), asarray(xp, ls_p, dtype)
    )
    q = dg.MultivariateNormalDiag.from_log_scale(
        asarray(xp, loc_q, dtype), asarray(xp, ls_q, dtype)
    )
    sp, sq = np.exp(ls_p), np.exp(ls_q)
    kl = (ls_q - ls_p + (sp**2 + (loc_p - loc_q) ** 2) / (2 * sq**2) - 0.5).sum()
    ce = (ls_q + 0.5 * np.log(2 * np.pi) + (sp**2 + (loc_p - loc_q) ** 2) / (2 * sq**2)).sum()
    ent = (ls_p + 0.5 + 0.5 * np.log(2 * np.pi)).sum()
    for got, want in [(p.kl_divergence(q), kl), (p.cross_entropy(q), ce), (p.entropy(), ent)]:
        assert np.isfinite(to_numpy(got)).all()
        assert_close(got, want, xp=xp, dtype=dtype, rtol=1e-5)
    ent_fn = dg.entropy(asarray(xp, np.exp(ls_p), dtype))
    assert_close(ent_fn, ent, xp=xp, dtype=dtype, rtol=1e-5)


def test_kl_of_nearly_equal_distributions(xp):
    """expm1 keeps KL accurate where exp(t) - 1 would cancel."""
    ls_p = np.array([0.3, -0.2])
    ls_q = ls_p + 1e-7
    p = dg.MultivariateNormalDiag.from_log_scale(asarray(xp, np.zeros(2)), asarray(xp, ls_p))
    q = dg.MultivariateNormalDiag.from_log_scale(asarray(xp, np.zeros(2)), asarray(xp, ls_q))
    t = 2 * (ls_p - ls_q)
    expected = 0.5 * (np.expm1(t) - t).sum()
    assert_close(p.kl_divergence(q), expected, xp=xp, rtol=1e-6)


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_precision_accumulates_in_float32(xp, half):
    name = name_of(xp)
    if half == "bfloat16" and name not in ("torch", "jax"):
        pytest.skip(f"{name} has no bfloat16")
    if not hasattr(xp, half):
        pytest.skip(f"{name}'s namespace has no {half}")
    dtype = getattr(xp, half)
    rng = np.random.default_rng(0)
    d_ = 2048  # a float16 running sum of ~2048 squares would lose ~3 digits
    loc = rng.normal(size=(3, d_))
    scale = rng.uniform(0.5, 2.0, size=(3, d_))
    x = rng.normal(size=(3, d_))
    loc_h, scale_h, x_h = (asarray(xp, a, dtype) for a in (loc, scale, x))
    loc_r, scale_r, x_r = (to_numpy(a).astype(np.float64) for a in (loc_h, scale_h, x_h))
    d = dg.MultivariateNormalDiag(loc_h, scale_h)
    lp = d.log_prob(x_h)
    expected = stats.norm.logpdf(x_r, loc_r, scale_r).sum(-1)
    # the result is rounded once to the 16-bit dtype, nothing more
    rtol = 2.0**-8 if half == "bfloat16" else 2.0**-11
    assert_close(lp, expected, xp=xp, dtype=dtype, rtol=rtol)
    assert_close(
        d.entropy(), stats.norm.entropy(0, scale_r).sum(-1), xp=xp, dtype=dtype, rtol=rtol
    )
    q = dg.MultivariateNormalDiag(x_h, scale_h)
    kl = (np.log(scale_r / scale_r) + (loc_r - x_r) ** 2 / (2 * scale_r**2)).sum(-1)
    assert_close(d.kl_divergence(q), kl, xp=xp, dtype=dtype, rtol=rtol)


def test_no_silent_nan_at_extreme_valid_values(xp):
    """Huge but finite parameters and points give finite or -inf results, never NaN.

    (NumPy reports the overflow of 1e300 / 1e-300 as a RuntimeWarning, as SciPy does.)
    """
    d = dg.MultivariateNormalDiag(
        asarray(xp, np.array([1e300, -1e300])), asarray(xp, np.array([1e-300, 1e300]))
    )
    x = asarray(xp, np.array([-1e300, 1e300]))
    with np.errstate(over="ignore"):
        values = [to_numpy(v) for v in (d.log_prob(x), d.log_cdf(x), d.entropy())]
    for value in values:
        assert not np.isnan(value).any()
    assert values[0] == -np.inf


def test_16_bit_spreads_are_derived_at_working_precision():
    """A float16 spread scoring float64 points: derived values in float64, not float16."""
    rng = np.random.default_rng(3)
    loc = rng.normal(size=(4, 8)).astype(np.float16)
    log_scale = (rng.normal(size=(4, 8)) * 0.3).astype(np.float16)
    x = rng.normal(size=(4, 8))
    variance = np.exp(2 * log_scale.astype(np.float64)).astype(np.float16)
    precision = np.exp(-2 * log_scale.astype(np.float64)).astype(np.float16)
    cases = [
        ("log_scale", log_scale, np.exp(log_scale.astype(np.float64))),
        ("variance", variance, np.sqrt(variance.astype(np.float64))),
        ("precision", precision, 1 / np.sqrt(precision.astype(np.float64))),
    ]
    for kind, param, scale in cases:
        d = getattr(dg.MultivariateNormalDiag, f"from_{kind}")(loc, param)
        lp = d.log_prob(x)
        assert lp.dtype == np.float64
        ref = stats.norm.logpdf(x, loc.astype(np.float64), scale).sum(-1)
        np.testing.assert_allclose(lp, ref, rtol=1e-12, err_msg=kind)
