"""Every decision rule of the model, as the anon-exclusive (5.19+) backend implements it.

For each rule in ``cowdsl.semantics.backend.RULES`` a small scenario builds the
situation; the test asserts (a) the rule's Event: the decision and the commit
the reference cites for it, and (b) what follows from the decision in the
state: which page is mapped, its value, its exclusive flag, its counters.
Both outcomes of every rule are covered, except where 5.19+ has only one
(listed in ONE_OUTCOME with the reason).  Where the default backend has one
outcome and an option of anon-exclusive gives the other (device-exclusive
entries), the option variant is run too and the test says so.

Then the invariants of the reference (§6.1, I1-I4) are checked after every
step of a set of scenarios, and the E5 (5.19+) column of the reference's §11
table is asserted for S1, S3 and S5-S11.

Section numbers refer to kernel-cow-semantics.md.
"""

from __future__ import annotations

import pytest
from helpers_semantics import (
    BACKEND,
    assert_checks_hold,
    assert_decision,
    decisions,
    exact_refcount_violations,
    fresh_page_violations,
    handle_page,
    invariant_violations,
    live_pages,
    mm,
    outcome,
    page,
    pfn,
    pte,
    rule_events,
    run_src,
    scenario,
    state_after,
    states,
    value,
)

from cowdsl.semantics import invariants, registry
from cowdsl.semantics.backend import RULES
from cowdsl.semantics.state import GUP_PIN_COUNTING_BIAS, ZERO_PFN

BIAS = GUP_PIN_COUNTING_BIAS

# --- which rule outcomes are covered ------------------------------------------------------------

COVERED: set[tuple[str, bool]] = set()

# Rules whose 5.19+ answer is a constant: the other outcome belongs to other eras.
ONE_OUTCOME = {
    ("gup_break_cow", True): "a308c71bf1e6 removed 5.8's forced COW break; 5.19+ never breaks COW for GUP",
}


def covers(rule: str, *decisions: bool):
    """Mark a test as exercising these outcomes of a rule (checked by test_every_rule_outcome_is_covered)."""
    assert rule in RULES, rule

    def mark(fn):
        for d in decisions:
            COVERED.add((rule, d))
        return fn

    return mark


# --- wp_can_reuse (do_wp_page, §6.3, §5, §7) ------------------------------------------------------


@covers("wp_can_reuse", True)
def test_wp_can_reuse_exclusive_page_is_reused():
    # A swapped-out exclusive page comes back read-only but exclusive (swp pte bit, 1493a1913e34);
    # the write fault then reuses it at once.
    src = """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        reclaim: swapout(A.buf)
        A: read(buf) as v
        A: write(buf, 2)
    """
    r = run_src(src, backend="6.10")  # from 6.11 the read fault maps it writable already
    before = state_after(src, "A: read(buf) as v", backend="6.10")
    assert not pte(before, "A", "buf").write and page(before, "A", "buf").anon_exclusive
    assert_decision(r, "wp_can_reuse", "A: write(buf, 2)", True, "6c287605fd56")
    st = r.final
    assert pfn(st, "A", "buf") == pfn(before, "A", "buf")  # same page
    assert pte(st, "A", "buf").write and page(st, "A", "buf").data == 2
    assert mm(st, "A").cow_copies == 0


@covers("wp_can_reuse", False)
def test_wp_can_reuse_shared_after_fork_refcount_2_copies():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: write(buf, 2)
    """)
    e = assert_decision(r, "wp_can_reuse", "A: write(buf, 2)", False, "53a05ad9f21d")
    assert "refcount 2" in e.text
    st = r.final
    a, b = page(st, "A", "buf"), page(st, "B", "buf")
    assert pfn(st, "A", "buf") != pfn(st, "B", "buf")
    assert (a.data, b.data) == (2, 1)
    assert a.anon_exclusive and a.refcount == 1 and a.mapcount == 1  # the copy: fresh, exclusive (I1)
    assert not b.anon_exclusive and b.refcount == 1 and b.mapcount == 1  # B's page waits for B's fault
    assert mm(st, "A").cow_copies == 1


@covers("wp_can_reuse", False)
def test_wp_can_reuse_many_references_fast_reject():
    # d4c470970d45: refcount > 3 copies without taking the page lock
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: fork() as C
        A: fork() as D
        A: write(buf, 2)
    """)
    e = assert_decision(r, "wp_can_reuse", "A: write(buf, 2)", False, "d4c470970d45")
    assert "refcount 5" in e.text  # four mappings, and the lru_add batch of A's CPU (drained or not: > 3)
    st = r.final
    assert page(st, "A", "buf").data == 2
    assert [page(st, p, "buf").data for p in "BCD"] == [1, 1, 1]
    assert page(st, "B", "buf").mapcount == 3


@covers("wp_can_reuse", True)
def test_wp_can_reuse_not_exclusive_but_sole_user_reuses_and_becomes_exclusive():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: munmap(buf)
        A: write(buf, 2)
    """)
    e = assert_decision(r, "wp_can_reuse", "A: write(buf, 2)", True, "53a05ad9f21d")
    assert "not exclusive" in e.text
    st = r.final
    pg = page(st, "A", "buf")
    assert pfn(st, "A", "buf") == 1  # the page written first, reused
    assert pg.anon_exclusive  # page_move_anon_rmap
    assert pte(st, "A", "buf").write and pg.data == 2
    assert mm(st, "A").cow_copies == 0


@covers("wp_can_reuse", True)
def test_wp_can_reuse_drops_the_swap_cache_then_reuses():
    # Not exclusive (fork cleared it), in the swap cache with no swap entry left: try_to_free_swap,
    # refcount 1 → reuse (COW fixes part 1, §5).
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: munmap(buf)
        reclaim: swapout(A.buf)
        A: read(buf) as v
        A: write(buf, 2)
    """)
    assert_decision(r, "wp_can_reuse", "A: write(buf, 2)", True, "53a05ad9f21d")
    st = r.final
    pg = page(st, "A", "buf")
    assert pg.swapcache < 0 and pg.refcount == 1 and pg.anon_exclusive
    assert pg.data == 2 and mm(st, "A").cow_copies == 0
    assert len(live_pages(st)) == 1
    assert outcome(r, "A: read(buf) as v").value == 1


@covers("wp_can_reuse", False)
def test_wp_can_reuse_swap_cache_still_needed_by_another_swap_entry_copies():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        reclaim: swapout(A.buf)
        A: write(buf, 2)
        B: read(buf) as v
    """)
    e = assert_decision(r, "wp_can_reuse", "A: write(buf, 2)", False, "53a05ad9f21d")
    assert "try_to_free_swap" in e.text
    st = r.final
    assert page(st, "A", "buf").data == 2 and page(st, "A", "buf").swapcache < 0
    assert value(r, "v") == 1  # B still gets the old data from the swap cache
    assert pfn(st, "A", "buf") != pfn(st, "B", "buf")


@covers("wp_can_reuse", False)
def test_wp_can_reuse_ksm_page_is_always_copied():
    # §10: KSM pages are never exclusive and always copied on a write fault (1a0cf26323c8),
    # even when this is the only mapping left.
    src = """
        process A, B
        A: mmap(buf, anon, private, rw)
        A: madvise(buf, mergeable)
        B: mmap(buf, anon, private, rw)
        B: madvise(buf, mergeable)
        A: write(buf, 5)
        B: write(buf, 5)
        ksmd: ksm_merge(A.buf, B.buf)
        B: exit()
        A: write(buf, 6)
    """
    r = run_src(src)
    before = state_after(src, "B: exit()")
    k = pfn(before, "A", "buf")
    assert before.pages[k].ksm and before.pages[k].mapcount == 1 and before.pages[k].refcount == 1
    e = assert_decision(r, "wp_can_reuse", "A: write(buf, 6)", False, "d4c470970d45")
    assert "KSM" in e.text
    st = r.final
    assert pfn(st, "A", "buf") != k and not page(st, "A", "buf").ksm and page(st, "A", "buf").anon_exclusive
    assert page(st, "A", "buf").data == 6 and mm(st, "A").cow_copies == 1


# --- thp_wp_can_reuse (do_huge_pmd_wp_page, §10, §12) ------------------------------------------------


@covers("thp_wp_can_reuse", True)
def test_thp_wp_can_reuse_exclusive_thp_is_reused():
    # An exclusive THP mapped read-only (I1): mprotect RO then RW where mprotect leaves the PMD
    # read-only (a read fault would map the huge zero page instead: test_huge_zero_page.py).
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, thp)
        A: write(buf, 1)
        A: mprotect(buf, ro)
        A: mprotect(buf, rw)
        A: write(buf, 2)
    """, backend="anon-exclusive:mprotect=fault")
    assert_decision(r, "thp_wp_can_reuse", "A: write(buf, 2)", True, "6c287605fd56")
    st = r.final
    pg = page(st, "A", "buf")
    assert pg.kind == "thp" and pg.anon_exclusive and pg.data == 2 and pte(st, "A", "buf").write
    assert mm(st, "A").cow_copies == 0


