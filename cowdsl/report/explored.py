"""Verdicts of explored (concurrent) runs: herd7's block per backend, each
distinct final state as a line of the facts its assertions see, one block per
assertion, then the executions that show the verdicts, each printed once with
every assertion it decides.

An execution prints for a mail: within ``width`` columns, sequential steps
before and after the race folded into one line each (``before: A mmap buf, A
write buf=1``), every micro-step of the race kept, in one of two forms:

- ``lanes``, the race diagram of kernel commit messages: one column per actor
  (``CPU0 (A: fork)`` | ``CPU1 (T: GUP-fast pin)``), time downwards, each cell
  the function and its decision;
- ``list``: one numbered line per micro-step, with the source line of its step.

The default is lanes for two or three actors in the race, the list otherwise.
``verbose`` keeps the sequential steps as micro-steps too.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from cowdsl import scenario as S
from cowdsl.explore.model import DRAINER_PREFIX, Model, Transition
from cowdsl.judge import Check, Result
from cowdsl.judge.explored import EVIDENCE
from cowdsl.judge.quantify import NOT_JUDGED
from cowdsl.report import race
from cowdsl.report.common import final_state, herd_name, title_lines

_OBS = {S.ALWAYS: "forall", S.SOMETIMES: "exists", S.NEVER: "~exists", S.INVARIANT: "invariant",
        S.REACHABLE: "reachable"}
WIDTH = 80
SEPARATOR = " | "


def _observation(pos: int, neg: int) -> str:
    if neg == 0 and pos > 0:
        return "Always"
    if pos == 0:
        return "Never"
    return "Sometimes"


def wrap(text: str, width: int, indent: str = "", more: str | None = None) -> list[str]:
    """``text`` in lines of at most ``width`` columns: the first indented by
    ``indent``, the rest by ``more`` (default: two spaces deeper); a word longer
    than a line is broken."""
    more = indent + "  " if more is None else more
    return textwrap.wrap(text, max(width, len(more) + 8), initial_indent=indent, subsequent_indent=more,
                         break_on_hyphens=False) or [indent.rstrip()]


def _event_lines(tr: Transition, commits: bool = True) -> list[str]:
    """What a micro-step did: its events (decisions with their commit) and how its op ended."""
    what = [str(e) if commits else e.text for e in tr.events if not e.minor]
    if tr.outcome is not None and not tr.outcome.ok:
        err = tr.outcome.error or "failed"
        if not (what and what[-1].startswith(err)):
            what.append(f"→ {err}" if err.startswith("not run") else f"→ failed: {err}")
    elif tr.outcome is not None and tr.outcome.value is not None:
        what.append(f"→ {tr.outcome.value}")
    return what


def _steps(sc: S.Scenario) -> dict[int, S.Step]:
    return {s.number: s for s in sc.steps}


def _segments(sc: S.Scenario, trs: Sequence[Transition], verbose: bool,
              bystanders: Sequence[str] = ()) -> list[tuple[str, list[int]]]:
    """The execution cut into ("race", indices) runs of micro-steps of par steps and
    ("before" | "between" | "after", indices) runs of sequential ones, where the
    steps of bystanders (actors that play no part, judge.shrink) count as
    sequential.  Without a par step (or ``verbose``) it is one race: nothing is folded."""
    steps = _steps(sc)
    par = [(bool(steps[t.step].par) if t.step in steps else True) and t.actor not in bystanders for t in trs]
    if verbose or not any(par):
        return [("race", list(range(len(trs))))]
    out: list[tuple[str, list[int]]] = []
    for k, p in enumerate(par):
        kind = "race" if p else "seq"
        if out and out[-1][0] == kind:
            out[-1][1].append(k)
        else:
            out.append((kind, [k]))
    named = []
    for n, (kind, ix) in enumerate(out):
        if kind == "seq":
            kind = "before" if n == 0 else ("after" if n == len(out) - 1 else "between")
        named.append((kind, ix))
    return named


def _folded(sc: S.Scenario, trs: Sequence[Transition], kind: str, ix: list[int], width: int) -> list[str]:
    """Sequential steps in one line: `before: A mmap buf, A write buf=1`."""
    steps = _steps(sc)
    words = []
    for k in ix:
        tr = trs[k]
        if tr.outcome is None and k != ix[-1] and trs[k + 1].step == tr.step:
            continue  # one entry per step, at its last micro-step
        words.append(race.brief(steps[tr.step], tr.outcome) if tr.step in steps else tr.actor)
    return wrap(f"{kind}: " + ", ".join(words), width, "", "  ")


def _actors(trs: Sequence[Transition], ix: list[int]) -> list[str]:
    return list(dict.fromkeys(trs[k].actor for k in ix))


def race_actors(sc: S.Scenario, trs: Sequence[Transition], verbose: bool = False) -> list[str]:
    """The actors of the race part of an execution, in order of their first micro-step."""
    ix = [k for kind, part in _segments(sc, trs, verbose) if kind == "race" for k in part]
    return _actors(trs, ix)


def _resumes(handoffs: Sequence[race.Handoff], numbered: bool = True) -> dict[int, str]:
    """What a resumed actor's first micro-step says: why it waited, and (in the
    numbered list) whose micro-step freed it."""
    return {h.resume: f"(was blocked: {h.why}" + (f"; runs after {h.release + 1})" if numbered else ")")
            for h in handoffs}


def as_list(sc: S.Scenario, trs: Sequence[Transition], ix: list[int], width: int,
            handoffs: Sequence[race.Handoff] = ()) -> list[str]:
    """Micro-steps, one numbered entry each: actor, source line, micro-step, then what it did."""
    steps = _steps(sc)
    resumes = _resumes(handoffs)
    n_w = len(str(len(trs))) + 1
    a_w = max(len(trs[k].actor) for k in ix)
    lines_ = [f"line {steps[trs[k].step].span.line}" if trs[k].step in steps
              else "" if trs[k].actor.startswith(DRAINER_PREFIX) else f"step {trs[k].step}" for k in ix]
    l_w = max(len(x) for x in lines_)
    m_w = max(len(trs[k].label) for k in ix)
    out = []
    for k, where in zip(ix, lines_):
        tr = trs[k]
        head = f"  {str(k + 1) + '.':>{n_w}} {tr.actor:<{a_w}} {where:<{l_w}} {tr.label:<{m_w}}  "
        what = ([resumes[k]] if k in resumes else []) + _event_lines(tr)
        what = what or ["(no change)"]
        pad = " " * len(head)
        if width - len(head) < 24:  # too narrow beside the head: the text goes below it
            out.append(head.rstrip())
            pad = " " * 8
            for w in what:
                out += wrap(w, width, pad, pad + "  ")
            continue
        first = True
        for w in what:
            for line in wrap(w, width - len(head), "", "  "):
                out.append((head if first else pad) + line)
                first = False
    return out


def lane_headings(sc: S.Scenario, trs: Sequence[Transition], ix: list[int]) -> dict[str, str]:
    """actor → `CPU0 (A: fork)`: what each actor of the race does in it."""
    steps = _steps(sc)
    out, cpu = {}, 0
    for actor in _actors(trs, ix):
        if actor.startswith(DRAINER_PREFIX):  # no CPU of the scenario's: the activity on one
            out[actor] = f"other activity ({actor}: lru_add_drain)"
            continue
        mine = [steps[trs[k].step] for k in ix if trs[k].actor == actor and trs[k].step in steps]
        ops = ", ".join(dict.fromkeys(race.what(s) for s in mine))
        name = race.lane_name(mine[0], cpu) if mine else f"CPU{cpu}"
        cpu += name.startswith("CPU")
        out[actor] = f"{name} ({actor}: {ops})"
    return out


def as_lanes(sc: S.Scenario, trs: Sequence[Transition], ix: list[int], width: int,
             handoffs: Sequence[race.Handoff] = ()) -> list[str]:
    """The race diagram: one column per actor, time downwards; each cell the
    source line when an op starts, then the functions and their decisions."""
    steps = _steps(sc)
    resumes = _resumes(handoffs, numbered=False)
    actors = _actors(trs, ix)
    n = len(actors)
    col = max(12, (width - len(SEPARATOR) * (n - 1)) // n)
    heads = lane_headings(sc, trs, ix)

    def row(cells: dict[int, str]) -> str:
        parts = [cells.get(i, "").ljust(col) for i in range(n)]
        return SEPARATOR.join(parts).rstrip()

    out = []
    head_lines = [wrap(heads[a], col, "", "  ") for a in actors]
    for r in range(max(len(h) for h in head_lines)):
        out.append(row({i: h[r] for i, h in enumerate(head_lines) if r < len(h)}))
    out.append("-+-".join("-" * col for _ in actors))
    started: dict[str, int] = {}
    for k in ix:
        tr = trs[k]
        i = actors.index(tr.actor)
        cell = []
        if started.get(tr.actor) != tr.step and tr.step in steps:
            s = steps[tr.step]
            op_text = s.text.split(":", 1)[1].strip() if ":" in s.text else s.text
            cell.append(f"line {s.span.line}: {op_text}")
            started[tr.actor] = tr.step
        if k in resumes:
            cell.append(resumes[k])
        cell += _event_lines(tr, commits=True) or [f"({tr.label})"]
        for text in cell:
            for line in wrap(text, col, "", "  "):
                out.append(row({i: line}))
    return out


def execution(trs, highlight=None, *, scenario: S.Scenario | None = None, width: int = WIDTH,
              form: str | None = None, verbose: bool = False, model: Model | None = None,
              bystanders: Sequence[str] = ()) -> list[str]:
    """An execution as lines of at most ``width`` columns: the folded sequential
    steps and every micro-step of the race, as ``form`` "lanes" or "list" (None:
    lanes for two or three actors in the race, else the list).  Without the
    scenario, every micro-step in the list form (as before)."""
    if scenario is None:
        return as_list_plain(trs)
    if not trs:
        return ["(no micro-step: the initial state shows it)"]
    handoffs = race.handoffs(model, trs) if model is not None else []
    out = []
    for kind, ix in _segments(scenario, trs, verbose, bystanders):
        if kind != "race":
            out += _folded(scenario, trs, kind, ix, width)
            continue
        chosen = form or ("lanes" if 2 <= len(_actors(trs, ix)) <= 3 else "list")
        out += (as_lanes if chosen == "lanes" else as_list)(scenario, trs, ix, width, handoffs)
    return out


def as_list_plain(trs) -> list[str]:
    """Each micro-step numbered, with its actor, step number and micro-step (no scenario to say more)."""
    out = []
    for n, tr in enumerate(trs, 1):
        what = _event_lines(tr)
        head = f"  {n:>3}. {tr.actor:<8} step {tr.step:<3} {tr.label:<8}"
        out.append(head + ("  " + what[0] if what else ""))
        for w in what[1:]:
            out.append(" " * len(head) + "  " + w)
    return out


def _decides(c: Check) -> str:
    a = c.assertion
    return f"line {a.span.line} ({a.quantifier}: {a.text})"


def _groups(r: Result, model: Model | None) -> list[tuple[str, tuple[Transition, ...], list[Check]]]:
    """The executions to print, each once: (kind, transitions, the checks it shows).
    A failing always/never is shown by an earlier counterexample that breaks it too."""
    groups: list[tuple[str, tuple[Transition, ...], list[Check], set[int]]] = []
    for c in r.checks:
        if c.witness is None or not c.shows:
            continue
        kind = {"counterexample": "Counterexample", "witness": "Witness"}.get(c.shows, "Execution")
        key = id(c.assertion)
        home = next((g for g in groups if g[0] == kind and (g[1] == c.witness or key in g[3])), None)
        if home is not None:
            home[2].append(c)
            continue
        broken: set[int] = set()
        if kind == "Counterexample" and model is not None and c.assertion.quantifier != S.INVARIANT:
            end = race.end_state(model, c.witness)
            _, bad = race.facts(model, end, [x.assertion for x in r.checks
                                             if x.holds is False and x.assertion.quantifier != S.INVARIANT])
            broken = {id(a) for a in bad}
        groups.append((kind, c.witness, [c], broken))
    return [(k, w, cs) for k, w, cs, _ in groups]


def _heading(kind: str, decided: list[str], steps: int, width: int) -> list[str]:
    """`Counterexample for line 43 (...) and line 44 (...), 15 micro-steps:`, broken
    between the assertions when it is too long for one line."""
    parts = [f"{kind} for {decided[0]}"] + [f"and {d}" for d in decided[1:]]
    parts[-1] += f", {steps} micro-steps:"
    out: list[str] = []
    for p in parts:
        if out and len(out[-1]) + 1 + len(p) <= width:
            out[-1] += " " + p
        else:
            out += wrap(p, width, "  " if out else "", "    " if out else "  ")
    return out


def _schedule(trs: Sequence[Transition], width: int) -> list[str]:
    """`schedule: A,A,T,...`, broken after a comma when it is longer than the width."""
    out, line = [], "schedule: "
    names = [t.actor for t in trs]
    for n, a in enumerate(names):
        piece = a + ("," if n < len(names) - 1 else "")
        if len(line) + len(piece) > width and line.strip():
            out.append(line)
            line = "          "
        line += piece
    out.append(line)
    return out


def executions(r: Result, *, width: int = WIDTH, form: str | None = None, verbose: bool = False,
               model: Model | None = None) -> list[str]:
    """Every execution the checks show, each once, headed by what it decides."""
    model = model or race.model_for(r)
    out = []
    for kind, trs, checks in _groups(r, model):
        out.append("")
        out += _heading(kind, [_decides(c) for c in checks], len(trs), width)
        by = [a for a in dict.fromkeys(a for c in checks for a in c.bystanders) if not verbose]
        out += execution(trs, scenario=r.scenario, width=width, form=form, verbose=verbose, model=model,
                         bystanders=by)
        if by:
            out += wrap(f"({', '.join(by)} {'takes' if len(by) == 1 else 'take'} no part: the same outcome "
                        "with {} steps run apart from the race)".format("its" if len(by) == 1 else "their"),
                        width, "", "  ")
        values: dict[str, str] = {}
        for c in checks:
            for k, v in race.shown_values(c.values).items():
                values.setdefault(k, v)
        if values:
            out += wrap("then: " + " ".join(f"{k}={v};" for k, v in values.items()), width, "", "  ")
        out += _schedule(trs, width)
    return out


def warnings(r: Result, width: int = WIDTH) -> list[str]:
    """A verdict whose execution could not be extracted, said aloud (one
    `Warning:` paragraph per check)."""
    out = []
    for c in r.checks:
        note = c.values.get(EVIDENCE)
        if note and c.witness is None:
            shown = "counterexample" if c.shows == "counterexample" else "witness"
            out += wrap(f"Warning: line {c.assertion.span.line} is decided, but its {shown} was {note}: "
                        "rerun with a larger --timeout or --max-states to see it", width, "", "  ")
    return out


def stopped_line(r: Result) -> str:
    """What an exploration that stopped once every verdict was decided says of itself."""
    ex = r.exploration
    assert ex is not None
    shown = dict.fromkeys(c.shows for c in r.checks if c.shows)
    first = " and ".join(f"first {s}" for s in shown) or "verdicts"
    return (f"stopped at the {first}: {ex.states} states; every verdict is decided, the final states "
            "are those found until then (--all-states explores on for every one)")


def _title(r: Result, width: int) -> tuple[str, list[str]]:
    return herd_name(r.scenario), title_lines(r.scenario, width)


def final_state_lines(finals: Sequence[race.FinalState], width: int = WIDTH) -> list[str]:
    """`States N`, then each final state's facts; `(k executions)` where known."""
    out = [f"States {len(finals)}"]
    for f in finals:
        tail = []
        if f.executions is not None:
            tail.append(f"{f.executions} execution{'s' if f.executions != 1 else ''}")
        if f.deadlock:
            tail.append("deadlock")
        line = f.line() + (f"  ({', '.join(tail)})" if tail else "")
        out += wrap(line, width, "", "  ")
    return out


