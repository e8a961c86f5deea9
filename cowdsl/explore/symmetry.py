"""Symmetry: threads of one process running the same program are interchangeable;
so are processes that run the same program, with memory of their own or without.

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

Processes acting as themselves (``W0: process_vm_writev(A.p, 2)``, ``B0:
write(p, 2)`` in a child) are symmetric when their programs are the same but for
their own names (an address of their own, ``B0.p``, counts as the same), every
step of theirs is in the block, and either

- they are ``memoryless``: no step maps, moves or names a page of theirs, and no
  fork makes them.  Their mms hold no pages (only liveness and counters), so
  renaming them moves their mms' names, the pins they own and their CPUs'
  batches, and no page frame; or
- they ``owns_pages``: every step of the scenario is a PAGE_BLIND op, and the
  forks that make them come before the block.  Renaming them moves their page
  tables with their names, and the two children that wrote their copies in
  either order map pages whose frame numbers differ by a permutation: the
  canonical world ``renumber``s its pages in the order its structure names them.
  This is sound because a frame number is only a name to these ops: the model
  allocates at the end and, in what a state shows, follows neither page order
  nor mm order (an rmap walk that stops part-way, ksmd's scan, reclaim's swap
  slots do, and are not PAGE_BLIND).  A number in a thread's frame may be a
  page's (GUP-fast between pinning and checking): such a world keeps its page
  numbers, which costs states, never soundness.  Where two processes' pages are
  alike but for how they relate (who shares with whom), canon may pick either of
  two worlds of a class: sound, if fewer merge.

An assertion may name their bound names when it is itself symmetric: swapping
any two threads of the group (their bound names, step by step) leaves each
assertion the same conjunction, its conjuncts counted as a multiset
(``always: (failed(r0) or r0 is A.p[0]) and (failed(r2) or r2 is A.p[0])``
for two pinners of p[0]).  Swaps of one member with each other generate every
permutation of the group, so the assertion then judges every renamed world as
it judges the world.  Otherwise the threads an assertion names keep their names
and leave the group.

``Lean.canon`` picks one world of each class: the symmetric threads sorted
by what is theirs (position, frame, results, handles; a process's mm, its pages
by what they hold, ``mm_shape``).  A frame holding text
(which could be a name) is left as it is: that world is not canonicalised,
which costs states, never soundness.
"""

from __future__ import annotations

import re
from collections import Counter

from attrs import evolve, fields, has

from cowdsl import scenario as sx
from cowdsl.ops import OPS
from cowdsl.ops.khugepaged import COLLAPSE_ADVICE
from cowdsl.ops.ksm import KSM_ADVICE
from cowdsl.ops.spec import BINDS_PROCESS
from cowdsl.scenario import Scenario, Step
from cowdsl.semantics.state import NOT_RUN, ZERO_PFN, Outcome, Pte, State

NAMELESS = ("number", "actor", "bind", "text", "span")  # what may differ between symmetric steps
_SAME = tuple(f.name for f in fields(Step) if f.name not in NAMELESS)

Group = tuple[tuple[int, ...], tuple[tuple[str | None, ...], ...]]  # thread indices, and each one's bound names by step


def _program(steps: list[Step], own: str | None = None) -> tuple[object, ...]:
    """The steps as ops on arguments; ``own``: a process acting as itself, whose name
    (its steps' task, and the process of an address of its own) is left out, as a
    thread's actor is."""
    if own is None:
        return tuple(tuple(getattr(s, f) for f in _SAME) + (s.bind is not None,) for s in steps)
    return tuple(tuple(_mine(getattr(s, f), own) for f in _SAME_BUT_TASK) + (s.bind is not None,) for s in steps)


def _mine(x: object, own: str) -> object:
    return evolve(x, proc="") if isinstance(x, sx.Addr) and x.proc == own else x


_SAME_BUT_TASK = tuple(f for f in _SAME if f != "task")


