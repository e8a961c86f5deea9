"""One test (at least) per op of the registry: the op's effect on the model state.

Each test runs a small inline scenario on the anon-exclusive backend and looks
at the resulting State: PTEs, pages and their counters, handles, pipes, swap
slots and step outcomes.  The decision rules themselves are tested in
test_rules.py; here the point is what each op does.  Section numbers refer to
the kernel reference (kernel-cow-semantics.md).
"""

from __future__ import annotations

import pytest
from helpers_semantics import (
    assert_checks_hold,
    handle_page,
    live_pages,
    mm,
    outcome,
    page,
    pfn,
    pte,
    record,
    run_src,
    value,
)

from cowdsl.ops import OPS, WHOLE
from cowdsl.scenario import Step
from cowdsl.semantics import registry
from cowdsl.semantics.state import GUP_PIN_COUNTING_BIAS, ZERO_PFN

BIAS = GUP_PIN_COUNTING_BIAS


# --- the registry and the backends agree ------------------------------------------------


@pytest.mark.parametrize("name", registry.names())
def test_every_declared_micro_step_has_a_mechanism_on_every_backend(name):
    """Checked when the class is built (cowdsl.semantics.micro.mechanism_table);
    here for every registered backend, third-party ones included."""
    backend = registry.get(name)
    for op in OPS.values():
        for prog in op.programs():
            for label in prog.labels:
                fn, whole = type(backend).MECHANISM[prog, label]
                assert callable(fn) and whole == (label == WHOLE), (name, op.name, label)


@pytest.mark.parametrize("flags, program", [((), "gup_slow"), (("fast",), "gup_fast")])
@pytest.mark.parametrize("op", ["pin", "gup"])
def test_pin_and_gup_choose_their_program_by_the_fast_flag(op, flags, program):
    backend = registry.get("anon-exclusive")
    step = Step(number=1, actor="A", task="A", op=op, flags=frozenset(("read",) + flags))
    assert backend.program(step)[0] == program
    assert backend.declared_program(step) is OPS[op].program_for(frozenset(flags))


def test_every_op_has_a_test_here():
    """A new op in the registry needs a test of its effect in this file."""
    names = [n for n in globals() if n.startswith("test_")]
    missing = sorted(op for op in OPS if not any(n.startswith(f"test_{op}_") for n in names))
    assert not missing, f"ops without a test in test_ops.py: {missing}"


# --- mmap / munmap ----------------------------------------------------------------------------


def test_mmap_anon_private_rw_creates_an_empty_cow_mapping():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, pages=3)
    """)
    vma = mm(r.final, "A").vma("buf")
    assert vma is not None
    assert len(vma.ptes) == 3 and all(p is None for p in vma.ptes)  # nothing faulted in yet
    assert vma.anon and not vma.shared and vma.write and vma.maywrite and vma.file is None
    assert vma.is_cow_mapping
    assert live_pages(r.final) == []  # mmap allocates no page


def test_mmap_ro_is_not_writable_but_still_a_cow_mapping():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, ro)
    """)
    vma = mm(r.final, "A").vma("buf")
    assert not vma.write and vma.maywrite  # MAP_PRIVATE keeps VM_MAYWRITE (§0 is_cow_mapping)
    assert vma.is_cow_mapping
    assert len(vma.ptes) == 1


def test_mmap_file_private_maps_the_file_without_copying():
    r = run_src("""
        process A
        file F = [7, 8]
        A: mmap(fm, private, rw, file=F)
    """)
    vma = mm(r.final, "A").vma("fm")
    assert vma.file == "F" and not vma.anon and not vma.shared
    assert len(vma.ptes) == 2  # pages= defaults to the file's size
    assert [r.final.pages[r.final.file_page("F", i)].data for i in (0, 1)] == [7, 8]


def test_mmap_shared_anon_is_shmem_and_stays_shared_across_fork():
    r = run_src("""
        process A
        A: mmap(sh, shared, rw)
        A: write(sh, 1)
        A: fork() as B
        B: write(sh, 2)
    """)
    st = r.final
    vma = mm(st, "A").vma("sh")
    assert vma.shared and not vma.anon and vma.file is not None  # a shmem object, not anon memory
    assert not vma.is_cow_mapping
    p = page(st, "A", "sh")
    assert not p.anon and p.file == vma.file  # the page is the shmem page-cache page
    assert pfn(st, "A", "sh") == pfn(st, "B", "sh")  # no COW in a shared mapping
    assert p.data == 2 and p.mapcount == 2
    assert st.mm("A").cow_copies == st.mm("B").cow_copies == 0


@pytest.mark.parametrize("kind", ["thp", "pte_thp", "hugetlb"])
def test_mmap_huge_page_kinds_fault_in_one_exclusive_huge_page(kind):
    r = run_src(f"""
        process A
        A: mmap(buf, anon, private, rw, {kind})
        A: write(buf, 1)
        A: pin(buf, read) as mr
    """)
    st = r.final
    assert mm(st, "A").vma("buf").kind == kind
    pg = page(st, "A", "buf")
    assert pg.kind == kind and pg.anon_exclusive and pg.data == 1 and pg.mapcount == 1
    assert pg.pincount == 1  # large folios count pins exactly, +1 on the refcount (§0)
    siblings = 511 if kind == "pte_thp" else 0  # the other subpages of the folio hold references
    assert pg.refcount == 1 + siblings + 1


def test_mmap_pte_mapped_huge_pages_of_a_shared_mapping_are_refused():
    """A PTE-mapped shmem THP is not modelled; a PMD-mapped one is (test_shmem_thp.py), and
    shared hugetlb (test_file_kinds.py)."""
    r = run_src("""
        process A
        A: mmap(buf, shared, rw, pte_thp) as m
    """)
    assert not r.final.result("m").ok
    assert mm(r.final, "A").vma("buf") is None


