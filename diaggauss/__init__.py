"""diaggauss: batched Gaussians with a diagonal covariance, for every array library.

One implementation of the math, written against the Python array API
standard, that runs unchanged on NumPy, PyTorch, JAX and any array-API
library, with thin adapters that make it native in each ecosystem
(:mod:`diaggauss.backends`).

Examples
--------
>>> import numpy as np
>>> import diaggauss as dg
>>> mu, log_sigma = np.zeros((5, 2)), np.zeros((5, 2))
>>> d = dg.MultivariateNormalDiag.from_log_scale(mu, log_sigma)
>>> d.batch_shape, d.event_shape
((5,), (2,))
"""

from . import testing
from ._convert import convert
from ._distribution import (
    MultivariateNormalDiag,
    get_default_validate_args,
    set_default_validate_args,
)
from ._estimator import GaussianMixtureDiag
from ._fit import FitInfo, fit, fit_mixture
from ._functional import (
    cdf,
    cross_entropy,
    entropy,
    kl_divergence,
    log_cdf,
    log_ndtr,
    log_prob,
    mahalanobis,
    wasserstein2,
)
from ._gaps import SeedError, ensure_jax_pytrees
from ._mixture import MixtureDiag
from ._pairwise import (
    pairwise_kl_divergence,
    pairwise_log_prob,
    pairwise_mahalanobis,
    pairwise_wasserstein2,
)

__version__ = "0.1.0"

__all__ = [
    "FitInfo",
    "GaussianMixtureDiag",
    "MixtureDiag",
    "MultivariateNormalDiag",
    "SeedError",
    "__version__",
    "cdf",
    "convert",
    "cross_entropy",
    "entropy",
    "fit",
    "fit_mixture",
    "get_default_validate_args",
    "kl_divergence",
    "log_cdf",
    "log_ndtr",
    "log_prob",
    "mahalanobis",
    "pairwise_kl_divergence",
    "pairwise_log_prob",
    "pairwise_mahalanobis",
    "pairwise_wasserstein2",
    "set_default_validate_args",
    "testing",
    "wasserstein2",
]

# JAX imported before diaggauss: register the pytrees now rather than at the
# first construction, so even a NumPy-built distribution can enter jax.jit.
ensure_jax_pytrees()
