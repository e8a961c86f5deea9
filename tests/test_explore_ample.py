"""Ample sets in the full search (explore.ample): where one thread's next micro-step
commutes with everything the other threads of its block can still do, that move
alone is explored.  The final worlds (deadlocks among them) are the plain full
search's, the verdicts too; a race's contending actors are never cut; a bystander's
move that allocates, or a move of a process a drainer or a device could reach, is
never taken alone; a search that judges every state or counts executions does
without."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from cowdsl import fuzz
from cowdsl.explore import search
from cowdsl.explore.ample import GLOBAL, Ample
from cowdsl.explore.lean import Lean
from cowdsl.explore.model import Model
from cowdsl.load import load_text
from cowdsl.run import run
from cowdsl.semantics import registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from explore import gupfast_fork, pvw_fork, race_bystanders  # noqa: E402  (the benchmark's families)

RACY = "early-cow:wp_seq=off"


def searched(src: str, backend: str = RACY, **kw) -> search.Exploration:
    return search.full(Model(load_text(src, "t.cow"), registry.get(backend)), search.Bounds(), count=False, **kw)


def finals(ex: search.Exploration) -> set:
    return {w.state for w in ex.finals}


@pytest.mark.parametrize("k,m,plain_states,ample_states", [(2, 2, 4037, 457), (3, 3, 86_430, 3_210)])
def test_bystanders_of_a_race_run_alone_with_the_same_final_worlds(k, m, plain_states, ample_states):
    src = race_bystanders(k, m)
    plain, ample = searched(src), searched(src, ample=True)
    assert (plain.states, ample.states) == (plain_states, ample_states)
    assert finals(plain) == finals(ample) and ample.alone and plain.alone is None
    assert len(plain.deadlocks) == len(ample.deadlocks) == 0


@pytest.mark.parametrize("src,backend", [(gupfast_fork(3, 2), "early-cow"), (pvw_fork(3), "early-cow")])
def test_a_race_s_contending_actors_are_never_cut(src, backend):
    """Every actor touches A's mm: no move is ever taken alone, and the block is known
    contended from its threads' last ops (a look-up per world, nothing more)."""
    plain, ample = searched(src, backend), searched(src, backend, ample=True)
    assert ample.alone == 0 and ample.states == plain.states and finals(ample) == finals(plain)


def test_the_verdict_and_its_counterexample_are_the_plain_search_s():
    src = race_bystanders(2, 2).replace("always: ", "always: A.p == 2 and ")  # fails in every execution
    sc = load_text(src, "t.cow")
    r = run(sc, RACY, mode="full")
    plain = run(sc, RACY, mode="full", all_states=True)
    assert r.exploration.alone is not None and plain.exploration.alone is None
    assert [c.holds for c in r.checks] == [c.holds for c in plain.checks] == [False]
    schedule = [t.actor for t in r.checks[0].witness]
    assert run(sc, RACY, schedule=schedule).checks[0].holds is False  # a real execution: it replays
    assert len(r.checks[0].witness) == len(plain.checks[0].witness)  # and as short


def test_herds_list_counts_every_execution_and_invariants_see_every_state():
    src = race_bystanders(1, 2)
    sc = load_text(src, "t.cow")
    counted = run(sc, RACY, mode="full", all_states=True)
    assert counted.exploration.alone is None and counted.exploration.executions
    # an invariant is judged at every state: the full search then takes every move
    inv = load_text(src.replace("always: ", "invariant P0.q != 1 or P1.q != 0\nalways: "), "t.cow")
    r = run(inv, RACY, mode="full")
    assert r.exploration.alone is None
    assert r.checks[0].holds is False  # P0 writes 1 before P1 writes 2: a state the ample sets would skip


def test_a_move_that_allocates_is_never_taken_alone():
    """A bystander's first write faults in a new page: the page's number depends on the order
    of allocations, so that move touches GLOBAL (the number of pages) and runs interleaved."""
    src = race_bystanders(1, 1).replace("P0: write(q, 0)\n", "")
    lean = Lean(Model(load_text(src, "t.cow"), registry.get(RACY)))
    ample = Ample(lean)
    k = lean.init()
    while lean.enabled(k) and len(lean.block_threads(k[1])) < 3:  # to the par block
        k = lean.step(k, lean.enabled(k)[0])
    slot = next(i for i in range(len(k) - 2) if lean.actor(k, i) == "P0")
    assert GLOBAL in ample.move_zones(k, slot)
    assert ample.pick(k) is None
    plain, ample_ex = searched(src), searched(src, ample=True)
    assert finals(plain) == finals(ample_ex)


def test_what_a_page_belongs_to():
    """Who else can reach a page: the families mapping it, a file's cache, a pipe, a pin's
    owner, a CPU's batch; a large folio, a swap-cache, KSM or zero page is GLOBAL."""
    src = """process A, C
file F = [7]
pipe P
A: mmap(p, anon, private, rw)
A: write(p, 1)
A: fork() as B
C: mmap(f, file=F, shared, rw)
C: read(f)
C: mmap(t, anon, private, rw, thp)
C: write(t, 1)
A: vmsplice(p, P)
par {
  A: write(p, 3)
  C: read(f)
}
always: true
"""
    model = Model(load_text(src, "t.cow"), registry.get("anon-exclusive"))
    lean = Lean(model)
    ample = Ample(lean)
    k = lean.init()
    while k[1] < 1 or len(lean.block_threads(k[1])) < 2:
        k = lean.step(k, lean.enabled(k)[0])
    st = lean.state(k[0])
    anon = st.mm("A").vma("p").ptes[0].page
    # B is A's family: one zone; the fault left the page on A's CPU's lru_add batch
    assert ample.page_zones(anon, st) == {"mm A", "pipe P", "cpu A"}
    cached = st.mm("C").vma("f").ptes[0].page
    assert ample.page_zones(cached, st) == {"mm C", "file F"}
    huge = st.mm("C").vma("t").ptes[0].page
    assert ample.page_zones(huge, st) == {GLOBAL}
    assert ample.page_zones(len(st.pages), st) == {GLOBAL}  # a page the move allocated


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(fuzz.strategy(fuzz.scenario_text), hs.sampled_from(fuzz.BACKENDS), hs.booleans(), hs.booleans())
def test_generated_scenarios_reach_the_plain_full_searchs_final_worlds(text, backend, drains, symmetric):
    """Property, on the fuzzer's concurrent scenarios: with ample sets the full search
    reaches the same final worlds and deadlocks as without (symmetry on or off)."""
    sc = fuzz.concurrent_scenario(text)
    if sc is None:
        return
    model = lambda: Model(sc, registry.get(backend), drains=drains)  # noqa: E731
    plain = search.full(model(), search.Bounds(max_states=3_000, timeout=5), count=False, symmetric=symmetric)
    if plain.partial:
        return
    ample = search.full(model(), search.Bounds(max_states=3_000, timeout=5), count=False, symmetric=symmetric,
                        ample=True)
    assert finals(ample) == finals(plain), text
    assert {w.state for w in ample.deadlocks} == {w.state for w in plain.deadlocks}, text