def report(r: Result, show_state: bool = False, highlight=None, *, show_trace: bool = False, width: int = WIDTH,
           form: str | None = None, verbose: bool = False) -> str:
    """The herd7 block of an explored run.  ``show_state`` adds the state table of
    each final state, ``show_trace`` the execution that reaches each one;
    ``width``, ``form`` and ``verbose`` shape the executions (see the module)."""
    ex = r.exploration
    name, title = _title(r, width)
    model = race.model_for(r)
    finals = race.final_states(r, model)
    head = f"Test {name} on {r.backend} ({ex.mode} exploration)"
    explored_how = ""
    if len(head) > width:  # the search's kind moves to the Explored line
        head, explored_how = f"Test {name} on {r.backend}", f" ({ex.mode})"
    lines = [head] + title
    if ex.partial:
        lines += wrap(f"partial: {ex.states} states explored, bound hit ({ex.partial}); "
                      "no verdict is claimed that was not established", width, "", "  ")
    elif ex.stopped:
        lines += wrap(stopped_line(r), width, "", "  ")
    lines += final_state_lines(finals, width)
    counted = f"{ex.executions} executions, " if ex.executions is not None else ""  # counted with --all-states
    lines += wrap(f"Explored{explored_how} {ex.states} states, {counted}"
                  f"{ex.transitions} micro-steps in {ex.seconds:.3f}s", width, "", "  ")
    if ex.deadlocks:
        lines.append(f"Deadlocks {len(ex.deadlocks)} (an actor waits forever)")
    for c in r.checks:
        a = c.assertion
        word = "Ok" if c.holds else ("No" if c.holds is not None else "??")
        pos, neg = c.positive or 0, c.negative or 0
        lines += [word, "Witnesses", f"Positive: {pos} Negative: {neg}"]
        lines += wrap(f"Condition {_OBS.get(a.quantifier, 'forall')} ({a.text})", width, "", "  ")
        if NOT_JUDGED in c.values:
            lines.append(f"  not judged on this backend: {c.values[NOT_JUDGED]}")
        lines.append(f"Observation {name} {_observation(pos, neg)} {pos} {neg}")
    lines += warnings(r, width)
    lines.append(f"Time {name} {r.seconds:.3f}")
    lines += executions(r, width=width, form=form, verbose=verbose, model=model)
    if r.expected:
        status = "as expected" if r.ok else "MISMATCH"
        lines.append(f"Expect {r.expected} on {r.backend}: got {r.verdict}, {status}")
    elif not r.ok:
        lines.append(f"Verdict {r.verdict} (no expect line for {r.backend})")
    if show_state or show_trace:
        lines += per_final_state(r, finals, model, show_state=show_state, show_trace=show_trace, width=width,
                                 form=form, verbose=verbose)
    return "\n".join(lines) + "\n"


def per_final_state(r: Result, finals: Sequence[race.FinalState], model: Model, *, show_state: bool,
                    show_trace: bool, width: int = WIDTH, form: str | None = None, verbose: bool = False) -> list[str]:
    """For each final state: its facts, its state table (``show_state``) and the
    shortest execution that reaches it (``show_trace``)."""
    out = []
    for n, f in enumerate(finals, 1):
        out.append("")
        out += wrap(f"Final state {n} of {len(finals)}: {f.line()}", width, "", "  ")
        if f.fails:
            out += wrap("breaks " + ", ".join(f"line {a.span.line} ({a.quantifier}: {a.text})" for a in f.fails),
                        width, "  ", "    ")
        if show_trace:
            trs = race.witness_of(model, f.state)
            if trs is None:
                out.append("  execution: not extracted (bound hit)")
            else:
                out.append(f"Execution reaching it, {len(trs)} micro-steps:")
                out += execution(trs, scenario=r.scenario, width=width, form=form, verbose=verbose, model=model)
                out += _schedule(trs, width)
        if show_state:
            out += final_state(f.state).splitlines()[1:]
    return out

