"""`cowdsl run`: scenarios on one backend (text, JSON or JUnit), or on every era (`--backend all`)."""

from __future__ import annotations

import functools
import json
import os
import sys

from cowdsl.batch import Problem, Workers, WorkersUnavailable
from cowdsl.cli import EXIT_ERROR
from cowdsl.cli.commands.check import batch_for
from cowdsl.cli.output import colour, err, out, plural, shown
from cowdsl.cli.progress import Progress
from cowdsl.kernel.spec import SpecError, resolve
from cowdsl.limits import MEMORY_ENV, explain_partial

# The model and the reports (cowdsl.matrix, cowdsl.report: they import the model) are
# imported by each function that uses them, and by ``while_loading`` while worker
# processes parse the files: then the workers that run the scenarios fork with them,
# and this process spends the time it would have spent importing before the files
# were even listed.


REPEAT_NATIVE_ONLY = ("--repeat goes with --backend native (a model explores every interleaving; "
                      "the kernel runs one per run)")


def while_loading() -> None:
    """What running and reporting need, imported while the workers load the files."""
    import cowdsl.matrix
    import cowdsl.report.exitcode
    import cowdsl.report.jsonout
    import cowdsl.report.junit
    import cowdsl.report.summary
    import cowdsl.report.text  # noqa: F401


def spec_problem(e: SpecError) -> str:
    """A backend spec that does not resolve, in one line (the user's text escaped)."""
    return shown(e.message) + (f"; {shown(e.hint)}" if e.hint else "") + " (see `cowdsl backends`)"


def workers_for(args) -> Workers:
    """-j N, --executor, --scheduler: who runs the jobs (cowdsl.batch.Workers); raises
    WorkersUnavailable when the executor cannot start."""
    return Workers(args.jobs, args.executor, args.scheduler)


def run(args) -> int:
    if args.max_memory is not None:  # read by every search's Bounds, here and in the workers started below
        os.environ[MEMORY_ENV] = str(args.max_memory)
    try:
        workers = workers_for(args)
    except WorkersUnavailable as e:
        err(f"cowdsl: {shown(e, 2000)}")
        return EXIT_ERROR
    if args.swarm is not None:
        return run_swarm(args, workers)
    if args.backend == "all":
        if args.repeat is not None:
            err(f"cowdsl: {REPEAT_NATIVE_ONLY}")
            return EXIT_ERROR
        return run_matrix(args, workers)
    try:
        spec = resolve(args.backend)  # once: everything below gets the KernelSpec
    except SpecError as e:
        from cowdsl.report import jsonout

        message = spec_problem(e)
        err(f"cowdsl: {message}")
        if args.format == "json":
            out(json.dumps(jsonout.error_document([], [(None, message)]), indent=2))
        elif args.format == "junit":
            out(_junit([], [Problem(None, message)]))
        return EXIT_ERROR
    if args.repeat is not None and not spec.native:
        err(f"cowdsl: {REPEAT_NATIVE_ONLY}")
        return EXIT_ERROR
    batch = batch_for(args)
    schedule = [a.strip() for a in args.schedule.split(",") if a.strip()] if args.schedule else None
    try:
        scenarios = batch.load(args.paths, workers, meanwhile=while_loading)  # each file parsed and checked by a worker
    except WorkersUnavailable as e:
        err(f"cowdsl: {shown(e, 2000)}")
        return EXIT_ERROR
    from cowdsl.report import exitcode, jsonout, text
    from cowdsl.report import summary as summary_report

    alone = next((sc for sc in scenarios if not sc.concurrent), None) if schedule is not None else None
    progress = functools.partial(Progress, mode=args.mode, max_states=args.max_states, timeout=args.timeout)
    results = []
    ran = scenarios[:scenarios.index(alone)] if alone is not None else scenarios
    try:
        if spec.native:
            ran_on = natively(batch, ran, spec, args)
        else:
            ran_on = batch.run_many(ran, spec, workers=workers, progress=progress, mode=args.mode,
                                    schedule=schedule, max_states=args.max_states, timeout=args.timeout,
                                    all_states=args.all_states)
        for sc, r in ran_on:
            if r is None:
                continue
            if r.partial:
                err(f"cowdsl: {shown(sc.filename)}: {explain_partial(sc, r.partial)}")
            results.append(r)
    except WorkersUnavailable as e:
        err(f"cowdsl: {shown(e, 2000)}")
        return EXIT_ERROR
    if alone is not None:
        err(f"cowdsl: {shown(alone.filename)}: --schedule replays an interleaving of a `par` block; "
            "this file has none")
        return EXIT_ERROR
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


def natively(batch, scenarios, spec, args):
    """(scenario, result or None) for each scenario run on this machine's kernel, one scenario
    after another in this process: a `par` block's actors race on the CPUs, which another
    scenario running at once (-j) would take from them.  --repeat, --seed and --timeout go to
    the native backend (cowdsl.native.native_runs)."""
    import cowdsl.run
    from cowdsl.explore.search import Bounds

    for sc in scenarios:
        yield sc, batch.call(sc.filename, f"running on {spec}", cowdsl.run.run, sc, spec,
                             bounds=Bounds(timeout=args.timeout), repeat=args.repeat, seed=args.seed)


