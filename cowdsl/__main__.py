"""`python -m cowdsl`: Ctrl-C is handled before anything else is imported."""

import _signal  # type: ignore[import-not-found]  # the C module, already loaded by the interpreter (`signal` would import enum first)
import os


def _interrupted(signum, frame):  # until the CLI takes over: one line, exit 130, no traceback
    os.write(2, b"cowdsl: interrupted\n")
    os._exit(130)


_signal.signal(_signal.SIGINT, _interrupted)

import sys  # noqa: E402

from cowdsl.cli import main  # noqa: E402

sys.exit(main())
