"""Cross-check a model against the kernel: every scenario on a model (`anon-exclusive` by
default) and on `native`.

For each assertion: the model's answer, the kernel's, and agree / DISAGREE /
skip (with the reason: a step or fact the native backend cannot do or see, or
one the model cannot decide).  A disagreement is printed with the assertion,
the values each side looked at, and, given a ``trace`` renderer (the CLI passes
``cowdsl.report.text.trace``), both traces.  With ``repeat=N`` the native side
runs N times and each assertion gets a histogram of its outcomes, as litmus7
prints one.

Concurrent scenarios (`par` blocks) are listed as skipped: the native backend
runs one real execution of sequential steps.

    cowdsl crosscheck [DIR|FILE ...] [--repeat N] [--model SPEC]

Exit status: 1 on any disagreement, 2 on a usage error (an unknown model:
nothing runs), or when a file does not load or a run crashes (and nothing
disagreed), 0 otherwise.

This module sits above both runners (``cowdsl.run`` and ``cowdsl.native``) and
below the reports, which is why the trace renderer is passed in.
"""

from __future__ import annotations

import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

from cowdsl.errors import CowError
from cowdsl.judge import Check, Result
from cowdsl.kernel.eras import NATIVE
from cowdsl.kernel.spec import check as spec_problem
from cowdsl.load import find, load
from cowdsl.native import DEFAULT_TIMEOUT, probe, run_native
from cowdsl.run import run

MODEL = "anon-exclusive"


def _word(h: bool | None) -> str:
    return "skip" if h is None else ("true" if h else "false")


def _values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "(none)"


class Row:
    """One assertion: the model's check, the native run(s)' checks, and the status."""

    def __init__(self, sc: Any, assertion: Any, model_check: Check, native_checks: Sequence[Check]):
        self.sc = sc
        self.assertion = assertion
        self.model = model_check
        self.natives = native_checks
        hist = Counter(_word(c.holds) for c in native_checks)
        self.hist = hist
        decided = {c.holds for c in native_checks if c.holds is not None}
        if model_check.holds is None:
            self.status = "skip"
            self.reason = "model: " + model_check.values.get("unsupported", "cannot decide")
        elif not decided:
            self.status = "skip"
            reasons = {c.values.get("unsupported", "native cannot decide") for c in native_checks}
            self.reason = "; ".join(sorted(reasons))
        elif decided == {model_check.holds}:
            self.status = "agree"
            self.reason = ""
        else:
            self.status = "DISAGREE"
            self.reason = ""

    def native_text(self) -> str:
        if len(self.natives) == 1:
            return _word(self.natives[0].holds)
        return " ".join(f"{k}:{self.hist[k]}" for k in ("true", "false", "skip") if self.hist[k])


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def model_problem(spec: str) -> str | None:
    """None when ``spec`` names a model backend; else a one-line message (with a
    did-you-mean when there is one)."""
    if spec == NATIVE:
        return "--model native: the model side must be a model backend, not this machine's kernel"
    e = spec_problem(spec)
    if e is None:
        return None
    return f"--model {spec}: " + e.message + (f"; {e.hint}" if e.hint else "") + " (see `cowdsl backends`)"


