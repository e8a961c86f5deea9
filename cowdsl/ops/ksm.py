"""mm/ksm.c: what may be merged (MADV_MERGEABLE, prctl(PR_SET_MEMORY_MERGE)),
unmerging (MADV_UNMERGEABLE), ksmd merging identical anonymous pages, and ksmd
mapping the shared zero page in place of a zero-filled page (use_zero_pages).

Their mechanism: ``cowdsl.semantics.mm.ksm``."""

from __future__ import annotations

from cowdsl.ops.spec import KSMD, REMOTE, FlagGroup, Fuzz, Lock, OpSpec, Param, ScenarioGenerator, whole

# madvise(MADV_MERGEABLE / MADV_UNMERGEABLE) is the madvise op with that advice
# (cowdsl.ops.mmap); it runs this program: madvise_need_mmap_write() is true for
# both (they change vm_flags), unlike the other advice.
KSM_MADVISE = whole(Lock.MMAP_WRITE)
KSM_ADVICE = ("mergeable", "unmergeable")


def _fuzz_ksm_merge(g: ScenarioGenerator, actor: str) -> str | None:
    a, b = g.remote_addr(), g.remote_addr()
    return f"ksm_merge({a}, {b})" + g.bind_outcome(0.3) if a and b else None


KSM_MERGE = OpSpec(
    "ksm_merge",
    "KSM merges two identical anonymous pages into one read-only KSM page, if both mappings are mergeable "
    "(madvise(buf, mergeable), or prctl(memory_merge, enable) on 6.4+)",
    "ksm_do_scan, try_to_merge_one_page",
    actor=KSMD,
    params=(Param("addr", REMOTE, "A.buf or A.buf[i]"), Param("other", REMOTE, "B.buf or B.buf[i]")),
    # mmap_lock of the first page's mm; write_protect_page and replace_page take the PTLs of both
    program=whole(Lock.MMAP_READ, also_ptl=("addr2",)),
    fuzz=Fuzz(_fuzz_ksm_merge),
)


def _fuzz_ksm_merge_zero(g: ScenarioGenerator, actor: str) -> str | None:
    a = g.remote_addr()
    return f"ksm_merge_zero({a})" + g.bind_outcome(0.3) if a else None


KSM_MERGE_ZERO = OpSpec(
    "ksm_merge_zero",
    "with /sys/kernel/mm/ksm/use_zero_pages set (4.11+), ksmd maps the shared zero page in place of a zero-filled "
    "anonymous page of a mergeable mapping; MADV_UNMERGEABLE unshares such a KSM-placed zero page from 6.5",
    "cmp_and_merge_page: try_to_merge_with_zero_page, replace_page",
    actor=KSMD,
    params=(Param("addr", REMOTE, "A.buf or A.buf[i]"),),
    # try_to_merge_with_zero_page takes the page's mm's mmap_lock for read; replace_page its PTL
    program=whole(Lock.MMAP_READ),
    fuzz=Fuzz(_fuzz_ksm_merge_zero),
)


def _fuzz_prctl(g: ScenarioGenerator, task: str) -> str | None:
    return f"prctl(memory_merge, {g.c.choice(('enable', 'disable'))})"


PRCTL = OpSpec(
    "prctl",
    "prctl(PR_SET_MEMORY_MERGE, 1 or 0): make every compatible mapping of the process mergeable, now and "
    "later, and its children's (6.4+; EINVAL before); disable unmerges them",
    "prctl(2) PR_SET_MEMORY_MERGE: ksm_enable_merge_any, ksm_disable_merge_any",
    flags=(FlagGroup("option", ("memory_merge",), "memory_merge", "PR_SET_MEMORY_MERGE"),
           FlagGroup("state", ("enable", "disable"), "enable", "set (1) or clear (0) MMF_VM_MERGE_ANY")),
    program=whole(Lock.MMAP_WRITE),  # prctl_set_memory_merge takes mmap_write_lock
    fuzz=Fuzz(_fuzz_prctl, in_par=False),
)
