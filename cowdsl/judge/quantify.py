"""Quantifiers, applied in one place for every kind of run.

A run gives, per assertion, the truth of its condition on each outcome it
reached: every final state of an exploration, the one final state of a
sequential, scheduled or native run, or every state along the way for an
``invariant``.  ``decide`` turns those truths into a verdict, herd7-style:

- ``always`` (``assert``, ``forall``): no outcome where the condition is false;
- ``sometimes`` (``exists``): some outcome where it is true;
- ``never`` (``~exists``): no outcome where it is true;
- ``invariant`` (AG): true in every state reached;
- ``reachable`` (EF): true in some state reached, final or not.

``invariant`` and ``reachable`` are judged on every state a run reaches
(``on_every_state``): every state an exploration visits, every state along a
sequential run.  An assertion scoped to some backends (``assert on
anon-exclusive: ...``) is judged on those only (``judged_on``); elsewhere its
check says "not judged on this backend" (``not_judged``) and decides nothing.

A bounded run that did not see every outcome decides only what it has seen
(a counterexample or a witness); otherwise the verdict is unknown (None).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs
from attrs import frozen

from cowdsl import scenario as S
from cowdsl.judge.evaluate import evaluate
from cowdsl.judge.observe import StateObservation
from cowdsl.judge.result import Check, Result
from cowdsl.kernel.spec import KernelSpec
from cowdsl.semantics.state import State

if TYPE_CHECKING:
    from cowdsl.explore.model import Transition
    from cowdsl.semantics.backend import Backend


@frozen
class Decision:
    holds: bool | None  # None: unobservable, or a bounded run could not decide
    positive: int  # outcomes where the condition is true
    negative: int  # ... and false
    shows: str  # "counterexample", "witness" or "": what an execution that decided it shows
    want: bool | None  # the condition's truth in that execution


def decide(quantifier: str, truths: Iterable[bool | None], *, complete: bool = True) -> Decision:
    """The verdict of ``quantifier`` over the truths seen on each outcome."""
    seen = list(truths)
    if any(t is None for t in seen):
        return Decision(None, 0, 0, "", None)
    pos = sum(1 for t in seen if t)
    neg = len(seen) - pos
    want: bool | None  # the condition's truth in the execution that decides it; None when none does
    if quantifier in (S.ALWAYS, S.INVARIANT):
        decisive, holds, shows, want = neg > 0, neg == 0, "counterexample", False
    elif quantifier in (S.SOMETIMES, S.REACHABLE):
        decisive, holds, shows, want = pos > 0, pos > 0, "witness", True
    elif quantifier == S.NEVER:
        decisive, holds, shows, want = pos > 0, pos == 0, "counterexample", True
    else:
        raise ValueError(f"unknown quantifier {quantifier!r}")
    if not decisive:
        shows, want = "", None
    return Decision(holds if (complete or decisive) else None, pos, neg, shows, want)


def on_every_state(quantifier: str) -> bool:
    """Whether an assertion with ``quantifier`` is judged on every state reached
    (invariant, reachable), not only on the final ones."""
    return quantifier in (S.INVARIANT, S.REACHABLE)


def judged_on(a: S.Assertion, spec: KernelSpec) -> bool:
    """Whether ``a`` is judged on the backend ``spec``: it names no backends, or names this model."""
    return not a.scope or any(s.name == spec.name for s in a.scope)


NOT_JUDGED = "not judged"  # the key of Check.values for an assertion scoped to other backends


def not_judged(a: S.Assertion) -> Check:
    return Check(a, None, {NOT_JUDGED: f"only on {a.scope_text}"})


def scoped(sc: S.Scenario, spec: KernelSpec) -> S.Scenario:
    """``sc`` with only the assertions judged on ``spec`` (``sc`` itself when that is all of them)."""
    if all(judged_on(a, spec) for a in sc.assertions):
        return sc
    return attrs.evolve(sc, assertions=tuple(a for a in sc.assertions if judged_on(a, spec)))


def unscoped(r: Result, sc: S.Scenario) -> Result:
    """A result of ``scoped(sc, spec)`` as a result of ``sc``: every assertion's
    check in the file's order, "not judged" for those scoped to other backends."""
    if r.scenario is sc:
        return r
    judged = iter(r.checks)
    checks = tuple(next(judged) if judged_on(a, r.spec) else not_judged(a) for a in sc.assertions)
    return attrs.evolve(r, scenario=sc, checks=checks)


def check_execution(assertion: S.Assertion, states: list[Any], *, observe: Callable[[Any], Any] | None = None,
                    witness: tuple[Transition, ...] | None = None, shows: str = "") -> Check:
    """An assertion judged on one execution: its final state (the last of
    ``states``), or for an invariant or reachable every state along it.
    ``observe`` turns a state into an observation (default: a model state as it is)."""
    obs = observe or (lambda st: st)
    along = states if on_every_state(assertion.quantifier) else states[-1:]
    judged = [evaluate(obs(st), assertion) for st in along]
    d = decide(assertion.quantifier, [h for h, _ in judged])
    values = judged[-1][1]
    if d.holds is None:
        values = next((v for h, v in judged if h is None), values)
    return Check(assertion, d.holds, values, d.positive, d.negative, witness, shows or d.shows)


def model_observer(backend: Backend) -> Callable[[State], StateObservation]:
    """Observe model states as ``backend`` defines its concepts."""
    return lambda st: StateObservation(st, backend)
