"""A short-term FOLL_PIN held open from user space: process_vm_readv/writev stopped mid-copy.

process_vm_rw_single_vec() (mm/process_vm_access.c, the same in 5.10.198, 6.1.158 and
6.18.2) pins the target's pages with pin_user_pages_remote(mm, ..., FOLL_WRITE only for a
write), drops the target's mmap_lock, copies, then unpin_user_pages_dirty_lock().  The
copy's other side is a page of the caller's own that is registered with userfaultfd and
missing: the copy faults on it and waits in handle_userfault() (mmap_lock released), so
the pin stays held, by the kernel's own code, for as long as the fault is not resolved.
That is `pin(buf, read)` / `pin(buf, write)` without FOLL_LONGTERM, the slow GUP path,
on this process's page or (`W: pin(A.buf, ...)`) on another's.

The fault message says the pin is held: pin_user_pages_remote() returned before the copy
began.  Ending it:
- ``release(value)`` (a write pin's one device write): the waiting page is filled with the
  value and the copy writes it into the pinned page, then unpins;
- ``release()`` of a read pin: the copy reads the pinned page into ours (what a device
  reads), then unpins;
- ``drop()``: our page is made PROT_NONE and the waiter woken: the copy fails (-EFAULT,
  nothing copied), then unpins.

userfaultfd for a fault taken in the kernel needs CAP_SYS_PTRACE unless
vm.unprivileged_userfaultfd is 1 (userfaultfd_syscall_allowed(), 5.11+): ``probe()``.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
import threading
import time

from cowdsl.native import libc as L

SYS_userfaultfd = 323  # x86-64
UFFD_API = 0xAA
UFFDIO_API = 0xC018AA3F  # _IOWR(0xAA, 0x3F, struct uffdio_api)
UFFDIO_REGISTER = 0xC020AA00  # _IOWR(0xAA, 0x00, struct uffdio_register)
UFFDIO_WAKE = 0x8010AA02  # _IOR(0xAA, 0x02, struct uffdio_range)
UFFDIO_COPY = 0xC028AA03  # _IOWR(0xAA, 0x03, struct uffdio_copy)
UFFDIO_REGISTER_MODE_MISSING = 1
UFFD_EVENT_PAGEFAULT = 0x12
UFFD_MSG_SIZE = 32


def _ioctl(fd: int, request: int, arg: ctypes.Array[ctypes.c_char]) -> None:
    lib = L.libc()
    if lib.ioctl(ctypes.c_int(fd), ctypes.c_ulong(request), arg) < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"ioctl({request:#x}): {os.strerror(e)}")


def userfaultfd() -> int:
    """A userfaultfd with its API handshake done (no features: a fork does not carry it)."""
    fd = L.syscall(SYS_userfaultfd, os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        _ioctl(fd, UFFDIO_API, ctypes.create_string_buffer(struct.pack("<QQQ", UFFD_API, 0, 0), 24))
    except OSError:
        os.close(fd)
        raise
    return fd


def probe() -> str | None:
    """None if this process may take kernel-mode faults through userfaultfd, else why not."""
    try:
        os.close(userfaultfd())
    except OSError as e:
        return f"userfaultfd() → {os.strerror(e.errno or 0)} (it needs CAP_SYS_PTRACE, or vm.unprivileged_userfaultfd=1)"
    return None


class HeldPin:
    """A process_vm_readv/writev of 8 bytes at ``remote`` in process ``pid``, waiting mid-copy.

    A write pin the device writes through ``copies`` times is one syscall with that many remote
    iovecs, each the same 8 bytes, and as many local ones, each at the start of a page of ours:
    process_vm_rw_core() pins, copies and unpins one remote iovec after the other, so when a
    device write lets one copy run, the kernel unpins and at once pins the same page again for
    the next iovec, whose copy waits on our next page (``release`` returns once it does)."""

    def __init__(self, pid: int, remote: int, write: bool, copies: int = 1):
        self.pid, self.remote, self.write, self.copies = pid, remote, write, max(1, copies)
        self.result: int | OSError | None = None
        self.uffd = userfaultfd()
        self.page = 0  # our first page; the k-th copy waits on page k
        self.next = 0  # the page the copy waits on now
        self.length = self.copies * L.PAGE
        self.thread = threading.Thread(target=self._copy, name="cowdsl-heldpin", daemon=True)
        try:
            self.page = L.mmap(0, self.length, L.PROT_READ | L.PROT_WRITE, L.MAP_PRIVATE | L.MAP_ANONYMOUS)
            reg = struct.pack("<QQQQ", self.page, self.length, UFFDIO_REGISTER_MODE_MISSING, 0)
            _ioctl(self.uffd, UFFDIO_REGISTER, ctypes.create_string_buffer(reg, 32))
        except OSError:
            self.close()
            raise

    def _copy(self) -> None:
        local = (L.iovec * self.copies)(*[L.iovec(self.page + k * L.PAGE, 8) for k in range(self.copies)])
        rem = (L.iovec * self.copies)(*[L.iovec(self.remote, 8) for _ in range(self.copies)])
        call = L.libc().process_vm_writev if self.write else L.libc().process_vm_readv
        n = call(self.pid, local, self.copies, rem, self.copies, 0)
        self.result = OSError(ctypes.get_errno(), "process_vm_" + ("writev" if self.write else "readv")) if n < 0 else n

    def _waits_on(self, k: int, timeout: float) -> None:
        """Return once the copy waits on our page ``k`` (the pin is held), or raise the syscall's
        error (it failed before copying: no pin) or TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.uffd], [], [], 0.01)
            if ready:
                msg = os.read(self.uffd, UFFD_MSG_SIZE)
                event, = struct.unpack_from("<B", msg, 0)
                address, = struct.unpack_from("<Q", msg, 16)
                if event == UFFD_EVENT_PAGEFAULT and address & ~(L.PAGE - 1) == self.page + k * L.PAGE:
                    self.next = k
                    return
                continue
            if not self.thread.is_alive():
                if isinstance(self.result, OSError):
                    raise self.result
                raise OSError(0, f"the copy ended without waiting: {self.result} bytes")
        raise TimeoutError("the copy neither waited on our page nor returned")

    def start(self, timeout: float) -> None:
        """Start the copy; return once it waits on our first page (the pin is held)."""
        self.thread.start()
        self._waits_on(0, timeout)

    @property
    def waiting(self) -> bool:
        return self.thread.is_alive()

    def release(self, value: int = 0, timeout: float = 10.0) -> int:
        """Let the waiting copy run: a write copies ``value`` into the pinned page; a read copies the
        pinned page's bytes out, returned.  Then the kernel unpins; with copies left, it pins again
        and this returns once the next copy waits (``waiting``), else once the syscall returned."""
        k = self.next
        src = L.mmap(0, L.PAGE, L.PROT_READ | L.PROT_WRITE, L.MAP_PRIVATE | L.MAP_ANONYMOUS)
        try:
            ctypes.c_uint64.from_address(src).value = value
            arg = struct.pack("<QQQQq", self.page + k * L.PAGE, src, L.PAGE, 0, 0)
            _ioctl(self.uffd, UFFDIO_COPY, ctypes.create_string_buffer(arg, 40))
        finally:
            L.munmap(src, L.PAGE)
        if k + 1 < self.copies:
            self._waits_on(k + 1, timeout)
        else:
            self._join(timeout)
        return ctypes.c_uint64.from_address(self.page + k * L.PAGE).value

    def drop(self, timeout: float = 10.0) -> None:
        """End the copy with nothing more copied: our pages left become PROT_NONE, the waiter
        retries its fault and gets -EFAULT; process_vm_rw_single_vec() unpins anyway."""
        rest = self.page + self.next * L.PAGE
        size = self.length - self.next * L.PAGE
        L.mprotect(rest, size, L.PROT_NONE)
        _ioctl(self.uffd, UFFDIO_WAKE, ctypes.create_string_buffer(struct.pack("<QQ", rest, size), 16))
        self._join(timeout)

    def _join(self, timeout: float) -> None:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError("the copy did not return")

    def close(self) -> None:
        """Free what we hold; a copy still waiting is dropped first (closing the userfaultfd
        under it would let the copy run on a zero page: a write pin would write zeros)."""
        if self.thread.is_alive() and self.uffd >= 0:
            try:
                self.drop(1.0)
            except (OSError, TimeoutError):
                pass
        if self.page:
            L.munmap(self.page, self.length)
            self.page = 0
        if self.uffd >= 0:
            os.close(self.uffd)
            self.uffd = -1
