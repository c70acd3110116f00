"""`GaussianMixtureDiag`: scikit-learn's ``GaussianMixture(covariance_type="diag")`` interface.

scikit-learn stays optional: the class does not subclass its
``BaseEstimator`` (which would import it with diaggauss) but follows its
conventions itself: parameters stored as given by ``__init__`` and checked
by ``fit``, ``get_params`` / ``set_params`` from the ``__init__`` signature,
fitted attributes ending in ``_``, and ``__sklearn_tags__`` built only when
scikit-learn asks (so ``clone``, pipelines, grid search and
``check_estimator`` work).
"""

from __future__ import annotations

import inspect
import math
import sys
import warnings
from typing import ClassVar

from ._fit_mixture import run_em
from ._gaps import gaps_for
from ._kmeans import INITS
from ._namespace import as_array, describe, device_of, get_namespace, is_array

__all__ = ["GaussianMixtureDiag"]


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before `fit` (scikit-learn's ``NotFittedError`` when installed)."""


def _not_fitted_error():
    sk = sys.modules.get("sklearn.exceptions")
    return sk.NotFittedError if sk is not None else NotFittedError


def _convergence_warning():
    sk = sys.modules.get("sklearn.exceptions")
    return sk.ConvergenceWarning if sk is not None else RuntimeWarning


class GaussianMixtureDiag:
    """A diagonal-covariance Gaussian mixture fitted by EM, as scikit-learn's estimator.

    The parameters, methods and fitted attributes are those of
    ``sklearn.mixture.GaussianMixture(covariance_type="diag")``; NumPy, torch
    and JAX arrays go in and arrays of the same library come out. The work is
    `diaggauss.fit_mixture`'s. scikit-learn itself is not needed.

    Parameters
    ----------
    n_components : int
        Number of mixture components.
    tol : float
        Convergence threshold on the change of the mean log-likelihood.
    reg_covar : float
        Non-negative regularisation added to every variance.
    max_iter : int
        EM iterations per initialisation; 0 keeps the start (to inspect it).
    n_init : int
        Initialisations run; the best (highest log-likelihood) is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}
        How responsibilities start (see `diaggauss.fit_mixture`; "kmeans" is
        k-means on a sample refined on all points, cheaper than
        scikit-learn's).
    weights_init, means_init, precisions_init : array-like, optional
        User starting weights (K,), means (K, d) and precisions (K, d); each
        replaces that part of the start.
    random_state : int, numpy Generator or RandomState, torch Generator, JAX key, optional
        Seed of the initialisation.
    warm_start : bool
        Start the next `fit` from the last solution (with one initialisation).
    verbose : int
        Print each initialisation's iterations (2: every iteration).
    verbose_interval : int
        Accepted for compatibility with scikit-learn; unused.

    Attributes
    ----------
    weights_ : array (K,)
    means_ : array (K, d)
    covariances_ : array (K, d)
        Variances (diagonal covariances), ``reg_covar`` included.
    precisions_ : array (K, d)
        ``1 / covariances_``.
    precisions_cholesky_ : array (K, d)
        ``1 / sqrt(covariances_)``.
    converged_ : bool
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        Mean log-likelihood before the last M-step of the best
        initialisation (scikit-learn's definition).
    lower_bounds_ : list of float
        That value at every iteration of the best initialisation.
    n_features_in_ : int
    mixture_ : MixtureDiag
        The fitted mixture.

    Notes
    -----
    Every check of ``sklearn.utils.estimator_checks.check_estimator`` passes
    but those in `SKIPPED_CHECKS`, each with its reason; scikit-learn warns
    that the class does not inherit its ``BaseEstimator``, on purpose.

    Examples
    --------
    >>> import numpy as np, diaggauss as dg
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(-5, 1, (100, 2)), rng.normal(5, 1, (100, 2))])
    >>> gm = dg.GaussianMixtureDiag(2, random_state=0).fit(x)
    >>> np.sort(gm.means_[:, 0]).round()
    array([-5.,  5.])
    >>> gm.predict(np.array([[-5.0, -5.0], [5.0, 5.0]])).tolist() in ([0, 1], [1, 0])
    True
    """

    #: check_estimator checks that do not apply, and why.
    SKIPPED_CHECKS: ClassVar[dict] = {
        "check_array_api_input": "skipped by scikit-learn itself unless SCIPY_ARRAY_API=1; "
        "the estimator takes NumPy, torch and JAX arrays natively (tests/test_estimator.py)",
    }

    def __init__(
        self,
        n_components=1,
        *,
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
    ):
        self.n_components = n_components
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    # -- scikit-learn's estimator protocol -------------------------------------------

    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p for p in sig.parameters if p != "self")

    def get_params(self, deep=True):
        """The parameters given to ``__init__``, as a dict (scikit-learn's protocol).

        Examples
        --------
        >>> import diaggauss as dg
        >>> dg.GaussianMixtureDiag(3).get_params()["n_components"]
        3
        """
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set parameters by name; returns the estimator (scikit-learn's protocol).

        Examples
        --------
        >>> import diaggauss as dg
        >>> dg.GaussianMixtureDiag().set_params(n_components=4).n_components
        4
        """
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}; "
                    f"valid parameters are {valid}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = inspect.signature(type(self).__init__).parameters
        changed = []
        for name in self._get_param_names():
            value, default = getattr(self, name), defaults[name].default
            if value is not default and not (_plain(value) and value == default):
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type="density_estimator",
            target_tags=TargetTags(required=False),
            input_tags=InputTags(allow_nan=False, sparse=False),
        )

    def __sklearn_is_fitted__(self):
        return hasattr(self, "mixture_")

    # -- fitting ----------------------------------------------------------------------

    def fit(self, X, y=None):
        """Fit the mixture to `X` (N, d) by EM; returns the estimator.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> x = np.random.default_rng(0).normal(size=(100, 2))
        >>> dg.GaussianMixtureDiag(2, random_state=0).fit(x).converged_
        True
        """
        self._fit(X)
        return self

    def fit_predict(self, X, y=None):
        """Fit, then the most likely component of each point of `X` (N,).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> x = np.array([[-5.0], [-5.1], [5.0], [5.1]])
        >>> labels = dg.GaussianMixtureDiag(2, random_state=0).fit_predict(x)
        >>> bool(labels[0] == labels[1] != labels[2] == labels[3])
        True
        """
        return self._fit(X).predict(X)

    def _check_params(self):
        if not isinstance(self.init_params, str) or self.init_params not in INITS:
            raise ValueError(f"init_params must be one of {INITS}; got {self.init_params!r}")
        if self.warm_start not in (True, False):
            raise TypeError(f"warm_start must be True or False; got {self.warm_start!r}")
        for name in ("verbose", "verbose_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0; got {value!r}")
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"n_components must be an int >= 1; got {k!r}")

    def _fit(self, X):
        self._check_params()
        x, xp = self._data(X, fitting=True)
        n = x.shape[0]
        if n < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components: X has {n} samples (shape "
                f"{tuple(x.shape)}) and n_components is {self.n_components}"
            )
        warm = self.warm_start and hasattr(self, "mixture_")
        if warm and self.mixture_.event_shape != (x.shape[1],):
            warm = False
        run = run_em(
            x,
            self.n_components,
            init=self.mixture_ if warm else self.init_params,
            n_init=1 if warm else self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            reg_covar=self.reg_covar,
            seed=_seed(self.random_state),
            weights_init=None if warm else self.weights_init,
            means_init=None if warm else self.means_init,
            precisions_init=None if warm else self.precisions_init,
            final=self.n_init > 1 and not warm,
            verbose=self.verbose,
            name="X",
            xp=xp,
        )
        mix, info = run.mixture, run.info
        if not info.converged and self.max_iter > 0:
            warnings.warn(
                f"Best of {self.n_init} initialisations did not converge in max_iter="
                f"{self.max_iter} iterations (tol={self.tol}); try a larger max_iter or tol",
                _convergence_warning(),
                stacklevel=3,
            )
        self.mixture_ = mix
        var = mix.components.variance
        self.weights_ = mix.weights
        self.means_ = mix.loc
        self.covariances_ = var
        self.precisions_ = 1.0 / var
        self.precisions_cholesky_ = 1.0 / xp.sqrt(var)
        self.converged_ = info.converged
        self.n_iter_ = info.n_iter
        self.lower_bound_ = run.lower_bound
        self.lower_bounds_ = list(info.history)
        self.n_features_in_ = x.shape[1]
        return self

    # -- after fitting -------------------------------------------------------------------

    def _data(self, X, fitting=False):
        """`X` as a floating (N, d) array of its own library (NumPy for lists and frames)."""
        if type(X).__module__.startswith("scipy.sparse") or hasattr(X, "tocsr"):
            raise TypeError(
                f"X must be a dense array; got sparse data ({describe(X)}): "
                "GaussianMixtureDiag does not accept sparse input, pass X.toarray()"
            )
        if not is_array(X) or getattr(X, "dtype", None) is _object_dtype():
            import numpy as np

            X = np.asarray(X)
            if X.dtype is _object_dtype():
                X = X.astype(np.float64)  # numbers held as objects; anything else raises
        xp = get_namespace(("X", X))
        if xp.isdtype(X.dtype, "complex floating"):
            raise ValueError(f"Complex data not supported: X has dtype {X.dtype}")
        if not xp.isdtype(X.dtype, "real floating"):
            if not xp.isdtype(X.dtype, ("integral", "bool")):
                raise ValueError(f"X must hold numbers; got dtype {X.dtype}")
            big = xp.float64 if gaps_for(xp).has_float64() else xp.float32
            X = xp.astype(X, big)
        if X.ndim != 2:
            raise ValueError(
                f"Expected 2D array, got {X.ndim}D array instead: X must have shape "
                f"(n_samples, n_features); got {tuple(X.shape)}. Reshape your data with "
                "X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample"
            )
        if X.shape[0] < 1 or X.shape[1] < 1:
            raise ValueError(
                f"Found array with {X.shape[0]} sample(s) and {X.shape[1]} feature(s) "
                f"(shape={tuple(X.shape)}) while a minimum of 1 is required."
            )
        # fit's own check reads one value per column (the design's largest squares)
        if not fitting and gaps_for(xp).is_concrete(X) and not bool(xp.all(xp.isfinite(X))):
            raise ValueError(
                "Input X contains NaN or infinity: GaussianMixtureDiag needs finite data"
            )
        if not fitting:
            if not self.__sklearn_is_fitted__():
                raise _not_fitted_error()(
                    f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                    "with appropriate arguments before using this estimator."
                )
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input"
                )
            mix_xp = self.mixture_._ns()
            if mix_xp is not xp:
                X = as_array("X", X, mix_xp, device=self.mixture_.device)
                xp = mix_xp
        return X, xp

    def score_samples(self, X):
        """Log density of each point of `X` under the mixture (N,).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> gm = dg.GaussianMixtureDiag(1).fit(np.array([[0.0], [2.0]]))
        >>> gm.score_samples(np.array([[1.0]])).round(4)
        array([-0.9189])
        """
        x, _ = self._data(X)
        return self.mixture_.log_prob(x)

    def score(self, X, y=None):
        """Mean log density of the points of `X` (a float).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> gm = dg.GaussianMixtureDiag(1).fit(np.array([[0.0], [2.0]]))
        >>> round(gm.score(np.array([[1.0]])), 4)
        -0.9189
        """
        out = self.score_samples(X)
        return float(get_namespace(("out", out)).mean(out))

    def predict_proba(self, X):
        """Posterior probability of each component for each point of `X` (N, K).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> x = np.array([[-5.0], [-5.1], [5.0], [5.1]])
        >>> gm = dg.GaussianMixtureDiag(2, random_state=0).fit(x)
        >>> gm.predict_proba(np.array([[0.0]])).shape
        (1, 2)
        """
        x, _ = self._data(X)
        return self.mixture_.responsibilities(x)

    def predict(self, X):
        """The most likely component of each point of `X` (N,).

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> gm = dg.GaussianMixtureDiag(1).fit(np.array([[0.0], [2.0]]))
        >>> gm.predict(np.array([[1.0]])).tolist()
        [0]
        """
        x, xp = self._data(X)
        joint = self.mixture_.component_log_prob(x) + self.mixture_.log_weights
        return xp.argmax(joint, axis=-1)

    def sample(self, n_samples=1):
        """`n_samples` points from the fitted mixture and their components, grouped by component.

        Returns ``(X, y)``: X (n_samples, d) and the component labels (n_samples,),
        as scikit-learn's.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> x = np.array([[-5.0], [-5.1], [5.0], [5.1]])
        >>> gm = dg.GaussianMixtureDiag(2, random_state=0).fit(x)
        >>> x, y = gm.sample(5)
        >>> x.shape, y.shape
        ((5, 1), (5,))
        """
        if not self.__sklearn_is_fitted__():
            raise _not_fitted_error()(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' first."
            )
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples!r}; expected an int >= 1")
        mix = self.mixture_
        xp = mix._ns()
        stream = gaps_for(xp).random_stream(_seed(self.random_state), draws=2)
        dtype, device = mix.dtype, mix.device
        cdf = xp.cumulative_sum(xp.astype(mix.weights, dtype))
        u = stream.uniform((n_samples,), dtype, device) * cdf[-1]
        labels = xp.clip(xp.searchsorted(cdf, u, side="right"), 0, mix.num_components - 1)
        labels = xp.sort(labels)
        eps = stream.normal((n_samples, mix.event_shape[0]), dtype, device)
        loc = xp.take(mix.loc, labels, axis=0)
        scale = xp.take(mix.scale, labels, axis=0)
        return loc + scale * eps, labels

    def _n_parameters(self):
        k, d = self.means_.shape
        return 2 * k * d + k - 1

    def bic(self, X):
        """Bayesian information criterion on `X`: lower is better.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> x = np.random.default_rng(0).normal(size=(200, 2))
        >>> gm1, gm3 = (dg.GaussianMixtureDiag(k, random_state=0).fit(x) for k in (1, 3))
        >>> bool(gm1.bic(x) < gm3.bic(x))
        True
        """
        n = self._data(X)[0].shape[0]
        return -2 * self.score(X) * n + self._n_parameters() * math.log(n)

    def aic(self, X):
        """Akaike information criterion on `X`: lower is better.

        Examples
        --------
        >>> import numpy as np, diaggauss as dg
        >>> x = np.random.default_rng(0).normal(size=(200, 2))
        >>> gm = dg.GaussianMixtureDiag(1).fit(x)
        >>> bool(gm.aic(x) < gm.bic(x))
        True
        """
        n = self._data(X)[0].shape[0]
        return -2 * self.score(X) * n + 2 * self._n_parameters()


def _plain(value):
    return isinstance(value, (int, float, str, bool, type(None)))


def _seed(random_state):
    """A seed `fit_mixture` takes: scikit-learn's RandomState becomes a NumPy Generator."""
    if random_state is None or isinstance(random_state, int):
        return random_state
    if type(random_state).__name__ == "RandomState":
        import numpy as np

        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    if is_array(random_state) and device_of(random_state) is not None:
        return random_state
    return random_state


def _object_dtype():
    np = sys.modules.get("numpy")
    return np.dtype(object) if np is not None else None
