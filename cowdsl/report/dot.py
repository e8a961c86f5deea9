"""Graphviz DOT of a run: the final state, and the counterexample trace.

The state graph reads left to right: processes → page-table entries → pages ←
pins and references (and pipes, files, swap slots).  A page's fill says whether
it is exclusive (PageAnonExclusive, green), shared (mapped more than once, or
KSM: orange), a page-cache page (blue) or neither (white: mapped once but not
marked exclusive, as in the eras before PG_anon_exclusive); a thick red border
says it is pinned (FOLL_PIN, or refcount >= 1024: maybe-pinned).

The trace graph is the steps as a chain, each with the rules that fired (and
their commits), ending in the assertions that failed: the counterexample.  For
an explored (concurrent) run it is the execution the run shows, one lane
(cluster) per actor of the race with time downwards, the sequential steps
before and after the race folded into one node each, and a red "lock hand-off"
edge where an actor blocked on a lock resumes after the holder's unlock; its
state graph is the final state that execution ends in.

``render()`` turns DOT into SVG, PNG or PDF with Graphviz's ``dot`` binary
(Debian: ``apt-get install graphviz``); ``write()`` does what ``cowdsl run
--dot`` asks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

from cowdsl.judge import Result
from cowdsl.matrix import labels
from cowdsl.report import explored, race
from cowdsl.report.common import page_flags
from cowdsl.report.junit import assertion_text
from cowdsl.semantics import concepts
from cowdsl.semantics.state import State, content_text
from cowdsl.untrusted import escaped

RENDERED = ("svg", "png", "pdf")
SUFFIXES = (".dot", ".gv", ".svg", ".png", ".pdf")  # a --dot target with one of these is a file
_COLOURS = {
    "exclusive": "#d9ead3",  # green
    "shared": "#fce5cd",  # orange
    "pinned": "#cc0000",  # border
    "zero": "#eeeeee",
    "file": "#cfe2f3",  # page cache
    "other": "#ffffff",  # mapped once, not marked exclusive (or no PG_anon_exclusive in this era)
    "freed": "#ffffff",
}


class DotError(Exception):
    """Graphviz is missing or failed."""


def q(text: str) -> str:
    """A DOT quoted string."""
    return '"' + escaped(text, keep="\n").replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _html(text: str) -> str:
    return escaped(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _html_lines(lines: list[tuple[str, str]], width: int = 72) -> str:
    """An HTML-like label: (style, text) lines, left-justified and wrapped; style is
    "b" (bold), "rule" (a rule that fired), "bad" (red), or "" (plain)."""
    out = []
    for style, line in lines:
        for x in textwrap.wrap(line, width, subsequent_indent="    ", break_on_hyphens=False) or [""]:
            x = _html(x)
            if style == "b":
                x = f"<B>{x}</B>"
            elif style == "rule":
                x = f'<FONT COLOR="#1155cc">{x}</FONT>'
            elif style == "bad":
                x = f'<FONT COLOR="#cc0000">{x}</FONT>'
            out.append(x + '<BR ALIGN="LEFT"/>')
    return "<" + "".join(out) + ">"


def _head(name: str, title: str, rankdir: str) -> list[str]:
    return [
        f"digraph {q(name)} {{",
        f"  graph [rankdir={rankdir}, label={q(title)}, labelloc=t, fontname=Helvetica, fontsize=12,"
        " nodesep=0.25, ranksep=0.5];",
        "  node [fontname=Helvetica, fontsize=10, shape=box, style=rounded];",
        "  edge [fontname=Helvetica, fontsize=9];",
    ]


def _page_kind(p) -> str:
    if p.zero:
        return "zero"
    if p.freed:
        return "freed"
    if p.file and not p.anon:
        return "file"
    if p.anon_exclusive:
        return "exclusive"
    return "shared" if p.mapcount > 1 or p.ksm else "other"


def _pinned(p) -> bool:
    return concepts.pinned(p) or concepts.page_maybe_dma_pinned(p)


def _pte_label(where: str, pte) -> str:
    if pte is None:
        return f"{where}\nnot faulted in"
    if pte.devexcl:
        return f"{where}\ndevice-exclusive " + ("rw" if pte.write else "ro")
    if concepts.device_private_entry(pte):
        return f"{where}\ndevice-private " + ("rw" if pte.write else "ro")
    if pte.present:
        return f"{where}\npresent " + ("rw" if pte.write else "ro") + (" dirty" if pte.dirty else "")
    return f"{where}\nswap slot {pte.slot}" + (" excl" if pte.swp_exclusive else "")


def state_dot(state: State | None, title: str = "final state") -> str:
    """DOT of a final state."""
    out = _head("state", title, "LR")
    if state is None:
        out.append('  none [label="no model state on this backend\\n(the trace shows what it observed)"];')
        return "\n".join(out + ["}"]) + "\n"
    used: set[int] = set()
    edges: list[str] = []
    for mm in state.mms:
        status = "killed by SIGSEGV" if mm.segv else ("alive" if mm.alive else "exited")
        extra = ", MMF_HAS_PINNED" if mm.has_pinned else ""
        out.append(f"  subgraph {q('cluster_mm_' + mm.name)} {{")
        out.append(f"    label={q(f'{mm.name} ({status}{extra})')}; style=rounded; color=\"#999999\";"
                   + (" fontcolor=\"#999999\";" if not mm.alive else ""))
        mm_label = f"{mm.name}\nfaults {mm.faults}, copies {mm.cow_copies}"
        out.append(f"    {q('mm:' + mm.name)} [label={q(mm_label)}, shape=box, style=\"rounded,bold\"];")
        for vma in mm.vmas:
            kind = ("anon" if vma.anon else f"file {vma.file}") + (" shared" if vma.shared else " private")
            kind += " rw" if vma.write else " ro"
            for i, pte in enumerate(vma.ptes):
                where = f"{mm.name}.{vma.name}" + (f"[{i}]" if len(vma.ptes) > 1 else "")
                node = f"pte:{mm.name}:{vma.name}:{i}"
                label = _pte_label(where, pte) + (f"\n({kind})" if i == 0 else "")
                style = "rounded" if pte is not None else "rounded,dashed"
                out.append(f"    {q(node)} [label={q(label)}, style={q(style)}];")
                edges.append(f"  {q('mm:' + mm.name)} -> {q(node)};")
                devpriv = concepts.device_private_entry(pte)
                if pte is not None and (pte.present or pte.devexcl or devpriv):
                    used.add(pte.page)
                    dashed = "device-exclusive" if pte.devexcl else "device-private" if devpriv else ""
                    edges.append(f"  {q(node)} -> {q(f'page:{pte.page}')}"
                                 + (f" [style=dashed, label=\"{dashed}\"];" if dashed else ";"))
                elif pte is not None:
                    edges.append(f"  {q(node)} -> {q(f'slot:{pte.slot}')} [style=dashed];")
        out.append("  }")
    slots = {pte.slot for mm in state.mms for v in mm.vmas for pte in v.ptes if pte is not None and pte.swap}
    for h in state.handles:
        used.add(h.page)
        kind = "device-exclusive" if getattr(h, "device", False) else (
            ("FOLL_PIN" if h.pin else "FOLL_GET") + ("|FOLL_WRITE" if h.write else "")
            + ("|FOLL_LONGTERM" if h.longterm else ""))
        refs = f" x{h.refs}" if getattr(h, "refs", 1) > 1 else ""
        label = f"{h.name}\n{kind}{refs}\nby {h.owner}" + ("" if h.live else "\nreleased")
        colour = "#cc0000" if h.pin and h.live else ("#999999" if not h.live else "#e69138")
        out.append(f"  {q('handle:' + h.name)} [label={q(label)}, shape=hexagon, color={q(colour)},"
                   f" style={q('solid' if h.live else 'dashed')}];")
        edges.append(f"  {q(f'page:{h.page}')} -> {q('handle:' + h.name)} [dir=back, color={q(colour)},"
                     f" label={q('pin' if h.pin else 'ref')}" + ("" if h.live else ", style=dashed") + "];")
    for pipe in state.pipes:
        out.append(f"  {q('pipe:' + pipe.name)} [label={q('pipe ' + pipe.name)}, shape=cds];")
        for n, b in enumerate(pipe.bufs):
            used.add(b)
            edges.append(f"  {q(f'page:{b}')} -> {q('pipe:' + pipe.name)} [dir=back, label={q(f'buf {n}')}];")
    for name, pages in state.files:
        out.append(f"  {q('file:' + name)} [label={q('file ' + name + ' page cache')}, shape=folder];")
        for i, pfn in enumerate(pages):
            used.add(pfn)
            edges.append(f"  {q(f'page:{pfn}')} -> {q('file:' + name)} [dir=back, style=dotted,"
                         f" label={q(f'{name}[{i}]')}];")
    for pfn, p in enumerate(state.pages):
        if p.swapcache >= 0 and not p.freed:
            used.add(pfn)
            slots.add(p.swapcache)
            edges.append(f"  {q(f'page:{pfn}')} -> {q(f'slot:{p.swapcache}')} [style=dotted, label=\"swap cache\"];")
    for s in sorted(slots):
        if 0 <= s < len(state.slots):
            slot_label = f"swap slot {s}\nvalue {content_text(state.slots[s])}"
            out.append(f"  {q(f'slot:{s}')} [label={q(slot_label)}, shape=cylinder];")
    for pfn in sorted(used):
        p = state.pages[pfn]
        kind = _page_kind(p)
        flags = page_flags(state, pfn)
        label = f"#{pfn}  value {content_text(p)}\nref {p.refcount}  map {p.mapcount}  pin {p.pincount}" + (
            f"\n{flags}" if flags else "")
        attrs = [f"label={q(label)}", "style=\"filled\"" if kind != "freed" else "style=\"dashed\"",
                 f"fillcolor={q(_COLOURS[kind])}"]
        if _pinned(p):
            attrs += [f"color={q(_COLOURS['pinned'])}", "penwidth=3"]
        out.append(f"  {q(f'page:{pfn}')} [{', '.join(attrs)}];")
    out += edges
    out += [
        "  subgraph cluster_legend {",
        '    label="legend"; fontsize=9; style=dashed; color="#bbbbbb";',
        f'    legend_excl [label="exclusive", style=filled, fillcolor={q(_COLOURS["exclusive"])}, fontsize=8];',
        f'    legend_shared [label="shared", style=filled, fillcolor={q(_COLOURS["shared"])}, fontsize=8];',
        f'    legend_pinned [label="pinned", style=filled, fillcolor="#ffffff", color={q(_COLOURS["pinned"])},'
        " penwidth=3, fontsize=8];",
        f'    legend_file [label="page cache", style=filled, fillcolor={q(_COLOURS["file"])}, fontsize=8];',
        "    legend_excl -> legend_shared -> legend_file -> legend_pinned [style=invis];",
        "  }",
        "}",
    ]
    return "\n".join(out) + "\n"


def _shown_execution(r: Result):
    """For an explored run: the check whose execution to draw (a counterexample first)."""
    with_witness = [c for c in r.checks if getattr(c, "witness", None)]
    return next((c for c in with_witness if c.shows == "counterexample"), with_witness[0] if with_witness else None)


def shown_final_state(r: Result) -> tuple[State | None, str]:
    """The final state a run's state graph draws, and what it is: the run's own
    final state, or for an explored run with several, the end of the execution it
    shows (its counterexample first), else its first final state."""
    if r.final is not None or getattr(r, "exploration", None) is None:
        return r.final, "final state"
    model = race.model_for(r)
    c = _shown_execution(r)
    if c is not None:
        kind = "counterexample" if c.shows == "counterexample" else "witness"
        return race.end_state(model, c.witness), (f"final state of the {kind} for line {c.assertion.span.line}")
    finals = race.final_states(r, model)
    if finals:
        return finals[0].state, f"final state 1 of {len(finals)}"
    return None, "final state"


def _micro_lines(tr, texts: dict, show_line: bool, resumed: str | None) -> list[tuple[str, str]]:
    lines = [("b", f"{tr.actor}: {tr.label}")]
    if show_line and tr.step in texts:  # the source line, when the actor starts a step
        lines.append(("", f"line {texts[tr.step][0]}: {texts[tr.step][1]}"))
    if resumed:
        lines.append(("bad", resumed))
    for e in tr.events:
        if e.minor:
            continue
        if e.rule:
            lines.append(("rule", f"rule {e.rule}" + (f" [{e.commit}]" if e.commit else "") + f": {e.text}"))
        else:
            lines.append(("", e.text))
    if tr.outcome is not None and not tr.outcome.ok:
        lines.append(("bad", f"-> failed: {tr.outcome.error}"))
    elif tr.outcome is not None and tr.outcome.value is not None:
        lines.append(("", f"-> {tr.outcome.value}"))
    return lines


def _explored_trace(r: Result, out: list[str]) -> list[str]:
    """The execution an explored run shows, as one lane (cluster) per actor of the
    race, time downwards; sequential steps before and after it folded into one
    node each; a red edge where an actor blocked on a lock resumes after the
    holder's unlock.  Returns the nodes that lead to the verdict."""
    c = _shown_execution(r)
    if c is None:
        return []
    kind = {"counterexample": "counterexample", "witness": "witness"}.get(c.shows, "execution")
    trs = c.witness
    head = [("b", f"{kind} for line {c.assertion.span.line}: {assertion_text(c.assertion)}"),
            ("", "schedule: " + ",".join(t.actor for t in trs))]
    out.append(f"  execution [label={_html_lines(head)}, shape=plaintext];")
    sc = r.scenario
    texts = {st.number: (st.span.line, st.text) for st in sc.steps}
    model = race.model_for(r)
    handoffs = race.handoffs(model, trs)
    resumed = {h.resume: f"waited: {h.why}" for h in handoffs}
    segments = explored._segments(sc, trs, verbose=False)
    race_ix = [k for kind_, ix in segments if kind_ == "race" for k in ix]
    actors = list(dict.fromkeys(trs[k].actor for k in race_ix))
    headings = explored.lane_headings(sc, trs, race_ix) if race_ix else {}
    prev_all = ["execution"]  # the nodes the next segment follows
    for kind_, ix in segments:
        if kind_ != "race":
            node = f"{kind_}{ix[0] + 1}"
            text = " ".join(explored._folded(sc, trs, kind_, ix, 10_000))
            out.append(f"  {node} [label={_html_lines([('', text)])}, style=\"rounded,dashed\"];")
            out += [f"  {p} -> {node};" for p in prev_all]
            prev_all = [node]
            continue
        lanes: dict[str, list[str]] = {a: [] for a in actors if any(trs[k].actor == a for k in ix)}
        started: dict[str, int] = {}
        nodes = {}
        for k in ix:
            tr = trs[k]
            show_line = started.get(tr.actor) != tr.step
            started[tr.actor] = tr.step
            node = f"micro{k + 1}"
            nodes[k] = node
            failed = tr.outcome is not None and not tr.outcome.ok
            colour = ', color="#cc0000"' if failed else ""
            lanes[tr.actor].append(f"    {node} [label={_html_lines(_micro_lines(tr, texts, show_line, resumed.get(k)), 48)}{colour}];")
        for actor, body in lanes.items():
            out.append(f"  subgraph {q('cluster_lane_' + actor)} {{")
            out.append(f"    label={q(headings.get(actor, actor))}; style=rounded; color=\"#999999\";")
            out += body
            out.append("  }")
        last: dict[str, str] = {}
        for k in ix:  # program order within a lane; the first of each lane follows what came before
            a = trs[k].actor
            if a in last:
                out.append(f"  {last[a]} -> {nodes[k]};")
            else:
                out += [f"  {p} -> {nodes[k]};" for p in prev_all]
            last[a] = nodes[k]
        for x, y in zip(ix, ix[1:]):  # time downwards across lanes
            if trs[x].actor != trs[y].actor:
                out.append(f"  {nodes[x]} -> {nodes[y]} [style=invis];")
        for h in handoffs:
            if h.release in nodes and h.resume in nodes:
                out.append(f"  {nodes[h.release]} -> {nodes[h.resume]} [color=\"#cc0000\", style=bold,"
                           f" constraint=false, label={q('lock hand-off')}];")
        prev_all = list(last.values())
    return prev_all


