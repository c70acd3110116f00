"""Special functions the array API standard lacks, in pure-standard code.

Only ``log_ndtr`` is needed: ``ndtr`` and the CDF follow from it by ``exp``.
Backends with a native, accurate ``log_ndtr`` (SciPy for NumPy,
``torch.special``, ``jax.scipy.special``) use theirs; every other array-API
library (array-api-strict, Dask, CuPy without SciPy, ...) uses this one.

The method: for ``t = |x| / sqrt(2)``,

    ndtr(-|x|) = erfc(t) / 2 = exp(-t**2) * erfcx(t) / 2,

and the scaled function ``g(t) = (1 + 2 t) * erfcx(t)`` is smooth and bounded
on ``[0, inf]``. In the variable ``y = (t - K) / (t + K)``, which maps
``[0, inf]`` onto ``[-1, 1]``, ``g`` is analytic, so a short Chebyshev
series represents it to double precision everywhere (the Schonfelder /
Shepherd-Laframboise construction). Then

    log_ndtr(x) = -x**2 / 2 + log(g / 2) - log1p(2 t)        for x < 0,
    log_ndtr(x) = log1p(-exp(-x**2 / 2 + log(g / 2) - log1p(2 t)))   for x >= 0.

Nothing is exponentiated before the logarithm on the left tail, so the result
stays accurate to any depth (no underflow at -40 or -1e5), and there is no
cancellation on the right.

The coefficients were computed for this project with mpmath at 50 digits
(Chebyshev projection of ``g`` at 96 Gauss-Chebyshev nodes);
``tests/test_special.py`` recomputes them and checks every digit.
"""

from __future__ import annotations

import math

__all__ = ["ERFCX_CHEBYSHEV", "ERFCX_K", "log_ndtr_standard"]

ERFCX_K = 3.0

# Chebyshev coefficients of g(y) = (1 + 2t) erfcx(t), t = K (1 + y) / (1 - y);
# the series is sum(c[n] T_n(y)) with c[0] already halved.
ERFCX_CHEBYSHEV = (
    1.17756257419656,
    0.005353904539615676,
    -0.09377550342284209,
    0.05436652555744322,
    -0.018976596707845208,
    0.004453426061462712,
    -0.0006335531710553147,
    1.7661719523171593e-05,
    1.2841532864056671e-05,
    -2.0072285659059913e-06,
    -1.807522790414837e-07,
    7.549828343825093e-08,
    1.885668523838603e-09,
    -2.699519049798364e-09,
    -1.460079119939105e-11,
    1.0361607445969489e-10,
    1.475715976623473e-12,
    -4.277340064396911e-12,
    -2.07922492859799e-13,
    1.8134502003176963e-13,
    1.973425574544739e-14,
    -7.287943737592673e-15,
    -1.5169878690228116e-15,
    2.3514112258781403e-16,
    1.0006111691821667e-16,
)

# Terms needed for full precision: the tail beyond them is below half an ulp.
_TERMS_FOR_BITS = {64: 25, 32: 13, 16: 7}

# m = round(|x| * grid) / grid has m**2 exact while |x| is below the point
# where ndtr(-|x|) underflows (|x| < 40 in float64, < 15 in float32).
_SPLIT_GRID = {64: 1024.0, 32: 16.0, 16: 4.0}

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def _clenshaw(y, coefficients, xp):
    """Evaluate ``sum(c[n] T_n(y))`` by Clenshaw's recurrence."""
    b1 = xp.zeros_like(y)
    b2 = xp.zeros_like(y)
    for c in coefficients[:0:-1]:
        b1, b2 = 2.0 * y * b1 - b2 + c, b1
    return y * b1 - b2 + coefficients[0]


def log_ndtr_standard(x, xp, result_bits=None):
    """Log of the standard normal CDF, in pure array-API code.

    Accurate to a few ulp of the input's floating dtype on the whole real
    line, including the far left tail (``log_ndtr(-40)`` in float64 agrees
    with SciPy to ~1e-16 relative).

    Parameters
    ----------
    x : array
        Real floating array.
    xp : namespace
        The array API namespace of `x`.
    result_bits : int, optional
        The precision the result will be rounded to, when `x` is wider
        (float32 results evaluated at float64): the series is cut for it.

    Returns
    -------
    array
        ``log(Phi(x))`` elementwise, same shape and dtype as `x`.
    """
    finfo = xp.finfo(x.dtype)
    bits = finfo.bits
    coefficients = ERFCX_CHEBYSHEV[: _TERMS_FOR_BITS.get(result_bits or bits, 25)]
    ax = xp.abs(x)
    # Beyond sqrt(max) the square overflows; inf * inf gives the same -inf
    # without raising a floating-point overflow signal.
    ax = xp.where(ax > math.sqrt(float(finfo.max)), math.inf, ax)
    t = ax * _INV_SQRT2
    # Written as 1 - 2K/(t + K) so that t = inf maps to y = 1, not inf/inf.
    y = 1.0 - (2.0 * ERFCX_K) / (t + ERFCX_K)
    g = _clenshaw(y, coefficients, xp)
    half_erfcx = (0.5 * g) / (1.0 + 2.0 * t)
    log_half_erfcx = xp.log(0.5 * g) - xp.log1p(2.0 * t)
    # Left tail: log(ndtr(-|x|)) is never formed as exp() of anything, so it
    # cannot underflow, and the rounding of x**2 is small against the result.
    log_lower = -0.5 * ax * ax + log_half_erfcx
    # Right side: ndtr(-|x|) itself is exponentiated, and the rounding of
    # x**2 / 2 (~1e-13 absolute near x = 37) would become its relative error.
    # Split |x| = m + f with m on a coarse grid, so m**2 / 2 is exact. Past
    # |x| = 64 the upper tail is 0 in every dtype; capping keeps m finite.
    grid = _SPLIT_GRID.get(bits, 16.0)
    a = xp.minimum(ax, 64.0)
    m = xp.round(a * grid) / grid
    f = a - m
    # As a product, not the exp of a sum of logarithms: each logarithm's
    # rounding (~4 eps absolute) would become the tail's relative error.
    upper_tail = xp.exp(-0.5 * m * m) * (xp.exp(-f * (m + 0.5 * f)) * half_erfcx)
    # upper_tail <= 1/2. Above 1/4, 1 - upper_tail is exact enough and log()
    # avoids XLA's float64 log1p, which is off by ~120 ulp on (-0.5, -0.25).
    log_upper = xp.where(upper_tail < 0.25, xp.log1p(-upper_tail), xp.log(1.0 - upper_tail))
    return xp.where(x < 0, log_lower, log_upper)