def test_munmap_removes_the_mapping_and_frees_its_page():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: munmap(buf)
    """)
    st = r.final
    assert mm(st, "A").vma("buf") is None
    assert live_pages(st) == []  # the only reference was the mapping's
    assert st.pages[1].freed and st.pages[1].refcount == 0 and st.pages[1].mapcount == 0


def test_mremap_moves_the_entries_without_copying():
    """move_page_tables: the page moves with its counts and PG_anon_exclusive (more in test_mremap.py)."""
    src = "process A\nA: mmap(buf, anon, private, rw, pages=2)\nA: write(buf[1], 5)\nA: mremap(buf, to=dst)\n"
    r = run_src(src + "assert A.dst[1] == 5\nassert exclusive(A.dst[1])\nassert cow_copies == 0\n")
    assert_checks_hold(r)
    assert outcome(r, "A: mremap(buf, to=dst)").ok


def test_munmap_of_a_shared_page_leaves_the_other_mapping():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: munmap(buf)
    """)
    st = r.final
    p = page(st, "A", "buf")
    assert not p.freed and p.mapcount == 1 and p.refcount == 1 and p.data == 1
    assert mm(st, "B").vma("buf") is None


NOT_INHERITED = """
    process A
    A: mmap(buf, anon, private, rw)
    A: write(buf, 1)
    A: madvise(buf, dontfork)
    A: fork() as B
    B: {op}
"""


@pytest.mark.parametrize(
    "op, ok",
    [
        ("munmap(buf)", True),  # munmap(2): not an error if the range holds no mapping
        ("mprotect(buf, ro)", False),  # mprotect(2): ENOMEM, the range is not mapped
        ("madvise(buf, dontneed)", False),  # madvise(2): ENOMEM, the range is not mapped
        ("madvise(buf, dofork)", False),
    ],
)
def test_munmap_mprotect_madvise_of_a_mapping_the_child_did_not_inherit(op, ok):
    """MADV_DONTFORK keeps `buf` out of B, so these calls find no VMA: a syscall
    result, not a crash of the interpreter.  (A checker that refuses the step
    instead is also acceptable.)"""
    from cowdsl.errors import CowError

    try:
        r = run_src(NOT_INHERITED.format(op=op))
    except CowError as e:
        assert "`buf`" in str(e) and "B" in str(e), str(e)  # refused before running, with a diagnostic
        return
    st = r.final
    out = outcome(r, f"B: {op}")
    assert out.ok is ok, out
    assert mm(st, "B").alive and mm(st, "B").vma("buf") is None
    assert page(st, "A", "buf").data == 1 and page(st, "A", "buf").mapcount == 1


# --- read -----------------------------------------------------------------------------------


def test_read_of_untouched_anon_memory_maps_the_zero_page():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: read(buf) as v
    """)
    st = r.final
    p = pte(st, "A", "buf")
    assert p.present and p.page == ZERO_PFN and not p.write  # do_anonymous_page, read fault
    assert st.pages[ZERO_PFN].zero
    assert value(r, "v") == 0
    assert live_pages(st) == []  # no anonymous page allocated
    assert mm(st, "A").faults == 1


def test_read_of_a_file_mapping_maps_the_page_cache_page():
    r = run_src("""
        process A
        file F = [7, 8]
        A: mmap(fm, private, rw, file=F)
        A: read(fm[1]) as v
    """)
    st = r.final
    cache = st.file_page("F", 1)
    p = pte(st, "A", "fm", 1)
    assert p.present and p.page == cache and not p.write  # do_read_fault: R/O, even in a rw private mapping
    assert value(r, "v") == 8
    assert st.pages[cache].mapcount == 1 and st.pages[cache].refcount == 2  # page cache + the mapping
    # do_fault_around maps the neighbour too, read-only (found by the native cross-check)
    p0 = pte(st, "A", "fm", 0)
    assert p0.present and p0.page == st.file_page("F", 0) and not p0.write
    assert st.pages[st.file_page("F", 0)].mapcount == 1


def test_read_of_a_present_page_takes_no_fault():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        A: read(buf) as v
    """)
    assert value(r, "v") == 5
    assert mm(r.final, "A").faults == 1  # only the write faulted


# --- write ----------------------------------------------------------------------------------


def test_write_to_untouched_anon_memory_allocates_an_exclusive_page():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, pages=2)
        A: write(buf[1], 9)
    """)
    st = r.final
    p = pte(st, "A", "buf", 1)
    assert p.present and p.write and p.dirty  # do_anonymous_page, write fault
    pg = st.pages[p.page]
    assert pg.anon and pg.anon_exclusive  # I1: a fresh anon page is exclusive
    assert (pg.data, pg.refcount, pg.mapcount, pg.pincount) == (9, 1, 1, 0)
    assert pte(st, "A", "buf", 0) is None
    assert mm(st, "A").faults == 1 and mm(st, "A").cow_copies == 0


def test_second_write_to_a_writable_pte_takes_no_fault():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: write(buf, 2)
    """)
    st = r.final
    assert page(st, "A", "buf").data == 2
    assert mm(st, "A").faults == 1
    assert len(live_pages(st)) == 1


def test_write_after_read_replaces_the_zero_page():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: read(buf) as v
        A: write(buf, 3)
    """)
    st = r.final
    p = pte(st, "A", "buf")
    assert p.page != ZERO_PFN and p.write
    assert st.pages[p.page].anon_exclusive and st.pages[p.page].data == 3
    assert st.pages[ZERO_PFN].data == 0  # the zero page is never written


def test_write_to_a_cow_shared_page_copies_it():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: write(buf, 2)
    """)
    st = r.final
    a, b = pfn(st, "A", "buf"), pfn(st, "B", "buf")
    assert a != b
    assert st.pages[a].data == 1 and st.pages[b].data == 2
    assert st.pages[b].anon_exclusive and pte(st, "B", "buf").write  # the copy is exclusive and writable
    assert not pte(st, "A", "buf").write  # A's PTE stays write-protected until A faults
    assert st.pages[a].mapcount == 1 and st.pages[a].refcount == 1
    assert mm(st, "B").cow_copies == 1 and mm(st, "A").cow_copies == 0


