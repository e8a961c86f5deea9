"""The native backend on this machine's kernel: mechanisms and observations.

Skipped, with the reason, where the host cannot run it (not Linux, io_uring
disabled, not root for PFNs): ``cowdsl.native.skip_reason()`` probes once.
"""

from __future__ import annotations

import textwrap

import pytest

from cowdsl.native import skip_reason

_SKIP = skip_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


def load(text: str, name: str = "t.cow"):
    from cowdsl.load import load_text

    return load_text(textwrap.dedent(text).strip() + "\n", name)


def native(text: str, **kw):
    from cowdsl.native import run_native

    return run_native(load(text), **kw)


def holds(result) -> list:
    return [c.holds for c in result.checks]


def step_outcomes(result) -> list:
    return [(r.step.op, r.outcome.ok, r.outcome.value, r.outcome.error) for r in result.steps]


# --- the result ----------------------------------------------------------------------


def test_result_shape_and_dispatch():
    from cowdsl.run import Result, run
    from cowdsl.semantics.machine import Event
    from cowdsl.semantics.state import Outcome

    sc = load("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 7)
        A: read(buf) as v
        assert v == 7 and A.buf == 7
        expect pass on native
    """)
    r = run(sc, "native")
    assert isinstance(r, Result)
    assert r.backend == "native" and r.final is None and r.expected == "pass"
    assert r.verdict == "pass" and r.ok
    assert all(isinstance(s.outcome, Outcome) for s in r.steps)
    assert all(isinstance(e, Event) for s in r.steps for e in s.events)
    assert r.steps[2].outcome.value == 7
    assert any("store 7" in e.text for e in r.steps[1].events)


def test_long_term_pin_across_fork_is_coherent():
    r = native("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write, longterm) as mr
        A: fork() as B
        A: write(buf, 2)
        B: write(buf, 3)
        mr: dma_write(4)
        mr: dma_read() as d
        assert A.buf == 4
        assert B.buf == 3
        assert mr is A.buf
        assert mr is not B.buf
        assert d == 4 and mr == 4
        assert exclusive(A.buf) and exclusive(B.buf)
    """)
    assert holds(r) == [True] * 6, r.checks


def test_zero_page_is_shared_and_fork_does_not_copy_its_pte():
    # A VMA that was only read has no anon_vma; fork copies no PTEs for it
    # (vma_needs_copy): the child's entry is empty, it is not the zero page.
    r = native("""
        process A
        A: mmap(buf, anon, private, rw)
        A: read(buf) as v
        A: fork() as B
        B: read(buf) as w
        assert zero_page(A.buf) and zero_page(B.buf)
        assert A.buf is B.buf
        assert not exclusive(A.buf)
        assert v == 0 and w == 0
    """)
    assert holds(r) == [True, True, True, True]
    r = native("""
        process A
        A: mmap(buf, anon, private, rw)
        A: read(buf) as v
        A: fork() as B
        assert present(A.buf) and not present(B.buf)
        assert B.buf == 0
    """)
    assert holds(r) == [True, True]


def test_exclusive_is_pg_anon_exclusive_not_mapped_once():
    # After the child's COW copy, A's page is mapped once (pagemap bit 56) but
    # not PageAnonExclusive until A's own write fault reuses it.
    base = """
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: write(buf, 2)
        {extra}
        assert exclusive(A.buf)
        assert mapcount(A.buf) == 1
    """
    assert holds(native(base.format(extra=""))) == [False, True]
    assert holds(native(base.format(extra="A: write(buf, 3)"))) == [True, True]


def test_faults_are_counted_per_access():
    r = native("""
        process A
        A: mmap(buf, anon, private, rw, pages=2)
        A: read(buf) as a
        A: write(buf, 1)
        A: write(buf, 2)
        A: write(buf[1], 3)
        A: fork() as B
        B: read(buf) as b
        B: write(buf, 4)
        assert faults(A) == 3
        assert faults(B) == 1
        assert faults == 4
    """)
    assert holds(r) == [True, True, True], r.checks


def test_sigsegv_kills_the_process_and_later_steps_do_not_run():
    r = native("""
        process A
        A: mmap(buf, anon, private, ro)
        A: read(buf) as v
        A: write(buf, 1) as w
        A: read(buf) as x
        assert segv(A) and not alive(A)
        assert failed(w) and failed(x)
        assert v == 0
        assert A.buf == 0
    """)
    assert holds(r) == [True, True, True, False]
    assert r.steps[2].outcome.error == "SIGSEGV"
    assert r.steps[3].outcome.error.startswith("not run: A was killed")
    assert "killed" in r.checks[3].values["A.buf"]


