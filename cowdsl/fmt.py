"""The canonical layout of a .cow file: ``cowdsl fmt``.

One statement per line, as the grammar has it; the layout within a line is
rebuilt from its tokens:

- no space before ``,`` ``)`` ``]`` ``:`` and none after ``(`` ``[`` ``.``; none around
  the ``+`` of a word offset (``buf+8``);
  one space after ``,`` and after the ``:`` of a step's actor or a quantifier;
- one space around comparisons, ``is``, ``and``, ``or``, ``implies`` and the
  ``=`` of ``file F = [...]``; none around the ``=`` of a keyword argument
  (``pages=2``) or inside a backend spec (``early-cow:wp_seq=off``);
- the steps of a ``par { ... }`` block indented by two spaces, everything else
  at the left margin;
- comments kept word for word: a comment on a line of its own is indented as
  the code around it; a trailing comment starts at column 41, or two spaces
  past the code when the code is longer;
- trailing spaces dropped, runs of blank lines made one, none at the start or
  the end, and the file ends with one newline (``\\n``, not ``\\r\\n``).

Only a file that parses is formatted, and the result is parsed again and
compared with the original syntax tree (spans and spacing aside): formatting
never changes what a file means.  Formatting twice gives what formatting once
gave.

    cowdsl fmt FILE|DIR...        # rewrite the files in place
    cowdsl fmt --check FILE...    # exit 1 if a file would change, write nothing
    cowdsl fmt --diff FILE...     # print what would change, write nothing
    cowdsl fmt - < x.cow          # stdin to stdout
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from cowdsl.errors import CowError, Diagnostic, Span
from cowdsl.load import NotAFile, read, scan
from cowdsl.syntax import ast
from cowdsl.syntax.parser import MAX_SOURCE_BYTES, decode, parse

__all__ = ["COMMENT_COLUMN", "FormatError", "format_text", "main", "same_tree", "split_comment", "tokens"]

COMMENT_COLUMN = 41  # 1-based: where trailing comments start, unless the code is longer
INDENT = "  "  # a step inside `par { ... }`

# The lexical pieces of a line (the grammar's terminals, and the rest one character at a time).
_TOKEN = re.compile(
    r'(?P<string>"[^"\n]*")'
    r"|(?P<comment>#.*)"
    r"|(?P<cmp>==|!=|<=|>=|<|>)"
    r"|(?P<word>\$?[A-Za-z0-9_]+)"
    r"|(?P<space>[ \t\f\r\v]+)"
    r"|(?P<punct>\.\.|.)"  # `..` of a page range (buf[0..1]) is one token
)

_BINARY_WORDS = frozenset({"and", "or", "implies", "is"})
_QUANTIFIERS = frozenset({"assert", "always", "sometimes", "never", "forall", "exists", "invariant"})


class FormatError(Exception):
    """The formatter's output would not mean what the input meant (a bug in the formatter)."""


def tokens(code: str) -> list[tuple[str, str]]:
    """(kind, text) of each token of ``code``, spaces left out; kinds: string,
    comment, cmp, word, punct."""
    out: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(code):
        kind = m.lastgroup or "punct"
        if kind != "space":
            out.append((kind, m.group()))
    return out


def split_comment(line: str) -> tuple[str, str | None]:
    """The code of a line and its comment (from ``#``, or None): a ``#`` inside a string is not one."""
    for m in _TOKEN.finditer(line):
        if m.lastgroup == "comment":
            return line[: m.start()], m.group().rstrip()
    return line, None


def _join(toks: list[tuple[str, str]], keyword_eq: bool) -> str:
    """The tokens of one statement, spaced canonically."""
    out = ""
    prev_kind, prev = "", ""
    for i, (kind, text) in enumerate(toks):
        if i == 0:
            out = text
            prev_kind, prev = kind, text
            continue
        space = True
        if text in (",", ")", "]", ":", ".", "+", ".."):  # `+`: a word offset, buf+8; `..`: buf[0..1]
            space = False
        elif text == "[":  # an index (buf[1], F[0]), or the list of `file F = [1, 2]`
            space = prev_kind != "word"
        elif text == "(":
            # a call: op(, fact(, not after an operator word or a quantifier
            space = not (prev_kind == "word" and prev not in _BINARY_WORDS | _QUANTIFIERS | {"not"})
        elif text == "=" and keyword_eq:
            space = False
        elif prev in ("(", "[", ".", "~", "+", ".."):
            space = False
        elif prev == "=" and keyword_eq:
            space = False
        out += (" " if space else "") + text
        prev_kind, prev = kind, text
    return out


def _expect(code: str) -> str:
    """``expect pass on a, b when kind=thp|pte_thp, n=2``: backend specs are kept
    whole (``early-cow:wp_seq=off``, ``5.10.4``); no space around a condition's ``=`` and ``|``."""
    m = re.match(r"\s*expect\s+(\w+)\s+on\s+(.*?)(?:\s+when\s+(.*))?$", code, re.S)
    if not m:  # not the shape the grammar has (it parsed, so this does not happen)
        return " ".join(code.split())
    specs = [s.strip() for s in m.group(2).split(",")]
    out = f"expect {m.group(1)} on " + ", ".join(specs)
    if m.group(3) is not None:
        out += " when " + ", ".join("".join(c.split()) for c in m.group(3).split(","))
    return out


_SCOPE = re.compile(r"\s*(assert|always|sometimes|never|forall|exists|~\s*exists|invariant|reachable)\s+on\s+"
                    r"(.*?)\s*:(?![A-Za-z0-9_]+=)(.*)$", re.S)


