"""migrate: page migration through migration entries (mm/migrate.c), refused for
pinned pages (folio_migrate_mapping's refcount check; from 5.19 try_to_migrate_one's
page_try_share_anon_rmap, 6c287605fd56), and fork's BREAK_COW retry it makes
reachable on 5.11-5.18."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers_semantics import page, pfn, run_src, state_after

from cowdsl import ops
from cowdsl.load import load, load_text
from cowdsl.ops import Lock
from cowdsl.run import run
from cowdsl.semantics import invariants as inv

FORK_RETRY = Path(__file__).resolve().parent.parent / "scenarios/migrate/fork-break-cow-retry-vs-migration.cow"


@pytest.fixture(autouse=True)
def debug_invariants(monkeypatch):
    monkeypatch.setenv(inv.ENV, "1")  # bookkeeping checked after every micro-step, in flight too


def texts(r) -> list[str]:
    return [str(e) for rec in r.steps for e in rec.events]


def test_declared_as_unmap_move_remap_under_the_ptl_without_mmap_lock():
    op = ops.OPS["migrate"]
    assert [s.label for s in op.program.steps] == ["unmap", "move", "remap"]
    assert [s.lock for s in op.program.steps] == [Lock.PTL, Lock.NONE, Lock.PTL]
    assert op.program.walks_rmap and op.signature() == "migrate(addr)"


@pytest.mark.parametrize("version", ["5.10", "5.15", "6.1", "6.18"])
def test_an_unpinned_page_moves_to_a_new_frame_with_its_data_and_mapping(version):
    src = """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        A: migrate(A.buf) as mig
        assert not failed(mig)
        assert A.buf == 5 and writable(A.buf)
        assert refcount(A.buf) == 1 and mapcount(A.buf) == 1
    """
    r = run_src(src, backend=version)
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]
    before = pfn(state_after(src, "A: write(buf, 5)", version), "A", "buf")
    assert pfn(r.final, "A", "buf") != before
    assert r.final.pages[before].freed
    assert page(r.final, "A", "buf").anon_exclusive == version.startswith("6")  # 5.19+: the entry remembers it
    assert any("migration entry for #" in t for t in texts(r))


@pytest.mark.parametrize("version, how", [
    ("5.10", "refcount 1025 != expected 1"),  # unmapped, then folio_migrate_mapping says -EAGAIN
    ("5.18", "refcount 1025 != expected 1"),
    ("6.1", "may be pinned → not unmapped"),  # 6c287605fd56: the PTE is never replaced
])
def test_a_pinned_page_never_migrates(version, how):
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        A: pin(buf, write, longterm) as mr
        A: migrate(A.buf) as mig
        assert failed(mig)
        assert mr is A.buf and writable(A.buf) and A.buf == 5
    """, backend=version)
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]
    assert any(how in t for t in texts(r)), texts(r)
    made = any("writable migration entry" in t for t in texts(r))
    assert made == (version != "6.1")


def test_a_foll_get_reference_also_blocks_migration_but_the_page_is_unmapped_first_on_5_19_plus():
    """FOLL_GET does not look pinned: try_to_migrate_one unmaps; the refcount check fails."""
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        A: gup(buf, write) as io
        A: migrate(A.buf) as mig
        assert failed(mig) and io is A.buf and exclusive(A.buf) and writable(A.buf)
    """, backend="6.1")
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]
    assert any("writable migration entry" in t for t in texts(r))


def test_a_cow_shared_page_migrates_for_both_processes_read_only():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        A: fork() as B
        A: migrate(B.buf) as mig
        assert not failed(mig)
        assert A.buf is B.buf and mapcount(A.buf) == 2 and refcount(A.buf) == 2
        assert not writable(A.buf) and not writable(B.buf) and not exclusive(A.buf)
    """, backend="6.1")
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]


def test_nothing_to_migrate_where_nothing_is_faulted_in():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: migrate(A.buf) as mig
        assert failed(mig)
    """)
    assert r.verdict == "pass"
    assert any("-ENOENT" in t for t in texts(r))


@pytest.mark.parametrize("version", ["5.10", "6.18"])
def test_no_vma_at_the_address_is_efault_not_a_crash(version):
    """A failed mremap leaves the mapping shorter than the checker knew: there is no VMA at
    page 2, and find_vma / vma_lookup fail with -EFAULT (it was an IndexError; the fuzzer's
    input)."""
    r = run_src("""
        process A
        A: mmap(m, shared, rw, thp)
        A: write(m[0], 3)
        A: mremap(m, pages=2)
        A: mremap(m, pages=3) as grow
        A: migrate(A.m[2]) as mig
        assert failed(grow) and failed(mig)
    """, backend=version)
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]
    assert any("-EFAULT" in t for t in texts(r))


RACE_WRITE = """
    process A
    thread T of A
    A: mmap(buf, anon, private, rw)
    A: write(buf, 1)
    par {
      A: write(buf, 2)
      T: migrate(A.buf) as mig
    }
    always: A.buf == 2
    always: not failed(mig)
    always: refcount(A.buf) == 1
