"""A scenario across the timeline, and diffs between versions and on races."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cowdsl import diff, timeline
from cowdsl.kernel.spec import resolve
from cowdsl.kernel.version import v
from cowdsl.load import load

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
S1 = SCENARIOS / "gup-leak" / "s1-vmsplice-child-leak.cow"
S12 = SCENARIOS / "races" / "s12-gup-fast-pin-vs-fork.cow"


@pytest.fixture(scope="module")
def s1_timeline():
    return timeline.build(load(S1))


def _verdict(t, version):
    return next(c.verdict for c in t.cells if c.version == v(version))


def test_s1_leaks_on_mainline_up_to_5_7_and_not_from_5_8(s1_timeline):
    runs = s1_timeline.runs()
    assert [(str(a.version), str(b.version), a.verdict) for a, b in runs] == [
        ("4.0", "5.7", "fail"), ("5.8", "6.18", "pass")]


def test_s1_does_not_leak_on_late_stable_kernels(s1_timeline):
    for version in ("4.19.222", "5.4.214", "4.19.189", "5.7.3", "4.4.289"):
        assert _verdict(s1_timeline, version) == "pass", version
    for version in ("4.19.188", "5.4.46", "5.7.2"):
        assert _verdict(s1_timeline, version) == "fail", version


def test_each_flip_is_named_by_the_change_that_decides_it(s1_timeline):
    flips = {(str(f.before.version), str(f.after.version)): f for f in s1_timeline.flips}
    assert [c.commit for c in flips[("5.7", "5.8")].deciding] == ["17839856fd58"]
    assert [c.commit for c in flips[("4.19.188", "4.19.189")].deciding] == ["17839856fd58"]
    text = timeline.text(s1_timeline)
    assert "decides: 17839856fd58" in text and "stable 4.4.289" in text and "4.19.y" in text


def test_timeline_json_and_dot(s1_timeline):
    doc = timeline.as_json(s1_timeline)
    assert {"version": "5.8", "spec": "gup-cow", "verdict": "pass"} in doc["cells"]
    assert {"from": "5.7", "to": "5.8", "verdicts": ["fail", "pass"], "deciding": ["17839856fd58"],
            "between": ["17839856fd58", "3917c80280c9"]} in doc["flips"]
    graph = timeline.dot(s1_timeline)
    assert graph.startswith("digraph timeline {") and "4.19.y" in graph
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg"], input=graph, text=True, check=True, capture_output=True)


def test_s12_timeline_shows_the_5_10_y_window():
    t = timeline.build(load(S12), versions=[v(x) for x in ("5.9", "5.10", "5.10.3", "5.10.4", "5.11", "5.18")])
    assert [c.verdict for c in t.cells] == ["fail", "fail", "fail", "pass", "pass", "pass"]
    (flip,) = [f for f in t.flips if f.after.version == v("5.10.4")]
    assert [c.commit for c in flip.deciding] == ["57efa1fe5957"]


def test_diff_between_versions_names_the_changes():
    a, b, d = diff.diff(load(S1), resolve("5.4.46"), resolve("5.4.47"))
    out = diff.text(a, b, d)
    assert "5.4.47 has, 5.4.46 lacks: 17839856fd58" in out
    assert d.rule == "gup_break_cow" and "verdict: 5.4.46 fail, 5.4.47 pass" in out


def test_diff_on_a_race_compares_verdicts_and_replays_the_witness():
    # Regression: diff said "the traces are the same" on a par file whose verdicts differ.
    a, b, d = diff.diff(load(S12), resolve("early-cow"), resolve("early-cow:wp_seq=off"))
    out = diff.text(a, b, d)
    assert "the traces are the same" not in out
    assert d.schedule and d.rule == "has_write_protect_seq"
    assert "verdict: early-cow pass, early-cow:wp_seq=off fail" in out


def test_every_command_json_validates_against_the_schema(tmp_path, capsys):
    """run (one backend, the matrix, an error) and timeline, through the CLI."""
    import json

    import jsonschema

    from cowdsl.cli import main

    schema = json.loads((SCENARIOS.parent / "docs" / "json-schema.json").read_text())
    for argv in (["run", "-f", "json", str(S1)], ["run", "-f", "json", "-b", "all", str(S1)],
                 ["run", "-f", "json", "-b", "nope", str(S1)],
                 ["timeline", "-f", "json", "--versions", "5.7..5.8", str(S1)]):
        main(argv)
        doc = json.loads(capsys.readouterr().out)
        jsonschema.validate(doc, schema)
        assert doc["format_version"] == 1, argv


def test_device_exclusive_rework_flips_at_6_15():
    """The devexcl-rework change carries devexcl=rework from 6.15-rc1; reclaim of a
    device-exclusive page flips there (6.14.0 vs 6.18.2 mm/rmap.c)."""
    from cowdsl.kernel.timeline import settings

    assert settings(v("6.14"))["devexcl"] == "range" and settings(v("6.15-rc1"))["devexcl"] == "rework"
    t = timeline.build(load(SCENARIOS / "device-exclusive" / "swapout-device-exclusive.cow"),
                       versions=[v(x) for x in ("5.14", "6.14", "6.15", "6.18")])
    assert [c.verdict for c in t.cells] == ["fail", "fail", "pass", "pass"]
    (flip,) = t.flips
    assert [c.key for c in flip.deciding] == ["devexcl-rework"]
