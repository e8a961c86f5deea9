"""The shared context of the checker's jobs: the file, the limits, the name table,
the steps so far, and the diagnostics.

Every job of ``cowdsl.check`` is a mixin over :class:`Context` (as the mechanism
in ``cowdsl.semantics.mm`` is over ``Backend``); a job that calls another's
methods derives from it, so the dependencies between jobs are the class bases.
``Context`` holds all the state, each attribute noted with the job that keeps it.
"""

from __future__ import annotations

from typing import Protocol, cast

from attrs import define, field

from cowdsl import limits as L
from cowdsl import ops
from cowdsl import scenario as S
from cowdsl.errors import CowError, Diagnostic, Span
from cowdsl.syntax import ast
from cowdsl.syntax.include import IncludedError, walk


class StaticLimits(Protocol):
    """The limits the checker enforces (``cowdsl.limits.Limits`` sets its fields at run time)."""

    max_processes: int
    max_threads: int
    max_pages: int
    max_total_pages: int
    max_steps: int


@define
class Handle:
    """A pin, gup reference or device-exclusive handle bound by `as`."""

    kind: str  # ops.BINDS_PIN, ops.BINDS_REF or ops.BINDS_DEVICE
    write: bool
    owner: str
    line: int
    released_at: int | None = None
    released_by: str = ""  # "unpin", "put", or "exit" (the owner exited)

    @property
    def what(self) -> str:
        return {ops.BINDS_PIN: "pin", ops.BINDS_REF: "gup reference"}.get(self.kind, "device-exclusive handle")

    def released(self) -> str:
        how = f", when `{self.owner}` exited" if self.released_by == "exit" else ""
        return f"released at line {self.released_at}{how}"


@define
class NameTable:
    """What the checker knows at one point of the program."""

    processes: dict[str, int] = field(factory=dict)  # name -> line created (0: declared)
    exited: dict[str, int] = field(factory=dict)
    threads: dict[str, str] = field(factory=dict)  # name -> process, in declaration order
    files: dict[str, tuple[int, ...]] = field(factory=dict)  # name -> the value of each page
    file_kinds: dict[str, str] = field(factory=dict)  # name -> shmem, memfd or hugetlbfs (absent: disk)
    pipes: set[str] = field(factory=set)
    mappings: dict[str, dict[str, int]] = field(factory=dict)  # proc -> mapping -> pages
    file_backed: dict[str, set[str]] = field(factory=dict)  # proc -> mappings ever mapped from a file
    unmapped: dict[tuple[str, str], int] = field(factory=dict)  # (proc, mapping) -> line
    execs: dict[str, int] = field(factory=dict)  # proc -> line of its last exec (which unmapped everything)
    handles: dict[str, Handle] = field(factory=dict)
    values: set[str] = field(factory=set)  # `as v` of value ops
    outcomes: set[str] = field(factory=set)  # every `as` name
    later: dict[str, int] = field(factory=dict)  # fork children named later: name -> line

    def is_taken(self, name: str) -> bool:
        return any(name in names for names in (self.processes, self.threads, self.files, self.pipes, self.handles,
                                                self.values, self.outcomes))


class Context:
    """The state every job shares, and how a job reports a problem."""

    def __init__(self, module: ast.Module, filename: str, source: str, limits: L.Limits | None = None) -> None:
        self.module = module
        self.filename = filename
        self.source = source
        self.lines = source.split("\n")  # as the parser counts lines: on \n only
        self.limits = cast(StaticLimits, limits or L.DEFAULT)
        self.diags: list[Diagnostic] = []
        # include: the included file being checked (None: this file), and where each diagnostic is
        self.origin: ast.Included | None = None
        self.where: list[ast.Included | None] = []
        # Every item in order, an included file's in place of its include line, with its file.
        self.items: list[tuple[ast.Included | None, ast.Item]] = list(walk(module.items))
        self.n = NameTable()  # names: declarations, `as` names, effects of steps
        self.steps: list[S.Step] = []  # steps: checked so far, in program order
        self.par: int | None = None  # steps: the block id while checking a par block
        self.par_made: dict[str, tuple[str, int]] = {}  # names: made in this par block -> (actor, line)
        self.total_pages = 0  # bounds: pages of every mmap and file so far
        self.over: set[str] = set()  # bounds: limits already reported
        self.expected: dict[str, tuple[S.Expectation, int]] = {}  # expect: each model's, and its line's rank
        self.variant: S.Variant = ()  # sweep: the params' values of this scenario

    def error(self, message: str, span: Span, expected: str | None = None, hint: str | None = None) -> None:
        if len(self.diags) >= L.MAX_DIAGNOSTICS:  # stop: the work and the output stay bounded
            self.diags.append(Diagnostic(f"too many errors: checking stopped after {L.MAX_DIAGNOSTICS}", span,
                                         hint="fix the errors above and check again"))
            self.where.append(self.origin)
            raise self.fail()
        self.diags.append(Diagnostic(message, span, expected, hint))
        self.where.append(self.origin)

    def enter(self, origin: ast.Included | None) -> None:
        """Check the items of ``origin`` (an included file) next, or of this file (None)."""
        if origin is not self.origin:
            self.origin = origin
            self.lines = (origin.source if origin else self.source).split("\n")

    def fail(self) -> CowError:
        """Every problem found so far, as one error: in several files, an IncludedError."""
        return failure(self.filename, self.source, list(zip(self.where, self.diags)))

    def text_of(self, span: Span) -> str:
        """The source text under a span."""
        if 0 < span.line <= len(self.lines):
            return self.lines[span.line - 1][span.col - 1 : span.end_col - 1].strip()
        return ""


def failure(filename: str, source: str, found: list[tuple[ast.Included | None, Diagnostic]]) -> CowError:
    """Diagnostics, each with the file it is in (None: this file), as one error."""
    if all(origin is None for origin, _ in found):
        return CowError(filename, source, [d for _, d in found])
    parts: dict[object, tuple[str, str, list[Diagnostic], tuple]] = {}
    for origin, d in found:
        key = origin.at if origin else None  # the same file, included by the same line
        if key not in parts:
            parts[key] = (origin.filename, origin.source, [], origin.at) if origin else (filename, source, [], ())
        parts[key][2].append(d)
    return IncludedError(list(parts.values()))
