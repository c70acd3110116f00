"""Functional kernels: the distribution's math as plain functions of arrays.

Each public function checks and converts its inputs like the distribution
object does (NumPy data and Python numbers adopt the other arguments'
library; shapes broadcast; values validated where concrete), then calls the
kernel in `diaggauss._kernels` directly.
"""

from __future__ import annotations

from . import _kernels
from ._distribution import get_default_validate_args, prepare
from ._gaps import gaps_for
from ._namespace import as_array, device_of, get_namespace
from ._params import SCALE
from ._shapes import broadcast_shapes, check_value_shape
from ._validation import explain, values_ok

__all__ = [
    "cdf",
    "cross_entropy",
    "entropy",
    "kl_divergence",
    "log_cdf",
    "log_ndtr",
    "log_prob",
    "mahalanobis",
    "wasserstein2",
]


def _parameters(xp, loc, scale, validate_args, suffix=""):
    """`loc` and `scale` prepared like a distribution's, and validated when asked."""
    loc, scale, batch = prepare(loc, scale, "scale" + suffix, xp)
    validate = get_default_validate_args() if validate_args is None else validate_args
    gaps = gaps_for(xp)
    concrete = gaps.is_concrete(loc, scale)
    if validate and concrete and not values_ok(loc, scale, SCALE.domain, xp=xp):
        explain(loc, scale, SCALE, xp)
    return loc, scale, batch


def _point_and_parameters(x, loc, scale, xp, validate_args):
    xp = xp if xp is not None else get_namespace(("x", x), ("loc", loc), ("scale", scale))
    loc, scale, batch = _parameters(xp, loc, scale, validate_args)
    dtype = loc.dtype if loc.dtype == scale.dtype else xp.result_type(loc, scale)
    x = as_array("x", x, xp, dtype=dtype, device=device_of(loc))
    check_value_shape("x", x.shape, batch, loc.shape[-1])
    return xp, x, loc, scale


def _pair(loc_p, scale_p, loc_q, scale_q, xp, validate_args):
    named = (("loc_p", loc_p), ("scale_p", scale_p), ("loc_q", loc_q), ("scale_q", scale_q))
    xp = xp if xp is not None else get_namespace(*named)
    loc_p, scale_p, batch_p = _parameters(xp, loc_p, scale_p, validate_args, "_p")
    loc_q, scale_q, batch_q = _parameters(xp, loc_q, scale_q, validate_args, "_q")
    if loc_p.shape[-1] != loc_q.shape[-1]:
        raise ValueError(
            f"event sizes differ: p has d={loc_p.shape[-1]} and q has d={loc_q.shape[-1]}"
        )
    broadcast_shapes(batch_p, batch_q, names=("p's batch shape", "q's batch shape"))
    return xp, loc_p, scale_p, loc_q, scale_q


def log_prob(x, loc, scale, *, xp=None, validate_args=None):
    """Log density of ``N(loc, diag(scale**2))`` at `x`, summed over the last axis.

    Parameters
    ----------
    x : array of shape (..., d)
        Points.
    loc, scale : arrays of shape (..., d)
        Means and standard deviations; leading shapes broadcast with `x`'s.
    xp : namespace, optional
        The array namespace, when the caller already has it.
    validate_args : bool, optional
        Check `loc` and `scale` values (default: `get_default_validate_args`).

    Returns
    -------
    array of shape ``broadcast(x.shape, loc.shape, scale.shape)[:-1]``

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> x, mu, sigma = np.zeros((4, 2)), np.zeros((4, 2)), np.ones((4, 2))
    >>> dg.log_prob(x, mu, sigma).shape
    (4,)
    """
    xp, x, loc, scale = _point_and_parameters(x, loc, scale, xp, validate_args)
    return _kernels.log_prob(x, loc, scale, xp=xp)