def crosscheck(paths: Iterable[str], repeat: int = 1, out: IO[str] | None = None, timeout: float | None = None,
               model: str = MODEL, trace: Callable[[Result], str] | None = None, err: IO[str] | None = None) -> int:
    """Run every scenario under ``paths`` on the model and on this kernel; print the comparison.

    An unknown ``model`` is a usage error: a one-line message on ``err``
    (stderr) and exit status 2, before anything is loaded or run.  ``trace``
    renders a result's trace for each disagreement (none shown without it).
    """
    paths = list(paths)
    spec = model
    problem = model_problem(spec)
    if problem is not None:
        (err or sys.stderr).write(f"cowdsl crosscheck: {problem}\n")
        return 2
    stream = out or sys.stdout

    def say(s: str = "") -> None:
        stream.write(s + "\n")

    host = probe()
    say(f"cross-check: {spec} (model) against native ({host.describe()})"
        + (f", native runs {repeat} times" if repeat > 1 else ""))
    errors: list[str] = []
    rows: list[Row] = []
    scenario_skips: list[tuple[str, str]] = []
    results: dict[str, tuple[Result, list[Result]]] = {}
    loaded = 0
    files = [f for f in find(paths) if not f.is_dir()]
    if not files:
        errors.append(f"no .cow files found in {', '.join(map(str, paths))}")
    for f in files:
        try:
            sc = load(f)
        except CowError as e:
            errors.append(f"{f}: does not load ({len(e.diagnostics)} error(s))")
            continue
        except OSError as e:
            errors.append(f"{f}: {e.strerror or e}")
            continue
        loaded += 1
        if getattr(sc, "concurrent", False):
            scenario_skips.append((str(f), "concurrent (`par` blocks): native runs sequential scenarios only"))
            continue
        try:
            on_model = run(sc, spec)
            natives = [run_native(sc, timeout=timeout or DEFAULT_TIMEOUT) for _ in range(max(1, repeat))]
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a crash in a backend: report it, go on
            errors.append(f"{f}: internal error: {type(e).__name__}: {e}")
            traceback.print_exc(file=sys.stderr)
            continue
        results[str(f)] = (on_model, natives)
        if all(n.verdict == "skip" for n in natives) and all(
                c.values.get("unsupported", "").startswith(("unsupported on", "exceeds", "native run aborted"))
                for n in natives for c in n.checks):
            scenario_skips.append((str(f), natives[0].checks[0].values["unsupported"] if natives[0].checks else "?"))
        for i, a in enumerate(sc.assertions):
            rows.append(Row(sc, a, on_model.checks[i], [n.checks[i] for n in natives]))

    if rows:
        table = [["scenario", "line", "assertion", "model", "native", "status"]]
        for r in rows:
            table.append([r.sc.filename, str(r.assertion.span.line), r.assertion.text, _word(r.model.holds),
                          r.native_text(), r.status + (f" ({r.reason})" if r.status == "skip" and len(r.reason) < 70
                                                       else "")])
        say()
        for line in _table(table):
            say(line)

    bad = [r for r in rows if r.status == "DISAGREE"]
    for r in bad:
        on_model, natives = results[r.sc.filename]
        say()
        say(f"DISAGREEMENT: {r.sc.filename}:{r.assertion.span.line}: assert {r.assertion.text}")
        say(f"  model ({spec}): {_word(r.model.holds)}; values: {_values(r.model.values)}")
        for k, n in enumerate(r.natives):
            if k == 0 or n.values != r.natives[0].values:
                say(f"  native{'' if len(r.natives) == 1 else f' run {k + 1}'}: {_word(n.holds)}; values: {_values(n.values)}")
        if trace is not None:
            say("  " + trace(on_model).replace("\n", "\n  "))
            say("  " + trace(natives[0]).replace("\n", "\n  "))

    skipped = [r for r in rows if r.status == "skip"]
    if scenario_skips or skipped:
        say()
        say("skipped:")
        seen = set()
        for name, why in scenario_skips:
            say(f"  {name}: whole scenario: {why}")
            seen.add(name)
        for r in skipped:
            if r.sc.filename not in seen:
                say(f"  {r.sc.filename}:{r.assertion.span.line}: assert {r.assertion.text}: {r.reason}")
    for message in errors:
        say(f"error: {message}")
    n_sc = loaded
    agree = sum(r.status == "agree" for r in rows)
    say()
    say(f"{n_sc} scenario{'s' if n_sc != 1 else ''} ({n_sc - len(scenario_skips)} run natively, "
        f"{len(scenario_skips)} skipped whole), {len(rows)} assertions: {agree} agree, {len(bad)} disagree, "
        f"{len(skipped)} skipped" + (f", {len(errors)} error(s)" if errors else ""))
    if bad:
        return 1
    return 2 if errors else 0
