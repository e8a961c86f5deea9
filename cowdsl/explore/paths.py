"""One execution at a time: the shortest (then least interleaved) path to a
wanted world, the transitions along a path, and a schedule replayed."""

from __future__ import annotations

from collections.abc import Callable

from cowdsl.explore.exploration import Bounds, Path
from cowdsl.explore.model import DRAINER_PREFIX, Model, Transition, World

__all__ = ["Path", "follow", "replay", "shortest"]


def shortest(model: Model, wanted: Callable[[World], bool], bounds: Bounds, terminal: bool = True) -> Path | None:
    """A path to a (terminal) world for which ``wanted(world)`` holds: fewest
    micro-steps first, then fewest switches between actors.  Returns the list of
    (world before, thread index) or None."""
    init = model.init()
    best: dict[World, tuple[int, int, str | None, World | None, int]] = {init: (0, 0, None, None, -1)}
    frontier = [init]
    while frontier:
        found = [w for w in frontier if (not terminal or not model.enabled(w)) and wanted(w)]
        if found:
            goal = min(found, key=lambda w: best[w][1])
            path: Path = []
            w = goal
            while (parent := best[w][3]) is not None:
                path.append((parent, best[w][4]))
                w = parent
            return list(reversed(path))
        nxt = []
        for w in frontier:
            depth, switches, last, _, _ = best[w]
            for i in model.enabled(w):
                w2, tr = model.step(w, i, False)
                cost = (depth + 1, switches + (last is not None and tr.actor != last))
                old = best.get(w2)
                if old is None:
                    best[w2] = (*cost, tr.actor, w, i)
                    nxt.append(w2)
                elif old[0] == cost[0] and old[1] > cost[1]:
                    best[w2] = (*cost, tr.actor, w, i)
            if bounds.hit(len(best)):
                return None
        frontier = nxt
    return None


def replay(model: Model, path: Path) -> list[Transition]:
    """The transitions along a path, with their events."""
    return [model.step(w, i)[1] for w, i in path]


def follow(model: Model, schedule: list[str]) -> tuple[Path, World]:
    """Replay a schedule: the actor to run at each micro-step, then run to the end
    choosing the first enabled actor.  Raises ValueError on an impossible schedule.
    A schedule that names a drainer replays on the model with its drainers."""
    if any(a.startswith(DRAINER_PREFIX) for a in schedule):
        model.drain_batches()
    w = model.init()
    path = []
    for n, actor in enumerate(schedule, 1):
        en = model.enabled(w)
        pick = [i for i in en if w.threads[i].actor == actor]
        if not pick:
            can = ", ".join(sorted({w.threads[i].actor for i in en})) or "nobody"
            raise ValueError(f"schedule step {n}: `{actor}` cannot run now (can: {can})")
        path.append((w, pick[0]))
        w = model.step(w, pick[0])[0]
    while en := model.enabled(w):
        path.append((w, en[0]))
        w = model.step(w, en[0])[0]
    return path, w
