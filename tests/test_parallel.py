"""-j N (cowdsl.batch.Workers): `run` over many files, the era matrix and the
timeline give the same output, in the same order, whoever runs the jobs (this
process, worker processes, a local Dask cluster); errors and exit codes are those
of -j 1; results point at the caller's own scenarios; Ctrl-C stops every worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from examples import BROKEN, FAILING, LONG_TERM_PIN, RACE, pinners_racing_fork

import cowdsl.load
from cowdsl import matrix, timeline
from cowdsl.batch import REMOTE_TRACEBACK, Batch, Problem, Workers, WorkersUnavailable, _plan
from cowdsl.cli import main
from cowdsl.errors import CowError
from cowdsl.kernel.version import Version
from cowdsl.load import load_text

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
TIMES = re.compile(r'\d+\.\d+s\b|"seconds": [0-9.e-]+|time="[0-9.]+"|(?m:^Time .* [0-9.]+$)')

# the race of examples.py with an expect line that is wrong
MISMATCH = RACE.replace('"two writers"', '"an expect line that is wrong"') + "expect pass on anon-exclusive\n"


def masked(text: str) -> str:
    """Output with the runs' times masked (they differ from run to run)."""
    return TIMES.sub("<time>", text)


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, masked(out), masked(err)


@pytest.fixture
def corpus(tmp_path):
    """A folder of files that pass, fail, race, break the parser and contradict an expect line."""
    d = tmp_path / "corpus"
    d.mkdir()
    for name, text in (("a_pin.cow", LONG_TERM_PIN), ("b_failing.cow", FAILING), ("c_race.cow", RACE),
                       ("d_broken.cow", BROKEN), ("e_mismatch.cow", MISMATCH),
                       ("f_pinners.cow", pinners_racing_fork(2, 1))):
        (d / name).write_text(text)
    return d


@pytest.mark.parametrize("fmt", ["text", "json", "junit"])
def test_run_over_many_files_is_the_same_with_workers(corpus, capsys, fmt):
    one = cli(capsys, "run", "-j", 1, "-f", fmt, corpus)
    two = cli(capsys, "run", "-j", 2, "-f", fmt, corpus)
    assert one == two
    assert one[0] == 2  # the broken file: an error, as with -j 1
    assert "d_broken.cow:3:" in one[2]


def test_run_with_workers_keeps_the_problems_and_partial_lines_in_file_order(corpus, capsys):
    (corpus / "g_big.cow").write_text(pinners_racing_fork(3, 2))
    one = cli(capsys, "run", "-j", 1, "--max-states", 30, corpus)
    two = cli(capsys, "run", "-j", 2, "--max-states", 30, corpus)
    assert one == two
    err = one[2]
    assert err.index("d_broken.cow") < err.index("g_big.cow: the exploration stopped at --max-states 30")


@pytest.mark.parametrize("fmt", ["text", "json", "junit"])
def test_the_era_matrix_is_the_same_with_workers(corpus, capsys, fmt):
    one = cli(capsys, "run", "-j", 1, "--backend", "all", "-f", fmt, corpus)
    two = cli(capsys, "run", "-j", 2, "--backend", "all", "-f", fmt, corpus)
    assert one == two
    if fmt == "junit":  # a mismatch keeps its counterexample in the slim matrix
        assert "Counterexample" in one[1] and "e_mismatch" in one[1]


def test_the_corpus_matrix_is_the_same_with_workers(capsys):
    one = cli(capsys, "run", "-j", 1, "--backend", "all", SCENARIOS / "races", SCENARIOS / "versions")
    two = cli(capsys, "run", "-j", 2, "--backend", "all", SCENARIOS / "races", SCENARIOS / "versions")
    assert one == two and one[0] == 0


