"""Swarm mode (`cowdsl run --swarm N FILE`): N randomised depth-first searches
(cowdsl.explore.swarm), seeds S..S+N-1, side by side on the workers, each
stopping at its first violation of an `assert`, `never` or `invariant`.

For a space too big to finish: it finds violations, shown as the normal
counterexamples (the shortest found for each assertion broken), and says how many
distinct states the searches covered together.  It never proves anything: an
assertion no search broke stays undecided, an `exists` is not looked for, and
the verdict is fail or unknown.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

from cowdsl import scenario as S
from cowdsl.batch import Workers
from cowdsl.explore.exploration import Bounds, Exploration
from cowdsl.explore.model import Model, World
from cowdsl.explore.paths import replay
from cowdsl.explore.swarm import Bad, Walk, replay_choices, search
from cowdsl.judge.evaluate import evaluate
from cowdsl.judge.quantify import decide, model_observer
from cowdsl.judge.result import Check, Result
from cowdsl.kernel.spec import KernelSpec
from cowdsl.semantics import registry
from cowdsl.semantics.state import State

NOT_A_PROOF = "swarm"  # the Result's partial: no swarm decides what it did not see broken


@frozen
class Swarm:
    result: Result  # fail (each broken assertion with its counterexample) or unknown
    walks: tuple[Walk, ...]  # one per seed, in seed order
    covered: int | None  # distinct states across the searches; None when their fingerprints are not comparable

    @property
    def violations(self) -> list[Walk]:
        return [w for w in self.walks if w.choices is not None]


def run(sc: S.Scenario, spec: KernelSpec, n: int, *, seed: int = 0, workers: Workers | None = None,
        max_states: int | None = None, timeout: float | None = None) -> Swarm:
    """``n`` searches of ``sc`` on ``spec``, seeds ``seed``..``seed + n - 1``, each within
    ``max_states`` and ``timeout`` (of its own)."""
    items = [(spec, seed + k, max_states, timeout) for k in range(n)]
    done = tuple((workers or Workers(1)).map(_walk, (sc,), items))
    model = Model(sc, registry.get(spec))
    observe = model_observer(model.backend)
    checks = []
    for k, a in enumerate(sc.assertions):
        found = [w for w in done if w.choices is not None and k in w.broken]
        if not found:
            checks.append(Check(a, None, {}))
            continue
        best = min(found, key=lambda w: (len(w.choices or ()), w.seed))
        path = replay_choices(model, best.choices or ())
        last = model.step(*path[-1], False)[0] if path else model.init()
        checks.append(Check(a, False, evaluate(observe(last.state), a)[1], None, None, tuple(replay(model, path)),
                            "counterexample"))
    covered = len({f for w in done for f in w.fingerprints}) if len({w.calibration for w in done}) <= 1 else None
    ex = Exploration("swarm", states=covered if covered is not None else sum(w.states for w in done),
                     transitions=sum(w.transitions for w in done), partial=NOT_A_PROOF,
                     seconds=max((w.seconds for w in done), default=0.0))
    result = Result(sc, spec, None, (), tuple(checks), sc.expected_on(spec), ex.seconds, ex)
    return Swarm(result, done, covered)


def _walk(shared: Sequence[S.Scenario], item: tuple[KernelSpec, int, int | None, float | None]) -> Walk:
    """One search (a job of the workers), within its own bounds."""
    sc = shared[0]
    spec, seed, max_states, timeout = item
    model = Model(sc, registry.get(spec))
    bounds = Bounds()  # its own clock
    if max_states is not None:
        bounds.max_states = max_states
    if timeout is not None:
        bounds.timeout = timeout
    return search(model, seed, breaks(model), bounds)


def breaks(model: Model) -> Bad:
    """Which assertions a world breaks: an invariant in any world, an `assert` or
    `never` in a terminal one (a verdict one outcome decides: cowdsl.judge.quantify)."""
    observe = model_observer(model.backend)
    judged = [(k, a) for k, a in enumerate(model.sc.assertions) if a.quantifier in (S.ALWAYS, S.NEVER, S.INVARIANT)]
    memo: dict[tuple[State, bool], tuple[int, ...]] = {}  # many worlds share a state

    def bad(w: World, terminal: bool) -> tuple[int, ...]:
        key = (w.state, terminal)
        if key not in memo:
            obs = observe(w.state)
            memo[key] = tuple(k for k, a in judged if (terminal or a.quantifier == S.INVARIANT)
                              and decide(a.quantifier, [evaluate(obs, a)[0]], complete=False).holds is False)
        return memo[key]
    return bad
