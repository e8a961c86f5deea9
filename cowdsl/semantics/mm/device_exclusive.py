"""mm/rmap.c make_device_exclusive_range (b756a3b5e7ea, 5.14; Alistair Popple):
a device gets exclusive access to an anonymous page; the CPU's PTEs become
device-exclusive entries until a CPU access faults them back (reference §9.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import evolve

from cowdsl.ops.device_exclusive import MAKE_DEVICE_EXCLUSIVE
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import Frame, Micro, micro_step
from cowdsl.semantics.mm import addr_of
from cowdsl.semantics.mm.gup import Foll
from cowdsl.semantics.state import Handle, Outcome, Pte

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine


class DeviceExclusive(KernelBase):
    # The driver holds mmap_lock for read across both micro-steps (nouveau does);
    # GUP-fast, faults and MADV_DONTNEED can run between them, fork cannot.
    @micro_step(MAKE_DEVICE_EXCLUSIVE, "gup")
    def devexcl__gup(self, m: Machine, step: Step, frame: Frame) -> Micro:
        a = addr_of(step)
        if not m.decided("has_device_exclusive", self.has_device_exclusive(), "make_device_exclusive_range"):
            return Micro(None, (), Outcome(False, error="ENOSYS"))
        m.update_mm(a.proc, mmap_lock=m.mm(a.proc).mmap_lock + 1)
        # get_user_pages_remote(FOLL_GET|FOLL_WRITE|FOLL_SPLIT_PMD): faults writable, breaks COW
        pfn, err = self.get_user_pages(m, a.proc, a.mapping, a.index, Foll(write=True))
        if err:
            return self.devexcl_done(m, step, Outcome(False, error=err))
        assert pfn is not None  # no errno: GUP holds the page
        page = m.page(pfn)
        if not page.anon or page.zero:
            m.put_page(pfn)
            m.say(f"make_device_exclusive: #{pfn} is not anonymous → -EINVAL")
            return self.devexcl_done(m, step, Outcome(False, error="EINVAL"))
        return Micro("install", (pfn,))

    @micro_step(MAKE_DEVICE_EXCLUSIVE, "install")
    def devexcl__install(self, m: Machine, step: Step, frame: Frame) -> Micro:
        """The rmap walk: every mapping of the page becomes a device-exclusive entry."""
        (pfn,) = frame
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
        m.put_page(pfn)  # the GUP reference
        if not valid or m.page(pfn).mapcount != 0:
            m.say(f"make_device_exclusive: #{pfn} still mapped elsewhere or not writable → the device gets no access")
            return self.devexcl_done(m, step, Outcome(False, error="EBUSY"))
        name = step.bind or f"{step.op}@{step.number}"
        assert step.task is not None  # a process asks for device-exclusive access
        m.add_handle(Handle(name, False, pfn, True, False, step.task, device=True, offset=a.offset))
        m.say(f"make_device_exclusive: the device has exclusive access to #{pfn}")
        return self.devexcl_done(m, step, Outcome(True))

    def devexcl_done(self, m: Machine, step: Step, out: Outcome) -> Micro:
        a = addr_of(step)
        m.update_mm(a.proc, mmap_lock=m.mm(a.proc).mmap_lock - 1)
        return Micro(None, (), out)

    def remove_device_exclusive_entry(self, m: Machine, mm: str, vname: str, idx: int) -> None:
        """do_swap_page on a device-exclusive entry: restore_exclusive_pte maps the
        same page again (writable iff the entry was) and notifies the device."""
        pte = m.pte(mm, vname, idx)
        assert pte is not None  # the device-exclusive entry
        vma = m.mapped_vma(mm, vname)
        m.revoke_device_exclusive(pte.page, "MMU_NOTIFY_EXCLUSIVE")
        write = pte.write and vma.write
        m.set_pte(mm, vname, idx, Pte(page=pte.page, write=write, dirty=pte.dirty or write))
        p = m.page(pte.page)
        m.update_page(pte.page, mapcount=p.mapcount + 1)  # page_add_anon_rmap; the entry's reference carries over
        m.say(f"restore_exclusive_pte: {mm}.{vname}[{idx}] maps #{pte.page} again{' writable' if write else ' read-only'}")

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
        m.get_page(pte.page)
        if self.TRACKS_ANON_EXCLUSIVE:
            m.update_page(pte.page, anon_exclusive=False)
        m.say(f"copy_nonpresent_pte: read-only device-exclusive entries to #{pte.page} in {src} and {dst}")
        return False