def mahalanobis(x, loc, scale, *, xp=None, validate_args=None):
    """The Mahalanobis distance of `x` from ``N(loc, diag(scale**2))`` (not squared).

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> float(dg.mahalanobis(np.array([3.0, 4.0]), np.zeros(2), np.ones(2)))
    5.0
    """
    xp, x, loc, scale = _point_and_parameters(x, loc, scale, xp, validate_args)
    return _kernels.mahalanobis(x, loc, scale, xp=xp)


def log_cdf(x, loc, scale, *, xp=None, validate_args=None):
    """Log of the joint CDF ``P(X <= x)`` of ``N(loc, diag(scale**2))``.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> bool(np.isclose(dg.log_cdf(np.zeros(2), np.zeros(2), np.ones(2)), 2 * np.log(0.5)))
    True
    """
    xp, x, loc, scale = _point_and_parameters(x, loc, scale, xp, validate_args)
    return _kernels.log_cdf(x, loc, scale, xp=xp)


def cdf(x, loc, scale, *, xp=None, validate_args=None):
    """The joint CDF ``P(X <= x)`` of ``N(loc, diag(scale**2))``.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> float(dg.cdf(np.zeros(2), np.zeros(2), np.ones(2)))
    0.25
    """
    xp, x, loc, scale = _point_and_parameters(x, loc, scale, xp, validate_args)
    return xp.exp(_kernels.log_cdf(x, loc, scale, xp=xp))


def entropy(scale, *, xp=None, validate_args=None):
    """Differential entropy of ``N(., diag(scale**2))`` (it does not depend on the mean).

    Parameters
    ----------
    scale : array of shape (..., d)
        Standard deviations.

    Returns
    -------
    array of shape ``scale.shape[:-1]``

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> bool(np.isclose(dg.entropy(np.ones(2)), 1 + np.log(2 * np.pi)))
    True
    """
    xp = xp if xp is not None else get_namespace(("scale", scale))
    scale = as_array("scale", scale, xp)
    if scale.ndim == 0:
        raise ValueError("scale must have at least one dimension, the event axis; got a 0-d array")
    _, scale, _ = _parameters(xp, xp.zeros_like(scale), scale, validate_args)
    return _kernels.entropy(scale, xp=xp)


def kl_divergence(loc_p, scale_p, loc_q, scale_q, *, xp=None, validate_args=None):
    """``KL(p || q)`` between ``p = N(loc_p, diag(scale_p**2))`` and ``q`` likewise.

    Returns
    -------
    array of the broadcast batch shape

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> float(dg.kl_divergence(np.zeros(2), np.ones(2), np.ones(2), np.ones(2)))
    1.0
    """
    xp, *args = _pair(loc_p, scale_p, loc_q, scale_q, xp, validate_args)
    return _kernels.kl_divergence(*args, xp=xp)


def cross_entropy(loc_p, scale_p, loc_q, scale_q, *, xp=None, validate_args=None):
    """Cross-entropy ``H(p, q) = -E_p[log q]`` between two diagonal Gaussians.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> h = dg.cross_entropy(np.zeros(2), np.ones(2), np.zeros(2), np.ones(2))
    >>> bool(np.isclose(h, dg.entropy(np.ones(2))))
    True
    """
    xp, *args = _pair(loc_p, scale_p, loc_q, scale_q, xp, validate_args)
    return _kernels.cross_entropy(*args, xp=xp)


def wasserstein2(loc_p, scale_p, loc_q, scale_q, *, xp=None, validate_args=None):
    """The 2-Wasserstein distance (not squared) between two diagonal Gaussians.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> float(dg.wasserstein2(np.zeros(1), np.ones(1), np.full(1, 3.0), np.full(1, 5.0)))
    5.0
    """
    xp, *args = _pair(loc_p, scale_p, loc_q, scale_q, xp, validate_args)
    return _kernels.wasserstein2(*args, xp=xp)


def log_ndtr(x, *, xp=None):
    """``log(Phi(x))``, the log of the standard normal CDF, accurate far in both tails.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> float(dg.log_ndtr(np.array(-40.0)))
    -804.6084420137538
    """
    xp = xp if xp is not None else get_namespace(("x", x))
    return _kernels.log_ndtr(as_array("x", x, xp), xp=xp)
