"""The one exception of this package: a one-line message meant for the user."""

from __future__ import annotations


class KernelError(Exception):
    """Something a user can act on (a tool missing, a package not found, a guest that failed).

    ``str(e)`` is a complete one-line message; the CLI prints it without a traceback.
    """


class GuestTimeout(KernelError):
    """The guest did not finish in time; ``console`` holds the serial output seen so far."""

    def __init__(self, message: str, console: str = "") -> None:
        super().__init__(message)
        self.console = console
