"""PyTorch adapter: a real ``torch.distributions.Distribution``, and the core's torch hooks.

``from diaggauss.backends.torch import MultivariateNormalDiag`` is the torch
user's answer to "an efficient multivariate normal with a diagonal
covariance": a direct subclass of ``torch.distributions.Distribution`` with
constraints, ``expand``, ``rsample``, ``validate_args``, pickling, and KL
divergences registered (both directions) against itself, ``Independent(Normal,
1)``, ``MultivariateNormal`` and ``LowRankMultivariateNormal``. Its math is the
neutral core's (`diaggauss._math.DiagGaussianMath`), called with the namespace
already resolved.
"""

from __future__ import annotations

import math
import threading

import array_api_compat.torch as _XP
import torch
from torch import Tensor
from torch.distributions import (
    Distribution,
    Independent,
    LowRankMultivariateNormal,
    MultivariateNormal,
    Normal,
    constraints,
)
from torch.distributions.kl import register_kl

from diaggauss import _core
from diaggauss._backend import FEW_VALUES, Backend, SeedError, few_values_ok
from diaggauss._math import DiagGaussianMath

__all__ = ["BACKEND", "MixtureDiag", "MultivariateNormalDiag"]

_is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
# Below this many elements a sum of squares is launch-bound: vecdot's single
# kernel wins; above it, squaring in place and summing is faster (measured).
_SMALL = 1 << 16
# Below this many elements an in-place update saves nothing worth its checks.
_TINY = 1 << 10
_is_compiling = torch.compiler.is_compiling


class TorchBackend(Backend):
    """Hooks for torch tensors."""

    name = "torch"
    inplace = True

    def is_concrete(self, x) -> bool:
        # Traced (torch.compile), transformed (torch.func) or meta tensors
        # have no values to read; validation skips them, as torch does.
        return not (_is_compiling() or _is_wrapped(x) or x.is_meta)

    def both_concrete(self, a, b) -> bool:
        """`is_concrete` of two tensors, with one compiler check."""
        return not (_is_compiling() or _is_wrapped(a) or _is_wrapped(b) or a.is_meta or b.is_meta)

    def can_cache(self, value, source) -> bool:
        # A value with autograd history (or from a parameter that has one)
        # would serve a second backward pass through a freed graph: recompute.
        # Inside torch.compile the cache write is a replayed side effect, and
        # functorch transforms batch only what was built inside them.
        return not (value.requires_grad or source.requires_grad)

    def version(self, source):
        if _is_compiling():
            return None  # a traced version counter would make the cache test data-dependent
        return source._version  # counts in-place updates of the parameter

    def can_update(self, z, other, *, grad_safe=True) -> bool:
        if z.numel() < _TINY:
            return False  # nothing to save, and the checks below cost more than a copy
        if _is_compiling():
            return True  # functionalised by the compiler
        if not grad_safe and z.requires_grad:
            return False  # autograd saved z itself for the backward pass
        # In-place ops on functorch-batched tensors fail when `other` is batched and `z` is not.
        return not (_is_wrapped(z) or _is_wrapped(other))

    def all_true(self, condition) -> bool:
        return bool(condition.item())

    def running_max(self, acc, block, xp):
        block = block.detach()  # feeds a host-side check, never a gradient
        if acc is None:
            return block.clone()
        head = acc[..., : block.shape[-2], :]
        torch.maximum(head, block, out=head)
        return acc

    def expanded_square(self, x, center, capacity, other):
        if _is_compiling() or x.device.type != "cpu":
            return None
        if any(_is_wrapped(t) for t in (x, center, other)):
            return None
        if torch.is_grad_enabled() and any(t.requires_grad for t in (x, center, other)):
            return None  # autograd keeps the product's operands
        *lead, rows, d = x.shape
        shape = (*lead, capacity, 2 * d + 1)
        buf = _scratch(torch.Size(shape), x.dtype, x.device, slot="expanded")[..., :rows, :]
        xc = buf[..., d : 2 * d]
        torch.sub(x, center, out=xc)
        torch.mul(xc, xc, out=buf[..., :d])
        buf[..., 2 * d].fill_(1.0)
        return buf

    def difference(self, x, loc, *then):
        if max(x.numel(), loc.numel()) < _BIG or _is_compiling() or x.device.type != "cpu":
            return x - loc
        if torch.is_grad_enabled() and any(t.requires_grad for t in (x, loc, *then)):
            return x - loc  # autograd keeps temporaries: a shared buffer would corrupt them
        if any(_is_wrapped(t) for t in (x, loc, *then)):
            return x - loc
        shape = torch.broadcast_shapes(x.shape, loc.shape)
        dtype = torch.promote_types(x.dtype, loc.dtype)
        return torch.sub(x, loc, out=_scratch(shape, dtype, x.device))

    def values_ok(self, dist) -> bool:
        loc, param = dist._loc, dist._param
        if loc.is_cpu and loc.numel() + param.numel() <= FEW_VALUES:
            # A handful of numbers (an RL step, a VAE toy): reading them costs
            # less than launching a reduction.
            return few_values_ok(loc.tolist(), param.tolist(), dist._kind)
        # sum(loc) + sum(log scale) is finite exactly when loc is finite and
        # the scale positive and finite, unless a sum overflows (then the exact
        # check decides). Two plain reductions, no temporary, and the second
        # reuses sum(log scale), which log_prob needs anyway: one host read.
        wd = _core.work_dtype(loc.dtype, _XP)
        total = loc.sum() + dist._sum_log_scale(wd).sum()
        return math.isfinite(total.item()) or super().values_ok(dist)

    def add_scaled(self, b, a, alpha):
        return torch.add(b, a, alpha=alpha)

    def chunk_writes_ok(self, *arrays) -> bool:
        # functorch-batched operands cannot be written into an unbatched result
        return _is_compiling() or not any(_is_wrapped(a) for a in arrays)

    def matmul_into(self, a, b, out, index):
        target = out[index]
        if (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)) or not (
            target.is_contiguous()
        ):
            out[index] = a @ b  # differentiable copy; out= is not
        else:
            torch.matmul(a, b, out=target)

    def subtract_from(self, c, a):
        if _is_compiling() or _is_wrapped(a):
            return c - a
        # A tensor-tensor op costs ~60% of one that wraps a Python number.
        return torch.sub(_constant(c, a.dtype, a.device), a)

    def log_density_terms(self, z, dist, wd):
        if z.numel() > _TINY or _is_compiling():
            return None  # launches no longer dominate; the compiler fuses anyway
        return torch.addcmul(dist._log_scale_uncached(wd), z, z, value=0.5)

    def log_ndtr(self, x, xp):
        return torch.special.log_ndtr(x)

    def sum_squares(self, z, xp, *, scratch=False):
        if z.numel() <= _SMALL:
            return torch.linalg.vecdot(z, z)  # one kernel launch where overhead dominates
        if _is_compiling():
            return (z * z).sum(-1)  # the compiler fuses it
        if scratch and not z.requires_grad and not _is_wrapped(z):
            # Square in place: no second (..., d) temporary to allocate and fault in.
            return z.square_().sum(-1)
        return torch.einsum("...i,...i->...", z, z)

    def normal(self, seed, shape, dtype, device, xp):
        return torch.randn(shape, generator=_generator(seed, device), dtype=dtype, device=device)

    def random_stream(self, seed, xp):
        return _TorchStream(seed)


