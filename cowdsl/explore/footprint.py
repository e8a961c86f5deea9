"""Micro-steps remembered by the parts of the state they touch.

``Lean.move`` remembers a micro-step by (state, thread).  Where actors are
independent (k processes, each writing a page of its own) almost every world has
a state of its own, and that memo never hits.  But a micro-step reads and
writes only a few parts of the state (the Machine records them for DPOR: an
mm, a page, a result), so two states that agree on those parts give the same
micro-step, with the same parts written to the same values.  ``Touched``
remembers, per thread position, the parts the micro-step touched and their
values before and after; a state that agrees on them gets the remembered
values put in place of its own, with no kernel code run.

A part is coarse, so that a Loc the Machine records maps to exactly one:
``("own", name, field)`` (an mm_struct's field: a lock, a flag, a counter;
codes.GROUPS says which share an int), ``("vmas", name)`` (its VMAs and page
tables), ``("mm", name)`` (all of the mm), ``("page",
pfn)``, ``("npages",)`` (how many pages there are: what an allocation reads),
``("result", name)``, and whole tuples where the model scans them:
``("mms",)``, ``("pages",)`` (the swap cache, the huge zero page, the lru_add
batches), ``("handles",)``, ``("slots",)``, ``("pipes",)``, ``("files",)``; an
unknown Loc is ``("state",)``, the whole state.  Sound as long as the Machine
records every read, which the reduced search relies on too;
``COWDSL_CHECK_FOOTPRINTS=1`` runs every remembered micro-step again and
compares."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from operator import itemgetter

from cowdsl.explore.codes import GROUP_OF, Code, Codec
from cowdsl.explore.model import Loc
from cowdsl.scenario import Step

Part = tuple[str | int, ...]
Shape = tuple[Part, ...]  # the parts one micro-step touched, sorted

CHECK = os.environ.get("COWDSL_CHECK_FOOTPRINTS") == "1"
SHAPES_MAX = 8  # per thread position: past it, a new shape is not remembered (the micro-step runs)
PROBE, WORTH = 2_000, 0.5  # after PROBE look-ups, a memo that found fewer than WORTH of them is dropped

_WHOLE: dict[str, Part] = {"mms": ("mms",), "swapcache": ("pages",), "huge-zero": ("pages",), "lru": ("pages",),
          "alloc": ("npages",), "slot": ("slots",), "alloc-slot": ("slots",), "handle": ("handles",),
          "handles": ("handles",), "pipe": ("pipes",), "file": ("files",)}


def part(loc: Loc) -> Part:
    """The part of the state a recorded Loc is in."""
    kind = str(loc[0])
    if kind == "vma" or kind == "mm" and loc[2] == "vmas":
        return ("vmas", str(loc[1]))
    if kind == "mm" and loc[2] in GROUP_OF:
        return ("own", str(loc[1]), str(loc[2]))
    if kind in ("mm*", "mm"):
        return ("mm", str(loc[1]))
    if kind == "page":
        return ("page", int(loc[1]))  # type: ignore[call-overload]
    if kind == "result":
        return ("result", str(loc[1]))
    return _WHOLE.get(kind, ("state",))


def step_parts(step: Step) -> set[Part]:
    """What the explorer reads of the state around a step, outside the Machine:
    whether its task is alive (Model.dead), whether the processes its addresses
    name exist (Backend.unborn); and the files, which mmap reads for a file's length."""
    out: set[Part] = {("files",)}
    if step.task is not None:
        out.add(("own", step.task, "alive"))
    for a in (step.addr, step.addr2):
        if a is not None:
            out.add(("own", a.proc, "alive"))  # no mm there: 0 there
    return out


def mark_parts(marks: Iterable[Loc]) -> set[Part]:
    """The parts Machine marks changed: a counter's (("counter", mm): count's only record of
    its write); an mm's mark (("mm*", mm)) is also update_mm's and add_mm's, whose writes
    say which fields they wrote."""
    return {("own", str(loc[1]), "faults") if loc[0] == "counter" else part(loc) for loc in marks if loc[0] != "mm*"}


# written, they say that a scan over every page (a drain, a swap-cache lookup) would now see
# something else; what changed is a page, whose write is recorded too (delta checks it)
_SCANNED = frozenset({"lru", "swapcache"})


def shape_of(reads: Iterable[Loc], writes: Iterable[Loc], extra: set[Part], marks: Iterable[Loc] = (),
             npages: int | None = None) -> Shape:
    """The parts a micro-step's key is made of: what it read and wrote, and ``extra``
    (what deciding whether it runs read).  ``npages``: how many pages there were
    before it; a page it allocated is no part (the number of pages is: the new
    ones are put in place whole)."""
    parts = extra | {part(loc) for loc in reads} | {part(loc) for loc in writes if loc[0] not in _SCANNED} \
        | mark_parts(marks)
    if ("state",) in parts:
        return (("state",),)
    if ("mms",) in parts:  # the whole tuple covers each mm
        parts = {p for p in parts if p[0] not in ("mm", "own", "vmas")}
    if ("pages",) in parts:
        parts = {p for p in parts if p[0] not in ("page", "npages")}
    elif npages is not None:
        parts = {p for p in parts if p[0] != "page" or int(p[1]) < npages}
    return tuple(sorted(parts, key=repr))


