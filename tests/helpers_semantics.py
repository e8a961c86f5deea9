"""Shared helpers for the semantics unit tests (test_ops.py, test_rules.py).

Scenarios are written inline as .cow text, run on the anon-exclusive backend,
and inspected at the level of the model's State: pages, PTEs, counters, and
the Events each step recorded (which rule fired, its decision and its commit).

The invariant checker encodes the 5.19+ invariants of the reference
(kernel-cow-semantics.md §6.1, I1-I4) plus the model's own bookkeeping
(mapcount, pincount, refcount, swap counts), and is run after every step.
"""

from __future__ import annotations

import textwrap
from collections import Counter, defaultdict

from cowdsl.load import load_text
from cowdsl.run import run
from cowdsl.semantics import registry
from cowdsl.semantics.state import GUP_PIN_COUNTING_BIAS, PTE_THP, THP_SIBLINGS, Page, Pte, State

BACKEND = "anon-exclusive"


# --- running -----------------------------------------------------------------------


def scenario(src: str, name: str = "t.cow"):
    """Parse and check .cow text (dedented; `assert true` added when it has no assert)."""
    src = textwrap.dedent(src).strip("\n") + "\n"
    if not any(line.lstrip().startswith("assert") for line in src.splitlines()):
        src += "assert true\n"
    return load_text(src, name)


def run_src(src: str, name: str = "t.cow", backend: str = BACKEND):
    """Run .cow text on the backend (or a variant, ``anon-exclusive:OPTION=CHOICE``);
    returns cowdsl.run.Result."""
    return run(scenario(src, name), backend)


def states(src: str, backend: str = BACKEND) -> list[tuple[object, State]]:
    """(step, state after the step) for each step, through the backend's Model interface."""
    backend = registry.get(backend)
    return [(step, st) for step, st, _out, _events in backend.run(scenario(src))]


def state_after(src: str, text: str, backend: str = BACKEND) -> State:
    """The state right after the (first) step whose source text is ``text``."""
    for step, st in states(src, backend):
        if step.text == text:
            return st
    raise AssertionError(f"no step {text!r}")


def assert_checks_hold(r) -> None:
    bad = [(c.assertion.text, c.values) for c in r.checks if not c.holds]
    assert not bad, f"scenario assertions failed: {bad}"


# --- looking at a result ---------------------------------------------------------------


def record(r, text: str, nth: int = 0):
    """The StepRecord of the step whose source text is ``text`` (its nth occurrence)."""
    hits = [rec for rec in r.steps if rec.step.text == text]
    assert len(hits) > nth, f"no step {text!r} (#{nth}); steps: {[rec.step.text for rec in r.steps]}"
    return hits[nth]


def outcome(r, text: str, nth: int = 0):
    return record(r, text, nth).outcome


def rule_events(r, rule: str, at: str | None = None, nth: int = 0) -> list:
    """Events of ``rule`` in the whole run, or in the step with text ``at``."""
    recs = [record(r, at, nth)] if at is not None else r.steps
    return [e for rec in recs for e in rec.events if e.rule == rule]


def the_event(r, rule: str, at: str, nth: int = 0):
    """The single event of ``rule`` in step ``at``."""
    evs = rule_events(r, rule, at, nth)
    assert len(evs) == 1, f"expected one `{rule}` event at {at!r}, got {[str(e) for e in evs]}"
    return evs[0]


def assert_decision(r, rule: str, at: str, value: bool, commit: str | None, nth: int = 0):
    """Rule ``rule`` fired in step ``at``, every time with this decision and commit
    (a rule may be asked again when the kernel retries, e.g. fork's copy after
    dropping the page-table lock); returns the first Event."""
    evs = rule_events(r, rule, at, nth)
    assert evs, f"no `{rule}` event at {at!r}; events: {[str(e) for rec in r.steps for e in rec.events]}"
    for e in evs:
        assert e.decision is value, f"{rule} at {at!r}: decision {e.decision}, expected {value} ({e.text})"
        assert e.commit == commit, f"{rule} at {at!r}: commit {e.commit}, expected {commit} ({e.text})"
    return evs[0]


