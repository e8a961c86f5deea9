"""The native backend cleans up after itself, whatever happens.

Every process a run creates is reaped (errors, timeouts, killed workers,
Ctrl-C), no file is left outside the run's private temporary directory, which
is removed, and no io_uring ring stays registered.
"""

from __future__ import annotations

import glob
import os
import random
import signal
import tempfile
import textwrap
import time

import helpers_children
import pytest

from cowdsl.native import skip_reason

_SKIP = skip_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")

POOL = [
    """
    process A
    A: mmap(buf, anon, private, rw, pages=2)
    A: write(buf, 1)
    A: pin(buf, write, longterm) as mr
    A: fork() as B
    B: fork() as C
    A: write(buf, 2)
    B: write(buf, 3)
    C: write(buf[1], 4)
    mr: dma_write(5)
    mr: dma_read() as d
    assert A.buf == 5 and d == 5
    assert mr is A.buf
    """,
    """
    process A
    thread T of A
    pipe P
    A: mmap(buf, anon, private, rw)
    T: write(buf, 1)
    T: vmsplice(buf, P)
    A: fork() as B
    B: write(buf, 2)
    A: pipe_read(P) as v
    A: pin(buf, write, longterm) as mr
    B: exit()
    assert v == 1
    """,
    """
    process A, C
    file F = [1, 2]
    A: mmap(text, private, ro, file=F)
    A: mmap(buf, anon, private, rw)
    A: read(text[1]) as t
    C: proc_mem_write(A.text, 9)
    C: process_vm_writev(A.buf, 3)
    A: fork() as B
    B: write(text, 4) as w
    C: process_vm_readv(A.buf) as v
    assert segv(B) and v == 3 and A.text == 9
    """,
    """
    process A
    A: mmap(buf, anon, private, rw)
    A: write(buf, 1)
    A: madvise(buf, dontfork)
    A: pin(buf, write, longterm) as mr
    A: fork() as B
    B: fork() as C
    C: fork() as D
    D: read(buf) as v
    A: unpin(mr)
    A: munmap(buf)
    assert segv(D)
    """,
]


def scenarios():
    from cowdsl.load import load_text

    return [load_text(textwrap.dedent(t).strip() + "\n", f"pool{i}.cow") for i, t in enumerate(POOL)]


@pytest.fixture(autouse=True)
def _children_before():
    helpers_children.snapshot()


_children = helpers_children.left


def _pgid_members(pgids: set[int]) -> list[int]:
    out = []
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[2]) in pgids:
            out.append(int(path.split("/")[2]))
    return out


def _fds() -> dict[str, str]:
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return out


class Injector:
    """Random failures: a killed worker, a hung step, a Ctrl-C, at a random step."""

    def __init__(self, rng: random.Random, sc, pgids: set[int]):
        self.kind = rng.choice(["none", "kill", "kill", "kill-all", "hang", "interrupt"])
        self.at = rng.randint(1, len(sc.steps))
        self.rng = rng
        self.pgids = pgids

    def __call__(self, step, ctl):
        if ctl.pgid is not None:
            self.pgids.add(ctl.pgid)
        if step.number != self.at or self.kind == "none":
            return
        alive = [p for p in ctl.procs.values() if p.alive]
        if self.kind == "kill" and alive:
            os.kill(self.rng.choice(alive).pid, signal.SIGKILL)
        elif self.kind == "kill-all":
            for p in alive:
                os.kill(p.pid, signal.SIGKILL)
        elif self.kind == "hang" and alive:
            ctl.call(self.rng.choice(alive), {"op": "sleep", "seconds": 30, "thread": None})
        elif self.kind == "interrupt":
            raise KeyboardInterrupt


