"""What this host can do natively, probed once per process.

``probe()`` answers: is this Linux, can io_uring register buffers, does
pagemap show PFNs (root), does /proc/kpageflags show PG_anon_exclusive (checked
by making a page exclusive, forking, and watching the bit clear and come back),
is swap configured, does the temporary directory do direct I/O.  The tests use
``skip_reason()`` to skip, with the reason, where the host cannot run the native backend.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import sys
import tempfile

from attrs import frozen

from cowdsl.native import heldpin, pagemap, uring
from cowdsl.native import libc as L


@frozen
class Host:
    linux: bool
    io_uring: str | None  # None if usable, else why not
    pfns: str | None  # None if pagemap shows PFNs, else why not
    anon_exclusive: str | None  # None if kpageflags bit 34 tracks PG_anon_exclusive, else why not
    swap: bool
    kernel: str
    thp: str | None = "not probed"  # None if MADV_HUGEPAGE regions get transparent huge pages, else why not
    hugetlb: str | None = "not probed"  # None if MAP_HUGETLB may take 2 MiB pages of the pool, else why not
    ksm: str | None = "not probed"  # None if ksmd runs for this run (a guest's), else why not
    kpf_ksm: str | None = "not probed"  # None if kpageflags' KSM bit is clear on a page that is not KSM's
    odirect: str | None = "not probed"  # None if the temporary directory does direct I/O, else why not
    uffd: str | None = "not probed"  # None if userfaultfd takes kernel-mode faults (a held short-term pin)
    ksm_zero: str | None = "not probed"  # None if ksmd's knobs (run, use_zero_pages) may be switched (a guest's)
    shmem_thp: str | None = "not probed"  # None if a MADV_HUGEPAGE shared anonymous mapping gets a shmem THP

    @property
    def reason(self) -> str | None:
        """Why the native backend cannot run here at all (None: it can)."""
        if not self.linux:
            return f"not Linux ({sys.platform})"
        return self.pfns or self.io_uring

    def describe(self) -> str:
        parts = [f"Linux {self.kernel}" if self.linux else sys.platform]
        parts.append("io_uring ok" if self.io_uring is None else f"io_uring: {self.io_uring}")
        parts.append("PFNs ok" if self.pfns is None else f"PFNs: {self.pfns}")
        parts.append("PG_anon_exclusive via kpageflags" if self.anon_exclusive is None else
                     f"exclusive: {self.anon_exclusive}")
        parts.append("swap on" if self.swap else "no swap")
        if self.thp is None:
            parts.append("THP on MADV_HUGEPAGE")
        if self.hugetlb is None:
            parts.append("hugetlb pool")
        if self.ksm is None:
            parts.append("ksmd running")
        if self.uffd is None:
            parts.append("userfaultfd (short-term pins)")
        if self.odirect is None:
            delayed = " (behind dm-delay)" if "dm-delay" in guest_needs() else ""
            parts.append(f"O_DIRECT in {tempfile.gettempdir()}{delayed}")
        return ", ".join(parts)


def _swap_on() -> bool:
    try:
        with open("/proc/swaps") as f:
            return len([ln for ln in f.read().splitlines()[1:] if ln.strip()]) > 0
    except OSError:
        return False


THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
THP_SIZE = 2 << 20  # a PMD's worth on x86-64


def _thp_mode() -> str | None:
    """None when a MADV_HUGEPAGE region gets transparent huge pages here (enabled = always or
    madvise, PMD size 2 MiB), else why not."""
    try:
        with open(THP_ENABLED) as f:
            text = f.read()
    except OSError:
        return "no transparent huge pages (no " + THP_ENABLED + ")"
    mode = text[text.find("[") + 1:text.find("]")] if "[" in text else text.strip()
    if mode not in ("always", "madvise"):
        return f"transparent huge pages are off here ({THP_ENABLED} = {mode})"
    try:
        with open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") as f:
            if int(f.read()) != THP_SIZE:
                return "the PMD size is not 2 MiB"
    except (OSError, ValueError):
        pass
    return None


SHMEM_ENABLED = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#: the modes in which a MADV_HUGEPAGE shared anonymous mapping of 2 MiB gets a shmem THP
SHMEM_HUGE_MODES = frozenset({"always", "within_size", "advise", "force"})


def shmem_mode() -> str | None:
    """The bracketed mode of shmem_enabled (None: no such file, no shmem THP in this kernel)."""
    try:
        with open(SHMEM_ENABLED) as f:
            text = f.read()
    except OSError:
        return None
    return text[text.find("[") + 1:text.find("]")] if "[" in text else text.strip()


def _shmem_thp(thp: str | None) -> str | None:
    """None when a 2 MiB MADV_HUGEPAGE shared anonymous mapping gets a shmem THP: shmem_enabled
    allows it already, or this is our guest, where a run switches it to advise (native.shmem_thp)."""
    if thp is not None:
        return thp
    mode = shmem_mode()
    if mode is None:
        return f"no shmem THP in this kernel (no {SHMEM_ENABLED})"
    if mode in SHMEM_HUGE_MODES or (in_guest() and os.access(SHMEM_ENABLED, os.W_OK)):
        return None
    return (f"shmem THPs are off here ({SHMEM_ENABLED} = {mode}); it is machine-wide: only a "
            "`cowdsl crosscheck --kernel` guest switches it")


#: set by the init of a `cowdsl crosscheck --kernel` guest: the needs it switched on (cowdsl.kernels.guest)
GUEST_NEEDS_ENV = "COWDSL_GUEST_NEEDS"
HUGETLB_PAGES_NEEDED = 2  # a private huge page and its copy at the first write after fork


def guest_needs() -> frozenset[str]:
    return frozenset(os.environ.get(GUEST_NEEDS_ENV, "").split())


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if rest.split():
                    out[key] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return out


def _hugetlb() -> str | None:
    """None when MAP_HUGETLB may be used: only in a guest whose init reserved the pool for the run
    (the host's pool is a host-wide setting, /proc/sys/vm/nr_hugepages, that is not ours to use or
    change), with 2 MiB huge pages and enough of them free."""
    if "hugetlb" not in guest_needs():
        return ("the host's hugetlb pool (/proc/sys/vm/nr_hugepages) is not ours to use or change; "
                "`cowdsl crosscheck --kernel` reserves huge pages in its guest")
    info = _meminfo()
    if info.get("Hugepagesize") != THP_SIZE // 1024:
        return f"the default huge page size is not 2 MiB ({info.get('Hugepagesize')} kB)"
    free = info.get("HugePages_Free", 0)
    if free < HUGETLB_PAGES_NEEDED:
        return f"{free} huge pages free (nr_hugepages too small)"
    return None


KSM = "/sys/kernel/mm/ksm"


def _ksm() -> str | None:
    """None when ksmd runs for this run: in a guest whose init started it (`ksm` need).  On the host
    /sys/kernel/mm/ksm/run is a host-wide switch that is never touched, and a ksmd someone else
    runs scans at their pace, so a merge could not be waited for with a meaningful bound."""
    if "ksm" not in guest_needs():
        return ("ksmd is not ours to run (/sys/kernel/mm/ksm/run is a host-wide switch); "
                "`cowdsl crosscheck --kernel` runs it in its guest")
    try:
        with open(f"{KSM}/run") as f:
            if f.read().strip() != "1":
                return "ksmd is not running in this guest (/sys/kernel/mm/ksm/run != 1)"
    except OSError:
        return "this kernel has no KSM (no /sys/kernel/mm/ksm)"
    return None


#: on the kernel command line of a `cowdsl crosscheck --kernel` guest (cowdsl.kernels.qemu), never a host's
GUEST_CMDLINE_MARK = "cowdsl.guest=1"


def in_guest() -> bool:
    """Whether this is a guest our QEMU booted: its kernel command line says so.  (The environment
    could be set by hand on a host; a host's /proc/cmdline cannot.)"""
    try:
        with open("/proc/cmdline") as f:
            return GUEST_CMDLINE_MARK in f.read().split()
    except OSError:
        return False


def _ksm_zero(ksm: str | None) -> str | None:
    """None when /sys/kernel/mm/ksm/use_zero_pages may be switched on for a step: machine-wide, so
    only in our guest, with its ksmd running."""
    if ksm is not None:
        return ksm
    if not in_guest():
        return "use_zero_pages is a machine-wide KSM switch: only a `cowdsl crosscheck --kernel` guest sets it"
    if not os.access(f"{KSM}/use_zero_pages", os.W_OK):
        return "this kernel has no /sys/kernel/mm/ksm/use_zero_pages (4.11+, e86c59b1b12d)"
    return None


KPF_KSM_BUG = ("kpageflags reports KPF_KSM for every anonymous page on this kernel (dee3d0bef2b0 \"proc: "
               "rewrite stable_page_flags()\", 6.10, tested mapping & PAGE_MAPPING_KSM; fixed by 81401cebfc15 \"fs/proc: fix "
               "KPF_KSM reported for all anonymous pages\")")


def _probe_kpf_ksm() -> str | None:
    """A fresh private anonymous page, never advised mergeable, is no KSM page: kpageflags must say so."""
    addr = L.mmap(0, L.PAGE, L.PROT_READ | L.PROT_WRITE, L.MAP_PRIVATE | L.MAP_ANONYMOUS)
    try:
        L.madvise(addr, L.PAGE, L.MADV["nohugepage"])
        ctypes.c_uint64.from_address(addr).value = 1
        e = pagemap.entry("self", addr)
        if e is None or e.kflags is None:
            return "/proc/kpageflags is unreadable"
        return KPF_KSM_BUG if e.kflag(pagemap.KPF_KSM) else None
    finally:
        L.munmap(addr, L.PAGE)


TMPFS_MAGIC = 0x01021994  # include/uapi/linux/magic.h
RAMFS_MAGIC = 0x858458F6


def _fs_magic(path: str) -> int | None:
    """statfs(2)'s f_type of the file system holding ``path`` (its first field, a long)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on x86-64 and arm64
    try:
        if L.libc().statfs(os.fsencode(path), buf) != 0:
            return None
    except AttributeError:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def _probe_odirect(where: str | None = None) -> str | None:
    """None when a file in the temporary directory (where the runs' private directories go:
    TMPDIR) does direct I/O: opened O_DIRECT, a page-aligned 4 KiB pread into an anonymous page
    brings its bytes.  Else why not: the open or the read fails (EINVAL: the file system has no
    direct I/O), or the directory is on tmpfs, which from 6.6 accepts O_DIRECT (e88e0d366f9c
    "tmpfs: trivial support for direct IO": FMODE_CAN_ODIRECT) but copies through the page cache,
    so no bio ever holds the user's page."""
    where = where or tempfile.gettempdir()
    magic = _fs_magic(where)
    if magic in (TMPFS_MAGIC, RAMFS_MAGIC):
        return (f"{where} is on {'tmpfs' if magic == TMPFS_MAGIC else 'ramfs'}: it has no direct I/O (from 6.6 tmpfs "
                "accepts O_DIRECT but copies through the page cache; no bio holds the user page); set TMPDIR to a "
                "disk file system")
    pattern = bytes(range(256)) * (L.PAGE // 256)
    fd, path = tempfile.mkstemp(prefix="cowdsl-odirect-", dir=where)
    addr = 0
    try:
        os.write(fd, pattern)  # (the O_DIRECT read writes the dirty page back first)
        try:
            dfd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        except OSError as e:
            why = " (the file system has no direct I/O)" if e.errno == errno.EINVAL else ""
            return f"open(O_DIRECT) of a file in {where}: {e.strerror}{why}"
        try:
            addr = L.mmap(0, L.PAGE, L.PROT_READ | L.PROT_WRITE, L.MAP_PRIVATE | L.MAP_ANONYMOUS)
            n = os.preadv(dfd, [(ctypes.c_char * L.PAGE).from_address(addr)], 0)
        except OSError as e:
            return f"a 4 KiB O_DIRECT pread of a file in {where}: {e.strerror}"
        finally:
            os.close(dfd)
        if n != L.PAGE or ctypes.string_at(addr, L.PAGE) != pattern:
            return f"a 4 KiB O_DIRECT pread of a file in {where} read {n} bytes, not the file's 4096"
        return None
    finally:
        os.close(fd)
        os.unlink(path)
        if addr:
            L.munmap(addr, L.PAGE)


def _probe_pfns() -> str | None:
    if not os.path.exists("/proc/self/pagemap"):
        return "no /proc/self/pagemap"
    addr = L.mmap(0, L.PAGE, L.PROT_READ | L.PROT_WRITE, L.MAP_PRIVATE | L.MAP_ANONYMOUS)
    try:
        ctypes.c_uint64.from_address(addr).value = 1
        e = pagemap.entry("self", addr, with_page=False)
        if e is None or not e.present:
            return "pagemap is unreadable"
        if not e.pfn:
            return "pagemap hides PFNs (needs root / CAP_SYS_ADMIN)"
        if pagemap.kpageflags(e.pfn) is None:
            return "/proc/kpageflags is unreadable (needs root)"
    finally:
        L.munmap(addr, L.PAGE)
    return None


def _probe_anon_exclusive() -> str | None:
    """kpageflags bit 34 must be set on a fresh written page, clear after fork,
    and stay clear after the child exits, until a write fault reuses the page."""
    def bit(addr: int) -> bool | None:
        e = pagemap.entry("self", addr)
        return None if e is None else e.anon_exclusive

    addr = L.mmap(0, L.PAGE, L.PROT_READ | L.PROT_WRITE, L.MAP_PRIVATE | L.MAP_ANONYMOUS)
    try:
        L.madvise(addr, L.PAGE, L.MADV["nohugepage"])
        cell = ctypes.c_uint64.from_address(addr)
        cell.value = 1
        seen = [bit(addr)]
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(w)
                os.read(r, 1)
            finally:
                os._exit(0)
        os.close(r)
        seen.append(bit(addr))
        os.close(w)
        os.waitpid(pid, 0)
        seen.append(bit(addr))
        cell.value = 2
        seen.append(bit(addr))
    finally:
        L.munmap(addr, L.PAGE)
    if seen != [True, False, False, True]:
        return f"kpageflags bit 34 does not follow PG_anon_exclusive here (saw {seen})"
    return None


@functools.cache
def probe() -> Host:
    linux = sys.platform.startswith("linux")
    if not linux:
        return Host(False, "not Linux", "not Linux", "not Linux", False, "")
    kernel = os.uname().release
    try:
        io = uring.probe()
    except Exception as e:  # noqa: BLE001  (any failure means: not usable)
        io = f"{type(e).__name__}: {e}"
    try:
        pfns = _probe_pfns()
    except Exception as e:  # noqa: BLE001
        pfns = f"{type(e).__name__}: {e}"
    excl = pfns
    if pfns is None:
        try:
            excl = _probe_anon_exclusive()
        except Exception as e:  # noqa: BLE001
            excl = f"{type(e).__name__}: {e}"
    kpf_ksm = pfns
    if pfns is None:
        try:
            kpf_ksm = _probe_kpf_ksm()
        except Exception as e:  # noqa: BLE001
            kpf_ksm = f"{type(e).__name__}: {e}"
    try:
        odirect = _probe_odirect()
    except Exception as e:  # noqa: BLE001
        odirect = f"{type(e).__name__}: {e}"
    ksm = _ksm()
    thp = _thp_mode()
    return Host(True, io, pfns, excl, _swap_on(), kernel, thp, _hugetlb(), ksm, kpf_ksm, odirect,
                heldpin.probe(), _ksm_zero(ksm), _shmem_thp(thp))


def skip_reason() -> str | None:
    """For tests: why native tests cannot run on this host, or None."""
    h = probe()
    return None if h.reason is None else f"native backend unavailable on this host: {h.reason}"
