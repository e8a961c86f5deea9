"""Op translation: one scenario step → the worker commands that do it natively, and
the outcome and events the step reports.

``OPS`` maps each op the native backend runs to its translation; ``plan.py``
refuses every other op, with the reason, before a run starts (a test checks
that every op of the registry is one or the other).  The processes themselves
(spawning, channels, timeouts, deaths, reaping) are ``controller.py``'s.

Addresses: the translation chooses every mapping's address (a fixed slot per
mmap step, never reused, with unmapped gaps between slots), so that a child
inherits its parent's addresses and a process that lost a mapping faults for
real at the old address.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from attrs import define

from cowdsl import scenario as S
from cowdsl.native import barrier, pagemap
from cowdsl.native import libc as L
from cowdsl.native.controller import Controller, Died, Proc, StepTimeout, write_direct
from cowdsl.native.host import in_guest, probe
from cowdsl.semantics.machine import Event
from cowdsl.semantics.state import NOT_RUN, Outcome

STRIDE = 1 << 20  # one slot per mmap step: 64 pages at most, then an unmapped gap
THP = 2 << 20  # a `thp` mapping: one PMD's worth, 2 MiB-aligned, in slots of its own after the others
THP_PAGES = THP // L.PAGE
NO_THP = ("unsupported on this kernel: `{text}`: the MADV_HUGEPAGE region got a small page, not a THP "
          "(no huge page free, or THP off for it): the scenario would run on small pages")
NO_PTE_THP = ("unsupported on this kernel: `{text}`: after mprotect() of one subpage and back, {why}: "
              "the scenario would not run on a PTE-mapped THP")
NOT_A_THP = ("unsupported on native: `{text}`: `tail` of a mapping that is not a THP has no kernel "
             "counterpart (the model fails the step)")
HUGE_KINDS = frozenset({"thp", "pte_thp", "hugetlb"})  # the mmap flags that take a 2 MiB-aligned slot of their own
DEFAULT_BASE = 0x100000000000

Reply = tuple[Outcome, list[Event]]

#: io_uring before 6.3 registers no file-backed buffer (shmem and MAP_SHARED anonymous memory included)
IO_URING_FILE_BUFFERS = (
    "unsupported on this kernel: `{text}`: io_uring refuses file-backed fixed buffers here "
    "(IORING_REGISTER_BUFFERS → EOPNOTSUPP, as 5.10 and 6.1 do): a limit of the mechanism, not GUP's verdict"
)


#: the names the worker may give errno 95: Python's errno.errorcode says ENOTSUP (the same number on Linux)
EOPNOTSUPP = frozenset({"EOPNOTSUPP", "ENOTSUP", errno.errorcode[errno.EOPNOTSUPP]})


class Unrunnable(Exception):
    """A step this kernel's user-space mechanism cannot do at all: the run stops, and every
    assertion is skipped with the reason (never judged on a step that was not really tried)."""


@define
class Timed:
    """When a step of a par block ran (CLOCK_MONOTONIC ns), as its worker (or the controller) saw it."""

    actor: str
    step: int
    start: int
    end: int
    cpu: int | None
    skew_ns: int = 0


#: what holds a handle's page natively: an io_uring fixed buffer (a long-term pin), a
#: process_vm_*v waiting mid-copy (a short-term pin, heldpin.py), pipe buffers (FOLL_GET
#: references, vmsplice), or an O_DIRECT read in flight (FOLL_GET|FOLL_WRITE before 6.5)
RING, COPY, PIPES, DIO = "ring", "copy", "pipes", "dio"


@define
class Pin:
    name: str
    owner: str
    addr: int
    pfn: int | None
    live: bool = True
    how: str = "ring"  # what holds the page: RING, COPY, PIPES or DIO
    write: bool = True
    ended: str | None = None  # a held pin: the device access that let its copy run and so ended it
    target: str | None = None  # a held pin: the process whose page it pins
    offset: int = 0  # the byte offset in the page of the word the device reads and writes (`pin(buf+8, ...)`)


def _free_base(span: int) -> int:
    """An address range free in this process (the workers are its forks)."""
    vmas = pagemap.maps("self") or []
    base = DEFAULT_BASE
    while any(v.start < base + span and base < v.end for v in vmas):
        base += 1 << 40
    return base


class Translator:
    """The scenario's side of a native run: addresses, pins, named results, one step at a time."""

    def __init__(self, ctl: Controller):
        self.ctl = ctl
        self.pins: dict[str, Pin] = {}
        self.results: dict[str, Outcome] = {}
        #: (process, address) -> the PFN a page had right before a swapout step took it out
        self.swapped_pfns: dict[tuple[str, int], int] = {}
        self.hugetlbfs = {name for name, kind in getattr(ctl.sc, "file_kinds", ()) if kind == "hugetlbfs"}
        n_thp = sum(1 for st in ctl.sc.steps if st.op == "mmap" and (st.flags & HUGE_KINDS or st.file in self.hugetlbfs))
        small = (len(ctl.sc.steps) + 2) * STRIDE
        self.base = _free_base(small + (2 * n_thp + 2) * THP)
        self.unmapped = self.base  # slot 0: never mapped
        self.thp_base = -(-(self.base + small) // THP) * THP + THP
        self.thps: dict[int, bool] = {}  # a thp mapping's address -> whether its first fault gave a THP
        self.pte_thps: set[int] = set()  # the thp mappings that are `pte_thp`: PTE-mapped after the first fault
        self.hugetlbs: set[int] = set()  # the `hugetlb` mappings' addresses (MAP_HUGETLB, one 2 MiB page each)
        # A par block's actors run their steps at once, each on a thread of the controller:
        # which actor (and, until its first command has gone, which gate and release) is this thread's.
        self.block = threading.local()
        self.timeline: list[Timed] = []  # when each step of a par block ran
        self._faults = threading.Lock()

    def enter_block(self, actor: str, gate: barrier.Gate | None, release: barrier.Release | None) -> None:
        """This thread runs ``actor`` of a par block: its first command to a worker carries the gate
        (``gate`` None: the actor waited at the gate itself); every command is timed."""
        self.block.actor, self.block.gate, self.block.release = actor, gate, release

    def leave_block(self) -> bool:
        """This thread's actor is done; whether its gate was never handed to a worker."""
        unused = getattr(self.block, "gate", None) is not None
        self.block.actor = self.block.gate = self.block.release = None
        return unused

    # for the observation
    @property
    def procs(self) -> dict[str, Proc]:
        return self.ctl.procs

    @property
    def files(self) -> dict[str, str]:
        return self.ctl.files

    def step(self, st: S.Step) -> Reply:
        """Run one step; raises StepTimeout (the run cannot go on)."""
        if st.task is not None:
            p = self.ctl.procs.get(st.task)
            if p is None or not p.alive:
                why = "was killed by SIGSEGV" if p is not None and p.segv else (
                    "has exited" if p is not None else "does not exist")
                error = f"{NOT_RUN}{st.task} {why}"
                return Outcome(False, error=error), [Event(error)]
        translate = OPS.get(st.op)
        if translate is None:  # plan.py refuses these before the run starts
            raise NotImplementedError(f"`{st.op}` has no native translation")
        return translate(self, st)

    # --- helpers ------------------------------------------------------------------------
    def address(self, a: S.Addr) -> int:
        """The virtual address of ``a``: its page's, plus its word's offset (``buf+8``)."""
        p = self.ctl.procs.get(a.proc)
        got = p.addr(a.mapping, a.index) if p is not None else None
        return (self.unmapped if got is None else got) + a.offset

    def snapshot(self, p: Proc, a: S.Addr) -> str | None:
        if not p.alive:
            return None
        e = pagemap.entry(p.pid, self.address(a))
        return None if e is None else f"pagemap {a.proc}.{a.mapping}[{a.index}]: {e.describe()}"

    def died(self, p: Proc) -> str:
        """Record p's death (its pins go with it); returns how it ended."""
        how = self.ctl.died(p)
        for pin in self.pins.values():
            if pin.owner == p.name:
                pin.live = False
        return how

    def cmd(self, p: Proc, st: S.Step, cmd: dict[str, Any], fds: Sequence[int] = ()
            ) -> tuple[dict[str, Any] | None, list[Event]]:
        """Send a command for step st; a death is recorded and returned as (None, events)."""
        thread = st.actor if st.actor != st.task and st.actor in p.threads else None
        cmd = {**cmd, "thread": thread}
        actor: str | None = getattr(self.block, "actor", None)
        gate: barrier.Gate | None = getattr(self.block, "gate", None)
        release: barrier.Release | None = getattr(self.block, "release", None)
        if gate is not None and release is not None:  # the actor's first command: released at the gate
            self.block.gate = None
            cmd.update(gate=True, skew_ns=release.skew_ns, cpu=release.cpu)
        elif actor is not None:
            cmd["timed"] = True
        try:
            reply = self.ctl.call(p, cmd, fds, gate=gate, actor=actor or "")
        except Died:
            how = self.died(p)
            return None, [Event(f"{p.name} (pid {p.pid}) {how}")]
        except StepTimeout:
            self.ctl.kill(p)
            raise
        finally:
            if gate is not None:  # (ready already when the worker armed; else it never will be)
                gate.ready(actor or "")
        t = reply.get("t")
        if actor is not None and t is not None:
            self.timeline.append(Timed(actor, st.number, t["start"], t["end"], t.get("cpu"),
                                       release.skew_ns if gate is not None and release is not None else 0))
        return reply, [Event(f"{p.name} (pid {p.pid}){' thread ' + thread if thread else ''}: {e}")
                       for e in reply.get("events", [])]

    @staticmethod
    def outcome(reply: dict[str, Any] | None, p: Proc, value_key: str | None = None) -> Outcome:
        if reply is None:
            return Outcome(False, error="SIGSEGV" if p.segv else p.status)
        if not reply["ok"]:
            return Outcome(False, error=reply.get("error"))
        return Outcome(True, reply.get(value_key) if value_key else None)

    def simple(self, st: S.Step, cmd: dict[str, Any], value_key: str | None = None,
               addr: S.Addr | None = None) -> Reply:
        """One command to the step's process; with ``addr``, the page's pagemap entry after it."""
        assert st.task is not None
        p = self.ctl.procs[st.task]
        reply, events = self.cmd(p, st, cmd)
        out = self.outcome(reply, p, value_key)
        if reply is not None and "faults" in reply:
            with self._faults:  # (two threads of one process may count at once in a par block)
                p.faults += reply["faults"]
        if addr is not None:
            target = self.ctl.procs.get(addr.proc)
            snap = self.snapshot(target, addr) if target is not None else None
            if snap:
                events.append(Event(snap))
        return out, events

    def whole(self, st: S.Step, op: str, **extra: Any) -> Reply:
        """A command on the whole of the step's mapping."""
        assert st.task is not None and st.mapping is not None
        p = self.ctl.procs[st.task]
        addr, pages = p.mappings.get(st.mapping, (self.unmapped, 1))
        if st.part is not None:  # buf[i..j]: a page of a `thp` mapping is its 2 MiB huge page
            unit = THP_PAGES if addr in self.thps or addr in self.hugetlbs else 1
            first, last = st.part
            addr, pages = addr + first * unit * L.PAGE, (last - first + 1) * unit
        if "tail" in st.flags:  # the tail pages of the (one) THP a `thp` mapping has natively
            if addr not in self.thps and addr not in self.hugetlbs:  # (hugetlb: the kernel says EINVAL)
                raise Unrunnable(NOT_A_THP.format(text=st.text or st.op))
            addr, pages = addr + L.PAGE, pages - 1
        return self.simple(st, {"op": op, "addr": addr, "pages": pages, **extra})

    def dma_value(self, pin: Pin) -> int | None:
        """What the device reads through a live pin now (for the observation)."""
        owner = self.ctl.procs.get(pin.owner)
        if owner is None or not owner.alive or not pin.live:
            return None
        if pin.how != RING:  # (a pipe buffer's page is the page: read it where it is mapped)
            got = read_through(self, pin)
            return None if got is None else got[0]
        try:
            reply = self.ctl.call(owner, {"op": "dma_read", "name": pin.name, "path": self.ctl.path("observe"),
                                          "thread": None})
        except Died:
            self.died(owner)
            return None
        return reply.get("value") if reply.get("ok") else None


# --- mappings ----------------------------------------------------------------------------------
def mmap(t: Translator, st: S.Step) -> Reply:
    assert st.task is not None and st.mapping is not None
    p = t.ctl.procs[st.task]
    thp = bool(st.flags & HUGE_KINDS) or st.file in t.hugetlbfs  # a hugetlbfs file maps huge pages
    slot = len(t.thps) + len(t.hugetlbs)  # the huge slots taken so far (thp, pte_thp and hugetlb alike)
    addr = t.thp_base + 2 * THP * slot if thp else t.base + st.number * STRIDE
    pages = THP_PAGES if thp else st.pages
    hugetlb = "hugetlb" in st.flags or st.file in t.hugetlbfs
    cmd = {"op": "mmap", "addr": addr, "pages": pages, "shared": "shared" in st.flags, "thp": thp and not hugetlb,
           "hugetlb": hugetlb,
           "write": "rw" in st.flags, "path": t.ctl.files.get(st.file) if st.file else None}
    out, events = t.simple(st, cmd)
    if out.ok:
        p.mappings[st.mapping] = (addr, pages)
        if hugetlb:
            t.hugetlbs.add(addr)
        elif thp:
            t.thps[addr] = False
        if "pte_thp" in st.flags:
            t.pte_thps.add(addr)
    return out, events


def _first_thp_fault(t: Translator, st: S.Step, a: S.Addr) -> list[Event]:
    """The first access that maps a page of a `thp` mapping must have mapped a THP (or the huge
    zero page): else the kernel fell back to small pages and the run would not be the scenario.
    A `pte_thp` mapping's THP is then PTE-mapped as cow.c does it, and checked."""
    p = t.ctl.procs.get(a.proc)
    if p is None or not p.alive:
        return []
    got = p.mappings.get(a.mapping)
    if got is None or got[0] not in t.thps or t.thps[got[0]]:
        return []
    e = pagemap.entry(p.pid, t.address(a))
    if e is None or not e.present:
        return []
    if not e.kflag(pagemap.KPF_THP):
        raise Unrunnable(NO_THP.format(text=st.text or st.op))
    t.thps[got[0]] = True
    return _pte_map(t, st, p, got[0]) if got[0] in t.pte_thps else []


def _pte_map(t: Translator, st: S.Step, p: Proc, base: int) -> list[Event]:
    """PTE-map the THP at ``base`` (cow.c's run_with_pte_mapped_thp: mprotect() of one subpage
    read-only and back; __split_huge_pmd keeps the folio), then check that it worked: subpages 0
    and 1 still belong to a THP (KPF_THP) that is not the huge zero page, and the VMA maps no
    anonymous memory by PMD any more (smaps' AnonHugePages)."""
    vma = pagemap.vma_at(pagemap.maps(p.pid) or [], base + L.PAGE)
    reply, events = t.cmd(p, st, {"op": "pte_map_thp", "addr": base, "write": vma is not None and "w" in vma.perms})
    why = None
    if reply is None or not reply["ok"]:
        why = "the mprotect() failed" if reply is not None else f"{p.name} died"
    else:
        subs = [pagemap.entry(p.pid, base + i * L.PAGE) for i in (0, 1)]
        if any(e is None or not e.present or not e.kflag(pagemap.KPF_THP) or e.zero for e in subs):
            why = "pagemap/kpageflags do not show subpages 0 and 1 as pages of a THP"
        elif pagemap.anon_huge_kb(p.pid, base) != 0:
            why = "smaps still counts the THP as PMD-mapped (AnonHugePages)"
        else:
            events.append(Event(f"{p.name}: subpages 0 and 1 are THP pages (KPF_THP), AnonHugePages 0 kB: "
                                "PTE-mapped THP"))
    if why is not None:
        raise Unrunnable(NO_PTE_THP.format(text=st.text or st.op, why=why))
    return events


def munmap(t: Translator, st: S.Step) -> Reply:
    return t.whole(st, "munmap")


def mprotect(t: Translator, st: S.Step) -> Reply:
    return t.whole(st, "mprotect", write="rw" in st.flags, none="none" in st.flags)


def mremap(t: Translator, st: S.Step) -> Reply:
    """A move goes to this step's own address slot (never used by an mmap), a resize stays in
    place (the slots leave room for 64 pages); on a `thp` mapping only `tail` is translated."""
    assert st.task is not None and st.mapping is not None
    p = t.ctl.procs[st.task]
    addr, pages = p.mappings.get(st.mapping, (t.unmapped, 1))
    if addr in t.hugetlbs:
        raise Unrunnable(f"unsupported on native: `{st.text}`: a `hugetlb` mapping is not moved or resized here "
                         "(its address slot is fixed when the run starts)")
    thp = addr in t.thps
    if thp and "tail" not in st.flags:
        raise Unrunnable(f"unsupported on native: `{st.text}`: a `thp` mapping is moved or resized only by "
                         "`tail` here (its THP-aligned slots are fixed when the run starts)")
    new_addr = t.base + st.number * STRIDE
    if "tail" in st.flags:  # cow.c's partial mremap: the tail pages move, the PMD is split
        cmd = {"op": "mremap", "addr": addr + L.PAGE, "pages": pages - 1, "new_pages": pages - 1, "new_addr": new_addr}
        return t.simple(st, cmd)
    if st.to is None:
        out, events = t.simple(st, {"op": "mremap", "addr": addr, "pages": pages, "new_pages": st.pages})
        if out.ok:
            p.mappings[st.mapping] = (addr, st.pages)
        return out, events
    first, last = st.part if st.part is not None else (0, pages - 1)
    n = last - first + 1
    out, events = t.simple(st, {"op": "mremap", "addr": addr + first * L.PAGE, "pages": n, "new_pages": n,
                                "new_addr": new_addr})
    if out.ok:
        p.mappings[st.to] = (new_addr, n)
        if st.part is None:
            del p.mappings[st.mapping]
    return out, events


def madvise(t: Translator, st: S.Step) -> Reply:
    advice = next(f for f in st.flags if f != "tail")
    if advice == "collapse":
        return collapse(t, st)
    return t.whole(st, "madvise", advice=advice)


def collapse(t: Translator, st: S.Step) -> Reply:
    """MADV_COLLAPSE of the mapping's range (a `thp` mapping: its 2 MiB slot), as the model's
    madvise_collapse takes it (a shmem one through hpage_collapse_scan_file); afterwards smaps'
    AnonHugePages says whether a PMD maps a private anonymous one."""
    assert st.task is not None and st.mapping is not None
    p = t.ctl.procs[st.task]
    addr = p.mappings.get(st.mapping, (t.unmapped, 1))[0]
    vma = pagemap.vma_at(pagemap.maps(p.pid) or [], addr)
    anon = vma is None or (not vma.perms.endswith("s") and (not vma.path or vma.path.startswith(("[", "/anon_hugepage"))))
    out, events = t.whole(st, "madvise", advice="collapse")
    if out.ok and addr in t.thps and anon:
        events.append(Event(f"smaps: AnonHugePages {pagemap.anon_huge_kb(p.pid, addr)} kB in `{st.mapping}`"))
    return out, events


# --- CPU accesses --------------------------------------------------------------------------------
def read(t: Translator, st: S.Step) -> Reply:
    assert st.addr is not None
    out, events = t.simple(st, {"op": "read", "addr": t.address(st.addr)}, "value", st.addr)
    return out, events + _first_thp_fault(t, st, st.addr)


def write(t: Translator, st: S.Step) -> Reply:
    assert st.addr is not None
    out, events = t.simple(st, {"op": "write", "addr": t.address(st.addr), "value": st.value}, None, st.addr)
    return out, events + _first_thp_fault(t, st, st.addr)


# --- fork and exit -------------------------------------------------------------------------------
def fork(t: Translator, st: S.Step) -> Reply:
    assert st.task is not None and st.bind is not None
    parent = t.ctl.procs[st.task]
    if len(t.ctl.procs) >= t.ctl.limits.max_processes:
        error = f"native limit: {t.ctl.limits.max_processes} processes"
        return Outcome(False, error=error), [Event(error)]
    sock, wk = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        reply, events = t.cmd(parent, st, {"op": "fork", "child": st.bind}, fds=[wk.fileno()])
    finally:
        wk.close()
    if reply is None or not reply["ok"]:
        sock.close()
        return t.outcome(reply, parent), events
    try:
        child = t.ctl.adopt(st.bind, reply["pid"], sock, parent.mappings)
    except Died:
        child = t.ctl.procs[st.bind]
        events.append(Event(f"{child.name} (pid {child.pid}) {t.died(child)} before it started"))
        return Outcome(False, error=child.status), events
    for name, (_addr, pages) in list(parent.mappings.items())[:4]:
        for i in range(min(pages, 2)):
            for q in (parent, child):
                snap = t.snapshot(q, S.Addr(q.name, name, i))
                if snap:
                    events.append(Event(snap))
    return Outcome(True), events


def exit_(t: Translator, st: S.Step) -> Reply:
    assert st.task is not None
    reply, events = t.cmd(t.ctl.procs[st.task], st, {"op": "exit"})
    if reply is not None:  # it answered instead of exiting
        return Outcome(False, error="did not exit"), events
    return Outcome(True), events


# --- pins ----------------------------------------------------------------------------------------
def pin(t: Translator, st: S.Step) -> Reply:
    """`pin(buf, write, longterm)`: io_uring's buffer registration is user space's one way to it, so
    its -EOPNOTSUPP for a file-backed buffer (before 6.5) is a limit of the mechanism: the run stops.
    A pin without FOLL_LONGTERM, read or write, this process's page or another's: a process_vm_readv
    or process_vm_writev held mid-copy (``heldpin.py``)."""
    if "longterm" in st.flags:
        return _register(t, st, mechanism=True)
    return _held(t, st)


def io_uring_register(t: Translator, st: S.Step) -> Reply:
    """`io_uring_register(buf)`: the registration is the step itself, so its -EOPNOTSUPP is the step's
    answer, as the model's (io_sqe_buffer_register's VMA check before 34ed8d0dcd69, 6.5)."""
    return _register(t, st, mechanism=False)


def _register(t: Translator, st: S.Step, mechanism: bool) -> Reply:
    """IORING_REGISTER_BUFFERS of the step's page (pin_user_pages FOLL_WRITE|FOLL_LONGTERM), its PFN
    remembered for the pin's handle."""
    assert st.task is not None and st.addr is not None
    p = t.ctl.procs[st.task]
    name = st.bind or f"pin@{st.number}"
    addr = t.address(st.addr)
    page = addr - st.addr.offset  # the page is registered; the device's fixed I/O moves the word at the offset
    out, events = t.simple(st, {"op": st.op, "name": name, "addr": page, "offset": st.addr.offset})
    if mechanism and not out.ok and out.error in EOPNOTSUPP:
        raise Unrunnable(IO_URING_FILE_BUFFERS.format(text=st.text or "pin"))
    if out.ok:
        events.append(_remember(t, Pin(name, p.name, addr, None, offset=st.addr.offset), p,
                                "right after the registration"))
    return out, events + _pinned_page(t, st, p)


def _remember(t: Translator, pin: Pin, target: Proc, when: str) -> Event:
    """Record a pin with the PFN the target's pagemap shows now (a pinned page cannot move)."""
    e = pagemap.entry(target.pid, pin.addr, with_page=False)
    pin.pfn = e.pfn if e is not None and e.present else None
    t.pins[pin.name] = pin
    what = "referenced page" if pin.how in (PIPES, DIO) else "pinned page"
    return Event(f"{what}: pfn {pin.pfn:#x} (read from {target.name}'s pagemap {when})"
                 if pin.pfn else f"{what}: pfn unknown")


def _pinned_page(t: Translator, st: S.Step, target: Proc) -> list[Event]:
    """The pinned page's pagemap entry, and the THP check of a first fault."""
    assert st.addr is not None
    snap = t.snapshot(target, st.addr)
    return ([Event(snap)] if snap else []) + _first_thp_fault(t, st, st.addr)


def _held(t: Translator, st: S.Step) -> Reply:
    """pin_user_pages_remote(FOLL_WRITE or not) by the pinning process's process_vm_*v on the
    target's page, held while its copy waits; the PFN read from the target's pagemap then."""
    assert st.task is not None and st.addr is not None
    owner = t.ctl.procs[st.task]
    target = t.ctl.procs.get(st.addr.proc)
    if target is None or not target.alive:
        return Outcome(False, error="ESRCH"), [Event(f"{st.addr.proc} is not alive → ESRCH")]
    name = st.bind or f"pin@{st.number}"
    addr = t.address(st.addr)
    write = "write" in st.flags
    writes = sum(1 for s in t.ctl.sc.steps if s.op == "dma_write" and s.handle == name)
    out, events = t.simple(st, {"op": "held_pin", "name": name, "pid": target.pid, "addr": addr, "write": write,
                                "copies": writes if write else 1, "timeout": t.ctl.timeout()})
    if out.ok:
        events.append(_remember(t, Pin(name, owner.name, addr, None, how=COPY, write=write,
                                       offset=st.addr.offset, target=target.name), target, "while the copy waits"))
    return out, events + _pinned_page(t, st, target)


COPY_RAN = "when its waiting process_vm_*v copy was let run (the kernel unpinned then)"


def mapped_at(t: Translator, pfn: int | None) -> tuple[Proc, int] | None:
    """A live process and an address of the scenario's where ``pfn`` is mapped now, if any."""
    if not pfn:
        return None
    for p in list(t.ctl.procs.values()):
        if not p.alive:
            continue
        for name, (_addr, pages) in list(p.mappings.items()):
            for i in range(pages):
                addr = p.addr(name, i)
                e = pagemap.entry(p.pid, addr, with_page=False) if addr is not None else None
                if addr is not None and e is not None and e.present and e.pfn == pfn:
                    return p, addr
    return None


def read_through(t: Translator, pin: Pin) -> tuple[int, str] | None:
    """What a held pin's word holds now, read where the scenario maps that page (/proc/PID/mem:
    the page is present there, so the read faults nothing in and unshares nothing)."""
    got = mapped_at(t, pin.pfn)
    if got is None:
        return None
    p, page = got
    addr = page + pin.offset
    fd = os.open(f"/proc/{p.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.pread(fd, 8, addr)
    finally:
        os.close(fd)
    return int.from_bytes(data, "little"), f"{p.name} at {addr:#x}"


def unpin(t: Translator, st: S.Step) -> Reply:
    return _release(t, st, "its pin failed or was released")


def _release(t: Translator, st: S.Step, gone: str) -> Reply:
    """`unpin(mr)` / `put(r)`: the owner lets go of what holds the page (a ring's buffers, a held
    copy, pipes); a handle native's mechanism already ended says when."""
    held = t.pins.get(st.handle or "")
    if held is not None and held.ended is not None:
        return Outcome(True), [Event(f"{st.handle}: already ended at {held.ended}")]
    if held is None or not held.live:
        return Outcome(False, error="EINVAL"), [Event(f"{st.handle} holds no page ({gone})")]
    owner = t.ctl.procs[held.owner]
    reply, events = t.cmd(owner, st, {"op": st.op, "name": held.name})
    out = t.outcome(reply, owner)
    if out.ok:
        held.live = False
    return out, events


def _device(t: Translator, st: S.Step, op: str, **extra: Any) -> Reply:
    held = t.pins.get(st.handle or "")
    if held is None or not held.live:
        out = Outcome(False, error="EFAULT")
        return out, [Event(f"{st.handle} holds no page (its pin failed or was released): no DMA")]
    owner = t.ctl.procs[held.owner]
    if held.how == COPY and op == "dma_read":
        return _held_read(t, st, held)
    reply, events = t.cmd(owner, st, {"op": op, "name": held.name, "path": t.ctl.path("dma"), **extra})
    out = t.outcome(reply, owner, "value")
    if held.how == DIO and reply is not None and reply.get("early"):
        raise Unrunnable(f"not observable natively: `{st.text}`: the O_DIRECT read standing for {held.name} had "
                         "completed before this step, so it was not in flight across the steps in between")
    if held.how == DIO:
        held.live, held.ended = False, (f"step {st.number}, when the O_DIRECT read standing for it completed "
                                        "(the block layer put the reference then)")
    elif held.how == COPY and reply is not None and reply.get("again"):
        events.append(_repinned(t, st, held))
    elif held.how == COPY:  # a held write pin's last device write: the copy ran, the syscall returned, the kernel unpinned
        held.live, held.ended = False, f"step {st.number}, {COPY_RAN}"
    return out, events


def _repinned(t: Translator, st: S.Step, pin: Pin) -> Event:
    """After a device write that is not a held pin's last, the kernel pinned the page again for
    the next iovec: it must be the same page (nothing ran in between), or the run is not the scenario."""
    target = t.ctl.procs.get(pin.target or "")
    e = pagemap.entry(target.pid, pin.addr, with_page=False) if target is not None and target.alive else None
    pfn = e.pfn if e is not None and e.present else None
    if pfn != pin.pfn:
        raise Unrunnable(f"not observable natively: `{st.text}`: the next iovec's pin_user_pages_remote found "
                         f"pfn {pfn:#x} at {pin.target}'s page, not the pinned pfn {pin.pfn:#x}" if pfn and pin.pfn
                         else f"not observable natively: `{st.text}`: the page to pin again is gone")
    return Event(f"pinned again: pfn {pfn:#x}, the same page (pagemap of {pin.target})")


def _held_read(t: Translator, st: S.Step, pin: Pin) -> Reply:
    """A device read through a held pin: the pinned page read where the scenario maps it (the pin
    stays); where nobody maps it any more and the pin is not used again, the waiting copy itself
    reads it (the pin ends); otherwise it cannot be observed."""
    got = read_through(t, pin)
    if got is not None:
        value, where = got
        return Outcome(True, value=value), [Event(f"the pinned page (pfn {pin.pfn:#x}) read where {where} maps it: "
                                                  f"{value}")]
    later = [s for s in t.ctl.sc.steps if s.number > st.number and s.handle == pin.name]
    if later:
        raise Unrunnable(f"not observable natively: `{st.text}`: no process of the scenario maps the pinned page "
                         f"any more, and the pin is used again later (reading it through the waiting copy ends it)")
    owner = t.ctl.procs[pin.owner]
    reply, events = t.cmd(owner, st, {"op": "held_read", "name": pin.name})
    out = t.outcome(reply, owner, "value")
    pin.live, pin.ended = False, f"step {st.number}, {COPY_RAN}"
    return out, events


def dma_write(t: Translator, st: S.Step) -> Reply:
    return _device(t, st, "dma_write", value=st.value)


def dma_read(t: Translator, st: S.Step) -> Reply:
    return _device(t, st, "dma_read")


# --- FOLL_GET references (plan.py: read, not fast, the process's own page, outside par blocks) ---
def gup(t: Translator, st: S.Step) -> Reply:
    """`gup(buf, read, count=N)`: N pipe buffers holding the page (vmsplice: get_user_pages_fast,
    FOLL_GET without FOLL_WRITE, falling back to the slow path as the model's GUP is), until `put`.
    `gup(buf, write)`: an O_DIRECT read in flight (before 6.5), until its device write."""
    assert st.task is not None and st.addr is not None
    if "write" in st.flags:
        return _gup_dio(t, st)
    p = t.ctl.procs[st.task]
    name = st.bind or f"gup@{st.number}"
    addr = t.address(st.addr)
    out, events = t.simple(st, {"op": "gup", "name": name, "addr": addr, "count": st.count})
    if out.ok:
        events.append(_remember(t, Pin(name, p.name, addr, None, write=False, offset=st.addr.offset, how=PIPES), p,
                                "right after the vmsplice"))
    return out, events + _pinned_page(t, st, p)


def _gup_dio(t: Translator, st: S.Step) -> Reply:
    """The block layer's FOLL_GET|FOLL_WRITE reference of an O_DIRECT read, in flight behind the
    guest's dm-delay.  The disk holds what the handle's one device write writes (plan.py): the
    read's completion is that write, landing in whatever page the bio holds by then."""
    assert st.task is not None and st.addr is not None
    p = t.ctl.procs[st.task]
    name = st.bind or f"gup@{st.number}"
    addr = t.address(st.addr)
    value = next(s.value for s in t.ctl.sc.steps if s.op == "dma_write" and s.handle == name)
    path = os.path.join(t.ctl.tmp, f"dio-{st.number}")
    write_direct(path, (value or 0).to_bytes(8, "little"))
    reply, events = t.cmd(p, st, {"op": "gup_dio", "name": name, "addr": addr, "path": path})
    out = t.outcome(reply, p)
    if out.ok and reply is not None and not reply.get("in_flight"):
        raise Unrunnable(f"not observable natively: `{st.text}`: the O_DIRECT read completed inside io_submit, "
                         "so no request was in flight to stand for the reference (no dm-delay here?)")
    if out.ok:
        events.append(_remember(t, Pin(name, p.name, addr, None, how=DIO), p, "right after io_submit"))
    return out, events + _pinned_page(t, st, p)


def put(t: Translator, st: S.Step) -> Reply:
    return _release(t, st, "its GUP failed or was released")


# --- O_DIRECT (only where the run's directory takes it: host.odirect; the planner skips otherwise) --
def odirect(t: Translator, st: S.Step) -> Reply:
    """read(2) / write(2) of the file's first page with O_DIRECT into / from the buffer's page:
    one page-aligned 4 KiB I/O on the scenario's disk file, in the run's private directory.
    Sequentially a pread/pwrite: the model's GUP, transfer and completion back to back.  In a
    `par` block a Linux AIO request (io_submit; ``aio.py`` says why not io_uring), in flight
    while the other actors run, reaped when the step ends.  What is observed is the page's
    identity (pagemap, before and after) and the bytes; whether the bio held a FOLL_GET
    reference or a FOLL_PIN pin is the kernel's (a7e689dd1c06, 6.5), not visible from user space."""
    assert st.addr is not None and st.file is not None
    in_par = getattr(t.block, "actor", None) is not None
    cmd = {"op": st.op, "addr": t.address(st.addr), "path": t.ctl.files[st.file], "async": in_par}
    return t.simple(st, cmd, None, st.addr)


# --- pipes and remote access ---------------------------------------------------------------------
def vmsplice(t: Translator, st: S.Step) -> Reply:
    assert st.addr is not None
    return t.simple(st, {"op": "vmsplice", "addr": t.address(st.addr), "pipe": st.pipe}, None, st.addr)


def pipe_read(t: Translator, st: S.Step) -> Reply:
    return t.simple(st, {"op": "pipe_read", "pipe": st.pipe}, "value")


def _remote(t: Translator, st: S.Step, op: str, **extra: Any) -> Reply:
    assert st.addr is not None
    target = t.ctl.procs.get(st.addr.proc)
    if target is None or not target.alive:
        # never hand a dead process's PID to a syscall: it is a zombie now, but be safe
        out = Outcome(False, error="ESRCH")
        return out, [Event(f"{st.addr.proc} is not alive → ESRCH")]
    return t.simple(st, {"op": op, "pid": target.pid, "addr": t.address(st.addr), **extra}, "value", st.addr)


def process_vm_writev(t: Translator, st: S.Step) -> Reply:
    return _remote(t, st, "process_vm_writev", value=st.value)


def process_vm_readv(t: Translator, st: S.Step) -> Reply:
    return _remote(t, st, "process_vm_readv")


def proc_mem_write(t: Translator, st: S.Step) -> Reply:
    return _remote(t, st, "proc_mem_write", value=st.value)


# --- reclaim (only with swap; the planner skips these otherwise) -----------------------------------
def _reclaim(t: Translator, st: S.Step, advice: str) -> Reply:
    """process_madvise(MADV_PAGEOUT or MADV_WILLNEED) on one page of another process.

    MADV_PAGEOUT returns 0 whether or not reclaim took the page (it keeps a pinned
    one): the swap-out is done only when pagemap shows the page swapped afterwards,
    as the kernel's own selftests judge it.  The page's PFN right before is
    remembered: a swapped-out PTE shows none, and the swap cache is that page's.
    """
    assert st.addr is not None
    target = t.ctl.procs.get(st.addr.proc)
    if target is None or not target.alive:
        out = Outcome(False, error="ESRCH")
        return out, [Event(f"{st.addr.proc} is not alive")]
    addr = t.address(st.addr)
    before = pagemap.entry(target.pid, addr, with_page=False)
    try:
        pidfd = os.pidfd_open(target.pid)
    except OSError as e:
        return Outcome(False, error=str(e)), [Event(f"pidfd_open: {e}")]
    try:
        L.process_madvise(pidfd, addr, L.PAGE, L.MADV[advice])
        out = Outcome(True)
        events = [Event(f"process_madvise({target.name}, {addr:#x}, MADV_{advice.upper()}) → 0")]
    except OSError as e:
        out = Outcome(False, error=e.strerror)
        events = [Event(f"process_madvise MADV_{advice.upper()}: {e.strerror}")]
    finally:
        os.close(pidfd)
    if advice == "pageout" and out.ok:
        after = pagemap.entry(target.pid, addr, with_page=False)
        if after is not None and after.swapped:
            if before is not None and before.pfn:
                t.swapped_pfns[(target.name, addr)] = before.pfn
        else:
            out = Outcome(False, error="EBUSY")
            events.append(Event("reclaim kept the page: pagemap does not show it swapped out "
                                "(MADV_PAGEOUT returns 0 either way)"))
    snap = t.snapshot(target, st.addr)
    if snap:
        events.append(Event(snap))
    return out, events


def swapout(t: Translator, st: S.Step) -> Reply:
    return _reclaim(t, st, "pageout")


def swapin(t: Translator, st: S.Step) -> Reply:
    return _reclaim(t, st, "willneed")


# --- KSM (only where ksmd runs for the run: a guest's; the planner skips these otherwise) ----------------
KSM_SCANS = 6  # full scans of ksmd to wait for: a page is merged in its second scan with a stable checksum
#: and at least this long: in a 5.10 guest (pages_to_scan 10000, sleep_millisecs 0) two fresh identical
#: pages were merged only after 95-878 full_scans, 3-11 ms; after 6 scans a merge was once called refused
#: and happened a step later (a DISAGREE).  Only a refused merge waits this long.
KSM_SETTLE = 1.0
KSM_SECONDS = 20.0  # and at most this long (a TCG guest on a loaded host scans slowly)
KSM_DIR = "/sys/kernel/mm/ksm"
KSM_FULL_SCANS = f"{KSM_DIR}/full_scans"
#: more pages than a per-CPU LRU-add batch holds (include/linux/pagevec.h PAGEVEC_SIZE: 15 in 6.6.14,
#: 31 later; the 6.9 boundary is not confirmed)
LRU_BATCH_PAGES = 64


def _push_lru_batch() -> None:
    """Fault LRU_BATCH_PAGES pages of our own on this CPU (the run's, controller._one_cpu) and unmap
    them: a page the run just faulted in sits in the CPU's LRU-add batch, which holds a reference to it
    (5.10 __lru_cache_add, 6.1+ folio_add_lru) until the batch fills and is moved to the LRU; KSM's
    write_protect_page refuses a page whose refcount is above its mapcount + 1, so until then ksmd
    cannot merge it.  On a running system other activity fills the batch soon; here nothing else runs."""
    length = LRU_BATCH_PAGES * L.PAGE
    addr = L.mmap(0, length, L.PROT_READ | L.PROT_WRITE, L.MAP_PRIVATE | L.MAP_ANONYMOUS)
    try:
        L.madvise(addr, length, L.MADV["nohugepage"])
        for i in range(LRU_BATCH_PAGES):
            ctypes.c_uint64.from_address(addr + i * L.PAGE).value = 1
    finally:
        L.munmap(addr, length)


def _full_scans() -> int | None:
    try:
        with open(KSM_FULL_SCANS) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _merged(t: Translator, a: S.Addr, b: S.Addr) -> tuple[bool, str]:
    """Whether both addresses map one KSM page now (pagemap: the same PFN; kpageflags: KPF_KSM)."""
    seen = []
    for x in (a, b):
        p = t.ctl.procs.get(x.proc)
        e = pagemap.entry(p.pid, t.address(x)) if p is not None and p.alive else None
        seen.append(e)
    ea, eb = seen
    if ea is None or eb is None or not ea.present or not eb.present:
        return False, "not both present"
    if probe().kpf_ksm is not None:  # KPF_KSM is set on every anonymous page here: the PFN alone says it
        same = ea.pfn == eb.pfn
        return same, f"pfn {ea.pfn:#x} and {eb.pfn:#x}" + (" (one page; kpageflags' KSM bit unusable here)"
                                                          if same else "")
    same = ea.pfn == eb.pfn and bool(ea.kflag(pagemap.KPF_KSM))
    return same, f"pfn {ea.pfn:#x} and {eb.pfn:#x}" + (", KSM page" if same else "")


def ksm_merge(t: Translator, st: S.Step) -> Reply:
    """ksmd merges when it scans, not when asked: the step lets ksmd run (``ksmd_knobs`` pauses it
    between ksmd steps) and waits, bounded, until pagemap shows both pages on one KSM page."""
    assert st.addr is not None and st.addr2 is not None
    a, b = st.addr, st.addr2
    return _ksmd(t, st, (a, b), lambda: _merged(t, a, b), "merged them")


def ksm_merge_zero(t: Translator, st: S.Step) -> Reply:
    """ksmd with use_zero_pages (``use_zero_pages`` set it for the run): a zero-filled page is
    replaced by the shared zero page."""
    assert st.addr is not None
    a = st.addr
    return _ksmd(t, st, (a,), lambda: _zero_mapped(t, a), "mapped the zero page there")


@contextlib.contextmanager
def ksmd_knobs(sc: S.Scenario) -> Iterator[None]:
    """In the model ksmd acts at its steps only; the guest's runs continuously and would merge two
    identical pages the moment they are written, before the steps in between (a swap-out, a GUP)
    the scenario puts there.  So for a run with ksmd steps it is paused (run=0) and let run during
    each of them (``_ksmd``); use_zero_pages is on for a run with `ksm_merge_zero`.  Both are put
    back after.  The knobs are machine-wide: only in our guest (host.ksm_zero; plan.py refuses the
    ksmd steps elsewhere, and a host's ksmd is not ours to wait for)."""
    ops = {st.op for st in sc.steps}
    if not ops & {"ksm_merge", "ksm_merge_zero"} or probe().ksm_zero is not None:
        yield
        return
    saved = {k: _ksm_knob(k) for k in ("use_zero_pages", "run")}
    _ksm_knob("run", "0")
    if "ksm_merge_zero" in ops:
        _ksm_knob("use_zero_pages", "1")
    try:
        yield
    finally:
        for k, v in saved.items():
            _ksm_knob(k, v)


def prctl(t: Translator, st: S.Step) -> Reply:
    """prctl(PR_SET_MEMORY_MERGE, 1 or 0) in the step's process: ksm_enable_merge_any /
    ksm_disable_merge_any (6.4+); EINVAL before, as the model says."""
    return t.simple(st, {"op": "prctl", "enable": "enable" in st.flags})


def _ksm_knob(name: str, value: str | None = None) -> str:
    """Read (and with ``value``, first write) /sys/kernel/mm/ksm/NAME: in a guest only."""
    path = os.path.join(KSM_DIR, name)
    if value is not None:
        if not in_guest():  # a machine-wide knob: never a host's, whatever called this
            raise Unrunnable(f"unsupported on this host: {path} is machine-wide; only our guest sets it")
        with open(path, "w") as f:
            f.write(value)
    with open(path) as f:
        return f.read().strip()


def _zero_mapped(t: Translator, a: S.Addr) -> tuple[bool, str]:
    p = t.ctl.procs.get(a.proc)
    e = pagemap.entry(p.pid, t.address(a)) if p is not None and p.alive else None
    if e is None or not e.present:
        return False, "not present"
    return bool(e.zero), f"pfn {e.pfn:#x}" + (" (the zero page)" if e.zero else "")


def _ksmd(t: Translator, st: S.Step, addrs: tuple[S.Addr, ...], done: Callable[[], tuple[bool, str]],
          did: str) -> Reply:
    """Wait for ksmd to do what ``done`` checks.  Not done after KSM_SCANS full scans and KSM_SETTLE
    seconds: the kernel did not, and the step fails as the model's refused merge does.  KSM_SECONDS
    gone before that many scans: ksmd was too slow to tell, and the run cannot go on (Unrunnable),
    never a refusal the kernel did not show."""
    for x in addrs:
        p = t.ctl.procs.get(x.proc)
        if p is None or not p.alive:
            return Outcome(False, error="ESRCH"), [Event(f"{x.proc} is not alive")]
        flags = pagemap.vm_flags(p.pid, t.address(x))
        if flags is not None and "mg" not in flags:  # ksmd scans VM_MERGEABLE VMAs only: nothing to wait for
            return Outcome(False, error="not mergeable"), [Event(f"smaps: {x}'s VMA is not VM_MERGEABLE (no `mg` in "
                                                                 "VmFlags): ksmd never scans it")]
    merged, what = done()
    if merged:
        return Outcome(True), [Event(f"already {did.split()[0]} when the step began: {what}")]
    paused = probe().ksm_zero is None and _ksm_knob("run") == "0"  # (ksmd_knobs: only in our guest)
    if paused:
        _ksm_knob("run", "1")
    try:
        return _wait_ksmd(done, did, what)
    finally:
        if paused:
            _ksm_knob("run", "0")


def _wait_ksmd(done: Callable[[], tuple[bool, str]], did: str, what: str) -> Reply:
    merged = False
    _push_lru_batch()
    start, t0 = _full_scans(), time.monotonic()
    scans = 0
    while not merged:
        now = _full_scans()
        scans = 0 if now is None or start is None else now - start
        waited_s = time.monotonic() - t0
        if (scans >= KSM_SCANS and waited_s >= KSM_SETTLE) or waited_s > KSM_SECONDS:
            break
        time.sleep(0.005)
        merged, what = done()
    waited = f"{time.monotonic() - t0:.2f} s, {scans} full scans of ksmd"
    pushed = Event(f"{LRU_BATCH_PAGES} pages of our own faulted on this CPU first: its LRU-add batch "
                   "no longer holds a reference to the run's pages")
    if merged:
        return Outcome(True), [pushed, Event(f"ksmd {did} ({waited}): {what}")]
    if scans < KSM_SCANS:
        raise Unrunnable(f"not observed: ksmd made {scans} full scans in {waited.split(',')[0]}, fewer than the "
                         f"{KSM_SCANS} that tell a refused merge from a slow one")
    error = f"not merged in {waited}"
    return Outcome(False, error=error), [pushed, Event(f"{error}: {what}")]


#: op name → its native translation; every other op is refused by plan.py
OPS: dict[str, Callable[[Translator, S.Step], Reply]] = {
    "mmap": mmap,
    "munmap": munmap,
    "mprotect": mprotect,
    "madvise": madvise,
    "mremap": mremap,
    "read": read,
    "write": write,
    "fork": fork,
    "exit": exit_,
    "pin": pin,
    "io_uring_register": io_uring_register,
    "unpin": unpin,
    "gup": gup,
    "put": put,
    "dma_write": dma_write,
    "dma_read": dma_read,
    "odirect_read": odirect,
    "odirect_write": odirect,
    "vmsplice": vmsplice,
    "pipe_read": pipe_read,
    "process_vm_writev": process_vm_writev,
    "process_vm_readv": process_vm_readv,
    "proc_mem_write": proc_mem_write,
    "swapout": swapout,
    "swapin": swapin,
    "ksm_merge": ksm_merge,
    "ksm_merge_zero": ksm_merge_zero,
    "prctl": prctl,
}
