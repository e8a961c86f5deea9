"""`cowdsl diff`: two backends on each scenario, and where their traces first diverge."""

from __future__ import annotations

from cowdsl import diff as differ
from cowdsl.cli import EXIT_ERROR, EXIT_NOT_AS_EXPECTED, EXIT_OK
from cowdsl.cli.commands.check import batch_for
from cowdsl.cli.commands.run import spec_problem
from cowdsl.cli.output import err, out
from cowdsl.kernel.spec import SpecError, resolve


def diff(args) -> int:
    specs = []
    for text in (args.left, args.right):
        try:
            specs.append(resolve(text))  # once: the runs get the KernelSpec
        except SpecError as e:
            err(f"cowdsl: {spec_problem(e)}")
            return EXIT_ERROR
    left, right = specs
    batch = batch_for(args)
    differs = False
    for sc in batch.load(args.paths):
        a, b, d = differ.diff(sc, left, right)
        differs |= a.verdict != b.verdict or d.step != 0
        out(differ.text(a, b, d) + "\n")
    if batch.problems:
        return EXIT_ERROR
    return EXIT_NOT_AS_EXPECTED if differs else EXIT_OK
