"""The methods' bodies, shared by every distribution class.

`DiagGaussianMath` is a mixin: the neutral `MultivariateNormalDiag` and the
``torch.distributions`` adapter both inherit it, so each formula exists once.
A class using it provides ``_loc``, ``_param`` (the spread as given), ``_kind``
(its parameterisation), ``_cache`` (a dict), ``_be`` (the backend hooks) and
``_ns()`` (the namespace). Inputs reaching these methods are already checked
arrays of that namespace; results are not yet broadcast to the batch shape.
"""

from __future__ import annotations

from . import _core
from ._backend import HALF_LOG_2PI
from ._core import work_dtype

# A flag in ``_cache`` (not a derived value): the object has had a log_prob.
_FIRST_LOG_PROB = "first log_prob done"


class DiagGaussianMath:
    """Derived parameters with caching, and the kernels applied to them."""

    __slots__ = ()

    # -- derived parameters ----------------------------------------------------

    def _cached(self, key, compute, *args):
        """``compute(*args)``, kept on the object while the parameter is unchanged.

        An entry is keyed on the backend's version of the parameter (torch
        counts in-place updates), and is not kept when the backend says so: a
        JAX tracer must not outlive its trace, and a torch value with autograd
        history must be recomputed for every backward pass.
        """
        be = self._be
        if be is None:  # an object rebuilt from its parts: resolve its backend
            self._ns()
            be = self._be
        token = be.version(self._param)
        entry = self._cache.get(key)
        # an untracked version (None: NumPy, JAX, or torch while compiling) trusts the entry
        if entry is not None and (token is None or entry[0] == token):
            return entry[1]
        value = compute(*args)
        if be.can_cache(value, self._param):
            self._cache[key] = (token, value)
        return value

    def _derived(self, name, convert, wd=None):
        """A derived parameter, computed from the parameter upcast to `wd` if given."""
        param = self._param
        xp = self._ns()
        if wd is None or param.dtype == wd:
            return self._cached(name, convert, param, self._kind, xp)
        # a 16-bit parameter: derive at the working precision
        return self._cached((name, wd), _convert_upcast, convert, param, self._kind, wd, xp)

    def _scale(self, wd=None):
        if self._kind == "scale" and (wd is None or self._param.dtype == wd):
            return self._param
        return self._derived("scale", _core.scale_of, wd)

    def _log_scale(self, wd=None):
        if self._kind == "log_scale" and (wd is None or self._param.dtype == wd):
            return self._param
        return self._derived("log_scale", _core.log_scale_of, wd)

    def _variance(self):
        if self._kind == "variance":
            return self._param
        return self._derived("variance", _core.variance_of)

    def _precision(self):
        if self._kind == "precision":
            return self._param
        return self._derived("precision", _core.precision_of)

    def _inv_scale(self, wd=None):
        return self._derived("inv_scale", _core.inv_scale_of, wd)

    def _spread(self, wd=None):
        """``(scale, False)`` to divide by, or ``(1 / scale, True)`` to multiply with.

        A given scale is divided by: inverting it first would add a full pass
        to every construct-and-evaluate step, and division costs within a few
        percent of multiplication where memory bound (measured).
        """
        if self._kind == "scale":
            return self._scale(wd), False
        return self._inv_scale(wd), True

    def _sum_log_scale(self, wd):
        """``sum(log scale)`` over the event axis, in working dtype `wd`."""
        # from the elementwise log-scale, which validation may have made already
        return self._cached(("sum_log_scale", wd), self._compute_sum_log_scale, wd)

    def _compute_sum_log_scale(self, wd):
        return self._ns().sum(self._log_scale_uncached(wd), axis=-1)

    def _log_scale_uncached(self, wd):
        """The elementwise log-scale at `wd`, not stored.

        On the per-step path (construct, then log_prob) an entry nobody reads
        again costs more than the log itself.
        """
        xp = self._ns()
        (param,) = _core._upcast(xp, wd, self._param)
        return _core.log_scale_of(param, self._kind, xp)

    def _neg_log_normalizer(self, wd):
        """``-(sum(log scale) + d/2 log 2 pi)``, cached like ``sum(log scale)``."""
        return self._cached(("neg_log_normalizer", wd), self._compute_neg_log_normalizer, wd)

    def _compute_neg_log_normalizer(self, wd):
        d = self._loc.shape[-1]
        return _core.neg_log_normalizer(self._sum_log_scale(wd), d, self._be)

    def _validate(self):
        """Raise a `ValueError` on a non-finite loc or an invalid spread."""
        if self._be.values_ok(self):
            return
        _core.explain_invalid(self._loc, self._param, self._kind, self._ns())

    # -- one distribution ------------------------------------------------------

    def _dtypes(self, x):
        """The result dtype for point `x` and the dtype to compute in."""
        loc_dtype = self._loc.dtype
        dtype = loc_dtype if x.dtype == loc_dtype else self._ns().result_type(x, self._loc)
        return dtype, work_dtype(dtype, self._ns())

    def _standardized_inputs(self, x):
        loc = self._loc
        if x.dtype == loc.dtype:
            dtype = loc.dtype
            wd = work_dtype(dtype, self._ns())
            if wd == dtype:  # the common case: nothing to convert
                spread, inverse = self._spread()
                return x, loc, spread, inverse, dtype, wd
        else:
            dtype, wd = self._dtypes(x)
        spread, inverse = self._spread(wd)
        x, loc = _core._upcast(self._ns(), wd, x, loc)
        return x, loc, spread, inverse, dtype, wd

    def _log_prob(self, x):
        x, loc, spread, inverse, dtype, wd = self._standardized_inputs(x)
        xp, be = self._ns(), self._be
        z = _core.standardize(x, loc, spread, inverse, xp, be)
        if be.fused_reductions:
            out = _core.log_prob_fused(z, self._log_scale(wd), xp)
        else:
            cache = self._cache
            if _FIRST_LOG_PROB not in cache:
                # An object's first log_prob (often its only one) sums the
                # per-coordinate terms where the backend has one kernel for
                # them; later calls build and reuse the cached normalizer.
                cache[_FIRST_LOG_PROB] = True
                terms = be.log_density_terms(z, self, wd)
                if terms is not None:
                    out = be.subtract_from(-z.shape[-1] * HALF_LOG_2PI, xp.sum(terms, axis=-1))
                    return _core._finish(out, dtype, xp)
            maha = be.sum_squares(z, xp, scratch=True)
            out = _core.log_prob_from(maha, self._neg_log_normalizer(wd), be)
        return _core._finish(out, dtype, xp)

    def _mahalanobis(self, x):
        x, loc, spread, inverse, dtype, _ = self._standardized_inputs(x)
        xp = self._ns()
        maha = _core.mahalanobis_sq(x, loc, spread, inverse, xp, self._be)
        return _core._finish(xp.sqrt(maha), dtype, xp)

    def _log_cdf(self, x):
        x, loc, spread, inverse, dtype, _ = self._standardized_inputs(x)
        xp = self._ns()
        return _core._finish(_core.log_cdf(x, loc, spread, inverse, xp, self._be), dtype, xp)

    def _entropy(self):
        xp = self._ns()
        dtype = self._loc.dtype
        out = _core.entropy_from(self._sum_log_scale(work_dtype(dtype, xp)), self._loc.shape[-1])
        return _core._finish(out, dtype, xp)

    def _reparameterize(self, eps):
        return self._loc + self._scale() * eps

    def _log_prob_of_noise(self, eps, *, scratch=False):
        """Log density of ``loc + scale * eps`` computed from the noise itself.

        `scratch`: `eps` is the caller's own temporary and may be overwritten.
        """
        xp = self._ns()
        dtype = self._loc.dtype
        wd = work_dtype(dtype, xp)
        (e,) = _core._upcast(xp, wd, eps)
        if self._be.fused_reductions:
            out = _core.log_prob_fused(e, self._log_scale(wd), xp)
        else:
            maha = self._be.sum_squares(e, xp, scratch=scratch and e is not eps)
            out = _core.log_prob_from(maha, self._neg_log_normalizer(wd), self._be)
        return _core._finish(out, dtype, xp)

    # -- two distributions -----------------------------------------------------

    def _pair_dtypes(self, q):
        xp = self._ns()
        dtype = self._loc.dtype
        if q._loc.dtype != dtype:
            dtype = xp.result_type(self._loc, q._loc)
        return xp, dtype, work_dtype(dtype, xp)

    def _kl(self, q):
        """``KL(self || q)``, batch shapes broadcast by the arithmetic."""
        xp, dtype, wd = self._pair_dtypes(q)
        loc_p, loc_q = _core._upcast(xp, wd, self._loc, q._loc)
        args = (loc_p, self._log_scale(wd), loc_q, q._log_scale(wd), q._inv_scale(wd))
        return _core._finish(_core.kl_divergence(*args, xp, self._be), dtype, xp)

    def _cross_entropy(self, q):
        xp, dtype, wd = self._pair_dtypes(q)
        loc_p, loc_q = _core._upcast(xp, wd, self._loc, q._loc)
        args = (loc_p, self._log_scale(wd), loc_q, q._log_scale(wd), q._inv_scale(wd))
        return _core._finish(_core.cross_entropy(*args, xp, self._be), dtype, xp)

    def _wasserstein2(self, q):
        xp, dtype, wd = self._pair_dtypes(q)
        loc_p, loc_q = _core._upcast(xp, wd, self._loc, q._loc)
        args = (loc_p, self._scale(wd), loc_q, q._scale(wd))
        return _core._finish(_core.wasserstein2(*args, xp, self._be), dtype, xp)


def _convert_upcast(convert, param, kind, wd, xp):
    return convert(xp.astype(param, wd), kind, xp)
