"""The full search over interned worlds (explore.lean: tuples of ints) visits
exactly the worlds, final states and executions of a plain breadth-first search
over attrs Worlds and Model.step, runs each micro-step once, and counts the
executions only when asked."""

from __future__ import annotations

import pytest
from examples import RACE, pinners_racing_fork

from cowdsl.explore import search
from cowdsl.explore.lean import Lean
from cowdsl.explore.model import Model, World
from cowdsl.load import load_text
from cowdsl.run import run
from cowdsl.semantics import registry

BLOCKING = """
process A
thread T of A
A: mmap(p, anon, private, rw)
A: mmap(q, anon, private, rw)
par {
  A: fork() as B
  T: write(q, 1)
  T: write(p, 2)
}
always: A.q == 1
"""

CASES = [(pinners_racing_fork(2, 2), "early-cow:wp_seq=off"), (pinners_racing_fork(3, 1), "early-cow"),
         (RACE, "anon-exclusive"), (BLOCKING, "cow-fixes-1")]


def reference(model: Model) -> tuple[set[World], set[World], int]:
    """Every world, the terminal ones and the executions, by Model.step on attrs Worlds (no memo)."""
    model.memo = None
    init = model.init()
    succ: dict[World, list[World]] = {}
    todo = [init]
    while todo:
        w = todo.pop()
        if w in succ:
            continue
        succ[w] = [model.step(w, i, False)[0] for i in model.enabled(w)]
        todo += succ[w]
    order: list[World] = []
    seen: set[World] = set()
    stack = [(init, False)]
    while stack:  # post-order: a world after its successors
        w, done = stack.pop()
        if done:
            order.append(w)
        elif w not in seen:
            seen.add(w)
            stack.append((w, True))
            stack += [(x, False) for x in succ[w]]
    count: dict[World, int] = {}
    for w in order:
        count[w] = sum(count[x] for x in succ[w]) if succ[w] else 1
    return set(succ), {w for w, n in succ.items() if not n}, count[init]


@pytest.mark.parametrize("src, backend", CASES)
def test_the_lean_full_search_visits_what_a_plain_search_visits(src, backend):
    sc = load_text(src, "t.cow")
    worlds, terminal, executions = reference(Model(sc, registry.get(backend)))
    ex = search.full(Model(sc, registry.get(backend)), search.Bounds())
    assert set(ex.visited) == worlds and ex.states == len(worlds)
    assert set(ex.finals) == terminal and len(ex.finals) == len(terminal)
    assert ex.executions == executions


@pytest.mark.parametrize("src, backend", CASES)
def test_each_micro_step_is_run_at_most_once(src, backend):
    """Per (state, thread) at most once: the lean table remembers each by ints, and a
    micro-step remembered by the parts it touched (explore.footprint) is not run again."""
    model = Model(load_text(src, "t.cow"), registry.get(backend))
    runs = []
    micro, run_micro = model.micro, model.run_micro
    model.micro = lambda w, i: runs.append(1) or micro(w, i)  # type: ignore[method-assign]
    model.run_micro = lambda w, i: runs.append(1) or run_micro(w, i)  # type: ignore[method-assign]
    search.full(model, search.Bounds())
    worlds, _, _ = reference(Model(model.sc, registry.get(backend)))
    assert 0 < len(runs) <= len({(w.state, w.threads[i]) for w in worlds for i in model.enabled(w)})
    assert not model.memo  # the lean table remembers them, keyed by ints; the attrs memo stays empty


def test_keys_and_worlds_round_trip():
    model = Model(load_text(pinners_racing_fork(2, 1), "t.cow"), registry.get("early-cow"))
    lean = Lean(model)
    k = lean.init()
    seen = 0
    frontier = [k]
    while frontier and seen < 200:
        k = frontier.pop()
        seen += 1
        w = lean.world(k)
        assert lean.key(w) == k and all(isinstance(x, int) for x in k)
        assert lean.enabled(k) == model.enabled(w)
        for i in lean.enabled(k):
            k2 = lean.step(k, i)
            assert lean.world(k2) == model.step(w, i, False)[0]
            frontier.append(k2)


def test_executions_are_counted_only_when_asked():
    sc = load_text(pinners_racing_fork(2, 2), "t.cow")
    counted = search.full(Model(sc, registry.get("anon-exclusive")), search.Bounds())
    uncounted = search.full(Model(sc, registry.get("anon-exclusive")), search.Bounds(), count=False)
    assert counted.executions and uncounted.executions is None and counted.states == uncounted.states
    # a run counts them for herd's complete list (--all-states), and says nothing of them otherwise
    assert run(sc, "anon-exclusive", mode="full").exploration.executions is None
    assert run(sc, "anon-exclusive", mode="full", all_states=True).exploration.executions == counted.executions


def test_a_search_cut_short_still_gives_a_number_of_executions():
    """What callers that print it (benchmarks/explore.py) rely on: an int when counting was asked."""
    sc = load_text(pinners_racing_fork(3, 2), "t.cow")
    ex = search.full(Model(sc, registry.get("anon-exclusive")), search.Bounds(max_states=200))
    assert ex.partial is not None and isinstance(ex.executions, int) and ex.executions == len(ex.finals)


@pytest.mark.parametrize("src, backend", CASES)
def test_successors_are_the_enabled_threads_stepped(src, backend):
    """The full search's one pass over a world's threads (Lean.successors) gives what
    enabled then step give, thread by thread, in the same order."""
    lean = Lean(Model(load_text(src, "t.cow"), registry.get(backend)))
    frontier, seen = [lean.init()], set()
    while frontier:
        k = frontier.pop()
        if k in seen:
            continue
        seen.add(k)
        moves = lean.successors(k)
        assert moves == [(i, lean.step(k, i)) for i in lean.enabled(k)]
        frontier += [k2 for _, k2 in moves]
    assert len(seen) == search.full(Model(load_text(src, "t.cow"), registry.get(backend)), search.Bounds()).states


def test_micro_gives_the_state_and_thread_of_a_step_without_its_footprint():
    model = Model(load_text(pinners_racing_fork(2, 1), "t.cow"), registry.get("early-cow"))
    frontier, compared = [model.init()], 0
    while frontier and compared < 100:
        w = frontier.pop()
        for i in model.enabled(w):
            w2, tr = model.step(w, i, False, remember=False)
            if w2.block == w.block:  # (a block's last step starts the next block's threads)
                assert model.micro(w, i) == (w2.state, w2.threads[i])
                assert tr.reads  # the step itself still says what it read (the reduced search races them)
                compared += 1
            frontier.append(w2)
    assert compared == 100


def test_a_model_without_symmetric_threads_is_searched_plainly_and_its_executions_counted():
    """Asking for symmetry where no threads are interchangeable costs nothing and loses no count."""
    sc = load_text(RACE, "t.cow")
    assert not Lean(Model(sc, registry.get("anon-exclusive")), symmetric=True).symmetric
    plain = search.full(Model(sc, registry.get("anon-exclusive")), search.Bounds())
    sym = search.full(Model(sc, registry.get("anon-exclusive")), search.Bounds(), symmetric=True)
    assert sym.executions == plain.executions and sym.states == plain.states
