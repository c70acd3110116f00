"""Valid input with right results raises no NumPy warning (they are errors under ``-W error``).

Far points give squares past the floating range, ``-inf`` log densities
that are the right answer, and rows of them in the normalisations; NumPy
warned of each on the way ("overflow encountered in multiply", "in cast",
"divide by zero encountered in log", "invalid value encountered in
subtract"). Each case runs with warnings as errors and is checked against
mpmath at the inputs as the dtype holds them, rounded once to it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import diaggauss as dg

mpmath = pytest.importorskip("mpmath")
mpmath.mp.dps = 50

FAR = {"float32": 1e20, "float64": 1e200}


def _mp_log_prob(x, loc, scale):
    """Exact log density of one point (floats) under one component."""
    quad = sum(
        ((mpmath.mpf(a) - mpmath.mpf(m)) / mpmath.mpf(s)) ** 2
        for a, m, s in zip(x, loc, scale, strict=True)
    )
    log_z = sum(mpmath.log(mpmath.mpf(s)) for s in scale) + len(x) * mpmath.log(2 * mpmath.pi) / 2
    return -quad / 2 - log_z


def _rounded(value, dtype_name):
    top = float(np.finfo(dtype_name).max)
    return -math.inf if value < -top else float(value)


def _close(got, want, dtype_name):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert np.array_equal(np.isinf(got), np.isinf(want)), (got, want)
    finite = np.isfinite(want)
    assert np.all(np.isfinite(got[finite]))
    eps = float(np.finfo(dtype_name).eps)
    np.testing.assert_allclose(got[finite], want[finite], rtol=16 * eps, atol=0)


@pytest.mark.parametrize("rows", [1, 200])  # the small path and the large one (4096+ values)
@pytest.mark.parametrize("spread", ["scale", "log_scale"])
def test_log_prob_far_away_is_minus_inf_without_a_warning(rows, spread):
    """A distance of 5e19 in float32: the square overflows, the -inf is the answer."""
    f32 = np.float32
    d = 32
    loc, scale = np.zeros(d, f32), np.ones(d, f32)
    x = np.zeros((rows, d), f32)
    x[:, 0], x[:, 1] = 3e19, 4e19
    near = x / f32(10)
    if spread == "scale":
        dist = dg.MultivariateNormalDiag(loc, scale)
    else:
        dist = dg.MultivariateNormalDiag.from_log_scale(loc, np.zeros(d, f32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got, got_near = dist.log_prob(x), dist.log_prob(near)
        functional = dg.log_prob(x, loc, scale)
    for a, b in ((got, x), (got_near, near), (functional, x)):
        want = [
            _rounded(_mp_log_prob(p.tolist(), loc.tolist(), scale.tolist()), "float32") for p in b
        ]
        _close(a, want, "float32")


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_far_points_in_the_pairwise_and_mixture_kernels_without_a_warning(dtype_name):
    """pairwise_log_prob, component_log_prob, responsibilities and log_prob at 1e20 / 1e200."""
    dt = np.dtype(dtype_name)
    far = FAR[dtype_name]
    loc = np.array([[0.0, 0.0], [1.0, 1.0]], dt)
    scale = np.array([[1.0, 1.0], [1.0, 2.0]], dt)
    x = np.array([[far, far], [-far, -far], [0.5, 0.5], [3.0, -1.0]], dt)
    mix = dg.MixtureDiag(np.zeros(2, dt), loc, scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pairwise = {m: dg.pairwise_log_prob(x, loc, scale, method=m) for m in ("auto", "direct")}
        component = mix.component_log_prob(x)
        resp = mix.responsibilities(x)
        mixture = mix.log_prob(x)
    exact = [
        [_mp_log_prob(p, m, s) for m, s in zip(loc.tolist(), scale.tolist(), strict=True)]
        for p in x.tolist()
    ]
    want = [[_rounded(v, dtype_name) for v in row] for row in exact]
    for got in (*pairwise.values(), component):
        _close(got, want, dtype_name)
    # equal weights: p(k | x) = softmax_k(log N(x | k)), and the mixture's log density
    top = [max(row) for row in exact]
    norm = [
        t + mpmath.log(sum(mpmath.exp(v - t) for v in row))
        for t, row in zip(top, exact, strict=True)
    ]
    want_resp = [
        [float(mpmath.exp(v - z)) for v in row] for z, row in zip(norm, exact, strict=True)
    ]
    _close(resp, want_resp, dtype_name)
    assert resp[:2].tolist() == [[0.0, 1.0], [0.0, 1.0]]  # the wider component, both ways
    _close(mixture, [_rounded(z - mpmath.log(2), dtype_name) for z in norm], dtype_name)
