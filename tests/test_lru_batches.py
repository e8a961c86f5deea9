"""The per-CPU lru_add batches (cowdsl.semantics.mm.swap) and the drains the
explorer adds for them (cowdsl.explore.model drainers).

A fresh order-0 anonymous page waits in the lru_add batch of the faulting task's
CPU with a reference of its own until that batch is drained.  The refcount rule
of 5.9-5.17 sees that reference; 5.18's do_wp_page drains the faulting CPU's
batch first (d4c470970d45).  A run whose decisions never depended on a batch
stays on the fast path; one whose did is explored with a drain of each batch
possible at any moment.
"""

from __future__ import annotations

import textwrap

import pytest

from cowdsl.explore import search, symmetry
from cowdsl.explore.model import Model, World
from cowdsl.judge.evaluate import evaluate
from cowdsl.judge.quantify import model_observer
from cowdsl.load import load_text
from cowdsl.report import explored as report
from cowdsl.run import explore, run
from cowdsl.semantics import invariants, registry
from cowdsl.semantics.machine import Decision, Machine
from cowdsl.semantics.mm.swap import LRU_RULE, UNMAP_DRAIN
from cowdsl.semantics.state import THP, Page, State
from tests.helpers_semantics import exact_refcount_violations, page, states


def scenario(src: str):
    """Dedented .cow text, checked (no assertion added)."""
    return load_text(textwrap.dedent(src).strip("\n") + "\n", "t.cow")

T2 = """
    process A
    A: mmap(buf, anon, private, rw)
    A: write(buf, 1)
    A: fork() as B
    B: exit()
    A: write(buf, 2)
    always: cow_copies(A) == 0
"""

BY_THREAD = T2.replace("    process A\n", "    process A\n    thread T of A\n").replace(
    "    A: write(buf, 2)", "    T: write(buf, 2)")


def after(src: str, text: str, backend: str = "anon-exclusive") -> State:
    """The state right after the step ``text`` (not the last step: that one's is drained)."""
    for step, st in states(src, backend):
        if step.text == text:
            return st
    raise AssertionError(text)


def events(r) -> list[str]:
    """Every event text of an explored run's checks' executions, or of a sequential run."""
    if r.exploration is None:
        return [e.text for rec in r.steps for e in rec.events]
    return [e.text for c in r.checks for tr in c.witness or () for e in tr.events]


# --- which pages wait in a batch ----------------------------------------------------------------


def test_a_written_page_waits_in_the_batch_of_the_faulting_tasks_cpu_with_a_reference():
    src = """
        process A
        thread T of A
        A: mmap(buf, anon, private, rw, pages=2)
        A: write(buf, 1)
        T: write(buf[1], 1)
        A: read(buf)
    """
    st = after(src, "T: write(buf[1], 1)")
    a, t = page(st, "A", "buf", 0), page(st, "A", "buf", 1)
    assert (a.lru_batch, a.refcount, t.lru_batch, t.refcount) == ("A", 2, "T", 2)
    assert exact_refcount_violations(st) == []  # the batch's reference is held, not leaked
    final = states(src)[-1][1]  # the end: every batch drained
    assert [p.lru_batch for p in final.pages] == [None] * len(final.pages)
    assert page(final, "A", "buf").refcount == 1


@pytest.mark.parametrize("kind", ["thp", "pte_thp", "hugetlb"])
def test_a_large_folio_never_waits(kind):
    # PageCompound in pagevec_add_and_need_flush (5.10.198), !folio_may_be_lru_cached (6.1.158, 6.18.2);
    # hugetlb pages are never on the LRU
    st = after(f"""
        process A
        A: mmap(buf, anon, private, rw, {kind})
        A: write(buf, 1)
        A: read(buf)
    """, "A: write(buf, 1)")
    assert page(st, "A", "buf").lru_batch is None


def test_the_zero_page_never_waits():
    st = after("""
        process A
        A: mmap(buf, anon, private, rw)
        A: read(buf)
        A: read(buf)
    """, "A: read(buf)")
    assert all(p.lru_batch is None for p in st.pages)