def test_a_slim_cell_keeps_its_verdicts_and_a_mismatch_keeps_everything(corpus):
    scenarios = Batch().load([corpus])
    full = matrix.build(scenarios, ["anon-exclusive", "mapcount"])
    slim = matrix.build(scenarios, ["anon-exclusive", "mapcount"], slim=True, workers=Workers(2))
    assert list(full.results) == list(slim.results)
    for key, r in full.results.items():
        s = slim.results[key]
        assert (s.verdict, s.expected, s.ok, [c.holds for c in s.checks]) == \
            (r.verdict, r.expected, r.ok, [c.holds for c in r.checks])
        assert s.scenario is r.scenario  # the caller's own scenario, not a copy from the worker
        if matrix.mismatch(r):
            assert s.checks[0].witness is not None and s.checks[0].witness == r.checks[0].witness
        else:
            assert s.steps == () and all(c.witness is None for c in s.checks)
    assert matrix.text(full) == matrix.text(slim)


def test_the_timeline_is_the_same_with_workers(capsys):
    files = [SCENARIOS / "versions" / "ksm-page-reuse-window.cow", SCENARIOS / "races" / "s12-gup-fast-pin-vs-fork.cow"]
    for fmt in ("text", "json", "dot"):
        one = cli(capsys, "timeline", "-j", 1, "-f", fmt, "--versions", "5.4..5.19", *files)
        two = cli(capsys, "timeline", "-j", 2, "-f", fmt, "--versions", "5.4..5.19", *files)
        assert one == two and one[0] == 0
        assert fmt != "text" or one[1].count("flips:") == 2


def test_timeline_prefetch_runs_every_cell_and_every_deciding_spec():
    sc = load_text((SCENARIOS / "races" / "s12-gup-fast-pin-vs-fork.cow").read_text(), "s12.cow")
    versions = [Version.parse(v) for v in ("5.9", "5.10", "5.10.3", "5.10.4", "5.11", "5.18")]
    asked = []

    def counting(sc, spec):
        asked.append(spec.name)
        return timeline.run(sc, spec)

    [known] = timeline.prefetch([sc], versions, Workers(2))
    t = timeline.build(sc, versions, counting, verdicts=known)
    assert asked == []  # every run the timeline needs was made by the workers
    assert t == timeline.build(sc, versions)
    assert any(f.deciding for f in t.flips)


# --- loading in the workers ---------------------------------------------------------------

def _crashing_load(real):
    def load_all(path, *a):
        if Path(path).name.startswith("i_crash"):  # a bug in the parser or checker, in whichever process loads the file
            raise KeyError(f"checker bug in {os.getpid()}")
        return real(path, *a)
    return load_all


def test_files_load_in_the_workers_with_the_same_scenarios_and_problems_in_file_order(corpus, monkeypatch):
    (corpus / "g_frag.cow").write_text("A: pin(buf, write, longtem) as mr\n")  # an error in an included fragment
    (corpus / "h_includes.cow").write_text('process A\nA: mmap(buf, anon, private, rw)\ninclude "g_frag.cow"\n')
    (corpus / "i_crash.cow").write_text(LONG_TERM_PIN)
    monkeypatch.setattr(cowdsl.load, "load_all", _crashing_load(cowdsl.load.load_all))  # forked workers have it too
    missing = corpus / "nope.cow"
    here, away = Batch(), Batch()
    one = here.load([corpus, missing])
    two = away.load([corpus, missing], Workers(2))
    assert [sc.where for sc in one] == [sc.where for sc in two]
    assert [(sc.steps, sc.assertions, sc.expectations) for sc in one] == \
        [(sc.steps, sc.assertions, sc.expectations) for sc in two]
    pid = re.compile(r"checker bug in \d+")
    assert [(p.file, pid.sub("", p.message), p.doing) for p in here.problems] == \
        [(p.file, pid.sub("", p.message), p.doing) for p in away.problems]
    assert [p.file for p in here.problems] == [str(corpus / f) for f in ("d_broken.cow", "h_includes.cow",
                                                                           "i_crash.cow")] + [str(missing)]
    for p, q in zip(here.problems, away.problems):
        if p.error is not None:  # the diagnostics as rendered, file:line:col and caret, and each include line
            assert type(q.error) is type(p.error) and q.error.render() == p.error.render() and str(q.error) == str(p.error)
    crashed = away.problems[2]
    assert f"checker bug in {os.getpid()}" in here.problems[2].message
    assert f"checker bug in {os.getpid()}" not in crashed.message  # another process raised it: a worker
    assert "in load_all" in crashed.traceback() and "KeyError" in crashed.traceback()
    assert [p.file for p in here.skipped] == [p.file for p in away.skipped] == [str(corpus / "g_frag.cow")]


