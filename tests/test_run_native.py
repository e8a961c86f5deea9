"""`cowdsl run --backend native`: --timeout, --repeat and --seed reach the native backend, one
scenario after another; --repeat is refused where no native run is asked for.  A real run on
this host (skipped where the host cannot run native) shows what the text report says of it."""

from __future__ import annotations

from pathlib import Path

import helpers_children
import pytest
from examples import LONG_TERM_PIN

import cowdsl.run
from cowdsl import native
from cowdsl.cli import main
from cowdsl.judge import Result
from cowdsl.limits import DEFAULT as LIMITS


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    """What each native run was asked for; no kernel is touched."""
    seen: list[dict] = []

    def fake(sc, **kw):
        seen.append(kw)
        return Result(sc, native.SPEC, None, (), (), None, 0.0)

    monkeypatch.setattr(cowdsl.run, "run_native", fake)
    return seen


def scenario(tmp_path: Path, name: str = "s.cow") -> str:
    f = tmp_path / name
    f.write_text(LONG_TERM_PIN)
    return str(f)


def test_timeout_repeat_and_seed_reach_the_native_backend(tmp_path, calls, capsys):
    assert main(["run", "--backend", "native", "--timeout", "5", "--repeat", "3", "--seed", "7",
                 scenario(tmp_path)]) == 0
    assert calls == [{"timeout": 5.0, "repeat": 3, "seed": 7}]


def test_defaults_are_the_native_backends(tmp_path, calls, capsys):
    """Once (PAR_REPEAT times with a par block: native decides), seed 0, the 60 s of every scenario."""
    assert LIMITS.timeout == native.DEFAULT_TIMEOUT
    assert main(["run", "-b", "native", scenario(tmp_path)]) == 0
    assert calls == [{"timeout": native.DEFAULT_TIMEOUT, "repeat": None, "seed": 0}]


def test_every_scenario_runs_in_this_process_even_with_jobs(tmp_path, calls, capsys):
    """-j 2 does not run two native scenarios at once: a race's actors would share the CPUs."""
    files = [scenario(tmp_path, f"s{k}.cow") for k in range(3)]
    assert main(["run", "-b", "native", "-j", "2", "-r", "2", *files]) == 0
    assert [c["repeat"] for c in calls] == [2, 2, 2]  # a worker process would not see the fake


@pytest.mark.parametrize("backend", ["anon-exclusive", "5.10", "all"])
def test_repeat_goes_with_native_only(tmp_path, calls, capsys, backend):
    assert main(["run", "-b", backend, "--repeat", "3", scenario(tmp_path)]) == 2
    assert "--repeat goes with --backend native" in capsys.readouterr().err
    assert calls == []


def test_repeat_takes_a_whole_number_of_at_least_one(tmp_path, capsys):
    assert main(["run", "-b", "native", "--repeat", "0", scenario(tmp_path)]) == 2
    assert "--repeat takes a whole number of at least 1, not `0`" in capsys.readouterr().err


def test_on_this_kernel_the_report_says_how_many_runs(tmp_path, capsys):
    """A par scenario run natively twice with seed 3: the block says so, with what each
    assertion's runs showed (skipped where this host cannot run native)."""
    from examples import NATIVE_PAR

    if native.skip_reason() is not None:
        pytest.skip(native.skip_reason())
    helpers_children.snapshot()
    f = tmp_path / "par.cow"
    f.write_text(NATIVE_PAR)
    assert main(["run", "-b", "native", "--repeat", "2", "--seed", "3", str(f)]) == 1  # `sometimes A.x == 5`
    out = capsys.readouterr().out
    assert "Runs on this kernel: 2 (seed 3); sampled executions, never a proof" in out
    assert "  Ok  line 14: sometimes A.y == 3  (witnessed 2 of 2)" in out
    assert "  No  line 15: sometimes A.x == 5  (witnessed 0 of 2)" in out
    assert "States 1" not in out and "Positive:" not in out
    assert helpers_children.left() == []  # every run's processes reaped
