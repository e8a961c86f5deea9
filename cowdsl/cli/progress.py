"""The progress line: how an exploration that takes over a second is going, on stderr."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """A progress line on stderr for explorations that take over a second (rich).

    A context manager for one exploration; the value is called with (states,
    executions) now and then (cowdsl.explore.search.Bounds.progress).  It shows
    nothing when stderr is not a terminal.
    """

    def __init__(self, name: str):
        self.name, self.shown = name, False
        self.live: Any = None  # a rich Status once shown; False without rich

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __call__(self, states: int, executions: int) -> None:
        if time.monotonic() - self.t0 < 1.0 or not sys.stderr.isatty():
            return
        if self.live is None:
            try:
                from rich.console import Console  # lazy: rich only once an exploration is slow
                from rich.status import Status  # lazy, like Console

                self.live = Status("", console=Console(stderr=True))
                self.live.start()
            except ImportError:
                self.live = False
        text = f"exploring {self.name}: {states} states, {executions} executions"
        if self.live:
            self.live.update(text)
        else:
            sys.stderr.write("\r" + text)
            self.shown = True

    def __exit__(self, *exc):
        if self.live:
            self.live.stop()
        elif self.shown:
            sys.stderr.write("\n")
        return False
