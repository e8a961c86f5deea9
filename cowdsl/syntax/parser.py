"""Parse .cow source into the syntax tree, with human syntax errors."""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import re
import stat

import lark
from lark import Lark, Token, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.visitors import Transformer_NonRecursive

from cowdsl import ops
from cowdsl.errors import CowError, Diagnostic, Span
from cowdsl.syntax import ast, kernel_words
from cowdsl.syntax.grammar import grammar_text

MAX_SOURCE_BYTES = 1 << 20  # a scenario is a page of text, not a megabyte


def cache_file(grammar: str) -> str | None:
    """Where the LALR tables may be cached: a file in the user's own cache
    folder, and only if that folder is a real directory owned by the user and
    closed to others, and the file (if any) a regular file only the user can
    write.  Lark's cache is a pickle: loading one from a place another user can
    write (Lark's default, the shared temp dir) would run their code."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "cowdsl")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None
        digest = hashlib.sha256(f"{lark.__version__}\n{grammar}".encode()).hexdigest()[:20]
        path = os.path.join(folder, f"grammar-{digest}.lalr")
        if os.path.lexists(path):
            fs = os.lstat(path)
            if not stat.S_ISREG(fs.st_mode) or fs.st_uid != os.getuid() or fs.st_mode & 0o022:
                return None
        return path
    except OSError:
        return None


@functools.cache
def lark_parser() -> Lark:
    # The LALR tables cached in the user's own, checked folder keep the cold
    # start fast (about 100 ms to build them); without one, build them.
    grammar = grammar_text()
    cache = cache_file(grammar)
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True, cache=cache or False)


def _span(meta) -> Span:
    line, col = getattr(meta, "line", 1), getattr(meta, "column", 1)
    end = meta.end_column if getattr(meta, "end_line", line) == line else col + 1
    return Span(line, col, max(end, col + 1))


MAX_DIGITS = 40  # far beyond 2**64; longer numbers are reported, not converted


class _NumberTooLong(Exception):
    def __init__(self, tok: Token):
        super().__init__(str(tok))
        self.tok = tok


def _int(tok: Token) -> int:
    s = str(tok)
    if len(s) > MAX_DIGITS:  # int() of thousands of digits is slow, and refused past 4300
        raise _NumberTooLong(tok)
    return int(s, 16) if s.lower().startswith("0x") else int(s)


def _name(tok: Token) -> ast.Name:
    return ast.Name(str(tok), Span.of_token(tok))


def _value(tok: Token) -> ast.Number | ast.Name | ast.Var:
    """A number, a name or a `$var`, by its token."""
    if tok.type == "VAR":
        return ast.Var(str(tok)[1:], Span.of_token(tok))
    return _literal(tok)


def _literal(tok: Token) -> ast.Number | ast.Name:
    """A number or a name, by its token."""
    if tok.type == "INT":
        return ast.Number(_int(tok), Span.of_token(tok))
    return _name(tok)


def _int_or_var(tok: Token) -> ast.Number | ast.Var:
    return ast.Var(str(tok)[1:], Span.of_token(tok)) if tok.type == "VAR" else ast.Number(_int(tok), Span.of_token(tok))


@v_args(meta=True)
class ToAst(Transformer_NonRecursive):
    """Grammar rules in snake_case become AST classes in CamelCase.

    Non-recursive, so a long `a and b and c ...` chain cannot exhaust the stack.
    """

    def __init__(self, source: str):
        super().__init__()
        self.source = source

    def start(self, meta, items):
        return ast.Module(tuple(items))

    def scenario_name(self, meta, c):
        return ast.ScenarioName(str(c[0])[1:-1], _span(meta))

    def ref_line(self, meta, c):
        return ast.RefLine(str(c[0])[1:-1], _span(meta))

    def include_line(self, meta, c):
        return ast.IncludeLine(str(c[0])[1:-1], _span(meta))

    def const_decl(self, meta, c):
        return ast.ConstDecl(_name(c[0]), ast.Number(_int(c[1]), Span.of_token(c[1])), _span(meta))

    def param_decl(self, meta, c):
        return ast.ParamDecl(_name(c[0]), tuple(map(_literal, c[1:])), _span(meta))

    def var(self, meta, c):
        return ast.Var(str(c[0])[1:], _span(meta))

    def when(self, meta, c):
        return tuple(c)

    def condition(self, meta, c):
        tok = c[1]
        if tok.type != "CHOICES":
            return ast.Condition(_name(c[0]), (_literal(tok),), _span(meta))
        values: list[ast.Number | ast.Name] = []
        col = tok.column
        for word in str(tok).split("|"):
            part = Token("INT" if word[0].isdigit() else "NAME", word, line=tok.line, column=col,
                         end_line=tok.line, end_column=col + len(word))
            values.append(_literal(part))
            col += len(word) + 1
        return ast.Condition(_name(c[0]), tuple(values), _span(meta))

    def process_decl(self, meta, c):
        return ast.ProcessDecl(tuple(map(_name, c)), _span(meta))

    def thread_decl(self, meta, c):
        return ast.ThreadDecl(_name(c[0]), _name(c[1]), _span(meta))

    def file_decl(self, meta, c):
        *vals, kind = c[1:]  # `on KIND` is the last child (None without it)
        nums = tuple(_int_or_var(t) for t in vals if t is not None)
        return ast.FileDecl(_name(c[0]), nums, _span(meta), _name(kind) if kind is not None else None)

    def pipe_decl(self, meta, c):
        return ast.PipeDecl(tuple(map(_name, c)), _span(meta))

    def step(self, meta, c):
        actor, op, *args, bind = c
        args = tuple(a for a in args if a is not None)
        return ast.Step(_name(actor), _name(op), args, _name(bind) if bind else None, _span(meta))

    def par_block(self, meta, c):
        return ast.ParBlock(tuple(c), _span(meta))

    def page(self, meta, c):
        return _int_or_var(c[0])

    def offset(self, meta, c):
        return _int_or_var(c[0])

    def location(self, meta, c):
        # a `$i` index or offset is an ast.Var until cowdsl.check.sweep substitutes its number
        first, second, idx, end, offset = c
        if second is not None:
            return ast.Location(_name(first), _name(second), idx, _span(meta), end, offset)
        return ast.Location(None, _name(first), idx, _span(meta), end, offset)

    def number(self, meta, c):
        return ast.Number(_int(c[0]), _span(meta))

    def keyword_arg(self, meta, c):
        key, val = c
        value = _value(val)
        return ast.KeywordArg(_name(key), value, _span(meta))

    def assertion(self, meta, c):
        quant, scope = "assert", ()
        items = [x for x in c if x is not None]  # `assert` [scope] expr, quantifier scope expr, quantifier expr
        if isinstance(items[0], str):
            quant = items.pop(0)
        if isinstance(items[0], tuple):
            scope = items.pop(0)
        text = self.source[meta.start_pos : meta.end_pos]
        head = re.match(r"\s*(assert|always|sometimes|never|forall|exists|~\s*exists|invariant|reachable)\s*"
                        + (r"on\s.*?:(?![A-Za-z0-9_]+=)" if scope else ":?"), text, re.S)
        text = text[head.end():].strip() if head else text.strip()
        text = re.sub(r"[\t\f\v]", " ", text)  # a form feed or tab is white space here, never shown raw
        return ast.Assertion(items[0], text, _span(meta), quant, scope)

    def scope(self, meta, c):
        return tuple(map(_name, c))

    def quantifier(self, meta, c):
        return "".join(str(t) for t in c)

    def expect_line(self, meta, c):
        *backends, when = c[1:]
        return ast.ExpectLine(str(c[0]), tuple(map(_name, backends)), _span(meta), when or ())

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
    "VAR": "a number",  # `$N` goes where a number goes: said once
    "CHOICES": "a value",
    "STRING": 'a quoted string ("...")',
    "CMP": "a comparison (==, !=, <, <=, >, >=)",
    "BACKEND": "a backend name (see `cowdsl backends`)",
    "OUTCOME": "`pass` or `fail`",
    "_NL": "the end of the line",
    "$END": "the end of the file",
}

# The keywords that can start a line; when all of them are acceptable the
# parser is at the start of a statement, and the list is said in one phrase.
_STATEMENT_START = frozenset({"SCENARIO", "REF", "PROCESS", "THREAD", "FILE", "PIPE", "PAR", "ASSERT", "EXPECT",
                              "INCLUDE", "CONST", "PARAM"})
_A_STATEMENT = (
    "a statement: `scenario`, `ref`, `include`, `const`, `param`, `process`, `thread`, `file`, `pipe`, "
    "a step `ACTOR: op(...)`, `par {`, `assert` or `expect`"
)
_STATEMENT_WORDS = ("scenario", "ref", "include", "const", "param", "process", "thread", "file", "pipe", "par",
                    "assert", "expect", "reachable", "invariant", "sometimes", "always", "never")
_KEYWORDS = frozenset(ops.keywords())

# Words of other languages that start a line: what a .cow file does instead.
_NO_CONDITIONALS = ("a .cow file has no conditionals: write a file per case, or sweep the cases with "
                    "`param NAME in a, b` and say what each expects with `expect ... when NAME=a`")
_NO_LOOPS = "a .cow file has no loops: write the steps out, or sweep values with `param NAME in 1, 2`"
_FOREIGN = {
    **dict.fromkeys(("if", "else", "elif", "elsif", "unless", "switch", "case", "then", "when"), _NO_CONDITIONALS),
    **dict.fromkeys(("for", "foreach", "each", "while", "until", "loop", "repeat", "do"), _NO_LOOPS),
    **dict.fromkeys(("import", "from", "use", "require", "source", "load"),
                    'to reuse the lines of another file, write `include "file.cow"`'),
    **dict.fromkeys(("let", "var", "set", "define", "val", "local", "global"),
                    "a named number is `const NAME = 4`, used as `$NAME`; values to sweep are `param NAME in 1, 2`"),
    **dict.fromkeys(("def", "fn", "func", "function", "macro", "proc", "sub"),
                    'put shared lines in a file of their own and `include "file.cow"` it'),
    **dict.fromkeys(("return", "break", "continue", "goto", "begin", "end", "print", "echo"),
                    "a .cow file is a list of statements, one per line, run in order"),
}


def _unknown_statement(acc: set[str], source: str, line: int, col: int) -> tuple[str, str] | None:
    """`if A.buf == 1`, `for i in 1, 2`: a keyword of another language where a
    statement starts (the parser took it for an actor and wants a `:`).
    Returns (the word, what to write instead)."""
    if acc - {"$END"} != {"COLON"}:
        return None
    m = re.match(r"[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*$", _line_text(source, line)[: col - 1])
    if not m or m.group(1) not in _FOREIGN:
        return None
    return m.group(1), _FOREIGN[m.group(1)]


def _misspelled_statement(acc: set[str], source: str, line: int, col: int) -> tuple[str, str] | None:
    """`procss A`, `asert A.buf == 1`: the first word of the line is close to a
    statement keyword and is not used as a name anywhere else in the file.
    Returns (the word, the keyword it resembles)."""
    if acc - {"$END"} != {"COLON"}:
        return None
    text = _line_text(source, line)
    m = re.match(r"[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]+$", text[: col - 1])
    if not m:
        return None
    word = m.group(1)
    close = difflib.get_close_matches(word, _STATEMENT_WORDS, n=1, cutoff=0.6)
    if not close or len(re.findall(rf"\b{word}\b", source)) > 1:
        return None
    return word, close[0]


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


def _expected(acc: set[str]) -> str | None:
    """What the parser would have accepted, in words."""
    acc = set(acc)
    if "_NL" in acc:  # "the end of the file" is the end of the last line: say it once
        acc.discard("$END")
    acc.discard("WHEN")  # an expect line's optional `when` is not offered after every backend
    acc.discard("PLUS")  # nor a location's optional word offset (`buf+8`) after every name
    if "NAME" in acc:
        acc.discard("ON")  # nor an assertion's optional scope (`assert on BACKEND: ...`) beside its terms
    if not acc:
        return None
    if _STATEMENT_START <= acc:
        return _A_STATEMENT
    if acc == {"NAME", "RBRACE"}:
        return "a step `ACTOR: op(...)`, or `}` to end the `par` block"
    words = sorted({_describe(t) for t in acc})
    if len(words) == 1:
        return words[0]
    if len(words) == 2:
        return f"{words[0]} or {words[1]}"
    return "one of " + ", ".join(words)


def _accepted(text: str, pos: int | None, fallback) -> set[str]:
    """The terminals the parser accepts after ``text[:pos]``.

    Lark's own ``expected`` set comes from one LALR state, and LALR merges the
    look-aheads of states that share a core: after ``assert A.buf`` it also lists
    the `)` and `,` of fact arguments and step arguments.  Replaying the prefix
    and asking which terminals really advance the parser gives the true set.
    """
    fallback = {t for t in (fallback or ()) if isinstance(t, str)}
    if pos is None:
        return fallback
    try:
        ip = lark_parser().parse_interactive(text[:pos])
        for _ in ip.iter_parse():
            pass
        acc = set(ip.accepts())
    except Exception:  # the replay is best effort: fall back on Lark's set
        return fallback
    return acc or fallback


def _show(s: str, limit: int = 40) -> str:
    """Text quoted in a message: control characters spelled out, long text cut."""
    out = "".join(c if c.isprintable() else f"U+{ord(c):04X}" for c in s)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _char_name(c: str) -> str:
    if not c:
        return "end of input"
    if c.isprintable() and not c.isspace():
        return f"`{c}`"
    return f"U+{ord(c):04X}"


def _line_text(source: str, line: int) -> str:
    lines = source.split("\n")
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _hint(acc: set[str], source: str, line: int, col: int, got: str) -> str | None:
    acc = set(acc)
    if "_NL" in acc:
        acc.discard("$END")
    text = _line_text(source, line)
    before = text[: col - 1]
    words = text.split()
    first = words[0].split(":")[0] if words else ""
    if got == "=" and "CMP" in acc:
        return "compare with `==`"
    if got in ("&", "&&"):
        return "write `and`"
    if got in ("|", "||"):
        return kernel_words.call_hint(text) or "write `or`"
    if got == "!":
        return "write `not`, or `!=` to compare"
    if got == ";":
        return "one statement per line; no `;` needed"
    if got == "\ufeff":
        return "remove the byte-order mark (save as UTF-8 without BOM)"
    if got == "-" and "INT" in acc:
        return "values are 0 or more, in decimal or hex (`0x1f`)"
    if got[:1] in ("x", "X") and before.endswith("0"):
        return "a hex number is written like `0x1f`"
    if got == "." and before[-1:].isdigit():
        return "numbers are whole: no decimal point"
    if got[:1].isalpha() and not got[:1].isascii():
        return "names use ASCII letters, digits and `_`"
    if acc == {"COLON"}:  # (a misspelled keyword was caught before: see _misspelled_statement)
        return f"a step is written `ACTOR: op(args)`: put `:` after `{_show(first)}`"
    if got == ":" and first in _KEYWORDS and before.strip() == first:
        return f"`{first}` is a keyword; an actor needs another name"
    if acc == {"OF"}:
        return "write `thread T of A`"
    if acc == {"EQUAL"} and first == "file":
        return "write `file F = [1, 2]`"
    if first == "const" and acc == {"EQUAL"}:
        return "write `const N = 4`"
    if first == "const" and acc == {"INT"}:
        return "a const is a number; to run the file once per name, write `param NAME in a, b`"
    if first == "param" and acc == {"IN"}:
        return "write `param kind in small, thp`: the file runs once per value"
    if first == "include" and "STRING" in acc:
        return 'write `include "prelude.cow"`: a file name in double quotes'
    if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", got) and "VAR" not in acc:
        return "`$NAME` stands for a number or flag: it goes in a step's arguments, `file F = [...]` or an assertion"
    if acc == {"LPAR"}:
        return "an op is called with parentheses, e.g. `A: fork() as B`"
    if first == "expect" and got == ":":
        return "a backend option is written NAME:OPTION=CHOICE, e.g. `early-cow:pin_scope=longterm`"
    if "BACKEND" in acc:
        return "list backends after `on`, e.g. `expect pass on anon-exclusive`"
    if first == "par" or got in ("{", "}") or "RBRACE" in acc:
        return "a `par {` block has one step per line and ends with `}` on its own line"
    if "STRING" in acc:
        return 'strings are in double quotes on one line, e.g. ref "LKML 2020-09-21"'
    if acc == {"COMMA", "_NL"} and first in ("process", "pipe") and got[:1].isalpha():
        return f"separate names with commas, e.g. `{first} A, B`"
    return None


def syntax_error(e: UnexpectedInput, filename: str, source: str) -> CowError:
    line, col = max(getattr(e, "line", 1) or 1, 1), max(getattr(e, "column", 1) or 1, 1)
    if isinstance(e, UnexpectedToken) and e.token.type != "$END":
        tok = e.token
        got = str(tok)
        acc = _accepted(source, getattr(tok, "start_pos", None), e.expected)
        expected = _expected(acc)
        foreign = _unknown_statement(acc, source, line, col)
        if foreign:
            word, instead = foreign
            start = _line_text(source, line).index(word) + 1
            return CowError(filename, source, [Diagnostic(f"unknown statement `{word}`",
                                                          Span(line, start, start + len(word)), _A_STATEMENT, instead)])
        nested = re.match(r"[ \t]*par[ \t]*$", _line_text(source, line)[: col - 1]) and acc - {"$END"} == {"COLON"}
        if nested:  # inside a block `par` is read as an actor's name, and wants its `:`
            start = _line_text(source, line).index("par") + 1
            return CowError(filename, source, [Diagnostic(
                "blocks do not nest: a `par` block inside a `par` block", Span(line, start, start + 3),
                "a step `ACTOR: op(...)`, or `}` to end the `par` block",
                "put every concurrent step in one `par { }` block (each actor keeps its order), or end this block first")])
        typo = _misspelled_statement(acc, source, line, col)
        if typo:
            word, keyword = typo
            start = _line_text(source, line).index(word) + 1
            span = Span(line, start, start + len(word))
            return CowError(filename, source, [Diagnostic(f"unknown statement `{word}`", span, _A_STATEMENT,
                                                          f"did you mean `{keyword}`?")])
        if tok.type == "_NL":
            what, span = "unexpected end of line", Span(line, col, col + 1)
        else:
            what, span = f"unexpected `{_show(got)}`", Span.of_token(tok)
    elif isinstance(e, UnexpectedCharacters):
        pos = e.pos_in_stream
        got = source[pos] if pos is not None and pos < len(source) else ""
        acc = _accepted(source, pos, e.allowed)
        if got == '"':
            end = len(_line_text(source, line).rstrip("\r")) + 1
            what, span = "unterminated string", Span(line, col, max(end, col + 1))
            expected = 'a closing `"` on the same line'
        else:
            what, span = f"unexpected character {_char_name(got)}", Span(line, col, col + 1)
            expected = _expected(acc)
    else:  # UnexpectedEOF, or an UnexpectedToken at $END
        got = ""
        acc = _accepted(source, len(source), getattr(e, "expected", ()))
        lines = source.split("\n")
        if len(lines) > 1 and lines[-1] == "":
            lines.pop()
        line, col = len(lines), len(lines[-1].rstrip("\r")) + 1
        what, span = "unexpected end of file", Span(line, col, col + 1)
        expected = _expected(acc)
    return CowError(filename, source, [Diagnostic(what, span, expected, _hint(acc, source, span.line, span.col, got))])


def _position(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _no_nul(text: str, filename: str) -> None:
    if "\x00" in text:
        line, col = _position(text, text.index("\x00"))
        raise CowError(filename, text.replace("\x00", " "),
                       [Diagnostic("NUL byte in the file", Span(line, col, col + 1), hint="a .cow file is plain text")])


def decode(data: bytes, filename: str) -> str:
    """Bytes to text, or a diagnostic that points at the first bad byte."""
    if len(data) > MAX_SOURCE_BYTES:
        raise CowError(filename, "", [Diagnostic(f"file is {len(data)} bytes; the limit is {MAX_SOURCE_BYTES}", Span(1, 1, 2))])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start].decode("utf-8", "replace")
        line, col = _position(before, len(before))
        shown = data.decode("utf-8", "replace")
        raise CowError(filename, shown, [Diagnostic(f"the file is not UTF-8 text: byte 0x{data[e.start]:02x} cannot start or continue a character",
                                                    Span(line, col, col + 1), hint="save it as UTF-8")]) from None
    _no_nul(text, filename)
    return text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is harmless: drop it


MAX_NESTING = 2000  # parentheses inside one another: far more than any question needs, cheap to parse


def _not_too_deep(text: str, filename: str) -> None:
    """Refuse deep nesting before the parser builds it: 300,000 parentheses
    cost seconds and a tree as deep (outside comments and strings)."""
    depth = 0
    for m in re.finditer(r'#[^\n]*|"[^"\n]*"?|[()\n]', text):
        c = m.group()
        if c == "(":
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, m.start()) + 1
                col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
                raise CowError(filename, text, [Diagnostic(
                    f"the expression nests more than {MAX_NESTING} parentheses deep", Span(line, col, col + 1),
                    hint="write it flatter: `and`, `or` and `not` need no parentheses of their own")])
        elif c == ")":
            depth = max(0, depth - 1)
        elif c == "\n":
            depth = 0  # one statement per line


def parse(source: str, filename: str = "<input>") -> ast.Module:
    if len(source) > MAX_SOURCE_BYTES:
        raise CowError(filename, "", [Diagnostic(f"file is {len(source)} characters; the limit is {MAX_SOURCE_BYTES}", Span(1, 1, 2))])
    text = source if source.endswith("\n") else source + "\n"
    _no_nul(text, filename)
    _not_too_deep(text, filename)
    try:
        tree = lark_parser().parse(text)
    except UnexpectedInput as e:
        raise syntax_error(e, filename, text) from None
    except RecursionError:
        raise CowError(filename, text, [Diagnostic("the file nests too deeply", Span(1, 1, 2))]) from None
    try:
        return ToAst(text).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, _NumberTooLong):
            tok = e.orig_exc.tok
            raise CowError(filename, text, [Diagnostic(f"number too long ({len(str(tok))} digits)", Span.of_token(tok),
                                                       expected="a number below 2**64")]) from None
        if isinstance(e.orig_exc, RecursionError):
            raise CowError(filename, text, [Diagnostic("the file nests too deeply", Span(1, 1, 2))]) from None
        raise CowError(filename, text, [Diagnostic(f"cannot read this file: {e.orig_exc}", Span(1, 1, 2))]) from None
    except RecursionError:
        raise CowError(filename, text, [Diagnostic("the file nests too deeply", Span(1, 1, 2))]) from None
