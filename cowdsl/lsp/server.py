"""``cowdsl lsp``: start the language server on stdin/stdout.

The LSP library (pygls) is imported here, when the server starts, and nowhere
else: ``cowdsl run`` and the other commands never load it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cowdsl import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cowdsl lsp",
                                description="The .cow language server (LSP over stdin/stdout), for editors.")
    p.add_argument("--stdio", action="store_true", help="talk LSP on stdin/stdout (the default and only transport)")
    p.add_argument("--log", metavar="FILE", help="write the server's log to FILE")
    p.add_argument("--version", action="version", version=f"cowdsl lsp {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until the client says exit; 0, or 2 when pygls is not installed."""
    args = _parser().parse_args(argv)
    if args.log:
        logging.basicConfig(filename=args.log, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        protocol = importlib.import_module("cowdsl.lsp.protocol")
    except ImportError as e:
        print(f"cowdsl lsp: the language server needs pygls ({e}); install it with: pip install 'pygls>=2,<3'",
              file=sys.stderr)
        return 2
    protocol.build().start_io()
    return 0


if __name__ == "__main__":
    sys.exit(main())
