"""mm/migrate.c and mm/rmap.c try_to_migrate: move a page's contents to a new page
frame behind the processes' backs, through migration entries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowdsl.ops.migrate import MIGRATE_PROGRAM
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import Frame, Micro, micro_step
from cowdsl.semantics.mm import addr_of
from cowdsl.semantics.state import Outcome, Pte, content

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine

MIGRATE_FAILED = "EAGAIN"  # migrate_pages gives up on the page; move_pages(2) reports it in status[]


class Migrate(KernelBase):
    """One migration attempt of one page (the kernel retries a page that fails
    with -EAGAIN up to NR_MAX_MIGRATE_PAGES_RETRY times; each retry is the same
    three micro-steps, so one attempt shows every state a retry can show)."""

    def migration_entries(self, m: Machine, pfn: int) -> list[tuple[str, str, int, Pte]]:
        """The rmap walk of remove_migration_ptes: every migration entry naming pfn,
        in every mm (fork may have copied one into a child meanwhile)."""
        return [(mm, v, i, p) for mm, v, i, p in m.all_ptes() if p.migration and p.page == pfn]

    @micro_step(MIGRATE_PROGRAM, "unmap")
    def migrate__unmap(self, m: Machine, step: Step, frame: Frame) -> Micro:
        a = addr_of(step)
        # do_pages_move drains every CPU's lru_add batch first, so the page can be isolated:
        # migrate_prep() (5.10.198), lru_cache_disable() from 5.14 (5.15.135, 6.1.158, 6.18.2)
        self.lru_add_drain_all(m, "move_pages")
        mm = m.mms.get(a.proc)
        vma = m.vma(a.proc, a.mapping) if mm is not None and mm.alive else None
        if vma is not None and (a.index >= len(vma.ptes) or not vma.part(a.index).mapped):
            # no VMA at the address (a failed mremap left the mapping shorter than the checker
            # knew, or munmap made a hole): find_vma fails, -EFAULT (add_page_for_migration,
            # 5.10.198; vma_lookup in add_folio_for_migration, 6.18.2)
            m.say(f"migrate: no VMA at {a} → -EFAULT")
            return Micro(None, (), Outcome(False, error="EFAULT"))
        pte = m.pte(a.proc, a.mapping, a.index) if vma is not None else None
        if pte is None or not pte.present or m.page(pte.page).zero:
            # add_page_for_migration: follow_page finds no page (or the zero page): -ENOENT
            m.say(f"migrate: no page to migrate at {a} → -ENOENT")
            return Micro(None, (), Outcome(False, error="ENOENT"))
        pfn = pte.page
        if not m.page(pfn).anon or m.page(pfn).compound:
            # the kernel migrates these too: a limit of the model, not an errno of the kernel's
            m.say(f"migrate: #{pfn} is a page-cache page or a large folio, which the model does not migrate")
            return Micro(None, (), Outcome(False, error="not modelled"))
        m.get_page(pfn)  # isolate_lru_page / folio_isolate_lru takes a reference
        m.say(f"migrate: isolate #{pfn}{self._refs(m, pfn)}, folio_lock, try_to_migrate")
        for mname, vname, idx in m.mappers(pfn):
            excl = m.page(pfn).anon_exclusive
            if excl and not m.decided("unmap_may_share", self.unmap_may_share(m, pfn),
                                      f"try_to_migrate_one {mname}.{vname}[{idx}] #{pfn}"):
                # 5.19+: folio_try_share_anon_rmap_pte fails on a maybe-pinned page: the PTE is
                # restored at once and the walk stops; every entry made so far is undone below
                self.remove_migration_ptes(m, pfn, pfn)
                m.put_page(pfn)
                m.say(f"migrate: #{pfn} may be pinned → not unmapped, migration fails (-{MIGRATE_FAILED})")
                return Micro(None, (), Outcome(False, error=MIGRATE_FAILED))
            kind = self.set_migration_entry(m, mname, vname, idx, pfn, excl)
            m.say(f"try_to_migrate_one: {mname}.{vname}[{idx}] → {kind} migration entry for #{pfn}")
        return Micro("move", (pfn,))

    @micro_step(MIGRATE_PROGRAM, "move")
    def migrate__move(self, m: Machine, step: Step, frame: Frame) -> Micro:
        (pfn,) = frame
        page = m.page(pfn)
        # folio_expected_ref_count + 1 (6.x) / expected_page_refs (5.x) for an anonymous
        # page: our isolation reference, and the swap cache's if it is in it
        expected = 1 + (1 if page.swapcache >= 0 else 0)
        if page.refcount != expected:
            m.say(f"folio_migrate_mapping: #{pfn} refcount {page.refcount} != expected {expected} "
                  f"(a pin or GUP reference) → -EAGAIN")
            return Micro("remap", (pfn, pfn))
        # the new page: our allocation reference, and the swap cache's, which moves over with its slot
        cached = page.swapcache >= 0
        new = m.alloc_page(**content(page), refcount=1 + cached, anon=True, kind=page.kind, ksm=page.ksm,
                           swapcache=page.swapcache)
        if cached:
            m.update_page(pfn, swapcache=-1, refcount=page.refcount - 1)
        m.say(f"migrate_folio: #{pfn} copied to #{new}")
        return Micro("remap", (pfn, new))

    @micro_step(MIGRATE_PROGRAM, "remap")
    def migrate__remap(self, m: Machine, step: Step, frame: Frame) -> Micro:
        old, new = frame
        self.remove_migration_ptes(m, old, new)
        m.put_page(old)  # the isolation reference (putback, or the last reference of the old page)
        if new == old:
            return Micro(None, (), Outcome(False, error=MIGRATE_FAILED))
        m.put_page(new)  # the new page's allocation reference: its mappings hold it now
        return Micro(None, (), Outcome(True))

    def set_migration_entry(self, m: Machine, mm: str, vname: str, idx: int, pfn: int, excl: bool) -> str:
        """try_to_migrate_one's (and migrate_vma_collect_pmd's) set_pte_at: the present PTE
        becomes a writable, readable-exclusive (the page was exclusive, 5.19+) or readable
        migration entry, the page loses its exclusive flag to it and the mapping is dropped.
        Which kind it is, for the trace."""
        p = m.pte(mm, vname, idx)
        assert p is not None and p.page == pfn  # a present PTE of the page
        m.set_pte(mm, vname, idx, Pte(page=pfn, write=p.write, dirty=p.dirty, migration=True,
                                      swp_exclusive=excl and not p.write))
        if excl:
            m.update_page(pfn, anon_exclusive=False)
        m.page_remove_rmap(pfn)
        return "writable" if p.write else "readable-exclusive" if excl else "readable"

    def remove_migration_ptes(self, m: Machine, old: int, new: int) -> None:
        """remove_migration_ptes(old, new): each migration entry naming ``old`` maps ``new``
        again, writable iff the entry was (maybe_mkwrite in a VM_WRITE vma), and exclusive
        again where the entry said so (5.19+); a device page gets a device-private entry
        (remove_migration_pte: is_device_private_page; migrate_vma_finalize)."""
        dev = m.page(new).device
        for mname, vname, idx, p in self.migration_entries(m, old):
            vma = m.vma_at(mname, vname, idx)  # the VMA covering the page (a partial mprotect splits it)
            assert vma is not None  # the migration entry's VMA
            write = p.write and vma.write
            m.set_pte(mname, vname, idx, Pte(page=new, write=write, dirty=p.dirty, devpriv=dev))
            m.page_add_rmap(new)
            if self.TRACKS_ANON_EXCLUSIVE and (p.write or p.swp_exclusive):
                m.update_page(new, anon_exclusive=True)
            what = (f"→ {'writable' if write else 'readable'} device-private entry #{new}" if dev
                    else f"maps #{new}{' writable' if write else ''}")
            m.say(f"remove_migration_pte: {mname}.{vname}[{idx}] {what}")

    @staticmethod
    def _refs(m: Machine, pfn: int) -> str:
        p = m.page(pfn)
        return f" (refcount {p.refcount}, mapcount {p.mapcount})"
