"""MADV_COLLAPSE (mm/khugepaged.c madvise_collapse, 7d8faaf15545, 6.1): a PTE-mapped
THP range copied into a new PMD-mapped THP, exclusive to the caller; refused for a page
with extra references (-EINVAL until ae63c898f400: 6.2, 6.1.13; -EAGAIN after), and,
until 6.18, for a range without a writable PTE (SCAN_PAGE_RO: the parent's range right
after fork, a swapped-out THP)."""

from __future__ import annotations

import pytest
from helpers_semantics import assert_decision, live_pages, page, pfn, pte, run_src

from cowdsl import ops
from cowdsl.kernel import timeline
from cowdsl.kernel.spec import resolve
from cowdsl.kernel.version import v
from cowdsl.ops import Lock
from cowdsl.semantics import invariants as inv

PTE_MAPPED = """
    process A
    A: mmap(buf, anon, private, rw, thp)
    A: write(buf, 1)
    A: mprotect(buf, ro, tail)          # cow.c: mprotect() of one subpage splits the PMD
    A: mprotect(buf, rw, tail)
"""
COLLAPSE = "A: madvise(buf, collapse) as c"


@pytest.fixture(autouse=True)
def debug_invariants(monkeypatch):
    monkeypatch.setenv(inv.ENV, "1")  # bookkeeping checked after every micro-step


def texts(r) -> list[str]:
    return [str(e) for rec in r.steps for e in rec.events]


def collapse(src: str, version: str = "6.18"):
    return run_src(PTE_MAPPED + src, backend=version)


# --- the declaration and the timeline ------------------------------------------------------------


def test_declared_as_a_scan_under_mmap_read_then_a_collapse_under_mmap_write():
    prog = ops.OPS["madvise"].program_for({"collapse"})
    assert [(s.label, s.lock) for s in prog.steps] == [("scan", Lock.MMAP_READ), ("collapse", Lock.MMAP_WRITE)]
    assert "collapse" in ops.OPS["madvise"].flag_words() and "collapse" in ops.flag_names()


@pytest.mark.parametrize("version, setting", [
    ("6.0", {"madv_collapse": "off"}),
    ("6.1", {"madv_collapse": "on", "collapse_errno": "einval", "collapse_ro": "refuse"}),
    ("6.1.12", {"collapse_errno": "einval"}),
    ("6.1.13", {"collapse_errno": "eagain"}),
    ("6.1.158", {"collapse_errno": "eagain", "collapse_ro": "refuse"}),
    ("6.2", {"collapse_errno": "eagain"}),
    ("6.17", {"collapse_ro": "refuse"}),
    ("6.18", {"madv_collapse": "on", "collapse_errno": "eagain", "collapse_ro": "allow"}),
])
def test_each_version_boundary(version, setting):
    got = timeline.settings(v(version))
    assert {k: got[k] for k in setting} == setting


def test_the_changes_cite_their_commits():
    by_key = {c.key: c for c in timeline.TIMELINE}
    assert by_key["madv-collapse"].commit == "7d8faaf15545" and by_key["madv-collapse"].mainline == v("6.1-rc1")
    eagain = by_key["collapse-eagain"]
    assert eagain.commit == "ae63c898f400" and eagain.mainline == v("6.2") and eagain.stable == (((6, 1), 13),)
    assert by_key["collapse-ro"].mainline == v("6.18-rc1")
    assert resolve("anon-exclusive:madv_collapse=off").option("madv_collapse") == "off"


# --- what it does ---------------------------------------------------------------------------------


def test_before_6_1_the_advice_is_unknown():
    r = collapse(COLLAPSE, "6.0")
    assert r.final.result("c").error == "EINVAL"
    assert_decision(r, "has_madv_collapse", COLLAPSE, False, "7d8faaf15545")
    assert page(r.final, "A", "buf").kind == "pte_thp"  # left PTE-mapped


