"""`MixtureDiag`: K diagonal Gaussians sharing one event size, with batch dimensions."""

from __future__ import annotations

import math

from ._distribution import MultivariateNormalDiag, get_default_validate_args
from ._dtypes import ranked, work_dtype
from ._gaps import ensure_jax_pytrees, gaps_for
from ._kernels import far_responsibilities, gather_component, log_softmax, logsumexp
from ._namespace import (
    as_array,
    convert_array,
    device_of,
    get_namespace,
    is_array,
    is_numpy_like,
    is_numpy_namespace,
    library_name,
)
from ._pairwise import pairwise_log_prob
from ._params import LOG_SCALE, PRECISION, SCALE, VARIANCE
from ._shapes import (
    batch_key,
    broadcast_shapes,
    check_expand,
    check_value_shape,
    normalize_sample_shape,
)
from ._validation import check_array

__all__ = ["MixtureDiag"]


class MixtureDiag:
    r"""A batch of mixtures of K diagonal Gaussians.

    ``p(x) = sum_k softmax(logits)_k N(x | loc_k, diag(scale_k**2))``.

    Parameters
    ----------
    logits : array of shape (..., K)
        Unnormalised log weights. ``-inf`` switches a component off; NaN and
        ``+inf`` are refused.
    loc : array of shape (..., K, d)
        Component means.
    scale : array of shape (..., K, d), broadcastable with `loc`
        Component standard deviations (or see `from_log_scale`,
        `from_variance`, `from_precision`).
    validate_args : bool, optional
        Check the values (default: `diaggauss.get_default_validate_args`).

    Notes
    -----
    ``batch_shape = broadcast(logits.shape[:-1], loc.shape[:-2],
    scale.shape[:-2])`` and ``event_shape = (d,)``. `log_prob` scores all
    components at once with the pairwise kernel (one matrix product) and a
    stable log-sum-exp. Under JAX the mixture is a pytree.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> m = dg.MixtureDiag(np.log([0.3, 0.7]), np.array([[-2.0], [2.0]]), np.ones((2, 1)))
    >>> m.batch_shape, m.event_shape
    ((), (1,))
    >>> round(float(m.mean[0]), 6)
    0.8
    >>> m.log_prob(np.zeros((5, 1))).shape
    (5,)
    """

    __slots__ = ("__weakref__", "_components", "_logits", "_validate_args")

    def __init__(self, logits, loc, scale, *, validate_args=None):
        self._setup(logits, loc, scale, SCALE, validate_args)

    @classmethod
    def from_log_scale(cls, logits, loc, log_scale, *, validate_args=None):
        """Build with component log standard deviations, used as is.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> m = dg.MixtureDiag.from_log_scale(np.zeros(2), np.zeros((2, 3)), np.zeros((2, 3)))
        >>> m.components.parameterization
        'log_scale'
        """
        self = cls.__new__(cls)
        self._setup(logits, loc, log_scale, LOG_SCALE, validate_args)
        return self

    @classmethod
    def from_variance(cls, logits, loc, variance, *, validate_args=None):
        """Build with component variances.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> dg.MixtureDiag.from_variance(np.zeros(2), np.zeros((2, 1)), np.full((2, 1), 4.0)).scale
        array([[2.],
               [2.]])
        """
        self = cls.__new__(cls)
        self._setup(logits, loc, variance, VARIANCE, validate_args)
        return self

    @classmethod
    def from_precision(cls, logits, loc, precision, *, validate_args=None):
        """Build with component precisions.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> dg.MixtureDiag.from_precision(
        ...     np.zeros(1), np.zeros((1, 2)), np.full((1, 2), 4.0)
        ... ).scale
        array([[0.5, 0.5]])
        """
        self = cls.__new__(cls)
        self._setup(logits, loc, precision, PRECISION, validate_args)
        return self

    def _setup(self, logits, loc, param, par, validate_args):
        ensure_jax_pytrees()
        kind = par.name
        xp = get_namespace(("logits", logits), ("loc", loc), (kind, param))
        if is_array(logits) and not is_numpy_like(logits):
            # NumPy parameters beside library logits adopt the logits' library
            loc, param = (
                a
                if not is_numpy_like(a)
                else as_array(name, a, xp, dtype=logits.dtype, device=device_of(logits))
                for name, a in (("loc", loc), (kind, param))
            )
        comps = self._component_class._build(loc, param, par, validate_args)
        if not comps.batch_shape:
            raise ValueError(
                f"loc and {kind} must have shape (..., K, d), a component axis before the "
                f"event axis; got loc of shape {tuple(comps._loc.shape)}"
            )
        xp = comps._ns()
        k = comps.batch_shape[-1]
        if logits is None:
            raise TypeError("logits is required; got None")
        get_namespace(("loc", comps._loc), ("logits", logits))
        logits = as_array("logits", logits, xp, dtype=comps.dtype, device=comps.device)
        if logits.ndim == 0 or logits.shape[-1] != k:
            raise ValueError(
                f"logits must have shape (..., K) with K={k} components (from loc's shape "
                f"{tuple(comps._loc.shape)}); got {tuple(logits.shape)}"
            )
        if logits.dtype != comps.dtype:
            logits = xp.astype(logits, comps.dtype)
        broadcast_shapes(
            tuple(logits.shape[:-1]),
            comps.batch_shape[:-1],
            names=("logits.shape[:-1]", "loc.shape[:-2]"),
        )
        self._logits = logits
        self._components = comps
        self._validate_args = validate_args
        self._finish()
        validate = self._default_validate_args() if validate_args is None else validate_args
        gaps = gaps_for(xp)
        if validate and gaps.is_concrete(logits):
            allowed = (logits < math.inf) & ~xp.isnan(logits)
            if not bool(xp.all(allowed) & xp.all(xp.any(logits > -math.inf, axis=-1))):
                check_array("logits", logits, allowed, "finite or -inf", xp)
                raise ValueError("logits must leave at least one component with a finite logit")

    #: The class of the components (the torch adapter's mixture holds torch components).
    _component_class = MultivariateNormalDiag

    @classmethod
    def _default_validate_args(cls) -> bool:
        return get_default_validate_args()

    def _finish(self):
        """Called once the fields are set; adapters add their library's fields."""

    @classmethod
    def _from_parts(cls, logits, components, validate_args=None):
        self = cls.__new__(cls)
        self._logits = logits
        self._components = components
        self._validate_args = validate_args
        self._finish()
        return self

    def __reduce__(self):
        return (type(self)._from_parts, (self._logits, self._components, self._validate_args))

    def _ns(self):
        return self._components._ns()

    # -- parameters ------------------------------------------------------------------

    @property
    def logits(self):
        """The unnormalised log weights, as given (shape (..., K))."""
        return self._logits

    @property
    def loc(self):
        """The component means, as given (shape (..., K, d))."""
        return self._components.loc

    @property
    def scale(self):
        """The component standard deviations, with the shape they were given in."""
        return self._components.scale

    @property
    def components(self):
        """The components as one `MultivariateNormalDiag` of batch shape (..., K).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> dg.MixtureDiag(np.zeros((4, 3)), np.zeros((3, 2)), np.ones(2)).components.batch_shape
        (3,)
        """
        return self._components

    @property
    def log_weights(self):
        """``log_softmax(logits)`` over the component axis."""
        return log_softmax(self._logits, -1, self._ns())

    @property
    def weights(self):
        """The mixing weights, ``softmax(logits)`` (they sum to one).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> dg.MixtureDiag(np.log([1.0, 3.0]), np.zeros((2, 1)), np.ones((2, 1))).weights
        array([0.25, 0.75])
        """
        return self._ns().exp(self.log_weights)

    @property
    def num_components(self) -> int:
        """K."""
        return self._logits.shape[-1]

    @property
    def batch_shape(self) -> tuple:
        """``broadcast(logits.shape[:-1], components.batch_shape[:-1])``."""
        return self._batch_tuple()

    def _batch_tuple(self) -> tuple:
        return broadcast_shapes(tuple(self._logits.shape[:-1]), self._components.batch_shape[:-1])

    @property
    def event_shape(self) -> tuple:
        """``(d,)``."""
        return self._components.event_shape

    @property
    def dtype(self):
        """The floating dtype of the parameters."""
        return self._components.dtype

    @property
    def device(self):
        """The device the parameters live on."""
        return self._components.device

    # -- statistics ------------------------------------------------------------------

    @property
    def mean(self):
        """The mixture mean ``sum_k w_k loc_k``, shape ``batch_shape + (d,)``."""
        xp = self._ns()
        w = self.weights[..., None]
        return xp.sum(w * self._components.mean, axis=-2)

    @property
    def variance(self):
        """The moment-matched variance ``sum_k w_k (s_k**2 + (loc_k - mean)**2)``.

        Computed around the mean (two passes), never as ``E[x**2] - E[x]**2``.
        """
        xp = self._ns()
        w = self.weights[..., None]
        comps = self._components
        dm = comps.mean - xp.expand_dims(self.mean, axis=-2)
        return xp.sum(w * (comps.variance + dm * dm), axis=-2)

    @property
    def stddev(self):
        """``sqrt(variance)``."""
        return self._ns().sqrt(self.variance)

    def collapse(self) -> MultivariateNormalDiag:
        """The single moment-matched diagonal Gaussian (same mean and variance).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> m = dg.MixtureDiag(np.zeros(2), np.array([[-1.0], [1.0]]), np.ones((2, 1)))
        >>> m.collapse().variance
        array([2.])
        """
        return self._component_class.from_variance(
            self.mean, self.variance, validate_args=self._validate_args
        )

    # -- densities -------------------------------------------------------------------

    def _points(self, x):
        """``(mixture, x, sample_shape)`` with `x` broadcast to ``(*sample, *batch, d)``.

        A mixture of NumPy arrays given another library's `x` comes back in it;
        one whose unit batch axes `x` broadcasts up comes back expanded.
        """
        xp = self._ns()
        other = get_namespace(("loc", self._components._loc), ("x", x))
        if other is not xp and is_numpy_namespace(xp):
            return self.to_namespace(other, device=device_of(x))._points(x)
        x = as_array("x", x, xp, dtype=self.dtype, device=self.device)
        batch = self.batch_shape
        d = self.event_shape[0]
        check_value_shape("x", x.shape, batch, d)
        lead = tuple(x.shape[:-1])
        n_sample = max(len(lead) - len(batch), 0)
        sample = lead[:n_sample]
        wide = broadcast_shapes(lead[n_sample:], tuple(batch))
        if wide != tuple(batch):  # `x` broadcasts unit batch axes up: so does the mixture
            return self.expand(wide)._points(x)
        full = (*sample, *batch, d)
        if tuple(x.shape) != full:
            x = xp.broadcast_to(x, full)
        return self, x, sample

    def component_log_prob(self, x):
        """``log N(x | loc_k, scale_k)`` for every component: shape ``(*sample, *batch, K)``.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> m = dg.MixtureDiag(np.zeros(3), np.zeros((3, 2)), np.ones((3, 2)))
        >>> m.component_log_prob(np.zeros((4, 2))).shape
        (4, 3)
        """
        m, x, sample = self._points(x)
        return m._component_log_prob(x, sample)

    def _component_log_prob(self, x, sample):
        xp = self._ns()
        batch = self.batch_shape
        d = self.event_shape[0]
        k = self.num_components
        n = math.prod(sample)
        nb, ns = len(batch), len(sample)
        comps = self._components
        if nb:
            # (*sample, *batch, d) -> (*batch, N, d): points of one batch element together
            order = (*range(ns, ns + nb), *range(ns), ns + nb)
            xb = xp.reshape(xp.permute_dims(x, order), (*batch, n, d))
            full = (*batch, k)
            if comps.batch_shape != full:
                comps = comps.expand(full)
        else:
            xb = xp.reshape(x, (n, d))
        lp = pairwise_log_prob(xb, comps, xp=xp)  # (*batch, N, K)
        if nb:
            lp = xp.reshape(lp, (*batch, *sample, k))
            back = (*range(nb, nb + ns), *range(nb), nb + ns)
            return xp.permute_dims(lp, back)
        return xp.reshape(lp, (*sample, k))

    def _joint(self, x):
        """``(mixture, x, log w_k + log N(x | k))`` with `x` as ``(*sample, *batch, d)``.

        The mixture may have adopted `x`'s library.
        """
        m, x, sample = self._points(x)
        lp = m._component_log_prob(x, sample)
        return m, x, lp + ranked(m.log_weights, lp.ndim, m._ns())

    def log_prob(self, x):
        """Log density at `x` of shape ``(*sample, *batch, d)``; returns ``(*sample, *batch)``.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> m = dg.MixtureDiag(np.zeros(2), np.zeros((2, 1)), np.ones((2, 1)))
        >>> bool(np.isclose(m.log_prob(np.zeros(1)), -0.5 * np.log(2 * np.pi)))
        True
        """
        m, _, joint = self._joint(x)
        return logsumexp(joint, -1, m._ns())

    def prob(self, x):
        """Density at `x`."""
        out = self.log_prob(x)
        return get_namespace(("density", out)).exp(out)

    def responsibilities(self, x):
        """Posterior component probabilities ``p(k | x)``: shape ``(*sample, *batch, K)``.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> m = dg.MixtureDiag(np.zeros(2), np.array([[-5.0], [5.0]]), np.ones((2, 1)))
        >>> m.responsibilities(np.array([[-5.0], [5.0]])).round(6)
        array([[1., 0.],
               [0., 1.]])
        """
        m, x, joint = self._joint(x)
        xp = m._ns()
        resp = xp.exp(log_softmax(joint, -1, xp))
        # A point so far out that every log density underflows to -inf (1e200 in
        # float64) would get 0/0; its responsibilities are exact in another form.
        lost = xp.all(joint == -math.inf, axis=-1, keepdims=True)
        lost = lost & xp.all(xp.isfinite(x), axis=-1, keepdims=True)
        if gaps_for(xp).is_concrete(lost) and not bool(xp.any(lost)):
            return resp
        comps = m._components
        far = far_responsibilities(
            x, m.log_weights, comps.loc, comps.precision, comps.log_scale, xp=xp
        )
        return xp.where(lost, far, resp)

    def log_cdf(self, x):
        """Log of ``P(X <= x)``: ``logsumexp_k(log w_k + log_cdf_k(x))``."""
        m, x, _ = self._points(x)
        xp = m._ns()
        per = m._components.log_cdf(xp.expand_dims(x, axis=-2))
        return logsumexp(per + m.log_weights, -1, xp)

    def cdf(self, x):
        """``P(X <= x)``."""
        out = self.log_cdf(x)
        return get_namespace(("cdf", out)).exp(out)

    # -- sampling -------------------------------------------------------------------

    def sample(self, sample_shape=(), *, seed=None):
        """Draw samples of shape ``(*sample_shape, *batch_shape, d)``.

        A component is drawn per sample (Gumbel-max over the logits), then a
        point from it. `seed` follows `MultivariateNormalDiag.sample`: a NumPy
        Generator or int, a torch Generator, or a JAX key (required).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> m = dg.MixtureDiag(np.zeros(2), np.array([[-5.0], [5.0]]), np.ones((2, 1)))
        >>> m.sample((1000,), seed=0).shape
        (1000, 1)
        """
        xp = self._ns()
        comps = self._components
        sample = normalize_sample_shape(sample_shape)
        batch = self.batch_shape
        k, d = self.num_components, self.event_shape[0]
        dtype, device = self.dtype, self.device
        stream = gaps_for(xp).random_stream(seed, draws=2)
        wd = work_dtype(dtype, xp)
        u = stream.uniform((*sample, *batch, k), wd, device)
        tiny = xp.finfo(wd).smallest_normal
        u = xp.clip(u, tiny, 1.0 - xp.finfo(wd).eps)
        gumbel = -xp.log(-xp.log(u))
        logits = xp.astype(self._logits, wd) if self._logits.dtype != wd else self._logits
        index = xp.argmax(ranked(logits, gumbel.ndim, xp) + gumbel, axis=-1)  # (*sample, *batch)
        loc = xp.broadcast_to(comps.loc, (*batch, k, d))
        scale = xp.broadcast_to(comps.scale, (*batch, k, d))
        chosen_loc = gather_component(loc, index, sample, xp)
        chosen_scale = gather_component(scale, index, sample, xp)
        eps = stream.normal((*sample, *batch, d), dtype, device)
        return chosen_loc + chosen_scale * eps

    # -- structure ---------------------------------------------------------------------

    def __getitem__(self, index):
        """Index the batch (not the component or event axes).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> m = dg.MixtureDiag(np.zeros((4, 3)), np.zeros((4, 3, 2)), np.ones(2))
        >>> m[1:3].batch_shape
        (2,)
        """
        batch = self.batch_shape
        xp = self._ns()
        k = self.num_components
        logits = xp.broadcast_to(self._logits, (*batch, k))
        comps = self._components
        if comps.batch_shape != (*batch, k):
            comps = comps.expand((*batch, k))
        # the component axis (and, for the components, the event axis) stay whole
        key = batch_key(index, batch)
        sub_logits = logits[key]
        sub_comps = comps[key]
        return type(self)._from_parts(sub_logits, sub_comps, self._validate_args)

    def to_namespace(self, xp, *, device=None):
        """The same mixture with arrays of another library (as `MultivariateNormalDiag`'s).

        Examples
        --------
        >>> import numpy as np, torch, diaggauss as dg
        >>> m = dg.MixtureDiag(np.zeros(2), np.zeros((2, 3)), np.ones(3))
        >>> type(m.to_namespace(torch).logits).__name__
        'Tensor'
        """
        comps = self._components.to_namespace(xp, device=device)
        logits = convert_array(self._logits, comps._ns(), device=comps.device)
        cls = type(self) if isinstance(comps, self._component_class) else MixtureDiag
        return cls._from_parts(logits, comps, self._validate_args)

    def expand(self, batch_shape):
        """The mixture broadcast to a larger `batch_shape` (views, no copies).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> m = dg.MixtureDiag(np.zeros(2), np.zeros((2, 3)), np.ones(3))
        >>> m.expand((4,)).batch_shape
        (4,)
        """
        batch_shape = normalize_sample_shape(batch_shape, "batch_shape")
        check_expand(tuple(self.batch_shape), batch_shape)
        k = self.num_components
        logits = self._ns().broadcast_to(self._logits, (*batch_shape, k))
        comps = self._components.expand((*batch_shape, k))
        return type(self)._from_parts(logits, comps, self._validate_args)

    def __repr__(self):
        try:
            comps = self._components
            return (
                f"{type(self).__name__}(K={self.num_components}, batch_shape={self.batch_shape}, "
                f"event_shape={self.event_shape}, {comps.parameterization}, "
                f"{library_name(self._ns())})"
            )
        except Exception:  # a pytree holding placeholders
            return f"{type(self).__name__}(logits={self._logits!r})"
