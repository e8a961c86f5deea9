"""Scenario files in, results out: the loop behind `cowdsl run`, `cowdsl check`,
`cowdsl diff`, `cowdsl crosscheck` and the pytest plugin.

A ``Batch`` finds the .cow files under some paths, loads each one, and runs
scenarios on a resolved ``KernelSpec`` within bounds.  Whatever goes wrong with
one file (it does not exist, does not parse, is not a regular file, or the
parser, checker or a backend crashes on it) becomes a ``Problem`` and the loop
goes on with the next file.  Each problem is handed to ``report`` as it
happens (the CLI prints it on stderr) and kept in ``Batch.problems``.

    batch = Batch(limits=limits, report=show)
    for sc in batch.load(paths):  # batch.load(paths, workers): each file parsed and checked by a worker
        result = batch.run(sc, spec, max_states=..., timeout=...)  # None: see batch.problems

Nothing here prints, parses a backend spec, or imports the model until a
scenario runs.

``Workers`` runs independent jobs (loading a file, running a scenario, a row of
the era matrix, a release of the timeline) in parallel: in this process (one job
at a time), in worker processes, or on a Dask cluster; the costliest are handed
out first, and the results come back in the order of the jobs, so the output is
the same whichever runs them.
"""

from __future__ import annotations

import contextlib
import copyreg
import gc
import io
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import cowdsl.load
from cowdsl.errors import CowError
from cowdsl.limits import Limits

T = TypeVar("T")

# A progress display for one exploration: called with the scenario's name, it gives a
# context manager whose value is called with (states, executions) now and then.
Progress = Callable[[str], AbstractContextManager[Any]]


class Problem:
    """A file that produced no scenario, a scenario that could not run, or (with
    ``skipped``) a file found in a directory and left alone."""

    def __init__(self, file: str | None, message: str, *, error: CowError | None = None,
                 exception: BaseException | None = None, doing: str | None = None, skipped: bool = False):
        self.file = file  # as found or given: None when the problem is not about one file
        self.message = message  # one line, without the file name
        self.error = error  # the CowError (its diagnostics), when there is one
        self.exception = exception  # an internal error: a bug in cowdsl or in a backend
        self.doing = doing  # what the internal error interrupted: "loading", "running on anon-exclusive"
        self.skipped = skipped

    def traceback(self) -> str:
        """The internal error's traceback (where it was raised, in a worker too); empty
        for other problems."""
        if self.exception is None:
            return ""
        return getattr(self.exception, REMOTE_TRACEBACK, None) or \
            "".join(traceback.format_exception(self.exception)).rstrip()

    def __reduce__(self) -> tuple[Any, ...]:
        # to the parent from a worker: the exception's traceback as text (a traceback
        # does not pickle), an exception that does not pickle as a RuntimeError; the
        # CowError by its fields (its constructor takes more than the message it keeps)
        e = self.exception
        if e is not None:
            e = _portable(e, self.traceback())
        error = None if self.error is None else (type(self.error), self.error.args, self.error.__dict__)
        return (_problem, (self.file, self.message, error, e, self.doing, self.skipped))

    def __repr__(self) -> str:
        return f"Problem({self.file!r}, {self.message!r})"


def _problem(*args: Any) -> Problem:
    error = None
    if args[2] is not None:
        cls, error_args, fields = args[2]
        error = cls.__new__(cls)
        error.args = error_args
        error.__dict__.update(fields)
    return Problem(args[0], args[1], error=error, exception=args[3], doing=args[4], skipped=args[5])


