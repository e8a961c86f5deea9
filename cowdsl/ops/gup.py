"""mm/gup.c: pin_user_pages and get_user_pages, what releases them, DMA through
them, and the users built on them (process_vm_readv/writev, /proc/PID/mem).

Their mechanism: ``cowdsl.semantics.mm.gup``."""

from __future__ import annotations

from cowdsl.ops.spec import (
    ANY_ADDRESS,
    BINDS_PIN,
    BINDS_REF,
    BINDS_VALUE,
    DEVICE,
    FOLL_GET,
    FOLL_PIN,
    HANDLE,
    HOLDS_GET,
    HOLDS_GRAB,
    HOLDS_PIN,
    REMOTE,
    VALUE,
    FlagGroup,
    Fuzz,
    Holds,
    Keyword,
    Lock,
    MicroStep,
    OpSpec,
    Param,
    Program,
    ScenarioGenerator,
    whole,
)

# --- the programs ---------------------------------------------------------------------------

# GUP-fast (gup_pte_range) takes no lock at all: it reads the PTE, grabs the page,
# re-checks the PTE and write_protect_seq; anything unexpected sends it to the
# slow path, which waits for mmap_lock.  The grab is speculative until the
# re-checks pass (the kernel drops it when the page changed).
GUP_FAST = Program("gup_fast", (
    MicroStep("begin", Lock.NONE, "MMF_HAS_PINNED, check_vma_flags; raw_read_seqcount(write_protect_seq)"),
    MicroStep("pte", Lock.NONE, "read the PTE"),
    MicroStep("grab", Lock.NONE, "try_grab_folio"),
    MicroStep("recheck", Lock.NONE, "the PTE unchanged?", holds=Holds(2, HOLDS_GRAB)),
    MicroStep("seq", Lock.NONE, "read_seqcount_retry(write_protect_seq)", holds=Holds(2, HOLDS_GRAB)),
    MicroStep("slow", Lock.MMAP_READ, "the slow path: __get_user_pages, whole"),
))

# __get_user_pages under mmap_read_lock, as one micro-step.
GUP_SLOW = Program("gup_slow", (
    MicroStep("take", Lock.MMAP_READ, "__get_user_pages: follow_page_pte, faultin_page, retry"),
))

# process_vm_rw_core: pin_user_pages_remote under mmap_lock, then copy and unpin
# with the lock dropped (the pin keeps the page).
PVM = Program("pvm", (
    MicroStep("gup", Lock.MMAP_READ, "pin_user_pages_remote"),
    MicroStep("copy", Lock.NONE, "copy to or from the pinned page", holds=Holds(0, HOLDS_PIN)),
    MicroStep("unpin", Lock.NONE, "unpin_user_pages", holds=Holds(0, HOLDS_PIN)),
))

# access_remote_vm(FOLL_FORCE|FOLL_WRITE): GUP's follow/fault loop, under
# mmap_read_lock from `lock` to `write`; faults are preemption points.
PMW = Program("pmw", (
    MicroStep("lock", Lock.MMAP_READ, "mmap_read_lock; check_vma_flags"),
    MicroStep("follow", Lock.HELD, "follow_page_pte"),
    MicroStep("fault", Lock.HELD, "faultin_page"),
    MicroStep("write", Lock.HELD, "write through the FOLL_GET reference; mmap_read_unlock",
              holds=Holds(0, HOLDS_GET)),
))

# --- fuzz generators ------------------------------------------------------------------------


def _fuzz_pin(g: ScenarioGenerator, task: str) -> str | None:
    c = g.c
    a = g.any_addr(task)
    if not a:
        return None
    write = c.boolean()
    flags = ["write" if write else "read"] + (["longterm"] if c.boolean(0.4) else []) + (
        ["fast"] if c.boolean(0.4) else [])
    return g.handle(task, BINDS_PIN, write, f"pin({a}, {', '.join(flags)})")


def _fuzz_gup(g: ScenarioGenerator, task: str) -> str | None:
    c = g.c
    a = g.any_addr(task)
    if not a:
        return None
    write = c.boolean()
    flags = ["write" if write else "read"] + (["fast"] if c.boolean(0.4) else [])
    if c.boolean(0.15):
        flags.append(f"count={c.choice((2, 1024))}")
    return g.handle(task, BINDS_REF, write, f"gup({a}, {', '.join(flags)})")


def _fuzz_unpin(g: ScenarioGenerator, task: str) -> str | None:
    return g.release(UNPIN)


def _fuzz_put(g: ScenarioGenerator, task: str) -> str | None:
    return g.release(PUT)


def _fuzz_dma_read(g: ScenarioGenerator, handle: str) -> str | None:
    return "dma_read()" + g.bind_value(0.5)


def _fuzz_dma_write(g: ScenarioGenerator, handle: str) -> str | None:
    _kind, write, _owner = g.n.handles[handle]
    return f"dma_write({g.value()})" + g.bind_outcome(0.2) if write else None


