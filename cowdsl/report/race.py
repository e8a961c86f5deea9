"""What the reports of an explored (concurrent) run replay from it: each distinct
final state with the facts its assertions see and, where the search knows, how
many executions reach it; the execution a check shows, world by world; where a
blocked actor resumes after another's unlock; and short descriptions of steps.

A Result keeps the transitions of the executions it shows, not the worlds
between them; these are replayed here on a model rebuilt from the scenario and
the backend spec, micro-step by micro-step (thread by thread, exactly as
recorded), which is cheap and deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import frozen

from cowdsl import scenario as S
from cowdsl.explore import search
from cowdsl.explore.model import DRAINER_PREFIX, Model, Transition, World
from cowdsl.judge import Result
from cowdsl.judge.evaluate import evaluate
from cowdsl.judge.explored import EVIDENCE
from cowdsl.judge.quantify import model_observer
from cowdsl.semantics import registry
from cowdsl.semantics.state import State

COUNT_LIMIT = 50_000  # above this many visited worlds, executions per final state are not counted


@frozen
class FinalState:
    """One distinct final state of an exploration, as the assertions see it."""

    state: State
    facts: dict[str, str]  # every value every assertion looked at, in assertion order
    fails: tuple[S.Assertion, ...]  # the always/never assertions this state breaks
    executions: int | None  # how many executions end here; None when the search does not know
    deadlock: bool = False  # some actor waits forever in it

    def line(self) -> str:
        """herd7's state line: the facts, each `term=value;`."""
        return " ".join(f"{k}={v};" for k, v in self.facts.items()) or "(no values)"


def model_for(r: Result) -> Model:
    """A model of the run's scenario on its backend, to replay executions on (with
    drainers when the run's had them, or an execution shows one)."""
    ex = r.exploration
    drained = any(tr.actor.startswith(DRAINER_PREFIX) for c in r.checks for tr in c.witness or ())
    return Model(r.scenario, registry.get(r.spec), drains=drained or (ex is not None and ex.drains))


def violates(a: S.Assertion, holds: bool | None) -> bool:
    """Whether a final state where the condition is ``holds`` breaks ``a``."""
    if a.quantifier in (S.ALWAYS, S.INVARIANT):
        return holds is False
    if a.quantifier == S.NEVER:
        return holds is True
    return False


def facts(model: Model, state: State, assertions: Sequence[S.Assertion]) -> tuple[dict[str, str], tuple[S.Assertion, ...]]:
    """The values the assertions see in ``state`` (each term once), and the
    assertions it breaks."""
    observe = model_observer(model.backend)
    seen: dict[str, str] = {}
    broken = []
    for a in assertions:
        holds, values = evaluate(observe(state), a)
        for k, v in values.items():
            seen.setdefault(k, v)
        if violates(a, holds):
            broken.append(a)
    return seen, tuple(broken)


def final_states(r: Result, model: Model | None = None) -> list[FinalState]:
    """Each distinct final state of an explored run, sorted by its state line (as
    herd7 sorts them; the same list whichever search found them).  Executions per
    state are counted for a complete full search (on its state graph) and for a
    schedule (one); a reduced search does not know them."""
    ex = r.exploration
    if ex is None:
        return []
    model = model or model_for(r)
    deadlocked = {w.state for w in ex.deadlocks}
    states = list(dict.fromkeys(w.state for w in ex.finals))
    counts = executions_per_state(model, ex)
    out = []
    for st in states:
        seen, broken = facts(model, st, r.scenario.assertions)
        out.append(FinalState(st, seen, broken, None if counts is None else counts.get(st, 0), st in deadlocked))
    return sorted(out, key=FinalState.line)


def executions_per_state(model: Model, ex: search.Exploration) -> dict[State, int] | None:
    """How many maximal executions end in each final state: known for a complete
    full search (paths on its state graph, rebuilt from its visited worlds) and for
    a schedule (the one); None otherwise, or when the graph is too large to
    rebuild cheaply."""
    if not ex.complete:  # a bound hit, or stopped once the verdicts were decided
        return None
    if ex.mode == "full" and ex.executions is None:  # not counted for this run (nor on a symmetric search's
        return None                                   # canonical worlds): never walk the plain graph again
    if ex.mode == "schedule":
        return {w.state: 1 for w in ex.finals}
    if ex.mode != "full" or not ex.visited or len(ex.visited) > COUNT_LIMIT:
        return None
    init = model.init()
    succ: dict[World, list[World]] = {}
    order: list[World] = []  # post-order: every world after all its successors
    stack: list[tuple[World, bool]] = [(init, False)]
    while stack:
        w, expanded = stack.pop()
        if expanded:
            order.append(w)
            continue
        if w in succ:
            continue
        nexts = [model.step(w, i, False)[0] for i in model.enabled(w)]
        succ[w] = nexts
        stack.append((w, True))
        stack.extend((x, False) for x in nexts if x not in succ)
    paths: dict[World, int] = {init: 1}
    for w in reversed(order):  # topological: a world before its successors
        n = paths.get(w, 0)
        for x in succ[w]:
            paths[x] = paths.get(x, 0) + n
    out: dict[State, int] = {}
    for w, nexts in succ.items():
        if not nexts:
            out[w.state] = out.get(w.state, 0) + paths.get(w, 0)
    return out


