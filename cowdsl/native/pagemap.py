"""Reading the real page tables: /proc/PID/pagemap, /proc/kpageflags, /proc/kpagecount.

pagemap (Documentation/admin-guide/mm/pagemap.rst) gives one 64-bit entry per
virtual page: bits 0-54 the PFN (zeroed without CAP_SYS_ADMIN), 55 soft-dirty,
56 "exclusively mapped" (the page is mapped once: a mapcount test, *not*
PG_anon_exclusive), 61 file-page or shared-anon, 62 swapped, 63 present.

kpageflags gives the flags of a PFN.  For an anonymous page, PG_anon_exclusive
is stored in the bit the kernel otherwise calls PG_mappedtodisk, which
kpageflags exports as KPF_MAPPEDTODISK (bit 34); checked on this kernel by
cowdsl.native.host.probe (a fresh written page has it, fork clears it, a
reusing write fault sets it again while pagemap bit 56 says "mapped once"
throughout).  kpagecount gives the page's mapcount.  Reading any of these has
no side effect on the pages.
"""

from __future__ import annotations

import ctypes
import os
import struct

from cowdsl.native import libc as L
from cowdsl.native.libc import PAGE

PM_PFN_MASK = (1 << 55) - 1
PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63

KPF_SWAPCACHE = 13
KPF_ANON = 12
KPF_MMAP = 11
KPF_KSM = 21
KPF_ZERO_PAGE = 24
KPF_THP = 22
KPF_ANON_EXCLUSIVE = 34  # KPF_MAPPEDTODISK: PG_anon_exclusive aliases PG_mappedtodisk for anon pages


def _read_u64(path: str, index: int) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.pread(fd, 8, index * 8)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) != 8:
        return None
    return struct.unpack("<Q", data)[0]


class Entry:
    """One pagemap entry, with the page's kpageflags and kpagecount when present."""

    __slots__ = ("raw", "kflags", "kcount")

    def __init__(self, raw: int, kflags: int | None = None, kcount: int | None = None):
        self.raw = raw
        self.kflags = kflags
        self.kcount = kcount

    present = property(lambda self: bool(self.raw & PM_PRESENT))
    swapped = property(lambda self: bool(self.raw & PM_SWAP))
    file = property(lambda self: bool(self.raw & PM_FILE))
    mapped_once = property(lambda self: bool(self.raw & PM_MMAP_EXCLUSIVE))

    @property
    def pfn(self) -> int | None:
        return (self.raw & PM_PFN_MASK) if self.present else None

    def kflag(self, bit: int) -> bool | None:
        return None if self.kflags is None else bool(self.kflags >> bit & 1)

    @property
    def anon_exclusive(self) -> bool | None:
        """PG_anon_exclusive: only anonymous pages have it."""
        if not self.present:
            return False
        if self.kflags is None:
            return None
        return bool(self.kflag(KPF_ANON) and self.kflag(KPF_ANON_EXCLUSIVE))

    @property
    def zero(self) -> bool | None:
        if not self.present:
            return False
        return self.kflag(KPF_ZERO_PAGE)

    def describe(self) -> str:
        if not self.present:
            return "swapped out" if self.swapped else "not present"
        parts = [f"pfn {self.pfn:#x}" if self.pfn else "pfn hidden"]
        if self.zero:
            parts.append("zero page")
        elif self.kflags is not None:
            parts.append("anon" if self.kflag(KPF_ANON) else "page-cache")
            if self.kflag(KPF_THP):
                parts.append("THP")
            if self.anon_exclusive:
                parts.append("exclusive")
            if self.kflag(KPF_SWAPCACHE):
                parts.append("swapcache")
        if self.kcount is not None and not self.zero:
            parts.append(f"mapcount {self.kcount}")
        return ", ".join(parts)


def entry(pid: int | str, addr: int, with_page: bool = True) -> Entry | None:
    """The pagemap entry of one virtual page of a process (None if unreadable)."""
    raw = _read_u64(f"/proc/{pid}/pagemap", addr // PAGE)
    if raw is None:
        return None
    e = Entry(raw)
    if with_page and e.present and e.pfn:
        e.kflags = kpageflags(e.pfn)
        e.kcount = kpagecount(e.pfn)
    return e


def kpageflags(pfn: int) -> int | None:
    return _read_u64("/proc/kpageflags", pfn)


def kpagecount(pfn: int) -> int | None:
    return _read_u64("/proc/kpagecount", pfn)


class Vma:
    __slots__ = ("start", "end", "perms", "offset", "path")

    def __init__(self, start: int, end: int, perms: str, offset: int, path: str):
        self.start, self.end, self.perms, self.offset, self.path = start, end, perms, offset, path


def maps(pid: int | str) -> list[Vma] | None:
    try:
        with open(f"/proc/{pid}/maps") as f:
            text = f.read()
    except OSError:
        return None
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, hi = parts[0].split("-")
        out.append(Vma(int(lo, 16), int(hi, 16), parts[1], int(parts[2], 16), parts[5] if len(parts) > 5 else ""))
    return out


def _smaps_field(pid: int | str, addr: int, field: str) -> str | None:
    """The rest of smaps' ``field:`` line for the VMA holding addr; None when unreadable."""
    try:
        with open(f"/proc/{pid}/smaps") as f:
            text = f.read()
    except OSError:
        return None
    inside = False
    for line in text.splitlines():
        head = line.split(None, 1)[0] if line.strip() else ""
        if "-" in head and not head.endswith(":"):  # a VMA's header line: start-end perms ...
            lo, hi = head.split("-")
            inside = int(lo, 16) <= addr < int(hi, 16)
        elif inside and head == field + ":":
            return line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
    return None


def anon_huge_kb(pid: int | str, addr: int) -> int | None:
    """smaps' AnonHugePages of the VMA holding addr: the anonymous memory it maps by PMDs
    (a THP mapped by PTEs is not counted there); None when unreadable."""
    got = _smaps_field(pid, addr, "AnonHugePages")
    return None if got is None else int(got.split()[0])


def vm_flags(pid: int | str, addr: int) -> frozenset[str] | None:
    """smaps' VmFlags of the VMA holding addr (``mg``: VM_MERGEABLE); None when unreadable."""
    got = _smaps_field(pid, addr, "VmFlags")
    return None if got is None else frozenset(got.split())


def vma_at(vmas: list[Vma], addr: int) -> Vma | None:
    for v in vmas:
        if v.start <= addr < v.end:
            return v
    return None


_zero_pfn: int | None = None


def zero_pfn() -> int | None:
    """The shared zero page's PFN, found by read-faulting a fresh private anonymous page here."""
    global _zero_pfn
    if _zero_pfn is None:
        addr = L.mmap(0, PAGE, L.PROT_READ, L.MAP_PRIVATE | L.MAP_ANONYMOUS)
        try:
            L.madvise(addr, PAGE, L.MADV["nohugepage"])
            ctypes.c_uint64.from_address(addr).value  # noqa: B018  (the read fault)
            e = entry("self", addr, with_page=False)
            _zero_pfn = e.pfn if e is not None and e.present else None
        finally:
            L.munmap(addr, PAGE)
    return _zero_pfn
