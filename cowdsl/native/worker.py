"""The code that runs inside each scenario process.

A worker is a real process: an initial one is forked by the controller, a
child is forked by its parent worker when the scenario says ``fork()``.  It
waits for one command at a time on its SOCK_SEQPACKET channel, does it, and
answers.  A declared thread of the process is a real thread of the worker
with a channel of its own, so that it can run while the main thread does (a
`par` block).  A command of a `par` block waits at the block's gate first
(``cowdsl.native.barrier``): all of the block's actors are released at once.

What it must not do is perturb the memory under test: the tested pages are raw
mmap regions at addresses the controller chose; they are read and written
with one 8-byte load or store through ctypes at a fixed address, and no Python
object ever lives in them.  A CPU access that faults for real (SIGSEGV) kills
the worker, as it would kill the process in the scenario; the controller sees
it through the exit status.

Safety: the worker ignores SIGINT (the controller handles Ctrl-C and kills it),
exits when its channel reaches EOF (the controller is gone), and has an
alarm(2) as a dead man's switch.
"""

from __future__ import annotations

import ctypes
import errno
import faulthandler
import gc
import os
import pickle
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

try:
    import fcntl
    import resource
except ImportError:  # not a Unix (the playground's Pyodide): host.probe() says native cannot run here
    fcntl = None  # type: ignore[assignment]
    resource = None  # type: ignore[assignment]

from cowdsl.native import aio, barrier, heldpin, pagemap, uring
from cowdsl.native import libc as L

MSG_MAX = 1 << 16
F_SETPIPE_SZ = 1031
PIPE_REFS = 256  # pipe buffers per pipe: 1 MiB, the default pipe-max-size
PR_SET_MEMORY_MERGE = 67  # include/uapi/linux/prctl.h (6.4+, d7597f59d1d3)
PR_GET_MEMORY_MERGE = 68


Message = dict[str, Any]


def send(sock: socket.socket, msg: Message, fds: Sequence[int] = ()) -> None:
    data = pickle.dumps(msg)
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def recv(sock: socket.socket) -> tuple[Message | None, list[int]]:
    """(message, fds); message None on EOF."""
    data, fds, _flags, _addr = socket.recv_fds(sock, MSG_MAX, 4)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return pickle.loads(data), fds


def _errname(e: OSError) -> str:
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else str(e)


def _pfn(addr: int) -> int | None:
    """The PFN this process's pagemap shows at addr (None: not present, or hidden)."""
    e = pagemap.entry("self", addr, with_page=False)
    return e.pfn if e is not None and e.present and e.pfn else None


def _hex(pfn: int | None) -> str:
    return "unknown" if pfn is None else f"{pfn:#x}"


def _minflt() -> int:
    assert resource is not None
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


class _Cells(threading.local):
    """Each thread's own source and scratch cells: two actors of one process access at once."""

    def __init__(self) -> None:
        self.src = ctypes.c_uint64(0)
        self.scratch = ctypes.c_uint64(0)


_cells = _Cells()


def _measured(addr: int, value: int | None) -> tuple[int, int]:
    """One load (value None) or one store at addr, and the minor faults it took.

    A store goes through memmove from a scratch cell: an 8-byte memmove is one
    load from the source and one store to addr.  (ctypes' own c_uint64 setter
    would load addr first, to merge bit fields, and take a read fault before
    the write fault.)  A load is c_uint64's getter: one 8-byte load.
    """
    if value is None:
        cell = ctypes.c_uint64.from_address(addr)
        before = _minflt()
        value = cell.value
    else:
        src = _cells.src
        src.value = value
        before = _minflt()
        ctypes.memmove(addr, ctypes.addressof(src), 8)
    return value, _minflt() - before


def _access(addr: int, value: int | None) -> tuple[int, int]:
    """The measured access, after running the same code twice on a scratch cell of
    this process, so that the interpreter's own first touches of its pages
    (copy-on-write after a fork) fall in the warm-up and not in the access."""
    scratch = ctypes.addressof(_cells.scratch)
    _measured(scratch, None if value is None else 0)
    _measured(scratch, None if value is None else 0)
    return _measured(addr, value)


class Failed(Exception):
    """A step that the kernel refused: the scenario's `failed(...)`."""

    def __init__(self, error: str, event: str):
        super().__init__(error)
        self.error = error
        self.event = event