class Batch:
    """Files to scenarios to results, collecting a ``Problem`` for each file that
    fails and carrying on.

    ``limits`` (cowdsl.limits.Limits) bounds what a scenario may ask for when it
    is loaded, and the states and time of an exploration; ``report`` is called
    with each problem as it happens.
    """

    def __init__(self, *, limits: Limits | None = None, report: Callable[[Problem], None] | None = None):
        self.limits = limits
        self.report = report
        self.problems: list[Problem] = []  # errors: files that loaded or ran with a problem
        self.skipped: list[Problem] = []  # non-regular entries found in directories

    def add(self, problem: Problem) -> None:
        """Keep ``problem`` and report it (one a worker found, in the order of the jobs)."""
        self._add(problem)

    def _add(self, problem: Problem) -> None:
        (self.skipped if problem.skipped else self.problems).append(problem)
        if self.report is not None:
            self.report(problem)

    # --- files -------------------------------------------------------------------------------

    def files(self, paths: Iterable[str | Path]) -> list[Path]:
        """The .cow files under ``paths`` (directories searched recursively, files as
        given), each once; an entry of a directory that is not a regular file (a
        FIFO or a device named x.cow) is skipped with a problem marked ``skipped``."""
        paths = list(paths)
        found, left_out = cowdsl.load.scan(paths)
        for f, why in left_out:
            self._add(Problem(str(f), why, skipped=True))
        files, seen = [], set()
        for f in found:
            key = str(f.resolve()) if f.exists() else str(f)
            if key not in seen:  # `run scenarios/ scenarios/x.cow` runs x.cow once
                seen.add(key)
                files.append(f)
        if not files:
            self._add(Problem(None, f"no .cow files found in {', '.join(map(str, paths))}"))
        return files

    def load(self, paths: Iterable[str | Path], workers: Workers | None = None,
             meanwhile: Callable[[], Any] | None = None) -> list[Any]:
        """Every scenario that loads from the .cow files under ``paths``, in order
        (a file with `param` lines gives one per combination of their values).

        With worker processes (``workers``), each file is parsed and checked by a
        worker, the larger files first; the scenarios and the problems come back
        in the order of the files, so what is reported is what loading them here
        reports.  A Dask cluster's workers may not see this machine's files: they
        are loaded here.  ``meanwhile`` is called once in this process, while the
        workers load (the imports the runs need: the next pool forks with them)."""
        files = self.files(paths)
        if workers is None or workers.executor != "processes" or workers.inline(len(files)):
            loaded: Iterable[list[Any] | None] = map(self.load_file, files)
            if meanwhile is not None:
                meanwhile()
        else:
            loaded = self._load_in(workers, files, meanwhile)
        return [sc for scs in loaded if scs is not None for sc in scs]

    def _load_in(self, workers: Workers, files: list[Path],
                 meanwhile: Callable[[], Any] | None) -> Iterator[list[Any] | None]:
        here = [str(f) == STDIN for f in files]
        away = [f for f, h in zip(files, here) if not h]
        done = workers.map(_load_job, (), [(f, self.limits) for f in away], cost=[_size(f) for f in away],
                           meanwhile=meanwhile)
        for f, h in zip(files, here):
            if h:  # standard input: only this process can read it
                yield self.load_file(f)
                continue
            scenarios, problems = next(done)
            for p in problems:
                self._add(p)
            yield scenarios

    def load_file(self, path: str | Path) -> list[Any] | None:
        """One file's checked scenarios (cowdsl.scenario.Scenario: one, or one per
        combination of its params' values), or None and a problem."""
        f = Path(path)
        if not f.exists():
            self._add(Problem(str(f), "no such file or directory"))
            return None
        try:
            # looked up at each call (not imported by name), so a test may replace it
            return cowdsl.load.load_all(f) if self.limits is None else cowdsl.load.load_all(f, self.limits)
        except CowError as e:
            n = len(e.diagnostics)
            self._add(Problem(str(f), f"{n} error{'' if n == 1 else 's'}", error=e))
        except OSError as e:
            self._add(Problem(str(f), e.strerror or str(e)))
        except Exception as e:  # a bug in the parser or checker: report it, go on
            self._internal(str(f), "loading", e)
        return None

    # --- runs --------------------------------------------------------------------------------

    def run(self, sc: Any, spec: Any, *, mode: str | None = None, schedule: list[str] | None = None,
            max_states: int | None = None, timeout: float | None = None,
            progress: Progress | None = None, all_states: bool = False) -> Any | None:
        """``sc`` run on ``spec`` (a resolved cowdsl.kernel.spec.KernelSpec): a
        cowdsl.judge.Result, or None and a problem.

        A concurrent scenario (or one with ``mode`` or ``schedule``) is explored
        within ``max_states`` and ``timeout`` (the limits' by default); its
        result says when a bound stopped it (``result.partial``).  ``progress``
        shows how an exploration is going.  An impossible ``schedule`` is a
        problem with its message; any other exception is an internal error.
        """
        import cowdsl.run  # lazy: loading files (`cowdsl check`) never imports the model
        from cowdsl.explore.search import Bounds  # lazy, like cowdsl.run (which imports it anyway)

        limits = self.limits or Limits()
        shown = progress(sc.name) if progress is not None else nullcontext(None)
        try:
            with shown as tick:
                bounds = Bounds(max_states=limits.max_states if max_states is None else max_states,
                                timeout=limits.timeout if timeout is None else timeout, progress=tick)
                return cowdsl.run.run(sc, spec, mode=mode, bounds=bounds, schedule=schedule, all_states=all_states)
        except ValueError as e:
            if schedule is None:
                self._internal(sc.filename, f"running on {spec}", e)
            else:  # a schedule that does not fit the scenario
                self._add(Problem(sc.filename, str(e)))
        except Exception as e:  # a bug in a backend: report it, go on
            self._internal(sc.filename, f"running on {spec}", e)
        return None

    def run_many(self, scenarios: Iterable[Any], spec: Any, *, workers: Workers | None = None,
                 progress: Progress | None = None, **kw: Any) -> Iterator[tuple[Any, Any | None]]:
        """Each scenario run as ``run`` runs it (``kw``: mode, schedule, max_states,
        timeout), one file per job of ``workers``: (scenario, result or None) in
        order, each one's problems reported as it comes.  ``progress`` is shown
        only for runs in this process."""
        scenarios = list(scenarios)
        workers = workers or Workers(1)
        shown = progress if workers.inline(len(scenarios)) else None
        items = [(i, spec, kw, self.limits, shown) for i in range(len(scenarios))]
        done = workers.map(_run_job, scenarios, items, cost=[run_cost(sc) for sc in scenarios])
        for sc, (result, problems) in zip(scenarios, done):
            for p in problems:
                self._add(p)
            yield sc, result

    def call(self, file: str, doing: str, fn: Callable[..., T], *args: Any, **kw: Any) -> T | None:
        """``fn(*args, **kw)``, or None and an internal-error problem about ``file``
        (what it was ``doing``) when it raises; KeyboardInterrupt passes through."""
        try:
            return fn(*args, **kw)
        except Exception as e:
            self._internal(file, doing, e)
            return None

    def _internal(self, file: str, doing: str, e: BaseException) -> None:
        self._add(Problem(file, f"internal error: {type(e).__name__}: {e}", exception=e, doing=doing))


