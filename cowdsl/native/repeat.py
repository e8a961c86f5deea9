"""N native runs of one scenario, combined into one result.

A native run is one real execution.  A scenario with a `par` block runs N times (each run a
fresh set of processes, its actors released with other skews: ``par.py``), and so does any
scenario asked to repeat.  The judge (``cowdsl.judge.sampled``) decides each assertion on
the runs seen and words it: "witnessed K of N", "a violation seen (run k)", "none in N runs".
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from attrs import frozen

from cowdsl import scenario as S
from cowdsl.judge import Result
from cowdsl.judge.sampled import judge, shown
from cowdsl.semantics.machine import Event

#: the check value that says how many runs there were (the same in every check of a result)
RUNS = "native runs"


@frozen
class Runs:
    """The runs of one scenario: each run's result, and the result judged on all of them."""

    results: tuple[Result, ...]
    requested: int
    seed: int
    stopped: str | None  # why fewer runs than requested were made
    result: Result


def combine(sc: S.Scenario, results: Sequence[Result], *, requested: int, seed: int,
            stopped: str | None, seconds: float) -> Runs:
    """The runs as one result: each assertion judged on all of them (``judge``), the steps of
    the run that decided the most telling one (``shown``), and how many runs there were."""
    results = tuple(results)
    if len(results) == 1 and requested == 1 and not sc.concurrent:
        return Runs(results, requested, seed, stopped, results[0])
    head = f"{len(results)} of {requested} (seed {seed})" if len(results) < requested else \
        f"{len(results)} (seed {seed})"
    if stopped:
        head += f"; {stopped}"
    checks = tuple(attrs.evolve(c, values={**c.values, RUNS: head})
                   for c in (judge(a, [r.checks[i] for r in results]) for i, a in enumerate(sc.assertions)))
    k = shown(sc, results)
    steps = results[k].steps
    if steps:
        note = Event(f"native: run {k + 1} of {len(results)} shown (seed {seed})")
        steps = (attrs.evolve(steps[0], events=(note, *steps[0].events)), *steps[1:])
    first = results[0]
    result = Result(sc, first.spec, None, steps, checks, first.expected, seconds)
    return Runs(results, requested, seed, stopped, result)
