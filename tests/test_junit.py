"""`cowdsl run --format junit`: the XML's structure, counts, failures and errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from examples import BROKEN, FAILING, PIN_SURVIVES_FORK, RACE

from cowdsl.cli import main
from cowdsl.report import junit

PASSING = PIN_SURVIVES_FORK + "expect pass on anon-exclusive\n"


def _run(capsys, *argv) -> tuple[int, ET.Element]:
    """The exit status and the XML root, whose counts are checked."""
    code = main(["run", "--format", "junit", *argv])
    out = capsys.readouterr().out
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(out)
    _check_counts(root)
    return code, root


def _run_file(tmp_path, capsys, name: str, text: str, *argv) -> tuple[int, ET.Element]:
    """_run on ``text`` written to ``tmp_path/name``, after the options ``argv``."""
    f = tmp_path / name
    f.write_text(text)
    return _run(capsys, *argv, str(f))


def _check_counts(root: ET.Element) -> None:
    """Every count attribute agrees with the elements under it."""
    assert root.tag == "testsuites"
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        counts = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c.find("failure") is not None),
            "errors": sum(1 for c in cases if c.find("error") is not None),
            "skipped": sum(1 for c in cases if c.find("skipped") is not None),
        }
        for k, v in counts.items():
            assert int(suite.get(k)) == v, (suite.get("name"), k)
            total[k] += v
        float(suite.get("time"))
        for c in cases:
            assert c.get("classname") and c.get("name")
            float(c.get("time"))
    for k, v in total.items():
        assert int(root.get(k)) == v, k


def test_one_testcase_per_scenario_with_failures_and_errors(tmp_path, capsys):
    for name, text in (("passing", PASSING), ("failing", FAILING), ("broken", BROKEN)):
        (tmp_path / f"{name}.cow").write_text(text)
    code, root = _run(capsys, str(tmp_path))
    assert code == 2  # a file did not parse
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    ok = cases["a pin survives fork on anon-exclusive"]
    assert ok.find("failure") is None and ok.get("file").endswith("passing.cow")
    assert {p.get("name"): p.get("value") for p in ok.iter("property")} == {
        "backend": "anon-exclusive", "verdict": "pass", "expected": "pass"}
    bad = cases["a failing assertion on anon-exclusive"].find("failure")
    assert bad.get("type") == "NotAsExpected"
    assert "got fail" in bad.get("message")
    body = bad.text
    assert "line 8: assert A.buf == 2" in body  # the failing assertion
    assert "Test a failing assertion on anon-exclusive" in body  # the verdict block
    assert "Trace of a failing assertion" in body  # the counterexample
    assert "Final state" in body
    assert "Traceback" not in body
    err = next(c for c in root.iter("testcase") if c.find("error") is not None)
    assert err.get("file").endswith("broken.cow") and err.get("line") == "3"
    assert err.find("error").get("type") == "CowError"
    assert "unknown flag `longtem`" in err.find("error").text


def test_all_passing_exits_zero(tmp_path, capsys):
    code, root = _run_file(tmp_path, capsys, "passing.cow", PASSING)
    assert code == 0
    assert root.get("failures") == "0" and root.get("errors") == "0"
    assert [s.get("name") for s in root] == ["cowdsl on anon-exclusive"]


def test_era_matrix_one_testcase_per_scenario_and_backend(tmp_path, capsys):
    from cowdsl import matrix
    from cowdsl.load import load

    code, root = _run_file(tmp_path, capsys, "passing.cow", PASSING, "--backend", "all")
    backends = matrix.backends_for([load(tmp_path / "passing.cow")])
    cases = list(root.iter("testcase"))
    assert len(cases) == len(backends)
    assert {c.find("properties/property[@name='backend']").get("value") for c in cases} == {b.name for b in backends}
    # only a contradicted expect line is a failure in the matrix
    assert code == (1 if root.get("failures") != "0" else 0)


def test_unknown_backend_is_an_error(tmp_path, capsys):
    code, root = _run_file(tmp_path, capsys, "passing.cow", PASSING, "--backend", "no-such-era")
    assert code == 2
    assert root.get("errors") == "1"
    assert "no-such-era" in next(root.iter("error")).get("message")


def test_classname():
    assert junit.classname("scenarios/pin-fork/s5.cow") == "scenarios.pin-fork.s5"
    assert junit.classname("./x.cow") == "x"


def test_concurrent_failure_carries_the_counterexample(tmp_path, capsys):
    code, root = _run_file(tmp_path, capsys, "race.cow", RACE)
    assert code == 1
    body = next(root.iter("failure")).text
    assert "line 9: assert A.buf == 1" in body
    assert "Counterexample for line 9" in body and "schedule:" in body
