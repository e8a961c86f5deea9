"""A native run killed by a signal leaves nothing behind.

A real `cowdsl run --backend native FILE` process is stopped by a real signal
in the middle of a step (a hook makes that step wait; the scenario has a
worker, the worker's forked child and a long-term pin):

- SIGTERM and SIGHUP are handled like SIGINT: the run is torn down (every
  worker killed and reaped, the private temporary directory removed) and the
  process exits with 128 + the signal;
- SIGKILL cannot be handled: the directory's guard removes it, and the
  workers, whose channels reach EOF, exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from cowdsl.native import skip_reason

_SKIP = skip_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")

SCENARIO = """\
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
A: pin(buf, write, longterm) as mr
A: fork() as B
B: write(buf, 2)
assert mr is A.buf
"""

# The CLI, with the step `B: write(buf, 2)` made to wait (in the controller, as a slow
# answer would): it first says where the run's directory is and which processes it has.
DRIVER = textwrap.dedent("""
    import json, signal, sys, time
    from cowdsl.cli import main
    from cowdsl.native.controller import Controller

    # as started from a terminal, whatever the test runner ignores
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)

    real = Controller.call

    def call(self, p, cmd, fds=(), **kw):
        if cmd.get("op") == "write" and cmd.get("value") == 2:
            print(json.dumps({"tmp": self.tmp, "pids": sorted(self.all_pids)}), flush=True)
            time.sleep(60)
        return real(self, p, cmd, fds, **kw)

    Controller.call = call
    sys.exit(main(["run", "--backend", "native", sys.argv[1]]))
""")


def _left(tmpdir) -> list[str]:
    """The runs' directories in ``tmpdir`` (Lark keeps its parser cache there too)."""
    return [p.name for p in tmpdir.iterdir() if p.name.startswith("cowdsl-native-")]


def _running(pid: int) -> bool:
    """Alive and not a zombie (a dead worker reparented to a PID 1 that does not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] not in ("Z", "X")


def _wait_until(cond, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def _start(tmp_path):
    """The driver, stopped in the middle of the run: (process, TMPDIR, what it said)."""
    (tmp_path / "s.cow").write_text(SCENARIO)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    with open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / "s.cow")], stdout=subprocess.PIPE,
                                stderr=err, env=env, cwd=tmp_path)
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        proc.stdout.close()
        pytest.fail("the driver stopped before the step: " + (tmp_path / "stderr").read_text())
    where = json.loads(line)
    assert os.path.dirname(where["tmp"]) == str(tmpdir) and os.path.isdir(where["tmp"])
    assert len(where["pids"]) == 2 and all(_running(p) for p in where["pids"])
    return proc, tmpdir, where


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_term_and_hup_tear_the_run_down_like_int(tmp_path, sig):
    proc, tmpdir, where = _start(tmp_path)
    try:
        proc.send_signal(sig)
        assert proc.wait(20) == 128 + sig, (tmp_path / "stderr").read_text()
    finally:
        proc.kill()
        proc.stdout.close()
    assert _left(tmpdir) == [], "the run's temporary directory is left behind"
    assert not any(_running(p) for p in where["pids"]), "a worker outlived the run"
    err = (tmp_path / "stderr").read_text()
    assert "Traceback" not in err, err


def test_sigkill_leaves_no_directory_and_no_worker(tmp_path):
    proc, tmpdir, where = _start(tmp_path)
    try:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(20) == -signal.SIGKILL
    finally:
        proc.stdout.close()
    assert _wait_until(lambda: _left(tmpdir) == []), "the run's temporary directory is left behind"
    assert _wait_until(lambda: not any(_running(p) for p in where["pids"])), "a worker outlived the run"
