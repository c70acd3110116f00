"""KL divergences of `MultivariateNormalDiag`, registered with torch in both directions.

Against itself and ``Independent(Normal, 1)``: the core's O(d) kernel.
Against ``MultivariateNormal``: O(d**2) one way, a triangular solve the other.
Against ``LowRankMultivariateNormal``: Woodbury, O(d r**2), never d by d.
"""

from __future__ import annotations

import torch
from torch.distributions import Independent, LowRankMultivariateNormal, MultivariateNormal, Normal
from torch.distributions.kl import register_kl

import diaggauss as dg

from ._distribution import MultivariateNormalDiag

__all__ = []


def _check_event(p, q):
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"KL between distributions of different event shapes: {tuple(p.event_shape)} "
            f"and {tuple(q.event_shape)}"
        )


def _batch_of(p, q):
    if p.batch_shape == q.batch_shape:
        return p.batch_shape
    try:
        return torch.broadcast_shapes(p.batch_shape, q.batch_shape)
    except RuntimeError:
        raise ValueError(
            f"KL between batches that do not broadcast: p has batch_shape "
            f"{tuple(p.batch_shape)} and q has {tuple(q.batch_shape)}"
        ) from None


def _expand_batch(out, p, q):
    batch = _batch_of(p, q)
    return out if out.shape == batch else out.expand(batch)


def _as_diag(d):
    """`d` as one of ours (no copy, no validation): ours, or Independent(Normal, 1)."""
    if isinstance(d, dg.MultivariateNormalDiag):
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


def _kl_diagonal(p, q):
    p, q = _as_diag(p), _as_diag(q)
    _check_event(p, q)
    _batch_of(p, q)
    return dg.MultivariateNormalDiag.kl_divergence(p, q)


register_kl(MultivariateNormalDiag, MultivariateNormalDiag)(_kl_diagonal)
register_kl(MultivariateNormalDiag, Independent)(_kl_diagonal)
register_kl(Independent, MultivariateNormalDiag)(_kl_diagonal)


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
        0.5 * (m.square().sum((-2, -1)) + y.square().sum(-1) - d)
        + half_logdet_q
        - p.log_scale.sum(-1)
    )


@register_kl(MultivariateNormal, MultivariateNormalDiag)
def _kl_mvn_diag(p, q):
    """Sq diagonal: tr(Sq^-1 Sp) = sum(diag(Sp) / sq^2), all O(d^2)."""
    _check_event(p, q)
    d = p.event_shape[0]
    tril = p.scale_tril
    diag_sp = tril.square().sum(-1)  # diag(Lp Lp^T)
    u = (q.loc - p.loc) / q.scale
    half_logdet_p = tril.diagonal(dim1=-2, dim2=-1).abs().log().sum(-1)
    out = (
        0.5 * ((diag_sp * q.precision).sum(-1) + u.square().sum(-1) - d)
        + q.log_scale.sum(-1)
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
    return 0.5 * (trace + maha - d + logdet_q) - p.log_scale.sum(-1)


@register_kl(LowRankMultivariateNormal, MultivariateNormalDiag)
def _kl_lowrank_diag(p, q):
    """Sq diagonal: tr(Sq^-1 Sp) = sum((rowsum(W^2) + D) / sq^2): O(d r)."""
    _check_event(p, q)
    d = p.event_shape[0]
    w, dp = p.cov_factor, p.cov_diag
    cap_tril, _ = _capacitance_tril(w, dp)
    diag_sp = w.square().sum(-1) + dp
    trace = (diag_sp * q.precision).sum(-1)
    u = (q.loc - p.loc) / q.scale
    logdet_p = 2 * cap_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1) + dp.log().sum(-1)
    out = 0.5 * (trace + u.square().sum(-1) - d - logdet_p) + q.log_scale.sum(-1)
    return _expand_batch(out, p, q)
