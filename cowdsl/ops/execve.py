"""fs/exec.c execve: the process gets a new mm.

Its mechanism: ``cowdsl.semantics.mm.execve``."""

from __future__ import annotations

from cowdsl.ops.spec import Fuzz, Lock, OpSpec, ScenarioGenerator, whole


def _fuzz_exec(g: ScenarioGenerator, task: str) -> str | None:
    n = g.n
    if g.in_par or task in n.threads.values():  # de_thread is not modelled: no exec with threads
        return None

    def make() -> None:
        n.procs[task] = {}  # every mapping is gone; its pins and references stay held
    g.made(make)
    return "exec()"


EXEC = OpSpec(
    "exec",
    "execve(2) of a program: the process gets a new mm without its mappings (a page a pin or GUP reference "
    "holds stays allocated); MMF_VM_MERGE_ANY carries over from 6.7, and ksmd scans the new mm from 6.10 "
    "(6.8.12, 6.9.3)",
    "execve(2): bprm_mm_init (mm_alloc, ksm_execve), exec_mmap, mmput of the old mm (exit_mmap)",
    # exit_mmap of the old mm takes its mmap_lock for write (6.x); ksm_execve the new mm's
    program=whole(Lock.MMAP_WRITE),
    fuzz=Fuzz(_fuzz_exec, in_par=False),
)
