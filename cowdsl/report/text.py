"""herd7-style verdict blocks, traces and final-state tables for people.

A verdict block, as herd7 prints one, then one line per assertion::

    Test NAME on BACKEND
    States 1
    A.buf=4; B.buf=3;
    Ok                                  (No when an assertion fails)
    Witnesses
    Positive: 1 Negative: 0
    Condition forall (A.buf == 4 /\\ B.buf == 3)
    Observation NAME Always 1 0         (Never 0 1)
    Time NAME 0.000
      Ok  line 13: assert A.buf == 4
      Ok  line 14: assert B.buf == 3
    Expect pass on BACKEND: got pass, as expected

An assertion the backend cannot observe (native) is marked ``--``; when none
can be decided the block says ``Skip``, ``Positive: 0 Negative: 0`` and
``Undecided``.
"""

from __future__ import annotations

import os
import textwrap

from cowdsl.judge import Result
from cowdsl.semantics import concepts
from cowdsl.semantics.invariants import InvariantViolation
from cowdsl.semantics.state import State

_BOOL_WORDS = (" and ", " or ", " implies ")


def _condition_term(text: str) -> str:
    """An assertion inside the /\\ conjunction, parenthesised when it has its own and/or/implies."""
    return f"({text})" if any(w in text for w in _BOOL_WORDS) else text


# verdict → the herd7 result word, the witness counts and the observation word.
_HERD = {"pass": ("Ok", 1, 0, "Always"), "fail": ("No", 0, 1, "Never"), "skip": ("Skip", 0, 0, "Undecided")}


def _mark(holds: bool | None) -> str:
    return "Ok" if holds else ("No" if holds is not None else "--")


def _plain(text: str) -> str:
    return text


TITLE_MAX = 48  # a longer scenario title is printed once, under a short name (the file's)


def herd_name(sc) -> str:
    """The name herd7's lines use: the scenario's title, or the file's name
    without its folder and suffix when the title is long."""
    if len(sc.name) <= TITLE_MAX:
        return sc.name
    stem = os.path.basename(sc.filename).removesuffix(".cow")
    return stem or sc.name.split()[0]


def title_lines(sc, width: int = 80) -> list[str]:
    """A long title, once, wrapped and indented under the Test line (nothing for a short one)."""
    if herd_name(sc) == sc.name:
        return []
    return textwrap.wrap(sc.name, width, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)


def verdict_block(r: Result, highlight=None, width: int = 80) -> str:
    """``highlight`` optionally colours the assertions' source text (cowdsl.lexer.highlighter).
    A long title is printed once, under the Test line; the other lines use the file's name."""
    hl = highlight or _plain
    name = herd_name(r.scenario)
    word, pos, neg, obs = _HERD.get(r.verdict, (r.verdict, 0, 0, r.verdict))
    values = {}
    for c in r.checks:
        values.update(c.values)
    lines = [
        f"Test {name} on {r.backend}",
        *title_lines(r.scenario, width),
        "States 1",
        " ".join(f"{k}={v};" for k, v in values.items()) or "(no values)",
        word,
        "Witnesses",
        f"Positive: {pos} Negative: {neg}",
        "Condition forall (" + " /\\ ".join(_condition_term(c.assertion.text) for c in r.checks) + ")",
        f"Observation {name} {obs} {pos} {neg}",
        f"Time {name} {r.seconds:.3f}",
    ]
    for c in r.checks:
        undecided = "  (not observable on this backend)" if c.holds is None else ""
        lines.append(f"  {_mark(c.holds):<3} line {c.assertion.span.line}: {hl('assert ' + c.assertion.text)}{undecided}")
    lines.append(expectation_line(r))
    return "\n".join(line for line in lines if line)


def expectation_line(r: Result) -> str:
    """How the verdict compares with the scenario's expect line for this backend."""
    if r.verdict == "skip":
        return f"Skipped: no assertion could be decided on {r.backend}"
    if r.expected:
        status = "as expected" if r.ok else "NOT AS EXPECTED"
        return f"Expect {r.expected} on {r.backend}: got {r.verdict}, {status}"
    if not r.ok:
        return f"Verdict {r.verdict} (no expect line for {r.backend}, so every assertion must hold)"
    return ""


def _event_text(e) -> str:
    """An event, with the backend rule that decided it and the commit that made it so."""
    tag = " ".join(x for x in (e.rule, e.commit) if x)
    return e.text + (f"  [{tag}]" if tag else "")


def trace(r: Result, highlight=None) -> str:
    """``highlight`` optionally colours each step's source text (cowdsl.lexer.highlighter)."""
    hl = highlight or _plain
    out = [f"Trace of {r.scenario.name} on {r.backend}"]
    for rec in r.steps:
        s = rec.step
        o = rec.outcome
        if not o.ok:
            err = o.error or "failed"
            status = f"  → {err}" if err.startswith("not run") else f"  → failed: {err}"
        elif o.value is not None:
            status = f"  → {o.value}"
        else:
            status = ""
        out.append(f"{s.number:>3}  line {s.span.line}: {hl(s.text)}{status}")
        for e in rec.events:
            if e.minor or (not o.ok and e.text == o.error):
                continue  # a no-op decision, or the "not run" line already shown
            out.append(f"       {_event_text(e)}")
    return "\n".join(out)


