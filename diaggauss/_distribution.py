"""`MultivariateNormalDiag`: the distribution object, for any array-API array."""

from __future__ import annotations

import array_api_compat

from . import _core
from ._backend import (
    backend_for,
    ensure_jax_pytrees,
    get_namespace,
    library_name,
)
from ._core import broadcast_shapes, normalize_sample_shape
from ._math import DiagGaussianMath

__all__ = ["MultivariateNormalDiag", "get_default_validate_args", "set_default_validate_args"]

_DEFAULTS = {"validate_args": True}


def set_default_validate_args(value: bool) -> None:
    """Turn validation of parameters on or off for distributions built afterwards.

    Parameters
    ----------
    value : bool
        The default for ``validate_args=None``. Validation starts on, as in
        ``torch.distributions``.

    Examples
    --------
    >>> import diaggauss as dg
    >>> dg.set_default_validate_args(False)
    >>> dg.get_default_validate_args()
    False
    >>> dg.set_default_validate_args(True)
    """
    if value not in (True, False):
        raise TypeError(f"value must be True or False; got {value!r}")
    _DEFAULTS["validate_args"] = bool(value)


def get_default_validate_args() -> bool:
    """The current default for ``validate_args=None`` (see `set_default_validate_args`).

    Examples
    --------
    >>> import diaggauss as dg
    >>> dg.get_default_validate_args()
    True
    """
    return _DEFAULTS["validate_args"]


_SPREAD_DOC = {
    "scale": "standard deviations",
    "log_scale": "logarithms of the standard deviations",
    "variance": "variances",
    "precision": "precisions (inverse variances)",
}


