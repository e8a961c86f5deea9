"""Symmetry reduction in the full search: threads of one process running the
same program, named by no assertion and no other step, are interchangeable;
one world of each class is explored.  The verdicts and the final states (up to
renaming the bound names) are those of the plain search, with fewer states,
and a counterexample names the real threads: its schedule replays."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from cowdsl import fuzz
from cowdsl.errors import CowError
from cowdsl.explore import search, symmetry
from cowdsl.explore.lean import Lean
from cowdsl.explore.model import Model
from cowdsl.load import load_text
from cowdsl.run import run
from cowdsl.semantics import registry

RACY = "early-cow:wp_seq=off"


def pinners(k: int, assertions: str = "never: A.p is B.p\nsometimes: A.p is B.p\n") -> str:
    """k GUP-fast pinners of one page racing fork; the assertions name none of them."""
    lines = ["process A", *(f"thread T{i} of A" for i in range(k)), "thread F of A",
             "A: mmap(p, anon, private, rw)", "A: write(p, 1)", "par {",
             *(f"  T{i}: pin(p, write, fast) as r{i}" for i in range(k)), "  F: fork() as B", "}"]
    return "\n".join(lines) + "\n" + assertions


def searched(src: str, backend: str, symmetric: bool) -> search.Exploration:
    return search.full(Model(load_text(src, "t.cow"), registry.get(backend)), search.Bounds(), count=False,
                       symmetric=symmetric)


def renamings(k: int) -> list[dict[str, str]]:
    names = [f"r{i}" for i in range(k)]
    return [dict(zip(names, p)) for p in itertools.permutations(names)]


@pytest.mark.parametrize("backend", [RACY, "anon-exclusive"])
@pytest.mark.parametrize("k", [2, 3])
def test_identical_pinners_give_the_same_final_states_up_to_renaming_with_fewer_states(backend, k):
    plain = searched(pinners(k), backend, False)
    sym = searched(pinners(k), backend, True)
    assert sym.states < plain.states
    finals = {w.state for w in plain.finals}
    reduced = {w.state for w in sym.finals}
    assert reduced <= finals  # each one stands for a class the plain search reaches
    for st in finals:  # and every final state of the plain search is one of them, renamed
        assert any(symmetry.rename(st, r) in reduced for r in renamings(k))


@pytest.mark.parametrize("backend", [RACY, "anon-exclusive"])
def test_the_verdicts_are_the_plain_search_s(backend):
    sc = load_text(pinners(3), "t.cow")
    sym = run(sc, backend, mode="full")  # symmetric: not herd's complete list
    plain = run(sc, backend, mode="full", all_states=True)
    assert [c.holds for c in sym.checks] == [c.holds for c in plain.checks]


def test_a_counterexample_names_the_real_threads_and_replays():
    sc = load_text(pinners(3, "always: failed(r2) or r2 is A.p\n"), "t.cow")
    r = run(sc, RACY, mode="full")
    # the assertion names r2: T2 keeps its name; T0 and T1 are still symmetric
    cex = r.checks[0]
    assert cex.holds is False and cex.witness
    schedule = [t.actor for t in cex.witness]
    again = run(sc, RACY, schedule=schedule)
    assert again.checks[0].holds is False  # the schedule, with the real names, shows the violation
    assert [(t.actor, t.label) for t in again.checks[0].witness][:len(schedule)] == \
           [(t.actor, t.label) for t in cex.witness]


def test_an_assertion_naming_one_pinner_breaks_symmetry_for_it():
    model = Model(load_text(pinners(3, "always: failed(r0) or r0 is A.p\n"), "t.cow"), registry.get(RACY))
    block = [b for b in range(len(model.blocks)) if len(model.threads_for(b)) > 1][-1]  # the last par block
    threads = [(t.actor, t.steps) for t in model.threads_for(block)]
    actors = [a for a, _ in threads]
    (group, bound), = symmetry.groups(model.sc, threads)
    assert [actors[i] for i in group] == ["T1", "T2"] and bound == (("r1",), ("r2",))
    free = searched(pinners(3), RACY, True).states
    named = searched(pinners(3, "always: failed(r0) or r0 is A.p\n"), RACY, True).states
    assert free < named < searched(pinners(3), RACY, False).states


@pytest.mark.parametrize("src", [
    # different pages, different ops, processes rather than threads, a pin used by a later step
    "process A\nthread T0 of A\nthread T1 of A\nA: mmap(p, anon, private, rw, pages=2)\npar {\n"
    "  T0: pin(p[0], write, fast) as r0\n  T1: pin(p[1], write, fast) as r1\n}\n",
    "process A\nthread T0 of A\nthread T1 of A\nA: mmap(p, anon, private, rw)\npar {\n"
    "  T0: pin(p, write, fast) as r0\n  T1: write(p, 2)\n}\n",
    "process A, C\nA: mmap(p, anon, private, rw)\nC: mmap(p, anon, private, rw)\npar {\n"
    "  A: write(p, 1)\n  C: write(p, 1)\n}\n",
    "process A\nthread T0 of A\nthread T1 of A\nA: mmap(p, anon, private, rw)\npar {\n"
    "  T0: pin(p, write, fast) as r0\n  T1: pin(p, write, fast) as r1\n}\nA: unpin(r0)\n",
])
def test_threads_that_differ_or_are_named_are_not_symmetric(src):
    model = Model(load_text(src + "always: A.p == A.p\n", "t.cow"), registry.get("anon-exclusive"))
    block = [b for b in range(len(model.blocks)) if len(model.threads_for(b)) > 1][-1]  # the last par block
    assert symmetry.groups(model.sc, [(t.actor, t.steps) for t in model.threads_for(block)]) == []


def _uncached(lean: Lean, k: tuple[int, ...]) -> tuple[int, ...]:
    """canon_order with every table canon keeps emptied first: worked out from the world alone."""
    for table in (lean.places, lean.infos, lean.owns, lean.renamed, lean.rehomed, lean.canons, lean.drainers):
        table.clear()
    return lean.canon_order(k)[0]


@pytest.mark.parametrize("backend", [RACY, "anon-exclusive"])
def test_what_canon_keeps_changes_no_world_it_picks(backend):
    """canon remembers per state, thread, renaming and world; each world it gives is
    the one worked out afresh, and is its own class's (canonical twice is canonical)."""
    lean = Lean(Model(load_text(pinners(3), "t.cow"), registry.get(backend)), symmetric=True)
    assert lean.symmetric
    frontier, seen, moved = [lean.canon(lean.init())], set(), 0
    while frontier:
        k = frontier.pop()
        if k in seen:
            continue
        seen.add(k)
        for _, raw in lean.successors(k):
            c = lean.canon(raw)
            assert lean.canon(c) == c
            if len(seen) % 7 == 0:  # afresh now and then: a fresh table each time costs the search its speed
                assert _uncached(lean, raw) == c
            moved += c != raw
            frontier.append(c)
    assert moved and len(seen) == searched(pinners(3), backend, True).states


