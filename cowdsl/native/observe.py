"""What the real kernel shows at the end of a native run, for the judge.

``NativeObservation`` has the methods of ``cowdsl.judge.StateObservation``.
Everything is read from outside the processes, without side effects on the
pages under test:

- a page's value: the 8 bytes at the address's word offset (``A.buf+8``) through
  /proc/PID/mem when the PTE is present (a
  read GUP on a present PTE changes nothing); 0 for a private anonymous page
  not faulted in; the file's (or shmem's) page cache through
  /proc/PID/map_files otherwise;
- identity (``is``): real PFNs from /proc/PID/pagemap;
- ``exclusive``: PG_anon_exclusive from /proc/kpageflags (bit 34, see
  cowdsl.native.pagemap), not pagemap bit 56, which only says "mapped once";
- ``present``/``swapped``: pagemap bits 63/62; ``zero_page``: KPF_ZERO_PAGE;
  ``mapcount``: /proc/kpagecount; ``swapcache``: KPF_SWAPCACHE; ``ksm``: KPF_KSM;
- a pin's page: its PFN as pagemap showed it right after the registration
  (a pinned page cannot move), its value read by the "device"
  (IORING_OP_WRITE_FIXED);
- a file page ``F[i]``: the controller maps the file for a moment to learn
  the page-cache page's PFN (and discounts that mapping from its mapcount);
- ``faults(A)``: the minor faults A's threads took during their loads and
  stores (getrusage(RUSAGE_THREAD) around the one instruction).

What user space cannot see raises ``Unsupported``: refcount, pincount,
pinned, maybe_pinned, writable, device_exclusive, cow_copies, has_pinned.
``merge_any(A)`` is the one fact asked inside a process: its own
prctl(PR_GET_MEMORY_MERGE), which reads MMF_VM_MERGE_ANY and touches no page.
``ksm_merging_pages(A)`` is /proc/PID/ksm_merging_pages (5.19+).
"""

from __future__ import annotations

import ctypes
import os
import struct
from typing import Any

from cowdsl import scenario as S
from cowdsl.judge.observe import Unsupported, View
from cowdsl.native import libc as L
from cowdsl.native import pagemap
from cowdsl.native.controller import Died
from cowdsl.native.host import Host
from cowdsl.native.translate import Translator

_HIDDEN = {
    "refcount": "the kernel does not show a page's refcount to user space",
    "pincount": "the kernel does not show a page's pin count to user space",
    "pinned": "the kernel does not show whether a page is pinned",
    "maybe_pinned": "the kernel does not show a page's refcount to user space",
    "writable": "pagemap does not show the PTE's write bit",
    "device_exclusive": "pagemap does not show device-exclusive entries",
}


def _read_mem(pid: int, addr: int) -> int | None:
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.pread(fd, 8, addr)
    except OSError:
        return None
    finally:
        os.close(fd)
    return struct.unpack("<Q", data)[0] if len(data) == 8 else None


def _read_file(path: str, offset: int) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.pread(fd, 8, offset)
    finally:
        os.close(fd)
    return struct.unpack("<Q", data)[0] if len(data) == 8 else 0


