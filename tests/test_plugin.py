"""The pytest plugin (cowdsl.pytest_plugin), run in pytester's sandboxes.

Each inner run says ``-p no:cowdsl -p cowdsl.pytest_plugin`` so that the plugin
is loaded once whether or not this cowdsl is installed with its entry point.
"""

from __future__ import annotations

from importlib import metadata

import pytest
from examples import BROKEN, FAILING, PIN_SURVIVES_FORK, RACE

pytest_plugins = ["pytester"]

# Other installed plugins are turned off: the inner runs stay fast (hypothesis and
# pytest-benchmark cost most of a second each time).
PLUGIN = ("-p", "no:cowdsl", "-p", "cowdsl.pytest_plugin", "-p", "no:hypothesispytest", "-p", "no:benchmark",
          "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")

TWO_BACKENDS = PIN_SURVIVES_FORK + "expect pass on anon-exclusive, 6.18\nexpect fail on mapcount\n"

NO_EXPECT = """\
scenario "no expect line"
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 7)
assert A.buf == 7
"""

FAILING_EXPECTED_TO_PASS = FAILING + "expect pass on anon-exclusive\n"

NATIVE = """\
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
assert A.buf == 1
expect pass on anon-exclusive, native
"""


def run(pytester, *args):
    return pytester.runpytest(*PLUGIN, *args)


def cow_output(pytester, outcomes: dict, **files) -> str:
    """The output of ``--cow`` on ``files``, which end with ``outcomes`` and show no traceback."""
    pytester.makefile(".cow", **files)
    result = run(pytester, "--cow")
    result.assert_outcomes(**outcomes)
    out = result.stdout.str()
    assert "Traceback" not in out
    return out


def test_nothing_is_collected_without_opting_in(pytester):
    pytester.makefile(".cow", ok=NO_EXPECT)
    result = run(pytester)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.no_fnmatch_line("*ok.cow*")


def test_one_item_per_backend_in_the_expect_lines(pytester):
    pytester.makefile(".cow", two=TWO_BACKENDS, plain=NO_EXPECT)
    result = run(pytester, "--cow", "-v")
    result.assert_outcomes(passed=3)
    # 6.18 is the release anon-exclusive stands for: one item, not two
    result.stdout.fnmatch_lines(["*plain.cow::anon-exclusive PASSED*", "*two.cow::anon-exclusive PASSED*",
                                 "*two.cow::mapcount PASSED*"])
    result.stdout.no_fnmatch_line("*two.cow::6.18*")


def test_failure_shows_assertion_verdict_and_trace_not_a_traceback(pytester):
    out = cow_output(pytester, {"failed": 1}, bad=FAILING_EXPECTED_TO_PASS)
    assert "on anon-exclusive: got fail; expected pass" in out
    assert "line 8: assert A.buf == 2" in out  # the failing assertion
    assert "Test a failing assertion on anon-exclusive" in out  # the verdict block
    assert "Counterexample:" in out and "Trace of a failing assertion" in out
    assert "def runtest" not in out and "pytest_plugin.py" not in out


def test_concurrent_failure_shows_the_counterexample(pytester):
    out = cow_output(pytester, {"failed": 1}, race=RACE)
    assert "line 9: assert A.buf == 1" in out and "Counterexample for line 9" in out


def test_a_file_that_does_not_parse_is_a_collection_error(pytester):
    out = cow_output(pytester, {"errors": 1}, broken=BROKEN)
    assert "unknown flag `longtem` for `pin`" in out and "did you mean `longterm`?" in out


def test_ini_option_true_and_directories(pytester):
    pytester.mkdir("scen")
    pytester.mkdir("other")
    (pytester.path / "scen" / "a.cow").write_text(NO_EXPECT)
    (pytester.path / "other" / "b.cow").write_text(NO_EXPECT)
    pytester.makeini("[pytest]\ncow_scenarios = scen\n")
    result = run(pytester, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*scen/a.cow::anon-exclusive PASSED*"])
    pytester.makeini("[pytest]\ncow_scenarios = true\n")
    run(pytester).assert_outcomes(passed=2)
    pytester.makeini("[pytest]\ncow_scenarios = false\n")
    assert run(pytester).ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_native_is_skipped_unless_asked(pytester):
    pytester.makefile(".cow", n=NATIVE)
    result = run(pytester, "--cow", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*give --cow-native to run it*"])
    collected = run(pytester, "--cow", "--cow-native", "--collect-only", "-q")
    collected.stdout.fnmatch_lines(["*n.cow::anon-exclusive", "*n.cow::native"])


def test_items_are_marked_and_selectable(pytester):
    pytester.makefile(".cow", two=TWO_BACKENDS)
    pytester.makepyfile(test_x="def test_python(): pass")
    result = run(pytester, "--cow", "-m", "cow", "-k", "mapcount")
    result.assert_outcomes(passed=1, deselected=2)


def test_entry_point_is_declared():
    try:
        eps = metadata.distribution("cowdsl").entry_points
    except metadata.PackageNotFoundError:
        pytest.skip("cowdsl is not installed as a distribution")
    names = {(ep.group, ep.name): ep.value for ep in eps}
    if ("pytest11", "cowdsl") not in names:
        pytest.skip("this install predates the pytest11 entry point (reinstall: pip install -e .)")
    assert names[("pytest11", "cowdsl")] == "cowdsl.pytest_plugin"