def decisions(r, rule: str, at: str, nth: int = 0) -> list[tuple[bool, str | None]]:
    """(decision, commit) of each event of ``rule`` in step ``at``, in order."""
    return [(e.decision, e.commit) for e in rule_events(r, rule, at, nth)]


def mm(state: State, proc: str):
    m = state.mm(proc)
    assert m is not None, f"no process {proc}"
    return m


def pte(state: State, proc: str, mapping: str, idx: int = 0) -> Pte | None:
    vma = mm(state, proc).vma(mapping)
    assert vma is not None, f"{proc} has no mapping {mapping}"
    return vma.ptes[idx]


def pfn(state: State, proc: str, mapping: str, idx: int = 0) -> int:
    """The page frame a present PTE maps."""
    p = pte(state, proc, mapping, idx)
    assert p is not None and p.present, f"{proc}.{mapping}[{idx}] is not present: {p}"
    return p.page


def page(state: State, proc: str, mapping: str, idx: int = 0) -> Page:
    return state.pages[pfn(state, proc, mapping, idx)]


def handle_page(state: State, name: str) -> Page:
    h = state.handle(name)
    assert h is not None and h.live, f"handle {name} is not live: {h}"
    return state.pages[h.page]


def value(r, name: str):
    """The value bound by `as name`."""
    o = r.final.result(name)
    assert o is not None, f"nothing bound to {name}"
    return o.value


def live_pages(state: State) -> list[int]:
    return [i for i, p in enumerate(state.pages) if not p.zero and not p.freed]


# --- invariants -----------------------------------------------------------------------------


def pin_refs(pg: Page) -> int:
    """What one FOLL_PIN adds to the refcount: the bias on order-0 pages, one
    reference on large folios, which count pins exactly (§0)."""
    return 1 if pg.kind != "small" else GUP_PIN_COUNTING_BIAS


def sibling_refs(pg: Page, devexcl: int = 0) -> int:
    """A PTE-mapped THP is seen through one subpage; the folio's refcount also
    holds its siblings' references, which the model drops with the subpage's last
    mapping (a device-exclusive entry keeps them)."""
    return THP_SIBLINGS if pg.kind == PTE_THP and (pg.mapcount > 0 or devexcl > 0) else 0


def _references(state: State):
    """Who holds what: PTE mappers, swap entries, device-exclusive entries, pipe
    buffers, FOLL_GET references and FOLL_PIN pins, per page (or slot)."""
    mappers: dict[int, list] = defaultdict(list)
    swap_ptes: Counter = Counter()
    devexcl: Counter = Counter()
    for m in state.mms:
        for vma in m.vmas:
            for i, p in enumerate(vma.ptes):
                if p is None:
                    continue
                if p.present:
                    mappers[p.page].append((m.name, vma.name, i, p))
                elif getattr(p, "devexcl", False):
                    devexcl[p.page] += 1  # not mapped (no mapcount) but holds a reference
                else:
                    swap_ptes[p.slot] += 1
    pipe_refs = Counter(pfn for pipe in state.pipes for pfn in pipe.bufs)
    get_refs: Counter = Counter()
    pins: Counter = Counter()
    for h in state.handles:
        if not h.live or getattr(h, "device", False):
            continue
        (pins if h.pin else get_refs)[h.page] += getattr(h, "refs", 1)
    return mappers, swap_ptes, devexcl, pipe_refs, get_refs, pins