# --- assertions that name symmetric threads -------------------------------------------------

def test_an_assertion_the_same_under_every_swap_keeps_the_threads_it_names_symmetric():
    """K pinners on M pages: pinners of one page are interchangeable although the
    assertion names every pin, for it says the same of each."""
    src = pinners_on_pages(4, 2)
    model = Model(load_text(src, "t.cow"), registry.get(RACY))
    threads = par_threads(model)
    assert symmetry.groups(model.sc, threads) == [((0, 2), (("r0",), ("r2",))), ((1, 3), (("r1",), ("r3",)))]


@pytest.mark.parametrize("assertion", [
    "always: failed(r0) or r2 is A.p[0]",  # swapping r0 and r2 gives another assertion
    "always: (failed(r0) or r0 is A.p[0]) and (failed(r2) or r2 is A.p[1])",  # each pin on the other's page
    "always: (failed(r0) or r0 is A.p[0]) and failed(r2)",
])
def test_an_assertion_that_tells_named_threads_apart_keeps_them_out(assertion):
    src = pinners_on_pages(4, 2, assertion)
    model = Model(load_text(src, "t.cow"), registry.get(RACY))
    threads = par_threads(model)
    gs = symmetry.groups(model.sc, threads)
    assert gs == [((1, 3), (("r1",), ("r3",)))]  # T1 and T3, named by none, still are


def par_threads(model: Model) -> list[tuple[str, tuple[int, ...]]]:
    block = [b for b in range(len(model.blocks)) if len(model.threads_for(b)) > 1][-1]  # the last par block
    return [(t.actor, t.steps) for t in model.threads_for(block)]


def pinners_on_pages(k: int, m: int, assertion: str | None = None, op: str = "pin(p[{j}], write, fast)") -> str:
    """benchmarks' SPIN family: k pinners, pinner i on page i % m, racing fork; the assertion names every pin."""
    lines = ["process A", *(f"thread T{i} of A" for i in range(k)), "thread F of A",
             f"A: mmap(p, anon, private, rw, pages={m})", *(f"A: write(p[{j}], 1)" for j in range(m)), "par {",
             *(f"  T{i}: {op.format(j=i % m)} as r{i}" for i in range(k)), "  F: fork() as B", "}",
             *(f"A: write(p[{j}], 2)" for j in range(m))]
    lines.append(assertion or "always: " + " and ".join(f"(failed(r{i}) or r{i} is A.p[{i % m}])" for i in range(k)))
    return "\n".join(lines) + "\n"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.integers(2, 3), hs.integers(1, 2), hs.sampled_from(["pin(p[{j}], write, fast)", "pin(p[{j}], read, fast)",
                                                              "gup(p[{j}], read, fast)", "pin(p[{j}], write)"]),
       hs.sampled_from([RACY, "anon-exclusive", "refcount"]), hs.sampled_from(["always", "sometimes", "never"]),
       hs.data())
