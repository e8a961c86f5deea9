"""Device-private memory (cowdsl.semantics.mm.device_private): migrate_to_device,
the CPU fault that migrates the page back, fork of a device-private entry, GUP on
one, the device's own access; the history is recorded on the timeline, not modelled."""

from __future__ import annotations

import attrs
import pytest
from helpers_semantics import (
    assert_checks_hold,
    assert_decision,
    mm,
    outcome,
    page,
    pfn,
    pte,
    run_src,
    scenario,
    state_after,
    value,
)

from cowdsl.kernel import timeline
from cowdsl.native.plan import REFUSED, UNSUPPORTED_DEVICE_PRIVATE
from cowdsl.ops import OPS, Lock
from cowdsl.report import dot
from cowdsl.report.common import final_state, page_flags
from cowdsl.run import explore
from cowdsl.semantics import concepts, invariants, registry
from cowdsl.semantics.state import Pte


def lines(r) -> list[str]:
    """Every trace line (event) of a run."""
    return [str(e) for rec in r.steps for e in rec.events]

MIGRATED = """
    process A
    A: mmap(buf, anon, private, rw)
    A: write(buf, 1)
    A: migrate_to_device(buf) as dev
"""


def test_migrate_to_device_makes_a_writable_device_private_entry_to_a_copy():
    r = run_src(MIGRATED + "dev: dma_read() as seen\n")
    st = r.final
    p = pte(st, "A", "buf")
    assert concepts.device_private_entry(p) and not p.present and p.write
    dev = st.pages[p.page]
    assert dev.device and dev.data == 1 and dev.mapcount == 1 and dev.refcount == 1
    assert dev.anon_exclusive  # remove_migration_pte: a writable migration entry → RMAP_EXCLUSIVE (5.19+)
    assert st.pages[1].freed  # the system page went back
    assert value(r, "seen") == 1  # HMM_DMIRROR_MIGRATE_TO_DEV's "Check what the device read"
    h = st.handle("dev")
    assert h.device and h.live and h.write and h.page == p.page and h.mirror == ("A", "buf", 0)
    assert not invariants.violations(st)


def test_migrate_to_device_of_a_readable_pte_makes_a_readable_entry():
    st = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: migrate_to_device(buf) as dev
    """).final
    # try_to_migrate takes B's mapping too: both map the device page through readable entries
    a, b = pte(st, "A", "buf"), pte(st, "B", "buf")
    assert a.devpriv and b.devpriv and a.page == b.page and not a.write and not b.write
    assert st.pages[a.page].mapcount == 2 and not st.pages[a.page].anon_exclusive
    assert not st.handle("dev").write  # no MIGRATE_PFN_WRITE: the mirror's entry is read-only


def test_migrate_to_device_of_a_hole_inserts_a_zeroed_device_page():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: migrate_to_device(buf) as dev
        dev: dma_read() as seen
    """)
    p = pte(r.final, "A", "buf")
    assert p.devpriv and p.write and value(r, "seen") == 0  # migrate_vma_insert_page; VM_WRITE → writable


@pytest.mark.parametrize("backend", ["5.10", "6.1", "anon-exclusive"])
def test_migrate_to_device_refuses_a_pinned_page(backend):
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write, longterm) as p
        A: migrate_to_device(buf) as dev
    """, backend=backend)
    st = r.final
    assert outcome(r, "A: migrate_to_device(buf) as dev").error == "ENOENT"
    p = pte(st, "A", "buf")
    assert p.present and p.write and p.page == st.handle("p").page  # the PTE maps the pinned page again
    assert st.handle("dev") is None


def test_migrate_to_device_refusal_of_a_pinned_page_is_the_anon_exclusive_share_on_5_19_plus():
    src = MIGRATED.replace("A: migrate_to_device", "A: pin(buf, write) as p\nA: migrate_to_device")
    # 5.19+: folio_try_share_anon_rmap_pte fails in migrate_vma_collect_pmd (6c287605fd56)
    assert_decision(run_src(src), "unmap_may_share", "A: migrate_to_device(buf) as dev", False, "6c287605fd56")
    # before: migrate_vma_check_page finds the pin's references after the migration entry
    r = run_src(src, backend="5.10")
    assert any("migrate_vma_check_page" in line for line in lines(r))


def test_migrate_to_device_leaves_a_shared_mapping_enoent():
    r = run_src("""
        process A
        A: mmap(buf, shared, rw)
        A: write(buf, 1)
        A: migrate_to_device(buf) as dev
    """)
    assert outcome(r, "A: migrate_to_device(buf) as dev").error == "ENOENT"
    assert pte(r.final, "A", "buf").present


def test_migrate_to_device_of_a_thp_is_not_modelled():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, thp)
        A: write(buf, 1)
        A: migrate_to_device(buf) as dev
    """)
    assert outcome(r, "A: migrate_to_device(buf) as dev").error == "not modelled"


