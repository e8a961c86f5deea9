"""The conformance suite: every scenario on every backend, its expect lines checked.

Like ibis's backend suite: the expectations live in the .cow files; a backend
without an expect line still runs (it must not crash), and the golden matrix
pins down every cell.  Set COWDSL_UPDATE_GOLDEN=1 to rewrite the golden file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cowdsl import matrix
from cowdsl.load import find, load
from cowdsl.run import run

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
FILES = find([SCENARIOS])
def _cases():
    for f in FILES:
        for spec in matrix.backends_for([load(f)]):
            yield pytest.param(f, spec.name, id=f"{f.relative_to(SCENARIOS)}::{spec.name}")


def test_corpus_is_not_empty():
    assert len(FILES) >= 30


@pytest.mark.parametrize("path, spec", list(_cases()))
def test_scenario_on_backend(path, spec):
    sc = load(path)
    r = run(sc, spec)
    if r.exploration is None:
        assert len(r.steps) == len(sc.steps)
    else:
        assert r.exploration.partial is None, "the corpus is explored completely within the default bounds"
    assert all(c.holds is not None for c in r.checks), "a model backend decides every assertion"
    if r.expected is not None:
        detail = "; ".join(f"{c.assertion.text}: {'ok' if c.holds else 'NO'}" for c in r.checks)
        assert r.verdict == r.expected, f"{path.name} on {spec}: expected {r.expected}, got {r.verdict} ({detail})"


def test_every_scenario_has_an_expect_line():
    for f in FILES:
        assert load(f).expectations, f"{f} has no expect line"


def test_golden_matrix():
    mx = matrix.build([load(f) for f in FILES])
    got = matrix.text(mx).replace(str(ROOT) + "/", "")
    golden = ROOT / "tests" / "golden" / "matrix.txt"
    if os.environ.get("COWDSL_UPDATE_GOLDEN") or not golden.exists():
        golden.write_text(got + "\n")
    assert got + "\n" == golden.read_text(), "the era matrix changed; review, then rerun with COWDSL_UPDATE_GOLDEN=1"
