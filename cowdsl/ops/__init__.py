"""The op registry: every op declared once, with the facts and keywords of the language.

This is the one source of truth.  Each op is an :class:`OpSpec` (see
``cowdsl.ops.spec``) in the module named after the kernel file it models, as
the mechanism in ``cowdsl.semantics.mm`` is: its surface (parameters, flags,
keywords, what ``as NAME`` binds or releases), its micro-step program with the
lock each micro-step waits for, what it holds between micro-steps, and its
fuzz generator.  The checker validates steps against it, ``cowdsl ops`` prints
it, the Pygments lexer and editor grammars read their word lists from it
(``keywords()``, ``op_names()``, ``flag_names()``, ``fact_names()``), and the
Backend class binds its mechanism to it when it is built (a micro-step without
a mechanism, or a mechanism of no declared micro-step, is an error then).

This package is data: it does not import ``cowdsl.semantics``.
"""

from __future__ import annotations

from attrs import frozen

from cowdsl.ops import (
    device_exclusive,
    device_private,
    direct_io,
    execve,
    fork,
    gup,
    io_uring,
    ksm,
    memory,
    migrate,
    mmap,
    pipe,
    vmscan,
)
from cowdsl.ops.spec import (
    ACTORS,
    ADDR_PAGE,
    ADDRESS,
    ADDRESSES,
    ANY_ADDRESS,
    BINDS_DEVICE,
    BINDS_OUTCOME,
    BINDS_PIN,
    BINDS_PROCESS,
    BINDS_REF,
    BINDS_VALUE,
    CPU_LOAD,
    CPU_STORE,
    DEVICE,
    FOLL_GET,
    FOLL_PIN,
    HANDLE,
    HOLDS_GET,
    HOLDS_GRAB,
    HOLDS_PIN,
    KSMD,
    MAPPING,
    NEW_MAPPING,
    PART,
    PIPE,
    RECLAIM,
    REMOTE,
    TASK,
    VALUE,
    WHOLE,
    DeclarationError,
    FlagGroup,
    Fuzz,
    Holds,
    Keyword,
    Lock,
    MicroStep,
    OpSpec,
    PageAt,
    Param,
    Program,
    registry,
    whole,
)

__all__ = [
    "ACTORS", "ADDR_PAGE", "ADDRESS", "ADDRESSES", "CPU_LOAD", "CPU_STORE", "FOLL_GET", "FOLL_PIN", "HOLDS_GET", "HOLDS_GRAB",
    "HOLDS_PIN", "ANY_ADDRESS", "BINDS_DEVICE", "BINDS_OUTCOME", "BINDS_PIN", "BINDS_PROCESS", "BINDS_REF",
    "BINDS_VALUE", "BUILTIN_ACTORS", "DEVICE", "FACTS", "HANDLE", "KSMD", "MAPPING", "NEW_MAPPING", "OPS", "PART", "PIPE",
    "RECLAIM", "REMOTE", "TASK", "VALUE", "WHOLE", "DeclarationError", "FactSpec", "FlagGroup", "Fuzz", "Holds",
    "Keyword", "Lock", "MicroStep", "OpSpec", "PageAt", "Param", "Program", "fact_names", "flag_names",
    "keyword_arg_names", "keywords", "op_names", "programs", "registry", "whole",
]

# Every op, in the order `cowdsl ops`, the lexer and the editors list them.
OPS: dict[str, OpSpec] = registry(
    mmap.MMAP,
    mmap.MUNMAP,
    mmap.MREMAP,
    memory.READ,
    memory.WRITE,
    fork.FORK,
    execve.EXEC,
    mmap.EXIT,
    mmap.MPROTECT,
    mmap.MADVISE,
    gup.PIN,
    gup.GUP,
    gup.UNPIN,
    gup.PUT,
    gup.DMA_READ,
    gup.DMA_WRITE,
    pipe.VMSPLICE,
    pipe.PIPE_READ,
    gup.PROCESS_VM_WRITEV,
    gup.PROCESS_VM_READV,
    gup.PROC_MEM_WRITE,
    io_uring.IO_URING_REGISTER,
    direct_io.ODIRECT_READ,
    direct_io.ODIRECT_WRITE,
    device_exclusive.MAKE_DEVICE_EXCLUSIVE,
    device_private.MIGRATE_TO_DEVICE,
    ksm.KSM_MERGE,
    ksm.KSM_MERGE_ZERO,
    ksm.PRCTL,
    vmscan.SWAPOUT,
    vmscan.SWAPIN,
    migrate.MIGRATE,
)