class _TorchStream:
    """Successive draws from one torch.Generator (or torch's global one)."""

    def __init__(self, seed):
        self.seed = seed
        self.generators = {}

    def _gen(self, device):
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            return _generator(self.seed, device)
        key = str(device)
        if key not in self.generators:  # an int seeds one generator per device, once
            self.generators[key] = _generator(self.seed, device)
        return self.generators[key]

    def normal(self, shape, dtype, device):
        return torch.randn(shape, generator=self._gen(device), dtype=dtype, device=device)

    def uniform(self, shape, dtype, device):
        return torch.rand(shape, generator=self._gen(device), dtype=dtype, device=device)


# Large CPU temporaries come straight from mmap, and faulting in a fresh
# 16 MB buffer on every call cost log_prob up to 1.5x its time next to other
# allocation-heavy code (measured at (65536, 64)); a per-thread buffer, reused
# while the shape holds and nothing keeps the temporary, avoids it.
_BIG = 1 << 18
_SCRATCH_LIMIT = 1 << 27  # bytes kept at most, per thread
_local = threading.local()


def _scratch(shape, dtype, device, slot="difference"):
    """A per-thread buffer for `slot`, reused while shape, dtype and device hold."""
    key = (shape, dtype, device, torch.is_inference_mode_enabled())
    held = getattr(_local, slot, None)
    if held is not None and held[0] == key:
        return held[1]
    buffer = torch.empty(shape, dtype=dtype, device=device)
    if buffer.numel() * buffer.element_size() <= _SCRATCH_LIMIT:
        setattr(_local, slot, (key, buffer))
    return buffer


_CONSTANTS: dict = {}


def _constant(value, dtype, device):
    """A cached 0-d tensor holding `value`."""
    key = (value, dtype, device)
    t = _CONSTANTS.get(key)
    if t is None:
        if len(_CONSTANTS) > 256:
            _CONSTANTS.clear()
        with torch.inference_mode(False), torch.no_grad():
            t = _CONSTANTS[key] = torch.tensor(value, dtype=dtype, device=device)
    return t


def _generator(seed, device):
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, int) and not isinstance(seed, bool):
        return torch.Generator(device=device).manual_seed(seed)
    raise SeedError(
        "seed must be a torch.Generator, an int or None (torch's global generator) to "
        f"sample torch tensors; got {type(seed).__module__}.{type(seed).__qualname__}"
    )


BACKEND = TorchBackend()

_POSITIVE_VECTOR = constraints.independent(constraints.positive, 1)
_ARG_CONSTRAINTS = {
    "scale": {"loc": constraints.real_vector, "scale": _POSITIVE_VECTOR},
    "log_scale": {"loc": constraints.real_vector, "log_scale": constraints.real_vector},
    "variance": {"loc": constraints.real_vector, "variance": _POSITIVE_VECTOR},
    "precision": {"loc": constraints.real_vector, "precision": _POSITIVE_VECTOR},
}


