"""Parameterisations of the spread: one entry each, holding converters, domain and constraint.

A distribution keeps its spread in the form the user gave it (the scale, its
logarithm, the variance or the precision) and derives the other forms from
the entry's converters, never by a round trip (``log_scale`` is never
``log(exp(log_scale))``).

Adding a parameterisation is one `Parameterisation` entry here plus its
constructor lines (``MultivariateNormalDiag.from_<name>`` and
``MixtureDiag.from_<name>``); every adapter class inherits them.
"""

from __future__ import annotations

__all__ = ["PARAMETERISATIONS", "Parameterisation"]


class Parameterisation:
    """One way of giving the spread: its name, its domain and how to derive the others.

    Parameters
    ----------
    name : str
        The parameter's name, and that of the ``from_<name>`` constructor.
    meaning : str
        What the numbers are, for docstrings and messages.
    domain : {"positive", "real"}
        Positive and finite, or finite.
    scale, log_scale, inv_scale, variance, precision : callable
        ``f(param, xp)``: the spread in that form.

    Examples
    --------
    >>> import numpy as np
    >>> from diaggauss._params import PARAMETERISATIONS
    >>> PARAMETERISATIONS["variance"].derive("scale", np.array([4.0]), np)
    array([2.])
    """

    __slots__ = (
        "domain",
        "inv_scale",
        "log_scale",
        "meaning",
        "name",
        "precision",
        "scale",
        "variance",
    )

    def __init__(self, name, meaning, domain, scale, log_scale, inv_scale, variance, precision):
        self.name, self.meaning, self.domain = name, meaning, domain
        self.scale, self.log_scale, self.inv_scale = scale, log_scale, inv_scale
        self.variance, self.precision = variance, precision

    def __repr__(self):
        return f"Parameterisation({self.name!r})"

    @property
    def constraint(self) -> str:
        """The constraint as words: ``"positive and finite"`` or ``"finite"``."""
        return "positive and finite" if self.domain == "positive" else "finite"

    def derive(self, name, param, xp):
        """The spread form `name` ("scale", "log_scale", ...) of `param`."""
        if name == self.name:
            return param
        return getattr(self, name)(param, xp)


def _half(a):
    return 0.5 * a


SCALE = Parameterisation(
    name="scale",
    meaning="standard deviations",
    domain="positive",
    scale=lambda p, xp: p,
    log_scale=lambda p, xp: xp.log(p),
    inv_scale=lambda p, xp: 1.0 / p,
    variance=lambda p, xp: p * p,
    precision=lambda p, xp: 1.0 / (p * p),
)
LOG_SCALE = Parameterisation(
    name="log_scale",
    meaning="logarithms of the standard deviations",
    domain="real",
    scale=lambda p, xp: xp.exp(p),
    log_scale=lambda p, xp: p,
    inv_scale=lambda p, xp: xp.exp(-p),
    variance=lambda p, xp: xp.exp(2.0 * p),
    precision=lambda p, xp: xp.exp(-2.0 * p),
)
VARIANCE = Parameterisation(
    name="variance",
    meaning="variances (the diagonal of the covariance)",
    domain="positive",
    scale=lambda p, xp: xp.sqrt(p),
    log_scale=lambda p, xp: _half(xp.log(p)),
    inv_scale=lambda p, xp: 1.0 / xp.sqrt(p),
    variance=lambda p, xp: p,
    precision=lambda p, xp: 1.0 / p,
)
PRECISION = Parameterisation(
    name="precision",
    meaning="precisions (inverse variances), as Bayesian updates keep them",
    domain="positive",
    scale=lambda p, xp: 1.0 / xp.sqrt(p),
    log_scale=lambda p, xp: -_half(xp.log(p)),
    inv_scale=lambda p, xp: xp.sqrt(p),
    variance=lambda p, xp: 1.0 / p,
    precision=lambda p, xp: p,
)

PARAMETERISATIONS = {p.name: p for p in (SCALE, LOG_SCALE, VARIANCE, PRECISION)}
