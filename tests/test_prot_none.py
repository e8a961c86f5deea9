"""`mprotect(buf, none)`: PROT_NONE.

The VMA loses VM_READ and VM_WRITE (vma_is_accessible is false) and its present
PTEs are pte_protnone: a load or store by the process is SIGSEGV, GUP needs
FOLL_FORCE (check_vma_flags) and GUP-fast leaves such entries to the slow path.
A forced write (/proc/PID/mem) still breaks COW in a private PROT_NONE mapping.
KSM's follow_page() without FOLL_FORCE stopped following pte_protnone entries
in 6.1 (474098edac26) until 6.5 and 6.4.13 (d74943a2f3cd): ksmd does not merge
such pages, and 6.1's break_ksm does not unmerge them.  What
ksm_functional_tests.c test_prot_none asks.
"""

from __future__ import annotations

import pytest
from helpers_semantics import mm, outcome, run_src

from cowdsl import ops
from cowdsl.kernel import timeline
from cowdsl.kernel.version import v

MAPPED = """
    process A
    A: mmap(buf, anon, private, rw, pages=2)
    A: write(buf[0], 7)
    A: write(buf[1], 7)
"""


def checks(r) -> dict[str, bool | None]:
    return {c.assertion.text: c.holds for c in r.checks}


def test_none_is_a_protection_of_mprotect():
    (prot, _tail) = ops.OPS["mprotect"].flags
    assert prot.choices == ("rw", "ro", "none") and "PROT_NONE" in prot.doc


@pytest.mark.parametrize("access", ["read(buf[0]) as x", "write(buf[0], 1)"])
def test_a_load_or_store_by_the_process_is_sigsegv(access):
    r = run_src(MAPPED + f"    A: mprotect(buf, none)\n    A: {access}\n    assert segv(A)\n")
    assert r.verdict == "pass", checks(r)
    assert mm(r.final, "A").segv


def test_mprotect_back_to_rw_makes_it_accessible_again():
    r = run_src(MAPPED + """
        A: mprotect(buf, none)
        A: mprotect(buf, rw)
        A: read(buf[0]) as x
        assert x == 7 and alive(A)
    """)
    assert r.verdict == "pass", checks(r)
    assert mm(r.final, "A").vma("buf").read


def test_only_part_of_the_mapping():
    r = run_src(MAPPED + """
        A: mprotect(buf[1], none)
        A: read(buf[0]) as x
        A: write(buf[1], 1)
        assert x == 7 and segv(A)
    """)
    assert r.verdict == "pass", checks(r)


@pytest.mark.parametrize("pin, error", [("pin(buf[0]) as p", "EFAULT"), ("pin(buf[0], fast) as p", "EFAULT"),
                                         ("pin(buf[0], write) as p", "EFAULT")])
def test_gup_needs_foll_force(pin, error):
    r = run_src(MAPPED + f"    A: mprotect(buf, none)\n    A: {pin}\n    assert failed(p)\n")
    assert r.verdict == "pass", checks(r)
    assert outcome(r, f"A: {pin}").error == error


def test_a_forced_write_breaks_cow_in_a_private_prot_none_mapping():
    r = run_src(MAPPED + """
        A: fork() as B
        A: mprotect(buf, none)
        A: proc_mem_write(buf[0], 9)
        assert A.buf[0] == 9 and B.buf[0] == 7 and A.buf[0] is not B.buf[0] and not writable(A.buf[0])
    """)
    assert r.verdict == "pass", checks(r)


MERGE_PROT_NONE = MAPPED + """
    A: mprotect(buf, none)
    A: madvise(buf, mergeable)
    ksmd: ksm_merge(A.buf[0], A.buf[1]) as k
    assert not failed(k)
"""


@pytest.mark.parametrize("version, merges", [
    ("5.10", True), ("5.15", True), ("6.0", True), ("6.1", False), ("6.4.12", False), ("6.4.13", True),
    ("6.5", True), ("6.18", True),
])
def test_ksmd_merges_prot_none_pages_except_6_1_to_6_4_12(version, merges):
    r = run_src(MERGE_PROT_NONE, backend=version)
    assert [c.holds for c in r.checks] == [merges]


UNMERGE_AFTER_MPROTECT = MAPPED + """
    A: madvise(buf, mergeable)
    ksmd: ksm_merge(A.buf[0], A.buf[1]) as k
    A: mprotect(buf, none)
    A: madvise(buf, unmergeable)
    assert not failed(k) and A.buf[0] is not A.buf[1]
"""


@pytest.mark.parametrize("version, unmerged", [("5.10", True), ("6.0", True), ("6.1", False), ("6.2", True),
                                                ("6.18", True)])
def test_6_1s_break_ksm_does_not_see_a_prot_none_ksm_page(version, unmerged):
    """6.1 break_ksm looks with follow_page (474098edac26 hides pte_protnone); 6.2 walks the page table."""
    r = run_src(UNMERGE_AFTER_MPROTECT, backend=version)
    assert [c.holds for c in r.checks] == [unmerged]


def test_the_timeline_has_both_changes():
    s = timeline.settings
    assert s(v("6.0"))["follow_page_protnone"] == "follow" and s(v("6.1"))["follow_page_protnone"] == "skip"
    assert s(v("6.4.12"))["follow_page_protnone"] == "skip" and s(v("6.4.13"))["follow_page_protnone"] == "follow"
    assert s(v("6.1.158"))["follow_page_protnone"] == "skip"  # not backported: it failed to apply to 6.1-stable
