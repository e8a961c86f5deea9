"""Verdicts of explored (concurrent) runs: herd7's block per backend, then for
each assertion the one execution that shows it, step by step."""

from __future__ import annotations

from cowdsl import scenario as S
from cowdsl.judge import Result

_OBS = {S.ALWAYS: "forall", S.SOMETIMES: "exists", S.NEVER: "~exists", S.INVARIANT: "invariant"}


def _observation(pos: int, neg: int) -> str:
    if neg == 0 and pos > 0:
        return "Always"
    if pos == 0:
        return "Never"
    return "Sometimes"


def execution(trs, highlight=None) -> list[str]:
    """Each micro-step numbered, with its actor, op, micro-step, the rule that fired
    and what changed.  Consecutive micro-steps of one actor stay together."""
    out = []
    for n, tr in enumerate(trs, 1):
        what = [str(e) for e in tr.events if not e.minor]
        head = f"  {n:>3}. {tr.actor:<8} step {tr.step:<3} {tr.label:<8}"
        if tr.outcome is not None and not tr.outcome.ok:
            what.append(f"→ failed: {tr.outcome.error}")
        elif tr.outcome is not None and tr.outcome.value is not None:
            what.append(f"→ {tr.outcome.value}")
        out.append(head + ("  " + what[0] if what else ""))
        for w in what[1:]:
            out.append(" " * len(head) + "  " + w)
    return out


def report(r: Result, show_state: bool = False, highlight=None) -> str:
    ex = r.exploration
    sc = r.scenario
    name = sc.name
    finals = len({w.state for w in ex.finals})
    lines = [f"Test {name} on {r.backend} ({ex.mode} exploration)"]
    if ex.partial:
        lines.append(f"partial: {ex.states} states explored, bound hit ({ex.partial}); no verdict is claimed that was not established")
    lines.append(f"States {finals}")
    lines.append(f"Explored {ex.states} states, {ex.executions} executions, {ex.transitions} micro-steps in {ex.seconds:.3f}s")
    if ex.deadlocks:
        lines.append(f"Deadlocks {len(ex.deadlocks)} (an actor waits forever)")
    for c in r.checks:
        a = c.assertion
        word = "Ok" if c.holds else ("No" if c.holds is not None else "??")
        pos, neg = c.positive or 0, c.negative or 0
        lines += [
            word,
            "Witnesses",
            f"Positive: {pos} Negative: {neg}",
            f"Condition {_OBS.get(a.quantifier, 'forall')} ({a.text})",
            f"Observation {name} {_observation(pos, neg)} {pos} {neg}",
        ]
        if c.witness is not None and c.shows:
            kind = "Counterexample" if c.shows == "counterexample" else ("Witness" if c.shows == "witness" else "Execution")
            lines.append(f"{kind} for line {a.span.line} ({a.quantifier}: {a.text}), {len(c.witness)} micro-steps:")
            lines += execution(c.witness, highlight)
            if c.values:
                lines.append("  then: " + " ".join(f"{k}={v};" for k, v in c.values.items()))
            lines.append("  schedule: " + ",".join(tr.actor for tr in c.witness))
    lines.append(f"Time {name} {r.seconds:.3f}")
    if r.expected:
        status = "as expected" if r.ok else "MISMATCH"
        lines.append(f"Expect {r.expected} on {r.backend}: got {r.verdict}, {status}")
    elif not r.ok:
        lines.append(f"Verdict {r.verdict} (no expect line for {r.backend})")
    if show_state and r.final is not None:
        from cowdsl.report.text import final_state

        lines.append(final_state(r.final))
    return "\n".join(lines) + "\n"
