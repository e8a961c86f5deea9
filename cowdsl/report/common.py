"""What the text and the explored reports share: a scenario's name in herd7's
lines, and the final state as a table (the mappings page by page, pins and
references, pipes, files and processes)."""

from __future__ import annotations

import os
import textwrap

from cowdsl.scenario import variant_suffix
from cowdsl.semantics import concepts
from cowdsl.semantics.state import State, content_text
from cowdsl.untrusted import escaped

TITLE_MAX = 48  # a longer scenario title is printed once, under a short name (the file's)


def herd_name(sc) -> str:
    """The name herd7's lines use: the scenario's title, or the file's name
    without its folder and suffix when the title is long."""
    if len(sc.name) <= TITLE_MAX:
        return sc.name
    stem = escaped(os.path.basename(sc.filename).removesuffix(".cow")) + variant_suffix(sc.params)
    return stem or sc.name.split()[0]


def title_lines(sc, width: int = 80) -> list[str]:
    """A long title, once, wrapped and indented under the Test line (nothing for a short one)."""
    if herd_name(sc) == sc.name:
        return []
    return textwrap.wrap(sc.name, width, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)


def _pte_text(pte) -> str:
    if pte is None:
        return "none"
    if pte.devexcl:
        return "device-exclusive " + ("rw" if pte.write else "ro")
    if concepts.device_private_entry(pte):
        return "device-private " + ("rw" if pte.write else "ro")
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
    if p.device:
        flags.append("device-private")
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
                if pte is not None and (pte.present or pte.devexcl or concepts.device_private_entry(pte)):
                    p = state.pages[pte.page]
                    rows.append([where, _pte_text(pte), f"#{pte.page}", content_text(p), str(p.refcount),
                                 str(p.mapcount), str(p.pincount), page_flags(state, pte.page)])
                elif pte is not None:
                    cached = _swapcache_page(state, pte.slot)
                    flags = f"swapped out; in the swap cache as #{cached}" if cached is not None else "swapped out"
                    rows.append([where, _pte_text(pte), "-", content_text(state.slots[pte.slot]), "", "", "", flags])
                else:
                    what = "not mapped (munmap of a part)" if vma.at(i) is None else "not faulted in"
                    rows.append([where, "none", "-", "", "", "", "", what])
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
            hrows.append([h.name, kind, f"#{h.page}", content_text(state.pages[h.page]), h.owner,
                          "held" if h.live else "released"])
        out.append("")
        out += _table(hrows)
    extra = []
    for p in state.pipes:
        bufs = ", ".join(f"#{b} (value {content_text(state.pages[b])})" for b in p.bufs) if p.bufs else "empty"
        extra.append(f"  pipe {p.name}: {bufs}")
    for name, pages in state.files:
        extra.append(f"  file {name} page cache: " + ", ".join(
            f"{name}[{i}] #{pfn} (value {content_text(state.pages[pfn])})" for i, pfn in enumerate(pages)))
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
