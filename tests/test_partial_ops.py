"""munmap, mprotect and madvise of part of a mapping (``buf[i..j]``, ``buf[i]``).

The kernel splits the VMA where the range starts or ends inside it (split_vma,
mm/mmap.c: do_vmi_munmap, mprotect_fixup, madvise_update_vma) and merges it back
when the flags agree again (vma_merge); MADV_DONTNEED and MADV_PAGEOUT change
page tables only.  In the model one mapping keeps its name and gets per-page
flags (``Vma.parts``) while it is split.
"""

from __future__ import annotations

import pytest
from helpers_semantics import assert_checks_hold, mm, outcome, pte, run_src, state_after

MAP4 = """
process A
A: mmap(buf, anon, private, rw, pages=4)
A: write(buf[0], 1)
A: write(buf[1], 2)
A: write(buf[2], 3)
A: write(buf[3], 4)
"""


def vma(state, proc="A", name="buf"):
    return mm(state, proc).vma(name)


def test_munmap_of_a_part_leaves_a_hole_and_keeps_the_rest():
    r = run_src(MAP4 + """
A: munmap(buf[1..2])
A: read(buf[3]) as v
A: read(buf[1]) as h
assert v == 4
assert segv(A)
""")
    assert outcome(r, "A: read(buf[3]) as v").value == 4
    assert outcome(r, "A: read(buf[1]) as h").error == "SIGSEGV"  # the hole faults: no VMA there
    assert_checks_hold(r)


def test_munmap_of_a_part_frees_its_pages_and_splits():
    st = state_after(MAP4 + "A: munmap(buf[1..2])\n", "A: munmap(buf[1..2])")
    v = vma(st)
    assert [p.mapped for p in v.parts] == [True, False, False, True]
    assert v.ptes[1] is None and v.ptes[2] is None
    assert v.at(1) is None and v.at(0) is not None


def test_munmap_of_every_page_in_parts_removes_the_mapping():
    st = state_after(MAP4 + "A: munmap(buf[0..1])\nA: munmap(buf[2..3])\n", "A: munmap(buf[2..3])")
    assert vma(st) is None


def test_mprotect_of_a_part_splits_and_merges_back():
    src = MAP4 + "A: mprotect(buf[1], ro)\nA: write(buf[2], 7)\nA: mprotect(buf[1], rw)\n"
    st = state_after(src, "A: mprotect(buf[1], ro)")
    assert [p.write for p in vma(st).parts] == [True, False, True, True]
    assert not pte(st, "A", "buf", 1).write and pte(st, "A", "buf", 2).write
    st = state_after(src, "A: mprotect(buf[1], rw)")
    assert vma(st).parts == ()  # vma_merge: one VMA again
    assert vma(st).write


def test_store_to_the_read_only_part_is_sigsegv_the_rest_is_not():
    r = run_src(MAP4 + "A: mprotect(buf[2..3], ro)\nA: write(buf[1], 9)\nA: write(buf[2], 9)\n")
    assert outcome(r, "A: write(buf[1], 9)").ok
    assert outcome(r, "A: write(buf[2], 9)").error == "SIGSEGV"


def test_madvise_dontneed_of_a_part_zaps_only_it():
    st = state_after(MAP4 + "A: madvise(buf[0..1], dontneed)\n", "A: madvise(buf[0..1], dontneed)")
    assert pte(st, "A", "buf", 0) is None and pte(st, "A", "buf", 1) is None
    assert pte(st, "A", "buf", 2).present
    assert vma(st).parts == ()  # MADV_DONTNEED does not split the VMA


def test_madvise_dontfork_of_a_part_keeps_the_rest_in_the_child():
    r = run_src(MAP4 + """
A: madvise(buf[1..3], dontfork)
A: fork() as B
B: read(buf[0]) as v
B: read(buf[1]) as h
assert v == 1
""")
    assert outcome(r, "B: read(buf[0]) as v").value == 1
    assert outcome(r, "B: read(buf[1]) as h").error == "SIGSEGV"  # VM_DONTCOPY: not in the child
    assert_checks_hold(r)


def test_madvise_wipeonfork_of_a_part_empties_only_it_in_the_child():
    r = run_src(MAP4 + """
A: madvise(buf[2], wipeonfork)
A: fork() as B
assert B.buf[1] == 2
assert B.buf[2] == 0
assert A.buf[2] == 3
""")
    assert_checks_hold(r)


def test_pin_of_an_unmapped_part_is_efault():
    r = run_src(MAP4 + "A: munmap(buf[3])\nA: pin(buf[3], write, longterm) as mr\n")
    assert outcome(r, "A: pin(buf[3], write, longterm) as mr").error == "EFAULT"


def test_madvise_over_a_hole_is_enomem():
    r = run_src(MAP4 + "A: munmap(buf[1])\nA: madvise(buf[0..2], dontneed) as x\n")
    assert outcome(r, "A: madvise(buf[0..2], dontneed) as x").error == "ENOMEM"


def test_the_whole_range_is_the_whole_mapping():
    st = state_after(MAP4 + "A: munmap(buf[0..3])\n", "A: munmap(buf[0..3])")
    assert vma(st) is None


@pytest.mark.parametrize("line, message", [
    ("A: write(buf[0..1], 1)", "`write` takes one page, not a range"),
    ("A: munmap(buf[2..1])", "the range `buf[2..1]` ends before it starts"),
    ("A: munmap(buf[1..4])", "page 4 is outside `buf`, which has 4 pages"),
    ("A: mprotect(A.buf[1], ro)", "`mprotect` works on the actor's own mappings"),
])
def test_range_errors(line, message, load_error):
    e = load_error("process A\nA: mmap(buf, anon, private, rw, pages=4)\n" + line + "\nassert true\n", "t.cow")
    assert message in str(e)


def test_a_range_in_an_assertion_is_an_error(load_error):
    e = load_error("process A\nA: mmap(buf, anon, private, rw, pages=4)\nassert A.buf[0..1] == 0\n", "t.cow")
    assert "an assertion names one page, not a range" in str(e)
