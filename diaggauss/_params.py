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

import dataclasses
import math
from collections.abc import Callable

__all__ = ["PARAMETERISATIONS", "Parameterisation"]


@dataclasses.dataclass(frozen=True, eq=False)
class Parameterisation:
    """One way of giving the spread: its name, its domain and how to derive the others.

    Each converter takes the parameter and the namespace. Converters that
    are None are derived from the others in `derive`.
    """

    #: The name of the parameter and of the ``from_<name>`` constructor.
    name: str
    #: What the numbers are, for docstrings and messages.
    meaning: str
    #: "positive" (positive and finite) or "real" (finite).
    domain: str
    scale: Callable
    log_scale: Callable
    inv_scale: Callable
    variance: Callable
    precision: Callable
    #: An example parameter of two values with scale 0.5 and 2 (for the docs).
    example: tuple = ()

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
    example=(0.5, 2.0),
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
    example=(math.log(0.5), math.log(2.0)),
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
    example=(0.25, 4.0),
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
    example=(4.0, 0.25),
)

PARAMETERISATIONS = {p.name: p for p in (SCALE, LOG_SCALE, VARIANCE, PRECISION)}
