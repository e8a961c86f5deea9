"""Parse .cow source into the syntax tree, with human syntax errors."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from cowdsl import ops
from cowdsl.errors import CowError, Diagnostic, Span, did_you_mean, one_of
from cowdsl.syntax import ast

MAX_SOURCE_BYTES = 1 << 20  # a scenario is a page of text, not a megabyte


def grammar_text() -> str:
    """The grammar: inside the installed package, or grammar/ in a checkout."""
    packaged = resources.files("cowdsl") / "grammar" / "cow.lark"
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parents[2] / "grammar" / "cow.lark").read_text(encoding="utf-8")


@functools.cache
def lark_parser() -> Lark:
    # cache=True keeps the LALR tables in the temp dir: the cold start stays fast.
    return Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True, cache=True)


def _span(meta) -> Span:
    line, col = getattr(meta, "line", 1), getattr(meta, "column", 1)
    end = meta.end_column if getattr(meta, "end_line", line) == line else col + 1
    return Span(line, col, max(end, col + 1))


def _int(tok: Token) -> int:
    s = str(tok)
    return int(s, 16) if s.lower().startswith("0x") else int(s)


def _name(tok: Token) -> ast.Name:
    return ast.Name(str(tok), Span.of_token(tok))


@v_args(meta=True)
class ToAst(Transformer):
    """Grammar rules in snake_case become AST classes in CamelCase."""

    def __init__(self, source: str):
        super().__init__()
        self.source = source

    def start(self, meta, items):
        return ast.Module(tuple(items))

    def scenario_name(self, meta, c):
        return ast.ScenarioName(str(c[0])[1:-1], _span(meta))

    def ref_line(self, meta, c):
        return ast.RefLine(str(c[0])[1:-1], _span(meta))

    def process_decl(self, meta, c):
        return ast.ProcessDecl(tuple(map(_name, c)), _span(meta))

    def thread_decl(self, meta, c):
        return ast.ThreadDecl(_name(c[0]), _name(c[1]), _span(meta))

    def file_decl(self, meta, c):
        nums = tuple(ast.Number(_int(t), Span.of_token(t)) for t in c[1:] if t is not None)
        return ast.FileDecl(_name(c[0]), nums, _span(meta))

    def pipe_decl(self, meta, c):
        return ast.PipeDecl(tuple(map(_name, c)), _span(meta))

    def step(self, meta, c):
        actor, op, *args, bind = c
        args = tuple(a for a in args if a is not None)
        return ast.Step(_name(actor), _name(op), args, _name(bind) if bind else None, _span(meta))

    def par_block(self, meta, c):
        return ast.ParBlock(tuple(c), _span(meta))

    def location(self, meta, c):
        first, second, index = c
        idx = ast.Number(_int(index), Span.of_token(index)) if index is not None else None
        if second is not None:
            return ast.Location(_name(first), _name(second), idx, _span(meta))
        return ast.Location(None, _name(first), idx, _span(meta))

    def number(self, meta, c):
        return ast.Number(_int(c[0]), _span(meta))

    def keyword_arg(self, meta, c):
        key, val = c
        value = ast.Number(_int(val), Span.of_token(val)) if val.type == "INT" else _name(val)
        return ast.KeywordArg(_name(key), value, _span(meta))

    def assertion(self, meta, c):
        text = self.source[meta.start_pos : meta.end_pos].split("assert", 1)[-1].strip()
        return ast.Assertion(c[0], text, _span(meta))

    def expect_line(self, meta, c):
        return ast.ExpectLine(str(c[0]), tuple(map(_name, c[1:])), _span(meta))

    def compare(self, meta, c):
        return ast.Compare(c[0], str(c[1]), c[2], _span(meta))

    def same(self, meta, c):
        return ast.Same(c[0], c[1], False, _span(meta))

    def not_same(self, meta, c):
        return ast.Same(c[0], c[1], True, _span(meta))

    def fact(self, meta, c):
        return ast.Fact(_name(c[0]), tuple(a for a in c[1:] if a is not None), _span(meta))

    def true(self, meta, c):
        return ast.Bool(True, _span(meta))

    def false(self, meta, c):
        return ast.Bool(False, _span(meta))

    def not_(self, meta, c):
        return ast.Not(c[0], _span(meta))

    def and_(self, meta, c):
        return ast.BoolOp("and", c[0], c[1], _span(meta))

    def or_(self, meta, c):
        return ast.BoolOp("or", c[0], c[1], _span(meta))

    def implies(self, meta, c):
        return ast.BoolOp("implies", c[0], c[1], _span(meta))


# --- syntax errors in words ----------------------------------------------------

_WORDS = {
    "NAME": "a name",
    "INT": "a number",
    "STRING": 'a quoted string ("...")',
    "CMP": "a comparison (==, !=, <, <=, >, >=)",
    "BACKEND": "a backend name (see `cowdsl backends`)",
    "OUTCOME": "`pass` or `fail`",
    "_NL": "the end of the line",
    "$END": "the end of the file",
}


def _describe(term: str) -> str:
    if term in _WORDS:
        return _WORDS[term]
    try:
        pattern = lark_parser().get_terminal(term).pattern
        if pattern.type == "str":
            return f"`{pattern.value}`"
    except (KeyError, AttributeError):
        pass
    return term.lower()


def _expected(exp) -> str:
    words = sorted({_describe(t) for t in exp})
    if len(words) == 1:
        return words[0]
    return "one of " + ", ".join(words)


def _first_word(source: str, line: int) -> str:
    lines = source.splitlines()
    if 0 < line <= len(lines):
        parts = lines[line - 1].split()
        return parts[0].rstrip(":") if parts else ""
    return ""


def _hint(e: UnexpectedInput, source: str, got: str) -> str | None:
    exp = set(getattr(e, "expected", None) or getattr(e, "allowed", None) or ())
    if got == "=" and ("CMP" in exp or not exp):
        return "compare with `==`"
    if "COLON" in exp:
        word = _first_word(source, e.line)
        close = did_you_mean(word, ops.DECL_KEYWORDS + ("assert", "expect", "par"))
        return close or "a step is written `ACTOR: op(args)`, e.g. `A: write(buf, 1)`"
    if "LPAR" in exp:
        return "an op is called with parentheses, e.g. `fork()`"
    if "BACKEND" in exp:
        return "list backends after `on`, e.g. `expect pass on anon-exclusive`"
    if got in ("{", "}") or "RBRACE" in exp:
        return "a `par {` block ends with `}` on its own line"
    if got.startswith('"') or "STRING" in exp:
        return 'strings are in double quotes on one line, e.g. ref "LKML 2020-09-21"'
    return None


def syntax_error(e: UnexpectedInput, filename: str, source: str) -> CowError:
    line, col = max(getattr(e, "line", 1) or 1, 1), max(getattr(e, "column", 1) or 1, 1)
    if isinstance(e, UnexpectedToken) and e.token.type != "$END":
        tok = e.token
        got = str(tok)
        if tok.type == "_NL":
            what, span = "unexpected end of line", Span(line, col, col + 1)
        else:
            what, span = f"unexpected `{got}`", Span.of_token(tok)
        expected = _expected(e.expected)
    elif isinstance(e, UnexpectedCharacters):
        got = source[e.pos_in_stream] if e.pos_in_stream < len(source) else ""
        what, span = f"unexpected character `{got}`", Span(line, col, col + 1)
        expected = _expected(e.allowed) if e.allowed else None
    else:  # UnexpectedEOF, or an UnexpectedToken at $END
        got = ""
        lines = source.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        what, span = "unexpected end of file", Span(line, col, col + 1)
        expected = _expected(getattr(e, "expected", ()) or ())
    return CowError(filename, source, [Diagnostic(what, span, expected, _hint(e, source, got))])


def decode(data: bytes, filename: str) -> str:
    """Bytes to text, or a diagnostic that points at the first bad byte."""
    if len(data) > MAX_SOURCE_BYTES:
        raise CowError(filename, "", [Diagnostic(f"file is {len(data)} bytes; the limit is {MAX_SOURCE_BYTES}", Span(1, 1, 2))])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start].decode("utf-8", "replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        shown = data.decode("utf-8", "replace")
        raise CowError(filename, shown, [Diagnostic("the file is not UTF-8 text", Span(line, col, col + 1), hint="save it as UTF-8")]) from None
    if "\x00" in text:
        before = text[: text.index("\x00")]
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise CowError(filename, text.replace("\x00", " "), [Diagnostic("NUL byte in the file", Span(line, col, col + 1), hint="a .cow file is plain text")])
    return text


def parse(source: str, filename: str = "<input>") -> ast.Module:
    if len(source) > MAX_SOURCE_BYTES:
        raise CowError(filename, "", [Diagnostic(f"file is {len(source)} characters; the limit is {MAX_SOURCE_BYTES}", Span(1, 1, 2))])
    text = source if source.endswith("\n") else source + "\n"
    try:
        tree = lark_parser().parse(text)
    except UnexpectedInput as e:
        raise syntax_error(e, filename, text) from None
    except RecursionError:
        raise CowError(filename, text, [Diagnostic("the file nests too deeply", Span(1, 1, 2))]) from None
    try:
        return ToAst(text).transform(tree)
    except VisitError as e:  # e.g. a number too long to convert
        raise CowError(filename, text, [Diagnostic(f"cannot read this file: {e.orig_exc}", Span(1, 1, 2))]) from None
    except RecursionError:
        raise CowError(filename, text, [Diagnostic("the file nests too deeply", Span(1, 1, 2))]) from None
