"""mm/khugepaged.c: MADV_COLLAPSE (7d8faaf15545, 6.1), the synchronous collapse of a
PTE-mapped range into a PMD-mapped THP (madvise_collapse -> hpage_collapse_scan_pmd
-> collapse_huge_page).

MADV_COLLAPSE is the madvise op with the advice ``collapse`` (``cowdsl.ops.mmap``);
it runs this program.  Its mechanism: ``cowdsl.semantics.mm.khugepaged``."""

from __future__ import annotations

from cowdsl.ops.spec import Lock, MicroStep, Program

COLLAPSE_ADVICE = ("collapse",)

# madvise_collapse holds mmap_lock for read while hpage_collapse_scan_pmd checks each
# PTE of a PMD range under the PTL; collapse_huge_page then drops it to allocate the
# huge page (no lock: anything may run), and takes mmap_lock for write to swap in,
# clear the PMD (pmdp_collapse_flush: GUP-fast finds nothing from here), check the
# pages again (__collapse_huge_page_isolate), copy and map the new THP.  The swap-in
# runs under mmap_lock for read in the kernel, between the two; the model folds it
# into `collapse`, whose re-check sees whatever happened meanwhile.  One PMD range
# after another: `collapse` goes back to `scan` for the next huge page of the range.
COLLAPSE_PROGRAM = Program("collapse", (
    MicroStep("scan", Lock.MMAP_READ, "hpage_collapse_scan_pmd: every PTE of the PMD range, under the PTL"),
    MicroStep("collapse", Lock.MMAP_WRITE, "collapse_huge_page: mmap_write_lock, swap in, pmdp_collapse_flush, "
              "__collapse_huge_page_isolate, copy, set_pmd_at"),
))
