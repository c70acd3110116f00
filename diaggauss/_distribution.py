"""`MultivariateNormalDiag`: the distribution object, for any array-API array."""

from __future__ import annotations

from . import _convert, _kernels
from ._dtypes import finish, ranked
from ._gaps import ensure_jax_pytrees, gaps_for
from ._inputs import as_value, check_pair, own_library, prepare
from ._namespace import (
    _namespace_of,
    convert_array,
    device_of,
    get_namespace,
    namespace_of_library,
    plain_pair,
)
from ._params import LOG_SCALE, PARAMETERISATIONS, PRECISION, SCALE, VARIANCE
from ._shapes import (
    batch_key,
    broadcast_shapes,
    check_expand,
    event_dims,
    normalize_sample_shape,
)
from ._spread import Parameters
from ._validation import (
    _DEFAULTS,
    explain,
    get_default_validate_args,
    set_default_validate_args,
    values_ok,
)

__all__ = ["MultivariateNormalDiag", "get_default_validate_args", "set_default_validate_args"]


class MultivariateNormalDiag(Parameters):
    r"""A batch of multivariate normal distributions with diagonal covariance.

    ``N(loc, diag(scale**2))`` over the last axis of `loc`, batched over the
    leading axes, for arrays of any array-API library (NumPy, PyTorch, JAX,
    array-api-strict, Dask, ...). Shapes follow torch.distributions and TFP:
    ``batch_shape = broadcast(loc.shape[:-1], scale.shape[:-1])`` and
    ``event_shape = (d,)``.

    The spread is stored as given: build from the scale (this constructor),
    the log-scale, the variance or the precision with the classmethods, and
    the other forms are derived, never by a round trip (a distribution built
    with `from_log_scale` uses the log-scale itself in `log_prob`, `entropy`
    and `kl_divergence`).

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
        A 0-d `loc`, shapes that do not broadcast, parameters on two devices,
        or (when validating) a non-finite `loc` or a scale that is not
        positive and finite.
    TypeError
        A missing parameter, complex or non-numeric data, or `loc` and `scale`
        from two different non-NumPy libraries.

    Notes
    -----
    NumPy arrays and Python numbers combine with arrays of any library: they
    are converted to it (its dtype and device). Parameters keep the dtype
    they were given in; results have the promoted dtype, and 16-bit floats
    are computed in float32.

    In-place changes of a parameter are always seen: a distribution never
    combines a value it derived earlier with a parameter that has changed
    since. Values derived from the spread (the inverse scale, ``sum(log
    scale)``) are kept between calls only where the library tells when a
    parameter changes: PyTorch tensors (through their version counter, for
    tensors of at least a few thousand values without autograd history) and
    JAX arrays (immutable). NumPy and other mutable arrays are read afresh
    on every call. A torch tensor changed through ``.data`` bypasses torch's
    version counter: a distribution that kept derived values then keeps
    using the spread it had, whole, until the next tracked change.

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
        "_batch",
        "_cache",
        "_gaps",
        "_loc",
        "_par",
        "_param",
        "_validate_args",
        "_xp",
    )

    def __init__(self, loc, scale, *, validate_args=None):
        self._setup(loc, scale, SCALE, validate_args)

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
        >>> bool(float(d.entropy()) == -60 + 2 * (0.5 + 0.5 * np.log(2 * np.pi)))
        True
        """
        return cls._build(loc, log_scale, LOG_SCALE, validate_args)

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
        return cls._build(loc, variance, VARIANCE, validate_args)

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
        return cls._build(loc, precision, PRECISION, validate_args)

    # -- construction ------------------------------------------------------

    @classmethod
    def _build(cls, loc, param, par, validate_args):
        self = cls.__new__(cls)
        self._setup(loc, param, par, validate_args)
        return self

    def _setup(self, loc, param, par, validate_args):
        ensure_jax_pytrees()
        own = self._own_namespace
        xp = plain_pair(loc, param)  # the per-step case: nothing to convert or broadcast
        if xp is not None and (own is None or xp is own):
            batch = loc.shape[:-1]
        else:
            xp = get_namespace(("loc", loc), (par.name, param))
            if own is not None and xp is not own:
                xp = own_library(type(self), own, xp, loc, param, par.name)
            loc, param, batch = prepare(loc, param, par.name, xp)
        self._init_parts(loc, param, par, validate_args, xp, batch)
        if self._validating():
            gaps = self._gaps
            if gaps.is_concrete(loc, param):
                self._validate()

    def _init_parts(self, loc, param, par, validate_args, xp=None, batch=None):
        """Set the fields; subclasses add their library's (torch's shapes)."""
        self._loc = loc
        self._param = param
        self._par = par
        self._validate_args = validate_args
        self._xp = xp
        self._gaps = None if xp is None else gaps_for(xp)
        self._cache = None
        self._batch = batch

    @classmethod
    def _from_parts(cls, loc, param, kind, validate_args=None):
        """Assemble without conversion or validation (pytree unflattening, indexing)."""
        self = cls.__new__(cls)
        par = PARAMETERISATIONS[kind] if isinstance(kind, str) else kind
        self._init_parts(loc, param, par, validate_args)
        return self

    def __reduce__(self):
        return (
            type(self)._from_parts,
            (self._loc, self._param, self._par.name, self._validate_args),
        )

    @classmethod
    def _default_validate_args(cls) -> bool:
        return _DEFAULTS["validate_args"]

    #: The namespace this class's arrays must have (None: any; torch's class: torch).
    _own_namespace = None

    def _validating(self) -> bool:
        v = self._validate_args
        return self._default_validate_args() if v is None else v

    def _validate(self):
        """Raise a `ValueError` on a non-finite loc or an invalid spread."""
        xp = self._ns()
        if not values_ok(self._loc, self._param, self._par.domain, xp=xp):
            explain(self._loc, self._param, self._par, xp)

    @property
    def stddev(self):
        """The standard deviations (equal to `scale`)."""
        return self.scale

    @property
    def mean(self):
        """The mean, equal to `loc`."""
        return self.loc

    @property
    def mode(self):
        """The mode, equal to `loc`."""
        return self.loc

    @property
    def median(self):
        """The coordinate-wise median, equal to `loc`."""
        return self.loc

    @property
    def parameterization(self) -> str:
        """How the spread was given: "scale", "log_scale", "variance" or "precision"."""
        return self._par.name

    @property
    def device(self):
        """The device the parameters live on."""
        return device_of(self._loc)

    @property
    def validate_args(self) -> bool:
        """Whether this distribution validates its parameters."""
        return self._validating()

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
        return _diag_embed(self.variance, self._ns())

    # -- values ----------------------------------------------------------------

    def _value(self, x, name="x"):
        """`x` as an array of this distribution's library, checked against event and batch."""
        return as_value(self, x, name)

    def log_prob(self, x):
        """Log density at `x`.

        Parameters
        ----------
        x : array of shape ``(*sample_shape, *batch_shape, d)``
            Points; leading shapes broadcast with the batch. NumPy data and
            Python numbers are converted to the distribution's library.

        Returns
        -------
        array of shape ``(*sample_shape, *batch_shape)``
            ``-0.5 * sum(((x - loc) / scale)**2) - sum(log scale) - d/2 log(2 pi)``.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(3), np.ones(3))
        >>> bool(np.isclose(d.log_prob(np.zeros(3)), -1.5 * np.log(2 * np.pi)))
        True
        """
        d, x = self._value(x)
        return d._log_prob(x)

    def _log_prob(self, x):
        xp, par, loc = self._xp, self._par, self._loc
        dtype = x.dtype
        if not (dtype == loc.dtype == self._param.dtype):
            dtype = self._result_dtype(x)
        if par in (SCALE, LOG_SCALE) and not self._keeps_values():
            # Nothing may be kept and the scale or its log is at hand: one
            # kernel from the parameter, which computes log Z as it likes.
            kernel = _kernels.log_prob if par is SCALE else _kernels.log_prob_from_log_scale
            return self._to_batch(kernel(x, loc, self._param, xp=xp))
        if par is SCALE:  # divide by the scale itself: no pass to invert it
            scale, log_z = self._spreads("scale", "log_normalizer", dtype=dtype)
            out = _kernels.log_prob(x, loc, scale, log_normalizer=log_z, xp=xp)
        elif par is LOG_SCALE and self._spreads("finite_inv", dtype=dtype)[0] is False:
            # 1 / scale overflows (read once, when kept): its clamped root, twice
            ls, h, log_z = self._spreads("log_scale", "half_inv", "log_normalizer", dtype=dtype)
            out = _kernels.log_prob_from_log_scale(
                x, loc, ls, log_normalizer=log_z, half_inv=h, xp=xp
            )
        elif par is LOG_SCALE:  # a finite inverse, kept: one multiply
            inv, log_z = self._spreads("finite_inv", "log_normalizer", dtype=dtype)
            out = _kernels.log_prob_from_inv_scale(x, loc, inv, log_z, xp=xp)
        else:
            inv_scale, log_z = self._spreads("inv_scale", "log_normalizer", dtype=dtype)
            out = _kernels.log_prob_from_inv_scale(x, loc, inv_scale, log_z, xp=xp)
        return self._to_batch(finish(out, dtype, xp))

    def prob(self, x):
        """Density at `x`, ``exp(log_prob(x))``.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(1), np.ones(1))
        >>> round(float(d.prob(np.zeros(1))), 6)
        0.398942
        """
        out = self.log_prob(x)
        return get_namespace(("density", out)).exp(out)

    def mahalanobis(self, x):
        """The Mahalanobis distance ``sqrt(sum(((x - loc) / scale)**2))`` (not squared).

        Finite wherever the distance is representable (the squares are taken
        of scaled values).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(2), np.array([1.0, 2.0]))
        >>> float(d.mahalanobis(np.array([3.0, 8.0])))
        5.0
        """
        d, x = self._value(x)
        (scale,) = d._spreads("scale", dtype=d._result_dtype(x))
        return d._to_batch(_kernels.mahalanobis(x, d._loc, scale, xp=d._xp))

    def log_cdf(self, x):
        """Log of ``P(X <= x)`` (every coordinate at once), accurate far in the tails.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(1), np.ones(1))
        >>> float(d.log_cdf(np.array([-40.0])))  # log Phi(-40), no underflow
        -804.6084420137538
        """
        d, x = self._value(x)
        (scale,) = d._spreads("scale", dtype=d._result_dtype(x))
        return d._to_batch(_kernels.log_cdf(x, d._loc, scale, xp=d._xp))

    def cdf(self, x):
        """``P(X <= x)``, the product of the coordinates' normal CDFs.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(2), np.ones(2))
        >>> float(d.cdf(np.zeros(2)))
        0.25
        """
        out = self.log_cdf(x)
        return get_namespace(("cdf", out)).exp(out)

    def entropy(self):
        """Differential entropy, shape `batch_shape`.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(2), np.ones(2))
        >>> bool(np.isclose(d.entropy(), 1 + np.log(2 * np.pi)))
        True
        """
        (log_z,) = self._spreads("log_normalizer")
        out = _kernels.entropy_from_log_normalizer(log_z, self._loc.shape[-1])
        return self._to_batch(finish(out, self.dtype, self._xp))

    def _to_batch(self, out, batch=None):
        """`out` broadcast with `batch` (default: the batch shape).

        A kernel's result has the shape of what it read; parameters kept
        unbroadcast leave out axes of the batch, and a value may broadcast a
        unit batch axis up (batch (3, 1), value (4, d): the result is (3, 4)).
        """
        batch = self.batch_shape if batch is None else batch
        shape = out.shape
        if shape == batch:
            return out
        shape = tuple(shape)
        if shape[len(shape) - len(batch) :] == batch:
            return out
        return self._xp.broadcast_to(out, broadcast_shapes(shape, tuple(batch)))

    # -- two distributions -------------------------------------------------------

    def _divergence(self, q, what, from_scales, from_log_scales):
        """A two-distribution kernel, of the scales as given or of log-scales.

        The scales where both are given as scales and nothing is kept; else the
        log-scales (the forms the distributions keep).
        """
        p, q, batch = check_pair(self, q, what)
        xp = p._xp
        scales = p._par is SCALE and q._par is SCALE
        if scales and not (p._keeps_values() or q._keeps_values()):
            return p._to_batch(from_scales(p._loc, p._param, q._loc, q._param, xp=xp), batch)
        dtype = p._result_dtype(q._loc, q._param)
        (ls_p,) = p._spreads("log_scale", dtype=dtype)
        # 1 / s_q of a log-scale may overflow: the kernel takes it from the log-scale
        inv = () if q._par is LOG_SCALE else ("inv_scale",)
        ls_q, *inv_q = q._spreads("log_scale", *inv, dtype=dtype)
        out = from_log_scales(
            p._loc, ls_p, q._loc, ls_q, inv_scale_q=next(iter(inv_q), None), xp=xp
        )
        return p._to_batch(finish(out, dtype, xp), batch)

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
        k = _kernels
        return self._divergence(
            q, "kl_divergence", k.kl_divergence, k.kl_divergence_from_log_scale
        )

    def cross_entropy(self, q):
        """Cross-entropy ``H(self, q) = -E_self[log q(X)] = entropy + KL(self || q)``.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> p = dg.MultivariateNormalDiag(np.zeros(2), np.ones(2))
        >>> bool(np.isclose(p.cross_entropy(p), p.entropy()))
        True
        """
        k = _kernels
        return self._divergence(
            q, "cross_entropy", k.cross_entropy, k.cross_entropy_from_log_scale
        )

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
        p, q, batch = check_pair(self, q, "wasserstein2")
        dtype = p._result_dtype(q._loc, q._param)
        (scale_p,), (scale_q,) = p._spreads("scale", dtype=dtype), q._spreads("scale", dtype=dtype)
        out = _kernels.wasserstein2(p._loc, scale_p, q._loc, scale_q, xp=p._xp)
        return p._to_batch(finish(out, dtype, p._xp), batch)

    # -- sampling ------------------------------------------------------------------

    def reparameterize(self, eps):
        """``loc + scale * eps``: a sample from standard normal noise `eps`.

        The same noise gives the same sample on every backend, and gradients
        flow to `loc` and the spread parameter.

        Parameters
        ----------
        eps : array of shape ``(*sample_shape, *batch_shape, d)``
            Standard normal noise.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.array([1.0, 2.0]), np.array([0.5, 3.0]))
        >>> d.reparameterize(np.array([2.0, -1.0]))
        array([ 2., -1.])
        """
        d, eps = self._value(eps, "eps")
        return d._reparameterize(eps)

    def _reparameterize(self, eps, scale=None):
        loc = self._loc
        dtype = eps.dtype
        if not (dtype == loc.dtype == self._param.dtype):
            dtype = self._result_dtype(eps)
        if scale is None:
            (scale,) = self._spreads("scale", dtype=dtype)
        out = finish(_kernels.reparameterize(loc, scale, eps, xp=self._xp), dtype, self._xp)
        if out.shape == eps.shape:
            return out
        batch = self.batch_shape
        shape = (*eps.shape[: eps.ndim - 1 - len(batch)], *batch, loc.shape[-1])
        return out if tuple(out.shape) == shape else self._xp.broadcast_to(out, shape)

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
        self._ns()
        shape = (*normalize_sample_shape(sample_shape), *self.batch_shape, self._loc.shape[-1])
        return self._gaps.random_stream(seed, draws=1).normal(shape, self.dtype, self.device)

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
        scale, log_z = self._spreads("scale", "log_normalizer")
        log_prob = finish(
            _kernels.log_prob_of_noise(eps, log_z, xp=self._xp), self.dtype, self._xp
        )
        return self._reparameterize(eps, scale), self._to_batch(log_prob)

    # -- restructuring ----------------------------------------------------------------

    def _with(self, loc, param):
        """A distribution of this class with new parameter arrays, the same spread form."""
        return type(self)._from_parts(loc, param, self._par, self._validate_args)

    def __getitem__(self, index):
        """Index the batch (never the event axis: see `marginal`).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros((5, 3, 2)), np.ones(2))
        >>> d[1:3].batch_shape, d[..., 0].batch_shape, d[0, 1].batch_shape
        ((2, 3), (5,), ())
        """
        key = batch_key(index, self.batch_shape)
        return self._with(self._full(self._loc)[key], self._full(self._param)[key])

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
        keep = event_dims(dims, self._loc.shape[-1])
        if isinstance(keep, slice):
            loc, param = self._loc[..., keep], self._param[..., keep]
        else:
            xp = self._ns()
            idx = xp.asarray(keep, device=self.device)
            loc = xp.take(self._loc, idx, axis=self._loc.ndim - 1)
            param = xp.take(self._param, idx, axis=self._param.ndim - 1)
        if loc.shape[-1] == 0:
            raise ValueError(f"dims selects no coordinate: {dims!r}")
        return self._with(loc, param)

    def expand(self, batch_shape):
        """The same distribution broadcast to a larger `batch_shape` (views, no copies).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> dg.MultivariateNormalDiag(np.zeros(2), np.ones(2)).expand((4, 3)).batch_shape
        (4, 3)
        """
        batch_shape = normalize_sample_shape(batch_shape, "batch_shape")
        check_expand(self.batch_shape, batch_shape)
        xp = self._ns()
        shape = (*batch_shape, self._loc.shape[-1])
        return self._with(xp.broadcast_to(self._loc, shape), xp.broadcast_to(self._param, shape))

    # -- other libraries' distributions ------------------------------------------------

    @classmethod
    def from_distribution(cls, dist, *, event_dims=None, validate_args=None):
        """Convert another library's diagonal Gaussian.

        Accepts this library's classes (and its torch, Pyro and numpyro
        adapters); torch's ``Normal`` (with `event_dims`),
        ``Independent(Normal)``, ``MultivariateNormal`` and
        ``LowRankMultivariateNormal`` with a diagonal covariance; distrax,
        numpyro and TFP diagonal Gaussians; and a frozen
        ``scipy.stats.multivariate_normal`` with a diagonal covariance. The
        parameters stay in their library.

        Parameters
        ----------
        dist : distribution object
        event_dims : int, optional
            For a plain ``Normal`` (torch, numpyro): how many rightmost axes
            form the event.
        validate_args : bool, optional

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
            if event_dims is not None:
                raise ValueError("event_dims is only for a plain Normal")
            return cls._from_parts(dist._loc, dist._param, dist._par, validate_args)
        loc, param, kind = _convert.import_parameters(dist, event_dims)
        return cls._build(loc, param, PARAMETERISATIONS[kind], validate_args)

    def to_namespace(self, xp, *, device=None):
        """The same distribution with arrays of another library.

        Zero-copy through DLPack where the libraries and devices allow; else a
        copy.

        Parameters
        ----------
        xp : namespace
            The target library's array namespace (``torch``, ``jax.numpy``,
            ``numpy``, any array-API namespace).
        device : optional
            The target device (default: the target library's choice).

        Returns
        -------
        MultivariateNormalDiag
            Of this class where it can hold that library's arrays (the torch
            class holds only torch tensors), else `diaggauss.MultivariateNormalDiag`.

        Examples
        --------
        >>> import numpy as np, torch, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag(np.zeros(2), np.ones(2))
        >>> type(d.to_namespace(torch).loc).__name__
        'Tensor'
        """
        xp = namespace_of_library(xp)
        loc = convert_array(self._loc, xp, device=device)
        param = convert_array(self._param, xp, device=device)
        own = type(self)._own_namespace
        cls = (
            type(self) if own is None or _namespace_of("loc", loc) is own else _neutral(type(self))
        )
        return cls._build(loc, param, self._par, self._validate_args)

    def to_distrax(self):
        """The same distribution as a ``distrax.MultivariateNormalDiag`` (JAX arrays).

        Examples
        --------
        >>> import jax.numpy as jnp, diaggauss as dg
        >>> dg.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2)).to_distrax().event_shape
        (2,)
        """
        return _convert.export(self, "distrax")

    def to_numpyro(self):
        """The same distribution as numpyro's ``Normal(loc, scale).to_event(1)``.

        Examples
        --------
        >>> import jax.numpy as jnp, diaggauss as dg
        >>> dg.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2)).to_numpyro().event_shape
        (2,)
        """
        return _convert.export(self, "numpyro")

    def to_tfp(self):
        """The same distribution as TFP's ``MultivariateNormalDiag`` on its JAX substrate.

        Examples
        --------
        >>> import jax.numpy as jnp, diaggauss as dg
        >>> dg.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2)).to_tfp().event_shape
        TensorShape([2])
        """
        return _convert.export(self, "tfp")


def _neutral(cls):
    """The first class in `cls`'s bases that holds any library's arrays."""
    return next(c for c in cls.__mro__ if c.__dict__.get("_own_namespace", 0) is None)


def _diag_embed(v, xp):
    """A batch of diagonal matrices ``(..., d, d)`` with `v` on the diagonal."""
    d = v.shape[-1]
    eye = ranked(xp.eye(d, dtype=v.dtype, device=device_of(v)), v.ndim + 1, xp)
    return v[..., None] * eye
