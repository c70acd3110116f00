"""``diaggauss.backends.torch.MultivariateNormalDiag``: the neutral distribution as a torch one.

A subclass of both `diaggauss.MultivariateNormalDiag` (construction, shapes,
indexing, ``expand``, ``marginal`` and every formula) and
``torch.distributions.Distribution`` (the protocol torch code expects). What
is here is only what torch's protocol adds: ``torch.Size`` shapes,
constraints, ``rsample``/``sample`` with a ``torch.Generator``, torch's
validation default, dense matrix views, and KL dispatch through torch's
registry.
"""

from __future__ import annotations

import array_api_compat.torch as _XP
import torch
from torch import Tensor
from torch.distributions import (
    Distribution,
    Independent,
    MultivariateNormal,
    Normal,
    constraints,
)

import diaggauss as dg
from diaggauss._params import PARAMETERISATIONS, SCALE
from diaggauss._validation import _flat

from ._gaps import _is_compiling, _is_wrapped

# Up to this many results are checked for NaN on the host (a reduction costs more).
_FEW_VALUES = 64

__all__ = [
    "MultivariateNormalDiag",
    "TorchProtocol",
    "finite_vector",
    "positive_finite_vector",
]


class _Finite(constraints.Constraint):
    """Finite real numbers: what the constructors accept for `loc` and a log-scale."""

    def check(self, value):
        return torch.isfinite(value)


class _PositiveFinite(constraints.Constraint):
    """Positive, finite numbers: what the constructors accept for a scale or a variance."""

    def check(self, value):
        return (value > 0) & torch.isfinite(value)


#: Vectors of finite numbers, and of positive finite ones (the constructors' checks).
finite_vector = constraints.independent(_Finite(), 1)
positive_finite_vector = constraints.independent(_PositiveFinite(), 1)
# unconstrained parameters map onto them as onto real and positive numbers
for _registry in (torch.distributions.transform_to, torch.distributions.biject_to):
    _registry.register(_Finite)(lambda c: torch.distributions.transforms.identity_transform)
    _registry.register(_PositiveFinite)(lambda c: torch.distributions.transforms.ExpTransform())
_CONSTRAINTS = {"positive": positive_finite_vector, "real": finite_vector}


class TorchProtocol:
    """What torch's protocol adds to both torch classes: ``torch.Size`` shapes, its default.

    ``_batch_shape`` and ``_event_shape`` are set where the neutral class sets
    its fields; values keep torch's argument name, ``value``. `_neutral` is the
    neutral class whose methods do the work.
    """

    @classmethod
    def _default_validate_args(cls) -> bool:
        return Distribution._validate_args

    @property
    def batch_shape(self) -> torch.Size:
        """The batch's shape."""
        return self._batch_shape

    @property
    def event_shape(self) -> torch.Size:
        """``(d,)``."""
        return self._event_shape

    def log_prob(self, value: Tensor) -> Tensor:
        """Log density at `value` of shape ``(*sample, *batch, d)``: ``(*sample, *batch)``."""
        return self._validated(value, self._neutral.log_prob)

    def cdf(self, value: Tensor) -> Tensor:
        """The joint CDF ``P(X <= value)``."""
        return self._validated(value, self._neutral.cdf)

    def _validated(self, value, method):
        """``method(value)``, with `value` checked against the support where validating.

        As torch does, an invalid value raises torch's own `ValueError`
        ("Expected value argument ..."). The support is every real vector, so
        only NaN is outside it, and a NaN value gives a NaN result: the check
        reads the result (one host read, of the batch rather than the value;
        none under ``torch.compile``).
        """
        out = method(self, value)  # NumPy data converts there; other libraries are refused
        if not self._validate_args or _is_compiling() or _is_wrapped(out):
            return out
        if out.numel() <= _FEW_VALUES and out.is_cpu:
            total = out.tolist()
            if isinstance(total, list):
                nested = total and isinstance(total[0], list)
                total = sum(_flat(total) if nested else total)
            bad = total != total  # NaN in, NaN out
        else:
            bad = bool(torch.isnan(out).any())
        if bad:
            self._validate_sample(torch.as_tensor(value, dtype=self.dtype, device=self.device))
        return out


