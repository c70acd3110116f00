"""Log-scales so small that ``1 / scale`` overflows: the right density, never a silent NaN.

``exp(-log_scale)`` overflows below -88.7 (float32) and -709.8 (float64);
``x - loc`` can still be a subnormal few scales, and at ``x == loc`` the
density is finite for any finite log-scale. The references are mpmath
values of the inputs as the tested dtype holds them, rounded once to it
(``-inf`` where the exact value is below the floating range). Where the
library's arithmetic flushes subnormals to zero (XLA on the CPU), a
subnormal ``x - loc`` is 0 to it, and so in the reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import asarray, to_numpy

import diaggauss as dg

mpmath = pytest.importorskip("mpmath")
mpmath.mp.dps = 60

LOG_SCALES = [-80.0, -100.0, -700.0, -800.0, -1e4]
DTYPES = ["float32", "float64"]
# the second coordinate is ordinary: x - loc = 0.7, scale e**0.3
OTHER_LS, OTHER_DELTA = 0.3, 0.7


def _flushed(xp, deltas, dtype_name):
    """`deltas` as the library's arithmetic sees them: XLA:CPU flushes subnormals to 0."""
    fi = np.finfo(dtype_name)
    one = _arr(xp, [1.0], dtype_name)
    if float(to_numpy(_arr(xp, [float(fi.smallest_normal) / 2], dtype_name) * one)[0]) != 0:
        return deltas
    return [0.0 if abs(v) < float(fi.smallest_normal) else v for v in deltas]


def _deltas(ls, dtype_name):
    """``x - loc`` for the tiny coordinate: 0, a few scales (where representable), far away."""
    dtype = np.dtype(dtype_name)
    tiny = float(np.finfo(dtype).smallest_normal) * float(np.finfo(dtype).eps)
    out = [0.0, tiny, 1000 * tiny, 1e-30, 1.0]
    for k in (1.0, 3.0):
        few = float(dtype.type(k * math.exp(ls)))
        if few > 0:
            out.append(few)
    return sorted(set(out))


def _mp_log_prob(delta, ls):
    """Exact log density at x - loc = (delta, OTHER_DELTA), log-scales (ls, OTHER_LS)."""
    quad = sum(
        (mpmath.mpf(v) * mpmath.exp(-mpmath.mpf(s))) ** 2
        for v, s in ((delta, ls), (OTHER_DELTA, OTHER_LS))
    )
    log_z = mpmath.mpf(ls) + mpmath.mpf(OTHER_LS) + mpmath.log(2 * mpmath.pi)
    return -quad / 2 - log_z, quad / 2 + abs(log_z)


def _expected(value, dtype_name):
    top = float(np.finfo(dtype_name).max)
    return -math.inf if value < -top else float(value)


def _check(got, value, size, dtype_name):
    want = _expected(value, dtype_name)
    if math.isinf(want):
        assert got == want, (got, want)
        return
    eps = float(np.finfo(dtype_name).eps)
    assert math.isfinite(got), (got, want)
    assert abs(got - want) <= 8 * eps * float(size), (got, want)


def _arr(xp, a, dtype_name):
    return asarray(xp, np.asarray(a, dtype=dtype_name), getattr(xp, dtype_name))


def _rounded(v, dtype_name):
    return float(np.asarray(v, dtype=dtype_name))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the -inf cases
