"""The parameters of a diagonal Gaussian: its mean, its spread as given, what derives from them.

A distribution stores its spread in the form the user gave (see
`diaggauss._params`) and derives the other forms on demand. `Parameters`,
the base of the distribution classes, keeps derived values between calls only
where the library tells when a parameter changes (`Gaps.can_cache`,
`Gaps.version`), drops them whole when it does, and never combines a kept
value with the parameter as it is now: the same inputs give the same bits on
every call, whatever the call history. It also answers the shapes and dtype.
"""

from __future__ import annotations

from . import _kernels
from ._dtypes import finish, result_dtype, work_dtype
from ._gaps import gaps_for
from ._namespace import get_namespace, library_name
from ._shapes import broadcast_shapes

__all__ = ["Parameters"]


class Parameters:
    """`loc` and the spread ``_param`` (given as parameterisation ``_par``), and their forms.

    Holds no state of its own: the distribution class sets ``_loc``,
    ``_param``, ``_par``, ``_cache``, ``_gaps``, ``_xp`` and ``_batch``.
    """

    __slots__ = ()

    def _ns(self):
        xp = self._xp
        if xp is None:
            xp = self._xp = get_namespace(("loc", self._loc), (self._par.name, self._param))
            self._gaps = gaps_for(xp)
        return xp

    def _full(self, a):
        """`a` broadcast to ``batch_shape + event_shape`` (a view; `a` itself when it has it)."""
        shape = (*self.batch_shape, self._loc.shape[-1])
        return a if tuple(a.shape) == shape else self._ns().broadcast_to(a, shape)

    @property
    def loc(self):
        """The means, ``batch_shape + event_shape`` (a broadcast view of the given `loc`)."""
        return self._full(self._loc)

    @property
    def scale(self):
        """The standard deviations, ``batch_shape + event_shape``."""
        return self._full(self._as_dtype(self._spreads("scale", fresh=True)[0]))

    @property
    def log_scale(self):
        """``log(scale)``: the parameter itself for `from_log_scale`, else derived."""
        return self._full(self._as_dtype(self._spreads("log_scale", fresh=True)[0]))

    @property
    def variance(self):
        """``scale**2``, the diagonal of the covariance, ``batch_shape + event_shape``."""
        return self._full(self._as_dtype(self._spreads("variance", fresh=True)[0]))

    @property
    def precision(self):
        """``1 / scale**2``, ``batch_shape + event_shape``."""
        return self._full(self._as_dtype(self._spreads("precision", fresh=True)[0]))

    @property
    def batch_shape(self) -> tuple:
        """The batch's shape, ``broadcast(loc.shape[:-1], scale.shape[:-1])``."""
        return self._batch_tuple()

    @property
    def parameters(self) -> dict:
        """``{"loc": loc, <parameterization>: the spread as given}``, broadcast to the full shape.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> d = dg.MultivariateNormalDiag.from_variance(np.zeros(2), np.array([4.0, 9.0]))
        >>> sorted(d.parameters)
        ['loc', 'variance']
        """
        return {"loc": self.loc, self._par.name: self._full(self._param)}

    def _batch_tuple(self) -> tuple:
        batch = self._batch
        if type(batch) is not tuple:
            if batch is None:
                batch = broadcast_shapes(
                    tuple(self._loc.shape[:-1]), tuple(self._param.shape[:-1])
                )
            self._batch = batch = tuple(batch)
        return batch

    @property
    def event_shape(self) -> tuple:
        """``(d,)``: one draw is a vector of `d` numbers."""
        return (self._loc.shape[-1],)

    @property
    def dtype(self):
        """The floating dtype of results: the parameters' dtypes promoted."""
        loc, param = self._loc, self._param
        if loc.dtype == param.dtype:
            return loc.dtype
        return result_dtype(self._ns(), loc, param)

    def __repr__(self):
        def desc(a):
            dtype = str(a.dtype).removeprefix("torch.")
            return f"{dtype}[{', '.join(str(n) for n in a.shape)}]"

        try:
            lib = library_name(self._ns())
            shapes = f"batch_shape={self.batch_shape}, event_shape={self.event_shape}"
            return (
                f"{type(self).__name__}(loc: {desc(self._loc)}, {self._par.name}: "
                f"{desc(self._param)}; {shapes}, {lib})"
            )
        except Exception:  # a pytree holding placeholders, not arrays
            return f"{type(self).__name__}(loc={self._loc!r}, {self._par.name}={self._param!r})"

    # -- derived values ------------------------------------------------------------

    def _keeps_values(self) -> bool:
        """Whether values derived from the spread may be kept (the path a method takes)."""
        if self._gaps is None:
            self._ns()
        return self._gaps.can_cache(self._param)

    def _cache_dict(self):
        """Where values derived from the spread go, or None where none may be kept.

        A value is kept only where the library tells when the parameter
        changes (`Gaps.can_cache` and `Gaps.version`), and only from the
        second call under one version on: the first call computes the same
        values into a dict that is dropped with it, so a distribution used
        once (the per-step case) pays nothing for keeping. Entries of an older
        version are dropped whole. Where parameters are mutable (a version
        token), kept values derive from a copy of the parameter taken with the
        cache, so they agree with each other even after a change the library
        does not count (torch's ``.data``). Either way the same operations run
        on the same values: the same bits on every call.
        """
        gaps = self._gaps
        if gaps is None:
            self._ns()
            gaps = self._gaps
        param = self._param
        if not gaps.can_cache(param):
            return None
        token = gaps.version(param)
        entry = self._cache
        if entry is None or entry[0] != token:
            self._cache = (token, None)  # seen once under this version
            return {}
        if entry[1] is None:
            copy = param if token is None else self._xp.asarray(param, copy=True)
            entry = self._cache = (token, {"param": copy})
        return entry[1]

    def _derived(self, name, cache, wd):
        """The spread in form `name` ("log_scale", "inv_scale", ...), or ``log_normalizer``.

        Computed from the parameter cast to `wd`; from `cache` (see
        `_cache_dict`) when it holds it, and kept there when the value is
        concrete.
        """
        key = (name, wd)
        if cache is not None:
            value = cache.get(key)
            if value is not None:
                return value
        value = self._compute(name, cache, wd)
        if cache is not None and (value is False or self._gaps.is_concrete(value)):
            cache[key] = value
        return value

    def _compute(self, name, cache, wd):
        xp = self._xp
        if name == "log_normalizer":
            if self._par.name == "scale":  # from the scale: no log-scale array to keep
                return _kernels.log_normalizer_from_scale(self._form("scale", cache, wd), xp=xp)
            return _kernels.log_normalizer(self._derived("log_scale", cache, wd), xp=xp)
        if name == "half_inv":  # exp(-log_scale / 2), clamped (see _kernels.half_inv_scale)
            return _kernels.half_inv_scale(self._form("log_scale", cache, wd), xp)
        if name == "finite_inv":  # exp(-log_scale) where every value is finite, else False
            inv = xp.exp(-self._form("log_scale", cache, wd))
            if not self._gaps.is_concrete(inv) or not bool(xp.all(inv < float("inf"))):
                return False
            return inv
        param = self._param if cache is None else cache.get("param", self._param)
        if param.dtype != wd:
            param = xp.astype(param, wd)
        return self._par.derive(name, param, xp)

    def _spreads(self, *names, dtype=None, fresh=False):
        """The spread in the forms `names`, all from one reading of the parameter.

        Derived forms are computed at the working precision of result dtype
        `dtype` (default: the distribution's). Where values are kept (see
        `_cache_dict`), every form, the given one too, comes from the kept
        copy of the parameter, so a result never combines a value derived
        earlier with the parameter as it is now. `fresh`: read the parameter
        as it is now and keep nothing (the properties).
        """
        xp = self._ns()
        wd = work_dtype(self.dtype if dtype is None else dtype, xp)
        cache = None if fresh else self._cache_dict()
        return tuple(self._form(n, cache, wd) for n in names)

    def _form(self, name, cache, wd):
        if name != self._par.name:
            return self._derived(name, cache, wd)
        return self._param if cache is None else cache.get("param", self._param)

    def _as_dtype(self, a):
        """`a` in the distribution's dtype (derived values of 16-bit parameters are wider)."""
        return finish(a, self.dtype, self._xp)

    def _result_dtype(self, *arrays):
        """The dtype of results involving the parameters and `arrays`."""
        return result_dtype(self._xp, self._loc, self._param, *arrays)