@covers("thp_wp_can_reuse", True)
def test_thp_wp_can_reuse_sole_user_after_fork_reuses_whole_thp():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, thp)
        A: write(buf, 1)
        A: fork() as B
        B: exit()
        A: write(buf, 2)
    """)
    assert_decision(r, "thp_wp_can_reuse", "A: write(buf, 2)", True, "3bff7e3f1f16")
    pg = page(r.final, "A", "buf")
    assert pg.kind == "thp" and pg.anon_exclusive and pg.data == 2 and pfn(r.final, "A", "buf") == 1


@covers("thp_wp_can_reuse", False)
def test_thp_wp_can_reuse_shared_thp_is_split_and_copied():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, thp)
        A: write(buf, 1)
        A: fork() as B
        B: write(buf, 2)
    """)
    assert_decision(r, "thp_wp_can_reuse", "B: write(buf, 2)", False, "3bff7e3f1f16")
    st = r.final
    a, b = page(st, "A", "buf"), page(st, "B", "buf")
    assert b.kind == "small" and b.data == 2 and b.anon_exclusive  # one subpage copied
    assert a.kind == "thp" and a.data == 1 and a.mapcount == 1


# --- hugetlb_wp_can_reuse (hugetlb_wp, §10: mapcount rule kept in 6.x) ----------------------------------


@covers("hugetlb_wp_can_reuse", True)
def test_hugetlb_wp_can_reuse_exclusive_page_is_reused():
    # hugetlb_wp decides on the mapcount in 5.19+ too; an exclusive page is mapped once.
    # The reference cites no commit ID for the hugetlb rule (§10, [V] from the hugetlb_wp comment):
    # the model names it `hugetlb_cow`.
    src = """
        process A
        A: mmap(buf, anon, private, rw, hugetlb)
        A: read(buf) as v
        A: write(buf, 2)
    """
    r = run_src(src)
    # a hugetlb read fault maps a fresh exclusive page (I1), read-only
    after_read = state_after(src, "A: read(buf) as v")
    assert page(after_read, "A", "buf").anon_exclusive and not pte(after_read, "A", "buf").write
    assert_decision(r, "hugetlb_wp_can_reuse", "A: write(buf, 2)", True, "v5.7 mm/hugetlb.c hugetlb_cow")
    pg = page(r.final, "A", "buf")
    assert pg.kind == "hugetlb" and pg.data == 2 and pg.anon_exclusive and mm(r.final, "A").cow_copies == 0


@covers("hugetlb_wp_can_reuse", True)
def test_hugetlb_wp_can_reuse_mapcount_1_ignores_the_pipe_reference_s4():
    # S4 (§11, E5 column): hugetlb keeps the mapcount rule, so FOLL_GET users still see
    # another process's data: the CVE-2020-29374 leak stays open for hugetlb.
    r = run_src("""
        process A
        pipe P
        A: mmap(buf, anon, private, rw, hugetlb)
        A: write(buf, 1)
        A: fork() as B
        B: vmsplice(buf, P)
        B: munmap(buf)
        A: write(buf, 2)
        B: pipe_read(P) as v
    """)
    e = assert_decision(r, "hugetlb_wp_can_reuse", "A: write(buf, 2)", True, "v5.7 mm/hugetlb.c hugetlb_cow")
    assert "mapcount 1" in e.text
    assert value(r, "v") == 2  # LEAK, as the reference says for E5 hugetlb + FOLL_GET
    assert page(r.final, "A", "buf").anon_exclusive  # reuse sets exclusive (§7)


@covers("hugetlb_wp_can_reuse", False)
def test_hugetlb_wp_can_reuse_mapped_twice_copies():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, hugetlb)
        A: write(buf, 1)
        A: fork() as B
        A: write(buf, 2)
    """)
    assert_decision(r, "hugetlb_wp_can_reuse", "A: write(buf, 2)", False, "v5.7 mm/hugetlb.c hugetlb_cow")
    st = r.final
    a, b = page(st, "A", "buf"), page(st, "B", "buf")
    assert a.kind == b.kind == "hugetlb"  # hugetlb copies the huge page
    assert (a.data, b.data) == (2, 1) and pfn(st, "A", "buf") != pfn(st, "B", "buf")


# --- fork_copy_anon (copy_present_pte / page_try_dup_anon_rmap, §6.2) -------------------------------------


@covers("fork_copy_anon", False)
def test_fork_copy_anon_exclusive_unpinned_page_is_shared_and_loses_exclusivity():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
    """)
    e = assert_decision(r, "fork_copy_anon", "A: fork() as B", False, "6c287605fd56")
    assert "exclusivity cleared" in e.text
    st = r.final
    assert pfn(st, "A", "buf") == pfn(st, "B", "buf")
    pg = page(st, "A", "buf")
    assert not pg.anon_exclusive and pg.mapcount == 2 and pg.refcount == 2
    assert not pte(st, "A", "buf").write and not pte(st, "B", "buf").write


@covers("fork_copy_anon", False)
def test_fork_copy_anon_already_shared_page_is_shared_again():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: fork() as C
    """)
    e = assert_decision(r, "fork_copy_anon", "A: fork() as C", False, "6c287605fd56")
    assert e.text.split(": ", 1)[1].startswith("not exclusive")
    pg = page(r.final, "A", "buf")
    assert pg.mapcount == 3 and pg.refcount == 3
    assert pfn(r.final, "C", "buf") == pfn(r.final, "A", "buf")


@covers("fork_copy_anon", True)
def test_fork_copy_anon_pinned_exclusive_page_is_copied_for_the_child():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write) as mr
        A: fork() as B
    """)
    assert_decision(r, "fork_copy_anon", "A: fork() as B", True, "6c287605fd56")
    st = r.final
    a, b = pfn(st, "A", "buf"), pfn(st, "B", "buf")
    assert a != b and a == st.handle("mr").page  # the parent keeps the pinned page
    assert pte(st, "A", "buf").write  # parent PTE untouched (§6.2, "parent untouched")
    assert pte(st, "B", "buf").write and pte(st, "B", "buf").dirty
    assert st.pages[a].anon_exclusive and st.pages[b].anon_exclusive
    assert st.pages[b].data == 1 and st.pages[b].refcount == 1
    assert st.pages[a].mapcount == 1 and st.pages[a].refcount == 1 + BIAS


@covers("fork_copy_anon", True)
def test_fork_copy_anon_pinned_thp_uses_the_exact_pincount():
    # Large folios count pins exactly: refcount + 1, pincount + 1 (§0); still maybe_dma_pinned.
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, thp)
        A: write(buf, 1)
        A: pin(buf, read) as mr
        A: fork() as B
    """)
    pg = handle_page(r.final, "mr")
    assert pg.kind == "thp" and pg.refcount == 2 and pg.pincount == 1  # no 1024 bias on a THP
    assert_decision(r, "fork_copy_anon", "A: fork() as B", True, "6c287605fd56")
    assert pfn(r.final, "B", "buf") != pfn(r.final, "A", "buf")


def _many_gets(n: int, pin_first: bool) -> str:
    pin = "A: pin(other, write) as p\nA: unpin(p)\n" if pin_first else ""
    gets = f"A: gup(buf, read, count={n}) as g\n"  # n FOLL_GET references, as n requests in flight
    return (
        "process A\nA: mmap(buf, anon, private, rw)\nA: mmap(other, anon, private, rw)\n"
        "A: write(buf, 1)\nA: write(other, 1)\n" + pin + gets + "A: fork() as B\n"
    )


@covers("fork_copy_anon", False)
def test_fork_copy_anon_needs_mmf_has_pinned():
    # 1023 FOLL_GET references make refcount 1024: page_maybe_dma_pinned is true (the known false
    # positive, §0), but without MMF_HAS_PINNED the page is shared.
    r = run_src(_many_gets(BIAS - 1, pin_first=False))
    assert page(r.final, "A", "buf").refcount >= BIAS and not mm(r.final, "A").has_pinned
    e = [x for x in rule_events(r, "fork_copy_anon", "A: fork() as B") if "buf" in x.text][0]
    assert e.decision is False and e.commit == "6c287605fd56"
    assert pfn(r.final, "B", "buf") == pfn(r.final, "A", "buf")


@covers("fork_copy_anon", True)
def test_fork_copy_anon_refcount_false_positive_copies_when_the_mm_has_pinned():
    r = run_src(_many_gets(BIAS - 1, pin_first=True))
    assert mm(r.final, "A").has_pinned and page(r.final, "A", "buf").pincount == 0
    e = [x for x in rule_events(r, "fork_copy_anon", "A: fork() as B") if "buf" in x.text][0]
    assert e.decision is True and e.commit == "6c287605fd56"
    assert pfn(r.final, "B", "buf") != pfn(r.final, "A", "buf")


# --- gup_break_cow (§2, removed by a308c71bf1e6) ---------------------------------------------------------


@covers("gup_break_cow", False)
def test_gup_break_cow_read_gup_takes_the_shared_page():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: gup(buf, read) as g
    """)
    assert_decision(r, "gup_break_cow", "B: gup(buf, read) as g", False, "a308c71bf1e6")
    st = r.final
    assert st.handle("g").page == pfn(st, "A", "buf") == pfn(st, "B", "buf")  # COW not broken
    assert page(st, "A", "buf").refcount == 3 and mm(st, "B").cow_copies == 0


# --- can_follow_write_pte (follow_page_pte, 5535be309971, §6.4) -----------------------------------------------


def _follow(r, at):
    return decisions(r, "can_follow_write_pte", at)


@covers("can_follow_write_pte", True)
def test_can_follow_write_pte_writable_pte():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: gup(buf, write) as g
    """)
    assert_decision(r, "can_follow_write_pte", "A: gup(buf, write) as g", True, None)
    assert handle_page(r.final, "g") == page(r.final, "A", "buf")
    assert mm(r.final, "A").cow_copies == 0


@covers("can_follow_write_pte", False)
def test_can_follow_write_pte_read_only_pte_faults_first():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: gup(buf, write) as g
    """)
    assert _follow(r, "A: gup(buf, write) as g") == [(False, None), (True, None)]
    st = r.final
    assert st.handle("g").page == pfn(st, "A", "buf") != pfn(st, "B", "buf")  # COW broken first
    assert page(st, "A", "buf").anon_exclusive and mm(st, "A").cow_copies == 1


