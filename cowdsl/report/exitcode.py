"""The exit status of `cowdsl run`, from its results, the same for one run and
for the era matrix (a cell exits as it would alone):

- 0 (``OK``): everything as expected;
- 1 (``NOT_AS_EXPECTED``): a verdict differs from its expect line, or, in a
  file without expect lines, an assertion fails (``Result.ok``);
- 3 (``UNDECIDED``): a bound (--max-states, --timeout) was hit before a verdict
  could be established (``verdict == "unknown"``);
- 2 (``ERROR``): a usage, load or run error, when the caller says there was one.

1 takes precedence over 3 (a run that contradicts an expectation is worth
knowing about even when another one is undecided), and 2 over both.  A skip (no
assertion the backend could observe) is 0.
"""

from __future__ import annotations

from collections.abc import Iterable

from cowdsl.judge import Result

OK, NOT_AS_EXPECTED, ERROR, UNDECIDED = 0, 1, 2, 3


def cell(r: Result) -> int:
    """One result's exit status: 0, 1 or 3."""
    if not r.judged:
        return OK  # shown, not judged: the file names no expectation for this backend
    if r.verdict == "unknown":
        return UNDECIDED
    return OK if r.ok else NOT_AS_EXPECTED


def exit_code(results: Iterable[Result], errors: bool = False) -> int:
    """The exit status of a run of all these results: 2 with ``errors`` (problems
    loading or running), else 1 if any is not as expected, else 3 if any is
    undecided, else 0."""
    if errors:
        return ERROR
    codes = {cell(r) for r in results}
    if NOT_AS_EXPECTED in codes:
        return NOT_AS_EXPECTED
    if UNDECIDED in codes:
        return UNDECIDED
    return OK


def matrix_exit_code(mx, errors: bool = False) -> int:
    """The exit status of `run --backend all`: every cell as it would exit alone."""
    return exit_code(mx.results.values(), errors)


def describe(code: int) -> str:
    """The exit status in words, for --help and docs."""
    return {OK: "all as expected", NOT_AS_EXPECTED: "a verdict not as expected", ERROR: "an error",
            UNDECIDED: "undecided: a bound was hit before a verdict"}.get(code, f"exit {code}")
