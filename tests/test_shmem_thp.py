"""THPs in shared and shmem mappings: `mmap(buf, shared, thp)` (MAP_SHARED|MAP_ANONYMOUS with
shmem_enabled=always) and `thp` mappings of tmpfs/memfd files, whose page cache holds PMD-size
folios.  Read in 5.10.198, 6.1.158 and 6.18.2 (mm/memory.c, mm/huge_memory.c, mm/shmem.c): no
rule here differs between them, so each test runs on the oldest and the newest era."""

from __future__ import annotations

import pytest
from helpers_semantics import assert_checks_hold, mm, outcome, page, pte, run_src, state_after

from cowdsl.semantics.concepts import pmd_mapped_file_thp
from cowdsl.semantics.state import SMALL, THP, THP_SIBLINGS

ERAS = ("mapcount", "anon-exclusive")


def texts_of(r) -> list[str]:
    return [str(e) for rec in r.steps for e in rec.events]
SHARED = "process A\nA: mmap(buf, shared, rw, thp)\nA: write(buf, 1)\n"
MEMFD = "process A\nfile F = [7, 8] on memfd\nA: mmap(buf, private, rw, thp, file=F)\n"


@pytest.mark.parametrize("backend", ERAS)
def test_a_shared_thp_mapping_is_a_shmem_thp_mapped_by_a_pmd(backend):
    st = state_after(SHARED, "A: write(buf, 1)", backend=backend)
    pg = page(st, "A", "buf")
    assert pg.kind == THP and not pg.anon and pg.file is not None
    # shmem_add_to_page_cache: one reference per subpage, plus the PMD mapping's
    assert pg.refcount == THP_SIBLINGS + 1 + 1 and pg.mapcount == 1
    assert pmd_mapped_file_thp(mm(st, "A").vma("buf"), pg)


@pytest.mark.parametrize("backend", ERAS)
def test_fork_does_not_copy_a_shared_shmem_thp_and_the_child_maps_the_same_folio(backend):
    r = run_src(SHARED + "A: fork() as B\nB: write(buf, 2)\n", backend=backend)
    assert_checks_hold(r)
    st = r.final
    assert pte(st, "A", "buf").page == pte(st, "B", "buf").page
    assert page(st, "A", "buf").data == 2 and page(st, "A", "buf").mapcount == 2


@pytest.mark.parametrize("backend", ERAS)
def test_a_private_write_to_a_memfd_thp_copies_one_order0_page(backend):
    """wp_huge_pmd zaps a file PMD and do_cow_fault copies one subpage: never a THP copy,
    not even where an anonymous THP's write fault copied the whole THP (before 5.8)."""
    src = MEMFD + "A: read(buf)\nA: write(buf, 1)\n"
    st = state_after(src, "A: write(buf, 1)", backend=backend)
    pg = page(st, "A", "buf")
    assert pg.anon and pg.kind == SMALL and pg.data == 1
    cache = st.pages[st.file_page("F", 0)]
    assert cache.kind == THP and cache.data == 7 and cache.mapcount == 0
    assert cache.refcount == THP_SIBLINGS + 1  # the read's PMD mapping is gone with the COW


@pytest.mark.parametrize("backend", ERAS)
def test_fork_skips_a_pmd_mapped_file_thp_but_shares_the_anonymous_copy(backend):
    src = MEMFD + "A: write(buf[0], 1)\nA: read(buf[1])\nA: fork() as B\n"
    r = run_src(src, backend=backend)
    st = r.final
    assert pte(st, "B", "buf", 1) is None  # copy_huge_pmd: !vma_is_anonymous → refilled on fault
    assert pte(st, "B", "buf", 0) is not None and pte(st, "B", "buf", 0).page == pte(st, "A", "buf", 0).page
    assert any("copy_huge_pmd" in t for t in texts_of(r))


def test_a_small_memfd_page_in_a_private_mapping_is_shared_by_fork():
    """The contrast: copy_present_pte shares a small page-cache page with the child."""
    src = "process A\nfile F = [7, 8] on memfd\nA: mmap(buf, private, rw, pages=2, file=F)\n" \
          "A: write(buf[0], 1)\nA: read(buf[1])\nA: fork() as B\n"
    st = run_src(src).final
    assert pte(st, "B", "buf", 1) is not None


