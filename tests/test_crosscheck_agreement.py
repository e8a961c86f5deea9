"""``cowdsl.crosscheck.agreement``: when the kernel's runs agree with a model's verdict.

The one rule for crosscheck's rows and for the recorded tables' test.  A model that
explored several executions (a `par` block) is contradicted only by what the runs
showed; what it allows and the runs did not show is "unwitnessed", never "agree".  A
model that ran one execution (a sequential scenario) must match every decided run,
as crosscheck always required.
"""

from __future__ import annotations

import pytest

from cowdsl.crosscheck import AGREE, DISAGREE, SKIP, UNWITNESSED, agreement
from cowdsl.scenario import ALWAYS, INVARIANT, NEVER, SOMETIMES

HELD, BROKEN = [True] * 20, [True] * 7 + [False] + [True] * 12  # each run's answer: the check held, or not


@pytest.mark.parametrize("quantifier", [ALWAYS, NEVER])
@pytest.mark.parametrize("model, runs, status", [
    (True, BROKEN, DISAGREE),  # the model says it holds in every execution; a run broke it
    (False, HELD, UNWITNESSED),  # the model says some execution breaks it; none of the 20 did
    (True, HELD, AGREE),
    (False, BROKEN, AGREE),  # the model's failing execution, seen
])
def test_always_and_never_on_an_explored_model(quantifier, model, runs, status):
    assert agreement(quantifier, model, runs, model_one_execution=False) == status


@pytest.mark.parametrize("model, runs, status", [
    (False, [False] * 5 + [True] + [False] * 14, DISAGREE),  # no execution does it, says the model; one run did
    (True, [False] * 20, UNWITNESSED),  # some execution does it, says the model; no run did
    (True, [False, True, True], AGREE),
    (False, [False] * 20, AGREE),
])
def test_sometimes_on_an_explored_model(model, runs, status):
    assert agreement(SOMETIMES, model, runs, model_one_execution=False) == status


@pytest.mark.parametrize("quantifier", [ALWAYS, NEVER, SOMETIMES])
@pytest.mark.parametrize("model, runs, status", [
    (True, [True], AGREE),
    (False, [False], AGREE),
    (True, [False], DISAGREE),
    (False, [True], DISAGREE),  # one deterministic execution: not "unwitnessed", a disagreement as always
    (True, [True, False, True], DISAGREE),  # the kernel answered both ways where the model has one answer
    (False, [True, False], DISAGREE),
])
def test_a_model_of_one_execution_must_match_every_run(quantifier, model, runs, status):
    assert agreement(quantifier, model, runs, model_one_execution=True) == status


@pytest.mark.parametrize("model, runs", [(None, [True]), (True, [None, None]), (False, [])])
def test_nothing_decided_on_one_side_is_a_skip(model, runs):
    for single in (True, False):
        assert agreement(ALWAYS, model, runs, model_one_execution=single) == SKIP


def test_undecided_runs_are_left_out():
    assert agreement(ALWAYS, True, [None, True, None], model_one_execution=False) == AGREE
    assert agreement(SOMETIMES, True, [None, True], model_one_execution=True) == AGREE


def test_a_quantifier_over_every_state_keeps_the_plain_rule():
    assert agreement(INVARIANT, True, [True], model_one_execution=False) == AGREE
    assert agreement(INVARIANT, False, [True], model_one_execution=False) == DISAGREE


def test_an_unwitnessed_row_is_counted_and_shown_apart(monkeypatch):
    """The report counts it in a column of its own and lists it, with what the runs saw;
    it is not a disagreement (exit 0)."""
    import io

    from cowdsl.crosscheck import Report, render

    row = {"file": "r.cow", "line": 12, "assertion": "A.x == 2", "quantifier": "always", "model": False,
           "native": [True] * 20, "native_reason": "", "status": UNWITNESSED, "seen": "none in 20 runs",
           "reason": "the model says it fails in some execution; native: none in 20 runs"}
    report = Report(model="6.1.176 (anon-exclusive)", host="host", kernel={}, loaded=1, rows=[row])
    out = io.StringIO()
    render(report, out)
    text = out.getvalue()
    assert "unwitnessed (none in 20 runs)" in text
    assert ("unwitnessed (not a disagreement; not an agreement either):\n"
            "  r.cow:12: assert A.x == 2: the model says it fails in some execution; native: none in 20 runs") in text
    assert text.splitlines()[-1].endswith("0 agree, 0 disagree, 1 unwitnessed, 0 skipped")
    assert report.exit_code == 0
    assert report.to_json()["summary"]["unwitnessed"] == 1
