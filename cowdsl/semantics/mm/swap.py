"""mm/swap.c: the per-CPU lru_add batches.

A freshly added order-0 anonymous page does not go onto the LRU lists at once:
``lru_cache_add`` (5.x: pagevec ``lru_pvecs.lru_add``) and ``folio_add_lru``
(6.x: folio_batch ``cpu_fbatches.lru_add``) take a reference (get_page /
folio_get) and park the page in the batch of the CPU that runs the fault.  The
batch is moved onto the LRU, and that reference dropped, when it fills
(PAGEVEC_SIZE: 15 pages in 5.10.198 and 6.1.158, 31 in 6.13.7 and 6.18.2), when
that CPU calls ``lru_add_drain()``, or by ``lru_add_drain_all()``.  A large
folio never waits: ``pagevec_add_and_need_flush`` tests ``PageCompound``
(5.10.198), ``folio_batch_add_and_move`` ``folio_may_be_lru_cached``, which is
``!folio_test_large`` (6.1.158, 6.18.2).  Hugetlb pages are never on the LRU.

Pages enter a batch where the kernel adds them (read in 5.10.198 and 6.18.2
mm/memory.c): do_anonymous_page, wp_page_copy, do_cow_fault's private copy
(alloc_set_pte / do_set_pte / set_pte_range), and fork's copy of a maybe-pinned
page (copy_present_page).  A page read in from swap is not left in one: the
readahead that reads it ends with lru_add_drain() on the same CPU
(swap_cluster_readahead / swap_vma_readahead, 5.10.198 and 6.18.2).

The extra reference matters where a rule reads the refcount: do_wp_page's reuse
rule from 5.9 (09854ba94c6a: page_count != 1 → copy, no drain in 5.10.198 or
5.15.135); 5.18's d4c470970d45 drains the *local* batch first when the page is
not on the LRU (wp_can_reuse_anon_folio in 6.x), which helps only when the
faulting CPU's batch holds it.  MADV_PAGEOUT skips a page that is not on the LRU
(madvise_cold_or_pageout_pte_range: ``!PageLRU``).  KSM's write_protect_page
and migration's refcount checks see no batch: ksmd drains every CPU at the start
of each scan (scan_get_next_rmap_item), move_pages too (migrate_prep before 5.14,
lru_cache_disable after).

The model does not know CPUs.  A page's batch is named by the task that added it
(``Page.lru_batch``), each task staying on its CPU, which other tasks may share
or not.  A task's lru_add_drain() surely empties its own batch; any batch may be
drained at any other moment, by other activity on its CPU filling it: the
explorer's drain moves (``cowdsl.explore.model``) and ``lru_drain_move`` here.
A decision that the batch's reference changes (``lru_sensitive``) says so in an
event of rule ``LRU_RULE`` and sets ``Machine.lru_decided``: a run whose
decisions never depended on it needs no drain moves.  The state the assertions
judge at the end has every batch drained (``lru_quiesce``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from attrs import evolve

from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.machine import Decision, Machine
from cowdsl.semantics.state import HUGETLB, State

if TYPE_CHECKING:
    from cowdsl.semantics.state import Vma

LRU_RULE = "lru_add_batch"  # the events where a batch's reference decided something
# 6.14 dropped the lru_add_drain() of exit_mmap, unmap_region/vms_clear_ptes, zap_page_range_single
# and free_pages_and_swap_cache (Rik van Riel, "mm: remove unnecessary calls to lru_add_drain": in
# 6.13.7, gone from 6.14.0 and 6.18.2, trees read; mainline id not confirmed)
UNMAP_DRAIN = "unmap_lru_drain"
UNMAP_DRAIN_GONE = "v6.14 mm/mmap.c exit_mmap"


def holder(cpu: str) -> str:
    """The batch a page waits in, in kernel words."""
    return f"the lru_add batch of {cpu}'s CPU"


def batched(state: State) -> list[str]:
    """The batches that hold some page, by the task whose CPU they belong to."""
    return sorted({p.lru_batch for p in state.pages if p.lru_batch is not None})


class LruBatches(KernelBase):
    # --- adding ------------------------------------------------------------------------------
    def lru_cache_add(self, m: Machine, pfn: int) -> None:
        """lru_cache_add_inactive_or_unevictable / folio_add_lru_vma: the page waits
        in the running task's CPU batch, with a reference; a large folio, a hugetlb
        page or a page of no task goes nowhere here."""
        page = m.page(pfn)
        cpu = m.task
        if cpu is None or page.compound or page.zero or not page.anon or page.freed:
            return
        m.update_page(pfn, refcount=page.refcount + 1, lru_batch=cpu)
        m.writes.update({("lru", cpu), ("lru",)})

    # --- draining ------------------------------------------------------------------------------
    def lru_add_drain_cpu(self, m: Machine, cpu: str, what: str) -> list[int]:
        """Move one CPU's batch onto the LRU: each page loses the batch's
        reference (release_pages: the last one frees it).  ``what`` says who
        drains it, in the trace.  Returns the pages."""
        m.reads.add(("lru", cpu))
        pages = [pfn for pfn, p in enumerate(m.pages) if p.lru_batch == cpu]
        if not pages:
            return []
        m.writes.update({("lru", cpu), ("lru",)})
        counts = []
        for pfn in pages:
            rc = m.page(pfn).refcount - 1
            m.update_page(pfn, lru_batch=None, refcount=rc, freed=rc <= 0)  # release_pages
            counts.append(f"#{pfn} (refcount {rc + 1} → {rc}{', freed' if rc <= 0 else ''})")
        m.say(f"{what}: {', '.join(counts)} onto the LRU")
        return pages

    def lru_add_drain(self, m: Machine, why: str) -> None:
        """lru_add_drain(): the running task's CPU only."""
        if m.task is not None:
            self.lru_add_drain_cpu(m, m.task, f"{why}: lru_add_drain() empties {holder(m.task)}")

    def lru_add_drain_all(self, m: Machine, why: str) -> None:
        """lru_add_drain_all(): every CPU's batch."""
        m.reads.add(("lru",))
        for cpu in sorted({p.lru_batch for p in m.pages if p.lru_batch is not None}):
            self.lru_add_drain_cpu(m, cpu, f"{why}: lru_add_drain_all() empties {holder(cpu)}")

    def lru_drain_move(self, m: Machine, cpu: str) -> None:
        """Other activity on ``cpu``'s CPU fills its batch (or that CPU drains it):
        the explorer's drain move, at any moment."""
        self.lru_add_drain_cpu(m, cpu, f"other activity fills {holder(cpu)}, which is drained")

    def unmap_lru_drain(self, m: Machine, where: str) -> None:
        """exit_mmap, unmap_region (munmap, mremap's shrink) and zap_page_range(_single)
        (MADV_DONTNEED) drain the local batch before zapping (5.10.198, 5.15.135,
        6.1.158, 6.13.7 read); from 6.14 they do not (option unmap_lru_drain=off)."""
        if self.options[UNMAP_DRAIN] == "on":
            self.lru_add_drain(m, where)

    def madvise_lru_drain(self, m: Machine, vma: Vma, advice: str) -> None:
        """The local drain madvise does before it walks the range: madvise_pageout
        (after can_madv_lru_vma refused hugetlb; every version read) and, until 6.14,
        MADV_DONTNEED's zap_page_range_single."""
        if advice == "pageout" and vma.kind != HUGETLB:
            self.lru_add_drain(m, "madvise_pageout")
        elif advice == "dontneed":
            self.unmap_lru_drain(m, "zap_page_range_single")

    # --- deciding ------------------------------------------------------------------------------
    def lru_sensitive(self, m: Machine, pfn: int, decide: Callable[[Machine], Decision], where: str) -> Decision:
        """``decide`` on the page as it is.  When a batch holds it and the decision
        would have come out otherwise with that batch drained, the batch decided:
        an event of rule LRU_RULE says so, in kernel words, and ``m.lru_decided``
        tells the runner that the drains' timing matters."""
        if m.page(pfn).lru_batch is None:
            return decide(m)
        drained = Machine(m.freeze(), quiet=True, task=m.task)
        drained.update_page(pfn, lru_batch=None)
        drained.put_page(pfn)
        other = decide(drained)
        d = decide(m)
        page = m.page(pfn)
        if page.lru_batch is not None and bool(d) != bool(other):
            m.lru_decided = True
            m.decided(LRU_RULE, Decision(True, f"{holder(page.lru_batch)} still holds #{pfn} "
                                               f"(refcount {page.refcount})"), where)
        return d

    def lru_not_isolated(self, m: Machine, pfn: int, who: str) -> bool:
        """Reclaim isolates pages from the LRU lists only: a page a batch still holds
        is skipped (madvise_cold_or_pageout_pte_range's ``!PageLRU``)."""
        cpu = m.page(pfn).lru_batch
        if cpu is None:
            return False
        m.lru_decided = True  # drained, it would have been reclaimed
        m.decided(LRU_RULE, Decision(True, f"{holder(cpu)} still holds #{pfn}: not on the LRU → skipped"), who)
        return True

    # --- the end ---------------------------------------------------------------------------------
    def lru_quiesce(self, state: State) -> State:
        """The state once every batch is drained: what the assertions judge at the end
        (the batches' references are transient; the kernel drains them sooner or later)."""
        if all(p.lru_batch is None for p in state.pages):
            return state
        pages = tuple(p if p.lru_batch is None else
                      evolve(p, lru_batch=None, refcount=p.refcount - 1, freed=p.refcount <= 1) for p in state.pages)
        return evolve(state, pages=pages)