def test_munmap_of_the_tail_pages_zaps_the_file_pmd_and_the_head_comes_back_by_a_pte():
    src = SHARED + "A: munmap(buf, tail)\n"
    st = state_after(src, "A: munmap(buf, tail)")
    assert pte(st, "A", "buf") is None
    assert mm(st, "A").vma("buf").kind == SMALL  # a 4 KiB VMA: do_set_pmd refuses it
    st = state_after(SHARED + "A: mprotect(buf, ro, tail)\nA: read(buf)\n", "A: read(buf)")
    pg = page(st, "A", "buf")
    assert pg.kind == THP and pg.mapcount == 1 and pg.data == 1
    assert not pmd_mapped_file_thp(mm(st, "A").vma("buf"), pg)


def test_madv_dontneed_of_the_tail_pages_zaps_the_head_and_keeps_the_vma_huge():
    st = state_after(SHARED + "A: madvise(buf, dontneed, tail)\nA: read(buf)\n", "A: read(buf)")
    assert mm(st, "A").vma("buf").kind == THP
    assert pmd_mapped_file_thp(mm(st, "A").vma("buf"), page(st, "A", "buf"))


def test_tail_ops_on_a_file_thp_mapping_of_several_thps_are_not_modelled():
    r = run_src("process A\nA: mmap(buf, shared, rw, thp, pages=2)\nA: mprotect(buf, ro, tail) as p\n")
    assert outcome(r, "A: mprotect(buf, ro, tail) as p").error == "not modelled"


@pytest.mark.parametrize("backend, ok", [("6.1", True), ("6.2", None), ("6.18", None)])
def test_a_ro_longterm_pin_of_a_pmd_mapped_private_file_thp(backend, ok):
    """Before 84209e87c696 (6.2) a R/O long-term pin takes the page-cache THP; from it
    GUP asks to unshare, and the unshare fault maps the folio by a PMD again: not modelled."""
    step = "A: pin(buf, longterm) as p"
    r = run_src(MEMFD + "A: read(buf)\n" + step + "\n", backend=backend)
    o = outcome(r, step)
    if ok:
        assert o.ok
    else:
        assert o.error == "not modelled"


def test_a_ro_longterm_pin_of_a_shared_shmem_thp_never_unshares():
    r = run_src(SHARED + "A: pin(buf, longterm) as p\n", backend="6.18")
    assert outcome(r, "A: pin(buf, longterm) as p").ok
    assert page(r.final, "A", "buf").pincount == 1


@pytest.mark.parametrize("src, why", [
    ("A: mmap(buf, shared, rw, pte_thp) as m", "pte_thp"),
    ("A: mmap(buf, private, rw, thp, file=D) as m", "CONFIG_READ_ONLY_THP_FOR_FS"),
    ("A: mmap(s, shared, rw, file=F)\nA: read(s)\nA: mmap(buf, shared, rw, thp, file=F) as m", "small pages already"),
    ("A: mmap(t, shared, rw, thp, file=F)\nA: mmap(buf, shared, rw, file=F) as m", "map it with `thp`"),
])
def test_what_a_file_thp_mapping_does_not_model(src, why):
    r = run_src("process A\nfile D = [1]\nfile F = [2] on shmem\n" + src + "\n")
    assert outcome(r, src.splitlines()[-1]).error == "not modelled"
    assert any(why in t for t in texts_of(r)), texts_of(r)


def test_madv_pageout_of_a_shmem_thp_is_not_modelled():
    r = run_src(SHARED + "A: madvise(buf, pageout) as o\n")
    assert outcome(r, "A: madvise(buf, pageout) as o").error == "not modelled"


def collapse(src: str, backend: str = "6.18"):
    return run_src("process A\nfile M = [5] on memfd\n" + src, backend=backend)


