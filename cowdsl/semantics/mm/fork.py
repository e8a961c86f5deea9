"""kernel/fork.c and mm/memory.c copy_page_range: what the child gets."""

from __future__ import annotations

from attrs import evolve

from cowdsl.semantics.state import HUGETLB, SMALL, Mm, Outcome, Pte


class Fork:
    def op_fork(self, m, step) -> Outcome:
        parent, child = step.task, step.bind
        vmas = []
        for vma in m.mm(parent).vmas:
            if vma.dontfork:
                m.say(f"dup_mmap: `{vma.name}` is VM_DONTCOPY (MADV_DONTFORK): not in {child}")
                continue
            if vma.wipeonfork:
                m.say(f"dup_mmap: `{vma.name}` is VM_WIPEONFORK: {child} gets it empty")
                vmas.append(evolve(vma, ptes=(None,) * len(vma.ptes)))
                continue
            vmas.append(evolve(vma, ptes=(None,) * len(vma.ptes)))
        # The child's mm starts with MMF_HAS_PINNED clear: mm_init keeps only MMF_INIT_MASK,
        # which does not include it (include/linux/sched/coredump.h; the reference's §13 left it open).
        m.add_mm(Mm(name=child, vmas=tuple(vmas)))
        m.say(f"fork: {parent} → {child}")
        for vma in m.mm(parent).vmas:
            if vma.dontfork or vma.wipeonfork:
                continue
            for idx, pte in enumerate(vma.ptes):
                if pte is None:
                    continue
                if pte.present:
                    self.copy_present_pte(m, parent, child, vma.name, idx)
                else:
                    self.copy_nonpresent_pte(m, parent, child, vma.name, idx)
        return Outcome(True)

    def copy_present_pte(self, m, src, dst, vname, idx) -> None:
        vma = m.vma(src, vname)
        pte = vma.ptes[idx]
        pfn = pte.page
        page = m.page(pfn)
        where = f"{vname}[{idx}]"
        if page.zero:
            m.set_pte(dst, vname, idx, pte)
            return
        if page.anon:
            d = m.decided("fork_copy_anon", self.fork_copy_anon(m, src, pfn), f"copy_present_pte {where} #{pfn}")
            if d:
                # copy_present_page: the child gets its own copy, the parent's PTE is untouched
                # copy_huge_pmd splits a pinned THP and copies at PTE level; hugetlb copies the huge page
                kind = HUGETLB if page.kind == HUGETLB else SMALL
                new = m.alloc_page(data=page.data, refcount=1, mapcount=1,
                                   anon_exclusive=self.TRACKS_ANON_EXCLUSIVE, kind=kind)
                m.set_pte(dst, vname, idx, Pte(page=new, write=vma.write, dirty=True))
                m.count(src, "cow_copies")
                m.say(f"copy_present_page: {dst} gets copy #{new}; {src} keeps #{pfn}")
                return
            m.page_add_rmap(pfn)
            if page.anon_exclusive:
                m.update_page(pfn, anon_exclusive=False)  # page_try_dup_anon_rmap
        else:
            m.page_add_rmap(pfn)  # page_dup_file_rmap
        if vma.is_cow_mapping and pte.write:
            pte = evolve(pte, write=False)
            m.set_pte(src, vname, idx, pte)
            m.say(f"copy_present_pte: #{pfn} shared read-only by {src} and {dst} (ptep_set_wrprotect)")
        else:
            m.say(f"copy_present_pte: #{pfn} shared by {src} and {dst}")
        m.set_pte(dst, vname, idx, pte)

    def copy_nonpresent_pte(self, m, src, dst, vname, idx) -> None:
        pte = m.pte(src, vname, idx)
        if pte.devexcl:
            return self.copy_device_exclusive(m, src, dst, vname, idx)
        m.update_slot(pte.slot, count=m.slot(pte.slot).count + 1)  # swap_duplicate
        if pte.swp_exclusive:
            # 1493a1913e34: fork clears the exclusive marker of the parent's swap entry
            m.set_pte(src, vname, idx, evolve(pte, swp_exclusive=False))
        m.set_pte(dst, vname, idx, evolve(pte, swp_exclusive=False))
        m.say(f"copy_nonpresent_pte: swap slot {pte.slot} shared by {src} and {dst}")
