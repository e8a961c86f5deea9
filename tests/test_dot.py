"""`cowdsl run --dot`: DOT of the final state and of the counterexample trace, and
rendering with Graphviz (skipped with a reason when `dot` is missing, unless
COWDSL_REQUIRE_DOT=1, as .ci/run sets, makes that a failure)."""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET

import pytest
from examples import FAILING, RACE

from cowdsl.cli import main
from cowdsl.load import load_text
from cowdsl.report import dot
from cowdsl.run import run

PINNED = """\
scenario "a pin survives fork"
process A
A: mmap(buf, anon, private, rw, pages=2)
A: write(buf, 1)
A: write(buf[1], 5)
A: pin(buf, write, longterm) as mr
A: fork() as B
assert mr is A.buf
assert B.buf[1] == 5
expect pass on anon-exclusive
"""


def _balanced(text: str) -> bool:
    return text.count("{") == text.count("}") and text.strip().endswith("}")


def _node(text: str, name: str) -> str:
    m = re.search(r'^\s*"' + re.escape(name) + r'" \[(.*)\];$', text, re.M)
    assert m, f"no node {name}"
    return m.group(1)


def test_state_graph_processes_ptes_pages_pins():
    r = run(load_text(PINNED, "pinned.cow"), "anon-exclusive")
    text = dot.state_dot(r.final, "t")
    assert text.startswith('digraph "state" {') and _balanced(text)
    assert 'subgraph "cluster_mm_A"' in text and 'subgraph "cluster_mm_B"' in text
    # processes → page-table entries → pages
    assert '"mm:A" -> "pte:A:buf:0"' in text and '"mm:B" -> "pte:B:buf:1"' in text
    pinned_page = int(re.search(r'"pte:A:buf:0" -> "page:(\d+)"', text).group(1))
    shared_page = int(re.search(r'"pte:A:buf:1" -> "page:(\d+)"', text).group(1))
    assert f'"pte:B:buf:1" -> "page:{shared_page}"' in text  # fork shares the untouched page
    # pages ← pins
    assert f'"page:{pinned_page}" -> "handle:mr" [dir=back' in text
    # colour: the pinned page has the red border, exclusive fill; the shared page the shared fill
    pinned = _node(text, f"page:{pinned_page}")
    assert "penwidth=3" in pinned and dot._COLOURS["pinned"] in pinned
    assert dot._COLOURS["exclusive"] in pinned
    shared = _node(text, f"page:{shared_page}")
    assert dot._COLOURS["shared"] in shared and "penwidth" not in shared
    assert "FOLL_PIN|FOLL_WRITE|FOLL_LONGTERM" in _node(text, "handle:mr")


def test_trace_graph_is_a_chain_with_rules_and_the_failed_assertion():
    r = run(load_text(FAILING, "failing.cow"), "anon-exclusive")
    text = dot.trace_dot(r)
    assert text.startswith('digraph "trace" {') and _balanced(text)
    n = len(r.steps)
    for i in range(1, n):
        assert f"step{i} -> step{i + 1};" in text
    assert f"step{n} -> verdict;" in text
    rules = {e.rule for rec in r.steps for e in rec.events if e.rule and not e.minor}
    assert rules and all(f"rule {rule}" in text for rule in rules)
    assert "No  line 8: assert A.buf == 2" in text
    assert dot.has_counterexample(r)


