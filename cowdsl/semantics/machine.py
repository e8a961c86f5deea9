"""A mutable working copy of a State, with the kernel's primitives.

A backend step thaws the state into a Machine, runs kernel code on it
(``get_page``, ``set_pte``, ``page_remove_rmap``, ...), records what it did as
events, and freezes the result into a new State.
"""

from __future__ import annotations

from collections.abc import Iterator
from operator import attrgetter
from typing import Any, TypeVar

from attrs import fields, frozen

from cowdsl.semantics import concepts
from cowdsl.semantics.state import (
    PTE_THP,
    THP,
    Handle,
    Mm,
    Outcome,
    Page,
    Pipe,
    Pte,
    Slot,
    State,
    Vma,
    content,
    stored,
    word,
)


@frozen
class Event:
    """One line of a trace: what the kernel did, and the rule that decided it."""

    text: str
    rule: str | None = None  # the backend decision method that fired
    decision: bool | None = None
    commit: str | None = None
    minor: bool = False  # a decision that changed nothing; text traces leave it out

    def __str__(self) -> str:
        return self.text + (f"  [{self.commit}]" if self.commit else "")


@frozen
class Decision:
    """A backend rule's answer, with the reason and the commit that made it so."""

    value: bool
    why: str
    commit: str | None = None

    def __bool__(self) -> bool:
        return self.value


# Something a step reads or writes, for the explorer's independence relation:
# ("mm", name, field), ("vma", mm, name), ("page", pfn), ("slot", n), ...
Loc = tuple[str | int, ...]
COUNTERS = frozenset({"faults", "cow_copies"})  # Machine.count's: increments, which commute


T = TypeVar("T")
_FIELDS: dict[type, tuple[attrgetter[Any], dict[str, int]]] = {}


def evolve(inst: T, **changes: Any) -> T:
    """attrs.evolve at half its cost, for the primitives every micro-step calls: the
    fields read at once (an attrgetter), then the class's own __init__."""
    cls = type(inst)
    known = _FIELDS.get(cls)
    if known is None:
        names = tuple(a.name for a in fields(cls))  # type: ignore[arg-type]  # every state class is an attrs one
        known = _FIELDS[cls] = (attrgetter(*names), {n: i for i, n in enumerate(names)})
    get, at = known
    values = list(get(inst))
    for name, v in changes.items():
        i = at.get(name)
        if i is None:
            raise TypeError(f"{cls.__name__} has no field {name}")
        values[i] = v
    return cls(*values)


def _name(x: Mm | Handle) -> str:
    return x.name


