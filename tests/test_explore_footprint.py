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
    with pytest.raises(IndexError):
        probe.get(code)
    touched = footprint.Touched(codec)
    touched.remember(0, code, (("page", beyond),), ())
    [(_, _, table)] = touched.probes[0]
    assert not table


@pytest.mark.parametrize("loc, part", [
    (("mm*", "A"), ("mm", "A")), (("mm", "A", "ptl"), ("own", "A", "ptl")), (("vma", "A", "p"), ("vmas", "A")),
    (("mm", "A", "vmas"), ("vmas", "A")), (("mm", "A", "no-such-field"), ("mm", "A")),
    (("page", 3), ("page", 3)), (("alloc",), ("npages",)), (("swapcache",), ("pages",)),
    (("huge-zero",), ("pages",)), (("lru", "A"), ("pages",)), (("lru",), ("pages",)), (("mms",), ("mms",)),
    (("slot", 0), ("slots",)), (("alloc-slot",), ("slots",)), (("handle", "r"), ("handles",)),
    (("handles",), ("handles",)), (("pipe", "x"), ("pipes",)), (("file", "f"), ("files",)),
    (("result", "v"), ("result", "v")), (("something-new", 1), ("state",))])
def test_each_recorded_loc_falls_in_one_part(loc, part):
    assert footprint.part(loc) == part


def test_whole_parts_cover_their_pieces():
    assert footprint.shape_of([("page", 1), ("swapcache",)], (), set()) == (("pages",),)
    assert footprint.shape_of([("mm*", "A"), ("mms",)], (), set()) == (("mms",),)
    assert footprint.shape_of([("mm", "A", "ptl"), ("vma", "A", "p"), ("mms",)], (), set()) == (("mms",),)
    assert footprint.shape_of([("page", 1), ("weird",)], (), {("mm", "A")}) == (("state",),)


def test_a_scan_marker_written_is_no_part_nor_a_page_the_micro_step_allocated():
    """lru_cache_add writes its page and ("lru", cpu), which tells a drain's scan that
    something changed: the page is the part (delta checks that nothing else changed).
    A page allocated by the micro-step itself is in no state before it: the number of
    pages is keyed, and the new page put in place whole."""
    writes = [("page", 1), ("lru", "T0"), ("lru",), ("swapcache",), ("alloc",), ("page", 4)]
    assert footprint.shape_of([("page", 1), ("page", 4)], writes, set(), npages=4) == (("npages",), ("page", 1))
    assert footprint.shape_of([("swapcache",)], writes, set(), npages=4) == (("pages",),)  # a read of the scan


def test_a_counter_mark_is_a_write_of_the_counters_and_an_mm_mark_is_not():
    """count() records its increment only as marks (increments commute for DPOR); its
    ("counter", mm) mark puts the counters in the shape.  update_mm's ("mm*", mm) mark
    adds nothing: its writes name the fields."""
    assert footprint.shape_of([], [], set(), [("mm*", "A"), ("counter", "A")]) == (("own", "A", "faults"),)
    assert footprint.shape_of([], [("mm", "A", "wp_seq")], set(), [("mm*", "A")]) == (("own", "A", "wp_seq"),)


def test_a_contended_mm_is_coded_as_its_vmas_and_groups_of_fields():
    """An mm that actors of a par block share (threads of A) has an int for its VMAs
    and one for each group of its fields: a PTE read keyed on the VMAs is not broken
    by the page-table lock fork takes, nor a wp_seq read by a fault's counter; a
    shape's probe keys exactly those positions."""
    from attrs import evolve

    from cowdsl.explore.codes import GROUP_OF, MM_WIDTH
    model = Model(load_text(pinners_racing_fork(2, 1), "t.cow"), registry.get("early-cow"))
    codec = Codec(model.sc)
    assert codec.split == {"A"}  # B, fork's child, is touched by F alone
    st = model.init().state
    code = codec.encode(st)
    at = codec.mm_at["A"]
    for field, value in (("ptl", True), ("wp_seq", 1), ("faults", 3), ("alive", False)):
        st2 = evolve(st, mms=tuple(evolve(m, **{field: value}) for m in st.mms))
        changed = codec.encode(st2)
        assert [i for i in range(len(code)) if code[i] != changed[i]] == [at + GROUP_OF[field]], field
        assert codec.decode(changed) == st2
    assert footprint.Probe((("vmas", "A"),), codec).fixed == {at, codec.order}
    assert footprint.Probe((("own", "A", "ptl"),), codec).fixed == {at + GROUP_OF["ptl"], codec.order}
    assert footprint.Probe((("mm", "A"),), codec).fixed == {*range(at, at + MM_WIDTH), codec.order}
    assert GROUP_OF["ptl"] != GROUP_OF["wp_seq"] != GROUP_OF["faults"] != GROUP_OF["ptl"]


