"""Scenario files in, results out: the loop behind `cowdsl run`, `cowdsl check`,
`cowdsl diff`, `cowdsl crosscheck` and the pytest plugin.

A ``Batch`` finds the .cow files under some paths, loads each one, and runs
scenarios on a resolved ``KernelSpec`` within bounds.  Whatever goes wrong with
one file (it does not exist, does not parse, is not a regular file, or the
parser, checker or a backend crashes on it) becomes a ``Problem`` and the loop
goes on with the next file.  Each problem is handed to ``report`` as it
happens (the CLI prints it on stderr) and kept in ``Batch.problems``.

    batch = Batch(limits=limits, report=show)
    for sc in batch.load(paths):
        result = batch.run(sc, spec, max_states=..., timeout=...)  # None: see batch.problems

Nothing here prints, parses a backend spec, or imports the model until a
scenario runs.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
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
        """The internal error's traceback; empty for other problems."""
        if self.exception is None:
            return ""
        return "".join(traceback.format_exception(self.exception)).rstrip()

    def __repr__(self) -> str:
        return f"Problem({self.file!r}, {self.message!r})"


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

    def load(self, paths: Iterable[str | Path]) -> list[Any]:
        """Every scenario that loads from the .cow files under ``paths``, in order."""
        return [sc for sc in map(self.load_file, self.files(paths)) if sc is not None]

    def load_file(self, path: str | Path) -> Any | None:
        """One file's checked scenario (a cowdsl.scenario.Scenario), or None and a problem."""
        f = Path(path)
        if not f.exists():
            self._add(Problem(str(f), "no such file or directory"))
            return None
        try:
            # looked up at each call (not imported by name), so a test may replace it
            return cowdsl.load.load(f) if self.limits is None else cowdsl.load.load(f, self.limits)
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
