"""`cowdsl run`: scenarios on one backend (text, JSON or JUnit), or on every era (`--backend all`)."""

from __future__ import annotations

import functools
import json
import sys

from cowdsl import matrix
from cowdsl.batch import Problem
from cowdsl.cli import EXIT_ERROR
from cowdsl.cli.commands.check import batch_for
from cowdsl.cli.output import colour, err, out, plural, shown
from cowdsl.cli.progress import Progress
from cowdsl.kernel.spec import SpecError, resolve
from cowdsl.limits import explain_partial
from cowdsl.report import dot, exitcode, jsonout, junit, text
from cowdsl.report import summary as summary_report


def spec_problem(e: SpecError) -> str:
    """A backend spec that does not resolve, in one line (the user's text escaped)."""
    return shown(e.message) + (f"; {shown(e.hint)}" if e.hint else "") + " (see `cowdsl backends`)"


def run(args) -> int:
    if args.backend == "all":
        return run_matrix(args)
    try:
        spec = resolve(args.backend)  # once: everything below gets the KernelSpec
    except SpecError as e:
        message = spec_problem(e)
        err(f"cowdsl: {message}")
        if args.format == "json":
            out(json.dumps(jsonout.error_document([], [(None, message)]), indent=2))
        elif args.format == "junit":
            out(_junit([], [Problem(None, message)]))
        return EXIT_ERROR
    batch = batch_for(args)
    schedule = [a.strip() for a in args.schedule.split(",") if a.strip()] if args.schedule else None
    results = []
    for sc in batch.load(args.paths):
        if schedule is not None and not sc.concurrent:
            err(f"cowdsl: {shown(sc.filename)}: --schedule replays an interleaving of a `par` block; "
                "this file has none")
            return EXIT_ERROR
        progress = functools.partial(Progress, mode=args.mode, max_states=args.max_states, timeout=args.timeout)
        r = batch.run(sc, spec, mode=args.mode, schedule=schedule, max_states=args.max_states,
                      timeout=args.timeout, progress=progress, all_states=args.all_states)
        if r is None:
            continue
        if r.partial:
            err(f"cowdsl: {shown(sc.filename)}: {explain_partial(sc, r.partial)}")
        results.append(r)
    problems = batch.problems
    if args.format == "json":
        doc = jsonout.document(
            results,
            [p.error for p in problems if p.error is not None],
            [(p.file, p.message) for p in problems if p.error is None],
        )
        out(json.dumps(doc, indent=2))
    elif args.format == "junit":
        out(_junit(results, problems))
    else:
        hl = colour(args, sys.stdout)
        shown_results = [r for r in results if not (args.quiet and r.ok and not (args.trace or args.state))]
        if len(results) > 1 and not args.quiet:  # a line per file, the blocks of those not as expected
            out(summary_report.directory_report(
                results, verbose=args.verbose, show_trace=args.trace, show_state=args.state, width=args.width,
                form=args.form, highlight=hl, shown=shown) + "\n")
        else:
            for r in shown_results:  # one blank line after each report, so the summary stands apart
                out(text.report(r, show_trace=args.trace, show_state=args.state, highlight=hl, width=args.width,
                                form=args.form, verbose=args.verbose) + "\n")
        for line in summary(results, problems, spec):
            out(line)
    if args.dot and not _write_dot(results, args):
        return EXIT_ERROR
    return exitcode.exit_code(results, errors=bool(problems))


def run_matrix(args) -> int:
    """`run --backend all`: every scenario on every era (and every variant its expect lines name)."""
    batch = batch_for(args)
    scenarios = batch.load(args.paths)
    problems = batch.problems
    try:
        mx = matrix.build(scenarios, max_states=args.max_states, timeout=args.timeout)
    except matrix.TooManyColumns as e:
        err(f"cowdsl: {e}")
        return EXIT_ERROR
    if args.format == "json":
        out(json.dumps(jsonout.matrix_document(mx, [p.error for p in problems if p.error is not None],
                                               [(p.file, p.message) for p in problems if p.error is None]),
                       indent=2))
    elif args.format == "junit":
        out(_junit(list(mx.results.values()), problems, matrix=True))
    else:
        out(matrix.text(mx, by_assertion=args.assertions))
    if args.dot and not _write_dot(list(mx.results.values()), args):
        return EXIT_ERROR
    return exitcode.matrix_exit_code(mx, errors=bool(problems))


def summary(results, problems: list[Problem], backend) -> list[str]:
    bad = [r for r in results if not r.ok]
    skipped = [r for r in results if r.verdict == "skip"]
    head = f"{plural(len(results), 'scenario')} on {backend}: {len(results) - len(bad) - len(skipped)} as expected"
    if bad:
        head += f", {len(bad)} not as expected"
    if skipped:
        head += f", {len(skipped)} skipped (nothing the backend could observe)"
    files_with_errors = [p for p in problems if p.file is not None]
    if files_with_errors:
        head += f", {plural(len(files_with_errors), 'file')} with errors"
    lines = [head]
    for r in bad:
        why = (f"expected {r.expected}" if r.expected
               else "the file has no expect line, so every assertion must hold")
        lines.append(f"  not as expected: {shown(r.scenario.filename)}: got {r.verdict}; {why}")
    for p in files_with_errors:
        lines.append(f"  error: {shown(p.file)}: {shown(p.message, 2000)}")
    return lines


def _junit(results, problems: list[Problem], matrix: bool = False) -> str:
    root = junit.document(
        results,
        [p.error for p in problems if p.error is not None],
        [(p.file, p.message) for p in problems if p.error is None],
        matrix=matrix,
    )
    return junit.to_string(root).rstrip("\n")


def _write_dot(results, args) -> bool:
    """--dot: write DOT (or SVG/PNG/PDF) of the final states and counterexamples; False on an error."""
    if not results:
        err("cowdsl: --dot: no scenario ran, nothing to draw")
        return False
    try:
        written = dot.write(results, args.dot, args.dot_format)
    except dot.DotError as e:
        err(f"cowdsl: --dot: {shown(e, 2000)}")
        return False
    except OSError as e:
        err(f"cowdsl: --dot {shown(args.dot)}: {shown(e.strerror or e)}")
        return False
    err(f"cowdsl: wrote {plural(len(written), 'graph')}: " + ", ".join(shown(w) for w in written[:4])
        + (", ..." if len(written) > 4 else ""))
    return True
