"""Text from outside (file names, paths, arguments, a scenario's own text) made
safe to show in a terminal, XML, JSON or DOT: the one place that decides what
is escaped."""

from __future__ import annotations

import os
import unicodedata


def _escaped(c: str) -> str:
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # a byte of a file name that is not UTF-8 (surrogateescape)
        return f"\\x{n - 0xDC00:02x}"
    if n < 0x100:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def unsafe(c: str) -> bool:
    # control (escape sequences), format (bidi overrides, zero-width), separators, surrogates, unassigned
    return unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def escaped(text: object, keep: str = "") -> str:
    """``text`` with every unsafe character as \\xNN, \\uNNNN or \\UNNNNNNNN; the
    characters in ``keep`` (e.g. newline in a multi-line body) stay as they are."""
    s = os.fsdecode(text) if isinstance(text, bytes | os.PathLike) else str(text)
    return "".join(_escaped(c) if unsafe(c) and c not in keep else c for c in s)