# --- workers -------------------------------------------------------------------------------

REMOTE_TRACEBACK = "cowdsl_traceback"  # an exception from a worker carries its traceback, as text, here
EXECUTORS = ("processes", "dask")

# A job: (the shared objects, one item) -> the item's result.  A module-level function,
# so that a worker process finds it by name.
Job = Callable[[Sequence[Any], Any], Any]
# The jobs' results as they finish: (the item's index, whether the job returned, its result or exception pickled)
Done = Generator[tuple[int, bool, bytes], None, None]


def cores() -> int:
    """The CPUs this process may run on: the default number of workers."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class WorkersUnavailable(Exception):
    """The executor asked for cannot start (Dask is not installed, or the scheduler is unreachable)."""


class Workers:
    """Independent jobs run ``jobs`` at a time; ``map`` yields their results in the
    order of the items, so what is printed does not depend on who ran them.

    - ``jobs=1``, or a single item: here, one after the other (exceptions, progress
      lines and patches made by tests as without workers);
    - ``executor="processes"``: a pool of worker processes, forked from this one
      when it has no other thread (forking copies nothing until written), else
      started by a fork server;
    - ``executor="dask"``: on a Dask cluster, ``scheduler`` its address, or a local
      one of ``jobs`` single-threaded worker processes.

    The items are partitioned by file or by cell, never inside one search: a world
    costs about as much to pickle as to explore.  ``shared`` (the scenarios) goes
    to each worker once; a result that points at a shared scenario, or at one of
    its steps or assertions, points at the caller's own object again.  An
    exception a job raises is raised again here, its traceback (as text) kept in
    the ``REMOTE_TRACEBACK`` attribute; Ctrl-C stops every worker.
    """

    def __init__(self, jobs: int | None = None, executor: str = "processes", scheduler: str | None = None):
        if executor not in EXECUTORS:
            raise ValueError(f"unknown executor {executor!r}")
        self.jobs = max(1, cores() if jobs is None else jobs)
        self.executor = "dask" if scheduler is not None else executor
        self.scheduler = scheduler
        if self.executor == "dask":
            try:
                import distributed  # noqa: F401  (the optional extra: pip install 'cowdsl[dask]')
            except ImportError as e:
                raise WorkersUnavailable("--executor dask needs Dask's distributed scheduler: "
                                         "pip install 'cowdsl[dask]'") from e

    def inline(self, n: int) -> bool:
        """Whether ``n`` jobs would run in this process."""
        return self.executor == "processes" and (self.jobs <= 1 or n <= 1)

    def map(self, job: Job, shared: Sequence[Any], items: Iterable[Any],
            cost: Sequence[float] | None = None, meanwhile: Callable[[], Any] | None = None) -> Iterator[Any]:
        """``job(shared, item)`` for each item, the results in the order of the items.
        ``cost``: what each item is expected to cost (any unit); the costliest are
        handed out first, and the cheap ones in batches, so that no worker is left
        with a long job at the end and the others idle.  ``meanwhile``: called once
        here, once the jobs are handed out (before them, when they run here)."""
        items = list(items)
        if self.inline(len(items)):
            return _here(job, shared, items, meanwhile)
        shared = tuple(shared)
        plan = _plan(cost if cost is not None else [1.0] * len(items), max(1, min(self.jobs, len(items))))
        run = self._dask if self.executor == "dask" else self._processes
        return _in_order(shared, run(job, shared, items, plan, meanwhile), len(items))

    def _processes(self, job: Job, shared: tuple[Any, ...], items: list[Any], plan: list[list[int]],
                   meanwhile: Callable[[], Any] | None) -> Done:
        import multiprocessing

        ctx: multiprocessing.context.BaseContext
        if threading.active_count() == 1:  # nothing can hold a lock across the fork
            ctx = multiprocessing.get_context("fork")
        else:
            server = multiprocessing.get_context("forkserver")
            server.set_forkserver_preload(["cowdsl.run"])  # each worker starts with the model imported
            ctx = server
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # a forked child must not inherit (and later write) buffered output
        with _ctrl_c_noted() as caught:  # the forked workers too, until _setup: one Ctrl-C message
            gc.freeze()  # the collector in a forked worker leaves this process's objects alone (and unshared)
            try:
                pool = ctx.Pool(min(self.jobs, len(items)), initializer=_setup, initargs=(shared,))
            finally:
                gc.unfreeze()
        try:
            _deliver(caught)
            results = pool.imap_unordered(_call_batch, [(job, [(i, items[i]) for i in batch]) for batch in plan])
            if meanwhile is not None:
                meanwhile()
            for done in results:
                yield from done
        finally:  # done, or Ctrl-C, or the consumer stopped early: no worker outlives the map
            with _ctrl_c_noted() as caught:  # a Ctrl-C halfway through would leave workers behind
                pool.terminate()
                pool.join()
            _deliver(caught)

    def _dask(self, job: Job, shared: tuple[Any, ...], items: list[Any], plan: list[list[int]],
              meanwhile: Callable[[], Any] | None) -> Done:
        from distributed import Client, LocalCluster

        cluster = None
        try:
            if self.scheduler is not None:
                client = Client(self.scheduler, timeout=10)
            else:
                cluster = LocalCluster(n_workers=min(self.jobs, len(items)), threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=50)  # 50: logging.CRITICAL
                client = Client(cluster)
        except OSError as e:
            raise WorkersUnavailable(f"cannot reach the Dask scheduler {self.scheduler}: {e}") from e
        futures: list[Any] = []
        try:
            [remote] = client.scatter([shared], broadcast=True, hash=False)
            futures = [client.submit(_dask_call, job, remote, [(i, items[i]) for i in batch], pure=False)
                       for batch in plan]
            if meanwhile is not None:
                meanwhile()
            for f in futures:
                yield from f.result()
        finally:
            client.cancel(futures)
            client.close()
            if cluster is not None:
                cluster.close()


def _here(job: Job, shared: Sequence[Any], items: list[Any], meanwhile: Callable[[], Any] | None) -> Iterator[Any]:
    if meanwhile is not None:
        meanwhile()
    for item in items:
        yield job(shared, item)


def _plan(cost: Sequence[float], workers: int) -> list[list[int]]:
    """The items (by index) in batches, one batch a task: the costliest first, each
    batch at least 1/32 of a worker's share, so that the last tasks are short
    (a worker that finishes early has little to wait for) and there are not so
    many that handing them out costs more than they do."""
    order = sorted(range(len(cost)), key=lambda i: -cost[i])  # stable: equal costs in the items' order
    least = sum(cost) / (32 * workers)
    plan: list[list[int]] = []
    batch: list[int] = []
    total = 0.0
    for i in order:
        batch.append(i)
        total += cost[i]
        if total >= least:
            plan.append(batch)
            batch, total = [], 0.0
    if batch:
        plan.append(batch)
    return plan


@contextlib.contextmanager
def _ctrl_c_noted() -> Iterator[list[int]]:
    """Inside, Ctrl-C is only noted in the list yielded, for ``_deliver`` to raise
    where the caller can clean up: while workers fork or are stopped.  (Ignoring it
    there lost it, and the run went on to exit 0.)  Outside the main thread, where
    Python allows no handler, nothing changes."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    old = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, old)


