"""Assertions judged over an exploration: the truths over every distinct final
state (every visited state for an invariant), quantified by ``decide``, and the
shortest, least interleaved execution that shows the verdict."""

from __future__ import annotations

from cowdsl import scenario as S
from cowdsl.explore import search
from cowdsl.explore.model import Model
from cowdsl.judge.evaluate import evaluate
from cowdsl.judge.quantify import decide, model_observer
from cowdsl.judge.result import Check


def check_exploration(model: Model, ex: search.Exploration, a: S.Assertion, bounds: search.Bounds) -> Check:
    observe = model_observer(model.backend)
    if a.quantifier == S.INVARIANT:
        states = list({w.state for w in ex.visited})
    else:
        states = list({w.state for w in ex.finals})
    truth = {st: evaluate(observe(st), a)[0] for st in states}
    d = decide(a.quantifier, truth.values(), complete=ex.partial is None)
    witness, values = None, {}
    if d.shows:
        want = d.want
        path = search.shortest(model, lambda w: evaluate(observe(w.state), a)[0] == want, bounds,
                               terminal=a.quantifier != S.INVARIANT)
        if path is not None:
            witness = tuple(search.replay(model, path))
            last = model.step(*path[-1])[0] if path else model.init()
            values = evaluate(observe(last.state), a)[1]
    elif states:
        values = evaluate(observe(states[0]), a)[1]
    return Check(a, d.holds, values, d.positive, d.negative, witness, d.shows)
