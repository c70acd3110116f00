"""The two boundaries of one EM run, as overridable kernels: its start and its loop.

`fit_mixture` (`diaggauss._fit_mixture.run_em`) asks `initial_start` for
the starting parameters of one initialisation and `iterate` for the EM
iterations from them. The generic versions read values on the host: the
loop converts each mean log-likelihood to a float to test convergence, and
the start compares the candidates' scores. A library that traces (JAX under
``jax.jit``) replaces both with versions whose tests stay on traced values
(``diaggauss.backends.jax._em``).
"""

from __future__ import annotations

import math

from ._dispatch import overridable

__all__ = ["initial_start", "iterate"]


@overridable
def initial_start(xc, xsq, steps, k, method, stream, tol, *, xp):
    """``(logits, mc, var)``: the start of one initialisation by `method`.

    `xc` (N, d) is the data centred on its weighted mean and `xsq` its
    squared norms (N,); `steps` holds the design matrix, the weights and the
    EM step (`diaggauss._fit_mixture._Steps`). The candidates of `method`
    (`diaggauss._kmeans.initial_responsibilities`) are screened by a few EM
    iterations and the best kept (`diaggauss._screen.best_start`).

    Examples
    --------
    `diaggauss.fit_mixture` calls it once per initialisation::

        logits, mc, var = initial_start(xc, xsq, steps, k, "kmeans", stream, tol, xp=xp)
    """
    from ._kmeans import initial_responsibilities
    from ._screen import best_start

    start, runs, rows = initial_responsibilities(xc, xsq, steps.w, k, method, stream, xp)
    return best_start(start, runs, rows, steps, tol)


@overridable
def iterate(step, logits, mc, var, *, max_iter, tol, check=None, report=None, xp):
    """Up to `max_iter` EM steps, until the mean log-likelihood changes by less than `tol`.

    ``step(logits, mc, var)`` returns ``(mean log-likelihood, logits, mc,
    var)``; ``check(var)`` raises on a variance it refuses, and
    ``report(n_iter, ll)`` prints progress (both optional).

    Returns ``(logits, mc, var, n_iter, converged, history, last)``:
    `history` the mean log-likelihood before each M-step (a tuple of floats
    here), `last` the final one, or ``-inf`` when `max_iter` is 0.

    Examples
    --------
    >>> import numpy as np
    >>> halve = lambda a, m, v: (-abs(m).sum(), a, m / 2, v)  # a "step" that converges
    >>> out = iterate.generic(halve, 0, np.ones(2), 1, max_iter=50, tol=1e-3, xp=np)
    >>> out[3:5]
    (12, True)
    """
    history = []
    converged = False
    n_iter = 0
    prev = -math.inf
    for n_iter in range(1, max_iter + 1):
        ll, logits, mc, var = step(logits, mc, var)
        if check is not None:
            check(var)
        ll = float(ll)
        history.append(ll)
        if report is not None:
            report(n_iter, ll)
        if abs(ll - prev) < tol:
            converged = True
            break
        prev = ll
    last = history[-1] if history else -math.inf
    return logits, mc, var, n_iter, converged, tuple(history), last