def _as_tensor(name, a, like=None):
    """`a` as a floating tensor; Python numbers and lists convert, other libraries do not."""
    if isinstance(a, Tensor):
        return a if a.is_floating_point() else a.to(torch.get_default_dtype())
    if isinstance(a, int | float | bool | list | tuple):
        kwargs = {} if like is None else {"dtype": like.dtype, "device": like.device}
        t = torch.as_tensor(a, **kwargs)
        return t if t.is_floating_point() else t.to(torch.get_default_dtype())
    t = type(a)
    raise TypeError(
        f"{name} must be a torch.Tensor (or a Python number or list); got "
        f"{t.__module__}.{t.__qualname__}: convert it with torch.as_tensor first"
    )


class MultivariateNormalDiag(DiagGaussianMath, Distribution):
    r"""A batch of multivariate normals with diagonal covariance, as a torch Distribution.

    ``N(loc, diag(scale**2))`` over the last axis: ``batch_shape =
    broadcast(loc.shape[:-1], scale.shape[:-1])``, ``event_shape = (d,)``. A
    drop-in for ``MultivariateNormal(loc, scale_tril=diag_embed(scale))`` and
    ``Independent(Normal(loc, scale), 1)``, without d-by-d matrices and with
    the shapes of the former. The spread is kept as given: build from the
    scale (this constructor), the log-scale, the variance or the precision.

    Parameters
    ----------
    loc : Tensor of shape (..., d)
        Means.
    scale : Tensor of shape (..., d), broadcastable with `loc`, or a number
        Standard deviations, positive and finite.
    validate_args : bool, optional
        As in torch: defaults to ``Distribution._validate_args``. Validation of
        the parameters costs one host sync; under ``torch.compile`` and
        ``torch.func`` transforms it is skipped. Values given to `log_prob`
        are checked for shape, not content.

    Examples
    --------
    >>> import torch
    >>> from diaggauss.backends.torch import MultivariateNormalDiag
    >>> mu, log_sig = torch.zeros(5, 2), torch.zeros(5, 2)
    >>> d = MultivariateNormalDiag.from_log_scale(mu, log_sig)
    >>> d.batch_shape, d.event_shape
    (torch.Size([5]), torch.Size([2]))
    >>> d.rsample((3,)).shape
    torch.Size([3, 5, 2])
    >>> torch.distributions.kl_divergence(d, d.to_multivariate_normal()).shape
    torch.Size([5])
    """

    arg_constraints = _ARG_CONSTRAINTS["scale"]
    support = constraints.real_vector
    has_rsample = True
    _be = BACKEND

    def __init__(self, loc, scale, validate_args=None):
        self._setup(loc, scale, "scale", validate_args)

    @classmethod
    def from_log_scale(cls, loc, log_scale, validate_args=None):
        """Build from ``log_scale = log(standard deviation)``, used as is.

        Examples
        --------
        >>> import torch
        >>> from diaggauss.backends.torch import MultivariateNormalDiag
        >>> d = MultivariateNormalDiag.from_log_scale(torch.zeros(2), torch.full((2,), -60.0))
        >>> bool(torch.isfinite(d.entropy()))
        True
        """
        self = cls.__new__(cls)
        self._setup(loc, log_scale, "log_scale", validate_args)
        return self

    @classmethod
    def from_variance(cls, loc, variance, validate_args=None):
        """Build from variances.

        Examples
        --------
        >>> import torch
        >>> from diaggauss.backends.torch import MultivariateNormalDiag
        >>> MultivariateNormalDiag.from_variance(torch.zeros(2), torch.tensor([4.0, 9.0])).stddev
        tensor([2., 3.])
        """
        self = cls.__new__(cls)
        self._setup(loc, variance, "variance", validate_args)
        return self

    @classmethod
    def from_precision(cls, loc, precision, validate_args=None):
        """Build from precisions (inverse variances).

        Examples
        --------
        >>> import torch
        >>> from diaggauss.backends.torch import MultivariateNormalDiag
        >>> MultivariateNormalDiag.from_precision(torch.zeros(2), torch.tensor([4.0, 0.25])).stddev
        tensor([0.5000, 2.0000])
        """
        self = cls.__new__(cls)
        self._setup(loc, precision, "precision", validate_args)
        return self

    def _setup(self, loc, param, kind, validate_args):
        if (
            isinstance(loc, Tensor)
            and isinstance(param, Tensor)
            and loc.shape == param.shape
            and loc.dtype == param.dtype
            and loc.dim() > 0
            and loc.is_floating_point()
        ):
            # The per-step hot path: matching tensors need no broadcasting.
            shape = loc.shape
            batch_shape, event_shape = shape[:-1], shape[-1:]
        else:
            loc = _as_tensor("loc", loc, param if isinstance(param, Tensor) else None)
            param = _as_tensor(kind, param, loc)
            loc, param, batch, d = _core.prepare(loc, param, kind, _XP)
            batch_shape, event_shape = torch.Size(batch), torch.Size((d,))
        self._loc = loc
        self._param = param
        self._kind = kind
        self._cache = {}
        if kind != "scale":
            self.arg_constraints = _ARG_CONSTRAINTS[kind]
        # What Distribution.__init__(batch, event, validate_args=False) does, minus
        # a Python call on the per-step path; our validation replaces its loop.
        self._batch_shape = batch_shape
        self._event_shape = event_shape
        if validate_args is None:
            validate_args = Distribution._validate_args
        self._validate_args = validate_args
        if validate_args and BACKEND.both_concrete(loc, param):
            self._validate()

    def _ns(self):
        return _XP

    @classmethod
    def _from_parts(cls, loc, param, kind, batch_shape, validate_args, _instance=None):
        new = cls.__new__(cls) if _instance is None else _instance
        new._loc = loc
        new._param = param
        new._kind = kind
        new._cache = {}
        if kind != "scale":
            new.arg_constraints = _ARG_CONSTRAINTS[kind]
        Distribution.__init__(new, torch.Size(batch_shape), loc.shape[-1:], validate_args=False)
        new._validate_args = validate_args
        return new

    def __getstate__(self):
        # Derived tensors may carry autograd history, which neither pickle nor
        # deepcopy accepts; they are recomputed on demand.
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    # -- parameters and statistics (torch convention: broadcast to batch + event) ---

    def _full(self, a):
        shape = self._batch_shape + self._event_shape
        return a if a.shape == shape else a.expand(shape)

    @property
    def loc(self) -> Tensor:
        """The means, broadcast to ``batch_shape + event_shape``."""
        return self._full(self._loc)

    @property
    def scale(self) -> Tensor:
        """The standard deviations, broadcast to ``batch_shape + event_shape``."""
        return self._full(self._scale())

    @property
    def log_scale(self) -> Tensor:
        """``log(scale)``: the parameter itself for `from_log_scale`."""
        return self._full(self._log_scale())

    @property
    def precision(self) -> Tensor:
        """``1 / scale**2``, broadcast to ``batch_shape + event_shape``."""
        return self._full(self._precision())

    @property
    def parameterization(self) -> str:
        """How the spread was given: "scale", "log_scale", "variance" or "precision"."""
        return self._kind

    @property
    def mean(self) -> Tensor:
        """The mean, `loc` broadcast to ``batch_shape + event_shape``."""
        return self._full(self._loc)

    @property
    def mode(self) -> Tensor:
        """The mode, equal to the mean."""
        return self._full(self._loc)

    @property
    def variance(self) -> Tensor:
        """The variances (the covariance's diagonal), broadcast to ``batch + event``."""
        return self._full(self._variance())

    @property
    def stddev(self) -> Tensor:
        """The standard deviations, broadcast to ``batch_shape + event_shape``."""
        return self._full(self._scale())

    def _dense(self, name, vector):
        return self._cached(name, self._embed, vector)

    def _embed(self, vector):
        return _core.diag_embed(self._full(vector), _XP)

    @property
    def covariance_matrix(self) -> Tensor:
        """Dense ``(..., d, d)`` covariance, built on first access (O(d**2) memory)."""
        return self._dense("covariance_matrix", self._variance())

    @property
    def precision_matrix(self) -> Tensor:
        """Dense ``(..., d, d)`` precision, built on first access."""
        return self._dense("precision_matrix", self._precision())

    @property
    def scale_tril(self) -> Tensor:
        """Dense ``(..., d, d)`` Cholesky factor ``diag(scale)``, as MultivariateNormal has."""
        return self._dense("scale_tril", self._scale())

    # -- methods ---------------------------------------------------------------------

    def _value(self, value, name="value"):
        if not isinstance(value, Tensor) or not value.is_floating_point():
            value = _as_tensor(name, value, self._loc)
        shape = value.shape
        if shape[:-1] != self._batch_shape or shape[-1:] != self._event_shape:
            _core.check_value_shape(name, shape, self._batch_shape, self._event_shape[0])
        return value

    def log_prob(self, value: Tensor) -> Tensor:
        """Log density at `value` of shape ``(*sample, *batch, d)``: ``(*sample, *batch)``."""
        return self._log_prob(self._value(value))

    def log_cdf(self, value: Tensor) -> Tensor:
        """Log of the joint CDF ``P(X <= value)``, accurate far in the tails."""
        return self._log_cdf(self._value(value))

    def cdf(self, value: Tensor) -> Tensor:
        """The joint CDF ``P(X <= value)``."""
        return self._log_cdf(self._value(value)).exp()

    def mahalanobis(self, value: Tensor) -> Tensor:
        """The Mahalanobis distance of `value` (not squared)."""
        return self._mahalanobis(self._value(value))

    def entropy(self) -> Tensor:
        """Differential entropy, shape `batch_shape`."""
        out = self._entropy()
        return out if out.shape == self._batch_shape else out.expand(self._batch_shape)

    def rsample(self, sample_shape=torch.Size(), generator=None) -> Tensor:  # noqa: B008
        """Reparameterised samples ``loc + scale * eps``.

        Parameters
        ----------
        sample_shape : torch.Size or tuple
            Leading shape of independent draws.
        generator : torch.Generator or int, optional
            Source of the noise (an int seeds a fresh generator); None uses
            torch's global generator.
        """
        shape = self._extended_shape(sample_shape)
        eps = BACKEND.normal(generator, shape, self._loc.dtype, self._loc.device, _XP)
        return self._reparameterize(eps)

    def sample(self, sample_shape=torch.Size(), generator=None) -> Tensor:  # noqa: B008
        """Samples without gradient; see `rsample`."""
        with torch.no_grad():
            return self.rsample(sample_shape, generator)

    def rsample_and_log_prob(self, sample_shape=torch.Size(), generator=None):  # noqa: B008
        """Reparameterised samples and their log densities, computed from the noise."""
        shape = self._extended_shape(sample_shape)
        eps = BACKEND.normal(generator, shape, self._loc.dtype, self._loc.device, _XP)
        x = self._reparameterize(eps)
        return x, self._log_prob_of_noise(eps)  # eps stays: autograd keeps it for x

    def reparameterize(self, eps: Tensor) -> Tensor:
        """``loc + scale * eps`` for given standard normal noise `eps`."""
        return self._reparameterize(self._value(eps, "eps"))

    def kl_divergence(self, q: Distribution) -> Tensor:
        """``KL(self || q)`` for any registered `q` (see the module docs)."""
        if type(q) is type(self):
            return _kl_diag_diag(self, q)
        return torch.distributions.kl_divergence(self, q)

    def cross_entropy(self, q: Distribution) -> Tensor:
        """``H(self, q) = entropy() + KL(self || q)``; computed directly for a diagonal `q`."""
        if isinstance(q, MultivariateNormalDiag):
            _check_event(self, q)
            return _expand_batch(self._cross_entropy(q), self, q)
        return self.entropy() + self.kl_divergence(q)

    def wasserstein2(self, q: MultivariateNormalDiag) -> Tensor:
        """The 2-Wasserstein distance to another diagonal Gaussian (not squared)."""
        q = _as_diag(q)
        _check_event(self, q)
        return _expand_batch(self._wasserstein2(q), self, q)

    # -- shapes ------------------------------------------------------------------------

    def expand(self, batch_shape, _instance=None):
        """The distribution broadcast to a larger `batch_shape` (views, no copies)."""
        new = self._get_checked_instance(MultivariateNormalDiag, _instance)
        batch_shape = torch.Size(batch_shape)
        shape = batch_shape + self._event_shape
        return type(self)._from_parts(
            self._loc.expand(shape),
            self._param.expand(shape),
            self._kind,
            batch_shape,
            self._validate_args,
            _instance=new,
        )

    def __getitem__(self, index):
        """Index the batch (never the event axis), like the neutral distribution."""
        full = _core.batch_key(index, len(self._batch_shape))
        loc = self._full(self._loc)[full]
        param = self._full(self._param)[full]
        return type(self)._from_parts(loc, param, self._kind, loc.shape[:-1], self._validate_args)

    def marginal(self, dims):
        """The marginal over event coordinates `dims` (an int, slice or sequence of ints)."""
        index = _core.event_dims(dims, self._event_shape[0])
        if not isinstance(index, slice):
            index = torch.tensor(index, device=self._loc.device)
        loc, param = self._loc[..., index], self._param[..., index]
        if loc.shape[-1] == 0:
            raise ValueError(f"dims selects no coordinate: {dims!r}")
        return type(self)._from_parts(
            loc, param, self._kind, self._batch_shape, self._validate_args
        )

    def __repr__(self):
        return (
            f"{type(self).__name__}(loc: {tuple(self._loc.shape)}, {self._kind}: "
            f"{tuple(self._param.shape)}, batch_shape={tuple(self._batch_shape)}, "
            f"event_shape={tuple(self._event_shape)}, {self._loc.dtype})"
        )

    # -- conversions --------------------------------------------------------------------

    def to_independent_normal(self) -> Independent:
        """The same distribution as ``Independent(Normal(loc, scale), 1)``."""
        return Independent(
            Normal(self.loc, self.scale, validate_args=False), 1, validate_args=self._validate_args
        )

    def to_multivariate_normal(self) -> MultivariateNormal:
        """The same distribution as a dense ``MultivariateNormal`` (O(d**2) memory)."""
        return MultivariateNormal(
            self.loc, scale_tril=self.scale_tril, validate_args=self._validate_args
        )

    @classmethod
    def from_distribution(cls, dist, *, event_dims=None, validate_args=None):
        """Convert a torch distribution with a diagonal covariance.

        Parameters
        ----------
        dist : Normal, Independent(Normal), MultivariateNormal, LowRankMultivariateNormal
            A ``Normal`` needs `event_dims`: how many of its rightmost axes form
            the event (flattened into one event axis when more than one). The
            dense forms must have a diagonal covariance.
        event_dims : int, optional
            Only for ``Normal``.

        Raises
        ------
        ValueError
            A covariance with off-diagonal entries, or a missing `event_dims`.
        TypeError
            A distribution of another family.

        Examples
        --------
        >>> import torch
        >>> from torch.distributions import Independent, Normal
        >>> from diaggauss.backends.torch import MultivariateNormalDiag
        >>> base = Independent(Normal(torch.zeros(5, 2), torch.ones(5, 2)), 1)
        >>> MultivariateNormalDiag.from_distribution(base).batch_shape
        torch.Size([5])
        """
        kw = {"validate_args": validate_args}
        from diaggauss import MultivariateNormalDiag as Neutral

        if isinstance(dist, Neutral):
            return cls._from_parts(
                _as_tensor("loc", dist.loc),
                _as_tensor(dist.parameterization, dist._param),
                dist.parameterization,
                torch.Size(dist.batch_shape),
                validate_args if validate_args is not None else Distribution._validate_args,
            )
        if isinstance(dist, MultivariateNormalDiag):
            return cls._from_parts(
                dist._loc, dist._param, dist._kind, dist._batch_shape, dist._validate_args
            )
        if isinstance(dist, Normal):
            if event_dims is None:
                raise ValueError(
                    "event_dims must be given for a Normal: how many rightmost axes form the "
                    "event (1 for a vector)"
                )
            return cls(*_flatten_event(dist.loc, dist.scale, event_dims), **kw)
        if event_dims is not None:
            raise ValueError("event_dims is only for a plain Normal")
        if isinstance(dist, Independent) and isinstance(dist.base_dist, Normal):
            base = dist.base_dist
            return cls(*_flatten_event(base.loc, base.scale, dist.reinterpreted_batch_ndims), **kw)
        if isinstance(dist, MultivariateNormal):
            tril = dist.scale_tril
            diag = tril.diagonal(dim1=-2, dim2=-1)
            if not bool((tril == torch.diag_embed(diag)).all()):
                _check_diagonal(dist.covariance_matrix)
                return cls.from_variance(
                    dist.loc, dist.covariance_matrix.diagonal(dim1=-2, dim2=-1), **kw
                )
            return cls(dist.loc, diag.abs(), **kw)
        if isinstance(dist, LowRankMultivariateNormal):
            w = dist.cov_factor
            gram = w @ w.mT
            _check_diagonal(gram + torch.diag_embed(dist.cov_diag))
            return cls.from_variance(
                dist.loc, gram.diagonal(dim1=-2, dim2=-1) + dist.cov_diag, **kw
            )
        raise TypeError(
            "from_distribution accepts Normal, Independent(Normal), MultivariateNormal and "
            f"LowRankMultivariateNormal; got {type(dist).__qualname__}"
        )