class NativeObservation:
    def __init__(self, run: Translator, host: Host):
        self.run = run  # the run's processes, pins and named results
        self.host = host
        self._views: dict[Any, View] = {}

    # --- views ---------------------------------------------------------------------------
    def view(self, ref: Any) -> View:
        key = ref
        if key not in self._views:
            self._views[key] = self._view(ref)
        return self._views[key]

    def _view(self, ref: Any) -> View:
        if isinstance(ref, S.PageAt):
            return self._page_at(ref.addr)
        if isinstance(ref, S.HandlePage):
            pin = self.run.pins.get(ref.name)
            if pin is None:
                return View(None, None, "its GUP failed")
            if pin.ended is not None:  # the scenario still holds it; native's copy had to end it
                raise Unsupported(f"not observable natively: `{ref.name}` ended at {pin.ended}")
            if not pin.live:
                return View(None, None, "released")
            value = self.run.dma_value(pin)
            if not pin.live:
                return View(None, None, "released")
            e = pagemap.Entry(pagemap.PM_PRESENT | (pin.pfn or 0))
            if pin.pfn:
                e.kflags, e.kcount = pagemap.kpageflags(pin.pfn), pagemap.kpagecount(pin.pfn)
            return View(value, pin.pfn, "PFN seen right after the pin", e)
        if isinstance(ref, S.FilePage):
            return self._file_page(ref.file, ref.index, ref.offset)
        if isinstance(ref, S.Bound):
            out = self.run.results.get(ref.name)
            if out is None or not out.ok:
                return View(None, None, "its step failed")
            return View(out.value, None)
        raise TypeError(ref)

    def _page_at(self, a: S.Addr) -> View:
        p = self.run.procs.get(a.proc)
        if p is None:
            return View(None, None, f"{a.proc} was never created")
        if not p.alive:
            return View(None, None, f"{a.proc} {'was killed' if p.segv else 'has exited'}")
        addr = p.addr(a.mapping, a.index)
        vmas = pagemap.maps(p.pid)
        vma = pagemap.vma_at(vmas or [], addr) if addr is not None else None
        if vma is None or addr is None:
            return View(None, None, "not mapped")
        e = pagemap.entry(p.pid, addr)
        if e is None:
            return View(None, None, "pagemap unreadable")
        if e.present:
            return View(_read_mem(p.pid, addr + a.offset), e.pfn, "", e)
        if e.swapped:
            return View(None, None, "swapped out (not read: that would swap it in)", e)
        anon_private = vma.path == "" or (vma.path.startswith("[") and vma.path.endswith("]")) or (
            vma.path.startswith("/anon_hugepage") and vma.perms.endswith("p"))  # MAP_PRIVATE|MAP_HUGETLB
        if anon_private:
            return View(0, None, "not faulted in (reads 0)", e)
        path = f"/proc/{p.pid}/map_files/{vma.start:x}-{vma.end:x}"
        return View(_read_file(path, vma.offset + (addr - vma.start) + a.offset), None, "not faulted in", e)

    def _file_page(self, fname: str, index: int, offset: int = 0) -> View:
        path = self.run.files.get(fname)
        if path is None:
            return View(None, None, "no such file")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            addr = L.mmap(0, size, L.PROT_READ, L.MAP_SHARED, fd, 0)
        finally:
            os.close(fd)
        try:
            value = ctypes.c_uint64.from_address(addr + index * L.PAGE + offset).value
            e = pagemap.entry("self", addr + index * L.PAGE)
        finally:
            L.munmap(addr, size)
        if e is None or not e.present:
            return View(value, None, "page-cache page not found", e)
        if e.kcount is not None:
            e.kcount -= 1  # our own mapping, gone now
        return View(value, e.pfn, "", e)

    def _swapped_page(self, name: str, ref: S.PageAt) -> Any:
        """``swapcache`` / ``mapcount`` of a swapped-out page: a swap PTE has no PFN, so they come
        from the page the swapout step took out (its PFN remembered right before).  Still in the
        swap cache there: that page (mapped nowhere).  Not in the swap cache: it was freed (a page
        in the swap cache is not), whatever that frame holds now, so it is not in the swap cache
        and has no mapcount to show."""
        p = self.run.procs[ref.addr.proc]
        pfn = self.run.swapped_pfns.get((p.name, p.addr(ref.addr.mapping, ref.addr.index) or 0))
        if pfn is None:
            raise Unsupported(f"unsupported on native: `{name}` of a page swapped out by no swapout step: "
                              "its frame is not known")
        flags = pagemap.kpageflags(pfn)
        if flags is None:
            raise Unsupported(f"unsupported on native: `{name}`: /proc/kpageflags is unreadable")
        cached = bool(flags >> pagemap.KPF_SWAPCACHE & 1)
        if name == "swapcache":
            return cached
        if not cached:
            raise Unsupported("unsupported on native: `mapcount` of a swapped-out page that left the swap cache "
                              "(freed: its frame is not that page any more)")
        return pagemap.kpagecount(pfn)

    # --- facts ---------------------------------------------------------------------------
    def counter(self, name: str, proc: str | None) -> int | None:
        if name == "ksm_merging_pages" and proc is not None:
            return self._ksm_merging_pages(proc)
        if name != "faults":
            raise Unsupported(f"unsupported on native: `{name}`: the kernel does not count COW copies per process")
        procs = [self.run.procs.get(proc)] if proc else list(self.run.procs.values())
        return sum(p.faults for p in procs if p is not None)

    def process(self, name: str, proc: str) -> bool:
        p = self.run.procs.get(proc)
        if name == "merge_any":
            return self._merge_any(proc)
        if name == "has_pinned":
            raise Unsupported("unsupported on native: MMF_HAS_PINNED is not shown to user space")
        if name not in ("alive", "segv"):
            raise Unsupported(f"unsupported on native: `{name}`")
        if p is None:
            return False
        return p.alive if name == "alive" else p.segv

    def _ksm_merging_pages(self, proc: str) -> int | None:
        """mm->ksm_merging_pages as /proc/PID/ksm_merging_pages shows it (5.19+, 7609385337a4);
        None (NOT_IN_VERSION) where the kernel has no such file, as the model says."""
        p = self.run.procs.get(proc)
        if p is None or not p.alive:
            raise Unsupported(f"not observable natively: `ksm_merging_pages({proc})`: {proc} is gone")
        try:
            with open(f"/proc/{p.pid}/ksm_merging_pages") as f:
                return int(f.read())
        except FileNotFoundError:
            return None

    def _merge_any(self, proc: str) -> bool:
        """MMF_VM_MERGE_ANY as the process's own prctl(PR_GET_MEMORY_MERGE) returns it (it touches no
        page; only the process itself can ask).  EINVAL (before 6.4): no such flag, so it is not set."""
        p = self.run.procs.get(proc)
        if p is None or not p.alive:
            raise Unsupported(f"not observable natively: `merge_any({proc})`: {proc} is gone, and only the "
                              "process itself can ask prctl(PR_GET_MEMORY_MERGE)")
        try:
            reply = self.run.ctl.call(p, {"op": "get_memory_merge", "thread": None})
        except Died:
            self.run.died(p)
            raise Unsupported(f"not observable natively: `merge_any({proc})`: {proc} died") from None
        if reply.get("ok"):
            return bool(reply["value"])
        if reply.get("error") == "EINVAL":
            return False
        raise Unsupported(f"not observable natively: `merge_any({proc})`: prctl(PR_GET_MEMORY_MERGE) → "
                          f"{reply.get('error')}")

    def failed(self, name: str) -> bool:
        r = self.run.results.get(name)
        return r is None or not r.ok

    def page_fact(self, name: str, ref: Any) -> Any:
        if name in _HIDDEN:
            raise Unsupported(f"unsupported on native: `{name}`: {_HIDDEN[name]}")
        if name == "ksm" and self.host.kpf_ksm is not None:
            raise Unsupported(f"unsupported on native: `ksm`: {self.host.kpf_ksm}")
        if name == "exclusive" and self.host.anon_exclusive is not None:
            raise Unsupported(f"unsupported on native: `exclusive`: {self.host.anon_exclusive}")
        v = self.view(ref)
        e = v.pte
        assert e is None or isinstance(e, pagemap.Entry)
        if name in ("swapped", "present"):
            if not isinstance(ref, S.PageAt) or e is None:
                return False
            return e.swapped if name == "swapped" else e.present
        if e is not None and e.swapped and name in ("swapcache", "mapcount"):
            return self._swapped_page(name, ref)
        if v.pfn is None or e is None:
            return None if name == "mapcount" else False
        if name == "exclusive":
            return bool(e.anon_exclusive)
        if name == "zero_page":
            return bool(e.zero) or v.pfn == pagemap.zero_pfn()
        if name == "huge_zero_page":  # kpageflags: the huge zero page is KPF_ZERO_PAGE and KPF_THP
            return bool(e.zero) and bool(e.kflag(pagemap.KPF_THP))
        if name == "mapcount":
            return 0 if e.zero else e.kcount
        if name == "swapcache":
            return bool(e.kflag(pagemap.KPF_SWAPCACHE))
        if name == "ksm":
            return bool(e.kflag(pagemap.KPF_KSM))
        raise Unsupported(f"unsupported on native: `{name}`")