def test_dontfork_child_faults_for_real():
    r = native("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: madvise(buf, dontfork)
        A: fork() as B
        B: read(buf) as v
        assert segv(B)
        assert alive(A) and A.buf == 1
    """)
    assert holds(r) == [True, True]


def test_threads_are_real_threads():
    r = native("""
        process A
        thread T of A
        A: mmap(buf, anon, private, rw)
        T: write(buf, 5)
        T: fork() as B
        B: write(buf, 6)
        A: read(buf) as v
        assert v == 5 and B.buf == 6
        assert faults(A) == 1
        assert A.buf is not B.buf
    """)
    assert holds(r) == [True, True, True]
    assert "thread T" in r.steps[1].events[0].text


def test_vmsplice_and_pipe_read():
    r = native("""
        process A
        pipe P
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: vmsplice(buf, P)
        A: write(buf, 2)
        A: pipe_read(P) as v
        A: pipe_read(P) as w
        assert v == 2
        assert failed(w)
    """)
    assert holds(r) == [True, True]
    assert r.steps[-1].outcome.error == "EAGAIN"


def test_remote_access_and_forced_write():
    r = native("""
        process A, C
        file F = [1]
        A: mmap(buf, anon, private, rw)
        A: mmap(text, private, ro, file=F)
        A: read(text) as t
        A: fork() as D
        D: write(text, 10) as w
        C: process_vm_writev(A.buf, 7)
        C: process_vm_readv(A.buf) as v
        C: proc_mem_write(A.text, 9)
        assert v == 7 and A.buf == 7
        assert A.text == 9 and F[0] == 1 and t == 1
        assert A.text is not F[0]
        assert exclusive(A.text)
        assert failed(w) and segv(D)
    """)
    assert holds(r) == [True, True, True, True, True], r.checks


def test_file_page_identity_and_value():
    r = native("""
        process A
        file F = [7, 8]
        A: mmap(lib, shared, rw, file=F)
        A: read(lib[1]) as l
        A: mmap(cow, private, rw, file=F)
        A: write(cow, 5)
        assert l == 8 and A.lib[1] is F[1]
        assert F[0] == 7 and A.cow == 5 and A.cow is not F[0]
        assert not exclusive(A.lib[1]) and exclusive(A.cow)
    """)
    assert holds(r) == [True, True, True], r.checks


def test_unpin_exit_and_released_pins():
    r = native("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf, write, longterm) as mr
        A: pin(buf, write, longterm) as m2
        A: unpin(mr)
        m2: dma_write(3)
        A: fork() as B
        A: exit()
        assert not alive(A) and not segv(A)
        assert mr == 3
        assert m2 == 3
        assert B.buf == 3
    """)
    assert holds(r) == [True, False, False, True], r.checks
    assert "released" in r.checks[1].values["mr"]


def test_values_are_64_bit():
    top = (1 << 64) - 1
    r = native(f"""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, {top})
        A: read(buf) as v
        assert v == {top}
    """)
    assert holds(r) == [True]


# --- what native does not do ------------------------------------------------------------


@pytest.mark.parametrize("step, why", [
    ("A: pin(buf, read, longterm) as mr", "only long-term pin user space can ask for"),
    ("A: pin(buf, write, longterm, fast) as mr", "GUP-fast"),
    ("A: gup(buf, write) as mr", "FOLL_GET"),
])
def test_unsupported_steps_skip_the_scenario(step, why):
    r = native(f"""
        process A
        A: mmap(buf, anon, private, rw)
        {step}
        A: write(buf, 1)
        assert A.buf == 1
    """)
    assert r.verdict == "skip"
    assert r.checks[0].holds is None and why in r.checks[0].values["unsupported"]
    assert r.steps[1].outcome.error.startswith("unsupported on native")
    assert r.steps[2].outcome.error == "not run: scenario skipped"


def test_swap_needs_swap():
    from cowdsl.native import probe

    if probe().swap:
        pytest.skip("this host has swap")
    r = native("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        reclaim: swapout(A.buf)
        assert A.buf == 1
    """)
    assert r.verdict == "skip"
    assert "no swap" in r.checks[0].values["unsupported"]


@pytest.mark.parametrize("fact", ["refcount(A.buf) == 1", "pincount(A.buf) == 0", "pinned(A.buf)",
                                  "maybe_pinned(A.buf)", "writable(A.buf)", "cow_copies == 0",
                                  "has_pinned(A)"])
def test_facts_user_space_cannot_see_are_unsupported(fact):
    r = native(f"""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        assert {fact}
        assert A.buf == 1
    """)
    assert r.checks[0].holds is None
    assert r.checks[0].values["unsupported"].startswith("unsupported on native")
    assert r.checks[1].holds is True and r.verdict == "pass"


def test_limits_skip_big_scenarios():
    from cowdsl.native import Limits

    sc = """
        process A
        A: mmap(buf, anon, private, rw, pages=64)
        A: mmap(b2, anon, private, rw, pages=64)
        assert A.buf == 0
    """
    r = native(sc, limits=Limits(max_pages=100))
    assert r.verdict == "skip" and "exceeds native limits" in r.checks[0].values["unsupported"]
    assert native(sc).verdict == "pass"


def test_host_description():
    from cowdsl.native import probe

    h = probe()
    assert h.reason is None and h.linux
    assert "io_uring ok" in h.describe()


def test_quantifiers_on_one_execution():
    r = native("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        never A.buf == 2
        never A.buf == 1
        sometimes A.buf == 1
        invariant A.buf == 1
    """)
    assert holds(r) == [True, False, True, None]
    assert "invariant" in r.checks[3].values["unsupported"]