def test_write_to_a_private_file_mapping_copies_the_page_cache_page():
    r = run_src("""
        process A
        file F = [7]
        A: mmap(fm, private, rw, file=F)
        A: write(fm, 1)
    """)
    st = r.final
    p = page(st, "A", "fm")
    assert p.anon and p.anon_exclusive and p.data == 1  # do_cow_fault: a private anon copy
    assert st.pages[st.file_page("F", 0)].data == 7  # the file is untouched
    assert mm(st, "A").cow_copies == 1


def test_write_to_a_shared_file_mapping_writes_the_page_cache_page():
    r = run_src("""
        process A
        file F = [7]
        A: mmap(fm, shared, rw, file=F)
        A: write(fm, 1)
    """)
    st = r.final
    assert pfn(st, "A", "fm") == st.file_page("F", 0)
    assert st.pages[st.file_page("F", 0)].data == 1
    assert pte(st, "A", "fm").write


def test_write_to_a_read_only_mapping_kills_the_process():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, ro)
        A: mmap(other, anon, private, rw)
        A: write(other, 5)
        A: write(buf, 1)
        A: write(other, 6)
        A: read(other) as v
    """)
    st = r.final
    a = mm(st, "A")
    assert a.segv and not a.alive
    assert a.vmas == ()  # the dying process's mappings are gone
    assert live_pages(st) == []  # and with them its pages
    assert not outcome(r, "A: write(buf, 1)").ok
    for later in ("A: write(other, 6)", "A: read(other) as v"):
        out = outcome(r, later)
        assert not out.ok and "not run" in out.error
        assert record(r, later).events[-1].text.startswith("not run")
    assert st.result("v") is not None and not st.result("v").ok
    assert st.pages[1].data == 5  # the later write never happened


def test_steps_of_a_child_whose_fork_did_not_run_are_not_run():
    """A was killed before its fork: B never exists, so B's steps do not run
    (docs/language.md: a killed process's later steps do not run)."""
    r = run_src("""
        process A
        A: mmap(buf, anon, private, ro)
        A: write(buf, 1)
        A: fork() as B
        B: read(buf) as v
        B: fork() as C
        C: exit()
        assert not alive(B)
    """)
    assert mm(r.final, "A").segv
    assert not outcome(r, "A: fork() as B").ok
    for later in ("B: read(buf) as v", "B: fork() as C", "C: exit()"):
        assert not outcome(r, later).ok, later
    assert r.final.mm("B") is None or not r.final.mm("B").alive
    assert r.final.mm("C") is None or not r.final.mm("C").alive


def test_read_of_a_mapping_the_child_did_not_inherit():
    """MADV_DONTFORK kept `buf` out of B: B's load finds no VMA and B gets SIGSEGV
    (docs/language.md), unless the checker refuses the step up front."""
    from cowdsl.errors import CowError

    try:
        r = run_src("""
            process A
            A: mmap(buf, anon, private, rw)
            A: write(buf, 1)
            A: madvise(buf, dontfork)
            A: fork() as B
            B: read(buf) as v
        """)
    except CowError as e:
        assert "`buf`" in str(e) and "B" in str(e), str(e)  # refused before running, with a diagnostic
        return
    b = mm(r.final, "B")
    assert b.segv and not b.alive
    assert not r.final.result("v").ok
    assert mm(r.final, "A").alive


# --- fork -------------------------------------------------------------------------------------


def test_fork_shares_anon_pages_write_protected_in_parent_and_child():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, pages=3)
        A: write(buf[0], 1)
        A: read(buf[1]) as v
        A: fork() as B
    """)
    st = r.final
    a0, b0 = pte(st, "A", "buf", 0), pte(st, "B", "buf", 0)
    assert a0.page == b0.page  # the PTE is copied, the page shared
    assert not a0.write and not b0.write  # ptep_set_wrprotect on both sides
    pg = st.pages[a0.page]
    assert pg.mapcount == 2 and pg.refcount == 2
    assert not pg.anon_exclusive  # fork clears exclusivity (§6.2)
    assert pte(st, "B", "buf", 1).page == ZERO_PFN  # the zero page is shared as is
    assert pte(st, "B", "buf", 2) is None  # nothing to copy for an untouched page
    b = mm(st, "B")
    assert b.alive and not b.has_pinned and b.faults == 0 and b.cow_copies == 0
    assert [v.name for v in b.vmas] == ["buf"]


def test_fork_of_a_private_file_page_shares_the_page_cache_page():
    # A VMA without an anon_vma is not copied (vma_needs_copy): the child faults the
    # same page-cache page in itself (found by the native cross-check).
    src = """
        process A
        file F = [7]
        A: mmap(fm, private, rw, file=F)
        A: read(fm) as v
        A: fork() as B
    """
    st = run_src(src).final
    cache = st.file_page("F", 0)
    assert pfn(st, "A", "fm") == cache and pte(st, "B", "fm") is None
    assert st.pages[cache].mapcount == 1 and st.pages[cache].refcount == 2  # cache + A's mapping
    st = run_src(src + "B: read(fm) as w\n").final
    assert pfn(st, "A", "fm") == pfn(st, "B", "fm") == cache
    assert st.pages[cache].mapcount == 2 and st.pages[cache].refcount == 3  # cache + 2 mappings


def test_fork_child_sees_the_parent_data_and_writes_are_private_afterwards():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: write(buf, 2)
        B: read(buf) as v
    """)
    assert value(r, "v") == 1
    assert page(r.final, "A", "buf").data == 2


# --- exit -----------------------------------------------------------------------------------


def test_exit_releases_mappings_and_pins():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write) as mr
        A: gup(buf, read) as g
        A: exit()
    """)
    st = r.final
    a = mm(st, "A")
    assert not a.alive and not a.segv and a.vmas == ()
    assert not st.handle("mr").live and not st.handle("g").live
    pg = st.pages[st.handle("mr").page]
    assert pg.freed and pg.refcount == 0 and pg.pincount == 0 and pg.mapcount == 0


def test_exit_of_the_child_leaves_the_parent_sole_mapper():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: exit()
    """)
    st = r.final
    pg = page(st, "A", "buf")
    assert pg.mapcount == 1 and pg.refcount == 1 and not pg.freed
    assert not mm(st, "B").alive


# --- exec -----------------------------------------------------------------------------------


