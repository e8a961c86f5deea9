"""Worlds as tuples of small ints, for the full and the reduced search.

A world is ``(state, block, thread, thread, ...)``: each distinct kernel state
and each distinct thread position (actor, op, micro-step, frame) is interned
once, as its index in a table.  Hashing and comparing a world is then hashing
a short tuple of ints, where an attrs World hashes and compares trees of
objects.  The micro-steps are remembered by ``(state, thread)`` ints (a
micro-step depends on nothing else: ``Model.step``), with no cap: there are at
most as many as the search makes micro-steps, which its state bound bounds.

The reduced search also keeps each micro-step's Transition (``footprints``):
what it read and wrote, which DPOR races.

The rest of cowdsl sees attrs Worlds: ``world`` turns a key back into one, and
``key`` a World into its key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator

from attrs import evolve

from cowdsl.explore import codes, footprint, symmetry
from cowdsl.explore.model import Footprint, Model, Thread, Transition, World, drainer_name
from cowdsl.semantics.state import State

Key = tuple[int, ...]  # (state, block, thread, ...), each an index into Lean's tables
SHIFT = 32  # (state, thread) as one int: state << SHIFT | thread (fewer than 2**32 threads are ever interned)


class Lean:
    """A Model's worlds interned: ``init``, ``enabled`` and ``step`` over keys."""

    __slots__ = ("model", "states", "state_ids", "threads", "thread_ids", "done", "settled", "drainer", "actors",
                 "actor_ids", "actor_no", "ends", "numbers", "pages_of", "moves", "blocks", "finished", "symmetric", "groups", "past", "places", "infos", "owns",
                 "mm_texts",
                 "renamed", "rehomed", "canons", "drainers", "footprints", "transitions", "shared", "locks", "touched", "codec", "codes", "touching",
                 "check")

    def __init__(self, model: Model, symmetric: bool = False, *, footprints: bool = False) -> None:
        """``footprints``: also keep each micro-step's Transition, what it read and
        wrote (the reduced search races them): ``transition``, ``lock_footprint``."""
        self.model = model
        self.footprints = footprints
        self.transitions: dict[int, Transition] = {}  # state << SHIFT | thread -> its micro-step's, when kept
        self.shared: dict[Footprint, Footprint] = {}  # one instance of each footprint
        self.locks: dict[int, Footprint] = {}  # state << SHIFT | thread -> what it waits on (lock_footprint)
        self.groups: dict[int, list[symmetry.Group]] = {}  # block -> its groups of symmetric threads
        self.past: dict[int, list[tuple[tuple[str, ...], tuple[tuple[str | None, ...], ...]]]] = {}  # see past_groups
        self.codec = codes.Codec(model.sc)
        self.codes: list[codes.Code] = []  # state id -> its code (explore.codes)
        self.touched = footprint.Touched(self.codec)  # micro-steps remembered by the parts of the state they touch
        self.check = footprint.CHECK  # COWDSL_CHECK_FOOTPRINTS=1: every remembered micro-step is run too, and compared
        self.states: list[State | None] = []  # state id -> its State, once made (see state)
        # canon_order's, kept: per thread, its position as text ("" if its frame holds text); per state,
        # its results, handles and batches; per (state, bound names), what they hold; per (state,
        # renaming), the state renamed; per (thread, home thread), the thread moved there
        self.places: dict[int, str] = {}
        self.infos: dict[tuple[int, bool], tuple[dict[str, object], dict[str, str], dict[str | None, int]]] = {}
        self.owns: dict[tuple[int, tuple[str | None, ...], bool], str] = {}
        self.mm_texts: dict[tuple[int, str], str] = {}  # (state, process actor) -> own_mm
        self.renamed: dict[tuple[int, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...], bool],
                           tuple[int, dict[int, int]]] = {}
        self.rehomed: dict[tuple[int, int], int] = {}
        self.canons: dict[Key, Key] = {}  # a world -> its class's (most are reached from several)
        self.drainers: dict[int, dict[str | None, int]] = {}  # block -> drainer_slots
        self.state_ids: dict[codes.Code, int] = {}
        self.threads: list[Thread] = []
        self.thread_ids: dict[Thread, int] = {}
        self.done: list[bool] = []  # per thread: its ops all taken
        self.settled: list[bool] = []  # per thread: nothing its block waits for (done, or a drainer)
        self.drainer: list[bool] = []  # per thread: a drainer (Thread.drain)
        self.numbers: list[bool] = []  # per thread: its frame holds a number, which may be a page's
        self.pages_of: dict[int, bool] = {}  # block -> paged
        self.actors: list[str] = []  # per thread: its actor
        self.actor_ids: list[int] = []  # per thread: its actor as a small int (who switched is an int compare)
        self.actor_no: dict[str, int] = {}
        self.touching: list[bool] = []  # per thread: see thread_id
        self.ends: list[bool] = []  # per thread: done and not a drainer, so its block may end with this move
        # state << SHIFT | thread -> (state after, thread after) of its next micro-step, or () while it
        # waits on a lock there: one look-up says whether a thread can move and where to
        self.moves: dict[int, tuple[int, int] | tuple[()]] = {}
        self.blocks: dict[int, tuple[int, ...]] = {}  # block -> its threads at their start
        self.finished = len(model.blocks)  # the block number of a final world
        # canon() picks one world of each class of symmetric ones (explore.symmetry); a model
        # with no symmetric threads in any block has nothing to canonicalise
        self.symmetric = symmetric and any(self.groups_of(b, symmetric) for b in range(self.finished))

    # --- interning ---------------------------------------------------------------------------

    def state_id(self, st: State) -> int:
        return self.code_id(self.codec.encode(st), st)

    def code_id(self, code: codes.Code, st: State | None = None) -> int:
        """The id of the state of this code (``st``: that State, if the caller has it)."""
        n = self.state_ids.get(code)
        if n is None:
            n = self.state_ids[code] = len(self.codes)
            self.codes.append(code)
            self.states.append(st)
        elif st is not None and self.states[n] is None:  # made from a code so far: keep the State
            self.states[n] = st
        return n

    def state(self, s: int) -> State:
        """State s as a State (made from its code the first time it is asked for)."""
        st = self.states[s]
        if st is None:
            st = self.states[s] = self.codec.decode(self.codes[s])
        return st

    def thread_id(self, t: Thread) -> int:
        n = self.thread_ids.get(t)
        if n is None:
            n = self.thread_ids[t] = len(self.threads)
            self.threads.append(t)
            self.done.append(t.done)
            self.settled.append(t.settled)
            self.drainer.append(t.drain is not None)
            self.numbers.append(any(not isinstance(x, (str, bool, type(None))) for x in t.frame))
            self.actors.append(t.actor)
            self.actor_ids.append(self.actor_no.setdefault(t.actor, len(self.actor_no)))
            self.ends.append(t.drain is None and t.done)
            # its micro-steps are remembered by the parts of the state they touch (a drainer's
            # are not; the reduced search keeps each one's Transition; the invariants need every run)
            self.touching.append(t.drain is None and not self.footprints and not self.model.backend.debug_invariants
                                 and self.touched.worth)
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
        return World(self.state(k[0]), k[1], tuple(threads[t] for t in k[2:]))

    # --- the model over keys -------------------------------------------------------------------

    def init(self) -> Key:
        return self.key(self.model.init())

    def is_final(self, k: Key) -> bool:
        return k[1] >= self.finished

    def move(self, k: Key, j: int) -> tuple[int, int] | tuple[()]:
        """The micro-step of the thread in slot j of k (k[j], j >= 2): (state after,
        thread after), or () while it waits on a lock; worked out once per (state, thread)."""
        s, t = k[0], k[j]
        code = s << SHIFT | t
        hit = self.moves.get(code)
        if hit is None:
            model, thread = self.model, self.threads[t]
            tr = None
            if self.touching[t]:  # blocked or not, remembered by the parts it touches
                return self.touched_move(code, t, k[1])
            st = self.state(s)
            if model.blocked(World(st, k[1], (thread,)), 0, False) is not None:
                hit = ()
            elif model.backend.debug_invariants:  # Model.step checks the invariants, with every thread in flight
                w2, tr = model.step(self.world(k), j - 2, False, remember=False)
                after = w2.threads[j - 2] if w2.block == k[1] else _finished(thread)
                hit = (self.state_id(w2.state), self.thread_id(after))
            elif self.footprints:  # the micro-step and what it read and wrote (its tid set below)
                st2, after, tr = model.run_micro(World(st, k[1], (thread,)), 0)
                hit = (self.code_id(self.codec.encode_after(st2, st, self.codes[s]), st2), self.thread_id(after))
            else:  # a drainer's micro-step alone: it reads the state and its own thread, nothing else
                st, after = model.micro(World(st, k[1], (thread,)), 0)
                hit = (self.state_id(st), self.thread_id(after))
            self.moves[code] = hit
            if tr is not None and self.footprints:
                share = self.shared.setdefault
                self.transitions[code] = evolve(tr, tid=(k[1], j - 2), reads=share(tr.reads, tr.reads),
                                                writes=share(tr.writes, tr.writes), marks=share(tr.marks, tr.marks))
        return hit

    def touched_move(self, code: int, t: int, block: int) -> tuple[int, int] | tuple[()]:
        """move's answer for a scenario thread (``code``: its state << SHIFT | t): (state
        after, thread after), or () while it waits on a lock, made from a micro-step
        remembered by the parts of the state it touched (explore.footprint) when the state
        agrees on them, else run and remembered."""
        s = code >> SHIFT
        before = self.codes[s]
        touched = self.touched
        hit = None
        for get, table in touched.gets.get(t, ()):  # inline: the search's hot path
            try:
                hit = table.get(get(before))
            except IndexError:  # a page the shape names that this state lacks
                continue
            if hit is not None:
                break
        touched.asked += 1
        if hit is not None and not self.check:
            touched.found += 1
            if not hit:
                self.moves[code] = ()
                return ()
            code_after = footprint.apply(before, hit)
            n = self.state_ids.get(code_after)
            if n is None:
                n = self.code_id(code_after)
            move = self.moves[code] = (n, hit[2])
            return move
        thread = self.threads[t]
        if touched.asked == footprint.PROBE and touched.found < touched.asked * footprint.WORTH:
            # actors that contend on what they touch: a remembered micro-step rarely fits another
            # state, and remembering costs more than it saves; the rest run as move runs them
            touched.worth = False
            self.touching[:] = [False] * len(self.touching)
        model, st = self.model, self.state(s)
        w = World(st, block, (thread,))
        step = model.sc.steps[thread.steps[thread.at]]
        # what deciding whether it waits reads (also for a micro-step that takes no lock:
        # a device's re-fault waits on a migration entry, Backend.mirror_pte)
        extra = footprint.step_parts(step) | {footprint.part(x) for x in
                                              model.backend.lock_reads(st, step, thread.label, thread.frame)}
        if model.blocked(w, 0, False) is not None:
            ran: tuple[int, int] | tuple[()] = ()
            shape = footprint.shape_of((), (), extra)
        else:
            after, thread_after, tr = model.run_micro(w, 0)
            ran = (self.code_id(self.codec.encode_after(after, st, before), after), self.thread_id(thread_after))
            shape = footprint.shape_of(tr.reads, tr.writes, extra, tr.marks, len(before) - self.codec.pages)
        if hit is not None:  # COWDSL_CHECK_FOOTPRINTS=1: the remembered micro-step is the one that runs
            assert ((self.code_id(footprint.apply(before, hit)), hit[2]) if hit else ()) == ran, \
                f"{thread.actor}'s micro-step {thread.label or 'op'} remembered by its footprint differs " \
                f"from the one run (shape {shape})"
        else:
            self.touched.remember(t, before, shape, (self.codes[ran[0]], ran[1]) if ran else ())
        self.moves[code] = ran
        return ran

    def transition(self, k: Key, i: int) -> tuple[Key, Transition]:
        """Thread i's next micro-step: the world after it and its Transition (footprints kept)."""
        k2 = self.step(k, i)
        tr = self.transitions[k[0] << SHIFT | k[i + 2]]
        if tr.tid != (k[1], i):  # a drainer's thread is the same in blocks of as many steps
            tr = evolve(tr, tid=(k[1], i))
        return k2, tr

    def unfinished(self, k: Key) -> list[int]:
        done = self.done
        return [i for i in range(len(k) - 2) if not done[k[i + 2]]]

    def lock_footprint(self, k: Key, i: int) -> Footprint:
        """What thread i, blocked, waits on (Model.lock_footprint)."""
        code = k[0] << SHIFT | k[i + 2]
        fp = self.locks.get(code)
        if fp is None:
            fp = self.locks[code] = self.model.lock_footprint(World(self.state(k[0]), k[1], (self.threads[k[i + 2]],)),
                                                              0)
        return fp

    def enabled(self, k: Key) -> list[int]:
        """The thread indices that can take a micro-step (Model.enabled)."""
        done, moves, base = self.done, self.moves, k[0] << SHIFT
        out = []
        for j in range(2, len(k)):
            t = k[j]
            if not done[t] and (moves.get(base | t) or self.move(k, j)):
                out.append(j - 2)
        return out

    def successors(self, k: Key) -> list[tuple[int, Key]]:
        """(thread index, world after) for each thread that can take a micro-step."""
        done, moves, ends, touching, base = self.done, self.moves, self.ends, self.touching, k[0] << SHIFT
        out = []
        last = -1  # whether the mover is k's last unsettled thread (worked out once, when a move ends an op)
        for j in range(2, len(k)):
            t = k[j]
            if done[t]:
                continue
            hit = moves.get(base | t)
            if hit is None:
                hit = self.touched_move(base | t, t, k[1]) if touching[t] else self.move(k, j)
            if hit:
                if ends[hit[1]]:
                    if last < 0:
                        settled = self.settled
                        last = sum(1 for x in k[2:] if not settled[x]) == 1  # the mover is unsettled: not done
                    out.append((j - 2, self.next_block(k, hit) if last else _replace(k, j, hit)))
                else:
                    out.append((j - 2, _replace(k, j, hit)))
        return out

    def step(self, k: Key, i: int) -> Key:
        """Thread i's next micro-step (Model.step), remembered by (state, thread)."""
        hit = self.move(k, i + 2)
        assert hit, "a thread that waits on a lock was stepped"
        return self.after(k, i + 2, hit) if self.ends[hit[1]] else _replace(k, i + 2, hit)

    def after(self, k: Key, j: int, hit: tuple[int, int]) -> Key:
        """The world after the move ``hit`` of slot j, whose thread has now taken its
        last op: the next block's first world once every other thread is settled."""
        settled = self.settled
        if all(map(settled.__getitem__, k[2:j])) and all(map(settled.__getitem__, k[j + 1:])):
            return self.next_block(k, hit)
        return _replace(k, j, hit)

    def next_block(self, k: Key, hit: tuple[int, int]) -> Key:
        """The next block's first world, from the state of the move ``hit`` that ended k's block."""
        s2 = hit[0]
        if k[1] + 1 >= self.finished:
            s2 = self.state_id(self.model.finish(self.state(s2)))
        return (s2, k[1] + 1, *self.block_threads(k[1] + 1))

    def actor(self, k: Key, i: int) -> str:
        return self.actors[k[i + 2]]

    # --- symmetry ------------------------------------------------------------------------------

    def groups_of(self, block: int, symmetric: bool | None = None) -> list[symmetry.Group]:
        gs = self.groups.get(block)
        if gs is None:
            wanted = self.symmetric if symmetric is None else symmetric
            threads = self.model.threads_for(block) if block < self.finished and wanted else ()
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
        if not self.symmetric:
            return k
        c = self.canons.get(k)
        if c is None:
            c = self.canons[k] = self.canon_order(k)[0]
        return c

    def canon_order(self, k: Key) -> tuple[Key, list[int]]:
        """The canonical world, and for each of its thread slots the slot of k whose thread moved there."""
        c, slots, _, _, _ = self.canon_renaming(k)
        return c, slots

    def paged(self, block: int) -> bool:
        """Whether a group of this block or of one before holds a process with memory of
        its own: its canonical worlds have their pages renumbered (symmetry.renumber)."""
        got = self.pages_of.get(block)
        if got is None:
            sc = self.model.sc
            actors = [self.model.threads_for(block)[i].actor for idx, _ in self.groups_of(block) for i in idx] \
                if block < self.finished else []
            got = self.pages_of[block] = symmetry.paged(sc, tuple(actors)) or any(
                symmetry.paged(sc, who) for who, _ in self.past_groups(block))
        return got

    def canon_renaming(self, k: Key) -> tuple[Key, list[int], dict[str, str], dict[str, str], dict[int, int]]:
        """canon_order's world and slots, and how it renamed: each bound name of k to its
        canonical one, each actor whose lru_add batch moved to the actor it moved to,
        and each page frame number that renumbering changed (only where processes with
        memory of their own trade names, and no thread's frame holds a number that
        could be a page's).

        Symmetric threads trade identities: their positions, their bound names, and
        what is theirs by actor name, the lru_add batch of each one's CPU (the pages
        it holds and the drainer's progress).  A search meets few states many times
        over: what is worked out of a state, of a thread and of a renaming is kept;
        a group already in order moves nothing."""
        slots = list(range(len(k) - 2))
        gs = self.groups_of(k[1])
        past = self.past_groups(k[1])
        if not gs and not past:
            return k, slots, {}, {}, {}
        threads, actor_of, places, owns, s = self.threads, self.actors, self.places, self.owns, k[0]
        paged = self.paged(k[1])
        numbered = paged and not any(self.numbers[t] for t in k[2:])  # no page number held in a frame
        results, handles, batches = self.state_info(s, paged)
        drainers = self.drainer_slots(k)
        names: dict[str, str] = {}
        actors: dict[str, str] = {}  # whose CPU batch is whose now
        moved: dict[int, int] = {}
        starts: tuple[int, ...] = ()
        for idx, bound in gs:
            sigs = []
            for j, mine in zip(idx, bound):
                t = k[j + 2]
                place = places.get(t)
                if place is None:
                    th = threads[t]
                    # text in a frame might be a name: such a world is left as it is
                    place = places[t] = "" if any(isinstance(x, str) for x in th.frame) \
                        else repr((th.at, th.label, th.frame))
                if not place:
                    return k, slots, {}, {}, {}
                own = owns.get((s, mine, paged))
                if own is None:
                    own = self.owned(s, mine, results, handles, paged)
                actor = actor_of[t]
                d = drainers.get(actor)
                sigs.append((place, own, batches.get(actor, 0), -1 if d is None else threads[k[d + 2]].at,
                             self.own_mm(s, actor)))
            if all(sigs[x] <= sigs[x + 1] for x in range(len(sigs) - 1)):
                continue  # in order already: nothing moves
            order = sorted(range(len(idx)), key=sigs.__getitem__)
            starts = starts or self.block_threads(k[1])
            for x, src in enumerate(order):
                if src == x:
                    continue
                moved[idx[x]] = idx[src]
                actors[actor_of[k[idx[src] + 2]]] = actor_of[starts[idx[x]]]
                names.update((a, b) for a, b in zip(bound[src], bound[x]) if a is not None and b is not None)
        for who, bound in past:  # threads of an earlier block: their bound names and batches are left to sort
            psigs = []
            for a, mine in zip(who, bound):
                own = owns.get((s, mine, paged))
                if own is None:
                    own = self.owned(s, mine, results, handles, paged)
                d = drainers.get(a)
                psigs.append((own, batches.get(a, 0), -1 if d is None else threads[k[d + 2]].at, self.own_mm(s, a)))
            if all(psigs[x] <= psigs[x + 1] for x in range(len(psigs) - 1)):
                continue
            order = sorted(range(len(bound)), key=psigs.__getitem__)
            for x, src in enumerate(order):
                if src != x:
                    actors[who[src]] = who[x]
                names.update((a, b) for a, b in zip(bound[src], bound[x]) if a is not None and b is not None)
        if not moved and not actors and all(a == b for a, b in names.items()) and not numbered:
            return k, slots, {}, {}, {}
        out = list(k)
        starts = starts or self.block_threads(k[1])
        for slot, src in moved.items():
            t, home = k[src + 2], starts[slot]
            there = self.rehomed.get((t, home))
            if there is None:
                th, h = threads[t], threads[home]
                there = self.rehomed[(t, home)] = self.thread_id(Thread(h.actor, h.steps, th.at, th.label, th.frame))
            out[slot + 2] = there
            slots[slot] = src
        for was, now in actors.items():  # each drainer follows its CPU's batch
            if was in drainers and now in drainers:
                src, slot = drainers[was], drainers[now]
                th = threads[k[src + 2]]
                out[slot + 2] = self.thread_id(Thread(drainer_name(now), th.steps, th.at, drain=now))
                slots[slot] = src
        key = (s, tuple(names.items()), tuple(actors.items()), numbered)
        got = self.renamed.get(key)
        if got is None:
            st, pages = symmetry.rename(self.state(s), names, actors), dict[int, int]()
            if numbered:
                st, pages = symmetry.renumber(st)
            got = self.renamed[key] = (self.state_id(st), pages)
        out[0] = got[0]
        return tuple(out), slots, names, actors, got[1]

    def drainer_slots(self, k: Key) -> dict[str | None, int]:
        """The slot of each CPU's drainer in k's block (a drainer keeps its CPU and its slot)."""
        d = self.drainers.get(k[1])
        if d is None:
            threads = self.threads
            d = self.drainers[k[1]] = {threads[t].drain: j for j, t in enumerate(k[2:]) if self.drainer[t]}
        return d

    def state_info(self, s: int, paged: bool = False) -> tuple[dict[str, object], dict[str, str], dict[str | None, int]]:
        """Of state s, for canon_order: its results and handles by bound name (a
        handle without its name; ``paged``: its page as what the page holds, not its
        number, nor its owner), and how many pages each CPU's lru_add batch holds."""
        info = self.infos.get((s, paged))
        if info is None:
            state = self.state(s)
            handles = {h.name: symmetry.text(evolve(h, name="", owner="", page=-1)) + symmetry.page_text(state, h.page, h.owner)
                       for h in state.handles} if paged else {h.name: repr(evolve(h, name="")) for h in state.handles}
            info = self.infos[(s, paged)] = (dict(state.results), handles,
                                             Counter(p.lru_batch for p in state.pages if p.lru_batch is not None))
        return info

    def own_mm(self, s: int, actor: str) -> str:
        """A process actor's mm in state s as text without its name or its pages' numbers
        (symmetry.mm_shape); "" for a thread, whose process is not its own."""
        key = (s, actor)
        text = self.mm_texts.get(key)
        if text is None:
            text = self.mm_texts[key] = symmetry.mm_shape(self.state(s), actor)
        return text

    def owned(self, s: int, mine: tuple[str | None, ...], results: dict[str, object], handles: dict[str, str],
              paged: bool = False) -> str:
        """What a thread's bound names ``mine`` hold in state s, as text to sort by."""
        key = (s, mine, paged)
        text = self.owns.get(key)
        if text is None:
            text = self.owns[key] = repr([(results.get(b), handles.get(b)) for b in mine if b])
        return text


def _replace(k: Key, j: int, hit: tuple[int, int]) -> Key:
    """k with its state and the thread in slot j replaced by a move's (a list's
    copy is cheaper than slicing the tuple twice)."""
    out = list(k)
    out[0], out[j] = hit
    return tuple(out)


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
