"""The reference search: breadth-first over every interleaving, with a visited
set; executions are counted on the state graph.

Breadth-first order finds each world first at its least depth; among the ways
of that length, the one with the fewest switches between actors is kept
(``Exploration.routes``): the shortest, least interleaved execution to any
world is known when the search ends, with no second search.  Given a ``Goal``,
the search stops once every verdict is decided, after looking at the rest of
that depth's worlds (one of them may decide it with fewer switches)."""

from __future__ import annotations

import time

from cowdsl.explore.exploration import Bounds, Exploration, Goal, Route, no_gc, terminal
from cowdsl.explore.model import Model, World


def full(model: Model, bounds: Bounds, goal: Goal | None = None) -> Exploration:
    with no_gc():
        return _full(model, bounds, goal)


def _full(model: Model, bounds: Bounds, goal: Goal | None) -> Exploration:
    ex = Exploration("full")
    t0 = time.monotonic()
    init = model.init()
    succ: dict[World, list[World]] = {}
    canon: dict[World, World] = {init: init}  # one instance per world: later lookups hit on identity
    routes: dict[World, Route] = {init: (0, 0, None, None, -1)}
    every = goal is not None and goal.every_state
    frontier = [init]
    seen_final: set[World] = set()
    while frontier and not ex.halted:
        nxt: list[World] = []
        for w in frontier:
            en = model.enabled(w)
            if not en:
                terminal(model, w, ex, seen_final)
                succ[w] = []
            if ex.stopped:
                continue  # decided at this depth: its other worlds are only looked at
            if goal is not None and (every or not en) and goal.decided(w, not en):
                ex.stopped = True
                continue
            if not en:
                continue
            depth, switches, last, _, _ = routes[w]
            out = []
            for i in en:
                w2, tr = model.step(w, i, False)
                ex.transitions += 1
                cost = switches + (last is not None and tr.actor != last)
                known = canon.get(w2)
                if known is None:
                    canon[w2] = w2
                    routes[w2] = (depth + 1, cost, tr.actor, w, i)
                    nxt.append(w2)
                else:
                    w2 = known
                    old = routes[w2]
                    if old[0] == depth + 1 and old[1] > cost:
                        routes[w2] = (depth + 1, cost, tr.actor, w, i)
                out.append(w2)
            succ[w] = out
            if (why := bounds.hit(len(canon))) is not None:
                ex.partial = why
                break
            if bounds.progress and ex.transitions % 2000 == 0:
                bounds.progress(len(canon), len(ex.finals))
        frontier = nxt
    ex.visited = canon.keys()  # in the order found
    ex.routes = routes
    ex.states = len(canon)
    ex.executions = _count_paths(init, succ) if ex.complete else len(ex.finals)
    ex.seconds = time.monotonic() - t0
    return ex


def _count_paths(init: World, succ: dict[World, list[World]]) -> int:
    """Maximal interleavings: paths from the initial world to a terminal one
    (the state graph is acyclic: every micro-step moves some actor forward)."""
    count: dict[World, int] = {}
    stack = [(init, False)]
    while stack:
        w, expanded = stack.pop()
        if w in count:
            continue
        nexts = succ.get(w, [])
        if not nexts:
            count[w] = 1
        elif expanded:
            count[w] = sum(count[x] for x in nexts)
        else:
            stack.append((w, True))
            stack.extend((x, False) for x in nexts if x not in count)
    return count[init]
