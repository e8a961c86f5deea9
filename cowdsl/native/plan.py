"""Which scenarios the native backend can run honestly, and why not the others.

A step that has no user-space equivalent is never faked: the whole scenario
is skipped with the reason, before any process is started.  Every op of the
registry is either translated (``translate.OPS``) or refused here with its
reason (``REFUSED``).
"""

from __future__ import annotations

import re
from typing import Any

from cowdsl import scenario as S
from cowdsl.native.par import CONTROLLER, REGISTERS, executor, pin_owners
from cowdsl.native.translate import OPS

UNSUPPORTED_PIN = (
    "unsupported on native: `{text}`: the only long-term pin user space can ask for is io_uring's buffer "
    "registration, pin_user_pages(FOLL_WRITE|FOLL_LONGTERM); a R/O pin is short-term here "
    "(process_vm_readv): write `pin(..., read)`"
)
NO_HELD_PIN = (
    "unsupported on this host: `{text}`: a short-term pin is a process_vm_readv/writev held mid-copy by a "
    "userfaultfd-missing page, and {why}"
)
UNSUPPORTED_HELD_PAR = (
    "unsupported on native: `{text}`: a short-term pin (process_vm_*v held mid-copy) is taken and ended "
    "only outside `par` blocks"
)
UNSUPPORTED_HELD_DMA = (
    "unsupported on native: `{text}`: a short-term pin is a process_vm_*v held mid-copy: {why}"
)
UNSUPPORTED_FAST = (
    "unsupported on native: `{text}`: user space cannot choose the GUP-fast path for a pin"
)
UNSUPPORTED_GUP = (
    "unsupported on native: `{text}`: the FOLL_GET references user space can hold are a pipe's (vmsplice: "
    "get_user_pages_fast without FOLL_WRITE, of the process's own page, falling back to the slow path); "
    "a FOLL_WRITE one or a GUP-fast one that must not fall back has no such mechanism"
)
UNSUPPORTED_GUP_DIO = (
    "unsupported on native: `{text}`: a FOLL_GET|FOLL_WRITE reference is an O_DIRECT read in flight here, "
    "whose completion is its one device write: {why}"
)
UNSUPPORTED_GUP_DEVICE = (
    "unsupported on native: `{text}`: a `gup` reference is held by pipe buffers here; no device reads or "
    "writes through it (reading the pipe would drop the reference)"
)
UNSUPPORTED_SIZE = (
    "unsupported on native: `{text}`: native maps small pages (MADV_NOHUGEPAGE), THPs (`thp`/`pte_thp`, "
    "a 2 MiB-aligned MADV_HUGEPAGE region) and hugetlb pages (`hugetlb`, MAP_HUGETLB) only"
)
UNSUPPORTED_THP = ("unsupported on native: `{text}`: a `thp` or `pte_thp` mapping is one private anonymous "
                   "THP (pages=1), or one shared anonymous `thp` (a shmem THP); no tmpfs or memfd file THP")
