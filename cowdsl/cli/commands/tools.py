"""`cowdsl fmt`, `cowdsl lsp` and `cowdsl kernels`: commands with their own parsers (cowdsl.fmt, cowdsl.lsp.server),
handed the rest of the command line."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cowdsl import fmt as formatter
from cowdsl.kernels import cli as kernels_cli
from cowdsl.lsp import server


def fmt(args) -> int:
    return _own(formatter.main, args.rest)


def lsp(args) -> int:
    return _own(server.main, args.rest)


def kernels(args) -> int:
    return _own(kernels_cli.main, args.rest)


def _own(main: Callable[[list[str]], int], argv: Sequence[str]) -> int:
    try:
        return main(list(argv))
    except SystemExit as e:  # their --help and --version exit 0; usage errors exit 2
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
