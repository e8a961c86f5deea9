"""Reports of explored (concurrent) runs: final states herd-style, verdicts never
without their evidence, counterexamples fit for a mail (width, source lines, one
execution once, folded setup, the kernel's lane diagram)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from examples import RACE

from cowdsl.explore import search
from cowdsl.explore.model import Model
from cowdsl.judge import explored as judge_explored
from cowdsl.load import load, load_text
from cowdsl.report import explored, race, text
from cowdsl.run import run
from cowdsl.semantics import registry

S12_FILE = Path(__file__).resolve().parent.parent / "scenarios" / "races" / "s12-gup-fast-pin-vs-fork.cow"
RACY = "early-cow:wp_seq=off"  # no write_protect_seq: GUP-fast slips between fork's decision and its write-protect


@pytest.fixture(scope="module")
def s12():
    return run(load(S12_FILE), RACY, mode="reduced", all_states=True)  # every final state, herd-style


@pytest.fixture(scope="module")
def s12_full():
    return run(load(S12_FILE), RACY, mode="full", all_states=True)


def _states_block(report: str) -> list[str]:
    lines = report.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("States "))
    n = int(lines[i].split()[1])
    return lines[i + 1: i + 1 + n]


# --- 1. final states, herd-style ------------------------------------------------------------------


def test_each_final_state_is_a_line_of_the_facts_the_assertions_see(s12):
    out = text.report(s12)
    states = _states_block(out)
    assert len(states) == 3 and states == sorted(states)
    # the race: the pin stays on #1, the parent's write copied away to #2, the device reads the old value
    assert "page(mr)=#1; page(A.buf)=#2; seen=1; writable(B.buf)=false;" in states
    assert all(re.fullmatch(r"page\(mr\)=#\d; page\(A\.buf\)=#\d; seen=\d; writable\(B\.buf\)=(true|false);", s)
               for s in states)
    # the reduced search does not count executions per state: it says nothing
    assert not any("execution" in s for s in states)


def test_full_mode_counts_the_executions_reaching_each_final_state(s12_full):
    states = _states_block(text.report(s12_full))
    counts = [int(re.search(r"\((\d+) executions?\)$", s).group(1)) for s in states]
    assert len(counts) == 3 and sum(counts) == s12_full.exploration.executions
    finals = race.final_states(s12_full)
    assert [f.executions for f in finals] == counts
    racy = next(f for f in finals if f.facts["seen"] == "1")
    assert [a.span.line for a in racy.fails] == [43, 44]  # the race breaks both `always` lines


def test_state_and_trace_show_each_final_state(s12):
    plain = text.report(s12)
    with_state = text.report(s12, show_state=True)
    with_trace = text.report(s12, show_trace=True)
    for n in (1, 2, 3):
        assert f"Final state {n} of 3: " in with_state and f"Final state {n} of 3: " in with_trace
    assert "Final state 1 of 3" not in plain
    assert with_state.count("  where  pte ") == 3 and "pin/ref" in with_state  # the state table of each
    assert with_trace.count("Execution reaching it, ") == 3 and "pin/ref" not in with_trace
    # each witness execution ends in its state: replaying its schedule gets there
    sc = load(S12_FILE)
    for m in re.finditer(r"Final state \d of 3: (.*)\n(?:.*\n)*?Execution reaching it.*\n(?:.*\n)*?schedule: (.*)",
                         with_trace):
        again = run(sc, RACY, schedule=m.group(2).split(","))
        assert race.final_states(again)[0].line() == m.group(1)


def test_a_schedule_has_one_final_state_reached_once():
    r = run(load(S12_FILE), RACY, schedule="A,A,A,A,A,T,T,T,T,T,A,A,A,A,mr".split(","))
    assert _states_block(text.report(r)) == ["page(mr)=#1; page(A.buf)=#2; seen=1; writable(B.buf)=false;"
                                            "  (1 execution)"]


# --- 2. a verdict is never printed without its evidence -------------------------------------------


def _explored(source: str, backend: str):
    sc = load_text(source, "t.cow")
    model = Model(sc, registry.get(backend))
    return sc, model, search.reduced(model, search.Bounds())


def test_the_counterexample_is_extracted_with_its_own_time_budget():
    """The run's time is up when the verdict is decided: the extraction still finds
    the counterexample (it used to stop at once and print No with nothing)."""
    sc, model, ex = _explored(RACE, "anon-exclusive")
    spent = search.Bounds(timeout=1.0, started=time.monotonic() - 100)
    assert spent.hit(1) is not None
    c = judge_explored.check_exploration(model, ex, sc.assertions[0], spent)
    assert c.holds is False and c.witness is not None and c.shows == "counterexample"
    assert judge_explored.EVIDENCE not in c.values
    fresh = judge_explored.evidence_bounds(spent)
    assert fresh.hit(1) is None and fresh.timeout >= judge_explored.EVIDENCE_SECONDS


def test_a_verdict_whose_evidence_was_not_extracted_says_so(monkeypatch):
    monkeypatch.setattr(judge_explored.search, "shortest", lambda *a, **k: None)
    r = run(load_text(RACE, "race.cow"), "anon-exclusive", mode="reduced")  # (full knows its routes)
    [c] = r.checks
    assert c.holds is False and c.witness is None
    assert c.values[judge_explored.EVIDENCE] == "not extracted (bound hit)"
    assert c.values["A.buf"] == "2"  # the values of a state that breaks it, all the same
    out = text.report(r)
    lines = out.splitlines()
    at = [i for i, ln in enumerate(lines) if ln.startswith("Warning:")]
    assert len(at) == 1
    warning = " ".join(ln.strip() for ln in lines[at[0]:at[0] + 2])
    assert warning == ("Warning: line 9 is decided, but its counterexample was not extracted (bound hit): "
                       "rerun with a larger --timeout or --max-states to see it")
    assert max(len(ln) for ln in lines) <= 80
    assert "Counterexample for" not in out


# --- 3. counterexamples for a mail ----------------------------------------------------------------


def test_the_s12_race_fits_80_columns_as_lanes(s12):
    out = text.report(s12)
    assert max(len(ln) for ln in out.splitlines()) <= 80
    # the long title once, the file's name in herd's lines
    assert out.count("S12: a thread's pin_user_pages_fast") == 1
    assert out.splitlines()[0] == f"Test s12-gup-fast-pin-vs-fork on {RACY} (reduced exploration)"
    lanes = explored.executions(s12)
    head = next(i for i, ln in enumerate(lanes) if ln.startswith("CPU0"))
    assert lanes[head] == "CPU0 (A: fork)                         | CPU1 (T: GUP-fast pin)"
    assert lanes[head + 1] == "-" * 39 + "+" + "-" * 39
    assert lanes[head - 1] == "before: A mmap buf, A write buf=1"  # the setup folded in one line
    assert "after: A write buf=2, mr dma_read as seen (1)" in lanes
    assert not any(ln.startswith(("CPU2", "DMA")) for ln in lanes)  # mr acts after the race: no lane


def test_one_execution_once_with_every_assertion_it_breaks(s12):
    out = text.report(s12)
    assert out.count("Counterexample for") == 1
    assert "Counterexample for line 43 (always: mr is A.buf)\n  and line 44 (always: seen == 2), 15 micro-steps:" in out
    assert "then: page(mr)=#1; page(A.buf)=#2; seen=1;" in out
    assert out.count("schedule: ") == 3  # the counterexample and the two `sometimes` witnesses


def test_every_micro_step_of_the_race_is_kept_with_its_source_line(s12):
    cex = next(c for c in s12.checks if c.shows == "counterexample").witness
    racing = [t for t in cex if t.actor in ("A", "T") and t.step in (3, 4)]
    lines = explored.execution(cex, scenario=s12.scenario, form="list")
    numbered = [ln for ln in lines if re.match(r"\s+\d+\. ", ln)]
    assert len(numbered) == len(racing) == 11
    assert all(" line 37 " in ln for ln in numbered if re.match(r"\s+\d+\. T ", ln))
    assert all(" line 38 " in ln for ln in numbered if re.match(r"\s+\d+\. A ", ln))
    assert not any(re.search(r"\bstep \d", ln) for ln in lines)
    assert lines[0] == "before: A mmap buf, A write buf=1"
    assert lines[-1] == "after: A write buf=2, mr dma_read as seen (1)"
    lanes = explored.execution(cex, scenario=s12.scenario)
    assert "line 38: fork() as B" in lanes[3] and "line 37: pin(buf, write, fast) as mr" in "\n".join(lanes)
    for ev in ("gup_fast: grab #1", "gup_fast: PTE unchanged, #1 kept", "ptep_set_wrprotect"):
        assert ev in "\n".join(lanes).replace("\n", " ").replace("|", " ").replace("  ", " ") or \
            any(ev.split()[0] in ln for ln in lanes)


def test_no_empty_rows_and_the_width_is_kept(s12):
    cex = next(c for c in s12.checks if c.shows == "counterexample").witness
    for form in ("lanes", "list"):
        for width in (60, 80, 120):
            lines = explored.execution(cex, scenario=s12.scenario, form=form, width=width)
            assert all(ln.replace("|", "").strip() for ln in lines), (form, width)
            assert max(len(ln) for ln in lines) <= width, (form, width)
    wide = explored.execution(cex, scenario=s12.scenario, width=120)
    assert wide[1] == "CPU0 (A: fork)" + " " * 44 + " | CPU1 (T: GUP-fast pin)"


def test_the_default_form_is_lanes_for_two_or_three_actors_else_the_list():
    four = "process A\n" + "".join(f"thread T{i} of A\n" for i in range(3)) + \
        "A: mmap(buf, anon, private, rw)\npar {\n" + "".join(f"  T{i}: write(buf, {i + 1})\n" for i in range(3)) + \
        "  A: write(buf, 9)\n}\nalways: A.buf == 9\n"
    sc = load_text(four, "four.cow")
    model = Model(sc, registry.get("anon-exclusive"))
    path, _ = search.follow(model, ["A", "T0", "T1", "T2", "A"])  # four actors in the race
    out = explored.execution(search.replay(model, path), scenario=sc)
    assert not any(ln.startswith("CPU0") for ln in out) and any(re.match(r"\s+\d+\. T\d ", ln) for ln in out)
    # the run's own counterexample keeps only the actors that matter: the last writer and A
    r = run(sc, "anon-exclusive")
    shown = explored.executions(r)
    assert any("take no part" in ln for ln in shown), shown
    three = run(load_text(RACE, "race.cow"), "anon-exclusive")
    assert any(ln.startswith("CPU0") for ln in explored.executions(three))
    assert not any(ln.startswith("CPU0") for ln in explored.executions(three, form="list"))


def test_verbose_keeps_the_sequential_micro_steps(s12):
    cex = next(c for c in s12.checks if c.shows == "counterexample").witness
    lines = explored.execution(cex, scenario=s12.scenario, verbose=True, form="list")
    assert not any(ln.startswith(("before:", "after:")) for ln in lines)
    assert len([ln for ln in lines if re.match(r"\s+\d+\. ", ln)]) == len(cex)


def test_the_cli_prints_state_and_trace_for_a_par_file(capsys):
    """`cowdsl run --state --trace` on a par file: each final state's table and the
    execution reaching it (it printed neither)."""
    from cowdsl.cli import main

    code = main(["run", "-b", RACY, "--state", "--trace", "--all-states", str(S12_FILE)])
    out = capsys.readouterr().out
    assert code == 0  # `expect fail on early-cow:wp_seq=off`
    assert out.count("Execution reaching it, ") == 3 and out.count("  where  pte ") == 3
    assert "CPU1 (T: GUP-fast pin)" in out


def test_a_search_that_did_not_count_executions_reports_none_and_never_walks_the_graph_again(monkeypatch):
    """Regression: after a complete full search that did not count executions (a run without
    --all-states; a symmetric search's worlds are canonical), the report walked the plain state
    graph again to count them: seconds on gupfast_fork 4x2 (90,052 worlds), and wrong per-state
    counts on symmetric runs (two reader threads and a writer: 3 states summing 5 of 6)."""
    sc = load_text("""
        process A
        thread T0 of A
        thread T1 of A
        thread W of A
        A: mmap(p, anon, private, rw)
        A: write(p, 1)
        par {
          T0: read(p) as v0
          T1: read(p) as v1
          W: write(p, 2)
        }
        always: A.p == 2
    """.replace("\n        ", "\n").strip() + "\n", "readers.cow")
    r = run(sc, "anon-exclusive", mode="full")
    assert r.exploration is not None and r.exploration.complete and r.exploration.executions is None
    monkeypatch.setattr(Model, "step", lambda *a, **k: pytest.fail("the report walked the state graph again"))
    assert [f.executions for f in race.final_states(r)] == [None] * len(race.final_states(r))