def test_exec_drops_the_mappings_and_keeps_the_pins():
    """Unlike exit: the process lives on with a new mm, and its pin and GUP reference hold their pages."""
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write) as mr
        A: gup(buf, read) as g
        A: exec()
    """)
    st = r.final
    a = mm(st, "A")
    assert a.alive and a.vmas == () and not a.has_pinned
    assert st.handle("mr").live and st.handle("g").live
    pg = st.pages[st.handle("mr").page]
    assert not pg.freed and pg.mapcount == 0 and pg.pincount == 1 and pg.data == 1


# --- mprotect ------------------------------------------------------------------------------------


def test_mprotect_ro_write_protects_the_ptes_and_the_vma():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, pages=2)
        A: write(buf[0], 1)
        A: write(buf[1], 2)
        A: mprotect(buf, ro)
    """)
    st = r.final
    vma = mm(st, "A").vma("buf")
    assert not vma.write
    assert not any(p.write for p in vma.ptes)
    assert all(st.pages[p.page].anon_exclusive for p in vma.ptes)  # still exclusive, just R/O
    r2 = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: mprotect(buf, ro)
        A: write(buf, 2)
    """)
    assert mm(r2.final, "A").segv  # the VMA forbids the write: SIGSEGV


def test_mprotect_rw_makes_the_mapping_writable_again():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, ro)
        A: read(buf) as v
        A: mprotect(buf, rw)
        A: write(buf, 4)
    """)
    st = r.final
    assert mm(st, "A").vma("buf").write
    assert mm(st, "A").alive
    assert page(st, "A", "buf").data == 4 and pte(st, "A", "buf").write


# --- madvise ----------------------------------------------------------------------------------


def test_madvise_dontneed_zaps_the_pages():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, pages=2)
        A: write(buf[0], 1)
        A: write(buf[1], 2)
        A: madvise(buf, dontneed)
        A: read(buf[1]) as v
    """)
    st = r.final
    assert pte(st, "A", "buf", 0) is None
    assert pte(st, "A", "buf", 1).page == ZERO_PFN  # refault: the zero page
    assert value(r, "v") == 0
    assert live_pages(st) == []
    assert mm(st, "A").vma("buf") is not None  # the mapping itself stays


def test_madvise_dontfork_keeps_the_mapping_out_of_the_child():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: mmap(keep, anon, private, rw)
        A: write(buf, 1)
        A: madvise(buf, dontfork)
        A: fork() as B
        A: write(buf, 2)
    """)
    st = r.final
    assert mm(st, "A").vma("buf").dontfork
    assert mm(st, "B").vma("buf") is None and mm(st, "B").vma("keep") is not None
    pg = page(st, "A", "buf")
    assert pg.mapcount == 1 and pg.anon_exclusive and pg.data == 2
    assert pte(st, "A", "buf").write  # never write-protected by the fork
    assert mm(st, "A").faults == 1  # the second write took no fault


def test_madvise_dofork_undoes_dontfork():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: madvise(buf, dontfork)
        A: madvise(buf, dofork)
        A: fork() as B
    """)
    st = r.final
    assert not mm(st, "A").vma("buf").dontfork
    assert pfn(st, "B", "buf") == pfn(st, "A", "buf")


def test_madvise_wipeonfork_gives_the_child_an_empty_mapping():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: madvise(buf, wipeonfork)
        A: fork() as B
        B: read(buf) as v
    """)
    st = r.final
    assert mm(st, "A").vma("buf").wipeonfork
    assert value(r, "v") == 0
    assert pte(st, "B", "buf").page == ZERO_PFN
    pg = page(st, "A", "buf")
    assert pg.data == 1 and pg.mapcount == 1 and pg.anon_exclusive and pte(st, "A", "buf").write


def test_madvise_wipeonfork_on_shmem_fails_with_einval():
    r = run_src("""
        process A
        A: mmap(sh, shared, rw)
        A: madvise(sh, wipeonfork) as w
    """)
    assert not outcome(r, "A: madvise(sh, wipeonfork) as w").ok
    assert r.final.result("w").error == "EINVAL"
    assert not mm(r.final, "A").vma("sh").wipeonfork


def test_madvise_pageout_swaps_out_exclusive_pages_and_skips_shared_ones():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: mmap(sh, anon, private, rw)
        A: write(buf, 1)
        A: write(sh, 2)
        A: fork() as B
        B: munmap(buf)
        A: madvise(buf, pageout)
        A: madvise(sh, pageout)
    """)
    st = r.final
    p = pte(st, "A", "buf")
    assert p is not None and not p.present and p.slot >= 0  # a swap entry now
    assert st.slots[p.slot].data == 1
    assert page(st, "A", "sh").mapcount == 2  # mapped by B too: MADV_PAGEOUT leaves it
    assert pte(st, "A", "sh").present


# --- pin / gup / unpin / put -----------------------------------------------------------------------


def test_pin_adds_the_pin_bias_and_marks_the_mm():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write, longterm) as mr
    """)
    st = r.final
    h = st.handle("mr")
    assert h.live and h.pin and h.write and h.longterm and h.owner == "A"
    assert h.page == pfn(st, "A", "buf")
    pg = st.pages[h.page]
    assert pg.refcount == 1 + BIAS and pg.pincount == 1 and pg.mapcount == 1
    assert pg.anon_exclusive
    assert mm(st, "A").has_pinned


def test_pin_of_untouched_memory_faults_the_page_in():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: pin(buf, write, fast) as mr
    """)
    st = r.final
    pg = handle_page(st, "mr")
    assert pg.anon and pg.anon_exclusive and pg.refcount == 1 + BIAS and pg.pincount == 1
    assert pte(st, "A", "buf").write


def test_two_pins_count_twice():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write) as p1
        A: pin(buf, read) as p2
    """)
    pg = page(r.final, "A", "buf")
    assert pg.pincount == 2 and pg.refcount == 1 + 2 * BIAS


