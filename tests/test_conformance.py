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
from cowdsl.load import find, load_all
from cowdsl.run import run
from cowdsl.scenario import variant_suffix

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
FILES = find([SCENARIOS])
def _cases():
    for f in FILES:
        for i, sc in enumerate(load_all(f)):  # a file with params is one scenario per value
            for spec in matrix.backends_for([sc]):
                yield pytest.param(f, i, spec.name, id=f"{f.relative_to(SCENARIOS)}{variant_suffix(sc.params)}::{spec.name}")


def test_corpus_is_not_empty():
    assert len(FILES) >= 30


@pytest.mark.parametrize("path, i, spec", list(_cases()))
def test_scenario_on_backend(path, i, spec):
    sc = load_all(path)[i]
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
        for sc in load_all(f):
            assert sc.expectations, f"{sc.where} has no expect line"


def test_golden_matrix():
    mx = matrix.build([sc for f in FILES for sc in load_all(f)])
    got = matrix.text(mx).replace(str(ROOT) + "/", "")
    golden = ROOT / "tests" / "golden" / "matrix.txt"
    if os.environ.get("COWDSL_UPDATE_GOLDEN") or not golden.exists():
        golden.write_text(got + "\n")
    assert got + "\n" == golden.read_text(), "the era matrix changed; review, then rerun with COWDSL_UPDATE_GOLDEN=1"