# --- what the kernel's mechanisms cannot do, and what it did not do ---------------------


def test_io_uring_refusing_a_file_backed_buffer_skips_the_scenario(monkeypatch):
    """5.10 and 6.1 io_uring refuse file-backed fixed buffers (EOPNOTSUPP): that is the
    mechanism's limit, not GUP's answer, so every assertion is skipped with the reason."""
    from cowdsl.native import translate
    from cowdsl.semantics.state import Outcome

    real = translate.Translator.simple

    def simple(self, st, cmd, *a, **kw):
        if cmd["op"] == "pin":
            return Outcome(False, error="EOPNOTSUPP"), []
        return real(self, st, cmd, *a, **kw)

    monkeypatch.setattr(translate.Translator, "simple", simple)
    r = native("""
        scenario "pin a shared mapping"
        process A
        A: mmap(buf, anon, shared, rw)
        A: write(buf, 1)
        A: pin(buf, write, longterm) as mr
        A: write(buf, 2)
        assert failed(mr)
        assert A.buf == 2
    """)
    assert holds(r) == [None, None]
    why = r.checks[0].values["unsupported"]
    assert why.startswith("unsupported on this kernel") and "EOPNOTSUPP" in why and "not GUP's verdict" in why
    assert [o[1] for o in step_outcomes(r)] == [True, True, False, False]


def test_io_uring_register_refusing_a_file_backed_buffer_is_the_steps_answer(monkeypatch):
    """`io_uring_register(buf)` is the registration itself: its EOPNOTSUPP (5.10 and 6.1 for a
    disk file's mapping, io_sqe_buffer_register's VMA check) is judged, as the model's is."""
    from cowdsl.native import translate
    from cowdsl.semantics.state import Outcome

    real = translate.Translator.simple

    def simple(self, st, cmd, *a, **kw):
        if cmd["op"] == "io_uring_register":
            return Outcome(False, error="EOPNOTSUPP"), []
        return real(self, st, cmd, *a, **kw)

    monkeypatch.setattr(translate.Translator, "simple", simple)
    r = native("""
        process A
        A: mmap(buf, anon, shared, rw)
        A: write(buf, 1)
        A: io_uring_register(buf) as r
        assert failed(r)
    """)
    assert holds(r) == [True]
    assert step_outcomes(r)[2] == ("io_uring_register", False, None, "EOPNOTSUPP")