def _deliver(caught: list[int]) -> None:
    """A Ctrl-C ``_ctrl_c_noted`` held back, raised now by the handler in place."""
    if caught:
        signal.raise_signal(signal.SIGINT)


def _in_order(shared: tuple[Any, ...], done: Done, n: int) -> Iterator[Any]:
    """The results of ``done`` (as they finish) in the order of the items: each
    unpickled as it arrives (while the workers go on), an exception raised when
    its item's turn comes."""
    ready: dict[int, tuple[bool, Any]] = {}
    try:
        for k in range(n):
            while k not in ready:
                i, ok, data = next(done)
                ready[i] = ok, _unpickled(data, shared)
            ok, value = ready.pop(k)
            if k == n - 1:  # the workers stop now, not when the caller's zip drops this generator:
                done.close()  # a Ctrl-C while they stop is raised here, not lost in a finaliser
            if not ok:
                raise value
            yield value
    finally:  # the workers stop now (not when the collector finds the generator): the last item, or an early stop
        done.close()


def _unpickled(data: bytes, shared: tuple[Any, ...]) -> Any:
    """A result from a worker, unpickled with the collector paused: unpickling makes
    thousands of objects and no garbage, and each collection it would set off walks
    them all (a full one every object in this process): it took 60-75% of the time
    of taking the corpus's scenarios in."""
    global _TAKING
    paused = gc.isenabled()
    gc.disable()
    _TAKING = shared
    try:
        return pickle.loads(data)
    finally:
        _TAKING = ()
        if paused:
            gc.enable()