@pytest.mark.slow
def test_200_runs_with_injected_failures_leave_nothing_behind(tmp_path, monkeypatch):
    from cowdsl.native import Limits, run_native

    pool = scenarios()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # every run's temp dir goes here
    rng = random.Random(20260)
    before_fds = _fds()
    pgids: set[int] = set()
    limits = Limits(step_timeout=0.25, worker_alarm=60)
    kinds = {}
    t0 = time.monotonic()
    for i in range(200):
        sc = rng.choice(pool)
        inj = Injector(rng, sc, pgids)
        kinds[inj.kind] = kinds.get(inj.kind, 0) + 1
        try:
            r = run_native(sc, limits=limits, inject=inj)
        except KeyboardInterrupt:
            assert inj.kind == "interrupt"
            continue
        if inj.kind == "hang":
            assert r.verdict == "skip" and "aborted" in r.checks[0].values["unsupported"]
        assert not _children(), f"run {i} ({inj.kind}) left children"
    assert time.monotonic() - t0 < 60
    assert set(kinds) == {"none", "kill", "kill-all", "hang", "interrupt"}
    assert not _children()
    assert not _pgid_members(pgids), "a process of a run is still alive"
    assert list(tmp_path.iterdir()) == []
    after = _fds()
    assert not [v for v in after.values() if "io_uring" in v]
    assert set(after) <= set(before_fds) | {k for k, v in after.items() if v == before_fds.get(k)}
    assert len(after) <= len(before_fds)


def test_killed_worker_is_reported_and_later_steps_do_not_run():
    from cowdsl.native import run_native

    sc = scenarios()[0]

    def kill_b(step, ctl):
        if step.number == 7:  # before A: write(buf, 2); B exists
            os.kill(ctl.procs["B"].pid, signal.SIGKILL)

    r = run_native(sc, inject=kill_b)
    by_op = {rec.step.number: rec.outcome for rec in r.steps}
    assert by_op[7].error == "killed by SIGKILL"  # B: write(buf, 3)
    assert by_op[8].ok  # C lives on
    assert r.checks[0].holds is True
    assert not _children()


def test_orphans_of_killed_workers_are_reaped():
    from cowdsl.native import run_native

    sc = scenarios()[3]
    seen = {}

    def kill_parents(step, ctl):
        if step.number == 9:  # D: read(buf): kill A, B and C first; D is an orphan
            seen["pgid"] = ctl.pgid
            seen["pids"] = [p.pid for p in ctl.procs.values()]
            for name in ("A", "B", "C"):
                os.kill(ctl.procs[name].pid, signal.SIGKILL)

    r = run_native(sc, inject=kill_parents)
    assert r.checks[0].holds is True  # D still faults for real
    assert not _pgid_members({seen["pgid"]})
    assert not _children()


def test_step_timeout_aborts_the_run():
    from cowdsl.native import Limits, run_native

    def hang(step, ctl):
        if step.number == 3:
            ctl.call(ctl.procs["A"], {"op": "sleep", "seconds": 30, "thread": None})

    t0 = time.monotonic()
    r = run_native(scenarios()[0], limits=Limits(step_timeout=0.3), inject=hang)
    assert time.monotonic() - t0 < 5
    assert r.verdict == "skip"
    assert "run aborted at step 3" in r.checks[0].values["unsupported"]
    assert r.steps[2].outcome.error.startswith("timeout")
    assert all(rec.outcome.error.startswith("not run") for rec in r.steps[3:])
    assert not _children()


def test_whole_run_timeout():
    from cowdsl.native import run_native

    def slow(step, ctl):
        time.sleep(0.05)

    r = run_native(scenarios()[0], timeout=0.2, inject=slow)
    assert r.verdict == "skip" and "aborted" in r.checks[0].values["unsupported"]
    assert not _children()


def test_interrupt_cleans_up_and_propagates(tmp_path, monkeypatch):
    from cowdsl.native import run_native

    sc = scenarios()[0]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def ctrl_c(step, ctl):
        if step.number == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_native(sc, inject=ctrl_c)
    assert not _children()
    assert list(tmp_path.iterdir()) == []


def test_files_only_in_a_private_temp_dir_which_is_removed(tmp_path, monkeypatch):
    from cowdsl.native import run_native

    sc = scenarios()[2]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []

    def look(step, ctl):
        seen.append(ctl.tmp)

    r = run_native(sc, inject=look)
    assert r.verdict == "pass", r.checks
    assert seen and all(os.path.dirname(d) == str(tmp_path) for d in seen)
    assert list(tmp_path.iterdir()) == []


def test_subreaper_setting_is_restored():
    from cowdsl.native import libc, run_native

    before = libc.get_subreaper()
    run_native(scenarios()[1])
    assert libc.get_subreaper() == before
