"""Quantified assertions over an exploration, herd7-style, and the one
execution that shows each verdict."""

from __future__ import annotations

from attrs import frozen

from cowdsl import scenario as S
from cowdsl.explore import search
from cowdsl.explore.model import Model, Transition
from cowdsl.judge import evaluate


@frozen
class Judgement:
    assertion: S.Assertion
    holds: bool | None  # None: the bounded search could not establish it
    positive: int  # final states (or states, for invariants) where the condition is true
    negative: int
    values: dict  # the values seen in the shown execution's last state
    witness: tuple[Transition, ...] | None  # the execution shown, if any
    shows: str  # what the execution shows: "counterexample", "witness", ""


def judge(model: Model, ex: search.Exploration, a: S.Assertion, bounds: search.Bounds) -> Judgement:
    q = a.quantifier
    if q == S.INVARIANT:
        states = [w.state for w in ex.visited]
    else:
        states = list({w.state for w in ex.finals})
    truth = {st: evaluate(st, a)[0] for st in states}
    pos = sum(1 for v in truth.values() if v)
    neg = len(truth) - pos
    if q in (S.ALWAYS, S.INVARIANT):
        holds = neg == 0 if (ex.partial is None or neg) else None
        show, want = ("counterexample", False) if neg else ("", None)
    elif q == S.SOMETIMES:
        holds = pos > 0 if (ex.partial is None or pos) else None
        show, want = ("witness", True) if pos else ("", None)
    else:  # never
        holds = pos == 0 if (ex.partial is None or pos) else None
        show, want = ("counterexample", True) if pos else ("", None)
    witness, values = None, {}
    if show:
        path = search.shortest(model, lambda w: evaluate(w.state, a)[0] == want, bounds, terminal=q != S.INVARIANT)
        if path is not None:
            witness = tuple(search.replay(model, path))
            last = model.step(*path[-1])[0] if path else model.init()
            values = evaluate(last.state, a)[1]
    elif states:
        values = evaluate(states[0], a)[1]
    return Judgement(a, holds, pos, neg, values, witness, show)
