"""The reference search: breadth-first over every interleaving, with a visited
set; executions are counted on the state graph."""

from __future__ import annotations

import time

from cowdsl.explore.exploration import Bounds, Exploration, no_gc, terminal
from cowdsl.explore.model import Model, World


def full(model: Model, bounds: Bounds) -> Exploration:
    with no_gc():
        return _full(model, bounds)


def _full(model: Model, bounds: Bounds) -> Exploration:
    ex = Exploration("full")
    t0 = time.monotonic()
    init = model.init()
    succ: dict[World, list[World]] = {}
    canon: dict[World, World] = {init: init}  # one instance per world: later lookups hit on identity
    frontier = [init]
    seen_final: set[World] = set()
    while frontier and ex.partial is None:
        nxt: list[World] = []
        for w in frontier:
            en = model.enabled(w)
            if not en:
                terminal(model, w, ex, seen_final)
                succ[w] = []
                continue
            out = []
            for i in en:
                w2, _ = model.step(w, i, False)
                ex.transitions += 1
                known = canon.get(w2)
                if known is None:
                    canon[w2] = w2
                    nxt.append(w2)
                else:
                    w2 = known
                out.append(w2)
            succ[w] = out
            if (why := bounds.hit(len(canon))) is not None:
                ex.partial = why
                break
            if bounds.progress and ex.transitions % 2000 == 0:
                bounds.progress(len(canon), len(ex.finals))
        frontier = nxt
    ex.visited = set(canon)
    ex.states = len(canon)
    ex.executions = _count_paths(init, succ) if ex.partial is None else len(ex.finals)
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
