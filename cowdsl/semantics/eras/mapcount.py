"""≤5.7: the mapcount era (reference §1).  Write faults reuse a page when
mapcount + swapcount ≤ 1; GUP references are invisible to COW; fork knows
nothing of pins.  Includes the Dirty COW fix (4.9) unless foll_cow=off."""

from __future__ import annotations

from cowdsl.semantics.backend import Backend
from cowdsl.semantics.machine import Decision


class Mapcount(Backend):
    name = "mapcount"

    def has_foll_cow(self) -> bool:
        """FOLL_COW exists from 19be0eaffa3a (4.9) until 5535be309971 (6.0);
        before 4.9 the same fact was kept by dropping FOLL_WRITE."""
        return True

    def foll_write_dropped(self, flags) -> bool:
        """Before 19be0eaffa3a, faultin_page cleared FOLL_WRITE once COW had been
        broken in a !VM_WRITE vma: the retry took whatever page was mapped."""
        return self.options["foll_cow"] == "off" and flags.cow

    def has_write_protect_seq(self):
        """write_protect_seq came with 57efa1fe5957 (5.11, 5.10.y)."""
        return Decision(False, "no write_protect_seq", "57efa1fe5957")

    def _swapcount(self, m, page) -> int:
        return m.slot(page.swapcache).count if page.swapcache >= 0 else 0

    def _reuse_swap_page(self, m, pfn, count: int, what: str) -> Decision:
        """reuse_swap_page (mm/swapfile.c ≤5.17): the page may be reused when its
        mappings plus swap entries number one; then it leaves the swap cache.
        A KSM page goes through reuse_ksm_page instead (until 1a0cf26323c8):
        reused only at refcount 1 and outside the swap cache."""
        page = m.page(pfn)
        if page.ksm:
            if page.refcount == 1 and page.swapcache < 0:
                m.update_page(pfn, ksm=False)  # page_move_anon_rmap: ours again
                return Decision(True, "reuse_ksm_page: refcount 1 → reuse", "1a0cf26323c8")
            return Decision(False, f"reuse_ksm_page: refcount {page.refcount} → copy", "1a0cf26323c8")
        if count == 1 and page.swapcache >= 0:
            m.delete_from_swap_cache(pfn)  # and SetPageDirty: the slot's copy is stale
        why = f"{what} = {count}"
        if count <= 1:
            return Decision(True, f"reuse_swap_page: {why} ≤ 1 → reuse (refcount {page.refcount} ignored)", "v5.7")
        return Decision(False, f"reuse_swap_page: {why} > 1 → copy", "v5.7")

    def wp_can_reuse(self, m, pfn):
        """v5.7 do_wp_page → reuse_swap_page: mapcount + swapcount ≤ 1 (reference §1.1, [V])."""
        page = m.page(pfn)
        sc = self._swapcount(m, page)
        return self._reuse_swap_page(m, pfn, page.mapcount + sc, f"mapcount {page.mapcount} + swapcount {sc}")

    def thp_wp_can_reuse(self, m, pfn):
        """do_huge_pmd_wp_page ≤5.17: reuse on the THP mapcount (reuse_swap_page's
        THP variant).  UNVERIFIED as code (reference §4.3, §10); corroborated by
        the THP case of CVE-2020-29374 staying open until 5.18."""
        page = m.page(pfn)
        return self._reuse_swap_page(m, pfn, page.mapcount, f"THP mapcount {page.mapcount}")

    def hugetlb_wp_can_reuse(self, m, pfn):
        """hugetlb_wp (hugetlb_cow): reuse iff mapped once and anonymous; the
        refcount is never consulted, in every era up to 6.x (reference §10, [V])."""
        page = m.page(pfn)
        if page.mapcount == 1 and page.anon:
            return Decision(True, f"hugetlb: mapcount 1 → reuse (refcount {page.refcount} ignored)", "hugetlb_cow")
        return Decision(False, f"hugetlb: mapcount {page.mapcount} → copy", "hugetlb_cow")

    def fork_copy_anon(self, m, src_mm, pfn):
        """copy_one_pte (pre-5.9): every page is shared read-only, pinned or not.
        UNVERIFIED as code (reference §1.2): inferred from 5.10's unpinned path
        and the messages of 17839856fd58 and 70e806e4e645."""
        return Decision(False, "fork has no pin check: shared read-only", "70e806e4e645")

    def check_vma_flags(self, m, vma, flags):
        """A write GUP needs VM_WRITE, or FOLL_FORCE in a COW (private) mapping:
        a forced write into a read-only shared mapping has been refused since
        cda540ace6a1 ("mm: get_user_pages(write,force) refuse to COW in shared
        areas", Hugh Dickins, 3.15; the ID as cited on LKML, not checked against
        the tree)."""
        if not flags.write or vma.write:
            return Decision(True, "access allowed", None)
        if not flags.force:
            return Decision(False, "write to a read-only mapping → -EFAULT", None)
        if not vma.is_cow_mapping:
            return Decision(False, "FOLL_FORCE write to a shared mapping → -EFAULT", "cda540ace6a1")
        return Decision(True, "FOLL_FORCE write in a COW mapping", None)

    def gup_break_cow(self, m, vma, flags):
        """No forced COW break before 5.8 (17839856fd58 added it)."""
        return Decision(False, "no forced COW break", "17839856fd58")

    def can_follow_write_pte(self, m, vma, pte, flags):
        """19be0eaffa3a (4.9, Dirty COW): a forced write follows a read-only PTE
        only after COW was broken (FOLL_COW) and only if the PTE is dirty, i.e.
        still the private copy.  (foll_cow=off, before 4.9: see foll_write_dropped.)"""
        if pte.write:
            return Decision(True, "PTE writable", None)
        if flags.force and flags.cow and pte.dirty:
            return Decision(True, "FOLL_FORCE, FOLL_COW and a dirty PTE → follow the private copy", "19be0eaffa3a")
        return Decision(False, "PTE read-only (no FOLL_COW or clean) → write fault", "19be0eaffa3a")

    def gup_must_unshare(self, m, vma, pfn, flags):
        """No GUP-triggered unsharing before 5.19 (a7f226604170)."""
        return Decision(False, "no unsharing before 5.19", "a7f226604170")

    def pin_sets_has_pinned(self, flags):
        """mm->has_pinned does not exist before 5.9 (008cfe4418b3)."""
        return Decision(False, "no has_pinned before 5.9", "008cfe4418b3")

    def reclaim_keeps_pinned(self, m, pfn):
        """Reclaim does not look at pins before feb889fb40fa (5.11)."""
        return Decision(False, "reclaim ignores pins", "feb889fb40fa")

    def unmap_may_share(self, m, pfn):
        """No exclusivity to give up before 5.19 (6c287605fd56 added it): unmap always proceeds."""
        return Decision(True, "no PageAnonExclusive", "6c287605fd56")

    def swapin_free_swapcache(self, m, pfn, write):
        """v5.7 do_swap_page frees the swap cache only when swap is full or the
        vma is mlocked (not modelled); reuse_swap_page frees it on reuse."""
        return Decision(False, "swap not full: keep the swap cache", "v5.7")

    def swapin_exclusive(self, m, pte, pfn, write):
        """v5.7 do_swap_page: a write fault maps writable iff reuse_swap_page.
        It runs before swap_free, so this PTE's swap entry still counts
        (the model frees it first and adds it back)."""
        if not write:
            return Decision(False, "read fault → mapped read-only", "v5.7")
        page = m.page(pfn)
        sc = self._swapcount(m, page) + 1
        return self._reuse_swap_page(m, pfn, page.mapcount + sc, f"mapcount {page.mapcount} + swapcount {sc}")

    def has_device_exclusive(self):
        """make_device_exclusive_range came with b756a3b5e7ea (5.14)."""
        return Decision(False, "no device-exclusive entries before 5.14 → -ENOSYS", "b756a3b5e7ea")

    def fork_restores_device_exclusive(self):
        """No device-exclusive entries before 5.14 (b756a3b5e7ea); never asked."""
        return Decision(True, "restore", "b756a3b5e7ea")

    def mprotect_upgrade(self, m, vma, pte):
        """Before 64fe24a3e05e (6.0) private PTEs stay read-only after
        mprotect(PROT_WRITE); the next write faults."""
        return Decision(False, "PTE stays read-only until a write fault", "64fe24a3e05e")
