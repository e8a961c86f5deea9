"""The `native` backend: run a scenario on the real kernel of this machine.

Each scenario process is a real process, each of its threads a real thread,
driven step by step by a controller (``controller.py``; the process side is
``worker.py``).  Pins are io_uring fixed buffers (``uring.py``); pages are
observed through /proc (``pagemap.py``, ``observe.py``).  Steps with no
user-space equivalent make the scenario skip with the reason (``plan.py``);
``host.py`` says what this machine can do.  ``crosscheck.py`` compares the
kernel with the model.

``run_native(sc)`` returns a ``cowdsl.judge.Result`` with ``final=None``: the
step records carry what was done natively, and the checks are judged on a
``NativeObservation``.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from cowdsl import scenario as S
from cowdsl.judge import Check, Result, StepRecord, check_execution
from cowdsl.kernel.eras import NATIVE
from cowdsl.kernel.spec import KernelSpec
from cowdsl.native import plan
from cowdsl.native.controller import Controller, Limits, StepTimeout
from cowdsl.native.host import probe, skip_reason
from cowdsl.native.observe import NativeObservation
from cowdsl.semantics.machine import Event
from cowdsl.semantics.state import Outcome

__all__ = ["run_native", "Limits", "probe", "skip_reason", "BACKEND"]

BACKEND = NATIVE
DEFAULT_TIMEOUT = 60.0  # seconds for a whole scenario


SPEC = KernelSpec(NATIVE)


def _undecided(sc, reason: str):
    return tuple(Check(a, None, {"unsupported": reason}) for a in sc.assertions)


def _check(obs, a) -> Check:
    """One real execution, judged like any other; an `invariant` needs every
    intermediate state, which native does not observe."""
    if a.quantifier == S.INVARIANT:
        return Check(a, None, {"unsupported": "unsupported on native: `invariant` needs every state; "
                                              "native observes the final one"})
    return check_execution(a, [obs])


def _close_uninterrupted(ctl) -> None:
    """Tear the run down with SIGINT held back, so a second Ctrl-C cannot cut the clean-up
    short; a pending SIGINT is delivered (as KeyboardInterrupt) right after."""
    main = threading.current_thread() is threading.main_thread()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if main else None
    try:
        ctl.close()
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def run_native(sc, *, timeout: float = DEFAULT_TIMEOUT, limits: Limits | None = None, inject=None):
    """Run ``sc`` on this machine's kernel.

    ``inject(step, controller)``, for the safety tests, is called before each
    step and may kill workers, hang one, or raise.  Every process the run
    creates is reaped and its temporary directory removed whatever happens,
    KeyboardInterrupt included.
    """
    limits = limits or Limits()
    t0 = time.perf_counter()
    host = probe()
    expected = sc.expected_on(SPEC)
    prob = plan.problem(sc, host, limits)
    if prob is not None:
        number, reason = prob
        records = tuple(
            StepRecord(st, Outcome(False, error=reason if st.number == number else "not run: scenario skipped"),
                       (Event(reason),) if st.number == number else ())
            for st in sc.steps
        )
        return Result(sc, SPEC, None, records, _undecided(sc, reason), expected, time.perf_counter() - t0)

    ctl = Controller(sc, limits, time.monotonic() + timeout)
    records = []
    aborted = None
    checks = ()
    try:
        try:
            ctl.start()
        except StepTimeout as e:
            aborted = f"a process did not start: {e}"
        for st in sc.steps:
            if aborted:
                out = Outcome(False, error=f"not run: {aborted}")
                records.append(StepRecord(st, out, ()))
                continue
            try:
                if inject is not None:
                    inject(st, ctl)
                out, events = ctl.step(st)
            except StepTimeout as e:
                aborted = f"run aborted at step {st.number}: {e}"
                out, events = Outcome(False, error=f"timeout: {e}"), [Event(f"timeout: {e}; the process is killed")]
            if st.bind:
                ctl.results[st.bind] = out
            records.append(StepRecord(st, out, tuple(events)))
        if aborted:
            checks = _undecided(sc, f"native {aborted}")
        else:
            obs = NativeObservation(ctl, host)
            try:
                checks = tuple(_check(obs, a) for a in sc.assertions)
            except StepTimeout as e:
                checks = _undecided(sc, f"native run aborted while observing: {e}")
    finally:
        _close_uninterrupted(ctl)
        if ctl.leaks:
            print(f"cowdsl native: {sc.filename}: could not reap: {'; '.join(ctl.leaks)}", file=sys.stderr)
    return Result(sc, SPEC, None, tuple(records), checks, expected, time.perf_counter() - t0)