def run_matrix(args, workers: Workers) -> int:
    """`run --backend all`: every scenario on every era (and every variant its expect lines name)."""
    batch = batch_for(args)
    try:
        scenarios = batch.load(args.paths, workers, meanwhile=while_loading)  # each file parsed and checked by a worker
    except WorkersUnavailable as e:
        err(f"cowdsl: {shown(e, 2000)}")
        return EXIT_ERROR
    from cowdsl import matrix
    from cowdsl.report import exitcode, jsonout

    try:
        mx = matrix.build(scenarios, max_states=args.max_states, timeout=args.timeout, workers=workers,
                          slim=not args.dot)  # --dot draws every cell's final state and trace
    except matrix.TooManyColumns as e:
        err(f"cowdsl: {e}")
        return EXIT_ERROR
    except WorkersUnavailable as e:
        err(f"cowdsl: {shown(e, 2000)}")
        return EXIT_ERROR
    problems = batch.problems
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
        lines.append(f"  not as expected: {shown(r.scenario.where)}: got {r.verdict}; {why}")
    for p in files_with_errors:
        lines.append(f"  error: {shown(p.file)}: {shown(p.message, 2000)}")
    return lines


def _junit(results, problems: list[Problem], matrix: bool = False) -> str:
    from cowdsl.report import junit

    root = junit.document(
        results,
        [p.error for p in problems if p.error is not None],
        [(p.file, p.message) for p in problems if p.error is None],
        matrix=matrix,
    )
    return junit.to_string(root).rstrip("\n")


def _write_dot(results, args) -> bool:
    """--dot: write DOT (or SVG/PNG/PDF) of the final states and counterexamples; False on an error."""
    from cowdsl.report import dot

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


def run_swarm(args, workers: Workers) -> int:
    """`run --swarm N FILE`: randomised depth-first searches of one file on one backend (cowdsl.swarm)."""
    from cowdsl import swarm  # lazy: only a swarm needs it
    from cowdsl.report import exitcode

    for bad, why in ((args.backend == "all", "runs on one backend, not all"),
                     (args.format != "text", "prints text only"),
                     (args.schedule is not None, "and --schedule do not go together"),
                     (args.repeat is not None, "searches a model: --repeat goes with --backend native"),
                     (args.mode is not None, "has a search of its own: --mode does not apply"),
                     (bool(args.dot), "draws no graph: --dot does not apply")):
        if bad:
            err(f"cowdsl: --swarm {why}")
            return EXIT_ERROR
    try:
        spec = resolve(args.backend)
    except SpecError as e:
        err(f"cowdsl: {spec_problem(e)}")
        return EXIT_ERROR
    if spec.native:
        err("cowdsl: --swarm searches a model; `native` runs the kernel once (choose a model backend)")
        return EXIT_ERROR
    batch = batch_for(args)
    scenarios = batch.load(args.paths)
    if batch.problems:
        return EXIT_ERROR
    if len(scenarios) != 1:
        err(f"cowdsl: --swarm searches one scenario; {plural(len(scenarios), 'scenario')} loaded from "
            + ", ".join(shown(p) for p in args.paths))
        return EXIT_ERROR
    [sc] = scenarios
    try:
        sw = batch.call(sc.filename, f"swarming on {spec}", swarm.run, sc, spec, args.swarm, seed=args.seed,
                        workers=workers, max_states=args.max_states, timeout=args.timeout)
    except WorkersUnavailable as e:
        err(f"cowdsl: {shown(e, 2000)}")
        return EXIT_ERROR
    if sw is None:
        return EXIT_ERROR
    out(swarm_text(sw, width=args.width, form=args.form, verbose=args.verbose))
    return exitcode.exit_code([sw.result])


def swarm_text(sw, *, width: int = 80, form: str | None = None, verbose: bool = False) -> str:
    """A swarm's report: a line per search, the states covered, the counterexamples
    (as `cowdsl run` shows them), and the verdict, never a proof."""
    from cowdsl.report import explored  # lazy, like cowdsl.swarm
    from cowdsl.report.common import herd_name

    r = sw.result
    first, last = sw.walks[0].seed, sw.walks[-1].seed
    lines = explored.wrap(f"Swarm {herd_name(r.scenario)} on {r.backend}: {plural(len(sw.walks), 'search', 'searches')} "
                          f"(depth-first, randomised by seeds {first}..{last}), each stopping at its first violation",
                          width, "", "  ")
    for w in sw.walks:
        if w.choices is not None:
            end = ("violation after " + plural(len(w.choices), "micro-step") + " (" +
                   ", ".join(f"line {r.scenario.assertions[k].span.line}" for k in w.broken) + ")")
        elif w.partial:
            end = f"no violation; stopped at {w.partial}"
        else:
            end = "no violation; its whole space explored"
        lines.append(f"  seed {w.seed}: {w.states:,} states, {w.transitions:,} micro-steps: {end}")
    covered = (f"{sw.covered:,} distinct states across the searches" if sw.covered is not None
               else f"at most {r.exploration.states:,} distinct states across the searches (their hashes differ)")
    lines.append(f"Coverage: {covered}")
    lines += explored.executions(r, width=width, form=form, verbose=verbose)
    if r.expected:
        lines.append(f"Expect {r.expected} on {r.backend}: got {r.verdict}, "
                     + ("as expected" if r.ok else "MISMATCH" if r.verdict == "fail" else "undecided"))
    n = len(sw.violations)
    lines.append("")
    if n:
        lines.append(f"swarm: {plural(n, 'violation')} found in {r.exploration.states:,} states "
                     f"({plural(len([c for c in r.checks if c.holds is False]), 'assertion')} broken)")
    else:
        lines.append(f"swarm: no violation found in {r.exploration.states:,} states; not a proof")
    return "\n".join(lines)