@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("ls", LOG_SCALES)
def test_log_prob_of_tiny_log_scales(xp, dtype_name, ls):
    """At x == loc, a few scales away and far away; every call (kept values too)."""
    ls_r = _rounded(ls, dtype_name)
    deltas = _deltas(ls_r, dtype_name)
    loc = np.zeros((len(deltas), 2))
    log_scale = np.array([[ls_r, OTHER_LS]] * len(deltas))
    x = np.array([[v, OTHER_DELTA] for v in deltas])
    x, loc, log_scale = (np.asarray(a, dtype=dtype_name) for a in (x, loc, log_scale))
    d = dg.MultivariateNormalDiag.from_log_scale(
        _arr(xp, loc, dtype_name), _arr(xp, log_scale, dtype_name)
    )
    xs = _arr(xp, x, dtype_name)
    for _ in range(3):  # the first call keeps nothing; later ones may use kept values
        got = to_numpy(d.log_prob(xs))
        for i, v in enumerate(_flushed(xp, list(x[:, 0].astype(np.float64)), dtype_name)):
            value, size = _mp_log_prob(v, float(log_scale[i, 0]))
            _check(float(got[i]), value, size, dtype_name)
    # at x == loc with a nonzero loc: no NaN from 0 * inf
    d2 = dg.MultivariateNormalDiag.from_log_scale(
        _arr(xp, np.full(2, 0.5), dtype_name), _arr(xp, log_scale[0], dtype_name)
    )
    at = to_numpy(d2.log_prob(_arr(xp, np.array([0.5, 0.5 + OTHER_DELTA]), dtype_name)))
    value, size = _mp_log_prob(0.0, float(log_scale[0, 0]))
    _check(float(at), value, size, dtype_name)


def _mp_kl(dm, ls_p, ls_q):
    """KL(p || q), one tiny coordinate (means dm apart) and one equal ordinary one."""
    t = 2 * (mpmath.mpf(ls_p) - mpmath.mpf(ls_q))
    u = mpmath.mpf(dm) * mpmath.exp(-mpmath.mpf(ls_q))
    return (mpmath.exp(t) - 1 - t + u * u) / 2


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the inf cases
@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("ls", LOG_SCALES)
def test_kl_divergence_of_tiny_log_scales(xp, dtype_name, ls):
    """KL between log-scale distributions whose ``1 / s_q`` overflows: 0, finite or inf."""
    ls_r = _rounded(ls, dtype_name)
    top = float(np.finfo(dtype_name).max)
    for dm in _deltas(ls_r, dtype_name):
        for ls_p in (ls_r, _rounded(ls_r + 0.5, dtype_name)):
            loc_p = _arr(xp, np.array([dm, 1.0]), dtype_name)
            loc_q = _arr(xp, np.array([0.0, 1.0]), dtype_name)
            p = dg.MultivariateNormalDiag.from_log_scale(
                loc_p, _arr(xp, np.array([ls_p, 0.0]), dtype_name)
            )
            q = dg.MultivariateNormalDiag.from_log_scale(
                loc_q, _arr(xp, np.array([ls_r, 0.0]), dtype_name)
            )
            value = _mp_kl(_flushed(xp, [dm], dtype_name)[0], ls_p, ls_r)
            want = math.inf if value > top else float(value)
            for _ in range(3):
                got = float(to_numpy(p.kl_divergence(q)))
                if math.isinf(want):
                    assert got == want, (dm, ls_p, got)
                else:
                    eps = float(np.finfo(dtype_name).eps)
                    assert abs(got - want) <= 8 * eps * want + 1e-300, (dm, ls_p, got, want)


@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")
@pytest.mark.parametrize("method", ["auto", "direct"])
@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("ls", LOG_SCALES)
def test_pairwise_log_prob_of_tiny_log_scales(xp, backend, dtype_name, ls, method):
    """The (N, K) matrix: the same values as one density at a time, no NaN."""
    if str(backend) == "dask" and method == "auto":
        pytest.skip("lazy values are not read: the product stays as computed")
    ls_r = _rounded(ls, dtype_name)
    deltas = _deltas(ls_r, dtype_name)
    x = np.asarray([[v, OTHER_DELTA] for v in deltas], dtype=dtype_name)
    loc = np.zeros((2, 2), dtype=dtype_name)
    log_scale = np.asarray([[ls_r, OTHER_LS], [ls_r, OTHER_LS]], dtype=dtype_name)
    comps = dg.MultivariateNormalDiag.from_log_scale(
        _arr(xp, loc, dtype_name), _arr(xp, log_scale, dtype_name)
    )
    got = to_numpy(dg.pairwise_log_prob(_arr(xp, x, dtype_name), comps, method=method))
    assert got.shape == (len(deltas), 2)
    for i, v in enumerate(_flushed(xp, list(x[:, 0].astype(np.float64)), dtype_name)):
        value, size = _mp_log_prob(v, float(log_scale[0, 0]))
        for k in range(2):
            _check(float(got[i, k]), value, size, dtype_name)
