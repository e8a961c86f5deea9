"""The command-line fuzzer (cowdsl.fuzz_outside): its oracle flags what a user
must never see, and a short seeded run of every class finds nothing."""

from __future__ import annotations

import random

import pytest

from cowdsl import fuzz_outside as F


def outcome(status=0, stdout="", stderr="", fmt="text", signal_after=None, leftovers=()):
    case = F.Case("names", "t", lambda d: [], fmt=fmt, signal_after=signal_after)
    return F.Outcome(case, status, 0.1, stdout, stderr, list(leftovers))


def test_the_oracle_accepts_a_clean_answer():
    assert F.judge(outcome(1, "Test x on anon-exclusive\nNo\n")) == []
    assert F.judge(outcome(130, "", "cowdsl: interrupted\n", signal_after=0.1)) == []


def test_a_signal_while_the_interpreter_starts_is_not_cowdsls():
    """Found by a run of `fuzz outside`: SIGINT 20 ms after the start, while Python
    imports its site module, before any line of cowdsl: the interpreter's own report."""
    start = ("Fatal Python error: init_import_site: Failed to import the site module\n"
             "Traceback (most recent call last):\n  ...\nKeyboardInterrupt\n")
    assert F.judge(outcome(1, "", start, signal_after=0.02)) == []
    assert any("traceback" in b for b in F.judge(outcome(1, "", start)))  # without a signal it is a finding


@pytest.mark.parametrize("o, finding", [
    (outcome(None), "a hang"),
    (outcome(-11 + 256), "exit status"),
    (outcome(130), "exit status"),  # a signal exit where no signal was sent
    (outcome(1, "", "Traceback (most recent call last):\n  ...\n"), "traceback"),
    (outcome(1, "Test x\x1b]0;t\x07 on anon-exclusive\n"), "raw U+0007, U+001B on stdout"),
    (outcome(1, "", "bad \u202e name\n"), "raw U+202E on stderr"),
    (outcome(1, "{not json", fmt="json"), "JSON not well-formed"),
    (outcome(1, "<testsuites><x\x0c/></testsuites>", fmt="junit"), "JUnit XML not well-formed"),
    (outcome(0, leftovers=["cowdsl-native-1234"]), "left behind"),
    (outcome(2, "", "MemoryError\n"), "MemoryError"),
])
def test_the_oracle_flags_what_a_user_must_never_see(o, finding):
    assert any(finding in b for b in F.judge(o)), F.judge(o)


@pytest.mark.parametrize("kind", F.CLASSES)
def test_each_class_makes_runnable_cases(kind, tmp_path):
    case = F.MAKERS[kind](random.Random(7))
    assert case.kind == kind
    d = tmp_path / "w"
    d.mkdir()
    argv = case.make(d)
    assert argv and argv[0] in ("run", "check")


@pytest.mark.parametrize("kind", F.CLASSES)
def test_a_short_seeded_run_finds_nothing(kind):
    findings = []
    counts = F.fuzz_outside(seconds=None, examples=3, seed=11, classes=(kind,), log=findings.append)
    assert counts["cases"] == {kind: 3}
    assert findings == []
