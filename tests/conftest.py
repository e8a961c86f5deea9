"""Shared helpers for the front-end tests (parser, checker, diagnostics), and the
settings every test file shares: Hypothesis's example database is off while the
suite runs in parallel (pytest-xdist workers would share one directory, and which
worker replays which saved example would depend on scheduling)."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import settings

if os.environ.get("PYTEST_XDIST_WORKER"):
    settings.register_profile("xdist-worker", database=None)
    settings.load_profile("xdist-worker")

from cowdsl.errors import CowError
from cowdsl.load import load_text


def _load_error(source: str, filename: str = "x.cow") -> CowError:
    """The CowError that loading ``source`` raises; any other exception fails the test."""
    with pytest.raises(CowError) as info:
        load_text(source, filename)
    return info.value


_HEADER = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): error: (?P<message>.*)$")


def _rendered(err: CowError, index: int = 0) -> dict:
    """Diagnostic ``index`` of ``err`` as rendered text, taken apart: the header's
    file/line/col/message, the caret's offset under the source text and its width,
    and the `expected:` and `hint:` lines (None when absent)."""
    blocks = err.render().split("\n")
    starts = [i for i, line in enumerate(blocks) if _HEADER.match(line)]
    start = starts[index]
    end = starts[index + 1] if index + 1 < len(starts) else len(blocks)
    header, source_line, caret_line, *rest = blocks[start:end]
    m = _HEADER.match(header)
    gutter = source_line.index("| ") + 2
    assert caret_line[: gutter].strip() == "|", caret_line
    marks = caret_line[gutter:]
    extra = {k: None for k in ("expected", "hint")}
    for line in rest:
        key, _, value = line.strip().partition(": ")
        assert key in extra, line
        extra[key] = value
    return dict(
        file=m["file"], line=int(m["line"]), col=int(m["col"]), message=m["message"],
        source=source_line[gutter:], pad=len(marks) - len(marks.lstrip(" ")), width=marks.count("^"),
        expected=extra["expected"], hint=extra["hint"],
    )


@pytest.fixture
def load_error():
    return _load_error


@pytest.fixture
def rendered():
    return _rendered
