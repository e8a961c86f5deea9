"""≤5.7: the mapcount era (reference §1).  Write faults reuse a page when
mapcount + swapcount ≤ 1; GUP references are invisible to COW; fork knows
nothing of pins.  Includes the Dirty COW fix (4.9) unless foll_cow=off."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowdsl.semantics.backend import Backend
from cowdsl.semantics.machine import Decision, Machine

if TYPE_CHECKING:
    from cowdsl.semantics.mm.gup import Foll
    from cowdsl.semantics.state import Page, Pte, Vma

# Where a rule stands in code no single commit introduced, it cites the release,
# file and function it was read in.
REUSE_SWAP_PAGE = "v5.7 mm/swapfile.c reuse_swap_page"
DO_SWAP_PAGE = "v5.7 mm/memory.c do_swap_page"
COPY_ONE_PTE = "v5.8 mm/memory.c copy_one_pte"
HUGETLB_COW = "v5.7 mm/hugetlb.c hugetlb_cow"
# "mm: fixes for device-exclusive entries (hmm)" (6.15): the series has no single mainline id here
DEVEXCL_REWORK = "v6.15 mm/rmap.c make_device_exclusive"


class Mapcount(Backend):
    name = "mapcount"
    COPY_PTE = COPY_NONPRESENT_PTE = "copy_one_pte"

    def has_foll_cow(self) -> bool:
        """FOLL_COW exists from 19be0eaffa3a (4.9) until 5535be309971 (6.0);
        before 4.9 the same fact was kept by dropping FOLL_WRITE."""
        return True

    def foll_write_dropped(self, flags: Foll) -> bool:
        """Before 19be0eaffa3a, faultin_page cleared FOLL_WRITE once COW had been
        broken in a !VM_WRITE vma: the retry took whatever page was mapped."""
        return self.options["foll_cow"] == "off" and flags.cow

    def has_write_protect_seq(self) -> Decision:
        """write_protect_seq came with 57efa1fe5957 (5.11, 5.10.y)."""
        return Decision(False, "no write_protect_seq", "57efa1fe5957")

    def _swapcount(self, m: Machine, page: Page) -> int:
        return m.slot(page.swapcache).count if page.swapcache >= 0 else 0

    def _reuse_swap_page(self, m: Machine, pfn: int, count: int, what: str) -> Decision:
        """reuse_swap_page (mm/swapfile.c ≤5.17): the page may be reused when its
        mappings plus swap entries number one; then it leaves the swap cache.
        A KSM page goes through reuse_ksm_page instead (52d1e606ee73, 5.1, until
        1a0cf26323c8 in 5.9-rc4): reused only at refcount 1 and outside the swap
        cache; before 5.1 (ksm_reuse=off, 4.19.222 read) it is always copied."""
        page = m.page(pfn)
        if page.ksm and self.options["ksm_reuse"] == "off":
            return Decision(False, "KSM page → copy (no reuse_ksm_page before 5.1)", "52d1e606ee73")
        if page.ksm:
            if page.refcount == 1 and page.swapcache < 0:
                m.update_page(pfn, ksm=False)  # page_move_anon_rmap: ours again
                return Decision(True, "reuse_ksm_page: refcount 1 → reuse", "52d1e606ee73")
            return Decision(False, f"reuse_ksm_page: refcount {page.refcount} → copy", "52d1e606ee73")
        if count == 1 and page.swapcache >= 0:
            m.delete_from_swap_cache(pfn)  # and SetPageDirty: the slot's copy is stale
        why = f"{what} = {count}"
        if count <= 1:
            return Decision(True, f"reuse_swap_page: {why} ≤ 1 → reuse (refcount {page.refcount} ignored)", REUSE_SWAP_PAGE)
        return Decision(False, f"reuse_swap_page: {why} > 1 → copy", REUSE_SWAP_PAGE)

    def wp_can_reuse(self, m: Machine, pfn: int) -> Decision:
        """v5.7 do_wp_page → reuse_swap_page: mapcount + swapcount ≤ 1 (reference §1.1, [V])."""
        page = m.page(pfn)
        sc = self._swapcount(m, page)
        return self._reuse_swap_page(m, pfn, page.mapcount + sc, f"mapcount {page.mapcount} + swapcount {sc}")

    def thp_wp_can_reuse(self, m: Machine, pfn: int) -> Decision:
        """do_huge_pmd_wp_page ≤5.17: reuse on the THP mapcount (reuse_swap_page's
        THP variant).  UNVERIFIED as code (reference §4.3, §10); corroborated by
        the THP case of CVE-2020-29374 staying open until 5.18."""
        page = m.page(pfn)
        return self._reuse_swap_page(m, pfn, page.mapcount, f"THP mapcount {page.mapcount}")

    def hugetlb_wp_can_reuse(self, m: Machine, pfn: int) -> Decision:
        """hugetlb_wp (hugetlb_cow): reuse iff mapped once and anonymous; the
        refcount is never consulted, in every era up to 6.x (reference §10, [V])."""
        page = m.page(pfn)
        if page.mapcount == 1 and page.anon:
            return Decision(True, f"hugetlb: mapcount 1 → reuse (refcount {page.refcount} ignored)", HUGETLB_COW)
        return Decision(False, f"hugetlb: mapcount {page.mapcount} → copy", HUGETLB_COW)

    def fork_copy_anon(self, m: Machine, src_mm: str, pfn: int) -> Decision:
        """copy_one_pte (before 5.9-rc7): every page is shared read-only, pinned
        or not.  Cites the function as it stood in v5.8, not 70e806e4e645, which
        added the check later."""
        return Decision(False, "fork has no pin check: shared read-only", COPY_ONE_PTE)

    def check_vma_flags(self, m: Machine, vma: Vma, flags: Foll) -> Decision:
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

    def gup_break_cow(self, m: Machine, vma: Vma, flags: Foll) -> Decision:
        """No forced COW break before 5.8 (17839856fd58 added it)."""
        return Decision(False, "no forced COW break", "17839856fd58")

    def can_follow_write_pte(self, m: Machine, vma: Vma, pte: Pte, flags: Foll) -> Decision:
        """19be0eaffa3a (4.9, Dirty COW): a forced write follows a read-only PTE
        only after COW was broken (FOLL_COW) and only if the PTE is dirty, i.e.
        still the private copy.  (foll_cow=off, before 4.9: see foll_write_dropped.)"""
        if pte.write:
            return Decision(True, "PTE writable", None)
        if flags.force and flags.cow and pte.dirty:
            return Decision(True, "FOLL_FORCE, FOLL_COW and a dirty PTE → follow the private copy", "19be0eaffa3a")
        return Decision(False, "PTE read-only (no FOLL_COW or clean) → write fault", "19be0eaffa3a")

    def gup_must_unshare(self, m: Machine, vma: Vma, pfn: int, flags: Foll) -> Decision:
        """No GUP-triggered unsharing before 5.19 (a7f226604170)."""
        return Decision(False, "no unsharing before 5.19", "a7f226604170")

    def pin_sets_has_pinned(self, flags: Foll) -> Decision:
        """mm->has_pinned does not exist before 5.9 (008cfe4418b3)."""
        return Decision(False, "no has_pinned before 5.9", "008cfe4418b3")

    def reclaim_keeps_pinned(self, m: Machine, pfn: int) -> Decision:
        """Reclaim does not look at pins before feb889fb40fa (5.11)."""
        return Decision(False, "reclaim ignores pins", "feb889fb40fa")

    def unmap_may_share(self, m: Machine, pfn: int) -> Decision:
        """No exclusivity to give up before 5.19 (6c287605fd56 added it): unmap always proceeds."""
        return Decision(True, "no PageAnonExclusive", "6c287605fd56")

    def swapin_free_swapcache(self, m: Machine, pfn: int, write: bool) -> Decision:
        """v5.7 do_swap_page frees the swap cache only when swap is full or the
        vma is mlocked (not modelled); reuse_swap_page frees it on reuse."""
        return Decision(False, "swap not full: keep the swap cache", DO_SWAP_PAGE)

    def swapin_exclusive(self, m: Machine, pte: Pte, pfn: int, write: bool) -> Decision:
        """v5.7 do_swap_page: a write fault maps writable iff reuse_swap_page.
        It runs before swap_free, so this PTE's swap entry still counts
        (the model frees it first and adds it back)."""
        if not write:
            return Decision(False, "read fault → mapped read-only", DO_SWAP_PAGE)
        page = m.page(pfn)
        sc = self._swapcount(m, page) + 1
        return self._reuse_swap_page(m, pfn, page.mapcount + sc, f"mapcount {page.mapcount} + swapcount {sc}")

    def has_device_exclusive(self) -> Decision:
        """make_device_exclusive_range came with b756a3b5e7ea (5.14)."""
        return Decision(False, "no device-exclusive entries before 5.14 → -ENOSYS", "b756a3b5e7ea")

    def fork_restores_device_exclusive(self) -> Decision:
        """No device-exclusive entries before 5.14 (b756a3b5e7ea); never asked."""
        return Decision(True, "restore", "b756a3b5e7ea")

    def devexcl_single_pte(self) -> Decision:
        """6.15 ("mm: fixes for device-exclusive entries (hmm)", David Hildenbrand;
        438354724f69 "mm/rmap: implement make_device_exclusive() using folio_walk
        instead of rmap walk"): one PTE, which must map the page writable, and the
        mapcount stays (6.18.2 mm/rmap.c make_device_exclusive); before, the rmap
        walk of folio_make_device_exclusive made every mapping an entry and
        dropped its mapcount (6.14.0 mm/rmap.c)."""
        if self.options["devexcl"] == "rework":
            return Decision(True, "make_device_exclusive: one writable PTE, the mapcount stays", DEVEXCL_REWORK)
        return Decision(False, "make_device_exclusive_range: rmap walk, each entry drops its mapcount", "b756a3b5e7ea")

    def devexcl_restore_writable(self, m: Machine, vma: Vma, pte: Pte) -> Decision:
        """restore_exclusive_pte: 6.15+ maps the page writable iff VM_WRITE &&
        can_change_pte_writable (private anon: PageAnonExclusive; 6.18.2
        mm/memory.c, mm/mprotect.c); before, iff the entry was a writable one
        (maybe_mkwrite: and VM_WRITE; 6.14.0 mm/memory.c).  Reference §9.1, §9.2."""
        if self.options["devexcl"] == "rework":
            if vma.write and m.page(pte.page).anon_exclusive:
                return Decision(True, "VM_WRITE and PageAnonExclusive → writable", DEVEXCL_REWORK)
            return Decision(False, "not VM_WRITE or not exclusive → read-only", DEVEXCL_REWORK)
        if pte.write and vma.write:
            return Decision(True, "a writable entry in a VM_WRITE VMA → writable", "b756a3b5e7ea")
        return Decision(False, "a readable entry (or no VM_WRITE) → read-only", "b756a3b5e7ea")

    def unmap_device_exclusive(self) -> Decision:
        """6.15+ try_to_unmap_one / try_to_migrate_one handle device-exclusive
        entries as mappings ("Handle PFN swap PTEs, such as device-exclusive
        ones, that actually map pages", 6.18.2 mm/rmap.c); before, the folio had
        no mapcount, folio_mapped() was false and no rmap walk ran (6.14.0).  §9.2."""
        if self.options["devexcl"] == "rework":
            return Decision(True, "the entry is a mapping: the walk unmaps it", DEVEXCL_REWORK)
        return Decision(False, "no mapcount: the walk does not run", "b756a3b5e7ea")

    def mprotect_upgrade(self, m: Machine, vma: Vma, pte: Pte) -> Decision:
        """Before 64fe24a3e05e (6.0) private PTEs stay read-only after
        mprotect(PROT_WRITE); the next write faults."""
        return Decision(False, "PTE stays read-only until a write fault", "64fe24a3e05e")

    def thp_wp_copies_whole(self) -> Decision:
        """3917c80280c9 (5.8-rc1) "thp: change CoW semantics for anon-THP": a
        write fault that cannot reuse a PMD-mapped THP splits the PMD and copies
        one page; before, do_huge_pmd_wp_page copied the whole THP
        (alloc_hugepage_vma, read in 4.19.222; thp_wp=whole)."""
        if self.options["thp_wp"] == "whole":
            return Decision(True, "do_huge_pmd_wp_page: copy the whole THP", "3917c80280c9")
        return Decision(False, "split the PMD, copy one page", "3917c80280c9")

    def pvm_foll_pin(self) -> Decision:
        """803e4572d7c5 (5.6): process_vm_readv/writev pin with
        pin_user_pages_remote (FOLL_PIN); before, get_user_pages_remote took
        FOLL_GET references (read in 5.4.214)."""
        if self.options["pvm_pin"] == "pin":
            return Decision(True, "pin_user_pages_remote (FOLL_PIN)", "803e4572d7c5")
        return Decision(False, "get_user_pages_remote (FOLL_GET)", "803e4572d7c5")

    def odirect_foll_pin(self) -> Decision:
        """a7e689dd1c06 "block: Convert bio_iov_iter_get_pages to use
        iov_iter_extract_pages" (6.5, with fd363244e883 BIO_PAGE_PINNED and
        1ccf164ec866 for fs/direct-io.c): the bio of an O_DIRECT read or write of
        user memory pins it (FOLL_PIN, unpinned by bio_release_page, 6.18.2 read);
        before (6.4.6 read) iov_iter_get_pages took FOLL_GET references, dropped
        by put_page at completion."""
        if self.options["odirect_pin"] == "pin":
            return Decision(True, "iov_iter_extract_pages (FOLL_PIN, BIO_PAGE_PINNED)", "a7e689dd1c06")
        return Decision(False, "iov_iter_get_pages (FOLL_GET)", "a7e689dd1c06")

    def ksm_break_unshares(self) -> Decision:
        """6cce3314b928 "mm/ksm: fix KSM COW breaking with userfaultfd-wp via
        FAULT_FLAG_UNSHARE" (David Hildenbrand, in the 6.2-rc1 MM pull): MADV_UNMERGEABLE unshares each KSM page with FAULT_FLAG_UNSHARE (the fault
        a7f226604170 added in 5.19 for R/O pins), leaving the private copy read-only
        (6.4.6 and 6.18.2 read); before, a FAULT_FLAG_WRITE fault (5.10.198 read) mapped the
        copy writable and dirty."""
        if self.options["ksm_break"] == "unshare":
            return Decision(True, "FAULT_FLAG_UNSHARE: a read-only private copy", "6cce3314b928")
        return Decision(False, "FAULT_FLAG_WRITE: a writable private copy", "6cce3314b928")

    def has_memory_merge_prctl(self) -> Decision:
        """d7597f59d1d3 "mm: add new api to enable ksm per process" (Stefan Roesch, 6.4;
        PR_SET_MEMORY_MERGE and ksm_fork's MMF_VM_MERGE_ANY read in 6.4.6); before, the
        prctl is unknown: -EINVAL."""
        if self.options["ksm_merge_any"] == "on":
            return Decision(True, "PR_SET_MEMORY_MERGE", "d7597f59d1d3")
        return Decision(False, "no PR_SET_MEMORY_MERGE → -EINVAL", "d7597f59d1d3")

    def hugetlb_fork_wp_seq(self) -> Decision:
        """623a1ddfeb23 (5.19): copy_hugetlb_page_range raises write_protect_seq.
        Before, copy_page_range returned copy_hugetlb_page_range before
        raw_write_seqcount_begin, so GUP-fast on hugetlb could race fork even
        where write_protect_seq exists (5.11-5.18, §15.1 item 7)."""
        if self.options["hugetlb_wp_seq"] == "on":
            return Decision(True, "hugetlb fork inside write_protect_seq", "623a1ddfeb23")
        return Decision(False, "copy_hugetlb_page_range runs outside write_protect_seq", "623a1ddfeb23")

    def has_madv_collapse(self) -> Decision:
        """7d8faaf15545 "mm/madvise: introduce MADV_COLLAPSE sync hugepage collapse" (6.1;
        6.1.158 madvise_behavior_valid has it, 5.15.135 has no MADV_COLLAPSE): before, the
        advice is unknown and madvise(2) fails with -EINVAL."""
        if self.options["madv_collapse"] == "on":
            return Decision(True, "MADV_COLLAPSE (madvise_collapse)", "7d8faaf15545")
        return Decision(False, "no MADV_COLLAPSE: unknown advice → -EINVAL", "7d8faaf15545")

    def collapse_needs_writable(self) -> Decision:
        """hpage_collapse_scan_pmd and __collapse_huge_page_isolate refuse a range with no
        writable PTE (`if (!writable) result = SCAN_PAGE_RO`, 6.1.158) until 6.18 ("mm:
        enable khugepaged to operate on non-writable VMAs", Dev Jain; 6.18.2 has no
        `writable`; its mainline id UNVERIFIED: v6.18 mm/khugepaged.c)."""
        if self.options["collapse_ro"] == "refuse":
            return Decision(True, "no writable PTE in the range → SCAN_PAGE_RO",
                            "v6.18 mm/khugepaged.c hpage_collapse_scan_pmd")
        return Decision(False, "a read-only range collapses too", "v6.18 mm/khugepaged.c hpage_collapse_scan_pmd")

    def collapse_count_eagain(self) -> Decision:
        """ae63c898f400 "mm/MADV_COLLAPSE: set EAGAIN on unexpected page refcount" (6.2,
        6.1.13): madvise_collapse_errno maps SCAN_PAGE_COUNT to -EAGAIN (6.1.158 and
        6.18.2 read); before, to the default -EINVAL."""
        if self.options["collapse_errno"] == "eagain":
            return Decision(True, "SCAN_PAGE_COUNT → -EAGAIN", "ae63c898f400")
        return Decision(False, "SCAN_PAGE_COUNT → -EINVAL", "ae63c898f400")

    def has_ksm_use_zero_pages(self) -> Decision:
        """e86c59b1b12d "mm/ksm: improve deduplication of zero pages with colouring" (4.11):
        /sys/kernel/mm/ksm/use_zero_pages, and cmp_and_merge_page trying
        try_to_merge_with_zero_page first for a page whose checksum is zero_checksum
        (5.10.198, 6.1.158 and 6.18.2 read); before, no such knob."""
        if self.options["ksm_use_zero_pages"] == "on":
            return Decision(True, "use_zero_pages: try_to_merge_with_zero_page", "e86c59b1b12d")
        return Decision(False, "no /sys/kernel/mm/ksm/use_zero_pages", "e86c59b1b12d")

    def ksm_marks_zero_pages(self) -> Decision:
        """79271476b336 "ksm: support unsharing KSM-placed zero pages" (6.5): replace_page
        maps the zero page with pte_mkdirty(pte_mkspecial(...)) so is_ksm_zero_pte knows
        it, and break_ksm unshares it like a KSM page (6.18.2 read); 6.1.158's
        replace_page maps it clean and break_ksm breaks PageKsm pages only, so
        MADV_UNMERGEABLE leaves KSM-placed zero pages mapped."""
        if self.options["ksm_zero_unshare"] == "on":
            return Decision(True, "the zero page's PTE marked dirty: KSM-placed (is_ksm_zero_pte)", "79271476b336")
        return Decision(False, "the zero page mapped clean: MADV_UNMERGEABLE will not unshare it", "79271476b336")

    def io_uring_checks_vmas(self) -> Decision:
        """34ed8d0dcd69 "io_uring: rsrc: delegate VMA file-backed check to GUP" (6.5, after
        8ac268436e6d): io_pin_pages no longer asks pin_user_pages for the VMAs.  Before
        (5.10.198, 6.1.158 read), it refuses a buffer in a file mapping that is neither
        shmem (vma_is_shmem) nor hugetlbfs (is_file_hugepages) with -EOPNOTSUPP, private
        mappings included, after the pin, which it drops."""
        if self.options["io_uring_vma_check"] == "on":
            return Decision(True, "io_uring's own check: only anon, shmem or hugetlbfs buffers", "34ed8d0dcd69")
        return Decision(False, "the VMAs are GUP's to check", "34ed8d0dcd69")

    def ksm_checks_refs(self, m: Machine, pte: Pte, pfn: int) -> Decision:
        """ksm.c write_protect_page: the page's references are compared with its
        mappings only `if (pte_write || pte_dirty || ...)`: before 5.19 a
        read-only clean PTE (after a read-fault swap-in, say) is merged despite
        GUP references (read in 5.7.14, §15.1 item 3); 6c287605fd56 (5.19) adds
        `|| anon_exclusive`."""
        page = m.page(pfn)
        if pte.write or pte.dirty:
            return Decision(True, "PTE writable or dirty → compare references", "6c287605fd56")
        if self.options["ksm_excl_check"] == "on" and page.anon_exclusive:
            return Decision(True, "PTE read-only and clean, page exclusive → compare references", "6c287605fd56")
        return Decision(False, "PTE read-only and clean → references not compared", "6c287605fd56")

    def swapin_read_writable(self, m: Machine, vma: Vma) -> Decision:
        """c18160dba5ff (6.11): do_swap_page maps an exclusive page writable on a
        read fault too, when the VMA is VM_WRITE and no uffd-wp or soft-dirty
        tracking needs the fault; before, only a write fault did."""
        if self.options["swapin_writable"] == "on" and vma.write:
            return Decision(True, "exclusive and VM_WRITE → writable on a read fault", "c18160dba5ff")
        return Decision(False, "read fault → mapped read-only", "c18160dba5ff")