def test_a_crash_while_loading_in_a_worker_is_reported_as_with_j1(corpus, capsys, monkeypatch):
    (corpus / "i_crash.cow").write_text(LONG_TERM_PIN)
    monkeypatch.setattr(cowdsl.load, "load_all", _crashing_load(cowdsl.load.load_all))
    pid = re.compile(r"checker bug in \d+")
    one, two = ([pid.sub("<pid>", x) if isinstance(x, str) else x for x in cli(capsys, "run", "-j", j, corpus)]
                for j in (1, 2))
    assert one == two
    assert f"cowdsl: {corpus / 'i_crash.cow'}: internal error while loading: KeyError: '<pid>'" in two[2]
    assert "please report it" in two[2]


def test_standard_input_is_read_here_with_files_loaded_by_workers(corpus, capsys, monkeypatch):
    import io

    for j in (1, 2):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(FAILING.encode())))
        code, out, err = cli(capsys, "run", "-j", j, "-f", "json", "-", corpus)
        if j == 1:
            first = code, out, err
    assert (code, out, err) == first
    assert '"file": "<stdin>"' in out and "d_broken.cow:3:" in err


@pytest.mark.parametrize("jobs", [1, 2])
def test_meanwhile_runs_once_in_this_process_while_the_files_load(corpus, jobs):
    calls = []
    scenarios = Batch().load([corpus], Workers(jobs), meanwhile=lambda: calls.append(os.getpid()))
    assert calls == [os.getpid()] and len(scenarios) == 5


def test_run_and_timeline_import_the_model_while_the_files_load_not_before():
    code = ("import sys, cowdsl.cli.commands.run, cowdsl.cli.commands.timeline; "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['cowdsl', 'run'], ['cowdsl', 'semantics'], ['cowdsl', 'explore'], ['cowdsl', 'report'])))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert p.stdout.strip() == "[]"
    for command in ("run", "timeline"):
        module = __import__(f"cowdsl.cli.commands.{command}", fromlist=["while_loading"])
        assert module.while_loading() is None  # what it imports exists


def test_a_problem_with_diagnostics_crosses_with_them():
    import pickle

    with pytest.raises(CowError) as info:
        load_text(BROKEN, "b.cow")
    p = Problem("b.cow", "1 error", error=info.value)
    q = pickle.loads(pickle.dumps(p))
    assert type(q.error) is CowError and q.error.diagnostics == p.error.diagnostics
    assert q.error.render() == p.error.render() and q.error.filename == "b.cow" and q.error.source == BROKEN


def test_the_costliest_items_go_first_in_batches_and_the_results_come_in_order():
    cost = [1, 50, 1, 1, 30, 1, 1, 1, 1, 1]
    plan = _plan(cost, 2)
    assert sorted(i for batch in plan for i in batch) == list(range(10))
    assert plan[0] == [1] and plan[1] == [4]  # each alone: more than 1/32 of a worker's share
    assert [i for batch in plan for i in batch][2:] == [0, 2, 3, 5, 6, 7, 8, 9]  # then in order, as equal
    assert _plan([1.0] * 640, 2) == [list(range(k, k + 10)) for k in range(0, 640, 10)]
    assert list(Workers(2).map(_twice, [], range(10), cost=cost)) == [2 * i for i in range(10)]


def _twice(shared, item):
    return 2 * item


def test_no_worker_or_thread_outlives_a_map_even_one_stopped_early(corpus):
    import multiprocessing
    import threading

    Batch().load([corpus], Workers(2))
    # the pool that runs the scenarios next forks from a process with one thread (not a fork server's)
    assert multiprocessing.active_children() == [] and threading.active_count() == 1
    results = Workers(2).map(_twice, [], range(10))
    assert next(results) == 0
    del results  # a consumer that stops early (zip over fewer items)
    assert multiprocessing.active_children() == [] and threading.active_count() == 1


