"""`file F = [...] on disk|shmem|memfd|hugetlbfs`: where a file's page cache lives.

shmem and memfd files (and hugetlbfs) need no dirty tracking, so a long-term
write pin of a shared mapping of one is allowed where a disk file's is refused
(6.5, writable_file_mapping_allowed); a hugetlbfs file's pages are huge pages,
and a private mapping's write fault copies one whole.
"""

from __future__ import annotations

import pytest
from helpers_semantics import assert_checks_hold, outcome, page, run_src, state_after

from cowdsl.errors import CowError
from cowdsl.load import load_text
from cowdsl.native.plan import problem
from cowdsl.semantics.state import HUGETLB, SMALL


def pin_shared(kind: str) -> str:
    return f"""
process A
file F = [1, 2] on {kind}
A: mmap(buf, shared, rw, file=F)
A: pin(buf, write, longterm) as mr
"""


@pytest.mark.parametrize("kind, ok", [("disk", False), ("shmem", True), ("memfd", True), ("hugetlbfs", True)])
def test_longterm_write_pin_of_a_shared_file_mapping(kind, ok):
    r = run_src(pin_shared(kind), backend="6.18")
    assert outcome(r, "A: pin(buf, write, longterm) as mr").ok == ok


def test_the_old_form_is_a_disk_file():
    r = run_src("process A\nfile F = [1, 2]\nA: mmap(buf, shared, rw, file=F)\nA: pin(buf, write, longterm) as mr\n",
                backend="6.18")
    assert not outcome(r, "A: pin(buf, write, longterm) as mr").ok


@pytest.mark.parametrize("kind", ["shmem", "memfd", "disk"])
def test_private_mapping_cow_of_a_file_page(kind):
    src = f"process A\nfile F = [5] on {kind}\nA: mmap(buf, private, rw, file=F)\nA: write(buf, 6)\n"
    r = run_src(src + "assert A.buf == 6\nassert F[0] == 5\nassert cow_copies == 1\n")
    assert_checks_hold(r)
    assert page(state_after(src, "A: write(buf, 6)"), "A", "buf").kind == SMALL


def test_a_hugetlbfs_file_maps_huge_pages_and_its_private_copy_is_huge():
    src = "process A\nfile H = [5] on hugetlbfs\nA: mmap(buf, private, rw, file=H)\nA: read(buf) as v\nA: write(buf, 6)\n"
    st = state_after(src, "A: read(buf) as v")
    assert page(st, "A", "buf").kind == HUGETLB and not page(st, "A", "buf").anon
    st = state_after(src, "A: write(buf, 6)")
    p = page(st, "A", "buf")
    assert p.kind == HUGETLB and p.anon and p.data == 6
    r = run_src(src + "assert H[0] == 5\nassert v == 5\n")
    assert_checks_hold(r)


def test_madvise_pageout_of_a_hugetlbfs_mapping_is_einval():
    r = run_src("process A\nfile H = [5] on hugetlbfs\nA: mmap(buf, shared, rw, file=H)\nA: write(buf, 6)\n"
                "A: madvise(buf, pageout) as p\n")
    assert outcome(r, "A: madvise(buf, pageout) as p").error == "EINVAL"


def test_shared_anonymous_hugetlb_is_a_hugetlbfs_object():
    src = "process A\nA: mmap(buf, shared, rw, hugetlb)\nA: write(buf, 3)\nA: fork() as B\nB: write(buf, 4)\n"
    r = run_src(src + "assert A.buf == 4\nassert cow_copies == 0\n")
    assert_checks_hold(r)
    assert page(state_after(src, "A: write(buf, 3)"), "A", "buf").kind == HUGETLB


def test_map_hugetlb_of_a_disk_file_is_einval():
    r = run_src("process A\nfile F = [1]\nA: mmap(buf, private, rw, hugetlb, file=F) as m\n")
    assert outcome(r, "A: mmap(buf, private, rw, hugetlb, file=F) as m").error == "EINVAL"


@pytest.mark.parametrize("flags", ["shared, rw, pte_thp", "private, rw, pte_thp, file=F", "shared, rw, thp, file=F"])
def test_a_thp_in_a_shared_or_file_mapping_is_not_modelled_never_a_kernel_einval(flags):
    """Regression: the model answered -EINVAL, an error the kernel never gives for it (it maps small
    pages, or a shmem/file THP per shmem_enabled and CONFIG_READ_ONLY_THP_FOR_FS).  A PMD-mapped
    shmem THP (`shared, rw, thp`, or a tmpfs/memfd file) is modelled: tests/test_shmem_thp.py."""
    step = f"A: mmap(buf, {flags}) as m"
    r = run_src(f"process A\nfile F = [1]\n{step}\n")
    assert outcome(r, step).error == "not modelled"


def test_an_unknown_file_kind_is_an_error():
    with pytest.raises(CowError) as e:
        load_text("process A\nfile F = [1] on shmfs\nassert true\n", "t.cow")
    assert "unknown file kind `shmfs`" in str(e.value) and "shmem" in str(e.value)


def test_native_refuses_files_it_cannot_make():
    class Host:
        reason = None
        hugetlb = "the host's hugetlb pool is not ours"

    class Limits:
        max_steps = max_processes = max_pages = 100

    def problem_of(kind: str, contents: str = "0"):
        sc = load_text(f"process A\nfile F = [{contents}] on {kind}\nassert true\n", "t.cow")
        return problem(sc, Host(), Limits())

    got = problem_of("shmem")
    assert got is not None and "`file F ... on shmem`" in got[1] and "tmpfs file is not made" in got[1]
    assert problem_of("memfd", "1") is None  # memfd_create()
    assert "hugetlb pool is not ours" in problem_of("hugetlbfs")[1]  # MFD_HUGETLB only from a guest's pool
