"""5.9-rc5/rc6: "simplify do_wp_page" (merge b25d1dc9474e, reference §3).
COW decides on the refcount alone; the forced COW break is gone; fork does not
yet know about pins — the transitional regression for RDMA."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowdsl.semantics.eras.gup_cow import GupCow
from cowdsl.semantics.eras.mapcount import Mapcount
from cowdsl.semantics.machine import Decision, Machine

if TYPE_CHECKING:
    from cowdsl.semantics.mm.gup import Foll
    from cowdsl.semantics.state import Pte, Vma


class Refcount(GupCow):
    name = "refcount"

    def wp_can_reuse(self, m: Machine, pfn: int) -> Decision:
        """09854ba94c6a "mm: do_wp_page() simplification": reuse only if nobody
        else holds a reference (KSM never: 1a0cf26323c8).  A page in the swap
        cache has refcount ≥ 2 and is always copied; so is a page an lru_add batch
        still holds (no drain here: 5.10.198 and 5.15.135 do_wp_page read)."""
        page = m.page(pfn)
        if page.ksm:
            return Decision(False, "KSM page → copy", "1a0cf26323c8")
        if page.refcount != 1:
            return Decision(False, f"refcount {page.refcount} != 1 → copy", "09854ba94c6a")
        if page.mapcount != 1:
            return Decision(False, f"mapcount {page.mapcount} != 1 → copy", "09854ba94c6a")
        return Decision(True, "refcount 1 → reuse", "09854ba94c6a")

    def gup_break_cow(self, m: Machine, vma: Vma, flags: Foll) -> Decision:
        """a308c71bf1e6 "mm/gup: Remove enfornced COW mechanism"."""
        return Decision(False, "no forced COW break", "a308c71bf1e6")

    def can_follow_write_pte(self, m: Machine, vma: Vma, pte: Pte, flags: Foll) -> Decision:
        """a308c71bf1e6 restored the FOLL_FORCE && FOLL_COW && pte_dirty rule."""
        return Mapcount.can_follow_write_pte(self, m, vma, pte, flags)
