"""Symmetry: threads of one process running the same program are interchangeable.

Two threads of a par block are *symmetric* when they run in the same process
and their steps are the same ops on the same arguments, differing only in the
actor's name and the names their steps bind with ``as``; and when none of
those names is used anywhere else: by an assertion, by another step (an
``unpin r0``, a device acting through a pin), or as a process.  Thread names
are not in the kernel state (a pin's handle is owned by the process), the bound
names are (``State.results``, ``State.handles``, both kept sorted by name); so
renaming a world's symmetric threads means moving their positions and renaming
their bound names.  The kernel model never looks at a name but to find what it
names, so a micro-step of one thread in a world is, renamed, the micro-step of
the other in the renamed world, and the assertions, which name none of them,
see the same.

``Symmetry.canon`` picks one world of each class: the symmetric threads sorted
by what is theirs (position, frame, results, handles).  A frame holding text
(which could be a name) is left as it is: that world is not canonicalised,
which costs states, never soundness.
"""

from __future__ import annotations

import re

from attrs import evolve, fields

from cowdsl.scenario import Scenario, Step
from cowdsl.semantics.state import State

NAMELESS = ("number", "actor", "bind", "text", "span")  # what may differ between symmetric steps
_SAME = tuple(f.name for f in fields(Step) if f.name not in NAMELESS)

Group = tuple[tuple[int, ...], tuple[tuple[str | None, ...], ...]]  # thread indices, and each one's bound names by step


def _program(steps: list[Step]) -> tuple[object, ...]:
    return tuple(tuple(getattr(s, f) for f in _SAME) + (s.bind is not None,) for s in steps)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))


def groups(sc: Scenario, threads: list[tuple[str, tuple[int, ...]]]) -> list[Group]:
    """The symmetric groups among one block's threads ((actor, step indices) each)."""
    steps = sc.steps
    named: set[str] = set()
    for a in sc.assertions:
        named |= _words(a.text)
    processes = {s.task for s in steps if s.task is not None}
    out: dict[tuple[object, ...], list[int]] = {}
    names: list[tuple[str | None, ...]] = []
    for n, (actor, ix) in enumerate(threads):
        mine = [steps[i] for i in ix]
        own = {actor} | {s.bind for s in mine if s.bind is not None}
        elsewhere = set()
        for k, s in enumerate(steps):
            if k not in ix:
                elsewhere |= {s.actor, s.handle, s.task, s.pipe, s.file, s.to,
                              s.addr.proc if s.addr else None, s.addr2.proc if s.addr2 else None}
        names.append(tuple(s.bind for s in mine))
        if not mine or mine[0].task in (None, actor) or own & (named | elsewhere | processes) \
                or any(s.handle is not None for s in mine):
            continue  # a process, a device, or a thread named elsewhere: not interchangeable
        out.setdefault((mine[0].task, _program(mine)), []).append(n)
    return [(tuple(g), tuple(names[i] for i in g)) for g in out.values() if len(g) > 1]


def rename(state: State, names: dict[str, str], actors: dict[str, str] | None = None) -> State:
    """The state with the bound names renamed (results and handles kept sorted by name),
    and the lru_add batches of ``actors``' CPUs given to their new names."""
    results = tuple(sorted((names.get(k, k), v) for k, v in state.results))
    handles = tuple(sorted((evolve(h, name=names[h.name]) if h.name in names else h for h in state.handles),
                           key=lambda h: h.name))
    pages = state.pages
    if actors and any(p.lru_batch in actors for p in pages):
        pages = tuple(evolve(p, lru_batch=actors[p.lru_batch]) if p.lru_batch in actors else p for p in pages)
    return evolve(state, results=results, handles=handles, pages=pages)
