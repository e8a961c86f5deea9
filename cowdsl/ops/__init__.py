"""The op registry: every op's name, parameters, flags and one-line doc.

This is the one source of truth.  The checker validates steps against it, the
backends implement one method per op (``op_<name>``, checked by a test),
``cowdsl ops`` prints it, and the Pygments lexer and editor grammars read their
word lists from it (``keywords()``, ``op_names()``, ``flag_names()``,
``fact_names()``).
"""

from __future__ import annotations

from attrs import frozen

# What a positional parameter holds.
ADDRESS = "address"  # buf or buf[i], a page of the acting process
REMOTE = "remote"  # A.buf or A.buf[i], a page of another process (or own)
ANY_ADDRESS = "any-address"  # either of the above
NEW_MAPPING = "new-mapping"  # a mapping name being created
MAPPING = "mapping"  # an existing mapping of the acting process
VALUE = "value"  # an integer written to memory
PIPE = "pipe"  # a declared pipe
HANDLE = "handle"  # a pin or gup reference made by an earlier step

# Who may perform an op.
TASK = "task"  # a process or a thread of one
DEVICE = "device"  # a pin or gup reference: the device doing DMA through it
RECLAIM = "reclaim"  # the built-in page-reclaim actor
KSMD = "ksmd"  # the built-in KSM daemon

# What `as NAME` binds.
BINDS_VALUE = "value"
BINDS_PIN = "pin"
BINDS_REF = "ref"
BINDS_PROCESS = "process"
BINDS_DEVICE = "device"  # device-exclusive access, usable as a DMA actor
BINDS_OUTCOME = "outcome"


@frozen
class Param:
    name: str
    kind: str
    doc: str


@frozen
class FlagGroup:
    """Mutually exclusive bare words; ``default`` None means the flag is optional."""

    name: str
    choices: tuple[str, ...]
    default: str | None
    doc: str


@frozen
class Keyword:
    name: str
    kind: str  # "int" or "file"
    default: int | None
    doc: str
    lo: int = 1  # accepted range of an int keyword
    hi: int = 64


@frozen
class OpSpec:
    name: str
    doc: str
    kernel: str  # the kernel entry point it models
    actor: str = TASK
    params: tuple[Param, ...] = ()
    flags: tuple[FlagGroup, ...] = ()
    keywords: tuple[Keyword, ...] = ()
    binds: str = BINDS_OUTCOME

    def flag_words(self) -> dict[str, FlagGroup]:
        return {w: g for g in self.flags for w in g.choices}

    def signature(self) -> str:
        parts = [p.name for p in self.params]
        for g in self.flags:
            words = "|".join(g.choices)
            parts.append(f"{words}" if g.default else f"[{words}]")
        parts += [f"{k.name}=" + ("N" if k.kind == "int" else "FILE") for k in self.keywords]
        sig = f"{self.name}({', '.join(parts)})"
        if self.binds != BINDS_OUTCOME:
            sig += f" as {self.binds.upper()}"
        return sig


ACCESS = FlagGroup("access", ("read", "write"), "read", "FOLL_WRITE or not")
FAST = FlagGroup("fast", ("fast",), None, "use the lockless GUP-fast walk first")

