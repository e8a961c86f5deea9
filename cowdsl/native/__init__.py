"""The `native` backend: run a scenario on the real kernel of this machine.

Each scenario process is a real process, each of its threads a real thread,
driven step by step: ``controller.py`` spawns, talks to, times out and reaps
the processes (the process side is ``worker.py``), ``translate.py`` turns each
step into worker commands (a table, op name → translation).  Pins are io_uring
fixed buffers (``uring.py``); pages are observed through /proc (``pagemap.py``,
``observe.py``).  Steps with no user-space equivalent make the scenario skip
with the reason (``plan.py``); ``host.py`` says what this machine can do.
``cowdsl.crosscheck``, a layer above, compares the kernel with a model.

``run_native(sc)`` returns a ``cowdsl.judge.Result`` with ``final=None``: the
step records carry what was done natively, and the checks are judged on a
``NativeObservation``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from cowdsl import scenario as S
from cowdsl.judge import Check, Result, StepRecord, check_execution
from cowdsl.judge.quantify import judged_on, not_judged, on_every_state
from cowdsl.kernel.eras import NATIVE
from cowdsl.kernel.spec import KernelSpec
from cowdsl.native import plan
from cowdsl.native.controller import Controller, Limits, StepTimeout, Terminated, terminable, uninterrupted
from cowdsl.native.host import Host, probe, skip_reason
from cowdsl.native.observe import NativeObservation
from cowdsl.native.translate import Translator, Unrunnable
from cowdsl.semantics.machine import Event
from cowdsl.semantics.state import Outcome

__all__ = ["run_native", "Limits", "Terminated", "probe", "skip_reason", "BACKEND", "DEFAULT_TIMEOUT"]

BACKEND = NATIVE
DEFAULT_TIMEOUT = 60.0  # seconds for a whole scenario


SPEC = KernelSpec(NATIVE)

Inject = Callable[[S.Step, Controller], Any]


def _undecided(sc: S.Scenario, reason: str) -> tuple[Check, ...]:
    return tuple(Check(a, None, {"unsupported": reason}) for a in sc.assertions)


def _check(obs: NativeObservation, a: S.Assertion) -> Check:
    """One real execution, judged like any other; an `invariant` or `reachable`
    needs every intermediate state, which native does not observe."""
    if not judged_on(a, SPEC):
        return not_judged(a)
    if on_every_state(a.quantifier):
        return Check(a, None, {"unsupported": f"unsupported on native: `{a.quantifier}` needs every state; "
                                              "native observes the final one"})
    return check_execution(a, [obs])


def run_native(sc: S.Scenario, *, timeout: float = DEFAULT_TIMEOUT, limits: Limits | None = None,
               inject: Inject | None = None) -> Result:
    """Run ``sc`` on this machine's kernel.

    ``inject(step, controller)``, for the safety tests, is called before each
    step and may kill workers, hang one, or raise.  Every process the run
    creates is reaped and its temporary directory removed whatever happens:
    KeyboardInterrupt, and SIGTERM or SIGHUP, which raise ``Terminated`` (a
    SystemExit with status 128 + the signal) once the run is torn down.
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

    made: list[Controller] = []  # (a signal held back during the set-up is raised after it: keep what was made)
    with terminable():
        try:
            try:
                uninterrupted(lambda: made.append(Controller(sc, limits, time.monotonic() + timeout)))
                done, checks = _steps(sc, made[0], host, inject)
            finally:
                for ctl in made:
                    uninterrupted(ctl.close)
                    if ctl.leaks:
                        print(f"cowdsl native: {sc.filename}: could not reap: {'; '.join(ctl.leaks)}",
                              file=sys.stderr)
        except Terminated as e:
            print(f"cowdsl: {e.name}: {sc.filename}: the native run was torn down", file=sys.stderr)
            raise
    return Result(sc, SPEC, None, tuple(done), checks, expected, time.perf_counter() - t0)


def _steps(sc: S.Scenario, ctl: Controller, host: Host,
           inject: Inject | None) -> tuple[list[StepRecord], tuple[Check, ...]]:
    """Start the processes, run every step, judge the assertions on what the kernel shows."""
    steps = Translator(ctl)
    records: list[StepRecord] = []
    aborted = None
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
            out, events = steps.step(st)
        except StepTimeout as e:
            aborted = f"run aborted at step {st.number}: {e}"
            out, events = Outcome(False, error=f"timeout: {e}"), [Event(f"timeout: {e}; the process is killed")]
        except Unrunnable as e:
            records.append(StepRecord(st, Outcome(False, error=str(e)), (Event(str(e)),)))
            for rest in sc.steps[len(records):]:
                records.append(StepRecord(rest, Outcome(False, error="not run: scenario skipped"), ()))
            return records, _undecided(sc, str(e))
        if st.bind:
            steps.results[st.bind] = out
        records.append(StepRecord(st, out, tuple(events)))
    if aborted:
        return records, _undecided(sc, f"native {aborted}")
    obs = NativeObservation(steps, host)
    try:
        return records, tuple(_check(obs, a) for a in sc.assertions)
    except StepTimeout as e:
        return records, _undecided(sc, f"native run aborted while observing: {e}")
