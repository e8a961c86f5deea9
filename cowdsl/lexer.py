"""Pygments lexer for .cow scenarios, and the word lists every editor grammar uses.

The words are not written down here: keywords come from the op registry
(``cowdsl.ops.keywords()``) and from the quoted words of the grammar
(``grammar/cow.lark``); op names, flags, keyword-argument names, facts and the
built-in actors come from the op registry.  ``categories()`` sorts them by the
role they play, and ``editors/generate.py`` writes the Vim, Emacs and TextMate
grammars from the same table, so a word added to the registry is highlighted
by the lexer at once and by the editors after ``python editors/generate.py``
(a test fails until then).

    pygmentize -l cow scenario.cow          # after `pip install cowdsl`
    python -m cowdsl.lexer --words          # the categorised word lists, as JSON
"""

from __future__ import annotations

import functools
import re

from pygments.lexer import RegexLexer, bygroups, default, words
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

from cowdsl import ops
from cowdsl.syntax.grammar import grammar_text

__all__ = ["CowLexer", "categories", "CATEGORY_TOKENS", "highlighter", "backend_pattern"]

# The role of a keyword, when it is not a plain keyword.  Which words exist is
# the registry's and the grammar's business; a new one is a plain keyword.
_KEYWORD_ROLES = {
    "and": "operator-word", "or": "operator-word", "not": "operator-word",
    "implies": "operator-word", "is": "operator-word",
    "true": "constant", "false": "constant",
    "pass": "outcome", "fail": "outcome",
}

# Declarations of the language itself (the registry's are about processes and files).
LANGUAGE_DECLARATIONS = ("include", "const", "param")

# `$kind`: the use of a param or const (the grammar's VAR terminal).
PARAM_PATTERN = r"\$[A-Za-z_]\w*"

# Fallback for the grammar's BACKEND terminal (read from the grammar when it is there).
_BACKEND_FALLBACK = r"[A-Za-z0-9][A-Za-z0-9_.\-]*(?::[A-Za-z0-9_]+=[A-Za-z0-9_.\-]+)*"

# Each category, the token type the lexer gives it.  Word categories first.
CATEGORY_TOKENS = {
    "declaration": Keyword.Declaration,  # scenario ref process thread of file pipe
    "keyword": Keyword,  # as par assert expect on ... and any new keyword (quantifiers)
    "operator-word": Operator.Word,  # and or not implies is
    "constant": Keyword.Constant,  # true false
    "outcome": Keyword.Constant,  # pass fail
    "op": Name.Function,  # mmap( pin( ...
    "fact": Name.Builtin,  # exclusive( refcount( ... and bare cow_copies, faults
    "flag": Name.Constant,  # anon private rw longterm ...
    "kwarg": Name.Attribute,  # pages= file= count=
    "param": Name.Variable,  # $kind, $N: a param's or a const's value
    "builtin-actor": Name.Builtin.Pseudo,  # reclaim: ksmd:
    "actor": Name.Label,  # A: mr:
    "backend": Name.Namespace,  # after `expect pass on`
    "number": Number,
    "string": String,
    "comment": Comment,
    "plain": Name,  # mapping names, pins, values bound by `as`
}


def _grammar_text() -> str | None:
    try:
        return grammar_text()
    except Exception:  # no grammar (a stripped install): the registry alone
        return None


@functools.cache
def grammar_words() -> tuple[str, ...]:
    """The quoted words of the grammar ("scenario", "assert", ...), in order."""
    text = _grammar_text() or ""
    text = re.sub(r"//[^\n]*", "", text)
    out: list[str] = []
    for w in re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', text):
        if w not in out:
            out.append(w)
    return tuple(out)


@functools.cache
def backend_pattern() -> str:
    """The grammar's BACKEND terminal (a regex), for the names after `expect ... on`."""
    m = re.search(r"^BACKEND\s*:\s*/(.+)/\s*$", _grammar_text() or "", re.M)
    if m:
        try:
            re.compile(m.group(1))
            return m.group(1)
        except re.error:
            pass
    return _BACKEND_FALLBACK



def _unique(seq) -> tuple[str, ...]:
    out: list[str] = []
    for w in seq:
        if w not in out:
            out.append(w)
    return tuple(out)


