"""Diagnostics: every error in a .cow file, syntactic or semantic.

Each one renders as ``file:line:col``, the source line, a caret under the
offending text, what was expected in plain words and, where one is close, a
did-you-mean suggestion.  Nothing here ever shows a Python traceback.
"""

from __future__ import annotations

import difflib
from typing import Iterable

from attrs import frozen


@frozen
class Span:
    line: int  # 1-based
    col: int  # 1-based
    end_col: int  # exclusive, on the same line

    @classmethod
    def of_token(cls, tok) -> "Span":
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
        return "\n".join(render(self.filename, self.source, d, highlight) for d in self.diagnostics)


def render(filename: str, source: str, d: Diagnostic, highlight=None) -> str:
    """Format one diagnostic; ``highlight`` optionally colours a source line."""
    lines = source.splitlines() or [""]
    lineno = min(max(d.span.line, 1), len(lines))
    text = lines[lineno - 1].replace("\t", " ")
    col = min(max(d.span.col, 1), len(text) + 1)
    width = max(1, min(d.span.end_col, len(text) + 1) - col)
    gutter = f"{lineno:>4} | "
    shown = highlight(text) if highlight else text
    out = [
        f"{filename}:{lineno}:{col}: {d.severity}: {d.message}",
        gutter + shown,
        " " * (len(gutter) - 2) + "| " + " " * (col - 1) + "^" * width,
    ]
    if d.expected:
        out.append(f"  expected: {d.expected}")
    if d.hint:
        out.append(f"  hint: {d.hint}")
    return "\n".join(out)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A suggestion when one candidate is close to ``word``."""
    cands = [c for c in candidates if c]
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
    return "one of " + ", ".join(words)
