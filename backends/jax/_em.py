"""JAX's EM: whole steps over the rows of a mesh, and the start and loop traced under jit.

The E-step and M-step (`em_step`, `m_step`) are one jitted function each: a
matrix product over the design matrix ``[xc**2, xc, 1]``, one exponential,
and one product ``resp.T @ xa`` for the (K, 2d + 1) sums, as partial sums of
`SUM_ROWS` rows (XLA schedules the memory). Where the rows are split over a
mesh (the mesh in context, ``jax.set_mesh``, or a concrete array's own), the
step runs per device on its rows (``jax.shard_map``) and the sums, the
log-likelihood and the total weight are added by one ``psum``: one
all-reduce per step, nothing N-sized moves. The exact variances, rare, sit
behind a `lax.cond` (their own all-reduce, only when taken).

Under a trace (``jax.jit`` of `diaggauss.fit_mixture`) the loop (`iterate`)
is a `lax.while_loop` with the convergence test on traced values, and the
start (`initial_start`) screens every k-means restart on traced scores
instead of reading them: nothing reaches the host. A sharded start runs the
same way (its gathers and cumulative sums left to XLA, under
``jax.sharding.auto_axes`` on an Explicit mesh). Eager, unsharded data keeps
the generic start and loop, so its results are unchanged.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from diaggauss import _em, _em_loop, _kmeans, _screen
from diaggauss._dispatch import override

from . import GAPS, JaxStream

# Rows per partial sum of the EM step: one float32 dot or reduction over a million
# rows kept 4e-5 of the variances, partial sums of this many keep 1e-6.
SUM_ROWS = 4096


def row_mesh(a):
    """The mesh whose devices split the rows of `a`, or None (one device, or rows indivisible).

    The mesh in context (``jax.set_mesh``), else that of a concrete array's
    `NamedSharding`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> row_mesh(jnp.zeros((8, 2))) is None
    True
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        sharding = None if isinstance(a, jax.core.Tracer) else getattr(a, "sharding", None)
        mesh = getattr(sharding, "mesh", None)
        if mesh is None or mesh.empty:
            return None
    if mesh.size <= 1 or a.shape[0] % mesh.size:
        return None
    return mesh


def in_auto(f, out_sharding):
    """`f` with the context mesh's Explicit axes made Auto (XLA places its collectives).

    `out_sharding` is the ``PartitionSpec`` (or tree of them) of its results.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from jax.sharding import PartitionSpec as P
    >>> in_auto(jnp.cumsum, P())(jnp.ones(3))  # no mesh in context: `f` itself
    Array([1., 2., 3.], dtype=float32)
    """
    mesh = jax.sharding.get_abstract_mesh()
    axes = tuple(
        n for n, t in zip(mesh.axis_names, mesh.axis_types, strict=True) if t == AxisType.Explicit
    )
    if not axes:
        return f
    return jax.sharding.auto_axes(f, axes=axes, out_sharding=out_sharding)


def over_rows(body, mesh, rows, rest):
    """``body(*rows, *rest, axes=...)`` on each device's rows of `rows`; results replicated.

    `axes` names the mesh axes to ``psum`` over (None without a mesh: one call).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> def total(x, *, axes):
    ...     s = jnp.sum(x)
    ...     return s if axes is None else jax.lax.psum(s, axes)
    >>> over_rows(total, None, (jnp.ones(8),), ())
    Array(8., dtype=float32)
    """
    if mesh is None:
        return body(*rows, *rest, axes=None)
    axes = tuple(mesh.axis_names)
    split = len(rows)
    if AxisType.Explicit in mesh.axis_types:  # typed shardings must match the specs
        rows = tuple(jax.sharding.reshard(a, P(axes)) for a in rows)
    per_device = jax.shard_map(
        lambda *a: body(*a[:split], *a[split:], axes=axes),
        mesh=mesh,
        in_specs=(*(P(axes),) * split, *(P(),) * len(rest)),
        out_specs=P(),
    )
    return per_device(*rows, *rest)


def _psum(tree, axes):
    return tree if axes is None else jax.lax.psum(tree, axes)


