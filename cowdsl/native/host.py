"""What this host can do natively, probed once per process.

``probe()`` answers: is this Linux, can io_uring register buffers, does
pagemap show PFNs (root), does /proc/kpageflags show PG_anon_exclusive (checked
by making a page exclusive, forking, and watching the bit clear and come back),
is swap configured.  The tests use ``skip_reason()`` to skip, with the reason,
where the host cannot run the native backend.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

from attrs import frozen

from cowdsl.native import libc as L
from cowdsl.native import pagemap, uring


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
    return Host(True, io, pfns, excl, _swap_on(), kernel, _thp_mode(), _hugetlb(), _ksm(), kpf_ksm)


def skip_reason() -> str | None:
    """For tests: why native tests cannot run on this host, or None."""
    h = probe()
    return None if h.reason is None else f"native backend unavailable on this host: {h.reason}"