def trace_dot(r: Result) -> str:
    """DOT of a run's steps as a chain, each with the rules that fired, ending in the verdict.

    For an explored (concurrent) run, the chain is the micro-steps of the
    execution it shows: the counterexample of a failing assertion, else a witness.
    """
    out = _head("trace", f"{r.scenario.name} on {r.backend}: got {r.verdict}"
                + (f", expected {r.expected}" if r.expected else ""), "TB")
    prev = None
    if getattr(r, "exploration", None) is not None:
        return _verdict_node(r, out, _explored_trace(r, out))
    for rec in r.steps:
        s, o = rec.step, rec.outcome
        lines = [("b", f"{s.number}. line {s.span.line}: {s.text}")]
        if not o.ok:
            lines.append(("bad", f"-> {o.error or 'failed'}"))
        elif o.value is not None:
            lines.append(("", f"-> {o.value}"))
        for e in rec.events:
            if e.minor or (not o.ok and e.text == o.error):
                continue
            if e.rule:
                lines.append(("rule", f"rule {e.rule}" + (f" [{e.commit}]" if e.commit else "") + f": {e.text}"))
            else:
                lines.append(("", e.text))
        node = f"step{s.number}"
        colour = ', color="#cc0000"' if not o.ok else ""
        out.append(f"  {node} [label={_html_lines(lines)}{colour}];")
        if prev:
            out.append(f"  {prev} -> {node};")
        prev = node
    return _verdict_node(r, out, prev)


