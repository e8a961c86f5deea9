"""Device-private memory (ZONE_DEVICE, MEMORY_DEVICE_PRIVATE), as lib/test_hmm.c
uses it: migrate a page to the device, the CPU faults it back, fork shares it.

Read in 5.10.198 (mm/migrate.c migrate_vma_*, mm/memory.c, lib/test_hmm.c), 6.1.158
and 6.18.2 (mm/migrate_device.c, split out in 5.19; mm/memory.c; mm/hmm.c;
lib/test_hmm.c).  The three agree on everything this model shows:

- migrate_vma_collect_pmd collects a present anonymous page (migration entry,
  writable iff the PTE was; readable-exclusive 5.19+), a hole or the zero page of an
  anonymous VMA (a new zeroed device page, migrate_vma_insert_page); it skips swap,
  migration and device-exclusive entries and device-private entries the caller did
  not select (test_hmm migrates with MIGRATE_VMA_SELECT_SYSTEM only);
- 5.19+ folio_try_share_anon_rmap_pte / page_try_share_anon_rmap fails on an
  exclusive maybe-pinned page: the PTE is restored and the page skipped;
- migrate_vma_check_page refuses a page with references beyond its mappings and the
  caller's one (refcount - extra > mapcount: a pin, a GUP reference), as
  folio_migrate_mapping does again in migrate_vma_pages;
- migrate_vma_pages leaves a page that has a mapping (page cache, shmem) where it is;
- remove_migration_pte makes a device-private entry, writable iff the migration
  entry was (and VM_WRITE), PageAnonExclusive unless it was readable (5.19+);
- test_hmm returns -ENOENT when the mirror has no entry for a page afterwards
  (dmirror_do_read): the migrate_shared test.

The op exists on every era: device-private memory and migrate_vma came with
8763cb45ab96 (4.14), test_hmm with b2ef9f5a5cb3 (5.7); both are recorded on the
timeline, not modelled, and an older kernel answers as the same mechanism would.

Not modelled (the op says so): THP (collect splits it, split_folio, 6.18.2), KSM
pages, and a page in the swap cache: 5.10.198 and 6.1.158 leave it (page_mapping is
the swap cache's), 6.13.7 and 6.18.2 drop the swap cache first (folio_free_swap,
"mm/migrate_device: Try to handle swapcache pages", posted May 2023; its mainline
release is not confirmed here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import evolve

from cowdsl.ops.device_private import MIGRATE_TO_DEVICE_PROGRAM
from cowdsl.semantics import concepts
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import Frame, Micro, micro_step
from cowdsl.semantics.mm import addr_of
from cowdsl.semantics.state import HUGETLB, SMALL, ZERO_PFN, Handle, Outcome, Pte, Vma, content

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine

NOT_MIGRATED = "ENOENT"  # test_hmm: dmirror_do_read finds no mirror entry for a page that did not move
NOT_MODELLED = "not modelled"


def vma_is_anonymous(vma: Vma) -> bool:
    """vma_is_anonymous(): no vm_ops; MAP_SHARED|MAP_ANONYMOUS is shmem, not anonymous."""
    return vma.anon and vma.file is None and not vma.shmem


class DevicePrivate(KernelBase):
    # --- HMM_DMIRROR_MIGRATE_TO_DEV ---------------------------------------------------------
    @micro_step(MIGRATE_TO_DEVICE_PROGRAM, "collect")
    def devpriv__collect(self, m: Machine, step: Step, frame: Frame) -> Micro:
        a = addr_of(step)
        vma = m.vma_at(a.proc, a.mapping, a.index)
        if vma is None or not vma.read:  # test_hmm: "!vma || !(vma->vm_flags & VM_READ)" (5.10.198, 6.18.2)
            m.say(f"dmirror_migrate_to_device: {'no VMA' if vma is None else 'a PROT_NONE VMA'} at {a} → -EINVAL")
            return Micro(None, (), Outcome(False, error="EINVAL"))
        if vma.kind == HUGETLB:
            m.say("migrate_vma_setup: a hugetlb VMA → -EINVAL")
            return Micro(None, (), Outcome(False, error="EINVAL"))
        m.update_mm(a.proc, mmap_lock=m.mm_field(a.proc, "mmap_lock") + 1)
        pte = vma.ptes[a.index]
        if pte is None or (pte.present and m.page(pte.page).zero and m.page(pte.page).kind == SMALL):
            if not vma_is_anonymous(vma):
                m.say(f"migrate_vma_collect: {a} is not faulted in and the VMA is not anonymous → skipped")
                return self.devpriv_done(m, step, Outcome(False, error=NOT_MIGRATED))
            m.say(f"migrate_vma_collect: {a} {'is a hole' if pte is None else 'maps the zero page'}: "
                  "a new device page will be inserted")
            return Micro("copy", (ZERO_PFN, vma.write, False))
        if concepts.device_private_entry(pte):
            return self.devpriv_already(m, step, pte)
        if not pte.present:
            m.say(f"migrate_vma_collect: {a} is not a present PTE (swap, migration or device-exclusive entry) "
                  "→ skipped")
            return self.devpriv_done(m, step, Outcome(False, error=NOT_MIGRATED))
        pfn = pte.page
        page = m.page(pfn)
        why = ("a THP (migrate_vma_collect_pmd splits it first)" if page.compound
               else "a KSM page" if page.ksm
               else "in the swap cache (refused to 6.1, the swap cache dropped first by 6.13)"
               if page.swapcache >= 0 and page.anon else None)
        if why:
            m.say(f"migrate_to_device: #{pfn} is {why}, which the model does not migrate to the device")
            return self.devpriv_done(m, step, Outcome(False, error=NOT_MODELLED))
        if not page.anon:
            # collected, then migrate_vma_pages leaves it (folio_mapping: a page-cache page) and
            # migrate_vma_finalize restores the PTE: the model skips the round trip
            m.say(f"migrate_vma_pages: #{pfn} is a page-cache page (a mapping) → not migrated, PTE restored")
            return self.devpriv_done(m, step, Outcome(False, error=NOT_MIGRATED))
        return self.devpriv_unmap(m, step, pfn, pte)

    def devpriv_unmap(self, m: Machine, step: Step, pfn: int, pte: Pte) -> Micro:
        """migrate_vma_collect's migration entry for this PTE, then migrate_vma_unmap:
        the LRU isolation (lru_add_drain_all when the page is in a CPU's batch),
        try_to_migrate for the page's other mappings, migrate_vma_check_page."""
        a = addr_of(step)
        excl = m.page(pfn).anon_exclusive
        if excl and not m.decided("unmap_may_share", self.unmap_may_share(m, pfn),
                                  f"migrate_vma_collect_pmd {a} #{pfn}"):
            # folio_try_share_anon_rmap_pte failed: set_pte_at(orig pte), skip the page
            m.say(f"migrate_vma_collect: #{pfn} is exclusive and may be pinned → PTE restored, not migrated")
            return self.devpriv_done(m, step, Outcome(False, error=NOT_MIGRATED))
        if m.page(pfn).lru_batch is not None:
            self.lru_add_drain_all(m, "migrate_vma_unmap")  # !folio_test_lru && allow_drain
        m.get_page(pfn)  # folio_isolate_lru's reference (collect's own is dropped again)
        for mm, vname, idx in [(a.proc, a.mapping, a.index)] + [
                x for x in m.mappers(pfn) if x != (a.proc, a.mapping, a.index)]:
            kind = self.set_migration_entry(m, mm, vname, idx, pfn, excl)  # the collected PTE, then the rmap walk's
            who = "migrate_vma_collect" if (mm, vname, idx) == (a.proc, a.mapping, a.index) else "try_to_migrate"
            m.say(f"{who}: {mm}.{vname}[{idx}] → {kind} migration entry for #{pfn}")
        page = m.page(pfn)
        if page.refcount - 1 > page.mapcount:
            # migrate_vma_check_page: (refcount - extra) > mapcount → restore (remove_migration_ptes)
            m.say(f"migrate_vma_check_page: #{pfn} refcount {page.refcount} - 1 > mapcount {page.mapcount} "
                  "(a pin or GUP reference) → not migrated")
            self.remove_migration_ptes(m, pfn, pfn)
            m.put_page(pfn)
            return self.devpriv_done(m, step, Outcome(False, error=NOT_MIGRATED))
        return Micro("copy", (pfn, pte.write, excl))

    def devpriv_already(self, m: Machine, step: Step, pte: Pte) -> Micro:
        """A device-private entry of this device: migrate_vma_collect skips it (test_hmm
        selects system memory only); the migrated data come from the mirror
        (dmirror_do_read), which still has the page unless a notifier dropped it."""
        a = addr_of(step)
        mirrored = next((h for h in m.all_handles() if h.device and h.live and h.page == pte.page), None)
        if mirrored is None:
            m.say(f"dmirror_do_read: #{pte.page} is device-private but the mirror has no entry → -ENOENT")
            return self.devpriv_done(m, step, Outcome(False, error=NOT_MIGRATED))
        m.say(f"migrate_vma_collect: {a} is already device-private (#{pte.page}) → skipped; the mirror has it")
        self.devpriv_bind(m, step, pte.page, mirrored.write)
        return self.devpriv_done(m, step, Outcome(True))

    @micro_step(MIGRATE_TO_DEVICE_PROGRAM, "copy")
    def devpriv__copy(self, m: Machine, step: Step, frame: Frame) -> Micro:
        src, write, excl = frame
        if src == ZERO_PFN:
            new = m.alloc_page(refcount=1, anon=True, device=True)  # clear_highpage
            m.say(f"dmirror_migrate_alloc_and_copy: zeroed device page #{new}")
            return Micro("finalize", (src, new, write, excl))
        page = m.page(src)
        new = m.alloc_page(**content(page), refcount=1, anon=True, device=True)  # zone_device_page_init
        m.say(f"dmirror_migrate_alloc_and_copy: #{src} copied to device page #{new}")
        if page.refcount != 1:
            # migrate_vma_pages → folio_migrate_mapping: refcount != expected (the isolation reference)
            m.say(f"folio_migrate_mapping: #{src} refcount {page.refcount} != 1 → -EAGAIN, not migrated")
            m.put_page(new)
            return Micro("finalize", (src, src, write, excl))
        return Micro("finalize", (src, new, write, excl))

    @micro_step(MIGRATE_TO_DEVICE_PROGRAM, "finalize")
    def devpriv__finalize(self, m: Machine, step: Step, frame: Frame) -> Micro:
        src, new, write, _excl = frame
        if src == ZERO_PFN:
            return self.devpriv_insert(m, step, new, write)
        self.remove_migration_ptes(m, src, new)
        m.put_page(src)  # the isolation reference: putback, or the old page's last
        if new == src:
            return self.devpriv_done(m, step, Outcome(False, error=NOT_MIGRATED))
        m.put_page(new)  # migrate_vma_finalize: the driver's reference; the entries hold the page now
        self.devpriv_bind(m, step, new, write)
        return self.devpriv_done(m, step, Outcome(True))

    def devpriv_insert(self, m: Machine, step: Step, new: int, write: bool) -> Micro:
        """migrate_vma_insert_page: a hole or the zero page becomes a device-private
        entry to the new page, writable iff VM_WRITE (test_hmm: no source page and
        VM_WRITE → MIGRATE_PFN_WRITE); aborted if the PTE changed meanwhile."""
        a = addr_of(step)
        vma = m.vma_at(a.proc, a.mapping, a.index)
        pte = vma.ptes[a.index] if vma is not None else None
        if vma is None or not (pte is None or (pte.present and m.page(pte.page).zero and m.page(pte.page).kind == SMALL)):
            m.say(f"migrate_vma_insert_page: {a} changed meanwhile → abort")
            m.put_page(new)
            return self.devpriv_done(m, step, Outcome(False, error=NOT_MIGRATED))
        self.anon_vma_prepare(m, a.proc, a.mapping)
        m.set_pte(a.proc, a.mapping, a.index, Pte(page=new, write=write, dirty=True, devpriv=True))
        m.page_add_rmap(new)
        if self.TRACKS_ANON_EXCLUSIVE:
            m.update_page(new, anon_exclusive=True)  # folio_add_new_anon_rmap(RMAP_EXCLUSIVE)
        m.put_page(new)
        m.say(f"migrate_vma_insert_page: {a} → {'writable' if write else 'readable'} device-private entry #{new}")
        self.devpriv_bind(m, step, new, write)
        return self.devpriv_done(m, step, Outcome(True))

    def devpriv_bind(self, m: Machine, step: Step, pfn: int, write: bool) -> None:
        """dmirror_migrate_finalize_and_map: the mirror maps the device page
        (DPT_XA_TAG_WRITE iff MIGRATE_PFN_WRITE)."""
        a = addr_of(step)
        assert step.task is not None  # a process asks its device to migrate
        name = step.handle_name
        m.add_handle(Handle(name, False, pfn, write, False, step.task, device=True, offset=a.offset,
                            mirror=(a.proc, a.mapping, a.index)))

    def devpriv_done(self, m: Machine, step: Step, out: Outcome) -> Micro:
        a = addr_of(step)
        m.update_mm(a.proc, mmap_lock=m.mm_field(a.proc, "mmap_lock") - 1)
        return Micro(None, (), out)

    # --- the CPU faults the page back: do_swap_page → pgmap->ops->migrate_to_ram -------------
    def device_private_fault(self, m: Machine, mm: str, vname: str, idx: int) -> None:
        """test_hmm's dmirror_devmem_fault: migrate_vma_setup on the faulting page
        (MIGRATE_VMA_SELECT_DEVICE_PRIVATE, the device's own pages; try_to_migrate
        takes the other mappings' entries too: fork's child), a new system page with
        the device page's data, the mirror's entry erased (xa_erase), and
        migrate_vma_finalize: every entry maps the system page, writable iff it was,
        exclusive unless it was readable and not exclusive (5.19+).  Device pages
        cannot be pinned: the migration does not fail here."""
        pte = m.pte(mm, vname, idx)
        assert pte is not None and pte.devpriv  # handle_mm_fault's device-private entry
        dev = pte.page
        excl = m.page(dev).anon_exclusive
        entries = [(x, v, i, p) for x, v, i, p in m.all_ptes() if p.devpriv and p.page == dev]
        m.get_page(dev)  # migrate_vma_collect's reference (the fault's own is the kernel's too)
        new = m.alloc_page(**content(m.page(dev)), refcount=1, anon=True)
        m.say(f"do_swap_page: device-private entry → migrate_to_ram: #{dev} copied to system page #{new}")
        for h in m.all_handles():
            if h.device and h.live and h.page == dev:
                m.update_handle(h.name, live=False, refault=True)
                m.say(f"dmirror_devmem_fault: the mirror's entry for #{dev} is erased ({h.name})")
        for x, v, i, p in entries:
            vma = m.vma_at(x, v, i)
            assert vma is not None  # a device-private entry's VMA
            write = p.write and vma.write
            m.set_pte(x, v, i, Pte(page=new, write=write, dirty=p.dirty))
            m.page_remove_rmap(dev)
            m.page_add_rmap(new)
            if self.TRACKS_ANON_EXCLUSIVE and (p.write or excl):
                m.update_page(new, anon_exclusive=True)
            m.say(f"remove_migration_pte: {x}.{v}[{i}] maps #{new}{' writable' if write else ' read-only'}")
        self.lru_cache_add(m, new)  # migrate_vma_finalize: folio_add_lru of the new folio
        m.put_page(new)  # and its allocation reference
        m.put_page(dev)  # the collect's reference: the device page goes back to the driver

    # --- fork: copy_nonpresent_pte ---------------------------------------------------------------
    def copy_device_private(self, m: Machine, src: str, dst: str, vname: str, idx: int) -> None:
        """copy_nonpresent_pte on a device-private entry (5.10.198, 6.1.158, 6.18.2
        mm/memory.c): get the page and dup its rmap, which cannot fail ("these pages
        cannot get pinned"; 5.19+ it clears PageAnonExclusive); in a COW mapping a
        writable entry becomes readable in parent and child."""
        pte = m.pte(src, vname, idx)
        assert pte is not None and pte.devpriv  # fork__pte's device-private entry
        m.page_add_rmap(pte.page)
        if self.TRACKS_ANON_EXCLUSIVE:
            m.update_page(pte.page, anon_exclusive=False)
        if pte.write and m.mapped_vma(src, vname).is_cow_mapping:
            pte = evolve(pte, write=False)
            m.set_pte(src, vname, idx, pte)
        m.set_pte(dst, vname, idx, pte)
        m.say(f"{self.COPY_NONPRESENT_PTE}: device-private entry for #{pte.page} shared by {src} and {dst}"
              f"{', read-only' if not pte.write else ''}")

    # --- zap ---------------------------------------------------------------------------------------
    def zap_device_private(self, m: Machine, pte: Pte) -> None:
        """zap_nonpresent_ptes on a device-private entry (already cleared): drop the
        mapping and its reference; the MMU notifier (MMU_NOTIFY_UNMAP) drops the
        mirror's entry; the last reference gives the page back to the driver."""
        for h in m.all_handles():
            if h.device and h.live and h.page == pte.page:
                m.update_handle(h.name, live=False, refault=True)
                m.say(f"dmirror_interval_invalidate: the mirror's entry for #{pte.page} is dropped ({h.name})")
        m.page_remove_rmap(pte.page)

    # --- the device's own access: hmm_range_fault with dev_private_owner ----------------------
    def hmm_device_private(self, m: Machine, pte: Pte, write: bool) -> tuple[int, None] | tuple[None, str]:
        """hmm_vma_handle_pte: a device-private entry whose pgmap owner is the
        caller's dev_private_owner is reported as it is, no fault (HMM_PFN_WRITE iff
        it is writable).  A write asked on a readable one: dmirror_do_write finds no
        writable mirror entry (-ENOENT), dmirror_fault maps it read-only again, and
        dmirror_write retries without end (6.18.2 lib/test_hmm.c, mm/hmm.c)."""
        if write and not pte.write:
            m.say(f"hmm_range_fault: #{pte.page} is the device's own read-only device-private page: reported "
                  "without a fault, so test_hmm's dmirror_write retries it forever")
            return None, NOT_MODELLED
        m.say(f"hmm_range_fault: #{pte.page} is the device's own device-private page → no fault")
        return pte.page, None
