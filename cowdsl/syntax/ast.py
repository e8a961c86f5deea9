"""The syntax tree: one frozen class per grammar rule, each with its span."""

from __future__ import annotations

from attrs import frozen

from cowdsl.errors import Span


@frozen
class Name:
    text: str
    span: Span


@frozen
class Number:
    value: int
    span: Span


@frozen
class Location:
    """``buf``, ``buf[1]``, ``A.buf``, ``A.buf[1]``, ``F[0]``, a range of pages ``buf[0..3]``,
    a word in a page ``A.buf[1]+8``, or a bare name (a flag, pin, pipe)."""

    owner: Name | None  # the process in A.buf
    name: Name
    index: Number | None
    span: Span
    end: Number | None = None  # the last page of a range buf[index..end]
    offset: Number | None = None  # buf+8: the byte offset of an 8-byte word in the page

    def text(self) -> str:
        s = (f"{self.owner.text}." if self.owner else "") + self.name.text
        if self.end is not None and self.index is not None:
            s += f"[{self.index.value}..{self.end.value}]"
        elif self.index:
            s += f"[{self.index.value}]"
        return s + (f"+{self.offset.value}" if self.offset is not None else "")

    @property
    def bare(self) -> bool:
        return self.owner is None and self.index is None and self.offset is None


@frozen
class Var:
    """``$kind``: a param's value or a const, substituted before the file is checked."""

    name: str  # without the `$`
    span: Span


@frozen
class KeywordArg:
    key: Name
    value: Number | Name | Var
    span: Span


# A `$NAME` argument is parsed as a Var; cowdsl.check.sweep replaces each one
# (by a Number or a bare Location) before the checker sees a step's arguments.
Arg = Location | Number | KeywordArg


@frozen
class ScenarioName:
    text: str
    span: Span


@frozen
class RefLine:
    text: str
    span: Span


@frozen
class IncludeLine:
    path: str  # as written, between the quotes
    span: Span


@frozen
class ConstDecl:
    name: Name
    value: Number
    span: Span


@frozen
class ParamDecl:
    name: Name
    values: tuple[Number | Name, ...]
    span: Span


@frozen
class ProcessDecl:
    names: tuple[Name, ...]
    span: Span


@frozen
class ThreadDecl:
    name: Name
    process: Name
    span: Span


@frozen
class FileDecl:
    name: Name
    pages: tuple[Number | Var, ...]
    span: Span
    kind: Name | None = None  # `on shmem`: disk (None), shmem, memfd or hugetlbfs


@frozen
class PipeDecl:
    names: tuple[Name, ...]
    span: Span


@frozen
class Step:
    actor: Name
    op: Name
    args: tuple[Arg, ...]
    bind: Name | None
    span: Span


@frozen
class ParBlock:
    steps: tuple[Step, ...]
    span: Span


# --- assertion expressions ---------------------------------------------------


@frozen
class Compare:
    left: Expr
    op: str
    right: Expr
    span: Span


@frozen
class Same:
    left: Expr
    right: Expr
    negated: bool
    span: Span


@frozen
class Fact:
    name: Name
    args: tuple[Location, ...]
    span: Span


@frozen
class Bool:
    value: bool
    span: Span


@frozen
class Not:
    operand: Expr
    span: Span


@frozen
class BoolOp:
    op: str  # "and", "or", "implies"
    left: Expr
    right: Expr
    span: Span


Expr = Location | Number | Var | Fact | Bool | Not | BoolOp | Compare | Same


@frozen
class Assertion:
    expr: Expr
    text: str  # the source text after `assert` (or the quantifier)
    span: Span
    quantifier: str = "assert"  # assert, always, sometimes, never, forall, exists, ~exists, invariant, reachable
    scope: tuple[Name, ...] = ()  # `on BACKEND, ...:` the backends it is judged on (none: every one)


@frozen
class Condition:
    """``kind=thp|pte_thp`` after `when`: the param has one of these values."""

    param: Name
    values: tuple[Number | Name, ...]
    span: Span


@frozen
class ExpectLine:
    outcome: str  # "pass" | "fail"
    backends: tuple[Name, ...]
    span: Span
    when: tuple[Condition, ...] = ()


@frozen
class Included:
    """The items of an included file, in place of its `include` line.

    ``filename`` and ``source`` are the included file's (the spans of ``items``
    are in it); ``at`` is the chain of include lines that led here, outermost
    first, each (file name, source, span of the `include` line)."""

    items: tuple[Item, ...]
    filename: str
    source: str
    at: tuple[tuple[str, str, Span], ...]


Item = (ScenarioName | RefLine | IncludeLine | ConstDecl | ParamDecl | ProcessDecl | ThreadDecl | FileDecl | PipeDecl
        | Step | ParBlock | Assertion | ExpectLine | Included)


@frozen
class Module:
    items: tuple[Item, ...]
