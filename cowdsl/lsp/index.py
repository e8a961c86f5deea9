"""Every word of a .cow file with its role, from a syntax tree that tolerates
the line being typed.

A file in an editor is mostly a file that does not parse yet.  ``tolerant_parse``
parses it, and while the parser stops at a line, blanks that line (or closes an
open ``par {`` at the end) and parses again: the rest of the file still gives
its names, so completion and go-to-definition work while a line is unfinished.

Names live in two namespaces: mappings (``buf``: made by ``mmap(buf, ...)``,
inherited by a forked child, used as ``buf``, ``buf[1]``, ``A.buf``) and every
other name (processes, threads, files, pipes, and what ``as`` binds).
"""

from __future__ import annotations

from attrs import field, frozen

from cowdsl import ops
from cowdsl.errors import CowError, Span
from cowdsl.syntax import ast
from cowdsl.syntax.parser import parse

# Roles of a word that is not a name.
OP, FLAG, KWARG, FACT, BACKEND, ACTOR_BUILTIN = "op", "flag", "kwarg", "fact", "backend", "builtin-actor"
# Kinds of names.
PROCESS, THREAD, FILE, PIPE, MAPPING = "process", "thread", "file", "pipe", "mapping"
BIND_KINDS = {
    ops.BINDS_PROCESS: PROCESS, ops.BINDS_PIN: "pin", ops.BINDS_REF: "gup reference", ops.BINDS_VALUE: "value",
    ops.BINDS_DEVICE: "device-exclusive access", ops.BINDS_OUTCOME: "step outcome",
}

_MAX_REPAIRS = 40


@frozen
class Occurrence:
    """A word of the file: its span, its role, and for a name its key and whether it declares it."""

    span: Span
    text: str
    role: str  # OP, FLAG, KWARG, FACT, BACKEND, ACTOR_BUILTIN, or "name"
    key: tuple[str, str] | None = None  # ("name", A) or ("mapping", buf)
    kind: str | None = None  # for a declaration: PROCESS, THREAD, ..., or what `as` binds
    is_def: bool = False
    op: str | None = None  # the op of a flag or keyword argument, or of the step a name is declared by
    proc: str | None = None  # the process whose mapping this is (mappings), when known
    line_text: str = ""  # the statement it is in, for hover


@frozen
class Index:
    module: ast.Module
    occurrences: tuple[Occurrence, ...]
    blanked: tuple[int, ...]  # 1-based lines left out to parse the rest
    parents: dict[str, str] = field(factory=dict)  # forked child -> parent
    threads: dict[str, str] = field(factory=dict)  # thread -> its process

    def at(self, line: int, col: int) -> Occurrence | None:
        """The word at 1-based ``line``, ``col`` (a cursor just after a word counts)."""
        best = None
        for o in self.occurrences:
            if o.span.line == line and o.span.col <= col <= o.span.end_col:
                if best is None or col < o.span.end_col:
                    best = o
        return best

    def definitions(self, key: tuple[str, str]) -> list[Occurrence]:
        return [o for o in self.occurrences if o.key == key and o.is_def]

    def uses(self, key: tuple[str, str]) -> list[Occurrence]:
        return [o for o in self.occurrences if o.key == key]

    def names(self, *kinds: str) -> list[str]:
        """Declared names of these kinds, in file order, once each."""
        out: list[str] = []
        for o in self.occurrences:
            if o.is_def and o.kind in kinds and o.text not in out:
                out.append(o.text)
        return out

    def process_of(self, actor: str) -> str:
        return self.threads.get(actor, actor)

    def mappings_of(self, proc: str) -> list[str]:
        """The mappings a process has by the end of the file: its own mmaps and its ancestors'."""
        chain = [proc]
        while chain[-1] in self.parents and self.parents[chain[-1]] not in chain:
            chain.append(self.parents[chain[-1]])
        out: list[str] = []
        for o in self.occurrences:
            if o.is_def and o.kind == MAPPING and o.proc in chain and o.text not in out:
                out.append(o.text)
        return out

    def definition_for(self, occ: Occurrence) -> list[Occurrence]:
        """Where the name ``occ`` is declared; for a mapping, the mmap of its process (or
        of the process it was forked from) before the use, else every mmap of that name."""
        if occ.key is None:
            return []
        defs = self.definitions(occ.key)
        if occ.key[0] != MAPPING or occ.proc is None or len(defs) <= 1:
            return defs
        chain = [occ.proc]
        while chain[-1] in self.parents and self.parents[chain[-1]] not in chain:
            chain.append(self.parents[chain[-1]])
        for proc in chain:
            mine = [d for d in defs if d.proc == proc and d.span.line <= occ.span.line]
            if mine:
                return [mine[-1]]
        return defs


def _blank(lines: list[str], line: int) -> bool:
    if 1 <= line <= len(lines) and lines[line - 1].strip():
        lines[line - 1] = ""
        return True
    return False


def tolerant_parse(source: str) -> tuple[ast.Module, tuple[int, ...]]:
    """The syntax tree of ``source``, leaving out the lines the parser stops at."""
    lines = source.replace("\r\n", "\n").split("\n")
    blanked: list[int] = []
    closed = False
    for _ in range(_MAX_REPAIRS):
        try:
            return parse("\n".join(lines)), tuple(blanked)
        except CowError as e:
            if not e.diagnostics:
                break
            d = e.diagnostics[0]
            if d.message == "unexpected end of file" and not closed:
                lines.append("}")  # an open `par {` at the end
                closed = True
                continue
            if _blank(lines, d.span.line):
                blanked.append(d.span.line)
                continue
            # the error is reported on a blank line: the statement before it is unfinished
            prev = next((n for n in range(d.span.line - 1, 0, -1) if lines[n - 1].strip()), None)
            if prev is None or not _blank(lines, prev):
                break
            blanked.append(prev)
    return ast.Module(()), tuple(blanked)


