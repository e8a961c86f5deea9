"""The judge: quantifiers applied in one place for every kind of run, and each
kernel concept computed by one function.  Regressions for two wrong answers
that came from the same concept being computed in several places."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cowdsl import scenario as S
from cowdsl.judge import decide
from cowdsl.load import load_text
from cowdsl.run import run
from cowdsl.semantics import concepts, registry
from cowdsl.semantics.state import GUP_PIN_COUNTING_BIAS, Page

PACKAGE = Path(__file__).resolve().parent.parent / "cowdsl"

NEVER_SEQUENTIAL = """\
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
never: A.buf == 1
"""


@pytest.mark.parametrize("how", [{}, {"mode": "full"}, {"mode": "reduced"}, {"schedule": ["A", "A"]}])
def test_never_in_a_sequential_scenario_fails_when_its_condition_holds(how):
    # Regression: the default sequential run judged `never:` like `assert`.
    r = run(load_text(NEVER_SEQUENTIAL, "n.cow"), "anon-exclusive", **how)
    assert [c.holds for c in r.checks] == [False]
    assert r.verdict == "fail" and not r.ok


@pytest.mark.parametrize("quantifier, holds", [("never", True), ("always", False), ("sometimes", False)])
def test_each_quantifier_of_a_sequential_run(quantifier, holds):
    text = NEVER_SEQUENTIAL.replace("never: A.buf == 1", f"{quantifier}: A.buf == 2")
    assert [c.holds for c in run(load_text(text, "q.cow"), "anon-exclusive").checks] == [holds]


@pytest.mark.parametrize("quantifier, truths, complete, holds, shows", [
    (S.ALWAYS, [True, True], True, True, ""),
    (S.ALWAYS, [True, False], True, False, "counterexample"),
    (S.ALWAYS, [True], False, None, ""),  # bounded: not every outcome seen
    (S.ALWAYS, [False], False, False, "counterexample"),  # a counterexample decides anyway
    (S.INVARIANT, [True, False], True, False, "counterexample"),
    (S.SOMETIMES, [False, True], True, True, "witness"),
    (S.SOMETIMES, [False], True, False, ""),
    (S.SOMETIMES, [False], False, None, ""),
    (S.NEVER, [False, False], True, True, ""),
    (S.NEVER, [False, True], True, False, "counterexample"),
    (S.NEVER, [False], False, None, ""),
    (S.ALWAYS, [True, None], True, None, ""),  # unobservable
])
def test_decide(quantifier, truths, complete, holds, shows):
    d = decide(quantifier, truths, complete=complete)
    assert (d.holds, d.shows) == (holds, shows)
    if None not in truths:
        assert (d.positive, d.negative) == (truths.count(True), truths.count(False))


PIN_THP = """\
process A
A: mmap(buf, anon, private, rw, {kind})
A: write(buf, 1)
A: pin(buf, write, longterm) as mr
assert pinned(A.buf)
assert maybe_pinned(A.buf)
"""


@pytest.mark.parametrize("kind", ["small", "thp", "pte_thp", "hugetlb"])
def test_maybe_pinned_after_a_longterm_pin(kind):
    # Regression: after a pin of a THP, pinned() held and maybe_pinned() did not,
    # while fork's own check (folio_maybe_dma_pinned) took the page as maybe-pinned.
    r = run(load_text(PIN_THP.format(kind=kind), "p.cow"), "anon-exclusive")
    assert [c.holds for c in r.checks] == [True, True]


@pytest.mark.parametrize("spec", ["early-cow", "cow-fixes-1", "anon-exclusive", "anon-exclusive:pin_bias=off"])
@pytest.mark.parametrize("kind", ["small", "thp", "pte_thp"])
def test_the_fact_is_the_backends_own_concept(spec, kind):
    backend = registry.get(spec)
    r = run(load_text(PIN_THP.format(kind=kind), "p.cow"), spec)
    pfn = r.final.mm("A").vma("buf").ptes[0].page
    assert r.checks[1].holds == backend.maybe_dma_pinned(r.final.pages[pfn])


def test_page_maybe_dma_pinned():
    assert concepts.page_maybe_dma_pinned(Page(refcount=GUP_PIN_COUNTING_BIAS))  # the known false positive
    assert not concepts.page_maybe_dma_pinned(Page(refcount=GUP_PIN_COUNTING_BIAS), pin_bias=False)
    assert concepts.page_maybe_dma_pinned(Page(refcount=2, pincount=1, kind="thp"))
    assert not concepts.page_maybe_dma_pinned(Page(refcount=GUP_PIN_COUNTING_BIAS, kind="thp"))
    assert not concepts.page_maybe_dma_pinned(Page(refcount=5000, zero=True))
    assert concepts.pin_refs(Page()) == GUP_PIN_COUNTING_BIAS and concepts.pin_refs(Page(kind="hugetlb")) == 1


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text())


def _names_a_quantifier(node: ast.expr) -> bool:
    words = {"ALWAYS", "SOMETIMES", "NEVER"}
    return ((isinstance(node, ast.Attribute) and node.attr in words) or (isinstance(node, ast.Name) and node.id in words)
            or (isinstance(node, ast.Constant) and node.value in ("always", "sometimes", "never")))


def test_quantifiers_are_applied_only_by_the_judge():
    """Outside the judge, no code compares an assertion's quantifier with
    always/sometimes/never (choosing a search for `invariant` is not judging)."""
    offenders = []
    for rel, tree in _sources():
        if rel.startswith(("judge/", "report/")) or rel == "scenario.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                if any(isinstance(o, ast.Attribute) and o.attr == "quantifier" for o in operands) and any(
                        _names_a_quantifier(o) for o in operands):
                    offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


def test_the_pin_bias_is_read_only_by_the_concepts():
    """GUP_PIN_COUNTING_BIAS (or a comparison with 1024) appears only where the concept is defined."""
    offenders = []
    for rel, tree in _sources():
        if rel in ("semantics/concepts.py", "semantics/state.py"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "GUP_PIN_COUNTING_BIAS":
                offenders.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.Compare) and any(
                    isinstance(c, ast.Constant) and c.value == 1024 for c in [node.left, *node.comparators]):
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


def test_a_schedule_is_judged_as_one_execution_not_against_the_expect_line():
    # Regression: a prefix schedule was completed and judged against the exhaustive
    # expect line ("MISMATCH").
    from pathlib import Path

    from cowdsl.load import load

    sc = load(Path(__file__).resolve().parent.parent / "scenarios" / "races" / "s12-gup-fast-pin-vs-fork.cow")
    r = run(sc, "early-cow:wp_seq=off", schedule=["A", "A", "A", "A", "A", "T", "T", "T", "T", "T"])
    assert r.expected is None and r.judged
    assert [c.holds for c in r.checks[:2]] == [False, False]  # this execution loses the pin
    assert r.verdict == "fail" and not r.ok
    ok = run(sc, "early-cow:wp_seq=off", schedule=["A", "A", "T"])  # T pins before the fork starts
    assert ok.expected is None and [c.holds for c in ok.checks[:2]] == [True, True]


def test_judging_invariants_counts_against_the_timeout():
    # Regression: every invariant was evaluated on every visited state after the
    # search stopped, whatever --timeout said (17.6 s with --timeout 5).
    from cowdsl.explore import search
    from cowdsl.explore.model import Model
    from cowdsl.judge.explored import check_exploration

    src = ("process A\nthread T of A\nA: mmap(buf, anon, private, rw)\nA: write(buf, 1)\n"
           "par {\n  T: pin(buf, write, fast) as mr\n  A: fork() as B\n}\ninvariant: A.buf == 1\n")
    sc = load_text(src, "inv.cow")
    model = Model(sc, registry.get("anon-exclusive"))
    ex = search.full(model, search.Bounds())
    assert ex.partial is None and len(ex.visited) > 1
    expired = search.Bounds(timeout=1.0, started=0.0)  # the run's time is already used up
    check = check_exploration(model, ex, sc.assertions[0], expired)
    assert check.holds is None and ex.partial.startswith("--timeout 1s (while judging")
