"""Conversions to and from other libraries' distribution objects, registered by the adapters.

The core names no adapter here: an object's library is found from its type's
module, the adapter that knows it is imported through the one table in
`diaggauss._gaps` (`ADAPTERS`), and the adapter registers on import the
functions that read or build that library's objects.
"""

from __future__ import annotations

import importlib

from ._gaps import ADAPTERS, load_adapter
from ._namespace import describe

__all__ = [
    "as_diaggauss",
    "convert",
    "export",
    "import_parameters",
    "register_exporter",
    "register_importer",
    "register_native",
]

# fn(dist, event_dims) -> (loc, param, kind) or None for objects it does not know
_IMPORTERS: list = []
# target library ("distrax", "numpyro", "tfp", "scipy", "torch", ...) -> fn(dist) -> object
_EXPORTERS: dict = {}
# target -> the adapter module that registers it (its ADAPTERS prefix)
_EXPORT_PREFIX = {"tfp": "tensorflow_probability"}
# library name -> (distribution class, mixture class) native to it (torch's Distributions)
_NATIVE: dict = {}


class EventDimsNeeded(ValueError):
    """A distribution whose axes are all batch (torch's plain ``Normal``): event_dims is needed."""


def register_native(library, distribution_class, mixture_class):
    """Register the classes `convert` returns for arrays of `library` ("torch")."""
    _NATIVE[library] = (distribution_class, mixture_class)


def register_importer(fn):
    """Register ``fn(dist, event_dims)`` returning ``(loc, param, kind)`` or None."""
    _IMPORTERS.append(fn)
    return fn


def register_exporter(target):
    """Register the decorated ``fn(dist)`` as the conversion to library `target`."""

    def register(fn):
        _EXPORTERS[target] = fn
        return fn

    return register


def import_parameters(dist, event_dims=None):
    """``(loc, param, kind)`` of another library's diagonal Gaussian `dist`.

    Raises
    ------
    TypeError
        No adapter knows `dist` (another family or library).
    """
    load_adapter(dist)
    for fn in _IMPORTERS:
        parts = fn(dist, event_dims)
        if parts is not None:
            return parts
    raise TypeError(
        f"from_distribution does not know {describe(dist)}. It converts diagonal "
        "Gaussians: from_distribution accepts Normal (with event_dims), Independent(Normal), "
        "MultivariateNormal and LowRankMultivariateNormal of torch; MultivariateNormalDiag "
        "and Independent(Normal, 1) of distrax, numpyro and TFP; and SciPy's "
        "multivariate_normal with a diagonal covariance"
    )


def export(dist, target):
    """`dist` as an object of library `target` (its adapter loaded on first use)."""
    if target not in _EXPORTERS:
        prefix = _EXPORT_PREFIX.get(target, target)
        for _, module, prefixes in ADAPTERS:
            if prefix in prefixes:
                importlib.import_module(module)
                break
    return _EXPORTERS[target](dist)


def convert(dist, like, *, device=None):
    """The same distribution in another array library: for checking a model ported across them.

    Parameters
    ----------
    dist : distribution
        A `diaggauss.MultivariateNormalDiag` or `diaggauss.MixtureDiag` (also
        the torch and numpyro classes), or any diagonal Gaussian that
        `MultivariateNormalDiag.from_distribution` reads (torch
        ``Independent(Normal)``, distrax, numpyro, TFP, SciPy).
    like : array, namespace or distribution
        Where to: the library (and, for an array or a distribution, the
        device) of this.
    device : optional
        The target device, overriding `like`'s.

    Returns
    -------
    MultivariateNormalDiag or MixtureDiag
        With arrays of `like`'s library, shared with `dist`'s through DLPack
        where the libraries and devices allow (else copied): for torch, the
        torch classes (``torch.distributions.Distribution`` subclasses); else
        the neutral classes, which every library's arrays fit.

    Examples
    --------
    >>> import numpy as np, torch, jax.numpy as jnp, diaggauss as dg
    >>> from diaggauss.backends.torch import MultivariateNormalDiag
    >>> t = MultivariateNormalDiag(torch.zeros(5, 2), torch.ones(5, 2))
    >>> j = dg.convert(t, jnp)
    >>> type(j).__name__, j.batch_shape, type(j.loc).__module__.split(".")[0]
    ('MultivariateNormalDiag', (5,), 'jaxlib')
    """
    from ._mixture import MixtureDiag
    from ._namespace import device_of, library_name, namespace_of_library

    if not isinstance(dist, MixtureDiag):
        dist = as_diaggauss(dist)
    if isinstance(like, MixtureDiag):
        like = like.loc
    elif _is_distribution(like):
        like = as_diaggauss(like, "like").loc
    xp = namespace_of_library(like)
    if device is None and hasattr(like, "shape") and not hasattr(like, "__name__"):
        device = device_of(like)
    out = dist.to_namespace(xp, device=device)
    native = _NATIVE.get(library_name(xp))
    if native is None:
        return out
    cls = native[1] if isinstance(out, MixtureDiag) else native[0]
    if isinstance(out, cls):
        return out
    if isinstance(out, MixtureDiag):
        comps = native[0]._from_parts(*_parts(out.components), out._validate_args)
        return cls._from_parts(out.logits, comps, out._validate_args)
    return cls._from_parts(*_parts(out), out._validate_args)


def _parts(dist):
    return dist._loc, dist._param, dist._par


def as_diaggauss(dist, name="dist", caller="convert"):
    """`dist` as one of diaggauss's classes: itself, the numpyro class's core, or converted.

    `name` and `caller` are the argument and the function, for the message
    where `dist` needs an ``event_dims`` that `caller` does not take.
    """
    from ._distribution import MultivariateNormalDiag

    if isinstance(dist, MultivariateNormalDiag):
        return dist
    if hasattr(dist, "to_diaggauss"):  # the numpyro class
        return dist.to_diaggauss()
    try:
        return MultivariateNormalDiag.from_distribution(dist)
    except EventDimsNeeded:
        shape = tuple(getattr(dist, "batch_shape", ()))
        raise ValueError(
            f"{name} must be a distribution with an event axis; got a plain {describe(dist)} "
            f"with batch_shape={shape} and event_shape=() (every axis batch), and {caller} "
            f"takes no event_dims: pass Independent({name}, 1), e.g. "
            f"torch.distributions.Independent(Normal(loc, scale), 1) for a vector event, or "
            f"MultivariateNormalDiag.from_distribution({name}, event_dims=1)"
        ) from None


def _is_distribution(obj) -> bool:
    return hasattr(obj, "log_prob") and not hasattr(obj, "__array_namespace__")