def test_symmetric_assertions_give_the_verdicts_and_final_states_of_the_plain_search(k, m, op, backend, quantifier,
                                                                                     data):
    """Property: with assertions that name the pins symmetrically (or not), the
    symmetric full search gives the plain one's verdicts, and every final state of
    the plain search is one of its final states renamed."""
    terms = ["(failed(r{i}) or r{i} is A.p[{j}])", "r{i} is A.p[{j}]", "failed(r{i})", "not failed(r{i})"]
    pick = data.draw(hs.lists(hs.sampled_from(terms), min_size=1, max_size=k))
    if data.draw(hs.booleans()):  # the same term for every pin: symmetric among the pinners of a page
        pick = pick[:1] * k
    body = " and ".join(t.format(i=i, j=i % m) for i, t in enumerate(pick))
    sc = load_text(pinners_on_pages(k, m, f"{quantifier}: {body}", op), "t.cow")
    sym = run(sc, backend, mode="full", all_states=False)
    plain = run(sc, backend, mode="full", all_states=True)
    assert [c.holds for c in sym.checks] == [c.holds for c in plain.checks], sc.source
    s = searched(sc.source, backend, True)
    p = searched(sc.source, backend, False)
    assert s.states <= p.states
    reduced = {w.state for w in s.finals}
    for st in {w.state for w in p.finals}:
        assert any(symmetry.rename(st, r) in reduced for r in renamings(k)), sc.source


# --- the reduced search ------------------------------------------------------------------

def reduced(src: str, backend: str, symmetric: bool, drains: bool = False) -> search.Exploration:
    return search.reduced(Model(load_text(src, "t.cow"), registry.get(backend), drains=drains), search.Bounds(),
                          symmetric=symmetric)


def canonical_finals(src: str, backend: str, ex: search.Exploration, drains: bool = False) -> set:
    """The canonical world of each final world's class (as a World: keys are one Lean's own)."""
    lean = Lean(Model(load_text(src, "t.cow"), registry.get(backend), drains=drains), True)
    return {lean.world(lean.canon(lean.key(w))) for w in ex.finals}


@pytest.mark.parametrize("backend", [RACY, "anon-exclusive"])
def test_the_reduced_search_shares_one_summary_per_class_and_reaches_every_class(backend):
    src = pinners_on_pages(3, 2)
    plain, sym = reduced(src, backend, False), reduced(src, backend, True)
    assert sym.states < plain.states * 0.7  # (8,417 -> 4,614 on the racy kernel)
    full = search.full(Model(load_text(src, "t.cow"), registry.get(backend)), search.Bounds(), count=False,
                       symmetric=True)
    # the classes of final worlds: the plain reduced search's, the symmetric one's and the full search's
    assert canonical_finals(src, backend, plain) == canonical_finals(src, backend, sym) \
        == canonical_finals(src, backend, full)
    assert {w.state for w in sym.finals} == {w.state for w in full.finals}  # one world per class, the same one


def test_a_default_run_of_the_reduced_search_is_symmetric_and_herds_list_is_not():
    sc = load_text(pinners_on_pages(3, 2), "t.cow")
    sym, plain = run(sc, RACY, mode="reduced"), run(sc, RACY, mode="reduced", all_states=True)
    assert sym.exploration.states < plain.exploration.states
    assert [c.holds for c in sym.checks] == [c.holds for c in plain.checks] == [False]
    schedule = [t.actor for t in sym.checks[0].witness]  # the counterexample names real threads: it replays
    assert run(sc, RACY, schedule=schedule).checks[0].holds is False


def test_the_reduced_search_renames_a_cpus_lru_batch_with_its_thread():
    """Slow pins fault in pages onto their CPU's lru_add batch, which a drainer may drain at
    any moment: a summary's ("lru", cpu) reads and writes follow the renaming."""
    src = pinners_on_pages(2, 1, op="pin(p[{j}], write)").replace("A: write(p[0], 1)\n", "")
    plain, sym = reduced(src, RACY, False, drains=True), reduced(src, RACY, True, drains=True)
    assert sym.states < plain.states
    full = search.full(Model(load_text(src, "t.cow"), registry.get(RACY), drains=True), search.Bounds(), count=False,
                       symmetric=True)
    assert canonical_finals(src, RACY, plain, True) == canonical_finals(src, RACY, sym, True) \
        == canonical_finals(src, RACY, full, True)


def test_a_loc_is_renamed_as_the_state_is():
    names, actors = {"r0": "r1", "r1": "r0"}, {"T0": "T1", "T1": "T0"}
    assert symmetry.renamed_loc(("result", "r0"), names, actors) == ("result", "r1")
    assert symmetry.renamed_loc(("handle", "r1"), names, actors) == ("handle", "r0")
    assert symmetry.renamed_loc(("lru", "T0"), names, actors) == ("lru", "T1")
    for loc in [("lru",), ("handles",), ("page", 3), ("mm", "A", "ptl"), ("vma", "A", "p"), ("result", "v")]:
        assert symmetry.renamed_loc(loc, names, actors) == loc


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.integers(2, 3), hs.integers(1, 2), hs.sampled_from(["pin(p[{j}], write, fast)", "pin(p[{j}], read, fast)",
                                                              "gup(p[{j}], read, fast)", "pin(p[{j}], write)"]),
       hs.sampled_from([RACY, "anon-exclusive", "refcount"]), hs.booleans())
