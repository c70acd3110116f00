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

__all__ = ["export", "import_parameters", "register_exporter", "register_importer"]

# fn(dist, event_dims) -> (loc, param, kind) or None for objects it does not know
_IMPORTERS: list = []
# target library ("distrax", "numpyro", "tfp", "scipy", "torch", ...) -> fn(dist) -> object
_EXPORTERS: dict = {}
# target -> the adapter module that registers it (its ADAPTERS prefix)
_EXPORT_PREFIX = {"tfp": "tensorflow_probability"}


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
