"""A small io_uring layer over the raw syscalls, for long-term R/W pins.

Why io_uring: ``IORING_REGISTER_BUFFERS`` pins the buffer's pages with
``pin_user_pages(FOLL_WRITE | FOLL_LONGTERM)`` (io_uring/rsrc.c, via
io_pin_pages), exactly what an RDMA driver does, and ``IORING_OP_READ_FIXED`` /
``IORING_OP_WRITE_FIXED`` then move data through those pinned pages from kernel
context, without looking at the page tables again: the "device" of a scenario.

Binding choice: plain ctypes on ``syscall(2)`` (io_uring_setup 425,
io_uring_enter 426, io_uring_register 427), no dependency.  The PyPI
``liburing`` package (a Python + Zig wrapper of the C liburing) installs here
and has ``io_uring_register_buffers``, ``io_uring_prep_read_fixed`` and
``io_uring_prep_write_fixed``; it would serve too, but it is a compiled
dependency for the three calls and two opcodes we need, so this 150-line module
does it instead.

One ring per pin: registering a one-page buffer is the pin, unregistering it
(``IORING_UNREGISTER_BUFFERS``) and closing the ring is the unpin.  Closing the
ring also releases the pin, which the kernel does asynchronously (io_ring_exit_work).
"""

from __future__ import annotations

import ctypes
import os

from cowdsl.native import libc as L

IORING_OFF_SQ_RING = 0
IORING_OFF_CQ_RING = 0x8000000
IORING_OFF_SQES = 0x10000000
IORING_FEAT_SINGLE_MMAP = 1 << 0
IORING_ENTER_GETEVENTS = 1 << 0
IORING_REGISTER_BUFFERS = 0
IORING_UNREGISTER_BUFFERS = 1
IORING_OP_READ_FIXED = 4
IORING_OP_WRITE_FIXED = 5


class SqringOffsets(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("head", "tail", "ring_mask", "ring_entries", "flags", "dropped",
                                               "array", "resv1")] + [("user_addr", ctypes.c_uint64)]


class CqringOffsets(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("head", "tail", "ring_mask", "ring_entries", "overflow", "cqes",
                                               "flags", "resv1")] + [("user_addr", ctypes.c_uint64)]


class Params(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("sq_entries", "cq_entries", "flags", "sq_thread_cpu",  # type: ignore[assignment]
                                               "sq_thread_idle", "features", "wq_fd")] + [
        ("resv", ctypes.c_uint32 * 3), ("sq_off", SqringOffsets), ("cq_off", CqringOffsets)]


class Sqe(ctypes.Structure):
    _fields_ = [
        ("opcode", ctypes.c_uint8), ("flags", ctypes.c_uint8), ("ioprio", ctypes.c_uint16),
        ("fd", ctypes.c_int32), ("off", ctypes.c_uint64), ("addr", ctypes.c_uint64), ("len", ctypes.c_uint32),
        ("rw_flags", ctypes.c_uint32), ("user_data", ctypes.c_uint64), ("buf_index", ctypes.c_uint16),
        ("personality", ctypes.c_uint16), ("splice_fd_in", ctypes.c_int32), ("addr3", ctypes.c_uint64),
        ("pad2", ctypes.c_uint64),
    ]


class Cqe(ctypes.Structure):
    _fields_ = [("user_data", ctypes.c_uint64), ("res", ctypes.c_int32), ("flags", ctypes.c_uint32)]


assert ctypes.sizeof(Params) == 120 and ctypes.sizeof(Sqe) == 64 and ctypes.sizeof(Cqe) == 16



