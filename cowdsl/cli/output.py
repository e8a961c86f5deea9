"""What the CLI writes: lines on stdout and stderr, counted words, colour, and
text from outside (file names, arguments, exception messages) made safe to show."""

from __future__ import annotations

import os
import sys

from cowdsl.untrusted import escaped

SHOWN_MAX = 200  # characters of one piece of outside text in a message


def out(text: str, stream=None) -> None:
    """A line on stdout (or ``stream``)."""
    (stream or sys.stdout).write(text if text.endswith("\n") else text + "\n")


def err(text: str) -> None:
    """A line on stderr."""
    out(text, sys.stderr)


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def shown(text: object, limit: int = SHOWN_MAX) -> str:
    """``text`` from outside, safe to print: control and format characters (escape
    sequences, bidi overrides) as \\xNN or \\uNNNN, and at most ``limit``
    characters of it (the rest is counted, not shown)."""
    s = os.fsdecode(text) if isinstance(text, bytes | os.PathLike) else str(text)
    cut = s[:limit]
    safe = escaped(cut)
    if len(s) > limit:
        safe += f"... ({len(s) - limit} more characters)"
    return safe


def colour(args, stream):
    """A function that colours .cow source for ``stream``, or None for plain text.

    ``--color always`` or ``never`` decides; ``auto`` (the default) colours only a
    terminal, and not when NO_COLOR is set (https://no-color.org) or TERM=dumb.
    """
    mode = getattr(args, "color", None) or "auto"
    if mode == "never":
        return None
    if mode == "auto":
        if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
            return None
        try:
            if not stream.isatty():
                return None
        except (AttributeError, ValueError):
            return None
    try:
        from cowdsl.lexer import highlighter  # lazy: Pygments only for a terminal that gets colour

        return highlighter()
    except Exception:  # no Pygments, or a broken lexer: plain text, never a crash
        return None


def diagnostics(e, highlight=None) -> str:
    """A CowError's diagnostics, with its file name made safe to show (the source
    lines and messages are made safe where they are rendered)."""
    name = shown(e.filename, limit=10**6)
    if name == e.filename:
        return e.render(highlight)
    from cowdsl.errors import render  # lazy: only for a file name that needs escaping

    return "\n".join(render(name, e.source, d, highlight) for d in e.diagnostics)


def problem(p, highlight=None) -> None:
    """A cowdsl.batch.Problem on stderr, as it happens."""
    if p.error is not None:
        err(diagnostics(p.error, highlight))
    elif p.exception is not None:
        e = p.exception
        err(f"cowdsl: {shown(p.file)}: internal error while {shown(p.doing)}: {type(e).__name__}: {shown(e, 2000)}")
        err(shown_lines(p.traceback()))
        err("  (this is a bug in cowdsl or in the backend; please report it with the scenario)")
    elif p.file is not None:
        err(f"cowdsl: {shown(p.file)}: {shown(p.message, 2000)}")
    else:
        err(f"cowdsl: {shown(p.message, 2000)}")


def shown_lines(text: str) -> str:
    """Several lines of text (a traceback), each made safe to show."""
    return "\n".join(shown(line, 2000) for line in text.split("\n"))
