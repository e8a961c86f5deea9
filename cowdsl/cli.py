"""cowdsl run | check | ops | backends.

Imports are lazy so `cowdsl --version` starts fast.  Exit status: 0 when every
assertion and expectation holds, 1 when one does not, 2 on a usage or parse error.
"""

from __future__ import annotations

import argparse
import sys

from cowdsl import __version__


def _print(text: str, out=None) -> None:
    (out or sys.stdout).write(text if text.endswith("\n") else text + "\n")


def _load_all(paths, errors):
    from cowdsl.errors import CowError
    from cowdsl.load import find, load

    scenarios = []
    files = find(paths)
    for f in files:
        if not f.exists():
            _print(f"cowdsl: {f}: no such file or directory", sys.stderr)
            errors.append(None)
            continue
        try:
            scenarios.append(load(f))
        except CowError as e:
            errors.append(e)
            _print(e.render(), sys.stderr)
        except OSError as e:
            errors.append(None)
            _print(f"cowdsl: {f}: {e.strerror}", sys.stderr)
    if not files:
        _print("cowdsl: no .cow files found", sys.stderr)
        errors.append(None)
    return scenarios


def cmd_run(args) -> int:
    import json

    from cowdsl.report import jsonout, text
    from cowdsl.run import run
    from cowdsl.semantics import registry

    if registry.resolve(args.backend) is None:
        from cowdsl.errors import did_you_mean

        hint = did_you_mean(args.backend, registry.known_words())
        _print(f"cowdsl: unknown backend `{args.backend}`" + (f"; {hint}" if hint else "") + " (see `cowdsl backends`)", sys.stderr)
        return 2
    errors: list = []
    scenarios = _load_all(args.paths, errors)
    results = [run(sc, args.backend) for sc in scenarios]
    if args.format == "json":
        doc = jsonout.document(results, [e for e in errors if e is not None])
        _print(json.dumps(doc, indent=2))
    else:
        for r in results:
            _print(text.report(r, show_trace=args.trace, show_state=args.state))
        bad = [r for r in results if not r.ok]
        summary = f"{len(results)} scenario(s) on {registry.resolve(args.backend)}: {len(results) - len(bad)} as expected, {len(bad)} not"
        if errors:
            summary += f", {len(errors)} file(s) with errors"
        _print(summary)
        for r in bad:
            _print(f"  not as expected: {r.scenario.filename} ({r.verdict}, expected {r.expected or 'pass'})")
    if errors:
        return 2
    return 0 if all(r.ok for r in results) else 1


def cmd_check(args) -> int:
    errors: list = []
    scenarios = _load_all(args.paths, errors)
    for sc in scenarios:
        _print(f"{sc.filename}: ok ({len(sc.steps)} steps, {len(sc.assertions)} assertions)")
    return 2 if errors else 0


def cmd_ops(args) -> int:
    from cowdsl import ops

    for op in ops.OPS.values():
        who = {"task": "", "device": "  [done by a pin: PIN: op(...)]", "reclaim": "  [done by reclaim]"}[op.actor]
        _print(f"{op.signature()}{who}")
        _print(f"    {op.doc}; kernel: {op.kernel}")
        for g in op.flags:
            _print(f"    {'|'.join(g.choices)}: {g.doc}" + (f" (default {g.default})" if g.default else ""))
    _print("\nFacts for assertions:")
    for f in ops.FACTS.values():
        args_ = {(1,): "X", (0, 1): "[P]"}.get(f.arity, "X")
        _print(f"  {f.name}({args_}): {f.doc}")
    return 0


def cmd_backends(args) -> int:
    from cowdsl.semantics import registry

    for name in registry.names():
        cls = registry.BACKENDS[name]
        _print(f"{name:<16} {cls.versions:<10} {cls.description}")
        if cls.aliases:
            _print(f"{'':<16} aliases: {', '.join(cls.aliases)}")
        _print(f"{'':<16} rules: {', '.join(cls.overridden_rules())}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cowdsl", description="Scenarios for Linux copy-on-write, page pinning and fork.")
    p.add_argument("--version", action="version", version=f"cowdsl {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser("run", help="run scenarios and print verdicts")
    r.add_argument("paths", nargs="+", metavar="FILE|DIR")
    r.add_argument("--backend", "-b", default="anon-exclusive", help="backend name or kernel version (default: anon-exclusive)")
    r.add_argument("--trace", action="store_true", help="print every step with the rules that fired")
    r.add_argument("--state", action="store_true", help="print the final state even when all is as expected")
    r.add_argument("--format", choices=("text", "json"), default="text")
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("check", help="parse and validate only")
    c.add_argument("paths", nargs="+", metavar="FILE|DIR")
    c.set_defaults(func=cmd_check)
    o = sub.add_parser("ops", help="list the ops and facts")
    o.set_defaults(func=cmd_ops)
    b = sub.add_parser("backends", help="list the backends")
    b.set_defaults(func=cmd_backends)
    return p


def main(argv=None) -> int:
    p = parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) and 2
    if not getattr(args, "func", None):
        p.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _print("cowdsl: interrupted", sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