# --- the workers themselves --------------------------------------------------------------

def _pick(shared, item):
    """A job: the shared scenario item[0], its step item[1], and the worker's pid."""
    sc = shared[item[0]]
    return sc, sc.steps[item[1]], sc.assertions[0], os.getpid()


def _boom(shared, item):
    if item == 2:
        raise KeyError(f"job {item}")
    return item


def test_results_come_in_order_and_point_at_the_callers_objects():
    scs = [load_text(LONG_TERM_PIN, "a.cow"), load_text(FAILING, "b.cow")]
    items = [(i % 2, i % 3) for i in range(12)]
    got = list(Workers(2).map(_pick, scs, items))
    assert len({pid for *_, pid in got}) >= 1 and all(pid != os.getpid() for *_, pid in got)
    for (i, k), (sc, step, a, _) in zip(items, got):
        assert sc is scs[i] and step is scs[i].steps[k] and a is scs[i].assertions[0]


def test_one_job_or_j1_runs_here():
    assert Workers(1).inline(10) and Workers(4).inline(1) and not Workers(2).inline(2)
    assert [pid for *_, pid in Workers(4).map(_pick, [load_text(LONG_TERM_PIN, "a.cow")], [(0, 0)])] == [os.getpid()]


def test_an_exception_in_a_worker_is_raised_here_with_its_traceback():
    with pytest.raises(KeyError, match="job 2") as info:
        list(Workers(2).map(_boom, [], range(4)))
    trace = getattr(info.value, REMOTE_TRACEBACK)
    assert "in _boom" in trace and "KeyError: 'job 2'" in trace
    assert Problem("x.cow", "internal error", exception=info.value, doing="running").traceback() == trace


def test_a_worker_problem_crosses_with_its_traceback():
    import pickle

    try:
        raise RuntimeError("model bug")
    except RuntimeError as e:
        p = Problem("x.cow", "internal error: RuntimeError: model bug", exception=e, doing="running on x")
    q = pickle.loads(pickle.dumps(p))
    assert (q.file, q.message, q.doing, str(q.exception)) == (p.file, p.message, p.doing, "model bug")
    assert "RuntimeError: model bug" in q.traceback() and "Traceback" in q.traceback()