class Probe:
    """A shape's positions in a code (explore.codes): the ints a micro-step's key is made of."""

    __slots__ = ("fixed", "get", "pages")

    def __init__(self, shape: Shape, codec: Codec) -> None:
        pos: set[int] = set()
        self.pages = -1  # the position from which every page is in the key (the whole tail), or -1
        for p in shape:
            kind = p[0]
            if kind in ("mm", "own", "vmas"):  # a name the scenario does not have is in no state: nothing to key
                if p[1] in codec.mm_at:  # (the order too: a write to an mm makes Machine.freeze sort them)
                    pos.add(codec.order)
                    pos.update(codec.positions(kind, str(p[1]), str(p[2]) if kind == "own" else ""))
            elif kind == "result":
                if p[1] in codec.result_at:
                    pos.add(codec.result_at[str(p[1])])
            elif kind == "page":
                pos.add(codec.pages + int(p[1]))
            elif kind == "npages":
                pos.add(-1)  # stands for the length
            elif kind == "mms":
                pos.update(range(codec.mms_end))
                pos.add(codec.order)
            elif kind == "pages":
                self.pages = codec.pages
            elif kind == "state":
                self.pages = 0
            else:
                pos.add(getattr(codec, str(kind)))
        self.fixed = frozenset(pos)
        at = sorted(x for x in pos if x >= 0)
        length = -1 in pos
        tail = self.pages
        # the key: the ints at those positions (IndexError where a shorter code lacks a page
        # there: such a state is never looked up); an itemgetter alone where it can be, a C call
        pick: Callable[[Code], object] = itemgetter(*at) if at else (lambda c: ())
        if tail >= 0:
            self.get: Callable[[Code], object] = lambda c: (pick(c), c[tail:])
        elif length:
            self.get = lambda c: (pick(c), len(c))
        else:
            self.get = pick

    def covers(self, pos: int) -> bool:
        """Whether the shape holds position ``pos``."""
        return pos in self.fixed or 0 <= self.pages <= pos

    @property
    def allocates(self) -> bool:
        """Whether the shape holds the number of pages (the micro-step may add some)."""
        return -1 in self.fixed or self.pages >= 0


Move = tuple[tuple[tuple[int, int], ...], Code, int]  # (position, new int)s, pages added, thread after


def delta(before: Code, after: Code, probe: Probe, t2: int) -> Move:
    """What a micro-step changed, checked against the parts it recorded: a write it
    did not record would make every state that agrees on the others take it."""
    n = len(before)
    grown = len(after) > n
    changes = tuple((i, after[i]) for i in range(n) if before[i] != after[i])
    for i, _ in changes:
        assert probe.covers(i), f"a micro-step wrote position {i}, which it did not record"
    assert not grown or probe.allocates, "a micro-step added a page without recording the allocation"
    return changes, after[n:], t2


def apply(code: Code, move: Move) -> Code:
    changes, tail, _ = move
    out = list(code)
    for i, v in changes:
        out[i] = v
    if tail:
        out += tail
    return tuple(out)


class Touched:
    """Per thread position (an interned thread): the shapes its micro-step touched,
    and for each shape, the values there -> the move one run made from them.
    Lean.touched_move looks them up (inline: the search's hot path) and ``apply``s
    the move found."""

    __slots__ = ("codec", "probes", "gets", "asked", "found", "worth")

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.asked = self.found = 0  # look-ups, and those that found a remembered micro-step
        self.worth = True  # False once the look-ups found too few (Lean.touched_move): not asked any more
        # thread -> [(shape, its probe, values -> the move, or () where it waits on a lock)]
        self.probes: dict[int, list[tuple[Shape, Probe, dict[object, Move | tuple[()]]]]] = {}
        self.gets: dict[int, list[tuple[Callable[[Code], object], dict[object, Move | tuple[()]]]]] = {}  # the same, as
        # (probe.get, table): what touched_move looks up

    def __reduce__(self) -> tuple[type, tuple[Codec]]:
        """Pickled empty (a search's result sent back by a worker): what it remembers
        serves that search only, and its probes are closures."""
        return Touched, (self.codec,)

    def remember(self, thread: int, before: Code, shape: Shape, ran: tuple[Code, int] | tuple[()]) -> None:
        probes = self.probes.setdefault(thread, [])
        for known, probe, table in probes:  # noqa: B007 (the one found is used below)
            if known == shape:
                break
        else:
            if len(probes) >= SHAPES_MAX:
                return
            probe, table = Probe(shape, self.codec), {}
            probes.append((shape, probe, table))
            self.gets.setdefault(thread, []).append((probe.get, table))
        try:
            values = probe.get(before)
        except IndexError:  # a page the shape names that this state lacks
            return
        table[values] = delta(before, ran[0], probe, ran[1]) if ran else ()