def test_io_uring_register_is_a_pin_the_device_acts_through():
    r = native("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: io_uring_register(buf) as r
        A: fork() as B
        A: write(buf, 2)
        r: dma_write(7)
        A: unpin(r)
        assert not failed(r) and A.buf == 7 and B.buf == 1
    """)
    assert holds(r) == [True], step_outcomes(r)
    assert any("IORING_REGISTER_BUFFERS" in e.text for e in r.steps[2].events)


def test_a_swapout_reclaim_kept_is_a_failed_step(monkeypatch):
    """MADV_PAGEOUT returns 0 when reclaim keeps the page: the step is judged from pagemap."""
    from cowdsl.native import libc

    monkeypatch.setattr(libc, "process_madvise", lambda *a: 0)  # reclaim does nothing
    sc = load("""
        scenario "kept"
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        reclaim: swapout(A.buf) as so
        assert failed(so)
        assert present(A.buf)
    """)
    from cowdsl.native import plan, run_native

    monkeypatch.setattr(plan, "NO_SWAP", None)
    monkeypatch.setattr(plan, "step_problem", lambda st, host: None)
    r = run_native(sc)
    assert holds(r) == [True, True], step_outcomes(r)


def test_a_thp_mapping_needs_thp_on_the_host_and_one_private_anonymous_thp():
    from types import SimpleNamespace

    from cowdsl.native import plan

    sc = load("""
        scenario "thp"
        process A
        A: mmap(buf, anon, private, rw, thp, pages=1)
        A: mmap(two, anon, private, rw, thp, pages=2)
        A: write(buf, 1)
        assert A.buf == 1
    """)
    one, two = sc.steps[0], sc.steps[1]
    off = SimpleNamespace(swap=True, thp="transparent huge pages are off here (enabled = never)")
    assert plan.step_problem(one, off).startswith("unsupported on this host") and "never" in plan.step_problem(one, off)
    on = SimpleNamespace(swap=True, thp=None)
    assert plan.step_problem(one, on) is None
    assert "one private anonymous THP" in plan.step_problem(two, on)


def test_a_thp_mapping_is_a_real_thp_or_the_scenario_is_skipped():
    from cowdsl.native import probe

    r = native("""
        scenario "thp"
        process A
        A: mmap(buf, anon, private, rw, thp, pages=1)
        A: write(buf, 1)
        A: fork() as B
        A: write(buf, 2)
        assert A.buf == 2 and B.buf == 1
        assert not (A.buf is B.buf)
    """)
    if probe().thp is not None:
        assert holds(r) == [None, None]
    else:  # a THP, or (no huge page free) a skip saying the kernel fell back to small pages
        assert holds(r) == [True, True] or "got a small page" in r.checks[0].values["unsupported"]


def test_madv_collapse_of_a_pte_mapped_thp_is_the_kernel_s_answer_and_smaps_shows_the_pmd():
    """MADV_COLLAPSE runs natively (was refused): the step's answer is the kernel's (-EINVAL before
    6.1, which has no such advice), and a collapse is checked in smaps' AnonHugePages."""
    import os

    from cowdsl.native import probe

    r = native("""
        process A
        A: mmap(buf, anon, private, rw, thp)
        A: write(buf, 1)
        A: mprotect(buf, ro, tail)
        A: mprotect(buf, rw, tail)
        A: madvise(buf, collapse) as c
        A: read(buf) as v
        assert v == 1
    """)
    if probe().thp is not None or r.checks[0].holds is None:
        pytest.skip(f"no THP on this host: {probe().thp or r.checks[0].values.get('unsupported')}")
    step = next(s for s in r.steps if s.step.op == "madvise" and "collapse" in s.step.flags)
    assert any("MADV_COLLAPSE" in e.text for e in step.events)
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    if (major, minor) >= (6, 1):
        assert step.outcome.ok and any("AnonHugePages 2048 kB" in e.text for e in step.events), step.events
    else:
        assert step.outcome.error == "EINVAL"
    assert holds(r) == [True]


def test_madv_collapse_of_a_small_shared_mapping_runs_and_is_einval():
    """A shmem VMA under 2 MiB: hugepage_vma_check refuses it (-EINVAL), as the model says
    (before 6.1 the advice is unknown: -EINVAL too).  It was refused natively while the model
    had no answer for shmem."""
    r = native("""
        process A
        A: mmap(buf, anon, shared, rw)
        A: write(buf, 1)
        A: madvise(buf, collapse) as c
        assert A.buf == 1 and failed(c)
    """)
    step = next(s for s in r.steps if s.step.op == "madvise")
    assert step.outcome.error == "EINVAL"
    assert holds(r) == [True]


# --- PTE-mapped THPs (`pte_thp`) and the `tail` flag ---------------------------------------------


def _huge_mappings(flag: str, third: str):
    """A scenario mapping `buf` (one page) and `two` (two pages) with ``flag``, then step ``third``:
    what the planner takes and refuses of huge mappings."""
    return load(f"""
        scenario "{flag}"
        process A
        A: mmap(buf, anon, private, rw, {flag})
        A: mmap(two, anon, private, rw, {flag}, pages=2)
        {third}
        A: write(buf, 1)
        assert A.buf == 1
    """)


def _fake_host(**why):
    """A probed host for the planner: swap on, THP, the hugetlb pool and ksmd usable, except ``why``."""
    from types import SimpleNamespace

    return SimpleNamespace(**{"swap": True, "thp": None, "hugetlb": None, "ksm": None, **why})


def test_a_pte_thp_mapping_is_planned_like_a_thp_mapping():
    from cowdsl.native import plan

    sc = _huge_mappings("pte_thp", "A: madvise(buf, dontneed, tail)")
    one, two, tail = sc.steps[0], sc.steps[1], sc.steps[2]
    on = _fake_host()
    off = _fake_host(thp="transparent huge pages are off here (enabled = never)")
    assert plan.step_problem(one, on) is None
    assert "never" in plan.step_problem(one, off)
    assert "one private anonymous THP" in plan.step_problem(two, on)
    assert plan.step_problem(tail, on) is None  # madvise(tail) is translated now


def _thp_region():
    """A 2 MiB-aligned MADV_HUGEPAGE region of this process, written once: (base, mapping, length)."""
    from cowdsl.native import libc as L

    length = 4 << 20
    raw = L.mmap(0, length, L.PROT_READ | L.PROT_WRITE, L.MAP_PRIVATE | L.MAP_ANONYMOUS)
    base = -(-raw // (2 << 20)) * (2 << 20)
    L.madvise(base, 2 << 20, L.MADV["hugepage"])
    import ctypes

    ctypes.c_uint64.from_address(base).value = 1
    return base, raw, length


def test_mprotect_of_one_subpage_and_back_pte_maps_the_thp_and_smaps_shows_it():
    """The mechanism the native `pte_thp` relies on, checked on this kernel: before, the VMA maps
    a THP by PMD (AnonHugePages 2048 kB); after mprotect(subpage 1, R) and back, none by PMD, and
    subpages 0 and 1 are still pages of one THP (KPF_THP, consecutive PFNs)."""
    from cowdsl.native import libc as L
    from cowdsl.native import pagemap, probe

    if probe().thp is not None:
        pytest.skip(probe().thp)
    base, raw, length = _thp_region()
    try:
        head = pagemap.entry("self", base)
        if not head.kflag(pagemap.KPF_THP):
            pytest.skip("no THP free right now: the region got a small page")
        assert pagemap.anon_huge_kb("self", base) == 2048
        L.mprotect(base + L.PAGE, L.PAGE, L.PROT_READ)
        L.mprotect(base + L.PAGE, L.PAGE, L.PROT_READ | L.PROT_WRITE)
        assert pagemap.anon_huge_kb("self", base) == 0
        sub0, sub1 = pagemap.entry("self", base), pagemap.entry("self", base + L.PAGE)
        assert sub0.kflag(pagemap.KPF_THP) and sub1.kflag(pagemap.KPF_THP)
        assert sub0.pfn == head.pfn and sub1.pfn == head.pfn + 1
    finally:
        L.munmap(raw, length)


def test_a_pte_thp_mapping_runs_on_a_pte_mapped_thp_or_is_skipped():
    from cowdsl.native import probe

    r = native("""
        scenario "pte_thp"
        process A
        A: mmap(buf, anon, private, rw, pte_thp)
        A: write(buf, 1)
        A: fork() as B
        A: write(buf, 2)
        assert A.buf == 2 and B.buf == 1
        assert not (A.buf is B.buf)
    """)
    if probe().thp is not None:
        assert holds(r) == [None, None]
        return
    if holds(r) == [None, None]:  # no huge page free: a skip that says why
        assert "got a small page" in r.checks[0].values["unsupported"]
        return
    assert holds(r) == [True, True]
    write = next(s for s in r.steps if s.step.op == "write")
    assert any("PTE-mapped THP" in e.text for e in write.events), write.events


def test_tail_of_a_small_mapping_is_skipped_with_the_reason():
    r = native("""
        scenario "tail"
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: madvise(buf, dontneed, tail)
        assert A.buf == 1
    """)
    assert holds(r) == [None]
    assert "`tail` of a mapping that is not a THP" in r.checks[0].values["unsupported"]


def test_single_pte_of_a_thp_via_madvise_tail():
    """cow.c's run_with_single_pte_of_thp(): MADV_DONTNEED of subpages 1..511; the head stays
    mapped with its value, a tail subpage is gone (reads 0 again)."""
    from cowdsl.native import probe

    if probe().thp is not None:
        pytest.skip(probe().thp)
    r = native("""
        scenario "single pte"
        process A
        A: mmap(buf, anon, private, rw, thp)
        A: write(buf, 1)
        A: madvise(buf, dontneed, tail)
        assert A.buf == 1 and present(A.buf)
    """)
    if holds(r) == [None]:
        assert "got a small page" in r.checks[0].values["unsupported"]
    else:
        assert holds(r) == [True], step_outcomes(r)
        dontneed = r.steps[2]
        assert any("MADV_DONTNEED" in e.text and "2093056" in e.text for e in dontneed.events)  # 511 pages


# --- hugetlb: only in a guest whose init reserved the pool -----------------------------------------


def test_hugetlb_is_planned_only_where_the_pool_is_ours():
    from cowdsl.native import plan

    sc = _huge_mappings("hugetlb", "A: mmap(sh, anon, shared, rw, hugetlb)")
    one, two, shared = sc.steps[0], sc.steps[1], sc.steps[2]
    ours = _fake_host()
    host = _fake_host(hugetlb="the host's hugetlb pool is not ours")
    assert plan.step_problem(one, ours) is None and plan.step_problem(shared, ours) is None
    assert plan.step_problem(one, host) == "unsupported on this host: `A: mmap(buf, anon, private, rw, hugetlb)`: " \
                                          "the host's hugetlb pool is not ours"
    assert "one anonymous huge page" in plan.step_problem(two, ours)
    assert plan.guest_needs(sc) == {"hugetlb"}


def test_the_guard_variable_is_the_one_the_guest_init_sets():
    """host.py keeps its own copy of the name (importing cowdsl.kernels would cost native ~90 ms at
    start-up); a different name would silently leave hugetlb and ksmd unused in every guest."""
    from cowdsl.kernels import guest
    from cowdsl.native import host

    assert host.GUEST_NEEDS_ENV == guest.GUEST_NEEDS_ENV


def test_the_host_pool_is_never_used_and_a_guest_pool_must_have_free_pages(monkeypatch):
    from cowdsl.native import host

    monkeypatch.delenv(host.GUEST_NEEDS_ENV, raising=False)
    monkeypatch.setattr(host, "_meminfo", lambda: {"Hugepagesize": 2048, "HugePages_Free": 16})
    assert "not ours to use or change" in host._hugetlb()  # free pages on the host: still not ours
    monkeypatch.setenv(host.GUEST_NEEDS_ENV, "hugetlb swap")
    assert host._hugetlb() is None
    monkeypatch.setattr(host, "_meminfo", lambda: {"Hugepagesize": 2048, "HugePages_Free": 1})
    assert host._hugetlb() == "1 huge pages free (nr_hugepages too small)"
    monkeypatch.setattr(host, "_meminfo", lambda: {"Hugepagesize": 1048576, "HugePages_Free": 16})
    assert "not 2 MiB" in host._hugetlb()


def test_a_hugetlb_scenario_on_this_host_is_skipped_with_the_reason():
    from cowdsl.native import probe

    if probe().hugetlb is None:
        pytest.skip("this is a guest with a hugetlb pool of its own")
    r = native("""
        scenario "hugetlb"
        process A
        A: mmap(buf, anon, private, rw, hugetlb)
        A: write(buf, 1)
        assert A.buf == 1
    """)
    assert holds(r) == [None]
    assert "hugetlb pool" in r.checks[0].values["unsupported"]


# --- KSM: only where ksmd runs for the run (a guest's) ----------------------------------------------


def test_ksm_is_planned_only_where_ksmd_is_ours(monkeypatch):
    from cowdsl.native import host, plan

    sc = load("""
        scenario "ksm"
        process A, B
        A: mmap(buf, anon, private, rw)
        A: madvise(buf, mergeable)
        B: mmap(buf, anon, private, rw)
        B: madvise(buf, mergeable)
        ksmd: ksm_merge(A.buf, B.buf) as k
        A: madvise(buf, unmergeable)
        A: prctl(memory_merge, enable)
        assert not failed(k)
    """)
    ours = _fake_host()
    theirs = _fake_host(ksm="ksmd is not ours to run")
    for st in (sc.steps[1], sc.steps[4], sc.steps[5], sc.steps[6]):  # prctl(PR_SET_MEMORY_MERGE) too
        assert plan.step_problem(st, ours) is None
        assert plan.step_problem(st, theirs).endswith("ksmd is not ours to run")
    assert plan.guest_needs(sc) == {"ksm"}
    monkeypatch.delenv(host.GUEST_NEEDS_ENV, raising=False)
    assert "host-wide switch" in host._ksm()


def _ksm_translator(monkeypatch, merged_at: int | None, scans_per_poll: int):
    """A Translator whose view of ksmd is scripted: the pages merge at poll ``merged_at`` (None:
    never), full_scans advances ``scans_per_poll`` per poll."""
    from types import SimpleNamespace

    from cowdsl.native import translate as T

    polls = {"n": 0}

    def merged(t, a, b):
        polls["n"] += 1
        done = merged_at is not None and polls["n"] >= merged_at
        return done, "pfn 0x10 and 0x10, KSM page" if done else "pfn 0x10 and 0x11"

    monkeypatch.setattr(T, "_merged", merged)
    monkeypatch.setattr(T, "_full_scans", lambda: polls["n"] * scans_per_poll)
    monkeypatch.setattr(T.time, "sleep", lambda s: None)
    monkeypatch.setattr(T.pagemap, "vm_flags", lambda pid, addr: frozenset({"rd", "wr", "mg"}))
    alive = SimpleNamespace(alive=True, pid=1)
    t = SimpleNamespace(ctl=SimpleNamespace(procs={"A": alive, "B": alive}), address=lambda a: 0x1000)
    return T, t


def test_ksm_merge_of_a_mapping_that_is_not_vm_mergeable_fails_at_once(monkeypatch):
    """ksmd never scans it: nothing to wait for (was: the run waited out ksmd's scans, and in a guest
    where nothing was registered with KSM no scan came, so the run stopped as not observed)."""
    from cowdsl import scenario as S

    st = S.Step(1, "ksmd", None, "ksm_merge", addr=S.Addr("A", "buf", 0), addr2=S.Addr("B", "buf", 0))
    T, t = _ksm_translator(monkeypatch, merged_at=None, scans_per_poll=0)
    monkeypatch.setattr(T.pagemap, "vm_flags", lambda pid, addr: frozenset({"rd", "wr"}))
    out, events = T.ksm_merge(t, st)
    assert not out.ok and out.error == "not mergeable" and "no `mg` in VmFlags" in events[0].text


def test_ksm_merge_waits_for_ksmd_and_a_refused_merge_fails_after_bounded_scans(monkeypatch):
    from cowdsl import scenario as S

    st = S.Step(1, "ksmd", None, "ksm_merge", addr=S.Addr("A", "buf", 0), addr2=S.Addr("B", "buf", 0))
    T, t = _ksm_translator(monkeypatch, merged_at=None, scans_per_poll=1)
    clock = iter(i * 0.005 for i in range(100000))
    monkeypatch.setattr(T.time, "monotonic", lambda: next(clock))
    out, events = T.ksm_merge(t, st)
    assert not out.ok and out.error.startswith("not merged in 1.0") and " full scans of ksmd" in out.error
    assert int(out.error.split(", ")[1].split()[0]) >= T.KSM_SCANS
    T, t = _ksm_translator(monkeypatch, merged_at=3, scans_per_poll=1)
    out, events = T.ksm_merge(t, st)
    assert out.ok and "ksmd merged them" in events[-1].text and "KSM page" in events[-1].text
    assert "LRU-add batch" in events[0].text  # the run's pages were pushed out of the CPU's batch first
    T, t = _ksm_translator(monkeypatch, merged_at=1, scans_per_poll=1)
    out, events = T.ksm_merge(t, st)
    assert out.ok and "already merged when the step began" in events[0].text  # (an earlier ksmd step)


def test_ksm_merge_seen_after_many_fast_full_scans_is_a_merge_not_a_refusal(monkeypatch):
    """Regression (a DISAGREE at ksm/madvise-unmergeable-unshares and ksm-page-ro-pin-unshares in a
    5.10 guest): ksmd with sleep_millisecs 0 counts hundreds of full_scans in a few ms before it
    merges two fresh pages; the step called the merge refused after 6 scans and ksmd merged a step later."""
    from cowdsl import scenario as S

    st = S.Step(1, "ksmd", None, "ksm_merge", addr=S.Addr("A", "buf", 0), addr2=S.Addr("B", "buf", 0))
    T, t = _ksm_translator(monkeypatch, merged_at=160, scans_per_poll=5)  # 800 scans, 0.8 s: merged
    clock = iter(i * 0.005 for i in range(100000))
    monkeypatch.setattr(T.time, "monotonic", lambda: next(clock))
    out, events = T.ksm_merge(t, st)
    assert out.ok and "ksmd merged them" in events[-1].text
    T, t = _ksm_translator(monkeypatch, merged_at=None, scans_per_poll=5)
    clock = iter(i * 0.005 for i in range(100000))
    monkeypatch.setattr(T.time, "monotonic", lambda: next(clock))
    out, events = T.ksm_merge(t, st)
    assert not out.ok and out.error.startswith("not merged in 1.0")


def test_ksm_merge_cut_short_by_time_is_not_observed_never_a_refused_merge(monkeypatch):
    """Was a failed merge (a DISAGREE in a loaded 6.1 guest): ksmd too slow to make KSM_SCANS full
    scans in KSM_SECONDS says nothing about whether the kernel would merge."""
    from cowdsl import scenario as S

    st = S.Step(1, "ksmd", None, "ksm_merge", addr=S.Addr("A", "buf", 0), addr2=S.Addr("B", "buf", 0))
    T, t = _ksm_translator(monkeypatch, merged_at=None, scans_per_poll=0)  # ksmd never completes a scan
    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(T.time, "monotonic", lambda: float(next(clock)))
    with pytest.raises(T.Unrunnable, match="not observed: ksmd made 0 full scans"):
        T.ksm_merge(t, st)


def test_io_urings_eopnotsupp_for_a_file_buffer_skips_the_scenario_whatever_errno_name_python_gives(monkeypatch):
    """Regression: 5.10 and 6.1 refuse a file-backed fixed buffer with errno 95, which Python's
    errno.errorcode names ENOTSUP; the check looked for "EOPNOTSUPP" only, so the pin counted as
    GUP's refusal (a false disagreement in gup_longterm's disk-file scenarios)."""
    import errno

    from cowdsl.native import translate as T
    from cowdsl.semantics.state import Outcome

    sc = load("""
        scenario "file pin"
        process A
        file F = [0]
        A: mmap(buf, shared, rw, file=F)
        A: pin(buf, write, longterm) as mr
        assert not failed(mr)
    """)
    assert errno.errorcode[errno.EOPNOTSUPP] in T.EOPNOTSUPP and "EOPNOTSUPP" in T.EOPNOTSUPP
    monkeypatch.setattr(T.Translator, "simple", lambda self, st, cmd, *a, **kw: (Outcome(False, error="ENOTSUP"), []))
    from cowdsl.native import run_native

    r = run_native(sc)
    assert holds(r) == [None]
    assert "io_uring refuses file-backed fixed buffers" in r.checks[0].values["unsupported"]


# --- memfd and hugetlbfs files; kpageflags' KSM bit ------------------------------------------------


def test_a_memfd_file_is_made_with_memfd_create_and_a_hugetlbfs_one_only_from_our_pool():
    from types import SimpleNamespace

    from cowdsl.native import Limits, plan

    def sc(kind: str, contents: str = "0"):
        return load(f"""
            scenario "file kinds"
            process A
            file F = [{contents}] on {kind}
            A: mmap(buf, shared, rw, file=F)
            assert A.buf == {contents}
        """)

    ours = SimpleNamespace(reason=None, swap=True, thp=None, hugetlb=None, ksm=None)
    host = SimpleNamespace(reason=None, swap=True, thp=None, hugetlb="not ours", ksm=None)
    assert plan.problem(sc("memfd", "7"), host, Limits()) is None
    assert plan.problem(sc("hugetlbfs"), ours, Limits()) is None
    assert plan.problem(sc("hugetlbfs"), host, Limits())[1].endswith(": not ours")
    assert "zeroed huge pages" in plan.problem(sc("hugetlbfs", "7"), ours, Limits())[1]
    assert "a tmpfs file is not made yet" in plan.problem(sc("shmem"), ours, Limits())[1]
    assert plan.guest_needs(sc("hugetlbfs")) == {"hugetlb"}


def test_a_memfd_files_pages_are_shared_and_copied_as_shmem_pages():
    r = native("""
        scenario "memfd"
        process A
        file F = [5] on memfd
        A: mmap(buf, private, rw, file=F)
        A: mmap(sbuf, shared, rw, file=F)
        A: read(buf) as v
        A: write(buf, 2)
        A: write(sbuf, 3)
        assert v == 5 and A.buf == 2 and A.sbuf == 3 and F[0] == 3
        assert A.sbuf is F[0] and not (A.buf is F[0])
    """)
    assert holds(r) == [True, True], step_outcomes(r)
    mmap = r.steps[0]
    assert any("MAP_PRIVATE" in e.text for e in mmap.events)


def test_kpageflags_ksm_bit_is_probed_and_ksm_is_not_judged_where_it_is_set_on_every_anon_page():
    from types import SimpleNamespace

    from cowdsl import scenario as S
    from cowdsl.judge.observe import Unsupported
    from cowdsl.native import host
    from cowdsl.native.observe import NativeObservation

    assert host._probe_kpf_ksm() in (None, host.KPF_KSM_BUG)  # this kernel: fixed, or the 6.9+ bug
    buggy = SimpleNamespace(kpf_ksm=host.KPF_KSM_BUG, anon_exclusive=None)
    obs = NativeObservation(SimpleNamespace(), buggy)
    with pytest.raises(Unsupported, match="KPF_KSM for every anonymous page"):
        obs.page_fact("ksm", S.PageAt(S.Addr("A", "buf", 0)))


def test_each_huge_mapping_gets_a_2mib_slot_of_its_own(monkeypatch):
    """Regression: a hugetlb mapping did not advance the huge slots, so a second one (a hugetlbfs
    file mapped twice, as cow.c's run_with_memfd_hugetlb does) collided with the first (EEXIST)."""
    from types import SimpleNamespace

    from cowdsl.native import translate as T
    from cowdsl.semantics.state import Outcome

    sc = load("""
        scenario "slots"
        process A
        file F = [0] on hugetlbfs
        A: mmap(buf, private, rw, file=F)
        A: mmap(sbuf, shared, ro, file=F)
        A: mmap(h, anon, private, rw, hugetlb)
        A: mmap(t, anon, private, rw, thp)
        A: mmap(s, anon, private, rw)
        assert A.buf == 0
    """)
    proc = SimpleNamespace(mappings={})
    ctl = SimpleNamespace(sc=sc, procs={"A": proc}, files={"F": "/proc/self/fd/9"})
    monkeypatch.setattr(T, "_free_base", lambda span: T.DEFAULT_BASE)
    t = T.Translator(ctl)
    monkeypatch.setattr(T.Translator, "simple", lambda self, st, cmd, *a, **kw: (Outcome(True), []))
    for st in sc.steps:
        T.mmap(t, st)
    huge = [proc.mappings[n][0] for n in ("buf", "sbuf", "h", "t")]
    assert len(set(huge)) == 4 and all(a % T.THP == 0 for a in huge)
    assert all(proc.mappings[n][1] == T.THP_PAGES for n in ("buf", "sbuf", "h", "t"))
    assert max(huge) + T.THP <= T.DEFAULT_BASE + (len(sc.steps) + 2) * T.STRIDE + 10 * T.THP