@covers("can_follow_write_pte", False)
def test_can_follow_write_pte_force_in_a_writable_vma_takes_the_write_fault():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: proc_mem_write(buf, 2)
    """)
    assert _follow(r, "A: proc_mem_write(buf, 2)") == [(False, "5535be309971"), (True, None)]
    assert page(r.final, "A", "buf").data == 2 and page(r.final, "B", "buf").data == 1


@covers("can_follow_write_pte", False, True)
def test_can_follow_write_pte_force_breaks_cow_of_the_page_cache_then_follows_the_copy():
    r = run_src("""
        process A
        file F = [7]
        A: mmap(fm, private, ro, file=F)
        A: read(fm) as v
        A: proc_mem_write(fm, 9)
        A: proc_mem_write(fm, 10)
    """)
    first = rule_events(r, "can_follow_write_pte", "A: proc_mem_write(fm, 9)")
    assert [(e.decision, e.commit) for e in first] == [(False, "5535be309971"), (True, "5535be309971")]
    assert "not an exclusive anon page" in first[0].text
    # the second forced write follows the exclusive anon copy without a fault
    assert _follow(r, "A: proc_mem_write(fm, 10)") == [(True, "5535be309971")]
    st = r.final
    assert st.pages[st.file_page("F", 0)].data == 7
    assert page(st, "A", "fm").data == 10 and mm(st, "A").cow_copies == 1


@covers("can_follow_write_pte", False)
@covers("check_vma_flags", False)
def test_check_vma_flags_refuses_a_forced_write_into_a_shared_mapping_before_any_fault():
    r = run_src("""
        process A
        file F = [7]
        A: mmap(fm, shared, ro, file=F)
        A: read(fm) as v
        A: proc_mem_write(fm, 9) as w
    """)
    evs = rule_events(r, "check_vma_flags", "A: proc_mem_write(fm, 9) as w")
    assert evs and all(e.decision is False for e in evs)
    assert not rule_events(r, "can_follow_write_pte", "A: proc_mem_write(fm, 9) as w")
    assert not r.final.result("w").ok
    assert r.final.pages[r.final.file_page("F", 0)].data == 7


@covers("check_vma_flags", True)
def test_check_vma_flags_allows_a_forced_write_in_a_cow_mapping():
    r = run_src("""
        process A
        file F = [7]
        A: mmap(fm, private, ro, file=F)
        A: proc_mem_write(fm, 9) as w
    """)
    evs = rule_events(r, "check_vma_flags", "A: proc_mem_write(fm, 9) as w")
    assert evs == []  # allowed: the mechanism logs only refusals
    assert r.final.result("w").ok


def test_check_vma_flags_refuses_longterm_write_pins_of_disk_files_from_6_5():
    src = """
        process A
        file F = [1]
        A: mmap(m, shared, rw, file=F)
        A: pin(m, write, longterm) as mr
    """
    assert not run_src(src).final.result("mr").ok
    assert run_src(src, backend="6.2").final.result("mr").ok
    shmem = """
        process A
        A: mmap(m, shared, rw)
        A: pin(m, write, longterm) as mr
    """
    assert run_src(shmem).final.result("mr").ok


# --- gup_must_unshare (a7f226604170, 84209e87c696, §6.4, §6.5) --------------------------------------------------


@covers("gup_must_unshare", True)
def test_gup_must_unshare_ro_pin_of_a_shared_anon_page_unshares():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: pin(buf, read) as mr
    """)
    # unshare, then the retry finds the fresh exclusive copy
    assert decisions(r, "gup_must_unshare", "A: pin(buf, read) as mr") == [(True, "a7f226604170"), (False, "a7f226604170")]
    assert "possibly shared" in rule_events(r, "gup_must_unshare", "A: pin(buf, read) as mr")[0].text
    st = r.final
    a, b = pfn(st, "A", "buf"), pfn(st, "B", "buf")
    assert a != b and st.handle("mr").page == a
    assert st.pages[a].anon_exclusive and st.pages[a].pincount == 1 and st.pages[a].data == 1
    assert not pte(st, "A", "buf").write  # unshare keeps the PTE read-only (§6.3)
    assert st.pages[b].mapcount == 1 and st.pages[b].pincount == 0


@covers("gup_must_unshare", True)
def test_gup_must_unshare_fast_ro_pin_falls_back_and_unshares():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: pin(buf, read, fast) as mr
    """)
    # GUP-fast refuses (§6.5) and the slow path unshares
    assert decisions(r, "gup_must_unshare", "A: pin(buf, read, fast) as mr") == [
        (True, "a7f226604170"), (False, "a7f226604170")]
    assert r.final.handle("mr").page != pfn(r.final, "B", "buf")


@covers("gup_must_unshare", True)
def test_gup_must_unshare_ro_pin_of_a_ksm_page_unshares():
    # §10: KSM pages are never exclusive, so a R/O pin unshares (copies) first.
    r = run_src("""
        process A, B
        A: mmap(buf, anon, private, rw)
        A: madvise(buf, mergeable)
        B: mmap(buf, anon, private, rw)
        B: madvise(buf, mergeable)
        A: write(buf, 5)
        B: write(buf, 5)
        ksmd: ksm_merge(A.buf, B.buf)
        A: pin(buf, read) as mr
    """)
    assert decisions(r, "gup_must_unshare", "A: pin(buf, read) as mr")[0] == (True, "a7f226604170")
    st = r.final
    pg = handle_page(st, "mr")
    assert not pg.ksm and pg.anon_exclusive and pg.data == 5
    assert st.handle("mr").page == pfn(st, "A", "buf") != pfn(st, "B", "buf")
    assert page(st, "B", "buf").ksm and page(st, "B", "buf").pincount == 0


@covers("gup_must_unshare", False)
def test_gup_must_unshare_exclusive_page_is_pinned_as_is():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: mprotect(buf, ro)
        A: pin(buf, read) as mr
    """)
    e = assert_decision(r, "gup_must_unshare", "A: pin(buf, read) as mr", False, "a7f226604170")
    assert "exclusive" in e.text
    st = r.final
    assert st.handle("mr").page == pfn(st, "A", "buf") == 1 and mm(st, "A").cow_copies == 0


@covers("gup_must_unshare", False)
def test_gup_must_unshare_never_for_foll_get():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: gup(buf, read) as g
    """)
    assert_decision(r, "gup_must_unshare", "A: gup(buf, read) as g", False, "a7f226604170")
    st = r.final
    assert st.handle("g").page == pfn(st, "B", "buf")  # the R/O reference aliases the shared page


@covers("gup_must_unshare", True)
def test_gup_must_unshare_longterm_ro_pin_of_a_page_cache_page_in_a_cow_mapping():
    r = run_src("""
        process A
        file F = [7]
        A: mmap(fm, private, rw, file=F)
        A: read(fm) as v
        A: pin(fm, read, longterm) as mr
    """)
    assert decisions(r, "gup_must_unshare", "A: pin(fm, read, longterm) as mr") == [
        (True, "84209e87c696"), (False, "a7f226604170")]
    st = r.final
    cache = st.file_page("F", 0)
    pg = handle_page(st, "mr")
    assert st.handle("mr").page != cache and pg.anon and pg.anon_exclusive and pg.data == 7
    assert st.pages[cache].pincount == 0 and st.pages[cache].mapcount == 0


@covers("gup_must_unshare", True)
def test_gup_must_unshare_longterm_ro_pin_of_the_zero_page():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: pin(buf, read, longterm) as mr
    """)
    assert decisions(r, "gup_must_unshare", "A: pin(buf, read, longterm) as mr") == [
        (True, "84209e87c696"), (False, "a7f226604170")]
    st = r.final
    assert st.handle("mr").page != ZERO_PFN and handle_page(st, "mr").anon_exclusive
    assert pte(st, "A", "buf").page == st.handle("mr").page


@covers("gup_must_unshare", False)
def test_gup_must_unshare_short_term_ro_pin_of_a_page_cache_page():
    r = run_src("""
        process A
        file F = [7]
        A: mmap(fm, private, rw, file=F)
        A: read(fm) as v
        A: pin(fm, read) as mr
    """)
    e = assert_decision(r, "gup_must_unshare", "A: pin(fm, read) as mr", False, "a7f226604170")
    assert "non-anon" in e.text
    st = r.final
    assert st.handle("mr").page == st.file_page("F", 0)
    assert st.pages[st.file_page("F", 0)].pincount == 1


# --- pin_sets_has_pinned (008cfe4418b3 / a458b76a4171, §4.1) -----------------------------------------------------


@covers("pin_sets_has_pinned", True)
def test_pin_sets_has_pinned_on_a_short_term_pin():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: gup(buf, write) as g
        A: pin(buf, read) as mr
    """)
    assert rule_events(r, "pin_sets_has_pinned", "A: gup(buf, write) as g") == []  # FOLL_GET: not asked
    assert_decision(r, "pin_sets_has_pinned", "A: pin(buf, read) as mr", True, "008cfe4418b3")
    assert mm(r.final, "A").has_pinned


@covers("pin_sets_has_pinned", False)
def test_pin_sets_has_pinned_longterm_scope_variant():
    # Every FOLL_PIN sets MMF_HAS_PINNED in the kernel; option pin_scope=longterm is the
    # FOLL_LONGTERM-only proposal of seed thread 003 (not merged).  Then fork shares the
    # short-term pinned page, and the parent's write copies it away from the pin.
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write) as mr
        A: fork() as B
        A: write(buf, 2)
    """, backend="anon-exclusive:pin_scope=longterm")
    assert_decision(r, "pin_sets_has_pinned", "A: pin(buf, write) as mr", False, "008cfe4418b3")
    assert not mm(r.final, "A").has_pinned
    assert_decision(r, "fork_copy_anon", "A: fork() as B", False, "6c287605fd56")
    assert handle_page(r.final, "mr").data == 1 and r.final.handle("mr").page != pfn(r.final, "A", "buf")