"""


@pytest.mark.parametrize("version", ["5.15", "6.1"])
def test_a_store_racing_a_migration_waits_on_the_migration_entry(version):
    s = load_text(textwrap.dedent(RACE_WRITE).strip() + "\n", "t.cow")
    r = run(s, version)
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]
    # the migration has unmapped the page: the store's fault cannot run until the remap
    with pytest.raises(ValueError, match="cannot run now"):
        run(s, version, schedule=["A", "A", "T", "A"])


@pytest.mark.parametrize("version", ["5.15", "6.1"])
def test_a_gup_fast_pin_racing_a_migration_ends_on_the_page_mapped(version):
    s = load_text(textwrap.dedent("""
        process A
        thread T of A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        par {
          A: pin(buf, write, fast) as mr
          T: migrate(A.buf) as mig
        }
        always: mr is A.buf
        always: failed(mig) implies A.buf == 1
    """).strip() + "\n", "t.cow")
    r = run(s, version, mode="full")
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]


@pytest.mark.parametrize("version, verdict", [("5.10.198", "fail"), ("5.11", "fail"), ("5.18", "fail"),
                                              ("5.19", "pass"), ("6.1", "pass"), ("6.18", "pass")])
def test_migration_in_forks_window_loses_the_pin_until_5_19(version, verdict):
    assert run(load(FORK_RETRY), version).verdict == verdict


def test_forks_break_cow_retry_is_reachable_through_a_migration_on_5_15():
    """The schedule: fork decides to copy and drops the PTL to allocate; the
    migration unmaps the page and fails its refcount check; fork's retry finds a
    migration entry and copies it; remove_migration_ptes maps the pinned page in
    both, read-only; A's write copies it away from the pin."""
    sched = ["A", "A", "A", "A", "A", "A", "A", "T", "T", "A", "A", "A", "T", "A", "mr", "B"]
    r = run(load(FORK_RETRY), "5.15", schedule=sched)
    t = [e.text for c in r.checks for tr in c.witness for e in tr.events] or \
        [str(e) for rec in r.steps for e in rec.events]
    order = [next(i for i, x in enumerate(t) if key in x) for key in (
        "page_copy_prealloc", "writable migration entry", "the PTE changed while the lock was dropped",
        "copy_nonpresent_pte: migration entry", "remove_migration_pte: B.buf[0]")]
    assert order == sorted(order), t
    assert r.verdict == "fail"


@pytest.mark.parametrize("kind", ["thp", "hugetlb"])
def test_large_folios_are_not_migrated_by_the_model_and_say_so(kind):
    r = run_src(f"""
        process A
        A: mmap(buf, anon, private, rw, {kind})
        A: write(buf, 5)
        A: migrate(A.buf) as mig
        assert failed(mig) and A.buf == 5
    """)
    assert r.verdict == "pass"
    assert any("large folio, which the model does not migrate" in t for t in texts(r))
    # a limit of the model, never an errno the kernel would give (was ENOSYS)
    assert next(s for s in r.steps if s.step.op == "migrate").outcome.error == "not modelled"


def test_a_page_in_the_swap_cache_migrates_with_its_slot_and_the_caches_reference():
    """Was a refcount one short: the swap cache's reference did not move to the new page."""
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        reclaim: swapout(A.buf)
        A: read(buf)
        A: migrate(A.buf) as mig
        assert not failed(mig) and swapcache(A.buf) and A.buf == 1
        assert refcount(A.buf) == 2 and mapcount(A.buf) == 1
    """, backend="5.10")
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]


FORK_COPIES_ENTRY = """
    process A
    thread T of A
    A: mmap(buf, anon, private, rw)
    A: write(buf, 1)
    par {
      A: fork() as B
      T: migrate(A.buf) as mig
    }
    always: not failed(mig)
    always: A.buf is B.buf and mapcount(A.buf) == 2 and refcount(A.buf) == 2
    always: not writable(A.buf) and not writable(B.buf) and not exclusive(A.buf)
"""


@pytest.mark.parametrize("version", ["5.15", "6.1"])
def test_fork_copies_a_migration_entry_read_only_and_the_remap_maps_both(version):
    """copy_nonpresent_pte: a writable (5.19+: or exclusive) migration entry in a COW
    mapping becomes readable in parent and child; remove_migration_ptes finds both."""
    s = load_text(textwrap.dedent(FORK_COPIES_ENTRY).strip() + "\n", "t.cow")
    assert run(s, version, mode="full").verdict == "pass"
    r = run(s, version, schedule=["A", "A", "A", "A", "T", "A", "A", "T", "T"])
    t = [e.text for c in r.checks for tr in c.witness for e in tr.events] or \
        [str(e) for rec in r.steps for e in rec.events]
    assert r.verdict == "pass"
    assert any("copy_nonpresent_pte: migration entry" in x for x in t), t


EXIT_MID_MIGRATION = """\
process A
thread T of A
A: mmap(buf, anon, private, rw, pages=2)
A: write(buf[0], 1)
A: write(buf[1], 1)
A: mprotect(buf, ro)
par {
  T: migrate(A.buf[1]) as mg
  A: write(buf[0], 2)
}
sometimes: not failed(mg)
"""


@pytest.mark.parametrize("version", ["5.10.198", "6.1", "6.18"])
def test_an_exit_zaps_a_migration_entry_and_the_migration_still_ends(version):
    """A's store to its read-only buf[0] kills it while T migrates buf[1]: exit_mmap's
    zap meets the migration entry (zap_pte_range in 5.10.198, zap_nonpresent_ptes in
    6.18.2) and only clears it: it named no swap slot (the model took it for a swap
    entry and indexed the slots: IndexError, found by the fuzzer) and held no mapping.
    The migration ends: remove_migration_ptes finds no entry, and every page is freed."""
    s = load_text(EXIT_MID_MIGRATION, "t.cow")
    r = run(s, version, schedule=["A"] * 4 + ["T", "A", "T", "T"])  # the entry is set, then A dies
    st = r.final
    assert not st.mm("A").alive and st.mm("A").segv
    assert dict(st.results)["mg"].ok
    assert all(p.freed for p in st.pages if not p.zero)
    full = run(s, version, mode="full")
    assert full.verdict == "pass"
    assert all(all(p.freed for p in w.state.pages if not p.zero) for w in full.exploration.finals)
