"""Symmetry: threads of one process running the same program are interchangeable.

Two threads of a par block are *symmetric* when they run in the same process
and their steps are the same ops on the same arguments, differing only in the
actor's name and the names their steps bind with ``as`` (a pin taken without
``as`` is named by its step: ``Step.handle_name``); and when none of those
names is used anywhere else: by an assertion, by another step (an ``unpin
r0``, a device acting through a pin), or as a process.  A thread that forks
``as B`` names a process, an mm: not interchangeable (renaming mms is not done).  Thread names
are not in the kernel state (a pin's handle is owned by the process), the bound
names are (``State.results``, ``State.handles``, both kept sorted by name); so
renaming a world's symmetric threads means moving their positions and renaming
their bound names.  The kernel model never looks at a name but to find what it
names, so a micro-step of one thread in a world is, renamed, the micro-step of
the other in the renamed world, and the assertions, which name none of them,
see the same.

An assertion may name their bound names when it is itself symmetric: swapping
any two threads of the group (their bound names, step by step) leaves each
assertion the same conjunction, its conjuncts counted as a multiset
(``always: (failed(r0) or r0 is A.p[0]) and (failed(r2) or r2 is A.p[0])``
for two pinners of p[0]).  Swaps of one member with each other generate every
permutation of the group, so the assertion then judges every renamed world as
it judges the world.  Otherwise the threads an assertion names keep their names
and leave the group.

``Symmetry.canon`` picks one world of each class: the symmetric threads sorted
by what is theirs (position, frame, results, handles).  A frame holding text
(which could be a name) is left as it is: that world is not canonicalised,
which costs states, never soundness.
"""

from __future__ import annotations

import re
from collections import Counter

from attrs import evolve, fields

from cowdsl import scenario as sx
from cowdsl.ops import OPS
from cowdsl.ops.spec import BINDS_PROCESS
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
    # a process, and a name that makes one (fork's child: an mm, which renaming leaves alone)
    processes = {s.task for s in steps if s.task is not None} | {s.bind for s in steps if OPS[s.op].binds == BINDS_PROCESS}
    out: dict[tuple[object, ...], list[int]] = {}
    names: list[tuple[str | None, ...]] = []
    asserted: set[int] = set()  # threads whose bound names some assertion uses
    for n, (actor, ix) in enumerate(threads):
        mine = [steps[i] for i in ix]
        binds = {s.bind for s in mine if s.bind is not None}
        elsewhere = set()
        for k, s in enumerate(steps):
            if k not in ix:
                elsewhere |= {s.actor, s.handle, s.task, s.pipe, s.file, s.to,
                              s.addr.proc if s.addr else None, s.addr2.proc if s.addr2 else None}
        names.append(tuple(s.handle_name for s in mine))  # a pin taken without `as` is named by its step
        if not mine or mine[0].task in (None, actor) or actor in named or ({actor} | binds) & (elsewhere | processes) \
                or any(s.handle is not None for s in mine):
            continue  # a process, a device, or a thread named elsewhere: not interchangeable
        if binds & named:
            asserted.add(n)
        out.setdefault((mine[0].task, _program(mine)), []).append(n)
    found = []
    for g in out.values():
        if asserted & set(g) and not all(symmetric(sc, names[g[0]], names[j]) for j in g[1:]):
            g = [i for i in g if i not in asserted]  # the assertions tell these apart: they keep their names
        if len(g) > 1:
            found.append((tuple(g), tuple(names[i] for i in g)))
    return found


def symmetric(sc: Scenario, one: tuple[str | None, ...], other: tuple[str | None, ...]) -> bool:
    """Whether swapping the bound names of two threads (``one`` and ``other``,
    step by step) leaves every assertion the same conjunction."""
    swap: dict[str, str] = {}
    for x, y in zip(one, other):
        if x is not None and y is not None:
            swap[x], swap[y] = y, x
    try:
        return all(Counter(_conjuncts(e)) == Counter(_conjuncts(_renamed(e, swap)))
                   for e in (x.expr for x in sc.assertions))
    except _Unsure:
        return False


class _Unsure(Exception):
    """A bound name where renaming it is not known to be sound (a process, a file), or a term not known here."""


def _conjuncts(e: object) -> list[object]:
    if isinstance(e, sx.BoolOp) and e.op == "and":
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]


def _renamed(e: object, swap: dict[str, str]) -> object:
    """An assertion's expression with bound names swapped (a pin's, a step's, a kept value's)."""
    if isinstance(e, (sx.HandlePage, sx.Bound, sx.StepRef)):
        return type(e)(swap.get(e.name, e.name))
    if isinstance(e, sx.BoolOp):
        return sx.BoolOp(e.op, _renamed(e.left, swap), _renamed(e.right, swap))
    if isinstance(e, sx.Cmp):
        return sx.Cmp(_renamed(e.left, swap), e.op, _renamed(e.right, swap))
    if isinstance(e, sx.Same):
        return sx.Same(_renamed(e.left, swap), _renamed(e.right, swap), e.negated)
    if isinstance(e, sx.Not):
        return sx.Not(_renamed(e.operand, swap))
    if isinstance(e, sx.FactCall):
        return sx.FactCall(e.name, tuple(_renamed(x, swap) for x in e.args))  # type: ignore[misc]
    if isinstance(e, sx.PageAt) and isinstance(e.addr, sx.Addr) and e.addr.proc not in swap \
            and e.addr.mapping not in swap:
        return e
    if isinstance(e, sx.FilePage) and e.file not in swap or isinstance(e, sx.ProcessRef) and e.name not in swap \
            or isinstance(e, sx.Const):
        return e
    raise _Unsure(e)


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


NAMED_LOCS = ("result", "handle")  # Locs (explore.model) that name a bound name; ("lru", cpu) names an actor


def renamed_loc(loc: tuple[object, ...], names: dict[str, str], actors: dict[str, str]) -> tuple[object, ...]:
    """A Loc a micro-step read or wrote, as ``rename`` renames the state: its bound
    name, or the actor whose CPU's lru_add batch it is."""
    if len(loc) > 1:
        table = names if loc[0] in NAMED_LOCS else actors if loc[0] == "lru" else None
        if table is not None and loc[1] in table:
            return (loc[0], table[loc[1]], *loc[2:])
    return loc

