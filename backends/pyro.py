"""Pyro adapter: the torch distribution at a ``pyro.sample`` site.

Pyro wants its distributions to carry ``TorchDistributionMixin`` (for
``.to_event``, ``.mask``, shape inference at sample sites). This module adds it
to `diaggauss.backends.torch.MultivariateNormalDiag`; importing it imports
Pyro, so it is a separate module.

Examples
--------
>>> import torch, pyro
>>> from diaggauss.backends.pyro import MultivariateNormalDiag
>>> def model():
...     return pyro.sample("z", MultivariateNormalDiag(torch.zeros(3), torch.ones(3)))
>>> model().shape
torch.Size([3])
"""

from __future__ import annotations

from pyro.distributions.torch_distribution import TorchDistributionMixin

from diaggauss.backends import torch as _torch

__all__ = ["MultivariateNormalDiag"]


class MultivariateNormalDiag(_torch.MultivariateNormalDiag, TorchDistributionMixin):
    """`diaggauss.backends.torch.MultivariateNormalDiag` usable at ``pyro.sample`` sites.

    Same constructor, classmethods and KL registrations (they dispatch on the
    parent class).

    Examples
    --------
    >>> import torch
    >>> from diaggauss.backends.pyro import MultivariateNormalDiag
    >>> MultivariateNormalDiag(torch.zeros(2), torch.ones(2)).to_event(0).event_shape
    torch.Size([2])
    """
