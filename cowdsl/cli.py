"""cowdsl run | check | diff | ops | backends.

Imports are lazy so `cowdsl --version` starts fast: nothing here pulls in lark,
attrs or the semantics until a command needs them.

Exit status: 0 when every assertion and expectation holds, 1 when one does
not, 2 on a usage error, a parse or check error, a missing file, or a scenario
that could not be run.  Verdicts and listings go to stdout; diagnostics and
other errors go to stderr.
"""

from __future__ import annotations

import argparse
import sys

from cowdsl import __version__

EXIT_OK, EXIT_NOT_AS_EXPECTED, EXIT_ERROR = 0, 1, 2


def _print(text: str, out=None) -> None:
    (out or sys.stdout).write(text if text.endswith("\n") else text + "\n")


def _err(text: str) -> None:
    _print(text, sys.stderr)


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


class Problem:
    """A file that produced no scenario, or a scenario that could not run."""

    def __init__(self, file: str | None, message: str, error=None):
        self.file = file
        self.message = message
        self.error = error  # the CowError, when there is one


def _colour(args, stream):
    """A function that colours .cow source for ``stream``, or None for plain text.

    ``--color always`` or ``never`` decides; ``auto`` (the default) colours only a
    terminal, and not when NO_COLOR is set (https://no-color.org) or TERM=dumb.
    """
    import os

    mode = getattr(args, "color", None) or "auto"
    if mode == "never":
        return None
    if mode == "auto":
        if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
            return None
        try:
            if not stream.isatty():
                return None
        except (AttributeError, ValueError):
            return None
    try:
        from cowdsl.lexer import highlighter

        return highlighter()
    except Exception:  # no Pygments, or a broken lexer: plain text, never a crash
        return None


def _load_all(paths, problems: list[Problem], highlight=None, limits=None):
    """Load every .cow file under ``paths``; report each failure on stderr and go on.

    ``highlight`` colours the source line shown in each diagnostic; ``limits``
    (cowdsl.limits.Limits) bounds what a scenario may ask for.
    """
    from cowdsl.errors import CowError
    from cowdsl.load import find, load

    scenarios = []
    files, seen = [], set()
    for f in find(paths):
        key = str(f.resolve()) if f.exists() else str(f)
        if key not in seen:  # `run scenarios/ scenarios/x.cow` runs x.cow once
            seen.add(key)
            files.append(f)
    for f in files:
        if f.is_dir():
            continue  # find() expanded it
        if not f.exists():
            _err(f"cowdsl: {f}: no such file or directory")
            problems.append(Problem(str(f), "no such file or directory"))
            continue
        try:
            scenarios.append(load(f) if limits is None else load(f, limits))
        except CowError as e:
            problems.append(Problem(str(f), _plural(len(e.diagnostics), "error"), e))
            _err(e.render(highlight))
        except OSError as e:
            problems.append(Problem(str(f), e.strerror or str(e)))
            _err(f"cowdsl: {f}: {e.strerror or e}")
        except Exception as e:  # a bug in the parser or checker: show it, keep going
            _internal_error(str(f), "loading", e, problems)
    if not files:
        where = ", ".join(map(str, paths))
        _err(f"cowdsl: no .cow files found in {where}")
        problems.append(Problem(None, f"no .cow files found in {where}"))
    return scenarios


def _run_one(sc, backend, problems: list[Problem], args=None):
    """Run a scenario; a crash in the model is reported, not fatal to the other files."""
    from cowdsl.run import run

    try:
        if args is None or not sc.concurrent and args.mode is None and args.schedule is None:
            return run(sc, backend)
        from cowdsl.explore.search import Bounds

        schedule = [a.strip() for a in args.schedule.split(",") if a.strip()] if args.schedule else None
        with _progress(sc.name) as progress:
            bounds = Bounds(max_states=args.max_states, timeout=args.timeout, progress=progress)
            r = run(sc, backend, mode=args.mode, bounds=bounds, schedule=schedule)
        if r.partial:
            from cowdsl.limits import explain_partial

            _err(f"cowdsl: {sc.filename}: {explain_partial(sc, r.partial)}")
        return r
    except ValueError as e:  # an impossible --schedule
        _err(f"cowdsl: {sc.filename}: {e}")
        problems.append(Problem(sc.filename, str(e)))
        return None
    except Exception as e:  # a bug in a backend: show it, keep going
        _internal_error(sc.filename, f"running on {backend}", e, problems)
        return None


