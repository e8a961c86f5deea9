"""The searches over a Model's worlds.

``full``: breadth-first over every interleaving with a visited set; the
reference.  ``reduced``: stateless depth-first search with dynamic partial-order
reduction (Flanagan and Godefroid, POPL 2005) and sleep sets, over the
independence relation given by what each micro-step read and wrote.  Both stop
at ``max_states`` or ``timeout`` and then say the result is partial.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time

from attrs import define, field, frozen

from cowdsl.explore.model import Model, Transition, World


@define
class Bounds:
    max_states: int = 200_000
    timeout: float = 60.0
    progress: object = None  # called with (states, executions) now and then
    started: float = field(factory=time.monotonic)

    def hit(self, states: int) -> str | None:
        if states >= self.max_states:
            return f"--max-states {self.max_states}"
        if time.monotonic() - self.started > self.timeout:
            return f"--timeout {self.timeout:g}s"
        return None


@define
class Exploration:
    mode: str
    states: int = 0  # distinct worlds visited
    transitions: int = 0  # micro-steps executed
    executions: int = 0  # maximal interleavings (full: counted on the state graph)
    finals: list = field(factory=list)  # terminal worlds, distinct
    deadlocks: list = field(factory=list)  # terminal worlds where some actor waits forever
    visited: set = field(factory=set)  # every world, for invariants (full mode)
    partial: str | None = None  # which bound stopped the search
    seconds: float = 0.0


def _terminal(model: Model, w: World, ex: Exploration, seen_final: set) -> None:
    if w not in seen_final:
        seen_final.add(w)
        ex.finals.append(w)
        if not model.is_final(w):
            ex.deadlocks.append(w)


@contextlib.contextmanager
def _no_gc():
    """The cyclic collector would rescan the growing visited set again and again;
    worlds are immutable trees of tuples, with no cycles to collect."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def full(model: Model, bounds: Bounds) -> Exploration:
    with _no_gc():
        return _full(model, bounds)


def _full(model: Model, bounds: Bounds) -> Exploration:
    ex = Exploration("full")
    t0 = time.monotonic()
    init = model.init()
    succ: dict[World, list[World]] = {}
    canon: dict[World, World] = {init: init}  # one instance per world: later lookups hit on identity
    frontier = [init]
    seen_final: set = set()
    while frontier and ex.partial is None:
        nxt = []
        for w in frontier:
            en = model.enabled(w)
            if not en:
                _terminal(model, w, ex, seen_final)
                succ[w] = []
                continue
            out = []
            for i in en:
                w2, _ = model.step(w, i)
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


def _count_paths(init: World, succ: dict) -> int:
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


# --- reduced: DPOR with sleep sets ---------------------------------------------------


@frozen(cache_hash=True)
class _Footprint:
    """What race detection needs of a transition in a cached subtree: whose, and
    what it read and wrote.  Many transitions share one footprint."""

    tid: tuple
    reads: frozenset
    writes: frozenset
    marks: frozenset

    @classmethod
    def of(cls, tr: Transition) -> "_Footprint":
        return cls(tr.tid, tr.reads, tr.writes, tr.marks)


@define
class _Level:
    world: World
    enabled: list
    nexts: dict  # thread index -> (World, Transition) for enabled threads
    backtrack: set = field(factory=set)
    done: set = field(factory=set)
    sleep: dict = field(factory=dict)  # (block, thread) -> Transition asleep here
    block_start: int = 0