def _fuzz_process_vm_writev(g: ScenarioGenerator, task: str) -> str | None:
    a = g.remote_addr()
    return f"process_vm_writev({a}, {g.value()})" if a else None


def _fuzz_process_vm_readv(g: ScenarioGenerator, task: str) -> str | None:
    a = g.remote_addr()
    return f"process_vm_readv({a})" + g.bind_value(0.6) if a else None


def _fuzz_proc_mem_write(g: ScenarioGenerator, task: str) -> str | None:
    a = g.any_addr(task)
    return f"proc_mem_write({a}, {g.value()})" if a else None


# --- the ops ----------------------------------------------------------------------------------

ACCESS = FlagGroup("access", ("read", "write"), "read", "FOLL_WRITE or not")
FAST = FlagGroup("fast", ("fast",), None, "use the lockless GUP-fast walk first")

PIN = OpSpec(
    "pin",
    "FOLL_PIN a page, as RDMA or io_uring fixed buffers do; `as mr` names the pin",
    "pin_user_pages(_fast), or pin_user_pages_remote on another process's page",
    params=(Param("addr", ANY_ADDRESS, "buf, buf[i], or A.buf[i] (remote)", word=True),),
    flags=(ACCESS, FlagGroup("longterm", ("longterm",), None, "FOLL_LONGTERM"), FAST),
    binds=BINDS_PIN,
    program=GUP_SLOW,
    flag_programs=(("fast", GUP_FAST),),
    grabs=FOLL_PIN,
    fuzz=Fuzz(_fuzz_pin, weight=2),
)

GUP = OpSpec(
    "gup",
    "take a FOLL_GET page reference, as O_DIRECT did; `as r` names it",
    "get_user_pages(_fast), or get_user_pages_remote on another process's page",
    params=(Param("addr", ANY_ADDRESS, "buf, buf[i], or A.buf[i] (remote)", word=True),),
    flags=(ACCESS, FAST),
    keywords=(Keyword("count", "int", 1, "take N references, as N requests in flight", 1, 4096),),
    binds=BINDS_REF,
    program=GUP_SLOW,
    flag_programs=(("fast", GUP_FAST),),
    grabs=FOLL_GET,
    fuzz=Fuzz(_fuzz_gup),
)

UNPIN = OpSpec(
    "unpin", "release a FOLL_PIN pin", "unpin_user_page", params=(Param("pin", HANDLE, "a pin"),),
    releases=BINDS_PIN,
    program=whole(Lock.NONE),
    fuzz=Fuzz(_fuzz_unpin),
)

PUT = OpSpec(
    "put", "release a FOLL_GET reference", "put_page", params=(Param("ref", HANDLE, "a gup reference"),),
    releases=BINDS_REF,
    program=whole(Lock.NONE),
    fuzz=Fuzz(_fuzz_put),
)

DMA_READ = OpSpec(
    "dma_read",
    "the device reads the page through a pin or reference",
    "device DMA read",
    actor=DEVICE,
    binds=BINDS_VALUE,
    program=whole(Lock.NONE),
    fuzz=Fuzz(_fuzz_dma_read),
)

DMA_WRITE = OpSpec(
    "dma_write",
    "the device writes a value into the page through a write pin or reference",
    "device DMA write",
    actor=DEVICE,
    params=(Param("value", VALUE, "the value the device writes"),),
    program=whole(Lock.NONE),
    fuzz=Fuzz(_fuzz_dma_write),
)

PROCESS_VM_WRITEV = OpSpec(
    "process_vm_writev",
    "write a value into another process's page",
    "process_vm_writev(2), pin_user_pages_remote(FOLL_WRITE)",
    params=(Param("addr", REMOTE, "A.buf or A.buf[i]", word=True), Param("value", VALUE, "the value written")),
    program=PVM,
    fuzz=Fuzz(_fuzz_process_vm_writev),
)

PROCESS_VM_READV = OpSpec(
    "process_vm_readv",
    "read another process's page; `as v` keeps the value",
    "process_vm_readv(2), pin_user_pages_remote",
    params=(Param("addr", REMOTE, "A.buf or A.buf[i]", word=True),),
    binds=BINDS_VALUE,
    program=PVM,
    fuzz=Fuzz(_fuzz_process_vm_readv),
)

PROC_MEM_WRITE = OpSpec(
    "proc_mem_write",
    "forced write through /proc/PID/mem (FOLL_FORCE|FOLL_WRITE), even into a read-only mapping",
    "mem_rw, access_remote_vm(FOLL_FORCE)",
    params=(Param("addr", ANY_ADDRESS, "buf, buf[i] or A.buf[i]", word=True), Param("value", VALUE, "the value")),
    program=PMW,
    fuzz=Fuzz(_fuzz_proc_mem_write),
)