def test_ctrl_c_stops_every_worker_and_says_so_once(tmp_path):
    d = tmp_path / "big"
    d.mkdir()
    for k in range(6):
        (d / f"big{k}.cow").write_text(pinners_racing_fork(4, 3))
    # every state of every interleaving: minutes of work, so the workers are still exploring at the signal
    p = subprocess.Popen([sys.executable, "-m", "cowdsl", "run", "-j", "2", "--mode", "full", "--all-states",
                          "--timeout", "600", "--max-states", "10000000", d], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(3)
    assert p.poll() is None, "the run ended before the signal: the test no longer tests an interrupt"
    os.killpg(p.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the whole process group
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130
    assert err.strip().splitlines()[-1] == "cowdsl: interrupted" and "Traceback" not in err
    time.sleep(0.5)
    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and _session(pid) == p.pid]
    assert left == []


def _ctrl_c_here() -> None:
    os.kill(os.getpid(), signal.SIGINT)  # (Python runs the handler at its next instruction)


def _ctrl_c_then(fn):
    def wrapped(*args, **kw):
        _ctrl_c_here()
        return fn(*args, **kw)
    return wrapped


@pytest.fixture
def sigint_raises():
    """Ctrl-C raises KeyboardInterrupt here, as it does once a command runs."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def _no_worker_left() -> bool:
    import multiprocessing

    return multiprocessing.active_children() == []


def test_ctrl_c_while_the_workers_fork_stops_the_map(monkeypatch, sigint_raises):
    """Ctrl-C was ignored while the pool forked: the run went on and exited 0."""
    import gc

    monkeypatch.setattr(gc, "freeze", _ctrl_c_then(gc.freeze))  # batch freezes just before the pool forks
    with pytest.raises(KeyboardInterrupt):
        list(Workers(2).map(_twice, [], range(10)))
    assert _no_worker_left()


def test_ctrl_c_while_the_workers_stop_still_stops_every_one(monkeypatch, sigint_raises):
    """Ctrl-C while the workers stop: every one stops, then the Ctrl-C is raised."""
    import multiprocessing.pool

    monkeypatch.setattr(multiprocessing.pool.Pool, "terminate", _ctrl_c_then(multiprocessing.pool.Pool.terminate))
    with pytest.raises(KeyboardInterrupt):
        list(Workers(2).map(_twice, [], range(10)))
    assert _no_worker_left()


def test_ctrl_c_as_the_last_result_comes_is_raised_not_lost_in_a_finaliser(monkeypatch, sigint_raises):
    """A caller's zip takes the last result and drops the generator: the pool stopped in
    its finaliser, where a KeyboardInterrupt is only printed ("Exception ignored")."""
    import multiprocessing.pool

    monkeypatch.setattr(multiprocessing.pool.Pool, "terminate", _ctrl_c_then(multiprocessing.pool.Pool.terminate))
    with pytest.raises(KeyboardInterrupt):
        list(zip(range(10), Workers(2).map(_twice, [], range(10))))
    assert _no_worker_left()


def test_ctrl_c_as_the_command_returns_is_one_line_and_exit_130(monkeypatch, capsys):
    """Between the command's return and main handing SIGINT back, Ctrl-C was a traceback."""
    import cowdsl.cli as cli_module

    real, calls = cli_module._on_sigint, []

    def swap(handler):
        calls.append(handler)
        if len(calls) == 3:  # main takes SIGINT, _main hands it to the command, and now takes it back
            assert handler is cli_module.interrupted_at_once
            _ctrl_c_here()
        return real(handler)

    monkeypatch.setattr(cli_module, "_on_sigint", swap)
    assert main(["ops"]) == 130
    assert capsys.readouterr().err == "cowdsl: interrupted\n"


def _session(pid: str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[3])  # field 6: the session id


# --- Dask ----------------------------------------------------------------------------------

def test_the_matrix_and_the_timeline_on_a_local_dask_cluster(corpus, capsys):
    pytest.importorskip("distributed")  # in the test extra: CI has it
    one = cli(capsys, "run", "-j", 1, "--backend", "all", "-f", "json", corpus)
    dask = cli(capsys, "run", "--executor", "dask", "-j", 2, "--backend", "all", "-f", "json", corpus)
    assert one == dask
    f = SCENARIOS / "versions" / "ksm-page-reuse-window.cow"
    assert cli(capsys, "timeline", "-j", 1, f) == cli(capsys, "timeline", "--executor", "dask", "-j", 2, f)


def test_without_dask_the_executor_says_how_to_get_it(corpus, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    with pytest.raises(WorkersUnavailable, match=r"pip install 'cowdsl\[dask\]'"):
        Workers(2, "dask")
    code, out, err = cli(capsys, "run", "--executor", "dask", corpus)
    assert code == 2 and "cowdsl: --executor dask needs Dask" in err and out == ""
    code, _, err = cli(capsys, "timeline", "--scheduler", "tcp://127.0.0.1:1", corpus)
    assert code == 2 and "pip install 'cowdsl[dask]'" in err


def test_a_run_that_crashes_fails_its_timeline_as_without_workers(capsys, monkeypatch):
    real = timeline.run

    def flaky(sc, spec, **kw):
        if spec.name.startswith("early-cow"):
            raise RuntimeError("model bug")
        return real(sc, spec, **kw)

    monkeypatch.setattr(timeline, "run", flaky)
    f = SCENARIOS / "versions" / "ksm-page-reuse-window.cow"
    sc = load_text(f.read_text(), str(f))
    [known] = timeline.prefetch([sc], workers=Workers(1))
    assert any(isinstance(v, RuntimeError) for v in known.values())
    with pytest.raises(RuntimeError, match="model bug"):
        timeline.build(sc, verdicts=known)
    code, out, err = cli(capsys, "timeline", "-j", 1, f, SCENARIOS / "races" / "s12-gup-fast-pin-vs-fork.cow")
    assert code == 2
    assert f"cowdsl: {f}: internal error while drawing its timeline: RuntimeError: model bug" in err
