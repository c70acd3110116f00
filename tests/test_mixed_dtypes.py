"""Two distributions, one of NumPy arrays: the other's library and dtype win, as for values.

``log_prob`` converts NumPy data to the distribution's dtype; so do KL,
cross-entropy and W2 with a distribution of NumPy arrays (a float32 torch
distribution against a float64 NumPy one is float32, both ways), and with
JAX at float32 (no x64) no float64 reaches JAX, so it does not warn of
truncation.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_python

import diaggauss as dg

LOC = np.array([0.3, -1.0, 2.0])
SCALE = np.array([0.5, 1.5, 2.0])


def _ref_kl(mp, sp, mq, sq):
    return float(np.sum(np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5))


def test_torch_float32_against_numpy_float64_is_float32_both_ways():
    torch = pytest.importorskip("torch")
    from diaggauss.backends.torch import MultivariateNormalDiag

    p = MultivariateNormalDiag(torch.zeros(3), torch.ones(3))
    q = dg.MultivariateNormalDiag(LOC, SCALE)  # float64
    assert p.log_prob(LOC).dtype == torch.float32  # the documented rule, for values
    for method in ("kl_divergence", "cross_entropy", "wasserstein2"):
        for a, b in ((p, q), (q, p)):
            out = getattr(a, method)(b)
            assert isinstance(out, torch.Tensor)
            assert out.dtype == torch.float32, (method, out.dtype)
    np.testing.assert_allclose(float(p.kl_divergence(q)), _ref_kl(0, 1, LOC, SCALE), rtol=1e-6)
    np.testing.assert_allclose(float(q.kl_divergence(p)), _ref_kl(LOC, SCALE, 0, 1), rtol=1e-6)
    # a float64 framework distribution keeps float64 against NumPy float32
    p64 = MultivariateNormalDiag(torch.zeros(3, dtype=torch.float64), torch.ones(3).double())
    q32 = dg.MultivariateNormalDiag(LOC.astype(np.float32), SCALE.astype(np.float32))
    assert p64.kl_divergence(q32).dtype == torch.float64


def test_jax_float32_against_numpy_float64_does_not_warn():
    pytest.importorskip("jax")
    out = run_python(
        """
        import warnings
        warnings.simplefilter("error")
        import numpy as np, jax.numpy as jnp, diaggauss as dg
        p = dg.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3))
        q = dg.MultivariateNormalDiag(np.array([0.3, -1.0, 2.0]), np.array([0.5, 1.5, 2.0]))
        for a, b in ((p, q), (q, p)):
            for m in ("kl_divergence", "cross_entropy", "wasserstein2"):
                r = getattr(a, m)(b)
                print(m, type(r).__module__.split(".")[0], r.dtype)
        print(float(p.kl_divergence(q)))
        """,
        JAX_ENABLE_X64="0",
        JAX_PLATFORMS="cpu",
    )
    lines = out.splitlines()
    assert all(line.endswith("jaxlib float32") for line in lines[:6]), out
    np.testing.assert_allclose(float(lines[6]), _ref_kl(0, 1, LOC, SCALE), rtol=1e-6)
