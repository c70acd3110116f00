"""The pure-standard log_ndtr fallback, against SciPy and mpmath."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import asarray, assert_close

from diaggauss._special import ERFCX_CHEBYSHEV, ERFCX_K, log_ndtr_standard

special = pytest.importorskip("scipy.special")


@pytest.fixture
def np_xp():
    import array_api_compat.numpy as xp

    return xp


@pytest.mark.parametrize(("dtype", "ulps"), [(np.float64, 8), (np.float32, 8)])
def test_matches_mpmath_to_a_few_ulp(np_xp, dtype, ulps):
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    x = np.linspace(-45, 11, 1121).astype(dtype)
    ref = np.array([float(mp.log(mp.ncdf(mp.mpf(float(v))))) for v in x])
    got = log_ndtr_standard(x, np_xp)
    assert got.dtype == dtype
    keep = np.abs(ref) > np.finfo(dtype).tiny * 1e3  # relative error means nothing in subnormals
    rel = np.abs(got[keep].astype(np.float64) - ref[keep]) / np.abs(ref[keep])
    assert rel.max() < ulps * np.finfo(dtype).eps


def test_matches_scipy_far_left_tail(np_xp):
    x = np.array([-40.0, -100.0, -1e4, -1e8])
    np.testing.assert_allclose(log_ndtr_standard(x, np_xp), special.log_ndtr(x), rtol=1e-15)


def test_special_values_raise_no_floating_point_warnings(np_xp):
    x = np.array([-np.inf, np.inf, np.nan, 0.0, -0.0, -1e300, 1e300, -1e-300])
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        got = log_ndtr_standard(x, np_xp)
    np.testing.assert_array_equal(got, special.log_ndtr(x))


def test_runs_on_array_api_strict():
    xp = pytest.importorskip("array_api_strict")
    x = np.array([-40.0, -3.0, 0.0, 3.0])
    got = log_ndtr_standard(asarray(xp, x), xp)
    assert_close(got, special.log_ndtr(x), xp=xp, rtol=1e-14)


def test_coefficients_are_the_chebyshev_series_of_scaled_erfcx():
    """Recompute every coefficient with mpmath: they are ours, and they are right."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    k = mp.mpf(ERFCX_K)

    def g(y):
        t = k * (1 + y) / (1 - y)
        return (1 + 2 * t) * mp.erfc(t) * mp.exp(t * t)

    m = 96
    nodes = [mp.cos(mp.pi * (j + mp.mpf(1) / 2) / m) for j in range(m)]
    values = [g(y) for y in nodes]
    for n, c in enumerate(ERFCX_CHEBYSHEV):
        exact = (
            2
            * mp.fsum(values[j] * mp.cos(mp.pi * n * (j + mp.mpf(1) / 2) / m) for j in range(m))
            / m
        )
        if n == 0:
            exact /= 2
        assert abs(c - float(exact)) <= 1e-16 * abs(float(exact)) + 1e-30
    # and the series was cut where the remaining terms drop below double precision
    assert abs(ERFCX_CHEBYSHEV[-1]) < 2e-16