def test_the_symmetric_reduced_search_reaches_the_full_searchs_classes(k, m, op, backend, drains):
    """Property: reduced with symmetry = full with symmetry, on final worlds (one per class)."""
    src = pinners_on_pages(k, m, op=op)
    sym = reduced(src, backend, True, drains)
    full = search.full(Model(load_text(src, "t.cow"), registry.get(backend), drains=drains), search.Bounds(),
                       count=False, symmetric=True)
    assert canonical_finals(src, backend, sym, drains) == canonical_finals(src, backend, full, drains), src
    assert {w.state for w in sym.finals} == {w.state for w in full.finals}, src


# --- what renaming must follow, found by fuzzing twins of generated threads ---------------

UNNAMED_PINS = """process A
thread T1 of A
thread T2 of A
A: mmap(m, shared, rw, thp)
par {
  T1: io_uring_register(m[0])
  T2: io_uring_register(m[0])
  A: pin(m, read, longterm, fast) as h
}
always: A.m[0] == 0
"""

FORKING_THREADS = """process A
thread T1 of A
thread T2 of A
A: mmap(m, anon, private, rw)
A: write(m, 1)
par {
  T1: fork() as B1
  T2: fork() as B2
  A: write(m, 2)
}
sometimes: A.m == 2
"""


@pytest.mark.parametrize("src", [UNNAMED_PINS, FORKING_THREADS])
@pytest.mark.parametrize("backend", [RACY, "anon-exclusive"])
def test_each_symmetric_search_reaches_the_plain_searchs_classes_and_no_other(src, backend):
    """A pin taken without `as` is named by its step (io_uring_register@6): renaming left it,
    and the full search made a final state with one of the two pins gone.  Fork's `as` names
    a process, an mm that renaming does not rename: the child of one of them went missing."""
    plain = searched(src, backend, False)
    classes = canonical_finals(src, backend, plain)
    assert canonical_finals(src, backend, searched(src, backend, True)) == classes
    assert canonical_finals(src, backend, reduced(src, backend, True)) == classes
    assert all(len({h.name for h in w.state.handles}) == len(w.state.handles) for w in plain.finals)


def test_a_pin_without_a_name_is_renamed_with_its_thread_and_forking_threads_are_not_interchangeable():
    model = Model(load_text(UNNAMED_PINS, "t.cow"), registry.get(RACY))
    block = [b for b in range(len(model.blocks)) if len(model.threads_for(b)) > 1][-1]  # the last par block
    (idx, names), = Lean(model, True).groups_of(block, True)
    assert names == (("io_uring_register@2",), ("io_uring_register@3",))  # (its step numbers)
    assert not Lean(Model(load_text(FORKING_THREADS, "t.cow"), registry.get(RACY)), True).symmetric


def twinned(text: str) -> str | None:
    """A generated scenario whose declared thread gets a twin: the same steps in every
    par block, its `as` names suffixed (None without a thread in a par block)."""
    m = re.search(r"^thread (\w+) of (\w+)$", text, re.M)
    if not m:
        return None
    t, proc = m.groups()
    out, in_par, added = [], False, False
    for ln in text.splitlines():
        out.append(ln)
        if ln == f"thread {t} of {proc}":
            out.append(f"thread {t}x of {proc}")
        in_par = ln == "par {" or in_par and ln != "}"
        if in_par and ln.startswith(f"  {t}: "):
            out.append(f"  {t}x: " + re.sub(r"\bas (\w+)", r"as \1x", ln[len(f"  {t}: "):]))
            added = True
    return "\n".join(out) + "\n" if added else None


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(fuzz.strategy(fuzz.scenario_text), hs.sampled_from(fuzz.BACKENDS), hs.booleans())
def test_generated_twins_give_both_symmetric_searches_the_plain_searchs_classes(text, backend, drains):
    """Property, on the fuzzer's scenarios with a thread twinned: the full and the reduced
    search with symmetry reach exactly the classes of final worlds the plain full search
    reaches (how the two unsound renamings above were found)."""
    same_classes(fuzz.concurrent_scenario(twinned(text)), backend, drains)


def same_classes(sc, backend: str, drains: bool) -> None:
    """Both symmetric searches of a (generated) scenario reach exactly the classes of
    final worlds the plain full search reaches; nothing to check without one, or
    without symmetric actors, or where a search stops at its bound."""
    if sc is None:
        return
    model = lambda: Model(sc, registry.get(backend), drains=drains)  # noqa: E731
    lean = Lean(model(), True)
    if not lean.symmetric:
        return
    bounds = lambda: search.Bounds(max_states=3_000, timeout=5)  # noqa: E731
    plain = search.full(model(), bounds(), count=False)
    full = search.full(model(), bounds(), count=False, symmetric=True)
    red = search.reduced(model(), search.Bounds(max_states=15_000, timeout=5), symmetric=True)
    amp = search.full(model(), bounds(), count=False, symmetric=True, ample=True)
    if plain.partial or full.partial or red.partial or amp.partial:
        return
    if not any(lean.paged(b) for b in range(lean.finished)):
        classes = {lean.world(lean.canon(lean.key(w))).state for w in plain.finals}
        assert {w.state for w in full.finals} == classes == {w.state for w in red.finals} \
            == {w.state for w in amp.finals}, sc.source
    else:  # canon picks one world of a class where processes' pages tie, not always the same one
        classes = {orbit(lean, w.state) for w in plain.finals}
        assert {orbit(lean, w.state) for w in full.finals} == classes == {orbit(lean, w.state) for w in red.finals} \
            == {orbit(lean, w.state) for w in amp.finals}, sc.source


