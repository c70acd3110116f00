"""NumPy adapter: Generator noise, SciPy special functions, SciPy conversions."""

from __future__ import annotations

import threading

import numpy as np

from diaggauss._backend import FEW_VALUES, Backend, few_values_ok, numpy_generator

__all__ = ["BACKEND", "from_scipy", "to_scipy"]


class NumpyBackend(Backend):
    """Hooks for NumPy arrays."""

    name = "numpy"
    inplace = True

    def __init__(self):
        self._log_ndtr = None

    def is_concrete(self, x) -> bool:
        return True

    def values_ok(self, dist) -> bool:
        loc, param = dist._loc, dist._param
        if loc.size + param.size <= FEW_VALUES:
            return few_values_ok(loc.tolist(), param.tolist(), dist._kind)
        if not np.isfinite(loc).all():
            return False
        if dist._kind == "log_scale":
            return bool(np.isfinite(param).all())
        return bool(((param > 0) & (param < np.inf)).all())

    def all_true(self, condition) -> bool:
        return bool(condition)

    def log_ndtr(self, x, xp):
        if self._log_ndtr is None:
            try:  # SciPy only once it is needed, never at import
                from scipy.special import log_ndtr
            except ImportError:
                log_ndtr = False
            self._log_ndtr = log_ndtr
        if self._log_ndtr:
            return self._log_ndtr(x)
        return super().log_ndtr(x, xp)

    def sum_squares(self, z, xp, *, scratch=False):
        # einsum reduces without the (..., d) temporary of z * z.
        return np.einsum("...i,...i->...", z, z)

    def matmul_into(self, a, b, out, index):
        np.matmul(a, b, out=out[index])

    def running_max(self, acc, block, xp):
        if acc is None:
            return block.copy()
        head = acc[..., : block.shape[-2], :]
        np.maximum(head, block, out=head)
        return acc

    def expanded_square(self, x, center, capacity, other):
        *lead, rows, d = x.shape
        shape = (*lead, capacity, 2 * d + 1)
        held = getattr(_local, "expanded", None)
        if held is None or held.shape != shape or held.dtype != x.dtype:
            held = np.empty(shape, dtype=x.dtype)
            if held.nbytes <= 1 << 27:
                _local.expanded = held
        buf = held[..., :rows, :]
        xc = buf[..., d : 2 * d]
        np.subtract(x, center, out=xc)
        np.multiply(xc, xc, out=buf[..., :d])
        buf[..., 2 * d] = 1.0
        return buf

    def normal(self, seed, shape, dtype, device, xp):
        rng = numpy_generator(seed, "NumPy")
        dtype = np.dtype(dtype)
        if dtype in (np.float32, np.float64):
            return rng.standard_normal(shape, dtype=dtype)
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype)


# A per-thread block for the pairwise kernel's expanded rows, reused while the shape holds.
_local = threading.local()

BACKEND = NumpyBackend()


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

    cov = np.asarray(frozen.cov, dtype=float)
    diag = np.diagonal(cov).copy()
    off = cov - np.diag(diag)
    if np.any(off != 0):
        i, j = np.argwhere(off != 0)[0]
        raise ValueError(
            f"the covariance is not diagonal: entry ({i}, {j}) is {cov[i, j]!r}; "
            f"MultivariateNormalDiag needs a diagonal covariance"
        )
    return MultivariateNormalDiag.from_variance(
        np.asarray(frozen.mean, dtype=float), diag, validate_args=validate_args
    )