class _progress:
    """A progress line on stderr for explorations that take over a second (rich)."""

    def __init__(self, name: str):
        self.name, self.shown, self.live = name, False, None

    def __enter__(self):
        import time

        self.t0 = time.monotonic()
        return self

    def __call__(self, states: int, executions: int) -> None:
        import time

        if time.monotonic() - self.t0 < 1.0 or not sys.stderr.isatty():
            return
        if self.live is None:
            try:
                from rich.console import Console
                from rich.status import Status

                self.live = Status("", console=Console(stderr=True))
                self.live.start()
            except ImportError:
                self.live = False
        text = f"exploring {self.name}: {states} states, {executions} executions"
        if self.live:
            self.live.update(text)
        else:
            sys.stderr.write("\r" + text)
            self.shown = True

    def __exit__(self, *exc):
        if self.live:
            self.live.stop()
        elif self.shown:
            sys.stderr.write("\n")
        return False


def _internal_error(file: str, doing: str, e: Exception, problems: list[Problem]) -> None:
    import traceback

    _err(f"cowdsl: {file}: internal error while {doing}: {type(e).__name__}: {e}")
    _err("".join(traceback.format_exception(e)).rstrip())
    _err("  (this is a bug in cowdsl or in the backend; please report it with the scenario)")
    problems.append(Problem(file, f"internal error: {type(e).__name__}: {e}"))


def _summary(results, problems: list[Problem], backend: str) -> list[str]:
    bad = [r for r in results if not r.ok]
    skipped = [r for r in results if r.verdict == "skip"]
    head = f"{_plural(len(results), 'scenario')} on {backend}: {len(results) - len(bad) - len(skipped)} as expected"
    if bad:
        head += f", {len(bad)} not as expected"
    if skipped:
        head += f", {len(skipped)} skipped (nothing the backend could observe)"
    files_with_errors = [p for p in problems if p.file is not None]
    if files_with_errors:
        head += f", {_plural(len(files_with_errors), 'file')} with errors"
    lines = [head]
    for r in bad:
        why = (f"expected {r.expected}" if r.expected
               else "no expect line for this backend, so every assertion must hold")
        lines.append(f"  not as expected: {r.scenario.filename}: got {r.verdict}; {why}")
    for p in files_with_errors:
        lines.append(f"  error: {p.file}: {p.message}")
    return lines


def _backend_problem(spec: str) -> str | None:
    """None when ``spec`` names a backend (a name, a kernel version, NAME:option=choice...)."""
    from cowdsl.kernel.spec import check

    e = check(spec)
    if e is None:
        return None
    return e.message + (f"; {e.hint}" if e.hint else "") + " (see `cowdsl backends`)"


def cmd_matrix(args) -> int:
    """`run --backend all`: every scenario on every era (and every variant its expect lines name)."""
    import json

    from cowdsl import matrix

    problems: list[Problem] = []
    scenarios = _load_all(args.paths, problems, _colour(args, sys.stderr), _limits(args))
    mx = matrix.build(scenarios)
    if args.format == "json":
        _print(json.dumps({"matrix": matrix.as_json(mx), "errors": [p.message for p in problems]}, indent=2))
    elif args.format == "junit":
        _print(_junit(list(mx.results.values()), problems, matrix=True))
    else:
        _print(matrix.text(mx, by_assertion=args.assertions))
    if args.dot and not _write_dot(list(mx.results.values()), args):
        return EXIT_ERROR
    if problems:
        return EXIT_ERROR
    return EXIT_NOT_AS_EXPECTED if mx.mismatches() else EXIT_OK


