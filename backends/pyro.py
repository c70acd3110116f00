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

import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin

from diaggauss._shapes import broadcast_shapes
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

    @classmethod
    def infer_shapes(cls, **arg_shapes):
        """``(batch_shape, event_shape)`` of a distribution built from arguments of these shapes.

        Parameters
        ----------
        **arg_shapes
            ``loc=`` and one spread (``scale=``, ``log_scale=``, ``variance=``
            or ``precision=``), each a shape ``(..., d)`` (or ``()`` for a number).

        Examples
        --------
        >>> from diaggauss.backends.pyro import MultivariateNormalDiag
        >>> MultivariateNormalDiag.infer_shapes(loc=(5, 2), scale=(2,))
        (torch.Size([5]), torch.Size([2]))
        """
        unknown = set(arg_shapes) - set(cls.arg_constraints)
        if unknown or "loc" not in arg_shapes or len(arg_shapes) != 2:
            raise ValueError(
                f"infer_shapes takes loc and one of {sorted(set(cls.arg_constraints) - {'loc'})}"
                f"; got {sorted(arg_shapes)}"
            )
        names, shapes = zip(*((n, tuple(s)) for n, s in arg_shapes.items()), strict=True)
        if not arg_shapes["loc"]:
            raise ValueError("loc must have at least one dimension, the event axis")
        full = broadcast_shapes(*(s if s else (1,) for s in shapes), names=names)
        return torch.Size(full[:-1]), torch.Size(full[-1:])
