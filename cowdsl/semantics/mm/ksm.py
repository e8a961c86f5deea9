"""mm/ksm.c: what may be merged (VM_MERGEABLE, MMF_VM_MERGE_ANY), unmerging, ksmd
merging identical anonymous pages into one read-only KSM page, and ksmd mapping the
shared zero page in place of a zero-filled page (use_zero_pages)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import evolve

from cowdsl.ops.ksm import KSM_ADVICE, KSM_MADVISE, KSM_MERGE, KSM_MERGE_ZERO, PRCTL
from cowdsl.semantics.concepts import vma_is_accessible
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import whole_op
from cowdsl.semantics.mm import addr_of
from cowdsl.semantics.state import HUGETLB, SMALL, ZERO_PFN, Outcome, Pte, Vma, same_content

FOLLOW_PROTNONE = "follow_page_protnone"  # option: does follow_page() without FOLL_FORCE follow pte_protnone?

if TYPE_CHECKING:
    from cowdsl.scenario import Addr, Step
    from cowdsl.semantics.machine import Machine


def ksm_compatible(vma: Vma) -> bool:
    """vma_ksm_compatible / ksm_compatible: never VM_SHARED|VM_MAYSHARE (shmem, shared file
    mappings) nor VM_HUGETLB (read in 5.10.198 ksm_madvise and 6.18.2 ksm_compatible)."""
    return not vma.shared and not vma.shmem and vma.kind != HUGETLB


def is_ksm_zero_pte(m: Machine, pte: Pte) -> bool:
    """is_ksm_zero_pte (6.5+): the shared zero page mapped by a dirty PTE, the mark
    replace_page gives the zero pages KSM places (a read fault maps it clean)."""
    if not pte.present or not pte.dirty:
        return False
    page = m.page(pte.page)
    return page.zero and page.kind == SMALL


class Ksm(KernelBase):
    # --- what ksmd may scan ---------------------------------------------------------------
    def ksm_mergeable(self, m: Machine, mm: str, vma: Vma) -> bool:
        """VM_MERGEABLE: given by MADV_MERGEABLE, or by MMF_VM_MERGE_ANY (prctl, 6.4+) to
        every compatible VMA (those mapped later too, __ksm_add_vma) unless MADV_UNMERGEABLE
        took it away since."""
        if vma.mergeable is not None:
            return vma.mergeable
        return m.mm_field(mm, "merge_any") and ksm_compatible(vma)

    def break_ksm(self, m: Machine, mm: str, vname: str, idx: int) -> None:
        """break_ksm: fault the KSM page mapped here out of the KSM page: a write fault
        (FAULT_FLAG_WRITE) before 6.2, an unshare fault from 6.2 (FAULT_FLAG_UNSHARE:
        the private copy stays read-only).  From 6.5 a KSM-placed zero page too
        (is_ksm_zero_pte): its copy is a new zero-filled anonymous page."""
        pte = m.pte(mm, vname, idx)
        if pte is None or not pte.present:
            return
        if is_ksm_zero_pte(m, pte):
            m.say(f"break_ksm {mm}.{vname}[{idx}]: a zero page KSM placed (is_ksm_zero_pte)")
        elif not m.page(pte.page).ksm:
            return
        if not self.follows_protnone(m, mm, vname, idx) and not self.ksm_break_unshares():
            # 6.1's break_ksm looks with follow_page, which no longer follows pte_protnone (474098edac26);
            # 6.2's walk_page_range_vma does
            m.say(f"break_ksm {mm}.{vname}[{idx}]: follow_page does not follow the pte_protnone entry "
                  "(474098edac26): the KSM page stays mapped")
            return
        unshare = bool(m.decided("ksm_break_unshares", self.ksm_break_unshares(), f"break_ksm {mm}.{vname}[{idx}]"))
        self.handle_mm_fault(m, mm, vname, idx, write=not unshare, unshare=unshare)

    def follows_protnone(self, m: Machine, mm: str, vname: str, idx: int) -> bool:
        """Whether follow_page() without FOLL_FORCE finds the page mapped here: not a pte_protnone
        entry (PROT_NONE) from 474098edac26 (6.1) until d74943a2f3cd (6.5, 6.4.13) made it follow
        them again (FOLL_HONOR_NUMA_FAULT); 5.x's follow_page never set FOLL_NUMA."""
        return vma_is_accessible(m.vma(mm, vname), idx) or self.options[FOLLOW_PROTNONE] == "follow"

    def unmerge_ksm_pages(self, m: Machine, mm: str, vname: str) -> None:
        vma = m.mapped_vma(mm, vname)
        for idx in range(len(vma.ptes)):
            self.break_ksm(m, mm, vname, idx)

    @whole_op(KSM_MADVISE)
    def op_ksm_madvise(self, m: Machine, step: Step) -> Outcome:
        """madvise(MADV_MERGEABLE / MADV_UNMERGEABLE): ksm_madvise."""
        mm, vname = step.task, step.mapping
        assert mm is not None and vname is not None  # a process's op; its mapping parameter
        advice = next(f for f in step.flags if f in KSM_ADVICE)
        vma = m.vma(mm, vname)
        if vma is None:
            m.say(f"madvise: no mapping `{vname}` in {mm} → -ENOMEM")
            return Outcome(False, error="ENOMEM")
        if step.part is not None and step.part != (0, len(vma.ptes) - 1):
            m.say(f"MADV_{advice.upper()} on part of `{vname}`: the model gives this advice to whole mappings only")
            return Outcome(False, error="not modelled")
        if advice == "mergeable":
            if not ksm_compatible(vma):
                # ksm_madvise returns 0 without setting VM_MERGEABLE
                m.say(f"MADV_MERGEABLE: `{vname}` is shared or hugetlb, which KSM never scans: ignored")
                return Outcome(True)
            m.set_vma(mm, evolve(vma, mergeable=True))
            m.update_mm(mm, ksm_entered=True)  # ksm_madvise: __ksm_enter unless MMF_VM_MERGEABLE already
            m.say(f"MADV_MERGEABLE: `{vname}` is VM_MERGEABLE; ksmd may merge its pages")
            return Outcome(True)
        if self.ksm_mergeable(m, mm, vma):
            self.unmerge_ksm_pages(m, mm, vname)  # unmerge_ksm_pages, then VM_MERGEABLE cleared
        m.set_vma(mm, evolve(m.mapped_vma(mm, vname), mergeable=False))
        m.say(f"MADV_UNMERGEABLE: `{vname}` is not VM_MERGEABLE")
        return Outcome(True)

    @whole_op(PRCTL)
    def op_prctl(self, m: Machine, step: Step) -> Outcome:
        """prctl(PR_SET_MEMORY_MERGE): ksm_enable_merge_any sets MMF_VM_MERGE_ANY and
        VM_MERGEABLE on every compatible VMA (ksm_add_vmas); ksm_disable_merge_any
        unmerges and clears them (ksm_del_vmas)."""
        mm = step.task
        assert mm is not None  # a process's op
        if not m.decided("has_memory_merge_prctl", self.has_memory_merge_prctl(), "prctl(PR_SET_MEMORY_MERGE)"):
            return Outcome(False, error="EINVAL")
        on = "enable" in step.flags
        if on:
            m.update_mm(mm, merge_any=True, ksm_entered=True)  # ksm_enable_merge_any: __ksm_enter
            for v in m.vmas(mm):
                if ksm_compatible(v):
                    m.set_vma(mm, evolve(v, mergeable=True))
            m.say(f"prctl(PR_SET_MEMORY_MERGE, 1): MMF_VM_MERGE_ANY on {mm}; its compatible mappings are VM_MERGEABLE")
            return Outcome(True)
        for v in m.vmas(mm):
            if self.ksm_mergeable(m, mm, v):
                self.unmerge_ksm_pages(m, mm, v.name)
                m.set_vma(mm, evolve(m.mapped_vma(mm, v.name), mergeable=False))
        m.update_mm(mm, merge_any=False)
        m.say(f"prctl(PR_SET_MEMORY_MERGE, 0): {mm}'s pages unmerged, nothing VM_MERGEABLE")
        return Outcome(True)

    # --- ksmd -----------------------------------------------------------------------------
    def write_protect_page(self, m: Machine, mm: str, vname: str, idx: int) -> bool:
        """Refuse a page with references beyond its mappings, when the era compares
        them for this PTE (ksm_checks_refs: before 5.19 not for a read-only clean
        one), else map it read-only and shared."""
        pte = m.pte(mm, vname, idx)
        assert pte is not None  # op_ksm_merge found an anonymous page here
        page = m.page(pte.page)
        expected = page.mapcount + (1 if page.swapcache >= 0 else 0)
        checks = self.ksm_checks_refs(m, pte, pte.page)
        m.decided("ksm_checks_refs", checks, f"write_protect_page #{pte.page}",
                  minor=bool(checks) or page.refcount == expected)
        if checks and page.refcount != expected:
            m.say(f"write_protect_page: #{pte.page} refcount {page.refcount} != mapcount {page.mapcount}"
                  f"{' + swap cache' if page.swapcache >= 0 else ''}: extra references → not merged")
            return False
        if page.anon_exclusive and not m.decided("unmap_may_share", self.unmap_may_share(m, pte.page),
                                                 f"write_protect_page #{pte.page}"):
            return False
        m.update_page(pte.page, anon_exclusive=False)
        m.set_pte(mm, vname, idx, evolve(pte, write=False, dirty=False))  # pte_mkclean(pte_wrprotect(entry))
        return True

    def ksmd_scans(self, m: Machine, addr: Addr) -> Pte | None:
        """The anonymous page ksmd's scan finds at ``addr`` (scan_get_next_rmap_item:
        VM_MERGEABLE VMAs only, never hugetlb; an anonymous page resident there), or
        None, said why."""
        # scan_get_next_rmap_item drains every CPU's lru_add batch at the start of each scan
        # (5.10.198, 6.1.158, 6.18.2): no batch's reference makes write_protect_page refuse
        self.lru_add_drain_all(m, "ksmd")
        mm = m.mms.get(addr.proc)
        vma = m.vma(addr.proc, addr.mapping) if mm is not None and mm.alive else None
        if vma is None:
            m.say(f"ksm: nothing mapped at {addr}")
            return None
        if vma.kind == HUGETLB:
            # ksmd scans only mergeable anonymous VMAs: never VM_HUGETLB (vma_ksm_compatible, mm/ksm.c)
            m.say(f"ksm: {addr} is hugetlb, which KSM never scans")
            return None
        if not self.ksm_mergeable(m, addr.proc, vma):
            # scan_get_next_rmap_item skips a VMA without VM_MERGEABLE
            m.say(f"ksm: `{addr.mapping}` of {addr.proc} is not VM_MERGEABLE (give it "
                  f"madvise({addr.mapping}, mergeable)): ksmd never scans it")
            return None
        if not m.mm_field(addr.proc, "ksm_entered"):
            # ksmd walks the mm_slots on ksm_mm_head only: an mm MMF_VM_MERGE_ANY made VM_MERGEABLE
            # without __ksm_enter (execve before ksm_execve, 3a9e567ca45f) is never scanned
            m.say(f"ksm: {addr.proc}'s mm has no mm_slot (MMF_VM_MERGEABLE unset): ksmd never scans it")
            return None
        pte = m.pte(addr.proc, addr.mapping, addr.index)
        if pte is None or not pte.present or m.page(pte.page).zero or not m.page(pte.page).anon:
            m.say(f"ksm: nothing anonymous resident at {addr}")
            return None
        if not self.follows_protnone(m, addr.proc, addr.mapping, addr.index):
            # scan_get_next_rmap_item: follow_page(vma, addr, FOLL_GET) (6.1.158 mm/ksm.c)
            m.say(f"ksm: follow_page does not follow the pte_protnone entry at {addr} (PROT_NONE, 474098edac26 "
                  "until d74943a2f3cd): ksmd never sees the page")
            return None
        return pte

    # --- the stable tree's rmap_items: mm->ksm_merging_pages ----------------------------------
    def ksm_full_scan(self, m: Machine) -> None:
        """What ksmd's full scans do to rmap_items left in the stable tree by pages since
        unmerged, unmapped or no longer VM_MERGEABLE: cmp_and_merge_page's
        remove_rmap_item_from_tree, get_next_rmap_item's and remove_trailing_rmap_items'
        removal, get_ksm_page's remove_node_from_stable_tree of a freed KSM page: each
        takes one off its mm's ksm_merging_pages (6.1.158 and 6.18.2 mm/ksm.c)."""
        m.reads.add(("mms",))  # every mm_slot: a read of the set of mms
        for name in list(m.mms):
            mm = m.mm(name)
            if not mm.ksm_stable:
                continue
            kept = tuple(item for item in mm.ksm_stable if self._still_merged(m, name, *item))
            gone = len(mm.ksm_stable) - len(kept)
            if gone:
                m.update_mm(name, ksm_stable=kept, ksm_merging_pages=mm.ksm_merging_pages - gone)
                m.say(f"ksmd: {gone} of {name}'s rmap_items leave the stable tree "
                      f"(ksm_merging_pages {mm.ksm_merging_pages - gone})")

    def _still_merged(self, m: Machine, mm: str, vname: str, idx: int) -> bool:
        """Whether the rmap_item at (vname, idx) still stands for a merged page: the mm alive,
        the mapping VM_MERGEABLE, a KSM page mapped there."""
        if not m.mm_field(mm, "alive"):
            return False
        vma = m.vma(mm, vname)
        if vma is None or idx >= len(vma.ptes) or not self.ksm_mergeable(m, mm, vma):
            return False
        pte = vma.ptes[idx]
        return pte is not None and pte.present and m.page(pte.page).ksm

    def stable_tree_append(self, m: Machine, addr: Addr) -> None:
        """stable_tree_append: the rmap_item of ``addr`` joins the stable tree, counted in its mm's
        ksm_merging_pages (5.19+, 7609385337a4); an item already there stays (cmp_and_merge_page
        returns early when the page is the stable node's)."""
        mm = m.mm(addr.proc)
        item = (addr.mapping, addr.index)
        if item not in mm.ksm_stable:
            m.update_mm(addr.proc, ksm_stable=mm.ksm_stable + (item,), ksm_merging_pages=mm.ksm_merging_pages + 1)

    @whole_op(KSM_MERGE)
    def op_ksm_merge(self, m: Machine, step: Step) -> Outcome:
        a, b = step.addr, step.addr2
        assert a is not None and b is not None  # the op's two address parameters
        self.ksm_full_scan(m)
        pa = self.ksmd_scans(m, a)
        pb = self.ksmd_scans(m, b) if pa is not None else None
        if pa is None or pb is None:
            return Outcome(False, error="not mergeable")
        if pa.page == pb.page:
            m.say(f"ksm: {a} and {b} already share #{pa.page}")
            return Outcome(False, error="same page")
        if not same_content(m.page(pa.page), m.page(pb.page)):  # memcmp_pages: every byte
            m.say("ksm: the pages differ")
            return Outcome(False, error="pages differ")
        if not (self.write_protect_page(m, a.proc, a.mapping, a.index)
                and self.write_protect_page(m, b.proc, b.mapping, b.index)):
            return Outcome(False, error="EBUSY")
        kpfn = pa.page
        m.update_page(kpfn, ksm=True)
        old = pb.page
        m.set_pte(b.proc, b.mapping, b.index, evolve(pb, page=kpfn, write=False))
        m.page_add_rmap(kpfn)
        m.page_remove_rmap(old)
        self.stable_tree_append(m, a)
        self.stable_tree_append(m, b)
        m.say(f"ksm: {b} now maps KSM page #{kpfn}, shared read-only with {a}")
        return Outcome(True)

    @whole_op(KSM_MERGE_ZERO)
    def op_ksm_merge_zero(self, m: Machine, step: Step) -> Outcome:
        """cmp_and_merge_page with use_zero_pages set: a page whose checksum is the zero
        page's goes to try_to_merge_with_zero_page -> try_to_merge_one_page(page,
        ZERO_PAGE): write_protect_page (the same reference checks as a merge), then
        replace_page maps the zero page (pte_mkspecial; dirty from 6.5) and drops the
        anonymous page."""
        a = addr_of(step)
        if not m.decided("has_ksm_use_zero_pages", self.has_ksm_use_zero_pages(), "ksm: use_zero_pages"):
            return Outcome(False, error="ENOENT")
        self.ksm_full_scan(m)  # a zero page KSM places is not in the stable tree (ksm_zero_pages counts it)
        pte = self.ksmd_scans(m, a)
        if pte is None:
            return Outcome(False, error="not mergeable")
        page = m.page(pte.page)
        if page.data != 0 or page.words:  # zero_checksum: every word zero
            m.say(f"ksm: #{pte.page} at {a} is not zero-filled (its checksum is not zero_checksum)")
            return Outcome(False, error="pages differ")
        if not self.write_protect_page(m, a.proc, a.mapping, a.index):
            return Outcome(False, error="EBUSY")
        marked = bool(m.decided("ksm_marks_zero_pages", self.ksm_marks_zero_pages(), f"replace_page {a}"))
        m.set_pte(a.proc, a.mapping, a.index, Pte(page=ZERO_PFN, dirty=marked))
        m.page_remove_rmap(pte.page)
        m.say(f"ksm: {a} now maps the shared zero page in place of #{pte.page} (replace_page)")
        return Outcome(True)
