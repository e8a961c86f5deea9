"""The model's invariants, checked after every micro-step in debug mode.

Debug mode is on when the environment has ``COWDSL_DEBUG_INVARIANTS=1`` (read
when a backend is made) or when ``backend.debug_invariants`` is set to True.
Then ``MicroSteps.run_op`` (sequential runs) and ``Model.step`` (explored
runs) call :func:`check` after every micro-step, and the first broken
invariant raises :class:`InvariantViolation`, which names the invariant, the
step and micro-step, and shows the state.

Two groups of invariants:

* bookkeeping, every era: refcount >= what is held (mappings, pins, swap
  cache, page cache, pipe buffers, FOLL_GET references, device-exclusive
  entries, the siblings of a PTE-mapped THP, an lru_add batch, and references
  an op holds between its micro-steps); only an order-0 anonymous page waits
  in an lru_add batch; mapcount == the present PTEs mapping the page
  (device-exclusive entries are not in the rmap, b756a3b5e7ea); pincount ==
  the pins held; no entry, pin, pipe buffer or page-cache slot names a freed
  page; swap slot counts == the swap entries naming the slot.
* PageAnonExclusive (reference §6.1), only for backends with
  ``TRACKS_ANON_EXCLUSIVE`` (5.19+): I2 a writable PTE to an anon page implies
  the page is exclusive; I3 a pinned anon page is exclusive; I4 an exclusive
  page is mapped at most once; I1 (``fresh_page_violations``, needs the state
  before) a freshly allocated and mapped anon page is exclusive.  Earlier eras
  break I2/I3 by design (a pinned page shared read-only by fork before 5.9 is
  the kernel's own historical bug, not the model's), so they are not checked
  there.

A GUP-fast reference taken before its re-checks (labels ``recheck`` and
``seq``) is speculative, as in the kernel, which re-validates it after the
grab and drops it when the page changed: it counts for the refcount and the
pincount, but I3 applies only to pins GUP has returned.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cowdsl.ops import FOLL_PIN, HOLDS_GRAB, HOLDS_PIN
from cowdsl.semantics import concepts
from cowdsl.semantics.state import PTE_THP, Page, State

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.contract import Kernel
    from cowdsl.semantics.micro import Frame, MicroSteps
    from cowdsl.semantics.state import Pte

ENV = "COWDSL_DEBUG_INVARIANTS"

# invariant names, as InvariantViolation.invariant says them
REFCOUNT = "refcount"
MAPCOUNT = "mapcount"
PINCOUNT = "pincount"
FREED_PTE = "no-pte-to-freed-page"
FREED_PIN = "pins-on-live-pages"
FREED_REF = "no-reference-to-freed-page"
SWAP = "swap-slot-count"
LRU = "lru-batch"
I1, I2, I3, I4 = "I1", "I2", "I3", "I4"


def env_enabled() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


class InvariantViolation(AssertionError):
    """A model state that breaks an invariant: a bug in the model (or a test of the checker)."""

    def __init__(self, invariant: str, message: str, *, backend: str = "", step: Step | None = None,
                 label: str | None = None, state: State | None = None, others: tuple[str, ...] = ()) -> None:
        self.invariant = invariant
        self.message = message
        self.backend = backend
        self.step = step
        self.label = label
        self.state = state
        self.others = others
        super().__init__(self.render())

    def where(self) -> str:
        if self.step is None:
            return "in the initial state"
        text = self.step.text or self.step.op
        line = self.step.span.line
        at = f" (line {line})" if line else ""
        micro = f", micro-step `{self.label}`" if self.label else ""
        return f"after step {self.step.number} `{text}`{at}{micro}"

    def render(self) -> str:
        """The violation in words; the state itself is drawn by the reports
        (cowdsl.report.text.invariant_violation), since the model draws nothing."""
        head = f"invariant {self.invariant} violated {self.where()}" + (f" on {self.backend}" if self.backend else "")
        return "\n".join([head, f"  {self.message}"] + [f"  also: {o}" for o in self.others])


# --- references held between micro-steps ------------------------------------------------------


def in_flight(backend: MicroSteps, step: Step | None, label: str | None, frame: Frame) -> list[tuple[int, str]]:
    """What an op holds between its micro-steps, before ``label`` runs, as its
    declaration says (``MicroStep.holds``, cowdsl.ops): (pfn, kind) with kind
    ``pin`` (a FOLL_PIN GUP returned), ``speculative-pin`` (GUP-fast's grab of an
    op that pins, not yet re-checked) or ``get`` (one reference: FOLL_GET, or a
    page only the op's frame knows, fork's preallocated copy).  Ops of
    third-party backends with undeclared programs hold nothing here."""
    if label is None or step is None:
        return []
    decl = backend.DECLARED.get(step.op)
    if decl is None:
        return []
    ms = decl.program_for(step.flags).by_label.get(label)
    held = ms.holds if ms is not None else None
    if held is None:
        return []
    kind = held.kind
    if kind == HOLDS_PIN and not backend.takes_pin(step):
        kind = "get"  # process_vm_readv/writev before 5.6 (803e4572d7c5)
    if kind == HOLDS_GRAB:
        kind = "speculative-pin" if decl.grabs == FOLL_PIN else "get"
    try:
        return [(frame[held.frame], kind)]
    except (IndexError, TypeError):
        return []


# --- who holds what -------------------------------------------------------------------------


pin_refs = concepts.pin_refs


def sibling_refs(pg: Page, devexcl: int = 0) -> int:
    """A PTE-mapped THP is seen through one subpage; the folio's refcount also
    holds its siblings' references, which the model drops with the subpage's last
    mapping (a device-exclusive entry keeps them)."""
    return pg.siblings if pg.kind == PTE_THP and (pg.mapcount > 0 or devexcl > 0) else 0


class Holders:
    """Who holds what, per page (or swap slot), in one state."""

    def __init__(self, state: State, flight: Sequence[tuple[int, str]] = ()) -> None:
        # pfn -> its present PTEs, and its device-private entries (mappings of a device page: mapcount)
        self.mappers: dict[int, list[tuple[str, str, int, Pte]]] = defaultdict(list)
        self.devexcl: Counter[int] = Counter()  # device-exclusive entries: not mapped (no mapcount), hold a reference
        self.devexcl_at: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
        self.swap_ptes: Counter[int] = Counter()
        for m in state.mms:
            for vma in m.vmas:
                for i, p in enumerate(vma.ptes):
                    if p is None:
                        continue
                    if p.present or concepts.device_private_entry(p):
                        self.mappers[p.page].append((m.name, vma.name, i, p))
                    elif p.devexcl:
                        self.devexcl[p.page] += 1
                        self.devexcl_at[p.page].append((m.name, vma.name, i))
                    elif p.swap:
                        self.swap_ptes[p.slot] += 1
        self.pipe_refs = Counter(pfn for pipe in state.pipes for pfn in pipe.bufs)
        self.get_refs: Counter[int] = Counter()
        self.pins: Counter[int] = Counter()  # pins GUP returned: live handles, and process_vm_* between pin and unpin
        self.speculative: Counter[int] = Counter()  # GUP-fast pins not yet re-checked
        for h in state.handles:
            if not h.live or h.device:
                continue
            (self.pins if h.pin else self.get_refs)[h.page] += h.refs
        for pfn, kind in flight:
            {"pin": self.pins, "speculative-pin": self.speculative, "get": self.get_refs}[kind][pfn] += 1
        self.file_pages = Counter(pfn for _f, pages in state.files for pfn in pages)

    def held(self, n: int, pg: Page, mapped: int | None = None) -> int:
        """The references the page must hold at least."""
        return (
            (pg.mapcount if mapped is None else mapped)
            + pin_refs(pg) * (self.pins[n] + self.speculative[n])
            + sibling_refs(pg, self.devexcl[n])
            + (pg.swapcache >= 0)
            + self.pipe_refs[n]
            + self.get_refs[n]
            + self.devexcl[n]
            + (pg.file is not None)
            + (pg.lru_batch is not None)
        )


# --- the checks -------------------------------------------------------------------------


def violations(state: State, *, anon_exclusive: bool = True, flight: Sequence[tuple[int, str]] = (),
               devexcl_mapped: bool = False) -> list[tuple[str, str]]:
    """Every broken invariant of ``state``: (invariant, message).  ``anon_exclusive``
    adds I2-I4 (backends that track PG_anon_exclusive); ``devexcl_mapped``: a
    device-exclusive entry counts in the mapcount (6.15+; before, not); ``flight`` are the
    references ops hold between micro-steps (``in_flight``).  The zero page is
    not refcounted or mapcounted."""
    out: list[tuple[str, str]] = []
    h = Holders(state, flight)
    npages = len(state.pages)
    for n, pg in enumerate(state.pages):
        if pg.zero:
            continue
        maps = h.mappers.get(n, [])
        if pg.freed:
            if maps:
                who, vname, i, _ = maps[0]
                out.append((FREED_PTE, f"{who}.{vname}[{i}] maps page #{n}, which is freed"))
            if h.devexcl[n]:
                who, vname, i = h.devexcl_at[n][0]
                out.append((FREED_PTE, f"the device-exclusive entry {who}.{vname}[{i}] names page #{n}, which is freed"))
            if h.pins[n] or h.speculative[n] or pg.pincount:
                out.append((FREED_PIN, f"page #{n} is freed but pinned (pincount {pg.pincount}, {h.pins[n]} pins held)"))
            if h.get_refs[n] or h.pipe_refs[n]:
                out.append((FREED_REF, f"page #{n} is freed but {h.get_refs[n]} references and "
                                       f"{h.pipe_refs[n]} pipe buffers hold it"))
            if h.file_pages[n]:
                out.append((FREED_REF, f"page #{n} is freed but still in the page cache of {pg.file}"))
            if pg.lru_batch is not None:
                out.append((FREED_REF, f"page #{n} is freed but the lru_add batch of {pg.lru_batch}'s CPU holds it"))
            continue
        if pg.refcount <= 0:
            out.append((REFCOUNT, f"page #{n} has refcount {pg.refcount} but is not freed"))
        if pg.lru_batch is not None and (not pg.anon or pg.compound or pg.file is not None):
            out.append((LRU, f"page #{n} waits in the lru_add batch of {pg.lru_batch}'s CPU but is not an "
                             "order-0 anonymous page (a large folio goes onto the LRU at once)"))
        if pg.mapcount != len(maps) + (h.devexcl[n] if devexcl_mapped else 0):
            out.append((MAPCOUNT, f"page #{n} has mapcount {pg.mapcount} but {len(maps)} present PTEs map it"
                                  + (f" (and {h.devexcl[n]} device-exclusive entries, which "
                                     f"{'count' if devexcl_mapped else 'do not count'})" if h.devexcl[n] else "")))
        pins = h.pins[n] + h.speculative[n]
        if pg.pincount != pins:
            out.append((PINCOUNT, f"page #{n} has pincount {pg.pincount} but {pins} pins are held"))
        need = h.held(n, pg, len(maps))
        if pg.refcount < need:
            out.append((REFCOUNT, f"page #{n} has refcount {pg.refcount} < {need} references held "
                                  f"({_breakdown(h, n, pg, len(maps))})"))
        if anon_exclusive and pg.anon:  # KSM pages are anon and never exclusive: mapped R/O, never pinned
            for who, vname, i, p in maps:
                if p.write and not pg.anon_exclusive:
                    out.append((I2, f"{who}.{vname}[{i}] maps anon page #{n} writable but it is not exclusive"))
                    break
            if h.pins[n] and not pg.anon_exclusive:
                out.append((I3, f"anon page #{n} is pinned ({h.pins[n]} pins) but not exclusive"))
            if pg.anon_exclusive and len(maps) > 1:
                out.append((I4, f"exclusive page #{n} is mapped {len(maps)} times"))
    for s, slot in enumerate(state.slots):
        if slot.count != h.swap_ptes[s]:
            out.append((SWAP, f"swap slot {s} has count {slot.count} but {h.swap_ptes[s]} swap entries name it"))
        if slot.free and h.swap_ptes[s]:
            out.append((SWAP, f"swap slot {s} is free but {h.swap_ptes[s]} swap entries name it"))
    for n, pg in enumerate(state.pages):
        if pg.swapcache >= 0 and not pg.freed:
            if pg.swapcache >= len(state.slots) or state.slots[pg.swapcache].free:
                out.append((SWAP, f"page #{n} is in the swap cache for slot {pg.swapcache}, which is free"))
    for s in h.swap_ptes:
        if not 0 <= s < len(state.slots):
            out.append((SWAP, f"a swap entry names slot {s}, which does not exist"))
    for pfn in list(h.mappers) + list(h.devexcl):
        if not 0 <= pfn < npages:
            out.append((FREED_PTE, f"a page-table entry names page #{pfn}, which does not exist"))
    return out


def _breakdown(h: Holders, n: int, pg: Page, mapped: int) -> str:
    parts = [f"{mapped} mappings"]
    for what, k in (("pins", h.pins[n]), ("speculative pins", h.speculative[n]), ("FOLL_GET references", h.get_refs[n]),
                    ("pipe buffers", h.pipe_refs[n]), ("device-exclusive entries", h.devexcl[n])):
        if k:
            parts.append(f"{k} {what}")
    if pg.swapcache >= 0:
        parts.append("the swap cache")
    if pg.lru_batch is not None:
        parts.append(f"the lru_add batch of {pg.lru_batch}'s CPU")
    if pg.file is not None:
        parts.append("the page cache")
    if sibling_refs(pg, h.devexcl[n]):
        parts.append(f"{pg.siblings} THP siblings")
    return ", ".join(parts)


def exact_refcount_violations(state: State, flight: Sequence[tuple[int, str]] = ()) -> list[str]:
    """The model's one transient reference is an lru_add batch's (``Page.lru_batch``,
    counted by ``Holders.held``): with it, its refcount equals the references held
    exactly, and a surplus is a leak that would turn a reuse into a copy.  (Not part
    of debug mode: the kernel's own invariant is >=.)"""
    h = Holders(state, flight)
    out = []
    for n, pg in enumerate(state.pages):
        if pg.zero or pg.freed:
            continue
        held = h.held(n, pg, len(h.mappers.get(n, [])))
        if pg.refcount != held:
            out.append(f"page #{n}: refcount {pg.refcount}, references held {held}")
    return out


def fresh_page_violations(before: State, after: State) -> list[tuple[str, str]]:
    """I1: an anon page allocated since ``before`` (fault, COW or unshare copy,
    fork's copy) and mapped is exclusive.  Pages read into the swap cache are not
    "fresh" in the model (it always swaps in through the swap cache)."""
    out = []
    mapped_before = {p.page for m in before.mms for v in m.vmas for p in v.ptes if p is not None and p.present}
    # migrate_to_ram's target keeps the device page's sharing (readable entries: not exclusive)
    devpriv_before = {(m.name, v.name, i) for m in before.mms for v in m.vmas for i, p in enumerate(v.ptes)
                      if concepts.device_private_entry(p)}
    from_device = {p.page for m in after.mms for v in m.vmas for i, p in enumerate(v.ptes)
                   if p is not None and p.present and (m.name, v.name, i) in devpriv_before}
    for n in range(len(before.pages), len(after.pages)):
        pg = after.pages[n]
        if pg.anon and not pg.zero and not pg.freed and pg.mapcount > 0 and pg.swapcache < 0 and not pg.ksm:
            if n not in mapped_before and n not in from_device and not pg.anon_exclusive:
                out.append((I1, f"fresh anon page #{n} is not exclusive"))
    return out


# --- the hook -------------------------------------------------------------------------------


def tracks_anon_exclusive(backend: Kernel) -> bool:
    return backend.TRACKS_ANON_EXCLUSIVE


def exempt(backend: Kernel) -> dict[str, str]:
    """The invariants a backend does not keep by design, and why: the kernel's own
    historical behaviour, or a proposal a variant models, is not a model bug."""
    out: dict[str, str] = {}
    if not tracks_anon_exclusive(backend):
        why = "no PG_anon_exclusive before 5.19 (a pinned page shared read-only by fork is the era's own bug)"
        out.update({I1: why, I2: why, I3: why, I4: why})
    if backend.options.get("pin_scope") == "longterm":
        out[I3] = ("pin_scope=longterm (seed 003's proposal, never merged): a short-term pin leaves "
                   "MMF_HAS_PINNED clear, so fork shares the pinned page")
    return out


def check(backend: Kernel, state: State, *, step: Step | None = None, label: str | None = None,
          flight: Sequence[tuple[int, str]] = (), before: State | None = None) -> None:
    """Raise InvariantViolation for the first broken invariant of ``state``."""
    ae = tracks_anon_exclusive(backend)
    bad = violations(state, anon_exclusive=ae, flight=list(flight),
                     devexcl_mapped=backend.options.get("devexcl") == "rework")
    if ae and before is not None:
        bad += fresh_page_violations(before, state)
    skip = exempt(backend)
    bad = [(n, msg) for n, msg in bad if n not in skip]
    if bad:
        (name, message), rest = bad[0], tuple(f"{n}: {m}" for n, m in bad[1:6])
        raise InvariantViolation(name, message, backend=backend.spec, step=step,
                                 label=label, state=state, others=rest)
