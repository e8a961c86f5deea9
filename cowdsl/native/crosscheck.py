"""Cross-check the model against the kernel: every scenario on `anon-exclusive` and on `native`.

For each assertion: the model's answer, the kernel's, and agree / DISAGREE /
skip (with the reason: a step or fact the native backend cannot do or see, or
one the model cannot decide).  A disagreement is printed with the assertion,
the values each side looked at, and the model's trace.  With ``repeat=N`` the
native side runs N times and each assertion gets a histogram of its outcomes,
as litmus7 prints one.

Concurrent scenarios (`par` blocks) are listed as skipped: the native backend
runs one real execution of sequential steps.

    python -m cowdsl.native.crosscheck [DIR|FILE ...] [--repeat N]

Exit status: 1 on any disagreement, 2 when a file does not load or a run
crashes (and nothing disagreed), 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections import Counter

MODEL = "anon-exclusive"


def _word(h) -> str:
    return "skip" if h is None else ("true" if h else "false")


def _values(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "(none)"


class Row:
    def __init__(self, sc, assertion, model_check, native_checks):
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


def crosscheck(paths, repeat: int = 1, out=None, timeout: float | None = None, model: str = MODEL) -> int:
    """Run every scenario under ``paths`` on the model and on this kernel; print the comparison."""
    spec = model
    from cowdsl.errors import CowError
    from cowdsl.load import find, load
    from cowdsl.native import DEFAULT_TIMEOUT, probe, run_native
    from cowdsl.report.text import trace
    from cowdsl.run import run

    out = out or sys.stdout
    say = lambda s="": out.write(s + "\n")  # noqa: E731
    host = probe()
    say(f"cross-check: {spec} (model) against native ({host.describe()})"
        + (f", native runs {repeat} times" if repeat > 1 else ""))
    errors: list[str] = []
    rows: list[Row] = []
    scenario_skips: list[tuple[str, str]] = []
    results = {}
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
            model = run(sc, spec)
            natives = [run_native(sc, timeout=timeout or DEFAULT_TIMEOUT) for _ in range(max(1, repeat))]
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a crash in a backend: report it, go on
            errors.append(f"{f}: internal error: {type(e).__name__}: {e}")
            traceback.print_exc(file=sys.stderr)
            continue
        results[str(f)] = (model, natives)
        if all(n.verdict == "skip" for n in natives) and all(
                c.values.get("unsupported", "").startswith(("unsupported on", "exceeds", "native run aborted"))
                for n in natives for c in n.checks):
            scenario_skips.append((str(f), natives[0].checks[0].values["unsupported"] if natives[0].checks else "?"))
        for i, a in enumerate(sc.assertions):
            rows.append(Row(sc, a, model.checks[i], [n.checks[i] for n in natives]))

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
        model, natives = results[r.sc.filename]
        say()
        say(f"DISAGREEMENT: {r.sc.filename}:{r.assertion.span.line}: assert {r.assertion.text}")
        say(f"  model ({spec}): {_word(r.model.holds)}; values: {_values(r.model.values)}")
        for k, n in enumerate(r.natives):
            if k == 0 or n.values != r.natives[0].values:
                say(f"  native{'' if len(r.natives) == 1 else f' run {k + 1}'}: {_word(n.holds)}; values: {_values(n.values)}")
        say("  " + trace(model).replace("\n", "\n  "))
        say("  " + trace(natives[0]).replace("\n", "\n  "))

    skipped = [r for r in rows if r.status == "skip"]
    if scenario_skips or skipped:
        say()
        say("skipped:")
        seen = set()
        for f, why in scenario_skips:
            say(f"  {f}: whole scenario: {why}")
            seen.add(f)
        for r in skipped:
            if r.sc.filename not in seen:
                say(f"  {r.sc.filename}:{r.assertion.span.line}: assert {r.assertion.text}: {r.reason}")
    for e in errors:
        say(f"error: {e}")
    n_sc = loaded
    agree = sum(r.status == "agree" for r in rows)
    say()
    say(f"{n_sc} scenario{'s' if n_sc != 1 else ''} ({n_sc - len(scenario_skips)} run natively, "
        f"{len(scenario_skips)} skipped whole), {len(rows)} assertions: {agree} agree, {len(bad)} disagree, "
        f"{len(skipped)} skipped" + (f", {len(errors)} error(s)" if errors else ""))
    if bad:
        return 1
    return 2 if errors else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cowdsl.native.crosscheck",
                                description="Cross-check the anon-exclusive model against this machine's kernel.")
    p.add_argument("paths", nargs="*", default=["scenarios"], metavar="DIR|FILE")
    p.add_argument("--repeat", "-r", type=int, default=1, help="run each scenario natively N times (histograms)")
    p.add_argument("--model", default=MODEL, help=f"the model backend to compare with (default {MODEL})")
    args = p.parse_args(argv)
    try:
        return crosscheck(args.paths, args.repeat, model=args.model)
    except KeyboardInterrupt:
        print("crosscheck: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
