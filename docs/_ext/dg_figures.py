"""Figures drawn from diaggauss itself when the site is built.

A page asks for one with

    ```{dg-figure} density
    :alt: what it shows
    The caption, in Markdown.
    ```

and the figure is drawn (once per build, after the pages are written) into
``<build folder>/_generated/<name>.png``; nothing generated is checked in.
The drawing functions are the ``FIGURES`` below; each uses only the public
API (``dg.MultivariateNormalDiag``, ``dg.fit_mixture``) and, for the speed
ratios, ``docs/bench/bench.json`` when a benchmark run wrote it.
"""

from __future__ import annotations

import json
import pathlib
import posixpath
from typing import ClassVar

import numpy as np
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

DOCS = pathlib.Path(__file__).resolve().parent.parent
BENCH = DOCS / "bench" / "bench.json"
FOLDER = "_generated"


def _grid(lo, hi, n=160):
    xs = np.linspace(lo[0], hi[0], n)
    ys = np.linspace(lo[1], hi[1], n)
    gx, gy = np.meshgrid(xs, ys)
    return gx, gy, np.stack([gx, gy], axis=-1)


def density(plt):
    """Contours of a batch of three 2-D Gaussians and samples of each."""
    import diaggauss as dg

    loc = np.array([[-2.0, 0.0], [1.5, 1.5], [1.0, -1.5]])
    scale = np.array([[0.6, 1.2], [1.0, 0.4], [0.5, 0.5]])
    d = dg.MultivariateNormalDiag(loc, scale)  # batch (3,), event (2,)
    gx, gy, pts = _grid((-4.5, -4.5), (4.5, 4.5))
    dens = d.prob(pts[..., None, :])  # (160, 160, 3): one density per batch member
    draws = d.sample((300,), seed=np.random.default_rng(0))  # (300, 3, 2)
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    for i, colour in enumerate(["tab:blue", "tab:orange", "tab:green"]):
        ax.scatter(draws[:, i, 0], draws[:, i, 1], s=4, alpha=0.35, color=colour)
        ax.contour(gx, gy, dens[..., i], levels=5, colors=colour, linewidths=1.2)
        ax.plot(*loc[i], marker="+", color="black", markersize=10)
    ax.set_aspect("equal")
    ax.set_title(f"batch_shape {d.batch_shape}, event_shape {d.event_shape}")
    ax.set_xlabel("x[..., 0]")
    ax.set_ylabel("x[..., 1]")
    return fig


def _blobs(rng):
    centres = np.array([[-3.0, -1.0], [2.5, 2.0], [3.0, -3.0]])
    spreads = np.array([[0.5, 1.6], [1.4, 0.5], [0.6, 0.6]])
    sizes = (300, 250, 150)
    return np.concatenate(
        [rng.normal(c, s, (n, 2)) for c, s, n in zip(centres, spreads, sizes, strict=True)]
    )


def mixture(plt):
    """A three-component mixture fitted by dg.fit_mixture and by scikit-learn."""
    from sklearn.mixture import GaussianMixture

    import diaggauss as dg

    x = _blobs(np.random.default_rng(1))
    ours = dg.fit_mixture(x, 3, seed=0)
    theirs = GaussianMixture(3, covariance_type="diag", random_state=0).fit(x)
    gx, gy, pts = _grid(x.min(0) - 1, x.max(0) + 1)
    flat = pts.reshape(-1, 2)
    panels = [
        ("dg.fit_mixture", ours.log_prob(flat), ours.loc, ours.log_prob(x).mean()),
        ("sklearn GaussianMixture", theirs.score_samples(flat), theirs.means_, theirs.score(x)),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharex=True, sharey=True)
    levels = np.linspace(-12, -2, 9)
    for ax, (title, log_density, means, score) in zip(axes, panels, strict=True):
        ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.3, color="grey")
        ax.contour(gx, gy, log_density.reshape(gx.shape), levels=levels, cmap="viridis")
        ax.plot(means[:, 0], means[:, 1], "r+", markersize=12)
        ax.set_title(f"{title}\nmean log-likelihood {score:.4f}")
        ax.set_aspect("equal")
    return fig


