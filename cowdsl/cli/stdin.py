"""`-` as a path: the scenario read from standard input (`cat x.cow | cowdsl run -`).

Standard input is as untrusted as a file and bounded the same way: at most
MAX_SOURCE_BYTES are accepted, and no more than one byte past them is ever read
(a pipe that never ends costs nothing).  Diagnostics name it `<stdin>`, with
line:col and a caret like a file's.  It is read once: `run - -` runs it once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cowdsl.load
from cowdsl.batch import Batch, Problem
from cowdsl.errors import CowError, Diagnostic, Span
from cowdsl.syntax.parser import MAX_SOURCE_BYTES, decode

STDIN = "-"
NAME = "<stdin>"


def read_stdin(limit: int = MAX_SOURCE_BYTES) -> bytes:
    """Up to ``limit`` bytes of standard input; a CowError when there are more."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # no standard input at all (pythonw, a closed fd 0)
        raise OSError(0, "no standard input to read")
    chunks, got = [], 0
    while got <= limit:
        chunk = stream.read(limit + 1 - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    if got > limit:
        raise CowError(NAME, "", [Diagnostic(f"input is over {limit} bytes; the limit is {limit}", Span(1, 1, 2))])
    return b"".join(chunks)


class StdinBatch(Batch):
    """A Batch where the path `-` is standard input."""

    def files(self, paths: Any) -> list[Path]:
        paths = list(paths)
        if STDIN not in map(str, paths):
            return super().files(paths)
        rest = [p for p in paths if str(p) != STDIN]
        return [Path(STDIN)] + (super().files(rest) if rest else [])

    def load_file(self, path: str | Path) -> Any | None:
        if str(path) != STDIN:
            return super().load_file(path)
        try:
            source = decode(read_stdin(), NAME)
            # no folder: standard input has none, so an `include` is refused
            return cowdsl.load.load_text_all(source, NAME, self.limits)
        except CowError as e:
            n = len(e.diagnostics)
            self.add(Problem(NAME, f"{n} error{'' if n == 1 else 's'}", error=e))
        except OSError as e:
            self.add(Problem(NAME, e.strerror or str(e)))
        except Exception as e:  # a bug in the parser or checker: reported like a file's
            self._internal(NAME, "loading", e)
        return None
