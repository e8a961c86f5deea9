"""The controller: drives the scenario's real processes step by step.

Each scenario process is a worker (cowdsl.native.worker), an initial one
forked from here, a child forked by its parent worker.  The controller talks
to each over a SOCK_SEQPACKET socketpair, one command per step, and waits for
the answer with a timeout.  It chooses every mapping's address (a fixed slot
per mmap step, never reused, with unmapped gaps between slots), so that a
child inherits its parent's addresses and a process that lost a mapping
faults for real at the old address.

Safety:
- every worker is in one process group of our own and this process is a
  child subreaper for the run, so orphans of dead workers come back to us;
- dead workers are left as zombies (waitid WNOWAIT, or /proc/PID/stat for a
  worker's child) until the end, so no PID is reused while the run can still
  name it;
- ``close()`` (always called: errors, timeouts, Ctrl-C) closes the channels,
  SIGKILLs every worker by PID and the group, reaps them all, closes the
  pipes and removes the private temporary directory, which holds every file
  the run writes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import tempfile
import time

from attrs import define, field, frozen

from cowdsl import scenario as S
from cowdsl.native import libc as L
from cowdsl.native import pagemap, worker
from cowdsl.semantics.machine import Event
from cowdsl.semantics.state import Outcome

STRIDE = 1 << 20  # one slot per mmap step: 64 pages at most, then an unmapped gap
DEFAULT_BASE = 0x100000000000


@frozen
class Limits:
    """Bounds on what one native run may use."""

    max_processes: int = 16
    max_pages: int = 1024  # pages mapped by mmap steps, all processes together
    max_pages_per_mapping: int = 64  # one mapping fits its address slot (STRIDE) with a gap after it
    max_steps: int = 400
    step_timeout: float = 5.0  # seconds for one step's answer
    worker_alarm: int = 120  # seconds: a worker kills itself after this (dead man's switch)


class StepTimeout(Exception):
    pass


class Died(Exception):
    pass


@define
class Proc:
    name: str
    pid: int
    sock: socket.socket | None
    ours: bool  # a direct child of the controller
    mappings: dict = field(factory=dict)  # name -> (addr, pages)
    threads: tuple = ()
    alive: bool = True
    segv: bool = False
    status: str = ""
    faults: int = 0

    def addr(self, mapping: str, index: int) -> int | None:
        got = self.mappings.get(mapping)
        return None if got is None else got[0] + index * L.PAGE


@define
class Pin:
    name: str
    owner: str
    addr: int
    pfn: int | None
    live: bool = True


def _free_base(span: int) -> int:
    """An address range free in this process (the workers are its forks)."""
    vmas = pagemap.maps("self") or []
    base = DEFAULT_BASE
    while any(v.start < base + span and base < v.end for v in vmas):
        base += 1 << 40
    return base


class Controller:
    def __init__(self, sc: S.Scenario, limits: Limits, deadline: float):
        self.sc = sc
        self.limits = limits
        self.deadline = deadline
        self.procs: dict[str, Proc] = {}
        self.pins: dict[str, Pin] = {}
        self.results: dict[str, Outcome] = {}
        self.pipes: dict[str, tuple[int, int]] = {}
        self.files: dict[str, str] = {}
        self.pgid: int | None = None
        self.all_pids: set[int] = set()
        self.tmp = tempfile.mkdtemp(prefix="cowdsl-native-")
        self.base = _free_base((len(sc.steps) + 2) * STRIDE)
        self.unmapped = self.base  # slot 0: never mapped
        self._counter = 0
        self._prev_subreaper = None
        self.leaks: list[str] = []

    # --- set-up -----------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._prev_subreaper = L.get_subreaper()
            L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
        except OSError:
            self._prev_subreaper = None
        for fname, contents in self.sc.files:
            path = os.path.join(self.tmp, f"file-{fname}")
            with open(path, "wb") as f:
                for v in contents:
                    f.write(struct.pack("<Q", v) + bytes(L.PAGE - 8))
            self.files[fname] = path
        for p in self.sc.pipes:
            self.pipes[p] = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        threads = {}
        for t, proc in self.sc.threads:
            threads.setdefault(proc, []).append(t)
        for name in self.sc.processes:
            self.spawn(name, tuple(threads.get(name, ())))

    def spawn(self, name: str, threads: tuple) -> None:
        ctl, wk = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        keep = [wk.fileno()] + [fd for pair in self.pipes.values() for fd in pair]
        pgid = self.pgid or 0
        pid = os.fork()
        if pid == 0:  # pragma: no cover  (runs in the worker)
            try:
                import resource

                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                worker.start(name, wk, keep, dict(self.pipes), threads, pgid, self.limits.worker_alarm)
            finally:
                os._exit(1)
        wk.close()
        self.all_pids.add(pid)
        try:
            os.setpgid(pid, pgid or pid)
        except OSError:
            pass
        if self.pgid is None:
            self.pgid = pid
        p = Proc(name, pid, ctl, True, threads=threads)
        self.procs[name] = p
        hello = self.wait(p, self.limits.step_timeout)
        if "hello" not in hello:
            raise RuntimeError(f"worker {name} did not start")

    # --- talking to workers --------------------------------------------------------
    def timeout(self) -> float:
        return max(0.0, min(self.limits.step_timeout, self.deadline - time.monotonic()))

    def wait(self, p: Proc, timeout: float) -> dict:
        import select

        r, _, _ = select.select([p.sock], [], [], timeout)
        if not r:
            raise StepTimeout(f"no answer from {p.name} (pid {p.pid}) in {timeout:.1f}s")
        try:
            msg, fds = worker.recv(p.sock)
        except (ConnectionError, OSError):
            msg, fds = None, []
        for fd in fds:
            os.close(fd)
        if msg is None:
            raise Died(p.name)
        return msg

    def call(self, p: Proc, cmd: dict, fds=()) -> dict:
        if p.sock is None:
            raise Died(p.name)
        try:
            worker.send(p.sock, cmd, fds)
        except (ConnectionError, OSError):  # it died before this step (EPIPE)
            raise Died(p.name) from None
        return self.wait(p, self.timeout())

    # --- deaths -----------------------------------------------------------------------
    def _status(self, p: Proc):
        """(exited_code, signal) once p is dead, without reaping it; None while it runs."""
        if p.ours:
            try:
                r = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                r = None
            if r is not None:
                if r.si_code == os.CLD_EXITED:
                    return r.si_status, None
                return None, r.si_status
        try:
            with open(f"/proc/{p.pid}/stat") as f:
                stat = f.read()
        except OSError:
            return -1, None  # gone: reaped by someone else
        rest = stat[stat.rindex(")") + 2:].split()
        if rest[0] not in ("Z", "X"):
            if not p.ours:  # maybe reparented to us (its parent died): ask again as its parent
                try:
                    r = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                    if r is not None:
                        return (r.si_status, None) if r.si_code == os.CLD_EXITED else (None, r.si_status)
                except ChildProcessError:
                    pass
            return None
        code = int(rest[49])
        return (code >> 8, None) if code & 0x7F == 0 else (None, code & 0x7F)

    def died(self, p: Proc) -> str:
        """Record that p is gone; returns how it ended."""
        deadline = time.monotonic() + 2.0
        st = self._status(p)
        while st is None and time.monotonic() < deadline:
            time.sleep(0.001)
            st = self._status(p)
        p.alive = False
        if p.sock is not None:
            p.sock.close()
            p.sock = None
        for pin in self.pins.values():
            if pin.owner == p.name:
                pin.live = False
        if st is None:
            p.status = "unknown end"
        elif st[1] is not None:
            p.segv = st[1] == signal.SIGSEGV
            p.status = f"killed by {signal.Signals(st[1]).name}"
        else:
            p.status = f"exited with status {st[0]}"
        return p.status

    def kill(self, p: Proc) -> None:
        if p.alive:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except OSError:
                pass
            self.died(p)

    # --- one step ---------------------------------------------------------------------
    def path(self, what: str) -> str:
        self._counter += 1
        return os.path.join(self.tmp, f"{what}-{self._counter}")

    def address(self, a: S.Addr) -> int:
        p = self.procs.get(a.proc)
        got = p.addr(a.mapping, a.index) if p is not None else None
        return self.unmapped if got is None else got

    def snapshot(self, p: Proc, a: S.Addr) -> str | None:
        if not p.alive:
            return None
        e = pagemap.entry(p.pid, self.address(a))
        return None if e is None else f"pagemap {a.proc}.{a.mapping}[{a.index}]: {e.describe()}"

    def step(self, st: S.Step) -> tuple[Outcome, list[Event]]:
        """Run one step; raises StepTimeout (the run cannot go on)."""
        if st.task is not None:
            p = self.procs.get(st.task)
            if p is None or not p.alive:
                why = "was killed by SIGSEGV" if p is not None and p.segv else (
                    "has exited" if p is not None else "does not exist")
                out = Outcome(False, error=f"not run: {st.task} {why}")
                return out, [Event(out.error)]
        return getattr(self, "op_" + st.op)(st)

    def _cmd(self, p: Proc, st: S.Step, cmd: dict, fds=()) -> tuple[dict | None, list[Event]]:
        """Send a command for step st; a death is recorded and returned as (None, events)."""
        thread = st.actor if st.actor != st.task and st.actor in p.threads else None
        cmd = {**cmd, "thread": thread}
        try:
            reply = self.call(p, cmd, fds)
        except Died:
            how = self.died(p)
            return None, [Event(f"{p.name} (pid {p.pid}) {how}")]
        except StepTimeout:
            self.kill(p)
            raise
        return reply, [Event(f"{p.name} (pid {p.pid}){' thread ' + thread if thread else ''}: {e}")
                       for e in reply.get("events", [])]

    @staticmethod
    def _outcome(reply: dict | None, p: Proc, value_key: str | None = None) -> Outcome:
        if reply is None:
            return Outcome(False, error="SIGSEGV" if p.segv else p.status)
        if not reply["ok"]:
            return Outcome(False, error=reply.get("error"))
        return Outcome(True, reply.get(value_key) if value_key else None)

    def _simple(self, st: S.Step, cmd: dict, value_key=None, addr: S.Addr | None = None):
        p = self.procs[st.task]
        reply, events = self._cmd(p, st, cmd)
        out = self._outcome(reply, p, value_key)
        if reply is not None and "faults" in reply:
            p.faults += reply["faults"]
        if addr is not None:
            target = self.procs.get(addr.proc)
            snap = self.snapshot(target, addr) if target is not None else None
            if snap:
                events.append(Event(snap))
        return out, events

    # --- ops: mappings -----------------------------------------------------------------
    def op_mmap(self, st):
        p = self.procs[st.task]
        addr = self.base + st.number * STRIDE
        cmd = {"op": "mmap", "addr": addr, "pages": st.pages, "shared": "shared" in st.flags,
               "write": "rw" in st.flags, "path": self.files.get(st.file) if st.file else None}
        out, events = self._simple(st, cmd)
        if out.ok:
            p.mappings[st.mapping] = (addr, st.pages)
        return out, events

    def _whole(self, st, op, **extra):
        p = self.procs[st.task]
        addr, pages = p.mappings.get(st.mapping, (self.unmapped, 1))
        return self._simple(st, {"op": op, "addr": addr, "pages": pages, **extra})

    def op_munmap(self, st):
        return self._whole(st, "munmap")

    def op_mprotect(self, st):
        return self._whole(st, "mprotect", write="rw" in st.flags)

    def op_madvise(self, st):
        advice = next(iter(st.flags))
        return self._whole(st, "madvise", advice=advice)

    # --- ops: CPU accesses --------------------------------------------------------------
    def op_read(self, st):
        return self._simple(st, {"op": "read", "addr": self.address(st.addr)}, "value", st.addr)

    def op_write(self, st):
        return self._simple(st, {"op": "write", "addr": self.address(st.addr), "value": st.value}, None, st.addr)

    # --- ops: fork and exit ---------------------------------------------------------------
    def op_fork(self, st):
        parent = self.procs[st.task]
        if sum(1 for _ in self.procs) >= self.limits.max_processes:
            out = Outcome(False, error=f"native limit: {self.limits.max_processes} processes")
            return out, [Event(out.error)]
        ctl, wk = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            reply, events = self._cmd(parent, st, {"op": "fork", "child": st.bind}, fds=[wk.fileno()])
        finally:
            wk.close()
        if reply is None or not reply["ok"]:
            ctl.close()
            return self._outcome(reply, parent), events
        pid = reply["pid"]
        self.all_pids.add(pid)
        child = Proc(st.bind, pid, ctl, False, mappings=dict(parent.mappings))
        self.procs[st.bind] = child
        try:
            self.wait(child, self.timeout())
        except Died:
            events.append(Event(f"{child.name} (pid {pid}) {self.died(child)} before it started"))
            return Outcome(False, error=child.status), events
        except StepTimeout:
            self.kill(child)
            raise
        for name, (_addr, pages) in list(parent.mappings.items())[:4]:
            for i in range(min(pages, 2)):
                for q in (parent, child):
                    snap = self.snapshot(q, S.Addr(q.name, name, i))
                    if snap:
                        events.append(Event(snap))
        return Outcome(True), events

    def op_exit(self, st):
        p = self.procs[st.task]
        reply, events = self._cmd(p, st, {"op": "exit"})
        if reply is not None:  # it answered instead of exiting
            return Outcome(False, error="did not exit"), events
        return Outcome(True), events

    # --- ops: pins ---------------------------------------------------------------------------
    def op_pin(self, st):
        p = self.procs[st.task]
        name = st.bind or f"pin@{st.number}"
        addr = self.address(st.addr)
        out, events = self._simple(st, {"op": "pin", "name": name, "addr": addr})
        if out.ok:
            e = pagemap.entry(p.pid, addr, with_page=False)
            pfn = e.pfn if e is not None and e.present else None
            self.pins[name] = Pin(name, p.name, addr, pfn)
            events.append(Event(f"pinned page: pfn {pfn:#x} (read from pagemap right after the registration)"
                                if pfn else "pinned page: pfn unknown"))
        snap = self.snapshot(p, st.addr)
        if snap:
            events.append(Event(snap))
        return out, events

    def op_unpin(self, st):
        pin = self.pins.get(st.handle)
        if pin is None or not pin.live:
            out = Outcome(False, error="EINVAL")
            return out, [Event(f"{st.handle} holds no page (its pin failed or was released)")]
        owner = self.procs[pin.owner]
        reply, events = self._cmd(owner, st, {"op": "unpin", "name": pin.name})
        out = self._outcome(reply, owner)
        if out.ok:
            pin.live = False
        return out, events

    def _device(self, st, op, **extra):
        pin = self.pins.get(st.handle)
        if pin is None or not pin.live:
            out = Outcome(False, error="EFAULT")
            return out, [Event(f"{st.handle} holds no page (its pin failed or was released): no DMA")]
        owner = self.procs[pin.owner]
        reply, events = self._cmd(owner, st, {"op": op, "name": pin.name, "path": self.path("dma"), **extra})
        return self._outcome(reply, owner, "value"), events

    def op_dma_write(self, st):
        return self._device(st, "dma_write", value=st.value)

    def op_dma_read(self, st):
        return self._device(st, "dma_read")

    # --- ops: pipes and remote access --------------------------------------------------------
    def op_vmsplice(self, st):
        return self._simple(st, {"op": "vmsplice", "addr": self.address(st.addr), "pipe": st.pipe}, None, st.addr)

    def op_pipe_read(self, st):
        return self._simple(st, {"op": "pipe_read", "pipe": st.pipe}, "value")

    def _remote(self, st, op, **extra):
        target = self.procs.get(st.addr.proc)
        if target is None or not target.alive:
            # never hand a dead process's PID to a syscall: it is a zombie now, but be safe
            out = Outcome(False, error="ESRCH")
            return out, [Event(f"{st.addr.proc} is not alive → ESRCH")]
        return self._simple(st, {"op": op, "pid": target.pid, "addr": self.address(st.addr), **extra},
                            "value", st.addr)

    def op_process_vm_writev(self, st):
        return self._remote(st, "process_vm_writev", value=st.value)

    def op_process_vm_readv(self, st):
        return self._remote(st, "process_vm_readv")

    def op_proc_mem_write(self, st):
        return self._remote(st, "proc_mem_write", value=st.value)

    # --- ops: reclaim (only with swap; the planner skips them otherwise) ------------------------
    def _reclaim(self, st, advice):
        target = self.procs.get(st.addr.proc)
        if target is None or not target.alive:
            out = Outcome(False, error="ESRCH")
            return out, [Event(f"{st.addr.proc} is not alive")]
        addr = self.address(st.addr)
        try:
            pidfd = os.pidfd_open(target.pid)
        except OSError as e:
            return Outcome(False, error=str(e)), [Event(f"pidfd_open: {e}")]
        try:
            L.process_madvise(pidfd, addr, L.PAGE, L.MADV[advice])
            out = Outcome(True)
            events = [Event(f"process_madvise({target.name}, {addr:#x}, MADV_{advice.upper()})")]
        except OSError as e:
            out = Outcome(False, error=e.strerror)
            events = [Event(f"process_madvise MADV_{advice.upper()}: {e.strerror}")]
        finally:
            os.close(pidfd)
        snap = self.snapshot(target, st.addr)
        if snap:
            events.append(Event(snap))
        return out, events

    def op_swapout(self, st):
        return self._reclaim(st, "pageout")

    def op_swapin(self, st):
        return self._reclaim(st, "willneed")

    def op_gup(self, st):  # the planner never lets these through
        raise NotImplementedError("gup has no native mechanism")

    op_put = op_gup

    # --- for the observation ----------------------------------------------------------------
    def dma_value(self, pin: Pin) -> int | None:
        owner = self.procs.get(pin.owner)
        if owner is None or not owner.alive or not pin.live:
            return None
        try:
            reply = self.call(owner, {"op": "dma_read", "name": pin.name, "path": self.path("observe"),
                                      "thread": None})
        except Died:
            self.died(owner)
            return None
        return reply.get("value") if reply.get("ok") else None

    # --- tear-down ----------------------------------------------------------------------------
    def close(self) -> None:
        """Kill and reap every process of the run, close everything, remove the temp dir."""
        for p in self.procs.values():
            if p.sock is not None:
                p.sock.close()
                p.sock = None
        for pid in self.all_pids:
            if self._in_group(pid):  # alive or an unreaped zombie of ours: the PID is still ours
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except OSError:
                pass
        self._reap()
        for r, w in self.pipes.values():
            for fd in (r, w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.pipes = {}
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self._prev_subreaper is not None:
            try:
                L.prctl(L.PR_SET_CHILD_SUBREAPER, self._prev_subreaper)
            except OSError:
                pass
            self._prev_subreaper = None

    def _in_group(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            return False
        return self.pgid is not None and int(stat[stat.rindex(")") + 2:].split()[2]) == self.pgid

    def _reap(self) -> None:
        if self.pgid is None:
            return
        deadline = time.monotonic() + 10.0
        while True:
            try:
                pid, _ = os.waitpid(-self.pgid, os.WNOHANG)
            except ChildProcessError:
                pid = -1
            if pid > 0:
                continue
            try:
                os.killpg(self.pgid, 0)
            except ProcessLookupError:
                return  # nobody of the group is left
            except OSError:
                return
            if time.monotonic() > deadline:
                self.leaks.append(f"process group {self.pgid} still has processes")
                return
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except OSError:
                pass
            time.sleep(0.002)
