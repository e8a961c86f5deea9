"""Device-exclusive entries (reference §9.1, §9.2, §15 row 10), in two versions:

- 5.14-6.14, mm/rmap.c make_device_exclusive_range (b756a3b5e7ea, Alistair
  Popple): an rmap walk turns every mapping of the page into a device-exclusive
  entry (writable or readable) and drops its mapcount; restore_exclusive_pte
  maps it back writable iff the entry was, and adds the rmap again;
- 6.15+, make_device_exclusive ("mm: fixes for device-exclusive entries (hmm)",
  David Hildenbrand; 6.18.2 mm/rmap.c read): one address, whose PTE must map
  the page GUP returned writable (else GUP again); one entry type; the mapcount
  stays; restore maps it writable iff VM_WRITE && can_change_pte_writable
  (private anon: PageAnonExclusive); try_to_unmap/try_to_migrate handle the
  entries as mappings.

The device's access is test_hmm's mirror entry (lib/test_hmm.c): any MMU
notifier on its range drops it (dmirror_interval_invalidate).  Dropped by the
restore of the entry (a CPU access, zap, reclaim), the exclusive access is
gone (HMM_DMIRROR_CHECK_EXCLUSIVE); dropped by mprotect's or fork's
notifier, the entry may still be there and the device's next access faults
through hmm_range_fault (``hmm_refault``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import evolve

from cowdsl.ops.device_exclusive import MAKE_DEVICE_EXCLUSIVE
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import Frame, Micro, micro_step
from cowdsl.semantics.mm import addr_of
from cowdsl.semantics.mm.gup import Foll
from cowdsl.semantics.state import HUGETLB, PTE_THP, Handle, Outcome, Pte

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine

RETRY = "retry"  # the gup micro-step's frame when make_device_exclusive goes back to GUP (lock held)


class DeviceExclusive(KernelBase):
    # The driver holds mmap_lock for read across both micro-steps (nouveau, test_hmm do);
    # GUP-fast, faults and MADV_DONTNEED can run between them, fork cannot.
    @micro_step(MAKE_DEVICE_EXCLUSIVE, "gup")
    def devexcl__gup(self, m: Machine, step: Step, frame: Frame) -> Micro:
        a = addr_of(step)
        if frame != (RETRY,):
            if not m.decided("has_device_exclusive", self.has_device_exclusive(), "make_device_exclusive_range"):
                return Micro(None, (), Outcome(False, error="ENOSYS"))
            m.update_mm(a.proc, mmap_lock=m.mm_field(a.proc, "mmap_lock") + 1)
        # get_user_pages_remote(FOLL_GET|FOLL_WRITE|FOLL_SPLIT_PMD): faults writable, breaks COW
        pfn, err = self.get_user_pages(m, a.proc, a.mapping, a.index, Foll(write=True))
        if err:
            return self.devexcl_done(m, step, Outcome(False, error=err))
        assert pfn is not None  # no errno: GUP holds the page
        page = m.page(pfn)
        if not page.anon or page.zero or page.kind == HUGETLB:
            single = self.single_pte(m)
            if single:  # !folio_test_anon || folio_test_hugetlb → ERR_PTR(-EOPNOTSUPP)
                m.put_page(pfn)
                m.say(f"make_device_exclusive: #{pfn} is not an anonymous non-hugetlb folio → -EOPNOTSUPP")
                return self.devexcl_done(m, step, Outcome(False, error="EOPNOTSUPP"))
            if not page.anon or page.zero:  # folio_make_device_exclusive: anon only; test_hmm: -EBUSY
                m.put_page(pfn)
                m.say(f"make_device_exclusive_range: #{pfn} is not anonymous → not marked: -EBUSY")
                return self.devexcl_done(m, step, Outcome(False, error="EBUSY"))
        return Micro("install", (pfn,))

    def single_pte(self, m: Machine, where: str = "make_device_exclusive") -> bool:
        return bool(m.decided("devexcl_single_pte", self.devexcl_single_pte(), where))

    @micro_step(MAKE_DEVICE_EXCLUSIVE, "install")
    def devexcl__install(self, m: Machine, step: Step, frame: Frame) -> Micro:
        (pfn,) = frame
        if self.single_pte(m):
            return self.install_one(m, step, pfn)
        return self.install_walk(m, step, pfn)

    def install_one(self, m: Machine, step: Step, pfn: int) -> Micro:
        """6.15+ make_device_exclusive: folio_walk_start must find the page GUP
        returned, mapped writable by a PTE at the address, else folio_put and
        GUP again; one entry replaces that PTE, the mapcount stays."""
        a = addr_of(step)
        vma = m.vma_at(a.proc, a.mapping, a.index)
        pte = vma.ptes[a.index] if vma is not None else None
        if pte is None or not pte.present or pte.page != pfn or not pte.write:
            m.put_page(pfn)
            m.say(f"make_device_exclusive: {a} no longer maps #{pfn} writable → folio_put, GUP again")
            return Micro("gup", (RETRY,))
        m.set_pte(a.proc, a.mapping, a.index, Pte(page=pfn, devexcl=True, write=True, dirty=pte.dirty))
        m.say(f"make_device_exclusive: {a} → device-exclusive entry (the mapcount stays)")
        return self.devexcl_granted(m, step, pfn)

    def install_walk(self, m: Machine, step: Step, pfn: int) -> Micro:
        """5.14-6.14 folio_make_device_exclusive: the rmap walk makes every mapping
        an entry and drops its mapcount; success iff the target PTE was writable
        and nothing maps the page any more."""
        a = addr_of(step)
        valid = False
        for mm, vname, idx in m.mappers(pfn):
            old = m.pte(mm, vname, idx)
            assert old is not None  # the rmap walk's present PTE
            valid |= (mm, vname, idx) == (a.proc, a.mapping, a.index) and old.write
            m.set_pte(mm, vname, idx, Pte(page=pfn, devexcl=True, write=old.write, dirty=old.dirty))
            p = m.page(pfn)
            m.update_page(pfn, mapcount=p.mapcount - 1)  # page_remove_rmap; the entry keeps the reference
            m.say(f"make_device_exclusive: {mm}.{vname}[{idx}] → device-exclusive entry ({'write' if old.write else 'read'})")
        if not valid or m.page(pfn).mapcount != 0:
            m.put_page(pfn)  # the GUP reference
            m.say(f"make_device_exclusive: #{pfn} still mapped elsewhere or not writable → the device gets no access")
            return self.devexcl_done(m, step, Outcome(False, error="EBUSY"))
        return self.devexcl_granted(m, step, pfn)

    def devexcl_granted(self, m: Machine, step: Step, pfn: int) -> Micro:
        """The driver maps the page for the device (dmirror_atomic_map), then drops
        the folio lock and GUP's reference: the entry holds the page."""
        a = addr_of(step)
        m.put_page(pfn)
        name = step.handle_name
        assert step.task is not None  # a process asks for device-exclusive access
        m.add_handle(Handle(name, False, pfn, True, False, step.task, device=True, offset=a.offset,
                            mirror=(a.proc, a.mapping, a.index)))
        m.say(f"make_device_exclusive: the device has exclusive access to #{pfn}")
        return self.devexcl_done(m, step, Outcome(True))

    def devexcl_done(self, m: Machine, step: Step, out: Outcome) -> Micro:
        a = addr_of(step)
        m.update_mm(a.proc, mmap_lock=m.mm_field(a.proc, "mmap_lock") - 1)
        return Micro(None, (), out)

    # --- the CPU takes the page back ---------------------------------------------------------
    def remove_device_exclusive_entry(self, m: Machine, mm: str, vname: str, idx: int) -> None:
        """do_swap_page on a device-exclusive entry: restore_exclusive_pte maps the
        same page again and the notifier revokes the device: MMU_NOTIFY_EXCLUSIVE
        until 6.14, MMU_NOTIFY_CLEAR from 6.15 (6.14.0 and 6.18.2 mm/memory.c)."""
        pte = m.pte(mm, vname, idx)
        assert pte is not None  # the device-exclusive entry
        vma = m.vma_at(mm, vname, idx)
        assert vma is not None  # the entry's page is mapped
        single = self.single_pte(m, "restore_exclusive_pte")
        m.revoke_device_exclusive(pte.page, "MMU_NOTIFY_CLEAR" if single else "MMU_NOTIFY_EXCLUSIVE")
        d = m.decided("devexcl_restore_writable", self.devexcl_restore_writable(m, vma, pte),
                      f"restore_exclusive_pte #{pte.page}")
        write = bool(d)
        m.set_pte(mm, vname, idx, Pte(page=pte.page, write=write, dirty=pte.dirty or write))
        if not single:
            p = m.page(pte.page)
            m.update_page(pte.page, mapcount=p.mapcount + 1)  # page_add_anon_rmap; the entry's reference carries over
        m.say(f"restore_exclusive_pte: {mm}.{vname}[{idx}] maps #{pte.page} again{' writable' if write else ' read-only'}")

    def zap_device_exclusive(self, m: Machine, pte: Pte) -> None:
        """zap_nonpresent_ptes on a device-exclusive entry (already cleared): the
        device loses the page; 6.15+ drops the mapping it still counts, before only
        the reference (folio_remove_rmap_pte runs in both, but 5.14-6.14 had
        removed the rmap at make_device_exclusive_range)."""
        m.revoke_device_exclusive(pte.page, "zap")
        if self.single_pte(m, "zap_nonpresent_ptes"):
            m.page_remove_rmap(pte.page)
            return
        p = m.page(pte.page)
        last_thp = p.kind == PTE_THP and p.mapcount == 0 and not m.devexcl_entries(pte.page)
        m.put_page(pte.page, 1 + (p.siblings if last_thp else 0))

    def mprotect_device_exclusive(self, m: Machine, mm: str, vname: str, idx: int, write: bool) -> None:
        """change_pte_range on a device-exclusive entry: 5.14-6.14 turn a writable
        entry readable on mprotect(PROT_READ) (6.14.0 mm/mprotect.c); 6.15+ have
        one entry type and leave it (restore reads VM_WRITE then; 6.18.2)."""
        pte = m.pte(mm, vname, idx)
        assert pte is not None and pte.devexcl  # the caller found the entry
        if self.single_pte(m, "change_pte_range") or write or not pte.write:
            return
        m.set_pte(mm, vname, idx, evolve(pte, write=False))
        m.say(f"change_pte_range: {mm}.{vname}[{idx}] writable device-exclusive entry → readable")

    def copy_device_exclusive(self, m: Machine, src: str, dst: str, vname: str, idx: int) -> bool:
        """True when the parent's PTE was restored, to be copied by the normal rule."""
        pte = m.pte(src, vname, idx)
        assert pte is not None  # the device-exclusive entry fork copies
        d = m.decided("fork_restores_device_exclusive", self.fork_restores_device_exclusive(), "copy_nonpresent_pte")
        if d:
            # restore in the parent (the device loses exclusivity); fork then retries this PTE
            self.remove_device_exclusive_entry(m, src, vname, idx)
            return True
        # the alternative from the Popple thread: read-only exclusive entries in parent and child
        ro = evolve(pte, write=False)
        m.set_pte(src, vname, idx, ro)
        m.set_pte(dst, vname, idx, ro)
        if self.single_pte(m, "copy_nonpresent_pte"):
            m.page_add_rmap(pte.page)  # 6.15+: the child's entry is a mapping too
        else:
            m.get_page(pte.page)
        if self.TRACKS_ANON_EXCLUSIVE:
            m.update_page(pte.page, anon_exclusive=False)
        m.say(f"copy_nonpresent_pte: read-only device-exclusive entries to #{pte.page} in {src} and {dst}")
        return False

    # --- rmap walkers: try_to_unmap, try_to_migrate ----------------------------------------------
    def device_exclusive_walked(self, m: Machine, pfn: int) -> list[tuple[str, str, int]]:
        """The device-exclusive entries of ``pfn`` an rmap walker handles as mappings
        (6.15+: page_vma_mapped_walk finds them and try_to_unmap_one /
        try_to_migrate_one clear them; before, the folio counted as unmapped and
        the walk did not run).  Their devices lose the page (MMU_NOTIFY_CLEAR)."""
        found = [(mm, v, i) for mm, v, i, p in m.all_ptes() if p.devexcl and p.page == pfn]
        if not found:
            return []
        if not m.decided("unmap_device_exclusive", self.unmap_device_exclusive(), f"try_to_unmap #{pfn}"):
            return []
        m.revoke_device_exclusive(pfn, "MMU_NOTIFY_CLEAR")
        return found

    # --- other notifiers: the device's mirror is dropped, its next access faults ------------------
    def invalidate_device_mirrors(self, m: Machine, mm: str, vname: str, pages: range | list[int], event: str) -> None:
        """An MMU notifier on [start, end) of ``mm`` (mprotect's PROTECTION_VMA,
        fork's PROTECTION_PAGE): test_hmm's dmirror_interval_invalidate drops the
        mirror's entries in the range whatever the event; the device's next
        access faults them in again (dmirror_fault → hmm_range_fault)."""
        for h in m.all_handles():
            if h.device and h.live and h.mirror is not None and h.mirror[:2] == (mm, vname) and h.mirror[2] in pages:
                m.update_handle(h.name, live=False, refault=True)
                m.say(f"{event}: dmirror_interval_invalidate drops the device's mapping of #{h.page} ({h.name})")

    def hmm_refault(self, m: Machine, h: Handle, write: bool) -> tuple[int, None] | tuple[None, str]:
        """dmirror_fault → hmm_range_fault(HMM_PFN_REQ_FAULT [| HMM_PFN_REQ_WRITE]) at
        the mirrored address: -EPERM for a write to a VMA without VM_WRITE
        (hmm_vma_fault), else handle_mm_fault where the PTE is not present (a
        device-exclusive entry is restored) or, for a write, not writable; the
        device then accesses the page mapped there (mm/hmm.c, 6.14.0 and 6.18.2)."""
        assert h.mirror is not None  # only a mirror's dropped entry re-faults
        mm, vname, idx = h.mirror
        if not m.mm_field(mm, "alive"):
            m.say(f"dmirror_fault: {mm} is gone (mmget_not_zero) → -EFAULT")
            return None, "EFAULT"
        vma = m.vma_at(mm, vname, idx)
        if vma is None:
            m.say(f"hmm_range_fault: nothing mapped at {mm}.{vname}[{idx}] → -EFAULT")
            return None, "EFAULT"
        if write and not vma.write:
            m.say(f"hmm_range_fault: write to {mm}.{vname}[{idx}], the VMA is not VM_WRITE → -EPERM")
            return None, "EPERM"
        pte = vma.ptes[idx]
        if pte is not None and pte.devpriv:  # the device's own page (dev_private_owner): no fault
            return self.hmm_device_private(m, pte, write)
        if pte is None or not pte.present or (write and not pte.write):
            m.say(f"hmm_range_fault: handle_mm_fault({'write' if write else 'read'}) at {mm}.{vname}[{idx}]")
            if not self.handle_mm_fault(m, mm, vname, idx, write=write):
                return None, "EFAULT"
            pte = m.pte(mm, vname, idx)
        assert pte is not None and pte.present  # the fault mapped it
        return pte.page, None
