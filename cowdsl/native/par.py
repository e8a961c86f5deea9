"""A `par` block run natively: each actor on its own real thread or process, all released at once.

An actor's steps run in program order on its executor: the worker thread it names (a
process's main thread, or a declared thread of it, each with a channel of its own), a pin's
owner for a device (``mr: dma_write``), or, for `reclaim` and `ksmd`, a thread of the
controller (process_madvise; waiting for ksmd).  One controller thread per actor drives it
through the same translation as a sequential step (``translate.py``).  The actor's first
command carries the block's gate (``barrier.py``): the worker itself waits at it, moves to its
CPU, waits its skew and runs the command, so the release is not blurred by the controller.
Between two steps of one actor lies a round trip to the controller (tens of µs), a preemption
there, which the model allows between any two steps.  After the block every worker thread goes
back to the run's CPU (``Controller.settle``).

Which interleaving happens is the kernel's and the scheduler's: one run is one real execution,
and N runs with different skews sample the interleavings (``repeat.py`` judges them).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from attrs import define, field, frozen

from cowdsl import scenario as S
from cowdsl.native import barrier
from cowdsl.native import libc as L
from cowdsl.native.controller import StepTimeout
from cowdsl.native.translate import Reply, Timed, Translator
from cowdsl.semantics.machine import Event

#: ops the controller does itself (process_madvise into another process; waiting for ksmd)
CONTROLLER_OPS = frozenset({"swapout", "swapin", "ksm_merge", "ksm_merge_zero"})
CONTROLLER = "the controller"
#: ops whose handle is a pin a device acts through (its owner's channel does the DMA)
REGISTERS = frozenset({"pin", "io_uring_register"})
#: how long after the run's deadline a block's actor threads are waited for (their steps are bounded)
JOIN_SLACK = 15.0


def actors(block: Sequence[S.Step]) -> list[str]:
    """The block's actors, in the order they first appear."""
    return list(dict.fromkeys(st.actor for st in block))


def pin_owners(sc: S.Scenario) -> dict[str, str]:
    """A pin's name -> the process that took it (a device acts on its owner's channel)."""
    return {st.bind: st.task for st in sc.steps if st.op in REGISTERS and st.bind and st.task}


def executor(st: S.Step, owners: dict[str, str]) -> tuple[str, str | None]:
    """Where ``st`` runs natively: (process, thread or None for its main thread), or
    (CONTROLLER, actor) for an op the controller does."""
    if st.op in CONTROLLER_OPS:
        return CONTROLLER, st.actor
    if st.task is None:  # a device acting through a pin: the owner's main thread does its DMA
        return owners.get(st.actor, st.actor), None
    return st.task, None if st.actor == st.task else st.actor


@define
class Repetition:
    """The releases of one run of a scenario's par blocks: seeded draws (``barrier.releases``),
    scaled by each block's window as measured in run 0, where every actor starts at once."""

    seed: int
    run: int  # 0-based
    windows: dict[int, int] = field(factory=dict)  # a block (its first step) -> window, from run 0

    def releases(self, block: int, names: Sequence[str], cpus: Sequence[int]) -> dict[str, barrier.Release]:
        return barrier.releases(names, seed=self.seed, run=self.run, window_ns=self.windows.get(block, 0),
                                cpus=cpus)

    def measured(self, block: int, window_ns: int) -> None:
        if self.run == 0:
            self.windows[block] = window_ns


@frozen
class Ran:
    """What a block did: each step's reply (by step number; a step missing did not end), and
    the first error an actor met (StepTimeout, Unrunnable, ...) in program order."""

    replies: dict[int, Reply]
    error: BaseException | None
    window_ns: int


def run_block(t: Translator, block: Sequence[S.Step], releases: dict[str, barrier.Release],
              inject: Callable[[S.Step, Any], Any] | None = None) -> Ran:
    names = actors(block)
    gate = barrier.Gate(names)
    replies: dict[int, Reply] = {}
    errors: list[tuple[int, BaseException]] = []

    def drive(actor: str) -> None:
        steps = [st for st in block if st.actor == actor]
        release = releases[actor]
        here = steps[0].op in CONTROLLER_OPS
        try:
            if here:  # the controller's own actor waits at the gate in this thread
                _move_to(release.cpu)
                t.enter_block(actor, None, release)
                gate.ready(actor)
                barrier.wait(gate.read_fd)
                barrier.spin(release.skew_ns)
            else:
                t.enter_block(actor, gate, release)
            for st in steps:
                if inject is not None:
                    inject(st, t.ctl)
                start = time.monotonic_ns()
                out, events = t.step(st)
                if here:
                    t.timeline.append(Timed(actor, st.number, start, time.monotonic_ns(), L.current_cpu(),
                                            release.skew_ns if st is steps[0] else 0))
                if st.bind:
                    t.results[st.bind] = out
                replies[st.number] = (out, events)
        except BaseException as e:  # handed to the main thread, which re-raises it
            errors.append((steps[0].number, e))
        finally:
            t.leave_block()
            gate.ready(actor)

    threads = [threading.Thread(target=drive, args=(a,), name=f"cowdsl-par-{a}", daemon=True) for a in names]
    try:
        for th in threads:
            th.start()
        opened = gate.open(t.ctl.timeout())
        end = t.ctl.deadline + JOIN_SLACK
        for th in threads:
            while th.is_alive() and time.monotonic() < end:
                th.join(0.05)  # (short joins: Ctrl-C and SIGTERM reach the main thread)
    finally:
        gate.close()
    numbers = {st.number for st in block}
    timed = [x for x in t.timeline if x.step in numbers]
    for x in timed:
        if x.step in replies:
            out, events = replies[x.step]
            replies[x.step] = (out, [*events, Event(_when(x, opened))])
    error = min(errors, key=lambda e: e[0])[1] if errors else None
    if error is None and any(th.is_alive() for th in threads):
        error = StepTimeout("an actor of the par block did not finish")
    t.ctl.settle()
    return Ran(replies, error, barrier.window(opened, [x.end for x in timed]))


def _move_to(cpu: int | None) -> None:
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})  # this thread only
        except OSError:
            pass


def _when(x: Timed, opened: int) -> str:
    """``T on CPU 1: from +12.0 µs to +30.5 µs after the block's release (skew 10.0 µs)``"""
    cpu = f" on CPU {x.cpu}" if x.cpu is not None else ""
    skew = f" (skew {barrier.micros(x.skew_ns)})" if x.skew_ns else ""
    return (f"{x.actor}{cpu}: from +{barrier.micros(x.start - opened)} to +{barrier.micros(x.end - opened)} "
            f"after the block's release{skew}")
