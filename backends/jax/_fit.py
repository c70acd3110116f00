"""JAX's `diaggauss.fit` moments over the rows of a mesh: per device, then combined exactly.

Each device takes the generic streamed moments of its own rows (blocks about
their first points, `diaggauss._fit.streamed_moments`); one all-reduce of
the (devices, 2d + 1) counts, means and variances then lets every device
combine them exactly about the heaviest device's mean (Chan et al.), as the
generic kernel combines its blocks. Sums of moments about different shifts
cannot be combined in float32 (the cross terms cancel), so the one
collective, an all-reduce of a (devices, 2d + 1) array with each device's
row in its place, gathers the rows instead of adding them; nothing N-sized
moves. Unsharded data keeps the generic kernel.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from diaggauss import _fit
from diaggauss._dispatch import override

from . import GAPS
from ._em import over_rows, row_mesh


@override(_fit.streamed_moments, GAPS)
def streamed_moments(x, w, *, xp):
    """`diaggauss._fit.streamed_moments`, per device where a mesh splits the rows of `x` (N, d)."""
    mesh = row_mesh(x) if x.ndim == 2 else None
    if mesh is None:
        return _fit.streamed_moments.generic(x, w, xp=xp)
    return _sharded(x, w, mesh=mesh)


@functools.partial(jax.jit, static_argnames="mesh")
def _sharded(x, w, mesh):
    rows = (x,) if w is None else (x, w)
    return over_rows(_per_device, mesh, rows, ())


def _per_device(x, w=None, *, axes):
    mean, var = _fit.streamed_moments.generic(x, w, xp=jnp)
    n = jnp.asarray(x.shape[0], x.dtype) if w is None else jnp.sum(w)
    # a device whose rows all weigh 0 has no mean (0 / 0): it adds nothing
    mean, var = (jnp.where(n > 0, a, jnp.zeros_like(a)) for a in (mean, var))
    part = jnp.concatenate([n[None], mean, var])[None, :]
    # each device's row in its own place, zeros elsewhere: the sum (exact) gathers them
    here = jnp.arange(jax.lax.psum(1, axes))[:, None] == jax.lax.axis_index(axes)
    return _combine(jax.lax.psum(jnp.where(here, part, jnp.zeros_like(part)), axes), x.dtype)


def _combine(parts, dtype):
    """Mean and variance from per-device ``[count, mean, variance]`` rows (P, 2d + 1)."""
    d = (parts.shape[1] - 1) // 2
    acc = jnp.float64 if GAPS.has_float64() else dtype
    n, means, var = parts[:, 0], parts[:, 1 : d + 1], parts[:, d + 1 :]
    ref = means[jnp.argmax(n)]
    # offsets from one device's mean: small terms, whatever the data's offset
    offset, n, var = (a.astype(acc) for a in (means - ref, n, var))
    total = jnp.sum(n)
    mean_off = jnp.sum(n[:, None] * offset, axis=0) / total
    spread = offset - mean_off
    m2 = jnp.sum(n[:, None] * var, axis=0) + jnp.sum(n[:, None] * (spread * spread), axis=0)
    return ref + mean_off.astype(dtype), (m2 / total).astype(dtype)
