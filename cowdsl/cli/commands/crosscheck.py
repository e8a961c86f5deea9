"""`cowdsl crosscheck`: the model against this machine's kernel, or another kernel under QEMU
(--kernel), optionally recording the kernel's answers (--record) (cowdsl.crosscheck)."""

from __future__ import annotations

import sys

from cowdsl.crosscheck import MODEL, RUNNING, crosscheck_kernel
from cowdsl.crosscheck import crosscheck as compare
from cowdsl.report.text import trace


def crosscheck(args) -> int:
    if args.record_dir and not args.record:
        print("cowdsl crosscheck: --record-dir goes with --record", file=sys.stderr)
        return 2
    record = (args.record_dir or "") if args.record else None  # "": tests/kernels of the checkout
    if args.kernel:
        return crosscheck_kernel(args.kernel, args.paths, modules=args.modules, repeat=args.repeat, seed=args.seed,
                                 model=args.model or RUNNING, needs=args.need,
                                 smp=args.smp, memory=args.memory, fmt=args.format, record=record,
                                 say=lambda s: print(f"note: {s}", file=sys.stderr))
    if args.modules or args.need:
        print("cowdsl crosscheck: --modules and --need go with --kernel", file=sys.stderr)
        return 2
    model = args.model or (RUNNING if args.record else MODEL)
    return compare(args.paths, args.repeat, model=model, trace=trace, fmt=args.format, record=record, seed=args.seed)