def test_labels_are_escaped():
    assert dot.q('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'
    assert dot._html_lines([("b", "a < b & c")]) == '<<B>a &lt; b &amp; c</B><BR ALIGN="LEFT"/>>'


def test_cli_dot_directory_and_file(tmp_path, capsys):
    good, bad = tmp_path / "pinned.cow", tmp_path / "failing.cow"
    good.write_text(PINNED)
    bad.write_text(FAILING)
    out = tmp_path / "graphs"
    assert main(["run", "--dot", str(out), str(good), str(bad)]) == 1  # the failing one is not as expected
    names = sorted(p.name for p in out.iterdir())
    assert names == ["failing.anon-exclusive.state.dot", "failing.anon-exclusive.trace.dot",
                     "pinned.anon-exclusive.state.dot"]  # a trace for the counterexample only
    assert "wrote 3 graphs" in capsys.readouterr().err
    one = tmp_path / "one.dot"
    assert main(["run", "--dot", str(one), str(bad)]) == 1
    assert one.read_text().startswith('digraph "state"')
    assert (tmp_path / "one.trace.dot").read_text().startswith('digraph "trace"')
    # one file cannot hold two runs
    assert main(["run", "--dot", str(tmp_path / "two.dot"), str(good), str(bad)]) == 2
    assert "give a directory" in capsys.readouterr().err


def _require_dot():
    if shutil.which("dot") is None:
        if os.environ.get("COWDSL_REQUIRE_DOT") == "1":
            pytest.fail("COWDSL_REQUIRE_DOT=1 but Graphviz's `dot` is not installed")
        pytest.skip("Graphviz's `dot` is not installed (Debian: apt-get install graphviz; .ci/run installs it)")


def test_render_png_and_svg(tmp_path, capsys):
    _require_dot()
    f = tmp_path / "failing.cow"
    f.write_text(FAILING)
    png = tmp_path / "state.png"
    assert main(["run", "--dot", str(png), str(f)]) == 1
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (tmp_path / "state.trace.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "svg"
    assert main(["run", "--dot", str(out), "--dot-format", "svg", str(f)]) == 1
    for p in out.iterdir():
        root = ET.parse(p).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg", p
    capsys.readouterr()


def test_render_without_dot_writes_dot_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dot, "dot_binary", lambda: None)
    f = tmp_path / "failing.cow"
    f.write_text(FAILING)
    assert main(["run", "--dot", str(tmp_path / "x.svg"), str(f)]) == 2
    err = capsys.readouterr().err
    assert "needs Graphviz's `dot`" in err and "apt-get install graphviz" in err
    assert (tmp_path / "x.dot").read_text().startswith("digraph")


def test_trace_graph_of_a_concurrent_counterexample():
    r = run(load_text(RACE, "race.cow"), "anon-exclusive")
    assert dot.has_counterexample(r)
    text = dot.trace_dot(r)
    assert _balanced(text)
    assert "counterexample for line 9: assert A.buf == 1" in text and "schedule: " in text
    # the mmap before the race is folded into one node; each racing actor has its lane
    assert 'subgraph "cluster_lane_A"' in text and 'subgraph "cluster_lane_T"' in text
    assert "before: A mmap buf" in text and "execution -> before1;" in text
    micro = re.findall(r"^\s*(micro\d+) \[", text, re.M)
    assert len(micro) >= 2 and all(f"{m} -> verdict;" in text or f"{m} -> " in text for m in micro)
    assert "line 7: T: write(buf, 2)" in text


# S12's slow-path cousin: T's pin_user_pages() waits on mmap_lock while A forks.
SLOW_PIN = """\
scenario "slow pin waits for fork"
process A
thread T of A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
par {
  T: pin(buf, write) as mr
  A: fork() as B
}
A: write(buf, 2)
always: mr is A.buf
"""


def test_trace_graph_lanes_and_lock_hand_off():
    """fork takes mmap_lock first; the slow-path pin blocks, and resumes after
    fork's unlock: a red edge from the unlock in A's lane to T's first node."""
    r = run(load_text(SLOW_PIN, "slow.cow"), "refcount", schedule=["A", "A", "A"])
    text = dot.trace_dot(r)
    assert _balanced(text)
    lanes = re.findall(r'subgraph "cluster_lane_(\w+)" \{\n\s*label="([^"]*)"', text)
    assert lanes == [("A", "CPU0 (A: fork)"), ("T", "CPU1 (T: pin)")]
    unlock = next(n for n, label in re.findall(r"^\s*(micro\d+) \[label=(.*)\];$", text, re.M)
                  if "mmap_write_unlock" in label)
    first_t = re.search(r'cluster_lane_T.*?\n\s*(micro\d+) \[', text, re.S).group(1)
    assert re.search(rf"{unlock} -> {first_t} \[[^]]*lock hand-off", text)
    assert "waited: mmap_lock of A is held" in text
    # without a lock in the way there is no hand-off edge
    assert "hand-off" not in dot.trace_dot(run(load_text(RACE, "race.cow"), "anon-exclusive"))


def test_state_graph_of_a_race_draws_the_counterexample_final_state(tmp_path):
    """Several final states: --dot draws the one the counterexample ends in (it
    used to say there was no model state)."""
    f = tmp_path / "race.cow"
    f.write_text(RACE)
    r = run(load_text(RACE, str(f)), "anon-exclusive")
    assert r.final is None and len(r.exploration.finals) == 2
    [(state_path, state), (trace_path, _)] = dot.outputs([r], str(tmp_path / "out"))
    assert state_path.name == "race.anon-exclusive.state.dot" and trace_path.name.endswith(".trace.dot")
    assert "no model state" not in state
    assert "final state of the counterexample for line 9" in state
    assert '"pte:A:buf:0" -> "page:' in state
    final, what = dot.shown_final_state(r)
    value = final.pages[final.mms[0].vmas[0].ptes[0].page].data
    assert value == 2 and f"value {value}" in state  # the counterexample: T's write last
