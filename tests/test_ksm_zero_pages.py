"""The KSM zero page: with /sys/kernel/mm/ksm/use_zero_pages (e86c59b1b12d, 4.11)
ksmd maps the shared zero page in place of a zero-filled page (ksm_merge_zero:
try_to_merge_with_zero_page, replace_page); from 6.5 (79271476b336) replace_page marks
that PTE dirty and MADV_UNMERGEABLE unshares it like a KSM page (is_ksm_zero_pte)."""

from __future__ import annotations

import pytest
from helpers_semantics import assert_decision, live_pages, page, pfn, pte, run_src

from cowdsl import ops
from cowdsl.kernel import timeline
from cowdsl.kernel.version import v
from cowdsl.semantics import invariants as inv
from cowdsl.semantics.state import ZERO_PFN

MERGED = """
    process A
    A: mmap(buf, anon, private, rw, pages=2)
    A: madvise(buf, mergeable)
    A: write(buf[0], 0)                 # zero-filled, populated
    A: write(buf[1], 0)
    ksmd: ksm_merge_zero(A.buf[0]) as z0
    ksmd: ksm_merge_zero(A.buf[1]) as z1
"""


@pytest.fixture(autouse=True)
def debug_invariants(monkeypatch):
    monkeypatch.setenv(inv.ENV, "1")


def texts(r) -> list[str]:
    return [str(e) for rec in r.steps for e in rec.events]


def test_declared_for_ksmd_under_mmap_read():
    op = ops.OPS["ksm_merge_zero"]
    assert op.actor == ops.KSMD and op.signature() == "ksm_merge_zero(addr)"
    assert op.program.steps[0].lock is ops.Lock.MMAP_READ


@pytest.mark.parametrize("version, setting", [
    ("4.10", {"ksm_use_zero_pages": "off"}),
    ("4.11", {"ksm_use_zero_pages": "on", "ksm_zero_unshare": "off"}),
    ("6.4", {"ksm_zero_unshare": "off"}),
    ("6.5", {"ksm_use_zero_pages": "on", "ksm_zero_unshare": "on"}),
])
def test_each_version_boundary(version, setting):
    got = timeline.settings(v(version))
    assert {k: got[k] for k in setting} == setting


def test_before_4_11_there_is_no_use_zero_pages():
    r = run_src(MERGED, backend="4.10")
    assert r.final.result("z0").error == "ENOENT"
    assert_decision(r, "has_ksm_use_zero_pages", "ksmd: ksm_merge_zero(A.buf[0]) as z0", False, "e86c59b1b12d")
    assert page(r.final, "A", "buf").data == 0 and not page(r.final, "A", "buf").zero


@pytest.mark.parametrize("version, marked", [("6.4", False), ("6.5", True), ("5.10", False)])
def test_a_zero_filled_page_becomes_the_zero_page_marked_dirty_from_6_5(version, marked):
    r = run_src(MERGED, backend=version)
    st = r.final
    assert st.result("z0").ok and st.result("z1").ok
    assert pfn(st, "A", "buf", 0) == pfn(st, "A", "buf", 1) == ZERO_PFN
    e = pte(st, "A", "buf", 0)
    assert not e.write and e.dirty is marked
    assert live_pages(st) == []  # both anonymous pages freed
    assert_decision(r, "ksm_marks_zero_pages", "ksmd: ksm_merge_zero(A.buf[0]) as z0", marked, "79271476b336")


def test_what_ksmd_does_not_replace():
    r = run_src("""
        process A, B
        A: mmap(buf, anon, private, rw, pages=2)
        A: madvise(buf, mergeable)
        A: write(buf[0], 5)
        A: write(buf[1], 0)
        A: pin(buf[1], read) as mr
        B: mmap(buf, anon, private, rw)
        B: write(buf, 0)
        ksmd: ksm_merge_zero(A.buf[0]) as nonzero
        ksmd: ksm_merge_zero(A.buf[1]) as pinned
        ksmd: ksm_merge_zero(B.buf) as unadvised
    """, backend="6.18")
    st = r.final
    assert st.result("nonzero").error == "pages differ"
    assert st.result("pinned").error == "EBUSY"  # write_protect_page: references beyond the mapping
    assert st.result("unadvised").error == "not mergeable"
    assert not page(st, "A", "buf", 1).zero and not page(st, "B", "buf").zero
    assert any("not zero-filled" in t for t in texts(r)) and any("not VM_MERGEABLE" in t for t in texts(r))


@pytest.mark.parametrize("version, unshared", [("6.4", False), ("6.5", True), ("6.18", True)])
def test_madv_unmergeable_unshares_ksm_placed_zero_pages_from_6_5(version, unshared):
    r = run_src(MERGED + "A: madvise(buf, unmergeable)\n", backend=version)
    st = r.final
    for i in (0, 1):
        assert page(st, "A", "buf", i).zero is not unshared
        assert page(st, "A", "buf", i).data == 0
    if unshared:
        assert pfn(st, "A", "buf", 0) != pfn(st, "A", "buf", 1)
        assert not pte(st, "A", "buf", 0).write  # FAULT_FLAG_UNSHARE: the copy stays read-only
        assert any("a zero page KSM placed (is_ksm_zero_pte)" in t for t in texts(r))


def test_a_zero_page_a_read_fault_mapped_is_not_unshared():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: madvise(buf, mergeable)
        A: read(buf) as z                  # do_anonymous_page: the zero page, a clean PTE
        A: madvise(buf, unmergeable)
    """, backend="6.18")
    assert pfn(r.final, "A", "buf") == ZERO_PFN and not pte(r.final, "A", "buf").dirty


def test_prctl_disable_unshares_them_too_and_a_write_copies_one():
    r = run_src("""
        process A
        A: prctl(memory_merge, enable)
        A: mmap(buf, anon, private, rw, pages=2)
        A: write(buf[0], 0)
        A: write(buf[1], 0)
        ksmd: ksm_merge_zero(A.buf[0]) as z0
        ksmd: ksm_merge_zero(A.buf[1]) as z1
        A: write(buf[1], 9)                 # do_wp_page: a COW of the zero page
        A: prctl(memory_merge, disable)
    """, backend="6.18")
    st = r.final
    assert not page(st, "A", "buf", 0).zero and page(st, "A", "buf", 1).data == 9
    assert pte(st, "A", "buf", 1).write


def test_the_docs_example_fails_on_6_4_and_passes_on_6_5():
    from pathlib import Path

    from cowdsl.load import load_text
    from cowdsl.run import run

    text = (Path(__file__).resolve().parent.parent / "docs" / "language.md").read_text(encoding="utf-8")
    src = text[text.index("#### The KSM zero page"):].split("```")[1].split("\n", 1)[1]
    sc = load_text(src, "x.cow")
    assert [run(sc, ver).verdict for ver in ("6.4", "6.5")] == ["fail", "pass"]
    assert all(run(sc, ver).ok for ver in ("6.4", "6.5"))