@functools.cache
def categories() -> dict[str, tuple[str, ...]]:
    """Every word the language reserves, by category.

    ``fact-bare`` lists the facts that may be written without parentheses
    (``cow_copies``); they are also in ``fact``.  ``ambiguities()`` says when
    two categories claim a word that nothing in the text can tell apart (the
    tests and editors/generate.py insist there is none).
    """
    decl = ops.DECL_KEYWORDS + LANGUAGE_DECLARATIONS
    kws = _unique(list(ops.keywords()) + list(grammar_words()))
    cats: dict[str, list[str]] = {k: [] for k in ("declaration", "keyword", "operator-word", "constant", "outcome")}
    for w in kws:
        role = "declaration" if w in decl else _KEYWORD_ROLES.get(w, "keyword")
        cats[role].append(w)
    facts = tuple(ops.fact_names())
    bare_facts = tuple(f for f in facts if 0 in ops.FACTS[f].arity)
    out = {k: tuple(v) for k, v in cats.items()}
    out.update(
        {
            "op": tuple(ops.op_names()),
            "fact": facts,
            "fact-bare": bare_facts,
            "flag": tuple(ops.flag_names()),
            "kwarg": tuple(ops.keyword_arg_names()),
            "builtin-actor": tuple(ops.BUILTIN_ACTORS),
        }
    )
    return out


def ambiguities() -> list[str]:
    """Words two categories claim where the text cannot tell them apart.

    A word written bare (no ``(`` or ``=`` after it) must be in one bare
    category, and no word may be both an op and a fact.  ``read`` the op and
    ``read`` the flag are fine: ``read(`` is the op.
    """
    cats = categories()
    bare = ("declaration", "keyword", "operator-word", "constant", "outcome", "flag", "fact-bare")
    seen: dict[str, str] = {}
    out = []
    for c in bare:
        for w in cats[c]:
            if w in seen and seen[w] != c:
                out.append(f"`{w}` is both a {seen[w]} and a {c}")
            seen[w] = c
    for w in sorted(set(cats["op"]) & set(cats["fact"])):
        out.append(f"`{w}` is both an op and a fact")
    return out


_NOT_AFTER = r"(?<![\w.])"  # not the tail of a longer name, nor a field after a dot


def _w(ws, suffix=r"\b"):
    return words(tuple(sorted(ws, key=len, reverse=True)), prefix=_NOT_AFTER, suffix=suffix)


