"""PyTorch adapter: a real ``torch.distributions.Distribution``, and the core's torch gaps.

``from diaggauss.backends.torch import MultivariateNormalDiag`` is the torch
user's answer to "an efficient multivariate normal with a diagonal
covariance": a subclass of ``torch.distributions.Distribution`` with
constraints, ``expand``, ``rsample``, ``validate_args``, pickling, and KL
divergences registered (both directions) against itself, ``Independent(Normal,
1)``, ``MultivariateNormal`` and ``LowRankMultivariateNormal``. Its
construction, shapes and formulas are the neutral core's.

The folder holds, one idea per file: ``_gaps`` (``torch.Generator`` noise,
version counters), ``_distribution`` and ``_mixture`` (the Distribution
classes), ``_kl`` (the KL registrations), ``_convert`` (torch's
distributions to and from ours) and ``_overrides`` (torch's faster whole
kernels).
"""

from __future__ import annotations

import array_api_compat.torch as _xp
import torch as _torch

from diaggauss import _convert as _conversions
from diaggauss._gaps import gaps_for as _gaps_for
from diaggauss._namespace import register_array_type as _register_array_type

from . import _convert, _kl, _overrides  # noqa: F401  (register on import)
from ._distribution import MultivariateNormalDiag
from ._gaps import GAPS
from ._mixture import MixtureDiag

_conversions.register_native("torch", MultivariateNormalDiag, MixtureDiag)
# known now, so that code compiled before any eager use traces no imports or probes
_gaps_for(_xp)
_register_array_type(_torch.Tensor, _xp)

__all__ = ["GAPS", "MixtureDiag", "MultivariateNormalDiag"]
