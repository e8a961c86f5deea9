"""Where two backends part ways on one scenario: the first step whose rule
decisions differ, and the rule that decided differently."""

from __future__ import annotations

from attrs import frozen

from cowdsl.judge import Result
from cowdsl.kernel.spec import KernelSpec
from cowdsl.run import run
from cowdsl.scenario import Scenario


@frozen
class Divergence:
    step: int  # 1-based step number, 0 when the traces never differ
    rule: str | None  # the decision method that answered differently
    left: str  # what each side did at that step
    right: str


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


def _texts(decisions) -> str:
    return "; ".join(t for _, _, t in decisions) or "(no such decision)"


def _texts_of(rec) -> str:
    return "; ".join(str(e) for e in rec.events if not e.minor)


def diff(sc: Scenario, left: KernelSpec, right: KernelSpec) -> tuple[Result, Result, Divergence]:
    a, b = run(sc, left), run(sc, right)
    return a, b, first_divergence(a, b)


def text(a: Result, b: Result, d: Divergence) -> str:
    out = [f"{a.scenario.name}: {a.backend} vs {b.backend}"]
    if d.step == 0:
        out.append("  the traces are the same")
    else:
        step = a.steps[d.step - 1].step
        out.append(f"  first divergence at step {d.step}, line {step.span.line}: {step.text}")
        if d.rule:
            out.append(f"  rule: {d.rule}")
        out.append(f"  {a.backend}: {d.left}")
        out.append(f"  {b.backend}: {d.right}")
    for ca, cb in zip(a.checks, b.checks):
        if ca.holds != cb.holds:
            out.append(f"  assert {ca.assertion.text}: {a.backend} {_yes(ca.holds)}, {b.backend} {_yes(cb.holds)}")
    out.append(f"  verdict: {a.backend} {a.verdict}, {b.backend} {b.verdict}")
    return "\n".join(out)


def _yes(h) -> str:
    return "skip" if h is None else ("holds" if h else "fails")
