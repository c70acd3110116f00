"""The guides' code runs as written, and prints what they show.

Each guide's ``python`` blocks run in order in one namespace; a block followed
by an output block that starts with ``AssertionError:`` must raise it, with
that first line.
"""

from __future__ import annotations

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).parent.parent / "docs"
_FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def _blocks(name):
    return [(lang, body) for lang, body in _FENCE.findall((DOCS / name).read_text())]


@pytest.mark.parametrize("guide", ["guide-port-vae.md", "guide-from-sklearn.md"])
def test_guide_runs_as_written(guide):
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    blocks = _blocks(guide)
    namespace: dict = {}
    ran = 0
    for i, (lang, body) in enumerate(blocks):
        if lang != "python":
            continue
        after = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
        expected = after[1] if after[0] == "" and after[1].startswith("AssertionError:") else None
        if expected is None:
            exec(compile(body, f"{guide} block {i}", "exec"), namespace)
        else:
            with pytest.raises(AssertionError) as info:
                exec(compile(body, f"{guide} block {i}", "exec"), namespace)
            first = expected.splitlines()[0].removeprefix("AssertionError: ")
            assert str(info.value).splitlines()[0] == first
        ran += 1
    assert ran >= 5