@pytest.mark.parametrize("version", ["6.1", "6.18"])
def test_a_pte_mapped_thp_is_copied_into_a_new_exclusive_pmd_mapped_thp(version):
    r = collapse(COLLAPSE, version)
    st = r.final
    assert st.result("c").ok
    new = page(st, "A", "buf")
    assert new.kind == "thp" and new.data == 1 and new.anon_exclusive
    assert (new.refcount, new.mapcount, new.siblings) == (1, 1, 0)
    e = pte(st, "A", "buf")
    assert e.write and e.dirty  # maybe_pmd_mkwrite(pmd_mkdirty(...)) in a VM_WRITE VMA
    assert live_pages(st) == [pfn(st, "A", "buf")]  # the PTE-mapped THP is freed
    assert any("collapse_huge_page: A.buf[0] copied into the new THP" in t for t in texts(r))


def test_a_pmd_mapped_thp_counts_as_collapsed_and_is_left_alone():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, thp)
        A: write(buf, 1)
        A: madvise(buf, collapse) as c
        A: mmap(z, anon, private, rw, thp)
        A: read(z) as zero                  # the huge zero page, PMD-mapped too
        A: madvise(z, collapse) as cz
    """, backend="6.18")
    st = r.final
    assert st.result("c").ok and st.result("cz").ok
    assert pfn(st, "A", "buf") == 1 and page(st, "A", "z").zero
    assert any("SCAN_PMD_MAPPED" in t for t in texts(r))


@pytest.mark.parametrize("version, errno", [("6.1.12", "EINVAL"), ("6.1.13", "EAGAIN"), ("6.2", "EAGAIN")])
@pytest.mark.parametrize("holder", ["pin(buf, write, longterm) as mr", "gup(buf, read) as r"])
def test_a_page_with_extra_references_is_refused_with_the_versions_errno(version, errno, holder):
    r = collapse(f"A: {holder}\n{COLLAPSE}", version)
    assert r.final.result("c").error == errno
    assert page(r.final, "A", "buf").kind == "pte_thp"
    assert_decision(r, "collapse_count_eagain", COLLAPSE, errno == "EAGAIN", "ae63c898f400")
    assert any(f"MADV_COLLAPSE: SCAN_PAGE_COUNT → -{errno}" in t for t in texts(r))


@pytest.mark.parametrize("version, ok", [("6.17", False), ("6.18", True)])
def test_the_parents_range_after_fork_is_read_only_refused_until_6_18(version, ok):
    r = collapse(f"""
        A: fork() as B
        {COLLAPSE}
        A: write(buf, 2)
    """, version)
    st = r.final
    assert st.result("c").ok is ok
    assert_decision(r, "collapse_needs_writable", COLLAPSE, not ok, "v6.18 mm/khugepaged.c hpage_collapse_scan_pmd")
    if not ok:
        assert st.result("c").error == "EINVAL" and any("SCAN_PAGE_RO → -EINVAL" in t for t in texts(r))
    assert page(st, "B", "buf").kind == "pte_thp" and page(st, "B", "buf").data == 1  # the child keeps its page
    assert page(st, "A", "buf").data == 2 and pfn(st, "A", "buf") != pfn(st, "B", "buf")


@pytest.mark.parametrize("version, ok", [("6.17", False), ("6.18", True)])
def test_a_swapped_out_thp_is_swapped_in_and_collapsed_from_6_18(version, ok):
    r = run_src(f"""
        process A
        A: mmap(buf, anon, private, rw, thp)
        A: write(buf, 7)
        A: madvise(buf, pageout) as so
        {COLLAPSE}
    """, backend=version)
    st = r.final
    assert st.result("so").ok and st.result("c").ok is ok
    if ok:
        assert page(st, "A", "buf").kind == "thp" and page(st, "A", "buf").data == 7
        assert any("__collapse_huge_page_swapin" in t for t in texts(r))
    else:
        assert pte(st, "A", "buf").swap  # the scan found no writable PTE: nothing swapped in


@pytest.mark.parametrize("src, error, why", [
    ("A: mmap(h, anon, private, rw, hugetlb)\nA: write(h, 1)\nA: madvise(h, collapse) as c", "EINVAL", "VM_HUGETLB"),
    ("A: mmap(s, anon, private, rw, pages=4)\nA: write(s, 1)\nA: madvise(s, collapse) as c", "EINVAL", "2 MiB"),
    ("A: mmap(e, anon, private, rw, thp)\nA: madvise(e, collapse) as c", "EINVAL", "SCAN_PMD_NONE"),
    ("A: mmap(f, private, rw, file=F)\nA: write(f, 1)\nA: madvise(f, collapse) as c", "EINVAL", "file on disk"),
    ("A: mmap(m, shared, rw, file=M)\nA: madvise(m, collapse) as c", "EINVAL", "2 MiB"),  # shmem, small: too
    ("A: mmap(t, anon, private, rw, thp, pages=2)\nA: munmap(t[1])\nA: madvise(t, collapse) as c", "ENOMEM",
     "not mapped"),
])
def test_what_madvise_collapse_refuses(src, error, why):
    r = run_src("process A\nfile F = [3]\nfile M = [4] on memfd\n" + src, backend="6.18")
    assert r.final.result("c").error == error
    assert any(why in t for t in texts(r)), texts(r)


def test_the_tail_pages_hold_no_whole_pmd_range_so_nothing_happens():
    r = collapse("A: madvise(buf, collapse, tail) as c")
    assert r.final.result("c").ok and page(r.final, "A", "buf").kind == "pte_thp"


def test_each_huge_page_of_the_range_is_tried_and_the_last_failure_decides():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, thp, pages=2)
        A: write(buf[0], 1)
        A: write(buf[1], 2)
        A: mprotect(buf, ro, tail)
        A: mprotect(buf, rw, tail)
        A: pin(buf[0], read) as mr
        A: madvise(buf, collapse) as c
    """, backend="6.18")
    st = r.final
    assert st.result("c").error == "EAGAIN"  # SCAN_PAGE_COUNT is whitelisted: the loop goes on
    assert page(st, "A", "buf", 0).kind == "pte_thp" and page(st, "A", "buf", 1).kind == "thp"


