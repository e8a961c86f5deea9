"""Assertions judged over an exploration: the truths over every distinct final
state (every visited state for an invariant), quantified by ``decide``, and the
shortest, least interleaved execution that shows the verdict.

The execution is extracted by a second, shorter search with its own time
budget (``evidence_bounds``): a verdict decided just before the run's timeout
still gets its evidence.  When even that budget is not enough, the check says
so in its values (``EVIDENCE``), and the reports print a warning: a verdict is
never shown as if its evidence were complete."""

from __future__ import annotations

from cowdsl import scenario as S
from cowdsl.explore import search
from cowdsl.explore.model import Model
from cowdsl.judge.evaluate import evaluate
from cowdsl.judge.quantify import decide, model_observer
from cowdsl.judge.result import Check
from cowdsl.semantics.state import State

EVIDENCE = "evidence"  # the key of Check.values that says an execution could not be extracted
NOT_EXTRACTED = "not extracted (bound hit)"
EVALUATE_CHUNK = 256  # states judged between looks at the clock
EVIDENCE_SECONDS = 5.0  # the least time the extraction gets, however short the run's timeout


def evidence_bounds(bounds: search.Bounds) -> search.Bounds:
    """Fresh bounds for extracting an execution: the run's state bound (memory
    stays as bounded as the user asked), and the larger of ``EVIDENCE_SECONDS``
    and the run's timeout, counted from now."""
    return search.Bounds(max_states=bounds.max_states, timeout=max(EVIDENCE_SECONDS, bounds.timeout))


def check_exploration(model: Model, ex: search.Exploration, a: S.Assertion, bounds: search.Bounds) -> Check:
    observe = model_observer(model.backend)
    if a.quantifier == S.INVARIANT:
        states = list({w.state for w in ex.visited})
    else:
        states = list(dict.fromkeys(w.state for w in ex.finals))  # in the order found: values shown stay stable
    judged: dict[State, tuple[bool | None, dict[str, str]]] = {}
    stopped = None
    every_state = a.quantifier == S.INVARIANT
    for n, st in enumerate(states):
        # an invariant is judged on every visited state, which can take longer than
        # the search: that counts against the run's clock (final states are few)
        if every_state and n % EVALUATE_CHUNK == 0 and (stopped := bounds.hit(0)) is not None:
            break
        judged[st] = evaluate(observe(st), a)
    if stopped is not None and ex.partial is None:
        ex.partial = f"{stopped} (while judging `{a.text}`)"
    d = decide(a.quantifier, (h for h, _ in judged.values()), complete=ex.partial is None)
    witness, values = None, {}
    if d.shows:
        want = d.want
        path = search.shortest(model, lambda w: evaluate(observe(w.state), a)[0] == want, evidence_bounds(bounds),
                               terminal=a.quantifier != S.INVARIANT)
        if path is not None:
            witness = tuple(search.replay(model, path))
            last = model.step(*path[-1])[0] if path else model.init()
            values = evaluate(observe(last.state), a)[1]
        else:  # the verdict stands (a state that decides it was seen); its execution is not known
            seen = next(v for h, v in judged.values() if h == want)
            values = {**seen, EVIDENCE: NOT_EXTRACTED}
    elif judged:
        values = next(iter(judged.values()))[1]
    return Check(a, d.holds, values, d.positive, d.negative, witness, d.shows)