def _blocked(a, b):
    """``a @ b`` over the rows of `b` (N, D), as partial products of `SUM_ROWS` rows, added."""
    n = b.shape[0]
    c = n // SUM_ROWS
    out = a[:, c * SUM_ROWS :] @ b[c * SUM_ROWS :]
    if c:
        parts = jnp.einsum(
            "kcr,crd->ckd",
            a[:, : c * SUM_ROWS].reshape(a.shape[0], c, SUM_ROWS),
            b[: c * SUM_ROWS].reshape(c, SUM_ROWS, b.shape[1]),
        )
        out = out + jnp.sum(parts, axis=0)
    return out


def _finish(xa, rw, sums, reg_covar, axes):
    """Log weights, centred means and variances from the summed statistics."""
    logits, mc, var, nk, unresolved = _em.moments(sums, xa.dtype, reg_covar, xp=jnp)
    d = mc.shape[1]

    def exact():
        # rare (tight components far from the centre): the (N, K, d) form, fused by XLA
        dev = xa[:, None, d : 2 * d] - mc[None, :, :]
        direct = _psum(jnp.sum(rw[:, :, None] * (dev * dev), axis=0), axes) / nk[:, None]
        # a float64 start with float32 points: the step's own dtype, as `moments` gives
        return jnp.where(unresolved, direct.astype(var.dtype), var)

    var = jax.lax.cond(jnp.any(unresolved), exact, lambda: var)
    return logits, mc, var + reg_covar


def _step_body(xa, w, logits, mc, var, reg_covar, *, axes):
    b = _em.natural(logits, mc, var, xp=jnp)
    e, total, norm = _em.normalise(xa @ b, -1, jnp)
    llsum = _blocked((w * norm[:, 0])[None, :], jnp.ones_like(xa[:, :1]))[0, 0]
    rw = e * (w[:, None] / total)
    llsum, wsum, sums = _psum((llsum, jnp.sum(w), _blocked(rw.T, xa)), axes)
    return (llsum / wsum, *_finish(xa, rw, sums, reg_covar, axes))


def _m_body(xa, w, resp, reg_covar, *, axes):
    rw = resp * w[:, None]
    return _finish(xa, rw, _psum(_blocked(rw.T, xa), axes), reg_covar, axes)


@functools.partial(jax.jit, static_argnames="mesh")
def _em_step(xa, w, logits, mc, var, reg_covar, mesh=None):
    return over_rows(_step_body, mesh, (xa, w), (logits, mc, var, reg_covar))


@functools.partial(jax.jit, static_argnames="mesh")
def _m_step(xa, w, resp, reg_covar, mesh=None):
    return over_rows(_m_body, mesh, (xa, w, resp), (reg_covar,))


@override(_em.em_step, GAPS)
def em_step(xa, w, logits, mc, var, reg_covar, *, reach=None, xp):
    """`diaggauss._em.em_step` compiled whole, once per shape; per device over a mesh's rows.

    The generic step where the E-step must be redone at float64.
    """
    if _em.needs_float64(reach, mc, var, xp=xp):
        return _em.em_step.generic(xa, w, logits, mc, var, reg_covar, reach=reach, xp=xp)
    return _em_step(xa, w, logits, mc, var, reg_covar, mesh=row_mesh(xa))


@override(_em.m_step, GAPS)
def m_step(xa, w, resp, reg_covar, *, xp):
    """`diaggauss._em.m_step` as one product, per device over a mesh's rows.

    Eager unsharded data keeps the generic kernel (and its bits).
    """
    mesh = row_mesh(xa)
    if mesh is None and GAPS.is_concrete(xa, resp):
        return _em.m_step.generic(xa, w, resp, reg_covar, xp=xp)
    return _m_step(xa, w, resp, reg_covar, mesh=mesh)