# --- reclaim_keeps_pinned (feb889fb40fa, §4.4, §6.6) ----------------------------------------------------------------


@covers("reclaim_keeps_pinned", True)
def test_reclaim_keeps_pinned_page_out_of_swap_cache():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write, longterm) as mr
        reclaim: swapout(A.buf) as so
    """)
    assert_decision(r, "reclaim_keeps_pinned", "reclaim: swapout(A.buf) as so", True, "feb889fb40fa")
    st = r.final
    assert not st.result("so").ok
    assert pte(st, "A", "buf").present and handle_page(st, "mr").swapcache < 0
    assert rule_events(r, "unmap_may_share") == []  # never got as far as try_to_unmap


@covers("reclaim_keeps_pinned", False)
def test_reclaim_keeps_pinned_unpinned_page_is_swapped():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write) as mr
        A: unpin(mr)
        reclaim: swapout(A.buf) as so
    """)
    assert_decision(r, "reclaim_keeps_pinned", "reclaim: swapout(A.buf) as so", False, "feb889fb40fa")
    assert r.final.result("so").ok and not pte(r.final, "A", "buf").present


# --- unmap_may_share (page_try_share_anon_rmap in try_to_unmap, §6.6) ------------------------------------------------


@covers("unmap_may_share", True)
def test_unmap_may_share_exclusive_page_becomes_an_exclusive_swap_entry():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        reclaim: swapout(A.buf)
    """)
    assert_decision(r, "unmap_may_share", "reclaim: swapout(A.buf)", True, "6c287605fd56")
    p = pte(r.final, "A", "buf")
    assert not p.present and p.swp_exclusive


@covers("unmap_may_share", False)
def test_unmap_may_share_pinned_page_in_swap_cache_cannot_be_unmapped():
    # A page already in the swap cache skips reclaim's pin check; try_to_unmap then fails to clear
    # PageAnonExclusive on the pinned page (I4) and the PTE stays.
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        reclaim: swapout(A.buf)
        A: read(buf) as v
        A: pin(buf, read) as mr
        reclaim: swapout(A.buf) as so
    """)
    assert handle_page(r.final, "mr").swapcache >= 0
    assert rule_events(r, "reclaim_keeps_pinned", "reclaim: swapout(A.buf) as so") == []
    assert_decision(r, "unmap_may_share", "reclaim: swapout(A.buf) as so", False, "6c287605fd56")
    st = r.final
    assert not st.result("so").ok
    assert pte(st, "A", "buf").present and pte(st, "A", "buf").page == st.handle("mr").page
    assert handle_page(st, "mr").anon_exclusive  # exclusivity survives (I3)


# --- swapin_free_swapcache (should_try_to_free_swap, c145e0b47c77, §5) ------------------------------------------------


# An exclusive page swapped out and read back: a read fault (swapin_free_swapcache, swapin_exclusive).
SWAPPED_OUT_THEN_READ = """
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
reclaim: swapout(A.buf)
A: read(buf) as v
"""


@covers("swapin_free_swapcache", True)
def test_swapin_free_swapcache_on_write_when_sole_user():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        reclaim: swapout(A.buf)
        A: write(buf, 2)
    """)
    assert_decision(r, "swapin_free_swapcache", "A: write(buf, 2)", True, "c145e0b47c77")
    st = r.final
    pg = page(st, "A", "buf")
    assert pg.swapcache < 0 and pg.refcount == 1 and pg.data == 2
    assert all(s.free for s in st.slots)  # the slot is released


@covers("swapin_free_swapcache", False)
def test_swapin_free_swapcache_not_on_a_read_fault():
    r = run_src(SWAPPED_OUT_THEN_READ)
    assert_decision(r, "swapin_free_swapcache", "A: read(buf) as v", False, "c145e0b47c77")
    pg = page(r.final, "A", "buf")
    assert pg.swapcache >= 0 and pg.refcount == 2  # swap cache + the mapping


@covers("swapin_free_swapcache", False)
def test_swapin_free_swapcache_not_with_an_extra_reference():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: gup(buf, write) as g
        reclaim: swapout(A.buf)
        A: write(buf, 2)
        g: dma_write(3)
        A: read(buf) as v
    """)
    assert_decision(r, "swapin_free_swapcache", "A: write(buf, 2)", False, "c145e0b47c77")
    st = r.final
    pg = page(st, "A", "buf")
    assert pg.swapcache >= 0 and pg.refcount == 3  # swap cache + mapping + gup reference
    assert st.handle("g").page == pfn(st, "A", "buf")  # the same page came back: coherent
    assert value(r, "v") == 3


# --- swapin_exclusive (do_swap_page, 1493a1913e34, c145e0b47c77, §6.6) ------------------------------------------------


@covers("swapin_exclusive", True)
def test_swapin_exclusive_via_the_swap_pte_bit():
    r = run_src(SWAPPED_OUT_THEN_READ, backend="6.10")
    assert_decision(r, "swapin_exclusive", "A: read(buf) as v", True, "1493a1913e34")
    st = r.final
    assert page(st, "A", "buf").anon_exclusive  # exclusive even though the swap cache holds it
    assert not pte(st, "A", "buf").write  # read fault: mapped read-only
    assert page(st, "A", "buf").refcount == 2


@covers("swapin_exclusive", True)
def test_swapin_exclusive_via_refcount_1():
    src = """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: munmap(buf)
        reclaim: swapout(A.buf)
        A: write(buf, 2)
    """
    r = run_src(src)
    swapped = pte(state_after(src, "reclaim: swapout(A.buf)"), "A", "buf")
    assert swapped.swap and not swapped.swp_exclusive  # fork cleared exclusivity: the entry is not marked
    assert_decision(r, "swapin_exclusive", "A: write(buf, 2)", True, "c145e0b47c77")
    assert rule_events(r, "wp_can_reuse", "A: write(buf, 2)") == []  # mapped writable directly
    st = r.final
    assert pte(st, "A", "buf").write and page(st, "A", "buf").anon_exclusive
    assert page(st, "A", "buf").data == 2 and mm(st, "A").cow_copies == 0


@covers("swapin_exclusive", False)
def test_swapin_exclusive_shared_swap_entry_maps_read_only():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        reclaim: swapout(A.buf)
        A: read(buf) as v
    """)
    e = assert_decision(r, "swapin_exclusive", "A: read(buf) as v", False, "c145e0b47c77")
    assert "refcount 2" in e.text
    st = r.final
    assert not pte(st, "A", "buf").write and not page(st, "A", "buf").anon_exclusive
    assert not pte(st, "B", "buf").present  # B still has its swap entry


@covers("swapin_exclusive", False)
def test_swapin_exclusive_never_for_a_ksm_page():
    # A KSM page kept in the swap cache by a pipe reference comes back read-only and not exclusive.
    r = run_src("""
        process A, B
        pipe P
        A: mmap(buf, anon, private, rw)
        A: madvise(buf, mergeable)
        B: mmap(buf, anon, private, rw)
        B: madvise(buf, mergeable)
        A: write(buf, 5)
        B: write(buf, 5)
        ksmd: ksm_merge(A.buf, B.buf)
        A: vmsplice(buf, P)
        reclaim: swapout(A.buf)
        A: read(buf) as v
        A: write(buf, 6)
        A: pipe_read(P) as p
    """)
    e = assert_decision(r, "swapin_exclusive", "A: read(buf) as v", False, "c145e0b47c77")
    assert "KSM" in e.text
    assert_decision(r, "wp_can_reuse", "A: write(buf, 6)", False, "d4c470970d45")
    assert value(r, "v") == 5 and value(r, "p") == 5  # the KSM page still holds 5: no leak into the pipe
    assert page(r.final, "A", "buf").data == 6 and not page(r.final, "A", "buf").ksm


# --- mprotect_upgrade (can_change_pte_writable, 64fe24a3e05e, §6.7) -----------------------------------------------------


@covers("mprotect_upgrade", True)
def test_mprotect_upgrade_exclusive_anon_page_becomes_writable_at_once():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: mprotect(buf, ro)
        A: mprotect(buf, rw)
        A: write(buf, 2)
    """)
    assert_decision(r, "mprotect_upgrade", "A: mprotect(buf, rw)", True, "64fe24a3e05e")
    st = r.final
    assert pte(st, "A", "buf").write and page(st, "A", "buf").data == 2
    assert mm(st, "A").faults == 1  # the second write took no fault
    assert rule_events(r, "wp_can_reuse") == []


@covers("mprotect_upgrade", False)
def test_mprotect_upgrade_cow_shared_page_stays_read_only():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: mprotect(buf, ro)
        A: mprotect(buf, rw)
        A: write(buf, 2)
    """)
    assert_decision(r, "mprotect_upgrade", "A: mprotect(buf, rw)", False, "64fe24a3e05e")
    st = r.final
    assert page(st, "B", "buf").data == 1 and page(st, "A", "buf").data == 2  # the write still COWs
    assert mm(st, "A").cow_copies == 1


@covers("mprotect_upgrade", False)
def test_mprotect_upgrade_zero_page_stays_read_only():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: read(buf) as v
        A: mprotect(buf, ro)
        A: mprotect(buf, rw)
    """)
    assert_decision(r, "mprotect_upgrade", "A: mprotect(buf, rw)", False, "64fe24a3e05e")
    p = pte(r.final, "A", "buf")
    assert p.page == ZERO_PFN and not p.write


