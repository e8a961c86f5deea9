"""The searches over a Model's worlds.

``full``: breadth-first over every interleaving with a visited set; the
reference.  ``reduced`` (the default): depth-first source-DPOR with sleep sets
and state caching, over the independence relation given by what each
micro-step read and wrote; it reaches the same final states.  Both stop at
``max_states`` or ``timeout`` and then say the result is partial.
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


# --- reduced: source-DPOR with sleep sets and state caching -------------------------


@frozen(cache_hash=True)
class _Moves:
    """What a thread's moves in a cached subtree read and wrote, all together:
    a subtree move depends on a trace entry iff this does."""

    tid: tuple
    reads: frozenset
    writes: frozenset
    marks: frozenset

    dependent = Transition.dependent


@define
class _Level:
    world: World
    enabled: list
    nexts: dict  # thread index -> (World, Transition) for enabled threads
    backtrack: set = field(factory=set)
    done: set = field(factory=set)
    sleep: dict = field(factory=dict)  # tid -> Transition asleep here


def reduced(model: Model, bounds: Bounds, *, cache: bool = True) -> Exploration:
    """Source-DPOR with sleep sets (Abdulla, Aronis, Jonsson and Sagonas, POPL
    2014, Algorithm 1).  Each move is raced against the trace before it is
    taken; so is a blocked thread's next move (taking the lock it waits on) at
    every world.  For every entry e a move races with, the *initials* of
    notdep(e).move are the moves that could run first in a reordering where the
    move comes before e; unless one of them is already scheduled or asleep at
    e's world, one is added there.  (Flanagan and Godefroid's rule, add the
    move's thread, loses executions with sleep sets when that thread's move at
    e's world is an earlier, sleeping one.)

    State caching: a world explored before with a sleep set no larger than now
    is not explored again.  Its summary, per thread what its moves in the
    subtree read and wrote, is raced against the trace instead: every entry a
    subtree move may race with gets all its world's enabled threads, never fewer
    than a re-exploration would schedule.  The state graph is acyclic, so a
    cached world is always fully explored."""
    ex = Exploration("reduced")
    t0 = time.monotonic()
    seen_final: set = set()
    trace: list[Transition] = []
    clocks: list[dict] = []  # vector clock of each trace entry: tid -> 1 + index of its latest entry before
    levels: list[_Level] = []  # levels[k] is where trace[k] was taken
    summaries: dict[World, tuple[frozenset, dict]] = {}  # world -> (sleep at entry, {tid: _Moves} of its subtree)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    block_starts = [0]  # trace index where the current par block began; races only happen within a block

    last_at: dict = {}  # tid -> the trace indices of its moves

    def last_clock(tid, start: int) -> dict:
        at = last_at.get(tid)
        return clocks[at[-1]] if at and at[-1] >= start else {}

    def race(move, start: int) -> dict:
        """Schedule the reversal of every race of ``move`` with the trace; return
        the move's vector clock."""
        p = move.tid
        n = len(trace)
        c = dict(last_clock(p, start))
        for j in range(n - 1, start - 1, -1):
            e = trace[j]
            if clocks[j][e.tid] <= c.get(e.tid, 0):
                continue  # it happens before the move through some later entry
            if e.dependent(move):
                schedule(j, p, c)
                for key, v in clocks[j].items():
                    if c.get(key, 0) < v:
                        c[key] = v
        c[p] = n + 1
        return c

    def schedule(j: int, p, c: dict) -> None:
        """Make sure an initial of notdep(trace[j]).move is explored at trace[j]'s
        world; c is what happens before the move among the entries after j."""
        pre = levels[j]
        if len(pre.backtrack) == len(pre.enabled):
            return  # every thread is scheduled there already
        tj = trace[j].tid
        initials, in_v = set(), set()
        for k in range(j + 1, len(trace)):
            q = trace[k].tid
            if clocks[k].get(tj, 0) > j or q in in_v:
                continue  # after trace[j], or not q's first move in notdep
            in_v.add(q)
            if all(v <= j for r, v in clocks[k].items() if r != q):
                initials.add(q[1])
        if p not in in_v and all(v <= j for r, v in c.items() if r != p):
            if p[1] not in pre.nexts:  # blocked there: which move would free it is unknown
                pre.backtrack.update(pre.enabled)
                return
            initials.add(p[1])
        if not initials.issubset(pre.nexts):  # not expected: independent moves never enable one another
            pre.backtrack.update(pre.enabled)
            return
        asleep = {i for (b, i) in pre.sleep if b == tj[0]}
        if initials and not initials & (pre.backtrack | asleep):
            pre.backtrack.add(min(initials))

    def race_summary(summary: dict, start: int, block: int) -> None:
        threads = [(p, moves, last_clock(p, start)) for p, moves in summary.items() if p[0] == block]
        for j in range(len(trace) - 1, start - 1, -1):
            pre = levels[j]
            if len(pre.backtrack) == len(pre.enabled):
                continue  # (backtrack sets only hold enabled threads)
            e = trace[j]
            for p, moves, pc in threads:
                if e.tid != p and clocks[j][e.tid] > pc.get(e.tid, 0) and e.dependent(moves):
                    pre.backtrack.update(pre.enabled)
                    break

    shared: dict = {}  # one instance of each footprint set and summary entry: most subtrees repeat them

    def moves_of(t, a) -> _Moves:
        share = shared.setdefault
        r, w, m = frozenset(a[0]), frozenset(a[1]), frozenset(a[2])
        moves = _Moves(t, share(r, r), share(w, w), share(m, m))
        return share(moves, moves)

    def explore(w: World, sleep: dict) -> dict:
        """Explore from w; returns the summary of its subtree (this block's)."""
        if trace and trace[-1].tid[0] != w.block:
            block_starts.append(len(trace))
            try:
                explore_block(w, {})  # a new block: every thread before it has finished
            finally:
                block_starts.pop()
            return {}
        return explore_block(w, sleep)

    def explore_block(w: World, sleep: dict) -> dict:
        start = block_starts[-1]
        hit = summaries.get(w) if cache else None
        if hit is not None and hit[0] <= sleep.keys():
            race_summary(hit[1], start, w.block)
            return hit[1]
        ex.visited.add(w)
        if (why := bounds.hit(len(ex.visited))) is not None:
            ex.partial = why
            return {}
        if bounds.progress and len(ex.visited) % 1000 == 0:
            bounds.progress(len(ex.visited), ex.executions)
        en = model.enabled(w)
        nexts = {}
        for i in en:
            nexts[i] = model.step(w, i, False)
            ex.transitions += 1
        acc: dict = {}  # tid -> [reads, writes, marks] of this subtree

        def note(m) -> None:
            a = acc.get(m.tid)
            if a is None:
                acc[m.tid] = [set(m.reads), set(m.writes), set(m.marks)]
            else:
                a[0] |= m.reads
                a[1] |= m.writes
                a[2] |= m.marks

        for p in model.unfinished(w):
            if p not in nexts:  # blocked: its next move takes the lock it waits on
                probe = _Moves((w.block, p), model.lock_footprint(w, p), frozenset(), frozenset())
                race(probe, start)
                note(probe)
        if not en:
            _terminal(model, w, ex, seen_final)
            ex.executions += 1
        awake = [i for i in en if (w.block, i) not in sleep]
        if awake:
            level = _Level(w, en, nexts, backtrack={awake[0]}, sleep=dict(sleep))
            levels.append(level)
            while ex.partial is None:
                todo = sorted(level.backtrack - level.done - {i for (b, i) in level.sleep if b == w.block})
                if not todo:
                    break
                p = todo[0]
                level.done.add(p)
                w2, tr = nexts[p]
                clock = race(tr, start)
                note(tr)
                child_sleep = {q: t for q, t in level.sleep.items() if not t.dependent(tr)}
                trace.append(tr)
                clocks.append(clock)
                last_at.setdefault(tr.tid, []).append(len(trace) - 1)
                for m in explore(w2, child_sleep).values():
                    note(m)
                last_at[tr.tid].pop()
                trace.pop()
                clocks.pop()
                level.sleep[tr.tid] = tr
            levels.pop()
        old = summaries.get(w) if cache and ex.partial is None else None
        if old is not None:  # explored twice: together they cover the smaller sleep set
            for m in old[1].values():
                note(m)
        summary = {t: moves_of(t, a) for t, a in acc.items()}
        if ex.partial is None and cache:
            summaries[w] = (frozenset(sleep) & old[0] if old else frozenset(sleep), summary)
        return summary

    try:
        with _no_gc():
            explore(model.init(), {})
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
                w2, tr = model.step(w, i, False)
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
