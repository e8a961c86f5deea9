"""`par` blocks on the real kernel: actors on real threads and processes, released together,
repeated, and judged as what N executions showed, never as a proof.

- the start line (``cowdsl.native.barrier``): seeded skews and CPUs, the gate, the spin;
- the judging of N runs (``cowdsl.native.repeat``): "witnessed K of N", "a violation seen
  (run k)", "none in N runs";
- the planner: what a par block cannot run natively, with the reason;
- integration on this host: a small par scenario run natively, and cross-checked.

The integration tests are skipped, with the reason, where the host cannot run native.
"""

from __future__ import annotations

import os
import select
import tempfile
import textwrap
import threading
import time

import helpers_children
import pytest
from examples import NATIVE_PAR

from cowdsl import scenario as S
from cowdsl.judge import sampled
from cowdsl.native import barrier, repeat, skip_reason

_SKIP = skip_reason()
needs_native = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


def load(text: str, name: str = "par.cow"):
    from cowdsl.load import load_text

    return load_text(textwrap.dedent(text).strip() + "\n", name)


# --- the start line ---------------------------------------------------------------------------


def test_run_0_releases_every_actor_at_once_and_later_runs_draw_skews_in_the_window():
    first = barrier.releases(["A", "T", "B"], seed=7, run=0, window_ns=200_000, cpus=[0])
    assert [r.skew_ns for r in first.values()] == [0, 0, 0]
    later = [barrier.releases(["A", "T"], seed=7, run=k, window_ns=200_000, cpus=[0]) for k in range(1, 40)]
    skews = [r.skew_ns for rel in later for r in rel.values()]
    assert all(0 <= s < 200_000 for s in skews)
    assert len(set(skews)) > 70  # drawn, not fixed
    # which actor goes first varies from run to run
    assert {rel["A"].skew_ns < rel["T"].skew_ns for rel in later} == {True, False}


def test_the_same_seed_gives_the_same_skews_and_another_seed_others():
    def draw(seed):
        return [barrier.releases(["A", "T"], seed=seed, run=k, window_ns=100_000, cpus=[0, 1]) for k in range(5)]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def test_the_window_is_bounded():
    tiny = barrier.releases(["A", "T"], seed=1, run=1, window_ns=0, cpus=[0])
    huge = [barrier.releases(["A"], seed=1, run=k, window_ns=10**12, cpus=[0]) for k in range(1, 50)]
    assert all(r.skew_ns < barrier.MIN_WINDOW_NS for r in tiny.values())
    assert all(rel["A"].skew_ns < barrier.MAX_WINDOW_NS for rel in huge)


def test_actors_are_spread_over_the_cpus_and_stay_put_on_one():
    two = [barrier.releases(["A", "T"], seed=0, run=k, window_ns=1, cpus=[0, 1]) for k in range(20)]
    assert all({r.cpu for r in rel.values()} == {0, 1} for rel in two)  # distinct CPUs: in parallel
    assert {rel["A"].cpu for rel in two} == {0, 1}  # the rotation is drawn per run
    one = barrier.releases(["A", "T"], seed=0, run=3, window_ns=1, cpus=[2])
    assert {r.cpu for r in one.values()} == {None}  # one CPU: no affinity change at all


def test_the_gate_releases_every_waiter_when_it_opens():
    gate = barrier.Gate(["a", "b", "c"])
    woke: dict[str, int] = {}

    def actor(name):
        gate.ready(name)
        woke[name] = barrier.wait(gate.read_fd)

    threads = [threading.Thread(target=actor, args=(n,)) for n in "abc"]
    for th in threads:
        th.start()
    time.sleep(0.05)
    assert select.select([gate.read_fd], [], [], 0)[0] == []  # shut until opened
    assert woke == {}
    opened = gate.open(timeout=5)
    for th in threads:
        th.join(5)
    gate.close()
    assert set(woke) == {"a", "b", "c"} and all(w >= opened for w in woke.values())


def test_the_gate_opens_after_its_timeout_when_an_actor_never_comes():
    gate = barrier.Gate(["a", "never"])
    gate.ready("a")
    t0 = time.monotonic()
    gate.open(timeout=0.1)
    assert 0.09 <= time.monotonic() - t0 < 2
    assert barrier.wait(gate.read_fd) >= gate.opened_ns  # open: a late reader passes at once
    gate.close()


def test_spin_waits_its_skew():
    t0 = time.monotonic_ns()
    end = barrier.spin(300_000)
    assert end - t0 >= 300_000
    assert barrier.spin(0) - end < 50_000_000


