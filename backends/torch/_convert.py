"""torch's Gaussians read as diagonal Gaussians (for ``from_distribution``)."""

from __future__ import annotations

import torch
from torch.distributions import Independent, LowRankMultivariateNormal, MultivariateNormal, Normal

from diaggauss import _convert

__all__ = []


@_convert.register_importer
def _import_torch(dist, event_dims):
    """``(loc, param, kind)`` of a torch Normal, Independent(Normal) or diagonal dense Gaussian."""
    if isinstance(dist, Normal):
        if event_dims is None:
            raise _convert.EventDimsNeeded(
                "event_dims must be given for a Normal: how many rightmost axes form the "
                "event (1 for a vector)"
            )
        return (*_flatten_event(dist.loc, dist.scale, event_dims), "scale")
    if not isinstance(dist, Independent | MultivariateNormal | LowRankMultivariateNormal):
        return None
    if event_dims is not None:
        raise ValueError("event_dims is only for a plain Normal")
    if isinstance(dist, Independent):
        base = dist.base_dist
        if not isinstance(base, Normal):
            return None
        return (*_flatten_event(base.loc, base.scale, dist.reinterpreted_batch_ndims), "scale")
    if isinstance(dist, MultivariateNormal):
        tril = dist.scale_tril
        diag = tril.diagonal(dim1=-2, dim2=-1)
        if not bool((tril == torch.diag_embed(diag)).all()):
            _check_diagonal(dist.covariance_matrix)
            return dist.loc, dist.covariance_matrix.diagonal(dim1=-2, dim2=-1), "variance"
        return dist.loc, diag.abs(), "scale"
    w = dist.cov_factor
    gram = w @ w.mT
    _check_diagonal(gram + torch.diag_embed(dist.cov_diag))
    return dist.loc, gram.diagonal(dim1=-2, dim2=-1) + dist.cov_diag, "variance"


def _flatten_event(loc, scale, event_dims):
    if isinstance(event_dims, bool) or not isinstance(event_dims, int) or event_dims < 1:
        raise ValueError(f"event_dims must be a positive int; got {event_dims!r}")
    loc, scale = torch.broadcast_tensors(loc, scale)
    if event_dims > loc.dim():
        raise ValueError(
            f"event_dims={event_dims} exceeds the distribution's {loc.dim()} dimensions"
        )
    return loc.flatten(-event_dims), scale.flatten(-event_dims)


def _check_diagonal(cov):
    diag = cov.diagonal(dim1=-2, dim2=-1)
    off = cov - torch.diag_embed(diag)
    scale = (diag.abs().unsqueeze(-1) * diag.abs().unsqueeze(-2)).sqrt()
    tol = 8 * torch.finfo(cov.dtype).eps
    bad = off.abs() > tol * scale
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"the covariance is not diagonal: entry {where} is {float(cov[where]):.6g}; "
            f"MultivariateNormalDiag needs a diagonal covariance"
        )