def _flatten_event(loc, scale, event_dims):
    if not isinstance(event_dims, int) or event_dims < 1:
        raise ValueError(f"event_dims must be a positive int; got {event_dims!r}")
    loc, scale = torch.broadcast_tensors(loc, scale)
    if event_dims > loc.dim():
        raise ValueError(
            f"event_dims={event_dims} exceeds the distribution's {loc.dim()} dimensions"
        )
    return loc.flatten(-event_dims), scale.flatten(-event_dims)


def _check_diagonal(cov):
    diag = cov.diagonal(dim1=-2, dim2=-1)
    off = cov - torch.diag_embed(diag)
    scale = (diag.abs().unsqueeze(-1) * diag.abs().unsqueeze(-2)).sqrt()
    tol = 8 * torch.finfo(cov.dtype).eps
    bad = off.abs() > tol * scale
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"the covariance is not diagonal: entry {where} is {float(cov[where]):.6g}; "
            f"MultivariateNormalDiag needs a diagonal covariance"
        )


# -- KL divergences, registered in both directions ---------------------------------------


def _check_event(p, q):
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"KL between distributions of different event shapes: {tuple(p.event_shape)} "
            f"and {tuple(q.event_shape)}"
        )


def _batch_of(p, q):
    if p.batch_shape == q.batch_shape:
        return p.batch_shape
    return torch.broadcast_shapes(p.batch_shape, q.batch_shape)


