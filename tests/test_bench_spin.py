"""benchmarks/explore.py --vs-spin: the Promela model and the generated .cow
scenarios are well-formed and answer the question they encode, on the smallest
sizes; a disagreement between the tools is reported, never hidden."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from cowdsl.load import load_text
from cowdsl.run import run

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import vs_spin  # noqa: E402

needs_spin = pytest.mark.skipif(vs_spin.have_spin() is not None, reason="spin or cc not installed")


@pytest.mark.parametrize("k, m", [(1, 1), (2, 1), (3, 2)])
def test_generated_scenario_parses_and_names_every_pin(k, m):
    sc = load_text(vs_spin.gupfast_fork_vs_spin(k, m), f"gupfast_fork_{k}x{m}.cow")
    text = vs_spin.gupfast_fork_vs_spin(k, m)
    assert text.count(", write, fast) as r") == k
    assert [ln for ln in text.splitlines() if ln.startswith("A: write(p[")] == \
        [f"A: write(p[{j}], 1)" for j in range(m)] + [f"A: write(p[{j}], 2)" for j in range(m)]
    assert len(sc.assertions) == 1 and sc.assertions[0].quantifier == "always"


@pytest.mark.parametrize("mode", ["reduced", "full"])
@pytest.mark.parametrize("k, m", [(1, 1), (2, 1)])
def test_generated_scenario_gives_the_questions_verdict(k, m, mode):
    """The race question fails (a pin left on the child's page), the safe one holds."""
    sc = load_text(vs_spin.gupfast_fork_vs_spin(k, m), "bench.cow")
    for question, (backend, _wp_seq, expected) in vs_spin.QUESTIONS.items():
        r = run(sc, backend, mode=mode)
        assert r.exploration is not None and not r.exploration.partial, question
        assert r.verdict == {"race": "fail", "safe": "pass"}[expected], f"{question} on {backend}: {r.verdict}"


@needs_spin
def test_promela_model_generates_with_spin(tmp_path):
    for wp_seq in (0, 1):
        d = tmp_path / f"wp{wp_seq}"
        d.mkdir()
        shutil.copy(vs_spin.MODEL, d / vs_spin.MODEL.name)
        p = vs_spin.subprocess.run(["spin", "-a", "-DK=1", "-DM=1", f"-DWP_SEQ={wp_seq}", vs_spin.MODEL.name],
                                   cwd=d, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0 and "rror" not in p.stdout + p.stderr, p.stdout + p.stderr
        assert (d / "pan.c").is_file()


@needs_spin
@pytest.mark.parametrize("question", ["race", "safe"])
def test_promela_model_gives_the_questions_verdict(tmp_path, question):
    """pan finds the lost pin without write_protect_seq and none with it, on 1x1,
    with partial-order reduction (SPIN's default), as cowdsl does."""
    _backend, wp_seq, expected = vs_spin.QUESTIONS[question]
    r = vs_spin.run_spin(1, 1, wp_seq, "por", tmp_path, limit=300)
    assert r["verdict"] == expected and r["states"] > 0, r
    assert "note" not in r, r  # a violation is the assertion's, not an invalid end state or a bound


def _fake(verdicts: dict[str, str]):
    def spin(k, m, wp_seq, variant, work, limit):
        return {"variant": variant, "seconds": 2.0, "states": 10, "verdict": verdicts[f"spin_{variant}"]}

    def cowdsl(path, backend, mode, limit, max_states, command=None):
        return {"mode": mode, "seconds": 1.0, "states": 5, "verdict": verdicts[f"cowdsl_{mode}"]}
    return spin, cowdsl


def _run_1x1_race(monkeypatch, verdicts):
    """vs_spin.run on the 1x1 race question, with both tools faked to answer ``verdicts``."""
    spin, cowdsl = _fake(verdicts)
    monkeypatch.setattr(vs_spin, "run_spin", spin)
    monkeypatch.setattr(vs_spin, "run_cowdsl", cowdsl)
    monkeypatch.setattr(vs_spin, "QUESTIONS", {"race": vs_spin.QUESTIONS["race"]})
    result = vs_spin.run([(1, 1)], limit=5, max_states=100, log=lambda _line: None)
    return result


def test_rows_record_ratios_and_agreement(monkeypatch):
    result = _run_1x1_race(monkeypatch, {"spin_por": "race", "spin_noreduce": "race", "cowdsl_default": "race",
                                         "cowdsl_full": "timeout"})
    (row,) = result["rows"]
    assert row["agree"] and result["disagreements"] == []
    assert not row["all_decided"] and result["undecided"] == [
        "1x1 race: {'spin_por': 'race', 'spin_noreduce': 'race', 'cowdsl_default': 'race', 'cowdsl_full': 'timeout'}"]
    assert row["ratios"]["cowdsl_default_over_spin_por"] == 0.5
    assert row["ratios"]["cowdsl_full_over_spin_por"] is None  # a timeout is no time to a verdict
    json.dumps(result)  # results.json takes it as it is


def test_a_disagreement_is_reported(monkeypatch):
    result = _run_1x1_race(monkeypatch, {"spin_por": "safe", "spin_noreduce": "safe", "cowdsl_default": "race",
                                         "cowdsl_full": "race"})
    assert not result["rows"][0]["agree"]
    assert result["disagreements"] == ["1x1 race: {'spin_por': 'safe', 'spin_noreduce': 'safe', "
                                       "'cowdsl_default': 'race', 'cowdsl_full': 'race'}"]
    assert "DISAGREE" in vs_spin.format_row(result["rows"][0])


def test_vs_spin_skips_with_a_clear_message_without_spin(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither spin nor cc
    sys.path.insert(0, str(BENCH))
    import explore

    assert explore.main(["--vs-spin", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "spin and cc not found on PATH: the SPIN comparison is skipped" in out


def test_sizes_argument():
    import explore

    assert explore._sizes("1x1,4X3") == [(1, 1), (4, 3)]
    with pytest.raises(Exception, match="expected sizes such as 1x1"):
        explore._sizes("4by3")


def test_plot_draws_every_row(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    spin, cowdsl = _fake({"spin_por": "race", "spin_noreduce": "timeout", "cowdsl_default": "race",
                          "cowdsl_full": "race"})
    monkeypatch.setattr(vs_spin, "run_spin", spin)
    monkeypatch.setattr(vs_spin, "run_cowdsl", cowdsl)
    result = vs_spin.run([(1, 1), (2, 1)], limit=5, max_states=100, log=lambda _line: None)
    assert len(result["rows"]) == 4
    assert vs_spin.plot(result, tmp_path / "vs-spin.png")
    assert (tmp_path / "vs-spin.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_repeats_keep_the_fastest_and_flag_inconsistent_verdicts():
    runs = [{"seconds": 3.0, "verdict": "safe"}, {"seconds": 2.0, "verdict": "safe"}, {"seconds": 1.0,
                                                                                       "verdict": "timeout"}]
    best = vs_spin.fastest(runs)
    assert best["seconds"] == 2.0 and best["verdict"] == "safe"
    assert best["runs_seconds"] == [3.0, 2.0, 1.0]
    assert vs_spin.fastest([{"seconds": 1.0, "verdict": "safe"}, {"seconds": 2.0, "verdict": "race"}])["verdict"] \
        == "inconsistent"
    assert "runs_seconds" not in vs_spin.fastest(runs[:1])


PAN_TAIL = """State-vector 48 byte, depth reached 28, errors: {errors}
       63 states, stored
"""


def test_pan_verdicts():
    """Only a violated assertion is the race; a deadlock (invalid end state) is a
    broken model; a search cut short by the depth bound proves nothing safe."""
    race = "pan:1: assertion violated (pinned[j]==pte[(j%1)]) (at depth 28)\n" + PAN_TAIL.format(errors=1)
    assert vs_spin.pan_verdict(race) == {"states": 63, "verdict": "race"}
    assert vs_spin.pan_verdict(PAN_TAIL.format(errors=0)) == {"states": 63, "verdict": "safe"}
    deadlock = vs_spin.pan_verdict("pan:1: invalid end state (at depth 30)\n" + PAN_TAIL.format(errors=1))
    assert deadlock["verdict"] == "error" and "invalid end state" in deadlock["note"]
    cut = vs_spin.pan_verdict("error: max search depth too small\n" + PAN_TAIL.format(errors=0))
    assert cut["verdict"] == "unknown"
    assert vs_spin.pan_verdict("pan: out of memory")["verdict"] == "error"


def test_cowdsl_command_can_be_another_checkouts(tmp_path):
    """--cowdsl COMMAND measures another cowdsl (a before/after comparison): here
    `python -m cowdsl`, which must give the same verdict as the console script."""
    cow = tmp_path / "bench.cow"
    cow.write_text(vs_spin.gupfast_fork_vs_spin(1, 1))
    r = vs_spin.run_cowdsl(cow, "early-cow:wp_seq=off", "full", 120, 10_000, command=[sys.executable, "-m", "cowdsl"])
    assert r["verdict"] == "race" and r["states"] > 0, r
    broken = vs_spin.run_cowdsl(cow, "early-cow", "full", 120, 10_000, command=[sys.executable, "-c", "pass"])
    assert broken["verdict"] == "error" and broken["states"] is None
