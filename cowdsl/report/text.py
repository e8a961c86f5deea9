"""herd7-style verdict blocks, traces and final-state tables for people."""

from __future__ import annotations

from cowdsl.run import Result
from cowdsl.semantics.state import State


def verdict_block(r: Result) -> str:
    name = r.scenario.name
    holds = r.verdict == "pass"
    values = {}
    for c in r.checks:
        values.update(c.values)
    lines = [
        f"Test {name} on {r.backend}",
        "States 1",
        " ".join(f"{k}={v};" for k, v in values.items()) or "(no values)",
        "Ok" if holds else "No",
        "Witnesses",
        f"Positive: {1 if holds else 0} Negative: {0 if holds else 1}",
        "Condition forall (" + " /\\ ".join(f"{c.assertion.text}" for c in r.checks) + ")",
        f"Observation {name} {'Always' if holds else 'Never'} {1 if holds else 0} {0 if holds else 1}",
        f"Time {name} {r.seconds:.3f}",
    ]
    for c in r.checks:
        mark = "Ok" if c.holds else "No"
        lines.append(f"  {mark:<3} line {c.assertion.span.line}: assert {c.assertion.text}")
    if r.expected:
        status = "as expected" if r.ok else "MISMATCH"
        lines.append(f"Expect {r.expected} on {r.backend}: got {r.verdict}, {status}")
    elif not r.ok:
        lines.append(f"Verdict {r.verdict} (no expect line for {r.backend})")
    return "\n".join(lines)


def trace(r: Result) -> str:
    out = [f"Trace of {r.scenario.name} on {r.backend}"]
    for rec in r.steps:
        s = rec.step
        status = "" if rec.outcome.ok else f"  → failed: {rec.outcome.error}"
        if rec.outcome.ok and rec.outcome.value is not None:
            status = f"  → {rec.outcome.value}"
        out.append(f"{s.number:>3}  line {s.span.line}: {s.text}{status}")
        for e in rec.events:
            if not e.minor:
                out.append(f"       {e}")
    return "\n".join(out)


def _pte_text(pte) -> str:
    if pte is None:
        return "none"
    if pte.present:
        return "present " + ("rw" if pte.write else "ro")
    return f"swap slot {pte.slot}" + (" excl" if pte.swp_exclusive else "")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def page_flags(state: State, pfn: int) -> str:
    p = state.pages[pfn]
    flags = []
    if p.zero:
        return "zero page"
    if p.anon_exclusive:
        flags.append("exclusive")
    if p.pincount:
        flags.append("pinned")
    if p.swapcache >= 0:
        flags.append(f"swapcache(slot {p.swapcache})")
    if p.file:
        flags.append(f"page cache {p.file}[{p.index}]")
    if p.freed:
        flags.append("FREED")
    return " ".join(flags)


def final_state(state: State) -> str:
    rows = [["where", "pte", "page", "value", "refcount", "mapcount", "pincount", "flags"]]
    for mm in state.mms:
        if not mm.vmas:
            continue
        for vma in mm.vmas:
            for i, pte in enumerate(vma.ptes):
                where = f"{mm.name}.{vma.name}" + (f"[{i}]" if len(vma.ptes) > 1 else "")
                if pte is not None and pte.present:
                    p = state.pages[pte.page]
                    rows.append([where, _pte_text(pte), f"#{pte.page}", str(p.data), str(p.refcount),
                                 str(p.mapcount), str(p.pincount), page_flags(state, pte.page)])
                elif pte is not None:
                    rows.append([where, _pte_text(pte), "-", str(state.slots[pte.slot].data), "", "", "", ""])
                else:
                    rows.append([where, "none", "-", "", "", "", "", ""])
    out = ["Final state"]
    out += _table(rows) if len(rows) > 1 else ["  (no mappings)"]
    if state.handles:
        hrows = [["pin/ref", "kind", "page", "value", "owner", ""]]
        for h in state.handles:
            kind = ("FOLL_PIN" if h.pin else "FOLL_GET") + ("|FOLL_WRITE" if h.write else "") + ("|FOLL_LONGTERM" if h.longterm else "")
            hrows.append([h.name, kind, f"#{h.page}", str(state.pages[h.page].data), h.owner, "" if h.live else "released"])
        out += _table(hrows)
    for p in state.pipes:
        if p.bufs:
            out.append(f"  pipe {p.name}: " + ", ".join(f"#{b} (value {state.pages[b].data})" for b in p.bufs))
    procs = []
    for mm in state.mms:
        st = "killed by SIGSEGV" if mm.segv else ("alive" if mm.alive else "exited")
        extra = ", MMF_HAS_PINNED" if mm.has_pinned else ""
        procs.append(f"{mm.name} {st}{extra}, {mm.faults} faults, {mm.cow_copies} copies")
    out.append("  processes: " + "; ".join(procs))
    return "\n".join(out)


def report(r: Result, show_trace=False, show_state=False) -> str:
    parts = []
    if show_trace:
        parts.append(trace(r))
    parts.append(verdict_block(r))
    if show_state or not r.ok:
        parts.append(final_state(r.final))
    return "\n".join(parts) + "\n"
