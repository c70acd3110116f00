"""``diaggauss.backends.torch.MixtureDiag``: the neutral mixture as a torch Distribution."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

import diaggauss as dg
from diaggauss._params import PARAMETERISATIONS, SCALE

from ._distribution import (
    MultivariateNormalDiag,
    TorchProtocol,
    finite_vector,
    positive_finite_vector,
)

__all__ = ["MixtureDiag", "logits_vector"]


class _Logits(constraints.Constraint):
    """Logits the constructor accepts: finite or ``-inf`` (switched off), one at least finite."""

    event_dim = 1

    def check(self, value):
        allowed = (value < math.inf) & ~torch.isnan(value)
        return allowed.all(-1) & (value > -math.inf).any(-1)


#: The mixture's logits: finite or -inf along the component axis, one at least finite.
logits_vector = _Logits()
for _registry in (torch.distributions.transform_to, torch.distributions.biject_to):
    _registry.register(_Logits)(lambda c: torch.distributions.transforms.identity_transform)
# the components' parameters: (K, d) blocks per batch element
_BLOCKS = {
    "real": constraints.independent(finite_vector.base_constraint, 2),
    "positive": constraints.independent(positive_finite_vector.base_constraint, 2),
}


class MixtureDiag(TorchProtocol, dg.MixtureDiag, Distribution):
    r"""A mixture of K diagonal Gaussians as a ``torch.distributions.Distribution``.

    The torch counterpart of `diaggauss.MixtureDiag` (like ``MixtureSameFamily``
    over ``Independent(Normal)``, with the pairwise kernel behind `log_prob`);
    its components are `diaggauss.backends.torch.MultivariateNormalDiag`.

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
        "logits": logits_vector,
        "loc": _BLOCKS["real"],
        **{p.name: _BLOCKS[p.domain] for p in PARAMETERISATIONS.values()},
    }
    support = constraints.real_vector
    has_rsample = False
    _component_class = MultivariateNormalDiag
    _neutral = dg.MixtureDiag

    def __init__(self, logits, loc, scale, validate_args=None):
        self._setup(logits, loc, scale, SCALE, validate_args)

    def _finish(self):
        # torch's code reads `_validate_args` as a bool: the default is resolved now
        if self._validate_args is None:
            self._validate_args = Distribution._validate_args
        self._batch_shape = torch.Size(dg.MixtureDiag._batch_tuple(self))
        self._event_shape = torch.Size(self._components.event_shape)

    @classmethod
    def from_neutral(cls, mixture, validate_args=None):
        """The torch mixture of a `diaggauss.MixtureDiag` of torch tensors."""
        c = mixture.components
        comps = MultivariateNormalDiag._from_parts(c._loc, c._param, c._par, validate_args)
        return cls._from_parts(mixture.logits, comps, validate_args)

    def sample(self, sample_shape=torch.Size(), generator=None) -> Tensor:  # noqa: B008
        """Samples (not reparameterised: a component is a discrete draw)."""
        with torch.no_grad():
            return dg.MixtureDiag.sample(self, tuple(sample_shape), seed=generator)

    def expand(self, batch_shape, _instance=None):
        """The mixture broadcast to a larger `batch_shape`."""
        return dg.MixtureDiag.expand(self, batch_shape)
