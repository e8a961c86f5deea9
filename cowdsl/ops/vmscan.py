"""mm/vmscan.c and mm/swap_state.c: reclaim swaps pages out, readahead brings them back.

Their mechanism: ``cowdsl.semantics.mm.vmscan``."""

from __future__ import annotations

from cowdsl.ops.spec import ADDR_PAGE, RECLAIM, REMOTE, Fuzz, Lock, OpSpec, Param, ScenarioGenerator, whole


def _fuzz_swapout(g: ScenarioGenerator, actor: str) -> str | None:
    a = g.remote_addr()
    return f"swapout({a})" if a else None


def _fuzz_swapin(g: ScenarioGenerator, actor: str) -> str | None:
    a = g.remote_addr()
    return f"swapin({a})" if a else None


SWAPOUT = OpSpec(
    "swapout",
    "reclaim tries to swap a process's page out",
    "shrink_folio_list, add_to_swap, try_to_unmap",
    actor=RECLAIM,
    params=(Param("addr", REMOTE, "A.buf or A.buf[i]"),),
    # reclaim takes no mmap_lock; try_to_unmap walks the rmap under each mapper's PTL
    program=whole(Lock.PTL, rmap_walk=ADDR_PAGE),
    fuzz=Fuzz(_fuzz_swapout),
)

SWAPIN = OpSpec(
    "swapin",
    "swap readahead brings a swapped-out page back into the swap cache (not mapped)",
    "swapin_readahead",
    actor=RECLAIM,
    params=(Param("addr", REMOTE, "A.buf or A.buf[i]"),),
    program=whole(Lock.PTL),
    fuzz=Fuzz(_fuzz_swapin),
)