# The ops whose mechanism depends neither on the order of page frame numbers nor on
# the order of mm names in a way a state shows.  Left out: an rmap walk that may stop
# part-way having changed what it passed (swapout's try_to_unmap, device-exclusive,
# device-private), a scan in mm order (ksmd, KSM's madvise and prctl, MADV_COLLAPSE),
# a swap slot handed out (swapout, swapin, MADV_PAGEOUT), a device's mirror named by
# its mm.  migrate's walk is in: it stops only at an exclusive page, which one PTE
# maps, and each mapper's entry is set (and restored) alone.  Where every step of a
# scenario is one of these, processes that own memory may trade names, with their
# pages renumbered (``renumber``).
# (mm/rmap.c try_to_migrate_one: folio_try_share_anon_rmap_pte fails only on an
# exclusive page, 5.19+, 6c287605fd56; 6.1.158, 6.18.2 read.)
PAGE_BLIND = frozenset({"read", "write", "fork", "exit", "exec", "mmap", "munmap", "mprotect", "mremap",
                        "madvise", "pin", "unpin", "gup", "put", "process_vm_writev", "process_vm_readv",
                        "proc_mem_write", "vmsplice", "pipe_read", "odirect_read", "odirect_write",
                        "io_uring_register", "migrate"})
PAGE_ORDERED_ADVICE = frozenset({"pageout", *KSM_ADVICE, *COLLAPSE_ADVICE})


def page_blind(sc: Scenario) -> bool:
    """Whether every step of sc is one of the PAGE_BLIND ops."""
    return all(s.op in PAGE_BLIND and not (s.op == "madvise" and s.flags & PAGE_ORDERED_ADVICE) for s in sc.steps)


def owns_pages(sc: Scenario, proc: str, first: int) -> bool:
    """Whether a process that has memory of its own (a fork's child, or one that maps)
    may still trade names with a process of the same program: every step of the
    scenario is PAGE_BLIND, the forks that make it come before step ``first`` (its
    block's first), and it maps no shared anonymous memory, whose shmem file the
    model names after the process."""
    return page_blind(sc) and all(
        not (OPS[s.op].binds == BINDS_PROCESS and s.bind == proc and i >= first)
        and not (s.task == proc and s.op == "mmap" and "shared" in s.flags and s.file is None)
        for i, s in enumerate(sc.steps))


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
    first = min((i for _, ix in threads for i in ix), default=0)  # the block's first step
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
        if mine[0].task == actor:  # a process acting as itself: all its steps here, its pages renumbered
            if ({actor} | binds) & elsewhere or binds & forked \
                    or not (memoryless(sc, actor) or owns_pages(sc, actor, first)):
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
    results = tuple(sorted((names.get(k, k), _not_run(v, actors)) for k, v in state.results))
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


def paged(sc: Scenario, actors: tuple[str, ...]) -> bool:
    """Whether a group of interchangeable actors holds a process with memory of its
    own: trading names then moves pages too, and the canonical world renumbers them."""
    return not all(memoryless(sc, a) for a in actors)


def renumber(state: State) -> tuple[State, dict[int, int]]:
    """The state with its page frames numbered in the order its structure first names
    them: the page tables (mms by name, VMAs, entries), the pins (by name), the pipes,
    the page cache; then the pages nothing names (freed ones), by their contents.
    The zero page keeps frame 0.  Returns the state and each number that changed.

    A frame number is only a name: the model allocates at the end and never orders by
    it in what a state shows (the ops are PAGE_BLIND), so two worlds that differ in the
    order their pages were allocated are the same world renumbered.  Worlds in one
    class numbered alike this way are equal; where two processes' pages tie, either
    order is a world of the class (sound, if fewer merged)."""
    order = [ZERO_PFN]
    seen = {ZERO_PFN}

    def name(pfn: int) -> None:
        if pfn >= 0 and pfn not in seen:
            seen.add(pfn)
            order.append(pfn)

    for mm in state.mms:
        for v in mm.vmas:
            for p in v.ptes:
                if p is not None:
                    name(p.page)
    for h in state.handles:
        name(h.page)
    for pipe in state.pipes:
        for b in pipe.bufs:
            name(b)
    for _, cached in state.files:
        for b in cached:
            name(b)
    pages = state.pages
    order += sorted((n for n in range(len(pages)) if n not in seen), key=lambda n: text(pages[n]))
    moved = {old: new for new, old in enumerate(order) if old != new}
    if not moved:
        return state, moved

    def to(pfn: int) -> int:
        return moved.get(pfn, pfn)

    def pte(p: Pte | None) -> Pte | None:
        return evolve(p, page=moved[p.page]) if p is not None and p.page in moved else p

    mms = tuple(evolve(mm, vmas=tuple(evolve(v, ptes=tuple(map(pte, v.ptes))) for v in mm.vmas))
                if any(p is not None and p.page in moved for v in mm.vmas for p in v.ptes) else mm
                for mm in state.mms)
    return evolve(state, mms=mms, pages=tuple(pages[n] for n in order),
                  handles=tuple(evolve(h, page=to(h.page)) if h.page in moved else h for h in state.handles),
                  pipes=tuple(evolve(p, bufs=tuple(map(to, p.bufs))) for p in state.pipes),
                  files=tuple((f, tuple(map(to, cached))) for f, cached in state.files)), moved


