"""The search stops once every verdict is decided (an always/never broken, a
sometimes witnessed, every invariant broken), with the same verdicts and the
same shortest, least interleaved evidence as a search of every state
(``all_states``, the CLI's --all-states); and it says which of the two happened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from examples import RACE, pinners_racing_fork

from cowdsl.errors import CowError
from cowdsl.explore import search
from cowdsl.explore.model import Model
from cowdsl.load import find, load_all, load_text
from cowdsl.report import jsonout, text
from cowdsl.run import run
from cowdsl.semantics import registry

RACY = "early-cow:wp_seq=off"  # GUP-fast slips between fork's decision and its write-protect
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

INVARIANT_BROKEN_EARLY = """
process A, B
A: mmap(p, anon, private, rw)
B: mmap(q, anon, private, rw)
A: write(p, 0)
par {
  A: write(p, 5)
  A: write(p, 1)
  B: write(q, 1)
  B: write(q, 2)
  B: write(q, 3)
}
invariant not (A.p == 5)
"""


def both(src: str, backend: str, mode: str, **kw):
    sc = load_text(src, "t.cow")
    return run(sc, backend, mode=mode, all_states=True, **kw), run(sc, backend, mode=mode, **kw)


@pytest.mark.parametrize("mode", ["full", "reduced"])
def test_a_race_with_a_violation_stops_at_it_with_fewer_states(mode):
    every, first = both(pinners_racing_fork(3, 2), RACY, mode)
    assert first.exploration.stopped and not every.exploration.stopped
    assert first.exploration.complete is False and every.exploration.complete
    assert first.exploration.partial is None  # stopping is not a bound
    assert first.exploration.states < every.exploration.states
    assert [c.holds for c in first.checks] == [c.holds for c in every.checks] == [False]
    # the evidence is the same: the shortest, least interleaved counterexample
    assert [(t.actor, t.label) for t in first.checks[0].witness] == \
           [(t.actor, t.label) for t in every.checks[0].witness]


def test_an_invariant_broken_early_stops_the_full_search_at_that_depth():
    every, first = both(INVARIANT_BROKEN_EARLY, "anon-exclusive", "full")
    assert first.exploration.stopped and first.exploration.states < every.exploration.states
    assert first.checks[0].holds is False and every.checks[0].holds is False
    assert [t.label for t in first.checks[0].witness] == [t.label for t in every.checks[0].witness]
    last = first.checks[0].witness[-1]
    assert last.actor == "A" and last.outcome is not None  # it ends as A's write of 5 ends
    assert all(t.actor == "A" or t.step < 3 for t in first.checks[0].witness)  # none of B's par writes: not shortest


def test_a_verdict_that_needs_every_state_searches_every_state():
    """`always` that holds is decided only by the whole space: nothing stops early."""
    for mode in ("full", "reduced"):
        every, first = both(pinners_racing_fork(2, 2), "anon-exclusive", mode)
        assert not first.exploration.stopped and first.exploration.complete
        assert first.exploration.states == every.exploration.states
        assert [c.holds for c in first.checks] == [c.holds for c in every.checks] == [True]


def test_one_undecided_assertion_keeps_the_search_going():
    src = RACE + "sometimes: A.buf == 1\n"  # decided at the first final state that shows it, alongside the always
    first = run(load_text(src, "t.cow"), "anon-exclusive", mode="full")
    assert first.exploration.stopped  # both decided: the always broken, the sometimes witnessed
    src = RACE + "never: A.buf == 3\n"  # holds: only the whole space shows it
    first = run(load_text(src, "t.cow"), "anon-exclusive", mode="full")
    assert not first.exploration.stopped and [c.holds for c in first.checks] == [False, True]


def test_a_counterexample_found_is_never_dropped_when_a_bound_is_hit():
    r = run(load_text(pinners_racing_fork(3, 3), "t.cow"), RACY, mode="reduced",
            bounds=search.Bounds(max_states=40, timeout=60))
    assert r.exploration.partial is not None or r.exploration.stopped
    for c in r.checks:
        if c.holds is False:
            assert c.witness is not None


def test_a_bound_still_says_partial():
    r = run(load_text(pinners_racing_fork(3, 3), "t.cow"), "anon-exclusive", mode="full",
            bounds=search.Bounds(max_states=50, timeout=60))
    assert r.exploration.partial is not None and not r.exploration.stopped and r.verdict == "unknown"


def _races():
    return [sc for f in find([SCENARIOS]) for sc in _loaded(f) if sc.concurrent]


def _loaded(f):
    """A corpus file's scenarios; one that does not load is the loader's tests' business (test_load_files)."""
    try:
        return load_all(f)
    except CowError:
        return []


