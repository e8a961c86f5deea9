"""Device-private memory (ZONE_DEVICE, MEMORY_DEVICE_PRIVATE): lib/test_hmm.c's
HMM_DMIRROR_MIGRATE_TO_DEV, dmirror_migrate_to_device: migrate_vma_setup,
dmirror_migrate_alloc_and_copy, migrate_vma_pages, dmirror_migrate_finalize_and_map,
migrate_vma_finalize (mm/migrate_device.c; mm/migrate.c before 5.19).

Its mechanism: ``cowdsl.semantics.mm.device_private``."""

from __future__ import annotations

from cowdsl.ops.spec import (
    ADDR_PAGE,
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

# dmirror_migrate_to_device holds mmap_read_lock across the three: faults, GUP and
# GUP-fast can run between them, fork and munmap cannot.  `collect` is migrate_vma_setup:
# migration entries under this mm's PTL (migrate_vma_collect), then try_to_migrate for
# the page's other mappings (an rmap walk) and the reference check
# (migrate_vma_check_page); `copy` is the driver's copy into a device page and
# migrate_vma_pages' folio_migrate_mapping (the page lock only); `finalize` is
# migrate_vma_finalize's remove_migration_ptes, under each mapper's PTL: device-private
# entries, or the old page back where the migration failed.
MIGRATE_TO_DEVICE_PROGRAM = Program("devpriv", (
    MicroStep("collect", Lock.MMAP_READ,
              "mmap_read_lock; migrate_vma_collect: migration entries; migrate_vma_unmap: try_to_migrate, "
              "migrate_vma_check_page", rmap_walk=ADDR_PAGE),
    MicroStep("copy", Lock.NONE, "dmirror_migrate_alloc_and_copy: a device page; migrate_vma_pages",
              holds=Holds(0, HOLDS_GET)),
    MicroStep("finalize", Lock.PTL,
              "migrate_vma_finalize: remove_migration_ptes → device-private entries; mmap_read_unlock",
              rmap_walk=PageAt(0), holds=Holds(0, HOLDS_GET)),
))


def _fuzz_migrate_to_device(g: ScenarioGenerator, task: str) -> str | None:
    a = g.any_addr(task)
    return g.handle(task, BINDS_DEVICE, True, f"migrate_to_device({a})", 0.7) if a else None


MIGRATE_TO_DEVICE = OpSpec(
    "migrate_to_device",
    "migrate an anonymous page to a device's private memory (test_hmm's HMM_DMIRROR_MIGRATE_TO_DEV): the "
    "PTE becomes a device-private entry, a CPU access migrates the page back; `as dev` names the device's "
    "mirror, and `dev: dma_read()` / `dev: dma_write(V)` access its private copy",
    "migrate_vma_setup, migrate_vma_pages, migrate_vma_finalize (test_hmm dmirror_migrate_to_device)",
    params=(Param("addr", ANY_ADDRESS, "buf, buf[i] or A.buf[i]", word=True),),
    binds=BINDS_DEVICE,
    program=MIGRATE_TO_DEVICE_PROGRAM,
    fuzz=Fuzz(_fuzz_migrate_to_device),
)