def test_copies_wait_in_the_batch_of_the_task_that_made_them():
    src = """
        process A
        file F = [5]
        A: mmap(buf, anon, private, rw)
        A: mmap(text, private, rw, file=F)
        A: write(buf, 1)
        A: fork() as B
        B: write(buf, 2)
        A: write(text, 6)
        A: read(buf)
    """
    st = after(src, "A: write(text, 6)")
    assert page(st, "B", "buf").lru_batch == "B"  # wp_page_copy on B's CPU
    assert page(st, "A", "text").lru_batch == "A"  # do_cow_fault's private copy
    assert page(st, "A", "buf").lru_batch == "A"  # still there: nothing drained A's batch


def test_forks_copy_of_a_pinned_page_waits_in_the_forking_tasks_batch():
    st = after("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write) as mr
        A: fork() as B
        A: read(buf)
    """, "A: fork() as B", "early-cow")
    assert page(st, "B", "buf").lru_batch == "A"  # copy_present_page: lru_cache_add on A's CPU


def test_a_swapped_in_page_is_on_the_lru_and_the_readahead_drains_the_faulting_cpu():
    src = """
        process A
        A: mmap(p, anon, private, rw)
        A: mmap(q, anon, private, rw)
        A: write(p, 1)
        reclaim: swapout(A.p)
        A: write(q, 2)
        A: read(p)
        A: read(q)
    """
    assert page(after(src, "A: write(q, 2)"), "A", "q").lru_batch == "A"
    st = after(src, "A: read(p)")
    # swap_cluster_readahead / swap_vma_readahead end with lru_add_drain(): A's batch is empty
    assert page(st, "A", "p").lru_batch is None and page(st, "A", "q").lru_batch is None


# --- where the kernel drains --------------------------------------------------------------------

LOCAL = """
    process A
    thread T of A
    A: mmap(p, anon, private, rw)
    A: mmap(x, anon, private, rw)
    T: mmap(q, anon, private, rw)
    A: write(p, 1)
    T: write(q, 1)
    {op}
    A: read(p)
"""


@pytest.mark.parametrize("op", ["A: munmap(x)", "A: madvise(x, dontneed)", "A: madvise(x, pageout)"])
def test_a_local_drain_empties_the_callers_batch_only(op):
    st = after(LOCAL.format(op=op), op, "6.13")
    assert page(st, "A", "p").lru_batch is None  # A's CPU: unmap_region, zap_page_range, madvise_pageout
    assert page(st, "A", "q").lru_batch == "T"  # another task's CPU keeps its batch


@pytest.mark.parametrize("op, drained", [("A: munmap(x)", False), ("A: madvise(x, dontneed)", False),
                                         ("A: madvise(x, pageout)", True)])
def test_from_6_14_only_madvise_pageout_drains_locally(op, drained):
    st = after(LOCAL.format(op=op), op, "6.14")
    assert (page(st, "A", "p").lru_batch is None) is drained


def test_exit_drains_the_exiting_tasks_batch_until_6_14():
    src = """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        A: exit()
        B: read(buf)
        assert true
    """
    assert page(after(src, "A: exit()", "6.13"), "B", "buf").lru_batch is None  # exit_mmap: lru_add_drain()
    # 6.14's "mm: remove unnecessary calls to lru_add_drain" (the timeline's unmap-no-lru-drain)
    assert registry.get("6.14").options[UNMAP_DRAIN] == "off"
    assert page(after(src, "A: exit()", "6.14"), "B", "buf").lru_batch == "A"


@pytest.mark.parametrize("op", ["ksmd: ksm_merge(A.p, A.q) as k", "A: migrate(A.q) as k"])
def test_ksmd_and_move_pages_drain_every_cpu(op):
    src = f"""
        process A
        thread T of A
        A: mmap(p, anon, private, rw)
        A: mmap(q, anon, private, rw)
        A: madvise(p, mergeable)
        A: madvise(q, mergeable)
        A: write(p, 1)
        T: write(q, 1)
        {op}
        A: read(p)
    """
    st = after(src, op)
    assert all(p.lru_batch is None for p in st.pages)  # scan_get_next_rmap_item, migrate_prep/lru_cache_disable
    assert st.result("k").ok  # no batch's reference made write_protect_page or the move refuse


def test_reclaim_reaches_a_page_once_its_batch_is_drained():
    r = run(scenario("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        reclaim: swapout(A.buf)
        assert swapped(A.buf)
    """), "5.10")
    assert r.exploration is None and r.checks[0].holds
    assert any("reclaim scans the LRU lists: the lru_add batch of A's CPU is drained first" in t for t in events(r))