UNSUPPORTED_HUGETLB = "unsupported on native: `{text}`: a `hugetlb` mapping is one anonymous huge page (pages=1)"
NO_THP = "unsupported on this host: `{text}`: {why}"
UNSUPPORTED_REMOTE_PIN = (
    "unsupported on native: `{text}`: user space cannot take a long-term pin on another process's page "
    "(io_uring registers buffers of its own mm only; a short-term `pin(A.buf, write)` is process_vm_writev)"
)
UNSUPPORTED_OP = "unsupported on native: `{text}`: `{op}` has no user-space mechanism here"
UNSUPPORTED_ODIRECT_FILE = (
    "unsupported on native: `{text}`: O_DIRECT needs a disk file; {file} is a `{kind}` file (shmem and hugetlbfs "
    "have no direct I/O: no bio holds the user page)"
)
NO_ODIRECT = "unsupported on this host: `{text}`: {why}"
UNSUPPORTED_MIGRATE = (
    "unsupported on native: `{text}`: move_pages(2) migrates a page only to another NUMA node, and the "
    "native backend does not translate it yet (a single-node host cannot migrate at all)"
)
UNSUPPORTED_FILE_KIND = (
    "unsupported on native: `file {name} ... on {kind}`: native writes a scenario's disk files into the run's "
    "private directory and makes memfd and hugetlbfs ones with memfd_create; a tmpfs file is not made yet"
)
UNSUPPORTED_HUGETLBFS = (
    "unsupported on native: `file {name} ... on hugetlbfs`: a hugetlbfs file is made of zeroed huge pages "
    "(fallocate; hugetlbfs has no write())"
)
UNSUPPORTED_PAR_SHARED = (
    "unsupported on native: `{text}`: in a `par` block `{a}` and `{b}` would both run on {where} natively, "
    "one after the other, not at once"
)
UNSUPPORTED_PAR_CHILD = (
    "unsupported on native: `{text}`: the `par` block itself forks {proc}; native starts each actor of a "
    "block together, before {proc} exists"
)
UNSUPPORTED_DEVICE_PRIVATE = (
    "unsupported on native: `{text}`: device-private memory needs a driver that owns some (lib/test_hmm.c, "
    "CONFIG_TEST_HMM), which the Debian kernels this runs on do not ship"
)
UNSUPPORTED_EXEC = (
    "unsupported on native: `{text}`: the worker would have to execve() a new worker and reconnect it to the "
    "controller, which native does not do"
)
NO_SWAP = "unsupported on this host: no swap (`{text}` needs MADV_PAGEOUT to a swap device; /proc/swaps is empty)"


# The ops the native backend implements (translate.OPS), and the ones it refuses, with why.
NATIVE_OPS = frozenset(OPS)
REFUSED: dict[str, str] = {
    "make_device_exclusive": UNSUPPORTED_OP,  # only a device driver can make an entry device-exclusive
    "migrate": UNSUPPORTED_MIGRATE,
    "exec": UNSUPPORTED_EXEC,
    "migrate_to_device": UNSUPPORTED_DEVICE_PRIVATE,
}
# The mmap flags and madvise advice it honours.
MMAP_FLAGS = frozenset({"anon", "private", "shared", "rw", "ro", "small", "thp", "pte_thp", "hugetlb"})
MADVICE = frozenset({"dontneed", "dontfork", "dofork", "wipeonfork", "pageout", "tail", "mergeable", "unmergeable",
                     "collapse"})
KSM_ADVICE = frozenset({"mergeable", "unmergeable"})


def ksm_step(st: S.Step) -> bool:
    """A step that makes memory mergeable or unmerges it: madvise(MADV_(UN)MERGEABLE),
    prctl(PR_SET_MEMORY_MERGE), ksmd's merges.  Natively only where ksmd is the run's own (a guest's):
    on the host a ksmd someone else runs would merge the run's pages at any time."""
    return (st.op in ("ksm_merge", "prctl") or (st.op == "madvise" and bool(st.flags & KSM_ADVICE)))