def test_pin_of_a_read_only_mapping_for_write_fails_but_marks_the_mm():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, ro)
        A: pin(buf, write) as mr
    """)
    st = r.final
    assert not outcome(r, "A: pin(buf, write) as mr").ok
    assert st.handle("mr") is None
    assert mm(st, "A").has_pinned  # MMF_HAS_PINNED is set before the walk (§4.1)
    assert live_pages(st) == []


def test_gup_adds_one_reference_and_does_not_mark_the_mm():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: gup(buf, write) as g
    """)
    st = r.final
    h = st.handle("g")
    assert h.live and not h.pin and h.write
    pg = st.pages[h.page]
    assert pg.refcount == 2 and pg.pincount == 0
    assert not mm(st, "A").has_pinned


def test_gup_count_takes_n_references_and_put_drops_them_all():
    src = """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: gup(buf, read, count=3) as g
    """
    assert page(run_src(src).final, "A", "buf").refcount == 4
    assert page(run_src(src + "A: put(g)\n").final, "A", "buf").refcount == 1


def test_unpin_drops_the_pin():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write) as mr
        A: unpin(mr)
    """)
    st = r.final
    assert not st.handle("mr").live
    pg = page(st, "A", "buf")
    assert pg.refcount == 1 and pg.pincount == 0
    assert mm(st, "A").has_pinned  # never cleared (§0)


def test_put_drops_the_reference():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: gup(buf, read) as g
        A: put(g)
    """)
    st = r.final
    assert not st.handle("g").live
    assert page(st, "A", "buf").refcount == 1


def test_put_of_the_last_reference_frees_the_page():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: gup(buf, read) as g
        A: munmap(buf)
        A: put(g)
    """)
    st = r.final
    pg = st.pages[st.handle("g").page]
    assert pg.freed and pg.refcount == 0


# --- dma_read / dma_write ----------------------------------------------------------------------------


def test_dma_read_sees_what_the_cpu_wrote():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, read) as mr
        A: write(buf, 5)
        mr: dma_read() as seen
    """)
    assert value(r, "seen") == 5


def test_dma_write_is_seen_by_the_cpu():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: gup(buf, write) as g
        g: dma_write(9)
        A: read(buf) as v
    """)
    assert value(r, "v") == 9
    assert handle_page(r.final, "g").data == 9


def test_dma_write_reaches_the_page_even_after_munmap():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write) as mr
        A: munmap(buf)
        mr: dma_write(9)
    """)
    pg = handle_page(r.final, "mr")
    assert pg.data == 9 and pg.mapcount == 0 and pg.refcount == BIAS and not pg.freed


# --- vmsplice / pipe_read ----------------------------------------------------------------------------


def test_vmsplice_takes_a_reference_and_pipe_read_returns_the_current_content():
    r = run_src("""
        process A
        pipe P
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: vmsplice(buf, P)
        A: write(buf, 2)
        A: pipe_read(P) as v
        A: pipe_read(P) as w
    """)
    st = r.final
    # after vmsplice: the pipe holds a reference (beside the mapping's and the lru_add batch's);
    # no COW, the page stays exclusive
    ev = [e.text for e in record(r, "A: vmsplice(buf, P)").events]
    assert any("refcount 3" in t for t in ev), ev
    assert value(r, "v") == 2  # the page's content when read, not when spliced
    assert not st.result("w").ok and st.result("w").error == "EAGAIN"  # empty pipe
    pg = page(st, "A", "buf")
    assert pg.refcount == 1 and pg.anon_exclusive
    assert st.pipes[0].bufs == ()


def test_vmsplice_holds_the_page_in_the_pipe():
    r = run_src("""
        process A
        pipe P
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: vmsplice(buf, P)
        A: munmap(buf)
    """)
    st = r.final
    (held,) = st.pipes[0].bufs
    pg = st.pages[held]
    assert not pg.freed and pg.refcount == 1 and pg.mapcount == 0 and pg.data == 1


def test_pipe_read_of_an_empty_pipe_fails():
    r = run_src("""
        process A
        pipe P
        A: pipe_read(P) as v
    """)
    assert not outcome(r, "A: pipe_read(P) as v").ok
    assert r.final.result("v").value is None


# --- process_vm_writev / process_vm_readv ----------------------------------------------------------


def test_process_vm_writev_writes_into_the_other_process_and_unpins():
    r = run_src("""
        process A, C
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        C: process_vm_writev(A.buf, 7)
    """)
    st = r.final
    pg = page(st, "A", "buf")
    assert pg.data == 7
    assert pg.pincount == 0 and pg.refcount == 1  # the pin is dropped after the copy
    assert mm(st, "A").has_pinned  # pin_user_pages_remote marks the target mm
    assert not mm(st, "C").has_pinned