def walk(model: Model, witness: Sequence[Transition]) -> tuple[list[World], World]:
    """The world before each transition of an execution, and the world after the last."""
    w = model.init()
    before = []
    for tr in witness:
        before.append(w)
        w = model.step(w, tr.tid[1], False)[0]
    return before, w


@frozen
class Handoff:
    """An actor that was blocked resumes after another actor's micro-step freed it."""

    release: int  # index (0-based) of the transition that freed it (an unlock)
    resume: int  # index of the blocked actor's next transition
    why: str  # why it was blocked, as the model says ("mmap_lock of A is held")


def handoffs(model: Model, witness: Sequence[Transition]) -> list[Handoff]:
    """Where a blocked actor resumes after another's unlock, along an execution."""
    worlds, last = walk(model, witness)
    worlds.append(last)
    out = []
    for k, tr in enumerate(witness):
        w, w2 = worlds[k], worlds[k + 1]
        if w2.block != w.block:
            continue
        for j, t in enumerate(w.threads):
            if j == tr.tid[1] or t.done or t.drain is not None:  # a drainer waits for a page, not a lock
                continue
            why = model.blocked(w, j)
            if why is None or model.blocked(w2, j) is not None:
                continue
            resume = next((n for n in range(k + 1, len(witness)) if witness[n].tid == (w.block, j)), None)
            if resume is not None:
                out.append(Handoff(k, resume, why))
    return out


def end_state(model: Model, witness: Sequence[Transition]) -> State:
    return walk(model, witness)[1].state


def witness_of(model: Model, state: State, bounds: search.Bounds | None = None) -> tuple[Transition, ...] | None:
    """The shortest, least interleaved execution that ends in ``state``."""
    path = search.shortest(model, lambda w: w.state == state, bounds or search.Bounds(timeout=5.0))
    return None if path is None else tuple(search.replay(model, path))


def shown_values(values: dict[str, str]) -> dict[str, str]:
    """A check's values without the note about its evidence."""
    return {k: v for k, v in values.items() if k != EVIDENCE}


# --- steps in few words ------------------------------------------------------------------------

_WRITES = ("write", "dma_write", "pwrite", "process_vm_writev", "proc_mem_write")


def first_argument(step: S.Step) -> str:
    """The first argument of the step as written: `buf` of `A: write(buf, 1)`."""
    text = step.text.split(":", 1)[1] if ":" in step.text else step.text
    if "(" not in text:
        return ""
    inside = text.split("(", 1)[1].rsplit(")", 1)[0]
    return inside.split(",", 1)[0].strip()


def brief(step: S.Step, outcome: Any = None) -> str:
    """A step in a few words: `A mmap buf`, `A write buf=1`, `mr dma_read as seen (1)`."""
    arg = first_argument(step)
    if step.op in _WRITES and step.value is not None:
        arg = f"{arg}={step.value}" if arg and not arg.lstrip("-").isdigit() else str(step.value)
    words = [step.actor, step.op] + ([arg] if arg else []) + ([f"as {step.bind}"] if step.bind else [])
    text = " ".join(words)
    if outcome is not None and not outcome.ok:
        text += " (failed)" if not (outcome.error or "").startswith("not run") else " (not run)"
    elif outcome is not None and outcome.value is not None and step.bind:
        text += f" ({outcome.value})"
    return text


def what(step: S.Step) -> str:
    """What an actor does in a race, for a lane's heading: `fork`, `GUP-fast pin`."""
    op = step.op
    if "fast" in step.flags:
        return f"GUP-fast {op}"
    return op


def lane_name(step: S.Step, cpu: int) -> str:
    """CPU0, or DMA for a device acting through a pin."""
    return "DMA" if step.task is None and step.actor != "reclaim" else f"CPU{cpu}"
