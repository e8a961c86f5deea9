"""`cowdsl check`: parse and validate only; and the batch every command loads files with."""

from __future__ import annotations

import sys

from cowdsl.batch import Batch
from cowdsl.cli import EXIT_ERROR, EXIT_OK
from cowdsl.cli.output import colour, err, out, plural, problem, shown
from cowdsl.cli.stdin import StdinBatch
from cowdsl.limits import STATIC, from_args


def batch_for(args) -> Batch:
    """A Batch with the resource limits the command line set (cowdsl.limits; the
    defaults when no flag was given), showing each problem on stderr as it happens;
    the path `-` is standard input (cowdsl.cli.stdin)."""
    limits = from_args(args) if any(getattr(args, f, None) is not None for f in STATIC) else None
    hl = colour(args, sys.stderr)
    return StdinBatch(limits=limits, report=lambda p: problem(p, hl))


def check(args) -> int:
    batch = batch_for(args)
    scenarios = batch.load(args.paths)
    for sc in scenarios:
        out(
            f"{shown(sc.where)}: ok ({plural(len(sc.steps), 'step')}, {plural(len(sc.assertions), 'assertion')}"
            + (f", {plural(len(sc.expectations), 'expect line')}" if sc.expectations else "")
            + ")"
        )
    files_with_errors = [p for p in batch.problems if p.file is not None]
    if files_with_errors and len(scenarios) + len(files_with_errors) > 1:
        err(f"cowdsl: {len(files_with_errors)} of {len(scenarios) + len(files_with_errors)} files have errors")
    return EXIT_ERROR if batch.problems else EXIT_OK
