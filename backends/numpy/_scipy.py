"""Conversions to and from ``scipy.stats.multivariate_normal`` (diagonal covariance)."""

from __future__ import annotations

import numpy as np

from diaggauss import _convert

__all__ = ["from_scipy", "to_scipy"]


def to_scipy(dist):
    """A frozen ``scipy.stats.multivariate_normal`` equal to a single diagonal Gaussian.

    Parameters
    ----------
    dist : diaggauss.MultivariateNormalDiag
        A NumPy-backed distribution with ``batch_shape == ()``.

    Returns
    -------
    scipy.stats._multivariate.multivariate_normal_frozen

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> from diaggauss.backends.numpy import to_scipy
    >>> d = dg.MultivariateNormalDiag(np.zeros(2), np.array([1.0, 2.0]))
    >>> bool(np.isclose(to_scipy(d).logpdf(np.ones(2)), d.log_prob(np.ones(2))))
    True
    """
    from scipy import stats

    if dist.batch_shape != ():
        raise ValueError(
            f"scipy.stats.multivariate_normal holds one distribution; got batch_shape="
            f"{dist.batch_shape}: index it first, e.g. dist[0]"
        )
    return stats.multivariate_normal(mean=np.asarray(dist.loc), cov=np.asarray(dist.variance))


def from_scipy(frozen, *, validate_args=None):
    """A `MultivariateNormalDiag` from a frozen ``scipy.stats.multivariate_normal``.

    Raises
    ------
    ValueError
        If the covariance has off-diagonal entries.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import stats
    >>> from diaggauss.backends.numpy import from_scipy
    >>> from_scipy(stats.multivariate_normal(np.zeros(2), np.diag([1.0, 4.0]))).scale
    array([1., 2.])
    """
    from diaggauss import MultivariateNormalDiag

    return MultivariateNormalDiag.from_distribution(frozen, validate_args=validate_args)


@_convert.register_importer
def _import_scipy(dist, event_dims):
    if not type(dist).__name__.startswith("multivariate_normal_frozen"):
        return None
    if event_dims is not None:
        raise ValueError("event_dims is only for a plain Normal")
    cov = np.asarray(dist.cov, dtype=float)
    diag = np.diagonal(cov).copy()
    off = cov - np.diag(diag)
    if np.any(off != 0):
        i, j = np.argwhere(off != 0)[0]
        raise ValueError(
            f"the covariance is not diagonal: entry ({i}, {j}) is {cov[i, j]!r}; "
            f"MultivariateNormalDiag needs a diagonal covariance"
        )
    return np.asarray(dist.mean, dtype=float), diag, "variance"


_convert.register_exporter("scipy")(to_scipy)