@covers("mprotect_upgrade", True)
def test_mprotect_upgrade_shared_mapping_dirty_pte():
    r = run_src("""
        process A
        file F = [7]
        A: mmap(fm, shared, rw, file=F)
        A: write(fm, 1)
        A: mprotect(fm, ro)
        A: mprotect(fm, rw)
    """)
    assert_decision(r, "mprotect_upgrade", "A: mprotect(fm, rw)", True, "64fe24a3e05e")
    assert pte(r.final, "A", "fm").write


@covers("mprotect_upgrade", False)
def test_mprotect_upgrade_shared_mapping_clean_pte():
    r = run_src("""
        process A
        file F = [7]
        A: mmap(fm, shared, rw, file=F)
        A: read(fm) as v
        A: mprotect(fm, ro)
        A: mprotect(fm, rw)
        A: write(fm, 1)
    """)
    assert_decision(r, "mprotect_upgrade", "A: mprotect(fm, rw)", False, "64fe24a3e05e")
    st = r.final
    assert pfn(st, "A", "fm") == st.file_page("F", 0)  # the later write fault keeps the shared page
    assert st.pages[st.file_page("F", 0)].data == 1


# --- has_device_exclusive / fork_restores_device_exclusive (b756a3b5e7ea, §9.1) --------------------------------------


# A device holds the page exclusively: the fork tests add `A: fork() as B`.
DEVICE_EXCLUSIVE = """
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
A: make_device_exclusive(buf) as dx
"""


@covers("has_device_exclusive", True)
def test_has_device_exclusive_in_5_19_plus():
    r = run_src(DEVICE_EXCLUSIVE)
    assert_decision(r, "has_device_exclusive", "A: make_device_exclusive(buf) as dx", True, "b756a3b5e7ea")
    assert r.final.result("dx").ok and pte(r.final, "A", "buf").devexcl


@covers("has_device_exclusive", False)
def test_has_device_exclusive_off_variant():
    # Option device_exclusive=off (kernels before 5.14): the call fails, the PTE is untouched.
    r = run_src(DEVICE_EXCLUSIVE, backend="early-cow:device_exclusive=off")
    assert_decision(r, "has_device_exclusive", "A: make_device_exclusive(buf) as dx", False, "b756a3b5e7ea")
    assert not r.final.result("dx").ok
    assert pte(r.final, "A", "buf").present and pte(r.final, "A", "buf").write


@covers("fork_restores_device_exclusive", True)
def test_fork_restores_device_exclusive_entry_then_shares():
    r = run_src(DEVICE_EXCLUSIVE + "A: fork() as B\n")
    assert_decision(r, "fork_restores_device_exclusive", "A: fork() as B", True, "b756a3b5e7ea")
    # then the normal 5.19+ rule: exclusive, not pinned → share read-only, exclusivity cleared
    assert_decision(r, "fork_copy_anon", "A: fork() as B", False, "6c287605fd56")
    st = r.final
    assert not st.handle("dx").live  # the device lost exclusivity
    assert pfn(st, "A", "buf") == pfn(st, "B", "buf")
    assert not pte(st, "A", "buf").write and not page(st, "A", "buf").anon_exclusive


@covers("fork_restores_device_exclusive", False)
def test_fork_restores_device_exclusive_copy_variant():
    # Option devexcl_fork=copy (the alternative from the Popple thread, seed 004; not merged):
    # read-only device-exclusive entries in parent and child.
    r = run_src(DEVICE_EXCLUSIVE + "A: fork() as B\n", backend="anon-exclusive:devexcl_fork=copy")
    assert_decision(r, "fork_restores_device_exclusive", "A: fork() as B", False, "b756a3b5e7ea")
    st = r.final
    a, b = pte(st, "A", "buf"), pte(st, "B", "buf")
    assert a.devexcl and b.devexcl and not a.write and not b.write and a.page == b.page
    assert not st.pages[a.page].anon_exclusive and st.pages[a.page].refcount == 2


# --- devexcl_single_pte / devexcl_restore_writable / unmap_device_exclusive (6.15 rework, §9.2, §15 row 10) ----------

MAKE_DX = "A: make_device_exclusive(buf) as dx"
REWORK = "v6.15 mm/rmap.c make_device_exclusive"


@covers("devexcl_single_pte", True)
def test_make_device_exclusive_keeps_the_mapcount_from_6_15():
    r = run_src(DEVICE_EXCLUSIVE, backend="6.15")
    assert_decision(r, "devexcl_single_pte", MAKE_DX, True, REWORK)
    st = r.final
    e = pte(st, "A", "buf")
    assert e.devexcl and st.pages[e.page].mapcount == 1 and st.pages[e.page].refcount == 1
    invariants.check(registry.get("6.15"), st)  # the entry counts in the mapcount: no MAPCOUNT violation


@covers("devexcl_single_pte", False)
def test_make_device_exclusive_range_drops_the_mapcount_until_6_14():
    r = run_src(DEVICE_EXCLUSIVE, backend="6.14")
    assert_decision(r, "devexcl_single_pte", MAKE_DX, False, "b756a3b5e7ea")
    st = r.final
    e = pte(st, "A", "buf")
    assert e.devexcl and st.pages[e.page].mapcount == 0 and st.pages[e.page].refcount == 1


@pytest.mark.parametrize("backend, errno", [("6.15", "EOPNOTSUPP"), ("6.14", "EBUSY")])
def test_make_device_exclusive_of_a_shared_mapping_fails(backend, errno):
    # 6.18.2 make_device_exclusive: !folio_test_anon → -EOPNOTSUPP; 6.14.0 folio_make_device_exclusive
    # leaves pages[i] NULL and test_hmm's dmirror_exclusive returns -EBUSY
    r = run_src("process A\nA: mmap(buf, shared, rw)\nA: write(buf, 1)\n" + MAKE_DX + "\n", backend=backend)
    assert r.final.result("dx").error == errno
    assert pte(r.final, "A", "buf").present


# mprotect(PROT_READ) then mprotect(PROT_READ|PROT_WRITE), then a CPU read restores the entry
MPROTECT_RO_RW_READ = DEVICE_EXCLUSIVE + "A: mprotect(buf, ro)\nA: mprotect(buf, rw)\nA: read(buf) as r\n"


@covers("devexcl_restore_writable", True)
@pytest.mark.parametrize("backend, commit", [("6.15", REWORK), ("6.14", "b756a3b5e7ea")])
def test_restore_maps_writable(backend, commit):
    # 6.15: VM_WRITE and PageAnonExclusive; 6.14: the entry was a writable one
    r = run_src(DEVICE_EXCLUSIVE + "A: read(buf) as r\n", backend=backend)
    assert_decision(r, "devexcl_restore_writable", "A: read(buf) as r", True, commit)
    assert pte(r.final, "A", "buf").write and not r.final.handle("dx").live


@covers("devexcl_restore_writable", True)
@covers("devexcl_restore_writable", False)
@pytest.mark.parametrize("backend, writable", [("6.15", True), ("6.14", False)])
def test_restore_after_mprotect_ro_rw(backend, writable):
    # 6.14.0 change_pte_range turns the writable entry readable and nothing turns it back;
    # 6.18.2 leaves the one entry type alone and restore reads VM_WRITE
    r = run_src(MPROTECT_RO_RW_READ, backend=backend)
    commit = REWORK if backend == "6.15" else "b756a3b5e7ea"
    assert_decision(r, "devexcl_restore_writable", "A: read(buf) as r", writable, commit)
    assert pte(r.final, "A", "buf").write is writable


@covers("devexcl_restore_writable", False)
def test_restore_in_a_read_only_vma_is_read_only_from_6_15():
    r = run_src(DEVICE_EXCLUSIVE + "A: mprotect(buf, ro)\nA: read(buf) as r\n", backend="6.15")
    assert_decision(r, "devexcl_restore_writable", "A: read(buf) as r", False, REWORK)
    assert not pte(r.final, "A", "buf").write


SWAPOUT_DX = DEVICE_EXCLUSIVE + "reclaim: swapout(A.buf) as so\n"


@covers("unmap_device_exclusive", True)
def test_reclaim_unmaps_a_device_exclusive_entry_from_6_15():
    r = run_src(SWAPOUT_DX, backend="6.15")
    assert_decision(r, "unmap_device_exclusive", "reclaim: swapout(A.buf) as so", True, REWORK)
    st = r.final
    assert pte(st, "A", "buf").swap and not st.handle("dx").live  # MMU_NOTIFY_CLEAR revoked the device
    invariants.check(registry.get("6.15"), st)  # the entry counts in the mapcount: no MAPCOUNT violation


@covers("unmap_device_exclusive", False)
def test_reclaim_leaves_a_device_exclusive_entry_until_6_14():
    r = run_src(SWAPOUT_DX, backend="6.14")
    assert_decision(r, "unmap_device_exclusive", "reclaim: swapout(A.buf) as so", False, "b756a3b5e7ea")
    st = r.final
    e = pte(st, "A", "buf")
    assert e.devexcl and st.handle("dx").live  # the folio looked unmapped: no rmap walk
    assert st.pages[e.page].swapcache >= 0 and not st.pages[e.page].freed  # the entry's reference keeps it


