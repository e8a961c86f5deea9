"""mm/mmap.c, mm/mprotect.c, mm/madvise.c and exit: ops on the address space.

Their mechanism: ``cowdsl.semantics.mm.mmap``."""

from __future__ import annotations

from cowdsl.ops.khugepaged import COLLAPSE_ADVICE, COLLAPSE_PROGRAM
from cowdsl.ops.ksm import KSM_ADVICE, KSM_MADVISE
from cowdsl.ops.spec import (
    NEW_MAPPING,
    PART,
    FlagGroup,
    Fuzz,
    Keyword,
    Lock,
    OpSpec,
    Param,
    ScenarioGenerator,
    whole,
)

# Where a declared file's pages live (`file F = [1, 2] on shmem`): a disk file's page
# cache (the default), a tmpfs/shmem file, a memfd (shmem too), or a hugetlbfs file
# (memfd_create(MFD_HUGETLB) included), whose pages are hugetlb pages.
FILE_KINDS = ("disk", "shmem", "memfd", "hugetlbfs")


def _fuzz_mmap(g: ScenarioGenerator, task: str) -> str | None:
    n, c = g.n, g.c
    if g.in_par:
        return None
    name = n.fresh("m")
    pages = c.integer(1, g.max_pages)
    shape = c.choice(["anon"] * 5 + ["shared", "file", "thp", "pte_thp", "hugetlb", "shmem_thp"])
    prot = c.choice(("rw", "rw", "rw", "rw", "ro"))
    file_backed = False
    if shape == "file" and n.files:
        f = c.choice(sorted(n.files))
        pages = min(pages, n.files[f])
        sharing = c.choice(("private", "shared"))
        text = f"mmap({name}, {sharing}, {prot}, file={f}" + (f", pages={pages})" if c.boolean() else ")")
        if "pages=" not in text:
            pages = n.files[f]
        file_backed = True
    elif shape in ("thp", "pte_thp", "hugetlb"):
        text = f"mmap({name}, anon, private, {prot}, {shape})"
        pages = 1
    elif shape == "shmem_thp":  # MAP_SHARED|MAP_ANONYMOUS with shmem_enabled: a page-cache THP
        text = f"mmap({name}, shared, {prot}, thp)"
        pages = 1
    elif shape == "shared":
        text = f"mmap({name}, shared, {prot}, pages={pages})"
    else:
        text = f"mmap({name}, anon, private, {prot}, pages={pages})"
    n.procs[task][name] = (pages, file_backed)
    n.unmapped.discard((task, name))
    return text


MMAP = OpSpec(
    "mmap",
    "map N pages: anonymous or a file, private or shared, rw or ro",
    "mmap(2)",
    params=(Param("name", NEW_MAPPING, "the mapping's name"),),
    flags=(
        FlagGroup("backing", ("anon",), None, "anonymous memory (the default without file=)"),
        FlagGroup("sharing", ("private", "shared"), "private", "MAP_PRIVATE or MAP_SHARED"),
        FlagGroup("prot", ("rw", "ro"), "rw", "PROT_READ|PROT_WRITE or PROT_READ"),
        FlagGroup(
            "size",
            ("small", "thp", "pte_thp", "hugetlb"),
            "small",
            "4 KiB pages, a PMD-mapped THP (in a shared or memfd/tmpfs mapping: a shmem THP), a PTE-mapped "
            "THP (private anonymous only), or hugetlb pages",
        ),
    ),
    keywords=(
        Keyword("pages", "int", 1, "number of pages"),
        Keyword("file", "file", None, "map this declared file instead of anonymous memory"),
    ),
    program=whole(Lock.MMAP_WRITE),
    fuzz=Fuzz(_fuzz_mmap, in_par=False),
)


def _fuzz_munmap(g: ScenarioGenerator, task: str) -> str | None:
    if g.in_par or not g.n.procs[task]:
        return None
    m = g.c.choice(sorted(g.n.procs[task]))
    del g.n.procs[task][m]
    g.n.unmapped.add((task, m))
    return f"munmap({m})"


# A partial op on a THP: only its tail pages (subpages 1-511), not the head page the
# model follows.  The PMD is split into PTEs first (__split_huge_pmd), as the kernel
# does when a range ends inside a PMD (zap_pmd_range, change_pmd_range, __split_vma).
TAIL = FlagGroup(
    "subpages",
    ("tail",),
    None,
    "a thp mapping: only each huge page's tail pages (subpages 1-511), which splits its PMD into PTEs",
)

MUNMAP = OpSpec(
    "munmap", "unmap a mapping, or pages of it (buf[i..j]: split_vma, then the part is gone)",
    "munmap(2), do_vmi_munmap",
    params=(Param("mapping", PART, "the mapping, or pages of it: buf, buf[i], buf[i..j]"),),
    flags=(TAIL,),
    program=whole(Lock.MMAP_WRITE),
    fuzz=Fuzz(_fuzz_munmap, in_par=False),
)