def programs(ops: dict[str, OpSpec] | None = None) -> dict[Program, list[str]]:
    """Every program the ops run, with the ops that run it (GUP-fast: pin, gup, vmsplice)."""
    out: dict[Program, list[str]] = {}
    for op in (OPS if ops is None else ops).values():
        for prog in op.programs():
            out.setdefault(prog, []).append(op.name)
    return out


@frozen
class FactSpec:
    name: str
    arity: tuple[int, ...]  # accepted argument counts
    kind: str  # "bool" or "int"
    doc: str
    takes: str = "page"  # its argument: "page", "process", or "step" (a step named with `as`)


FACTS: dict[str, FactSpec] = {
    f.name: f
    for f in [
        FactSpec("exclusive", (1,), "bool", "the page is PageAnonExclusive"),
        FactSpec("pinned", (1,), "bool", "the page has FOLL_PIN pins (pincount > 0)"),
        FactSpec("maybe_pinned", (1,), "bool", "page_maybe_dma_pinned(): refcount >= 1024 on order-0 pages"),
        FactSpec("refcount", (1,), "int", "page_count() of the page"),
        FactSpec("mapcount", (1,), "int", "page_mapcount() of the page"),
        FactSpec("pincount", (1,), "int", "exact number of FOLL_PIN pins"),
        FactSpec("swapcache", (1,), "bool", "the page is in the swap cache"),
        FactSpec("swapped", (1,), "bool", "the page-table entry is a swap entry"),
        FactSpec("present", (1,), "bool", "the page-table entry maps a page"),
        FactSpec("writable", (1,), "bool", "the page-table entry is writable"),
        FactSpec("zero_page", (1,), "bool", "the entry maps the shared zero page (or the huge zero page)"),
        FactSpec("huge_zero_page", (1,), "bool", "the entry maps the huge zero page (a read fault on a thp mapping)"),
        FactSpec("device_exclusive", (1,), "bool", "the entry is a device-exclusive entry"),
        FactSpec("ksm", (1,), "bool", "the page is a KSM page"),
        FactSpec("cow_copies", (0, 1), "int", "pages copied by COW and unshare faults and by fork (all, or one process)",
                 "process"),
        FactSpec("faults", (0, 1), "int", "page faults taken by CPU accesses (all, or one process)", "process"),
        FactSpec("failed", (1,), "bool", "the step named by `as` failed (or a fork, by its child)", "step"),
        FactSpec("segv", (1,), "bool", "the process was killed by SIGSEGV", "process"),
        FactSpec("alive", (1,), "bool", "the process is alive", "process"),
        FactSpec("has_pinned", (1,), "bool", "MMF_HAS_PINNED is set on the process's mm", "process"),
        FactSpec("merge_any", (1,), "bool",
                 "MMF_VM_MERGE_ANY is set on the process's mm, as prctl(PR_GET_MEMORY_MERGE) reports it (6.4+)",
                 "process"),
        FactSpec("ksm_merging_pages", (1,), "int",
                 "mm->ksm_merging_pages, what /proc/PID/ksm_merging_pages shows (5.19+): the process's pages "
                 "KSM merged (its rmap_items in the stable tree); fork copied it into the child until 6.18 "
                 "(6.6.113, 6.12.54, 6.17.4)", "process"),
    ]
}

# Words the grammar reserves, by role (the lexer and editor grammars use these).
DECL_KEYWORDS = ("scenario", "ref", "process", "thread", "of", "file", "pipe")
STEP_KEYWORDS = ("as", "par")
ASSERT_KEYWORDS = ("assert", "and", "or", "not", "implies", "is", "true", "false",
                   "always", "sometimes", "never", "forall", "exists", "invariant")
EXPECT_KEYWORDS = ("expect", "on", "pass", "fail")
BUILTIN_ACTORS = (RECLAIM, KSMD)


def keywords() -> tuple[str, ...]:
    return DECL_KEYWORDS + STEP_KEYWORDS + ASSERT_KEYWORDS + EXPECT_KEYWORDS


def op_names() -> tuple[str, ...]:
    return tuple(OPS)


def flag_names() -> tuple[str, ...]:
    words = {w for op in OPS.values() for g in op.flags for w in g.choices}
    return tuple(sorted(words))


def keyword_arg_names() -> tuple[str, ...]:
    return tuple(sorted({k.name for op in OPS.values() for k in op.keywords}))


def fact_names() -> tuple[str, ...]:
    return tuple(FACTS)