def test_the_race_corpus_gives_the_same_verdicts_stopping_or_not():
    races = _races()
    assert len(races) >= 8
    stopped = 0
    for sc in races:
        for backend in (RACY, "anon-exclusive"):
            for mode in ("full", "reduced"):
                every = run(sc, backend, mode=mode, all_states=True)
                first = run(sc, backend, mode=mode)
                where = (sc.filename, backend, mode)
                assert [c.holds for c in first.checks] == [c.holds for c in every.checks], where
                assert [c.shows for c in first.checks] == [c.shows for c in every.checks], where
                assert [c.witness is None for c in first.checks] == [c.witness is None for c in every.checks], where
                assert first.exploration.states <= every.exploration.states, where
                stopped += first.exploration.stopped
                if mode == "full":  # the same shortest, least interleaved evidence, found on the fly
                    assert [c.witness and [t.tid for t in c.witness] for c in first.checks] == \
                           [c.witness and [t.tid for t in c.witness] for c in every.checks], where
    assert stopped >= 4  # the racy s12 files stop at their counterexample


def test_the_routes_of_the_full_search_are_the_shortest_paths():
    """The full search's on-the-fly route to a world is what a search for it alone finds."""
    sc = load_text(pinners_racing_fork(2, 2), "t.cow")
    model = Model(sc, registry.get(RACY))
    ex = search.full(model, search.Bounds())
    assert ex.routes is not None
    for w in list(ex.finals)[:5]:
        on = ex.routes.to([w])
        alone = search.shortest(Model(sc, registry.get(RACY)), lambda x, w=w: x == w, search.Bounds())
        assert on is not None and alone is not None
        assert [i for _, i in on] == [i for _, i in alone]


def test_the_output_says_whether_the_search_stopped_or_completed():
    from jsonschema import validate

    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "json-schema.json").read_text())
    every, first = both(pinners_racing_fork(3, 2), RACY, "reduced")
    out = text.report(first)
    assert f"stopped at the first counterexample: {first.exploration.states} states" in out
    assert "--all-states" in out
    assert "stopped at" not in text.report(every)
    doc = json.loads(json.dumps(jsonout.document([first, every], [])))
    validate(doc, schema)
    assert [r["exploration"]["stopped"] for r in doc["results"]] == [True, False]


def test_the_cli_stops_by_default_and_explores_on_with_all_states(capsys):
    from cowdsl.cli import main

    s12 = SCENARIOS / "races" / "s12-gup-fast-pin-vs-fork.cow"
    main(["run", "-b", RACY, "--mode", "reduced", str(s12)])
    first = capsys.readouterr().out
    main(["run", "-b", RACY, "--mode", "reduced", "--all-states", str(s12)])
    every = capsys.readouterr().out
    assert "stopped at the first counterexample" in first and "stopped at" not in every
    assert int(first.split("States ")[1].split()[0]) < int(every.split("States ")[1].split()[0]) == 3
    main(["run", "-b", RACY, "--format", "json", str(s12)])
    assert json.loads(capsys.readouterr().out)["results"][0]["exploration"]["stopped"] is True