def step_problem(st: S.Step, host: Any) -> str | None:
    text = st.text or st.op
    if st.op in REFUSED:
        return REFUSED[st.op].format(text=text, op=st.op)
    if st.op not in NATIVE_OPS:  # an op nobody has classified yet (a test fails on it)
        return UNSUPPORTED_OP.format(text=text, op=st.op)
    if st.op == "mmap" and not st.flags <= MMAP_FLAGS:
        return UNSUPPORTED_SIZE.format(text=text)
    if st.op == "mmap" and st.flags & {"thp", "pte_thp"}:
        if st.file or st.pages != 1 or ("shared" in st.flags and "pte_thp" in st.flags):
            return UNSUPPORTED_THP.format(text=text)
        why = getattr(host, "shmem_thp" if "shared" in st.flags else "thp", "not probed")
        if why is not None:
            return NO_THP.format(text=text, why=why)
    if st.op == "mmap" and "hugetlb" in st.flags:
        if st.file or st.pages != 1:
            return UNSUPPORTED_HUGETLB.format(text=text)
        why = getattr(host, "hugetlb", "not probed")
        if why is not None:
            return NO_THP.format(text=text, why=why)
    if st.op == "madvise" and not st.flags <= MADVICE:
        return UNSUPPORTED_OP.format(text=text, op="madvise(" + ", ".join(sorted(st.flags - MADVICE)) + ")")
    if st.op == "ksm_merge_zero":
        why = getattr(host, "ksm_zero", "not probed")
        if why is not None:
            return NO_THP.format(text=text, why=why)
    if ksm_step(st):
        why = getattr(host, "ksm", "not probed")
        if why is not None:
            return NO_THP.format(text=text, why=why)
    held = st.op == "pin" and "longterm" not in st.flags
    if st.op in REGISTERS and not held and st.addr is not None and st.addr.proc != st.task:
        return UNSUPPORTED_REMOTE_PIN.format(text=text)
    if st.op == "pin":
        if "fast" in st.flags:
            return UNSUPPORTED_FAST.format(text=text)
        if "longterm" in st.flags and "write" not in st.flags:
            return UNSUPPORTED_PIN.format(text=text)
        if held and getattr(host, "uffd", "not probed") is not None:
            return NO_HELD_PIN.format(text=text, why=getattr(host, "uffd", "not probed"))
        if held and st.par:
            return UNSUPPORTED_HELD_PAR.format(text=text)
    if gup_refused(st):
        return UNSUPPORTED_GUP.format(text=text)
    if st.op == "gup" and "write" in st.flags:
        return gup_dio_problem(st, host)
    if st.op in ("swapout", "swapin") or (st.op == "madvise" and "pageout" in st.flags):
        if not host.swap:
            return NO_SWAP.format(text=text)
    if st.op in ODIRECT_OPS:  # on a disk file in the run's private directory, if the probe found direct I/O there
        why = getattr(host, "odirect", "not probed")
        if why is not None:
            return NO_ODIRECT.format(text=text, why=why)
    return None


ODIRECT_OPS = frozenset({"odirect_read", "odirect_write"})


def par_problem(sc: S.Scenario) -> tuple[int, str] | None:
    """A `par` block runs each actor on its own thread (``par.py``): two actors that would share
    one (a device and its pin's owner, two devices of one owner, two controller ops of one
    actor name) cannot run at once, and an actor cannot run in a process the block itself forks."""
    owners = pin_owners(sc)
    for block in sc.blocks():
        if not block[0].par:
            continue
        forked = {st.bind for st in block if st.op == "fork" and st.bind}
        seen: dict[tuple[str, str | None], str] = {}
        for st in block:
            where = executor(st, owners)
            if where[0] in forked:
                return st.number, UNSUPPORTED_PAR_CHILD.format(text=st.text or st.op, proc=where[0])
            other = seen.setdefault(where, st.actor)
            if other != st.actor:
                return st.number, UNSUPPORTED_PAR_SHARED.format(text=st.text or st.op, a=other, b=st.actor,
                                                                where=_where(where))
    return None


def gup_refused(st: S.Step) -> bool:
    """A `gup` no user-space mechanism holds, whatever the kernel: GUP-fast only, in a par block, remote."""
    return st.op == "gup" and ("fast" in st.flags or st.par or (st.addr is not None and st.addr.proc != st.task))


#: block/bio.c takes the user pages with FOLL_PIN from here (a7e689dd1c06, 6.5): no FOLL_GET to hold
ODIRECT_FOLL_PIN = (6, 5)


def gup_dio_problem(st: S.Step, host: Any) -> str | None:
    """`gup(buf, write)` is an O_DIRECT read in flight: where direct I/O works and takes FOLL_GET."""
    text = st.text or st.op
    why = getattr(host, "odirect", "not probed")
    if why is not None:
        return UNSUPPORTED_GUP_DIO.format(text=text, why=why)
    release = re.match(r"(\d+)\.(\d+)", getattr(host, "kernel", "") or "")  # uname -r: 5.10.0-32-cloud-amd64
    if release is None or (int(release[1]), int(release[2])) >= ODIRECT_FOLL_PIN:
        return UNSUPPORTED_GUP_DIO.format(text=text, why=(
            f"this kernel ({getattr(host, 'kernel', '?')}) takes FOLL_PIN for it (a7e689dd1c06, 6.5), not FOLL_GET"))
    if st.addr is not None and st.addr.offset:
        return UNSUPPORTED_GUP_DIO.format(text=text, why="it reads a whole page, not one word")
    return None


