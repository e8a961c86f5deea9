"""The default mode (explore.auto): the reduced search where the actors of every
par block touch no memory in common, the full search where they contend; the
same verdicts either way."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from examples import RACE, pinners_racing_fork

from cowdsl.explore import auto
from cowdsl.explore.model import Model
from cowdsl.load import load_text
from cowdsl.run import run
from cowdsl.semantics import registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from explore import private_writers, pvw_fork  # noqa: E402  (the benchmark's families)

FORKED_WRITERS = """
process A
A: mmap(p, anon, private, rw)
A: write(p, 1)
A: fork() as B
par {
  A: write(p, 2)
  B: write(p, 3)
}
always: A.p == 2
"""

RECLAIM = """
process A, C
A: mmap(p, anon, private, rw)
C: mmap(q, anon, private, rw)
A: write(p, 1)
par {
  A: write(p, 2)
  reclaim: swapout(C.q)
}
always: A.p == 2
"""


def chosen(src: str) -> str:
    return auto.choose(Model(load_text(src, "t.cow"), registry.get("anon-exclusive")))


@pytest.mark.parametrize("src, mode", [
    (private_writers(4), "reduced"),  # each process its own page: independent
    (pinners_racing_fork(3, 2), "full"),  # pinners and fork on one mm
    (pvw_fork(3), "full"),  # writers into A's memory while A forks
    (FORKED_WRITERS, "full"),  # parent and child share the page until one copies it
    (RACE, "full"),  # a process and its thread
])
def test_auto_chooses_by_contention(src, mode):
    assert chosen(src) == mode


def test_an_actor_without_a_process_contends_with_everyone():
    """reclaim's rmap walk reaches whoever maps the page: not followed, so it contends."""
    sc = load_text(RECLAIM, "t.cow")
    assert next(s for s in sc.steps if s.actor == "reclaim").task is None
    assert auto.choose(Model(sc, registry.get("anon-exclusive"))) == "full"


@pytest.mark.parametrize("src", [private_writers(3), pinners_racing_fork(2, 2), pvw_fork(2), FORKED_WRITERS])
@pytest.mark.parametrize("backend", ["early-cow:wp_seq=off", "anon-exclusive"])
def test_the_default_gives_the_verdicts_of_full(src, backend):
    """Independent actors: the full search with ample sets, which finishes within its trial."""
    sc = load_text(src, "t.cow")
    default = run(sc, backend)
    assert default.exploration.mode == "full" and default.exploration.alone is not None
    assert [c.holds for c in default.checks] == [c.holds for c in run(sc, backend, mode="full").checks]


def zero_page_readers(k: int) -> str:
    """k processes read untouched pages (the zero page: no process owns it, so ample sets
    never take such a read alone) and write them: 2**k states for the ample sets."""
    procs = [f"P{i}" for i in range(k)]
    lines = ["process " + ", ".join(procs)] + [f"P{i}: mmap(p, anon, private, rw)" for i in range(k)]
    lines += ["par {"] + [f"  P{i}: read(p) as v{i}" for i in range(k)] + ["}"]
    return "\n".join(lines) + "\nalways: " + " and ".join(f"v{i} == 0" for i in range(k)) + "\n"


def test_past_the_trial_reduction_takes_over_with_the_same_verdicts(monkeypatch):
    sc = load_text(zero_page_readers(6), "t.cow")
    assert chosen(sc.source) == "reduced"
    trial = run(sc, "anon-exclusive")
    assert trial.exploration.mode == "full" and trial.exploration.states > 40  # the reads interleave
    monkeypatch.setattr(auto, "TRIAL_STATES", 40)
    default = run(sc, "anon-exclusive")
    assert default.exploration.mode == "reduced" and default.exploration.states < 40 and default.exploration.complete
    assert [c.holds for c in default.checks] == [c.holds for c in trial.checks] == [True]


def test_the_cli_takes_mode_auto(capsys):
    from cowdsl.cli import main

    f = Path(__file__).resolve().parents[1] / "scenarios" / "races" / "s12-gup-fast-pin-vs-fork.cow"
    main(["run", "--mode", "auto", "--format", "json", str(f)])
    assert json.loads(capsys.readouterr().out)["results"][0]["exploration"]["mode"] == "full"
