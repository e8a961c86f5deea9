"""What a run observed: a value, a page and its facts, for each term of an assertion.

``StateObservation`` reads a model state; the native backend brings its own
observation with the same methods (``view``, ``counter``, ``process``,
``failed``, ``page_fact``).  A value that does not exist (an unmapped address,
a failed pin, a dead process) is None, shown with the reason.  A fact an
observation cannot see raises ``Unsupported``: the assertion is then skipped,
with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from attrs import frozen

from cowdsl import scenario as S
from cowdsl.semantics import concepts
from cowdsl.semantics.state import THP, Page, Pte, State, word

if TYPE_CHECKING:
    from cowdsl.semantics.backend import Backend

Fact = bool | int | None  # a fact's value; None where it does not exist (the mapcount of no page)


@frozen
class View:
    """What one address shows: a value, a page frame, and why either is missing."""

    value: int | None
    pfn: int | None
    note: str = ""
    pte: object = None  # the model's Pte, or the native backend's pagemap entry


# Why a counter has no value in a version (a comparison with it is false, as with any missing value)
NOT_IN_VERSION = {
    "ksm_merging_pages": "not in this version: /proc/PID/ksm_merging_pages (mm->ksm_merging_pages) is 5.19+ "
                         "(7609385337a4)",
}


class Unsupported(Exception):
    """This observation cannot see that fact (e.g. refcount on the real kernel)."""


class Observation(Protocol):
    """What the judge asks of a run: ``StateObservation`` of a model state, or the
    native backend's observation of the real kernel."""

    def view(self, ref: object) -> View: ...  # a term of an assertion: S.Ref (TypeError otherwise)
    def counter(self, name: str, proc: str | None) -> int | None: ...  # None: NOT_IN_VERSION
    def process(self, name: str, proc: str) -> bool: ...
    def failed(self, name: str) -> bool: ...
    def page_fact(self, name: str, ref: object) -> Fact: ...


def view_addr(state: State, addr: S.Addr) -> View:
    """What ``addr`` shows: the word at its offset, and its page (the same page whatever the offset)."""
    mm = state.mm(addr.proc)
    if mm is None or not mm.alive:
        return View(None, None, f"{addr.proc} {'was killed' if mm is not None and mm.segv else 'has exited'}")
    vma = mm.vma(addr.mapping)
    # past the mapping's end: it may be mremap()ed to that size later, but is not yet
    if vma is None or addr.index >= len(vma.ptes) or vma.at(addr.index) is None:
        return View(None, None, "not mapped")
    off = addr.offset
    pte = vma.ptes[addr.index]
    if pte is None:
        if vma.anon:
            return View(0, None, "not faulted in (reads 0)")
        assert vma.file is not None  # not anonymous: a file mapping
        cache = state.file_page(vma.file, vma.pgoff + addr.index)
        return View(word(state.pages[cache], off), None, "not faulted in", None)
    if pte.present:
        return View(word(state.pages[pte.page], off), pte.page, "", pte)
    if pte.devexcl:
        return View(word(state.pages[pte.page], off), pte.page, "device-exclusive entry", pte)
    if pte.migration:  # a load would wait in migration_entry_wait, then see the page's data
        return View(word(state.pages[pte.page], off), pte.page, "migration entry", pte)
    if pte.devpriv:  # a load would migrate the page back (migrate_to_ram), then see its data
        return View(word(state.pages[pte.page], off), pte.page, "device-private entry", pte)
    cached = next((i for i, p in enumerate(state.pages) if p.swapcache == pte.slot and not p.freed), None)
    if cached is not None:
        return View(word(state.pages[cached], off), cached, "swapped out, in swap cache", pte)
    return View(word(state.slots[pte.slot], off), None, f"swapped out to slot {pte.slot}", pte)


def view(state: State, ref: object) -> View:
    if isinstance(ref, S.PageAt):
        return view_addr(state, ref.addr)
    if isinstance(ref, S.HandlePage):
        h = state.handle(ref.name)
        if h is None:
            return View(None, None, "its GUP failed")
        if not h.live:
            return View(None, None, "released")
        return View(word(state.pages[h.page], h.offset), h.page)  # the word its DMA moves
    if isinstance(ref, S.FilePage):
        pfn = state.file_page(ref.file, ref.index)
        return View(word(state.pages[pfn], ref.offset), pfn)
    if isinstance(ref, S.Bound):
        out = state.result(ref.name)
        if out is None or not out.ok:
            return View(None, None, "its step failed")
        return View(out.value, None)
    raise TypeError(ref)


def term_text(ref: object) -> str:
    if isinstance(ref, S.PageAt):
        return str(ref.addr)
    if isinstance(ref, S.FilePage):
        return f"{ref.file}[{ref.index}]" + (f"+{ref.offset}" if ref.offset else "")
    if isinstance(ref, (S.HandlePage, S.Bound, S.ProcessRef, S.StepRef)):
        return ref.name
    if isinstance(ref, S.FactCall):
        return f"{ref.name}({', '.join(term_text(a) for a in ref.args)})"
    if isinstance(ref, S.Const):
        return str(ref.value).lower() if isinstance(ref.value, bool) else str(ref.value)
    return "?"


class StateObservation:
    """Observations of a model state.  ``backend`` answers the concepts whose
    definition is a backend's option (page_maybe_dma_pinned with pin_bias)."""

    def __init__(self, state: State, backend: Backend | None = None) -> None:
        self.state = state
        self.backend = backend

    def view(self, ref: object) -> View:
        return view(self.state, ref)

    def counter(self, name: str, proc: str | None) -> int | None:
        if name == "ksm_merging_pages" and self.backend is not None and self.backend.options["ksm_merging_pages"] == "off":
            return None  # NOT_IN_VERSION
        mms = [self.state.mm(proc)] if proc else list(self.state.mms)
        return sum(int(getattr(m, name)) for m in mms if m is not None)

    def process(self, name: str, proc: str) -> bool:
        m = self.state.mm(proc)
        return bool(m and getattr(m, name))

    def failed(self, name: str) -> bool:
        r = self.state.result(name)
        return r is None or not r.ok

    def page_fact(self, name: str, ref: object) -> Fact:
        v = self.view(ref)
        pte = v.pte
        assert pte is None or isinstance(pte, Pte)  # a model state's entry
        if name == "swapped":
            return pte is not None and pte.swap
        if name == "device_exclusive":
            return pte is not None and pte.devexcl
        if name == "present":
            return pte is not None and pte.present
        if name == "writable":
            return concepts.pte_writable(pte)
        if v.pfn is None:
            return None if name in ("refcount", "mapcount", "pincount") else False
        page = self.state.pages[v.pfn]
        if name == "maybe_pinned":
            if self.backend is not None:
                return self.backend.maybe_dma_pinned(page)
            return concepts.page_maybe_dma_pinned(page)
        facts: dict[str, Callable[[Page], Fact]] = {
            "exclusive": concepts.exclusive,
            "pinned": concepts.pinned,
            "refcount": lambda p: p.refcount,
            "mapcount": concepts.mapcount,
            "pincount": lambda p: p.pincount,
            "swapcache": concepts.in_swapcache,
            "zero_page": lambda p: p.zero,
            "huge_zero_page": lambda p: p.zero and p.kind == THP,
            "ksm": lambda p: p.ksm,
        }
        return facts[name](page)