def reduced(model: Model, bounds: Bounds) -> Exploration:
    """DPOR with sleep sets, and state caching made sound the way stateful DPOR
    does it: a world explored before (with a sleep set no larger than now) is not
    explored again, but every transition its subtree took is checked for races
    against the current trace, so no backtrack point is lost."""
    ex = Exploration("reduced")
    t0 = time.monotonic()
    seen_final: set = set()
    trace: list[Transition] = []
    clocks: list[dict] = []  # vector clock of each trace entry
    levels: list[_Level] = []  # levels[k] is where trace[k] was taken
    cache: dict[World, tuple[frozenset, frozenset]] = {}  # world -> (sleep at entry, subtree's transitions)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))

    def clock_of(k: int, tr: Transition) -> dict:
        """The vector clock of trace entry k: its thread's past and every earlier
        dependent entry of the same block."""
        c: dict = {}
        start = levels[k].block_start
        for j in range(k - 1, start - 1, -1):
            if trace[j].tid == tr.tid or trace[j].dependent(tr):
                for key, v in clocks[j].items():
                    if c.get(key, 0) < v:
                        c[key] = v
        c[tr.tid] = k + 1
        return c

    def thread_clock(tid, start: int) -> dict:
        for j in range(len(trace) - 1, start - 1, -1):
            if trace[j].tid == tid:
                return clocks[j]
        return {}

    def before(j: int, clock: dict) -> bool:
        """Trace entry j happens before whatever has this clock."""
        return clocks[j][trace[j].tid] <= clock.get(trace[j].tid, 0)

    def races(nxt: Transition, block_start: int) -> None:
        """The last entry of this block that is dependent with ``nxt`` (a thread's
        next move) and not in that thread's causal past: backtrack there."""
        tid = nxt.tid
        pclock = thread_clock(tid, block_start)
        for j in range(len(trace) - 1, block_start - 1, -1):
            e = trace[j]
            if e.tid == tid or e.tid[0] != tid[0]:
                continue
            if e.dependent(nxt) and not before(j, pclock):
                pre = levels[j]
                cands = {q for q in pre.enabled if (pre.world.block, q) == tid}
                if not cands:
                    cands = {q for q in pre.enabled
                             if any(trace[k].tid == (pre.world.block, q) and before(k, pclock)
                                    for k in range(j + 1, len(trace)))}
                pre.backtrack |= {min(cands)} if cands else set(pre.enabled)
                return

    def explore(w: World, sleep: dict, block_start: int) -> frozenset:
        """Explore from w; returns the transitions taken in its subtree."""
        if ex.partial is not None:
            return frozenset()
        if trace and trace[-1].tid[0] != w.block:
            block_start = len(trace)  # a new block: races only within it
        hit = cache.get(w)
        if hit is not None and hit[0] <= sleep.keys():
            for tr in hit[1]:
                races(tr, block_start)
            return hit[1]
        ex.visited.add(w)
        if (why := bounds.hit(len(ex.visited))) is not None:
            ex.partial = why
            return frozenset()
        en = model.enabled(w)
        if not en:
            _terminal(model, w, ex, seen_final)
            ex.executions += 1
            if bounds.progress and ex.executions % 500 == 0:
                bounds.progress(len(ex.visited), ex.executions)
            cache[w] = (frozenset(sleep), frozenset())
            return frozenset()
        nexts = {}
        for i in en:
            nexts[i] = model.step(w, i)
            ex.transitions += 1
        level = _Level(w, en, nexts, block_start=block_start)
        for p in model.unfinished(w):
            if p in nexts:
                races(nexts[p][1], block_start)
            else:  # blocked: it waits on a lock
                races(Transition((w.block, p), "", 0, "", (), model.lock_footprint(w, p), frozenset(), None),
                      block_start)
        asleep = {i for (b, i) in sleep if b == w.block}
        awake = [i for i in en if i not in asleep]
        subtree: set = set()
        if not awake:
            return frozenset()  # every move here is covered by a sibling
        level.backtrack.add(awake[0])
        level.sleep = dict(sleep)
        levels.append(level)
        while True:
            asleep = {i for (b, i) in level.sleep if b == w.block}
            todo = sorted(level.backtrack - level.done - asleep)
            if not todo or ex.partial is not None:
                break
            p = todo[0]
            level.done.add(p)
            w2, tr = level.nexts[p]
            child_sleep = {q: t for q, t in level.sleep.items() if not t.dependent(tr)}
            k = len(trace)
            trace.append(tr)
            clocks.append({})
            clocks[k] = clock_of(k, tr)
            subtree.add(_Footprint.of(tr))
            subtree |= explore(w2, child_sleep, block_start)
            trace.pop()
            clocks.pop()
            level.sleep[tr.tid] = tr
        levels.pop()
        summary = frozenset(subtree)
        if ex.partial is None:
            cache[w] = (frozenset(sleep), summary)
        return summary

    try:
        with _no_gc():
            explore(model.init(), {}, 0)
    finally:
        sys.setrecursionlimit(limit)
    ex.states = len(ex.visited)
    ex.visited = set()  # DPOR does not see every world; invariants need the full search
    ex.seconds = time.monotonic() - t0
    return ex


# --- one execution, shortest and least interleaved -------------------------------------


def shortest(model: Model, wanted, bounds: Bounds, terminal: bool = True) -> list[tuple[World, int]] | None:
    """A path to a (terminal) world for which ``wanted(world)`` holds: fewest
    micro-steps first, then fewest switches between actors.  Returns the list of
    (world before, thread index) or None."""
    init = model.init()
    best: dict[World, tuple[int, int, str | None, World | None, int]] = {init: (0, 0, None, None, -1)}
    frontier = [init]
    while frontier:
        found = [w for w in frontier if (not terminal or not model.enabled(w)) and wanted(w)]
        if found:
            goal = min(found, key=lambda w: best[w][1])
            path = []
            w = goal
            while best[w][3] is not None:
                _, _, _, parent, i = best[w]
                path.append((parent, i))
                w = parent
            return list(reversed(path))
        nxt = []
        for w in frontier:
            depth, switches, last, _, _ = best[w]
            for i in model.enabled(w):
                w2, tr = model.step(w, i)
                cost = (depth + 1, switches + (last is not None and tr.actor != last))
                old = best.get(w2)
                if old is None:
                    best[w2] = (*cost, tr.actor, w, i)
                    nxt.append(w2)
                elif old[0] == cost[0] and old[1] > cost[1]:
                    best[w2] = (*cost, tr.actor, w, i)
            if bounds.hit(len(best)):
                return None
        frontier = nxt
    return None


def replay(model: Model, path) -> list[Transition]:
    """The transitions along a path, with their events."""
    return [model.step(w, i)[1] for w, i in path]


def follow(model: Model, schedule: list[str]) -> tuple[list[tuple[World, int]], World]:
    """Replay a schedule: the actor to run at each micro-step, then run to the end
    choosing the first enabled actor.  Raises ValueError on an impossible schedule."""
    w = model.init()
    path = []
    for n, actor in enumerate(schedule, 1):
        en = model.enabled(w)
        pick = [i for i in en if w.threads[i].actor == actor]
        if not pick:
            can = ", ".join(sorted({w.threads[i].actor for i in en})) or "nobody"
            raise ValueError(f"schedule step {n}: `{actor}` cannot run now (can: {can})")
        path.append((w, pick[0]))
        w = model.step(w, pick[0])[0]
    while en := model.enabled(w):
        path.append((w, en[0]))
        w = model.step(w, en[0])[0]
    return path, w