def run_cost(sc: Any) -> float:
    """What running the scenario ``sc`` (cowdsl.scenario.Scenario) is expected to
    cost, to hand out the costliest first: its steps, each ten times dearer in a
    scenario with a `par` block (explored: on the corpus, a step of one costs 8-12
    times a step of a sequential one)."""
    return len(sc.steps) * (10 if sc.concurrent else 1)


STDIN = "-"  # the path of standard input (cowdsl.cli.stdin): loaded by the process that reads it


def _size(f: Path) -> int:
    """What loading ``f`` is expected to cost: its size (parsing and checking are linear in it)."""
    try:
        return f.stat().st_size
    except OSError:
        return 0


def _load_job(_: Sequence[Any], item: tuple[Path, Limits | None]) -> tuple[list[Any] | None, list[Problem]]:
    """One file loaded in a worker: its scenarios (or None) and its problems."""
    path, limits = item
    batch = Batch(limits=limits)
    return batch.load_file(path), batch.problems


def _run_job(scenarios: Sequence[Any], item: tuple[Any, ...]) -> tuple[Any | None, list[Problem]]:
    i, spec, kw, limits, progress = item
    batch = Batch(limits=limits)
    return batch.run(scenarios[i], spec, progress=progress, **kw), batch.problems


# In a worker: the shared objects, where each of their parts is (id -> key), and how
# objects are pickled: the shared ones' types by reference (see ``_by_reference``).
# An exploration's worlds may be a dict's keys (in the order found): they go as the dict.
_BASE_TABLE: dict[type, Callable[[Any], Any]] = {**copyreg.dispatch_table,
                                                 type({}.keys()): lambda keys: (_keys, (dict.fromkeys(keys),))}
