"""`cowdsl completion SHELL` and `cowdsl man`: what the shell and man(1) need."""

from __future__ import annotations

from cowdsl.cli import EXIT_OK
from cowdsl.cli.output import out


def completion(args) -> int:
    """The script that hooks completion into the shell (argcomplete's, for the command `cowdsl`)."""
    import argcomplete

    out(argcomplete.shellcode(["cowdsl"], shell=args.shell).rstrip("\n"))
    return EXIT_OK


def man(args) -> int:
    from cowdsl.cli import manpage

    out(manpage.installed().rstrip("\n"))
    return EXIT_OK