@pytest.mark.parametrize("backend", ["6.1", "6.18"])
@pytest.mark.parametrize("flags", ["shared, rw, thp, file=M", "private, rw, thp, file=M"])
def test_madv_collapse_of_a_memfd_thp_maps_the_page_cache_folio_by_a_pmd(flags, backend):
    """hpage_collapse_scan_file finds the PMD-order folio (SCAN_PTE_MAPPED_HUGEPAGE) and
    collapse_pte_mapped_thp installs a PMD for it: no copy, no new folio (6.1.158, 6.18.2)."""
    step = "A: madvise(buf, collapse) as c"
    r = collapse(f"A: mmap(buf, {flags})\n{step}\n", backend)
    assert outcome(r, step).ok
    st = r.final
    pg = page(st, "A", "buf")
    assert pmd_mapped_file_thp(mm(st, "A").vma("buf"), pg) and pg.mapcount == 1
    assert pte(st, "A", "buf").write == flags.startswith("shared")  # vm_page_prot: COW mappings read-only
    assert any("SCAN_PTE_MAPPED_HUGEPAGE" in t for t in texts_of(r))


def test_madv_collapse_of_a_pmd_mapped_shmem_thp_counts_it_even_pinned():
    """No refcount check for a folio that is huge already (an anonymous PTE-mapped THP with a pin
    is SCAN_PAGE_COUNT): SCAN_PMD_MAPPED."""
    step = "A: madvise(buf, collapse) as c"
    r = collapse(f"A: mmap(buf, shared, rw, thp)\nA: write(buf, 1)\nA: pin(buf, write, longterm) as p\n{step}\n")
    assert outcome(r, step).ok
    assert any("SCAN_PMD_MAPPED" in t for t in texts_of(r))


def test_madv_collapse_of_shared_anonymous_memory_no_one_maps_is_not_modelled():
    """Its folio enters the page cache at the first fault (the model's at mmap): unfaulted, the
    kernel's collapse_file finds nothing (SCAN_TRUNCATED, -EINVAL in the 6.1 and 6.12 guests); after
    MADV_DONTNEED the folio is there.  The model cannot tell the two apart."""
    step = "A: madvise(buf, collapse) as c"
    for src in ("", "A: write(buf, 1)\nA: madvise(buf, dontneed)\n"):
        r = collapse(f"A: mmap(buf, shared, rw, thp)\n{src}{step}\n")
        assert outcome(r, step).error == "not modelled"


def test_madv_collapse_of_shared_anonymous_memory_another_process_maps_installs_the_pmd():
    step = "A: madvise(buf, collapse) as c"
    r = collapse(f"A: mmap(buf, shared, rw, thp)\nA: fork() as B\nB: write(buf, 3)\n{step}\n")
    assert outcome(r, step).ok
    pg = page(r.final, "A", "buf")
    assert pg.data == 3 and pg.mapcount == 2 and pte(r.final, "A", "buf").write


def test_madv_collapse_of_a_private_memfd_thp_with_an_anonymous_copy_fails_einval():
    """collapse_pte_mapped_thp: the PTE maps a page that is not the folio's subpage → SCAN_FAIL."""
    step = "A: madvise(buf, collapse) as c"
    r = collapse(f"A: mmap(buf, private, rw, thp, file=M)\nA: write(buf, 1)\n{step}\n")
    assert outcome(r, step).error == "EINVAL"
    assert any("SCAN_FAIL" in t for t in texts_of(r))
    assert page(r.final, "A", "buf").anon  # left as it was


def test_madv_collapse_of_a_shmem_thp_is_einval_before_6_1():
    step = "A: madvise(buf, collapse) as c"
    assert outcome(collapse(f"A: mmap(buf, shared, rw, thp)\n{step}\n", "5.19"), step).error == "EINVAL"


@pytest.mark.parametrize("flags", ["shared, rw, pages=4", "private, rw, file=M"])
def test_madv_collapse_of_a_small_shmem_mapping_is_einval(flags):
    """A small-page mapping is under 2 MiB: hugepage_vma_check (transhuge_vma_suitable) refuses it
    before collapse_file could run (Regression: a private memfd mapping was called a disk file)."""
    step = "A: madvise(buf, collapse) as c"
    r = collapse(f"A: mmap(buf, {flags})\nA: read(buf)\n{step}\n")
    assert outcome(r, step).error == "EINVAL"
    assert not any("file on disk" in t for t in texts_of(r))
