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

    def __init__(self, name: str, *, mode: str | None = None, max_states: int | None = None,
                 timeout: float | None = None):
        self.name, self.shown = name, False
        self.mode, self.max_states, self.timeout = mode or "auto", max_states, timeout
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
        text = self.text(states, time.monotonic() - self.t0)
        if self.live:
            self.live.update(text)
        else:
            sys.stderr.write("\r" + text)
            self.shown = True

    def text(self, states: int, elapsed: float) -> str:
        """The line: the mode, the states so far and their rate, the time against the bounds.
        (Executions are not shown: the full search counts them only at the end.)"""
        rate = states / elapsed if elapsed > 0 else 0.0
        bounds = []
        if self.max_states is not None:
            bounds.append(f"{states / self.max_states:.0%} of --max-states {self.max_states:,}")
        if self.timeout is not None:
            bounds.append(f"{elapsed:.0f}s of --timeout {self.timeout:g}s")
        else:
            bounds.append(f"{elapsed:.0f}s")
        return f"exploring {self.name} ({self.mode}): {states:,} states, {rate:,.0f}/s; " + ", ".join(bounds)

    def __exit__(self, *exc):
        if self.live:
            self.live.stop()
        elif self.shown:
            sys.stderr.write("\n")
        return False
