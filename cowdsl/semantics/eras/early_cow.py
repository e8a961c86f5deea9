"""5.9–5.17: refcount COW plus early COW of pinned pages at fork
(Peter Xu, 5.9-rc7; reference §4).  Also feb889fb40fa (5.11, 5.10.y): pinned
pages are kept out of the swap cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowdsl.semantics.eras.refcount import Refcount
from cowdsl.semantics.machine import Decision, Machine
from cowdsl.semantics.state import HUGETLB

if TYPE_CHECKING:
    from cowdsl.semantics.mm.gup import Foll


class EarlyCow(Refcount):
    name = "early-cow"
    COPY_PTE, COPY_NONPRESENT_PTE = "copy_present_pte", "copy_nonpresent_pte"  # 79a1971c5f14 (5.9-rc7)
    HAS_PINNED = "has_pinned"  # mm->has_pinned, MMF_HAS_PINNED from 5.14 (a458b76a4171)

    def fork_copy_anon(self, m: Machine, src_mm: str, pfn: int) -> Decision:
        """70e806e4e645 copy_present_page: in a COW mapping, when the source mm
        has_pinned (008cfe4418b3) and the page may be pinned, the child gets a
        copy and the parent keeps its writable PTE.  Mainline 5.9-5.18 asks this
        of any normal page, page-cache pages of private file mappings included
        (read in 5.9.1, 5.15.135); 5.10.153 and 5.15.173 added a PageAnon check
        (fork_anon_only=on), which mainline got through fb3d824d1a46 (5.19)."""
        page = m.page(pfn)
        if not page.anon and self.options["fork_anon_only"] == "on":
            return Decision(False, "not anonymous → shared (the 5.10.153 PageAnon check)", "fb3d824d1a46")
        if page.kind == HUGETLB and self.options["hugetlb_fork_copy"] == "off":
            return Decision(False, "hugetlb before 4eae4efa2c29 → shared read-only", "4eae4efa2c29")
        if not m.mm_field(src_mm, "has_pinned"):
            return Decision(False, "has_pinned clear → shared read-only", "70e806e4e645")
        if not self.maybe_dma_pinned(page):
            return Decision(False, "has_pinned, page not maybe pinned → shared read-only", "70e806e4e645")
        return Decision(True, "has_pinned and page_maybe_dma_pinned → copy for the child", "70e806e4e645")

    def pin_sets_has_pinned(self, flags: Foll) -> Decision:
        """008cfe4418b3: any FOLL_PIN sets mm->has_pinned (never cleared).
        pin_scope=longterm: only FOLL_LONGTERM does (the proposal in seed 003)."""
        if self.options["pin_scope"] == "longterm" and not flags.longterm:
            return Decision(False, "pin_scope=longterm: short-term pin leaves has_pinned clear", "008cfe4418b3")
        return Decision(True, "FOLL_PIN sets has_pinned", "008cfe4418b3")

    def has_device_exclusive(self) -> Decision:
        """b756a3b5e7ea (5.14; release UNVERIFIED in the reference §9.1)."""
        if self.options["device_exclusive"] == "off":
            return Decision(False, "before 5.14: no device-exclusive entries → -ENOSYS", "b756a3b5e7ea")
        return Decision(True, "device-exclusive entries exist", "b756a3b5e7ea")

    def fork_restores_device_exclusive(self) -> Decision:
        """b756a3b5e7ea v10: copy_nonpresent_pte restores the parent's entry
        (exclusivity lost, the PROTECTION_PAGE notifier fires) and then copies the
        present PTE by the normal rule.  devexcl_fork=copy: read-only exclusive
        entries in both, as Alistair Popple first described (seed 004)."""
        if self.options["devexcl_fork"] == "copy":
            return Decision(False, "read-only exclusive entries for parent and child", "b756a3b5e7ea")
        return Decision(True, "restore the parent's PTE, then the normal fork rule", "b756a3b5e7ea")

    def has_write_protect_seq(self) -> Decision:
        """57efa1fe5957 (Jason Gunthorpe, 5.11, backported to 5.10.y): fork makes
        write_protect_seq odd while it copies; GUP-fast pinning falls back to
        the slow path (which waits on mmap_lock) when it sees that."""
        if self.options["wp_seq"] == "off":
            return Decision(False, "no write_protect_seq: GUP-fast can race fork", "57efa1fe5957")
        return Decision(True, "fork and GUP-fast synchronise on write_protect_seq", "57efa1fe5957")

    def reclaim_keeps_pinned(self, m: Machine, pfn: int) -> Decision:
        """feb889fb40fa "mm: don't put pinned pages into the swap cache".  Still
        in 6.x: shrink_folio_list has `if (folio_maybe_dma_pinned(folio)) goto
        keep_locked;` (the reference left its survival UNVERIFIED)."""
        if self.options["swap_pin_check"] == "off":
            return Decision(False, "before feb889fb40fa: reclaim ignores pins", "feb889fb40fa")
        if self.maybe_dma_pinned(m.page(pfn)):
            return Decision(True, "page_maybe_dma_pinned → kept out of swap cache", "feb889fb40fa")
        return Decision(False, "not pinned → may enter the swap cache", "feb889fb40fa")
