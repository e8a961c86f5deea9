"""The start line of a `par` block run natively: every actor released together, then each after
its own randomised skew.

The controller makes one pipe per block and keeps its write end to itself (O_CLOEXEC, and
every worker was forked before it existed).  Each actor, a worker's thread or a thread of the
controller, says it is ready and blocks reading the pipe.  Once all are ready (or a bound has
passed) the controller closes the write end: pipe_release() wakes every reader at once
(``wake_up_interruptible_all(&pipe->rd_wait)`` in fs/pipe.c, 5.5+; both queues before), and each
read returns 0.  Each actor then waits its skew and starts its steps.

The skews are drawn from a generator seeded with (seed, run): the same seed gives the same
draws, and N runs try N different offsets between the actors.  A skew is a fraction of the
block's window (how long the block took when its actors were released with no skew, run 1),
so that the offsets span the block whatever the machine's speed (a TCG guest is ~30 times
slower than the host).  Which CPU each actor runs on is drawn too: a rotation of the CPUs the
run may use, so with two CPUs or more the actors run in parallel, on one CPU they interleave
by preemption and blocking only.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterable, Sequence

from attrs import frozen

#: bounds on a block's window (the span skews are drawn from): at least 10 µs, at most 5 ms
MIN_WINDOW_NS = 10_000
MAX_WINDOW_NS = 5_000_000


@frozen
class Release:
    """How one actor of a block is released in one run."""

    actor: str
    skew_ns: int
    cpu: int | None  # None: where the run already is (one CPU only)


def releases(actors: Sequence[str], *, seed: int, run: int, window_ns: int,
             cpus: Sequence[int]) -> dict[str, Release]:
    """Each actor's skew and CPU in run ``run`` (0-based) of a block whose window is ``window_ns``.
    Run 0 releases every actor together (no skew); later runs draw each actor's skew uniformly in
    [0, window).  With two CPUs or more the actors get distinct CPUs while there are enough, in a
    rotation drawn per run."""
    rng = random.Random(f"cowdsl-par:{seed}:{run}")
    window = min(max(window_ns, MIN_WINDOW_NS), MAX_WINDOW_NS)
    skews = {a: 0 if run == 0 else int(rng.random() * window) for a in actors}
    offset = rng.randrange(len(cpus)) if len(cpus) > 1 else 0
    out = {}
    for i, a in enumerate(actors):
        cpu = cpus[(offset + i) % len(cpus)] if len(cpus) > 1 else None
        out[a] = Release(a, skews[a], cpu)
    return out


class Gate:
    """One block's start line: ``read_fd`` for the actors, the write end held here only."""

    def __init__(self, actors: Iterable[str]):
        self.read_fd, self._write_fd = os.pipe2(os.O_CLOEXEC)
        self._waiting = set(actors)
        self._cond = threading.Condition()
        self.opened_ns: int | None = None

    def ready(self, actor: str) -> None:
        """``actor`` is at the gate (or will never come: it failed before): no need to wait for it."""
        with self._cond:
            self._waiting.discard(actor)
            self._cond.notify_all()

    def open(self, timeout: float) -> int:
        """Release everybody once all are ready, or after ``timeout`` seconds; the release time
        (CLOCK_MONOTONIC, the same clock in every process) is returned."""
        with self._cond:
            self._cond.wait_for(lambda: not self._waiting, timeout)
        self.opened_ns = time.monotonic_ns()
        self._close_write()
        return self.opened_ns

    def _close_write(self) -> None:
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1

    def close(self) -> None:
        self._close_write()
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1


def wait(fd: int) -> int:
    """Block until the gate ``fd`` opens (EOF: nothing is ever written to it); the wake-up time."""
    while os.read(fd, 1):
        pass
    return time.monotonic_ns()


def spin(ns: int) -> int:
    """Wait ``ns`` nanoseconds without sleeping (a sleep's timer slack alone is ~50 µs); each turn
    yields the CPU and the GIL (os.sched_yield releases it), so another actor on the same CPU or of
    the same process runs meanwhile.  The time it ends."""
    end = time.monotonic_ns() + max(0, ns)
    now = time.monotonic_ns()
    while now < end:
        os.sched_yield()
        now = time.monotonic_ns()
    return now


def window(opened_ns: int, ends: Iterable[int]) -> int:
    """A block's window: from its release to the end of its last actor's last step."""
    return max((e - opened_ns for e in ends), default=0)


def micros(ns: int) -> str:
    return f"{ns / 1000:.1f} µs"
