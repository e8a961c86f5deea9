"""The batch loop (cowdsl.batch): files found once, loaded, run on a resolved
KernelSpec within bounds; whatever fails in one file is a Problem, reported as
it happens, and the loop goes on."""

from __future__ import annotations

import os

import pytest
from examples import BROKEN, FAILING, LONG_TERM_PIN, RACE, pinners_racing_fork

import cowdsl.load
import cowdsl.run
from cowdsl.batch import Batch
from cowdsl.kernel.spec import resolve
from cowdsl.limits import Limits

SPEC = resolve("anon-exclusive")


def write(d, name, text):
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_every_problem_is_reported_as_it_happens_and_kept(tmp_path):
    good = write(tmp_path, "d/a_good.cow", LONG_TERM_PIN)
    broken = write(tmp_path, "d/b_broken.cow", BROKEN)
    os.mkfifo(tmp_path / "d" / "c_pipe.cow")
    missing = tmp_path / "nope.cow"
    seen = []
    batch = Batch(report=seen.append)
    scenarios = batch.load([tmp_path / "d", good, missing])  # good named twice: loaded once
    assert [sc.filename for sc in scenarios] == [str(good)]
    assert [(p.file, p.message, p.skipped) for p in seen] == [
        (str(tmp_path / "d" / "c_pipe.cow"), "skipped: a FIFO, not a regular file", True),
        (str(broken), "1 error", False),
        (str(missing), "no such file or directory", False),
    ]
    assert batch.problems == seen[1:] and batch.skipped == seen[:1]
    assert batch.problems[0].error is not None and batch.problems[0].error.filename == str(broken)


def test_no_files_is_a_problem(tmp_path):
    batch = Batch()
    assert batch.load([tmp_path]) == []
    [p] = batch.problems
    assert (p.file, p.message) == (None, f"no .cow files found in {tmp_path}")


def test_the_limits_bound_loading(tmp_path):
    f = write(tmp_path, "a.cow", LONG_TERM_PIN)
    batch = Batch(limits=Limits(max_steps=2))
    assert batch.load([f]) == []
    assert "the limit is 2" in batch.problems[0].error.render()


def test_a_crash_in_the_loader_or_a_backend_is_one_problem_and_the_loop_goes_on(tmp_path, monkeypatch):
    real_load, real_run = cowdsl.load.load_all, cowdsl.run.run
    monkeypatch.setattr(cowdsl.load, "load_all", lambda p, *a: (_ for _ in ()).throw(KeyError("checker bug"))
                        if "bad" in str(p) else real_load(p, *a))
    monkeypatch.setattr(cowdsl.run, "run", lambda sc, spec, **kw: (_ for _ in ()).throw(RuntimeError("model bug"))
                        if "failing" in sc.name else real_run(sc, spec, **kw))
    a = write(tmp_path, "a.cow", LONG_TERM_PIN)
    bad = write(tmp_path, "bad.cow", LONG_TERM_PIN)
    c = write(tmp_path, "c.cow", FAILING)
    batch = Batch()
    scenarios = batch.load([a, bad, c])
    results = [batch.run(sc, SPEC) for sc in scenarios]
    assert [r is not None and r.ok for r in results] == [True, False]
    assert results[1] is None
    loading, running = batch.problems
    assert (loading.file, loading.doing, loading.message) == (str(bad), "loading", "internal error: KeyError: 'checker bug'")
    assert (running.file, running.doing) == (str(c), "running on anon-exclusive")
    assert "RuntimeError: model bug" in running.traceback() and "Traceback" in running.traceback()


def test_a_run_is_bounded_and_says_so(tmp_path):
    sc = Batch().load([write(tmp_path, "race.cow", pinners_racing_fork(3, 3))])[0]
    calls = []

    class Shown:
        def __init__(self, name):
            calls.append(name)

        def __enter__(self):
            return lambda states, executions: None

        def __exit__(self, *exc):
            return False

    r = Batch().run(sc, SPEC, mode="full", max_states=200, progress=Shown)
    assert r.partial == "--max-states 200" and calls == [sc.name]
    r = Batch(limits=Limits(max_states=300)).run(sc, SPEC, mode="full")
    assert r.partial == "--max-states 300"


def test_an_impossible_schedule_is_a_problem_not_an_internal_error(tmp_path):
    sc = Batch().load([write(tmp_path, "race.cow", RACE)])[0]
    batch = Batch()
    assert batch.run(sc, SPEC, schedule=["Nobody"]) is None
    [p] = batch.problems
    assert p.exception is None and p.file == sc.filename and p.message


def test_call_guards_any_step_of_a_file():
    batch = Batch()
    assert batch.call("x.cow", "running natively", lambda n: n + 1, 1) == 2
    assert batch.call("x.cow", "running natively", lambda: 1 / 0) is None
    [p] = batch.problems
    assert (p.file, p.doing, p.message) == ("x.cow", "running natively", "internal error: ZeroDivisionError: division by zero")
    with pytest.raises(KeyboardInterrupt):
        batch.call("x.cow", "running", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