def orbit(lean: Lean, st) -> frozenset:
    """A final state's class, named exactly: the states every renaming of the
    symmetric actors makes, their pages renumbered."""
    groups = lean.past_groups(lean.finished)
    out = set()
    for perms in itertools.product(*(itertools.permutations(range(len(who))) for who, _ in groups)):
        names, actors = {}, {}
        for (who, bound), perm in zip(groups, perms):
            for i, j in enumerate(perm):
                actors[who[i]] = who[j]
                names.update((a, b) for a, b in zip(bound[i], bound[j]) if a is not None and b is not None)
        out.add(symmetry.renumber(symmetry.rename(st, names, actors))[0])
    return frozenset(out)


# --- processes -----------------------------------------------------------------------------

def remote_writers(k: int, values: list[int] | None = None, assertion: str = "sometimes: A.p != 1") -> str:
    """k processes write into A's page with process_vm_writev while A forks: processes with
    no memory of their own, interchangeable when they write the same value."""
    values = values or [2] * k
    lines = ["process A, " + ", ".join(f"W{i}" for i in range(k)), "A: mmap(p, anon, private, rw)", "A: write(p, 1)",
             "par {", *(f"  W{i}: process_vm_writev(A.p, {values[i]})" for i in range(k)), "  A: fork() as B", "}"]
    return "\n".join(lines) + "\n" + assertion + "\n"


def par_groups(src: str) -> list:
    model = Model(load_text(src, "t.cow"), registry.get(RACY))
    block = [b for b in range(len(model.blocks)) if len(model.threads_for(b)) > 1][-1]  # the last par block
    return [tuple(model.threads_for(block)[i].actor for i in idx) for idx, _ in Lean(model, True).groups_of(block, True)]


def three_searches(src: str, backend: str) -> tuple[search.Exploration, ...]:
    """The plain full search, and the full and reduced ones with symmetry."""
    return searched(src, backend, False), searched(src, backend, True), reduced(src, backend, True)


@pytest.mark.parametrize("backend", [RACY, "anon-exclusive"])
def test_processes_with_no_memory_of_their_own_trade_names(backend):
    src = remote_writers(3)
    assert par_groups(src) == [("W0", "W1", "W2")]
    plain, full, red = three_searches(src, backend)
    assert (plain.states, full.states) == (1008, 290)
    classes = canonical_finals(src, backend, plain)
    assert canonical_finals(src, backend, full) == classes == canonical_finals(src, backend, red)


@pytest.mark.parametrize("src, groups", [
    (remote_writers(3, [2, 3, 2]), [("W0", "W2")]),  # W1 writes another value
    (remote_writers(2).replace("A: write(p, 1)\n", "A: write(p, 1)\nW1: mmap(q, anon, private, rw)\n"), []),  # memory
    (remote_writers(2).replace("A: write(p, 1)\n", "A: write(p, 1)\nW0: process_vm_writev(A.p, 4)\n"), []),  # before
    (remote_writers(2, assertion="sometimes: A.p != 1\nalways: alive(W0) or true"), []),  # an assertion names W0
    # memory of their own, in a scenario with an op whose effect follows page order (MADV_PAGEOUT's swap slots)
    (remote_writers(2).replace("  A: fork() as B", "  W0: mmap(q, anon, private, rw)\n  W1: mmap(q, anon, private, rw)\n"
                                                   "  A: fork() as B").replace("}", "}\nA: madvise(p, pageout)"), []),
    # shared anonymous memory: a shmem file the model names after the process
    (remote_writers(2).replace("  A: fork() as B", "  W0: mmap(q, anon, shared, rw)\n  W1: mmap(q, anon, shared, rw)\n"
                                                   "  A: fork() as B"), []),
])
def test_processes_that_differ_or_own_memory_or_are_named_are_not_interchangeable(src, groups):
    assert par_groups(src) == groups


def forked_writers(k: int, assertion: str = "sometimes: A.p[1] == 5") -> str:
    """A forks k children before the block; each writes the page it shares with A and
    pins its second page, while A writes that one: processes with memory of their own,
    interchangeable."""
    return ("process A\nA: mmap(p, anon, private, rw, pages=2)\nA: write(p, 1)\n"
            + "".join(f"A: fork() as B{i}\n" for i in range(k)) + "par {\n"
            + "".join(f"  B{i}: write(p, 2)\n  B{i}: pin(p[1], write) as h{i}\n" for i in range(k))
            + "  A: write(p[1], 5)\n}\n" + assertion + "\n")