# --- the rules that see the reference -----------------------------------------------------------


def test_5_10_copies_while_the_batch_holds_the_page():
    r = run(scenario(T2 + "sometimes: cow_copies(A) == 0\n"), "5.10")
    assert r.exploration is not None and r.exploration.drains  # explored: every drain's timing
    always, sometimes = r.checks
    assert always.holds is False and sometimes.holds is True
    held = [e for tr in always.witness for e in tr.events if e.rule == LRU_RULE]
    assert [e.text for e in held] == ["do_wp_page on #1: the lru_add batch of A's CPU still holds #1 (refcount 2)"]
    drain = [tr for tr in sometimes.witness if tr.actor == "lru(A)"]
    assert len(drain) == 1 and drain[0].step == 0 and drain[0].label == "drain"
    assert "other activity fills the lru_add batch of A's CPU, which is drained: #1 (refcount 2 → 1)" in \
        drain[0].events[0].text


@pytest.mark.parametrize("backend", ["5.18", "6.1", "6.18"])
def test_5_18_drains_the_faulting_cpus_batch_first(backend):
    r = run(scenario(T2), backend)
    assert r.exploration is None and r.checks[0].holds  # no decision depended on the batch: one execution
    assert "do_wp_page: #1 is not on the LRU: lru_add_drain() empties the lru_add batch of A's CPU: " \
           "#1 (refcount 2 → 1) onto the LRU" in events(r)


@pytest.mark.parametrize("backend", ["5.10", "5.18", "6.1"])
def test_no_drain_reaches_another_cpus_batch(backend):
    # d4c470970d45: "We cannot easily drain remote LRU pagevecs": T's fault drains T's CPU
    r = run(scenario(BY_THREAD), backend)
    assert r.checks[0].holds is False
    assert "do_wp_page on #1: the lru_add batch of A's CPU still holds #1 (refcount 2)" in events(r)


@pytest.mark.parametrize("backend", ["4.19", "5.8"])
def test_the_mapcount_rule_never_sees_the_batch(backend):
    r = run(scenario(T2), backend)
    assert r.exploration is None and r.checks[0].holds


