"""Swarm mode (`cowdsl run --swarm N`, cowdsl.swarm over cowdsl.explore.swarm):
randomised depth-first searches, each stopping at its first violation; the
violations shown as run shows counterexamples (the schedule replays them), the
coverage across searches, never a proof; the same seed gives the same report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cowdsl import swarm
from cowdsl.batch import Workers
from cowdsl.cli import main
from cowdsl.explore.exploration import Bounds
from cowdsl.explore.model import Model
from cowdsl.explore.swarm import replay_choices, search
from cowdsl.kernel.spec import resolve
from cowdsl.load import load
from cowdsl.semantics import registry

ROOT = Path(__file__).resolve().parent.parent
S12 = ROOT / "scenarios" / "races" / "s12-gup-fast-pin-vs-fork.cow"
RACY = "early-cow:wp_seq=off"  # S12's race is open: no write_protect_seq in GUP-fast (57efa1fe5957)
SAFE = "anon-exclusive"


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_known_race_is_found_with_a_fixed_seed(capsys):
    code, out, _ = cli(capsys, "run", "--swarm", 2, "--seed", 0, "-b", RACY, S12)
    assert code == 0  # the file expects fail on this backend: found, as expected
    assert re.search(r"^  seed 0: \d+ states, \d+ micro-steps: violation after \d+ micro-steps \(line 43", out, re.M)
    assert "Counterexample for line 43 (always: mr is A.buf)" in out
    assert f"Expect fail on {RACY}: got fail, as expected" in out
    assert re.search(r"^swarm: 2 violations found in \d+ states \(2 assertions broken\)$", out, re.M)
    assert "not a proof" not in out


def test_the_counterexample_replays_as_a_schedule(capsys):
    _, out, _ = cli(capsys, "run", "--swarm", 1, "--seed", 3, "-b", RACY, S12)
    schedule = re.search(r"^schedule: (\S+)$", out, re.M)
    assert schedule
    code, replayed, _ = cli(capsys, "run", "-b", RACY, "--schedule", schedule.group(1), S12)
    assert code == 1  # one execution, judged on its own: the assertions it breaks fail
    assert "Execution for line 43 (always: mr is A.buf) and line 44 (always: seen == 2)" in replayed
    assert f"Verdict fail (no expect line for {RACY})" in replayed


def test_a_safe_scenario_is_never_a_proof(capsys):
    code, out, _ = cli(capsys, "run", "--swarm", 3, "--seed", 5, "-b", SAFE, S12)
    assert code == 3  # undecided: a swarm decides nothing it did not see broken
    assert re.search(r"^swarm: no violation found in \d+ states; not a proof$", out, re.M)
    assert "Counterexample" not in out
    assert out.count("no violation; its whole space explored") == 3
    assert f"Expect pass on {SAFE}: got unknown, undecided" in out


def test_the_same_seed_gives_the_same_report_whoever_runs_it(capsys):
    runs = [cli(capsys, "run", "--swarm", 4, "--seed", 11, "-j", j, "-b", RACY, S12) for j in (1, 2, 2)]
    assert runs[0] == runs[1] == runs[2]
    other = cli(capsys, "run", "--swarm", 4, "--seed", 12, "-j", 1, "-b", RACY, S12)
    assert "seeds 11..14" in runs[0][1] and "seeds 12..15" in other[1]


def test_each_search_is_bounded_on_its_own(capsys):
    code, out, _ = cli(capsys, "run", "--swarm", 2, "--max-states", 5, "-b", SAFE, S12)
    assert code == 3
    assert out.count("no violation; stopped at --max-states 5") == 2
    assert re.search(r"^Coverage: \d+ distinct states across the searches$", out, re.M)


def test_coverage_counts_distinct_states_across_searches():
    sc = load(S12)
    sw = swarm.run(sc, resolve(SAFE), 3, seed=0, workers=Workers(2))
    per = [w.states for w in sw.walks]
    assert sw.covered is not None and max(per) <= sw.covered <= sum(per)
    alone = Model(sc, registry.get(resolve(SAFE)))
    whole = search(alone, 0, lambda w, terminal: (), Bounds())
    assert whole.partial is None and sw.covered == whole.states  # each search finished this small space


def test_seeds_order_the_search_differently_and_choices_replay_to_the_violation():
    sc = load(S12)
    model = Model(sc, registry.get(resolve(RACY)))
    bad = swarm.breaks(model)
    walks = [search(model, seed, bad, Bounds()) for seed in range(6)]
    assert all(w.choices is not None for w in walks)
    assert len({w.choices for w in walks}) > 1 or len({w.states for w in walks}) > 1
    for w in walks:
        path = replay_choices(model, w.choices)
        end = model.step(*path[-1], False)[0]
        assert not model.enabled(end) and bad(end, True) == w.broken
    again = search(model, 2, bad, Bounds())
    assert (again.choices, again.states, again.transitions) == (walks[2].choices, walks[2].states, walks[2].transitions)


@pytest.mark.parametrize("extra, message", [
    (["--backend", "all"], "--swarm runs on one backend, not all"),
    (["--format", "json"], "--swarm prints text only"),
    (["--mode", "full"], "--swarm has a search of its own"),
    (["-b", "native"], "--swarm searches a model"),
])
def test_what_a_swarm_does_not_take_is_a_usage_error(capsys, extra, message):
    code, out, err = cli(capsys, "run", "--swarm", 2, *extra, S12)
    assert code == 2 and message in err and out == ""


def test_a_swarm_searches_one_file(capsys):
    code, _, err = cli(capsys, "run", "--swarm", 2, S12.parent)
    assert code == 2 and "--swarm searches one scenario" in err
