"""The model's invariants (cowdsl.semantics.invariants), checked after every micro-step.

Debug mode (COWDSL_DEBUG_INVARIANTS=1, or ``backend.debug_invariants``) makes
every backend check, after every micro-step of a sequential or explored run,
the bookkeeping invariants (refcount, mapcount, pincount, freed pages, swap
counts) and, from 5.19 on, PageAnonExclusive's I1-I4.  A random-scenario
property test runs the six eras and several variants with it on; the model
bugs it found are pinned down here and in tests/regressions/.
"""

from __future__ import annotations

import textwrap

import pytest
from attrs import evolve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cowdsl import fuzz
from cowdsl.explore.search import Bounds
from cowdsl.load import find, load, load_all, load_text
from cowdsl.report.text import invariant_violation
from cowdsl.run import run
from cowdsl.semantics import invariants as inv
from cowdsl.semantics import registry
from cowdsl.semantics.invariants import InvariantViolation
from cowdsl.semantics.machine import Machine


@pytest.fixture(autouse=True)
def debug_invariants(monkeypatch):
    monkeypatch.setenv(inv.ENV, "1")


def sc(src: str):
    return load_text(textwrap.dedent(src).strip("\n") + "\n", "t.cow")


def small_bounds():
    return Bounds(max_states=fuzz.FUZZ_MAX_STATES, timeout=fuzz.FUZZ_TIMEOUT)


# --- debug mode ---------------------------------------------------------------------------------


def test_debug_mode_follows_the_environment(monkeypatch):
    assert registry.get("anon-exclusive").debug_invariants is True
    monkeypatch.delenv(inv.ENV)
    b = registry.get("anon-exclusive")
    assert b.debug_invariants is False
    b.debug_invariants = True  # or turned on for one backend
    assert b.debug_invariants


PIN = """
    process A
    A: mmap(buf, anon, private, rw)
    A: write(buf, 1)
    A: pin(buf, write) as mr
    A: fork() as B
    assert true
"""


def test_a_broken_model_raises_a_violation_naming_invariant_step_and_state(monkeypatch):
    """A model that forgets to count a pin: the violation says which invariant,
    after which step and micro-step, on which backend, and shows the state."""
    real = Machine.grab

    def forgetful(self, pfn, pin):
        real(self, pfn, pin)
        if pin:
            self.update_page(pfn, pincount=self.page(pfn).pincount - 1)

    monkeypatch.setattr(Machine, "grab", forgetful)
    with pytest.raises(InvariantViolation) as info:
        run(sc(PIN), "anon-exclusive")
    e = info.value
    assert e.invariant == inv.PINCOUNT and e.step.text == "A: pin(buf, write) as mr" and e.label == "take"
    text = str(e)
    assert text.startswith("invariant pincount violated after step 3 `A: pin(buf, write) as mr` (line 4), "
                           "micro-step `take` on anon-exclusive")
    assert "page #1 has pincount 0 but 1 pins are held" in text
    assert "refcount" not in text  # the model draws no table ...
    drawn = invariant_violation(e)  # ... the report does
    assert drawn.startswith(text) and "A.buf" in drawn and "refcount" in drawn and "mr" in drawn


def test_a_violation_in_an_explored_run_names_the_micro_step(monkeypatch):
    from cowdsl.semantics.mm.fork import Fork

    real = Fork.copy_present_pte

    def leaky(self, m, src, dst, vname, idx):  # forget to write-protect the parent's PTE
        pte = m.pte(src, vname, idx)
        real(self, m, src, dst, vname, idx)
        m.set_pte(src, vname, idx, pte)

    monkeypatch.setattr(Fork, "copy_present_pte", leaky)
    s = sc("""
        process A
        thread T of A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        par {
          A: fork() as B
          T: read(buf) as v
        }
        assert true
    """)
    with pytest.raises(InvariantViolation) as info:
        run(s, "anon-exclusive", mode="full")
    assert info.value.invariant in (inv.I2, inv.I4) and info.value.label == "share"
    assert "A: fork() as B" in str(info.value)


