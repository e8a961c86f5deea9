"""mm/migrate.c: page migration of one page (move_pages(2), migrate_pages(2),
compaction, NUMA balancing all end in migrate_pages()).

Its mechanism: ``cowdsl.semantics.mm.migrate``."""

from __future__ import annotations

from cowdsl.ops.spec import (
    HOLDS_GET,
    REMOTE,
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

# migrate_pages takes no mmap_lock of the mms mapping the page (move_pages takes the
# target's for read only to look the page up and isolate it, which the model folds
# into `unmap`).  Its three preemption points: the unmap, which replaces every PTE
# mapping the page with a migration entry under each mapper's PTL (try_to_migrate,
# an rmap walk); the move, which checks the page's references and copies it
# (folio_migrate_mapping, no lock but the page lock); the remap, which turns every
# migration entry naming the page back into a PTE (remove_migration_ptes, under each
# PTL).  Between them the entries are in the page tables: faults and GUP wait on them
# (migration_entry_wait), fork copies them (copy_nonpresent_pte).
MIGRATE_PROGRAM = Program("migrate", (
    MicroStep("unmap", Lock.PTL, "isolate the page (a reference), folio_lock, try_to_migrate: migration entries",
              rmap_walk=PageAt()),
    MicroStep("move", Lock.NONE, "folio_migrate_mapping: refcount == expected? then copy to a new page",
              holds=Holds(0, HOLDS_GET)),
    MicroStep("remap", Lock.PTL, "remove_migration_ptes: the entries map the new page (or the old one on failure)",
              holds=Holds(0, HOLDS_GET)),
))


def _fuzz_migrate(g: ScenarioGenerator, task: str) -> str | None:
    a = g.remote_addr()
    return f"migrate({a})" + g.bind_outcome(0.3) if a else None


MIGRATE = OpSpec(
    "migrate",
    "migrate a page to another page frame (another NUMA node): unmap with migration entries, copy, remap; "
    "refused for a page with references beyond its mappings (a pin, a GUP reference)",
    "move_pages(2), migrate_pages: try_to_migrate, folio_migrate_mapping, remove_migration_ptes",
    params=(Param("addr", REMOTE, "A.buf or A.buf[i]"),),
    program=MIGRATE_PROGRAM,
    fuzz=Fuzz(_fuzz_migrate),
)
