"""The statistics of expectation-maximisation for diagonal mixtures, as kernels.

`e_step` scores every point under every component with one matrix product
(`pairwise_log_prob`); `m_step` turns responsibilities into weights, means
and variances; `em_step` is one of each. All three are pure functions of
arrays; an adapter may replace `em_step` whole (JAX compiles it once).
"""

from __future__ import annotations

from ._dispatch import overridable
from ._gaps import gaps_for
from ._kernels import log_softmax, logsumexp
from ._namespace import device_of
from ._pairwise import pairwise_log_prob

__all__ = ["e_step", "em_step", "m_step"]


def e_step(x, w, logits, loc, var, *, xp):
    """Weighted mean log-likelihood of `x` (N, d) and the (N, K) responsibilities."""
    from ._distribution import MultivariateNormalDiag

    comps = MultivariateNormalDiag._from_parts(loc, var, "variance")
    joint = pairwise_log_prob(x, comps, xp=xp) + log_softmax(logits, -1, xp)[None, :]
    norm = logsumexp(joint, -1, xp)
    ll = xp.sum(w * norm) / xp.sum(w)
    return ll, xp.exp(joint - norm[:, None])


@overridable
def m_step(x, w, resp, reg_covar, *, xp):
    """Log weights, means and variances (K, d) from responsibilities `resp` (N, K).

    Each variance is computed around its own mean. With the data centred on
    its weighted mean, ``E[x**2] - m**2`` comes from two matrix products and
    is resolved unless a component is very tight far from that centre; such
    components are recomputed point by point (where values can be read), so
    float32 never yields negative or zero variances from cancellation.
    """
    rw = resp * w[:, None]
    eps = xp.finfo(x.dtype).eps
    nk = xp.sum(rw, axis=0) + 10 * eps  # (K,); keeps empty components finite, as sklearn
    logits = xp.log(nk / xp.sum(nk))
    rw_t = xp.matrix_transpose(rw)
    center = xp.sum(w[:, None] * x, axis=0, keepdims=True) / xp.sum(w)
    xc = x - center
    mc = (rw_t @ xc) / nk[:, None]
    second = (rw_t @ (xc * xc)) / nk[:, None]
    var = second - mc * mc
    unresolved = var <= 64 * eps * second  # lost (nearly) every digit to cancellation
    if gaps_for(xp).is_concrete(unresolved) and bool(xp.any(unresolved)):
        bad = xp.nonzero(xp.any(unresolved, axis=1))[0]
        exact = _exact_variance(xc, rw, mc, bad, nk, xp)
        rows = xp.reshape(bad, (-1, 1)) == xp.arange(var.shape[0], device=device_of(var))[None, :]
        hit = xp.any(rows, axis=0)[:, None]
        var = xp.where(hit, _scatter_rows(exact, bad, var, xp), var)
    return logits, mc + center, var + reg_covar


def _exact_variance(xc, rw, mc, comps, nk, xp):
    """``sum_n rw[n, k] (x_n - m_k)**2 / nk`` for the components `comps`, in blocks of points."""
    r = xp.take(rw, comps, axis=1)  # (N, B)
    m = xp.take(mc, comps, axis=0)  # (B, d)
    n, d = xc.shape
    b = m.shape[0]
    rows = max(1, (1 << 20) // max(b * d, 1))
    total = xp.zeros((b, d), dtype=xc.dtype, device=device_of(xc))
    for i in range(0, n, rows):
        j = min(i + rows, n)
        dev = xc[i:j, None, :] - m[None, :, :]
        total = total + xp.sum(r[i:j, :, None] * (dev * dev), axis=0)
    return total / xp.take(nk, comps, axis=0)[:, None]


def _scatter_rows(values, rows, like, xp):
    """An array like `like` with ``values[i]`` at row ``rows[i]`` (other rows arbitrary)."""
    k = like.shape[0]
    onehot = xp.astype(
        xp.reshape(rows, (-1, 1)) == xp.arange(k, device=device_of(like))[None, :], like.dtype
    )  # (B, K)
    return xp.matrix_transpose(onehot) @ values


@overridable
def em_step(x, w, logits, loc, var, reg_covar, *, xp):
    """One E-step and one M-step: ``(mean log-likelihood, logits, loc, var)``."""
    ll, resp = e_step(x, w, logits, loc, var, xp=xp)
    return (ll, *m_step(x, w, resp, reg_covar, xp=xp))
