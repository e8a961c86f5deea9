"""Assertions judged over an exploration: the truths over every distinct final
state (every visited state for an invariant), quantified by ``decide``, and the
shortest, least interleaved execution that shows the verdict.

The execution is extracted by a second, shorter search with its own time
budget (``evidence_bounds``): a verdict decided just before the run's timeout
still gets its evidence.  When even that budget is not enough, the check says
so in its values (``EVIDENCE``), and the reports print a warning: a verdict is
never shown as if its evidence were complete.

``Verdicts`` judges the worlds as the search finds them and tells it when every
verdict is decided (an ``always``/``never`` broken, a ``sometimes`` seen, an
``invariant`` broken, a ``reachable`` witnessed): the search stops there unless ``--all-states`` asks for
every final state.  Which worlds an assertion is judged on is said in one place
(``judged_on_every_state``), and which truth decides it alone is asked of
``quantify.decide``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cowdsl import scenario as S
from cowdsl.explore import search
from cowdsl.explore.model import Model, World
from cowdsl.judge.evaluate import evaluate
from cowdsl.judge.observe import StateObservation
from cowdsl.judge.quantify import decide, model_observer, on_every_state
from cowdsl.judge.result import Check
from cowdsl.judge.shrink import bystanders
from cowdsl.semantics.state import State

EVIDENCE = "evidence"  # the key of Check.values that says an execution could not be extracted
NOT_EXTRACTED = "not extracted (bound hit)"
EVALUATE_CHUNK = 256  # states judged between looks at the clock
EVIDENCE_SECONDS = 5.0  # the least time the extraction gets, however short the run's timeout

Judged = dict[State, tuple[bool | None, dict[str, str]]]  # a state -> the condition's truth there, and its values


def judged_on_every_state(a: S.Assertion) -> bool:
    """Whether ``a`` is judged on every state reached (an invariant, a reachable),
    not only on the final ones; a `reachable` witnessed decides it (``deciding_truth``)."""
    return on_every_state(a.quantifier)


def deciding_truth(quantifier: str) -> bool | None:
    """The truth of the condition on one outcome that decides the verdict alone
    (False for always/invariant, True for sometimes/never); None if none does."""
    return next((t for t in (False, True) if decide(quantifier, [t], complete=False).shows), None)


class Verdicts:
    """A search's goal (``search.Goal``): every assertion judged on the worlds the
    search finds, until each one's verdict is decided.  What it judged is kept
    for ``check_exploration``.  A scenario without assertions is never decided:
    its search lists every final state."""

    def __init__(self, model: Model, assertions: Sequence[S.Assertion]) -> None:
        self.observe: Callable[[State], StateObservation] = model_observer(model.backend)
        self.assertions = tuple(assertions)
        self.judged: list[Judged] = [{} for _ in self.assertions]
        self.want = [deciding_truth(a.quantifier) for a in self.assertions]
        self.every = [judged_on_every_state(a) for a in self.assertions]
        self.open = list(range(len(self.assertions)))  # the assertions not decided yet
        self.every_state = any(self.every)

    def decided(self, w: World, terminal: bool) -> bool:
        still = []
        for k in self.open:
            if not (terminal or self.every[k]):
                still.append(k)
                continue
            judged = self.judged[k]
            seen = judged.get(w.state)
            if seen is None:
                seen = judged[w.state] = evaluate(self.observe(w.state), self.assertions[k])
            if seen[0] is None or seen[0] != self.want[k]:
                still.append(k)
        self.open = still
        return not still and bool(self.assertions)


def evidence_bounds(bounds: search.Bounds) -> search.Bounds:
    """Fresh bounds for extracting an execution: the run's state bound (memory
    stays as bounded as the user asked), and the larger of ``EVIDENCE_SECONDS``
    and the run's timeout, counted from now."""
    return search.Bounds(max_states=bounds.max_states, timeout=max(EVIDENCE_SECONDS, bounds.timeout))


def check_exploration(model: Model, ex: search.Exploration, a: S.Assertion, bounds: search.Bounds,
                      seen: Judged | None = None) -> Check:
    """``a`` judged over an exploration (``seen``: what was judged during the search)."""
    observe = model_observer(model.backend)
    every_state = judged_on_every_state(a)
    pool: Sequence[World] = list(ex.visited) if every_state else ex.finals
    states = list(dict.fromkeys(w.state for w in pool))  # in the order found: values shown stay stable
    judged: Judged = {}
    seen = seen or {}
    stopped = None
    for n, st in enumerate(states):
        # an invariant is judged on every visited state, which can take longer than
        # the search: that counts against the run's clock (final states are few)
        if every_state and n % EVALUATE_CHUNK == 0 and (stopped := bounds.hit(0)) is not None:
            break
        judged[st] = seen.get(st) or evaluate(observe(st), a)
    if stopped is not None and ex.partial is None:
        ex.partial = f"{stopped} (while judging `{a.text}`)"
    d = decide(a.quantifier, (h for h, _ in judged.values()), complete=ex.partial is None and not ex.stopped)
    witness, values = None, {}
    by: tuple[str, ...] = ()
    if d.shows:
        want = d.want
        if ex.routes is not None:  # the full search knows the shortest, least interleaved way to each world
            path = ex.routes.to(w for w in pool if judged.get(w.state, (None,))[0] == want)
        else:
            path = search.shortest(model, lambda w: evaluate(observe(w.state), a)[0] == want,
                                   evidence_bounds(bounds), terminal=not every_state)
        if path is not None and not every_state:  # only the actors that take part in the race
            path, by = bystanders(model, path, lambda w: evaluate(observe(w.state), a)[0] == want)
        if path is not None:
            witness = tuple(search.replay(model, path))
            last = model.step(*path[-1])[0] if path else model.init()
            values = evaluate(observe(last.state), a)[1]
        else:  # the verdict stands (a state that decides it was seen); its execution is not known
            shown = next(v for h, v in judged.values() if h == want)
            values = {**shown, EVIDENCE: NOT_EXTRACTED}
    elif judged:
        values = next(iter(judged.values()))[1]
    return Check(a, d.holds, values, d.positive, d.negative, witness, d.shows, by)
