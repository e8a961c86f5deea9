"""The exit status from results (the same for a run and for the era matrix), and
the report of a run of many files: one line per file, blocks for failures."""

from __future__ import annotations

import re

import attrs
import pytest
from examples import FAILING, LONG_TERM_PIN, RACE, pinners_racing_fork

from cowdsl import matrix
from cowdsl.explore.search import Bounds
from cowdsl.load import load_text
from cowdsl.report import exitcode, summary
from cowdsl.run import run

LONG_TITLE = ('scenario "a title far longer than herd7 would ever print four times: the pin, the fork, '
              'the write and the DMA, all of it in one line"\n')


def _result(source: str, name: str = "t.cow", backend: str = "anon-exclusive", expect: str | None = None, **kw):
    r = run(load_text(source, name), backend, **kw)
    return attrs.evolve(r, expected=expect) if expect is not None else r


@pytest.fixture(scope="module")
def cells():
    undecided = _result(pinners_racing_fork(3, 3), "big.cow", bounds=Bounds(max_states=50, timeout=60))
    assert undecided.verdict == "unknown"
    return {
        "pass": _result(LONG_TERM_PIN, "pin.cow"),  # expect pass, passes
        "fail as expected": _result(FAILING, "f.cow", expect="fail"),
        "fail without expect": _result(FAILING, "f.cow"),
        "pass against expect fail": _result(LONG_TERM_PIN, "pin.cow", expect="fail"),
        "undecided": undecided,
        "skip": attrs.evolve(_result(LONG_TERM_PIN, "pin.cow"), checks=()),
    }


# --- 6. exit codes -----------------------------------------------------------------------------


@pytest.mark.parametrize("name, code", [
    ("pass", 0), ("fail as expected", 0), ("fail without expect", 1), ("pass against expect fail", 1),
    ("undecided", 3), ("skip", 0)])
def test_each_cell_exits_as_its_verdict_and_expectation_say(cells, name, code):
    assert exitcode.cell(cells[name]) == code
    assert exitcode.exit_code([cells[name]]) == code


def test_not_as_expected_wins_over_undecided_and_errors_over_both(cells):
    assert exitcode.exit_code([cells["pass"], cells["undecided"]]) == exitcode.UNDECIDED == 3
    assert exitcode.exit_code([cells["undecided"], cells["fail without expect"], cells["pass"]]) == 1
    assert exitcode.exit_code([cells["undecided"], cells["fail without expect"]], errors=True) == 2
    assert exitcode.exit_code([]) == 0


def test_a_cell_exits_the_same_alone_and_in_the_matrix():
    """The race fails on anon-exclusive without an expect line: alone it exits 1,
    and so does the matrix that holds it (the matrix used to count only cells
    with an expect line)."""
    scs = [load_text(LONG_TERM_PIN, "pin.cow"), load_text(RACE, "race.cow")]
    mx = matrix.build(scs, ["anon-exclusive", "mapcount"])
    for (file, backend), r in mx.results.items():
        alone = run(load_text(LONG_TERM_PIN if file == "pin.cow" else RACE, file), backend)
        assert exitcode.cell(r) == exitcode.exit_code([alone]), (file, backend)
    assert not mx.mismatches() and exitcode.matrix_exit_code(mx) == 1
    only_pin = matrix.build(scs[:1], ["anon-exclusive"])
    assert exitcode.matrix_exit_code(only_pin) == 0


# --- 7. many files ---------------------------------------------------------------------------------


def test_one_line_per_file_and_blocks_for_failures_only(cells):
    results = [cells["pass"], cells["fail as expected"], cells["fail without expect"], cells["undecided"]]
    out = summary.directory_report(results)
    lines = out.splitlines()
    assert [re.split(r"\s+", ln)[:2] for ln in lines[:4]] == [
        ["pin.cow", "pass"], ["f.cow", "fail"], ["f.cow", "fail!"], ["big.cow", "unknown?"]]
    assert all(re.search(r"  \d+\.\d{3}s$", ln) for ln in lines[:4])
    # the full blocks: the run not as expected and the undecided one, not the two as expected
    assert [ln for ln in lines if ln.startswith("== ")] == ["== f.cow", "== big.cow"]
    assert out.count("Test ") == 2
    assert out.count("Test long-term pin") == 0
    every = summary.directory_report(results, verbose=True)
    assert every.count("Test ") == 4 and every.startswith("\n".join(lines[:4]))


def test_a_long_title_is_printed_once():
    r = _result(LONG_TITLE + FAILING.split("\n", 1)[1], "dir/long-title.cow")
    out = summary.directory_report([r])
    assert out.count("a title far longer") == 1
    assert "Test long-title on anon-exclusive" in out
    assert "Observation long-title Never 0 1" in out and re.search(r"Time long-title \d", out)
    race = _result(LONG_TITLE + RACE.split("\n", 1)[1], "dir/long-race.cow")
    out = summary.directory_report([race])
    assert out.count("a title far longer") == 1 and "Observation long-race Sometimes 1 1" in out
    assert max(len(ln) for ln in out.splitlines()) <= 80


def test_the_corpus_prints_a_line_a_file(monkeypatch):
    from pathlib import Path

    from cowdsl.load import find, load

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    results = [run(load(f), "anon-exclusive") for f in find(["scenarios/races"]) if not f.is_dir()]
    out = summary.directory_report(results)
    assert len(out.splitlines()) == len(results) == 8  # all as expected: no blocks
    assert all(ln.startswith("scenarios/races/") and len(ln) <= 80 for ln in out.splitlines())
    long_path = summary.file_lines(results[:1], width=40)
    assert long_path[0] == results[0].scenario.filename and long_path[1].strip().startswith("pass")


def test_a_backend_a_file_names_no_expectation_for_is_shown_not_judged():
    """The pin scenario expects pass on anon-exclusive and says nothing of mapcount,
    where it fails: exit 0 alone and in the matrix (a file without any expect line
    must pass everywhere, as above)."""
    sc = load_text(LONG_TERM_PIN, "pin.cow")
    alone = run(sc, "mapcount")
    assert alone.verdict == "fail" and alone.expected is None and not alone.judged and alone.ok
    assert exitcode.exit_code([alone]) == 0
    assert exitcode.matrix_exit_code(matrix.build([sc], ["anon-exclusive", "mapcount"])) == 0
