"""`ksm_merging_pages(A)`: mm->ksm_merging_pages, what /proc/PID/ksm_merging_pages shows.

5.19+ (7609385337a4): +1 as each rmap_item of the mm joins the stable tree
(stable_tree_append), -1 as ksmd's scans take it out (remove_rmap_item_from_tree,
remove_node_from_stable_tree).  fork copied the number into the child (dup_mm)
until ksm_fork zeroed it (4d6fc29f3634: 6.18, 6.6.113, 6.12.54, 6.17.4).  Before
5.19 the term is not in the version: its assertions are not decided.  What
ksm_functional_tests.c test_fork_ksm_merging_page_count asks.
"""

from __future__ import annotations

import pytest
from helpers_semantics import mm, record, run_src

from cowdsl import ops
from cowdsl import scenario as S
from cowdsl.check.assertions import PROCESS_FACTS
from cowdsl.errors import CowError
from cowdsl.kernel import timeline
from cowdsl.kernel.version import v
from cowdsl.load import load_text

MERGED = """
    process A
    A: mmap(buf, anon, private, rw, pages=2)
    A: write(buf[0], 7)
    A: write(buf[1], 7)
    A: madvise(buf, mergeable)
    ksmd: ksm_merge(A.buf[0], A.buf[1]) as k
"""
FORKED = MERGED + "    A: fork() as B\n"


def checks(r) -> dict[str, bool | None]:
    return {c.assertion.text: c.holds for c in r.checks}


def test_it_is_a_process_counter_declared_once():
    spec = ops.FACTS["ksm_merging_pages"]
    assert (spec.kind, spec.arity, spec.takes) == ("int", (1,), "process")
    assert "ksm_merging_pages" in PROCESS_FACTS  # derived from the declaration
    (a,) = load_text("process A\nassert ksm_merging_pages(A) == 0\n", "x.cow").assertions
    assert a.expr == S.Cmp(S.FactCall("ksm_merging_pages", (S.ProcessRef("A"),)), "==", S.Const(0))


@pytest.mark.parametrize("text, message", [
    ("assert ksm_merging_pages(A.buf) == 0\n", "`ksm_merging_pages` takes a process"),
    ("assert ksm_merging_pages == 0\n", "`ksm_merging_pages` needs an argument"),
    ("assert ksm_merging_pages(A)\n", "`ksm_merging_pages(A)` is not true or false"),
    ("assert ksm_merging_pages(A, A) == 0\n", "`ksm_merging_pages` takes 1 argument"),
])
def test_misuse_is_an_error(text, message):
    with pytest.raises(CowError) as e:
        load_text("process A\nA: mmap(buf, anon, private, rw)\n" + text, "x.cow")
    assert message in str(e.value)
    assert "x.cow:3:" in str(e.value)


def test_a_merge_counts_both_rmap_items():
    r = run_src(MERGED + "    assert ksm_merging_pages(A) == 2\n", backend="6.1")
    assert r.verdict == "pass", checks(r)
    assert mm(r.final, "A").ksm_stable == (("buf", 0), ("buf", 1))


def test_an_unmerged_page_leaves_the_count_at_ksmds_next_scan():
    """break_ksm does not touch the rmap_items: the count drops only when ksmd scans again."""
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, pages=2)
        A: mmap(other, anon, private, rw, pages=2)
        A: write(buf[0], 7)
        A: write(buf[1], 7)
        A: write(other[0], 3)
        A: write(other[1], 3)
        A: madvise(buf, mergeable)
        A: madvise(other, mergeable)
        ksmd: ksm_merge(A.buf[0], A.buf[1])
        A: madvise(buf, unmergeable)
        reachable: ksm_merging_pages(A) == 2 and not ksm(A.buf[0])
        ksmd: ksm_merge(A.other[0], A.other[1])
        assert ksm_merging_pages(A) == 2
    """, backend="6.18")
    assert r.verdict == "pass", checks(r)
    assert mm(r.final, "A").ksm_stable == (("other", 0), ("other", 1))


def test_merging_again_does_not_count_twice():
    r = run_src(MERGED + """
        A: mmap(c, anon, private, rw)
        A: write(c, 7)
        A: madvise(c, mergeable)
        ksmd: ksm_merge(A.buf[0], A.c)
        assert ksm_merging_pages(A) == 3
    """, backend="6.18")
    assert r.verdict == "pass", checks(r)


@pytest.mark.parametrize("version, child", [
    ("5.19", 2), ("6.1", 2), ("6.6.112", 2), ("6.6.113", 0), ("6.12.53", 2), ("6.12.54", 0),
    ("6.17.3", 2), ("6.17.4", 0), ("6.18", 0),
])
def test_fork_copies_the_count_until_ksm_fork_resets_it(version, child):
    r = run_src(FORKED, backend=version)
    assert mm(r.final, "A").ksm_merging_pages == 2
    assert mm(r.final, "B").ksm_merging_pages == child
    assert mm(r.final, "B").ksm_stable == ()  # the child's mm_slot starts empty either way
    assert any("4d6fc29f3634" in e.text for e in record(r, "A: fork() as B").events) == (child == 0)


def test_the_childs_own_merges_count_from_the_copy():
    r = run_src(FORKED + """
        B: write(buf[0], 9)
        B: write(buf[1], 9)
        ksmd: ksm_merge(B.buf[0], B.buf[1])
        assert ksm_merging_pages(B) == 4
    """, backend="6.1")
    assert r.verdict == "pass", checks(r)


@pytest.mark.parametrize("version", ["5.10", "5.15", "5.18"])
def test_it_is_not_in_versions_before_5_19(version):
    """No value, not 0: a comparison with it is false, and the values say why."""
    r = run_src(FORKED + """
        assert ksm_merging_pages(B) == 0
        assert not (ksm_merging_pages(A) >= 0)
        assert not failed(k)
    """, backend=version)
    zero, nonneg, merged = r.checks
    assert zero.holds is False and nonneg.holds is True and merged.holds is True
    shown = zero.values["ksm_merging_pages(B)"]
    assert shown.startswith("none (not in this version") and "5.19+ (7609385337a4)" in shown


def test_the_timeline_has_both_changes():
    count = next(c for c in timeline.TIMELINE if c.commit == "7609385337a4")
    reset = next(c for c in timeline.TIMELINE if c.commit == "4d6fc29f3634")
    assert not count.in_version(v("5.18")) and count.in_version(v("5.19"))
    assert timeline.settings(v("5.18"))["ksm_merging_pages"] == "off"
    assert timeline.settings(v("5.19"))["ksm_merging_pages"] == "on"
    for old, new in (("6.6.112", "6.6.113"), ("6.12.53", "6.12.54"), ("6.17.3", "6.17.4"), ("6.17", "6.18")):
        assert timeline.settings(v(old))["ksm_fork_counters"] == "copy"
        assert timeline.settings(v(new))["ksm_fork_counters"] == "reset"
    assert timeline.settings(v("6.1.158"))["ksm_fork_counters"] == "copy"  # no 6.1.y backport
    assert reset.first_in((6, 6)) == v("6.6.113") and reset.first_in((6, 1)) is None