def test_mprotect_drops_the_device_mirror_and_a_write_gets_eperm():
    """hmm-tests.c exclusive_mprotect: MMU_NOTIFY_PROTECTION_VMA drops test_hmm's entry;
    the device's write re-faults through hmm_range_fault: -EPERM on a read-only VMA."""
    for backend in ("6.14", "6.15"):
        r = run_src(DEVICE_EXCLUSIVE + "A: mprotect(buf, ro)\ndx: dma_write(9) as w\n", backend=backend)
        st = r.final
        assert st.result("w").error == "EPERM" and st.handle("dx").refault
        assert pte(st, "A", "buf").devexcl  # the entry stays: only the mirror was dropped


def test_fork_drops_the_device_mirror_and_a_write_breaks_cow_in_the_parent():
    """copy_page_range's MMU_NOTIFY_PROTECTION_PAGE drops the mirror first; the device's
    write re-faults: a write fault in the parent copies the page fork shared."""
    r = run_src(DEVICE_EXCLUSIVE + "A: fork() as B\ndx: dma_write(9) as w\n")
    st = r.final
    assert st.result("w").ok and st.handle("dx").refault
    assert page(st, "A", "buf").data == 9 and page(st, "B", "buf").data == 1
    assert pfn(st, "A", "buf") != pfn(st, "B", "buf")


def test_fork_of_a_pinned_device_exclusive_page_copies_for_the_child():
    """§9.1/§6.2: fork restores the parent's entry and then applies the normal
    present-PTE rule, so a pinned exclusive page is copied for the child
    (page_try_dup_anon_rmap fails) and the pin stays coherent with the parent."""
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write, longterm) as mr
        A: make_device_exclusive(buf) as dx
        A: fork() as B
        A: write(buf, 2)
        mr: dma_read() as seen
        assert seen == 2
        assert mr is A.buf
        assert B.buf == 1
    """)
    assert_decision(r, "fork_copy_anon", "A: fork() as B", True, "6c287605fd56")
    st = r.final
    assert handle_page(st, "mr").anon_exclusive  # I3: a pinned page stays exclusive
    assert pfn(st, "A", "buf") != pfn(st, "B", "buf")
    assert_checks_hold(r)


# --- has_write_protect_seq (57efa1fe5957, §8) ---------------------------------------------------------------------------


@covers("has_write_protect_seq", True)
def test_has_write_protect_seq_fork_brackets_the_copy():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: pin(buf, write, fast) as mr
    """)
    assert_decision(r, "has_write_protect_seq", "A: fork() as B", True, "57efa1fe5957")
    assert len(rule_events(r, "has_write_protect_seq", "A: fork() as B")) == 2  # begin and end
    st = r.final
    assert mm(st, "A").wp_seq == 2  # even again: fork is done
    assert mm(st, "A").mmap_lock == 0
    # the sequential GUP-fast pin after the fork sees an even count and goes on (COW first, then pin)
    assert st.handle("mr").page == pfn(st, "A", "buf") != pfn(st, "B", "buf")


@covers("has_write_protect_seq", False)
def test_has_write_protect_seq_off_variant():
    # Option wp_seq=off (before 5.11 / 5.10.y): fork does not touch the sequence count.
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
    """, backend="early-cow:wp_seq=off")
    assert_decision(r, "has_write_protect_seq", "A: fork() as B", False, "57efa1fe5957")
    assert mm(r.final, "A").wp_seq == 0


# --- MADV_COLLAPSE (mm/khugepaged.c madvise_collapse) and the KSM zero page (use_zero_pages) -----------------------

PTE_MAPPED_THP = """
    process A
    A: mmap(buf, anon, private, rw, thp)
    A: write(buf, 1)
    A: mprotect(buf, ro, tail)
    A: mprotect(buf, rw, tail)
"""
COLLAPSE = "A: madvise(buf, collapse) as c"


@covers("has_madv_collapse", True)
@covers("has_madv_collapse", False)
@pytest.mark.parametrize("backend, has", [("6.1", True), ("6.0", False)])
def test_has_madv_collapse(backend, has):
    r = run_src(PTE_MAPPED_THP + COLLAPSE, backend=backend)
    assert_decision(r, "has_madv_collapse", COLLAPSE, has, "7d8faaf15545")
    assert r.final.result("c").ok is has


@covers("collapse_needs_writable", True)
@covers("collapse_needs_writable", False)
@pytest.mark.parametrize("backend, refused", [("6.17", True), ("6.18", False)])
def test_collapse_needs_writable_after_fork(backend, refused):
    r = run_src(PTE_MAPPED_THP + "A: fork() as B\n" + COLLAPSE, backend=backend)
    assert_decision(r, "collapse_needs_writable", COLLAPSE, refused, "v6.18 mm/khugepaged.c hpage_collapse_scan_pmd")
    assert r.final.result("c").ok is not refused


@covers("collapse_count_eagain", True)
@covers("collapse_count_eagain", False)
@pytest.mark.parametrize("backend, errno", [("6.1.13", "EAGAIN"), ("6.1.12", "EINVAL")])
def test_collapse_count_eagain_for_a_pinned_page(backend, errno):
    r = run_src(PTE_MAPPED_THP + "A: pin(buf, write, longterm) as mr\n" + COLLAPSE, backend=backend)
    assert_decision(r, "collapse_count_eagain", COLLAPSE, errno == "EAGAIN", "ae63c898f400")
    assert r.final.result("c").error == errno


ZERO_FILLED = """
    process A
    A: mmap(buf, anon, private, rw)
    A: madvise(buf, mergeable)
    A: write(buf, 0)
"""
MERGE_ZERO = "ksmd: ksm_merge_zero(A.buf) as z"


@covers("has_ksm_use_zero_pages", True)
@covers("has_ksm_use_zero_pages", False)
@pytest.mark.parametrize("backend, has", [("4.11", True), ("4.10", False)])
def test_has_ksm_use_zero_pages(backend, has):
    r = run_src(ZERO_FILLED + MERGE_ZERO, backend=backend)
    assert_decision(r, "has_ksm_use_zero_pages", MERGE_ZERO, has, "e86c59b1b12d")
    assert page(r.final, "A", "buf").zero is has


@covers("ksm_marks_zero_pages", True)
@covers("ksm_marks_zero_pages", False)
@pytest.mark.parametrize("backend, marked", [("6.5", True), ("6.4", False)])
def test_ksm_marks_zero_pages_so_unmerge_unshares_them(backend, marked):
    r = run_src(ZERO_FILLED + MERGE_ZERO + "\nA: madvise(buf, unmergeable)\n", backend=backend)
    assert_decision(r, "ksm_marks_zero_pages", MERGE_ZERO, marked, "79271476b336")
    assert page(r.final, "A", "buf").zero is not marked  # unshared: its own zero-filled page again


# --- io_uring_checks_vmas (io_pin_pages' own VMA check, removed by 34ed8d0dcd69 in 6.5) --------------------------

PRIVATE_DISK_BUFFER = """
    process A
    file F = [0]
    A: mmap(buf, private, rw, file=F)
    A: write(buf, 1)