class MultivariateNormalDiag(TorchProtocol, dg.MultivariateNormalDiag, Distribution):
    r"""A batch of multivariate normals with diagonal covariance, as a torch Distribution.

    ``N(loc, diag(scale**2))`` over the last axis: ``batch_shape =
    broadcast(loc.shape[:-1], scale.shape[:-1])``, ``event_shape = (d,)``. A
    drop-in for ``MultivariateNormal(loc, scale_tril=diag_embed(scale))`` and
    ``Independent(Normal(loc, scale), 1)``, without d-by-d matrices and with
    the shapes of the former. The spread is kept as given: build from the
    scale (this constructor), the log-scale, the variance or the precision
    (the classmethods of `diaggauss.MultivariateNormalDiag`).

    Parameters
    ----------
    loc : Tensor of shape (..., d)
        Means. NumPy arrays and Python numbers are converted to tensors.
    scale : Tensor of shape (..., d), broadcastable with `loc`, or a number
        Standard deviations, positive and finite.
    validate_args : bool, optional
        As in torch: defaults to ``Distribution._validate_args``. Validation of
        the parameters costs one host sync; under ``torch.compile`` and
        ``torch.func`` transforms it is skipped.

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

    #: Every parameter the constructors accept, as MultivariateNormal lists all of its own.
    _neutral = dg.MultivariateNormalDiag
    arg_constraints = {  # noqa: RUF012  (torch's class-level contract)
        "loc": finite_vector,
        **{p.name: _CONSTRAINTS[p.domain] for p in PARAMETERISATIONS.values()},
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self._setup(loc, scale, SCALE, validate_args)

    # -- the neutral class's hooks ------------------------------------------------------

    _own_namespace = _XP

    def _init_parts(self, loc, param, par, validate_args, xp=None, batch=None):
        # torch resolves the default when a distribution is built, and its own
        # code (Independent, expand) reads `_validate_args` as a bool
        if validate_args is None:
            validate_args = Distribution._validate_args
        super()._init_parts(loc, param, par, validate_args, _XP, batch)
        if batch is None:
            batch = self._batch_tuple()
        self._batch_shape = batch if type(batch) is torch.Size else torch.Size(batch)
        self._event_shape = loc.shape[-1:]

    # -- torch's names for the values --------------------------------------------------

    def log_cdf(self, value: Tensor) -> Tensor:
        """Log of the joint CDF ``P(X <= value)``, accurate far in the tails."""
        return self._validated(value, self._neutral.log_cdf)

    def mahalanobis(self, value: Tensor) -> Tensor:
        """The Mahalanobis distance of `value` (not squared)."""
        return self._validated(value, self._neutral.mahalanobis)

    # -- sampling ---------------------------------------------------------------------

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
        return dg.MultivariateNormalDiag.sample(self, sample_shape, seed=generator)

    def sample(self, sample_shape=torch.Size(), generator=None) -> Tensor:  # noqa: B008
        """Samples without gradient; see `rsample`."""
        with torch.no_grad():
            return self.rsample(sample_shape, generator)

    def rsample_and_log_prob(self, sample_shape=torch.Size(), generator=None):  # noqa: B008
        """Reparameterised samples and their log densities, computed from the noise."""
        return self.sample_and_log_prob(sample_shape, seed=generator)

    # -- two distributions -------------------------------------------------------------

    def kl_divergence(self, q: Distribution) -> Tensor:
        """``KL(self || q)`` for any `q` with a registered KL (see the module docs)."""
        if isinstance(q, dg.MultivariateNormalDiag):
            return super().kl_divergence(q)
        return torch.distributions.kl_divergence(self, q)

    def cross_entropy(self, q: Distribution) -> Tensor:
        """``H(self, q) = entropy() + KL(self || q)``; computed directly for a diagonal `q`."""
        if isinstance(q, dg.MultivariateNormalDiag):
            return super().cross_entropy(q)
        return self.entropy() + self.kl_divergence(q)

    def wasserstein2(self, q) -> Tensor:
        """The 2-Wasserstein distance to another diagonal Gaussian (not squared)."""
        if isinstance(q, Independent):
            q = type(self).from_distribution(q, validate_args=False)
        return super().wasserstein2(q)

    # -- shapes --------------------------------------------------------------------------

    def expand(self, batch_shape, _instance=None):
        """The distribution broadcast to a larger `batch_shape` (views, no copies)."""
        return dg.MultivariateNormalDiag.expand(self, batch_shape)

    # -- dense views, as MultivariateNormal has them -------------------------------------

    @property
    def covariance_matrix(self) -> Tensor:
        """Dense ``(..., d, d)`` covariance (O(d**2) memory)."""
        return torch.diag_embed(self.variance)

    @property
    def precision_matrix(self) -> Tensor:
        """Dense ``(..., d, d)`` precision."""
        return torch.diag_embed(self.precision)

    @property
    def scale_tril(self) -> Tensor:
        """Dense ``(..., d, d)`` Cholesky factor ``diag(scale)``."""
        return torch.diag_embed(self.scale)

    # -- conversions ---------------------------------------------------------------------

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