def _verdict_node(r: Result, out: list[str], prev: str | list[str] | None) -> str:
    verdict = [("b", f"verdict: {r.verdict}" + (f" (expected {r.expected})" if r.expected else ""))]
    for c in r.checks:
        mark = "Ok" if c.holds else ("No" if c.holds is not None else "--")
        values = ", ".join(f"{k}={v}" for k, v in c.values.items())
        verdict.append(("bad" if c.holds is False else "", f"{mark}  line {c.assertion.span.line}: "
                        f"{assertion_text(c.assertion)}" + (f"  ({values})" if values else "")))
    bad = r.verdict == "fail" or not r.ok
    out.append(f"  verdict [label={_html_lines(verdict)}, shape=note, style=filled,"
               f" fillcolor={q('#fbe9e7' if bad else '#d9ead3')}];")
    for p in [prev] if isinstance(prev, str) else (prev or []):
        out.append(f"  {p} -> verdict;")
    out.append("}")
    return "\n".join(out) + "\n"


def has_counterexample(r: Result) -> bool:
    """A run worth a trace graph: an assertion failed, or the verdict is not as expected."""
    if getattr(r, "exploration", None) is not None:
        return _shown_execution(r) is not None and (r.verdict == "fail" or not r.ok)
    return r.verdict == "fail" or not r.ok