class ThreadRunner:
    """A declared thread: a real thread of this process running the commands of its own channel,
    so that it can run at the same time as the process's main thread (a `par` block)."""

    def __init__(self, worker: Worker, name: str, sock: socket.socket):
        self.name = name
        self.sock = sock
        self.worker = worker
        self.thread = threading.Thread(target=self.loop, name=f"cowdsl-{name}", daemon=True)
        self.thread.start()

    def loop(self) -> None:
        self.worker.serve_channel(self.sock)


class DirectIo:
    """What an O_DIRECT command needs besides the I/O itself, made before a par block's gate so that
    the release starts the request and not its set-up: the file opened O_DIRECT, the Linux AIO
    context of an asynchronous one, the buffer's PFN then.  A failure is kept and raised by the
    command.  (In a child forked meanwhile the context is the parent's: the child never uses it.)"""

    def __init__(self, worker: Worker, c: Message):
        self.read = c["op"] == "odirect_read"
        self.addr: int = c["addr"]
        self.fd = -1
        self.aio: aio.Context | None = None
        self.error: OSError | None = None
        self.pfn = _pfn(self.addr)
        try:
            self.fd = os.open(c["path"], (os.O_RDONLY if self.read else os.O_WRONLY) | os.O_DIRECT | os.O_CLOEXEC)
            if c.get("async"):
                self.aio = aio.Context()
        except OSError as e:
            self.error = e

    def close(self) -> None:
        if self.aio is not None:
            self.aio.close()
            self.aio = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Worker:
    def __init__(self, name: str, sock: socket.socket, pipes: dict[str, tuple[int, int]],
                 threads: dict[str, socket.socket] | None = None, alarm: int = 0):
        self.name = name
        self.sock = sock
        self.pipes = pipes
        self.rings: dict[str, tuple[uring.Ring, int]] = {}
        self.held: dict[str, heldpin.HeldPin] = {}  # short-term pins: process_vm_*v waiting mid-copy
        self.refs: dict[str, list[int]] = {}  # FOLL_GET references: the pipes whose buffers hold them
        self.dios: dict[str, tuple[aio.Context, int]] = {}  # FOLL_GET|FOLL_WRITE: an O_DIRECT read in flight
        self.threads = {t: ThreadRunner(self, t, s) for t, s in (threads or {}).items()}
        self.alarm = alarm

    # --- the loop -----------------------------------------------------------------
    def serve(self) -> None:
        send(self.sock, {"hello": os.getpid()})
        self.serve_channel(self.sock)

    def serve_channel(self, sock: socket.socket) -> None:
        """One command at a time from ``sock``, each answered on it; returns at EOF."""
        while True:
            try:
                cmd, fds = recv(sock)
            except (ConnectionError, OSError):
                return
            if cmd is None:
                return
            reply = self.execute(cmd, fds, sock)
            if reply is None:  # the fork child: it has its own channel now
                continue
            try:
                send(sock, reply)
            except (ConnectionError, OSError):
                return

    def execute(self, cmd: Message, fds: list[int], chan: socket.socket | None = None) -> Message | None:
        """Run one command.  A command of a `par` block (``gate``) first says it is armed, waits
        at the block's gate (its fd comes last), waits its skew and moves to its CPU; a timed one
        (``gate`` or ``timed``) answers with when it started and ended (CLOCK_MONOTONIC)."""
        op = cmd["op"]
        timing: dict[str, Any] | None = None
        prepare = PREPARE.get(op)
        held = cmd["_held"] = prepare(self, cmd) if prepare is not None else None
        try:
            if cmd.get("gate"):
                timing = self._at_gate(cmd, fds, chan)
            elif cmd.get("timed"):
                timing = {"cpu": L.current_cpu()}
            start = time.monotonic_ns()
            out = self._run(op, cmd, fds)
        finally:
            if held is not None:
                held.close()
        if out is not None and timing is not None:
            out["t"] = {**timing, "start": start, "end": time.monotonic_ns()}
        return out

    def _at_gate(self, cmd: Message, fds: list[int], chan: socket.socket | None) -> dict[str, Any]:
        gate = fds.pop()
        cpu = cmd.get("cpu")
        if cpu is not None:
            try:
                os.sched_setaffinity(0, {cpu})  # this thread only
            except OSError:
                pass
        try:
            if chan is not None:
                send(chan, {"armed": True})
            woke = barrier.wait(gate)
        finally:
            os.close(gate)
        barrier.spin(cmd.get("skew_ns", 0))
        return {"woke": woke, "cpu": L.current_cpu()}

    def _run(self, op: str, cmd: Message, fds: list[int]) -> Message | None:
        handler = COMMANDS.get(op)
        if handler is None:
            return {"ok": False, "error": "EINVAL", "events": [f"{op}: no such worker command"]}
        try:
            out = handler(self, cmd, fds)
        except Failed as f:
            return {"ok": False, "error": f.error, "events": [f.event]}
        except OSError as e:
            return {"ok": False, "error": _errname(e), "events": [f"{op}: {e.strerror or e} ({_errname(e)})"]}
        if out is None:
            return None
        out.setdefault("ok", True)
        return out

    # --- mappings -------------------------------------------------------------------
    def do_mmap(self, c: Message, fds: list[int]) -> Message | None:
        prot = L.PROT_READ | (L.PROT_WRITE if c["write"] else 0)
        flags = (L.MAP_SHARED if c["shared"] else L.MAP_PRIVATE) | L.MAP_FIXED_NOREPLACE
        length = c["pages"] * L.PAGE  # a `thp` mapping: 512 pages, 2 MiB-aligned
        fd = -1
        if c.get("path"):
            fd = os.open(c["path"], os.O_RDWR | os.O_CLOEXEC)
        else:
            flags |= L.MAP_ANONYMOUS
        if c.get("hugetlb") and fd < 0:  # one 2 MiB page of the huge page pool, at a 2 MiB-aligned address
            flags |= L.MAP_HUGETLB  # (a hugetlbfs file's mapping is huge without it)
        try:
            addr = L.mmap(c["addr"], length, prot, flags, fd, 0)
        finally:
            if fd >= 0:
                os.close(fd)
        if addr != c["addr"]:
            L.munmap(addr, length)
            raise Failed("EEXIST", f"mmap: the kernel would not place the mapping at {c['addr']:#x}")
        advice = "hugepage" if c.get("thp") else "nohugepage"
        if c.get("hugetlb"):
            advice = ""
        else:
            L.madvise(addr, length, L.MADV[advice])
        return {"events": [f"mmap({addr:#x}, {length}, {'PROT_READ|PROT_WRITE' if c['write'] else 'PROT_READ'}, "
                           f"{'MAP_SHARED' if c['shared'] else 'MAP_PRIVATE'}"
                           f"{'' if fd >= 0 or c.get('path') else '|MAP_ANONYMOUS'}"
                           f"{'|MAP_HUGETLB' if flags & L.MAP_HUGETLB else ''}"
                           f"{' of ' + os.path.basename(c['path']) if c.get('path') else ''})"
                           f"{'; MADV_' + advice.upper() if advice else ''}"]}

    def do_munmap(self, c: Message, fds: list[int]) -> Message | None:
        L.munmap(c["addr"], c["pages"] * L.PAGE)
        return {"events": [f"munmap({c['addr']:#x}, {c['pages'] * L.PAGE})"]}

    def do_mremap(self, c: Message, fds: list[int]) -> Message | None:
        old, new = c["pages"] * L.PAGE, c["new_pages"] * L.PAGE
        flags = L.MREMAP_MAYMOVE | L.MREMAP_FIXED if c.get("new_addr") else 0  # a move, or in place
        got = L.mremap(c["addr"], old, new, flags, c.get("new_addr") or 0)
        how = f"MREMAP_MAYMOVE|MREMAP_FIXED, {got:#x}" if flags else "0"
        return {"events": [f"mremap({c['addr']:#x}, {old}, {new}, {how}) → {got:#x}"]}

    def do_mprotect(self, c: Message, fds: list[int]) -> Message | None:
        prot = L.PROT_NONE if c.get("none") else L.PROT_READ | (L.PROT_WRITE if c["write"] else 0)
        L.mprotect(c["addr"], c["pages"] * L.PAGE, prot)
        name = "PROT_NONE" if c.get("none") else "PROT_READ|PROT_WRITE" if c["write"] else "PROT_READ"
        return {"events": [f"mprotect({c['addr']:#x}, {c['pages'] * L.PAGE}, {name})"]}

    def do_pte_map_thp(self, c: Message, fds: list[int]) -> Message | None:
        """cow.c's run_with_pte_mapped_thp(): mprotect() one subpage read-only and back, which
        splits the PMD (__split_huge_pmd: the THP stays one folio, now mapped by 512 PTEs)."""
        page = c["addr"] + L.PAGE
        prot = L.PROT_READ | (L.PROT_WRITE if c["write"] else 0)
        L.mprotect(page, L.PAGE, L.PROT_READ)
        L.mprotect(page, L.PAGE, prot)
        return {"events": [f"mprotect({page:#x}, 4096, PROT_READ) and back: the PMD is split, the THP PTE-mapped"]}

    def do_madvise(self, c: Message, fds: list[int]) -> Message | None:
        L.madvise(c["addr"], c["pages"] * L.PAGE, L.MADV[c["advice"]])
        return {"events": [f"madvise({c['addr']:#x}, {c['pages'] * L.PAGE}, MADV_{c['advice'].upper()})"]}

    # --- CPU accesses: one real load or store --------------------------------------
    def do_read(self, c: Message, fds: list[int]) -> Message | None:
        value, faults = _access(c["addr"], None)
        return {"value": value, "faults": faults,
                "events": [f"load from {c['addr']:#x}: {value} ({faults} minor fault{'s' if faults != 1 else ''})"]}

    def do_write(self, c: Message, fds: list[int]) -> Message | None:
        value = c["value"]
        _, faults = _access(c["addr"], value)
        return {"faults": faults,
                "events": [f"store {value} to {c['addr']:#x} ({faults} minor fault{'s' if faults != 1 else ''})"]}

    # --- fork and exit ----------------------------------------------------------------
    def do_fork(self, c: Message, fds: list[int]) -> Message | None:
        child_fd = fds[0]
        pid = os.fork()
        if pid == 0:  # the child becomes a worker of its own, on the channel the controller made for it
            try:
                # the parent's channels: the controller must see their EOF when the parent ends
                for chan in (self.sock, *(r.sock for r in self.threads.values())):
                    os.close(chan.detach())
                for ring, _addr in self.rings.values():
                    ring.forget()  # the pins belong to the parent; drop the inherited ring fds
                for held in self.held.values():
                    os.close(held.uffd)  # the waiting copy is the parent's thread, not ours
                for fds_ in self.refs.values():  # the parent's references: its put must free them
                    for fd in fds_:
                        os.close(fd)
                for _ctx, fd in self.dios.values():  # (an AIO context is its mm's: not ours to reap)
                    os.close(fd)
                child = Worker(c["child"], socket.socket(fileno=child_fd), self.pipes, None, self.alarm)
                if self.alarm:
                    signal.alarm(self.alarm)
                child.serve()
            finally:
                os._exit(0)
        os.close(child_fd)
        return {"pid": pid, "events": [f"fork() → pid {pid}"]}

    def do_exit(self, c: Message, fds: list[int]) -> Message | None:
        os._exit(0)

    # --- pins through io_uring fixed buffers -------------------------------------
    def do_pin(self, c: Message, fds: list[int]) -> Message | None:
        ring = uring.Ring()
        try:
            ring.register(c["addr"], L.PAGE)
        except OSError as e:
            ring.close()
            raise Failed(_errname(e), f"io_uring IORING_REGISTER_BUFFERS({c['addr']:#x}, 4096) "
                                      f"[pin_user_pages FOLL_WRITE|FOLL_LONGTERM] → {_errname(e)}") from e
        # the device's fixed reads and writes move the 8-byte word at the pin's offset in the page
        self.rings[c["name"]] = (ring, c["addr"] + c.get("offset", 0))
        return {"events": [f"io_uring ring fd {ring.fd}: IORING_REGISTER_BUFFERS({c['addr']:#x}, 4096) "
                           f"[pin_user_pages FOLL_WRITE|FOLL_LONGTERM]"]}

    def do_unpin(self, c: Message, fds: list[int]) -> Message | None:
        held = self.held.pop(c["name"], None)
        if held is not None:
            return self._end_held(held, None)
        ring, addr = self.rings.pop(c["name"])
        ring.unregister()
        ring.close()
        return {"events": [f"IORING_UNREGISTER_BUFFERS [unpin_user_page {addr & ~(L.PAGE - 1):#x}], ring closed"]}

    def _ring(self, name: str) -> tuple[uring.Ring, int]:
        got = self.rings.get(name)
        if got is None:
            raise Failed("EFAULT", f"{name} holds no pin: no DMA")
        return got

    # --- short-term pins held open (heldpin.py) ---------------------------------------
    def do_held_pin(self, c: Message, fds: list[int]) -> Message | None:
        call = f"process_vm_{'writev' if c['write'] else 'readv'}(pid {c['pid']}, {c['addr']:#x}, 8)"
        gup = f"pin_user_pages_remote({'FOLL_WRITE' if c['write'] else '0'}) [FOLL_PIN]"
        held = heldpin.HeldPin(c["pid"], c["addr"], c["write"], c.get("copies", 1))
        try:
            held.start(c.get("timeout", 10.0))
        except OSError as e:
            held.close()
            raise Failed(_errname(e), f"{call} [{gup}] → {_errname(e)}") from e
        except TimeoutError as e:
            held.close()
            raise Failed("ETIMEDOUT", f"{call}: {e}") from e
        self.held[c["name"]] = held
        iovecs = f" ({held.copies} remote iovecs of those 8 bytes, one per device write)" if held.copies > 1 else ""
        return {"events": [f"{call}{iovecs}: {gup}, then the copy waits on a userfaultfd-missing page of ours "
                           f"(the pin stays held)"]}

    def _end_held(self, held: heldpin.HeldPin, value: int | None) -> Message:
        """End a held pin: with ``value``, a write pin's copy writes it into the pinned page;
        a read pin's copy reads the pinned page (returned); neither: nothing is copied."""
        try:
            if value is not None or not held.write:
                got = held.release(value or 0)
            else:
                held.drop()
                got = None
        finally:
            held.close()
        result = held.result
        if isinstance(result, OSError) and value is None and held.write:
            what = "nothing copied (-EFAULT), unpin_user_pages_dirty_lock"
        elif isinstance(result, OSError):
            raise Failed(_errname(result), f"the held copy failed: {result}")
        elif held.write:
            what = f"the copy wrote {value} into the pinned page, unpin_user_pages_dirty_lock"
        else:
            what = f"the copy read {got} from the pinned page, unpin_user_pages"
        out: Message = {"events": [f"the waiting page is resolved: {what}; the syscall returned"]}
        if not held.write:
            out["value"] = got
        return out

    def do_held_read(self, c: Message, fds: list[int]) -> Message | None:
        """A read pin's device read, the pin's last use: the copy reads the pinned page and ends."""
        return self._end_held(self.held.pop(c["name"]), None)

    def do_dma_write(self, c: Message, fds: list[int]) -> Message | None:
        if c["name"] in self.dios:  # the device write of an O_DIRECT read is its completion
            return self._end_dio(c["name"])
        held = self.held.get(c["name"])
        if held is not None and held.copies - held.next > 1:  # another device write to come
            try:
                held.release(c["value"])
            except (OSError, TimeoutError) as e:
                del self.held[c["name"]]
                held.close()
                raise Failed("EIO", f"the held copy did not wait again: {e}") from e
            return {"again": True,
                    "events": [f"the waiting page is resolved: the copy wrote {c['value']} into the pinned page, "
                               "unpin_user_pages_dirty_lock; pin_user_pages_remote again for the next iovec, "
                               "whose copy waits on our next page"]}
        if held is not None:  # a write pin's last device write ends it (plan.py checks the scenario)
            del self.held[c["name"]]
            return self._end_held(held, c["value"])
        ring, addr = self._ring(c["name"])
        fd = os.open(c["path"], os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.pwrite(fd, struct.pack("<Q", c["value"]), 0)
            res = ring.fixed_io(uring.IORING_OP_READ_FIXED, fd, addr, 8, 0)
        finally:
            os.close(fd)
        if res != 8:
            raise Failed("EIO" if res >= 0 else errno.errorcode.get(-res, str(res)), f"IORING_OP_READ_FIXED → {res}")
        return {"events": [f"IORING_OP_READ_FIXED: the kernel copies {c['value']} from a file into the pinned page"]}

    def do_dma_read(self, c: Message, fds: list[int]) -> Message | None:
        ring, addr = self._ring(c["name"])
        fd = os.open(c["path"], os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            res = ring.fixed_io(uring.IORING_OP_WRITE_FIXED, fd, addr, 8, 0)
            data = os.pread(fd, 8, 0)
        finally:
            os.close(fd)
        if res != 8 or len(data) != 8:
            raise Failed("EIO" if res >= 0 else errno.errorcode.get(-res, str(res)), f"IORING_OP_WRITE_FIXED → {res}")
        value = struct.unpack("<Q", data)[0]
        return {"value": value,
                "events": [f"IORING_OP_WRITE_FIXED: the kernel copies the pinned page to a file: {value}"]}

    # --- O_DIRECT: the file system's direct I/O takes the buffer's page -----------------
    def do_odirect(self, c: Message, fds: list[int]) -> Message | None:
        """One page-aligned 4 KiB read (the file's first page into the buffer's page) or write
        (the page into it) with O_DIRECT, set up beforehand (``DirectIo``).  Synchronous:
        pread/pwrite.  In a `par` block (``async``): io_submit, which returns once the bio holds
        the buffer's page, so that the request is in flight while the other actors run; its
        completion is reaped (io_getevents) before the answer.  The CPU never touches the buffer."""
        io: DirectIo = c["_held"]
        if io.error is not None:
            raise io.error
        res, how = self._submitted(io) if io.aio is not None else self._synchronous(io)
        io.close()
        after = _pfn(io.addr)
        if res < 0:
            name = errno.errorcode.get(-res, str(res))
            raise Failed(name, f"{how} → {name}")
        if res != L.PAGE:
            raise Failed("EIO", f"{how} → {res} bytes, not 4096")
        return {"pfn_before": io.pfn, "pfn_after": after,
                "events": [f"{how} → 4096 (buffer pfn {_hex(io.pfn)} before, {_hex(after)} after)"]}

    @staticmethod
    def _submitted(io: DirectIo) -> tuple[int, str]:
        """io_submit, then io_getevents: whether the request was still in flight when io_submit returned."""
        assert io.aio is not None
        call = f"io_submit(IOCB_CMD_P{'READ' if io.read else 'WRITE'}, O_DIRECT, {io.addr:#x}, 4096, 0)"
        t0 = time.monotonic_ns()
        io.aio.submit(aio.IOCB_CMD_PREAD if io.read else aio.IOCB_CMD_PWRITE, io.fd, io.addr, L.PAGE, 0)
        t1 = time.monotonic_ns()
        how = f"{call} returned in {(t1 - t0) / 1000:.1f} µs, "
        res = io.aio.poll()
        if res is not None:
            return res, how + "the request already complete"
        res = io.aio.wait()
        return res, how + f"the request in flight; io_getevents reaped it {(time.monotonic_ns() - t1) / 1000:.1f} µs later"

    @staticmethod
    def _synchronous(io: DirectIo) -> tuple[int, str]:
        buf = (ctypes.c_char * L.PAGE).from_address(io.addr)
        try:
            res = os.preadv(io.fd, [buf], 0) if io.read else os.pwritev(io.fd, [buf], 0)
        except OSError as e:
            res = -(e.errno or errno.EIO)
        return res, f"{'pread' if io.read else 'pwrite'}(O_DIRECT, {io.addr:#x}, 4096, 0)"

    # --- pipes ---------------------------------------------------------------------------
    def do_vmsplice(self, c: Message, fds: list[int]) -> Message | None:
        _r, w = self.pipes[c["pipe"]]
        n = L.vmsplice(w, c["addr"], 8)
        return {"events": [f"vmsplice(pipe {c['pipe']}, {c['addr']:#x}, 8) → {n}: the pipe holds the page"]}

    # --- FOLL_GET references held by pipe buffers (`gup(buf, read, count=N)`) ----------
    def do_gup(self, c: Message, fds: list[int]) -> Message | None:
        """``count`` read references to the page: vmsplice of that many 8-byte iovecs of it into
        pipes of PIPE_REFS buffers each (F_SETPIPE_SZ of 1 MiB, what pipe-max-size allows)."""
        count, pipes = c["count"], []
        try:
            left = count
            while left:
                r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                pipes += [r, w]
                n = min(left, PIPE_REFS)
                fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_REFS * L.PAGE)
                got = L.vmsplice_many(w, c["addr"], 8, n)
                if got != 8 * n:
                    raise Failed("EAGAIN", f"vmsplice of {n} iovecs → {got} bytes, not {8 * n}")
                left -= n
        except BaseException:
            for fd in pipes:
                os.close(fd)
            raise
        self.refs[c["name"]] = pipes
        return {"events": [f"vmsplice of {count} iovec{'s' if count > 1 else ''} of {c['addr']:#x} into "
                           f"{len(pipes) // 2} pipe{'s' if len(pipes) > 2 else ''}: get_user_pages_fast (FOLL_GET, "
                           f"no FOLL_WRITE), one page reference per pipe buffer"]}

    def do_gup_dio(self, c: Message, fds: list[int]) -> Message | None:
        """A FOLL_GET|FOLL_WRITE reference held by the block layer: an O_DIRECT read of the file's
        first 4 KiB into the page, submitted with Linux AIO (io_submit returns once the bio holds
        the page: get_user_pages_fast(FOLL_WRITE) before 6.5) and left in flight."""
        fd = os.open(c["path"], os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        try:
            ctx = aio.Context()
        except OSError:
            os.close(fd)
            raise
        try:
            ctx.submit(aio.IOCB_CMD_PREAD, fd, c["addr"], L.PAGE, 0)
        except OSError:
            ctx.close()
            os.close(fd)
            raise
        self.dios[c["name"]] = (ctx, fd)
        done = ctx.poll()
        return {"in_flight": done is None,
                "events": [f"io_submit(IOCB_CMD_PREAD, O_DIRECT, {c['addr']:#x}, 4096): the bio holds the page "
                           f"(get_user_pages_fast, FOLL_GET|FOLL_WRITE); "
                           + ("in flight" if done is None else f"already complete ({done})")]}

    def _end_dio(self, name: str) -> Message:
        """The O_DIRECT read completes: the disk's data lands in the page the bio holds, then
        bio_release_pages puts the reference.  ``early``: it had completed before this step."""
        ctx, fd = self.dios.pop(name)
        try:
            res = ctx.poll()
            early = res is not None
            if res is None:
                res = ctx.wait()
        finally:
            ctx.close()
            os.close(fd)
        if res != L.PAGE:
            raise Failed("EIO" if res >= 0 else errno.errorcode.get(-res, str(res)), f"the O_DIRECT read → {res}")
        return {"early": early, "events": [f"io_getevents: the O_DIRECT read completed ({res} bytes): the disk's "
                                           "data is in the page the bio held, and its reference is put"
                                           + (" (it had completed before this step)" if early else "")]}

    def do_put(self, c: Message, fds: list[int]) -> Message | None:
        pipes = self.refs.pop(c["name"])
        for fd in pipes:
            os.close(fd)
        return {"events": [f"the pipes closed: pipe_buf_release → put_page, {len(pipes) // 2} pipe(s)"]}

    def do_pipe_read(self, c: Message, fds: list[int]) -> Message | None:
        r, _w = self.pipes[c["pipe"]]
        try:
            data = os.read(r, 8)
        except BlockingIOError:
            raise Failed("EAGAIN", f"read(pipe {c['pipe']}) → EAGAIN: empty") from None
        if len(data) != 8:
            raise Failed("EIO", f"read(pipe {c['pipe']}) → {len(data)} bytes")
        value = struct.unpack("<Q", data)[0]
        return {"value": value, "events": [f"read(pipe {c['pipe']}, 8) → {value}"]}

    # --- remote access --------------------------------------------------------------------
    def do_process_vm_writev(self, c: Message, fds: list[int]) -> Message | None:
        n = L.process_vm_writev(c["pid"], c["addr"], struct.pack("<Q", c["value"]))
        if n != 8:
            raise Failed("EFAULT", f"process_vm_writev → {n} bytes")
        return {"events": [f"process_vm_writev(pid {c['pid']}, {c['addr']:#x}, {c['value']})"]}

    def do_process_vm_readv(self, c: Message, fds: list[int]) -> Message | None:
        data = L.process_vm_readv(c["pid"], c["addr"], 8)
        if len(data) != 8:
            raise Failed("EFAULT", f"process_vm_readv → {len(data)} bytes")
        value = struct.unpack("<Q", data)[0]
        return {"value": value, "events": [f"process_vm_readv(pid {c['pid']}, {c['addr']:#x}) → {value}"]}

    def do_proc_mem_write(self, c: Message, fds: list[int]) -> Message | None:
        fd = os.open(f"/proc/{c['pid']}/mem", os.O_RDWR | os.O_CLOEXEC)
        try:
            n = os.pwrite(fd, struct.pack("<Q", c["value"]), c["addr"])
        finally:
            os.close(fd)
        if n != 8:
            raise Failed("EIO", f"write(/proc/{c['pid']}/mem) → {n} bytes")
        return {"events": [f"pwrite(/proc/{c['pid']}/mem, {c['value']}, {c['addr']:#x}) [FOLL_FORCE|FOLL_WRITE]"]}

    # --- KSM: MMF_VM_MERGE_ANY (6.4+; EINVAL before) ---------------------------------
    def do_prctl(self, c: Message, fds: list[int]) -> Message | None:
        value = 1 if c["enable"] else 0
        L.prctl(PR_SET_MEMORY_MERGE, value)
        return {"events": [f"prctl(PR_SET_MEMORY_MERGE, {value}) → 0"]}

    def do_get_memory_merge(self, c: Message, fds: list[int]) -> Message | None:
        value = L.prctl(PR_GET_MEMORY_MERGE)
        return {"value": value, "events": [f"prctl(PR_GET_MEMORY_MERGE) → {value}"]}

    # --- for the controller and the tests ---------------------------------------------
    def do_ping(self, c: Message, fds: list[int]) -> Message | None:
        return {"pid": os.getpid()}

    def do_sleep(self, c: Message, fds: list[int]) -> Message | None:  # a hung step, for the safety tests
        time.sleep(c["seconds"])
        return {}


#: command name → what the worker does for it
COMMANDS: dict[str, Callable[[Worker, Message, list[int]], Message | None]] = {
    "mmap": Worker.do_mmap,
    "munmap": Worker.do_munmap,
    "mprotect": Worker.do_mprotect,
    "madvise": Worker.do_madvise,
    "pte_map_thp": Worker.do_pte_map_thp,
    "mremap": Worker.do_mremap,
    "read": Worker.do_read,
    "write": Worker.do_write,
    "fork": Worker.do_fork,
    "exit": Worker.do_exit,
    "pin": Worker.do_pin,
    "io_uring_register": Worker.do_pin,
    "unpin": Worker.do_unpin,
    "held_pin": Worker.do_held_pin,
    "gup": Worker.do_gup,
    "gup_dio": Worker.do_gup_dio,
    "put": Worker.do_put,
    "held_read": Worker.do_held_read,
    "dma_write": Worker.do_dma_write,
    "dma_read": Worker.do_dma_read,
    "odirect_read": Worker.do_odirect,
    "odirect_write": Worker.do_odirect,
    "vmsplice": Worker.do_vmsplice,
    "pipe_read": Worker.do_pipe_read,
    "process_vm_writev": Worker.do_process_vm_writev,
    "process_vm_readv": Worker.do_process_vm_readv,
    "proc_mem_write": Worker.do_proc_mem_write,
    "prctl": Worker.do_prctl,
    "get_memory_merge": Worker.do_get_memory_merge,
    "ping": Worker.do_ping,
    "sleep": Worker.do_sleep,
}


#: command name → its set-up, made before the gate (``Worker.execute``); the command closes it
PREPARE: dict[str, Callable[[Worker, Message], DirectIo]] = {
    "odirect_read": DirectIo,
    "odirect_write": DirectIo,
}


def start(name: str, sock: socket.socket, keep_fds: Sequence[int], pipes: dict[str, tuple[int, int]],
          threads: dict[str, socket.socket], pgid: int, alarm: int) -> None:
    """Turn a freshly forked process into a worker; never returns."""
    try:
        try:
            os.setpgid(0, pgid)
        except OSError:
            pass
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the controller's handler (controller.terminable)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # children stay zombies until the controller reaps them
        faulthandler.disable()
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        signal.signal(signal.SIGBUS, signal.SIG_DFL)
        gc.disable()  # nothing of the caller's may be finalised here
        keep = sorted({0, 1, 2, sock.fileno(), *(t.fileno() for t in threads.values()), *keep_fds})
        lo = 0
        for fd in keep:
            if fd > lo:
                os.closerange(lo, fd)
            lo = fd + 1
        os.closerange(lo, max(lo, os.sysconf("SC_OPEN_MAX")))
        if alarm:
            signal.alarm(alarm)
        Worker(name, sock, pipes, threads, alarm).serve()
    except BaseException:
        pass
    finally:
        os._exit(0)
