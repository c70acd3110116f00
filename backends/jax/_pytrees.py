"""The distributions as JAX pytrees, with explicit fields.

The data leaves of `diaggauss.MultivariateNormalDiag` are ``loc`` and the
spread parameter as given; the static metadata is the parameterisation and
``validate_args``. Unflattening never validates or inspects the leaves, so
the object passes through ``jax.jit``, ``jax.vmap`` (also when constructed
inside the mapped function), ``jax.grad`` and ``lax.scan``. `diaggauss.FitInfo`
is one too, so ``fit_mixture(..., return_info=True)`` can be returned from
``jax.jit``.
"""

from __future__ import annotations

import jax
from jax.tree_util import GetAttrKey

from diaggauss._distribution import MultivariateNormalDiag
from diaggauss._fit_mixture import FitInfo
from diaggauss._gaps import mark_jax_pytrees_registered
from diaggauss._mixture import MixtureDiag


def _flatten_with_keys(d):
    children = ((GetAttrKey("loc"), d._loc), (GetAttrKey(d._par.name), d._param))
    return children, (d._par.name, d._validate_args)


def _flatten(d):
    return (d._loc, d._param), (d._par.name, d._validate_args)


def _unflatten(aux, children):
    kind, validate_args = aux
    loc, param = children
    return MultivariateNormalDiag._from_parts(loc, param, kind, validate_args)


jax.tree_util.register_pytree_with_keys(
    MultivariateNormalDiag, _flatten_with_keys, _unflatten, _flatten
)


def _mixture_flatten_with_keys(m):
    return ((GetAttrKey("logits"), m._logits), (GetAttrKey("components"), m._components)), (
        m._validate_args,
    )


def _mixture_flatten(m):
    return (m._logits, m._components), (m._validate_args,)


def _mixture_unflatten(aux, children):
    logits, components = children
    return MixtureDiag._from_parts(logits, components, aux[0])


jax.tree_util.register_pytree_with_keys(
    MixtureDiag, _mixture_flatten_with_keys, _mixture_unflatten, _mixture_flatten
)
# `fit_mixture`'s report leaves a jitted function: its values are leaves (arrays under
# jit), which initialisation won is the loop's own count
jax.tree_util.register_dataclass(
    FitInfo,
    data_fields=["n_iter", "log_likelihood", "converged", "history"],
    meta_fields=["best_init"],
)
mark_jax_pytrees_registered()
