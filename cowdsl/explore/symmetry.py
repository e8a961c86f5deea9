"""Symmetry: threads of one process running the same program are interchangeable;
so are processes with no memory of their own that run the same program.

Two threads of a par block are *symmetric* when they run in the same process
and their steps are the same ops on the same arguments, differing only in the
actor's name and the names their steps bind with ``as`` (a pin taken without
``as`` is named by its step: ``Step.handle_name``); and when none of those
names is used anywhere else: by an assertion, by another step (an ``unpin
r0``, a device acting through a pin), or as a process.  A thread that forks
``as B`` names a process, an mm: not interchangeable.  Thread names
are not in the kernel state (a pin's handle is owned by the process), the bound
names are (``State.results``, ``State.handles``, both kept sorted by name); so
renaming a world's symmetric threads means moving their positions and renaming
their bound names.  The kernel model never looks at a name but to find what it
names, so a micro-step of one thread in a world is, renamed, the micro-step of
the other in the renamed world, and the assertions, which name none of them,
see the same.

Processes acting as themselves (``W0: process_vm_writev(A.p, 2)``) are symmetric
when their programs are the same but for their own names, every step of theirs
is in the block, and they are ``memoryless``: no step maps, moves or names a page
of theirs, and no fork makes them.  Their mms then hold no pages (only liveness
and counters), so renaming them moves their mms' names, the pins they own and
their CPUs' batches, and no page frame: which page two processes with memory
would map after writing in either order differs by a permutation of page frame
numbers, which canon does not make.

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


def _program(steps: list[Step], own: str | None = None) -> tuple[object, ...]:
    """The steps as ops on arguments; ``own``: a process acting as itself, whose name
    (its steps' task) is left out, as a thread's actor is."""
    fields = _SAME if own is None else _SAME_BUT_TASK
    return tuple(tuple(getattr(s, f) for f in fields) + (s.bind is not None,) for s in steps)


_SAME_BUT_TASK = tuple(f for f in _SAME if f != "task")


def memoryless(sc: Scenario, proc: str) -> bool:
    """A process that never has memory of its own: no step maps, moves or names a page
    of it, and no fork makes it.  Its mm is only a name, a liveness and counters, so
    two such processes trade names without trading pages (whose frame numbers the
    canonical world would otherwise have to permute too)."""
    return all(s.bind != proc for s in sc.steps if OPS[s.op].binds == BINDS_PROCESS) and all(
        not (s.task == proc and (s.mapping is not None or s.to is not None or s.file is not None))
        and (s.addr is None or s.addr.proc != proc) and (s.addr2 is None or s.addr2.proc != proc)
        for s in sc.steps)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))


def groups(sc: Scenario, threads: list[tuple[str, tuple[int, ...]]]) -> list[Group]:
    """The symmetric groups among one block's threads ((actor, step indices) each)."""
    steps = sc.steps
    named: set[str] = set()
    for a in sc.assertions:
        named |= _words(a.text)
    # a process, and a name that makes one (fork's child: an mm, which renaming leaves alone)
    forked = {s.bind for s in steps if OPS[s.op].binds == BINDS_PROCESS}
    processes = {s.task for s in steps if s.task is not None} | forked
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
        if not mine or actor in named or any(s.handle is not None for s in mine):
            continue  # a device, or an actor an assertion names: not interchangeable
        if mine[0].task == actor:  # a process acting as itself: all its steps here, and no memory of its own
            if ({actor} | binds) & (elsewhere | forked) or not memoryless(sc, actor):
                continue
            key: tuple[object, ...] = ("process", _program(mine, own=actor))
        elif mine[0].task is None or ({actor} | binds) & (elsewhere | processes):
            continue  # reclaim or ksmd, or a thread named elsewhere
        else:
            key = (mine[0].task, _program(mine))
        if binds & named:
            asserted.add(n)
        out.setdefault(key, []).append(n)
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
    and what is ``actors``' by name given to their new names: their CPUs' lru_add
    batches; for processes (memoryless ones), their mms and the pins they own."""
    actors = actors or {}
    results = tuple(sorted((names.get(k, k), v) for k, v in state.results))
    handles = tuple(sorted((evolve(h, name=names.get(h.name, h.name), owner=actors.get(h.owner, h.owner))
                            if h.name in names or h.owner in actors else h for h in state.handles),
                           key=lambda h: h.name))
    pages, mms = state.pages, state.mms
    if any(p.lru_batch in actors for p in pages):
        pages = tuple(evolve(p, lru_batch=actors[p.lru_batch]) if p.lru_batch in actors else p for p in pages)
    if any(m.name in actors for m in mms):
        mms = tuple(sorted((evolve(m, name=actors[m.name]) if m.name in actors else m for m in mms),
                           key=lambda m: m.name))
    return evolve(state, results=results, handles=handles, pages=pages, mms=mms)


NAMED_LOCS = ("result", "handle")  # Locs (explore.model) that name a bound name
ACTOR_LOCS = ("lru", "mm", "mm*", "counter", "vma")  # ... and an actor: its CPU, or a (memoryless) process's mm


def renamed_loc(loc: tuple[object, ...], names: dict[str, str], actors: dict[str, str]) -> tuple[object, ...]:
    """A Loc a micro-step read or wrote, as ``rename`` renames the state: its bound
    name, or the actor whose CPU's lru_add batch it is."""
    if len(loc) > 1:
        table = names if loc[0] in NAMED_LOCS else actors if loc[0] in ACTOR_LOCS else None
        if table is not None and loc[1] in table:
            return (loc[0], table[loc[1]], *loc[2:])
    return loc