@pytest.mark.parametrize("src, split", [
    (FORKING, set()),  # A forks while B maps memory of its own
    (private_writers(3), set()),  # independent processes: one int each, a short code
    ("process A, W\nA: mmap(p, anon, private, rw)\npar {\n  W: process_vm_writev(A.p, 2)\n  A: fork() as B\n}\nsometimes: A.p == 2\n",
     {"A"}),
    ("process A, B\nA: mmap(p, anon, private, rw)\nB: mmap(q, anon, private, rw)\npar {\n  A: write(p, 1)\n  B: write(q, 1)\n"
     "  reclaim: swapout(A.p)\n}\nsometimes: A.p == 1\n", {"A", "B"}),  # reclaim may walk every mm
])
def test_the_mms_that_actors_of_a_par_block_share_are_split(src, split):
    from cowdsl.explore.codes import contended
    sc = load_text(src, "t.cow")
    assert contended(sc) & set(Codec(sc).mm_names) == split == Codec(sc).split
    model = Model(sc, registry.get("anon-exclusive"))
    codec = Codec(sc)
    for w in search.full(model, search.Bounds()).visited:
        assert codec.decode(codec.encode(w.state)) == w.state


def test_encode_after_keeps_the_ints_of_what_did_not_change():
    """A micro-step's code is its state before's with the changed parts re-interned:
    the same code as encoding the new state whole."""
    model = Model(load_text(FORKING, "t.cow"), registry.get("anon-exclusive"))
    codec = Codec(model.sc)
    ex = search.full(model, search.Bounds())
    for w in ex.visited:
        for i in model.enabled(w):
            w2 = model.step(w, i)[0]
            assert codec.encode_after(w2.state, w.state, codec.encode(w.state)) == codec.encode(w2.state)


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
    """k threads of A each fault in a page of their own while A forks: each fault
    allocates a page, whose number depends on how many came before, and fork reads
    every one of them, so a remembered micro-step rarely fits another state.  After
    PROBE look-ups finding fewer than WORTH of them the search stops remembering
    (and runs each micro-step as Lean.move does), with the same states and final states."""
    from cowdsl.explore.lean import Lean
    k = 5
    sc = load_text("process A\n" + "".join(f"thread T{i} of A\n" for i in range(k))
                   + f"A: mmap(p, anon, private, rw, pages={k})\npar {{\n  A: fork() as B\n"
                   + "".join(f"  T{i}: write(p[{i}], {i + 2})\n" for i in range(k)) + "}\nsometimes: A.p == 2\n", "t.cow")
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
    sc = fuzz.concurrent_scenario(text)
    if sc is None:
        return
    old = footprint.CHECK
    footprint.CHECK = True
    try:
        search.full(Model(sc, registry.get(backend)), search.Bounds(max_states=5_000, timeout=5), count=False)
    finally:
        footprint.CHECK = old


# --- what the Machine records, as finely as what it reads ----------------------------------------

def test_one_field_of_an_mm_is_a_read_of_that_field():
    """GUP-fast reads has_pinned and wp_seq, not the mm's page tables: mm_field records
    the field alone (mm() records the whole mm).  A counter is refused: its increments
    only mark the mm, so a read of it must be a whole-mm read to conflict with them."""
    from cowdsl.semantics.machine import Machine
    st = Model(load_text(FORKING, "t.cow"), registry.get("anon-exclusive")).init().state
    m = Machine(st)
    assert m.mm_field("A", "wp_seq") == 0
    assert m.reads == {("mm", "A", "wp_seq")}
    with pytest.raises(AssertionError, match="counter"):
        m.mm_field("A", "faults")
    m.count("A", "faults")
    assert m.marks == {("mm*", "A"), ("counter", "A")} and not m.writes


