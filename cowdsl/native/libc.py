"""The few system calls the native backend needs that Python's os module lacks.

Everything goes through ctypes on the C library already loaded in the process
(``CDLL(None)``): mmap and friends on raw, page-aligned regions that hold no
Python object, vmsplice, process_vm_readv/writev, prctl and the raw io_uring
syscalls.  Each wrapper raises ``OSError`` with the errno, as ``os`` does.
"""

from __future__ import annotations

import ctypes
import os

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_FIXED_NOREPLACE = 0x100000
MAP_HUGETLB = 0x40000
HUGE = 2 << 20  # a hugetlb page of the default size on x86-64 (host.py checks Hugepagesize)
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
MAP_FAILED = ctypes.c_void_p(-1).value

MADV = {
    "dontneed": 4,
    "dontfork": 10,
    "dofork": 11,
    "hugepage": 14,
    "nohugepage": 15,
    "wipeonfork": 18,
    "pageout": 21,
    "willneed": 3,
    "mergeable": 12,
    "unmergeable": 13,
    "collapse": 25,  # MADV_COLLAPSE, 6.1+ (7d8faaf15545): older kernels say -EINVAL
}

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

# Syscall numbers: io_uring and process_madvise are in the generic table (same on
# x86_64 and arm64); vmsplice and process_vm_* go through libc wrappers.
SYS_io_uring_setup = 425
SYS_io_uring_enter = 426
SYS_io_uring_register = 427
SYS_process_madvise = 440

_libc = None


def libc():
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.mmap.restype = ctypes.c_void_p
        lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        lib.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        lib.mremap.restype = ctypes.c_void_p
        lib.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
        lib.syscall.restype = ctypes.c_long
        lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        lib.vmsplice.restype = ctypes.c_ssize_t
        lib.vmsplice.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
        lib.process_vm_readv.restype = ctypes.c_ssize_t
        lib.process_vm_readv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p,
                                         ctypes.c_ulong, ctypes.c_ulong]
        lib.process_vm_writev.restype = ctypes.c_ssize_t
        lib.process_vm_writev.argtypes = lib.process_vm_readv.argtypes
        _libc = lib
    return _libc


def _check(ret, what: str):
    if ret == -1 or (isinstance(ret, int) and ret < 0 and what != "mmap"):
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return ret


class iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def mmap(addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> int:
    ret = libc().mmap(addr, length, prot, flags, fd, offset)
    if ret is None or ret == MAP_FAILED:
        e = ctypes.get_errno()
        raise OSError(e, f"mmap: {os.strerror(e)}")
    return ret


def munmap(addr: int, length: int) -> None:
    _check(libc().munmap(addr, length), "munmap")


def mprotect(addr: int, length: int, prot: int) -> None:
    _check(libc().mprotect(addr, length, prot), "mprotect")


def mremap(addr: int, old_length: int, new_length: int, flags: int, new_addr: int = 0) -> int:
    ret = libc().mremap(addr, old_length, new_length, flags, new_addr)
    if ret is None or ret == MAP_FAILED:
        e = ctypes.get_errno()
        raise OSError(e, f"mremap: {os.strerror(e)}")
    return ret


def madvise(addr: int, length: int, advice: int) -> None:
    _check(libc().madvise(addr, length, advice), "madvise")


def prctl(option: int, arg2: int = 0) -> int:
    return _check(libc().prctl(option, arg2, 0, 0, 0), "prctl")


def get_subreaper() -> int:
    v = ctypes.c_int(0)
    _check(libc().prctl(PR_GET_CHILD_SUBREAPER, ctypes.addressof(v), 0, 0, 0), "prctl(PR_GET_CHILD_SUBREAPER)")
    return v.value


def vmsplice(fd: int, addr: int, length: int) -> int:
    iov = iovec(addr, length)
    return _check(libc().vmsplice(fd, ctypes.byref(iov), 1, 0), "vmsplice")


def vmsplice_many(fd: int, addr: int, length: int, count: int) -> int:
    """vmsplice of ``count`` iovecs, each the same ``length`` bytes at ``addr``: one pipe buffer,
    and so one page reference (get_user_pages_fast), per iovec."""
    iovs = (iovec * count)(*[iovec(addr, length) for _ in range(count)])
    return _check(libc().vmsplice(fd, iovs, count, 0), "vmsplice")


def process_vm_readv(pid: int, remote: int, length: int) -> bytes:
    buf = ctypes.create_string_buffer(length)
    local = iovec(ctypes.addressof(buf), length)
    rem = iovec(remote, length)
    n = _check(libc().process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(rem), 1, 0), "process_vm_readv")
    return buf.raw[:n]


def process_vm_writev(pid: int, remote: int, data: bytes) -> int:
    buf = ctypes.create_string_buffer(data, len(data))
    local = iovec(ctypes.addressof(buf), len(data))
    rem = iovec(remote, len(data))
    return _check(libc().process_vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(rem), 1, 0), "process_vm_writev")


def syscall(nr: int, *args: object) -> int:
    """A raw system call with no libc wrapper (io_uring, Linux AIO, userfaultfd, process_madvise):
    int arguments as longs, the others (ctypes pointers) as they are; -1 raises OSError."""
    ret = libc().syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret


def process_madvise(pidfd: int, addr: int, length: int, advice: int) -> int:
    iov = iovec(addr, length)
    return syscall(SYS_process_madvise, pidfd, ctypes.byref(iov), 1, advice, 0)


def current_cpu() -> int | None:
    """The CPU this thread runs on now (sched_getcpu), or None when libc cannot say."""
    try:
        cpu = libc().sched_getcpu()
    except AttributeError:
        return None
    return cpu if cpu >= 0 else None
