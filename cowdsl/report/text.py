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

A native result (``native_block``) is no herd7 block: the kernel ran the
scenario for real, once or N times, and the block says how often, then each
assertion with what the runs showed::

    Test NAME on native
    Runs on this kernel: 20 (seed 0); sampled executions, never a proof
    A.x=2; A.y=3;
    Ok
      Ok  line 12: always A.x == 2  (none in 20 runs)
      Ok  line 14: sometimes A.y == 3  (witnessed 20 of 20)
    Time 0.295 s
"""

from __future__ import annotations

from cowdsl import scenario as S
from cowdsl.judge import Result
from cowdsl.judge.quantify import NOT_JUDGED
from cowdsl.judge.sampled import key as runs_key
from cowdsl.native.repeat import RUNS
from cowdsl.report import explored
from cowdsl.report.common import final_state, herd_name, title_lines
from cowdsl.semantics.invariants import InvariantViolation

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


def verdict_block(r: Result, highlight=None, width: int = 80) -> str:
    """``highlight`` optionally colours the assertions' source text (cowdsl.lexer.highlighter).
    A long title is printed once, under the Test line; the other lines use the file's name.
    A native result has a block of its own (``native_block``)."""
    if r.spec.native:
        return native_block(r, highlight, width)
    hl = highlight or _plain
    name = herd_name(r.scenario)
    word, pos, neg, obs = _HERD.get(r.verdict, (r.verdict, 0, 0, r.verdict))
    values = {}
    for c in r.checks:
        if NOT_JUDGED not in c.values:
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
        undecided = "" if c.holds is not None else (
            f"  (not judged on this backend: {c.values[NOT_JUDGED]})" if NOT_JUDGED in c.values
            else "  (not observable on this backend)")
        lines.append(f"  {_mark(c.holds):<3} line {c.assertion.span.line}: {hl('assert ' + c.assertion.text)}{undecided}")
    lines.append(expectation_line(r))
    return "\n".join(line for line in lines if line)


def _not_run(r: Result) -> bool:
    """Whether the kernel ran none of the steps: the scenario was skipped before it started
    (a step native cannot do, a need this machine lacks, a limit)."""
    return r.verdict == "skip" and bool(r.steps) and not any(rec.outcome.ok for rec in r.steps)


def _runs_line(r: Result) -> str:
    """How often the kernel ran the scenario (cowdsl.native.repeat): once, N times, or not at all."""
    if _not_run(r):
        why = next((c.values["unsupported"] for c in r.checks if "unsupported" in c.values),
                   next((rec.outcome.error for rec in r.steps if rec.outcome.error), None))
        return "Runs on this kernel: none" + (f"; {why}" if why else "")
    runs = next((c.values[RUNS] for c in r.checks if RUNS in c.values), None)
    if runs is None:
        return "Runs on this kernel: 1 (one real execution)"
    return f"Runs on this kernel: {runs}; sampled executions, never a proof"


def native_block(r: Result, highlight=None, width: int = 80) -> str:
    """What the kernel did: how many runs (``_runs_line``), the values the shown run saw,
    the verdict, and each assertion with its quantifier and, when repeated, what the runs
    showed ("witnessed K of N", "a violation seen (run k)", "none in N runs")."""
    hl = highlight or _plain
    name = herd_name(r.scenario)
    words = {runs_key(c.assertion) for c in r.checks} | {RUNS, "unsupported", NOT_JUDGED}
    values: dict[str, str] = {}
    for c in r.checks:
        if NOT_JUDGED not in c.values:
            values.update((k, v) for k, v in c.values.items() if k not in words)
    not_run = _not_run(r)
    lines = [
        f"Test {name} on {r.backend}",
        *title_lines(r.scenario, width),
        *explored.wrap(_runs_line(r), width),
        " ".join(f"{k}={v};" for k, v in values.items()),
        _HERD.get(r.verdict, (r.verdict,))[0],
    ]
    for c in r.checks:
        a = c.assertion
        said = "assert" if a.quantifier == S.ALWAYS else a.quantifier
        if c.holds is not None:
            note = f"  ({c.values[runs_key(a)]})" if runs_key(a) in c.values else ""
        elif NOT_JUDGED in c.values:
            note = f"  (not judged on this backend: {c.values[NOT_JUDGED]})"
        elif not_run:
            note = "  (not run)"
        else:
            note = f"  ({c.values.get('unsupported', 'not observable on this backend')})"
        lines.append(f"  {_mark(c.holds):<3} line {a.span.line}: {hl(said + ' ' + a.text)}{note}")
    lines.append(f"Time {r.seconds:.3f} s")
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
