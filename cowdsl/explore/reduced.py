"""The reduced search: source-DPOR with sleep sets and state caching.

Depth-first over the worlds of a Model, over the independence relation given
by what each micro-step read and wrote (``Transition.dependent``); it reaches
the final states the full search reaches, in far fewer executions."""

from __future__ import annotations

import sys
import time

from attrs import define, field, frozen

from cowdsl.explore import symmetry
from cowdsl.explore.exploration import Bounds, Exploration, Goal, no_gc
from cowdsl.explore.lean import Key, Lean
from cowdsl.explore.model import Footprint, Loc, Model, Tid, Transition

Clock = dict[Tid, int]  # vector clock: tid -> 1 + trace index of its latest move that happens before


@frozen(cache_hash=True)
class _Moves:
    """What a thread's moves in a cached subtree read and wrote, all together:
    a subtree move depends on a trace entry iff this does."""

    tid: Tid
    reads: Footprint
    writes: Footprint
    marks: Footprint

    dependent = Transition.dependent


Move = Transition | _Moves  # what is raced against the trace
Summary = dict[Tid, _Moves]  # per thread, what its moves in a subtree read and wrote
Sleep = dict[Tid, Transition]  # the moves asleep at a world: taken before, in an equivalent order
Gathered = dict[Tid, list[set[Loc]]]  # per thread, [reads, writes, marks] of a subtree, being gathered


@define
class _Level:
    """A world on the current path, with what is to be and has been explored from it."""

    world: Key
    enabled: list[int]
    nexts: dict[int, tuple[Key, Transition]]  # thread index -> its move, for enabled threads
    backtrack: set[int] = field(factory=set)
    done: set[int] = field(factory=set)
    sleep: Sleep = field(factory=dict)


def _note(acc: Gathered, m: Move) -> None:
    """Add a move's footprints to its thread's in a subtree's."""
    a = acc.get(m.tid)
    if a is None:
        acc[m.tid] = [set(m.reads), set(m.writes), set(m.marks)]
    else:
        a[0] |= m.reads
        a[1] |= m.writes
        a[2] |= m.marks


@frozen(cache_hash=True)
class _View:
    """A world as its symmetry class's canonical one sees it (Lean.canon_renaming):
    each thread slot's slot there, and the bound names and CPUs renamed."""

    to_canon: tuple[int, ...]  # real slot -> canonical slot
    names: tuple[tuple[str, str], ...]
    actors: tuple[tuple[str, str], ...]
    pages: tuple[tuple[int, int], ...] = ()  # page frame numbers renumbered

    def inverse(self) -> _View:
        back = [0] * len(self.to_canon)
        for real, c in enumerate(self.to_canon):
            back[c] = real
        return _View(tuple(back), tuple((b, a) for a, b in self.names), tuple((b, a) for a, b in self.actors),
                     tuple((b, a) for a, b in self.pages))

    def tid(self, t: Tid, block: int) -> Tid:
        return (t[0], self.to_canon[t[1]]) if t[0] == block else t

    def footprint(self, fp: Footprint) -> Footprint:
        names, actors, pages = dict(self.names), dict(self.actors), dict(self.pages)
        return frozenset(symmetry.renamed_loc(loc, names, actors, pages) for loc in fp)


