# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion looks for this mark)
"""The `cowdsl` command: run | check | diff | crosscheck | ops | backends | ...

``main`` handles Ctrl-C first, then parses the command line (cowdsl.cli.args),
then imports the one module that runs the command (cowdsl.cli.commands.*), so
`cowdsl --version` imports neither lark, attrs nor the model.

Exit status: 0 when every assertion and expectation holds, 1 when one does
not, 2 on a usage error, a parse or check error, a missing file, or a scenario
that could not be run; 130 on Ctrl-C.  Verdicts and listings go to stdout;
diagnostics and other errors go to stderr.
"""

from __future__ import annotations

import os
import signal
import sys

EXIT_OK, EXIT_NOT_AS_EXPECTED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def interrupted_at_once(signum=None, frame=None) -> None:
    """The SIGINT handler while cowdsl starts: nothing to clean up yet, so one
    line and exit 130, never a KeyboardInterrupt traceback from an import."""
    os.write(2, b"cowdsl: interrupted\n")
    os._exit(EXIT_INTERRUPTED)


def _on_sigint(handler):
    """Install ``handler`` for SIGINT; the one it replaces, or None when this is
    not the main thread (where Python allows no handler)."""
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:
        return None


def main(argv=None) -> int:
    previous = _on_sigint(interrupted_at_once)
    try:
        try:
            return _main(argv, previous is not None)
        except KeyboardInterrupt:  # between the command's end and _main handing SIGINT back
            _err_line("cowdsl: interrupted")
            return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            _on_sigint(previous)


def _main(argv, own_sigint: bool) -> int:
    import importlib  # after the SIGINT handler: Ctrl-C during imports is one line

    from cowdsl.cli.args import COMMANDS, parser, passthrough  # after the SIGINT handler, like importlib

    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: answer and exit
        from cowdsl.cli.completion import complete

        complete(p)
    try:
        args = passthrough(argv) or p.parse_args(argv)
    except SystemExit as e:  # --help and --version exit 0; usage errors exit 2
        return EXIT_OK if not e.code else EXIT_ERROR
    if not args.command:
        p.print_help(sys.stderr)
        return EXIT_ERROR
    module, function = COMMANDS[args.command]
    try:
        # lazy: only the command's own module, so each command starts as fast as it can
        command = getattr(importlib.import_module(f"cowdsl.cli.commands.{module}"), function)
        if own_sigint:  # from here Ctrl-C raises KeyboardInterrupt: native runs clean up as it unwinds
            _on_sigint(signal.default_int_handler)
        return command(args)
    except KeyboardInterrupt:
        _err_line("cowdsl: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `cowdsl ops | head`
        try:  # keep the interpreter from complaining when it flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return EXIT_NOT_AS_EXPECTED
    finally:
        if own_sigint:  # back to one line at once until main returns
            _on_sigint(interrupted_at_once)


def _err_line(text: str) -> None:
    sys.stderr.write(text + "\n")


def __getattr__(name: str):
    """The helpers the single-module CLI had, for callers that still use them."""
    if name == "_progress":
        from cowdsl.cli.progress import Progress  # lazy: only for old callers

        return Progress
    if name == "_colour":
        from cowdsl.cli.output import colour  # lazy: only for old callers

        return colour
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
