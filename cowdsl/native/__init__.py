"""The `native` backend: run a scenario on the real kernel of this machine.

Each scenario process is a real process, each of its threads a real thread,
driven step by step: ``controller.py`` spawns, talks to, times out and reaps
the processes (the process side is ``worker.py``), ``translate.py`` turns each
step into worker commands (a table, op name → translation).  Pins are io_uring
fixed buffers (``uring.py``); an O_DIRECT request racing other actors is a Linux
AIO request (``aio.py``); pages are observed through /proc (``pagemap.py``,
``observe.py``).  Steps with no user-space equivalent make the scenario skip
with the reason (``plan.py``); ``host.py`` says what this machine can do.
A `par` block's actors run at once, each on its own thread or process, released
together at a gate (``par.py``, ``barrier.py``); such a scenario runs N times and
each assertion is judged on the runs (``repeat.py``), never as a proof.
``cowdsl.crosscheck``, a layer above, compares the kernel with a model.

``run_native(sc)`` returns a ``cowdsl.judge.Result`` with ``final=None``: the
step records carry what was done natively, and the checks are judged on a
``NativeObservation`` (for N runs: on each run's, then together);
``native_runs(sc)`` also gives each run's result.
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
from cowdsl.native import par, plan
from cowdsl.native import repeat as repeat_runs
from cowdsl.native.controller import Controller, Limits, StepTimeout, Terminated, terminable, uninterrupted
from cowdsl.native.host import Host, probe, skip_reason
from cowdsl.native.observe import NativeObservation
from cowdsl.native.repeat import Runs
from cowdsl.native.shmem_thp import shmem_knob
from cowdsl.native.translate import Translator, Unrunnable, ksmd_knobs
from cowdsl.semantics.machine import Event
from cowdsl.semantics.state import Outcome

__all__ = ["run_native", "native_runs", "Runs", "Limits", "Terminated", "probe", "skip_reason", "BACKEND",
           "DEFAULT_TIMEOUT", "PAR_REPEAT"]

BACKEND = NATIVE
DEFAULT_TIMEOUT = 60.0  # seconds for a whole scenario, all its runs together
PAR_REPEAT = 20  # runs of a scenario with a `par` block, unless asked otherwise


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
               inject: Inject | None = None, repeat: int | None = None, seed: int = 0) -> Result:
    """Run ``sc`` on this machine's kernel: once, or for a scenario with a `par` block
    ``repeat`` times (PAR_REPEAT by default), the assertions judged on every run
    (``repeat.py``: "witnessed K of N", "a violation seen (run k)", "none in N runs").
    The result is ``native_runs(...).result``."""
    return native_runs(sc, timeout=timeout, limits=limits, inject=inject, repeat=repeat, seed=seed).result


def native_runs(sc: S.Scenario, *, timeout: float = DEFAULT_TIMEOUT, limits: Limits | None = None,
                inject: Inject | None = None, repeat: int | None = None, seed: int = 0) -> Runs:
    """Run ``sc`` ``repeat`` times (default: PAR_REPEAT with a `par` block, else once), each run a
    fresh set of processes, its par blocks' actors released with skews drawn from ``seed``; all
    runs together within ``timeout`` seconds (a run that would not fit is not started).

    ``inject(step, controller)``, for the safety tests, is called before each
    step and may kill workers, hang one, or raise.  Every process a run
    creates is reaped and its temporary directory removed whatever happens:
    KeyboardInterrupt, and SIGTERM or SIGHUP, which raise ``Terminated`` (a
    SystemExit with status 128 + the signal) once the run is torn down.
    """
    limits = limits or Limits()
    t0 = time.perf_counter()
    host = probe()
    expected = sc.expected_on(SPEC)
    wanted = max(1, repeat if repeat is not None else (PAR_REPEAT if sc.concurrent else 1))
    prob = plan.problem(sc, host, limits)
    if prob is not None:
        number, reason = prob
        records = tuple(
            StepRecord(st, Outcome(False, error=reason if st.number == number else "not run: scenario skipped"),
                       (Event(reason),) if st.number == number else ())
            for st in sc.steps
        )
        skipped = Result(sc, SPEC, None, records, _undecided(sc, reason), expected, time.perf_counter() - t0)
        return Runs((skipped,), 1, seed, None, skipped)
    deadline = time.monotonic() + timeout
    results: list[Result] = []
    windows: dict[int, int] = {}
    stopped = None
    for k in range(wanted):
        longest = max((r.seconds for r in results), default=0.0)
        if results and time.monotonic() + longest > deadline:
            stopped = f"the {timeout:g} s timeout ended the runs after {len(results)} of {wanted}"
            break
        results.append(_run(sc, host, limits, deadline, inject, par.Repetition(seed, k, windows), expected))
    return repeat_runs.combine(sc, results, requested=wanted, seed=seed, stopped=stopped,
                               seconds=time.perf_counter() - t0)


def _run(sc: S.Scenario, host: Host, limits: Limits, deadline: float, inject: Inject | None,
         repetition: par.Repetition, expected: str | None) -> Result:
    """One run: a fresh set of processes, every step, the assertions judged on what the kernel shows."""
    t0 = time.perf_counter()
    made: list[Controller] = []  # (a signal held back during the set-up is raised after it: keep what was made)
    with terminable():
        try:
            try:
                uninterrupted(lambda: made.append(Controller(sc, limits, deadline)))
                with ksmd_knobs(sc), shmem_knob(sc):
                    done, checks = _steps(sc, made[0], host, inject, repetition)
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


def _steps(sc: S.Scenario, ctl: Controller, host: Host, inject: Inject | None,
           repetition: par.Repetition) -> tuple[list[StepRecord], tuple[Check, ...]]:
    """Start the processes, run every step (a par block's actors at once), judge the assertions
    on what the kernel shows."""
    steps = Translator(ctl)
    records: list[StepRecord] = []
    aborted = None
    try:
        ctl.start()
    except StepTimeout as e:
        aborted = f"a process did not start: {e}"
    for block in sc.blocks():
        if aborted:
            records += [StepRecord(st, Outcome(False, error=f"not run: {aborted}"), ()) for st in block]
            continue
        if block[0].par:
            names = par.actors(block)
            ran = par.run_block(steps, block, repetition.releases(block[0].number, names, ctl.cpus), inject)
            repetition.measured(block[0].number, ran.window_ns)
            replies, error = ran.replies, ran.error
        else:
            replies, error = {}, None
            st = block[0]
            try:
                if inject is not None:
                    inject(st, ctl)
                out, events = steps.step(st)
                if st.bind:
                    steps.results[st.bind] = out
                replies[st.number] = (out, events)
            except (StepTimeout, Unrunnable) as e:
                error = e
        missing = [st.number for st in block if st.number not in replies]
        if isinstance(error, Unrunnable):  # every assertion is skipped with the reason
            for st in block:
                if st.number in replies:
                    records.append(StepRecord(st, *_as_record(replies[st.number])))
                elif st.number == missing[0]:
                    records.append(StepRecord(st, Outcome(False, error=str(error)), (Event(str(error)),)))
                else:
                    records.append(StepRecord(st, Outcome(False, error="not run: scenario skipped"), ()))
            records += [StepRecord(st, Outcome(False, error="not run: scenario skipped"), ())
                        for st in sc.steps[len(records):]]
            return records, _undecided(sc, str(error))
        if error is not None and not isinstance(error, StepTimeout):
            raise error
        if missing:  # a step timed out: the run cannot go on
            aborted = f"run aborted at step {missing[0]}: {error}"
        for st in block:
            if st.number in replies:
                records.append(StepRecord(st, *_as_record(replies[st.number])))
            elif st.number == missing[0]:
                records.append(StepRecord(st, Outcome(False, error=f"timeout: {error}"),
                                          (Event(f"timeout: {error}; the process is killed"),)))
            else:
                records.append(StepRecord(st, Outcome(False, error=f"not run: {aborted}"), ()))
    if aborted:
        return records, _undecided(sc, f"native {aborted}")
    obs = NativeObservation(steps, host)
    try:
        return records, tuple(_check(obs, a) for a in sc.assertions)
    except StepTimeout as e:
        return records, _undecided(sc, f"native run aborted while observing: {e}")


def _as_record(reply: tuple[Outcome, list[Event]]) -> tuple[Outcome, tuple[Event, ...]]:
    out, events = reply
    return out, tuple(events)
