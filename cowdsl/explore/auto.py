"""The default mode: which search suits a scenario.

Partial-order reduction pays where actors are independent: it then walks a
handful of executions where the full search visits every interleaving.  Where
they contend (every GUP-fast pinner and fork on one mm, writers into one
process's memory) it visits about the states the full search visits and pays
its race bookkeeping on each, several times the full search's time.  So
``choose`` asks, of every par block, whether two of its actors can touch the
same memory: the mms of processes related by fork (which share pages until
they copy them), a file's page cache, a pipe.  An actor with no process of its
own (a device, reclaim, ksmd) touches every mm.  Contended: the full search
(whose ample sets still run a bystander's moves alone, explore.ample); else the
reduced one, after a trial of the full search with ample sets capped at
TRIAL_STATES (where no actor touches what another does, the ample sets take
each actor's moves alone except those on parts no process owns: as few states
as reduction, at less cost per state; past the cap, reduction, which tells
apart reads of those parts, takes over).  All give the same final states and
verdicts: the choice is one of speed only."""

from __future__ import annotations

from cowdsl.explore.model import Model
from cowdsl.scenario import Step

EVERYTHING = "*"  # what an actor without a process of its own touches
# Where actors are independent, run tries the full search with ample sets first, up to
# this many states (at 25,000 states per second or more: at most a fifth of a second)
TRIAL_STATES = 5_000


def choose(model: Model) -> str:
    """"full" where some par block's actors contend, else "reduced"."""
    family = families(model)
    for block in model.blocks:
        if len({model.sc.steps[i].actor for i in block}) < 2:
            continue
        touched: dict[str, set[str]] = {}
        for i in block:
            s = model.sc.steps[i]
            touched.setdefault(s.actor, set()).update(touches(s, family))
        seen: set[str] = set()
        for places in touched.values():
            if EVERYTHING in places or places & seen:
                return "full"
            seen |= places
    return "reduced"


def families(model: Model) -> dict[str, str]:
    """Each process's family: the processes related to it by fork (they share pages)."""
    root: dict[str, str] = {}

    def find(p: str) -> str:
        while root.get(p, p) != p:
            p = root[p]
        return p

    for s in model.sc.steps:
        if s.op == "fork" and s.task is not None and s.bind is not None:
            root[find(s.bind)] = find(s.task)
    return {p: find(p) for p in {*root, *(s.task for s in model.sc.steps if s.task is not None)}}


def touches(s: Step, family: dict[str, str]) -> set[str]:
    """What a step may touch, as zones: its fork family's mms, a file, a pipe; EVERYTHING
    for an actor with no process of its own, a pin's page, or a move between mappings."""
    if s.task is None:
        return {EVERYTHING}
    out = {"mm " + family.get(s.task, s.task)}
    for a in (s.addr, s.addr2):
        if a is not None:
            out.add("mm " + family.get(a.proc, a.proc))
    if s.file is not None:
        out.add("file " + s.file)
    if s.pipe is not None:
        out.add("pipe " + s.pipe)
    if s.handle is not None or s.to is not None:
        return {EVERYTHING}  # a pin's page, or a move between mappings: not followed here
    return out