# --- judging N runs ---------------------------------------------------------------------------


@pytest.mark.parametrize("quantifier, runs, words", [
    (S.ALWAYS, [True, True, True], "none in 3 runs"),
    (S.ALWAYS, [True, False, True, False], "a violation seen (run 2), 2 of 4 runs"),
    (S.NEVER, [True, False], "a violation seen (run 2)"),
    (S.NEVER, [True], "none in 1 run"),
    (S.SOMETIMES, [False, True, True, False], "witnessed 2 of 4"),
    (S.SOMETIMES, [False, False], "witnessed 0 of 2"),
    (S.ALWAYS, [True, None, True], "none in 2 runs (1 undecided)"),
    (S.SOMETIMES, [None, None], None),
    (S.INVARIANT, [True], None),
])
def test_the_words_for_what_the_runs_showed(quantifier, runs, words):
    assert sampled.wording(quantifier, runs) == words


SCENARIO = "\n" + NATIVE_PAR


def _runs(sc, per_run):
    """Results of fake runs: ``per_run[k][i]`` is run k's answer to assertion i."""
    from cowdsl.judge import Check, Result
    from cowdsl.native import SPEC

    return [Result(sc, SPEC, None, (), tuple(Check(a, h, {"A.x": str(k)}, int(bool(h)), int(h is False))
                                             for a, h in zip(sc.assertions, answers)), None, 0.01)
            for k, answers in enumerate(per_run)]


def test_runs_are_judged_together_with_the_values_of_the_run_that_decided():
    sc = load(SCENARIO)
    results = _runs(sc, [[True, True, False, False], [False, True, True, False], [True, True, True, False]])
    runs = repeat.combine(sc, results, requested=3, seed=5, stopped=None, seconds=0.03)
    always, never, witnessed, unseen = runs.result.checks
    assert always.holds is False and always.values["line 12"] == "a violation seen (run 2)"
    assert always.values["A.x"] == "1"  # the values of run 2, which broke it
    assert always.shows == "counterexample" and (always.positive, always.negative) == (2, 1)
    assert never.holds is True and never.values["line 13"] == "none in 3 runs" and never.shows == ""
    assert witnessed.holds is True and witnessed.values["line 14"] == "witnessed 2 of 3"
    assert witnessed.values["A.x"] == "1" and witnessed.shows == "witness"
    assert unseen.holds is False and unseen.values["line 15"] == "witnessed 0 of 3"
    assert all(c.values[repeat.RUNS] == "3 (seed 5)" for c in runs.result.checks)
    assert runs.result.verdict == "fail" and runs.result.seconds == 0.03
    assert sampled.shown(sc, results) == 1


def test_fewer_runs_than_asked_say_why():
    sc = load(SCENARIO)
    runs = repeat.combine(sc, _runs(sc, [[True] * 4]), requested=20, seed=0,
                          stopped="the 1 s timeout ended the runs after 1 of 20", seconds=1.0)
    assert runs.result.checks[0].values[repeat.RUNS] == \
        "1 of 20 (seed 0); the 1 s timeout ended the runs after 1 of 20"


def test_one_run_of_a_sequential_scenario_is_its_own_result():
    sc = load("process A\nA: mmap(buf, anon, private, rw)\nassert A.buf == 0\n")
    results = _runs(sc, [[True]])
    assert repeat.combine(sc, results, requested=1, seed=0, stopped=None, seconds=0).result is results[0]


# --- the planner ------------------------------------------------------------------------------


class _Host:
    reason = None
    swap = True
    thp = hugetlb = ksm = None


def _problem(text):
    from cowdsl.native import Limits, plan

    return plan.problem(load(text), _Host(), Limits())


def test_a_par_block_is_planned_like_sequential_steps():
    assert _problem(SCENARIO) is None


def test_a_fast_pin_in_a_par_block_stays_unsupported():
    number, why = _problem("""
        process A
        thread T of A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        par {
          T: pin(buf, write, fast) as mr
          A: fork() as B
        }
        assert mr is A.buf
    """)
    assert number == 3 and "GUP-fast" in why


def test_two_actors_on_one_thread_cannot_run_at_once():
    number, why = _problem("""
        process A
        A: mmap(buf, anon, private, rw)
        A: pin(buf, write, longterm) as mr
        par {
          mr: dma_write(3)
          A: write(buf, 2)
        }
        assert A.buf == 2
    """)
    assert number == 4
    assert why == ("unsupported on native: `A: write(buf, 2)`: in a `par` block `mr` and `A` would both run on "
                   "A's main thread natively, one after the other, not at once")


