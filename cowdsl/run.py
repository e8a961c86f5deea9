"""Run a scenario on a backend: sequentially, explored, along one schedule, or
natively; the judge decides every assertion."""

from __future__ import annotations

import time
from typing import Any

from attrs import evolve

from cowdsl.explore import auto, search
from cowdsl.explore.model import Model
from cowdsl.judge.explored import Verdicts, check_exploration
from cowdsl.judge.quantify import check_execution, model_observer, on_every_state, scoped, unscoped
from cowdsl.judge.result import Result, StepRecord
from cowdsl.kernel.spec import KernelSpec
from cowdsl.kernel.spec import resolve as resolve_spec
from cowdsl.native import DEFAULT_TIMEOUT, run_native
from cowdsl.scenario import Scenario
from cowdsl.semantics import registry
from cowdsl.semantics.mm.swap import LRU_RULE


def run(sc: Scenario, spec: KernelSpec | str = "anon-exclusive", *, mode: str | None = None,
        bounds: search.Bounds | None = None, schedule: list[str] | None = None, all_states: bool = False,
        repeat: int | None = None, seed: int = 0) -> Result:
    """Run a scenario.  Concurrent scenarios (and invariants) are explored:
    ``mode`` auto (the default: explore.auto chooses, by whether the actors
    of a par block contend), reduced (source-DPOR with sleep sets and state
    caching, which reaches every final state the full search does) or full
    (every interleaving, the reference); ``schedule`` replays one interleaving.
    The search stops once every assertion's verdict is decided, unless
    ``all_states`` asks for every final state (herd's complete list).
    A spec given as text is resolved here (callers that read it from a command
    line resolve it themselves, to report a bad one before anything runs).

    On `native` the scenario runs on this machine's kernel (cowdsl.native): once, or
    ``repeat`` times (by default PAR_REPEAT times with a `par` block), the par blocks'
    start skews drawn from ``seed``, every run within ``bounds.timeout`` seconds."""
    if isinstance(spec, str):
        spec = resolve_spec(spec)
    judged = scoped(sc, spec)  # an assertion scoped to other backends is not judged here
    if judged is not sc:
        return unscoped(run(judged, spec, mode=mode, bounds=bounds, schedule=schedule, all_states=all_states,
                            repeat=repeat, seed=seed), sc)
    if spec.native:
        return run_native(sc, timeout=bounds.timeout if bounds is not None else DEFAULT_TIMEOUT, repeat=repeat,
                          seed=seed)
    backend = registry.get(spec)
    if schedule is not None or mode is not None or sc.concurrent or any(on_every_state(a.quantifier) for a in sc.assertions):
        return explore(sc, backend, mode=mode or "auto", bounds=bounds, schedule=schedule, all_states=all_states)
    t0 = time.perf_counter()
    records = []
    states = [backend.init_state(sc)]
    for step, state, out, events in backend.run(sc):
        records.append(StepRecord(step, out, tuple(events)))
        states.append(state)
    if any(e.rule == LRU_RULE for r in records for e in r.events):
        # a decision depended on a page an lru_add batch held: when other activity drains
        # that batch matters, so every timing is explored (cowdsl.semantics.mm.swap)
        return explore(sc, backend, mode="auto", bounds=bounds, all_states=all_states)
    observe = model_observer(backend)
    checks = tuple(check_execution(a, states, observe=observe) for a in sc.assertions)
    return Result(sc, spec, states[-1], tuple(records), checks, sc.expected_on(spec), time.perf_counter() - t0)


def explore(sc: Scenario, backend: Any, *, mode: str = "auto", bounds: search.Bounds | None = None,
            schedule: list[str] | None = None, all_states: bool = False) -> Result:
    t0 = time.perf_counter()
    model = Model(sc, backend, drains=schedule is not None)  # a schedule may name a drainer
    bounds = bounds or search.Bounds()
    spec = backend.kernel
    expected = sc.expected_on(spec)
    if schedule is not None:
        path, last = search.follow(model, schedule)
        trs = tuple(search.replay(model, path))
        along = [w.state for w, _ in path] + [last.state]
        observe = model_observer(backend)
        checks = tuple(check_execution(a, along, observe=observe, witness=trs, shows="schedule")
                       for a in sc.assertions)
        ex = search.Exploration("schedule", len(trs) + 1, len(trs), 1, [last])
        # an expect line speaks of every execution; a schedule is one
        return Result(sc, spec, last.state, (), checks, None, time.perf_counter() - t0, ex)
    if any(on_every_state(a.quantifier) for a in sc.assertions):
        mode = "full"  # partial-order reduction keeps final states, not every state
    chosen = mode == "auto"
    if chosen:
        mode = auto.choose(model)
    # First with the lru_add batches drained only where the kernel code drains them; when a
    # decision depended on a batch and the verdicts are not all shown yet, again with their
    # drains at any moment (a counterexample or witness of the first search is an execution
    # of the second: drains there are optional)
    ex, goal = _search(model, mode, bounds, all_states, chosen)
    if model.lru_mattered and not ex.stopped:
        model = Model(sc, backend, drains=True)
        ex, goal = _search(model, mode, bounds, all_states, chosen)
    seen = goal.judged if goal is not None else [None] * len(sc.assertions)
    checks = tuple(check_exploration(model, ex, a, bounds, j) for a, j in zip(sc.assertions, seen))
    final = ex.finals[0].state if len(ex.finals) == 1 else None
    return Result(sc, spec, final, (), checks, expected, time.perf_counter() - t0, ex)


def _search(model: Model, mode: str, bounds: search.Bounds, all_states: bool,
            chosen: bool = False) -> tuple[search.Exploration, Verdicts | None]:
    goal = None if all_states else Verdicts(model, model.sc.assertions)
    if mode == "reduced" and chosen and not all_states:
        # independent actors (auto's choice): the full search with ample sets first, up to
        # TRIAL_STATES.  It mostly walks as few states as reduction, at a fraction of the cost
        # per state; past the cap (moves on parts no process owns, such as the zero page,
        # which it never takes alone) reduction, which tells reads of them apart, takes over
        trial = search.full(model, evolve(bounds, max_states=min(bounds.max_states, auto.TRIAL_STATES)), goal,
                            count=False, symmetric=True, ample=True)
        if trial.partial is None or trial.partial.startswith("--timeout"):
            return trial, goal
        goal = Verdicts(model, model.sc.assertions)  # what the trial judged, forgotten
    # symmetric threads: one world per class, and a bystander's move alone where it commutes with
    # everything else (ample sets), unless herd's complete list (with its executions) is asked for
    if mode == "full":  # executions counted for herd's complete list only: counting costs a third of the search
        ex = search.full(model, bounds, goal, count=all_states, symmetric=not all_states, ample=not all_states)
    else:
        ex = search.reduced(model, bounds, goal, symmetric=not all_states)
    return ex, goal