class Machine:
    def __init__(self, state: State, quiet: bool = False, task: str | None = None):
        self.state = state
        self.quiet = quiet  # a search keeps no events: a replay makes them again
        # the task running the step (its actor): whose CPU's lru_add batch a new page waits in,
        # and which batch a local lru_add_drain() empties (cowdsl.semantics.mm.swap)
        self.task = task
        self.lru_decided = False  # a decision here came out otherwise than had the batches been drained
        self.dirty: set[str] = set()  # which parts of the state changed; freeze keeps the others
        self.mms: dict[str, Mm] = {m.name: m for m in state.mms}
        self.pages: list[Page] = list(state.pages)
        self.handles: dict[str, Handle] = {h.name: h for h in state.handles}
        self.slots: list[Slot] = list(state.slots)
        self.pipes: dict[str, Pipe] = {p.name: p for p in state.pipes}
        self.files: dict[str, tuple[int, ...]] = dict(state.files)
        self.results: dict[str, Outcome] = dict(state.results)
        self.events: list[Event] = []
        # What this step read and wrote, for the explorer's independence relation.
        # An mm is read whole (("mm*", name)) but written field by field
        # (("mm", name, field), which also marks ("mm*", name)); counters are
        # increments, which commute with each other.
        self.reads: set[Loc] = set()
        self.writes: set[Loc] = set()
        self.marks: set[Loc] = set()

    def freeze(self) -> State:
        # Canonical order, so that interleavings that differ only in when a
        # name was made reach the same state.  Untouched parts are shared.
        old, dirty = self.state, self.dirty
        if not dirty:
            return old
        return State(
            mms=tuple(sorted(self.mms.values(), key=_name)) if "mms" in dirty else old.mms,
            pages=tuple(self.pages) if "pages" in dirty else old.pages,
            handles=tuple(sorted(self.handles.values(), key=_name)) if "handles" in dirty else old.handles,
            slots=tuple(self.slots) if "slots" in dirty else old.slots,
            pipes=tuple(self.pipes.values()) if "pipes" in dirty else old.pipes,
            files=tuple(sorted(self.files.items())) if "files" in dirty else old.files,
            file_kinds=old.file_kinds,
            results=tuple(sorted(self.results.items())) if "results" in dirty else old.results,
        )

    # --- trace ------------------------------------------------------------------
    def say(self, text: str) -> None:
        if not self.quiet:
            self.events.append(Event(text))

    def decided(self, rule: str, d: Decision, text: str, minor: bool = False) -> Decision:
        if not self.quiet:
            self.events.append(Event(f"{text}: {d.why}", rule, d.value, d.commit, minor))
        return d

    # --- mm and vma ---------------------------------------------------------------
    def mm(self, name: str) -> Mm:
        self.reads.add(("mm*", name))
        return self.mms[name]

    def mm_field(self, name: str, field: str) -> Any:
        """One field of an mm: a read of that field alone (``mm`` reads the whole mm,
        its VMAs too).  Not a counter: increments mark the mm, and only a whole-mm
        read conflicts with them."""
        assert field not in COUNTERS, f"{field} is a counter: read it with mm()"
        self.reads.add(("mm", name, field))
        return getattr(self.mms[name], field)

    def vmas(self, mm: str) -> tuple[Vma, ...]:
        """All of an mm's VMAs, their flags and page tables: a read of each."""
        self.reads.add(("mm", mm, "vmas"))
        for v in self.mms[mm].vmas:
            self.reads.add(("vma", mm, v.name))
        return self.mms[mm].vmas

    def add_mm(self, mm: Mm) -> None:
        self._whole_mm_written(mm)
        self.mms[mm.name] = mm

    def remove_mm(self, name: str) -> None:
        """An mm that never became a process's (fork gave up on it): gone from the set of mms."""
        self._whole_mm_written(self.mms[name])
        del self.mms[name]

    def _whole_mm_written(self, mm: Mm) -> None:
        """An mm made or dropped: a write of each of its fields and VMAs, and of the set of mms."""
        self.writes.update({("mm", mm.name, f) for f in ("vmas", "alive", "mmap_lock", "ptl", "wp_seq", "has_pinned")})
        self.writes.update(("vma", mm.name, v.name) for v in mm.vmas)
        self.writes.add(("mms",))  # the set of mms: what a walk over all of them reads
        self.marks.add(("mm*", mm.name))
        self.dirty.add("mms")

    def update_mm(self, name: str, **changes: Any) -> None:
        self.writes.update(("mm", name, f) for f in changes)
        if "vmas" in changes:  # a VMA gone, added or changed is a write of that VMA
            old = {v.name: v for v in self.mms[name].vmas}
            new = {v.name: v for v in changes["vmas"]}
            self.writes.update(("vma", name, n) for n in old.keys() | new.keys() if old.get(n) is not new.get(n))
        self.marks.add(("mm*", name))
        self.dirty.add("mms")
        self.mms[name] = evolve(self.mms[name], **changes)

    def vma(self, mm: str, name: str) -> Vma | None:
        self.reads.add(("vma", mm, name))
        return self.mms[mm].vma(name)

    def mapped_vma(self, mm: str, name: str) -> Vma:
        """The VMA ``name`` of ``mm``, which the caller knows is mapped (a read of it, as ``vma``)."""
        self.reads.add(("vma", mm, name))
        v = self.mms[mm].vma(name)
        assert v is not None, f"{mm} has no VMA {name}"
        return v

    def vma_at(self, mm: str, name: str, idx: int) -> Vma | None:
        """The VMA covering page ``idx`` of mapping ``name`` (``Vma.at``): None where
        nothing is mapped, the mapping gone or that page munmap()ed."""
        v = self.vma(mm, name)
        return None if v is None else v.at(idx)

    def set_vma(self, mm: str, vma: Vma) -> None:
        self.writes.add(("vma", mm, vma.name))
        old = self.mms[mm].vmas
        vmas = tuple(vma if v.name == vma.name else v for v in old)
        if vma.name not in {v.name for v in old}:
            vmas += (vma,)
            self.writes.add(("mm", mm, "vmas"))
        self.dirty.add("mms")
        self.mms[mm] = evolve(self.mms[mm], vmas=vmas)

    def remove_vma(self, mm: str, name: str) -> None:
        self.writes.add(("vma", mm, name))
        self.update_mm(mm, vmas=tuple(v for v in self.mms[mm].vmas if v.name != name))

    def pte(self, mm: str, vma: str, idx: int) -> Pte | None:
        return self.mapped_vma(mm, vma).ptes[idx]

    def pte_at(self, mm: str, vma: str, idx: int) -> Pte | None:
        """The entry at page ``idx`` of mapping ``vma``, or None: no entry, no such
        mapping, or past its end (mremap shrank it)."""
        v = self.vma(mm, vma)
        return v.ptes[idx] if v is not None and idx < len(v.ptes) else None

    def set_pte(self, mm: str, vma: str, idx: int, pte: Pte | None) -> None:
        v = self.mapped_vma(mm, vma)
        ptes = v.ptes[:idx] + (pte,) + v.ptes[idx + 1 :]
        self.set_vma(mm, evolve(v, ptes=ptes))

    def all_ptes(self) -> Iterator[tuple[str, str, int, Pte]]:
        """Every (mm, vma, index, entry) of every mm: a read of all page tables
        and of the set of mms."""
        self.reads.add(("mms",))
        for m in self.mms.values():
            self.reads.add(("mm", m.name, "vmas"))
            for v in m.vmas:
                self.reads.add(("vma", m.name, v.name))
                for i, p in enumerate(v.ptes):
                    if p is not None:
                        yield m.name, v.name, i, p

    def mappers(self, pfn: int) -> list[tuple[str, str, int]]:
        """The rmap walk: every (mm, vma, index) whose present PTE maps pfn."""
        return [(mm, v, i) for mm, v, i, p in self.all_ptes() if p.present and p.page == pfn]

    def count(self, mm: str, what: str) -> None:
        """A counter increment: commutes with other increments."""
        assert what in COUNTERS
        self.marks.update((("mm*", mm), ("counter", mm)))  # the second says which field, for explore.footprint
        self.dirty.add("mms")
        self.mms[mm] = evolve(self.mms[mm], **{what: getattr(self.mms[mm], what) + 1})

    # --- pages ----------------------------------------------------------------------
    def page(self, pfn: int) -> Page:
        self.reads.add(("page", pfn))
        return self.pages[pfn]

    def update_page(self, pfn: int, **changes: Any) -> None:
        self.writes.add(("page", pfn))
        old = self.pages[pfn]
        if changes.get("swapcache", old.swapcache) != old.swapcache or changes.get("freed", old.freed) != old.freed:
            self.writes.add(("swapcache",))  # what a swap-cache lookup scans changed (not a put that frees nothing)
        self.dirty.add("pages")
        self.pages[pfn] = evolve(old, **changes)

    def load(self, pfn: int, offset: int) -> int:
        """A load of the 8-byte word at ``offset`` of page ``pfn``."""
        return word(self.page(pfn), offset)

    def store(self, pfn: int, offset: int, value: int) -> None:
        """A store of ``value`` to the 8-byte word at ``offset`` of page ``pfn``."""
        self.update_page(pfn, **stored(self.page(pfn), offset, value))

    def alloc_page(self, **fields: Any) -> int:
        self.writes.add(("alloc",))
        if fields.get("swapcache", -1) >= 0:
            self.writes.add(("swapcache",))
        self.dirty.add("pages")
        self.pages.append(Page(**fields))
        return len(self.pages) - 1

    def huge_zero_page(self) -> int:
        """mm_get_huge_zero_page: the huge zero page, allocated at its first use (and kept)."""
        self.reads.add(("huge-zero",))
        for pfn, p in enumerate(self.pages):
            if p.zero and p.kind == THP:
                return pfn
        self.writes.add(("huge-zero",))
        return self.alloc_page(zero=True, anon=False, kind=THP, refcount=1)

    def get_page(self, pfn: int, n: int = 1) -> None:
        p = self.page(pfn)
        if not p.zero:
            self.update_page(pfn, refcount=p.refcount + n)

    def put_page(self, pfn: int, n: int = 1) -> None:
        p = self.page(pfn)
        if p.zero:
            return
        rc = p.refcount - n
        self.update_page(pfn, refcount=rc, freed=rc <= 0)
        if rc <= 0:
            self.say(f"page #{pfn} freed")

    def page_add_rmap(self, pfn: int, take_ref: bool = True) -> None:
        """Map the page once more; the mapping holds a reference (taken here or already held)."""
        p = self.page(pfn)
        if not p.zero:
            self.update_page(pfn, mapcount=p.mapcount + 1, refcount=p.refcount + take_ref)

    def page_remove_rmap(self, pfn: int) -> None:
        """Drop a mapping and the reference it held (page_remove_rmap + put_page).
        The last mapping of a PTE-mapped THP takes its siblings' references along
        (a device-exclusive entry of the subpage still counts as one)."""
        p = self.page(pfn)
        if p.zero:
            return
        self.update_page(pfn, mapcount=p.mapcount - 1)
        last_thp = p.kind == PTE_THP and p.mapcount == 1 and not self.devexcl_entries(pfn)
        self.put_page(pfn, 1 + (p.siblings if last_thp else 0))

    def devexcl_entries(self, pfn: int) -> int:
        """The device-exclusive entries naming pfn: not mappings (no mapcount), but
        each keeps the page, and a PTE-mapped THP's siblings, referenced."""
        return sum(1 for _, _, _, p in self.all_ptes() if p.devexcl and p.page == pfn)

    pin_refs = staticmethod(concepts.pin_refs)

    def grab(self, pfn: int, pin: bool, n: int = 1) -> None:
        """try_grab_page: FOLL_PIN adds GUP_PIN_COUNTING_BIAS (order-0) or one
        reference (large folios) and counts the pin; FOLL_GET adds one reference.
        ``n`` grabs at once (gup count=N)."""
        p = self.page(pfn)
        if p.zero:
            return
        if pin:
            self.update_page(pfn, pincount=p.pincount + n, refcount=p.refcount + n * self.pin_refs(p))
        else:
            self.update_page(pfn, refcount=p.refcount + n)

    def ungrab(self, pfn: int, pin: bool, n: int = 1) -> None:
        p = self.page(pfn)
        if p.zero:
            return
        if pin:
            self.update_page(pfn, pincount=p.pincount - n)
            self.put_page(pfn, n * self.pin_refs(p))
        else:
            self.put_page(pfn, n)

    # --- swap ------------------------------------------------------------------------
    def slot(self, slot: int) -> Slot:
        self.reads.add(("slot", slot))
        return self.slots[slot]

    def alloc_slot(self, page: Page) -> int:
        """A swap slot for ``page``, holding a copy of every word of it."""
        self.writes.add(("alloc-slot",))
        self.dirty.add("slots")
        self.slots.append(Slot(**content(page)))  # type: ignore[arg-type]
        return len(self.slots) - 1

    def update_slot(self, slot: int, **changes: Any) -> None:
        self.writes.add(("slot", slot))
        self.dirty.add("slots")
        self.slots[slot] = evolve(self.slots[slot], **changes)

    def swapcache_page(self, slot: int) -> int | None:
        self.reads.add(("swapcache",))
        for pfn, p in enumerate(self.pages):
            if p.swapcache == slot and not p.freed:
                return pfn
        return None

    def delete_from_swap_cache(self, pfn: int) -> None:
        slot = self.page(pfn).swapcache
        self.update_page(pfn, swapcache=-1)
        self.put_page(pfn)
        self.maybe_free_slot(slot)

    def maybe_free_slot(self, slot: int) -> None:
        s = self.slot(slot)
        if s.count <= 0 and self.swapcache_page(slot) is None and not s.free:
            self.update_slot(slot, free=True)

    # --- files and pipes ----------------------------------------------------------------
    def file_page(self, file: str, index: int) -> int:
        self.reads.add(("file", file))
        return self.files[file][index]

    def add_file(self, file: str, pages: tuple[int, ...]) -> None:
        self.writes.add(("file", file))
        self.dirty.add("files")
        self.files[file] = pages

    def pipe(self, name: str) -> Pipe:
        self.reads.add(("pipe", name))
        return self.pipes[name]

    def set_pipe(self, pipe: Pipe) -> None:
        self.writes.add(("pipe", pipe.name))
        self.dirty.add("pipes")
        self.pipes[pipe.name] = pipe

    # --- handles and results ---------------------------------------------------------
    def handle(self, name: str) -> Handle | None:
        self.reads.add(("handle", name))
        return self.handles.get(name)

    def all_handles(self) -> list[Handle]:
        self.reads.add(("handles",))
        return list(self.handles.values())

    def add_handle(self, h: Handle) -> None:
        self.writes.update({("handle", h.name), ("handles",)})
        self.dirty.add("handles")
        self.handles[h.name] = h

    def update_handle(self, name: str, **changes: Any) -> None:
        self.writes.update({("handle", name), ("handles",)})
        self.dirty.add("handles")
        self.handles[name] = evolve(self.handles[name], **changes)

    def release_handle(self, name: str) -> None:
        h = self.handle(name)
        assert h is not None, f"no handle {name}"  # callers release a handle they hold
        if h.live:
            if not h.device:
                self.ungrab(h.page, h.pin, h.refs)
            self.update_handle(name, live=False)

    def revoke_device_exclusive(self, pfn: int, why: str) -> None:
        """The MMU notifier tells the device it lost exclusive access to the page."""
        for h in self.all_handles():
            if h.device and h.live and h.page == pfn:
                self.update_handle(h.name, live=False)
                self.say(f"{why}: device loses exclusive access to #{pfn} ({h.name})")

    def set_result(self, name: str, out: Outcome) -> None:
        self.writes.add(("result", name))
        self.dirty.add("results")
        self.results[name] = out