class MultivariateNormalDiag(DiagGaussianMath):
    r"""A batch of multivariate normal distributions with diagonal covariance.

    ``N(loc, diag(scale**2))`` over the last axis of `loc`, batched over the
    leading axes, for arrays of any array-API library (NumPy, PyTorch, JAX,
    array-api-strict, Dask, ...). Shapes follow torch.distributions and TFP:
    ``batch_shape = broadcast(loc.shape[:-1], scale.shape[:-1])`` and
    ``event_shape = (d,)``.

    The spread is stored as given: build from the scale (this constructor),
    the log-scale, the variance or the precision with the classmethods, and
    the other forms are derived lazily, never by a round trip (a distribution
    built with `from_log_scale` uses the log-scale itself in `log_prob`,
    `entropy` and `kl_divergence`). What repeated calls need (the inverse
    scale, ``sum(log scale)``) is computed once per object.

    Parameters
    ----------
    loc : array of shape (..., d)
        Means. At least one dimension: the last axis is the event.
    scale : array of shape (..., d), broadcastable with `loc`, or a number
        Standard deviations, positive and finite.
    validate_args : bool, optional
        Check the parameters' values on construction (one host sync). Defaults
        to `get_default_validate_args` (on). Skipped for traced or lazy arrays
        (inside ``jax.jit``, ``torch.compile``, Dask graphs).

    Raises
    ------
    ValueError
        A 0-d `loc`, shapes that do not broadcast, or (when validating) a
        non-finite `loc` or a scale that is not positive and finite.
    TypeError
        `loc` and `scale` from different array libraries.

    See Also
    --------
    diaggauss.backends.torch.MultivariateNormalDiag :
        The same distribution as a ``torch.distributions.Distribution``.

    Examples
    --------
    The question asked most: ``mu`` and ``log_sigma`` of shape (5, 2) make a
    batch of five 2-D Gaussians.

    >>> import numpy as np
    >>> import diaggauss as dg
    >>> mu, log_sigma = np.zeros((5, 2)), np.full((5, 2), -1.0)
    >>> d = dg.MultivariateNormalDiag.from_log_scale(mu, log_sigma)
    >>> d.batch_shape, d.event_shape
    ((5,), (2,))
    >>> d.log_prob(np.zeros((5, 2))).shape
    (5,)
    >>> d.sample((3,), seed=0).shape
    (3, 5, 2)
    """

    __slots__ = (
        "__weakref__",
        "_be",
        "_cache",
        "_kind",
        "_loc",
        "_param",
        "_validate_args",
        "_xp",
    )

    def __init__(self, loc, scale, *, validate_args=None):
        self._setup(loc, scale, "scale", validate_args)

    @classmethod
    def from_log_scale(cls, loc, log_scale, *, validate_args=None):
        """Build from ``log_scale = log(standard deviation)``, used as is.

        Parameters
        ----------
        loc : array of shape (..., d)
            Means.
        log_scale : array of shape (..., d), broadcastable with `loc`
            Log standard deviations, finite. `log_prob`, `entropy`,
            `kl_divergence` and `cross_entropy` use it directly, so they stay
            finite where ``exp(log_scale)**2`` under- or overflows.
        validate_args : bool, optional
            As for the constructor.

        Returns
        -------
        MultivariateNormalDiag

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag.from_log_scale(np.zeros(2), np.array([-60.0, 0.0]))
        >>> float(d.entropy()) == -60 + 2 * (0.5 + 0.5 * np.log(2 * np.pi))
        True
        """
        self = cls.__new__(cls)
        self._setup(loc, log_scale, "log_scale", validate_args)
        return self

    @classmethod
    def from_variance(cls, loc, variance, *, validate_args=None):
        """Build from variances (the diagonal of the covariance).

        Parameters
        ----------
        loc : array of shape (..., d)
            Means.
        variance : array of shape (..., d), broadcastable with `loc`
            Variances, positive and finite.
        validate_args : bool, optional
            As for the constructor.

        Returns
        -------
        MultivariateNormalDiag

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> dg.MultivariateNormalDiag.from_variance(np.zeros(2), np.array([4.0, 9.0])).scale
        array([2., 3.])
        """
        self = cls.__new__(cls)
        self._setup(loc, variance, "variance", validate_args)
        return self

    @classmethod
    def from_precision(cls, loc, precision, *, validate_args=None):
        """Build from precisions (inverse variances), as Bayesian updates keep them.

        Parameters
        ----------
        loc : array of shape (..., d)
            Means.
        precision : array of shape (..., d), broadcastable with `loc`
            Inverse variances, positive and finite.
        validate_args : bool, optional
            As for the constructor.

        Returns
        -------
        MultivariateNormalDiag

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> dg.MultivariateNormalDiag.from_precision(np.zeros(2), np.array([4.0, 0.25])).scale
        array([0.5, 2. ])
        """
        self = cls.__new__(cls)
        self._setup(loc, precision, "precision", validate_args)
        return self

    # -- construction ------------------------------------------------------

    def _setup(self, loc, param, kind, validate_args, xp=None):
        ensure_jax_pytrees()
        if xp is None:
            xp = get_namespace(("loc", loc), (kind, param))
        be = backend_for(xp)
        loc, param, _, _ = _core.prepare(loc, param, kind, xp)
        self._loc = loc
        self._param = param
        self._kind = kind
        self._validate_args = validate_args
        self._xp = xp
        self._be = be
        self._cache = {}
        validate = _DEFAULTS["validate_args"] if validate_args is None else validate_args
        if validate and be.is_concrete(loc) and be.is_concrete(param):
            self._validate()

    @classmethod
    def _from_parts(cls, loc, param, kind, validate_args=None):
        """Assemble without conversion or validation (pytree unflattening, indexing)."""
        self = cls.__new__(cls)
        self._loc = loc
        self._param = param
        self._kind = kind
        self._validate_args = validate_args
        self._xp = None
        self._be = None
        self._cache = {}
        return self

    def _ns(self):
        xp = self._xp
        if xp is None:
            xp = get_namespace(("loc", self._loc), (self._kind, self._param))
            self._xp = xp
            self._be = backend_for(xp)
        return xp

    def __reduce__(self):
        return (
            type(self)._from_parts,
            (self._loc, self._param, self._kind, self._validate_args),
        )

    # -- parameters ----------------------------------------------------------

    @property
    def loc(self):
        """The means, as given (shape ``(..., d)``)."""
        return self._loc

    @property
    def scale(self):
        """The standard deviations, with the shape the spread was given in."""
        return self._scale()

    @property
    def log_scale(self):
        """``log(scale)``: the parameter itself for `from_log_scale`, else derived."""
        return self._log_scale()

    @property
    def variance(self):
        """``scale**2``, with the shape the spread was given in."""
        return self._variance()

    @property
    def precision(self):
        """``1 / scale**2``, with the shape the spread was given in."""
        return self._precision()

    @property
    def parameterization(self) -> str:
        """How the spread was given: "scale", "log_scale", "variance" or "precision"."""
        return self._kind

    # -- shapes ----------------------------------------------------------------

    @property
    def batch_shape(self) -> tuple:
        """The batch's shape, ``broadcast(loc.shape[:-1], scale.shape[:-1])``."""
        return broadcast_shapes(tuple(self._loc.shape[:-1]), tuple(self._param.shape[:-1]))

    @property
    def event_shape(self) -> tuple:
        """``(d,)``: one draw is a vector of `d` numbers."""
        return (self._loc.shape[-1],)

    @property
    def dtype(self):
        """The floating dtype of the parameters."""
        return self._loc.dtype

    @property
    def device(self):
        """The device the parameters live on."""
        return array_api_compat.device(self._loc)

    @property
    def validate_args(self) -> bool:
        """Whether this distribution validates its parameters."""
        v = self._validate_args
        return _DEFAULTS["validate_args"] if v is None else bool(v)

    def _full(self, a):
        shape = (*self.batch_shape, self._loc.shape[-1])
        return a if tuple(a.shape) == shape else self._ns().broadcast_to(a, shape)

    @property
    def mean(self):
        """The mean, `loc` broadcast to ``batch_shape + event_shape``."""
        return self._full(self._loc)

    @property
    def mode(self):
        """The mode, equal to the mean."""
        return self._full(self._loc)

    @property
    def stddev(self):
        """The standard deviations broadcast to ``batch_shape + event_shape``."""
        return self._full(self.scale)

    def covariance(self):
        """The dense covariance matrices, shape ``batch_shape + (d, d)``.

        O(d**2) memory: for the diagonal alone use `variance`.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> dg.MultivariateNormalDiag(np.zeros(2), np.array([1.0, 2.0])).covariance()
        array([[1., 0.],
               [0., 4.]])
        """
        return _core.diag_embed(self._full(self.variance), self._ns())

    # -- values ----------------------------------------------------------------

    def _value(self, x, name="x"):
        """`x` as an array of this distribution's library, checked against the event and batch."""
        xp = self._ns()
        if _core.is_array(x, xp):
            get_namespace(("loc", self._loc), (name, x))  # TypeError naming both libraries
            if not _core.is_real_floating(x.dtype, xp):
                x = xp.astype(x, self._loc.dtype)
        else:
            x = _core.as_float_array(name, x, xp, dtype=self._loc.dtype, device=self.device)
        _core.check_value_shape(name, x.shape, self.batch_shape, self._loc.shape[-1])
        return x

    def log_prob(self, x):
        """Log density at `x`.

        Parameters
        ----------
        x : array of shape (*sample_shape, *batch_shape, d)
            Points; leading shapes broadcast with the batch.

        Returns
        -------
        array of shape (*sample_shape, *batch_shape)
            ``-0.5 * sum(((x - loc) / scale)**2) - sum(log scale) - d/2 log(2 pi)``.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(3), np.ones(3))
        >>> bool(np.isclose(d.log_prob(np.zeros(3)), -1.5 * np.log(2 * np.pi)))
        True
        """
        return self._log_prob(self._value(x))

    def prob(self, x):
        """Density at `x`, ``exp(log_prob(x))``.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(1), np.ones(1))
        >>> round(float(d.prob(np.zeros(1))), 6)
        0.398942
        """
        return self._ns().exp(self.log_prob(x))

    def mahalanobis(self, x):
        """The Mahalanobis distance ``sqrt(sum(((x - loc) / scale)**2))`` (not squared).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(2), np.array([1.0, 2.0]))
        >>> float(d.mahalanobis(np.array([3.0, 8.0])))
        5.0
        """
        return self._mahalanobis(self._value(x))

    def log_cdf(self, x):
        """Log of ``P(X <= x)`` (every coordinate at once), accurate far in the tails.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(1), np.ones(1))
        >>> float(d.log_cdf(np.array([-40.0])))  # log Phi(-40), no underflow
        -804.6084420137538
        """
        return self._log_cdf(self._value(x))

    def cdf(self, x):
        """``P(X <= x)``, the product of the coordinates' normal CDFs.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(2), np.ones(2))
        >>> float(d.cdf(np.zeros(2)))
        0.25
        """
        return self._ns().exp(self.log_cdf(x))

    def entropy(self):
        """Differential entropy, shape `batch_shape`.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(2), np.ones(2))
        >>> bool(np.isclose(d.entropy(), 1 + np.log(2 * np.pi)))
        True
        """
        return self._to_batch(self._entropy(), self.batch_shape)

    def _to_batch(self, out, batch):
        return out if tuple(out.shape) == batch else self._ns().broadcast_to(out, batch)

    # -- two distributions -------------------------------------------------------

    def _other(self, q, what):
        """Check `q` against self; return the broadcast batch shape."""
        if not isinstance(q, MultivariateNormalDiag):
            raise TypeError(
                f"{what} needs another MultivariateNormalDiag; got {type(q).__qualname__}"
            )
        self._ns()
        q._ns()
        get_namespace(("p.loc", self._loc), ("q.loc", q._loc))
        dp, dq = self._loc.shape[-1], q._loc.shape[-1]
        if dp != dq:
            raise ValueError(f"{what}: event sizes differ, p has d={dp} and q has d={dq}")
        return broadcast_shapes(
            self.batch_shape, q.batch_shape, names=("p.batch_shape", "q.batch_shape")
        )

    def kl_divergence(self, q):
        """``KL(self || q)``, exact, in O(d) per pair.

        Computed from log-scale differences, so it stays finite where the
        variances under- or overflow in the dtype (``log_scale = -60`` in
        float32).

        Parameters
        ----------
        q : MultivariateNormalDiag
            Same event size; batch shapes broadcast.

        Returns
        -------
        array of shape ``broadcast(self.batch_shape, q.batch_shape)``

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> p = dg.MultivariateNormalDiag(np.zeros(2), np.ones(2))
        >>> q = dg.MultivariateNormalDiag(np.ones(2), np.ones(2))
        >>> float(p.kl_divergence(q))
        1.0
        """
        batch = self._other(q, "kl_divergence")
        return self._to_batch(self._kl(q), batch)

    def cross_entropy(self, q):
        """Cross-entropy ``H(self, q) = -E_self[log q(X)] = entropy + KL(self || q)``.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> p = dg.MultivariateNormalDiag(np.zeros(2), np.ones(2))
        >>> bool(np.isclose(p.cross_entropy(p), p.entropy()))
        True
        """
        batch = self._other(q, "cross_entropy")
        return self._to_batch(self._cross_entropy(q), batch)

    def wasserstein2(self, q):
        """The 2-Wasserstein distance to `q` (the distance, not its square).

        For diagonal Gaussians ``W2**2 = |m_p - m_q|**2 + |s_p - s_q|**2``.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> p = dg.MultivariateNormalDiag(np.zeros(2), np.ones(2))
        >>> q = dg.MultivariateNormalDiag(np.array([3.0, 0.0]), np.array([1.0, 5.0]))
        >>> float(p.wasserstein2(q))
        5.0
        """
        batch = self._other(q, "wasserstein2")
        return self._to_batch(self._wasserstein2(q), batch)

    # -- sampling ------------------------------------------------------------------

    def reparameterize(self, eps):
        """``loc + scale * eps``: a sample from standard normal noise `eps`.

        The same noise gives the same sample on every backend, and gradients
        flow to `loc` and the spread parameter.

        Parameters
        ----------
        eps : array of shape (*sample_shape, *batch_shape, d)
            Standard normal noise.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.array([1.0, 2.0]), np.array([0.5, 3.0]))
        >>> d.reparameterize(np.array([2.0, -1.0]))
        array([ 2., -1.])
        """
        return self._reparameterize(self._value(eps, "eps"))

    def sample(self, sample_shape=(), *, seed=None):
        """Draw samples of shape ``(*sample_shape, *batch_shape, d)``.

        Parameters
        ----------
        sample_shape : int or tuple of int
            Leading shape of independent draws.
        seed : optional
            The library's own source of randomness: a ``numpy.random.Generator``
            or an int for NumPy (None: fresh entropy); a ``torch.Generator``, an
            int, or None (torch's global generator) for PyTorch; a
            ``jax.random`` key (typed or legacy) or an int for JAX, where a key
            is required.

        Raises
        ------
        SeedError
            A seed the library cannot use, or no key for JAX arrays.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(2), np.ones(2))
        >>> d.sample((4,), seed=np.random.default_rng(0)).shape
        (4, 2)
        """
        return self._reparameterize(self._noise(sample_shape, seed))

    def _noise(self, sample_shape, seed):
        xp = self._ns()
        shape = (*normalize_sample_shape(sample_shape), *self.batch_shape, self._loc.shape[-1])
        return self._be.normal(seed, shape, self.dtype, self.device, xp)

    def sample_and_log_prob(self, sample_shape=(), *, seed=None):
        """Draw samples and their log densities together.

        The log density comes from the noise directly
        (``-0.5 * sum(eps**2) - sum(log scale) - d/2 log 2 pi``), which is
        cheaper and more accurate than `log_prob` of the sample.

        Returns
        -------
        (samples, log_prob) : arrays of shapes ``(*s, *batch, d)`` and ``(*s, *batch)``

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros((5, 2)), np.ones(2))
        >>> x, lp = d.sample_and_log_prob(3, seed=0)
        >>> x.shape, lp.shape
        ((3, 5, 2), (3, 5))
        """
        eps = self._noise(sample_shape, seed)
        x = self._reparameterize(eps)
        return x, self._log_prob_of_noise(eps)  # eps stays: autograd may keep it for x

    # -- restructuring ----------------------------------------------------------------

    def __getitem__(self, index):
        """Index the batch (never the event axis: see `marginal`).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros((5, 3, 2)), np.ones(2))
        >>> d[1:3].batch_shape, d[..., 0].batch_shape, d[0, 1].batch_shape
        ((2, 3), (5,), ())
        """
        full = _core.batch_key(index, len(self.batch_shape))
        loc = self._full(self._loc)[full]
        param = self._full(self._param)[full]
        return type(self)._from_parts(loc, param, self._kind, self._validate_args)

    def marginal(self, dims):
        """The marginal distribution of some coordinates of the event.

        Parameters
        ----------
        dims : int, slice or sequence of int
            Event coordinates to keep, in order; negative values count from the
            end. Repeated coordinates are refused (the result would be a
            singular, non-diagonal Gaussian).

        Returns
        -------
        MultivariateNormalDiag
            Same batch shape, event shape ``(len(dims),)``.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.arange(4.0), np.ones(4))
        >>> d.marginal([3, 0]).loc
        array([3., 0.])
        """
        keep = _core.event_dims(dims, self._loc.shape[-1])
        if isinstance(keep, slice):
            loc, param = self._loc[..., keep], self._param[..., keep]
        else:
            xp = self._ns()
            idx = xp.asarray(keep, device=self.device)
            loc = xp.take(self._loc, idx, axis=self._loc.ndim - 1)
            param = xp.take(self._param, idx, axis=self._param.ndim - 1)
        if loc.shape[-1] == 0:
            raise ValueError(f"dims selects no coordinate: {dims!r}")
        return type(self)._from_parts(loc, param, self._kind, self._validate_args)

    def expand(self, batch_shape):
        """The same distribution broadcast to a larger `batch_shape` (views where possible).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> dg.MultivariateNormalDiag(np.zeros(2), np.ones(2)).expand((4, 3)).batch_shape
        (4, 3)
        """
        batch_shape = tuple(int(n) for n in batch_shape)
        current = self.batch_shape
        if broadcast_shapes(current, batch_shape, names=("batch_shape", "new")) != batch_shape:
            raise ValueError(f"cannot expand batch_shape={current} to {batch_shape}")
        xp = self._ns()
        shape = (*batch_shape, self._loc.shape[-1])
        loc = xp.broadcast_to(self._loc, shape)
        param = xp.broadcast_to(self._param, shape)
        return type(self)._from_parts(loc, param, self._kind, self._validate_args)

    # -- other libraries' distributions ------------------------------------------------

    @classmethod
    def from_distribution(cls, dist, *, event_dims=None, validate_args=None):
        """Convert another library's diagonal Gaussian.

        Accepts this library's torch adapter, torch's ``Normal`` (with
        `event_dims`), ``Independent(Normal)``, ``MultivariateNormal`` and
        ``LowRankMultivariateNormal`` with a diagonal covariance (see
        `diaggauss.backends.torch.MultivariateNormalDiag.from_distribution`);
        distrax, numpyro and TFP diagonal Gaussians (see
        `diaggauss.backends.jax.from_distribution`); and a frozen
        ``scipy.stats.multivariate_normal`` with a diagonal covariance.

        Raises
        ------
        TypeError
            A distribution of another family.
        ValueError
            A covariance that is not diagonal.

        Examples
        --------
        >>> import numpy as np
        >>> from scipy import stats
        >>> import diaggauss as dg
        >>> frozen = stats.multivariate_normal(np.zeros(2), np.diag([1.0, 4.0]))
        >>> dg.MultivariateNormalDiag.from_distribution(frozen).scale
        array([1., 2.])
        """
        if isinstance(dist, MultivariateNormalDiag):
            return cls._from_parts(dist._loc, dist._param, dist._kind, validate_args)
        module = type(dist).__module__
        if module.startswith(("torch", "diaggauss.backends.torch", "diaggauss.backends.pyro")):
            from diaggauss.backends.torch import MultivariateNormalDiag as TorchMVND

            t = TorchMVND.from_distribution(
                dist, event_dims=event_dims, validate_args=validate_args
            )
            return cls._from_parts(t._loc, t._param, t._kind, validate_args)
        if event_dims is not None:
            raise ValueError("event_dims is only for torch's Normal")
        if module.startswith(
            ("distrax", "numpyro", "tensorflow_probability", "diaggauss.backends.jax")
        ):
            from diaggauss.backends import jax as jax_backend

            return jax_backend.from_distribution(dist, validate_args=validate_args)
        if module.startswith("scipy"):
            from diaggauss.backends.numpy import from_scipy

            return from_scipy(dist, validate_args=validate_args)
        raise TypeError(
            f"from_distribution does not know {module}.{type(dist).__qualname__}: expected a "
            "torch, distrax, numpyro, TFP or SciPy diagonal Gaussian"
        )

    def to_distrax(self):
        """The same distribution as a ``distrax.MultivariateNormalDiag`` (JAX arrays).

        Examples
        --------
        >>> import jax.numpy as jnp, diaggauss as dg
        >>> dg.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2)).to_distrax().event_shape
        (2,)
        """
        from diaggauss.backends.jax import to_distrax

        return to_distrax(self)

    def to_numpyro(self):
        """The same distribution as numpyro's ``Normal(loc, scale).to_event(1)``.

        Examples
        --------
        >>> import jax.numpy as jnp, diaggauss as dg
        >>> dg.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2)).to_numpyro().event_shape
        (2,)
        """
        from diaggauss.backends.jax import to_numpyro

        return to_numpyro(self)

    def to_tfp(self):
        """The same distribution as TFP's ``MultivariateNormalDiag`` on its JAX substrate.

        Examples
        --------
        >>> import jax.numpy as jnp, diaggauss as dg
        >>> dg.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2)).to_tfp().event_shape
        TensorShape([2])
        """
        from diaggauss.backends.jax import to_tfp

        return to_tfp(self)

    def __repr__(self):
        def desc(a):
            dtype = str(a.dtype).removeprefix("torch.")
            return f"{dtype}[{', '.join(str(n) for n in a.shape)}]"

        try:
            lib = library_name(self._ns())
            shapes = f"batch_shape={self.batch_shape}, event_shape={self.event_shape}"
            return (
                f"{type(self).__name__}(loc: {desc(self._loc)}, {self._kind}: "
                f"{desc(self._param)}; {shapes}, {lib})"
            )
        except Exception:  # a pytree holding placeholders, not arrays
            return f"{type(self).__name__}(loc={self._loc!r}, {self._kind}={self._param!r})"