def test_device_private_history_is_recorded_not_modelled():
    """migrate_vma (4.14) and test_hmm (5.7) are on the timeline without options:
    the op runs on every era, as the same mechanism would (docs/selftests.md)."""
    recorded = {c.key: c for c in timeline.TIMELINE if c.key in ("migrate-vma", "test-hmm")}
    assert recorded["migrate-vma"].commit == "8763cb45ab96" and recorded["test-hmm"].commit == "b2ef9f5a5cb3"
    assert not any(c.modelled for c in recorded.values())
    assert pte(run_src(MIGRATED, backend="mapcount").final, "A", "buf").devpriv


def test_cpu_read_migrates_the_page_back_and_drops_the_mirror():
    r = run_src(MIGRATED + "dev: dma_write(9)\nA: read(buf) as v\n")
    st = r.final
    assert value(r, "v") == 9  # the device's write came back with the page
    p = pte(st, "A", "buf")
    assert p.present and p.write and not st.pages[p.page].device and st.pages[p.page].anon_exclusive
    h = st.handle("dev")
    assert not h.live and h.refault  # dmirror_devmem_fault erased the mirror's entry
    assert [n for n, pg in enumerate(st.pages) if pg.device and not pg.freed] == []


def test_fork_shares_the_device_page_read_only_and_the_writer_copies():
    src = MIGRATED + "A: fork() as B\n"
    st = state_after(src, "A: fork() as B")
    a, b = pte(st, "A", "buf"), pte(st, "B", "buf")
    assert a.devpriv and b.devpriv and a.page == b.page and not a.write and not b.write
    dev = st.pages[a.page]
    assert dev.mapcount == 2 and dev.refcount == 2 and not dev.anon_exclusive  # folio_try_dup_anon_rmap_pte
    r = run_src(src + "B: write(buf, 2)\nA: read(buf) as a\n")
    st = r.final
    # B's fault migrates the shared device page back for both (try_to_migrate), then COWs
    assert page(st, "B", "buf").data == 2 and value(r, "a") == 1 and pfn(st, "A", "buf") != pfn(st, "B", "buf")
    assert mm(st, "B").cow_copies == 1


def test_fork_of_a_device_private_entry_before_5_19_keeps_no_exclusive_bit():
    st = state_after(MIGRATED + "A: fork() as B\n", "A: fork() as B", backend="5.10")
    a = pte(st, "A", "buf")
    assert a.devpriv and not a.write and st.pages[a.page].mapcount == 2


def test_fork_drops_the_mirror_and_the_device_reads_its_page_without_a_fault():
    r = run_src(MIGRATED + "A: fork() as B\ndev: dma_read() as seen\n")
    st = r.final
    assert value(r, "seen") == 1 and pte(st, "A", "buf").devpriv  # hmm_range_fault: own page, no fault
    assert any("dev_private_owner" in line or "no fault" in line for line in lines(r))


def test_device_write_to_its_read_only_device_page_is_test_hmms_endless_retry():
    r = run_src(MIGRATED + "A: fork() as B\ndev: dma_write(7) as w\n")
    assert outcome(r, "dev: dma_write(7) as w").error == "not modelled"
    assert r.final.pages[pte(r.final, "A", "buf").page].data == 1  # nothing written


def test_pin_of_a_device_private_page_faults_it_back_first():
    r = run_src(MIGRATED + "A: pin(buf, write, longterm) as p\n")
    st = r.final
    p = pte(st, "A", "buf")
    assert p.present and p.page == st.handle("p").page and not st.pages[p.page].device
    assert st.pages[p.page].data == 1 and st.pages[p.page].pincount == 1


def test_munmap_frees_the_device_page_and_the_mirror():
    st = run_src(MIGRATED + "A: munmap(buf)\n").final
    assert all(pg.freed for pg in st.pages if pg.device)
    assert not st.handle("dev").live