def test_process_vm_writev_into_a_cow_shared_page_breaks_cow_in_the_target_only():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: process_vm_writev(B.buf, 7)
    """)
    st = r.final
    assert page(st, "B", "buf").data == 7 and page(st, "A", "buf").data == 1
    assert pfn(st, "A", "buf") != pfn(st, "B", "buf")
    assert mm(st, "B").cow_copies == 1


def test_process_vm_writev_to_a_read_only_mapping_fails():
    r = run_src("""
        process A, C
        A: mmap(buf, anon, private, ro)
        C: process_vm_writev(A.buf, 7) as w
    """)
    assert not r.final.result("w").ok
    assert live_pages(r.final) == []


def test_process_vm_readv_reads_the_other_process_and_unpins():
    r = run_src("""
        process A, C
        A: mmap(buf, anon, private, rw)
        A: write(buf, 3)
        C: process_vm_readv(A.buf) as v
    """)
    st = r.final
    assert value(r, "v") == 3
    pg = page(st, "A", "buf")
    assert pg.pincount == 0 and pg.refcount == 1 and pg.anon_exclusive


def test_process_vm_readv_of_untouched_memory_reads_zero():
    r = run_src("""
        process A, C
        A: mmap(buf, anon, private, rw)
        C: process_vm_readv(A.buf) as v
    """)
    assert value(r, "v") == 0


# --- proc_mem_write ----------------------------------------------------------------------------------


def test_proc_mem_write_into_a_read_only_private_file_mapping_makes_an_anon_copy():
    r = run_src("""
        process A
        file F = [7]
        A: mmap(fm, private, ro, file=F)
        A: read(fm) as before
        A: proc_mem_write(fm, 9)
        A: read(fm) as after
    """)
    st = r.final
    cache = st.file_page("F", 0)
    assert st.pages[cache].data == 7  # FOLL_FORCE never writes the page cache of a private mapping
    assert st.pages[cache].mapcount == 0  # the COW replaced the page-cache mapping
    p = pte(st, "A", "fm")
    assert p.page != cache and not p.write  # still read-only to the CPU
    pg = st.pages[p.page]
    assert pg.anon and pg.anon_exclusive and pg.data == 9
    assert (value(r, "before"), value(r, "after")) == (7, 9)
    assert pg.refcount == 1  # the FOLL_GET reference was dropped


def test_proc_mem_write_into_untouched_read_only_file_mapping():
    r = run_src("""
        process A, D
        file F = [7]
        A: mmap(fm, private, ro, file=F)
        D: proc_mem_write(A.fm, 9)
    """)
    st = r.final
    assert st.pages[st.file_page("F", 0)].data == 7
    pg = page(st, "A", "fm")
    assert pg.anon and pg.data == 9 and not pte(st, "A", "fm").write


def test_proc_mem_write_into_a_read_only_anon_mapping():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, ro)
        A: proc_mem_write(buf, 4)
        A: read(buf) as v
    """)
    st = r.final
    assert value(r, "v") == 4
    assert not pte(st, "A", "buf").write and page(st, "A", "buf").anon_exclusive
    assert mm(st, "A").alive


def test_proc_mem_write_does_not_reach_the_other_side_of_a_cow_share():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: proc_mem_write(buf, 2)
    """)
    st = r.final
    assert page(st, "A", "buf").data == 2 and page(st, "B", "buf").data == 1


def test_proc_mem_write_into_a_read_only_shared_file_mapping_fails():
    r = run_src("""
        process A
        file F = [7]
        A: mmap(fm, shared, ro, file=F)
        A: proc_mem_write(fm, 9) as w
    """)
    st = r.final
    assert not st.result("w").ok  # FOLL_FORCE has no effect on shared mappings (§6.4)
    assert st.pages[st.file_page("F", 0)].data == 7
    # check_vma_flags refuses a forced write to a !VM_WRITE mapping that is not a COW
    # mapping before any fault: nothing gets mapped, no PTE is dirtied.
    assert pte(st, "A", "fm") is None
    assert st.pages[st.file_page("F", 0)].mapcount == 0


RO_HUGETLB_FORCED_WRITE = """
    process A
    A: mmap(h, anon, private, ro, hugetlb)
    A: read(h) as before
    A: proc_mem_write(h, 9) as w
    A: read(h) as after
"""


def test_proc_mem_write_into_a_read_only_hugetlb_mapping_fails_6_2_to_6_13():
    """f347454d0341 (6.2, 6.1.2): FOLL_FORCE|FOLL_WRITE on hugetlb is refused,
    until 6.14 allowed it again (§15.1 item 5)."""
    for backend in ("6.1.2", "6.13.7"):
        r = run_src(RO_HUGETLB_FORCED_WRITE, backend=backend)
        st = r.final
        assert not st.result("w").ok
        assert value(r, "after") == 0
        assert page(st, "A", "h").data == 0


def test_proc_mem_write_into_a_read_only_hugetlb_mapping_breaks_cow_from_6_14():
    r = run_src(RO_HUGETLB_FORCED_WRITE)  # anon-exclusive: 6.18
    assert r.final.result("w").ok and value(r, "after") == 9


def test_proc_mem_write_into_a_writable_hugetlb_mapping_works():
    r = run_src("""
        process A
        A: mmap(h, anon, private, rw, hugetlb)
        A: proc_mem_write(h, 9) as w
    """)
    assert r.final.result("w").ok and page(r.final, "A", "h").data == 9


# --- make_device_exclusive (§9.1) ----------------------------------------------------------------


def test_make_device_exclusive_replaces_the_pte_by_a_device_exclusive_entry():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: make_device_exclusive(buf) as dx
        dx: dma_write(9)
        assert device_exclusive(A.buf)
        assert A.buf == 9
        assert not present(A.buf)
    """)
    assert_checks_hold(r)
    st = r.final
    p = pte(st, "A", "buf")
    assert p.devexcl and not p.present and p.write  # a writable entry: the PTE was writable
    pg = st.pages[p.page]
    assert pg.mapcount == 1  # 6.15+: the entry keeps the mapcount (5.14-6.14: 0, test_rules)
    assert pg.refcount == 1 and pg.data == 9 and not pg.freed
    h = st.handle("dx")
    assert h.live and h.device and h.page == p.page


def test_make_device_exclusive_breaks_cow_first():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: make_device_exclusive(buf) as dx
        dx: dma_write(9)
    """)
    st = r.final
    assert handle_page(st, "dx").data == 9 and page(st, "B", "buf").data == 1
    assert st.handle("dx").page != pfn(st, "B", "buf")  # FOLL_WRITE GUP copied the page for A first
    assert pte(st, "B", "buf").present


def test_make_device_exclusive_cpu_access_restores_the_pte_and_revokes_the_device():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: make_device_exclusive(buf) as dx
        dx: dma_write(9)
        A: read(buf) as v
    """)
    st = r.final
    assert value(r, "v") == 9
    p = pte(st, "A", "buf")
    assert p.present and not p.devexcl and p.write and p.page == st.handle("dx").page  # the same page
    assert st.pages[p.page].mapcount == 1 and st.pages[p.page].refcount == 1
    assert not st.handle("dx").live  # MMU_NOTIFY_EXCLUSIVE: the device lost access


def test_make_device_exclusive_then_fork_restores_the_parent_pte():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: make_device_exclusive(buf) as dx
        A: fork() as B
    """)
    st = r.final
    assert not st.handle("dx").live
    assert pte(st, "A", "buf").present and pfn(st, "A", "buf") == pfn(st, "B", "buf")
    assert page(st, "A", "buf").mapcount == 2 and not page(st, "A", "buf").anon_exclusive


def test_make_device_exclusive_entry_dropped_by_munmap():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: make_device_exclusive(buf) as dx
        A: munmap(buf)
    """)
    st = r.final
    assert not st.handle("dx").live
    assert live_pages(st) == []


