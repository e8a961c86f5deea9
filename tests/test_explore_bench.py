"""benchmarks/explore.py: what each size's row holds (the plain full search's rate,
the counted executions, the default mode's and --mode full's time to verdict),
and --before, which measures another checkout in a process of its own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import explore  # noqa: E402


def test_a_row_holds_every_search_and_both_modes_decide_alike():
    row = explore.measure_row("private_writers", 2, 1, 20.0)
    full, reduced = row["full"], row["reduced"]
    assert full["executions"] == 6 and full["states"] == 13 and full["states_per_second"] > 0
    assert full["final_states"] == reduced["final_states"] == row["reduced_symmetric"]["final_states"] == 1
    # independent writers: the full search with ample sets, within auto's trial
    assert row["default"]["search"] == row["full_mode"]["search"] == "full"
    assert row["default"]["verdict"] == row["full_mode"]["verdict"] == "pass"
    assert row["default_over_full"] == pytest.approx(row["default"]["cpu_seconds"] / row["full_mode"]["cpu_seconds"],
                                                     abs=1e-3)


def test_before_measures_the_other_checkout_and_gives_speed_ups(monkeypatch):
    monkeypatch.setattr(explore, "FAMILIES", {"private_writers": (explore.private_writers, [(2, 1)], "anon-exclusive")})
    result = explore.run(20.0, before=ROOT)  # this checkout against itself, in a child process
    row, = result["families"]["private_writers"]["rows"]
    assert row["before"]["full_states"] == row["full"]["states"]
    assert set(row["speedup"]) == {"full", "full_counting", "full_ample", "reduced", "reduced_symmetric", "default",
                                   "full_mode"}
    assert all(v > 0 for v in row["speedup"].values())