def test_the_checker_finds_each_invariant_in_a_hand_broken_state():
    st_ = list(registry.get("anon-exclusive").run(sc(PIN)))[2][1]  # after the pin
    assert inv.violations(st_) == []
    pages = list(st_.pages)

    def broken(**changes):
        p = list(pages)
        p[1] = evolve(p[1], **changes)
        return [n for n, _ in inv.violations(evolve(st_, pages=tuple(p)))]

    assert inv.REFCOUNT in broken(refcount=3)
    assert inv.MAPCOUNT in broken(mapcount=2)
    assert inv.PINCOUNT in broken(pincount=2)
    assert {inv.I2, inv.I3} <= set(broken(anon_exclusive=False))
    assert {inv.FREED_PTE, inv.FREED_PIN} <= set(broken(freed=True))
    # swap slots
    from cowdsl.semantics.state import Slot

    assert inv.SWAP in [n for n, _ in inv.violations(evolve(st_, slots=(Slot(count=1),)))]
    # I1: a fresh anon page that is not exclusive
    before = list(registry.get("anon-exclusive").run(sc(PIN)))[0][1]
    assert [n for n, _ in inv.fresh_page_violations(before, evolve(st_, pages=tuple(
        evolve(p, anon_exclusive=False) if i == 1 else p for i, p in enumerate(pages))))] == [inv.I1]


# --- era awareness ---------------------------------------------------------------------------------


def test_i2_i3_are_5_19_invariants_not_bugs_of_earlier_eras():
    """Before 5.9 fork shares a pinned page read-only (the kernel's own historical
    bug, CVE-2020-29374's family): legal for that era, an I3 break for 5.19+."""
    r = run(sc(PIN), "mapcount")  # debug mode on: no InvariantViolation
    shared = r.final
    assert shared.handle("mr").page == shared.mm("B").vma("buf").ptes[0].page  # the pin is shared with B
    assert inv.I3 in [n for n, _ in inv.violations(shared, anon_exclusive=True)]
    assert not inv.violations(shared, anon_exclusive=False)
    assert set(inv.exempt(registry.get("mapcount"))) == {inv.I1, inv.I2, inv.I3, inv.I4}
    assert inv.exempt(registry.get("anon-exclusive")) == {}


def test_the_unmerged_pin_scope_proposal_breaks_i3_by_design():
    r = run(sc(PIN), "anon-exclusive:pin_scope=longterm")  # shares the short-term pinned page
    assert inv.I3 in [n for n, _ in inv.violations(r.final)]
    assert inv.I3 in inv.exempt(registry.get("anon-exclusive:pin_scope=longterm"))


# --- references held between micro-steps ---------------------------------------------------------------


def test_references_held_between_micro_steps_are_counted():
    """GUP-fast holds a speculative pin between grab and its re-checks; process_vm_*
    a pin between pin and unpin; fork a preallocated page.  Every interleaving of
    them keeps the invariants once those are counted."""
    s = sc("""
        process A, C
        thread T of A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write, longterm) as mr
        par {
          T: pin(buf, read, fast) as p2
          A: fork() as B
          C: process_vm_writev(A.buf, 5)
        }
        assert true
    """)
    r = run(s, "anon-exclusive", mode="full")
    assert r.exploration.partial is None and r.exploration.states > 50
    assert inv.in_flight(registry.get("anon-exclusive"), s.steps[3], "recheck", (0, False, 1, True)) == [
        (1, "speculative-pin")]
    assert inv.in_flight(registry.get("anon-exclusive"), s.steps[5], "copy", (1,)) == [(1, "pin")]
    assert inv.in_flight(registry.get("anon-exclusive"), s.steps[4], "retry", (0, 7)) == [(7, "get")]
    assert inv.in_flight(registry.get("anon-exclusive"), s.steps[4], "pte", (0,)) == []


# --- the bugs the property test found -----------------------------------------------------------------


def test_a_step_naming_a_process_whose_fork_did_not_run_fails_with_esrch():
    """Was a KeyError: A is killed by its write to a read-only mapping, so its fork
    never makes B; reclaim and process_vm_writev then named B."""
    s = sc("""
        process A, C
        A: mmap(buf, anon, private, ro)
        A: write(buf, 1)
        A: fork() as B
        reclaim: swapin(B.buf)
        C: process_vm_writev(B.buf, 1) as w
        assert failed(w) and failed(B)
    """)
    for spec in fuzz.BACKENDS:
        r = run(s, spec)
        assert r.verdict == "pass", spec
        assert r.steps[3].outcome.error.startswith("ESRCH: B was never created")
    par = sc("""
        process A, C
        A: mmap(buf, anon, private, ro)
        A: write(buf, 1)
        A: fork() as B
        par {
          reclaim: swapout(B.buf)
          C: process_vm_readv(B.buf) as v
        }
        assert failed(v)
    """)
    assert run(par, "anon-exclusive", mode="full").verdict == "pass"


