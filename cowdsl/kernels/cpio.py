"""The "newc" cpio format the kernel unpacks into its initial root file system, in pure Python.

Writing it ourselves means no `cpio` tool and no root: device nodes such as
/dev/console (without which /init would have no console) are just headers.
"""

from __future__ import annotations

import gzip
import stat
from dataclasses import dataclass

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    name: str  # relative, no leading "/"
    mode: int  # file type and permission bits, as in st_mode
    data: bytes = b""  # a file's contents, a symlink's target
    rdev: tuple[int, int] = (0, 0)  # a device node's (major, minor)


def directory(name: str, perm: int = 0o755) -> Entry:
    return Entry(name, stat.S_IFDIR | perm)


def file(name: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(name, stat.S_IFREG | perm, data)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, stat.S_IFLNK | 0o777, target.encode())


def chardev(name: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(name, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, e: Entry, namesize: int) -> bytes:
    nlink = 2 if stat.S_ISDIR(e.mode) else 1
    fields = [ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.rdev[0], e.rdev[1], namesize, 0]
    return MAGIC + b"".join(b"%08X" % f for f in fields)


def archive(entries: list[Entry]) -> bytes:
    """The uncompressed archive: entries in order (parents before children), then the trailer.

    Owner root, mtime 0: the same inputs give the same bytes.
    """
    out = bytearray()
    for ino, e in enumerate([*entries, Entry(TRAILER, 0)], start=1):
        name = e.name.encode() + b"\0"
        head = _header(0 if e.name == TRAILER else ino, e, len(name))
        out += head + name + _pad(len(head) + len(name))
        out += e.data + _pad(len(e.data))
    return bytes(out)


def gzipped(entries: list[Entry]) -> bytes:
    # mtime=0 keeps the gzip header reproducible too
    return gzip.compress(archive(entries), compresslevel=6, mtime=0)


def parse(data: bytes) -> list[Entry]:
    """Read an uncompressed archive back (for tests and for inspecting an initramfs)."""
    entries: list[Entry] = []
    pos = 0
    while True:
        if data[pos:pos + 6] != MAGIC:
            raise ValueError(f"not a newc cpio header at offset {pos}")
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        name_at = pos + 110
        name = data[name_at:name_at + namesize - 1].decode()
        pos = name_at + namesize
        pos += -pos % 4
        if name == TRAILER:
            return entries
        entries.append(Entry(name, mode, bytes(data[pos:pos + size]), (rmaj, rmin)))
        pos += size
        pos += -pos % 4
