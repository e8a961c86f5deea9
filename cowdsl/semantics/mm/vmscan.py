"""mm/vmscan.c and mm/rmap.c: reclaim puts anonymous pages into swap."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowdsl.ops.vmscan import SWAPIN, SWAPOUT
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import whole_op
from cowdsl.semantics.mm import addr_of
from cowdsl.semantics.mm.swap import holder
from cowdsl.semantics.state import HUGETLB, PTE_THP, THP, Outcome, Pte, content

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine


class Reclaim(KernelBase):
    def shrink_page(self, m: Machine, pfn: int) -> Outcome:
        """shrink_folio_list for one anonymous page: add_to_swap, try_to_unmap, pageout.

        A THP (PMD- or PTE-mapped) goes to swap whole: add_to_swap takes the folio
        without splitting it, try_to_unmap(TTU_SPLIT_HUGE_PMD) splits each PMD and
        leaves a swap entry in every subpage's PTE, pageout writes the folio
        (shrink_page_list in 5.10.198, shrink_folio_list in 6.18.2).  A folio with
        references beyond its mappings cannot be split and is not reclaimed at all
        (can_split_huge_page / can_split_folio → activate_locked), unlike an
        order-0 page, which stays in the swap cache.  Swap-in brings it back as
        small pages (do_swap_page allocates order-0 pages in 5.10; alloc_swap_folio
        in 6.18 only orders below PMD_ORDER, none enabled by default).  A hugetlb
        page is never on the LRU: reclaim does not swap it."""
        page = m.page(pfn)
        if page.zero or not page.anon:
            m.say(f"reclaim: #{pfn} is not an anonymous page; nothing to swap")
            return Outcome(False, error="not anonymous")
        if page.kind == HUGETLB:
            m.say(f"reclaim: #{pfn} is a hugetlb page: not on the LRU, never swapped")
            return Outcome(False, error="hugetlb")
        if self.lru_not_isolated(m, pfn, "madvise_cold_or_pageout_pte_range"):
            return Outcome(False, error="not on the LRU")
        if page.swapcache < 0:
            if m.decided("reclaim_keeps_pinned", self.reclaim_keeps_pinned(m, pfn), f"shrink_page_list #{pfn}"):
                return Outcome(False, error="pinned")
            if page.compound and page.refcount != page.mapcount + page.siblings:
                m.say(f"reclaim: THP #{pfn} has references beyond its mappings (refcount {page.refcount}): "
                      "can_split_huge_page fails → activate_locked, not reclaimed")
                return Outcome(False, error="cannot split")
            slot = m.alloc_slot(page)
            m.update_page(pfn, swapcache=slot)
            m.get_page(pfn)
            m.say(f"add_to_swap: {'THP ' if page.compound else ''}#{pfn} enters the swap cache, slot {slot}"
                  + (" (whole, not split)" if page.compound else ""))
        if m.page(pfn).kind == THP:
            # TTU_SPLIT_HUGE_PMD: every PMD becomes PTEs and each subpage's PTE a swap entry;
            # the model follows the head's, and the tails' references go with them
            m.update_page(pfn, kind=PTE_THP, siblings=0)
            m.say(f"try_to_unmap(TTU_SPLIT_HUGE_PMD): the PMDs mapping #{pfn} are split; each subpage gets a swap entry")
        if not self.try_to_unmap(m, pfn):
            return Outcome(False, error="mapped")
        page = m.page(pfn)
        if page.mapcount == 0 and page.refcount == 1:
            slot = page.swapcache
            m.update_slot(slot, **content(page))
            m.delete_from_swap_cache(pfn)
            m.say(f"pageout: #{pfn} written to slot {slot} and freed")
            return Outcome(True)
        m.say(f"reclaim: #{pfn} stays in the swap cache (refcount {page.refcount}: someone else holds it)")
        return Outcome(True)

    def try_to_unmap(self, m: Machine, pfn: int) -> bool:
        for mm, vname, idx in m.mappers(pfn) + self.device_exclusive_walked(m, pfn):
            page = m.page(pfn)
            was_exclusive = page.anon_exclusive
            if was_exclusive and not m.decided(
                "unmap_may_share", self.unmap_may_share(m, pfn), f"try_to_unmap #{pfn}"
            ):
                return False
            m.update_page(pfn, anon_exclusive=False)
            slot = page.swapcache
            m.set_pte(mm, vname, idx, Pte(slot=slot, swp_exclusive=was_exclusive))
            m.update_slot(slot, count=m.slot(slot).count + 1)
            m.page_remove_rmap(pfn)
            m.say(f"try_to_unmap: {mm}.{vname}[{idx}] → swap entry slot {slot}{' (exclusive)' if was_exclusive else ''}")
        return True

    @whole_op(SWAPOUT)
    def op_swapout(self, m: Machine, step: Step) -> Outcome:
        a = addr_of(step)
        pte = m.pte_at(a.proc, a.mapping, a.index)
        if pte is None or not (pte.present or pte.devexcl):  # a device-exclusive entry's page is resident
            m.say(f"swapout: nothing resident at {a}")
            return Outcome(False, error="not resident")
        cpu = m.page(pte.page).lru_batch
        if cpu is not None:
            # reclaim scans the LRU lists: it reaches the page once its batch is drained
            # (shrink_inactive_list's own lru_add_drain() empties reclaim's CPU's batch)
            self.lru_add_drain_cpu(m, cpu, f"reclaim scans the LRU lists: {holder(cpu)} is drained first")
        return self.shrink_page(m, pte.page)

    @whole_op(SWAPIN)
    def op_swapin(self, m: Machine, step: Step) -> Outcome:
        a = addr_of(step)
        pte = m.pte_at(a.proc, a.mapping, a.index)
        if pte is None or not pte.swap:
            m.say(f"swapin: {a} is not swapped out")
            return Outcome(False, error="not swapped")
        if m.swapcache_page(pte.slot) is not None:
            m.say(f"swapin: slot {pte.slot} is already in the swap cache")
            return Outcome(False, error="already in swap cache")
        pfn = m.alloc_page(**content(m.slot(pte.slot)), refcount=1, swapcache=pte.slot)
        m.say(f"swapin_readahead: slot {pte.slot} read into the swap cache as #{pfn}")
        return Outcome(True)
