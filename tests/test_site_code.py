"""Every ``python`` block of every page of the site runs, and prints what it shows.

The idea of ``tests/test_guides.py``, for every page under ``docs/``: a page's
``python`` blocks run in order in one namespace; a ``text`` block right after a
``python`` block is its output, and must be exactly what the block printed.
The user-guide pages written before the site show fragments (``loc``, ``net``,
``x`` left undefined): `PRELUDES` defines those names, so the fragments run as
shown. The guides ``tests/test_guides.py`` runs are not run twice; a test
checks that every page with code is run by one of the two.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import test_guides

DOCS = pathlib.Path(__file__).parent.parent / "docs"
_FENCE = re.compile(r"^```([\w{}-]*)[^\n]*\n(.*?)^```", re.S | re.M)
SKIP_DIRS = {"_build", "_templates", "_ext"}

# Names the fragments of the older pages use without defining them.
PRELUDES = {
    "index.md": """
import numpy as np
import diaggauss as dg
loc = np.zeros((5, 2))
scale = variance = precision = np.ones((5, 2))
log_scale = np.zeros((5, 2))
""",
    "torch.md": """
import torch
torch.manual_seed(0)
net = torch.nn.Linear(4, 6)
x = torch.randn(8, 4)
""",
    # The override pattern, shown without registering it: a decorator that
    # checks what the real one takes and returns the function unchanged.
    "contributing.md": """
from diaggauss import _kernels
from diaggauss._dispatch import override as _real_override
import inspect
assert list(inspect.signature(_real_override).parameters) == ["kernel", "gaps"]
assert callable(_kernels.log_prob.generic)
GAPS = object()
def override(kernel, gaps):
    return lambda function: function
""",
}
# After a page runs, these must hold in its namespace (the fragments did something).
CHECKS = {
    "index.md": "d = dg.MultivariateNormalDiag.from_precision(loc, precision); "
    "assert d.batch_shape == (5,)",
    "torch.md": "assert q.batch_shape == (8,) and z.shape == (8, 3) and kl.shape == (8,)",
    "contributing.md": "assert log_prob.__name__ == 'log_prob'",
}


def pages():
    out = []
    for path in sorted(DOCS.rglob("*.md")):
        rel = path.relative_to(DOCS)
        if SKIP_DIRS & set(rel.parts) or rel.as_posix() == "bench/bench.md":
            continue
        out.append(rel.as_posix())
    return out


def blocks(page):
    return _FENCE.findall((DOCS / page).read_text())


GUIDES = set(test_guides.test_guide_runs_as_written.pytestmark[0].args[1])
WITH_CODE = [p for p in pages() if any(lang == "python" for lang, _ in blocks(p))]


def test_every_page_with_code_is_run():
    assert len(WITH_CODE) >= 8
    for page in WITH_CODE:
        assert page in GUIDES or page in RUN_HERE, page
    assert set(PRELUDES) <= set(WITH_CODE)


RUN_HERE = [p for p in WITH_CODE if p not in GUIDES]


# Runs one page in a fresh interpreter, as a reader would (the suite's own
# imports change what torch does: importing Pyro registers more KL pairs).
_RUNNER = """
import contextlib, io, json, sys, traceback
source = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
results = []
for name, body in source:
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(body, name, "exec"), namespace)
    except BaseException:
        results.append([name, printed.getvalue(), traceback.format_exc()])
        break
    results.append([name, printed.getvalue(), None])
json.dump(results, open(sys.argv[2], "w"))
"""


def _run(page, tmp_path):
    found = blocks(page)
    source = []
    if page in PRELUDES:
        source.append((f"prelude of {page}", PRELUDES[page]))
    for i, (lang, body) in enumerate(found):
        if lang == "python":
            source.append((f"{page} block {i}", body))
    if page in CHECKS:
        source.append((f"check of {page}", CHECKS[page]))
    (tmp_path / "in.json").write_text(json.dumps(source))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONWARNINGS="error")
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(tmp_path / "in.json"), str(tmp_path / "out.json")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "out.json").read_text())
    for name, printed, error in results:
        assert error is None, f"{name} raised:\n{error}\nafter printing:\n{printed}"
    assert len(results) == len(source)
    return {name: printed for name, printed, _ in results}


@pytest.mark.parametrize("page", RUN_HERE)
def test_page_runs_and_prints_what_it_shows(page, tmp_path):
    found = blocks(page)
    if any("torch" in body for _, body in found):
        pytest.importorskip("torch")
    if any("jax" in body for _, body in found):
        pytest.importorskip("jax")
    printed = _run(page, tmp_path)
    compared = 0
    for i, (lang, _) in enumerate(found):
        after = found[i + 1] if i + 1 < len(found) else ("", "")
        if lang == "python" and after[0] == "text":
            shown = [line.rstrip() for line in after[1].rstrip("\n").splitlines()]
            out = printed[f"{page} block {i}"]
            got = [line.rstrip() for line in out.rstrip("\n").splitlines()]
            assert got == shown, f"{page} block {i} printed:\n{out}"
            compared += 1
    if page not in CHECKS:
        # The site's own pages show the output of every block that prints.
        assert compared > 0, f"{page}: no output block compared"
