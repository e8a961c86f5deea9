"""mm/ksm.c: ksmd merges identical anonymous pages.

Its mechanism: ``cowdsl.semantics.mm.ksm``."""

from __future__ import annotations

from cowdsl.ops.spec import KSMD, REMOTE, Fuzz, Lock, OpSpec, Param, ScenarioGenerator, whole


def _fuzz_ksm_merge(g: ScenarioGenerator, actor: str) -> str | None:
    a, b = g.remote_addr(), g.remote_addr()
    return f"ksm_merge({a}, {b})" + g.bind_outcome(0.3) if a and b else None


KSM_MERGE = OpSpec(
    "ksm_merge",
    "KSM merges two identical anonymous pages into one read-only KSM page",
    "ksm_do_scan, try_to_merge_one_page",
    actor=KSMD,
    params=(Param("addr", REMOTE, "A.buf or A.buf[i]"), Param("other", REMOTE, "B.buf or B.buf[i]")),
    # mmap_lock of the first page's mm; write_protect_page and replace_page take the PTLs of both
    program=whole(Lock.MMAP_READ, also_ptl=("addr2",)),
    fuzz=Fuzz(_fuzz_ksm_merge),
)