@pytest.mark.parametrize("backend", [RACY, "anon-exclusive"])
def test_processes_with_memory_of_their_own_trade_names_and_page_numbers(backend):
    src = forked_writers(3)
    assert par_groups(src) == [("B0", "B1", "B2")]
    plain, full, red = three_searches(src, backend)
    # the children's copies come in any of 3! orders of allocation, and so on: 630 final
    # worlds, all one world renumbered
    assert (plain.states, len(plain.finals), full.states, len(full.finals), red.states) == (1861, 630, 40, 1, 40)
    lean = Lean(Model(load_text(src, "t.cow"), registry.get(backend)), True)
    assert {orbit(lean, w.state) for w in plain.finals} == {orbit(lean, w.state) for w in full.finals} \
        == {orbit(lean, w.state) for w in red.finals}
    sc = load_text(src, "t.cow")
    assert [c.holds for c in run(sc, backend, mode="full").checks] \
        == [c.holds for c in run(sc, backend, mode="full", all_states=True).checks]


@pytest.mark.parametrize("src, groups", [
    (forked_writers(2), [("B0", "B1")]),
    # made by a fork in a block before theirs
    (forked_writers(2).replace("A: fork() as B1\npar {\n", "A: fork() as C\npar {\n  A: fork() as B1\n  C: read(p)\n}\npar {\n"),
     [("B0", "B1")]),
    # each forks a child of its own: an mm that renaming would have to rename too
    (forked_writers(2).replace("  A: write(p[1], 5)", "  B0: fork() as C0\n  B1: fork() as C1\n  A: write(p[1], 5)"), []),
    (forked_writers(2).replace("B1: write(p, 2)", "B1: write(p, 3)"), []),  # another value
    (forked_writers(2, "sometimes: B0.p == 2"), []),  # an assertion names B0
    (forked_writers(2).replace("}\n", "}\nreclaim: swapout(A.p)\n"), []),  # reclaim hands out swap slots in its order
    (forked_writers(2).replace("}\n", "}\nA: madvise(p, pageout)\n"), []),
    (forked_writers(2).replace("}\n", "}\nA: madvise(p, mergeable)\n"), []),  # ksmd scans in mm order
])
def test_which_processes_with_memory_trade_names(src, groups):
    assert par_groups(src) == groups


@pytest.mark.parametrize("mode", ["full", "reduced"])
def test_a_counterexample_among_children_with_memory_names_them_and_replays(mode):
    sc = load_text(forked_writers(3, "always: B0.p[1] == 1 or A.p[1] != 5"), "t.cow")
    assert par_groups(sc.source) == [("B1", "B2")]  # the assertion names B0
    r = run(sc, "anon-exclusive", mode=mode)
    assert r.checks[0].holds is False
    schedule = [t.actor for t in r.checks[0].witness]
    assert set(schedule) <= {"A", "B0", "B1", "B2"}
    assert run(sc, "anon-exclusive", schedule=schedule).checks[0].holds is False


def test_every_op_is_classed_as_blind_to_page_and_mm_order_or_not():
    """A new op must be placed on one side: those left out follow page or mm order
    (an rmap walk that stops part-way, swap slots, KSM's scans, a device's mirror)."""
    from cowdsl.ops import OPS
    assert symmetry.PAGE_BLIND <= set(OPS)
    assert set(OPS) - symmetry.PAGE_BLIND == {"swapin", "swapout", "ksm_merge", "ksm_merge_zero", "prctl",
                                              "make_device_exclusive", "migrate_to_device", "dma_read", "dma_write"}


def test_renumbering_names_pages_in_the_order_the_state_names_them():
    from cowdsl.semantics.state import Handle, Mm, Page, Pipe, Pte, State, Vma
    ptes = lambda *ns: tuple(Pte(page=n) for n in ns)  # noqa: E731
    st = State(mms=(Mm("A", vmas=(Vma("p", True, False, True, True, None, ptes(3, 0, 1)),)),
                    Mm("B", vmas=(Vma("p", True, False, True, True, None, ptes(5, 3)),))),
               pages=(Page(zero=True), Page(data=1), Page(data=2, freed=True), Page(data=3), Page(data=4, freed=True),
                      Page(data=5), Page(data=6), Page(data=7, freed=True)),
               handles=(Handle("h", True, 6, True, False, "B"),), pipes=(Pipe("P", (6, 1)),),
               files=(("F", (7,)),))
    out, moved = symmetry.renumber(st)
    # named in order: A's 3, (0 stays), 1; B's 5; the pin's 6; the page cache's 7; then freed 2, 4 by content
    assert [p.data for p in out.pages] == [0, 3, 1, 5, 6, 7, 2, 4]
    assert moved == {3: 1, 1: 2, 5: 3, 6: 4, 7: 5, 2: 6, 4: 7}
    assert [p.page for p in out.mms[0].vmas[0].ptes] == [1, 0, 2] and [p.page for p in out.mms[1].vmas[0].ptes] == [3, 1]
    assert out.handles[0].page == 4 and out.pipes[0].bufs == (4, 2) and out.files == (("F", (5,)),)
    assert symmetry.renumber(out) == (out, {})  # already in order
    assert symmetry.renamed_loc(("page", 3), {}, {}, moved) == ("page", 1)
    assert symmetry.renamed_loc(("page", 0), {}, {}, moved) == ("page", 0)


