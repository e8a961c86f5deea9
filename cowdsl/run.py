"""Run a scenario on a backend and judge it."""

from __future__ import annotations

import time

from attrs import frozen

from cowdsl.judge import evaluate
from cowdsl.scenario import Assertion, Scenario, Step
from cowdsl.semantics.machine import Event
from cowdsl.semantics.state import Outcome, State


@frozen
class StepRecord:
    step: Step
    outcome: Outcome
    events: tuple[Event, ...]


@frozen
class Check:
    assertion: Assertion
    holds: bool | None  # None: the backend cannot observe it, or a bounded search did not establish it
    values: dict
    positive: int | None = None  # final states where the condition is true (explored runs)
    negative: int | None = None
    witness: tuple | None = None  # the execution shown: Transitions
    shows: str = ""  # "counterexample" or "witness"


@frozen
class Result:
    """One scenario on one backend."""

    scenario: Scenario
    backend: str
    final: State | None  # None for a backend without a model state (native)
    steps: tuple[StepRecord, ...]
    checks: tuple[Check, ...]
    expected: str | None  # "pass", "fail" or None
    seconds: float
    exploration: object = None  # cowdsl.explore.search.Exploration, for explored runs

    @property
    def partial(self) -> str | None:
        return getattr(self.exploration, "partial", None)

    @property
    def verdict(self) -> str:
        """pass, fail; unknown when a bounded search could not decide; skip when
        the backend could observe nothing."""
        decided = [c.holds for c in self.checks if c.holds is not None]
        if decided and not all(decided):
            return "fail"
        if self.partial and len(decided) < len(self.checks):
            return "unknown"
        if not decided:
            return "skip"
        return "pass"

    @property
    def ok(self) -> bool:
        """The run is as expected: its expect line if any, else every assertion holds."""
        return self.verdict == "skip" or self.verdict == (self.expected or "pass")


def run(sc: Scenario, backend_spec: str = "anon-exclusive", *, mode: str | None = None, bounds=None,
        schedule: list[str] | None = None) -> Result:
    """Run a scenario.  Concurrent scenarios (and invariants) are explored:
    ``mode`` reduced (the default: source-DPOR with sleep sets and state
    caching, which reaches every final state the full search does) or full
    (every interleaving, the reference); ``schedule`` replays one interleaving."""
    from cowdsl.scenario import INVARIANT
    from cowdsl.semantics import registry

    if backend_spec == registry.NATIVE:
        from cowdsl.native import run_native

        return run_native(sc)
    backend = registry.get(backend_spec)
    if schedule is not None or mode is not None or sc.concurrent or any(a.quantifier == INVARIANT for a in sc.assertions):
        return explore(sc, backend, mode=mode or "reduced", bounds=bounds, schedule=schedule)
    t0 = time.perf_counter()
    records = []
    state = backend.init_state(sc)
    for step, state, out, events in backend.run(sc):  # noqa: B007 (the last state is judged)
        records.append(StepRecord(step, out, tuple(events)))
    checks = tuple(Check(a, *evaluate(state, a)) for a in sc.assertions)
    return Result(sc, backend.spec, state, tuple(records), checks, expectation(sc, backend.spec),
                  time.perf_counter() - t0)


def expectation(sc: Scenario, spec: str) -> str | None:
    """What the scenario's expect lines say for this backend spec, if anything."""
    from cowdsl.semantics import registry

    for e in sc.expectations:
        if registry.resolve(e.backend) == spec:
            return e.outcome
    return None


def explore(sc: Scenario, backend, *, mode: str = "reduced", bounds=None, schedule=None) -> Result:
    from cowdsl.explore import search, verdict
    from cowdsl.explore.model import Model
    from cowdsl.scenario import INVARIANT

    t0 = time.perf_counter()
    model = Model(sc, backend)
    bounds = bounds or search.Bounds()
    if schedule is not None:
        from cowdsl.scenario import NEVER

        path, last = search.follow(model, schedule)
        trs = tuple(search.replay(model, path))
        along = [w.state for w, _ in path] + [last.state]
        checks = []
        for a in sc.assertions:
            # one execution: always/sometimes hold when the condition does, never when it does not;
            # an invariant must hold at every state along it
            states = along if a.quantifier == INVARIANT else [last.state]
            truths = [evaluate(st, a)[0] for st in states]
            true = all(truths)
            values = evaluate(last.state, a)[1]
            holds = (not true) if a.quantifier == NEVER else true
            checks.append(Check(a, holds, values, int(true), int(not true), trs, "schedule"))
        return Result(sc, backend.spec, last.state, (), tuple(checks), expectation(sc, backend.spec),
                      time.perf_counter() - t0, search.Exploration("schedule", len(trs) + 1, len(trs), 1, [last]))
    if any(a.quantifier == INVARIANT for a in sc.assertions):
        mode = "full"  # partial-order reduction keeps final states, not every state
    ex = (search.full if mode == "full" else search.reduced)(model, bounds)
    checks = []
    for a in sc.assertions:
        j = verdict.judge(model, ex, a, bounds)
        checks.append(Check(a, j.holds, j.values, j.positive, j.negative, j.witness, j.shows))
    final = ex.finals[0].state if len(ex.finals) == 1 else None
    return Result(sc, backend.spec, final, (), tuple(checks), expectation(sc, backend.spec),
                  time.perf_counter() - t0, ex)
