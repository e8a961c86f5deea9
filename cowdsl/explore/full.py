"""The reference search: breadth-first over every interleaving, with a visited
set, over interned worlds (``lean``: tuples of ints).

Breadth-first order finds each world first at its least depth; among the ways
of that length, the one with the fewest switches between actors is kept
(``Exploration.routes``): the shortest, least interleaved execution to any
world is known when the search ends, with no second search.  Given a ``Goal``,
the search stops once every verdict is decided, after looking at the rest of
that depth's worlds (one of them may decide it with fewer switches).
Executions (maximal interleavings) are counted as the search goes when
``count`` asks: a world's count is the sum of its predecessors', complete when
it is expanded, when every micro-step goes from one depth to the next.  Where
one does not (a world reached at two depths: a retry loop), the executions are
counted afterwards, depth-first on the state graph kept for it."""

from __future__ import annotations

import time
from collections.abc import Iterable

from cowdsl.explore.ample import Ample
from cowdsl.explore.exploration import Bounds, Exploration, Goal, Path, no_gc
from cowdsl.explore.lean import Key, Lean, Worlds
from cowdsl.explore.model import Model, World

Route = tuple[int, int, int, "Key | None", int]  # depth, switches, last actor (Lean.actor_ids; -1: none), key before, thread


def full(model: Model, bounds: Bounds, goal: Goal | None = None, *, count: bool = True,
         symmetric: bool = False, ample: bool = False) -> Exploration:
    """``symmetric``: one world of each class of worlds that differ only in which
    of some interchangeable threads is where (explore.symmetry); the executions
    are then not counted (the quotient's paths are not the executions).
    ``ample``: where one thread's next micro-step commutes with everything the
    others can still do, that move alone (explore.ample); not with ``count``, nor
    with a goal judged at every state."""
    with no_gc():
        return _full(model, bounds, goal, count, symmetric, ample)


def _full(model: Model, bounds: Bounds, goal: Goal | None, count: bool, symmetric: bool,
          use_ample: bool) -> Exploration:
    ex = Exploration("full", drains=bool(model.cpus))
    t0 = time.monotonic()
    lean = Lean(model, symmetric)
    symmetric = lean.symmetric  # False where no block has symmetric threads: nothing to canonicalise
    every = goal is not None and goal.every_state
    # the states between are not all reached, nor the executions: neither for invariants nor counting
    use_ample = use_ample and not count and not every
    ample = Ample(lean) if use_ample else None
    if ample is not None and all(ample.contended(b) for b in range(lean.finished)):
        ample = None  # every block's threads contend to their last op (the race families): not even a look-up
    canon, successors, enabled, actor_ids = lean.canon, lean.successors, lean.enabled, lean.actor_ids
    init = canon(lean.init())
    routes: dict[Key, Route] = {init: (0, 0, -1, None, -1)}
    paths: dict[Key, int] | None = {init: 1} if count else None  # executions reaching each world so far
    succ: dict[Key, tuple[Key, ...]] = {}  # the state graph, kept while counting needs it
    frontier = [init]
    finals: dict[Key, None] = {}  # terminal worlds, in the order found
    expanded = 0
    while frontier and not ex.halted:
        nxt: list[Key] = []
        for k in frontier:
            if ex.stopped:  # decided at this depth: its other worlds are only looked at
                if not enabled(k):
                    finals[k] = None
                continue
            if ample is not None and (alone := ample.pick(k)) is not None:
                moves = [(alone, lean.step(k, alone))]
            else:
                moves = successors(k)
            if not moves:
                finals[k] = None
            if goal is not None and (every or not moves) and goal.decided(lean.world(k), not moves):
                ex.stopped = True
                continue
            if not moves:
                continue
            depth, switches, last, _, _ = routes[k]
            depth += 1
            n = paths[k] if paths is not None else 0
            out = []
            for i, k2 in moves:
                if symmetric:
                    k2 = canon(k2)
                actor = actor_ids[k[i + 2]]
                cost = switches + (last >= 0 and actor != last)
                old = routes.get(k2)
                if old is None:
                    routes[k2] = (depth, cost, actor, k, i)
                    nxt.append(k2)
                else:
                    if old[0] == depth and old[1] > cost:
                        routes[k2] = (depth, cost, actor, k, i)
                    if old[0] != depth:
                        paths = None  # reached at another depth too: counted afterwards
                if paths is not None:
                    paths[k2] = paths.get(k2, 0) + n
                if count:
                    out.append(k2)
            if count:
                succ[k] = tuple(out)
            ex.transitions += len(moves)
            if (why := bounds.hit(len(routes))) is not None:
                ex.partial = why
                break
            expanded += 1
            if bounds.progress and expanded % 1000 == 0:
                bounds.progress(len(routes), len(finals))
        frontier = nxt
    ex.finals = [lean.world(k) for k in finals]
    ex.deadlocks = [w for k, w in zip(finals, ex.finals) if not lean.is_final(k)]
    ex.visited = Worlds(lean, list(routes))  # in the order found
    ex.routes = _Routes(lean, routes)
    ex.states = len(routes)
    if not count or symmetric:
        ex.executions = None  # not asked for, or the quotient's paths, which are not the executions
    elif ex.complete:
        ex.executions = sum(paths[k] for k in finals) if paths is not None else _count_paths(succ, init)
    else:
        ex.executions = len(finals)  # a search cut short: the executions seen to their end, at least
    ex.alone = ample.picked if ample is not None else 0 if use_ample else None
    ex.seconds = time.monotonic() - t0
    return ex