def dio_problem(sc: S.Scenario) -> tuple[int, str] | None:
    """An O_DIRECT read standing for `gup(buf, write) as r` must meet its one device write, the
    completion, before anything else is done with r (the disk holds that write's value), and it
    writes the whole page: no step or assertion of the scenario may name another word."""
    steps = list(sc.steps)
    for st in steps:
        if not (st.op == "gup" and "write" in st.flags and st.bind):
            continue
        uses = [s for s in steps if s.handle == st.bind]
        text = st.text or st.op
        if [s.op for s in uses] not in (["dma_write"], ["dma_write", "put"]):
            return st.number, UNSUPPORTED_GUP_DIO.format(text=text, why=(
                f"`{st.bind}` needs exactly one device write, then only its `put`"))
        if uses[-1].op == "put" and steps.index(uses[-1]) != steps.index(uses[0]) + 1:
            return uses[-1].number, UNSUPPORTED_GUP_DIO.format(text=text, why=(
                f"the completion puts the reference: `put({st.bind})` must come right after the device write"))
        if any(s.addr is not None and s.addr.offset for s in steps) or any(
                isinstance(r, S.PageAt) and r.addr.offset or isinstance(r, S.FilePage) and r.offset
                for a in sc.assertions for r in S.refs(a.expr)):
            return st.number, UNSUPPORTED_GUP_DIO.format(text=text, why="it reads a whole page, not one word")
    return None


def ksm_zero_problem(sc: S.Scenario) -> tuple[int, str] | None:
    """use_zero_pages is on for a whole run with `ksm_merge_zero` (translate.use_zero_pages): ksmd
    would then map the zero page for a zero-filled page that a `ksm_merge` of the run merges."""
    zero = next((st for st in sc.steps if st.op == "ksm_merge_zero"), None)
    merge = next((st for st in sc.steps if st.op == "ksm_merge"), None)
    if zero is not None and merge is not None:
        return merge.number, (f"unsupported on native: `{merge.text}`: use_zero_pages is on for this run "
                              f"(`{zero.text}`), and it changes what ksmd does with a zero-filled page")
    return None


def held_problem(sc: S.Scenario) -> tuple[int, str] | None:
    """A short-term pin is a process_vm_*v waiting mid-copy (``heldpin.py``): a read pin's copy
    only reads the pinned page, and a write pin's copy writes into it once, when it is let run,
    and then the kernel unpins (and pins again for the next device write's iovec).  So a write
    pin's last device write is its last use: its unpin comes next, or nothing does.  (A device
    write through a R/O pin is the checker's error already.)"""
    steps = list(sc.steps)
    held = {st.bind: st for st in steps if st.op == "pin" and st.bind and "longterm" not in st.flags}
    refs = {st.bind for st in steps if st.op == "gup" and st.bind and "write" not in st.flags}
    for st in steps:
        if st.handle in refs and st.op in ("dma_write", "dma_read"):
            return st.number, UNSUPPORTED_GUP_DEVICE.format(text=st.text or st.op)
    for i, st in enumerate(steps):
        pin = held.get(st.handle or "")
        if pin is None or st.op not in ("dma_write", "dma_read", "unpin"):
            continue
        if st.par:
            return st.number, UNSUPPORTED_HELD_PAR.format(text=st.text or st.op)
        if st.op != "dma_write":
            continue
        rest = steps[i + 1:]
        if any(s.op == "dma_write" and s.handle == st.handle for s in rest):
            continue  # the kernel pins again for the next iovec (heldpin.HeldPin)
        if rest and not (rest[0].op == "unpin" and rest[0].handle == st.handle):
            return st.number, UNSUPPORTED_HELD_DMA.format(
                text=st.text or st.op, why="its device write ends it (process_vm_writev returns and the kernel "
                                           f"unpins) while the scenario still holds it: `unpin({st.handle})` "
                                           "must come next")
    return None


