"""mm/mmap.c, mm/mprotect.c, mm/madvise.c and exit: the address space."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import evolve

from cowdsl.ops.mmap import EXIT, MADVISE, MMAP, MPROTECT, MREMAP, MUNMAP
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import whole_op
from cowdsl.semantics.state import HUGETLB, PTE_THP, SMALL, THP, THP_SIBLINGS, Outcome, Vma

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine


class AddressSpace(KernelBase):
    @whole_op(MMAP)
    def op_mmap(self, m: Machine, step: Step) -> Outcome:
        assert step.task is not None and step.mapping is not None  # a process's op; its new-mapping parameter
        shared = "shared" in step.flags
        write = "rw" in step.flags
        file = step.file
        kind = next((k for k in (THP, PTE_THP, HUGETLB) if k in step.flags), SMALL)
        fkind = m.state.file_kind(file) if file is not None else None
        if fkind == "hugetlbfs":
            if kind not in (SMALL, HUGETLB):
                m.say(f"mmap: {kind} of a hugetlbfs file → -EINVAL")
                return Outcome(False, error="EINVAL")
            kind = HUGETLB  # a hugetlbfs file maps its huge pages, MAP_HUGETLB or not
        elif kind == HUGETLB and file is not None:
            m.say("mmap: MAP_HUGETLB of a file not on hugetlbfs → -EINVAL (ksys_mmap_pgoff)")
            return Outcome(False, error="EINVAL")
        elif kind == PTE_THP and (shared or file):
            # a PTE-mapped page-cache THP (an unaligned VMA): the kernel maps it, the model does not follow it
            m.say("mmap: pte_thp pages of a shared or file mapping (a PTE-mapped shmem THP) are not modelled; "
                  "`thp` is a PMD-mapped one")
            return Outcome(False, error="not modelled")
        elif kind == THP and fkind == "disk":
            # a page-cache THP of a disk file needs CONFIG_READ_ONLY_THP_FOR_FS and an executable
            # mapping (khugepaged's collapse_file): the kernel maps small pages, the model has no such page
            m.say("mmap: THPs of a file on disk (CONFIG_READ_ONLY_THP_FOR_FS) are not modelled; "
                  "a shmem, memfd or shared anonymous mapping can hold them")
            return Outcome(False, error="not modelled")
        elif file is not None and fkind in ("shmem", "memfd") and not self.shmem_huge_pages(m, file, kind == THP):
            return Outcome(False, error="not modelled")
        if shared and file is None:
            # MAP_SHARED|MAP_ANONYMOUS is shmem (with MAP_HUGETLB, a hugetlbfs file): a page-cache object of its own.
            # With `thp` its folios are PMD-size (shmem_enabled=always, or advise with MADV_HUGEPAGE:
            # shmem_is_huge / shmem_huge_global_enabled), and the page cache holds one reference per
            # subpage (shmem_add_to_page_cache: page_ref_add/folio_ref_add(nr) in 5.10.198, 6.1.158, 6.18.2).
            # The kernel allocates them at the first fault (shmem_get_folio); the model at mmap
            file = f"{step.task}.{step.mapping}"
            refs = 1 + (THP_SIBLINGS if kind == THP else 0)
            m.add_file(file, tuple(m.alloc_page(anon=False, refcount=refs, file=file, index=i, kind=kind)
                                   for i in range(step.pages)))
        vma = Vma(
            name=step.mapping,
            anon=file is None,
            shared=shared,
            write=write,
            maywrite=True,  # private mappings may always be written (COW); files are opened read-write
            file=file,
            ptes=(None,) * step.pages,
            kind=kind,
            # no dirty tracking: shared anonymous memory, shmem, memfd and hugetlbfs files
            shmem=shared and (step.file is None or fkind != "disk"),
        )
        m.set_vma(step.task, vma)
        what = f"{'' if fkind == 'disk' else f'{fkind} '}file {file}" if step.file else ("shmem" if shared else "anonymous")
        size = "" if kind == SMALL else f" {kind}"
        m.say(f"mmap: `{step.mapping}`, {step.pages}{size} page(s), {what}, {'shared' if shared else 'private'}, {'rw' if write else 'ro'}")
        return Outcome(True)

    @staticmethod
    def shmem_huge_pages(m: Machine, file: str, huge: bool) -> bool:
        """A tmpfs or memfd file whose folios are PMD-size THPs (a tmpfs mounted huge=always, a memfd
        with shmem_enabled=always: shmem_get_folio_gfp allocates them) is mapped with `thp`, the
        others without.  The first `thp` mapping of a file none maps yet makes its page cache huge
        (one reference per subpage, as shmem_add_to_page_cache takes); a mix of the two is not
        modelled (the model follows a file THP through its head, one page per 2 MiB)."""
        pages = m.files[file] if m.file_page(file, 0) >= 0 else ()  # file_page: the read, for the explorer
        if all(m.page(p).kind == THP for p in pages) and pages:
            if huge:
                return True
            m.say(f"mmap: {file}'s folios are THPs; a small-page mapping of them (PTE-mapped file THPs) "
                  "is not modelled: map it with `thp`")
            return False
        if not huge:
            return True
        if any(m.page(p).mapcount or m.page(p).kind != SMALL for p in pages):
            m.say(f"mmap: {file} is mapped with small pages already; a THP mapping of it is not modelled")
            return False
        for p in pages:
            m.update_page(p, kind=THP, refcount=m.page(p).refcount + THP_SIBLINGS)
        m.say(f"mmap: {file}'s page cache holds PMD-size THPs (huge=always / shmem_enabled=always)")
        return True

    @staticmethod
    def pages_of(step: Step, vma: Vma) -> range:
        """The pages a step on a mapping covers: ``buf[i..j]``, or all of it."""
        first, last = step.part if step.part is not None else (0, len(vma.ptes) - 1)
        return range(first, last + 1)

    @staticmethod
    def part_text(step: Step) -> str:
        if step.part is None:
            return f"`{step.mapping}`"
        first, last = step.part
        return f"`{step.mapping}[{first}..{last}]`" if last != first else f"`{step.mapping}[{first}]`"

    def tail_op(self, m: Machine, step: Step, what: str, zap: bool, split_vma: bool = True) -> Outcome:
        """An op on the tail pages of each huge page in the range (``tail``): the PMD is
        split (__split_huge_pmd), then ``zap`` (munmap, MADV_DONTNEED) drops the tail PTEs.
        The head page the model follows keeps its PTE and its VMA's flags; the tails'
        own flags (after mprotect or MADV_DONTFORK of them) are not followed.

        In a file mapping (a shmem THP) the split zaps the whole PMD, head included
        (__split_huge_pmd_locked: !vma_is_anonymous), and the head faults back in: by a
        PMD again where the VMA still covers the 2 MiB (MADV_DONTNEED), by a PTE where
        ``split_vma`` left it a 4 KiB VMA of its own (do_set_pmd: thp_vma_suitable_order
        fails), which the model follows as a one-page small mapping of the file's THP."""
        mm, vname = step.task, step.mapping
        assert mm is not None and vname is not None  # a process's op; its mapping parameter
        vma = m.mapped_vma(mm, vname)
        if vma.kind == HUGETLB:
            # hugetlb_vm_op_split: a hugetlb VMA splits only at huge-page boundaries
            m.say(f"{what}: part of a hugetlb page → -EINVAL (hugetlb_vm_op_split)")
            return Outcome(False, error="EINVAL")
        if vma.kind not in (THP, PTE_THP):
            m.say(f"{what}: `tail` names the tail pages of a THP; `{vname}` is a {vma.kind}-page mapping")
            return Outcome(False, error="not a THP mapping")
        if vma.file is not None and not vma.anon:
            return self.file_tail_op(m, step, vma, what, split_vma)
        for i in self.pages_of(step, vma):
            why = self.split_huge_pmd(m, mm, vname, i)
            if why is not None:
                m.say(f"{what}: {why}")
                return Outcome(False, error="not modelled")
            if zap:
                self.zap_tail_ptes(m, mm, vname, i)
        m.say(f"{what}: the tail pages of {self.part_text(step)}; each head page keeps its PTE and flags")
        return Outcome(True)

    def file_tail_op(self, m: Machine, step: Step, vma: Vma, what: str, split_vma: bool) -> Outcome:
        """``tail`` of a file THP mapping: each head's PMD is zapped (an anonymous COW copy
        of the head is PTE-mapped already and stays); the VMA split leaves the head alone."""
        mm = step.task
        assert mm is not None  # tail_op's process
        if split_vma and len(vma.ptes) != 1:
            m.say(f"{what}: the tail pages of a file THP mapping of {len(vma.ptes)} THPs: the heads' 4 KiB VMAs "
                  "between the rest are not modelled (one THP per mapping)")
            return Outcome(False, error="not modelled")
        for i in self.pages_of(step, vma):
            self.split_huge_pmd(m, mm, vma.name, i)
        if split_vma:
            m.set_vma(mm, evolve(m.mapped_vma(mm, vma.name), kind=SMALL))
            m.say(f"{what}: the tail pages of {self.part_text(step)}: the head's VMA is 4 KiB now, it maps "
                  "the file THP's head by a PTE")
        else:
            m.say(f"{what}: the tail pages of {self.part_text(step)}: the PMD is gone, the head faults it back in")
        return Outcome(True)

    @whole_op(MUNMAP)
    def op_munmap(self, m: Machine, step: Step) -> Outcome:
        mm, vname = step.task, step.mapping
        assert mm is not None and vname is not None  # a process's op; its mapping parameter
        vma = m.vma(mm, vname)
        if vma is None:
            m.say(f"munmap: nothing mapped at `{vname}` in {mm} (not an error)")
            return Outcome(True)
        self.unmap_lru_drain(m, "unmap_region")
        if "tail" in step.flags:
            return self.tail_op(m, step, "munmap", zap=True)
        pages = self.pages_of(step, vma)
        for i in pages:
            self.zap_pte(m, mm, vname, i)
        vma = m.mapped_vma(mm, vname).with_parts(pages[0], pages[-1], mapped=False)
        if step.part is None or vma.unmapped:
            m.remove_vma(mm, vname)
            m.say(f"munmap: `{vname}` removed from {mm}")
            return Outcome(True)
        m.set_vma(mm, vma)
        # do_vmi_munmap: split_vma at the range's ends, then unmap the middle (mm/mmap.c)
        m.say(f"munmap: {self.part_text(step)} unmapped in {mm} (split_vma; the rest stays mapped)")
        return Outcome(True)

    @whole_op(MREMAP)
    def op_mremap(self, m: Machine, step: Step) -> Outcome:
        """mremap(2) under mmap_write_lock.  A move (move_vma → move_page_tables) carries
        the page-table entries over as they are, under the old and the new PTL: no page
        is copied, no count changes, PG_anon_exclusive stays; a PMD-mapped THP moves
        whole (move_huge_pmd) when the move covers it.  ``tail`` moves a THP's tail
        pages away (cow.c's partial mremap): the PMD is split first (split_huge_pmd),
        the head stays.  ``pages=N`` resizes in place: shrinking unmaps the end
        (do_vmi_munmap), growing extends the last VMA (vma_expand) with empty entries."""
        mm, vname = step.task, step.mapping
        assert mm is not None and vname is not None  # a process's op; its mapping parameter
        vma = m.vma(mm, vname)
        if vma is None:
            m.say(f"mremap: no mapping `{vname}` in {mm} → -EFAULT")
            return Outcome(False, error="EFAULT")
        if vma.kind == HUGETLB and ("tail" in step.flags or step.part is not None):
            m.say("mremap: part of a hugetlb mapping → -EINVAL (hugetlb_vm_op_split)")
            return Outcome(False, error="EINVAL")
        if "tail" in step.flags:
            return self.tail_op(m, step, "mremap", zap=False)
        pages = self.pages_of(step, vma)
        if any(vma.at(i) is None for i in pages):
            m.say(f"mremap: part of {self.part_text(step)} is not mapped → -EFAULT")
            return Outcome(False, error="EFAULT")
        if step.to is None:
            return self.mremap_resize(m, mm, vma, step.pages)
        moved = evolve(vma, name=step.to, ptes=vma.ptes[pages[0]:pages[-1] + 1], pgoff=vma.pgoff + pages[0],
                       parts=vma.parts[pages[0]:pages[-1] + 1] if vma.parts else ())
        if moved.parts and len(set(moved.parts)) == 1:
            moved = moved.with_parts(0, len(moved.ptes) - 1)  # one VMA moved: its flags are the VMA's
        if step.part is None:
            m.remove_vma(mm, vname)
        else:
            m.set_vma(mm, evolve(vma, ptes=tuple(None if i in pages else p for i, p in enumerate(vma.ptes)))
                      .with_parts(pages[0], pages[-1], mapped=False))
        m.set_vma(mm, moved)
        thps = [i for i in pages if (p := vma.ptes[i]) is not None and p.present and m.page(p.page).kind == THP]
        how = f"; move_huge_pmd moves {vname}{thps} whole" if thps else ""
        m.say(f"mremap: {self.part_text(step)} moves to `{step.to}` (move_page_tables: the entries move as they are{how})")
        return Outcome(True)

    def mremap_resize(self, m: Machine, mm: str, vma: Vma, pages: int) -> Outcome:
        n = len(vma.ptes)
        if pages < n:
            self.unmap_lru_drain(m, "unmap_region")
            for i in range(pages, n):
                self.zap_pte(m, mm, vma.name, i)
            vma = m.mapped_vma(mm, vma.name)
            m.set_vma(mm, evolve(vma, ptes=vma.ptes[:pages], parts=vma.parts[:pages]))
            m.say(f"mremap: `{vma.name}` shrinks to {pages} page(s): the end is unmapped (do_vmi_munmap)")
        elif pages > n:
            m.file_page(vma.file, 0) if vma.file is not None else None  # a read of the file, for the explorer
            last = vma.part(n - 1)
            parts = vma.parts + (last,) * (pages - n) if vma.parts else ()
            if vma.file is not None and vma.pgoff + pages > len(m.files[vma.file]):
                # vma_expand succeeds; a fault past i_size is VM_FAULT_SIGBUS (shmem_fault, filemap_fault).
                # The model keeps those pages as holes: an access kills the process (SIGSEGV here, where
                # the kernel sends SIGBUS), GUP fails -EFAULT as it does there.
                end = len(m.files[vma.file]) - vma.pgoff
                parts = tuple(vma.part(i) for i in range(n)) + tuple(
                    evolve(last, mapped=i < end) for i in range(n, pages))
                m.say(f"mremap: `{vma.name}` grows past the end of {vma.file}: pages {max(end, n)}.."
                      f"{pages - 1} are past i_size (an access there is SIGBUS; the model kills with SIGSEGV)")
            m.set_vma(mm, evolve(vma, ptes=vma.ptes + (None,) * (pages - n), parts=parts))
            m.say(f"mremap: `{vma.name}` grows to {pages} page(s) in place (vma_expand): new pages not faulted in")
        return Outcome(True)

    def exit_mmap(self, m: Machine, mm: str) -> None:
        """The mm's teardown (exit_mmap: every VMA zapped), at exit and at execve's mmput."""
        self.unmap_lru_drain(m, "exit_mmap")
        for vma in m.vmas(mm):
            self.zap_vma(m, mm, vma.name)
        m.update_mm(mm, vmas=())

    def exit_files(self, m: Machine, mm: str) -> None:
        """exit_files at exit: the process's files close, and with them the pins and GUP
        references they held (execve keeps them)."""
        for h in m.all_handles():
            if h.owner == mm and h.live:
                m.release_handle(h.name)
                m.say(f"exit: {mm}'s {'pin' if h.pin else 'reference'} {h.name} on #{h.page} released")

    @whole_op(EXIT)
    def op_exit(self, m: Machine, step: Step) -> Outcome:
        assert step.task is not None  # a process exits
        self.exit_mmap(m, step.task)
        self.exit_files(m, step.task)
        m.update_mm(step.task, alive=False)
        m.say(f"exit: {step.task} is gone")
        return Outcome(True)

    @whole_op(MPROTECT)
    def op_mprotect(self, m: Machine, step: Step) -> Outcome:
        mm, vname = step.task, step.mapping
        assert mm is not None and vname is not None  # a process's op; its mapping parameter
        vma = m.vma(mm, vname)
        if vma is None:
            m.say(f"mprotect: no mapping `{vname}` in {mm} → -ENOMEM")
            return Outcome(False, error="ENOMEM")
        write, read = "rw" in step.flags, "none" not in step.flags
        prot = "rw" if write else "ro" if read else "none"
        if "tail" in step.flags:
            if not read:
                m.say("mprotect(PROT_NONE) of a THP's tail pages: not modelled")
                return Outcome(False, error="not modelled")
            return self.tail_op(m, step, f"mprotect({prot})", zap=False)
        pages = self.pages_of(step, vma)
        if any(vma.at(i) is None for i in pages):
            m.say(f"mprotect: part of {self.part_text(step)} is not mapped → -ENOMEM")
            return Outcome(False, error="ENOMEM")
        # mprotect_fixup: split_vma where the range starts or ends inside the VMA, merge where it agrees
        m.set_vma(mm, vma.with_parts(pages[0], pages[-1], write=write, read=read))
        # change_protection: MMU_NOTIFY_PROTECTION_VMA over the range (a device mirror drops it)
        self.invalidate_device_mirrors(m, mm, vname, pages, "MMU_NOTIFY_PROTECTION_VMA")
        for idx in pages:
            pte = vma.ptes[idx]
            if pte is not None and pte.devexcl:
                self.mprotect_device_exclusive(m, mm, vname, idx, write)
                continue
            if pte is not None and pte.devpriv:
                # change_pte_range: a writable device-private entry is made readable whatever the new
                # protection, "a protection check is difficult" (5.10.198, 6.1.158, 6.18.2 mm/mprotect.c)
                if pte.write:
                    m.set_pte(mm, vname, idx, evolve(pte, write=False))
                    m.say(f"change_pte_range: the device-private entry of #{pte.page} is made readable")
                continue
            if pte is None or not pte.present:
                continue
            if not write and pte.write:
                m.set_pte(mm, vname, idx, evolve(pte, write=False))
            elif write and not pte.write:
                now = m.vma_at(mm, vname, idx)
                assert now is not None  # checked above: every page of the range is mapped
                d = m.decided("mprotect_upgrade", self.mprotect_upgrade(m, now, pte), f"change_pte_range #{pte.page}")
                if d:
                    m.set_pte(mm, vname, idx, evolve(pte, write=True))
        m.say(f"mprotect: {self.part_text(step)} is now {prot}"
              + ("" if read else " (PROT_NONE: its PTEs are pte_protnone, no access by the process)"))
        return Outcome(True)

    @whole_op(MADVISE.program)  # MADV_(UN)MERGEABLE run KSM_MADVISE (cowdsl.semantics.mm.ksm)
    def op_madvise(self, m: Machine, step: Step) -> Outcome:
        mm, vname = step.task, step.mapping
        assert mm is not None and vname is not None  # a process's op; its mapping parameter
        vma = m.vma(mm, vname)
        advice = next(f for f in step.flags if f != "tail")
        if vma is None:
            m.say(f"madvise: no mapping `{vname}` in {mm} → -ENOMEM")
            return Outcome(False, error="ENOMEM")
        self.madvise_lru_drain(m, vma, advice)  # madvise_pageout's lru_add_drain(); MADV_DONTNEED's until 6.14
        if "tail" in step.flags and advice != "pageout" and vma is not None:
            if advice == "wipeonfork" and (not vma.anon or vma.shared):
                m.say("MADV_WIPEONFORK: only private anonymous mappings → -EINVAL")
                return Outcome(False, error="EINVAL")
            return self.tail_op(m, step, f"MADV_{advice.upper()}", zap=advice == "dontneed",
                                split_vma=advice != "dontneed")  # zap_page_range_single splits no VMA
        pages = self.pages_of(step, vma)
        what = self.part_text(step)
        if any(vma.at(i) is None for i in pages):
            # madvise_walk_vmas: a hole in the range is -ENOMEM (the advice is still given to the rest)
            m.say(f"madvise: part of {what} is not mapped → -ENOMEM")
            return Outcome(False, error="ENOMEM")
        if advice == "dontneed":
            # zap_page_range_single: no VMA split
            for i in pages:
                self.zap_pte(m, mm, vname, i)
            m.say(f"MADV_DONTNEED: {what} zapped")
        elif advice in ("dontfork", "dofork"):
            # madvise_update_vma: split_vma to set VM_DONTCOPY on the range only
            m.set_vma(mm, vma.with_parts(pages[0], pages[-1], dontfork=advice == "dontfork"))
            m.say(f"MADV_{advice.upper()}: {what}")
        elif advice == "wipeonfork":
            if not vma.anon or vma.shared:
                m.say("MADV_WIPEONFORK: only private anonymous mappings → -EINVAL")
                return Outcome(False, error="EINVAL")
            m.set_vma(mm, vma.with_parts(pages[0], pages[-1], wipeonfork=True))
            m.say(f"MADV_WIPEONFORK: {what}")
        elif advice == "pageout":
            return self.madvise_pageout(m, step, pages)
        return Outcome(True)

    def madvise_pageout(self, m: Machine, step: Step, pages: range) -> Outcome:
        """madvise_pageout: -EINVAL on a hugetlb VMA (can_madv_lru_vma: VM_HUGETLB, read in
        5.10.198 and 6.18.2); else madvise_cold_or_pageout_pte_range reclaims each page
        mapped only here (page_mapcount == 1), a THP whole when the range covers it.  Of a
        THP's tail pages only (``tail``), it splits the folio (split_huge_page: the head
        becomes an order-0 page) and reclaims the tails, which the model does not follow."""
        mm, vname = step.task, step.mapping
        assert mm is not None and vname is not None  # a process's op; its mapping parameter
        vma = m.mapped_vma(mm, vname)
        if vma.kind == HUGETLB:
            m.say(f"MADV_PAGEOUT: `{vname}` is a hugetlb mapping → -EINVAL (can_madv_lru_vma)")
            return Outcome(False, error="EINVAL")
        for idx in pages:
            pte = vma.ptes[idx]
            if pte is None or not pte.present:
                continue
            page = m.page(pte.page)
            if page.kind == THP and not page.anon and not page.zero:
                # madvise_cold_or_pageout_pte_range takes a PMD-mapped folio of any kind; reclaim
                # splits a shmem THP first in 5.10.198 (shrink_page_list: "Split file THP") and
                # 6.1.158 (shrink_folio_list: "Split shmem folio"), swaps it whole with
                # CONFIG_THP_SWAP in 6.18.2 (shmem_writeout): shmem's swap is not modelled
                m.say(f"MADV_PAGEOUT: #{pte.page} is a shmem THP; reclaim of shmem pages is not modelled")
                return Outcome(False, error="not modelled")
            if page.zero or not page.anon:
                continue
            if page.mapcount != 1:
                m.say(f"MADV_PAGEOUT: #{pte.page} is mapped by other processes: skipped")
                continue
            if "tail" in step.flags:
                self.split_huge_page(m, pte.page)
                continue
            self.shrink_page(m, pte.page)
        return Outcome(True)

    def split_huge_page(self, m: Machine, pfn: int) -> bool:
        """split_huge_page of a THP mapped once: every subpage becomes an order-0 page; the
        head keeps its mapping, the tails' references leave with them.  It fails when
        the folio has references beyond its mappings (can_split_huge_page)."""
        page = m.page(pfn)
        if not page.compound or page.kind == HUGETLB or page.zero:
            return False
        if page.refcount != page.mapcount + page.siblings:
            m.say(f"split_huge_page: #{pfn} has extra references (refcount {page.refcount}) → -EAGAIN, left whole")
            return False
        m.update_page(pfn, kind=SMALL, siblings=0, refcount=page.refcount - page.siblings)
        m.say(f"split_huge_page: THP #{pfn} split; its head is an order-0 page now, the tails are reclaimed")
        return True