"""
REGISTER = "A: io_uring_register(buf) as r"


@covers("io_uring_checks_vmas", True)
@covers("io_uring_checks_vmas", False)
@pytest.mark.parametrize("backend, checks", [("6.4", True), ("6.5", False)])
def test_io_uring_checks_vmas_refuses_a_private_disk_file_buffer_before_6_5(backend, checks):
    r = run_src(PRIVATE_DISK_BUFFER + REGISTER, backend=backend)
    assert_decision(r, "io_uring_checks_vmas", REGISTER, checks, "34ed8d0dcd69")
    res = r.final.result("r")
    assert (res.ok, res.error) == ((False, "EOPNOTSUPP") if checks else (True, None))
    # the check runs after the pin: the write fault's private copy stays, unpinned when refused
    assert page(r.final, "A", "buf").anon and page(r.final, "A", "buf").pincount == (0 if checks else 1)


# --- every rule, both outcomes ---------------------------------------------------------------------------------------


def test_every_rule_outcome_is_covered():
    missing = [
        (rule, d) for rule in RULES for d in (True, False) if (rule, d) not in COVERED and (rule, d) not in ONE_OUTCOME
    ]
    assert not missing, f"rule outcomes without a test: {missing}"
    assert not (set(ONE_OUTCOME) & COVERED), "an outcome listed as impossible is tested"


# --- invariants after every step (§6.1) -------------------------------------------------------------------------------

INVARIANT_SCENARIOS = {
    "fork-write-both": """
        process A
        A: mmap(buf, anon, private, rw, pages=2)
        A: write(buf[0], 1)
        A: read(buf[1]) as r
        A: fork() as B
        B: write(buf[0], 2)
        A: write(buf[0], 3)
        A: write(buf[1], 4)
        B: exit()
    """,
    "pin-fork-swap": """
        process A
        A: mmap(buf, anon, private, rw, pages=2)
        A: write(buf[0], 1)
        A: write(buf[1], 2)
        A: pin(buf[0], write, longterm) as mr
        A: fork() as B
        reclaim: swapout(A.buf[0])
        reclaim: swapout(A.buf[1])
        B: read(buf[1]) as v
        A: write(buf[1], 3)
        mr: dma_write(9)
        A: unpin(mr)
        reclaim: swapout(A.buf[0])
        reclaim: swapin(A.buf[0])
        A: read(buf[0]) as w
        A: munmap(buf)
    """,
    "vmsplice-gup-swap": """
        process A
        pipe P
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: vmsplice(buf, P)
        B: gup(buf, read) as g
        B: munmap(buf)
        reclaim: swapout(A.buf)
        A: write(buf, 2)
        B: pipe_read(P) as v
        B: put(g)
    """,
    "unshare-and-remote": """
        process A, C
        file F = [7, 8]
        A: mmap(buf, anon, private, rw)
        A: mmap(fm, private, ro, file=F)
        A: write(buf, 1)
        A: fork() as B
        A: pin(buf, read) as mr
        C: process_vm_writev(B.buf, 5)
        C: process_vm_readv(A.buf) as v
        C: proc_mem_write(A.fm[1], 6)
        A: read(fm[0]) as f
        A: pin(fm[0], read, longterm) as lp
        A: mprotect(buf, ro)
        A: mprotect(buf, rw)
        A: madvise(buf, dontneed)
        A: exit()
    """,
    "huge-pages": """
        process A
        pipe P
        A: mmap(t, anon, private, rw, thp)
        A: mmap(pt, anon, private, rw, pte_thp)
        A: mmap(h, anon, private, rw, hugetlb)
        A: write(t, 1)
        A: write(pt, 2)
        A: write(h, 3)
        A: pin(pt, write) as mr
        A: fork() as B
        B: vmsplice(h, P)
        B: write(t, 4)
        A: write(h, 5)
        B: pipe_read(P) as v
        A: unpin(mr)
        A: munmap(pt)
    """,
    "ksm-and-device-exclusive": """
        process A, B
        A: mmap(buf, anon, private, rw, pages=2)
        A: madvise(buf, mergeable)
        B: mmap(buf, anon, private, rw)
        B: madvise(buf, mergeable)
        A: write(buf[0], 5)
        A: write(buf[1], 6)
        B: write(buf, 5)
        ksmd: ksm_merge(A.buf[0], B.buf)
        A: write(buf[0], 7)
        A: make_device_exclusive(buf[1]) as dx
        dx: dma_write(8)
        A: fork() as C
        C: read(buf[1]) as v
        A: make_device_exclusive(buf[1]) as dy
        A: read(buf[1]) as w
    """,
    "shmem-and-madvise": """
        process A
        A: mmap(sh, shared, rw)
        A: mmap(buf, anon, private, rw)
        A: write(sh, 1)
        A: write(buf, 1)
        A: madvise(buf, wipeonfork)
        A: fork() as B
        B: write(sh, 2)
        B: write(buf, 3)
        A: madvise(buf, pageout)
        A: read(buf) as v
    """,
}


@pytest.mark.parametrize("name", sorted(INVARIANT_SCENARIOS))
def test_invariants_hold_after_every_step(name):
    src = INVARIANT_SCENARIOS[name]
    backend = registry.get(BACKEND)
    before = backend.init_state(scenario(src))
    mapped = backend.options.get("devexcl") == "rework"  # 6.15+: a device-exclusive entry counts in the mapcount
    for step, st in states(src):
        bad = [f"{n}: {msg}" for n, msg in invariants.violations(st, devexcl_mapped=mapped)]
        bad += fresh_page_violations(before, st)
        assert not bad, f"after step {step.number} `{step.text}`: {bad}"
        before = st


def test_invariant_checker_catches_a_broken_state():
    """The checkers themselves: a writable PTE to a non-exclusive pinned page with
    a low refcount, a surplus reference, a fresh page that is not exclusive."""
    from attrs import evolve

    src = """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write) as mr
    """
    before = state_after(src, "A: mmap(buf, anon, private, rw)")
    st = state_after(src, "A: pin(buf, write) as mr")
    assert invariant_violations(st) == [] and exact_refcount_violations(st) == []
    pages = list(st.pages)
    pages[1] = evolve(pages[1], anon_exclusive=False, refcount=3, mapcount=2)
    bad = " ".join(invariant_violations(evolve(st, pages=tuple(pages))))
    for what in ("I2", "I3", "mapcount", "refcount"):
        assert what in bad, (what, bad)
    pages[1] = evolve(st.pages[1], refcount=st.pages[1].refcount + 1)
    assert exact_refcount_violations(evolve(st, pages=tuple(pages)))
    pages[1] = evolve(st.pages[1], anon_exclusive=False)
    assert fresh_page_violations(before, evolve(st, pages=tuple(pages)))


@pytest.mark.parametrize("name", sorted(INVARIANT_SCENARIOS))
def test_refcount_is_exact_after_every_step(name):
    """Without transient references (no LRU pagevecs) the model's refcount
    equals the references held: a surplus is a leak that turns reuse into copy."""
    for step, st in states(INVARIANT_SCENARIOS[name]):
        bad = exact_refcount_violations(st)
        assert not bad, f"after step {step.number} `{step.text}`: {bad}"


# --- the reference's §11 table, column E5 (5.19+) ---------------------------------------------------------------------


# Each scenario's assertions are the E5 verdict; where a rule decides it, the rule's decision
# (rule, step, decision, commit) is asserted too.
E5_COLUMN = [
    pytest.param(
        """
        process A
        pipe P
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: vmsplice(buf, P)
        B: munmap(buf)
        A: write(buf, 2)
        B: pipe_read(P) as v
        assert v == 1
        assert A.buf == 2
        """,
        # not exclusive, refcount 2 (mapping + pipe) → copy
        ("wp_can_reuse", "A: write(buf, 2)", False, "53a05ad9f21d"),
        id="s1_vmsplice_child_munmap_no_leak",
    ),
    pytest.param(
        """
        process A
        pipe P
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: vmsplice(buf, P)
        reclaim: swapout(A.buf)
        B: munmap(buf)
        A: write(buf, 2)
        B: pipe_read(P) as v
        assert v == 1
        assert A.buf == 2
        """,
        None,
        id="s3_fully_swapped_before_munmap_no_leak",
    ),
    pytest.param(
        """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write, longterm) as mr
        A: fork() as B
        A: write(buf, 2)
        mr: dma_read() as seen
        assert seen == 2
        assert mr is A.buf
        assert B.buf == 1
        """,
        ("fork_copy_anon", "A: fork() as B", True, "6c287605fd56"),
        id="s5_longterm_pin_then_fork_parent_writes_first_coherent",
    ),
    pytest.param(
        """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write, longterm) as mr
        A: fork() as B
        B: write(buf, 3)
        A: write(buf, 2)
        mr: dma_read() as seen
        assert seen == 2
        assert mr is A.buf
        assert B.buf == 3
        """,
        None,
        id="s6_longterm_pin_then_fork_child_writes_first_coherent",
    ),
    pytest.param(
        """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: gup(buf, write) as dio
        A: fork() as B
        A: write(buf, 2)
        dio: dma_write(7)
        assert A.buf == 2
        assert not (dio is A.buf)
        assert B.buf == 7
        """,
        # NO: FOLL_GET is invisible to fork (§11 S7)
        ("fork_copy_anon", "A: fork() as B", False, "6c287605fd56"),
        id="s7_foll_get_in_flight_across_fork_parent_misses_the_dma",
    ),
    pytest.param(
        """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write) as mr
        A: mprotect(buf, ro)
        A: mprotect(buf, rw)
        A: write(buf, 2)
        mr: dma_read() as seen
        assert seen == 2
        assert mr is A.buf
        assert faults(A) == 1
        """,
        None,
        id="s9_pin_mprotect_ro_rw_coherent_without_a_fault",
    ),
    pytest.param(
        """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write, longterm) as mr
        reclaim: swapout(A.buf) as so
        A: read(buf) as r
        A: write(buf, 2)
        mr: dma_read() as seen
        assert seen == 2
        assert r == 1
        assert mr is A.buf
        assert failed(so)
        """,
        None,
        id="s10_pinned_page_under_memory_pressure_coherent",
    ),
    pytest.param(
        """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        reclaim: swapout(A.buf)
        A: read(buf) as r
        A: write(buf, 2)
        assert r == 1
        assert A.buf == 2
        assert cow_copies(A) == 0
        """,
        ("swapin_exclusive", "A: read(buf) as r", True, "1493a1913e34"),
        id="s11_swapped_out_page_read_then_written_is_not_copied",
    ),
]


@pytest.mark.parametrize("src, decision", E5_COLUMN)
def test_e5_column(src, decision):
    r = run_src(src)
    assert_checks_hold(r)
    if decision is not None:
        assert_decision(r, *decision)


def test_s3_vmsplice_leak_through_swap_no_leak():
    r = run_src("""
        process A
        pipe P
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: vmsplice(buf, P)
        B: munmap(buf)
        reclaim: swapout(A.buf)
        A: write(buf, 2)
        B: pipe_read(P) as v
        assert v == 1
        assert A.buf == 2
    """)
    assert_checks_hold(r)
    assert not rule_events(r, "swapin_exclusive", "A: write(buf, 2)")[0].decision
    assert mm(r.final, "A").cow_copies == 1


def test_s8_ro_pin_of_a_cow_shared_page_stays_coherent():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: pin(buf, read) as mr
        A: write(buf, 2)
        mr: dma_read() as seen
        assert seen == 2
        assert mr is A.buf
        assert B.buf == 1
    """)
    assert_checks_hold(r)
    assert decisions(r, "gup_must_unshare", "A: pin(buf, read) as mr")[0] == (True, "a7f226604170")
    assert_decision(r, "wp_can_reuse", "A: write(buf, 2)", True, "6c287605fd56")  # "later reuse"


# --- rules of the version timeline (cowdsl/kernel/timeline.py) --------------------------------------------------------

THP_SHARED_THEN_WRITE = """
    process A
    A: mmap(buf, anon, private, rw, thp)
    A: write(buf, 1)
    A: fork() as B
    A: write(buf, 2)
"""


