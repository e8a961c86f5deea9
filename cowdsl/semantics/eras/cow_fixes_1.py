"""5.18: David Hildenbrand's "COW fixes part 1" (reference §5): the refcount
rule extended to swap-in and THP; reuse_swap_page is gone (03104c2c5db8).
Release tag UNVERIFIED in the reference (merged for v5.18-rc1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowdsl.semantics.eras.early_cow import EarlyCow
from cowdsl.semantics.machine import Decision, Machine

if TYPE_CHECKING:
    from cowdsl.semantics.state import Pte


class CowFixes1(EarlyCow):
    name = "cow-fixes-1"
    HAS_PINNED = "MMF_HAS_PINNED"

    def wp_can_reuse(self, m: Machine, pfn: int) -> Decision:
        """d4c470970d45 / 53a05ad9f21d: reuse when the refcount is 1 once the
        swap cache (if no swap entry still needs it) is dropped.  A page not on the
        LRU first gets the faulting CPU's lru_add batch drained (d4c470970d45:
        `if (!PageLRU(page)) lru_add_drain();`, wp_can_reuse_anon_folio in 6.1.158
        and 6.18.2; absent from 5.10.198 and 5.15.135, which took no backport):
        another CPU's batch keeps its reference."""
        page = m.page(pfn)
        if page.ksm or page.refcount > 3:
            return Decision(False, f"KSM or refcount {page.refcount} > 3 → copy", "d4c470970d45")
        if page.lru_batch is not None:
            self.lru_add_drain(m, f"do_wp_page: #{pfn} is not on the LRU")
            page = m.page(pfn)
        in_cache = page.swapcache >= 0
        if page.refcount > 1 + in_cache:
            extra = " + swap cache" if in_cache else ""
            return Decision(False, f"refcount {page.refcount} > 1{extra} → copy", "53a05ad9f21d")
        if in_cache:
            self.try_to_free_swap(m, pfn)
        page = m.page(pfn)
        if page.refcount != 1:
            return Decision(False, f"refcount {page.refcount} != 1 after try_to_free_swap → copy", "53a05ad9f21d")
        return Decision(True, "refcount 1 → reuse", "53a05ad9f21d")

    def thp_wp_can_reuse(self, m: Machine, pfn: int) -> Decision:
        """3bff7e3f1f16 (COW fixes part 1; ID [M] from the reference's list):
        do_huge_pmd_wp_page reuses only at refcount 1, else splits the PMD and
        copies the subpage — closing CVE-2020-29374 for THP."""
        page = m.page(pfn)
        if page.refcount == 1 and not page.ksm:
            return Decision(True, "THP refcount 1 → reuse", "3bff7e3f1f16")
        return Decision(False, f"THP refcount {page.refcount} != 1 → split and copy", "3bff7e3f1f16")

    def swapin_free_swapcache(self, m: Machine, pfn: int, write: bool) -> Decision:
        """c145e0b47c77: on a write fault, drop the swap cache when the fault may
        be the sole user (page_count == 2: the cache and the fault's own)."""
        page = m.page(pfn)
        if write and not page.ksm and page.refcount == 2:
            return Decision(True, "write fault, only the swap cache holds it → try_to_free_swap", "c145e0b47c77")
        return Decision(False, "keep the swap cache", "c145e0b47c77")

    def swapin_exclusive(self, m: Machine, pte: Pte, pfn: int, write: bool) -> Decision:
        """c145e0b47c77: map writable on a write fault iff no one else holds the
        page (refcount 1 once the swap cache is gone)."""
        page = m.page(pfn)
        if page.ksm:
            return Decision(False, "KSM page → read-only", "c145e0b47c77")
        if page.refcount == 1:
            return Decision(True, "refcount 1 → sole user", "c145e0b47c77")
        return Decision(False, f"refcount {page.refcount}: maybe shared → mapped read-only", "c145e0b47c77")
