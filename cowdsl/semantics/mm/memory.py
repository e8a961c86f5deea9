"""mm/memory.c: page faults, and the CPU loads and stores that take them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import evolve

from cowdsl.ops.memory import READ, WRITE
from cowdsl.semantics.concepts import vma_is_accessible
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import whole_op
from cowdsl.semantics.mm import addr_of, value_of
from cowdsl.semantics.state import (
    HUGETLB,
    PTE_THP,
    SMALL,
    THP,
    THP_SIBLINGS,
    ZERO_PFN,
    Outcome,
    Pte,
    Vma,
    at,
    content,
)

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine

FAULT_AROUND_PAGES = 16  # fault_around_bytes = 64 KiB


class Memory(KernelBase):
    # --- the fault handler -----------------------------------------------------------
    def handle_mm_fault(self, m: Machine, mm: str, vname: str, idx: int, *, write: bool = False,
                        unshare: bool = False) -> bool:
        """Returns False on VM_FAULT_SIGSEGV/OOM-like failure, True otherwise."""
        vma = self.vma_at(m, mm, vname, idx)
        pte = vma.ptes[idx]
        if pte is None:
            if vma.anon:
                return self.do_anonymous_page(m, mm, vname, idx, write)
            return self.do_fault(m, mm, vname, idx, write)
        if pte.devexcl:
            self.remove_device_exclusive_entry(m, mm, vname, idx)
            pte = m.pte(mm, vname, idx)
            assert pte is not None  # restore_exclusive_pte maps the page again
        if pte.devpriv:  # do_swap_page: is_device_private_entry → pgmap->ops->migrate_to_ram
            self.device_private_fault(m, mm, vname, idx)
            pte = m.pte(mm, vname, idx)
            assert pte is not None  # migrate_to_ram maps a system page
        if not pte.present:
            self.do_swap_page(m, mm, vname, idx, write)
            pte = m.pte(mm, vname, idx)
            assert pte is not None  # do_swap_page maps the page
            if write and not pte.write:
                return self.do_wp_page(m, mm, vname, idx, unshare=False)
            return True
        if write and not pte.write:
            return self.do_wp_page(m, mm, vname, idx, unshare=False)
        if unshare and not pte.write:
            return self.do_wp_page(m, mm, vname, idx, unshare=True)
        return True

    def do_anonymous_page(self, m: Machine, mm: str, vname: str, idx: int, write: bool) -> bool:
        vma = self.vma_at(m, mm, vname, idx)
        if vma.kind != SMALL:
            return self.do_huge_anonymous_page(m, mm, vname, idx, write)
        if not write:
            m.set_pte(mm, vname, idx, Pte(page=ZERO_PFN))
            m.say(f"do_anonymous_page: read fault maps the shared zero page at {vname}[{idx}]")
            return True
        pfn = m.alloc_page(refcount=1, mapcount=1, anon_exclusive=self.TRACKS_ANON_EXCLUSIVE)
        self.anon_vma_prepare(m, mm, vname)
        self.lru_cache_add(m, pfn)  # lru_cache_add_inactive_or_unevictable / folio_add_lru_vma
        m.set_pte(mm, vname, idx, Pte(page=pfn, write=vma.write, dirty=True))
        m.say(f"do_anonymous_page: new page #{pfn}{self._excl(m, pfn)} at {mm}.{vname}[{idx}]")
        return True

    def do_huge_anonymous_page(self, m: Machine, mm: str, vname: str, idx: int, write: bool) -> bool:
        """THP (do_huge_pmd_anonymous_page) and hugetlb (hugetlb_no_page): the
        first touch allocates the huge page.  A read fault on a `thp` mapping maps
        the huge zero page instead (do_huge_pmd_anonymous_page, when
        transparent_hugepage_use_zero_page(), the default; read in 5.10.198 and
        6.18.2); its first write is a COW of the zero page (do_huge_pmd_wp_page
        splits the huge zero PMD from 5.8, 3917c80280c9, and copies one small
        page; before, it allocated a THP: thp_wp_copies_whole).  A hugetlb read
        fault allocates the page (no zero page for hugetlb)."""
        vma = self.vma_at(m, mm, vname, idx)
        if not write and vma.kind == THP:
            pfn = m.huge_zero_page()
            m.set_pte(mm, vname, idx, Pte(page=pfn))
            m.say(f"do_huge_pmd_anonymous_page: read fault maps the huge zero page #{pfn} at {mm}.{vname}[{idx}]")
            return True
        extra = THP_SIBLINGS if vma.kind == PTE_THP else 0
        pfn = m.alloc_page(refcount=1 + extra, mapcount=1, anon_exclusive=self.TRACKS_ANON_EXCLUSIVE, kind=vma.kind,
                           siblings=extra)
        self.anon_vma_prepare(m, mm, vname)
        m.set_pte(mm, vname, idx, Pte(page=pfn, write=write and vma.write, dirty=write))
        m.say(f"huge page fault: new {vma.kind} page #{pfn}{self._excl(m, pfn)} at {mm}.{vname}[{idx}]")
        return True

    def do_fault(self, m: Machine, mm: str, vname: str, idx: int, write: bool) -> bool:
        vma = self.vma_at(m, mm, vname, idx)
        assert vma.file is not None  # not anonymous: handle_mm_fault calls do_fault on file mappings
        cache = m.file_page(vma.file, vma.pgoff + idx)
        if write and not vma.shared:
            # do_cow_fault: the private copy of a page-cache page, an order-0 page even of a
            # shmem THP (alloc_page_vma in 5.10.198, folio_prealloc(..., false) in 6.18.2);
            # hugetlb_no_page copies a hugetlbfs page whole into a new anonymous huge page
            kind = HUGETLB if m.page(cache).kind == HUGETLB else SMALL
            pfn = m.alloc_page(**content(m.page(cache)), refcount=1, mapcount=1,
                               anon_exclusive=self.TRACKS_ANON_EXCLUSIVE, kind=kind)
            self.anon_vma_prepare(m, mm, vname)
            self.lru_cache_add(m, pfn)  # alloc_set_pte (5.10) / set_pte_range (6.x) of a private copy
            m.set_pte(mm, vname, idx, Pte(page=pfn, write=vma.write, dirty=True))
            m.count(mm, "cow_copies")
            m.say(f"do_cow_fault: private copy #{pfn} of {vma.file}[{idx}] (page #{cache})")
            return True
        m.page_add_rmap(cache)
        m.set_pte(mm, vname, idx, Pte(page=cache, write=write and vma.write, dirty=write))
        kind = "do_shared_fault" if write else "do_read_fault"
        # a shmem THP in a `thp` mapping: finish_fault (alloc_set_pte in 5.10) maps the folio by a
        # PMD (do_set_pmd: the page cache holds a PMD-order folio and the VMA covers the aligned 2 MiB)
        how = ", by a PMD (do_set_pmd)" if vma.kind == THP else ""
        m.say(f"{kind}: maps page-cache page #{cache} ({vma.file}[{idx}]){' writable' if write else ' read-only'}{how}")
        if not write and vma.kind == SMALL:  # hugetlb_fault maps one huge page, a PMD one THP: no fault-around
            self.do_fault_around(m, mm, vname, idx)
        return True

    def do_fault_around(self, m: Machine, mm: str, vname: str, idx: int) -> None:
        """A read fault on a file also maps the neighbours already in the page cache
        (fault_around_bytes, 64 KiB: the 16-page block around the address)."""
        vma = m.mapped_vma(mm, vname)
        assert vma.file is not None  # do_fault's file mapping
        first = idx - idx % FAULT_AROUND_PAGES
        mapped = []
        for i in range(first, min(first + FAULT_AROUND_PAGES, len(vma.ptes))):
            # only inside the faulting VMA: not across a hole or a split with other flags
            if i != idx and m.pte(mm, vname, i) is None and vma.part(i) == vma.part(idx):
                cache = m.file_page(vma.file, vma.pgoff + i)
                m.page_add_rmap(cache)
                m.set_pte(mm, vname, i, Pte(page=cache))
                mapped.append(i)
        if mapped:
            m.say(f"do_fault_around: also maps {vname}{mapped} read-only")

    @staticmethod
    def vma_at(m: Machine, mm: str, vname: str, idx: int) -> Vma:
        """The VMA covering the faulting page (its flags, where a partial op split the mapping)."""
        vma = m.vma_at(mm, vname, idx)
        assert vma is not None, f"a fault at {mm}.{vname}[{idx}], which is mapped"  # user_fault/GUP checked
        return vma

    def anon_vma_prepare(self, m: Machine, mm: str, vname: str) -> None:
        """The VMA gets an anon_vma with its first anonymous page; fork copies
        page tables only of VMAs that have one (vma_needs_copy)."""
        vma = m.mapped_vma(mm, vname)  # the stored VMA, never an at() view: set_vma keeps its parts
        if not vma.anon_vma:
            m.set_vma(mm, evolve(vma, anon_vma=True))

    # --- write-protect faults: do_wp_page ---------------------------------------------
    def do_wp_page(self, m: Machine, mm: str, vname: str, idx: int, *, unshare: bool) -> bool:
        vma = self.vma_at(m, mm, vname, idx)
        pte = vma.ptes[idx]
        assert pte is not None  # a write or unshare fault on a present PTE
        pfn = pte.page
        page = m.page(pfn)
        if vma.shared:
            if not unshare:
                # a PMD-mapped shmem THP: wp_huge_pmd zaps the PMD (no ->huge_fault for shmem) and
                # do_shared_fault maps it again, writable, by a PMD (do_set_pmd): the same end
                m.set_pte(mm, vname, idx, Pte(page=pfn, write=vma.write, dirty=True))
                m.say(f"wp_page_shared: shared mapping, page #{pfn} made writable")
            return True
        if page.zero:
            return self.wp_page_copy(m, mm, vname, idx, unshare)
        if page.anon:
            if page.kind == THP:
                d = m.decided("thp_wp_can_reuse", self.thp_wp_can_reuse(m, pfn), f"do_huge_pmd_wp_page on #{pfn}")
            elif page.kind == HUGETLB:
                d = m.decided("hugetlb_wp_can_reuse", self.hugetlb_wp_can_reuse(m, pfn), f"hugetlb_wp on #{pfn}")
            else:
                d = m.decided("wp_can_reuse", self.lru_sensitive(m, pfn, lambda mm_: self.wp_can_reuse(mm_, pfn),
                                                                 f"do_wp_page on #{pfn}"), f"do_wp_page on #{pfn}")
            if d:
                return self.wp_page_reuse(m, mm, vname, idx, unshare)
        return self.wp_page_copy(m, mm, vname, idx, unshare)

    def wp_page_reuse(self, m: Machine, mm: str, vname: str, idx: int, unshare: bool) -> bool:
        vma = self.vma_at(m, mm, vname, idx)
        pte = vma.ptes[idx]
        assert pte is not None  # do_wp_page's present PTE
        if self.TRACKS_ANON_EXCLUSIVE:
            m.update_page(pte.page, anon_exclusive=True)  # page_move_anon_rmap
        if unshare:
            m.say(f"do_wp_page: unshare of #{pte.page}: already exclusive, PTE stays read-only")
            return True
        m.set_pte(mm, vname, idx, Pte(page=pte.page, write=vma.write, dirty=True))
        m.say(f"wp_page_reuse: #{pte.page} reused{', writable' if vma.write else ' (VM_WRITE clear: stays read-only)'}")
        return True

    def wp_page_copy(self, m: Machine, mm: str, vname: str, idx: int, unshare: bool) -> bool:
        vma = self.vma_at(m, mm, vname, idx)
        pte = vma.ptes[idx]
        assert pte is not None  # do_wp_page's present PTE
        old = pte.page
        src = m.page(old)
        # A THP is split and one subpage copied (from 5.8; before, the whole THP);
        # a hugetlb page is copied whole.  A page-cache THP in a private mapping is never
        # copied whole: wp_huge_pmd zaps its PMD (__split_huge_pmd of a file VMA) and
        # do_cow_fault copies one subpage (5.10.198, 6.1.158, 6.18.2 mm/memory.c).
        kind = HUGETLB if src.kind == HUGETLB else SMALL
        if src.kind == THP and (src.anon or src.zero) and m.decided("thp_wp_copies_whole", self.thp_wp_copies_whole(),
                                                                    "do_huge_pmd_wp_page"):
            kind = THP
        new = m.alloc_page(**content(src), refcount=1, mapcount=1, anon_exclusive=self.TRACKS_ANON_EXCLUSIVE, kind=kind)
        self.anon_vma_prepare(m, mm, vname)
        self.lru_cache_add(m, new)  # lru_cache_add_inactive_or_unevictable / folio_add_lru_vma
        writable = vma.write and not unshare
        m.set_pte(mm, vname, idx, Pte(page=new, write=writable, dirty=True))
        what = "unshare" if unshare else "COW"
        if src.zero:
            m.say(f"wp_page_copy: {what} of the zero page → new page #{new}")
        else:
            m.page_remove_rmap(old)
            m.count(mm, "cow_copies")
            m.say(f"wp_page_copy: {what} copies #{old} → #{new}{' (mapped read-only)' if not writable else ''}")
        return True

    # --- swap-in: do_swap_page ------------------------------------------------------------
    def do_swap_page(self, m: Machine, mm: str, vname: str, idx: int, write: bool) -> None:
        vma = self.vma_at(m, mm, vname, idx)
        pte = vma.ptes[idx]
        assert pte is not None  # handle_mm_fault's swap entry
        slot = pte.slot
        pfn = m.swapcache_page(slot)
        if pfn is None:
            pfn = m.alloc_page(**content(m.slot(slot)), refcount=1, swapcache=slot)
            m.say(f"do_swap_page: slot {slot} read into the swap cache as page #{pfn}")
            # the readahead ends with lru_add_drain(): the new page is on the LRU, and so is
            # whatever else this CPU's batch held (swap_cluster_readahead, swap_vma_readahead)
            self.lru_add_drain(m, "swapin_readahead")
        else:
            m.say(f"do_swap_page: slot {slot} found in the swap cache as page #{pfn}")
        m.get_page(pfn)  # the fault's reference; the new mapping keeps it
        m.update_slot(slot, count=m.slot(slot).count - 1)  # swap_free
        if m.decided("swapin_free_swapcache", self.swapin_free_swapcache(m, pfn, write), "do_swap_page"):
            self.try_to_free_swap(m, pfn)
        d = m.decided("swapin_exclusive", self.swapin_exclusive(m, pte, pfn, write), f"do_swap_page maps #{pfn}")
        m.page_add_rmap(pfn, take_ref=False)
        if self.TRACKS_ANON_EXCLUSIVE:
            m.update_page(pfn, anon_exclusive=bool(d))
        writable = bool(d) and vma.write and (write or bool(m.decided(
            "swapin_read_writable", self.swapin_read_writable(m, vma), f"do_swap_page maps #{pfn}",
            minor=not d)))
        m.set_pte(mm, vname, idx, Pte(page=pfn, write=writable, dirty=writable and write))
        m.maybe_free_slot(slot)

    def try_to_free_swap(self, m: Machine, pfn: int) -> bool:
        """Drop the swap cache if no swap entry still refers to the slot."""
        slot = m.page(pfn).swapcache
        if slot < 0 or m.slot(slot).count > 0:
            return False
        m.delete_from_swap_cache(pfn)
        m.say(f"try_to_free_swap: #{pfn} leaves the swap cache")
        return True

    # --- mm/huge_memory.c: a PMD split into PTEs ---------------------------------------------
    def split_huge_pmd(self, m: Machine, mm: str, vname: str, idx: int) -> str | None:
        """__split_huge_pmd: the PMD that maps a THP becomes 512 PTEs, one per subpage; the
        folio stays one THP, now PTE-mapped.  __split_huge_pmd_locked adds HPAGE_PMD_NR - 1
        references (page_ref_add: one per tail PTE) and each subpage keeps PG_anon_exclusive.
        Returns why the model cannot split it, or None."""
        pte = m.pte(mm, vname, idx)
        if pte is None or not pte.present:
            return None if pte is None else "a swapped-out THP: split_huge_pmd of a swap PMD is not modelled"
        page = m.page(pte.page)
        if page.zero:
            # __split_huge_zero_page_pmd: the PTEs map the small zero page
            m.set_pte(mm, vname, idx, Pte(page=ZERO_PFN))
            m.say(f"__split_huge_pmd: {mm}.{vname}[{idx}]: the huge zero PMD becomes PTEs of the zero page")
            return None
        if page.kind == PTE_THP:
            return None  # PTE-mapped already
        if page.kind != THP:
            return f"#{pte.page} is not a THP"
        if not page.anon:
            # __split_huge_pmd_locked, !vma_is_anonymous: a file PMD is zapped, not remapped by PTEs
            # (a fault fills it in again); only this mm's mapping goes (5.10.198, 6.1.158, 6.18.2)
            m.set_pte(mm, vname, idx, None)
            m.page_remove_rmap(pte.page)
            m.say(f"__split_huge_pmd: {mm}.{vname}[{idx}]: the PMD of page-cache THP #{pte.page} is zapped")
            return None
        if page.mapcount > 1:
            # the kernel splits only this mm's PMD; the model has one mapping kind per folio
            return f"#{pte.page} is PMD-mapped by other processes too: a split of one of them is not modelled"
        m.update_page(pte.page, kind=PTE_THP, siblings=THP_SIBLINGS, refcount=page.refcount + THP_SIBLINGS)
        m.say(f"__split_huge_pmd: {mm}.{vname}[{idx}]: the PMD of THP #{pte.page} becomes 512 PTEs "
              f"(+{THP_SIBLINGS} references, one per tail PTE)")
        return None

    def zap_tail_ptes(self, m: Machine, mm: str, vname: str, idx: int) -> None:
        """zap_pte_range over the tail pages of a PTE-mapped THP: their references go."""
        pte = m.pte(mm, vname, idx)
        if pte is None or not pte.present:
            return
        page = m.page(pte.page)
        if page.kind == PTE_THP and page.siblings:
            m.update_page(pte.page, siblings=0)
            m.put_page(pte.page, page.siblings)
            m.say(f"zap_pte_range: the {page.siblings} tail PTEs of #{pte.page} zapped; the head stays mapped")

    # --- zapping ------------------------------------------------------------------------
    def zap_pte(self, m: Machine, mm: str, vname: str, idx: int) -> None:
        pte = m.pte(mm, vname, idx)
        if pte is None:
            return
        m.set_pte(mm, vname, idx, None)
        if pte.present:
            m.page_remove_rmap(pte.page)
            return
        if pte.devexcl:
            self.zap_device_exclusive(m, pte)
            return
        if pte.devpriv:
            self.zap_device_private(m, pte)
            return
        if pte.migration:
            # zap_pte_range (5.10.198) / zap_nonpresent_ptes (6.18.2): a migration entry is
            # cleared and only the RSS counted down; it held no mapping of the page
            # (try_to_migrate_one dropped it) and names no swap slot (free_swap_and_cache of a
            # non-swap entry returns at once): remove_migration_ptes finds it gone
            m.say(f"zap_pte_range: {mm}.{vname}[{idx}]: migration entry of #{pte.page} cleared")
            return
        # free_swap_and_cache
        m.update_slot(pte.slot, count=m.slot(pte.slot).count - 1)
        cached = m.swapcache_page(pte.slot)
        if cached is not None and m.slot(pte.slot).count == 0 and m.page(cached).refcount == 1:
            m.delete_from_swap_cache(cached)
        m.maybe_free_slot(pte.slot)

    def zap_vma(self, m: Machine, mm: str, vname: str) -> None:
        for i in range(len(m.mapped_vma(mm, vname).ptes)):
            self.zap_pte(m, mm, vname, i)

    # --- CPU access -----------------------------------------------------------------------
    def user_fault(self, m: Machine, mm: str, vname: str, idx: int, write: bool) -> bool:
        """A CPU access that faults: access check, then handle_mm_fault."""
        vma = m.vma_at(mm, vname, idx)
        if vma is None:
            return self.force_sigsegv(m, mm, f"no mapping at `{vname}[{idx}]` in {mm}")
        if not vma.read:  # access_error: a PROT_NONE VMA allows neither loads nor stores
            return self.force_sigsegv(m, mm, f"{'write to' if write else 'read from'} PROT_NONE mapping `{vname}`")
        if write and not vma.write:
            return self.force_sigsegv(m, mm, f"write to read-only mapping `{vname}`")
        m.count(mm, "faults")
        return self.handle_mm_fault(m, mm, vname, idx, write=write)

    def force_sigsegv(self, m: Machine, mm: str, why: str) -> bool:
        m.say(f"SIGSEGV: {why}; {mm} is killed")
        self.exit_mmap(m, mm)
        self.exit_files(m, mm)
        m.update_mm(mm, alive=False, segv=True)
        return False

    @whole_op(WRITE)
    def op_write(self, m: Machine, step: Step) -> Outcome:
        a = addr_of(step)
        vma = m.vma(a.proc, a.mapping)
        pte = m.pte_at(a.proc, a.mapping, a.index)
        if not (pte is not None and pte.present and pte.write and vma_is_accessible(vma, a.index)):
            if not self.user_fault(m, a.proc, a.mapping, a.index, write=True):
                return Outcome(False, error="SIGSEGV")
            pte = m.pte(a.proc, a.mapping, a.index)
            assert pte is not None  # the fault mapped the page
        m.store(pte.page, a.offset, value_of(step))
        m.say(f"store {step.value} to page #{pte.page}{at(a.offset)}")
        return Outcome(True)

    @whole_op(READ)
    def op_read(self, m: Machine, step: Step) -> Outcome:
        a = addr_of(step)
        vma = m.vma(a.proc, a.mapping)
        pte = m.pte_at(a.proc, a.mapping, a.index)
        if not (pte is not None and pte.present and vma_is_accessible(vma, a.index)):
            if not self.user_fault(m, a.proc, a.mapping, a.index, write=False):
                return Outcome(False, error="SIGSEGV")
            pte = m.pte(a.proc, a.mapping, a.index)
            assert pte is not None  # the fault mapped the page
        value = m.load(pte.page, a.offset)
        m.say(f"load from page #{pte.page}{at(a.offset)}: {value}")
        return Outcome(True, value)

    @staticmethod
    def _excl(m: Machine, pfn: int) -> str:
        return " (exclusive)" if m.page(pfn).anon_exclusive else ""