def test_migrate_to_device_again_keeps_the_mirror_of_a_page_still_on_the_device():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, pages=2)
        A: write(buf[0], 1)
        A: write(buf[1], 2)
        A: migrate_to_device(buf[0]) as d0
        A: migrate_to_device(buf[1]) as d1
        A: read(buf[0]) as v
        A: migrate_to_device(buf[0]) as e0
        A: migrate_to_device(buf[1]) as e1
    """)
    assert_checks_hold(r)
    st = r.final
    assert value(r, "v") == 1 and st.handle("e0").live and st.handle("e1").live
    assert st.handle("e1").page == st.handle("d1").page  # skipped by collect, read from the mirror


def test_migrate_to_device_is_refused_natively_with_the_reason():
    assert REFUSED["migrate_to_device"] is UNSUPPORTED_DEVICE_PRIVATE
    assert "test_hmm" in UNSUPPORTED_DEVICE_PRIVATE and "Debian" in UNSUPPORTED_DEVICE_PRIVATE


def test_migrate_to_device_micro_steps_and_locks():
    prog = OPS["migrate_to_device"].program
    assert [(s.label, s.lock) for s in prog.steps] == [
        ("collect", Lock.MMAP_READ), ("copy", Lock.NONE), ("finalize", Lock.PTL)]


def test_fork_waits_for_migrate_to_device_which_holds_mmap_read_lock():
    """dmirror_migrate_to_device holds mmap_read_lock across its micro-steps: a fork
    racing it sees the page before or after, never the migration entries."""
    src = """
        process A
        thread T of A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        par {
          T: migrate_to_device(buf) as dev
          A: fork() as B
        }
        B: read(buf) as b
        A: read(buf) as a
        always: a == 1 and b == 1
        always: not failed(dev)
    """
    r = explore(scenario(src), registry.get("anon-exclusive"), mode="full")
    assert_checks_hold(r)
    assert r.exploration.states > 10


def test_the_final_state_and_dot_show_device_private_entries():
    st = run_src(MIGRATED).final
    table = final_state(st)
    assert "device-private rw" in table and "device-private" in page_flags(st, pte(st, "A", "buf").page)
    text = dot.state_dot(st, "t")
    assert "device-private rw" in text and 'label="device-private"' in text


def test_a_page_faulted_back_from_a_shared_device_page_is_not_a_fresh_exclusive_page():
    """I1 (a fresh anonymous page is exclusive) exempts migrate_to_ram's target: it
    keeps the device page's sharing (readable entries after fork: not exclusive)."""
    src = MIGRATED + "A: fork() as B\nA: read(buf) as v\n"
    before = state_after(src, "A: fork() as B")
    after = state_after(src, "A: read(buf) as v")
    new = pte(after, "A", "buf").page
    assert not after.pages[new].anon_exclusive and after.pages[new].mapcount == 2
    assert not invariants.fresh_page_violations(before, after)
    # the exemption is that page's alone: a fresh unexclusive page elsewhere still breaks I1
    bad = attrs.evolve(after, pages=after.pages + (attrs.evolve(after.pages[new], anon_exclusive=False),))
    bad = attrs.evolve(bad, mms=tuple(attrs.evolve(m, vmas=tuple(
        attrs.evolve(v, ptes=v.ptes + (Pte(page=len(bad.pages) - 1),)) for v in m.vmas)) if m.name == "B" else m
        for m in bad.mms))
    assert [n for n, _ in invariants.fresh_page_violations(before, bad)] == [invariants.I1]


