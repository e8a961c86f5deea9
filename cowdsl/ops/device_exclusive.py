"""mm/rmap.c make_device_exclusive_range (b756a3b5e7ea, 5.14).

Its mechanism: ``cowdsl.semantics.mm.device_exclusive``."""

from __future__ import annotations

from cowdsl.ops.spec import (
    ANY_ADDRESS,
    BINDS_DEVICE,
    HOLDS_GET,
    Fuzz,
    Holds,
    Lock,
    MicroStep,
    OpSpec,
    PageAt,
    Param,
    Program,
    ScenarioGenerator,
)

# The driver holds mmap_lock for read across both micro-steps (nouveau does):
# GUP-fast, faults and MADV_DONTNEED can run between them, fork cannot.  The
# rmap walk takes the PTL of every mm that maps the page GUP returned.
DEVEXCL = Program("devexcl", (
    MicroStep("gup", Lock.MMAP_READ, "mmap_read_lock; get_user_pages_remote(FOLL_WRITE)"),
    MicroStep("install", Lock.PTL, "the rmap walk: device-exclusive entries; mmap_read_unlock",
              rmap_walk=PageAt(0), holds=Holds(0, HOLDS_GET)),  # GUP's reference until the walk
))


def _fuzz_make_device_exclusive(g: ScenarioGenerator, task: str) -> str | None:
    a = g.any_addr(task)
    return g.handle(task, BINDS_DEVICE, True, f"make_device_exclusive({a})", 0.7) if a else None


MAKE_DEVICE_EXCLUSIVE = OpSpec(
    "make_device_exclusive",
    "give a device exclusive access to a page (e.g. for GPU atomics); `as dx` names it, and "
    "`dx: dma_write(V)` writes through it until a CPU access revokes it",
    "make_device_exclusive_range",
    params=(Param("addr", ANY_ADDRESS, "buf, buf[i] or A.buf[i]", word=True),),
    binds=BINDS_DEVICE,
    program=DEVEXCL,
    fuzz=Fuzz(_fuzz_make_device_exclusive),
)
