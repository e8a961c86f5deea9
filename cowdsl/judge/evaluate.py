"""Evaluate one assertion's expression on one observation, noting every value
it looked at (the values are shown beside a verdict)."""

from __future__ import annotations

import operator
from collections.abc import Callable

from cowdsl import ops
from cowdsl import scenario as S
from cowdsl.judge.observe import NOT_IN_VERSION, Fact, Observation, StateObservation, Unsupported, term_text
from cowdsl.semantics.state import State

_CMP: dict[str, Callable[[int, int], bool]] = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class Judge:
    """Evaluates one assertion on one observation, noting each value it looked at."""

    def __init__(self, obs: Observation | State) -> None:
        self.obs: Observation = obs if not isinstance(obs, State) else StateObservation(obs)
        self.seen: dict[str, str] = {}

    def note(self, ref: object, value: Fact, why: str = "") -> None:
        shown = "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        self.seen[term_text(ref)] = shown + (f" ({why})" if why and value is None else "")

    def truth(self, e: object) -> bool:
        if isinstance(e, S.Const):
            return bool(e.value)
        if isinstance(e, S.Not):
            return not self.truth(e.operand)
        if isinstance(e, S.BoolOp):
            left = self.truth(e.left)
            right = self.truth(e.right)  # evaluated always, so every value is shown
            return {"and": left and right, "or": left or right, "implies": (not left) or right}[e.op]
        if isinstance(e, S.Cmp):
            a, b = self.value(e.left), self.value(e.right)
            if a is None or b is None:
                return False
            return _CMP[e.op](a, b)
        if isinstance(e, S.Same):
            a, b = self.page(e.left), self.page(e.right)
            same = a is not None and a == b
            return (not same) if e.negated else same
        if isinstance(e, S.FactCall):
            return bool(self.fact(e))
        raise TypeError(e)

    def value(self, e: object) -> Fact:
        if isinstance(e, S.Const):
            return e.value
        if isinstance(e, S.FactCall):
            return self.fact(e)
        if isinstance(e, (S.Not, S.BoolOp, S.Cmp, S.Same)):
            return self.truth(e)
        v = self.obs.view(e)
        self.note(e, v.value, v.note)
        return v.value

    def page(self, e: object) -> int | None:
        v = self.obs.view(e)
        shown = f"#{v.pfn}" if v.pfn is not None else f"none ({v.note or 'no page'})"
        self.seen[f"page({term_text(e)})"] = shown
        return v.pfn

    def fact(self, f: S.FactCall) -> Fact:
        name = f.name
        spec = ops.FACTS[name]  # its declaration says what it takes and what it is
        out: Fact
        if spec.takes == "process" and spec.kind == "int":
            out = self.obs.counter(name, _named(f.args[0]) if f.args else None)
        elif spec.takes == "process":
            out = self.obs.process(name, _named(f.args[0]))
        elif spec.takes == "step":
            out = self.obs.failed(_named(f.args[0]))
        else:
            out = self.obs.page_fact(name, f.args[0])
        self.note(f, out, NOT_IN_VERSION.get(name, ""))
        return out


def _named(ref: S.Ref) -> str:
    """The name a process fact (a process) or `failed` (a step named with `as`) takes."""
    assert isinstance(ref, (S.ProcessRef, S.StepRef)), ref  # the checker allows no other argument
    return ref.name


def evaluate(obs: Observation | State, assertion: S.Assertion) -> tuple[bool | None, dict[str, str]]:
    """(holds, values seen); holds is None when the observation cannot tell."""
    j = Judge(obs)
    try:
        holds = j.truth(assertion.expr)
    except Unsupported as e:
        return None, {**j.seen, "unsupported": str(e)}
    return holds, j.seen
