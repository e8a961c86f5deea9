"""Diagnostics: every error in a .cow file, syntactic or semantic.

Each one renders as ``file:line:col``, the source line, a caret under the
offending text, what was expected in plain words and, where one is close, a
did-you-mean suggestion.  Nothing here ever shows a Python traceback.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable

from attrs import frozen


@frozen
class Span:
    line: int  # 1-based
    col: int  # 1-based
    end_col: int  # exclusive, on the same line

    @classmethod
    def of_token(cls, tok) -> Span:
        line = getattr(tok, "line", None) or 1
        col = getattr(tok, "column", None) or 1
        end = getattr(tok, "end_column", None)
        if getattr(tok, "end_line", line) != line or end is None:
            end = col + max(len(str(tok)), 1)
        return cls(line, col, max(end, col + 1))


@frozen
class Diagnostic:
    message: str
    span: Span
    expected: str | None = None
    hint: str | None = None
    severity: str = "error"


class CowError(Exception):
    """One or more diagnostics about one source file."""

    def __init__(self, filename: str, source: str, diagnostics: Iterable[Diagnostic]):
        self.filename = filename
        self.source = source
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.span.line, d.span.col))
        super().__init__(self.render())

    def render(self, highlight=None) -> str:
        lines = _lines(self.source)  # split once: a file may have many diagnostics
        return "\n".join(render(self.filename, self.source, d, highlight, lines) for d in self.diagnostics)


def _cell(c: str) -> tuple[str, int]:
    """How a character of the source line is shown, and how many columns it takes."""
    if c == "\t":
        return " ", 1
    if not c.isprintable():  # control characters would garble the terminal
        return "\N{REPLACEMENT CHARACTER}", 1
    if unicodedata.combining(c):
        return c, 0
    return c, 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def _lines(source: str) -> list[str]:
    lines = source.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


_LONG_LINE = 400  # longer source lines are shown as a window around the caret
_CONTEXT = 100


def render(filename: str, source: str, d: Diagnostic, highlight=None, lines: list[str] | None = None) -> str:
    """Format one diagnostic; ``highlight`` optionally colours a source line;
    ``lines`` is the source already split (``_lines``), when the caller has it.

    Lines are split on ``\\n`` only, as the parser counts them (``str.splitlines``
    would also split on form feeds and U+2028 and put the caret on the wrong line).
    """
    if lines is None:
        lines = _lines(source)
    lineno = min(max(d.span.line, 1), len(lines))
    raw = lines[lineno - 1].rstrip("\r")
    col = min(max(d.span.col, 1), len(raw) + 1)
    end = max(col + 1, min(d.span.end_col, len(raw) + 1))
    header_col = col
    if len(raw) > _LONG_LINE:  # show a window around the caret, not a line of a megabyte
        first = max(0, col - 1 - _CONTEXT)
        last = min(len(raw), max(end - 1, col) + _CONTEXT)
        lead = "..." if first > 0 else ""
        raw = lead + raw[first:last] + ("..." if last < len(lines[lineno - 1].rstrip("\r")) else "")
        col, end = col - first + len(lead), min(end - first + len(lead), len(raw) + 1)
    cells = [_cell(c) for c in raw]
    text = "".join(c for c, _ in cells)
    pad = sum(w for _, w in cells[: col - 1])
    width = max(1, sum(w for _, w in cells[col - 1 : end - 1]))
    gutter = f"{lineno:>4} | "
    shown = highlight(text) if highlight else text
    out = [
        f"{filename}:{lineno}:{header_col}: {d.severity}: {d.message}",
        gutter + shown,
        " " * (len(gutter) - 2) + "| " + " " * pad + "^" * width,
    ]
    if d.expected:
        out.append(f"  expected: {d.expected}")
    if d.hint:
        out.append(f"  hint: {d.hint}")
    return "\n".join(out)


_MAX_CANDIDATES = 500  # difflib compares each one: a file may declare tens of thousands of names


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A suggestion when one candidate is close to ``word``."""
    cands = [c for c in candidates if c]
    if len(cands) > _MAX_CANDIDATES:  # only names of about the same length can be close
        cands = [c for c in cands if abs(len(c) - len(word)) <= 2][:_MAX_CANDIDATES]
    close = difflib.get_close_matches(word, cands, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in cands}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f"did you mean `{close[0]}`?" if close else None


def one_of(words: Iterable[str]) -> str:
    words = [f"`{w}`" for w in words]
    if not words:
        return "nothing here"
    if len(words) == 1:
        return words[0]
    if len(words) == 2:
        return f"{words[0]} or {words[1]}"
    return "one of " + ", ".join(words)
