"""fs/exec.c execve (and mm/vma_exec.c from 6.15): the process's new mm."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowdsl.ops.execve import EXEC
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import whole_op
from cowdsl.semantics.state import Outcome

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine

MERGE_ANY_EXEC = "ksm_exec_merge_any"  # option: MMF_VM_MERGE_ANY in MMF_INIT_MASK (3c6f33b7273a, 6.7)
KSM_EXECVE = "ksm_execve"  # option: ksm_execve in __bprm_mm_init (3a9e567ca45f, 6.10; 6.8.12, 6.9.3)


class Execve(KernelBase):
    @whole_op(EXEC)
    def op_exec(self, m: Machine, step: Step) -> Outcome:
        """execve: bprm_mm_init allocates the new mm (mm_alloc -> mm_init keeps the old
        mm's flags & MMF_INIT_MASK), __bprm_mm_init calls ksm_execve on it, exec_mmap
        switches to it and mmput of the old mm runs exit_mmap: every VMA is zapped, and
        a page a pin or GUP reference holds stays allocated (the file descriptors and
        devices that hold them are the process's, not the mm's).  The model's process
        keeps its name; its mm is the new one."""
        task = step.task
        assert task is not None  # a process's op
        old = m.mm(task)
        merge_any = old.merge_any and self.options[MERGE_ANY_EXEC] == "keep"
        if old.merge_any:
            m.say(f"mm_init: MMF_VM_MERGE_ANY {'is' if merge_any else 'is not'} in MMF_INIT_MASK "
                  f"({'6.7+' if merge_any else 'before 6.7'}, 3c6f33b7273a): the new mm "
                  f"{'keeps' if merge_any else 'loses'} it")
        entered = merge_any and self.options[KSM_EXECVE] == "on"
        if merge_any:
            m.say(f"__bprm_mm_init: {'ksm_execve enters the new mm into ksmd' if entered else 'no ksm_execve'} "
                  f"({'6.10+, 6.8.12, 6.9.3' if entered else 'before 3a9e567ca45f'}): ksmd "
                  f"{'scans' if entered else 'never scans'} {task}'s new mm")
        self.exit_mmap(m, task)  # mmput of the old mm
        # a new mm: no VMAs, no MMF_HAS_PINNED (not in MMF_INIT_MASK), no KSM counters (mm_alloc zeroes it)
        m.update_mm(task, vmas=(), merge_any=merge_any, ksm_entered=entered, has_pinned=False,
                    ksm_merging_pages=0, ksm_stable=())
        m.say(f"exec: {task} runs with a new mm; its old mappings are gone")
        return Outcome(True)