def _expand_batch(out, p, q):
    if out.shape == p.batch_shape == q.batch_shape:
        return out
    batch = _batch_of(p, q)
    return out if out.shape == batch else out.expand(batch)


def _as_diag(d):
    """`d` as our class (no copy, no validation): ours, or Independent(Normal, 1)."""
    if isinstance(d, MultivariateNormalDiag):
        return d
    if (
        isinstance(d, Independent)
        and isinstance(d.base_dist, Normal)
        and d.reinterpreted_batch_ndims == 1
    ):
        return MultivariateNormalDiag(d.base_dist.loc, d.base_dist.scale, validate_args=False)
    raise NotImplementedError(
        f"no diagonal-Gaussian view of {type(d).__qualname__}: expected "
        "MultivariateNormalDiag or Independent(Normal, 1)"
    )


@register_kl(MultivariateNormalDiag, MultivariateNormalDiag)
def _kl_diag_diag(p, q):
    _check_event(p, q)
    return _expand_batch(p._kl(q), p, q)


@register_kl(MultivariateNormalDiag, Independent)
def _kl_diag_independent(p, q):
    q = _as_diag(q)
    _check_event(p, q)
    return _expand_batch(p._kl(q), p, q)


@register_kl(Independent, MultivariateNormalDiag)
def _kl_independent_diag(p, q):
    p = _as_diag(p)
    _check_event(p, q)
    return _expand_batch(p._kl(q), p, q)