def test_a_device_write_through_a_read_only_mirror_entry_refaults():
    """A mirror entry made from a readable PTE has no DPT_XA_TAG_WRITE: dmirror_do_write
    gets -ENOENT and faults through hmm_range_fault, which finds the device's own
    read-only entry (the endless retry: not modelled)."""
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: migrate_to_device(buf) as dev
        dev: dma_write(5) as w
        dev: dma_read() as seen
    """)
    assert not r.final.handle("dev").write
    assert outcome(r, "dev: dma_write(5) as w").error == "not modelled" and value(r, "seen") == 1


@pytest.mark.parametrize("setup, why", [
    ("reclaim: swapout(A.buf)\nA: read(buf) as r\n", "in the swap cache"),
    ("A: mmap(b2, anon, private, rw)\nA: write(b2, 1)\nA: madvise(buf, mergeable)\nA: madvise(b2, mergeable)\n"
     "ksmd: ksm_merge(A.buf, A.b2)\n", "a KSM page"),
])
def test_migrate_to_device_of_a_swap_cache_or_ksm_page_is_not_modelled(setup, why):
    """6.13+ drop the swap cache first (folio_free_swap), 5.10/6.1 leave the page; KSM
    pages: not modelled either way.  The PTE stays as it was."""
    src = """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
    """ + "".join("    " + line + "\n" for line in setup.splitlines()) + "    A: migrate_to_device(buf) as dev\n"
    r = run_src(src)
    assert outcome(r, "A: migrate_to_device(buf) as dev").error == "not modelled"
    assert any(why in line for line in lines(r)) and pte(r.final, "A", "buf").present


@pytest.mark.parametrize("prot", ["rw", "ro"])
def test_mprotect_makes_a_writable_device_private_entry_readable_whatever_the_protection(prot):
    """change_pte_range: "a protection check is difficult", so a writable device-private
    entry becomes readable even for PROT_READ|PROT_WRITE (5.10.198, 6.1.158, 6.18.2
    mm/mprotect.c); the page stays on the device."""
    r = run_src(MIGRATED + f"A: mprotect(buf, {prot})\n")
    p = pte(r.final, "A", "buf")
    assert concepts.device_private_entry(p) and not p.write
    assert r.final.pages[p.page].device
    assert any("device-private entry of" in line and "made readable" in line for line in lines(r))


def test_a_cpu_write_after_mprotect_faults_the_page_back_and_writes_it():
    r = run_src(MIGRATED + "A: mprotect(buf, rw)\nA: write(buf, 5)\nA: read(buf) as v\n")
    p = pte(r.final, "A", "buf")
    assert p.present and p.write and not r.final.pages[p.page].device
    assert value(r, "v") == 5


def test_migrate_to_device_of_a_prot_none_vma_is_einval():
    """dmirror_migrate_to_device: "!vma || !(vma->vm_flags & VM_READ)" → -EINVAL
    (5.10.198 and 6.18.2 lib/test_hmm.c); the page stays where it is."""
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: mprotect(buf, none)
        A: migrate_to_device(buf) as dev
    """)
    assert outcome(r, "A: migrate_to_device(buf) as dev").error == "EINVAL"
    p = pte(r.final, "A", "buf")
    assert p.present and not r.final.pages[p.page].device


MIRROR_VS_MIGRATION = """
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
A: migrate_to_device(buf) as dev
A: read(buf) as r
par {
  A: migrate(A.buf)
  dev: dma_read() as seen
}
always: seen == 1
"""


def test_a_device_refault_waits_for_a_migration_entry_at_its_mirrored_address():
    """The CPU read brought the page back and dropped the mirror; the device's next
    read re-faults through hmm_range_fault, which meets migrate's migration entry,
    waits (migration_entry_wait, -EBUSY) and is retried by test_hmm: it reads the
    page before or after the migration, never mid-way (that was an IndexError in
    do_swap_page, found by the fuzzer)."""
    from cowdsl.explore import search
    from cowdsl.explore.model import Model
    sc = scenario(MIRROR_VS_MIGRATION)
    r = explore(sc, registry.get("anon-exclusive"))
    assert r.verdict == "pass" and not r.exploration.partial
    ex = search.full(Model(sc, registry.get("anon-exclusive")), search.Bounds())
    assert ex.executions == 2  # the device's read before the migration, or after it


def test_a_device_access_through_a_live_mirror_does_not_wait_on_a_migration_entry():
    from cowdsl.semantics.micro import MicroSteps
    sc = scenario(MIRROR_VS_MIGRATION)
    dma = next(s for s in sc.steps if s.op == "dma_read")
    st = run_src(MIGRATED).final  # the mirror is live: no fault, no wait
    assert MicroSteps.mirror_pte(st, dma) is None


def test_a_device_access_to_a_page_mremap_shrank_away_is_efault():
    """mremap shrinking the mapping unmaps the mirrored page: the device's next access
    re-faults through hmm_range_fault, which finds no VMA there (-EFAULT); it was an
    IndexError past the shrunk page table (found by fuzzing the footprint memo)."""
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, pages=3)
        A: write(buf[2], 1)
        A: migrate_to_device(buf[2]) as dev
        A: mremap(buf, pages=2)
        dev: dma_read() as seen
    """)
    assert outcome(r, "dev: dma_read() as seen").error == "EFAULT"


def test_a_vma_covers_no_page_past_its_end():
    from cowdsl.semantics.state import Vma
    v = Vma("buf", anon=True, shared=False, write=True, maywrite=True, file=None, ptes=(None, None))
    assert v.at(1) is v and v.at(2) is None