class _Routes:
    """Exploration.routes of the full search: its routes by key."""

    def __init__(self, lean: Lean, routes: dict[Key, Route]) -> None:
        self.lean = lean
        self.routes = routes

    def to(self, worlds: Iterable[World]) -> Path | None:
        routes, lean = self.routes, self.lean
        keys = (k for k in map(lean.key, worlds) if k in routes)
        goal = min(keys, key=lambda k: routes[k][:2], default=None)
        if goal is None:
            return None
        steps: list[int] = []  # the thread slot of each micro-step, in canonical worlds
        k = goal
        while (parent := routes[k][3]) is not None:
            steps.append(routes[k][4])
            k = parent
        # Replayed from the initial world beside the route's own worlds: ``real`` is the route's
        # world with its threads permuted (and names renamed), ``where[x]`` the real slot of the
        # route's slot x.  Where the real world's canonical one is the route's, canon_order of
        # the real world says it; where canon leaves a world as it is (a frame holding text),
        # the permutation is carried along from the step before (canon_order of the route's own
        # world says where each of its threads went).
        path: Path = []
        real = lean.init()
        k, where = lean.canon_order(real)
        for i in reversed(steps):
            path.append((lean.world(real), where[i]))
            real = lean.step(real, where[i])
            k, slots = lean.canon_order(lean.step(k, i))
            mine, fresh = lean.canon_order(real)
            where = fresh if mine == k else [where[s] for s in slots]
        assert k == goal, "a symmetric route did not replay"
        return path


def _count_paths(succ: dict[Key, tuple[Key, ...]], init: Key) -> int:
    """Maximal interleavings: paths from the initial world to a terminal one, on
    the state graph (acyclic: every micro-step moves some actor forward)."""
    count: dict[Key, int] = {}
    stack: list[tuple[Key, tuple[Key, ...] | None]] = [(init, None)]
    while stack:
        k, nexts = stack.pop()
        if k in count:
            continue
        if nexts is None:  # first seen: its successors are counted first
            nexts = succ.get(k, ())
            stack.append((k, nexts))
            stack.extend((x, None) for x in nexts if x not in count)
        else:
            count[k] = sum(count[x] for x in nexts) if nexts else 1
    return count[init]
