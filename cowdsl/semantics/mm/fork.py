"""kernel/fork.c and mm/memory.c copy_page_range: what the child gets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import evolve

from cowdsl.ops.fork import FORK
from cowdsl.semantics.concepts import pmd_mapped_file_thp
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import Frame, Micro, micro_step
from cowdsl.semantics.state import HUGETLB, PTE_THP, SMALL, THP, Mm, Outcome, Pte, content

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Decision, Machine


def _parent_child(step: Step) -> tuple[str, str]:
    """fork's parent (the acting process) and child (its `as B`, which the checker requires)."""
    assert step.task is not None and step.bind is not None, "fork is done by a process and names its child"
    return step.task, step.bind


class Fork(KernelBase):
    """fork as micro-steps: mmap_write_lock, the write_protect_seq section, one
    step per PTE, and the two windows where others can run: between deciding to
    share a page and write-protecting it (GUP-fast takes no lock), and while the
    page-table lock is dropped to allocate a copy (copy_present_page's -EAGAIN)."""

    @micro_step(FORK, "lock")
    def fork__lock(self, m: Machine, step: Step, frame: Frame) -> Micro:
        parent, _ = _parent_child(step)
        m.update_mm(parent, mmap_lock=-1)
        m.say(f"fork: mmap_write_lock({parent})")
        return Micro("begin", ())

    @micro_step(FORK, "begin")
    def fork__begin(self, m: Machine, step: Step, frame: Frame) -> Micro:
        parent, child = _parent_child(step)
        if not m.mm_field(parent, "alive"):
            return self.fork_cancelled(m, parent, None)
        vmas = []
        for vma in m.vmas(parent):
            if vma.parts:  # split by a partial madvise: VM_DONTCOPY and VM_WIPEONFORK hold per page
                parts = tuple(evolve(p, mapped=p.mapped and not p.dontfork) for p in vma.parts)
                if not any(p.mapped for p in parts):
                    m.say(f"dup_mmap: every VMA of `{vma.name}` is VM_DONTCOPY: not in {child}")
                    continue
                m.say(f"dup_mmap: `{vma.name}` is split: {child} gets the VMAs without VM_DONTCOPY "
                      "(those with VM_WIPEONFORK empty)")
                vmas.append(evolve(vma, ptes=(None,) * len(vma.ptes), parts=parts))
                continue
            if vma.dontfork:
                m.say(f"dup_mmap: `{vma.name}` is VM_DONTCOPY (MADV_DONTFORK): not in {child}")
                continue
            if vma.wipeonfork:
                m.say(f"dup_mmap: `{vma.name}` is VM_WIPEONFORK: {child} gets it empty")
                vmas.append(evolve(vma, ptes=(None,) * len(vma.ptes), anon_vma=False))
                continue
            if not vma.anon_vma and vma.kind != HUGETLB:
                m.say(f"copy_page_range: `{vma.name}` has no anon_vma: {child} faults its pages in (vma_needs_copy)")
            vmas.append(evolve(vma, ptes=(None,) * len(vma.ptes)))
        # The child's mm starts with MMF_HAS_PINNED clear: mm_init keeps only MMF_INIT_MASK,
        # which does not include it (include/linux/sched/coredump.h; the reference's §13 left it open).
        # MMF_VM_MERGE_ANY is inherited (6.4+, where prctl can set it): ksm_fork sets it on the child
        # in 6.4-6.6 (d7597f59d1d3, include/linux/ksm.h), MMF_INIT_MASK carries it from 6.7
        # (3c6f33b7273a; 6.13.7 and 6.18.2 include/linux/mm_types.h).  VM_MERGEABLE comes with each VMA.
        # dup_mm copies mm->ksm_merging_pages into the child, not the rmap_items it counts (the child's
        # mm_slot starts empty); ksm_fork zeroes it when the parent is MMF_VM_MERGEABLE, as a parent
        # with merged pages is, from 4d6fc29f3634 (6.18; 6.6.113, 6.12.54, 6.17.4)
        merging = m.mm_field(parent, "ksm_merging_pages")
        if merging and self.options["ksm_fork_counters"] == "reset":
            m.say(f"ksm_fork: {child}'s ksm_merging_pages starts at 0, not {parent}'s {merging} (4d6fc29f3634)")
            merging = 0
        # ksm_fork: a child of an MMF_VM_MERGEABLE parent is __ksm_enter()ed (every version)
        m.add_mm(Mm(name=child, vmas=tuple(vmas), merge_any=m.mm_field(parent, "merge_any"), ksm_merging_pages=merging,
                    ksm_entered=m.mm_field(parent, "ksm_entered")))
        m.say(f"fork: {parent} → {child}")
        if self.fork_raises_wp_seq(m, parent):
            m.update_mm(parent, wp_seq=m.mm_field(parent, "wp_seq") + 1)
            m.say("copy_page_range: raw_write_seqcount_begin(write_protect_seq)")
        # copy_page_range of a COW VMA it copies: MMU_NOTIFY_PROTECTION_PAGE over the VMA first
        for v in m.vmas(parent):
            if (v.anon_vma or v.kind == HUGETLB) and v.is_cow_mapping and not (v.dontfork or v.wipeonfork):
                self.invalidate_device_mirrors(m, parent, v.name, range(len(v.ptes)), "MMU_NOTIFY_PROTECTION_PAGE")
        return Micro("pte", (0,))

    def fork_raises_wp_seq(self, m: Machine, parent: str) -> bool:
        """Whether fork makes write_protect_seq odd while it copies: where the era
        has it, around every COW VMA's copy; before 623a1ddfeb23 (5.19) not
        around a hugetlb VMA's (copy_page_range returned copy_hugetlb_page_range
        before raw_write_seqcount_begin).  The model raises it once for the
        whole fork, so a fork of hugetlb mappings only raises it from 5.19."""
        if not m.decided("has_write_protect_seq", self.has_write_protect_seq(), "copy_page_range", minor=True):
            return False
        kinds = {v.kind for v in m.vmas(parent) if not (v.dontfork or v.wipeonfork)}
        if kinds and kinds <= {HUGETLB}:
            return bool(m.decided("hugetlb_fork_wp_seq", self.hugetlb_fork_wp_seq(), "copy_page_range", minor=True))
        return True

    def fork_targets(self, m: Machine, parent: str) -> list[tuple[str, int]]:
        """The PTEs copy_page_range copies: not those of a VMA without an anon_vma,
        where a fault fills them in correctly later (vma_needs_copy); hugetlb
        mappings are always copied."""
        return [(v.name, i) for v in m.vmas(parent)
                if v.anon_vma or v.kind == HUGETLB
                for i in range(len(v.ptes))
                if v.part(i).mapped and not (v.part(i).dontfork or v.part(i).wipeonfork)]

    def fork_copy(self, m: Machine, parent: str, pfn: int) -> Decision:
        """The era's fork_copy_anon, which an lru_add batch's reference can sway
        (page_maybe_dma_pinned reads the refcount)."""
        return self.lru_sensitive(m, pfn, lambda x: self.fork_copy_anon(x, parent, pfn), f"{self.COPY_PTE} #{pfn}")

    @micro_step(FORK, "pte")
    def fork__pte(self, m: Machine, step: Step, frame: Frame) -> Micro:
        (i,) = frame
        parent, child = _parent_child(step)
        if not m.mm_field(parent, "alive"):
            return self.fork_cancelled(m, parent, child)
        targets = self.fork_targets(m, parent)
        while i < len(targets):
            vname, idx = targets[i]
            pte = m.pte(parent, vname, idx)
            if pte is not None and pte.present:
                page = m.page(pte.page)
                vma = m.vma_at(parent, vname, idx)
                if vma is not None and pmd_mapped_file_thp(vma, page):
                    # copy_huge_pmd: "Skip if can be re-fill on fault" (!vma_is_anonymous(dst_vma)),
                    # before any pin check (5.10.198, 6.1.158, 6.18.2 mm/huge_memory.c)
                    m.say(f"copy_huge_pmd: {vname}[{idx}] maps page-cache THP #{pte.page} by a PMD: not copied, "
                          f"{child} faults it in")
                    i += 1
                    continue
                if not page.anon and not page.zero and m.mapped_vma(parent, vname).is_cow_mapping:
                    d = self.fork_copy(m, parent, pte.page)
                    if d:  # maybe pinned, and no PageAnon check (5.9-5.18 mainline)
                        m.decided("fork_copy_anon", d, f"{self.COPY_PTE} {vname}[{idx}] #{pte.page}")
                        m.say("copy_present_page: needs a new page → drop the page-table lock to allocate")
                        return Micro("alloc", (i,))
                    m.decided("fork_copy_anon", d, f"{self.COPY_PTE} {vname}[{idx}] #{pte.page}", minor=True)
                elif page.anon and not page.zero:
                    d = m.decided("fork_copy_anon", self.fork_copy(m, parent, pte.page),
                                  f"{self.COPY_PTE} {vname}[{idx}] #{pte.page}")
                    if d:
                        m.say("copy_present_page: needs a new page → drop the page-table lock to allocate")
                        return Micro("alloc", (i,))
                    m.update_mm(parent, ptl=True)
                    return Micro("share", (i, pte.page))
                self.copy_present_pte(m, parent, child, vname, idx)
            elif pte is not None and pte.devexcl:
                if self.copy_device_exclusive(m, parent, child, vname, idx):
                    continue  # -ENOENT: the entry is a present PTE again; copy it by the normal rule
            elif pte is not None:
                self.copy_nonpresent_pte(m, parent, child, vname, idx)
            i += 1
        m.say("copy_page_range: all page-table entries copied")
        return Micro("end", ())

    @micro_step(FORK, "share")
    def fork__share(self, m: Machine, step: Step, frame: Frame) -> Micro:
        i, pfn = frame
        parent, child = _parent_child(step)
        if not m.mm_field(parent, "alive"):
            return self.fork_cancelled(m, parent, child)
        vname, idx = self.fork_targets(m, parent)[i]
        self.copy_present_pte(m, parent, child, vname, idx)
        m.update_mm(parent, ptl=False)
        return Micro("pte", (i + 1,))

    @micro_step(FORK, "alloc")
    def fork__alloc(self, m: Machine, step: Step, frame: Frame) -> Micro:
        (i,) = frame
        parent, child = _parent_child(step)
        if not m.mm_field(parent, "alive"):
            return self.fork_cancelled(m, parent, child)
        prealloc = m.alloc_page(refcount=1, anon_exclusive=self.TRACKS_ANON_EXCLUSIVE)
        m.say(f"page_copy_prealloc: new page #{prealloc} (page-table lock dropped)")
        return Micro("retry", (i, prealloc))

    @micro_step(FORK, "retry")
    def fork__retry(self, m: Machine, step: Step, frame: Frame) -> Micro:
        i, prealloc = frame
        parent, child = _parent_child(step)
        if not m.mm_field(parent, "alive"):
            m.put_page(prealloc)
            return self.fork_cancelled(m, parent, child)
        vname, idx = self.fork_targets(m, parent)[i]
        pte = m.pte(parent, vname, idx)
        page = m.page(pte.page) if pte is not None and pte.present else None
        cow = m.mapped_vma(parent, vname).is_cow_mapping
        if page is not None and pte is not None and (page.anon or cow) and not page.zero and m.decided(
            "fork_copy_anon", self.fork_copy(m, parent, pte.page), f"{self.COPY_PTE} {vname}[{idx}] #{pte.page}"
        ):
            vma = m.mapped_vma(parent, vname)
            # copy_huge_pmd splits a pinned THP and copies at PTE level; hugetlb copies the huge page
            kind = HUGETLB if page.kind == HUGETLB else SMALL
            m.update_page(prealloc, **content(page), mapcount=1, kind=kind)
            self.lru_cache_add(m, prealloc)  # copy_present_page: on the forking task's CPU
            m.set_pte(child, vname, idx, Pte(page=prealloc, write=vma.write, dirty=True))
            m.count(parent, "cow_copies")
            split = " (PMD split first)" if page.kind in (THP, PTE_THP) else ""
            m.say(f"copy_present_page{split}: {child} gets copy #{prealloc}; {parent} keeps #{pte.page}")
            return Micro("pte", (i + 1,))
        m.put_page(prealloc)
        m.say("copy_pte_range: the PTE changed while the lock was dropped → retry it")
        return Micro("pte", (i,))

    @micro_step(FORK, "end")
    def fork__end(self, m: Machine, step: Step, frame: Frame) -> Micro:
        parent, child = _parent_child(step)
        if not m.mm_field(parent, "alive"):
            return self.fork_cancelled(m, parent, child)
        if self.fork_raises_wp_seq(m, parent):
            m.update_mm(parent, wp_seq=m.mm_field(parent, "wp_seq") + 1)
            m.say("copy_page_range: raw_write_seqcount_end(write_protect_seq)")
        m.update_mm(parent, mmap_lock=0)
        m.say(f"fork: mmap_write_unlock({parent})")
        return Micro(None, (), Outcome(True))

    def fork_cancelled(self, m: Machine, parent: str, child: str | None) -> Micro:
        """The parent was killed while fork copied (the model tears a process's mm down
        at its SIGSEGV, where the kernel waits for its last user, fork among them): nothing
        is left to copy, and fork gives up on the pending fatal signal: -EINTR
        (fatal_signal_pending in dup_mmap, per VMA, and in copy_process, "Let kill
        terminate clone/fork in the middle"; 5.10.198 and 6.18.2 kernel/fork.c).  The
        child's mm is torn down (mmput) and no process ever runs in it; fork's locks
        and write_protect_seq section end."""
        if child is not None:
            self.exit_mmap(m, child)
            m.remove_mm(child)
        seq = m.mm_field(parent, "wp_seq")
        m.update_mm(parent, mmap_lock=0, ptl=False, wp_seq=seq + seq % 2)
        error = "EINTR: the parent was killed during fork (fatal_signal_pending)"
        m.say(f"copy_process: {error}; {child or 'the child'} is not created")
        return Micro(None, (), Outcome(False, error=error))

    def copy_present_pte(self, m: Machine, src: str, dst: str, vname: str, idx: int) -> None:
        """Share the page with the child (the copy case is fork__alloc/fork__retry)."""
        vma = m.mapped_vma(src, vname)
        pte = vma.ptes[idx]
        assert pte is not None  # fork__pte's present entry
        pfn = pte.page
        page = m.page(pfn)
        if page.zero:
            m.set_pte(dst, vname, idx, pte)
            return
        m.page_add_rmap(pfn)
        if page.anon and page.anon_exclusive:
            m.update_page(pfn, anon_exclusive=False)  # page_try_dup_anon_rmap
        if vma.is_cow_mapping and pte.write:
            pte = evolve(pte, write=False)
            m.set_pte(src, vname, idx, pte)
            m.say(f"{self.COPY_PTE}: #{pfn} shared read-only by {src} and {dst} (ptep_set_wrprotect)")
        else:
            m.say(f"{self.COPY_PTE}: #{pfn} shared by {src} and {dst}")
        m.set_pte(dst, vname, idx, pte)

    def copy_nonpresent_pte(self, m: Machine, src: str, dst: str, vname: str, idx: int) -> None:
        pte = m.pte(src, vname, idx)
        assert pte is not None  # fork__pte copies a non-present entry
        if pte.devexcl:
            self.copy_device_exclusive(m, src, dst, vname, idx)
            return
        if pte.devpriv:
            self.copy_device_private(m, src, dst, vname, idx)
            return
        if pte.migration:
            # copy_nonpresent_pte: the child gets the migration entry too (remove_migration_ptes
            # finds it through the anon_vma, which dup_mmap linked); in a COW mapping a writable
            # (5.19+: or exclusive) entry becomes readable in both
            if (pte.write or pte.swp_exclusive) and m.mapped_vma(src, vname).is_cow_mapping:
                pte = evolve(pte, write=False, swp_exclusive=False)
                m.set_pte(src, vname, idx, pte)
            m.set_pte(dst, vname, idx, pte)
            m.say(f"{self.COPY_NONPRESENT_PTE}: migration entry for #{pte.page} shared by {src} and {dst}, read-only")
            return
        m.update_slot(pte.slot, count=m.slot(pte.slot).count + 1)  # swap_duplicate
        if pte.swp_exclusive:
            # 1493a1913e34: fork clears the exclusive marker of the parent's swap entry
            m.set_pte(src, vname, idx, evolve(pte, swp_exclusive=False))
        m.set_pte(dst, vname, idx, evolve(pte, swp_exclusive=False))
        m.say(f"{self.COPY_NONPRESENT_PTE}: swap slot {pte.slot} shared by {src} and {dst}")