def test_make_device_exclusive_of_a_pte_mapped_thp_subpage_then_munmap_frees_it():
    """Zapping the device-exclusive entry drops the last reference to the folio:
    nothing may stay allocated after munmap."""
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, pte_thp)
        A: write(buf, 1)
        A: make_device_exclusive(buf) as dx
        A: munmap(buf)
    """)
    st = r.final
    assert not st.handle("dx").live
    leaked = [(n, st.pages[n].refcount) for n in live_pages(st)]
    assert leaked == [], f"pages still allocated after munmap (pfn, refcount): {leaked}"


# --- ksm_merge (§10) -------------------------------------------------------------------------------


def test_ksm_merge_maps_one_read_only_ksm_page_in_both_places():
    r = run_src("""
        process A, B
        A: mmap(buf, anon, private, rw)
        A: madvise(buf, mergeable)
        B: mmap(buf, anon, private, rw)
        B: madvise(buf, mergeable)
        A: write(buf, 5)
        B: write(buf, 5)
        ksmd: ksm_merge(A.buf, B.buf) as km
    """)
    st = r.final
    assert st.result("km").ok
    k = pfn(st, "A", "buf")
    assert pfn(st, "B", "buf") == k
    pg = st.pages[k]
    assert pg.ksm and not pg.anon_exclusive  # KSM pages are never exclusive (§10)
    assert pg.mapcount == 2 and pg.refcount == 2 and pg.data == 5
    assert not pte(st, "A", "buf").write and not pte(st, "B", "buf").write
    assert len(live_pages(st)) == 1  # B's old page was freed


def test_ksm_merge_refuses_different_or_referenced_pages():
    r = run_src("""
        process A, B
        A: mmap(buf, anon, private, rw, pages=2)
        A: madvise(buf, mergeable)
        B: mmap(buf, anon, private, rw, pages=2)
        B: madvise(buf, mergeable)
        A: write(buf[0], 5)
        B: write(buf[0], 6)
        A: write(buf[1], 7)
        B: write(buf[1], 7)
        A: pin(buf[1], read) as mr
        ksmd: ksm_merge(A.buf[0], B.buf[0]) as differ
        ksmd: ksm_merge(A.buf[1], B.buf[1]) as pinned
    """)
    st = r.final
    assert not st.result("differ").ok and not st.result("pinned").ok
    assert pfn(st, "A", "buf", 1) != pfn(st, "B", "buf", 1)
    assert not page(st, "A", "buf", 1).ksm and page(st, "A", "buf", 1).anon_exclusive
    assert pte(st, "A", "buf", 1).write  # left alone


def test_ksm_merge_of_a_killed_process_fails():
    """A was killed (its mappings are gone): ksmd finds nothing to merge."""
    r = run_src("""
        process A
        A: mmap(buf, anon, private, ro, pages=2)
        A: madvise(buf, mergeable)
        A: write(buf[0], 1)
        ksmd: ksm_merge(A.buf[0], A.buf[1]) as km
    """)
    assert mm(r.final, "A").segv
    assert not r.final.result("km").ok


def test_ksm_merge_zero_maps_the_zero_page_in_place_of_a_zero_filled_page():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, pages=2)
        A: madvise(buf, mergeable)
        A: write(buf[0], 0)
        A: write(buf[1], 3)
        ksmd: ksm_merge_zero(A.buf[0]) as z
        ksmd: ksm_merge_zero(A.buf[1]) as nz
    """)
    st = r.final
    assert st.result("z").ok and pfn(st, "A", "buf") == ZERO_PFN
    e = pte(st, "A", "buf")
    assert not e.write and e.dirty  # replace_page: pte_mkdirty(pte_mkspecial(...)), the KSM-placed mark (6.5+)
    assert st.result("nz").error == "pages differ" and page(st, "A", "buf", 1).data == 3
    assert len(live_pages(st)) == 1  # the zero-filled page was freed


# --- swapout / swapin -----------------------------------------------------------------------------


def test_swapout_replaces_the_pte_by_a_swap_entry_and_frees_the_page():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        reclaim: swapout(A.buf) as so
    """)
    st = r.final
    assert outcome(r, "reclaim: swapout(A.buf) as so").ok
    p = pte(st, "A", "buf")
    assert p is not None and not p.present and p.slot >= 0
    slot = st.slots[p.slot]
    assert slot.data == 5 and slot.count == 1 and not slot.free
    assert live_pages(st) == []  # written out and freed
    assert all(pg.swapcache < 0 for pg in st.pages)


def test_swapout_then_read_brings_the_data_back():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        reclaim: swapout(A.buf)
        A: read(buf) as v
    """)
    st = r.final
    assert value(r, "v") == 5
    assert pte(st, "A", "buf").present


def test_swapout_of_a_pinned_page_keeps_it():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        A: pin(buf, write) as mr
        reclaim: swapout(A.buf) as so
    """)
    st = r.final
    assert not st.result("so").ok
    p = pte(st, "A", "buf")
    assert p.present and p.write and p.page == st.handle("mr").page
    assert st.pages[p.page].swapcache < 0  # never entered the swap cache
    assert st.slots == ()


def test_swapout_of_a_page_with_an_extra_reference_stays_in_the_swap_cache():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        A: gup(buf, read) as g
        reclaim: swapout(A.buf)
    """)
    st = r.final
    p = pte(st, "A", "buf")
    assert not p.present and p.slot >= 0  # unmapped ...
    pg = handle_page(st, "g")
    assert pg.swapcache == p.slot and not pg.freed  # ... but kept in the swap cache
    assert pg.mapcount == 0 and pg.refcount == 2  # swap cache + the gup reference


