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

from diaggauss import _convert as _conversions

from . import _convert, _kl, _overrides  # noqa: F401  (register on import)
from ._distribution import MultivariateNormalDiag
from ._gaps import GAPS
from ._mixture import MixtureDiag

_conversions.register_native("torch", MultivariateNormalDiag, MixtureDiag)

__all__ = ["GAPS", "MixtureDiag", "MultivariateNormalDiag"]
