"""Assertions judged on N real executions, sampled: what was seen, never a proof.

A native run is one real execution; a `par` block, or a scenario asked to repeat, runs N
times.  Each assertion is then judged on the executions seen, as its quantifier is on
the executions a model explores (``quantify``), and its check says so in words:

- `always` / `never`: "a violation seen (run k)" (false: one execution is enough), or
  "none in N runs" (true, but only as far as N executions go);
- `sometimes`: "witnessed K of N" (true when K > 0; false otherwise, again only so far).

A run that could not decide the assertion (aborted, or the fact is not observable) is
left out of N, and the words say how many were.
"""

from __future__ import annotations

from collections.abc import Sequence

from cowdsl import scenario as S
from cowdsl.judge.result import Check, Result


def key(a: S.Assertion) -> str:
    """The check value that holds the words for ``a`` (one per assertion: a report merges values)."""
    return f"line {a.span.line}"


def violations(quantifier: str, runs: Sequence[bool | None]) -> list[int]:
    """The runs (1-based) that broke an `always`/`never` assertion, or witnessed a `sometimes`."""
    want = quantifier == S.SOMETIMES  # a witness holds; a violation does not
    return [k for k, h in enumerate(runs, 1) if h is want]


def holds(quantifier: str, runs: Sequence[bool | None]) -> bool:
    """Whether the assertion holds on the runs seen: a `sometimes` witnessed, an `always` or
    `never` not violated."""
    seen = violations(quantifier, runs)
    return bool(seen) if quantifier == S.SOMETIMES else not seen


def wording(quantifier: str, runs: Sequence[bool | None]) -> str | None:
    """What N runs showed for an assertion of ``quantifier``, each run's check given (None: the
    run could not decide it); None when no run decided it or the quantifier needs every state."""
    decided = [h for h in runs if h is not None]
    if not decided or quantifier not in (S.ALWAYS, S.NEVER, S.SOMETIMES):
        return None
    undecided = len(runs) - len(decided)
    tail = f" ({undecided} undecided)" if undecided else ""
    seen = violations(quantifier, runs)
    n = len(decided)
    if quantifier == S.SOMETIMES:
        return f"witnessed {len(seen)} of {n}{tail}"
    if seen:
        return f"a violation seen (run {seen[0]})" + (f", {len(seen)} of {n} runs" if len(seen) > 1 else "") + tail
    return f"none in {n} run{'s' if n != 1 else ''}{tail}"


def judge(a: S.Assertion, checks: Sequence[Check]) -> Check:
    """One assertion over every run's check: holds as the quantifier says on the executions seen,
    the values of the run that decided it (its first violation or witness, else the first run)."""
    runs = [c.holds for c in checks]
    words = wording(a.quantifier, runs)
    if words is None:
        return checks[0]
    seen = violations(a.quantifier, runs)
    shown = checks[seen[0] - 1] if seen else next(c for c in checks if c.holds is not None)
    return Check(a, holds(a.quantifier, runs), {**shown.values, key(a): words},
                 sum(c.positive or 0 for c in checks), sum(c.negative or 0 for c in checks),
                 shows=("witness" if a.quantifier == S.SOMETIMES else "counterexample") if seen else "")


def shown(sc: S.Scenario, results: Sequence[Result]) -> int:
    """The run to show (0-based): the first that broke an `always`/`never`, else the first that
    witnessed a `sometimes`, else the first."""
    for quantifiers in ((S.ALWAYS, S.NEVER), (S.SOMETIMES,)):
        for k, r in enumerate(results):
            if any(a.quantifier in quantifiers and violations(a.quantifier, [c.holds])
                   for a, c in zip(sc.assertions, r.checks)):
                return k
    return 0
