"""Ample sets in the full search: one move stands for all where it commutes with
everything else the block can still do.

At a world, thread i's next micro-step alone is explored when nothing the other
threads of the block can still do, in any order, touches what that micro-step
touches: then every execution from the world is equivalent (the same final
world) to one that takes i's move first (Peled's ample sets; Godefroid's
persistent sets, where one is a thread's next move).  The state graph is
acyclic, so no cycle proviso is needed, and the final worlds, deadlocks among
them, are all still reached; states in between are not, so a search that judges
every state (an ``invariant``) or counts executions does without.

What the move touches is exact: what the Machine recorded it read and wrote (the
Locs the reduced search races).  What the others can still do is over-approximated
from their remaining steps (``auto.touches``: the mms of their fork family, a
file, a pipe; EVERYTHING for a device, reclaim or ksmd) plus their own CPU's
lru_add batch and GLOBAL, the parts no family owns: page and swap-slot
allocation, the swap cache, the set of mms and of pins, the lru lists.  A move
that touches GLOBAL is never taken alone.  A page belongs to the families that
map it, the file it caches, the pipes that hold it, the owners of pins on it, the
CPU whose batch holds it; a page of a large folio, in the swap cache, KSM's, the
zero page or device memory is GLOBAL.

Where actors contend (the race families) no thread qualifies and this costs a
look-up per world; it pays where some actors are bystanders of a race."""

from __future__ import annotations

from cowdsl.explore import auto
from cowdsl.explore.lean import SHIFT, Key, Lean
from cowdsl.explore.model import Loc, World
from cowdsl.semantics.state import SMALL, State

GLOBAL = "global"  # parts of the state no fork family owns
EVERYTHING = auto.EVERYTHING
Zones = frozenset[str]


class Ample:
    """``pick(k)``: the thread slot whose next micro-step alone is explored at world k, or None."""

    def __init__(self, lean: Lean) -> None:
        self.lean = lean
        self.family = auto.families(lean.model)
        self.candidates: dict[Key, list[tuple[int, Zones]]] = {}  # (block, threads) -> (slot, the others' zones)
        self.zones: dict[int, Zones | None] = {}  # state << SHIFT | thread -> what its move touches (None: it waits)
        self.static: dict[int, Zones] = {}  # thread -> what its remaining steps may touch
        self.never: dict[int, bool] = {}  # block -> contended()
        self.picked = 0  # worlds where one move stood for all

    def pick(self, k: Key) -> int | None:
        if self.contended(k[1]):
            return None
        for i, others in self.candidates_at(k):
            zones = self.move_zones(k, i)
            if zones is not None and GLOBAL not in zones and not zones & others:
                self.picked += 1
                return i
        return None

    def contended(self, block: int) -> bool:
        """Whether every two threads of the block touch a zone in common (but GLOBAL) for
        as long as both run: their last ops do (a thread's remaining steps always include
        its last op).  Then no thread is ever a candidate, and a world costs one look-up.
        A block with a drainer is too: a drainer empties any page's batch."""
        got = self.never.get(block)
        if got is None:
            threads = self.lean.model.threads_for(block) if block < self.lean.finished else []
            steps, fam = self.lean.model.sc.steps, self.family
            lasts = [auto.touches(steps[t.steps[-1]], fam) - {GLOBAL} for t in threads if t.drain is None and t.steps]
            got = self.never[block] = any(t.drain is not None for t in threads) or all(
                EVERYTHING in a or EVERYTHING in b or not a.isdisjoint(b) for x, a in enumerate(lasts) for b in lasts[x + 1:])
        return got

    def candidates_at(self, k: Key) -> list[tuple[int, Zones]]:
        """The unfinished threads of k's block that share no zone with the others (but
        GLOBAL) by their remaining steps, with the others' zones: worked out once per
        (block, thread positions), from the scenario.  Where actors contend, none."""
        where = k[1:]
        got = self.candidates.get(where)
        if got is None:
            lean = self.lean
            got = []
            # (a block with a drainer is contended()); where one thread is left there is nothing to save
            if sum(not lean.done[t] for t in k[2:]) > 1:
                left = {i: self.thread_zones(t) for i, t in enumerate(k[2:]) if not lean.done[t]}
                for i, mine in left.items():
                    others: set[str] = set().union(*(o for j, o in left.items() if j != i))
                    if EVERYTHING not in others and EVERYTHING not in mine and others.isdisjoint(mine - {GLOBAL}):
                        got.append((i, frozenset(others)))
            self.candidates[where] = got
        return got

    def thread_zones(self, t: int) -> Zones:
        """What thread t may touch in its remaining steps (the op it is in included)."""
        z = self.static.get(t)
        if z is None:
            th, steps = self.lean.threads[t], self.lean.model.sc.steps
            out = {GLOBAL, "cpu " + th.actor}
            for n in th.steps[th.at:]:
                out |= auto.touches(steps[n], self.family)
            z = self.static[t] = frozenset(out)
        return z

    def move_zones(self, k: Key, i: int) -> Zones | None:
        """What thread i's next micro-step at k touches, as zones; None while it waits on a lock."""
        code = k[0] << SHIFT | k[i + 2]
        if code in self.zones:
            return self.zones[code]
        lean = self.lean
        model, st, thread = lean.model, lean.state(k[0]), lean.threads[k[i + 2]]
        w = World(st, k[1], (thread,))
        zones: Zones | None = None
        if model.blocked(w, 0, False) is None:
            _, _, tr = model.run_micro(w, 0)
            step = model.sc.steps[thread.steps[thread.at]]
            out = auto.touches(step, self.family)  # what it reads outside the Machine (is its process alive)
            for loc in tr.reads | tr.writes | tr.marks:
                out |= self.loc_zones(loc, st)
            zones = frozenset(out)
        self.zones[code] = zones
        return zones

    def loc_zones(self, loc: Loc, st: State) -> set[str]:
        kind = loc[0]
        if kind in ("mm", "mm*", "vma", "counter"):
            return {self.mm_zone(str(loc[1]))}
        if kind == "page":
            return self.page_zones(int(loc[1]), st)  # type: ignore[call-overload]
        if kind == "result":
            return set()  # the step's own `as` name: no micro-step reads one
        if kind in ("file", "pipe") and len(loc) > 1:
            return {f"{kind} {loc[1]}"}
        if kind == "lru" and len(loc) > 1:
            return {f"cpu {loc[1]}"}
        return {GLOBAL}

    def mm_zone(self, name: str) -> str:
        return "mm " + self.family.get(name, name)

    def page_zones(self, pfn: int, st: State) -> set[str]:
        """Who else can reach page pfn: see the module's note."""
        if pfn >= len(st.pages):
            return {GLOBAL}  # a page the move allocated
        p = st.pages[pfn]
        if p.freed:
            return set()  # no one maps it, and a new page never reuses its number
        if p.kind != SMALL or p.siblings or p.swapcache >= 0 or p.ksm or p.zero or p.device:
            return {GLOBAL}
        out = set()
        for mm in st.mms:
            for v in mm.vmas:
                if p.file is not None and v.file == p.file or any(e is not None and e.page == pfn for e in v.ptes):
                    out.add(self.mm_zone(mm.name))
                    break
        if p.file is not None:
            out.add("file " + p.file)
        out.update("pipe " + pp.name for pp in st.pipes if pfn in pp.bufs)
        for h in st.handles:
            if h.page == pfn:
                out.add(GLOBAL if h.mirror is not None or h.device else self.mm_zone(h.owner))
        if p.lru_batch is not None:
            out.add("cpu " + p.lru_batch)
        return out