def test_swapout_of_a_shared_page_unmaps_every_mapping():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        A: fork() as B
        reclaim: swapout(A.buf)
    """)
    st = r.final
    a, b = pte(st, "A", "buf"), pte(st, "B", "buf")
    assert not a.present and not b.present and a.slot == b.slot
    assert st.slots[a.slot].count == 2
    assert not a.swp_exclusive and not b.swp_exclusive
    assert live_pages(st) == []


def test_swapout_of_a_file_page_is_refused():
    r = run_src("""
        process A
        file F = [7]
        A: mmap(fm, private, rw, file=F)
        A: read(fm) as v
        reclaim: swapout(A.fm) as so
    """)
    assert not r.final.result("so").ok
    assert pte(r.final, "A", "fm").present


def test_swapin_reads_into_the_swap_cache_without_mapping():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        reclaim: swapout(A.buf)
        reclaim: swapin(A.buf) as si
    """)
    st = r.final
    assert st.result("si").ok
    p = pte(st, "A", "buf")
    assert not p.present  # still a swap entry
    cached = [n for n, pg in enumerate(st.pages) if pg.swapcache == p.slot and not pg.freed]
    assert len(cached) == 1
    pg = st.pages[cached[0]]
    assert pg.data == 5 and pg.mapcount == 0 and pg.refcount == 1  # only the swap cache holds it


def test_swapin_then_fault_uses_the_swap_cache_page():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        reclaim: swapout(A.buf)
        reclaim: swapin(A.buf)
        A: read(buf) as v
    """)
    st = r.final
    cached = next(n for n, pg in enumerate(st.pages) if pg.swapcache >= 0 and not pg.freed)
    assert pfn(st, "A", "buf") == cached  # no second page read in
    assert value(r, "v") == 5
    assert len(live_pages(st)) == 1


def test_swapin_of_a_present_page_fails():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        reclaim: swapin(A.buf) as si
    """)
    assert not r.final.result("si").ok
    assert len(live_pages(r.final)) == 1


# --- odirect_read / odirect_write (the version boundary and the race: tests/test_direct_io.py) ----


def test_odirect_read_puts_the_files_data_in_the_buffer_and_releases_the_page():
    r = run_src("""
        process A
        file F = [8]
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: odirect_read(buf, file=F) as io
        assert A.buf == 8
        assert not failed(io)
        assert refcount(A.buf) == 1 and pincount(A.buf) == 0
    """)
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]


def test_odirect_write_puts_the_buffers_data_in_the_file():
    r = run_src("""
        process A
        file F = [0]
        A: mmap(buf, anon, private, rw)
        A: write(buf, 4)
        A: odirect_write(buf, file=F)
        assert F[0] == 4 and A.buf == 4
        assert refcount(A.buf) == 1 and pincount(A.buf) == 0
    """)
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]


# --- migrate (the version boundary and the fork race: tests/test_migrate.py) ---------------------


def test_migrate_moves_the_data_to_a_new_page_and_frees_the_old_one():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 6)
        A: migrate(A.buf) as mig
        assert A.buf == 6 and not failed(mig)
        assert refcount(A.buf) == 1 and mapcount(A.buf) == 1 and writable(A.buf)
    """)
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]
    assert sum(1 for p in r.final.pages if p.freed) == 1


# --- prctl(memory_merge) and madvise(mergeable|unmergeable) (versions: tests/test_rules.py) ---------


def test_prctl_memory_merge_off_unmerges_and_stops_merging():
    r = run_src("""
        process A
        A: mmap(p, anon, private, rw)
        A: mmap(q, anon, private, rw)
        A: prctl(memory_merge, enable)
        A: write(p, 3)
        A: write(q, 3)
        ksmd: ksm_merge(A.p, A.q) as k1
        A: prctl(memory_merge, disable)
        ksmd: ksm_merge(A.p, A.q) as k2
        assert not failed(k1) and failed(k2)
        assert not ksm(A.p) and not ksm(A.q) and A.p == 3 and A.q == 3
        assert not (A.p is A.q)
    """)
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]


def test_madvise_mergeable_is_needed_for_ksm_and_ignored_on_shared_memory():
    r = run_src("""
        process A
        A: mmap(p, anon, private, rw)
        A: mmap(q, anon, private, rw)
        A: mmap(s, anon, shared, rw)
        A: madvise(p, mergeable)
        A: madvise(s, mergeable) as shm
        A: write(p, 3)
        A: write(q, 3)
        A: write(s, 3)
        ksmd: ksm_merge(A.p, A.q) as unadvised
        A: madvise(q, mergeable)
        ksmd: ksm_merge(A.p, A.s) as shared
        ksmd: ksm_merge(A.p, A.q) as advised
        assert failed(unadvised) and not failed(shm) and failed(shared) and not failed(advised)
        assert ksm(A.p) and A.p is A.q
    """)
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]
    texts = [str(e) for rec in r.steps for e in rec.events]
    assert any("is not VM_MERGEABLE (give it madvise(q, mergeable))" in t for t in texts)
    assert any("shared or hugetlb, which KSM never scans: ignored" in t for t in texts)


# --- io_uring_register (the version boundary: test_rules.py; gup_longterm.c: scenarios/selftests) ---


def test_io_uring_register_pins_the_page_writable_for_dma_and_unpin_releases_it():
    src = """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: io_uring_register(buf) as r
        r: dma_write(7)
        r: dma_read() as seen
    """
    # FOLL_WRITE breaks COW first: the pin is on A's own copy, which the device writes
    r = run_src(src + """
        assert pincount(A.buf) == 1 and exclusive(A.buf) and not (A.buf is B.buf)
        assert A.buf == 7 and B.buf == 1 and seen == 7
    """)
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]
    r = run_src(src + """
        A: unpin(r)
        assert pincount(A.buf) == 0 and refcount(A.buf) == 1
    """)
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]


def test_migrate_to_device_replaces_the_pte_by_a_device_private_entry():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: migrate_to_device(buf) as dev
        dev: dma_write(9)
        assert not present(A.buf)
        assert A.buf == 9
    """)
    assert_checks_hold(r)
    st = r.final
    p = pte(st, "A", "buf")
    assert p.devpriv and p.write and st.pages[p.page].device  # the rest: tests/test_device_private.py
    assert handle_page(st, "dev").data == 9