@covers("thp_wp_copies_whole", True)
def test_thp_wp_copies_whole_before_5_8():
    # 3917c80280c9 (5.8): before it, do_huge_pmd_wp_page copied the whole THP (read in 4.19.222)
    r = run_src(THP_SHARED_THEN_WRITE, backend="5.7")
    assert_decision(r, "thp_wp_copies_whole", "A: write(buf, 2)", True, "3917c80280c9")
    assert page(r.final, "A", "buf").kind == "thp" and page(r.final, "A", "buf").data == 2


@covers("thp_wp_copies_whole", False)
def test_thp_wp_splits_and_copies_a_page_from_5_8():
    for backend in ("5.8", "4.19.222:thp_wp=split"):
        r = run_src(THP_SHARED_THEN_WRITE, backend=backend)
        assert_decision(r, "thp_wp_copies_whole", "A: write(buf, 2)", False, "3917c80280c9")
        assert page(r.final, "A", "buf").kind == "small"
    assert page(run_src(THP_SHARED_THEN_WRITE, backend="4.19.222").final, "A", "buf").kind == "thp"


PVW = """
    process A, B
    A: mmap(buf, anon, private, rw)
    A: write(buf, 1)
    B: process_vm_writev(A.buf, 5)
"""


@covers("pvm_foll_pin", True)
def test_pvm_pins_from_5_6():
    r = run_src(PVW, backend="5.6")
    assert_decision(r, "pvm_foll_pin", "B: process_vm_writev(A.buf, 5)", True, "803e4572d7c5")
    assert any("unpin_user_pages" in str(e) for rec in r.steps for e in rec.events)


@covers("pvm_foll_pin", False)
def test_pvm_takes_get_references_before_5_6():
    r = run_src(PVW, backend="5.4.214")
    assert_decision(r, "pvm_foll_pin", "B: process_vm_writev(A.buf, 5)", False, "803e4572d7c5")
    assert any("put_page" in str(e) for rec in r.steps for e in rec.events)
    assert page(r.final, "A", "buf").data == 5 and page(r.final, "A", "buf").pincount == 0


HUGETLB_FORK = """
    process A
    A: mmap(buf, anon, private, rw, hugetlb)
    A: write(buf, 1)
    A: fork() as B
"""


@covers("hugetlb_fork_wp_seq", False)
def test_hugetlb_fork_outside_write_protect_seq_before_5_19():
    r = run_src(HUGETLB_FORK, backend="5.15")
    assert_decision(r, "hugetlb_fork_wp_seq", "A: fork() as B", False, "623a1ddfeb23")
    assert mm(r.final, "A").wp_seq == 0  # never raised: GUP-fast cannot see this fork


@covers("hugetlb_fork_wp_seq", True)
def test_hugetlb_fork_inside_write_protect_seq_from_5_19():
    r = run_src(HUGETLB_FORK, backend="5.19")
    assert_decision(r, "hugetlb_fork_wp_seq", "A: fork() as B", True, "623a1ddfeb23")
    assert mm(r.final, "A").wp_seq == 2


KSM_RO_CLEAN = """
    process A, B
    A: mmap(buf, anon, private, rw)
    A: madvise(buf, mergeable)
    B: mmap(buf, anon, private, rw)
    B: madvise(buf, mergeable)
    A: write(buf, 1)
    B: write(buf, 1)
    reclaim: swapout(A.buf)
    A: read(buf) as v
    A: gup(buf) as r
    ksmd: ksm_merge(A.buf, B.buf) as k
"""


@covers("ksm_checks_refs", False)
def test_ksm_does_not_compare_references_of_a_read_only_clean_pte_before_5_19():
    r = run_src(KSM_RO_CLEAN, backend="5.18")
    a_page, b_page = rule_events(r, "ksm_checks_refs", "ksmd: ksm_merge(A.buf, B.buf) as k")  # A's, then B's
    assert (a_page.decision, a_page.commit, b_page.decision) == (False, "6c287605fd56", True)
    assert r.final.result("k").ok and page(r.final, "A", "buf").ksm


@covers("ksm_checks_refs", True)
def test_ksm_compares_references_of_an_exclusive_page_from_5_19():
    r = run_src(KSM_RO_CLEAN, backend="5.19")
    evs = rule_events(r, "ksm_checks_refs", "ksmd: ksm_merge(A.buf, B.buf) as k")
    assert evs and evs[0].decision is True and evs[0].commit == "6c287605fd56"
    assert not r.final.result("k").ok


@covers("swapin_read_writable", True)
def test_swapin_read_fault_maps_writable_from_6_11():
    r = run_src(SWAPPED_OUT_THEN_READ, backend="6.11")
    assert_decision(r, "swapin_read_writable", "A: read(buf) as v", True, "c18160dba5ff")
    st = r.final
    assert pte(st, "A", "buf").write and not pte(st, "A", "buf").dirty  # writable, clean: a read fault


@covers("swapin_read_writable", False)
def test_swapin_read_fault_maps_read_only_before_6_11():
    r = run_src(SWAPPED_OUT_THEN_READ, backend="6.10")
    assert_decision(r, "swapin_read_writable", "A: read(buf) as v", False, "c18160dba5ff")
    assert not pte(r.final, "A", "buf").write


# --- odirect_foll_pin (O_DIRECT's bio, a7e689dd1c06, 6.5) -------------------------------------------

ODIRECT = """
    process A
    file F = [7]
    A: mmap(buf, anon, private, rw)
    A: write(buf, 1)
    A: odirect_read(buf, file=F)
"""


@covers("odirect_foll_pin", True)
def test_odirect_bio_pins_from_6_5():
    r = run_src(ODIRECT, backend="6.5")
    assert_decision(r, "odirect_foll_pin", "A: odirect_read(buf, file=F)", True, "a7e689dd1c06")
    texts = [str(e) for rec in r.steps for e in rec.events]
    assert any("FOLL_PIN|FOLL_WRITE" in t for t in texts) and any("unpin_user_page" in t for t in texts)
    assert mm(r.final, "A").has_pinned  # a short-term pin sets MMF_HAS_PINNED too
    p = page(r.final, "A", "buf")
    assert p.data == 7 and p.pincount == 0 and p.refcount == 1


@covers("odirect_foll_pin", False)
def test_odirect_bio_takes_a_get_reference_before_6_5():
    r = run_src(ODIRECT, backend="6.4")
    assert_decision(r, "odirect_foll_pin", "A: odirect_read(buf, file=F)", False, "a7e689dd1c06")
    texts = [str(e) for rec in r.steps for e in rec.events]
    assert any("FOLL_GET|FOLL_WRITE" in t for t in texts) and any("put_page" in t for t in texts)
    assert not mm(r.final, "A").has_pinned
    p = page(r.final, "A", "buf")
    assert p.data == 7 and p.pincount == 0 and p.refcount == 1


# --- ksm_break_unshares (break_ksm, v6.2) and has_memory_merge_prctl (d7597f59d1d3, 6.4) ------------

UNMERGE = """
    process A, B
    A: mmap(buf, anon, private, rw)
    A: madvise(buf, mergeable)
    B: mmap(buf, anon, private, rw)
    B: madvise(buf, mergeable)
    A: write(buf, 1)
    B: write(buf, 1)
    ksmd: ksm_merge(A.buf, B.buf)
    A: madvise(buf, unmergeable)
"""


@covers("ksm_break_unshares", True)
def test_unmerge_unshares_the_ksm_page_read_only_from_6_2():
    r = run_src(UNMERGE, backend="6.2")
    assert_decision(r, "ksm_break_unshares", "A: madvise(buf, unmergeable)", True, "6cce3314b928")
    p = page(r.final, "A", "buf")
    assert not p.ksm and p.data == 1 and p.anon_exclusive
    assert not pte(r.final, "A", "buf").write  # FAULT_FLAG_UNSHARE maps the copy read-only
    assert page(r.final, "B", "buf").ksm  # B still maps the KSM page


@covers("ksm_break_unshares", False)
def test_unmerge_write_faults_the_ksm_page_before_6_2():
    r = run_src(UNMERGE, backend="6.1")
    assert_decision(r, "ksm_break_unshares", "A: madvise(buf, unmergeable)", False, "6cce3314b928")
    assert not page(r.final, "A", "buf").ksm and pte(r.final, "A", "buf").write  # the write fault's copy


PRCTL_MERGE = """
    process A
    A: mmap(p, anon, private, rw)
    A: prctl(memory_merge, enable) as pr
    A: mmap(q, anon, private, rw)
    A: write(p, 1)
    A: write(q, 1)
    A: fork() as B
    ksmd: ksm_merge(A.p, A.q) as k
"""


@covers("has_memory_merge_prctl", True)
def test_prctl_memory_merge_makes_every_mapping_mergeable_from_6_4():
    r = run_src(PRCTL_MERGE + "    assert not failed(pr) and not failed(k) and ksm(A.p) and ksm(A.q)\n", backend="6.4")
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]
    assert_decision(r, "has_memory_merge_prctl", "A: prctl(memory_merge, enable) as pr", True, "d7597f59d1d3")
    assert mm(r.final, "B").merge_any  # ksm_fork: MMF_VM_MERGE_ANY is inherited


@covers("has_memory_merge_prctl", False)
def test_prctl_memory_merge_is_einval_before_6_4():
    r = run_src(PRCTL_MERGE + "    assert failed(pr) and failed(k) and not ksm(A.p)\n", backend="6.3")
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]
    assert_decision(r, "has_memory_merge_prctl", "A: prctl(memory_merge, enable) as pr", False, "d7597f59d1d3")