_SHARED: tuple[Any, ...] = ()
_KNOWN: dict[int, tuple[Any, ...]] = {}
_TABLE: dict[type, Callable[[Any], Any]] = _BASE_TABLE
# In the caller, while a result is unpickled: its own shared objects
_TAKING: tuple[Any, ...] = ()


def _parts(shared: Sequence[Any]) -> dict[int, tuple[Any, ...]]:
    """Each shared object, and each of its steps and assertions, by id: the key the
    caller finds its own object with."""
    known: dict[int, tuple[Any, ...]] = {}
    for i, obj in enumerate(shared):
        known[id(obj)] = (i,)
        for part in ("steps", "assertions"):
            for k, x in enumerate(getattr(obj, part, ())):
                known[id(x)] = (i, part, k)
    return known


def _share(shared: tuple[Any, ...]) -> None:
    """This worker's shared objects: pickled by reference from now on.  Only the
    types of the shared objects and their parts (a scenario, a step, an assertion,
    a spec) go through ``_by_reference``, so every other object is pickled without
    a call into Python (a persistent_id is one call per object: it took half the
    time of pickling a row of the era matrix).  A shared object of a built-in type
    (a tuple, a dict) would go by value: none is shared."""
    global _SHARED, _KNOWN, _TABLE
    _SHARED, _KNOWN = shared, _parts(shared)
    parts = [shared[key[0]] if len(key) == 1 else getattr(shared[key[0]], key[1])[key[2]] for key in _KNOWN.values()]
    _TABLE = {**_BASE_TABLE, **{type(x): _by_reference for x in parts if type(x).__module__ != "builtins"}}


def _setup(shared: tuple[Any, ...]) -> None:
    from cowdsl.explore import exploration  # lazy, like cowdsl.run

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool
    exploration.OLDEST_AFTER_SEARCH = False  # the parent's objects are frozen here, and stay so
    _share(shared)


def _by_reference(obj: Any) -> Any:
    """A shared object (or one of its parts) as its key, which the caller turns into
    its own object; any other object of that type as pickle would save it."""
    key = _KNOWN.get(id(obj))
    if key is None:
        return obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    return _shared_part, key


def _shared_part(i: int, part: str | None = None, k: int = 0) -> Any:
    """In the caller: its own shared object ``i`` (or the ``k``th of its ``part``)."""
    obj = _TAKING[i]
    return obj if part is None else getattr(obj, part)[k]


def _keys(d: dict[Any, Any]) -> Any:
    return d.keys()


def _portable(e: BaseException, trace: str) -> BaseException:
    """``e`` as it can cross to the parent: with its traceback as text, or (when it
    does not pickle) a RuntimeError that says what it was."""
    try:
        setattr(e, REMOTE_TRACEBACK, trace)
        pickle.dumps(e)
    except Exception:
        e = RuntimeError(f"{type(e).__name__}: {e}")
        setattr(e, REMOTE_TRACEBACK, trace)
    return e


def _dumps(obj: Any) -> bytes:
    f = io.BytesIO()
    pickler = pickle.Pickler(f, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _TABLE
    pickler.dump(obj)
    return f.getvalue()


def _call_batch(task: tuple[Job, list[tuple[int, Any]]]) -> list[tuple[int, bool, bytes]]:
    """A batch of jobs in a worker, each result with its item's index."""
    job, batch = task
    return [(i, *_call(job, item)) for i, item in batch]


def _call(job: Job, item: Any) -> tuple[bool, bytes]:
    """One job in a worker: (True, the result) or (False, the exception), pickled
    with the shared objects by reference."""
    try:
        result = job(_SHARED, item)
    except Exception as e:
        return False, _dumps(_portable(e, "".join(traceback.format_exception(e)).rstrip()))
    if isinstance(result, BaseException):  # a job that hands back a failure as its result
        result = _portable(result, "".join(traceback.format_exception(result)).rstrip())
    return True, _dumps(result)


def _dask_call(job: Job, shared: tuple[Any, ...], batch: list[tuple[int, Any]]) -> list[tuple[int, bool, bytes]]:
    if _SHARED is not shared:  # the first job of this worker with these shared objects
        _share(shared)
    return _call_batch((job, batch))
