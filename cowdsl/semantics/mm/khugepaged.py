"""mm/khugepaged.c: MADV_COLLAPSE, the synchronous collapse of a PTE-mapped range into a
new PMD-mapped THP (madvise_collapse, hpage_collapse_scan_pmd, collapse_huge_page).

Read in 6.1.158 and 6.18.2.  Per PMD range of the advised pages, the scan (mmap_lock
for read, the PTL) checks every PTE: swap and none/zero entries are allowed in any
number (MADV_COLLAPSE ignores khugepaged's max_ptes_swap/none/shared), a page must be
anonymous and have no reference beyond its mappings and the swap cache
(is_refcount_suitable / folio_expected_ref_count: a pin, a GUP reference, a pipe buffer
make it SCAN_PAGE_COUNT), and before 6.18 one PTE at least must be writable
(SCAN_PAGE_RO).  collapse_huge_page (mmap_lock for write) swaps the missing pages in,
clears the PMD, checks the pages again (__collapse_huge_page_isolate), copies them into
a new THP, exclusive to this mm (folio_add_new_anon_rmap), mapped by a writable, dirty
PMD (maybe_pmd_mkwrite), and drops the old pages' mappings.  A range already mapped by a
PMD counts as collapsed (SCAN_PMD_MAPPED).  madvise_collapse_errno turns the last
failure into the errno.

A shmem mapping (shared anonymous memory, a tmpfs or memfd file, shared or private) goes
through hpage_collapse_scan_file instead, which reads the page cache only: a `thp` one
holds a PMD-order folio there already, so madvise_collapse calls collapse_pte_mapped_thp,
which maps it by a PMD (or finds it mapped), with no refcount check.  collapse_file, the
collapse of small shmem pages in the page cache, is not reached: a small-page mapping is
under 2 MiB, which hugepage_vma_check refuses first.

The model follows a THP through its head page: the head's entry stands for the
PMD range's 512 (a range is writable when the head's PTE is)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowdsl.ops.khugepaged import COLLAPSE_PROGRAM
from cowdsl.semantics.concepts import pmd_mapped_file_thp
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import Frame, Micro, micro_step
from cowdsl.semantics.state import HUGETLB, PTE_THP, SMALL, THP, Outcome, Pte, Vma, content

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine

# enum scan_result values the model reaches, and what madvise_collapse does with them.
SUCCEED, PMD_MAPPED = "SCAN_SUCCEED", "SCAN_PMD_MAPPED"
PMD_NONE, PAGE_RO, PAGE_COUNT = "SCAN_PMD_NONE", "SCAN_PAGE_RO", "SCAN_PAGE_COUNT"
PAGE_ANON, VMA_CHECK, PTE_NON_PRESENT = "SCAN_PAGE_ANON", "SCAN_VMA_CHECK", "SCAN_PTE_NON_PRESENT"
PTE_MAPPED_HUGEPAGE, FAIL = "SCAN_PTE_MAPPED_HUGEPAGE", "SCAN_FAIL"
# madvise_collapse's "whitelisted set of results where continuing OK" (the next PMD range
# is tried); any other failure ends the call
CONTINUE = frozenset({PAGE_RO, PAGE_COUNT, PTE_NON_PRESENT})

# The frame between micro-steps: the PMD ranges left (the current one first), how many the
# call covers, how many are PMD-mapped now, and the last failure.
CollapseFrame = tuple[tuple[int, ...], int, int, str]


class Khugepaged(KernelBase):
    # --- madvise_collapse ------------------------------------------------------------------------
    @micro_step(COLLAPSE_PROGRAM, "scan")
    def collapse__scan(self, m: Machine, step: Step, frame: Frame) -> Micro:
        if not frame:
            return self.madvise_collapse(m, step)
        todo, total, thps, last = frame
        return self.scan_next(m, step, (todo, total, thps, last))

    def madvise_collapse(self, m: Machine, step: Step) -> Micro:
        """madvise_collapse's checks of the VMA, then the PMD ranges the advised pages cover."""
        mm, vname = step.task, step.mapping
        assert mm is not None and vname is not None  # a process's op; its mapping parameter
        if not m.decided("has_madv_collapse", self.has_madv_collapse(), "madvise(MADV_COLLAPSE)"):
            return self.collapse_done(error="EINVAL")
        vma = m.vma(mm, vname)
        if vma is None:
            m.say(f"madvise: no mapping `{vname}` in {mm} → -ENOMEM")
            return self.collapse_done(error="ENOMEM")
        first, last = step.part if step.part is not None else (0, len(vma.ptes) - 1)
        pages = tuple(range(first, last + 1))
        if any(vma.at(i) is None for i in pages):
            m.say(f"madvise: part of `{vname}` is not mapped → -ENOMEM")
            return self.collapse_done(error="ENOMEM")
        if vma.kind == HUGETLB:
            m.say("MADV_COLLAPSE: a hugetlb VMA → -EINVAL (hugepage_vma_check: VM_HUGETLB)")
            return self.collapse_done(error="EINVAL")
        # a shmem VMA, shared or private, is eligible (hugepage_vma_check: shmem_file →
        # shmem_huge_enabled, forced for MADV_COLLAPSE; thp_vma_allowable_order in 6.18.2)
        shmem = self.collapse_shmem(m, vma)
        if not vma.anon and not shmem:
            m.say(f"MADV_COLLAPSE: `{vname}` maps a file on disk → -EINVAL (hugepage_vma_check: no THP for "
                  "it without CONFIG_READ_ONLY_THP_FOR_FS and an executable mapping)")
            return self.collapse_done(error="EINVAL")
        if vma.kind == SMALL:
            # a small-page mapping is at most max_pages (64) pages, less than 2 MiB: hugepage_vma_check's
            # transhuge_vma_suitable fails (6.1.158 mm/huge_memory.c; thp_vma_allowable_order in 6.18.2),
            # and no PMD range lies inside it; so for shmem too, whose collapse_file the model lacks
            m.say(f"MADV_COLLAPSE: `{vname}` is a small-page mapping of {len(vma.ptes)} page(s), less than a "
                  "PMD-aligned 2 MiB range → -EINVAL")
            return self.collapse_done(error="EINVAL")
        if "tail" in step.flags:
            # [head + 4 KiB, head + 2 MiB) rounds to an empty range: hend == hstart, thps == 0 == 0
            m.say("MADV_COLLAPSE: the tail pages hold no whole PMD-aligned range: nothing to do, 0")
            return self.collapse_done()
        self.lru_add_drain_all(m, "madvise_collapse")  # before the scans (6.1.158, 6.18.2)
        return self.scan_next(m, step, (pages, len(pages), 0, "SCAN_FAIL"))

    def scan_next(self, m: Machine, step: Step, frame: CollapseFrame) -> Micro:
        """hpage_collapse_scan_pmd of the next PMD range (mmap_lock for read, the PTL)."""
        mm, vname = step.task, step.mapping
        assert mm is not None and vname is not None
        todo, total, thps, last = frame
        idx = todo[0]
        vma = m.vma(mm, vname)
        if vma is not None and self.collapse_shmem(m, vma):
            if self.shmem_maybe_unfaulted(m, mm, vname, idx):
                return self.collapse_done(error="not modelled")
            # hpage_collapse_scan_file (no mmap_lock: the page cache only): the folio at the range's
            # start is PMD-order, "Maybe PMD-mapped" → SCAN_PTE_MAPPED_HUGEPAGE, and madvise_collapse
            # calls collapse_pte_mapped_thp(install_pmd=true) (6.1.158, 6.18.2 mm/khugepaged.c)
            m.say(f"hpage_collapse_scan_file {mm}.{vname}[{idx}]: the page cache holds a PMD-order folio → "
                  f"{PTE_MAPPED_HUGEPAGE}")
            return Micro("collapse", frame)
        result = self.collapse_check(m, mm, vname, idx, "hpage_collapse_scan_pmd")
        if result == SUCCEED:
            return Micro("collapse", frame)
        return self.collapse_next(m, (todo, total, thps + (result == PMD_MAPPED), last), result)

    def collapse_check(self, m: Machine, mm: str, vname: str, idx: int, where: str) -> str:
        """The checks hpage_collapse_scan_pmd makes and __collapse_huge_page_isolate makes
        again, on the head's entry (which stands for the PMD range's 512)."""
        pte = m.pte(mm, vname, idx)
        at = f"{where} {mm}.{vname}[{idx}]"
        if pte is None:
            m.say(f"{at}: the PMD is empty (find_pmd_or_thp_or_none) → {PMD_NONE}")
            return PMD_NONE
        page = m.page(pte.page) if pte.present else None
        if page is not None and page.kind == THP:
            zero = " (the huge zero page)" if page.zero else ""
            m.say(f"{at}: already PMD-mapped{zero} → {PMD_MAPPED}: counts as collapsed")
            return PMD_MAPPED
        writable = False
        if page is None:
            if pte.migration:
                m.say(f"{at}: a migration entry → {PTE_NON_PRESENT}")
                return PTE_NON_PRESENT
            m.say(f"{at}: a swap entry: swapped in by the collapse (no max_ptes_swap for MADV_COLLAPSE)")
        elif page.zero:
            m.say(f"{at}: the zero page: its part of the new THP is zero-filled (no max_ptes_none for MADV_COLLAPSE)")
        else:
            if not page.anon:
                m.say(f"{at}: #{pte.page} is not anonymous → {PAGE_ANON}")
                return PAGE_ANON
            expected = page.mapcount + page.siblings + (1 if page.swapcache >= 0 else 0)
            if page.refcount != expected:
                m.say(f"{at}: #{pte.page} refcount {page.refcount} != {expected} expected (mapcount"
                      f"{' + tail PTEs' if page.siblings else ''}{' + swap cache' if page.swapcache >= 0 else ''}): "
                      f"a pin or a GUP reference (is_refcount_suitable) → {PAGE_COUNT}")
                return PAGE_COUNT
            writable = pte.write
        if not writable and m.decided("collapse_needs_writable", self.collapse_needs_writable(), at):
            return PAGE_RO
        return SUCCEED

    @micro_step(COLLAPSE_PROGRAM, "collapse")
    def collapse__collapse(self, m: Machine, step: Step, frame: Frame) -> Micro:
        """collapse_huge_page: under mmap_lock for write, revalidate the VMA, swap in,
        pmdp_collapse_flush, isolate (the checks again), copy into the new THP, map it."""
        mm, vname = step.task, step.mapping
        assert mm is not None and vname is not None
        todo, total, thps, last = frame
        idx = todo[0]
        vma = m.vma_at(mm, vname, idx)
        if vma is not None and self.collapse_shmem(m, vma):
            result = self.collapse_pte_mapped_thp(m, mm, vname, idx)
            return self.collapse_next(m, (todo, total, thps + (result in (SUCCEED, PMD_MAPPED)), last), result)
        if vma is None or vma.kind not in (THP, PTE_THP) or not m.mapped_vma(mm, vname).anon_vma:
            m.say(f"collapse_huge_page: hugepage_vma_revalidate: `{vname}` changed meanwhile → {VMA_CHECK}")
            return self.collapse_next(m, frame, VMA_CHECK)
        pte = m.pte(mm, vname, idx)
        if pte is not None and not pte.present and not pte.migration:
            m.say(f"__collapse_huge_page_swapin: {mm}.{vname}[{idx}]")
            self.handle_mm_fault(m, mm, vname, idx, write=False)
        result = self.collapse_check(m, mm, vname, idx, "__collapse_huge_page_isolate")
        if result != SUCCEED:
            return self.collapse_next(m, (todo, total, thps + (result == PMD_MAPPED), last), result)
        pte = m.pte(mm, vname, idx)
        assert pte is not None and pte.present  # swapped in, and checked
        old = m.page(pte.page)
        data = {} if old.zero else content(old)  # __collapse_huge_page_copy: every word (the zero page's are 0)
        m.set_pte(mm, vname, idx, None)
        if not old.zero:
            m.page_remove_rmap(pte.page)  # __collapse_huge_page_copy: the old mapping and its reference go
            if m.page(pte.page).mapcount == 0:
                self.try_to_free_swap(m, pte.page)  # free_page_and_swap_cache
        new = m.alloc_page(**data, refcount=1, mapcount=1, anon_exclusive=self.TRACKS_ANON_EXCLUSIVE, kind=THP)
        m.set_pte(mm, vname, idx, Pte(page=new, write=vma.write, dirty=True))
        excl = ", exclusive" if self.TRACKS_ANON_EXCLUSIVE else ""
        m.say(f"collapse_huge_page: {mm}.{vname}[{idx}] copied into the new THP #{new}{excl}, mapped by a "
              f"{'writable' if vma.write else 'read-only'} PMD; #{pte.page}'s mapping dropped")
        return self.collapse_next(m, (todo, total, thps + 1, last), SUCCEED)

    @staticmethod
    def collapse_shmem(m: Machine, vma: Vma) -> bool:
        """A shmem VMA: shared anonymous memory, or a mapping (shared or private) of a tmpfs or memfd file."""
        return vma.shmem or (vma.file is not None and m.state.file_kind(vma.file) in ("shmem", "memfd"))

    @staticmethod
    def shmem_maybe_unfaulted(m: Machine, mm: str, vname: str, idx: int) -> bool:
        """Whether the page cache may still have no folio there: shared anonymous memory gets its
        folio at the first fault (shmem_fault → shmem_get_folio), the model at mmap.  Where no one
        maps it, the model cannot tell a folio a fault left behind (MADV_DONTNEED keeps it) from
        none, where collapse_file finds the range empty (SCAN_TRUNCATED → -EINVAL: 6.1.158 and
        6.18.2 mm/khugepaged.c, and so in the 6.1.176 and 6.12.117 guests).  A tmpfs or memfd
        file's pages are in its page cache from the start."""
        vma = m.vma_at(mm, vname, idx)
        if vma is None or vma.file is None or m.state.file_kind(vma.file) in ("shmem", "memfd"):
            return False
        if m.pte(mm, vname, idx) is not None or m.page(m.file_page(vma.file, vma.pgoff + idx)).mapcount:
            return False
        m.say(f"MADV_COLLAPSE: {mm}.{vname}[{idx}]: no one maps the shmem folio; whether the page cache holds "
              "it (only once a fault made it) is not modelled")
        return True

    def collapse_pte_mapped_thp(self, m: Machine, mm: str, vname: str, idx: int) -> str:
        """collapse_pte_mapped_thp(install_pmd=true) of a page-cache THP (6.1.158, 6.18.2): a PMD
        mapping it already is SCAN_PMD_MAPPED; an empty PMD gets one (set_huge_pmd → do_set_pmd, not a
        write fault: writable as vm_page_prot is, in a shared mapping); a PTE table must map only the
        folio's own subpages, so a private mapping's anonymous copy aborts it (SCAN_FAIL).  No refcount
        check: the folio is huge already, a pin does not stop it.  The model takes mmap_lock for write
        as 6.1 does; 6.18.2 takes it for read."""
        vma = m.vma_at(mm, vname, idx)
        pte = m.pte(mm, vname, idx)
        at = f"collapse_pte_mapped_thp {mm}.{vname}[{idx}]"
        if vma is None or vma.kind != THP or vma.file is None:
            m.say(f"{at}: the VMA changed meanwhile (vma_lookup, range_in_vma) → {VMA_CHECK}")
            return VMA_CHECK
        if pte is not None and pte.present and pmd_mapped_file_thp(vma, m.page(pte.page)):
            m.say(f"{at}: already PMD-mapped → {PMD_MAPPED}: counts as collapsed")
            return PMD_MAPPED
        if pte is None:
            folio = m.file_page(vma.file, vma.pgoff + idx)
            m.page_add_rmap(folio)
            write = vma.shared and vma.write
            m.set_pte(mm, vname, idx, Pte(page=folio, write=write))
            m.say(f"{at}: the PMD is empty (SCAN_PMD_NONE) → set_huge_pmd maps THP #{folio} by a "
                  f"{'writable' if write else 'read-only'} PMD")
            return SUCCEED
        if not pte.present:
            m.say(f"{at}: a non-present PTE → {PTE_NON_PRESENT}")
            return PTE_NON_PRESENT
        m.say(f"{at}: the PTE maps #{pte.page}, not the folio's subpage (an anonymous copy) → {FAIL}")
        return FAIL

    def collapse_next(self, m: Machine, frame: CollapseFrame, result: str) -> Micro:
        """madvise_collapse's loop: the next PMD range, or the answer (0 when every range
        is PMD-mapped now, else madvise_collapse_errno of the last failure)."""
        todo, total, thps, last = frame
        if result not in (SUCCEED, PMD_MAPPED):
            last = result
            if result not in CONTINUE:
                return self.collapse_done(error=self.collapse_errno(m, result))
        if todo[1:]:
            return Micro("scan", (todo[1:], total, thps, last))
        if thps == total:
            return self.collapse_done()
        return self.collapse_done(error=self.collapse_errno(m, last))

    def collapse_errno(self, m: Machine, result: str) -> str:
        """madvise_collapse_errno."""
        if result == PAGE_COUNT and m.decided("collapse_count_eagain", self.collapse_count_eagain(),
                                              "madvise_collapse_errno"):
            errno = "EAGAIN"
        else:
            errno = "EINVAL"
        m.say(f"MADV_COLLAPSE: {result} → -{errno}")
        return errno

    @staticmethod
    def collapse_done(error: str | None = None) -> Micro:
        return Micro(None, (), Outcome(error is None, error=error))
