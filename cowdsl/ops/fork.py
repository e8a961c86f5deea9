"""kernel/fork.c and copy_page_range: fork.

Its mechanism: ``cowdsl.semantics.mm.fork``."""

from __future__ import annotations

from cowdsl.ops.spec import BINDS_PROCESS, HOLDS_GET, Fuzz, Holds, Lock, MicroStep, OpSpec, Program, ScenarioGenerator

# fork holds mmap_lock for write from `lock` to `end`.  The two windows where
# others run: between deciding to share a page (`pte`, which takes the PTL) and
# write-protecting it (`share`), since GUP-fast takes no lock; and while the PTL
# is dropped to allocate a copy (`alloc`, copy_present_page's -EAGAIN).
FORK_PROGRAM = Program("fork", (
    MicroStep("lock", Lock.MMAP_WRITE, "mmap_write_lock"),
    MicroStep("begin", Lock.HELD, "dup_mmap: the child's VMAs; raw_write_seqcount_begin(write_protect_seq)"),
    MicroStep("pte", Lock.HELD, "copy_pte_range up to the next page it must share or copy"),
    MicroStep("share", Lock.HELD, "copy_present_pte: share the page, write-protected (the PTL held since `pte`)"),
    MicroStep("alloc", Lock.HELD, "page_copy_prealloc, the PTL dropped"),
    MicroStep("retry", Lock.HELD, "copy_present_page, or retry the PTE if it changed",
              holds=Holds(1, HOLDS_GET)),  # the preallocated copy
    MicroStep("end", Lock.HELD, "raw_write_seqcount_end; mmap_write_unlock"),
))


def _fuzz_fork(g: ScenarioGenerator, task: str) -> str | None:
    n = g.n
    if len(n.procs) >= 5:
        return None
    child = n.fresh("B")

    def make() -> None:
        n.procs[child] = dict(n.procs[task])
        n.outcomes.append(child)
    g.made(make)
    return f"fork() as {child}"


FORK = OpSpec(
    "fork", "fork the process; `as B` names the child", "fork(2), copy_page_range",
    binds=BINDS_PROCESS,
    program=FORK_PROGRAM,
    fuzz=Fuzz(_fuzz_fork),
)
