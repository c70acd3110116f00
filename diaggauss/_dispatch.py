"""Whole-kernel overrides: a library's faster version of one kernel, registered by its adapter.

A kernel is a function of arrays written once in the array API standard and
decorated with `overridable`. An adapter (``diaggauss.backends.<library>``)
may register, with `override`, a complete replacement with the same
signature for arrays of its library, the way array-api-extra delegates whole
functions to a library's native one. The generic kernel never tests which
library it runs on; the choice happens here, once per call, by namespace.

Rules for an override (design.md, Layers 6): it lives in its adapter's
folder, its size thresholds are named constants there, and a test compares
it with the generic kernel on both sides of each threshold, with and without
autograd, eager and compiled, and bit for bit on repeated calls.
"""

from __future__ import annotations

import functools

from ._gaps import gaps_for

__all__ = ["overridable", "override"]

KERNELS: dict = {}


def overridable(generic):
    """Mark `generic` as a kernel that adapters may replace for their library.

    The kernel must take ``xp`` as a keyword (the caller's namespace); the
    wrapper looks up the namespace's override and calls it, or the generic
    body. ``kernel.generic`` is the generic body, for tests.
    """
    name = generic.__name__

    @functools.wraps(generic)
    def kernel(*args, xp, **kwargs):
        impl = gaps_for(xp).overrides.get(name, generic)
        return impl(*args, xp=xp, **kwargs)

    kernel.generic = generic
    KERNELS[name] = kernel
    return kernel


def override(kernel, gaps):
    """Register the decorated function as `gaps`'s library's version of `kernel`.

    Examples
    --------
    In an adapter module::

        @override(_kernels.log_prob, GAPS)
        def log_prob(x, loc, scale, *, half_log_det=None, xp): ...
    """
    if getattr(kernel, "generic", None) is None:
        raise TypeError(f"{kernel!r} is not an overridable kernel")

    def register(fn):
        gaps.overrides[kernel.__name__] = fn
        return fn

    return register
