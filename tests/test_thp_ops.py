"""Partial ops on a THP (the `tail` flag), THP swap-out, and MADV_PAGEOUT on huge pages.

A THP is followed through its head page.  `tail` names the other 511 subpages:
an op on them splits the PMD first (__split_huge_pmd, mm/huge_memory.c:
page_ref_add(HPAGE_PMD_NR - 1), one reference per tail PTE).  Reclaim swaps a
THP whole (add_to_swap, then try_to_unmap(TTU_SPLIT_HUGE_PMD)); it comes back
as small pages.  MADV_PAGEOUT is -EINVAL on hugetlb (can_madv_lru_vma).
"""

from __future__ import annotations

import pytest
from helpers_semantics import assert_checks_hold, outcome, page, pte, run_src, state_after

from cowdsl.semantics.state import PTE_THP, SMALL, THP, THP_SIBLINGS

THP_MAP = """
process A
A: mmap(buf, anon, private, rw, thp)
A: write(buf, 1)
"""


def test_mprotect_of_the_tail_splits_the_pmd():
    st = state_after(THP_MAP + "A: mprotect(buf, ro, tail)\n", "A: mprotect(buf, ro, tail)")
    p = page(st, "A", "buf")
    assert p.kind == PTE_THP and p.siblings == THP_SIBLINGS
    assert p.refcount == 1 + THP_SIBLINGS and p.mapcount == 1
    assert pte(st, "A", "buf").write  # the head keeps its PTE and its VMA's protection


def test_mprotect_tail_then_back_leaves_a_pte_mapped_thp_that_stays_writable():
    r = run_src(THP_MAP + "A: mprotect(buf, ro, tail)\nA: mprotect(buf, rw, tail)\nA: write(buf, 2)\n"
                "assert A.buf == 2\nassert cow_copies == 0\n")
    assert_checks_hold(r)


def test_dontneed_of_the_tail_leaves_a_single_pte_mapped_subpage():
    st = state_after(THP_MAP + "A: madvise(buf, dontneed, tail)\n", "A: madvise(buf, dontneed, tail)")
    p = page(st, "A", "buf")
    assert p.kind == PTE_THP and p.siblings == 0 and p.refcount == 1
    assert pte(st, "A", "buf").present


def test_tail_on_a_small_page_mapping_fails():
    r = run_src("process A\nA: mmap(buf, anon, private, rw)\nA: write(buf, 1)\nA: madvise(buf, dontneed, tail) as t\n")
    assert outcome(r, "A: madvise(buf, dontneed, tail) as t").error == "not a THP mapping"


def test_tail_of_a_hugetlb_page_is_einval():
    r = run_src("process A\nA: mmap(buf, anon, private, rw, hugetlb)\nA: write(buf, 1)\nA: mprotect(buf, ro, tail) as t\n")
    assert outcome(r, "A: mprotect(buf, ro, tail) as t").error == "EINVAL"


@pytest.mark.parametrize("kind", ["thp", "pte_thp"])
def test_reclaim_swaps_a_thp_whole_and_it_comes_back_small(kind):
    src = f"""
process A
A: mmap(buf, anon, private, rw, {kind})
A: write(buf, 7)
reclaim: swapout(A.buf) as s
"""
    st = state_after(src, "reclaim: swapout(A.buf) as s")
    assert pte(st, "A", "buf").swap
    r = run_src(src + "A: read(buf) as v\nassert v == 7\nassert not swapped(A.buf)\n")
    assert outcome(r, "reclaim: swapout(A.buf) as s").ok
    assert_checks_hold(r)
    st = state_after(src + "A: read(buf) as v\n", "A: read(buf) as v")
    assert page(st, "A", "buf").kind == SMALL  # do_swap_page maps order-0 pages


def test_a_thp_with_an_extra_reference_is_not_reclaimed():
    src = THP_MAP + "A: gup(buf, read) as r\nreclaim: swapout(A.buf) as s\n"
    r = run_src(src)
    assert outcome(r, "reclaim: swapout(A.buf) as s").error == "cannot split"
    st = state_after(src, "reclaim: swapout(A.buf) as s")
    assert pte(st, "A", "buf").present and page(st, "A", "buf").kind == THP
    assert page(st, "A", "buf").swapcache < 0  # activate_locked before add_to_swap


def test_madvise_pageout_swaps_a_thp_mapped_once():
    r = run_src(THP_MAP + "A: madvise(buf, pageout)\nassert swapped(A.buf)\nassert A.buf == 1\n")
    assert_checks_hold(r)


def test_madvise_pageout_of_a_thp_mapped_twice_is_skipped():
    r = run_src(THP_MAP + "A: fork() as B\nA: madvise(buf, pageout)\nassert present(A.buf)\n")
    assert_checks_hold(r)


def test_madvise_pageout_on_hugetlb_is_einval():
    r = run_src("process A\nA: mmap(buf, anon, private, rw, hugetlb)\nA: write(buf, 1)\nA: madvise(buf, pageout) as p\n"
                "assert failed(p)\nassert present(A.buf)\n")
    assert outcome(r, "A: madvise(buf, pageout) as p").error == "EINVAL"
    assert_checks_hold(r)


def test_reclaim_never_swaps_hugetlb():
    r = run_src("process A\nA: mmap(buf, anon, private, rw, hugetlb)\nA: write(buf, 1)\nreclaim: swapout(A.buf) as s\n")
    assert outcome(r, "reclaim: swapout(A.buf) as s").error == "hugetlb"


def test_pageout_of_the_tail_splits_the_folio_and_keeps_the_head():
    st = state_after(THP_MAP + "A: madvise(buf, pageout, tail)\n", "A: madvise(buf, pageout, tail)")
    p = page(st, "A", "buf")
    assert p.kind == SMALL and p.refcount == 1 and pte(st, "A", "buf").present


def test_dontfork_of_the_tail_then_fork_shares_the_head():
    r = run_src(THP_MAP + "A: madvise(buf, dontfork, tail)\nA: fork() as B\nB: write(buf, 3)\n"
                "assert A.buf == 1\nassert B.buf == 3\nassert cow_copies == 1\n")
    assert_checks_hold(r)
