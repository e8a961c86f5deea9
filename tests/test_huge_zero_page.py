"""The huge zero page: a read fault on a `thp` mapping maps it (do_huge_pmd_anonymous_page
with transparent_hugepage_use_zero_page(), the default); the first write copies.

From 5.8 (3917c80280c9) do_huge_pmd_wp_page splits the huge zero PMD and the write
copies one small page; before, it allocated a THP (the era's thp_wp_copies_whole).
"""

from __future__ import annotations

import pytest
from helpers_semantics import assert_checks_hold, page, pte, run_src, state_after

from cowdsl.semantics.state import SMALL, THP, ZERO_PFN

READ = "process A\nA: mmap(buf, anon, private, rw, thp)\nA: read(buf) as v\n"


def test_a_read_fault_maps_the_huge_zero_page():
    r = run_src(READ + "assert v == 0\nassert zero_page(A.buf)\nassert huge_zero_page(A.buf)\nassert not writable(A.buf)\n")
    assert_checks_hold(r)


def test_the_huge_zero_page_is_one_page_for_every_mapping():
    st = state_after(READ + "A: mmap(two, anon, private, rw, thp)\nA: read(two) as w\n", "A: read(two) as w")
    assert pte(st, "A", "buf").page == pte(st, "A", "two").page != ZERO_PFN


def test_the_shared_zero_page_is_not_the_huge_one():
    r = run_src("process A\nA: mmap(buf, anon, private, rw)\nA: read(buf) as v\n"
                "assert zero_page(A.buf)\nassert not huge_zero_page(A.buf)\n")
    assert_checks_hold(r)


@pytest.mark.parametrize("backend, kind", [("anon-exclusive", SMALL), ("gup-cow", SMALL), ("mapcount", THP)])
def test_the_first_write_copies_a_small_page_from_5_8(backend, kind):
    src = READ + "A: write(buf, 3)\n"
    st = state_after(src, "A: write(buf, 3)", backend=backend)
    assert page(st, "A", "buf").kind == kind and not page(st, "A", "buf").zero
    r = run_src(src + "assert A.buf == 3\nassert not huge_zero_page(A.buf)\n", backend=backend)
    assert_checks_hold(r)


def test_fork_shares_the_huge_zero_page_and_each_write_copies():
    r = run_src(READ + "A: fork() as B\nB: write(buf, 2)\nassert huge_zero_page(A.buf)\nassert B.buf == 2\n"
                "assert A.buf == 0\n")
    assert_checks_hold(r)


def test_splitting_the_huge_zero_pmd_maps_the_small_zero_page():
    r = run_src(READ + "A: mprotect(buf, ro, tail)\nassert zero_page(A.buf)\nassert not huge_zero_page(A.buf)\n")
    assert_checks_hold(r)
