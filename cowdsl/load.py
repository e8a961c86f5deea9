"""Read a .cow file: bytes → text → syntax tree (its includes read in) → checked
Scenarios, one per combination of its params' values (one without params)."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import cast

from cowdsl import limits as L
from cowdsl.check import check_all
from cowdsl.errors import CowError, Diagnostic, Span
from cowdsl.scenario import Scenario
from cowdsl.syntax import include
from cowdsl.syntax.parser import MAX_SOURCE_BYTES, decode, parse

# Where an included file is looked for: the top file's folder, and the folders
# below it that lead to the including file.  Each is walked again, component
# by component, for every include, so a folder swapped for a link in between
# is refused too.
Folder = tuple[str, tuple[str, ...]]


def load_text_all(source: str, filename: str = "<input>", limits=None, folder: str | Path | None = None) -> list[Scenario]:
    """Every scenario of ``source``: one per combination of its params' values.

    ``limits``: a cowdsl.limits.Limits (processes, threads, pages, steps); the
    defaults otherwise.  ``folder``: the folder the file is in, where its
    `include`s are looked for (None: `include` is refused)."""
    text = source if source.endswith("\n") else source + "\n"
    _count_steps_first(text, filename, limits or L.DEFAULT)
    module = parse(source, filename)
    top: Folder | None = (os.path.realpath(folder), ()) if folder is not None else None
    key = _key(Path(folder) / Path(filename).name) if folder is not None else None
    module = include.expand(module, filename, text, top, open_included, parse, key)
    return check_all(module, filename, text, limits)


# `ACTOR: op(` at the start of a line: a step (a quantifier before `:` is an assertion)
_STEP_LINE = re.compile(r"^[ \t]*(?!(?:always|sometimes|never|forall|exists|invariant|reachable)\b)"
                        r"[A-Za-z_][A-Za-z0-9_]*[ \t]*:[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*\(", re.M)


def _count_steps_first(text: str, filename: str, limits) -> None:
    """A file of many steps is refused before it is parsed: parsing a megabyte
    costs seconds and hundreds of MB, and the checker would refuse it anyway.
    The count is a lower bound (an included file adds more, checked later)."""
    limit = limits.max_steps
    steps = [m.end() - len(m.group().lstrip(" \t")) for m in _STEP_LINE.finditer(text)]
    if len(steps) <= limit:
        return
    at = steps[limit]  # the first step over the limit, where the checker points too
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    end = text.find("\n", at)
    step = text[at:end].split("#", 1)[0].rstrip()
    raise CowError(filename, text, [Diagnostic(f"the scenario has {len(steps)} steps; the limit is {limit}",
                                               Span(line, col, col + max(1, len(step))),
                                               hint=L.hint("max_steps", len(steps)))])


def load_text(source: str, filename: str = "<input>", limits=None, folder: str | Path | None = None) -> Scenario:
    """The one scenario of ``source`` (see ``load_text_all``); ValueError for a file with params."""
    return _one(load_text_all(source, filename, limits, folder), filename)


def load_all(path: str | Path, limits=None) -> list[Scenario]:
    """Every scenario of the file ``path``: one per combination of its params' values."""
    p = Path(path)
    return load_text_all(decode(read(p, MAX_SOURCE_BYTES), str(p)), str(p), limits, folder=p.parent)


def load(path: str | Path, limits=None) -> Scenario:
    """The one scenario of the file ``path``; ValueError for a file with params (use ``load_all``)."""
    return _one(load_all(path, limits), str(path))


def _one(scenarios: list[Scenario], filename: str) -> Scenario:
    if len(scenarios) != 1:
        raise ValueError(f"{filename} sweeps {len(scenarios)} scenarios (its `param` lines): load it with load_all")
    return scenarios[0]


def _key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def open_included(folder: object, path: str) -> tuple[tuple[int, int], Folder, str]:
    """The file an `include` names: its identity (device, inode), its folder, its text.

    ``path`` was checked by ``include.bad_path`` (relative, no `..`, a .cow
    file).  It is opened component by component from the top folder with
    O_NOFOLLOW, so no symbolic link is followed at all (one that stays inside
    would be harmless, but a link is how a path leaves the folder); the file is
    stat'ed before it is opened (a FIFO or a device is never opened) and read
    as ``read`` does, bounded."""
    root, below = cast(Folder, folder)
    parts = [c for c in path.split("/") if c not in ("", ".")]
    walk = list(below) + parts[:-1]
    dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for comp in walk:
            try:
                nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR) and stat.S_ISLNK(os.stat(comp, dir_fd=dfd, follow_symlinks=False).st_mode):
                    raise include.IncludeRefused(f"`{comp}` is a symbolic link; an include follows none") from None
                raise
            os.close(dfd)
            dfd = nfd
        name = parts[-1]
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise include.IncludeRefused(f"`{name}` is a symbolic link; an include follows none")
        kind = _kind(st.st_mode)
        if kind is not None:
            raise include.IncludeRefused(f"not a regular file ({kind})")
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dfd)
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        data = _read_fd(fd, st, path, MAX_SOURCE_BYTES)
    finally:
        os.close(fd)
    return (st.st_dev, st.st_ino), (root, tuple(walk)), decode(data, path)


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
        return _read_fd(fd, os.fstat(fd), path, limit)
    finally:
        os.close(fd)


def _read_fd(fd: int, st: os.stat_result, path: str | Path, limit: int) -> bytes:
    """At most ``limit`` bytes of the open file ``fd`` (``st`` its fstat): see ``read``."""
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
    searched, not listed), and a file another file of the directory includes
    (a fragment such as a prelude, not a scenario of its own).  Paths given
    are kept as given, whatever they are."""
    out: list[Path] = []
    left_out: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if not p.is_dir():
            out.append(p)
            continue
        found: list[Path] = []
        for f in sorted(p.rglob("*.cow")):
            try:
                kind = _kind(f.stat().st_mode)
            except OSError:  # a dangling link: loading it says so
                kind = None
            if kind is None:
                found.append(f)
            elif kind != "a directory":
                left_out.append((f, f"skipped: {kind}, not a regular file"))
        included = _included(found)
        for f in found:
            if f in included:
                left_out.append((f, f"skipped: included by {included[f]}, a fragment, not a scenario"))
            else:
                out.append(f)
    return out, left_out


_INCLUDE = re.compile(rb'^[ \t]*include[ \t]+"([^"\n]*)"', re.M)


def _included(files: list[Path]) -> dict[Path, Path]:
    """The files of ``files`` that another one includes, each with one that
    includes it.  The include lines are found by their text (a file that does
    not parse is still read for them); a path ``include.bad_path`` refuses is
    ignored, and nothing outside ``files`` is looked at."""
    names = {f.absolute(): f for f in files}
    out: dict[Path, Path] = {}
    for f in files:
        try:
            data = read(f, MAX_SOURCE_BYTES)
        except (OSError, CowError):
            continue
        for m in _INCLUDE.finditer(data):
            path = m.group(1).decode("utf-8", "replace")
            if include.bad_path(path) is None:
                target = names.get((f.parent / path).absolute())
                if target is not None and target != f:
                    out.setdefault(target, f)
    return out