def cmd_run(args) -> int:
    from cowdsl.kernel.spec import resolve

    if args.backend == "all":
        return cmd_matrix(args)
    message = _backend_problem(args.backend)
    if message is not None:
        _err(f"cowdsl: {message}")
        if args.format == "json":
            import json

            from cowdsl.report import jsonout

            _print(json.dumps(jsonout.document([], [], [(None, message)]), indent=2))
        elif args.format == "junit":
            _print(_junit([], [Problem(None, message)]))
        return EXIT_ERROR
    backend = resolve(args.backend)
    problems: list[Problem] = []
    scenarios = _load_all(args.paths, problems, _colour(args, sys.stderr), _limits(args))
    results = [r for r in (_run_one(sc, backend, problems, args) for sc in scenarios) if r is not None]
    if args.format == "json":
        import json

        from cowdsl.report import jsonout

        doc = jsonout.document(
            results,
            [p.error for p in problems if p.error is not None],
            [(p.file, p.message) for p in problems if p.error is None],
        )
        _print(json.dumps(doc, indent=2))
    elif args.format == "junit":
        _print(_junit(results, problems))
    else:
        from cowdsl.report import text

        hl = _colour(args, sys.stdout)
        shown = [r for r in results if not (args.quiet and r.ok and not (args.trace or args.state))]
        for r in shown:  # one blank line after each report, so the summary stands apart
            _print(text.report(r, show_trace=args.trace, show_state=args.state, highlight=hl) + "\n")
        for line in _summary(results, problems, backend):
            _print(line)
    if args.dot and not _write_dot(results, args):
        return EXIT_ERROR
    if problems:
        return EXIT_ERROR
    return EXIT_OK if all(r.ok for r in results) else EXIT_NOT_AS_EXPECTED


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
        _err("cowdsl: --dot: no scenario ran, nothing to draw")
        return False
    try:
        written = dot.write(results, args.dot, args.dot_format)
    except dot.DotError as e:
        _err(f"cowdsl: --dot: {e}")
        return False
    except OSError as e:
        _err(f"cowdsl: --dot {args.dot}: {e.strerror or e}")
        return False
    _err(f"cowdsl: wrote {_plural(len(written), 'graph')}: " + ", ".join(map(str, written[:4]))
         + (", ..." if len(written) > 4 else ""))
    return True


def cmd_diff(args) -> int:
    """Run two backends on each scenario; show where their traces first diverge."""
    from cowdsl import diff
    from cowdsl.kernel.spec import resolve

    for spec in (args.left, args.right):
        message = _backend_problem(spec)
        if message is not None:
            _err(f"cowdsl: {message}")
            return EXIT_ERROR
    problems: list[Problem] = []
    scenarios = _load_all(args.paths, problems, _colour(args, sys.stderr))
    differ = False
    left, right = resolve(args.left), resolve(args.right)
    for sc in scenarios:
        a, b, d = diff.diff(sc, left, right)
        differ |= a.verdict != b.verdict or d.step != 0
        _print(diff.text(a, b, d) + "\n")
    if problems:
        return EXIT_ERROR
    return EXIT_NOT_AS_EXPECTED if differ else EXIT_OK


def cmd_crosscheck(args) -> int:
    """The model against this machine's kernel (cowdsl.crosscheck)."""
    from cowdsl.crosscheck import crosscheck
    from cowdsl.report.text import trace

    return crosscheck(args.paths, args.repeat, model=args.model, trace=trace)


def _limits(args):
    """The resource limits (cowdsl.limits) with the ones set by --max-processes and the rest;
    None when no flag was given (the defaults)."""
    from cowdsl.limits import STATIC, from_args

    return from_args(args) if any(getattr(args, f, None) is not None for f in STATIC) else None


def cmd_check(args) -> int:
    problems: list[Problem] = []
    scenarios = _load_all(args.paths, problems, _colour(args, sys.stderr), _limits(args))
    for sc in scenarios:
        _print(
            f"{sc.filename}: ok ({_plural(len(sc.steps), 'step')}, {_plural(len(sc.assertions), 'assertion')}"
            + (f", {_plural(len(sc.expectations), 'expect line')}" if sc.expectations else "")
            + ")"
        )
    files_with_errors = [p for p in problems if p.file is not None]
    if files_with_errors and len(scenarios) + len(files_with_errors) > 1:
        _err(f"cowdsl: {len(files_with_errors)} of {len(scenarios) + len(files_with_errors)} files have errors")
    return EXIT_ERROR if problems else EXIT_OK