def test_a_decision_the_batch_cannot_change_stays_on_the_fast_path():
    # B's fault sees refcount 3 (two mappings and A's batch): a copy, drained or not
    r = run(scenario("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: write(buf, 2)
        assert cow_copies(B) == 1
    """), "5.10")
    assert r.exploration is None and r.checks[0].holds
    assert not any(e.rule == LRU_RULE for rec in r.steps for e in rec.events)


def test_lru_sensitive_says_so_only_when_the_drained_page_would_decide_otherwise():
    backend = registry.get("5.10")
    st = State(mms=(), pages=(Page(zero=True, anon=False), Page(refcount=2, mapcount=1, lru_batch="A")))
    m = Machine(st, task="B")
    d = backend.lru_sensitive(m, 1, lambda x: Decision(x.page(1).refcount == 1, "refcount"), "do_wp_page on #1")
    assert not d and m.lru_decided
    assert [(e.rule, e.text) for e in m.events] == [
        (LRU_RULE, "do_wp_page on #1: the lru_add batch of A's CPU still holds #1 (refcount 2)")]
    assert m.freeze() == st  # asking changed nothing
    m = Machine(st, task="B")
    backend.lru_sensitive(m, 1, lambda x: Decision(x.page(1).refcount > 3, "refcount"), "do_wp_page on #1")
    assert not m.lru_decided and m.events == []


def test_pageout_skips_a_page_another_cpus_batch_holds():
    sc = scenario("""
        process A
        thread T of A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        T: madvise(buf, pageout)
        always: swapped(A.buf)
        sometimes: swapped(A.buf)
    """)
    for backend in ("5.4", "5.10", "6.18"):  # the batch and madvise_pageout's !PageLRU check: every version since 5.4
        r = run(sc, backend)
        assert [c.holds for c in r.checks] == [False, True], backend
        assert "madvise_cold_or_pageout_pte_range: the lru_add batch of A's CPU still holds #1: not on the LRU " \
               "→ skipped" in events(r)


# --- the explorer's drainers --------------------------------------------------------------------


def test_drainers_wait_for_a_page_and_the_block_ends_without_them():
    model = Model(scenario(T2), registry.get("5.10"), drains=True)
    w = model.init()
    assert [t.actor for t in w.threads] == ["A", "lru(A)", "lru(B)"]
    assert model.blocked(w, 1) == "the lru_add batch of A's CPU is empty"
    while w.block < 2:  # A's mmap and write
        w, _ = model.step(w, 0)
    assert model.enabled(w) == [0, 1]  # A's page waits: lru(A) may drain it now or never
    while w.block == 2:  # A's fork: its last micro-step ends the block without lru(A)
        w, _ = model.step(w, 0)
    assert w.block == 3 and [t.actor for t in w.threads] == ["B", "lru(A)", "lru(B)"]
    assert [t.at for t in w.threads] == [0, 0, 0] and model.enabled(w) == [0, 1]
    path, last = search.follow(model, ["A"] * 8 + ["B"])
    assert model.is_final(last) and all(p.lru_batch is None for p in last.state.pages)  # the end drains


def test_a_schedule_naming_a_drainer_replays():
    sc = scenario(T2)
    held = run(sc, "5.10", schedule=["A"] * 8 + ["B", "A"])
    drained = run(sc, "5.10", schedule=["A"] * 8 + ["B", "lru(A)", "A"])
    assert (held.checks[0].holds, drained.checks[0].holds) == (False, True)


RACE = """
    process A
    thread T of A
    A: mmap(buf, anon, private, rw)
    T: write(buf, 1)
    A: fork() as B
    par {
      A: write(buf, 2)
      B: write(buf, 3)
      T: read(buf)
    }
    sometimes: cow_copies(A) == 0
    sometimes: cow_copies(A) == 1
"""

SYMMETRIC = """
    process A
    thread T0 of A
    thread T1 of A
    A: mmap(p, anon, private, rw)
    A: write(p, 1)
    A: fork() as B
    par {
      T0: write(p, 2)
      T1: write(p, 2)
      B: write(p, 3)
    }
    sometimes: cow_copies(A) == 0
    sometimes: cow_copies(B) == 0
"""


@pytest.mark.parametrize("src", [T2, BY_THREAD, RACE, SYMMETRIC])
@pytest.mark.parametrize("backend", ["5.10", "6.1"])
def test_with_drainers_the_reduced_search_reaches_the_full_searchs_final_states(src, backend):
    model = Model(scenario(src), registry.get(backend), drains=True)
    full = search.full(model, search.Bounds())
    for cache in (True, False):
        red = search.reduced(model, search.Bounds(), cache=cache)
        assert {w.state for w in red.finals} == {w.state for w in full.finals}
    sym = search.full(model, search.Bounds(), count=False, symmetric=True)
    assert {w.state for w in sym.finals} <= {w.state for w in full.finals}


def test_symmetric_threads_trade_their_cpus_batches():
    sc = scenario(SYMMETRIC)
    for backend in ("5.10", "6.1"):
        model = Model(sc, registry.get(backend), drains=True)
        plain = search.full(model, search.Bounds(), count=False)
        sym = search.full(model, search.Bounds(), count=False, symmetric=True)
        assert sym.states < plain.states
        assert {w.state for w in sym.finals} == {w.state for w in plain.finals}  # no bound name to rename
        assert [c.holds for c in run(sc, backend, mode="full").checks] == \
               [c.holds for c in run(sc, backend, mode="full", all_states=True).checks]


def test_rename_gives_a_cpus_batch_to_its_new_name():
    st = State(mms=(), pages=(Page(zero=True, anon=False), Page(refcount=2, lru_batch="T0")))
    assert symmetry.rename(st, {}, {"T0": "T1", "T1": "T0"}).pages[1].lru_batch == "T1"


def test_every_mode_gives_the_same_verdicts():
    sc = scenario(RACE)
    for backend in ("5.10", "6.1"):
        verdicts = {mode: [c.holds for c in run(sc, backend, mode=mode).checks] for mode in ("full", "reduced")}
        verdicts["auto"] = [c.holds for c in run(sc, backend).checks]
        verdicts["all"] = [c.holds for c in run(sc, backend, mode="full", all_states=True).checks]
        assert len({tuple(v) for v in verdicts.values()}) == 1, (backend, verdicts)
        assert verdicts["auto"] == [True, True]


def test_a_swarm_walk_drains_batches_too():
    from cowdsl.explore import swarm

    model = Model(scenario(T2), registry.get("5.10"))
    observe = model_observer(model.backend)

    def bad(w: World, terminal: bool) -> tuple[int, ...]:
        return (0,) if terminal and not evaluate(observe(w.state), model.sc.assertions[0])[0] else ()

    walks = [swarm.search(model, seed, bad, search.Bounds()) for seed in range(4)]
    assert any(w.choices is not None for w in walks)  # the copy, seen by some walk
    assert model.cpus == ("A", "B")  # with drainers
    found = next(w for w in walks if w.choices is not None)
    path = swarm.replay_choices(Model(scenario(T2), registry.get("5.10")), found.choices)
    assert len(path) == len(found.choices)


# --- invariants ---------------------------------------------------------------------------------


def test_only_an_order_0_anonymous_page_waits_and_a_waiting_page_is_not_freed():
    base = (Page(zero=True, anon=False),)
    thp = State(mms=(), pages=(*base, Page(refcount=1, kind=THP, lru_batch="A")))
    assert [n for n, _ in invariants.violations(thp)] == [invariants.LRU]
    freed = State(mms=(), pages=(*base, Page(refcount=0, freed=True, lru_batch="A")))
    assert [n for n, _ in invariants.violations(freed)] == [invariants.FREED_REF]
    leak = State(mms=(), pages=(*base, Page(refcount=1, lru_batch="A")))
    assert invariants.violations(leak) == [] and invariants.exact_refcount_violations(leak) == []


@pytest.mark.parametrize("backend", ["5.10", "6.1"])
@pytest.mark.parametrize("src", [T2, BY_THREAD, RACE])
def test_every_micro_step_with_drainers_keeps_the_invariants(src, backend):
    b = registry.get(backend)
    b.debug_invariants = True  # raises InvariantViolation at the first broken one
    r = explore(scenario(src), b, mode="full", all_states=True)
    assert r.exploration is not None and r.exploration.states > 0


# --- the reports --------------------------------------------------------------------------------


def test_a_drain_is_shown_as_other_activity_on_that_cpu():
    r = run(scenario(RACE.replace("  T: read(buf)\n", "")), "6.1")
    reuse = r.checks[0]
    assert reuse.holds and any(tr.actor == "lru(T)" for tr in reuse.witness)
    lanes = "\n".join(report.execution(reuse.witness, scenario=r.scenario, form="lanes"))
    assert "other activity (lru(T):" in lanes
    listed = report.execution(reuse.witness, scenario=r.scenario, form="list", verbose=True)
    line = next(x for x in listed if "lru(T)" in x)
    assert "step 0" not in line and "drain" in line
