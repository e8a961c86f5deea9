"""Evaluate assertions on what a run observed: values, pages, flags, outcomes.

The judge asks an observation (``StateObservation`` for a model's final state;
the native backend brings its own) for views and facts.  A value that does not
exist (an unmapped address, a failed pin, a dead process) makes every
comparison with it false, and is shown as such.  A fact an observation cannot
see raises ``Unsupported``: the assertion is then skipped, with the reason.
"""

from __future__ import annotations

import operator

from attrs import frozen

from cowdsl import scenario as S
from cowdsl.semantics.state import State

_CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@frozen
class View:
    """What one address shows: a value, a page frame, and why either is missing."""

    value: int | None
    pfn: int | None
    note: str = ""
    pte: object = None


class Unsupported(Exception):
    """This observation cannot see that fact (e.g. refcount on the real kernel)."""


def view_addr(state: State, addr: S.Addr) -> View:
    mm = state.mm(addr.proc)
    if mm is None or not mm.alive:
        return View(None, None, f"{addr.proc} {'was killed' if mm is not None and mm.segv else 'has exited'}")
    vma = mm.vma(addr.mapping)
    if vma is None:
        return View(None, None, "not mapped")
    pte = vma.ptes[addr.index]
    if pte is None:
        if vma.anon:
            return View(0, None, "not faulted in (reads 0)")
        cache = state.file_page(vma.file, addr.index)
        return View(state.pages[cache].data, None, "not faulted in", None)
    if pte.present:
        return View(state.pages[pte.page].data, pte.page, "", pte)
    if pte.devexcl:
        return View(state.pages[pte.page].data, pte.page, "device-exclusive entry", pte)
    cached = next((i for i, p in enumerate(state.pages) if p.swapcache == pte.slot and not p.freed), None)
    if cached is not None:
        return View(state.pages[cached].data, cached, "swapped out, in swap cache", pte)
    return View(state.slots[pte.slot].data, None, f"swapped out to slot {pte.slot}", pte)


def view(state: State, ref) -> View:
    if isinstance(ref, S.PageAt):
        return view_addr(state, ref.addr)
    if isinstance(ref, S.HandlePage):
        h = state.handle(ref.name)
        if h is None:
            return View(None, None, "its GUP failed")
        if not h.live:
            return View(None, None, "released")
        return View(state.pages[h.page].data, h.page)
    if isinstance(ref, S.FilePage):
        pfn = state.file_page(ref.file, ref.index)
        return View(state.pages[pfn].data, pfn)
    if isinstance(ref, S.Bound):
        out = state.result(ref.name)
        if out is None or not out.ok:
            return View(None, None, "its step failed")
        return View(out.value, None)
    raise TypeError(ref)


def term_text(ref) -> str:
    if isinstance(ref, S.PageAt):
        return str(ref.addr)
    if isinstance(ref, S.FilePage):
        return f"{ref.file}[{ref.index}]"
    if isinstance(ref, (S.HandlePage, S.Bound, S.ProcessRef, S.StepRef)):
        return ref.name
    if isinstance(ref, S.FactCall):
        return f"{ref.name}({', '.join(term_text(a) for a in ref.args)})"
    if isinstance(ref, S.Const):
        return str(ref.value).lower() if isinstance(ref.value, bool) else str(ref.value)
    return "?"


class StateObservation:
    """Observations of a model state."""

    def __init__(self, state: State):
        self.state = state

    def view(self, ref) -> View:
        return view(self.state, ref)

    def counter(self, name: str, proc: str | None) -> int:
        mms = [self.state.mm(proc)] if proc else list(self.state.mms)
        return sum(getattr(m, name) for m in mms if m is not None)

    def process(self, name: str, proc: str) -> bool:
        m = self.state.mm(proc)
        return bool(m and getattr(m, name))

    def failed(self, name: str) -> bool:
        r = self.state.result(name)
        return r is None or not r.ok

    def page_fact(self, name: str, ref):
        v = self.view(ref)
        pte = v.pte
        if name == "swapped":
            return pte is not None and pte.swap
        if name == "device_exclusive":
            return pte is not None and pte.devexcl
        if name == "present":
            return pte is not None and pte.present
        if name == "writable":
            return pte is not None and pte.present and pte.write
        if v.pfn is None:
            return None if name in ("refcount", "mapcount", "pincount") else False
        page = self.state.pages[v.pfn]
        return {
            "exclusive": page.anon_exclusive,
            "pinned": page.pincount > 0,
            "maybe_pinned": page.refcount >= 1024,
            "refcount": page.refcount,
            "mapcount": page.mapcount,
            "pincount": page.pincount,
            "swapcache": page.swapcache >= 0,
            "zero_page": page.zero,
            "ksm": page.ksm,
        }[name]


class Judge:
    """Evaluates one assertion on one observation, noting each value it looked at."""

    def __init__(self, obs):
        self.obs = obs if not isinstance(obs, State) else StateObservation(obs)
        self.seen: dict[str, str] = {}

    def note(self, ref, value, why: str = "") -> None:
        shown = "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        self.seen[term_text(ref)] = shown + (f" ({why})" if why and value is None else "")

    def truth(self, e) -> bool:
        if isinstance(e, S.Const):
            return bool(e.value)
        if isinstance(e, S.Not):
            return not self.truth(e.operand)
        if isinstance(e, S.BoolOp):
            left = self.truth(e.left)
            right = self.truth(e.right)  # evaluated always, so every value is shown
            return {"and": left and right, "or": left or right, "implies": (not left) or right}[e.op]
        if isinstance(e, S.Cmp):
            a, b = self.value(e.left), self.value(e.right)
            if a is None or b is None:
                return False
            return _CMP[e.op](a, b)
        if isinstance(e, S.Same):
            a, b = self.page(e.left), self.page(e.right)
            same = a is not None and a == b
            return (not same) if e.negated else same
        if isinstance(e, S.FactCall):
            return bool(self.fact(e))
        raise TypeError(e)

    def value(self, e):
        if isinstance(e, S.Const):
            return e.value
        if isinstance(e, S.FactCall):
            return self.fact(e)
        if isinstance(e, (S.Not, S.BoolOp, S.Cmp, S.Same)):
            return self.truth(e)
        v = self.obs.view(e)
        self.note(e, v.value, v.note)
        return v.value

    def page(self, e) -> int | None:
        v = self.obs.view(e)
        shown = f"#{v.pfn}" if v.pfn is not None else f"none ({v.note or 'no page'})"
        self.seen[f"page({term_text(e)})"] = shown
        return v.pfn

    def fact(self, f: S.FactCall):
        name = f.name
        if name in ("cow_copies", "faults"):
            out = self.obs.counter(name, f.args[0].name if f.args else None)
        elif name in ("segv", "alive", "has_pinned"):
            out = self.obs.process(name, f.args[0].name)
        elif name == "failed":
            out = self.obs.failed(f.args[0].name)
        else:
            out = self.obs.page_fact(name, f.args[0])
        self.note(f, out)
        return out


def evaluate(obs, assertion: S.Assertion) -> tuple[bool | None, dict[str, str]]:
    """(holds, values seen); holds is None when the observation cannot tell."""
    j = Judge(obs)
    try:
        holds = j.truth(assertion.expr)
    except Unsupported as e:
        return None, {**j.seen, "unsupported": str(e)}
    return holds, j.seen
