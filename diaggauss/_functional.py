"""Functional kernels: the distribution's math as plain functions of arrays.

Each takes arrays of one library and an optional namespace ``xp`` (found with
``array_api_compat`` when omitted) and validates like the object does.
"""

from __future__ import annotations

from . import _core
from ._backend import backend_for, get_namespace
from ._distribution import MultivariateNormalDiag, get_default_validate_args

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


def _dist(loc, scale, xp, validate_args):
    d = MultivariateNormalDiag.__new__(MultivariateNormalDiag)
    d._setup(loc, scale, "scale", validate_args, xp)
    return d


def _xp(xp, *named):
    return xp if xp is not None else get_namespace(*named)


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
    xp = _xp(xp, ("x", x), ("loc", loc), ("scale", scale))
    return _dist(loc, scale, xp, validate_args).log_prob(x)


def mahalanobis(x, loc, scale, *, xp=None, validate_args=None):
    """The Mahalanobis distance of `x` from ``N(loc, diag(scale**2))`` (not squared).

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> float(dg.mahalanobis(np.array([3.0, 4.0]), np.zeros(2), np.ones(2)))
    5.0
    """
    xp = _xp(xp, ("x", x), ("loc", loc), ("scale", scale))
    return _dist(loc, scale, xp, validate_args).mahalanobis(x)


def log_cdf(x, loc, scale, *, xp=None, validate_args=None):
    """Log of the joint CDF ``P(X <= x)`` of ``N(loc, diag(scale**2))``.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> float(dg.log_cdf(np.zeros(2), np.zeros(2), np.ones(2))) == 2 * np.log(0.5)
    True
    """
    xp = _xp(xp, ("x", x), ("loc", loc), ("scale", scale))
    return _dist(loc, scale, xp, validate_args).log_cdf(x)


def cdf(x, loc, scale, *, xp=None, validate_args=None):
    """The joint CDF ``P(X <= x)`` of ``N(loc, diag(scale**2))``.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> float(dg.cdf(np.zeros(2), np.zeros(2), np.ones(2)))
    0.25
    """
    xp = _xp(xp, ("x", x), ("loc", loc), ("scale", scale))
    return _dist(loc, scale, xp, validate_args).cdf(x)


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
    xp = _xp(xp, ("scale", scale))
    scale = _core.as_float_array("scale", scale, xp)
    if scale.ndim == 0:
        raise ValueError("scale must have at least one dimension, the event axis; got a 0-d array")
    validate = get_default_validate_args() if validate_args is None else validate_args
    be = backend_for(xp)
    if (
        validate
        and be.is_concrete(scale)
        and not be.all_true(xp.all(_core.param_ok(scale, "scale", xp)))
    ):
        _core.explain_invalid(xp.zeros_like(scale), scale, "scale", xp)
    out = _core.entropy_from(_core.sum_log_scale(scale, "scale", xp), scale.shape[-1])
    return _core._finish(out, scale.dtype, xp)


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
    xp = _xp(xp, ("loc_p", loc_p), ("scale_p", scale_p), ("loc_q", loc_q), ("scale_q", scale_q))
    p = _dist(loc_p, scale_p, xp, validate_args)
    return p.kl_divergence(_dist(loc_q, scale_q, xp, validate_args))


def cross_entropy(loc_p, scale_p, loc_q, scale_q, *, xp=None, validate_args=None):
    """Cross-entropy ``H(p, q) = -E_p[log q]`` between two diagonal Gaussians.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> h = dg.cross_entropy(np.zeros(2), np.ones(2), np.zeros(2), np.ones(2))
    >>> bool(np.isclose(h, dg.entropy(np.ones(2))))
    True
    """
    xp = _xp(xp, ("loc_p", loc_p), ("scale_p", scale_p), ("loc_q", loc_q), ("scale_q", scale_q))
    p = _dist(loc_p, scale_p, xp, validate_args)
    return p.cross_entropy(_dist(loc_q, scale_q, xp, validate_args))


def wasserstein2(loc_p, scale_p, loc_q, scale_q, *, xp=None, validate_args=None):
    """The 2-Wasserstein distance (not squared) between two diagonal Gaussians.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> float(dg.wasserstein2(np.zeros(1), np.ones(1), np.full(1, 3.0), np.full(1, 5.0)))
    5.0
    """
    xp = _xp(xp, ("loc_p", loc_p), ("scale_p", scale_p), ("loc_q", loc_q), ("scale_q", scale_q))
    p = _dist(loc_p, scale_p, xp, validate_args)
    return p.wasserstein2(_dist(loc_q, scale_q, xp, validate_args))


def log_ndtr(x, *, xp=None):
    """``log(Phi(x))``, the log of the standard normal CDF, accurate far in both tails.

    Uses the library's own implementation where it is accurate (SciPy for
    NumPy when installed, ``torch.special``, ``jax.scipy.special``) and a
    pure array-API one otherwise.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> float(dg.log_ndtr(np.array(-40.0)))
    -804.6084420137538
    """
    xp = _xp(xp, ("x", x))
    x = _core.as_float_array("x", x, xp)
    wd = _core.work_dtype(x.dtype, xp)
    (z,) = _core._upcast(xp, wd, x)
    return _core._finish(backend_for(xp).log_ndtr(z, xp), x.dtype, xp)
