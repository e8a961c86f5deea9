"""Read a .cow file: bytes → text → syntax tree → checked Scenario."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from cowdsl.check import check
from cowdsl.errors import CowError, Diagnostic, Span
from cowdsl.scenario import Scenario
from cowdsl.syntax.parser import MAX_SOURCE_BYTES, decode, parse


def load_text(source: str, filename: str = "<input>", limits=None) -> Scenario:
    """``limits``: a cowdsl.limits.Limits (processes, threads, pages, steps); the defaults otherwise."""
    module = parse(source, filename)
    return check(module, filename, source if source.endswith("\n") else source + "\n", limits)


def load(path: str | Path, limits=None) -> Scenario:
    p = Path(path)
    return load_text(decode(read(p, MAX_SOURCE_BYTES), str(p)), str(p), limits)


class NotAFile(OSError):
    """A path that names something other than a regular file: a FIFO, a device, a socket."""

    def __init__(self, path: str | Path, kind: str):
        super().__init__(errno.EINVAL, f"not a regular file ({kind}); a scenario is a .cow text file", str(path))
        self.kind = kind


def _kind(mode: int) -> str | None:
    """What a file of this mode is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def _too_big(path: str | Path, size: str, limit: int) -> CowError:
    return CowError(str(path), "", [Diagnostic(f"file is {size} bytes; the limit is {limit}", Span(1, 1, 2))])


def read(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    A scenario file is untrusted, so nothing is read before its type and size
    are known: a FIFO, a device or a socket is refused (``NotAFile``) without
    being opened, a file over ``limit`` bytes by its size (a sparse file of
    gigabytes costs nothing), and at most ``limit + 1`` bytes are ever read (a
    file that grows while it is read).  The open is non-blocking and its type
    checked again, in case the path was swapped for a FIFO in between.
    """
    kind = _kind(os.stat(path).st_mode)
    if kind is not None:
        raise NotAFile(path, kind)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        kind = _kind(st.st_mode)
        if kind is not None:
            raise NotAFile(path, kind)
        if st.st_size > limit:
            raise _too_big(path, str(st.st_size), limit)
        chunks, got = [], 0
        while got <= limit:
            chunk = os.read(fd, limit + 1 - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    finally:
        os.close(fd)
    if got > limit:
        raise _too_big(path, f"over {limit}", limit)
    return b"".join(chunks)


def find(paths) -> list[Path]:
    """Expand directories into their .cow files, sorted; keep files as given.
    Entries of a directory that are not regular files are left out (see ``scan``)."""
    return scan(paths)[0]


def scan(paths) -> tuple[list[Path], list[tuple[Path, str]]]:
    """``find``'s files, and the entries of directories it left out, each with
    why: a FIFO, a device or a socket named x.cow (a directory named x.cow is
    searched, not listed).  Paths given are kept as given, whatever they are."""
    out: list[Path] = []
    left_out: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if not p.is_dir():
            out.append(p)
            continue
        for f in sorted(p.rglob("*.cow")):
            try:
                kind = _kind(f.stat().st_mode)
            except OSError:  # a dangling link: loading it says so
                kind = None
            if kind is None:
                out.append(f)
            elif kind != "a directory":
                left_out.append((f, f"skipped: {kind}, not a regular file"))
    return out, left_out