@pytest.mark.parametrize("at", range(4))
def test_a_fork_whose_parent_is_killed_midway_fails_and_makes_no_child(at):
    """Was an IndexError in fork__share (found by the fuzzer): T's load from a PROT_NONE
    page, present, takes no lock and kills A (the model tears A's mm down at once)
    while A's fork holds mmap_lock and, between deciding to share buf[0] and
    write-protecting it, the PTL.  fork gives up on the fatal signal, -EINTR
    (dup_mmap's and copy_process's fatal_signal_pending): no child, the locks and the
    write_protect_seq section end, every page is freed.  ``at``: how many of fork's
    micro-steps ran before T's load (lock; begin; the decision to share)."""
    s = sc("""
        process A
        thread T of A
        A: mmap(buf, anon, private, rw, pages=2)
        A: write(buf[0], 1)
        A: write(buf[1], 1)
        A: mprotect(buf[1], none)
        par {
          A: fork() as B
          T: read(buf[1]) as v
        }
        assert failed(B)
    """)
    for spec in ("5.10.198", "6.1", "6.18"):
        r = run(s, spec, schedule=["A"] * (4 + at) + ["T"] + ["A"] * (1 if at else 0))
        st = r.final
        assert r.verdict == "pass", spec
        assert st.mm("B") is None and not st.mm("A").alive
        a = st.mm("A")
        assert a.mmap_lock == 0 and not a.ptl and a.wp_seq % 2 == 0
        assert all(p.freed for p in st.pages if not p.zero)
        if at:
            assert dict(st.results)["B"].error.startswith("EINTR")
    # every interleaving, the invariants checked at each micro-step: fork fails or makes B; with
    # buf[0] pinned, fork copies it (copy_present_page: the PTL dropped to allocate, then retried)
    lines = [line for line in s.source.splitlines() if not line.startswith("assert")]
    checks = ["sometimes: failed(B)", "sometimes: not failed(B)"]
    pinned = lines[:5] + ["A: pin(buf[0], write, longterm) as p"] + lines[5:]
    for spec in ("5.10.198", "6.1", "6.18"):
        for src in (lines, pinned):
            full = run(sc("\n".join(src + checks)), spec, mode="full", bounds=small_bounds())
            assert full.verdict == "pass" and full.exploration.partial is None, spec


def test_gup_fast_does_not_pin_a_page_reclaim_freed_under_it():
    """Was a pin on a freed page: GUP-fast read the PTE, reclaim freed the page,
    GUP-fast grabbed it.  folio_ref_try_add_rcu refuses a zero refcount, so the
    pin falls back to the slow path and pins what is mapped then."""
    s = sc("""
        process A
        thread T of A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        par {
          reclaim: swapout(A.buf)
          T: pin(buf, read, fast) as mr
        }
        always: not failed(mr) and mr is A.buf and mr == 1
    """)
    for mode in ("full", "reduced"):
        r = run(s, "anon-exclusive", mode=mode)
        assert r.verdict == "pass", (mode, [c.values for c in r.checks])
    r = run(s, "anon-exclusive", schedule=["A", "A", "T", "T", "reclaim"])  # T reads the PTE; the page goes
    assert r.checks[0].holds
    assert any("was freed since the PTE was read" in e.text for tr in r.checks[0].witness for e in tr.events)


