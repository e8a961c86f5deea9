"""What a run of one scenario on one backend gives: its steps, its checks and
its verdict.  Reporters read these; they are made by the runners."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attrs import frozen

from cowdsl.kernel.spec import KernelSpec
from cowdsl.scenario import Assertion, Scenario, Step
from cowdsl.semantics.machine import Event
from cowdsl.semantics.state import Outcome, State

if TYPE_CHECKING:
    from cowdsl.explore.model import Transition


@frozen
class StepRecord:
    step: Step
    outcome: Outcome
    events: tuple[Event, ...]


@frozen
class Check:
    assertion: Assertion
    holds: bool | None  # None: the backend cannot observe it, or a bounded search did not establish it
    values: dict[str, str]
    positive: int | None = None  # outcomes where the condition is true
    negative: int | None = None
    witness: tuple[Transition, ...] | None = None  # the execution shown
    shows: str = ""  # "counterexample", "witness" or "schedule"
    bystanders: tuple[str, ...] = ()  # actors of the race whose moves run apart: they play no part (judge.shrink)


@frozen
class Result:
    """One scenario on one backend."""

    scenario: Scenario
    spec: KernelSpec  # the backend it ran on
    final: State | None  # None for a backend without a model state (native)
    steps: tuple[StepRecord, ...]
    checks: tuple[Check, ...]
    expected: str | None  # "pass", "fail" or None
    seconds: float
    exploration: Any = None  # cowdsl.explore.exploration.Exploration, for explored runs

    @property
    def backend(self) -> str:
        """The canonical spec of the backend (``early-cow:wp_seq=off``)."""
        return self.spec.name

    @property
    def partial(self) -> str | None:
        return None if self.exploration is None else self.exploration.partial

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
    def judged(self) -> bool:
        """Whether the run is held to anything: its expect line, or every
        assertion when the file has no expect line at all.  A backend a file with
        expect lines names no expectation for is shown, not judged, the same
        alone and in the era matrix."""
        if self.exploration is not None and self.exploration.mode == "schedule":
            return True  # one execution, judged on its own: never against an exhaustive expect line
        return self.expected is not None or not self.scenario.expectations

    @property
    def ok(self) -> bool:
        """The run is as expected: its expect line if any; else, in a file
        without expect lines, every assertion holds."""
        if self.verdict == "skip" or not self.judged:
            return True
        return self.verdict == (self.expected or "pass")
