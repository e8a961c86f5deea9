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
    holds: bool | None  # None: the backend cannot observe what it needs (values say why)
    values: dict


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

    @property
    def verdict(self) -> str:
        """pass, fail, or skip when no assertion could be decided."""
        decided = [c.holds for c in self.checks if c.holds is not None]
        if not decided:
            return "skip"
        return "pass" if all(decided) else "fail"

    @property
    def ok(self) -> bool:
        """The run is as expected: its expect line if any, else every assertion holds."""
        return self.verdict == "skip" or self.verdict == (self.expected or "pass")


def run(sc: Scenario, backend_spec: str = "anon-exclusive") -> Result:
    from cowdsl.semantics import registry

    if backend_spec == registry.NATIVE:
        from cowdsl.native import run_native

        return run_native(sc)
    backend = registry.get(backend_spec)
    t0 = time.perf_counter()
    records = []
    state = backend.init_state(sc)
    for step, state, out, events in backend.run(sc):
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