def _pte_text(pte) -> str:
    if pte is None:
        return "none"
    if pte.devexcl:
        return "device-exclusive " + ("rw" if pte.write else "ro")
    if pte.present:
        return "present " + ("rw" if pte.write else "ro") + (" dirty" if pte.dirty else "")
    return f"swap slot {pte.slot}" + (" excl" if pte.swp_exclusive else "")


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def page_flags(state: State, pfn: int) -> str:
    p = state.pages[pfn]
    if p.zero:
        return "zero page"
    flags = []
    kind = p.kind
    if kind != "small":
        flags.append(kind.replace("_", "-"))  # thp, pte-thp, hugetlb
    if p.anon_exclusive:
        flags.append("exclusive")
    if p.pincount:
        flags.append("pinned")
    elif concepts.page_maybe_dma_pinned(p):  # the refcount guess on an order-0 page
        flags.append("maybe-pinned")
    if p.ksm:
        flags.append("ksm")
    if p.swapcache >= 0:
        flags.append(f"swapcache(slot {p.swapcache})")
    if p.file:
        flags.append(f"page-cache {p.file}[{p.index}]")
    if p.freed:
        flags.append("FREED")
    return " ".join(flags)


def _swapcache_page(state: State, slot: int) -> int | None:
    for pfn, p in enumerate(state.pages):
        if p.swapcache == slot and not p.freed:
            return pfn
    return None


def _mapping_rows(state: State) -> list[list[str]]:
    rows = []
    for mm in state.mms:
        for vma in mm.vmas:
            for i, pte in enumerate(vma.ptes):
                where = f"{mm.name}.{vma.name}" + (f"[{i}]" if len(vma.ptes) > 1 else "")
                if pte is not None and (pte.present or pte.devexcl):
                    p = state.pages[pte.page]
                    rows.append([where, _pte_text(pte), f"#{pte.page}", str(p.data), str(p.refcount),
                                 str(p.mapcount), str(p.pincount), page_flags(state, pte.page)])
                elif pte is not None:
                    cached = _swapcache_page(state, pte.slot)
                    flags = f"swapped out; in the swap cache as #{cached}" if cached is not None else "swapped out"
                    rows.append([where, _pte_text(pte), "-", str(state.slots[pte.slot].data), "", "", "", flags])
                else:
                    rows.append([where, "none", "-", "", "", "", "", "not faulted in"])
    return rows


def _plural(n: int, word: str, many: str) -> str:
    return f"{n} {word if n == 1 else many}"


def final_state(state: State | None) -> str:
    """The mappings page by page, the pins and references, pipes, files and processes."""
    out = ["Final state"]
    if state is None:
        return "Final state\n  (none: this backend keeps no model state; the trace shows what it observed)"
    rows = _mapping_rows(state)
    if rows:
        out += _table([["where", "pte", "page", "value", "refcount", "mapcount", "pincount", "flags"]] + rows)
    else:
        out.append("  (no mappings)")
    if state.handles:
        hrows = [["pin/ref", "kind", "page", "value", "owner", "state"]]
        for h in state.handles:
            kind = ("FOLL_PIN" if h.pin else "FOLL_GET") + ("|FOLL_WRITE" if h.write else "") + (
                "|FOLL_LONGTERM" if h.longterm else "")
            hrows.append([h.name, kind, f"#{h.page}", str(state.pages[h.page].data), h.owner,
                          "held" if h.live else "released"])
        out.append("")
        out += _table(hrows)
    extra = []
    for p in state.pipes:
        bufs = ", ".join(f"#{b} (value {state.pages[b].data})" for b in p.bufs) if p.bufs else "empty"
        extra.append(f"  pipe {p.name}: {bufs}")
    for name, pages in state.files:
        extra.append(f"  file {name} page cache: " + ", ".join(
            f"{name}[{i}] #{pfn} (value {state.pages[pfn].data})" for i, pfn in enumerate(pages)))
    procs = []
    for mm in state.mms:
        st = "killed by SIGSEGV" if mm.segv else ("alive" if mm.alive else "exited")
        flags = ", MMF_HAS_PINNED" if mm.has_pinned else ""
        procs.append(f"{mm.name} {st}{flags}, {_plural(mm.faults, 'fault', 'faults')}, "
                     f"{_plural(mm.cow_copies, 'copy', 'copies')}")
    extra.append("  processes: " + "; ".join(procs))
    out.append("")
    out += extra
    return "\n".join(out)


def report(r: Result, show_trace=False, show_state=False, highlight=None, *, width: int = 80,
           form: str | None = None, verbose: bool = False) -> str:
    """The verdict block; the trace first when asked; the final state when asked or not as expected.

    ``highlight`` optionally colours the source text of steps and assertions.
    An explored run (cowdsl.report.explored) lists each final state, adds each
    one's state table with ``show_state`` and the execution reaching it with
    ``show_trace``; ``width`` (columns), ``form`` ("lanes", "list" or None for
    the default) and ``verbose`` shape its executions.
    """
    if r.exploration is not None:
        from cowdsl.report import explored

        return explored.report(r, show_state=show_state, highlight=highlight, show_trace=show_trace, width=width,
                               form=form, verbose=verbose)
    parts = []
    if show_trace:
        parts.append(trace(r, highlight) + "\n")
    parts.append(verdict_block(r, highlight, width))
    if show_state or not r.ok:
        parts.append(final_state(r.final))
    return "\n".join(parts) + "\n"


def invariant_violation(e: InvariantViolation) -> str:
    """A model invariant violation with the state it was found in."""
    lines = [str(e)]
    if e.state is not None:
        try:
            lines.append("  state:")
            lines += ["  " + ln for ln in final_state(e.state).splitlines()[1:]]
        except Exception:  # the state itself may be too broken to draw
            lines.append(f"  state: {e.state!r}"[:2000])
    return "\n".join(lines)