def _scoped(m: re.Match) -> str:
    """``assert on a, b: EXPR``: backend specs kept whole, as in an expect line."""
    quant = "~exists" if m.group(1).startswith("~") else m.group(1)
    specs = ", ".join(s.strip() for s in m.group(2).split(","))
    return f"{quant} on {specs}: " + _join(tokens(m.group(3)), keyword_eq=True)


def _statement(code: str) -> str:
    toks = tokens(code)
    if not toks:
        return ""
    first = toks[0][1]
    if first == "expect":
        return _expect(code)
    scoped = _SCOPE.match(code)
    if scoped:
        return _scoped(scoped)
    # `=` is a keyword argument's (pages=2) everywhere but in `file F = [...]` and `const N = 4`
    return _join(toks, keyword_eq=first not in ("file", "const"))


def _layout(source: str) -> str:
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    rows: list[tuple[str, str, str | None]] = []  # (indent, code, comment); ("", "", None) is a blank line
    depth = 0
    for raw in text.split("\n"):
        code, comment = split_comment(raw)
        stmt = _statement(code)
        if not stmt and comment is None:
            rows.append(("", "", None))
            continue
        if stmt.startswith("}"):
            depth = 0
        rows.append((INDENT * depth if stmt or comment else "", stmt, comment))
        if stmt.startswith("par ") or stmt == "par{" or stmt.endswith("{"):
            depth = 1
    # blank lines: none at either end, never two in a row
    kept: list[tuple[str, str, str | None]] = []
    for row in rows:
        blank = row == ("", "", None)
        if blank and (not kept or kept[-1] == ("", "", None)):
            continue
        kept.append(row)
    while kept and kept[-1] == ("", "", None):
        kept.pop()
    lines: list[str] = []
    for indent, code, comment in kept:
        if code and comment is not None:  # a trailing comment: at its column, or two spaces past the code
            lines.append((indent + code).ljust(COMMENT_COLUMN - 1 - 2) + "  " + comment)
        else:
            lines.append(indent + (code or comment or ""))
    return "\n".join(lines) + "\n" if lines else ""


def _shape(node: Any) -> object:
    """A syntax tree without its spans, and assertion texts without their spacing."""
    if attrs.has(type(node)):
        out: list[object] = [type(node).__name__]
        for f in attrs.fields(type(node)):
            if f.name == "span":
                continue
            value = getattr(node, f.name)
            if isinstance(node, ast.Assertion) and f.name == "text":
                value = "".join(str(value).split())
            out.append((f.name, _shape(value)))
        return tuple(out)
    if isinstance(node, tuple | list):
        return tuple(_shape(x) for x in node)
    return node


def same_tree(a: ast.Module, b: ast.Module) -> bool:
    """Whether two syntax trees say the same thing (spans and spacing aside)."""
    return _shape(a) == _shape(b)


def format_text(source: str, filename: str = "<input>") -> str:
    """The canonical layout of ``source``; CowError if it does not parse."""
    if source.startswith("\ufeff"):
        source = source[1:]
    before = parse(source, filename)
    out = _layout(source)
    try:
        after = parse(out, filename)
    except CowError as e:
        raise FormatError(f"{filename}: the formatted text does not parse: {e.diagnostics[0].message}") from None
    if not same_tree(before, after):
        raise FormatError(f"{filename}: the formatted text would mean something else; left as it was")
    return out


# --- the command ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cowdsl fmt", description="Rewrite .cow files in the canonical layout.")
    p.add_argument("paths", nargs="+", metavar="FILE|DIR|-", help="files, folders of .cow files, or - for stdin")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    p.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of what would change")
    return p


def _write(path: Path, text: str) -> None:
    """Replace ``path``'s content atomically, keeping its permissions."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _diff(name: str, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"{name}", f"{name} (formatted)"))


def main(argv: Sequence[str] | None = None) -> int:
    """``cowdsl fmt``: 0 all formatted (or, with --check, nothing would change),
    1 with --check something would change, 2 a file that does not parse or cannot be read."""
    args = _parser().parse_args(argv)
    status = 0
    changed = 0
    write = not (args.check or args.diff)
    for given in args.paths:
        if given == "-":
            data = sys.stdin.buffer.read(MAX_SOURCE_BYTES + 1)
            items: list[tuple[Path | None, bytes | None, str]] = [(None, data, "<stdin>")]
        else:
            files, skipped = scan([given])
            for skip, why in skipped:
                print(f"{skip}: {why}", file=sys.stderr)
            items = [(f, None, str(f)) for f in files]
        for path, data, name in items:
            try:
                if data is None:
                    assert path is not None
                    data = read(path, MAX_SOURCE_BYTES)
                if len(data) > MAX_SOURCE_BYTES:
                    raise CowError(name, "", [Diagnostic(f"more than {MAX_SOURCE_BYTES} bytes", Span(1, 1, 2))])
                old = decode(data, name)
                new = format_text(old, name)
            except CowError as e:
                print(e.render(), file=sys.stderr)
                status = 2
                continue
            except (NotAFile, OSError) as e:
                print(f"{name}: {e.strerror or e}", file=sys.stderr)
                status = 2
                continue
            except FormatError as e:
                print(f"{e} (please report this)", file=sys.stderr)
                status = 2
                continue
            if path is None:  # stdin: the formatted text to stdout
                if args.diff and new != old:
                    sys.stdout.write(_diff(name, old, new))
                elif not args.check and not args.diff:
                    sys.stdout.write(new)
                if new != old:
                    changed += 1
                continue
            if new == old:
                continue
            changed += 1
            if args.diff:
                sys.stdout.write(_diff(name, old, new))
            if args.check:
                print(f"would reformat {name}", file=sys.stderr)
            elif write:
                _write(path, new)
                print(f"formatted {name}", file=sys.stderr)
    if status:
        return status
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