def reduced(model: Model, bounds: Bounds, goal: Goal | None = None, *, cache: bool = True,
            symmetric: bool = False) -> Exploration:
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
    cached world is always fully explored.

    Symmetry (``symmetric``, explore.symmetry): worlds that differ only in which
    of some interchangeable threads is where share one entry of the visited set
    and of the summaries, under their canonical world.  The walk itself stays on
    real worlds (the trace is a real execution); a summary is kept in canonical
    names and renamed to the world at hand, whose subtree is the canonical one's,
    renamed.  The final states are then one per class, as in the full search.

    Given a ``goal``, the search stops at the first world where every verdict
    is decided (the judge then finds the shortest execution that shows it)."""
    return ReducedSearch(model, bounds, goal, cache=cache, symmetric=symmetric).run()


class ReducedSearch:
    """One run of the reduced search: the current path (trace, clocks, levels),
    the summaries of explored worlds, and the Exploration being filled in.
    Worlds are interned (lean.Lean, with each micro-step's footprints kept):
    tuples of ints as keys of the visited set and the summaries."""

    __slots__ = ("model", "lean", "bounds", "goal", "cache", "ex", "seen_final", "visited", "trace", "clocks", "levels",
                 "last_at", "block_starts", "summaries", "shared_sets", "shared_moves", "views", "renamed")

    def __init__(self, model: Model, bounds: Bounds, goal: Goal | None = None, *, cache: bool = True,
                 symmetric: bool = False) -> None:
        self.model = model
        self.lean = Lean(model, symmetric, footprints=True)
        self.bounds = bounds
        self.goal = goal
        self.cache = cache
        self.ex = Exploration("reduced", drains=bool(model.cpus))
        self.seen_final: set[Key] = set()
        self.visited: set[Key] = set()
        self.trace: list[Transition] = []  # the moves taken to the current world
        self.clocks: list[Clock] = []  # the vector clock of each trace entry
        self.levels: list[_Level] = []  # levels[k] is where trace[k] was taken
        self.last_at: dict[Tid, list[int]] = {}  # tid -> the trace indices of its moves
        self.block_starts = [0]  # trace index where the current par block began; races only happen within a block
        self.summaries: dict[Key, tuple[frozenset[Tid], Summary]] = {}  # world -> (sleep at entry, summary)
        # one instance of each footprint and summary entry: most subtrees repeat them
        self.shared_sets: dict[Footprint, Footprint] = {}
        self.shared_moves: dict[_Moves, _Moves] = {}
        # world -> its canonical world, how it is renamed there and back (None: it is its own)
        self.views: dict[Key, tuple[Key, _View | None, _View | None]] = {}
        self.renamed: dict[tuple[_Moves, _View, int], _Moves] = {}

    def run(self) -> Exploration:
        ex = self.ex
        t0 = time.monotonic()
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20_000))
        try:
            with no_gc():
                self.explore(self.lean.init(), {})
        finally:
            sys.setrecursionlimit(limit)
        ex.states = len(self.visited)  # ex.visited stays empty: DPOR does not see every world; invariants need the full search
        ex.seconds = time.monotonic() - t0
        return ex

    # --- races -------------------------------------------------------------------

    def last_clock(self, tid: Tid, start: int) -> Clock:
        """The clock of tid's latest move in the current block, or an empty one."""
        at = self.last_at.get(tid)
        return self.clocks[at[-1]] if at and at[-1] >= start else {}

    def race(self, move: Move, start: int) -> Clock:
        """Schedule the reversal of every race of ``move`` with the trace; return
        the move's vector clock."""
        trace, clocks = self.trace, self.clocks
        p = move.tid
        n = len(trace)
        c = dict(self.last_clock(p, start))
        for j in range(n - 1, start - 1, -1):
            e = trace[j]
            if clocks[j][e.tid] <= c.get(e.tid, 0):
                continue  # it happens before the move through some later entry
            if e.dependent(move):
                self.schedule(j, p, c)
                for key, v in clocks[j].items():
                    if c.get(key, 0) < v:
                        c[key] = v
        c[p] = n + 1
        return c

    def schedule(self, j: int, p: Tid, c: Clock) -> None:
        """Make sure an initial of notdep(trace[j]).move is explored at trace[j]'s
        world; c is what happens before the move among the entries after j."""
        trace, clocks = self.trace, self.clocks
        pre = self.levels[j]
        if len(pre.backtrack) == len(pre.enabled):
            return  # every thread is scheduled there already
        tj = trace[j].tid
        initials: set[int] = set()
        in_v: set[Tid] = set()
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

    def race_summary(self, summary: Summary, start: int, block: int) -> None:
        """Race a cached subtree's moves against the trace: every entry one of them
        may race with gets all its world's enabled threads."""
        trace, clocks, levels = self.trace, self.clocks, self.levels
        threads = [(p, moves, self.last_clock(p, start)) for p, moves in summary.items() if p[0] == block]
        for j in range(len(trace) - 1, start - 1, -1):
            pre = levels[j]
            if len(pre.backtrack) == len(pre.enabled):
                continue  # (backtrack sets only hold enabled threads)
            e = trace[j]
            for p, moves, pc in threads:
                if e.tid != p and clocks[j][e.tid] > pc.get(e.tid, 0) and e.dependent(moves):
                    pre.backtrack.update(pre.enabled)
                    break

    def moves_of(self, t: Tid, a: list[set[Loc]]) -> _Moves:
        """A summary entry, its sets and itself shared with equal ones."""
        share = self.shared_sets.setdefault
        r, w, m = frozenset(a[0]), frozenset(a[1]), frozenset(a[2])
        moves = _Moves(t, share(r, r), share(w, w), share(m, m))
        return self.shared_moves.setdefault(moves, moves)

    def rename(self, summary: Summary, view: _View, block: int) -> Summary:
        """A summary with its threads, bound names and CPUs renamed by ``view``."""
        out: Summary = {}
        done = self.renamed
        for t, m in summary.items():
            m2 = done.get((m, view, block))
            if m2 is None:
                share = self.shared_sets.setdefault
                r, w, k = view.footprint(m.reads), view.footprint(m.writes), view.footprint(m.marks)
                m2 = _Moves(view.tid(t, block), share(r, r), share(w, w), share(k, k))
                m2 = done[(m, view, block)] = self.shared_moves.setdefault(m2, m2)
            out[m2.tid] = m2
        return out

    def view(self, w: Key) -> tuple[Key, _View | None, _View | None]:
        """w's canonical world, and how w is renamed to it and back (None: w is its own)."""
        got = self.views.get(w)
        if got is None:
            got = (w, None, None)
            if self.lean.symmetric:
                c, slots, names, actors, pages = self.lean.canon_renaming(w)
                if c != w:
                    to_canon = [0] * len(slots)
                    for canon_slot, real in enumerate(slots):
                        to_canon[real] = canon_slot
                    view = _View(tuple(to_canon), tuple(names.items()), tuple(actors.items()), tuple(pages.items()))
                    got = (c, view, view.inverse())
            self.views[w] = got
        return got

    # --- the depth-first walk ------------------------------------------------------

    def terminal(self, k: Key) -> None:
        """Record a world where no thread can move: a final one, or a deadlock."""
        if k not in self.seen_final:
            self.seen_final.add(k)
            w = self.lean.world(k)
            self.ex.finals.append(w)
            if not self.lean.is_final(k):
                self.ex.deadlocks.append(w)

    def explore(self, w: Key, sleep: Sleep) -> Summary:
        """Explore from w; returns the summary of its subtree (this block's)."""
        trace = self.trace
        if trace and trace[-1].tid[0] != w[1]:
            self.block_starts.append(len(trace))
            try:
                self.explore_block(w, {})  # a new block: every thread before it has finished
            finally:
                self.block_starts.pop()
            return {}
        return self.explore_block(w, sleep)

    def explore_block(self, w: Key, sleep: Sleep) -> Summary:
        """Explore from w within the current block, or race its cached summary."""
        lean, ex, bounds, cache = self.lean, self.ex, self.bounds, self.cache
        block = w[1]
        start = self.block_starts[-1]
        c, view, back = self.view(w)  # (w, None, None) without symmetric threads
        asleep = sleep.keys() if view is None else {view.tid(t, block) for t in sleep}
        hit = self.summaries.get(c) if cache else None
        if hit is not None and hit[0] <= asleep:
            summary = hit[1] if back is None else self.rename(hit[1], back, block)
            self.race_summary(summary, start, block)
            return summary
        self.visited.add(c)
        if (why := bounds.hit(len(self.visited))) is not None:
            ex.partial = why
            return {}
        if bounds.progress and len(self.visited) % 1000 == 0:
            bounds.progress(len(self.visited), ex.executions or 0)
        en = lean.enabled(w)
        nexts = {}
        for i in en:
            nexts[i] = lean.transition(w, i)
            ex.transitions += 1
        acc: Gathered = {}
        for p in lean.unfinished(w):
            if p not in nexts:  # blocked: its next move takes the lock it waits on
                probe = _Moves((block, p), lean.lock_footprint(w, p), frozenset(), frozenset())
                self.race(probe, start)
                _note(acc, probe)
        if not en:
            self.terminal(c)
            if self.goal is not None and not self.goal.every_state and self.goal.decided(lean.world(w), True):
                ex.stopped = True
            ex.executions = (ex.executions or 0) + 1  # the executions DPOR took (it does not count the others)
        awake = [i for i in en if (block, i) not in sleep]
        if awake:  # take each move scheduled here in turn, until none is left that is not asleep
            trace, clocks, last_at, levels = self.trace, self.clocks, self.last_at, self.levels
            # A drainer (other activity on a CPU) may never move in an execution: its block
            # ends without it, so no race would bring its move forward.  It is tried at once
            # wherever it can move (the next block's drainer stands for it after the block).
            first = {awake[0]} | {i for i in awake if lean.drainer[w[i + 2]]}
            level = _Level(w, en, nexts, backtrack=first, sleep=dict(sleep))
            levels.append(level)
            while not ex.halted:
                todo = sorted(level.backtrack - level.done - {i for (b, i) in level.sleep if b == block})
                if not todo:
                    break
                p = todo[0]
                level.done.add(p)
                w2, tr = nexts[p]
                clock = self.race(tr, start)
                _note(acc, tr)
                child_sleep = {q: t for q, t in level.sleep.items() if not t.dependent(tr)}
                trace.append(tr)
                clocks.append(clock)
                last_at.setdefault(tr.tid, []).append(len(trace) - 1)
                for m in self.explore(w2, child_sleep).values():
                    _note(acc, m)
                last_at[tr.tid].pop()
                trace.pop()
                clocks.pop()
                level.sleep[tr.tid] = tr
            levels.pop()
        old = self.summaries.get(c) if cache and not ex.halted else None
        if old is not None:  # explored twice: together they cover the smaller sleep set
            for m in (old[1] if back is None else self.rename(old[1], back, block)).values():
                _note(acc, m)
        summary = {t: self.moves_of(t, a) for t, a in acc.items()}
        if not ex.halted and cache:
            kept = summary if view is None else self.rename(summary, view, block)
            self.summaries[c] = (frozenset(asleep) & old[0] if old else frozenset(asleep), kept)
        return summary