def cmd_ops(args) -> int:
    from cowdsl import ops

    for op in ops.OPS.values():
        who = {"task": "", "device": "  [done by a pin: PIN: op(...)]", "reclaim": "  [done by reclaim]",
               "ksmd": "  [done by ksmd]"}[op.actor]
        _print(f"{op.signature()}{who}")
        _print(f"    {op.doc}; kernel: {op.kernel}")
        for g in op.flags:
            _print(f"    {'|'.join(g.choices)}: {g.doc}" + (f" (default {g.default})" if g.default else ""))
        for k in op.keywords:
            _print(f"    {k.name}=: {k.doc}" + (f" (default {k.default})" if k.default is not None else ""))
    _print("\nFacts for assertions:")
    for f in ops.FACTS.values():
        args_ = {(1,): "X", (0, 1): "[P]"}.get(f.arity, "X")
        _print(f"  {f.name}({args_}): {f.doc}")
    return EXIT_OK


def _version_text(v: tuple[int, ...]) -> str:
    return ".".join(map(str, v))


def cmd_backends(args) -> int:
    from cowdsl.kernel import eras, options, timeline
    from cowdsl.semantics import registry

    for era in eras.ERAS:
        cls = registry.BACKENDS[era.name]
        _print(f"{era.name:<16} {era.versions:<10} {era.description}")
        if era.aliases:
            _print(f"{'':<16} aliases: {', '.join(era.aliases)}")
        own = options.of_era(era.name)
        changes = [k for k, o in own.items() if o.kind == options.CHANGE]
        variants = [k for k, o in own.items() if o.kind == options.VARIANT]
        if changes:
            _print(f"{'':<16} change options: " + ", ".join(f"{k}={'|'.join(own[k].choices)}" for k in changes))
        if variants:
            _print(f"{'':<16} variants: " + ", ".join(f"{k}={'|'.join(own[k].choices)}" for k in variants))
        _print(f"{'':<16} rules: {', '.join(cls.overridden_rules()) or '(none of its own)'}")
    _print("\nOptions (the first choice is the default; a change option switches one change of the timeline, "
           "a variant is a design argued on the list and never merged):")
    for o in options.OPTIONS:
        _print(f"  {o.name}={'|'.join(o.choices)} [{o.kind}; {', '.join(o.eras)}]: {o.doc}")
    _print("\nThe timeline (a version has a change from its mainline release, or from the stable sublevel listed):")
    for c in sorted(timeline.TIMELINE, key=lambda c: c.mainline.key()):
        stable = ", ".join(f"{ln[0]}.{ln[1]}.{sub}" for ln, sub in c.stable)
        sets = ", ".join(f"{k}={v}" for k, v in c.sets)
        _print(f"  {str(c.mainline):<8} {c.commit} {c.title}")
        _print(f"  {'':<8} sets {sets}" + (f"; stable: {stable}" if stable else ""))
    _print(f"\nBackend specs: NAME[:OPTION=CHOICE]... (early-cow:pin_scope=longterm), a kernel version "
           f"(5.8, 5.9-rc4, 5.4.214: a bare 5.4 is mainline 5.4 as released), or `{eras.NATIVE}`, "
           "this machine's kernel.")
    return EXIT_OK


def _color_option(p) -> None:
    p.add_argument("--color", "--colour", choices=("auto", "always", "never"), default="auto",
                   help="highlight .cow source in errors and traces: auto (a terminal, unless NO_COLOR is set), "
                        "always or never (default: auto)")