def invariant_violations(state: State) -> list[str]:
    """What the state breaks of the 5.19+ invariants (reference §6.1) and of the
    counter bookkeeping.  The zero page is not refcounted or mapcounted."""
    out: list[str] = []
    mappers, swap_ptes, devexcl, pipe_refs, get_refs, pins = _references(state)
    for n, pg in enumerate(state.pages):
        if pg.zero:
            continue
        maps = mappers[n]
        # I2: a writable present PTE to an anon page => the page is exclusive
        for who, vname, i, p in maps:
            if p.write and pg.anon and not pg.anon_exclusive:
                out.append(f"I2: {who}.{vname}[{i}] maps anon page #{n} writable but it is not exclusive")
        # I3: a pinned anon page is exclusive
        if pg.anon and pg.pincount > 0 and not pg.anon_exclusive:
            out.append(f"I3: anon page #{n} is pinned (pincount {pg.pincount}) but not exclusive")
        # an exclusive page has at most one mapping (I4: sharing clears the bit first)
        if pg.anon_exclusive and len(maps) > 1:
            out.append(f"I4: exclusive page #{n} is mapped {len(maps)} times")
        # mapcount == number of PTEs mapping the page
        if pg.mapcount != len(maps):
            out.append(f"mapcount: page #{n} has mapcount {pg.mapcount} but {len(maps)} PTEs map it")
        if pg.pincount != pins[n]:
            out.append(f"pincount: page #{n} has pincount {pg.pincount} but {pins[n]} live pins")
        # refcount >= mapcount + 1024*pincount + swapcache + pipe/gup references (+ page cache)
        need = (
            pg.mapcount
            + pin_refs(pg) * pg.pincount
            + sibling_refs(pg, devexcl[n])
            + (pg.swapcache >= 0)
            + pipe_refs[n]
            + get_refs[n]
            + devexcl[n]
            + (pg.file is not None)
        )
        if pg.refcount < need:
            out.append(f"refcount: page #{n} has refcount {pg.refcount} < {need} references held")
        held = maps or pipe_refs[n] or get_refs[n] or pins[n] or devexcl[n] or pg.swapcache >= 0
        if pg.freed and held:
            out.append(f"page #{n} is freed but still referenced")
        if not pg.freed and pg.refcount <= 0:
            out.append(f"page #{n} has refcount {pg.refcount} but is not freed")
    for s, slot in enumerate(state.slots):
        if slot.count != swap_ptes[s]:
            out.append(f"swap slot {s}: count {slot.count} but {swap_ptes[s]} swap PTEs refer to it")
        if slot.free and swap_ptes[s]:
            out.append(f"swap slot {s} is free but swap PTEs refer to it")
    return out


def fresh_page_violations(before: State, after: State) -> list[str]:
    """I1: an anon page allocated by a step (fault, COW or unshare copy, fork's
    copy) and mapped is exclusive.  Pages read into the swap cache are not
    "fresh" in the model (it always swaps in through the swap cache)."""
    out = []
    for n in range(len(before.pages), len(after.pages)):
        pg = after.pages[n]
        if pg.anon and not pg.zero and not pg.freed and pg.mapcount > 0 and pg.swapcache < 0 and not pg.ksm:
            read_from_swap = any(
                p is not None and p.present and p.page == n
                for m in before.mms for v in m.vmas for p in v.ptes
            )
            if not read_from_swap and not pg.anon_exclusive:
                out.append(f"I1: fresh anon page #{n} is not exclusive")
    return out


def exact_refcount_violations(state: State) -> list[str]:
    """The model has no transient references (no LRU pagevecs), so its refcount
    should equal the references it holds exactly: a surplus is a leak that would
    turn a reuse into a copy."""
    out = []
    mappers, _swap, devexcl, pipe_refs, get_refs, _pins = _references(state)
    for n, pg in enumerate(state.pages):
        if pg.zero or pg.freed:
            continue
        held = (
            len(mappers[n])
            + pin_refs(pg) * pg.pincount
            + sibling_refs(pg, devexcl[n])
            + (pg.swapcache >= 0)
            + pipe_refs[n]
            + get_refs[n]
            + devexcl[n]
            + (pg.file is not None)
        )
        if pg.refcount != held:
            out.append(f"page #{n}: refcount {pg.refcount}, references held {held}")
    return out