@pytest.mark.parametrize("backend", ["5.19", "6.1", "anon-exclusive"])
@pytest.mark.parametrize("mode", ["full", "reduced"])
def test_a_read_only_fast_pin_racing_ksm_keeps_the_page_exclusive(backend, mode):
    """Was I3 broken (a pinned page not exclusive) and `pinned and ksm` reported
    reachable: ksmd's write_protect_page passed its refcount check and cleared
    PageAnonExclusive between GUP-fast's PTE read and its grab.  The kernel's
    gup_pte_range re-reads the whole PTE after the grab (KSM cleaned it) and only
    then asks gup_must_unshare, which sees the page no longer exclusive: the pin
    falls back to the slow path, which unshares (a7f226604170)."""
    s = load(find(["scenarios/ksm/ro-fast-pin-races-ksm.cow"])[0])
    r = run(s, backend, mode=mode)  # raised InvariantViolation (I3) before
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]
    # the schedule of the old counterexample: ksmd merges between the PTE read and the grab
    r = run(s, backend, schedule=["A", "A", "A", "A", "A", "A", "A", "ksmd", "A", "A", "A"])
    texts = [e.text for c in r.checks for tr in c.witness for e in tr.events]
    assert r.verdict == "pass"
    assert any("PTE changed under us" in t or "must be unshared first" in t for t in texts), texts


def test_a_pte_mapped_thp_keeps_its_siblings_while_a_device_exclusive_entry_names_it():
    """Was a refcount underflow: with devexcl_fork=copy, parent and child both hold
    a device-exclusive entry to the subpage; zapping the first dropped the 511
    sibling references the second still needs."""
    s = sc("""
        process A
        A: mmap(t, anon, private, rw, pte_thp)
        A: write(t, 1)
        A: make_device_exclusive(t) as dx
        A: fork() as B
        A: munmap(t)
        assert refcount(B.t) == 512
    """)
    r = run(s, "early-cow:devexcl_fork=copy")
    assert r.verdict == "pass", r.checks[0].values
    done = sc(textwrap.dedent("""
        process A
        A: mmap(t, anon, private, rw, pte_thp)
        A: write(t, 1)
        A: make_device_exclusive(t) as dx
        A: fork() as B
        A: munmap(t)
        B: munmap(t)
        assert true
    """).strip())
    r = run(done, "early-cow:devexcl_fork=copy")
    freed = [p for p in r.final.pages if p.kind == "pte_thp"]
    assert freed and all(p.freed and p.refcount == 0 for p in freed)


# --- the property test: random scenarios on every backend -----------------------------------------------

PROPERTY = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(fuzz.strategy(fuzz.scenario_text, par=False), st.sampled_from(fuzz.BACKENDS))
def test_random_sequential_scenarios_keep_the_invariants(text, backend):
    fuzz.run_input(text.encode(), (backend,))


@pytest.mark.slow
@PROPERTY
@given(fuzz.strategy(fuzz.scenario_text, par=True), st.sampled_from(fuzz.BACKENDS))
def test_random_concurrent_scenarios_keep_the_invariants(text, backend):
    fuzz.run_input(text.encode(), (backend,))


@pytest.mark.parametrize("backend", fuzz.BACKENDS)
def test_the_corpus_keeps_the_invariants(backend):
    for path in find(["scenarios", "benchmarks"]):
        for sc in load_all(path):  # every scenario of a swept file
            run(sc, backend, bounds=small_bounds())


def test_reclaim_waits_for_the_page_table_lock_fork_holds_in_its_share_window():
    """Was a swap entry "shared" as a page: fork decided to share A's page and held
    A's page-table lock to write-protect it, while reclaim, swapping the page out
    through B's address, walked the rmap into A's page table regardless.  An rmap
    walk takes the PTL of every mm it touches, so reclaim waits."""
    from cowdsl.explore.model import Model

    s = sc("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        par {
          A: fork() as C
          reclaim: swapout(B.buf)
        }
        assert true
    """)
    backend = registry.get("anon-exclusive")
    model = Model(s, backend)
    w = model.init()
    while not (w.block == 3 and w.threads[0].label == "share"):  # A's fork, in the window
        en = model.enabled(w)
        w = model.step(w, 0 if w.block == 3 else en[0])[0]
    reclaim = [i for i, t in enumerate(w.threads) if t.actor == "reclaim"][0]
    assert model.enabled(w) == [0]
    assert model.blocked(w, reclaim) == "the page-table lock of A is held"
    assert ("mm", "A", "ptl") in model.lock_footprint(w, reclaim)
    for spec in fuzz.BACKENDS:
        assert run(s, spec, mode="full").verdict == "pass", spec