def _where(where: tuple[str, str | None]) -> str:
    name, thread = where
    if name == CONTROLLER:
        return "the controller"
    return f"{name}'s thread {thread}" if thread else f"{name}'s main thread"


def guest_needs(sc: S.Scenario) -> frozenset[str]:
    """What a `crosscheck --kernel` guest must switch on for ``sc`` to run natively there, beyond
    the defaults (swap, THP on madvise): huge pages in the pool, ksmd running, and for an O_DIRECT
    request in a `par` block a delay on the scratch disk (its window is ~0.1 ms otherwise), unless
    an op native refuses keeps the scenario from running (the delay slows every run's /tmp)."""
    needs: set[str] = set()
    refused = any(st.op in REFUSED or gup_refused(st) for st in sc.steps)
    for st in sc.steps:
        if (st.op in ODIRECT_OPS and st.par or st.op == "gup" and "write" in st.flags) and not refused:
            needs.add("dm-delay")  # (a gup write is an O_DIRECT read that must stay in flight)
        if st.op == "mmap" and "hugetlb" in st.flags:
            needs.add("hugetlb")
        if st.op == "mmap" and st.file and dict(sc.file_kinds).get(st.file) == "hugetlbfs":
            needs.add("hugetlb")
        if st.op in ("ksm_merge", "ksm_merge_zero", "prctl") or (st.op == "madvise" and "mergeable" in st.flags):
            needs.add("ksm")
    return frozenset(needs)


def problem(sc: S.Scenario, host: Any, limits: Any) -> tuple[int | None, str] | None:
    """(step number or None, reason) when the scenario cannot run natively, else None."""
    if host.reason is not None:
        return None, f"unsupported on this host: {host.reason}"
    why_par = par_problem(sc) or held_problem(sc) or dio_problem(sc) or ksm_zero_problem(sc)
    if why_par is not None:
        return why_par
    contents = dict(sc.files)
    for name, kind in getattr(sc, "file_kinds", ()):
        if kind == "hugetlbfs":
            if any(contents.get(name, ())):
                return None, UNSUPPORTED_HUGETLBFS.format(name=name)
            if getattr(host, "hugetlb", "not probed") is not None:
                return None, f"unsupported on this host: `file {name} ... on hugetlbfs`: {host.hugetlb}"
        elif kind != "memfd":
            return None, UNSUPPORTED_FILE_KIND.format(name=name, kind=kind)
    kinds = dict(getattr(sc, "file_kinds", ()))
    for st in sc.steps:
        if st.op in ODIRECT_OPS and kinds.get(st.file or "", "disk") != "disk":
            return st.number, UNSUPPORTED_ODIRECT_FILE.format(text=st.text or st.op, file=st.file,
                                                              kind=kinds[st.file or ""])
        why = step_problem(st, host)
        if why is not None:
            return st.number, why
    if len(sc.steps) > limits.max_steps:
        return None, f"exceeds native limits: {len(sc.steps)} steps > {limits.max_steps}"
    procs = len(sc.processes) + sum(1 for st in sc.steps if st.op == "fork")
    if procs > limits.max_processes:
        return None, f"exceeds native limits: {procs} processes > {limits.max_processes}"
    pages = sum(st.pages for st in sc.steps if st.op == "mmap")
    if pages > limits.max_pages:
        return None, f"exceeds native limits: {pages} mapped pages > {limits.max_pages}"
    widest = max((st for st in sc.steps if st.op == "mmap"), key=lambda st: st.pages, default=None)
    per = getattr(limits, "max_pages_per_mapping", 64)
    if widest is not None and widest.pages > per:  # (the model's --max-pages may allow more)
        return widest.number, f"exceeds native limits: a mapping of {widest.pages} pages > {per}"
    return None
