"""Leak checks for the native tests: the children a test made and left.  A child this
process already had before the test (a process pool another test left in the same pytest
worker, say) is not the test's, so not a leak of it."""

from __future__ import annotations

import glob
import os

_BEFORE: set[int] = set()


def all_children() -> list[int]:
    """This process's children now (from /proc/PID/stat's ppid field)."""
    me = os.getpid()
    out = []
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == me:
            out.append(int(path.split("/")[2]))
    return out


def snapshot() -> None:
    """Remember the children this process has before a test (call from an autouse fixture)."""
    _BEFORE.clear()
    _BEFORE.update(all_children())


def left() -> list[int]:
    """This process's children the test made and left."""
    return [pid for pid in all_children() if pid not in _BEFORE]
