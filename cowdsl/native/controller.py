"""The lifecycle of a native run's processes: spawning, talking, timeouts, deaths, reaping.

Each scenario process is a worker (cowdsl.native.worker), an initial one
forked from here, a child forked by its parent worker.  The controller talks
to each over a SOCK_SEQPACKET socketpair (a declared thread of it has one of
its own), one command per step, and waits for the answer with a timeout.  What each step asks of the workers is decided in
``cowdsl.native.translate``; this module knows processes, not ops.

Safety:
- every worker is in one process group of our own and this process is a
  child subreaper for the run, so orphans of dead workers come back to us;
- dead workers are left as zombies (waitid WNOWAIT, or /proc/PID/stat for a
  worker's child) until the end, so no PID is reused while the run can still
  name it;
- ``close()`` (always called: errors, timeouts, Ctrl-C, SIGTERM, SIGHUP) closes
  the channels, SIGKILLs every worker by PID and the group, reaps them all,
  closes the pipes and removes the private temporary directory, which holds
  every file the run writes;
- that directory cannot outlive the run even when this process is SIGKILLed:
  a guard process, in a process group of its own and deaf to INT/TERM/HUP,
  reads a pipe only we hold and removes the directory when it reads EOF; a
  worker whose channel reaches EOF exits;
- while a run is in progress in the main thread, SIGTERM and SIGHUP are
  handled like SIGINT (``terminable()``): they raise ``Terminated`` where the
  run is, the run is torn down, and the process exits with 128 + the signal.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import resource
import select
import shutil
import signal
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from attrs import define, field, frozen

from cowdsl import scenario as S
from cowdsl.native import barrier, worker
from cowdsl.native import libc as L

TMP_PREFIX = "cowdsl-native-"
#: the signals a run turns into a clean tear-down (SIGINT is KeyboardInterrupt already)
TEARDOWN_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_HELD = {signal.SIGINT, *TEARDOWN_SIGNALS}
# The guard of a private directory ($1): wait for EOF on stdin (the end of the run, or of
# the process that ran it, SIGKILL included), then remove the directory if it is still there.
_GUARD = 'trap "" INT TERM HUP QUIT; while read -r _; do :; done; exec rm -rf -- "$1"'

T = TypeVar("T")


@frozen
class Limits:
    """Bounds on what one native run may use."""

    max_processes: int = 16
    max_pages: int = 1024  # pages mapped by mmap steps, all processes together
    max_pages_per_mapping: int = 64  # one mapping fits its address slot (STRIDE) with a gap after it
    max_steps: int = 400
    step_timeout: float = 5.0  # seconds for one step's answer
    worker_alarm: int = 120  # seconds: a worker kills itself after this (dead man's switch)


class StepTimeout(Exception):
    pass


class Died(Exception):
    pass


class Terminated(SystemExit):
    """SIGTERM or SIGHUP during a native run, raised where the run is (as SIGINT raises
    KeyboardInterrupt) so that it is torn down; uncaught, it exits with 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminable() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP raise ``Terminated`` (main thread only, and only where
    their disposition is the default, which would kill the process mid-run; a
    caller's own handler, or SIG_IGN under nohup, is left alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old: dict[signal.Signals, Any] = {}
    try:
        for s in TEARDOWN_SIGNALS:
            if signal.getsignal(s) == signal.SIG_DFL:
                old[s] = signal.signal(s, _raise_terminated)
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def uninterrupted(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` with SIGINT, SIGTERM and SIGHUP held back (main thread), so a signal
    cannot cut a set-up or a clean-up short; one that arrived is delivered right after."""
    main = threading.current_thread() is threading.main_thread()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD) if main else None
    try:
        return fn(*args)
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


@define
class Proc:
    name: str
    pid: int
    sock: socket.socket | None  # the channel of its main thread
    ours: bool  # a direct child of the controller
    mappings: dict[str, tuple[int, int]] = field(factory=dict)  # name -> (addr, pages)
    threads: tuple[str, ...] = ()
    chans: dict[str, socket.socket] = field(factory=dict)  # a declared thread's own channel
    alive: bool = True
    segv: bool = False
    status: str = ""
    faults: int = 0

    def addr(self, mapping: str, index: int) -> int | None:
        got = self.mappings.get(mapping)
        return None if got is None else got[0] + index * L.PAGE

    def channel(self, thread: str | None) -> socket.socket | None:
        """The channel of ``thread`` (None: the main thread); None once the process is gone."""
        return self.sock if thread is None or self.sock is None else self.chans.get(thread)

    def hang_up(self) -> None:
        """Close every channel (the process is dead, or the run is over)."""
        for chan in (self.sock, *self.chans.values()):
            if chan is not None:
                chan.close()
        self.sock = None
        self.chans = {}


class PrivateDir:
    """The run's private temporary directory (``cowdsl-native-PID-XXXXXXXX``, mode 0700),
    and the guard process that removes it if this process dies without doing so."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-")
        self._guard_pid: int | None = None
        self._guard_fd: int | None = None
        try:
            self._guard()
        except OSError:  # no guard (no /bin/sh?): remove() still removes the directory
            self._guard_pid = self._guard_fd = None

    def _guard(self) -> None:
        """Spawn the guard: a shell reading a pipe only this process holds.  (posix_spawn,
        not fork: no copy of this process's page tables, and no COW faults on its
        memory while the run lasts.)"""
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = os.posix_spawn(
                "/bin/sh", ["sh", "-c", _GUARD, "cowdsl-native-guard", self.path], {"PATH": "/usr/bin:/bin"},
                file_actions=[(os.POSIX_SPAWN_DUP2, r, 0), (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                              (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)],
                setpgroup=0, setsigmask=(),
            )
        except BaseException:
            os.close(w)
            raise
        finally:
            os.close(r)
        self._guard_pid, self._guard_fd = pid, w

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._guard_fd is not None:
            os.close(self._guard_fd)
            self._guard_fd = None
        if self._guard_pid is not None:
            try:
                os.kill(self._guard_pid, signal.SIGKILL)  # the directory is gone: nothing left to guard
            except OSError:
                pass
            try:
                os.waitpid(self._guard_pid, 0)
            except ChildProcessError:
                pass
            self._guard_pid = None


def write_direct(path: str, data: bytes) -> None:
    """Write a file with O_DIRECT (from a page-aligned buffer), so that its blocks are on the disk
    and none of it is in the page cache: an O_DIRECT read of it then goes straight to the device
    (iomap_dio_rw would first write dirty pages back, before it takes the user page), with no
    fsync (behind the guest's dm-delay a fsync's journal commit is several delayed writes)."""
    length = -(-len(data) // L.PAGE) * L.PAGE
    if not length:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        return
    buf = L.mmap(0, length, L.PROT_READ | L.PROT_WRITE, L.MAP_PRIVATE | L.MAP_ANONYMOUS)
    try:
        ctypes.memmove(buf, data, len(data))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT | os.O_CLOEXEC, 0o600)
        try:
            if os.pwritev(fd, [(ctypes.c_char * length).from_address(buf)], 0) != length:
                raise OSError(0, f"short O_DIRECT write of {path}")
        finally:
            os.close(fd)
    finally:
        L.munmap(buf, length)


class Controller:
    """The run's processes and what they share: channels, pipes, files, the temporary directory."""

    def __init__(self, sc: S.Scenario, limits: Limits, deadline: float):
        self.sc = sc
        self.limits = limits
        self.deadline = deadline
        self.procs: dict[str, Proc] = {}
        self.pipes: dict[str, tuple[int, int]] = {}
        self.files: dict[str, str] = {}
        self.pgid: int | None = None
        self.all_pids: set[int] = set()
        self._dir = PrivateDir()
        self.tmp = self._dir.path
        self._counter = itertools.count(1)  # (actors of a par block ask for paths at once)
        self._prev_subreaper: int | None = None
        self._prev_affinity: set[int] | None = None
        self.cpu: int | None = None
        self.cpus: tuple[int, ...] = ()  # the CPUs the run may use: a par block's actors are spread over them
        self.leaks: list[str] = []
        self._fds: list[int] = []  # memfds of the scenario's files not on disk

    # --- set-up -----------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._prev_subreaper = L.get_subreaper()
            L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
        except OSError:
            self._prev_subreaper = None
        self._one_cpu()
        kinds = dict(getattr(self.sc, "file_kinds", ()))
        direct = {st.file for st in self.sc.steps if st.op in ("odirect_read", "odirect_write")}
        for fname, contents in self.sc.files:
            kind = kinds.get(fname, "disk")
            if kind == "disk":
                path = os.path.join(self.tmp, f"file-{fname}")
                data = b"".join(struct.pack("<Q", v) + bytes(L.PAGE - 8) for v in contents)
                if fname in direct:
                    write_direct(path, data)
                else:
                    with open(path, "wb") as f:
                        f.write(data)
            else:
                path = self._memfd(fname, kind, contents)
            self.files[fname] = path
        for p in self.sc.pipes:
            self.pipes[p] = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        threads: dict[str, list[str]] = {}
        for t, proc in self.sc.threads:
            threads.setdefault(proc, []).append(t)
        for name in self.sc.processes:
            self.spawn(name, tuple(threads.get(name, ())))

    def _memfd(self, fname: str, kind: str, contents: Sequence[int]) -> str:
        """A `memfd` file (memfd_create: a shmem inode) or a `hugetlbfs` one (MFD_HUGETLB, its
        huge pages fallocate()d, zeros only: plan.py checks), held open here until the run ends;
        the workers and the observation open it as /proc/PID/fd/N, the same inode."""
        if kind == "hugetlbfs":
            fd = os.memfd_create(f"cowdsl-{fname}", os.MFD_CLOEXEC | os.MFD_HUGETLB)
            self._fds.append(fd)
            os.posix_fallocate(fd, 0, len(contents) * L.HUGE)
        else:
            fd = os.memfd_create(f"cowdsl-{fname}", os.MFD_CLOEXEC)
            self._fds.append(fd)
            os.write(fd, b"".join(struct.pack("<Q", v) + bytes(L.PAGE - 8) for v in contents))
        return f"/proc/{os.getpid()}/fd/{fd}"

    def spawn(self, name: str, threads: tuple[str, ...]) -> None:
        ctl, wk = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pairs = {t: socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for t in threads}
        keep = [wk.fileno()] + [fd for pair in self.pipes.values() for fd in pair]
        pgid = self.pgid or 0
        pid = os.fork()
        if pid == 0:  # pragma: no cover  (runs in the worker)
            try:
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                worker.start(name, wk, keep, dict(self.pipes), {t: w for t, (_c, w) in pairs.items()}, pgid,
                             self.limits.worker_alarm)
            finally:
                os._exit(1)
        wk.close()
        for _c, w in pairs.values():
            w.close()
        self.all_pids.add(pid)
        try:
            os.setpgid(pid, pgid or pid)
        except OSError:
            pass
        if self.pgid is None:
            self.pgid = pid
        p = Proc(name, pid, ctl, True, threads=threads, chans={t: c for t, (c, _w) in pairs.items()})
        self.procs[name] = p
        hello = self.wait(p, self.limits.step_timeout)
        if "hello" not in hello:
            raise RuntimeError(f"worker {name} did not start")

    def adopt(self, name: str, pid: int, sock: socket.socket, mappings: dict[str, tuple[int, int]]) -> Proc:
        """A child a worker forked, on the channel ``sock``: recorded, then its hello is
        awaited (Died: it is dead already; StepTimeout: it is killed)."""
        self.all_pids.add(pid)
        child = Proc(name, pid, sock, False, mappings=dict(mappings))
        self.procs[name] = child
        try:
            self.wait(child, self.timeout())
        except StepTimeout:
            self.kill(child)
            raise
        return child

    def _one_cpu(self) -> None:
        """Run the whole scenario on one CPU: this process and the workers it forks (they inherit
        the affinity).  A page a worker just faulted in sits in that CPU's LRU batch; MADV_PAGEOUT
        drains only its own CPU's batch, so from another CPU it skips the page, and a write fault's
        reuse check sees the batch's extra reference only when the batch is on another CPU."""
        try:
            allowed = os.sched_getaffinity(0)
            cpu = L.current_cpu()
            if cpu not in allowed:
                cpu = min(allowed)
            if len(allowed) > 1:
                os.sched_setaffinity(0, {cpu})
                self._prev_affinity = allowed
            self.cpu = cpu
            self.cpus = tuple(sorted(allowed))
        except (OSError, AttributeError, ValueError):
            self._prev_affinity = None

    def settle(self) -> None:
        """After a par block whose actors ran on other CPUs: every thread of every live worker
        (a child forked there included) back on the run's CPU."""
        if self.cpu is None or len(self.cpus) < 2:
            return
        for p in self.procs.values():
            if not p.alive:
                continue
            try:
                tids = [int(t) for t in os.listdir(f"/proc/{p.pid}/task")]
            except OSError:
                continue
            for tid in tids:
                try:
                    os.sched_setaffinity(tid, {self.cpu})
                except OSError:
                    pass

    # --- talking to workers --------------------------------------------------------
    def timeout(self, bound: float | None = None) -> float:
        return max(0.0, min(bound or self.limits.step_timeout, self.deadline - time.monotonic()))

    def wait(self, p: Proc, timeout: float, thread: str | None = None) -> dict[str, Any]:
        chan = p.channel(thread)
        if chan is None:
            raise Died(p.name)
        try:
            r, _, _ = select.select([chan], [], [], timeout)
        except (OSError, ValueError):  # closed meanwhile: another actor of a par block saw it die
            raise Died(p.name) from None
        if not r:
            raise StepTimeout(f"no answer from {p.name} (pid {p.pid}) in {timeout:.1f}s")
        try:
            msg, fds = worker.recv(chan)
        except (ConnectionError, OSError):
            msg, fds = None, []
        for fd in fds:
            os.close(fd)
        if msg is None:
            raise Died(p.name)
        return msg

    def call(self, p: Proc, cmd: dict[str, Any], fds: Sequence[int] = (), gate: barrier.Gate | None = None,
             actor: str = "") -> dict[str, Any]:
        """Send ``cmd`` on the channel of its ``thread`` and wait for the answer.  With ``gate``, the
        command is the first of ``actor`` in a par block: the worker answers once when it is at the
        gate (``actor`` is then ready), again when it has run the command after the release."""
        thread = cmd.get("thread")
        chan = p.channel(thread)
        if chan is None:
            raise Died(p.name)
        if gate is not None:
            fds = [*fds, gate.read_fd]
        try:
            worker.send(chan, cmd, fds)
        except (ConnectionError, OSError):  # it died before this step (EPIPE)
            raise Died(p.name) from None
        msg = self.wait(p, self.timeout(), thread)
        if gate is not None and msg.get("armed"):
            gate.ready(actor)  # the gate opens within a step timeout, then the command runs
            msg = self.wait(p, self.timeout(2 * self.limits.step_timeout), thread)
        return msg

    def path(self, what: str) -> str:
        """A fresh file name inside the private temporary directory."""
        return os.path.join(self.tmp, f"{what}-{next(self._counter)}")

    # --- deaths -----------------------------------------------------------------------
    def _status(self, p: Proc) -> tuple[int | None, int | None] | None:
        """(exited_code, signal) once p is dead, without reaping it; None while it runs."""
        if p.ours:
            try:
                r = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                r = None
            if r is not None:
                if r.si_code == os.CLD_EXITED:
                    return r.si_status, None
                return None, r.si_status
        try:
            with open(f"/proc/{p.pid}/stat") as f:
                stat = f.read()
        except OSError:
            return -1, None  # gone: reaped by someone else
        rest = stat[stat.rindex(")") + 2:].split()
        if rest[0] not in ("Z", "X"):
            if not p.ours:  # maybe reparented to us (its parent died): ask again as its parent
                try:
                    r = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                    if r is not None:
                        return (r.si_status, None) if r.si_code == os.CLD_EXITED else (None, r.si_status)
                except ChildProcessError:
                    pass
            return None
        code = int(rest[49])
        return (code >> 8, None) if code & 0x7F == 0 else (None, code & 0x7F)

    def died(self, p: Proc) -> str:
        """Record that p is gone; returns how it ended."""
        deadline = time.monotonic() + 2.0
        st = self._status(p)
        while st is None and time.monotonic() < deadline:
            time.sleep(0.001)
            st = self._status(p)
        p.alive = False
        p.hang_up()
        if st is None:
            p.status = "unknown end"
        elif st[1] is not None:
            p.segv = st[1] == signal.SIGSEGV
            p.status = f"killed by {signal.Signals(st[1]).name}"
        else:
            p.status = f"exited with status {st[0]}"
        return p.status

    def kill(self, p: Proc) -> None:
        if p.alive:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except OSError:
                pass
            self.died(p)

    # --- tear-down ----------------------------------------------------------------------------
    def close(self) -> None:
        """Kill and reap every process of the run, close everything, remove the temp dir."""
        for p in self.procs.values():
            p.hang_up()
        for pid in self.all_pids:
            if self._in_group(pid):  # alive or an unreaped zombie of ours: the PID is still ours
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except OSError:
                pass
        self._reap()
        for r, w in self.pipes.values():
            for fd in (r, w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.pipes = {}
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        self._dir.remove()
        if self._prev_subreaper is not None:
            try:
                L.prctl(L.PR_SET_CHILD_SUBREAPER, self._prev_subreaper)
            except OSError:
                pass
            self._prev_subreaper = None
        if self._prev_affinity is not None:
            try:
                os.sched_setaffinity(0, self._prev_affinity)
            except OSError:
                pass
            self._prev_affinity = None

    def _in_group(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            return False
        return self.pgid is not None and int(stat[stat.rindex(")") + 2:].split()[2]) == self.pgid

    def _reap(self) -> None:
        if self.pgid is None:
            return
        deadline = time.monotonic() + 10.0
        while True:
            try:
                pid, _ = os.waitpid(-self.pgid, os.WNOHANG)
            except ChildProcessError:
                pid = -1
            if pid > 0:
                continue
            try:
                os.killpg(self.pgid, 0)
            except ProcessLookupError:
                return  # nobody of the group is left
            except OSError:
                return
            if time.monotonic() > deadline:
                self.leaks.append(f"process group {self.pgid} still has processes")
                return
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except OSError:
                pass
            time.sleep(0.002)