def _peer_ratios(bench):
    """{(row label, peer): [(size, ratio), ...]}, ratio = time(diaggauss) / time(peer)."""
    out: dict = {}
    for row in bench["rows"]:
        ours = row.get("results", {}).get("diaggauss", {}).get("ratios", {})
        for peer, ratio in ours.items():
            if peer == "hand" or "floor" in peer or not ratio:
                continue
            label = f"{row['backend']} {row['op']} ({row['mode']})"
            size = float(np.prod(row["shape"]))
            out.setdefault((label, peer), []).append((size, ratio))
    return out


def speed(plt):
    """The benchmark's ratios against the peers, read from docs/bench/bench.json."""
    if not BENCH.exists():
        fig, ax = plt.subplots(figsize=(9, 1.5))
        ax.text(0.5, 0.5, "no benchmark run: docs/bench/bench.json is missing", ha="center")
        ax.set_axis_off()
        return fig
    bench = json.loads(BENCH.read_text())
    ratios = _peer_ratios(bench)
    fig, ax = plt.subplots(figsize=(10, 0.34 * len(ratios) + 1.4))
    for i, points in enumerate(ratios.values()):
        values = [r for _, r in points]
        ax.plot([min(values), max(values)], [i, i], color="lightgrey", linewidth=3, zorder=1)
        sizes = np.log10([s for s, _ in points])
        dots = ax.scatter(
            values, [i] * len(values), s=22, c=sizes, cmap="viridis", vmin=0, vmax=8, zorder=2
        )
    fig.colorbar(dots, ax=ax, label="log10 of the values in the input", shrink=0.5)
    ax.set_yticks(range(len(ratios)), [f"{lbl}  vs  {p}" for lbl, p in ratios], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("time of diaggauss / time of the peer, one dot per size (below 1: faster)")
    meta = bench.get("meta", {})
    ax.set_title(f"docs/bench/bench.json, {meta.get('date', '?')}, {meta.get('cpus', '?')} CPUs")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    return fig


FIGURES = {"density": density, "mixture": mixture, "speed": speed}


def draw(name, folder):
    """Draw figure `name` into `folder` / name.png and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fig = FIGURES[name](plt)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


class FigureDirective(SphinxDirective):
    """``dg-figure NAME``: the figure drawn at build time, with its caption."""

    required_arguments = 1
    has_content = True
    option_spec: ClassVar = {"alt": directives.unchanged}

    def run(self):
        """An image of the build folder's figure, then the caption."""
        name = self.arguments[0]
        if name not in FIGURES:
            raise self.error(f"dg-figure: no figure {name!r}; known: {', '.join(FIGURES)}")
        builder = self.env.app.builder
        page = builder.get_target_uri(self.env.docname)
        src = posixpath.relpath(f"{FOLDER}/{name}.png", posixpath.dirname(page) or ".")
        alt = self.options.get("alt", name).replace('"', "&quot;")
        figure = nodes.container(classes=["dg-figure"])
        figure += nodes.raw(
            "", f'<img src="{src}" alt="{alt}" class="dg-figure-image" />', format="html"
        )
        if self.content:
            caption = nodes.container(classes=["dg-figure-caption"])
            self.state.nested_parse(self.content, self.content_offset, caption)
            figure += caption
        return [figure]


def _draw_all(app, exception):
    if exception is None and app.builder.format == "html":
        for name in FIGURES:
            draw(name, pathlib.Path(app.outdir) / FOLDER)


def setup(app):
    """Register the directive and draw the figures after the pages are written."""
    app.add_directive("dg-figure", FigureDirective)
    app.connect("build-finished", _draw_all)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