class _Builder:
    def __init__(self, source: str):
        self.lines = source.replace("\r\n", "\n").split("\n")
        self.out: list[Occurrence] = []
        self.globals: set[str] = set()
        self.parents: dict[str, str] = {}
        self.threads: dict[str, str] = {}

    def text(self, span: Span) -> str:
        return self.lines[span.line - 1].strip() if 0 < span.line <= len(self.lines) else ""

    def add(self, name: ast.Name, role: str, **kw: object) -> None:
        self.out.append(Occurrence(name.span, name.text, role, line_text=self.text(name.span), **kw))  # type: ignore[arg-type]

    def name_def(self, name: ast.Name, kind: str, op: str | None = None) -> None:
        self.add(name, "name", key=("name", name.text), kind=kind, is_def=True, op=op)

    def name_use(self, name: ast.Name) -> None:
        if name.text in ops.BUILTIN_ACTORS:
            self.add(name, ACTOR_BUILTIN)
        else:
            self.add(name, "name", key=("name", name.text))

    def mapping(self, name: ast.Name, proc: str | None, is_def: bool = False, op: str | None = None) -> None:
        self.add(name, "name", key=(MAPPING, name.text), kind=MAPPING if is_def else None, is_def=is_def,
                 proc=proc, op=op)

    def collect_globals(self, module: ast.Module) -> None:
        for item in module.items:
            if isinstance(item, ast.ProcessDecl | ast.PipeDecl):
                self.globals.update(n.text for n in item.names)
            elif isinstance(item, ast.ThreadDecl):
                self.globals.add(item.name.text)
                self.threads[item.name.text] = item.process.text
            elif isinstance(item, ast.FileDecl):
                self.globals.add(item.name.text)
            for st in item.steps if isinstance(item, ast.ParBlock) else [item]:
                if isinstance(st, ast.Step) and st.bind is not None:
                    self.globals.add(st.bind.text)
                    if st.op.text == "fork":
                        self.parents[st.bind.text] = self.threads.get(st.actor.text, st.actor.text)

    def location(self, loc: ast.Location, proc: str | None) -> None:
        """A location in a step (``proc``: the acting process) or an assertion (``proc`` None)."""
        if loc.owner is not None:
            self.name_use(loc.owner)
            self.mapping(loc.name, loc.owner.text)
        elif loc.name.text in self.globals or proc is None or loc.name.text in ops.BUILTIN_ACTORS:
            self.name_use(loc.name)
        else:
            self.mapping(loc.name, proc)

    def step(self, st: ast.Step) -> None:
        spec = ops.OPS.get(st.op.text)
        actor = st.actor.text
        self.name_use(st.actor)
        self.add(st.op, OP, op=st.op.text)
        proc = self.threads.get(actor, actor) if actor in self.globals else None
        flags = spec.flag_words() if spec else {}
        for i, arg in enumerate(st.args):
            if isinstance(arg, ast.KeywordArg):
                self.add(arg.key, KWARG, op=st.op.text)
                if isinstance(arg.value, ast.Name):
                    self.name_use(arg.value)
            elif isinstance(arg, ast.Location):
                if arg.bare and arg.name.text in flags:
                    self.add(arg.name, FLAG, op=st.op.text)
                elif i == 0 and spec is not None and spec.params and spec.params[0].kind == ops.NEW_MAPPING and arg.bare:
                    self.mapping(arg.name, proc, is_def=True, op=st.op.text)
                else:
                    self.location(arg, proc if proc is not None else actor)
        if st.bind is not None:
            kind = BIND_KINDS.get(spec.binds, "name") if spec else "name"
            self.name_def(st.bind, kind, st.op.text)

    def expr(self, e: ast.Expr) -> None:
        stack: list[ast.Expr] = [e]
        while stack:
            x = stack.pop()
            if isinstance(x, ast.Location):
                self.location(x, None)
            elif isinstance(x, ast.Fact):
                self.add(x.name, FACT)
                stack.extend(reversed(x.args))
            elif isinstance(x, ast.Not):
                stack.append(x.operand)
            elif isinstance(x, ast.BoolOp | ast.Compare | ast.Same):
                stack.extend([x.right, x.left])

    def build(self, module: ast.Module) -> None:
        self.collect_globals(module)
        for item in module.items:
            if isinstance(item, ast.ProcessDecl):
                for n in item.names:
                    self.name_def(n, PROCESS)
            elif isinstance(item, ast.PipeDecl):
                for n in item.names:
                    self.name_def(n, PIPE)
            elif isinstance(item, ast.ThreadDecl):
                self.name_def(item.name, THREAD)
                self.name_use(item.process)
            elif isinstance(item, ast.FileDecl):
                self.name_def(item.name, FILE)
            elif isinstance(item, ast.Step):
                self.step(item)
            elif isinstance(item, ast.ParBlock):
                for st in item.steps:
                    self.step(st)
            elif isinstance(item, ast.Assertion):
                self.expr(item.expr)
            elif isinstance(item, ast.ExpectLine):
                for b in item.backends:
                    self.add(b, BACKEND)


def build(source: str) -> Index:
    module, blanked = tolerant_parse(source)
    b = _Builder(source)
    b.build(module)
    occ = tuple(sorted(b.out, key=lambda o: (o.span.line, o.span.col)))
    return Index(module, occ, blanked, b.parents, b.threads)
