"""Linux AIO (io_submit(2)) over the raw syscalls: one O_DIRECT request kept in flight.

An O_DIRECT read racing a `par` block's other actors must have its pages taken (the file
system's bio_iov_iter_get_pages) when it is submitted, by the submitting thread, and then
stay in flight while the others run.  io_submit does exactly that for a file opened O_DIRECT:
fs/aio.c aio_read → ->read_iter → iomap_dio_rw (ext4) builds and submits the bios, then returns
-EIOCBQUEUED, and io_submit returns with the request queued; io_getevents reaps it.

Why not io_uring: it issues a read inline only with IOCB_NOWAIT, on a file system whose block
device has QUEUE_FLAG_NOWAIT (5.10 fs/io_uring.c io_file_supports_async → io_bdev_nowait; 6.x
io_uring's __io_file_supports_nowait likewise), and otherwise hands it to an io-wq worker, which
takes the pages later, at a moment the caller cannot see.  A device-mapper delay target (the
guest's `dm-delay` need) has no such flag (dm-delay is not a DM_TARGET_NOWAIT target), and in a
5.10 guest the buffer was measured to be taken after a fork that started after io_uring_enter()
had returned.

Binding choice: ctypes on ``syscall(2)``, no dependency (libaio would serve, as a C library).
"""

from __future__ import annotations

import ctypes
import platform

from cowdsl.native import libc as L

#: io_setup, io_destroy, io_getevents, io_submit (x86-64's own table; arm64 uses the generic one)
_SYSCALLS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2)}
IOCB_CMD_PREAD = 0  # include/uapi/linux/aio_abi.h
IOCB_CMD_PWRITE = 1


class Iocb(ctypes.Structure):
    _fields_ = [
        ("aio_data", ctypes.c_uint64), ("aio_key", ctypes.c_uint32), ("aio_rw_flags", ctypes.c_uint32),
        ("aio_lio_opcode", ctypes.c_uint16), ("aio_reqprio", ctypes.c_int16), ("aio_fildes", ctypes.c_uint32),
        ("aio_buf", ctypes.c_uint64), ("aio_nbytes", ctypes.c_uint64), ("aio_offset", ctypes.c_int64),
        ("aio_reserved2", ctypes.c_uint64), ("aio_flags", ctypes.c_uint32), ("aio_resfd", ctypes.c_uint32),
    ]


class IoEvent(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64), ("res", ctypes.c_int64),
                ("res2", ctypes.c_int64)]


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


assert ctypes.sizeof(Iocb) == 64 and ctypes.sizeof(IoEvent) == 32


def _numbers() -> tuple[int, int, int, int]:
    got = _SYSCALLS.get(platform.machine())
    if got is None:
        raise OSError(0, f"Linux AIO: no syscall numbers for {platform.machine()}")
    return got



class Context:
    """An AIO context (io_setup) for one request at a time."""

    def __init__(self) -> None:
        self.setup, self.destroy, self.getevents, self.submit_nr = _numbers()
        ctx = ctypes.c_ulong(0)
        L.syscall(self.setup, 1, ctypes.byref(ctx))
        self.ctx = ctx.value
        self.iocb = Iocb()  # lives as long as the request: the kernel reports its address in the event

    def submit(self, opcode: int, fd: int, addr: int, length: int, offset: int = 0) -> None:
        """io_submit one request; for O_DIRECT it returns once the bios are queued."""
        ctypes.memset(ctypes.addressof(self.iocb), 0, ctypes.sizeof(Iocb))
        self.iocb.aio_lio_opcode, self.iocb.aio_fildes = opcode, fd
        self.iocb.aio_buf, self.iocb.aio_nbytes, self.iocb.aio_offset = addr, length, offset
        ptrs = (ctypes.POINTER(Iocb) * 1)(ctypes.pointer(self.iocb))
        if L.syscall(self.submit_nr, self.ctx, 1, ptrs) != 1:
            raise OSError(0, "io_submit: the request was not submitted")

    def poll(self) -> int | None:
        """The request's result (bytes, or -errno) if it has completed, else None (it is in flight)."""
        return self._getevents(wait=False)

    def wait(self) -> int:
        """Wait for the request to complete; its result (bytes, or -errno)."""
        res = self._getevents(wait=True)
        if res is None:
            raise OSError(0, "io_getevents: no completion")
        return res

    def _getevents(self, wait: bool) -> int | None:
        event = IoEvent()
        zero = Timespec(0, 0)
        n = L.syscall(self.getevents, self.ctx, 1 if wait else 0, 1, ctypes.byref(event),
                 None if wait else ctypes.byref(zero))
        return event.res if n == 1 else None

    def close(self) -> None:
        if self.ctx:
            L.syscall(self.destroy, self.ctx)
            self.ctx = 0