class Ring:
    """An io_uring instance with at most one registered buffer."""

    def __init__(self, entries: int = 4):
        p = Params()
        self.fd = L.syscall(L.SYS_io_uring_setup, entries, ctypes.byref(p))
        self.maps: list[tuple[int, int]] = []
        try:
            sq_size = p.sq_off.array + p.sq_entries * 4
            cq_size = p.cq_off.cqes + p.cq_entries * ctypes.sizeof(Cqe)
            if p.features & IORING_FEAT_SINGLE_MMAP:
                sq_size = cq_size = max(sq_size, cq_size)
            flags = L.MAP_SHARED | 0x8000  # MAP_POPULATE
            self.sq = self._map(sq_size, IORING_OFF_SQ_RING, flags)
            self.cq = self.sq if p.features & IORING_FEAT_SINGLE_MMAP else self._map(cq_size, IORING_OFF_CQ_RING, flags)
            self.sqes = self._map(p.sq_entries * ctypes.sizeof(Sqe), IORING_OFF_SQES, flags)
        except BaseException:
            self.close()
            raise
        self.p = p
        self.registered = False

    def _map(self, size: int, off: int, flags: int) -> int:
        addr = L.mmap(0, size, L.PROT_READ | L.PROT_WRITE, flags, self.fd, off)
        self.maps.append((addr, size))
        return addr

    def _u32(self, base: int, off: int) -> ctypes.c_uint32:
        return ctypes.c_uint32.from_address(base + off)

    # --- registration: the pin ------------------------------------------------------
    def register(self, addr: int, length: int) -> None:
        iov = L.iovec(addr, length)
        L.syscall(L.SYS_io_uring_register, self.fd, IORING_REGISTER_BUFFERS, ctypes.byref(iov), 1)
        self.registered = True

    def unregister(self) -> None:
        if self.registered:
            L.syscall(L.SYS_io_uring_register, self.fd, IORING_UNREGISTER_BUFFERS, 0, 0)
            self.registered = False

    # --- one fixed-buffer I/O, synchronously -------------------------------------
    def fixed_io(self, opcode: int, fd: int, addr: int, length: int, offset: int = 0) -> int:
        """Submit READ_FIXED/WRITE_FIXED on buffer 0 and wait for it; returns res (bytes or -errno)."""
        p = self.p
        tail_p = self._u32(self.sq, p.sq_off.tail)
        mask = self._u32(self.sq, p.sq_off.ring_mask).value
        tail = tail_p.value
        idx = tail & mask
        sqe = Sqe.from_address(self.sqes + idx * ctypes.sizeof(Sqe))
        ctypes.memset(ctypes.addressof(sqe), 0, ctypes.sizeof(Sqe))
        sqe.opcode, sqe.fd, sqe.off, sqe.addr, sqe.len, sqe.buf_index, sqe.user_data = (
            opcode, fd, offset, addr, length, 0, 0xC0D5)
        self._u32(self.sq, p.sq_off.array + idx * 4).value = idx
        tail_p.value = tail + 1  # the syscall below orders this store before the kernel reads it
        L.syscall(L.SYS_io_uring_enter, self.fd, 1, 1, IORING_ENTER_GETEVENTS, 0, 0)
        head_p = self._u32(self.cq, p.cq_off.head)
        ctail = self._u32(self.cq, p.cq_off.tail).value
        head = head_p.value
        if head == ctail:
            raise OSError(0, "io_uring: no completion")
        cmask = self._u32(self.cq, p.cq_off.ring_mask).value
        cqe = Cqe.from_address(self.cq + p.cq_off.cqes + (head & cmask) * ctypes.sizeof(Cqe))
        res = cqe.res
        head_p.value = head + 1
        return res

    def close(self) -> None:
        for addr, size in self.maps:
            try:
                L.munmap(addr, size)
            except OSError:
                pass
        self.maps = []
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def forget(self) -> None:
        """In a forked child: drop the inherited copy without unregistering the parent's pin."""
        self.registered = False
        self.close()


def probe() -> str | None:
    """None if a ring can be set up and a buffer registered here, else why not."""
    try:
        if open("/proc/sys/kernel/io_uring_disabled").read().strip() not in ("0", ""):
            return "io_uring is disabled (/proc/sys/kernel/io_uring_disabled != 0)"
    except OSError:
        pass
    try:
        r = Ring()
    except OSError as e:
        return f"io_uring_setup failed: {e.strerror or e}"
    addr = 0
    try:
        addr = L.mmap(0, L.PAGE, L.PROT_READ | L.PROT_WRITE, L.MAP_PRIVATE | L.MAP_ANONYMOUS)
        r.register(addr, L.PAGE)
        r.unregister()
    except OSError as e:
        return f"IORING_REGISTER_BUFFERS failed: {e.strerror or e}"
    finally:
        r.close()
        if addr:
            L.munmap(addr, L.PAGE)
    return None