@override(_em_loop.iterate, GAPS)
def iterate(step, logits, mc, var, *, max_iter, tol, check=None, report=None, xp):
    """`diaggauss._em_loop.iterate`; under a trace a `lax.while_loop` (at most `max_iter` steps).

    Traced, `history` is an array of `max_iter` values, NaN after the
    `n_iter` steps taken, and `n_iter`, `converged`, `last` are arrays.
    """
    if GAPS.is_concrete(logits, mc, var):
        return _em_loop.iterate.generic(
            step, logits, mc, var, max_iter=max_iter, tol=tol, check=check, report=report, xp=xp
        )
    # the loop carries the step's dtypes (a float64 start of float32 points comes out float32)
    shapes = jax.eval_shape(step, logits, mc, var)[1:]
    logits, mc, var = (a.astype(s.dtype) for a, s in zip((logits, mc, var), shapes, strict=True))
    dtype = mc.dtype

    def cond(c):
        return (c[0] < max_iter) & ~c[1]

    def body(c):
        i, _, prev, history, params = c
        ll, *params = step(*params)
        if check is not None:
            check(params[2])
        if report is not None:
            jax.debug.callback(report, i + 1, ll)
        return i + 1, jnp.abs(ll - prev) < tol, ll, history.at[i].set(ll), tuple(params)

    start = (
        jnp.asarray(0, jnp.int32),
        jnp.asarray(False),
        jnp.asarray(-jnp.inf, dtype),
        jnp.full((max_iter,), jnp.nan, dtype),
        (logits, mc, var),
    )
    if not max_iter:  # nothing to run (and nothing to index in an empty history)
        return logits, mc, var, *start[:2], start[3], start[2]
    n_iter, converged, last, history, (logits, mc, var) = jax.lax.while_loop(cond, body, start)
    return logits, mc, var, n_iter, converged, history, last


@override(_em_loop.initial_start, GAPS)
def initial_start(xc, xsq, steps, k, method, stream, tol, *, xp):
    """`diaggauss._em_loop.initial_start`, traced (and per device) where traced or sharded.

    Eager unsharded data keeps the generic start.
    """
    mesh = row_mesh(xc)
    if mesh is None and GAPS.is_concrete(xc):
        return _em_loop.initial_start.generic(xc, xsq, steps, k, method, stream, tol, xp=xp)

    def start(xc, xsq, xa, w, key):
        # the key goes in and out as an array: Auto axes refuse an Explicit one closed over
        inner = JaxStream(key)
        params = _traced_start(xc, xsq, xa, w, k, method, inner, tol, steps.reg_covar)
        return params, inner.key

    # eager sharded data and no mesh in context: its own (else new arrays sit on one device)
    own = mesh is not None and jax.sharding.get_abstract_mesh().empty
    with jax.set_mesh(mesh) if own else contextlib.nullcontext():
        params, stream.key = in_auto(start, P())(xc, xsq, steps.xa, steps.w, stream.key)
    return params


def _traced_start(xc, xsq, xa, w, k, method, stream, tol, reg_covar):
    """`initial_start` with no value read: the k-means runs and their screening traced."""
    if method != "kmeans":
        start, _, _ = _kmeans.initial_responsibilities(xc, xsq, w, k, method, stream, jnp)
        return m_step(xa, w, start(None), reg_covar, xp=jnp)
    runs = _kmeans.KMEANS_RESTARTS
    rows = _kmeans._sample(xc, xsq, w, k, stream, jnp)
    x, x2, w1 = _kmeans._single(xc, xsq, w, jnp)
    if rows is None:
        xs, ssq, ws = x, x2, w1
    else:
        xs, ssq = jnp.take(x, rows, axis=0), jnp.take(x2, rows, axis=0)
        ws = jnp.ones((rows.shape[0],), dtype=w1.dtype)
    seeds = _kmeans.kmeans_plusplus(xs, ssq, ws, k, stream, jnp, runs=runs)
    seeds = jnp.take(xs, seeds.reshape(-1), axis=0).reshape(runs, k, -1)
    centres = _lloyd(xs, ws, seeds, _kmeans.KMEANS_SAMPLE_ITER)
    score = _kmeans._nearest(xs, centres, jnp)[1]
    inertia = jnp.sum(ws[:, None] * (ssq[:, None] - 2.0 * jnp.max(score, axis=2)), axis=0)
    labels = _kmeans._nearest(xs if rows is None else x, centres, jnp)[0]

    def start(idx):
        return _kmeans.one_hot(labels if idx is None else labels[idx], k, xc.dtype, jnp)

    # the generic start drops a clustering found again; where one is all that is left it
    # takes no screening. Several distinct ones screen as here (a repeat is only a tie).
    once = jnp.all(jnp.abs(inertia[1:] - inertia[0]) <= 1e-5 * jnp.abs(inertia[0]))
    return jax.lax.cond(
        once,
        lambda: m_step(xa, w, start(None)[:, :k], reg_covar, xp=jnp),
        lambda: _screened(start, runs, rows, xa, w, k, tol, reg_covar),
    )


