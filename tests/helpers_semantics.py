"""Shared helpers for the semantics unit tests (test_ops.py, test_rules.py).

Scenarios are written inline as .cow text, run on the anon-exclusive backend,
and inspected at the level of the model's State: pages, PTEs, counters, and
the Events each step recorded (which rule fired, its decision and its commit).

The invariant checker is cowdsl.semantics.invariants: the 5.19+ invariants of
the reference (kernel-cow-semantics.md §6.1, I1-I4) plus the model's own
bookkeeping (mapcount, pincount, refcount, swap counts).
"""

from __future__ import annotations

import textwrap

from cowdsl.load import load_text
from cowdsl.run import run
from cowdsl.semantics import registry
from cowdsl.semantics.state import Page, Pte, State

BACKEND = "anon-exclusive"


# --- running -----------------------------------------------------------------------


def scenario(src: str, name: str = "t.cow"):
    """Parse and check .cow text (dedented; `assert true` added when it has no assert)."""
    src = textwrap.dedent(src).strip("\n") + "\n"
    if not any(line.lstrip().startswith("assert") for line in src.splitlines()):
        src += "assert true\n"
    return load_text(src, name)


def run_src(src: str, name: str = "t.cow", backend: str = BACKEND):
    """Run .cow text on the backend (or a variant, ``anon-exclusive:OPTION=CHOICE``);
    returns cowdsl.run.Result."""
    return run(scenario(src, name), backend)


def states(src: str, backend: str = BACKEND) -> list[tuple[object, State]]:
    """(step, state after the step) for each step, through the backend's Model interface."""
    backend = registry.get(backend)
    return [(step, st) for step, st, _out, _events in backend.run(scenario(src))]


def state_after(src: str, text: str, backend: str = BACKEND) -> State:
    """The state right after the (first) step whose source text is ``text``."""
    for step, st in states(src, backend):
        if step.text == text:
            return st
    raise AssertionError(f"no step {text!r}")


def assert_checks_hold(r) -> None:
    bad = [(c.assertion.text, c.values) for c in r.checks if not c.holds]
    assert not bad, f"scenario assertions failed: {bad}"


# --- looking at a result ---------------------------------------------------------------


def record(r, text: str, nth: int = 0):
    """The StepRecord of the step whose source text is ``text`` (its nth occurrence)."""
    hits = [rec for rec in r.steps if rec.step.text == text]
    assert len(hits) > nth, f"no step {text!r} (#{nth}); steps: {[rec.step.text for rec in r.steps]}"
    return hits[nth]


def outcome(r, text: str, nth: int = 0):
    return record(r, text, nth).outcome


def rule_events(r, rule: str, at: str | None = None, nth: int = 0) -> list:
    """Events of ``rule`` in the whole run, or in the step with text ``at``."""
    recs = [record(r, at, nth)] if at is not None else r.steps
    return [e for rec in recs for e in rec.events if e.rule == rule]


def the_event(r, rule: str, at: str, nth: int = 0):
    """The single event of ``rule`` in step ``at``."""
    evs = rule_events(r, rule, at, nth)
    assert len(evs) == 1, f"expected one `{rule}` event at {at!r}, got {[str(e) for e in evs]}"
    return evs[0]


def assert_decision(r, rule: str, at: str, value: bool, commit: str | None, nth: int = 0):
    """Rule ``rule`` fired in step ``at``, every time with this decision and commit
    (a rule may be asked again when the kernel retries, e.g. fork's copy after
    dropping the page-table lock); returns the first Event."""
    evs = rule_events(r, rule, at, nth)
    assert evs, f"no `{rule}` event at {at!r}; events: {[str(e) for rec in r.steps for e in rec.events]}"
    for e in evs:
        assert e.decision is value, f"{rule} at {at!r}: decision {e.decision}, expected {value} ({e.text})"
        assert e.commit == commit, f"{rule} at {at!r}: commit {e.commit}, expected {commit} ({e.text})"
    return evs[0]


def decisions(r, rule: str, at: str, nth: int = 0) -> list[tuple[bool, str | None]]:
    """(decision, commit) of each event of ``rule`` in step ``at``, in order."""
    return [(e.decision, e.commit) for e in rule_events(r, rule, at, nth)]


def mm(state: State, proc: str):
    m = state.mm(proc)
    assert m is not None, f"no process {proc}"
    return m


def pte(state: State, proc: str, mapping: str, idx: int = 0) -> Pte | None:
    vma = mm(state, proc).vma(mapping)
    assert vma is not None, f"{proc} has no mapping {mapping}"
    return vma.ptes[idx]


def pfn(state: State, proc: str, mapping: str, idx: int = 0) -> int:
    """The page frame a present PTE maps."""
    p = pte(state, proc, mapping, idx)
    assert p is not None and p.present, f"{proc}.{mapping}[{idx}] is not present: {p}"
    return p.page


def page(state: State, proc: str, mapping: str, idx: int = 0) -> Page:
    return state.pages[pfn(state, proc, mapping, idx)]


def handle_page(state: State, name: str) -> Page:
    h = state.handle(name)
    assert h is not None and h.live, f"handle {name} is not live: {h}"
    return state.pages[h.page]


def value(r, name: str):
    """The value bound by `as name`."""
    o = r.final.result(name)
    assert o is not None, f"nothing bound to {name}"
    return o.value


def live_pages(state: State) -> list[int]:
    return [i for i, p in enumerate(state.pages) if not p.zero and not p.freed]


# --- invariants -----------------------------------------------------------------------------
# One checker, cowdsl.semantics.invariants (also run after every micro-step in
# debug mode, COWDSL_DEBUG_INVARIANTS=1); these wrappers give its findings as
# "INVARIANT: message" strings.

from cowdsl.semantics import invariants as _inv  # noqa: E402

pin_refs = _inv.pin_refs
sibling_refs = _inv.sibling_refs


def invariant_violations(state: State, anon_exclusive: bool = True) -> list[str]:
    """What the state breaks of the 5.19+ invariants (reference §6.1) and of the
    counter bookkeeping.  The zero page is not refcounted or mapcounted."""
    return [f"{name}: {msg}" for name, msg in _inv.violations(state, anon_exclusive=anon_exclusive)]


def fresh_page_violations(before: State, after: State) -> list[str]:
    """I1: an anon page allocated by a step and mapped is exclusive."""
    return [f"{name}: {msg}" for name, msg in _inv.fresh_page_violations(before, after)]


def exact_refcount_violations(state: State) -> list[str]:
    """With its one transient reference counted (an lru_add batch's), the model's
    refcount should equal the references it holds exactly: a surplus is a leak
    that would turn a reuse into a copy."""
    return _inv.exact_refcount_violations(state)