def test_a_gup_fast_pin_racing_the_collapse_is_never_lost():
    """Between the scan and the collapse the PTEs are still there: a GUP-fast pin
    taken meanwhile makes __collapse_huge_page_isolate refuse; one after
    pmdp_collapse_flush falls back to the slow path and pins the new THP."""
    r = run_src(PTE_MAPPED.replace("process A", "process A\n    thread T of A") + """
        par {
          A: madvise(buf, collapse) as c
          T: pin(buf, write, longterm, fast) as mr
        }
        A: write(buf, 2)
        always: mr is A.buf
        always: mr == 2
        sometimes: failed(c)
        sometimes: not failed(c)
    """, backend="6.18")
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]


def test_the_docs_example_fails_on_6_17_and_passes_on_6_18():
    from pathlib import Path

    from cowdsl.load import load_text
    from cowdsl.run import run

    text = (Path(__file__).resolve().parent.parent / "docs" / "language.md").read_text(encoding="utf-8")
    src = text[text.index("### MADV_COLLAPSE"):].split("```")[1].split("\n", 1)[1]
    sc = load_text(src, "x.cow")
    assert [run(sc, ver).verdict for ver in ("6.17", "6.18")] == ["fail", "pass"]
    assert all(run(sc, ver).ok for ver in ("6.17", "6.18"))  # as its expect lines say


@pytest.mark.parametrize("word, hint", [
    ("MADV_COLLAPSE", "MADV_COLLAPSE is written `collapse` here"),
    ("colapse", "did you mean `collapse`?"),
])
def test_the_advice_is_named_as_the_kernel_names_it(load_error, rendered, word, hint):
    err = load_error(f"process A\nA: mmap(buf, anon, private, rw, thp)\nA: madvise(buf, {word})\nassert true\n")
    r = rendered(err)
    assert r["message"] == f"unknown flag `{word}` for `madvise`" and r["hint"] == hint
    assert "`collapse`" in r["expected"]
