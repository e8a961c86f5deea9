"""Worlds as tuples of small ints, for the full search.

A world is ``(state, block, thread, thread, ...)``: each distinct kernel state
and each distinct thread position (actor, op, micro-step, frame) is interned
once, as its index in a table.  Hashing and comparing a world is then hashing
a short tuple of ints, where an attrs World hashes and compares trees of
objects.  The micro-steps are remembered by ``(state, thread)`` ints (a
micro-step depends on nothing else: ``Model.step``), with no cap: there are at
most as many as the search makes micro-steps, which its state bound bounds.

The rest of cowdsl sees attrs Worlds: ``world`` turns a key back into one, and
``key`` a World into its key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator

from attrs import evolve

from cowdsl.explore import symmetry
from cowdsl.explore.model import Model, Thread, World, drainer_name
from cowdsl.semantics.state import State

Key = tuple[int, ...]  # (state, block, thread, ...), each an index into Lean's tables
SHIFT = 32  # (state, thread) as one int: state << SHIFT | thread (fewer than 2**32 threads are ever interned)


class Lean:
    """A Model's worlds interned: ``init``, ``enabled`` and ``step`` over keys."""

    __slots__ = ("model", "states", "state_ids", "threads", "thread_ids", "done", "settled", "drainer", "actors",
                 "moves", "blocked", "blocks", "finished", "symmetric", "groups", "past")

    def __init__(self, model: Model, symmetric: bool = False) -> None:
        self.model = model
        self.symmetric = symmetric  # canon() picks one world of each class of symmetric ones (explore.symmetry)
        self.groups: dict[int, list[symmetry.Group]] = {}  # block -> its groups of symmetric threads
        self.past: dict[int, list[tuple[tuple[str, ...], tuple[tuple[str | None, ...], ...]]]] = {}  # see past_groups
        self.states: list[State] = []
        self.state_ids: dict[State, int] = {}
        self.threads: list[Thread] = []
        self.thread_ids: dict[Thread, int] = {}
        self.done: list[bool] = []  # per thread: its ops all taken
        self.settled: list[bool] = []  # per thread: nothing its block waits for (done, or a drainer)
        self.drainer: list[bool] = []  # per thread: a drainer (Thread.drain)
        self.actors: list[str] = []  # per thread: its actor
        self.moves: dict[int, tuple[int, int]] = {}  # state << SHIFT | thread -> (state after, thread after)
        self.blocked: dict[int, bool] = {}  # state << SHIFT | thread -> whether it waits on a lock
        self.blocks: dict[int, tuple[int, ...]] = {}  # block -> its threads at their start
        self.finished = len(model.blocks)  # the block number of a final world

    # --- interning ---------------------------------------------------------------------------

    def state_id(self, st: State) -> int:
        n = self.state_ids.get(st)
        if n is None:
            n = self.state_ids[st] = len(self.states)
            self.states.append(st)
        return n

    def thread_id(self, t: Thread) -> int:
        n = self.thread_ids.get(t)
        if n is None:
            n = self.thread_ids[t] = len(self.threads)
            self.threads.append(t)
            self.done.append(t.done)
            self.settled.append(t.settled)
            self.drainer.append(t.drain is not None)
            self.actors.append(t.actor)
        return n

    def block_threads(self, block: int) -> tuple[int, ...]:
        ts = self.blocks.get(block)
        if ts is None:
            ts = self.blocks[block] = tuple(map(self.thread_id, self.model.threads_for(block))) \
                if block < self.finished else ()
        return ts

    def key(self, w: World) -> Key:
        return (self.state_id(w.state), w.block, *map(self.thread_id, w.threads))

    def world(self, k: Key) -> World:
        threads = self.threads
        return World(self.states[k[0]], k[1], tuple(threads[t] for t in k[2:]))

    # --- the model over keys -------------------------------------------------------------------

    def init(self) -> Key:
        return self.key(self.model.init())

    def is_final(self, k: Key) -> bool:
        return k[1] >= self.finished

    def enabled(self, k: Key) -> list[int]:
        """The thread indices that can take a micro-step (Model.enabled)."""
        base = k[0] << SHIFT
        done, blocked = self.done, self.blocked
        out = []
        for i in range(len(k) - 2):
            t = k[i + 2]
            if done[t]:
                continue
            b = blocked.get(base | t)
            if b is None:
                st = self.states[k[0]]
                b = blocked[base | t] = self.model.blocked(World(st, k[1], (self.threads[t],)), 0, False) is not None
            if not b:
                out.append(i)
        return out

    def step(self, k: Key, i: int) -> Key:
        """Thread i's next micro-step (Model.step), remembered by (state, thread)."""
        t = k[i + 2]
        code = k[0] << SHIFT | t
        hit = self.moves.get(code)
        if hit is None:
            model = self.model
            if model.backend.debug_invariants:  # Model.step checks the invariants, with every thread in flight
                w2, _ = model.step(self.world(k), i, False, remember=False)
                after = w2.threads[i] if w2.block == k[1] else _finished(self.threads[t])
                st = w2.state
            else:  # the micro-step alone: it reads the state and its own thread, nothing else
                st, after, _ = model.micro(World(self.states[k[0]], k[1], (self.threads[t],)), 0)
            hit = self.moves[code] = (self.state_id(st), self.thread_id(after))
        s2, t2 = hit
        if not self.drainer[t2] and self.done[t2] and all(self.settled[x] for j, x in enumerate(k[2:]) if j != i):
            if k[1] + 1 >= self.finished:
                s2 = self.state_id(self.model.finish(self.states[s2]))
            return (s2, k[1] + 1, *self.block_threads(k[1] + 1))
        return (s2, k[1], *k[2:i + 2], t2, *k[i + 3:])

    def actor(self, k: Key, i: int) -> str:
        return self.actors[k[i + 2]]


    # --- symmetry ------------------------------------------------------------------------------

    def groups_of(self, block: int) -> list[symmetry.Group]:
        gs = self.groups.get(block)
        if gs is None:
            threads = self.model.threads_for(block) if block < self.finished and self.symmetric else ()
            # a drainer runs no step: never interchangeable with a thread
            gs = self.groups[block] = symmetry.groups(self.model.sc, [(t.actor, t.steps if t.drain is None else ())
                                                                      for t in threads])
        return gs

    def past_groups(self, block: int) -> list[tuple[tuple[str, ...], tuple[tuple[str | None, ...], ...]]]:
        """The actors and bound names of each symmetric group of the blocks before this one."""
        if not self.symmetric:
            return []
        key = -1 - block  # cached beside the block's own groups
        past = self.past.get(key)
        if past is None:
            past = self.past[key] = [
                (tuple(self.model.threads_for(b)[i].actor for i in idx), bound)
                for b in range(min(block, self.finished)) for idx, bound in self.groups_of(b)]
        return past

    def groups_of_any(self) -> bool:
        """Whether some block seen so far had symmetric threads."""
        return any(self.groups.values())

    def canon(self, k: Key) -> Key:
        """The world of k's symmetry class that stands for it (k itself without symmetric threads)."""
        return self.canon_order(k)[0] if self.symmetric else k

    def canon_order(self, k: Key) -> tuple[Key, list[int]]:
        """The canonical world, and for each of its thread slots the slot of k whose thread moved there.

        Symmetric threads trade identities: their positions, their bound names, and
        what is theirs by actor name, the lru_add batch of each one's CPU (the pages
        it holds and the drainer's progress)."""
        slots = list(range(len(k) - 2))
        gs = self.groups_of(k[1])
        past = self.past_groups(k[1])
        if not gs and not past:
            return k, slots
        threads, state = self.threads, self.states[k[0]]
        results = dict(state.results)
        handles = {h.name: repr(evolve(h, name="")) for h in state.handles}
        batches = Counter(p.lru_batch for p in state.pages if p.lru_batch is not None)
        drainers = {threads[t].drain: j for j, t in enumerate(k[2:]) if self.drainer[t]}
        names: dict[str, str] = {}
        actors: dict[str, str] = {}  # whose CPU batch is whose now
        starts = self.block_threads(k[1])
        moved: dict[int, int] = {}
        for idx, bound in gs:
            sigs = []
            for j, mine in zip(idx, bound):
                t = threads[k[j + 2]]
                if any(isinstance(x, str) for x in t.frame):
                    return k, slots  # text in a frame might be a name: left as it is
                d = drainers.get(t.actor)
                sigs.append(repr((t.at, t.label, t.frame, [(results.get(b), handles.get(b)) for b in mine if b],
                                  batches[t.actor], None if d is None else threads[k[d + 2]].at)))
            order = sorted(range(len(idx)), key=sigs.__getitem__)
            for x, src in enumerate(order):
                if src == x:
                    continue
                moved[idx[x]] = idx[src]
                actors[threads[k[idx[src] + 2]].actor] = threads[starts[idx[x]]].actor
                names.update((a, b) for a, b in zip(bound[src], bound[x]) if a is not None and b is not None)
        for who, bound in past:  # threads of an earlier block: their bound names and batches are left to sort
            sigs = [repr(([(results.get(b), handles.get(b)) for b in mine if b], batches[a],
                          None if drainers.get(a) is None else threads[k[drainers[a] + 2]].at))
                    for a, mine in zip(who, bound)]
            order = sorted(range(len(bound)), key=sigs.__getitem__)
            for x, src in enumerate(order):
                if src != x:
                    actors[who[src]] = who[x]
                names.update((a, b) for a, b in zip(bound[src], bound[x]) if a is not None and b is not None)
        if not moved and not actors and all(a == b for a, b in names.items()):
            return k, slots
        out = list(k)
        for slot, src in moved.items():
            t, home = threads[k[src + 2]], self.threads[starts[slot]]
            out[slot + 2] = self.thread_id(Thread(home.actor, home.steps, t.at, t.label, t.frame))
            slots[slot] = src
        for was, now in actors.items():  # each drainer follows its CPU's batch
            if was in drainers and now in drainers:
                src, slot = drainers[was], drainers[now]
                t = threads[k[src + 2]]
                out[slot + 2] = self.thread_id(Thread(drainer_name(now), t.steps, t.at, drain=now))
                slots[slot] = src
        out[0] = self.state_id(symmetry.rename(state, names, actors))
        return tuple(out), slots


def _finished(t: Thread) -> Thread:
    """A thread after its last op's last micro-step (what Model._micro makes of it)."""
    return Thread(t.actor, t.steps, t.at + 1)


class Worlds(Collection[World]):
    """Keys seen as attrs Worlds, made when asked for (an invariant's judge, the reports)."""

    def __init__(self, lean: Lean, keys: list[Key]) -> None:
        self.lean = lean
        self.keys = keys

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[World]:
        return map(self.lean.world, self.keys)

    def __contains__(self, w: object) -> bool:
        return isinstance(w, World) and self.lean.key(w) in set(self.keys)