def _fuzz_mremap(g: ScenarioGenerator, task: str) -> str | None:
    n, c = g.n, g.c
    if g.in_par or not n.procs[task]:
        return None
    m = c.choice(sorted(n.procs[task]))
    pages, file_backed = n.procs[task][m]
    if c.boolean():  # resize in place
        new = c.integer(1, g.max_pages)
        n.procs[task][m] = (new, file_backed)
        return f"mremap({m}, pages={new})"
    dst = n.fresh("m")
    del n.procs[task][m]  # the whole mapping moves (a part would leave a hole the generator does not track)
    n.unmapped.add((task, m))
    n.procs[task][dst] = (pages, file_backed)
    n.unmapped.discard((task, dst))
    return f"mremap({m}, to={dst})"


MREMAP = OpSpec(
    "mremap",
    "move pages of a mapping to a new mapping (to=NAME), resize it in place (pages=N), or move a THP's tail pages away",
    "mremap(2): move_vma, move_page_tables (move_huge_pmd), vma_expand / do_vmi_munmap",
    params=(Param("mapping", PART, "the mapping, or pages of it: buf, buf[i], buf[i..j]"),),
    flags=(FlagGroup("subpages", ("tail",), None,
                     "a thp mapping: move each huge page's tail pages elsewhere (cow.c's partial mremap), "
                     "which splits its PMD"),),
    keywords=(
        Keyword("to", "new-mapping", None, "the new mapping the pages move to (MREMAP_MAYMOVE|MREMAP_FIXED)"),
        Keyword("pages", "int", None, "the new size, in pages, of the whole mapping (grow or shrink in place)"),
    ),
    # mmap_write_lock; move_ptes takes the old and the new page table's PTLs (both this mm's)
    program=whole(Lock.MMAP_WRITE),
    fuzz=Fuzz(_fuzz_mremap, in_par=False),
)


def _fuzz_exit(g: ScenarioGenerator, task: str) -> str | None:
    n = g.n
    if g.in_par or len(n.alive()) < 2:
        return None
    n.exited.add(task)
    for h, (_k, _w, owner) in list(n.handles.items()):
        if owner == task:
            del n.handles[h]
    return "exit()"


EXIT = OpSpec(
    "exit", "the process exits: its mappings and its pins are released", "exit_group(2)",
    program=whole(Lock.MMAP_WRITE),  # exit_mmap
    fuzz=Fuzz(_fuzz_exit, in_par=False),
)


def _fuzz_mprotect(g: ScenarioGenerator, task: str) -> str | None:
    if not g.n.procs[task]:
        return None
    return f"mprotect({g.c.choice(sorted(g.n.procs[task]))}, {g.c.choice(('ro', 'rw', 'none'))})"


MPROTECT = OpSpec(
    "mprotect",
    "change the protection of a mapping, or of pages of it (splitting the VMA)",
    "mprotect(2), mprotect_fixup, change_pte_range",
    params=(Param("mapping", PART, "the mapping, or pages of it: buf, buf[i], buf[i..j]"),),
    flags=(FlagGroup("prot", ("rw", "ro", "none"), None,
                     "the new protection: PROT_READ|PROT_WRITE, PROT_READ, or PROT_NONE"), TAIL),
    program=whole(Lock.MMAP_WRITE),
    fuzz=Fuzz(_fuzz_mprotect),
)


def _fuzz_madvise(g: ScenarioGenerator, task: str) -> str | None:
    maps = g.n.procs[task]
    if not maps:
        return None
    m = g.c.choice(sorted(maps))
    advice = ["dontneed", "dontfork", "dofork", "pageout", "collapse"] + ([] if maps[m][1] else ["wipeonfork"])
    return f"madvise({m}, {g.c.choice(advice)})"


MADVISE = OpSpec(
    "madvise",
    "give advice about a mapping, or pages of it",
    "madvise(2)",
    params=(Param("mapping", PART, "the mapping, or pages of it: buf, buf[i], buf[i..j]"),),
    flags=(
        FlagGroup(
            "advice",
            ("dontneed", "dontfork", "dofork", "wipeonfork", "pageout", *KSM_ADVICE, *COLLAPSE_ADVICE),
            None,
            "MADV_DONTNEED, MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_PAGEOUT, "
            "MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_COLLAPSE (6.1+)",
        ),
        TAIL,
    ),
    program=whole(Lock.MMAP_READ),  # madvise_need_mmap_write() is false for these
    # cowdsl.ops.ksm: mmap_lock for write; cowdsl.ops.khugepaged: the scan, then the collapse
    flag_programs=tuple((w, KSM_MADVISE) for w in KSM_ADVICE) + tuple((w, COLLAPSE_PROGRAM) for w in COLLAPSE_ADVICE),
    fuzz=Fuzz(_fuzz_madvise),
)
