"""One search of a swarm: a randomised depth-first search that stops at its first
violation, as each search of SPIN's swarm verification does (Holzmann, Joshi and
Groce, "Swarm Verification Techniques", IEEE TSE 2011).

Many such searches with different seeds, run side by side, each reach deep into
a different part of a space too big to finish: the order in which a world's
enabled actors are tried is shuffled by the seed.  What one finds is a real
execution; what none finds proves nothing.

The search knows nothing of assertions: ``bad(world, terminal)`` says which
assertions a world breaks (the caller judges them), and the walk hands back the
thread chosen at each micro-step from the initial world, to be replayed.
"""

from __future__ import annotations

import random
import time
from array import array
from collections.abc import Callable

from attrs import define, field

from cowdsl.explore.exploration import Bounds, no_gc
from cowdsl.explore.model import Model, World

# bad(world, terminal): the indices of the assertions the world breaks (empty: none)
Bad = Callable[[World, bool], tuple[int, ...]]


@define
class Walk:
    """What one search did: how far it got, and the violation it stopped at."""

    seed: int
    states: int = 0  # distinct worlds visited
    transitions: int = 0  # micro-steps taken
    finals: int = 0  # terminal worlds reached
    choices: tuple[int, ...] | None = None  # the thread run at each micro-step to the violation; None: none found
    broken: tuple[int, ...] = ()  # the assertions the violating world breaks
    partial: str | None = None  # the bound that stopped it first
    seconds: float = 0.0
    # hash() of each world visited, to count distinct states across searches.  hash() depends
    # on the process (its hash seed; some parts of a state hash by identity), so two searches'
    # fingerprints are comparable only when they hash the initial world alike (``calibration``)
    fingerprints: array[int] = field(factory=lambda: array("q"))
    calibration: int = 0


def search(model: Model, seed: int, bad: Bad, bounds: Bounds) -> Walk:
    with no_gc():
        return _search(model, seed, bad, bounds)


def _search(model: Model, seed: int, bad: Bad, bounds: Bounds) -> Walk:
    model.drain_batches()  # a walk may also drain an lru_add batch at any moment
    t0 = time.monotonic()
    rng = random.Random(seed)
    init = model.init()
    walk = Walk(seed, calibration=hash(init))
    visited = {init}
    choices: list[int] = []  # choices[k]: the thread that took stack[k] to stack[k + 1]
    stack: list[tuple[World, list[int]]] = []

    def arrive(w: World) -> bool:
        """Judge a new world and push it; True when it breaks an assertion."""
        en = model.enabled(w)
        walk.finals += not en
        broken = bad(w, not en)
        if broken:
            walk.choices, walk.broken = tuple(choices), broken
            return True
        rng.shuffle(en)
        stack.append((w, en))
        return False

    found = arrive(init)
    while stack and not found:
        w, todo = stack[-1]
        if not todo:
            stack.pop()
            if choices:
                choices.pop()
            continue
        i = todo.pop()
        w2, _ = model.step(w, i, False)
        walk.transitions += 1
        if w2 in visited:
            continue
        visited.add(w2)
        if (why := bounds.hit(len(visited))) is not None:
            walk.partial = why
            break
        choices.append(i)
        found = arrive(w2)
        if bounds.progress and walk.transitions % 2000 == 0:
            bounds.progress(len(visited), walk.finals)
    walk.states = len(visited)
    walk.fingerprints = array("q", map(hash, visited))
    walk.seconds = time.monotonic() - t0
    return walk


def replay_choices(model: Model, choices: tuple[int, ...]) -> list[tuple[World, int]]:
    """The path (world before, thread) that a walk's choices take from the initial world."""
    model.drain_batches()  # the walk's model had drainers
    w = model.init()
    path = []
    for i in choices:
        path.append((w, i))
        w = model.step(w, i, False)[0]
    return path