def page_text(state: State, pfn: int, actor: str) -> str:
    """A page as text without its frame number, for sorting by: what it holds and its
    counts, its lru_add batch as the actor's own or another's, and where a pipe
    holds it (two processes' pages alike but for their places in a pipe sort by those)."""
    if not 0 <= pfn < len(state.pages):
        return repr(pfn)
    p = state.pages[pfn]
    out = text(evolve(p, lru_batch="" if p.lru_batch == actor else p.lru_batch)) if p.lru_batch else text(p)
    if state.pipes:
        out += repr([(pipe.name, i) for pipe in state.pipes for i, b in enumerate(pipe.bufs) if b == pfn])
    return out


def text(x: object) -> str:
    """A value as text to sort by, the same for equal values: a state made from its
    code holds 0 where the one it was made from held False."""
    return repr(_plain(x))


def _plain(x: object) -> object:
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, tuple):
        return tuple(map(_plain, x))
    if has(type(x)):
        return (type(x).__name__, *(_plain(getattr(x, f.name)) for f in fields(type(x))))  # type: ignore[arg-type]
    return x


def mm_shape(state: State, actor: str) -> str:
    """A process's mm as text without its name or the numbers of its pages (each page
    as page_text): what sorts interchangeable processes, blind to how pages were numbered."""
    mm = state.mm(actor)
    if mm is None:
        return ""
    vmas = [(evolve(v, ptes=()), [None if p is None else (evolve(p, page=-1), page_text(state, p.page, actor))
                                  for p in v.ptes]) for v in mm.vmas]
    return text((evolve(mm, name="", vmas=()), tuple(vmas)))


def _not_run(o: Outcome, actors: dict[str, str]) -> Outcome:
    """An outcome, its process renamed where it says the step did not run in it
    ("not run: B0 was killed by SIGSEGV": explore.model)."""
    if actors and o.error is not None and o.error.startswith(NOT_RUN):
        who, _, why = o.error[len(NOT_RUN):].partition(" ")
        if who in actors:
            return evolve(o, error=f"{NOT_RUN}{actors[who]} {why}")
    return o

NAMED_LOCS = ("result", "handle")  # Locs (explore.model) that name a bound name
ACTOR_LOCS = ("lru", "mm", "mm*", "counter", "vma")  # ... and an actor: its CPU, or a (memoryless) process's mm


def renamed_loc(loc: tuple[object, ...], names: dict[str, str], actors: dict[str, str],
                pages: dict[int, int] | None = None) -> tuple[object, ...]:
    """A Loc a micro-step read or wrote, as ``rename`` renames the state: its bound
    name, or the actor whose CPU's lru_add batch it is; and a page as ``renumber``
    renumbers it."""
    if pages and loc[0] == "page" and loc[1] in pages:
        return ("page", pages[loc[1]])
    if len(loc) > 1:
        table = names if loc[0] in NAMED_LOCS else actors if loc[0] in ACTOR_LOCS else None
        if table is not None and loc[1] in table:
            return (loc[0], table[loc[1]], *loc[2:])
    return loc

