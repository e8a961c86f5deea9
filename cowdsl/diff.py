"""Where two backends part ways on one scenario: the first step whose rule
decisions differ, and the rule that decided differently."""

from __future__ import annotations

from attrs import frozen

from cowdsl.explore import search
from cowdsl.explore.model import Model
from cowdsl.judge import Result
from cowdsl.kernel import timeline
from cowdsl.kernel.spec import KernelSpec
from cowdsl.run import run
from cowdsl.scenario import Scenario
from cowdsl.semantics import registry


@frozen
class Divergence:
    step: int  # 1-based step number, 0 when the traces never differ
    rule: str | None  # the decision method that answered differently
    left: str  # what each side did at that step
    right: str
    schedule: str = ""  # for races: the interleaving replayed on both sides


def _decisions(rec):
    return [(e.rule, e.decision, e.text) for e in rec.events if e.rule is not None]


def first_divergence(a: Result, b: Result) -> Divergence:
    """The first step where a rule decided differently; failing that, the first
    step whose effects differ."""
    for ra, rb in zip(a.steps, b.steps):
        da, db = _decisions(ra), _decisions(rb)
        for (rule_a, dec_a, text_a), (rule_b, dec_b, text_b) in zip(da, db):
            if rule_a != rule_b or dec_a != dec_b:
                return Divergence(ra.step.number, rule_a if rule_a == rule_b else f"{rule_a} / {rule_b}", text_a, text_b)
        if len(da) != len(db):
            extra = (da[len(db):] or db[len(da):])[0]
            return Divergence(ra.step.number, extra[0], _texts(da[len(db):]), _texts(db[len(da):]))
    for ra, rb in zip(a.steps, b.steps):
        ta, tb = _texts_of(ra), _texts_of(rb)
        if ta != tb:
            return Divergence(ra.step.number, None, ta, tb)
    return Divergence(0, None, "", "")


def _replay(sc: Scenario, r: Result, schedule: list[str]) -> tuple[tuple, str]:
    """The longest prefix of ``schedule`` that ``r``'s backend can follow,
    replayed; and why it stops early ("" when it follows it all)."""
    model = Model(sc, registry.get(r.spec))
    for n in range(len(schedule), 0, -1):
        try:
            path, _ = search.follow(model, schedule[:n])
        except ValueError as e:
            stuck = str(e)
            continue
        return tuple(search.replay(model, path)), "" if n == len(schedule) else stuck
    return (), f"`{schedule[0]}` cannot run first"


def _texts(decisions) -> str:
    return "; ".join(t for _, _, t in decisions) or "(no such decision)"


def _texts_of(rec) -> str:
    return "; ".join(str(e) for e in rec.events if not e.minor)


def diff(sc: Scenario, left: KernelSpec, right: KernelSpec) -> tuple[Result, Result, Divergence]:
    a, b = run(sc, left), run(sc, right)
    if a.exploration is not None or b.exploration is not None:
        return a, b, race_divergence(sc, a, b)
    return a, b, first_divergence(a, b)


def race_divergence(sc: Scenario, a: Result, b: Result) -> Divergence:
    """For explored runs: take the execution one side shows for an assertion the
    two judge differently, replay its schedule on the other side, and find the
    first micro-step whose rule decisions differ."""
    for ca, cb in zip(a.checks, b.checks):
        if ca.holds == cb.holds:
            continue
        shown, other = (ca, b) if ca.witness else (cb, a)
        if not shown.witness:
            continue
        schedule = [t.actor for t in shown.witness]
        theirs, stuck = _replay(sc, other, schedule)
        mine = shown.witness
        left, right = (mine, theirs) if shown is ca else (theirs, mine)
        for n, (ta, tb) in enumerate(zip(left, right), 1):
            da, db = _decisions(ta), _decisions(tb)
            if da != db or ta.label != tb.label:
                rule = next((x[0] for x, y in zip(da, db) if x != y), None) or (da or db or [(None,)])[0][0]
                return Divergence(ta.step, rule, f"micro-step {n} ({ta.actor} {ta.label}): {_texts(da)}",
                                  f"micro-step {n} ({tb.actor} {tb.label}): {_texts(db)}",
                                  schedule=",".join(schedule))
        if stuck:
            n = len(theirs) + 1
            t = mine[len(theirs)]
            said = f"micro-step {n} ({t.actor} {t.label}): {_texts(_decisions(t)) if _decisions(t) else 'runs'}"
            return Divergence(t.step, None, *((said, stuck) if shown is ca else (stuck, said)),
                              schedule=",".join(schedule))
        return Divergence(0, None, "", "", schedule=",".join(schedule))
    return Divergence(0, None, "", "")


def text(a: Result, b: Result, d: Divergence) -> str:
    la, lb = _side(a), _side(b)
    out = [f"{a.scenario.name}: {a.spec.label} vs {b.spec.label}"]
    out += _changes(a, b)
    if a.exploration is not None or b.exploration is not None:
        fa = len(a.exploration.finals) if a.exploration is not None else 0
        fb = len(b.exploration.finals) if b.exploration is not None else 0
        out.append(f"  final states: {la} {fa}, {lb} {fb}")
        if d.schedule:
            out.append(f"  the execution one allows and the other refutes: --schedule {d.schedule}")
        if d.step:
            out.append(f"  its replay first diverges at step {d.step}" + (f", rule {d.rule}" if d.rule else ""))
            out.append(f"  {la}: {d.left}")
            out.append(f"  {lb}: {d.right}")
        elif a.verdict == b.verdict:
            out.append("  the same verdicts")
    elif d.step == 0:
        out.append("  the traces are the same")
    else:
        step = a.steps[d.step - 1].step
        out.append(f"  first divergence at step {d.step}, line {step.span.line}: {step.text}")
        if d.rule:
            out.append(f"  rule: {d.rule}")
        out.append(f"  {la}: {d.left}")
        out.append(f"  {lb}: {d.right}")
    for ca, cb in zip(a.checks, b.checks):
        if ca.holds != cb.holds:
            out.append(f"  assert {ca.assertion.text}: {la} {_yes(ca.holds)}, {lb} {_yes(cb.holds)}")
    out.append(f"  verdict: {la} {a.verdict}, {lb} {b.verdict}")
    return "\n".join(out)


def _side(r: Result) -> str:
    """How one side is named in the lines below the header: its version, or its spec."""
    return str(r.spec.version) if r.spec.version is not None else r.backend


def _yes(h) -> str:
    return "skip" if h is None else ("holds" if h else "fails")


def _changes(a: Result, b: Result) -> list[str]:
    """Between two versions: the changes one has and the other lacks."""
    va, vb = a.spec.version, b.spec.version
    if va is None or vb is None:
        return []
    gained, lost = timeline.between(va, vb)
    out = []
    for c in gained:
        out.append(f"  {vb} has, {va} lacks: {c.commit} {c.title}" + ("" if c.modelled else " (not modelled)"))
    for c in lost:
        out.append(f"  {va} has, {vb} lacks: {c.commit} {c.title}" + ("" if c.modelled else " (not modelled)"))
    return out