OPS: dict[str, OpSpec] = {
    op.name: op
    for op in [
        OpSpec(
            "mmap",
            "map N pages: anonymous or a file, private or shared, rw or ro",
            "mmap(2)",
            params=(Param("name", NEW_MAPPING, "the mapping's name"),),
            flags=(
                FlagGroup("backing", ("anon",), None, "anonymous memory (the default without file=)"),
                FlagGroup("sharing", ("private", "shared"), "private", "MAP_PRIVATE or MAP_SHARED"),
                FlagGroup("prot", ("rw", "ro"), "rw", "PROT_READ|PROT_WRITE or PROT_READ"),
                FlagGroup(
                    "size",
                    ("small", "thp", "pte_thp", "hugetlb"),
                    "small",
                    "4 KiB pages, a PMD-mapped THP, a PTE-mapped THP, or hugetlb pages (private anonymous only)",
                ),
            ),
            keywords=(
                Keyword("pages", "int", 1, "number of pages"),
                Keyword("file", "file", None, "map this declared file instead of anonymous memory"),
            ),
        ),
        OpSpec("munmap", "unmap a whole mapping", "munmap(2)", params=(Param("mapping", MAPPING, "the mapping"),)),
        OpSpec(
            "read",
            "CPU load from a page; `as v` keeps the value read",
            "user load, handle_mm_fault",
            params=(Param("addr", ADDRESS, "buf or buf[i]"),),
            binds=BINDS_VALUE,
        ),
        OpSpec(
            "write",
            "CPU store of a value to a page",
            "user store, handle_mm_fault(FAULT_FLAG_WRITE)",
            params=(Param("addr", ADDRESS, "buf or buf[i]"), Param("value", VALUE, "the value stored")),
        ),
        OpSpec("fork", "fork the process; `as B` names the child", "fork(2), copy_page_range", binds=BINDS_PROCESS),
        OpSpec("exit", "the process exits: its mappings and its pins are released", "exit_group(2)"),
        OpSpec(
            "mprotect",
            "change a mapping's protection",
            "mprotect(2), change_pte_range",
            params=(Param("mapping", MAPPING, "the mapping"),),
            flags=(FlagGroup("prot", ("rw", "ro"), None, "the new protection"),),
        ),
        OpSpec(
            "madvise",
            "give advice about a mapping",
            "madvise(2)",
            params=(Param("mapping", MAPPING, "the mapping"),),
            flags=(
                FlagGroup(
                    "advice",
                    ("dontneed", "dontfork", "dofork", "wipeonfork", "pageout"),
                    None,
                    "MADV_DONTNEED, MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_PAGEOUT",
                ),
            ),
        ),
        OpSpec(
            "pin",
            "FOLL_PIN a page, as RDMA or io_uring fixed buffers do; `as mr` names the pin",
            "pin_user_pages(_fast), or pin_user_pages_remote on another process's page",
            params=(Param("addr", ANY_ADDRESS, "buf, buf[i], or A.buf[i] (remote)"),),
            flags=(ACCESS, FlagGroup("longterm", ("longterm",), None, "FOLL_LONGTERM"), FAST),
            binds=BINDS_PIN,
        ),
        OpSpec(
            "gup",
            "take a FOLL_GET page reference, as O_DIRECT did; `as r` names it",
            "get_user_pages(_fast), or get_user_pages_remote on another process's page",
            params=(Param("addr", ANY_ADDRESS, "buf, buf[i], or A.buf[i] (remote)"),),
            flags=(ACCESS, FAST),
            keywords=(Keyword("count", "int", 1, "take N references, as N requests in flight", 1, 4096),),
            binds=BINDS_REF,
        ),
        OpSpec(
            "unpin", "release a FOLL_PIN pin", "unpin_user_page", params=(Param("pin", HANDLE, "a pin"),)
        ),
        OpSpec(
            "put", "release a FOLL_GET reference", "put_page", params=(Param("ref", HANDLE, "a gup reference"),)
        ),
        OpSpec(
            "dma_read",
            "the device reads the page through a pin or reference",
            "device DMA read",
            actor=DEVICE,
            binds=BINDS_VALUE,
        ),
        OpSpec(
            "dma_write",
            "the device writes a value into the page through a write pin or reference",
            "device DMA write",
            actor=DEVICE,
            params=(Param("value", VALUE, "the value the device writes"),),
        ),
        OpSpec(
            "vmsplice",
            "splice a page into a pipe: the pipe keeps a FOLL_GET reference to the page",
            "vmsplice(2), iov_iter_get_pages",
            params=(Param("addr", ADDRESS, "buf or buf[i]"), Param("pipe", PIPE, "a declared pipe")),
        ),
        OpSpec(
            "pipe_read",
            "read the oldest buffer from a pipe: the page's content now; `as v` keeps it",
            "read(2) on a pipe",
            params=(Param("pipe", PIPE, "a declared pipe"),),
            binds=BINDS_VALUE,
        ),
        OpSpec(
            "process_vm_writev",
            "write a value into another process's page",
            "process_vm_writev(2), pin_user_pages_remote(FOLL_WRITE)",
            params=(Param("addr", REMOTE, "A.buf or A.buf[i]"), Param("value", VALUE, "the value written")),
        ),
        OpSpec(
            "process_vm_readv",
            "read another process's page; `as v` keeps the value",
            "process_vm_readv(2), pin_user_pages_remote",
            params=(Param("addr", REMOTE, "A.buf or A.buf[i]"),),
            binds=BINDS_VALUE,
        ),
        OpSpec(
            "proc_mem_write",
            "forced write through /proc/PID/mem (FOLL_FORCE|FOLL_WRITE), even into a read-only mapping",
            "mem_rw, access_remote_vm(FOLL_FORCE)",
            params=(Param("addr", ANY_ADDRESS, "buf, buf[i] or A.buf[i]"), Param("value", VALUE, "the value")),
        ),
        OpSpec(
            "make_device_exclusive",
            "give a device exclusive access to a page (e.g. for GPU atomics); `as dx` names it, and "
            "`dx: dma_write(V)` writes through it until a CPU access revokes it",
            "make_device_exclusive_range",
            params=(Param("addr", ANY_ADDRESS, "buf, buf[i] or A.buf[i]"),),
            binds=BINDS_DEVICE,
        ),
        OpSpec(
            "ksm_merge",
            "KSM merges two identical anonymous pages into one read-only KSM page",
            "ksm_do_scan, try_to_merge_one_page",
            actor=KSMD,
            params=(Param("addr", REMOTE, "A.buf or A.buf[i]"), Param("other", REMOTE, "B.buf or B.buf[i]")),
        ),
        OpSpec(
            "swapout",
            "reclaim tries to swap a process's page out",
            "shrink_folio_list, add_to_swap, try_to_unmap",
            actor=RECLAIM,
            params=(Param("addr", REMOTE, "A.buf or A.buf[i]"),),
        ),
        OpSpec(
            "swapin",
            "swap readahead brings a swapped-out page back into the swap cache (not mapped)",
            "swapin_readahead",
            actor=RECLAIM,
            params=(Param("addr", REMOTE, "A.buf or A.buf[i]"),),
        ),
    ]
}


@frozen
class FactSpec:
    name: str
    arity: tuple[int, ...]  # accepted argument counts
    kind: str  # "bool" or "int"
    doc: str


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
        FactSpec("zero_page", (1,), "bool", "the entry maps the shared zero page"),
        FactSpec("device_exclusive", (1,), "bool", "the entry is a device-exclusive entry"),
        FactSpec("ksm", (1,), "bool", "the page is a KSM page"),
        FactSpec("cow_copies", (0, 1), "int", "pages copied by COW and unshare faults and by fork (all, or one process)"),
        FactSpec("faults", (0, 1), "int", "page faults taken by CPU accesses (all, or one process)"),
        FactSpec("failed", (1,), "bool", "the step named by `as` failed (or a fork, by its child)"),
        FactSpec("segv", (1,), "bool", "the process was killed by SIGSEGV"),
        FactSpec("alive", (1,), "bool", "the process is alive"),
        FactSpec("has_pinned", (1,), "bool", "MMF_HAS_PINNED is set on the process's mm"),
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
