"""A counterexample for a mail: only the actors that take part in the race.

An actor of a `par` block plays no part in a violation when the violation
still happens with all its moves run after the others' and also with all of
them run before: its timing does not matter.  It is then shown apart (after
the race), as a bystander, and the execution that is drawn is that
reordered one, a real execution of the same scenario with the same outcome.
Each candidate is replayed on the model, so nothing is assumed about
independence.
"""

from __future__ import annotations

from collections.abc import Callable

from cowdsl.explore import search
from cowdsl.explore.model import Model, World

MAX_TRIES = 32  # replays one shrink may spend (each is one execution, micro-step by micro-step)


def _segments(path: search.Path) -> list[tuple[int, int]]:
    """[start, end) of the moves of each block with more than one actor moving."""
    out, start = [], 0
    for k in range(1, len(path) + 1):
        if k == len(path) or path[k][0].block != path[start][0].block:
            if len({path[i][0].threads[path[i][1]].actor for i in range(start, k)}) > 1:
                out.append((start, k))
            start = k
    return out


def _actors(path: search.Path) -> list[str]:
    return [w.threads[i].actor for w, i in path]


def bystanders(model: Model, path: search.Path, wanted: Callable[[World], bool]) -> tuple[search.Path, tuple[str, ...]]:
    """``path`` with every actor that plays no part in reaching a ``wanted``
    terminal world (the same outcome with its moves all after the others', and
    all before) moved out of the race, after it; and those actors, in the order
    found.  At least two actors of each block stay in the race."""
    names = _actors(path)
    found: list[str] = []
    tries = 0
    for start, end in _segments(path):
        seg = names[start:end]
        racing = list(dict.fromkeys(seg))
        for x in list(racing):
            if len(racing) <= 2 or tries >= MAX_TRIES:  # a race needs two
                break
            rest, mine = [a for a in seg if a != x], [a for a in seg if a == x]
            kept = []
            for cand in (rest + mine, mine + rest):
                tries += 1
                trial = names[:start] + cand + names[end:]
                try:
                    new, last = search.follow(model, trial)
                except ValueError:  # x waits for another (a lock), or another for x
                    break
                if not (len(new) == len(trial) and not model.enabled(last) and wanted(last)):
                    break
                kept.append((new, cand))
            if len(kept) == 2:  # its timing does not matter: before or after the others, the same outcome
                path, seg = kept[0]
                names = _actors(path)
                racing.remove(x)
                found.append(x)
    return path, tuple(found)