def _half_logdet(dist):
    """``sum(log scale)`` of one of ours, at the precision it computes in."""
    return dist._sum_log_scale(_core.work_dtype(dist._loc.dtype, _XP))


def _tril_solve(tril, rhs):
    return torch.linalg.solve_triangular(tril, rhs, upper=False)


@register_kl(MultivariateNormalDiag, MultivariateNormal)
def _kl_diag_mvn(p, q):
    """0.5 [tr(Sq^-1 Sp) + dm' Sq^-1 dm - d + log|Sq| - log|Sp|], Sp diagonal."""
    _check_event(p, q)
    batch = _batch_of(p, q)
    d = p.event_shape[0]
    tril = q.scale_tril.expand((*batch, d, d))
    # tr(Sq^-1 diag(sp^2)) = ||Lq^-1 diag(sp)||_F^2
    m = _tril_solve(tril, torch.diag_embed(p.scale.expand((*batch, d))))
    delta = (q.loc - p.loc).expand((*batch, d))
    y = _tril_solve(tril, delta.unsqueeze(-1)).squeeze(-1)
    half_logdet_q = tril.diagonal(dim1=-2, dim2=-1).abs().log().sum(-1)
    return (
        0.5 * (m.square().sum((-2, -1)) + y.square().sum(-1) - d) + half_logdet_q - _half_logdet(p)
    )