def test_equal_pages_sort_alike_whether_made_from_a_code_or_not():
    """A state made from its code holds 0 where the one it came from held False: the
    two are equal, and sort by the same text (they did not: two classes for one)."""
    from cowdsl.semantics.state import Page
    assert Page(anon=True, ksm=False) == Page(anon=1, ksm=0)  # type: ignore[arg-type]
    assert symmetry.text(Page(anon=True, ksm=False)) == symmetry.text(Page(anon=1, ksm=0))  # type: ignore[arg-type]
    assert symmetry.text((Page(data=1),)) != symmetry.text((Page(data=2),))


def test_a_step_that_did_not_run_names_its_process_renamed():
    from cowdsl.semantics.state import Mm, Outcome, State
    st = State(mms=(Mm("B0"), Mm("B1")), pages=(),
               results=(("r0", Outcome(False, error="not run: B0 was killed by SIGSEGV")),
                        ("r1", Outcome(False, error="not run: B1 has exited"))))
    out = symmetry.rename(st, {"r0": "r1", "r1": "r0"}, {"B0": "B1", "B1": "B0"})
    assert out.results == (("r0", Outcome(False, error="not run: B0 has exited")),
                           ("r1", Outcome(False, error="not run: B1 was killed by SIGSEGV")))


@pytest.mark.parametrize("backend", [RACY, "anon-exclusive"])
def test_a_world_whose_frames_hold_a_number_keeps_its_page_numbers(backend):
    """A number in a thread's frame may be a page's (GUP-fast's pinned page between
    its micro-steps): such a world's pages are not renumbered; the others' are."""
    src = forked_writers(2).replace("pin(p[1], write)", "pin(p[1], write, fast)")
    lean = Lean(Model(load_text(src, "t.cow"), registry.get(backend)), True)
    seen, todo, held, free = set(), [lean.init()], 0, 0
    while todo:
        k = todo.pop()
        if k in seen:
            continue
        seen.add(k)
        todo += [k2 for _, k2 in lean.successors(k)]
        if not lean.paged(k[1]) or k[1] >= lean.finished:
            continue
        pages = lean.canon_renaming(k)[4]
        if any(lean.numbers[t] for t in k[2:]):
            held += 1
            assert pages == {}
        elif pages:
            free += 1
    assert held and free


def forked_twins(rnd) -> str:
    """A random scenario: A maps memory and forks 2 or 3 children before a par block;
    each child runs the same ops on its own memory (or A's, or a pipe), A runs some."""
    k, pages = rnd.choice([2, 3]), rnd.choice([1, 2])
    lines = ["process A", "pipe P", "file F = [7, 8]", f"A: mmap(p, anon, {rnd.choice(['private', 'shared'])}, rw, pages={pages})",
             "A: write(p, 1)"]
    lines += rnd.sample(["A: pin(p, write, longterm) as pre", "A: read(p)", "A: gup(p) as pg"], rnd.choice([0, 1, 2]))
    lines += [f"A: fork() as B{i}" for i in range(k)]
    ops = ["write(p, 3)", "read(p) as r{n}", "gup(p, write) as g{n}|put(g{n})", "gup(p) as g{n}", "pin(p, write) as h{n}|unpin(h{n})",
           "pin(p, read, longterm) as h{n}", "pin(p, write, fast) as h{n}", "munmap(p)", "mprotect(p, ro)",
           "madvise(p, dontneed)", "madvise(p, dontfork)", "process_vm_writev(A.p, 3)", "exit()",
           "mmap(q, anon, private, rw)|write(q, 4)", "vmsplice(p, P)", "odirect_read(p, file=F)", "proc_mem_write(p, 3)",
           "migrate({me}.p)", "migrate(A.p)"]
    if pages == 2:
        ops += ["write(p[1], 3)", "read(p[1]) as r{n}", "pin(p[1], write, fast) as h{n}"]
    prog = [rnd.choice(ops) for _ in range(rnd.choice([1, 2, 3]))]
    if "exit()" in prog:
        prog = prog[:prog.index("exit()") + 1]
    body = [f"  B{i}: " + part.format(n=f"{i}_{j}", me=f"B{i}") for i in range(k) for j, op in enumerate(prog)
            for part in op.split("|")]
    body += ["  A: " + op for op in rnd.sample(["write(p, 5)", "munmap(p)", "migrate(A.p)", "gup(p, write) as ga", "fork() as C",
                                                "read(p) as ra", "madvise(p, dontneed)", "pin(p, write, fast) as ha"],
                                               rnd.choice([0, 1, 2]))]
    return "\n".join(lines + ["par {", *body, "}", rnd.choice(["sometimes: A.p == 1", "always: A.p != 2"])]) + "\n"


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(hs.randoms(use_true_random=False), hs.sampled_from(fuzz.BACKENDS), hs.booleans())
def test_generated_forked_twins_give_every_symmetric_search_the_plain_searchs_classes(rnd, backend, drains):
    """Property: children with memory of their own running the same ops: the full, the
    reduced and the ample symmetric searches reach exactly the plain search's classes."""
    try:
        sc = load_text(forked_twins(rnd), "t.cow")
    except CowError:
        return  # an op the backend or the checker refuses here
    same_classes(sc, backend, drains)


