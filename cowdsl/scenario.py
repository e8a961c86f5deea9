"""A checked scenario: names resolved, ops validated, ready for a backend."""

from __future__ import annotations

from collections.abc import Iterator

from attrs import frozen

from cowdsl.errors import Span
from cowdsl.kernel.spec import KernelSpec

PAGE_BYTES = 4096  # a page as an address sees it: a word offset is below this (a huge page's first 4 KiB)
WORD_BYTES = 8  # the unit of a load, a store and a DMA: one 8-byte word


@frozen
class Addr:
    """A page of a process: ``A.buf[1]``; with ``offset``, the 8-byte word at that
    byte offset in it (``A.buf[1]+8``).  The page is the same whatever the offset."""

    proc: str
    mapping: str
    index: int
    offset: int = 0

    def __str__(self) -> str:
        return (f"{self.proc}.{self.mapping}" + (f"[{self.index}]" if self.index else "")
                + (f"+{self.offset}" if self.offset else ""))


@frozen
class Step:
    number: int  # 1-based, in program order
    actor: str  # as written: a process, a thread, a pin/ref, or `reclaim`
    task: str | None  # the process whose mm the actor runs in (None for devices, reclaim)
    op: str
    addr: Addr | None = None
    addr2: Addr | None = None  # the second page, for ksm_merge
    value: int | None = None
    count: int = 1  # gup count=N
    flags: frozenset[str] = frozenset()
    pages: int = 1
    file: str | None = None
    mapping: str | None = None
    part: tuple[int, int] | None = None  # pages first..last of the mapping (buf[i..j]); None: all of it
    to: str | None = None  # mremap: the new mapping the pages move to
    pipe: str | None = None
    handle: str | None = None  # unpin/put target, or the pin a device acts through
    bind: str | None = None
    text: str = ""
    span: Span = Span(1, 1, 2)
    block: int = 0  # steps that share a block id run concurrently (a `par { }` block)
    par: bool = False

    @property
    def handle_name(self) -> str:
        """The name of the pin or reference this step takes: its `as` name, else one of its own."""
        return self.bind or f"{self.op}@{self.number}"


# --- assertion terms ------------------------------------------------------------


@frozen
class PageAt:
    """What process ``addr.proc`` has at an address: its value, its page."""

    addr: Addr


@frozen
class HandlePage:
    """The page a pin or gup reference holds."""

    name: str


@frozen
class FilePage:
    file: str
    index: int
    offset: int = 0  # F[0]+8: the word at that byte offset


@frozen
class Bound:
    """A value kept by `as v` (read, pipe_read, dma_read, process_vm_readv)."""

    name: str


@frozen
class ProcessRef:
    name: str


@frozen
class StepRef:
    """A step named by `as`, for failed()."""

    name: str


@frozen
class Const:
    value: int | bool


Ref = PageAt | HandlePage | FilePage | Bound | ProcessRef | StepRef | Const


@frozen
class FactCall:
    name: str
    args: tuple[Ref, ...]


@frozen
class Cmp:
    left: object
    op: str
    right: object


@frozen
class Same:
    left: object
    right: object
    negated: bool


@frozen
class Not:
    operand: object


@frozen
class BoolOp:
    op: str
    left: object
    right: object


def refs(e: object) -> Iterator[Ref]:
    """The terms an assertion's expression names, left to right."""
    if isinstance(e, BoolOp | Cmp | Same):
        yield from refs(e.left)
        yield from refs(e.right)
    elif isinstance(e, Not):
        yield from refs(e.operand)
    elif isinstance(e, FactCall):
        yield from e.args
    elif isinstance(e, PageAt | HandlePage | FilePage | Bound | ProcessRef | StepRef | Const):
        yield e


# Quantifiers over executions, herd-style; `assert` is `always` on final states.
# `invariant` (AG) and `reachable` (EF) are judged on every state reached, not only final ones.
ALWAYS, SOMETIMES, NEVER, INVARIANT, REACHABLE = "always", "sometimes", "never", "invariant", "reachable"
QUANTIFIERS = {"always": ALWAYS, "forall": ALWAYS, "assert": ALWAYS, "sometimes": SOMETIMES,
               "exists": SOMETIMES, "never": NEVER, "~exists": NEVER, "invariant": INVARIANT, "reachable": REACHABLE}


@frozen
class Assertion:
    expr: object
    text: str
    span: Span
    quantifier: str = ALWAYS
    # `assert on anon-exclusive: ...`: the models it is judged on (empty: every
    # backend), resolved like expect lines; elsewhere it is "not judged"
    scope: tuple[KernelSpec, ...] = ()
    scope_text: str = ""  # as written: `anon-exclusive, 5.10..6.1`


@frozen
class Expectation:
    outcome: str  # "pass" | "fail"
    spec: KernelSpec  # resolved when the file was checked
    span: Span


# The values of a swept file's params, in the order the params are declared.
Variant = tuple[tuple[str, int | str], ...]


def variant_text(variant: Variant) -> str:
    """``kind=thp,pages=2``"""
    return ",".join(f"{k}={v}" for k, v in variant)


def variant_suffix(variant: Variant) -> str:
    """What a swept scenario's name gets: ``[kind=thp,pages=2]``; nothing without params."""
    return f"[{variant_text(variant)}]" if variant else ""


@frozen
class Scenario:
    name: str
    filename: str
    source: str
    refs: tuple[str, ...]
    processes: tuple[str, ...]  # declared at the start
    threads: tuple[tuple[str, str], ...]  # (thread, process)
    files: tuple[tuple[str, tuple[int, ...]], ...]
    pipes: tuple[str, ...]
    steps: tuple[Step, ...]
    assertions: tuple[Assertion, ...]
    expectations: tuple[Expectation, ...]
    params: Variant = ()  # a swept file's scenario: the value of each param (also in the name)
    file_kinds: tuple[tuple[str, str], ...] = ()  # files not on disk: shmem, memfd, hugetlbfs

    def blocks(self) -> list[list[Step]]:
        """Consecutive steps grouped: a sequential step alone, a par block together."""
        out: list[list[Step]] = []
        for s in self.steps:
            if out and s.par and out[-1][0].par and out[-1][0].block == s.block:
                out[-1].append(s)
            else:
                out.append([s])
        return out

    @property
    def where(self) -> str:
        """The file, with a swept scenario's params' values: ``x.cow[kind=thp]``.
        What reports show for a scenario, and the key of its results."""
        return self.filename + variant_suffix(self.params)

    @property
    def concurrent(self) -> bool:
        return any(s.par for s in self.steps)

    def expected_on(self, spec: KernelSpec) -> str | None:
        """What the expect lines say for the model ``spec`` runs, if anything."""
        for e in self.expectations:
            if e.spec.name == spec.name:
                return e.outcome
        return None
