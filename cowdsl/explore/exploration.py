"""What a search is given and what it gives back: its Bounds and its
Exploration, and what the searches share."""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Protocol

from attrs import define, field

from cowdsl.explore.model import Model, World
from cowdsl.limits import DEFAULT_MAX_MEMORY, MEMORY_ENV

Progress = Callable[[int, int], object]  # called with (states, executions) now and then


MEMORY_EVERY = 256  # looks at the clock and the states between two looks at resident memory
MEMORY_SLACK = 64  # MiB a search must have grown itself before the bound stops it


def default_max_memory() -> int:
    try:
        return max(1, int(os.environ.get(MEMORY_ENV, DEFAULT_MAX_MEMORY)))
    except ValueError:
        return DEFAULT_MAX_MEMORY


def resident_mib() -> float | None:
    """The most resident memory this process has held (getrusage's ru_maxrss, KiB
    on Linux): a system call, no file opened, and it only grows, so a search is
    stopped only once it has itself grown the process past its bound."""
    try:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except (OSError, ValueError, AttributeError):  # (the browser playground's stand-in has none)
        return None


@define
class Bounds:
    max_states: int = 200_000
    timeout: float = 60.0
    progress: Progress | None = None
    started: float = field(factory=time.monotonic)
    max_memory: int = field(factory=default_max_memory)  # MiB of resident memory
    # the most this process held when the search began: memory an earlier file of the
    # same run needed does not stop a search that does not grow past it
    baseline: float = field(factory=lambda: resident_mib() or 0.0)
    looks: int = 0

    def hit(self, states: int) -> str | None:
        if states >= self.max_states:
            return f"--max-states {self.max_states}"
        if time.monotonic() - self.started > self.timeout:
            return f"--timeout {self.timeout:g}s"
        self.looks += 1
        if self.looks % MEMORY_EVERY == 0:
            rss = resident_mib()
            if rss is not None and rss > self.max_memory and rss > self.baseline + MEMORY_SLACK:
                return f"--max-memory {self.max_memory} MiB"
        return None


class Goal(Protocol):
    """What stops a search early: told of each world it should judge (every
    terminal world; every world when ``every_state``), it answers whether every
    verdict is decided now."""

    every_state: bool

    def decided(self, w: World, terminal: bool) -> bool: ...


Path = list[tuple[World, int]]  # (world before, thread index) at each micro-step


class Routes(Protocol):
    """The full search's shortest, least interleaved way to each world it visited."""

    def to(self, worlds: Iterable[World]) -> Path | None:
        """Of ``worlds`` (in the order the search found them), the one reached in
        the fewest micro-steps, then the fewest switches between actors, and the
        path to it; None when there is none."""
        ...


@define
class Exploration:
    mode: str
    states: int = 0  # distinct worlds visited
    transitions: int = 0  # micro-steps executed
    executions: int | None = 0  # maximal interleavings (full: counted on the state graph, when asked; else None)
    finals: list[World] = field(factory=list)  # terminal worlds, distinct
    deadlocks: list[World] = field(factory=list)  # terminal worlds where some actor waits forever
    visited: Collection[World] = field(factory=set)  # every world, for invariants (full mode; in the order found)
    partial: str | None = None  # which bound stopped the search
    stopped: bool = False  # every verdict was decided before the search ended: it stopped there
    seconds: float = 0.0
    routes: Routes | None = None  # the full search's; None in the others
    drains: bool = False  # the model had drainers (lru_add batches drained at any moment): replay on one that has
    alone: int | None = None  # full search with ample sets: the worlds where one move stood for all

    @property
    def complete(self) -> bool:
        """Every world reachable was explored (no bound hit, no early stop)."""
        return self.partial is None and not self.stopped

    @property
    def halted(self) -> bool:
        """The search is to end now: a bound was hit or every verdict is decided."""
        return self.partial is not None or self.stopped


def terminal(model: Model, w: World, ex: Exploration, seen_final: set[World]) -> None:
    """Record a world where no thread can move: a final one, or a deadlock."""
    if w not in seen_final:
        seen_final.add(w)
        ex.finals.append(w)
        if not model.is_final(w):
            ex.deadlocks.append(w)


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic collector would rescan the growing visited set again and again;
    worlds are immutable trees of tuples, with no cycles to collect.  At the end
    what the search made goes to the oldest generation unscanned (freeze, then
    unfreeze; where OLDEST_AFTER_SEARCH): else the first young collection after
    it walks every one of them (12% of a search of 59,000 worlds), to find nothing."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if OLDEST_AFTER_SEARCH:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


# Whether no_gc may move what a search made to the oldest generation.  Not in a batch
# worker (batch._setup), whose parent froze its objects so that no collection in the
# worker writes to the pages they share: unfreezing would hand them back to the
# collector.  (Whether someone froze objects is not asked of gc: get_freeze_count
# walks every frozen object, 7 ms a search there.)
OLDEST_AFTER_SEARCH = True