def _limit_options(p) -> None:
    """--max-processes, --max-threads, --max-pages, --max-total-pages, --max-steps (cowdsl.limits)."""
    from cowdsl.limits import add_arguments

    add_arguments(p)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cowdsl",
        description="Scenarios for Linux copy-on-write, page pinning and fork.",
        epilog="Exit status: 0 all as expected, 1 a verdict not as expected, 2 an error.",
    )
    p.add_argument("--version", action="version", version=f"cowdsl {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser("run", help="run scenarios and print verdicts")
    r.add_argument("paths", nargs="+", metavar="FILE|DIR", help=".cow files, or directories searched for them")
    r.add_argument("--backend", "-b", default="anon-exclusive",
                   help="a backend: NAME[:OPTION=CHOICE]..., a kernel version such as 5.10, native, or all "
                        "(the era matrix) (default: anon-exclusive; see `cowdsl backends`)")
    r.add_argument("--assertions", action="store_true", help="with --backend all: one matrix row per assertion")
    r.add_argument("--mode", choices=("reduced", "full"), default=None,
                   help="how concurrent scenarios are explored: reduced (the default: partial-order reduction, "
                        "the same final states and verdicts as full) or full (every interleaving, with a "
                        "visited set: the reference)")
    from cowdsl.limits import DEFAULT as limits

    r.add_argument("--max-states", type=int, default=limits.max_states, metavar="N",
                   help=f"stop exploring after N states and say the result is partial (default {limits.max_states}); "
                        "the visited states never outgrow it")
    r.add_argument("--timeout", type=float, default=limits.timeout, metavar="SECONDS",
                   help=f"stop exploring after this long and say the result is partial (default {limits.timeout:g})")
    r.add_argument("--schedule", metavar="ACTORS",
                   help="replay one interleaving exactly: the actor of each micro-step, e.g. A,A,A,T,T,A "
                        "(the `schedule:` line of a counterexample)")
    r.add_argument("--trace", "-t", action="store_true", help="print every step with the rules that fired")
    r.add_argument("--state", "-s", action="store_true",
                   help="print the final state even when all is as expected (it is always printed otherwise)")
    r.add_argument("--quiet", "-q", action="store_true",
                   help="print only the scenarios that are not as expected, and the summary")
    r.add_argument("--format", "-f", choices=("text", "json", "junit"), default="text",
                   help="text (herd7-style verdicts), json (schema: docs/json-schema.json) or junit "
                        "(JUnit XML for CI: one testcase per scenario and backend)")
    r.add_argument("--dot", metavar="FILE|DIR",
                   help="also write Graphviz graphs of the final state and of each counterexample trace: "
                        "FILE.dot, FILE.svg or FILE.png for one scenario (the trace goes to FILE.trace.*), "
                        "or a directory (the SVG/PNG/PDF formats need Graphviz's `dot`)")
    r.add_argument("--dot-format", choices=("dot", "svg", "png", "pdf"), default=None,
                   help="the format of the --dot files (default: from FILE's suffix; dot for a directory)")
    _limit_options(r)
    _color_option(r)
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("check", help="parse and validate only")
    c.add_argument("paths", nargs="+", metavar="FILE|DIR", help=".cow files, or directories searched for them")
    _limit_options(c)
    _color_option(c)
    c.set_defaults(func=cmd_check)
    d = sub.add_parser("diff", help="where two backends' traces first diverge, and the rule that decided differently")
    d.add_argument("left", metavar="BACKEND1")
    d.add_argument("right", metavar="BACKEND2")
    d.add_argument("paths", nargs="+", metavar="FILE|DIR")
    _color_option(d)
    d.set_defaults(func=cmd_diff)
    x = sub.add_parser("crosscheck", help="run sequential scenarios on a model and on this machine's kernel; "
                                          "exit 1 on any disagreement")
    x.add_argument("paths", nargs="*", default=["scenarios"], metavar="DIR|FILE")
    x.add_argument("--repeat", "-r", type=int, default=1, help="run natively N times and print a histogram")
    x.add_argument("--model", default="anon-exclusive", help="the model backend (default anon-exclusive)")
    x.set_defaults(func=cmd_crosscheck)
    o = sub.add_parser("ops", help="list the ops and facts")
    o.set_defaults(func=cmd_ops)
    b = sub.add_parser("backends", help="list the backends")
    b.set_defaults(func=cmd_backends)
    return p


def main(argv=None) -> int:
    p = parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as e:  # --help and --version exit 0; usage errors exit 2
        return EXIT_OK if not e.code else EXIT_ERROR
    if not getattr(args, "func", None):
        p.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("cowdsl: interrupted")
        return 130
    except BrokenPipeError:  # `cowdsl ops | head`
        try:  # keep the interpreter from complaining when it flushes stdout at exit
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return EXIT_NOT_AS_EXPECTED


if __name__ == "__main__":
    sys.exit(main())