def dot_binary() -> str | None:
    return shutil.which("dot")


def render(dot_text: str, fmt: str) -> bytes:
    """DOT → SVG/PNG/PDF bytes with Graphviz's `dot`; DotError when it is missing or fails."""
    exe = dot_binary()
    if exe is None:
        raise DotError(f"rendering {fmt.upper()} needs Graphviz's `dot` (Debian: apt-get install graphviz); "
                       "write .dot files instead, or install it")
    p = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=60)
    if p.returncode != 0:
        raise DotError(f"dot -T{fmt} failed: {p.stderr.decode(errors='replace').strip()}")
    return p.stdout


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _stems(results: list[Result]) -> dict[int, str]:
    label = labels([r.scenario for r in results])
    return {id(r): _safe(label[r.scenario.where].replace(os.sep, ".").replace("/", ".")) for r in results}


def outputs(results: list[Result], target: str, fmt: str | None = None) -> list[tuple[Path, str]]:
    """(path, DOT text) for every file ``--dot TARGET`` writes.

    A TARGET ending in .dot, .gv, .svg, .png or .pdf is a file: it gets the
    state of the one run, and STEM.trace.SUFFIX beside it gets its
    counterexample (DotError for several runs).  Any other TARGET is a
    directory: STEM.BACKEND.state.FMT per run, STEM.BACKEND.trace.FMT per
    counterexample, in the format ``fmt`` (default dot).
    """
    t = Path(target)
    directory = t.is_dir() or target.endswith(("/", os.sep)) or t.suffix.lower() not in SUFFIXES
    if not directory and len(results) != 1:
        raise DotError(f"{target} is one file, and {len(results)} runs need a graph each: give a directory")
    if directory:
        fmt = fmt or "dot"
        stems = _stems(results)
        out = []
        for r in results:
            base = f"{stems[id(r)]}.{_safe(r.backend)}"
            final, what = shown_final_state(r)
            out.append((t / f"{base}.state.{fmt}", state_dot(final, f"{r.scenario.name} on {r.backend}: {what}")))
            if has_counterexample(r):
                out.append((t / f"{base}.trace.{fmt}", trace_dot(r)))
        return out
    if fmt and t.suffix.lower() != "." + fmt:
        t = t.with_suffix("." + fmt)
    r = results[0]
    final, what = shown_final_state(r)
    out = [(t, state_dot(final, f"{r.scenario.name} on {r.backend}: {what}"))]
    if has_counterexample(r):
        out.append((t.with_name(f"{t.stem}.trace{t.suffix}"), trace_dot(r)))
    return out


def file_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    return suffix if suffix in RENDERED else "dot"


def write(results: list[Result], target: str, fmt: str | None = None) -> list[Path]:
    """Write the files; a rendered format falls back to .dot (and raises DotError at the end) without dot."""
    written, problem = [], None
    for path, text in outputs(results, target, fmt):
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = file_format(path, fmt)
        if kind in RENDERED:
            try:
                path.write_bytes(render(text, kind))
                written.append(path)
                continue
            except DotError as e:
                problem = problem or e
                path = path.with_suffix(".dot")
        path.write_text(text, encoding="utf-8")
        written.append(path)
    if problem:
        raise DotError(f"{problem} (wrote the .dot files instead: {', '.join(map(str, written))})")
    return written