@register_kl(MultivariateNormal, MultivariateNormalDiag)
def _kl_mvn_diag(p, q):
    """Sq diagonal: tr(Sq^-1 Sp) = sum(diag(Sp) / sq^2), all O(d^2)."""
    _check_event(p, q)
    d = p.event_shape[0]
    tril = p.scale_tril
    diag_sp = tril.square().sum(-1)  # diag(Lp Lp^T)
    prec_q = q._precision()
    u = (q._loc - p.loc) * q._inv_scale()
    half_logdet_p = tril.diagonal(dim1=-2, dim2=-1).abs().log().sum(-1)
    out = (
        0.5 * ((diag_sp * prec_q).sum(-1) + u.square().sum(-1) - d)
        + _half_logdet(q)
        - half_logdet_p
    )
    return _expand_batch(out, p, q)


def _capacitance_tril(w, diag):
    """Cholesky factor of ``I + W^T D^-1 W`` (r by r)."""
    r = w.shape[-1]
    a = w / diag.unsqueeze(-1)
    cap = torch.eye(r, dtype=w.dtype, device=w.device) + w.mT @ a
    return torch.linalg.cholesky(cap), a


@register_kl(MultivariateNormalDiag, LowRankMultivariateNormal)
def _kl_diag_lowrank(p, q):
    """Sq = W W^T + D by Woodbury: O(d r^2), never d by d."""
    _check_event(p, q)
    batch = _batch_of(p, q)
    d = p.event_shape[0]
    w = q.cov_factor.expand(batch + q.cov_factor.shape[-2:])
    dq = q.cov_diag.expand((*batch, d))
    cap_tril, a = _capacitance_tril(w, dq)  # a = D^-1 W
    var_p = p.variance.expand((*batch, d))
    # tr(Sq^-1 Sp) = sum(sp^2 / D) - ||Lc^-1 A^T diag(sp)||_F^2
    b = _tril_solve(cap_tril, a.mT * p.scale.expand((*batch, d)).unsqueeze(-2))
    trace = (var_p / dq).sum(-1) - b.square().sum((-2, -1))
    delta = (q.loc - p.loc).expand((*batch, d))
    c = _tril_solve(cap_tril, (a.mT @ delta.unsqueeze(-1))).squeeze(-1)
    maha = (delta.square() / dq).sum(-1) - c.square().sum(-1)
    logdet_q = 2 * cap_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1) + dq.log().sum(-1)
    return 0.5 * (trace + maha - d + logdet_q) - _half_logdet(p)


@register_kl(LowRankMultivariateNormal, MultivariateNormalDiag)
def _kl_lowrank_diag(p, q):
    """Sq diagonal: tr(Sq^-1 Sp) = sum((rowsum(W^2) + D) / sq^2): O(d r)."""
    _check_event(p, q)
    d = p.event_shape[0]
    w, dp = p.cov_factor, p.cov_diag
    cap_tril, _ = _capacitance_tril(w, dp)
    diag_sp = w.square().sum(-1) + dp
    trace = (diag_sp * q._precision()).sum(-1)
    u = (q._loc - p.loc) * q._inv_scale()
    logdet_p = 2 * cap_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1) + dp.log().sum(-1)
    out = 0.5 * (trace + u.square().sum(-1) - d - logdet_p) + _half_logdet(q)
    return _expand_batch(out, p, q)


