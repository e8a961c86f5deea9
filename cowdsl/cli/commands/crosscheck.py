"""`cowdsl crosscheck`: the model against this machine's kernel (cowdsl.crosscheck)."""

from __future__ import annotations

from cowdsl.crosscheck import crosscheck as compare
from cowdsl.report.text import trace


def crosscheck(args) -> int:
    return compare(args.paths, args.repeat, model=args.model, trace=trace)