def _tokens() -> dict:
    c = categories()
    call = r"\b(?=[ \t]*\()"
    return {
        "root": [
            (r"\n", Whitespace),
            (r"^([ \t]*)(" + "|".join(map(re.escape, c["builtin-actor"])) + r")([ \t]*)(:)",
             bygroups(Whitespace, CATEGORY_TOKENS["builtin-actor"], Whitespace, Punctuation)),
            # `never: F[0] == 9`: a quantifier before the colon, not an actor
            (r"^([ \t]*)(" + "|".join(map(re.escape, c["keyword"])) + r")([ \t]*)(:)",
             bygroups(Whitespace, CATEGORY_TOKENS["keyword"], Whitespace, Punctuation)),
            (r"^([ \t]*)([A-Za-z_]\w*)([ \t]*)(:)", bygroups(Whitespace, CATEGORY_TOKENS["actor"], Whitespace, Punctuation)),
            (r"[ \t\f\r\v]+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"[^"\n]*"', String.Double),
            (r'"[^"\n]*', Error),  # an unterminated string
            (_NOT_AFTER + r"(expect)\b", CATEGORY_TOKENS["keyword"], "expect"),
            # `assert on anon-exclusive: ...`: the backends an assertion is judged on
            (_NOT_AFTER + r"(on)\b", CATEGORY_TOKENS["keyword"], "scope"),
            (PARAM_PATTERN, CATEGORY_TOKENS["param"]),
            (_w(c["op"], call), CATEGORY_TOKENS["op"]),
            (_w(c["fact"], call), CATEGORY_TOKENS["fact"]),
            (_w(c["kwarg"], r"\b(?=[ \t]*=(?!=))"), CATEGORY_TOKENS["kwarg"]),
            (_w(c["declaration"]), CATEGORY_TOKENS["declaration"]),
            (_w(c["operator-word"]), CATEGORY_TOKENS["operator-word"]),
            (_w(c["constant"]), CATEGORY_TOKENS["constant"]),
            (_w(c["outcome"]), CATEGORY_TOKENS["outcome"]),
            (_w(c["keyword"]), CATEGORY_TOKENS["keyword"]),
            (_w(c["fact-bare"]), CATEGORY_TOKENS["fact"]),
            (_w(c["flag"]), CATEGORY_TOKENS["flag"]),
            (r"0[xX][0-9a-fA-F]+\b", Number.Hex),
            (r"[0-9]+\b", Number.Integer),
            (r"[A-Za-z_]\w*", Name),
            (r"==|!=|<=|>=|<|>|=|~|\||\+", Operator),  # ~exists; `when kind=thp|pte_thp`; buf+8
            (r"[()\[\]{},.:]", Punctuation),
        ],
        "expect": [
            (r"[ \t]+", Whitespace),
            (_w(c["outcome"]), CATEGORY_TOKENS["outcome"]),
            (r"(on)\b", CATEGORY_TOKENS["keyword"], "backends"),
            (r"#[^\n]*", Comment.Single),
            (r"\n", Whitespace, "#pop"),
            default("#pop"),
        ],
        "backends": [
            (r"[ \t]+", Whitespace),
            (r",", Punctuation),
            (r"#[^\n]*", Comment.Single),
            (r"\n", Whitespace, "#pop:2"),
            (r"(when)\b", CATEGORY_TOKENS["keyword"], "#pop:2"),  # then `kind=thp`, lexed as any line
            (backend_pattern(), CATEGORY_TOKENS["backend"]),
            default("#pop:2"),
        ],
        "scope": [
            (r"[ \t]+", Whitespace),
            (r",", Punctuation),
            (r":", Punctuation, "#pop"),
            (backend_pattern(), CATEGORY_TOKENS["backend"]),
            default("#pop"),
        ],
    }


class CowLexer(RegexLexer):
    """Lexer for cowdsl scenarios (.cow): copy-on-write, pinning and fork."""

    name = "Cow"
    aliases = ["cow", "cowdsl"]
    filenames = ["*.cow"]
    mimetypes = ["text/x-cow"]
    url = "https://pypi.org/project/cowdsl/"
    version_added = ""
    flags = re.MULTILINE

    tokens = _tokens()

    def analyse_text(text: str) -> float:  # type: ignore[override,misc]  # Pygments wraps it as a static method
        score = 0.0
        if re.search(r"^expect\s+(pass|fail)\s+on\s", text, re.M):
            score += 0.5
        if re.search(r"^\w+:\s*(mmap|fork|pin|gup)\(", text, re.M):
            score += 0.3
        if re.search(r"^process\s+\w", text, re.M):
            score += 0.1
        return min(score, 1.0)


def highlighter(bg: str | None = None):
    """A function that colours one line of .cow source for a terminal (ANSI)."""
    import os

    from pygments import highlight
    from pygments.formatters import TerminalFormatter

    if bg is None:  # COLORFGBG="15;0": light text on a dark background
        tail = os.environ.get("COLORFGBG", "").rsplit(";", 1)[-1]
        bg = "light" if tail in ("7", "15") else "dark"
    lexer = CowLexer(stripnl=False, ensurenl=False)
    fmt = TerminalFormatter(bg=bg)

    def colour(line: str) -> str:
        return highlight(line, lexer, fmt)

    return colour


def main(argv=None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m cowdsl.lexer", description=__doc__.split("\n\n")[0])
    p.add_argument("--words", action="store_true", help="print the categorised word lists as JSON")
    p.add_argument("files", nargs="*", help=".cow files to print highlighted for a terminal")
    args = p.parse_args(argv)
    if args.words or not args.files:
        print(json.dumps({"backend": backend_pattern(), **categories()}, indent=2))
        return 0
    colour = highlighter()
    for f in args.files:
        with open(f, encoding="utf-8") as fh:
            print(colour(fh.read()), end="")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:  # `python -m cowdsl.lexer --words | head`
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None