def _screened(start, runs, rows, xa_all, w_all, k, tol, reg_covar):
    """`diaggauss._screen.best_start` on traced values: the runs ranked by traced scores."""
    n = xa_all.shape[0] if rows is None else rows.shape[0]
    at = np.arange(n)
    fit, held = jnp.asarray(at[at % _screen.HOLD_OUT != 0]), jnp.asarray(at[:: _screen.HOLD_OUT])
    if rows is not None:
        fit, held = rows[fit], rows[held]
    xa, w = jnp.take(xa_all, fit, axis=0), jnp.take(w_all, fit, axis=0)
    if rows is not None:  # the sample is drawn by weight
        w = jnp.ones_like(w)
    params = _screen._start(xa, w, start(fit), runs, reg_covar, jnp)

    def body(c):
        i, _, prev, params = c
        ll, params = _screen._pass(xa, w, params, runs, jnp, reg_covar)
        return i + 1, (i > 0) & jnp.all(jnp.abs(ll - prev) < tol), ll, params

    first = (
        jnp.asarray(0, jnp.int32),
        jnp.asarray(False),
        jnp.zeros(runs, _em._acc_dtype(xa.dtype, jnp)),
        params,
    )
    params = jax.lax.while_loop(lambda c: (c[0] < _screen.SCREEN_ITER) & ~c[1], body, first)[3]
    check = jnp.take(xa_all, held, axis=0)
    weight = jnp.take(w_all, held, axis=0) if rows is None else jnp.ones(held.shape, w.dtype)
    best = jnp.argmax(_screen._pass(check, weight, params, runs, jnp)[0]) * k
    if rows is None:  # the winner goes on from its screening
        return tuple(jax.lax.dynamic_slice_in_dim(a, best, k, axis=0) for a in params)
    chosen = jax.lax.dynamic_slice_in_dim(start(None), best, k, axis=1)
    return m_step(xa_all, w_all, chosen, reg_covar, xp=jnp)


def _lloyd(x, w, centres, max_iter):
    """`diaggauss._kmeans.lloyd`'s centres (R, K, d), as a `lax.while_loop` on traced moves."""
    runs, k, d = centres.shape
    xw = x * w[:, None]

    def body(c):
        i, labels, centres, _ = c
        onehot_t = _kmeans.one_hot(labels, k, x.dtype, jnp).T  # (R K, N)
        counts = (onehot_t @ w).reshape(runs, k)
        sums = (onehot_t @ xw).reshape(runs, k, d)
        safe = jnp.where(counts > 0, counts, jnp.ones_like(counts))
        # an empty cluster keeps its centre
        centres = jnp.where(counts[:, :, None] > 0, sums / safe[:, :, None], centres)
        new = _kmeans._nearest(x, centres, jnp)[0]
        moved = jnp.max(jnp.sum((new != labels).astype(jnp.int32), axis=0))
        return i + 1, new, centres, moved <= _kmeans.LLOYD_TOL * x.shape[0]

    labels = _kmeans._nearest(x, centres, jnp)[0]
    start = (jnp.asarray(0, jnp.int32), labels, centres, jnp.asarray(False))
    return jax.lax.while_loop(lambda c: (c[0] < max_iter) & ~c[3], body, start)[2]