# --- on this host -------------------------------------------------------------------------------


@needs_native
def test_a_par_block_runs_on_real_threads_and_processes_repeatedly(tmp_path, monkeypatch):
    from cowdsl.native import run_native

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r = run_native(load(SCENARIO), repeat=6, seed=11)
    always, never, witnessed, unseen = r.checks
    assert always.holds is True and always.values["line 12"] == "none in 6 runs"  # each thread its own store
    assert never.holds is True and never.values["line 13"] == "none in 6 runs"
    assert witnessed.holds is True and witnessed.values["line 14"] == "witnessed 6 of 6"
    assert unseen.holds is False and unseen.values["line 15"] == "witnessed 0 of 6"
    assert always.values[repeat.RUNS] == "6 (seed 11)"
    by_line = {rec.step.span.line: [e.text for e in rec.events] for rec in r.steps}
    assert by_line[3][0] == "native: run 1 of 6 shown (seed 11)"
    for line, who in ((8, "A"), (9, "T"), (10, "B")):
        [when] = [e for e in by_line[line] if "after the block's release" in e]
        assert when.startswith(f"{who} on CPU ") and when.split(": from +")[1][0].isdigit()
    assert "thread T: store 3" in " ".join(by_line[9])
    assert list(tmp_path.iterdir()) == []  # every run's private directory removed


@needs_native
def test_the_actors_run_on_different_cpus_when_there_are_several():
    from cowdsl.native import run_native

    cpus = os.sched_getaffinity(0)
    r = run_native(load(SCENARIO), repeat=1)
    seen = {int(e.text.split(" on CPU ")[1].split(":")[0]) for rec in r.steps for e in rec.events
            if "after the block's release" in e.text}
    if len(cpus) > 1:
        assert len(seen) > 1 and seen <= cpus
    else:
        assert len(seen) == 1
    assert os.sched_getaffinity(0) == cpus  # the run gave its CPUs back


@needs_native
def test_a_par_scenario_runs_20_times_by_default_within_the_timeout():
    from cowdsl.native import PAR_REPEAT, run_native

    assert PAR_REPEAT == 20
    r = run_native(load(SCENARIO))
    assert r.checks[0].values[repeat.RUNS] == "20 (seed 0)"
    r = run_native(load(SCENARIO), repeat=10_000, timeout=0.5)
    runs = r.checks[0].values[repeat.RUNS]  # (every check says it, decided or not)
    assert runs.startswith(tuple(f"{k} of 10000 (seed 0); the 0.5 s timeout ended the runs after {k} of 10000"
                                 for k in range(1, 10_000)))


@needs_native
def test_a_step_that_hangs_in_a_par_block_aborts_the_run():
    from cowdsl.native import Limits, run_native

    def hang(step, ctl):
        if step.actor == "T":
            ctl.call(ctl.procs["A"], {"op": "sleep", "seconds": 30, "thread": "T"})

    t0 = time.monotonic()
    r = run_native(load(SCENARIO), limits=Limits(step_timeout=0.3), inject=hang, repeat=1)
    assert time.monotonic() - t0 < 5
    assert r.verdict == "skip" and "run aborted at step" in r.checks[0].values["unsupported"]
    by_line = {rec.step.span.line: rec.outcome for rec in r.steps}
    assert by_line[9].error.startswith("timeout")


@pytest.fixture(autouse=True)
def _children_before():
    helpers_children.snapshot()


_children = helpers_children.left


@needs_native
def test_an_actor_killed_in_a_par_block_is_reported_and_nothing_is_left(tmp_path, monkeypatch):
    import signal

    from cowdsl.native import run_native

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def kill_b(step, ctl):
        if step.actor == "B":
            os.kill(ctl.procs["B"].pid, signal.SIGKILL)

    r = run_native(load(SCENARIO), inject=kill_b, repeat=3)
    by_line = {rec.step.span.line: rec.outcome for rec in r.steps}
    assert by_line[10].error == "killed by SIGKILL" and by_line[8].ok and by_line[9].ok
    assert r.checks[0].values["line 12"] == "none in 3 runs"
    assert not _children() and list(tmp_path.iterdir()) == []


@needs_native
def test_an_interrupt_in_a_par_block_tears_the_run_down(tmp_path, monkeypatch):
    from cowdsl.native import run_native

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def ctrl_c(step, ctl):
        if step.actor == "T":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_native(load(SCENARIO), inject=ctrl_c)
    assert not _children() and list(tmp_path.iterdir()) == []
