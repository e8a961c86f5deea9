"""Many files at once (`cowdsl run DIR`): one line per file, then the full
herd7 block of each run that is not as expected.

    scenarios/pin-fork/s5-longterm-pin-fork-parent-writes.cow  pass   0.004s
    scenarios/races/s12-gup-fast-pin-vs-fork.cow               fail!  0.065s
    ...

A verdict marked ``!`` is not as expected (its expect line says otherwise, or
without one an assertion fails); ``?`` is undecided (a bound was hit).  The
blocks follow, each once, its long title printed once; ``verbose`` (or asking
for traces or states) prints every block.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cowdsl.judge import Result
from cowdsl.report import exitcode, text

_MARK = {exitcode.OK: "", exitcode.NOT_AS_EXPECTED: "!", exitcode.UNDECIDED: "?"}


def verdict_word(r: Result) -> str:
    """The verdict, marked `!` when not as expected and `?` when undecided."""
    return r.verdict + _MARK.get(exitcode.cell(r), "")


def file_lines(results: Sequence[Result], width: int = 80, shown=str) -> list[str]:
    """One line per run: its file, its verdict and its time, in columns.  With runs
    on several backends the backend follows the file.  ``shown`` makes a file name
    safe to print (the CLI's escaping)."""
    several = len({r.backend for r in results}) > 1
    names = [shown(r.scenario.where) + (f" on {r.backend}" if several else "") for r in results]
    words = [verdict_word(r) for r in results]
    v_w = max((len(w) for w in words), default=4)
    room = max(20, width - v_w - 10)  # what the name column may take beside `  VERDICT  0.123s`
    n_w = min(max((len(n) for n in names), default=0), room)
    out = []
    for r, name, word in zip(results, names, words):
        line = f"{name:<{n_w}}  {word:<{v_w}}  {r.seconds:.3f}s"
        if len(name) > n_w:  # too long for its column: on a line of its own
            out.append(name)
            line = f"{'':<{n_w}}  {word:<{v_w}}  {r.seconds:.3f}s"
        out.append(line.rstrip())
    return out


def shows_block(r: Result, verbose: bool = False) -> bool:
    """Whether a run's full block is printed: not as expected or undecided, or verbose."""
    return verbose or exitcode.cell(r) != exitcode.OK


def directory_report(results: Iterable[Result], *, verbose: bool = False, show_trace: bool = False,
                     show_state: bool = False, width: int = 80, form: str | None = None, highlight=None,
                     shown=str) -> str:
    """The report of a run of many files: the file lines, then the block of each
    run not as expected (every run's with ``verbose``, ``show_trace`` or
    ``show_state``), separated by blank lines.  The one-line totals after it are
    the caller's (the CLI's summary)."""
    results = list(results)
    out = file_lines(results, width, shown)
    every = verbose or show_trace or show_state
    for r in results:
        if not shows_block(r, every):
            continue
        out.append("")
        out.append(f"== {shown(r.scenario.where)}")
        out.append(text.report(r, show_trace=show_trace, show_state=show_state, highlight=highlight, width=width,
                               form=form, verbose=verbose).rstrip("\n"))
    return "\n".join(out) + "\n"