# -- mixtures ------------------------------------------------------------------------------


class MixtureDiag(Distribution):
    r"""A mixture of K diagonal Gaussians as a ``torch.distributions.Distribution``.

    The torch counterpart of `diaggauss.MixtureDiag` (like ``MixtureSameFamily``
    over ``Independent(Normal)``, with the pairwise kernel behind `log_prob`).

    Parameters
    ----------
    logits : Tensor of shape (..., K)
    loc : Tensor of shape (..., K, d)
    scale : Tensor of shape (..., K, d)
    validate_args : bool, optional
        Defaults to ``Distribution._validate_args``.

    Examples
    --------
    >>> import torch
    >>> from diaggauss.backends.torch import MixtureDiag
    >>> m = MixtureDiag(torch.zeros(3), torch.randn(3, 2), torch.ones(3, 2))
    >>> m.batch_shape, m.event_shape
    (torch.Size([]), torch.Size([2]))
    >>> m.sample((5,)).shape
    torch.Size([5, 2])
    """

    arg_constraints = {  # noqa: RUF012  (torch's class-level contract)
        "logits": constraints.real_vector,
        "loc": constraints.real_vector,
        "scale": constraints.independent(constraints.positive, 1),
    }
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, logits, loc, scale, validate_args=None):
        from diaggauss import MixtureDiag as Neutral

        if validate_args is None:
            validate_args = Distribution._validate_args
        logits, loc, scale = (
            _as_tensor(n, a, None) for n, a in (("logits", logits), ("loc", loc), ("scale", scale))
        )
        self._mix = Neutral(logits, loc, scale, validate_args=validate_args)
        self._init_shapes(validate_args)

    def _init_shapes(self, validate_args):
        mix = self._mix
        super().__init__(
            torch.Size(mix.batch_shape), torch.Size(mix.event_shape), validate_args=False
        )
        self._validate_args = validate_args

    @classmethod
    def from_neutral(cls, mixture, validate_args=None):
        """Wrap a `diaggauss.MixtureDiag` of torch tensors."""
        new = cls.__new__(cls)
        new._mix = mixture
        new._init_shapes(Distribution._validate_args if validate_args is None else validate_args)
        return new

    @property
    def logits(self) -> Tensor:
        """The unnormalised log weights, shape (..., K)."""
        return self._mix.logits

    @property
    def loc(self) -> Tensor:
        """The component means, shape (..., K, d)."""
        return self._mix.loc

    @property
    def scale(self) -> Tensor:
        """The component standard deviations."""
        return self._mix.scale

    @property
    def weights(self) -> Tensor:
        """``softmax(logits)``."""
        return self._mix.weights

    @property
    def components(self) -> MultivariateNormalDiag:
        """The components as one torch `MultivariateNormalDiag` of batch shape (..., K)."""
        c = self._mix.components
        return MultivariateNormalDiag._from_parts(
            c._loc, c._param, c.parameterization, torch.Size(c.batch_shape), self._validate_args
        )

    @property
    def mean(self) -> Tensor:
        """The mixture mean."""
        return self._mix.mean

    @property
    def variance(self) -> Tensor:
        """The moment-matched variance (computed around the mean)."""
        return self._mix.variance

    def log_prob(self, value: Tensor) -> Tensor:
        """Log density at `value` of shape ``(*sample, *batch, d)``."""
        return self._mix.log_prob(value)

    def cdf(self, value: Tensor) -> Tensor:
        """``P(X <= value)``."""
        return self._mix.cdf(value)

    def responsibilities(self, value: Tensor) -> Tensor:
        """Posterior component probabilities, shape ``(*sample, *batch, K)``."""
        return self._mix.responsibilities(value)

    def collapse(self) -> MultivariateNormalDiag:
        """The moment-matched single diagonal Gaussian."""
        c = self._mix.collapse()
        return MultivariateNormalDiag.from_variance(
            c.loc, c.variance, validate_args=self._validate_args
        )

    def sample(self, sample_shape=torch.Size(), generator=None) -> Tensor:  # noqa: B008
        """Samples (not reparameterised: a component is a discrete draw)."""
        with torch.no_grad():
            return self._mix.sample(tuple(sample_shape), seed=generator)

    def expand(self, batch_shape, _instance=None):
        """The mixture broadcast to a larger `batch_shape`."""
        from diaggauss import MixtureDiag as Neutral

        batch_shape = tuple(batch_shape)
        mix = self._mix
        k = mix.num_components
        logits = mix.logits.expand((*batch_shape, k))
        comps = mix.components.expand((*batch_shape, k))
        new = self._get_checked_instance(MixtureDiag, _instance)
        new._mix = Neutral._from_parts(logits, comps, mix._validate_args)
        new._init_shapes(self._validate_args)
        return new

    def __repr__(self):
        return (
            f"{type(self).__name__}(K={self._mix.num_components}, "
            f"batch_shape={tuple(self.batch_shape)}, event_shape={tuple(self.event_shape)})"
        )
