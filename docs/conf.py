"""Sphinx configuration of the diaggauss site.

Build with ``python -m sphinx -W -b html docs docs/_build/html`` (README.md).
The Markdown pages stay Markdown (MyST); the API reference is generated from
the numpydoc docstrings (autosummary writes its stubs under ``api/generated``,
ignored by git); the figures are drawn from the library at build time by
``_ext/dg_figures.py`` into the build folder.
"""

from __future__ import annotations

import os
import pathlib
import sys

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import diaggauss  # noqa: E402

project = "diaggauss"
author = "The diaggauss developers"
copyright = "the diaggauss developers"
release = version = diaggauss.__version__

root_doc = "site"
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "dg_figures",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = [
    "_build",
    "bench/bench.md",
    "bench/quality.md",
    "api/generated/.*",
]
templates_path = ["_templates"]

# MyST: the GitHub-flavoured Markdown the pages are written in.
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# A `{py:func}` (or class, meth) role in a page that names no documented object
# fails the build. The adapters' bases from torch, Pyro and numpyro are not
# documented here (no intersphinx: the build is offline), so they may not resolve.
nitpicky = True
nitpick_ignore_regex = [("py:class", r"(torch|pyro|numpyro)\..*")]

# The API reference.
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

html_theme = "pydata_sphinx_theme"
html_title = "diaggauss"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# "auto" follows the reader's light or dark preference; without it the theme
# logs a console error on a first visit (no mode stored yet).
html_context = {"default_mode": "auto"}
html_favicon = "_static/favicon.svg"
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["diaggauss.css"]

# The right-hand contents of an API page lists `log_prob`, not
# `MultivariateNormalDiag.log_prob`.
toc_object_entries_show_parents = "hide"


def _public_bases(app, name, obj, options, bases):
    """Show bases by their public names; drop private helpers (`_spread.Parameters`)."""
    import diaggauss as dg

    public = {id(getattr(dg, n)): f"diaggauss.{n}" for n in dg.__all__ if n != "__version__"}
    try:
        from diaggauss.backends import torch as adapter

        for n in ("MultivariateNormalDiag", "MixtureDiag"):
            public[id(getattr(adapter, n))] = f"diaggauss.backends.torch.{n}"
    except ImportError:
        pass
    shown = []
    for base in bases:
        module = getattr(base, "__module__", "")
        if id(base) in public:
            shown.append(f":py:class:`{public[id(base)]}`")
        elif module.startswith("diaggauss") and any(p.startswith("_") for p in module.split(".")):
            continue  # a private building block of the class
        else:
            shown.append(base)
    bases[:] = shown


def setup(app):
    """Hooks of this site."""
    app.connect("autodoc-process-bases", _public_bases)
