"""Micro-steps remembered by the parts of the state they touch (explore.footprint),
over states as codes (explore.codes): the same worlds and final states as running
every micro-step, far fewer runs where actors are independent, and a write the
Machine did not record is caught, not spread."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from examples import RACE, pinners_racing_fork
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_explore_lean import BLOCKING, reference

from cowdsl import fuzz
from cowdsl.errors import CowError
from cowdsl.explore import footprint, search
from cowdsl.explore.codes import Codec
from cowdsl.explore.model import Model
from cowdsl.load import load_text
from cowdsl.semantics import registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from explore import private_writers  # noqa: E402  (the benchmark's family: k processes, a page each)

FORKING = """
process B, A
A: mmap(p, anon, private, rw)
A: write(p, 1)
par {
  A: fork() as C
  B: mmap(q, anon, private, rw)
  B: write(q, 2)
}
always: A.p == 1
"""

CASES = [(pinners_racing_fork(2, 2), "early-cow:wp_seq=off"), (pinners_racing_fork(3, 1), "early-cow"),
         (RACE, "anon-exclusive"), (BLOCKING, "cow-fixes-1"), (private_writers(4), "anon-exclusive"),
         (FORKING, "anon-exclusive")]


@pytest.mark.parametrize("src, backend", CASES)
def test_the_same_worlds_and_final_states_as_running_every_micro_step(src, backend):
    sc = load_text(src, "t.cow")
    worlds, terminal, executions = reference(Model(sc, registry.get(backend)))
    ex = search.full(Model(sc, registry.get(backend)), search.Bounds())
    assert set(ex.visited) == worlds and ex.states == len(worlds)
    assert set(ex.finals) == terminal
    assert ex.executions == executions


@pytest.mark.parametrize("src, backend", CASES)
def test_every_remembered_micro_step_is_the_one_that_runs(src, backend, monkeypatch):
    """COWDSL_CHECK_FOOTPRINTS=1: each look-up is run too, and must agree."""
    monkeypatch.setattr(footprint, "CHECK", True)
    checked = []
    apply = footprint.apply
    monkeypatch.setattr(footprint, "apply", lambda code, move: checked.append(1) or apply(code, move))
    ex = search.full(Model(load_text(src, "t.cow"), registry.get(backend)), search.Bounds())
    assert ex.states and not ex.partial
    if src not in (RACE, BLOCKING):  # two actors on one mm: no world agrees with another on all it touches
        assert checked  # remembered moves were made, run again and compared (Lean.touched_move)


def test_independent_writers_run_a_micro_step_once_per_page_not_once_per_world(monkeypatch):
    """k processes writing pages of their own: each one's micro-steps are run once per
    value of its own page and mm, not once per combination of everybody's."""
    monkeypatch.setattr(footprint, "CHECK", False)
    model = Model(load_text(private_writers(6), "t.cow"), registry.get("anon-exclusive"))
    runs = []
    run_micro = model.run_micro
    model.run_micro = lambda w, i: runs.append(1) or run_micro(w, i)  # type: ignore[method-assign]
    ex = search.full(model, search.Bounds(), count=False)
    assert ex.states == 741  # 3 positions per process (before, written, read): 3**6 plus the blocks around
    assert len(runs) <= 6 * 4  # per process: its write and its read, each a few micro-steps
    assert len(runs) * 20 < ex.transitions


def test_a_state_round_trips_through_its_code():
    """Codec.encode and decode: every state of a search, the first one (the mms in
    the order the scenario declares them, not by name) among them."""
    model = Model(load_text(FORKING, "t.cow"), registry.get("anon-exclusive"))
    codec = Codec(model.sc)
    first = model.init().state
    assert [m.name for m in first.mms] == ["B", "A"]
    assert codec.decode(codec.encode(first)) == first
    ex = search.full(model, search.Bounds())
    for w in ex.visited:
        code = codec.encode(w.state)
        assert codec.decode(code) == w.state
        assert all(isinstance(n, int) for n in code)


def test_a_state_with_a_name_the_scenario_does_not_have_is_refused():
    model = Model(load_text(FORKING, "t.cow"), registry.get("anon-exclusive"))
    codec = Codec(model.sc)
    st = model.init().state
    from attrs import evolve

    from cowdsl.semantics.state import Mm
    with pytest.raises(AssertionError, match="an mm the scenario does not name: Z"):
        codec.encode(evolve(st, mms=st.mms + (Mm("Z"),)))


def test_a_write_the_machine_did_not_record_is_caught():
    """delta() checks each changed position against the shape: a micro-step that
    wrote a page it did not record would otherwise be copied into states that
    differ there."""
    model = Model(load_text(private_writers(2), "t.cow"), registry.get("anon-exclusive"))
    codec = Codec(model.sc)
    st = model.init().state
    before = codec.encode(st)
    from attrs import evolve
    pages = list(st.pages)
    pages[0] = evolve(pages[0], data=7)  # the zero page, which the shape below does not hold
    after = codec.encode(evolve(st, pages=tuple(pages)))
    probe = footprint.Probe((("mm", "P0"),), codec)
    with pytest.raises(AssertionError, match="did not record"):
        footprint.delta(before, after, probe, 0)
    grown = codec.encode(evolve(st, pages=st.pages + (pages[0],)))
    with pytest.raises(AssertionError, match="without recording the allocation"):
        footprint.delta(before, grown, probe, 0)
    assert footprint.delta(before, grown, footprint.Probe((("npages",),), codec), 0)[1] == grown[len(before):]