def test_renaming_processes_renames_their_mms_and_the_pins_they_own():
    from cowdsl.semantics.state import Handle, Mm, State
    st = State(mms=(Mm("A"), Mm("W0", alive=False), Mm("W1")), pages=(),
               handles=(Handle("h", True, 0, True, False, "W0"),))
    out = symmetry.rename(st, {}, {"W0": "W1", "W1": "W0"})
    assert [(m.name, m.alive) for m in out.mms] == [("A", True), ("W0", True), ("W1", False)]
    assert out.handles[0].owner == "W1"
    for loc, want in [(("mm", "W0", "alive"), ("mm", "W1", "alive")), (("mm*", "W1"), ("mm*", "W0")),
                      (("counter", "W0"), ("counter", "W1")), (("vma", "W1", "p"), ("vma", "W0", "p")),
                      (("mm", "A", "ptl"), ("mm", "A", "ptl"))]:
        assert symmetry.renamed_loc(loc, {}, {"W0": "W1", "W1": "W0"}) == want


def test_a_counterexample_names_the_real_processes_and_replays():
    sc = load_text(remote_writers(3, assertion="always: A.p == 1 or A.p == 7"), "t.cow")
    r = run(sc, RACY)
    assert r.exploration.mode == "full" and r.checks[0].holds is False
    schedule = [t.actor for t in r.checks[0].witness]
    assert set(schedule) <= {"A", "W0", "W1", "W2"}
    assert run(sc, RACY, schedule=schedule).checks[0].holds is False


def with_remote_twins(text: str, rnd) -> str | None:
    """A generated scenario with 2 or 3 memoryless processes added to its first par block
    (one made if there is none), each running the same remote ops on A's or C's pages."""
    maps = re.findall(r"^(A|C): mmap\((\w+),", text, re.M)
    if not maps:
        return None
    lines = text.splitlines()
    decl = next(i for i, ln in enumerate(lines) if ln.startswith("process "))
    ws = [f"W{i}" for i in range(rnd.choice([2, 3]))]
    lines[decl] += ", " + ", ".join(ws)
    prog = []
    for _ in range(rnd.choice([1, 2])):
        proc, m = rnd.choice(maps)
        page = f"{proc}.{m}" + (f"[{rnd.choice([0, 1])}]" if rnd.random() < 0.3 else "")
        prog.append(rnd.choice([f"process_vm_writev({page}, {rnd.choice([1, 2])})", f"process_vm_readv({page}) as r",
                                f"migrate({page})"]))
    body = [f"  {w}: " + op.replace("as r", f"as r{w}") for w in ws for op in prog]
    if "par {" in lines:
        at = lines.index("par {") + 1
        lines[at:at] = body
    else:
        lines += ["par {", *body, "  A: exit()", "}"]
    return "\n".join(lines) + "\n"


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(fuzz.strategy(fuzz.scenario_text), hs.randoms(use_true_random=False), hs.sampled_from(fuzz.BACKENDS),
       hs.booleans())
def test_generated_remote_twins_give_both_symmetric_searches_the_plain_searchs_classes(text, rnd, backend, drains):
    """Property: memoryless processes added to the fuzzer's scenarios, running the same
    remote ops: both symmetric searches reach exactly the plain full search's classes."""
    same_classes(fuzz.concurrent_scenario(with_remote_twins(text, rnd)), backend, drains)


TEXT_IN_A_FRAME = """process C
thread T1 of C
thread T2 of C
C: mmap(m, anon, private, ro)
par {
  T1: proc_mem_write(m[0], 1)
  T2: proc_mem_write(m[0], 1)
  reclaim: swapin(C.m)
}
always: C.m == 0
"""


@pytest.mark.parametrize("backend", ["early-cow", "anon-exclusive"])
def test_a_route_through_a_world_canon_leaves_as_it_is_replays(backend):
    """A thread whose frame holds text ('write') is in a world canon leaves as it is: the
    route's next world was not the canonical world of the real one, and the replay, which
    worked the permutation out again at each step, stepped a finished thread (IndexError;
    the fuzzer's input).  It now carries the permutation along the route."""
    sc = load_text(TEXT_IN_A_FRAME, "t.cow")
    r = run(sc, backend, mode="full")
    assert r.checks[0].holds is False
    schedule = [t.actor for t in r.checks[0].witness]
    assert run(sc, backend, schedule=schedule).checks[0].holds is False


def test_routes_replay_where_drainers_follow_renamed_cpus():
    """Symmetric processes with drainers: after their block their CPUs' batches are renamed,
    so the next block's drainers trade slots between a real world and the route's (the
    fuzzer's input).  Every final world's route replays."""
    path = next((Path(__file__).parent / "regressions").glob("model-symmetric-route-drainers-renamed-*.input"))
    sc = load_text(path.read_text(), "t.cow")
    ex = search.full(Model(sc, registry.get("early-cow:wp_seq=off"), drains=True), search.Bounds(), count=False,
                     symmetric=True)
    assert ex.finals and all(ex.routes.to([w]) is not None for w in ex.finals)
