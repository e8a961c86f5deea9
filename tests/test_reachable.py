"""`reachable: EXPR` (EF over every state reached) and assertions scoped to backends."""

from __future__ import annotations

import pytest

from cowdsl import scenario as S
from cowdsl.judge.quantify import NOT_JUDGED, decide, on_every_state
from cowdsl.load import load_text
from cowdsl.run import run

SEQUENTIAL = """\
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
A: write(buf, 2)
reachable: A.buf == 1
reachable A.buf == 5
sometimes: A.buf == 1
invariant not (A.buf == 5)
"""

# T pins while A forks; the child's page is shared (not yet copied) only in
# states between the fork and A's write, never in the final one.
RACE = """\
process A
thread T of A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
par {
  T: write(buf, 3)
  A: fork() as B
}
A: write(buf, 2)
reachable: B.buf == 1
reachable: B.buf == 3
never: B.buf == 2
"""


def test_decide_reachable_is_a_witness_quantifier():
    assert decide(S.REACHABLE, [False, True, False]).holds is True
    assert decide(S.REACHABLE, [False, False]).holds is False
    d = decide(S.REACHABLE, [True], complete=False)
    assert (d.holds, d.shows, d.want) == (True, "witness", True)  # one witness decides it, even in a bounded run
    assert decide(S.REACHABLE, [False], complete=False).holds is None
    assert on_every_state(S.REACHABLE) and on_every_state(S.INVARIANT) and not on_every_state(S.SOMETIMES)


def test_reachable_counts_every_intermediate_state_of_a_sequential_scenario():
    sc = load_text(SEQUENTIAL, "x.cow")
    assert [a.quantifier for a in sc.assertions] == [S.REACHABLE, S.REACHABLE, S.SOMETIMES, S.INVARIANT]
    r = run(sc, "anon-exclusive")
    assert [c.holds for c in r.checks] == [True, False, False, True]
    # the witness of `reachable: A.buf == 1` stops after the first write
    w = r.checks[0].witness
    assert w is not None and [t.actor for t in w] == ["A", "A"]


def test_reachable_over_a_race():
    r = run(load_text(RACE, "x.cow"), "anon-exclusive")
    assert [c.holds for c in r.checks] == [True, True, True]


def test_a_reachable_witnessed_stops_the_search():
    src = RACE.replace("reachable: B.buf == 3\nnever: B.buf == 2\n", "")
    r = run(load_text(src, "x.cow"), "anon-exclusive")
    assert r.checks[0].holds is True
    assert r.exploration.stopped  # decided before every state was visited
    full = run(load_text(src, "x.cow"), "anon-exclusive", all_states=True)
    assert full.checks[0].holds is True and r.exploration.states < full.exploration.states


SCOPED = """\
process A
A: mmap(buf, anon, private, rw)
A: fork() as B
A: pin(buf, write, longterm) as mr
A: write(buf, 2)
assert on anon-exclusive, 6.1: mr is A.buf
sometimes on mapcount: mr is A.buf
assert A.buf == 2
"""


def test_a_scoped_assertion_is_judged_on_its_backends_only():
    sc = load_text(SCOPED, "x.cow")
    assert sc.assertions[0].scope_text == "anon-exclusive, 6.1"
    assert {s.name for s in sc.assertions[1].scope} == {"mapcount"}
    on_ae = run(sc, "anon-exclusive")
    assert [c.holds for c in on_ae.checks] == [True, None, True]
    assert on_ae.checks[1].values == {NOT_JUDGED: "only on mapcount"}
    assert on_ae.scenario is sc and on_ae.verdict == "pass"
    on_mc = run(sc, "mapcount")
    assert on_mc.checks[0].holds is None and on_mc.checks[0].values == {NOT_JUDGED: "only on anon-exclusive, 6.1"}
    assert on_mc.checks[2].holds is True


def test_a_version_range_scope_judges_every_model_it_spans():
    sc = load_text(SCOPED.replace("anon-exclusive, 6.1", "5.10..5.15"), "x.cow")
    spans = {s.name.split(":")[0] for s in sc.assertions[0].scope}
    assert "early-cow" in spans and "anon-exclusive" not in spans
    assert run(sc, "5.10").checks[0].holds is not None
    assert run(sc, "6.6").checks[0].holds is None


def test_the_text_report_says_not_judged(capsys, tmp_path):
    from cowdsl.cli import main

    f = tmp_path / "x.cow"
    f.write_text(SCOPED)
    main(["run", "-j", "1", "-v", str(f)])
    out = capsys.readouterr().out
    assert "line 7: assert mr is A.buf  (not judged on this backend: only on mapcount)" in out


@pytest.mark.parametrize("source, message, where, expected, hint", [
    pytest.param("process A\nassert on anon-exclusiv: true\n", "unknown backend `anon-exclusiv`", (2, 11, 13),
                 "a backend (see `cowdsl backends`)", "did you mean `anon-exclusive`?", id="unknown_backend"),
])
def test_scope_errors(load_error, rendered, source, message, where, expected, hint):
    r = rendered(load_error(source))
    line, col, width = where
    assert (r["line"], r["col"], r["message"], r["width"]) == (line, col, message, width)
    assert (r["expected"], r["hint"]) == (expected, hint)


def test_the_assertion_text_leaves_out_the_scope():
    sc = load_text("process A\nassert on early-cow:wp_seq=off, 5.10: true\nreachable on 6.1 : true\n", "x.cow")
    assert [a.text for a in sc.assertions] == ["true", "true"]
    assert sc.assertions[0].scope_text == "early-cow:wp_seq=off, 5.10"


def test_fmt_lays_out_scopes_and_reachable():
    from cowdsl.fmt import format_text

    src = ("process A\nassert  on anon-exclusive ,early-cow:wp_seq=off :A.buf==1\nsometimes on 5.10..6.1: true\n"
           "reachable:A.buf == 1\nreachable on mapcount : true\n")
    out = format_text(src)
    assert out == ("process A\nassert on anon-exclusive, early-cow:wp_seq=off: A.buf == 1\nsometimes on 5.10..6.1: true\n"
                   "reachable: A.buf == 1\nreachable on mapcount: true\n")
    assert format_text(out) == out