def test_a_shape_naming_a_page_a_state_lacks_is_no_key():
    """A page that exists in some states only: a state without it is not looked up
    (it would otherwise share a key with every other such state)."""
    model = Model(load_text(private_writers(2), "t.cow"), registry.get("anon-exclusive"))
    codec = Codec(model.sc)
    code = codec.encode(model.init().state)
    beyond = len(code) - codec.pages + 5
    probe = footprint.Probe((("page", beyond),), codec)
    assert probe.get(code) is footprint.SHORT
    touched = footprint.Touched(codec)
    touched.remember(0, code, (("page", beyond),), ())
    [(_, _, table)] = touched.probes[0]
    assert not table


@pytest.mark.parametrize("loc, part", [
    (("mm*", "A"), ("mm", "A")), (("mm", "A", "ptl"), ("mm", "A")), (("vma", "A", "p"), ("mm", "A")),
    (("page", 3), ("page", 3)), (("alloc",), ("npages",)), (("swapcache",), ("pages",)),
    (("huge-zero",), ("pages",)), (("lru", "A"), ("pages",)), (("lru",), ("pages",)), (("mms",), ("mms",)),
    (("slot", 0), ("slots",)), (("alloc-slot",), ("slots",)), (("handle", "r"), ("handles",)),
    (("handles",), ("handles",)), (("pipe", "x"), ("pipes",)), (("file", "f"), ("files",)),
    (("result", "v"), ("result", "v")), (("something-new", 1), ("state",))])
def test_each_recorded_loc_falls_in_one_part(loc, part):
    assert footprint.part(loc) == part


def test_whole_parts_cover_their_pieces():
    assert footprint.shape_of([("page", 1), ("swapcache",)], set()) == (("pages",),)
    assert footprint.shape_of([("mm*", "A"), ("mms",)], set()) == (("mms",),)
    assert footprint.shape_of([("page", 1), ("weird",)], {("mm", "A")}) == (("state",),)


def test_a_search_pickles_without_what_it_remembered():
    """A worker sends its result back pickled (batch.Workers): the lean table's
    remembered micro-steps are not part of it."""
    import pickle

    from cowdsl.explore.lean import Lean
    model = Model(load_text(private_writers(3), "t.cow"), registry.get("anon-exclusive"))
    ex = search.full(model, search.Bounds())
    lean = ex.visited.lean
    assert lean.touched.probes
    again = pickle.loads(pickle.dumps(ex))
    assert isinstance(again.visited.lean, Lean) and not again.visited.lean.touched.probes
    assert set(again.visited) == set(ex.visited)


def test_where_actors_contend_the_memo_is_dropped_once_it_finds_too_few():
    """k processes writing one page of A while A forks: a remembered micro-step rarely
    fits another state, so after PROBE look-ups finding fewer than WORTH of them the
    search stops remembering (and runs each micro-step as Lean.move does), with the
    same states and final states."""
    from explore import pvw_fork

    from cowdsl.explore.lean import Lean
    sc = load_text(pvw_fork(4), "t.cow")
    ex = search.full(Model(sc, registry.get("early-cow")), search.Bounds(), count=False)
    lean = ex.visited.lean
    assert isinstance(lean, Lean)
    assert not lean.touched.worth and lean.touched.asked == footprint.PROBE
    assert lean.touched.found < footprint.PROBE * footprint.WORTH
    assert not any(lean.touching)
    worlds, terminal, _ = reference(Model(sc, registry.get("early-cow")))
    assert set(ex.visited) == worlds and set(ex.finals) == terminal


def test_where_actors_are_independent_the_memo_is_kept():
    ex = search.full(Model(load_text(private_writers(8), "t.cow"), registry.get("anon-exclusive")),
                     search.Bounds(), count=False)
    touched = ex.visited.lean.touched
    assert touched.worth and touched.asked > footprint.PROBE and touched.found > 0.9 * touched.asked


def test_a_step_past_the_end_of_a_mapping_mremap_left_shorter_explores():
    """The footprint memo asks what deciding a wait reads (lock_reads) of every
    micro-step it runs, also where the step's address is past the end of a mapping
    that a failed mremap left shorter than the checker knew: no page there, no PTE
    lock to take (it was an IndexError in walked_page; the fuzzer's input)."""
    src = (Path(__file__).parent / "regressions" / "model-access-past-a-shrunk-mapping-3b9c1d7e4f20.input").read_text()
    ex = search.full(Model(load_text(src, "t.cow"), registry.get("mapcount:foll_cow=off")),
                     search.Bounds(max_states=20_000), count=False)
    assert ex.states and not ex.partial


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(fuzz.strategy(fuzz.scenario_text), st.sampled_from(fuzz.BACKENDS))
def test_generated_concurrent_scenarios_remember_what_runs(text, backend):
    """The fuzzer's valid scenarios, searched with every remembered micro-step run
    again and compared (COWDSL_CHECK_FOOTPRINTS=1): a read the Machine does not
    record, or a crash on a path only the memo asks, shows here."""
    try:
        sc = load_text(text, "t.cow")
    except CowError:
        return
    if not sc.concurrent:
        return
    old = footprint.CHECK
    footprint.CHECK = True
    try:
        search.full(Model(sc, registry.get(backend)), search.Bounds(max_states=5_000, timeout=5), count=False)
    finally:
        footprint.CHECK = old