def test_a_put_that_frees_nothing_does_not_write_the_swap_cache():
    """A swap-cache lookup scans every page's swapcache and freed: a reference
    dropped from a page that stays allocated changes neither."""
    from cowdsl.semantics.machine import Machine
    m = Machine(Model(load_text(FORKING, "t.cow"), registry.get("anon-exclusive")).init().state)
    pfn = m.alloc_page(anon=True, refcount=1)
    m = Machine(m.freeze())
    m.get_page(pfn)
    m.put_page(pfn)
    assert m.writes == {("page", pfn)}
    m.put_page(pfn, m.pages[pfn].refcount)  # the last reference: freed
    assert ("swapcache",) in m.writes


def test_a_micro_step_that_takes_no_lock_reads_no_lock():
    """Whether GUP-fast's PTE read can run does not depend on mmap_lock or the PTL
    (it takes neither); a fault's does."""
    sc = load_text(pinners_racing_fork(1, 1), "t.cow")
    backend = registry.get("early-cow")
    model = Model(sc, backend)
    w = model.init()
    while not any(t.label == "pte" and t.actor.startswith("T") for t in w.threads):
        w = model.step(w, model.enabled(w)[0])[0]
    t = next(t for t in w.threads if t.label == "pte" and t.actor.startswith("T"))
    step = sc.steps[t.steps[t.at]]
    assert backend.lock_needed(step, t.label) is None
    reads = backend.lock_reads(w.state, step, t.label, t.frame)
    assert not {loc for loc in reads if loc[-1] in ("mmap_lock", "ptl")}
    fault = next(s for s in sc.steps if s.op == "write")
    label = backend.program(fault)[1]
    assert {("mm", fault.addr.proc, "mmap_lock"), ("mm", fault.addr.proc, "ptl")} <= \
        backend.lock_reads(model.init().state, fault, label, ())


def test_what_a_search_made_goes_to_the_oldest_generation_unscanned(monkeypatch):
    """The collector is paused during a search; after it, the worlds it made are in
    the oldest generation, so the next young collection does not walk them all
    (it found nothing: worlds have no cycles).  Nothing is left frozen.  It never
    asks gc.get_freeze_count, which walks every frozen object (in a batch worker,
    whose parent froze its own, that was 7 ms a search: -j 2 no faster than -j 1)."""
    import gc

    from cowdsl.explore import exploration

    def walks(*_):
        raise AssertionError("get_freeze_count walks every frozen object")

    monkeypatch.setattr(gc, "get_freeze_count", walks)
    assert gc.isenabled() and exploration.OLDEST_AFTER_SEARCH
    with exploration.no_gc():
        made = [(i, (i, i + 1)) for i in range(50)]
        assert not gc.isenabled()
    assert gc.isenabled()
    monkeypatch.undo()
    assert gc.get_freeze_count() == 0
    young = {id(x) for x in gc.get_objects(generation=0)} | {id(x) for x in gc.get_objects(generation=1)}
    assert not young & {id(x) for x in made}
    assert {id(x) for x in gc.get_objects(generation=2)} >= {id(x) for x in made}


def test_a_batch_worker_leaves_its_parents_frozen_objects_frozen(monkeypatch):
    """batch's workers are forked with the parent's objects frozen (no collection in
    a worker writes to the pages they share): a search there does not unfreeze them."""
    import gc

    from cowdsl import batch
    from cowdsl.explore import exploration
    monkeypatch.setattr(exploration, "OLDEST_AFTER_SEARCH", True)
    monkeypatch.setattr(batch, "_share", lambda shared: None)
    monkeypatch.setattr(batch.signal, "signal", lambda *a: None)
    batch._setup(())
    assert exploration.OLDEST_AFTER_SEARCH is False
    mine = [[i] for i in range(10)]
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        search.full(Model(load_text(FORKING, "t.cow"), registry.get("anon-exclusive")), search.Bounds())
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
    del mine
