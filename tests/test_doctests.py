"""Every public docstring's examples run and print what they show.

The public names are those the API reference documents (``docs/api/index.rst``):
everything in ``diaggauss.__all__``, the ``diaggauss.testing`` module, and the
adapters' public classes and functions. Each one's doctests (its own
docstring and those of the methods and properties it defines) run with
`doctest`, in a fresh namespace.
"""

from __future__ import annotations

import doctest
import importlib
import pathlib
import re

import pytest

import diaggauss as dg

ADAPTERS = [
    ("diaggauss.backends.torch", "MultivariateNormalDiag"),
    ("diaggauss.backends.torch", "MixtureDiag"),
    ("diaggauss.backends.pyro", "MultivariateNormalDiag"),
    ("diaggauss.backends.jax", "NumpyroMultivariateNormalDiag"),
    ("diaggauss.backends.numpy", "to_scipy"),
    ("diaggauss.backends.numpy", "from_scipy"),
]
FRAMEWORKS = {"diaggauss.backends.torch": "torch", "diaggauss.backends.pyro": "pyro"}
FRAMEWORKS["diaggauss.backends.jax"] = "numpyro"
FRAMEWORKS["diaggauss.backends.numpy"] = "scipy"

# Examples that fail in files this suite's owner may not edit; the lead fixes
# them. Each entry: the doctest's name -> why it is skipped.
KNOWN_FAILURES: dict[str, str] = {}

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
API_INDEX = pathlib.Path(__file__).parent.parent / "docs" / "api" / "index.rst"


def public_objects():
    """(qualified name, object) of every public name."""
    out = []
    for name in dg.__all__:
        if name == "__version__":
            continue
        out.append((f"diaggauss.{name}", getattr(dg, name)))
    for module, name in ADAPTERS:
        try:
            out.append((f"{module}.{name}", getattr(importlib.import_module(module), name)))
        except ImportError:
            continue
    return out


def _doctests():
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = {}
    for qualname, obj in public_objects():
        # A class's own members, then those it inherits from diaggauss's classes
        # (the properties of `_spread.Parameters`, the neutral class's methods
        # on the torch classes): the API reference documents those too.
        owners = [(qualname, obj)]
        if isinstance(obj, type):
            owners += [
                (f"{base.__module__}.{base.__qualname__}", base)
                for base in obj.__mro__[1:]
                if base.__module__.startswith("diaggauss")
            ]
        for name, owner in owners:
            for test in finder.find(owner, name):
                if test.examples:
                    found.setdefault(test.name, test)
    return found


DOCTESTS = _doctests()


def test_public_names_are_collected():
    # Every name the API reference lists is collected here, and every
    # collected adapter is importable in this environment.
    names = {q for q, _ in public_objects()}
    for module, name in ADAPTERS:
        pytest.importorskip(FRAMEWORKS[module])
        assert f"{module}.{name}" in names
    assert len(names) == len(dg.__all__) - 1 + len(ADAPTERS)
    listed = set(re.findall(r"^   ([\w.]+)$", API_INDEX.read_text(), re.M))
    short = {q.removeprefix("diaggauss.").removeprefix("backends.") for q in names}
    assert short <= listed, sorted(short - listed)


OBJECTS = dict(public_objects())


@pytest.mark.parametrize("qualname", sorted(OBJECTS))
def test_every_public_name_has_an_example(qualname):
    doc = OBJECTS[qualname].__doc__ or ""
    assert "Examples\n" in doc, qualname
    assert ">>>" in doc.split("Examples\n", 1)[1], qualname


@pytest.mark.parametrize("name", sorted(DOCTESTS))
def test_docstring_example(name):
    if name in KNOWN_FAILURES:
        pytest.skip(KNOWN_FAILURES[name])
    test = DOCTESTS[name]
    test.globs = {}
    output: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test, out=output.append, clear_globs=True)
    assert result.attempted > 0
    assert result.failed == 0, "".join(output)


def test_enough_doctests():
    # A collector that silently found nothing would pass every test above.
    assert len(DOCTESTS) >= 50, sorted(DOCTESTS)
