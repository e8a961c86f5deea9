"""O_DIRECT natively: `odirect_read` / `odirect_write` as a 4 KiB pread/pwrite with O_DIRECT of
the scenario's disk file, in a `par` block as a Linux AIO request in flight while the other
actors run; the host's probe of its temporary directory; what a guest switches on for it.

The unit tests need no kernel support.  The integration tests run where the host's temporary
directory does direct I/O (``probe().odirect``), and are skipped with the reason elsewhere
(tmpfs, say).  Native observes page identity (pagemap) and bytes, never which kind of reference
the bio took: that is the kernel's (FOLL_GET before 6.5, FOLL_PIN from a7e689dd1c06).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import sys
import textwrap
import threading
from types import SimpleNamespace

import pytest

from cowdsl import scenario as S
from cowdsl.kernels import cache, guest, qemu, vm
from cowdsl.kernels.errors import KernelError
from cowdsl.native import aio, controller, host, plan, skip_reason, translate, worker
from cowdsl.native import libc as L


def load(text: str, name: str = "odirect.cow"):
    from cowdsl.load import load_text

    return load_text(textwrap.dedent(text).strip() + "\n", name)


_SKIP = skip_reason()
_NO_ODIRECT = _SKIP or (None if _SKIP else host.probe().odirect)
needs_odirect = pytest.mark.skipif(_NO_ODIRECT is not None, reason=f"O_DIRECT natively: {_NO_ODIRECT}")

SEQUENTIAL = """
    process A
    file F = [9]
    A: mmap(buf, anon, private, rw)
    A: write(buf, 1)
    A: odirect_read(buf, file=F)
    A: read(buf) as v
    A: write(buf, 5)
    A: odirect_write(buf, file=F)
    assert v == 9
    assert A.buf == 5 and F[0] == 5
"""

# The corpus's odirect-read-in-flight-fork.cow breaks COW with `gup(buf, write)`, which native
# refuses; a long-term write pin faults the same way without a store (and runs natively).
IN_FLIGHT_FORK = """
    process A
    thread T of A
    file F = [9]
    A: mmap(buf, anon, private, rw)
    A: write(buf, 1)
    par {
      T: odirect_read(buf, file=F)
      A: fork() as B
      A: pin(buf, write, longterm) as r
    }
    always: A.buf == 9
    never: B.buf == 9 and A.buf != 9
"""


# --- the planner --------------------------------------------------------------------------------


def test_odirect_is_translated_not_refused():
    assert {"odirect_read", "odirect_write"} <= set(translate.OPS)
    assert not {"odirect_read", "odirect_write"} & set(plan.REFUSED)
    assert {"odirect_read", "odirect_write"} <= set(worker.COMMANDS) & set(worker.PREPARE)


@pytest.mark.parametrize("op", ["odirect_read", "odirect_write"])
def test_a_host_without_direct_io_skips_the_step_with_the_probes_reason(op):
    st = S.Step(number=3, actor="A", task="A", op=op, file="F", text=f"A: {op}(buf, file=F)")
    tmpfs = SimpleNamespace(swap=False, odirect="/tmp is on tmpfs: it has no direct I/O")
    assert plan.step_problem(st, tmpfs) == f"unsupported on this host: `A: {op}(buf, file=F)`: /tmp is on tmpfs: " \
                                           "it has no direct I/O"
    assert plan.step_problem(st, SimpleNamespace(swap=False, odirect=None)) is None
    assert "not probed" in plan.step_problem(st, SimpleNamespace(swap=False))


def test_a_memfd_file_has_no_direct_io():
    sc = load("""
        process A
        file F = [9] on memfd
        A: mmap(buf, anon, private, rw)
        A: odirect_read(buf, file=F)
        assert A.buf == 9
    """)
    fine = SimpleNamespace(reason=None, swap=True, odirect=None)
    number, why = plan.problem(sc, fine, controller.Limits())
    assert number == 2 and why.startswith("unsupported on native: `A: odirect_read(buf, file=F)`: O_DIRECT needs "
                                          "a disk file; F is a `memfd` file")


def test_the_gup_refusals_never_say_o_direct_pins_before_6_5():
    assert "O_DIRECT pins" not in plan.UNSUPPORTED_GUP and "O_DIRECT pins" not in plan.UNSUPPORTED_GUP_DIO
    assert "O_DIRECT read in flight" in plan.UNSUPPORTED_GUP_DIO


def test_only_an_odirect_request_in_a_par_block_needs_the_guests_delay():
    assert plan.guest_needs(load(IN_FLIGHT_FORK)) == frozenset({"dm-delay"})
    assert plan.guest_needs(load(SEQUENTIAL)) == frozenset()
    # the corpus's own version breaks COW with gup(buf, write), which native refuses: it needs nothing
    refused = IN_FLIGHT_FORK.replace("A: pin(buf, write, longterm) as r", "A: gup(buf, write) as r")
    assert plan.guest_needs(load(refused)) == frozenset()


# --- the translation ----------------------------------------------------------------------------


class _FakeTranslator:
    """What ``translate.odirect`` uses of a Translator: the step's address, the file's path, the
    actor of this thread's par block, and ``simple`` (here: the command it would send)."""

    def __init__(self, actor: str | None):
        self.block = threading.local()
        self.block.actor = actor
        self.ctl = SimpleNamespace(files={"F": "/run/dir/file-F"})
        self.sent: list[dict] = []

    def address(self, a: S.Addr) -> int:
        return 0x100000100000 + a.index * L.PAGE

    def simple(self, st, cmd, value_key=None, addr=None):
        self.sent.append({**cmd, "snapshot": addr})
        return "reply", []


@pytest.mark.parametrize("actor, asynchronous", [(None, False), ("T", True)])
@pytest.mark.parametrize("op", ["odirect_read", "odirect_write"])
def test_sequentially_a_pread_and_in_a_par_block_an_asynchronous_request(op, actor, asynchronous):
    t = _FakeTranslator(actor)
    addr = S.Addr("A", "buf", 1)
    st = S.Step(number=3, actor="T", task="A", op=op, addr=addr, file="F", par=actor is not None)
    assert translate.OPS[op](t, st) == ("reply", [])  # type: ignore[arg-type]
    assert t.sent == [{"op": op, "addr": 0x100000101000, "path": "/run/dir/file-F", "async": asynchronous,
                       "snapshot": addr}]


def test_the_worker_reports_a_failed_set_up_as_the_steps_error(tmp_path):
    w = worker.Worker.__new__(worker.Worker)
    reply = worker.Worker.execute(w, {"op": "odirect_read", "addr": 0x100000100000,
                                      "path": str(tmp_path / "missing"), "async": False}, [])
    assert reply is not None and reply["ok"] is False and reply["error"] == "ENOENT"


def test_aio_structures_have_the_kernels_layout():
    assert ctypes.sizeof(aio.Iocb) == 64 and ctypes.sizeof(aio.IoEvent) == 32
    assert aio.Iocb.aio_lio_opcode.offset == 16 and aio.Iocb.aio_buf.offset == 24  # include/uapi/linux/aio_abi.h
    assert aio.Iocb.aio_offset.offset == 40 and aio.Iocb.aio_flags.offset == 56


# --- the probe ----------------------------------------------------------------------------------


def test_tmpfs_is_refused_even_where_it_accepts_o_direct(monkeypatch, tmp_path):
    # from 6.6 tmpfs opens O_DIRECT (FMODE_CAN_ODIRECT) but copies through the page cache
    monkeypatch.setattr(host, "_fs_magic", lambda path: host.TMPFS_MAGIC)
    why = host._probe_odirect(str(tmp_path))
    assert why is not None and why.startswith(f"{tmp_path} is on tmpfs: it has no direct I/O") and "TMPDIR" in why


def test_a_file_system_without_direct_io_gives_the_open_error(monkeypatch, tmp_path):
    real_open = os.open

    def refuse(path, flags, *a):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *a)

    monkeypatch.setattr(host, "_fs_magic", lambda path: None)
    monkeypatch.setattr(os, "open", refuse)
    assert host._probe_odirect(str(tmp_path)) == (f"open(O_DIRECT) of a file in {tmp_path}: Invalid argument "
                                                  "(the file system has no direct I/O)")
    assert os.listdir(tmp_path) == []  # the probe's file is removed


@pytest.mark.skipif(host._fs_magic("/dev/shm") != host.TMPFS_MAGIC, reason="/dev/shm is not tmpfs here")
def test_the_real_tmpfs_is_refused():
    assert "is on tmpfs" in (host._probe_odirect("/dev/shm") or "")


@needs_odirect
def test_the_hosts_temporary_directory_does_direct_io():
    assert host._probe_odirect() is None
    assert "O_DIRECT in " in host.probe().describe()


@needs_odirect
def test_the_controller_writes_a_direct_io_file_with_o_direct(tmp_path):
    path = str(tmp_path / "f")
    controller.write_direct(path, b"\x09" + bytes(L.PAGE - 1) + b"\x07" + bytes(L.PAGE - 1))
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) == 2 * L.PAGE and data[0] == 9 and data[L.PAGE] == 7


# --- on this host's kernel ----------------------------------------------------------------------


@needs_odirect
def test_a_sequential_read_and_write_move_the_page():
    from cowdsl.native import run_native

    r = run_native(load(SEQUENTIAL))
    assert [c.holds for c in r.checks] == [True, True]
    events = [e.text for s in r.steps if s.step.op.startswith("odirect") for e in s.events]
    assert any("pread(O_DIRECT" in e and "→ 4096" in e for e in events)
    assert any("pwrite(O_DIRECT" in e and "→ 4096" in e for e in events)


@needs_odirect
def test_a_read_into_a_read_only_page_is_efault_as_in_the_model():
    from cowdsl.native import run_native
    from cowdsl.run import run

    sc = load("""
        process A
        file F = [9]
        A: mmap(buf, anon, private, ro)
        A: odirect_read(buf, file=F) as io
        assert failed(io)
    """)
    native, model = run_native(sc), run(sc, "anon-exclusive")
    assert native.steps[1].outcome.error == model.steps[1].outcome.error == "EFAULT"
    assert [c.holds for c in native.checks] == [True]


@needs_odirect
def test_in_a_par_block_the_read_is_submitted_asynchronously():
    from cowdsl.kernels.version import upstream
    from cowdsl.native import native_runs

    runs = native_runs(load(IN_FLIGHT_FORK), repeat=3)
    for r in runs.results:
        read = next(s for s in r.steps if s.step.op == "odirect_read")
        assert read.outcome.ok, read.outcome
        assert any("io_submit(IOCB_CMD_PREAD, O_DIRECT" in e.text for e in read.events)
    major, minor = re.match(r"(\d+)\.(\d+)", upstream(host.probe().kernel)).groups()  # type: ignore[union-attr]
    if (int(major), int(minor)) >= (6, 5):  # the bio pins the page (a7e689dd1c06): the data never lands in the child's page
        assert [c.holds for c in runs.result.checks] == [True, True]


# --- in a guest: /tmp behind dm-delay -----------------------------------------------------------------------------------

LATENCY = """
import ctypes, os, tempfile, time
from cowdsl.native import aio, libc as L
from cowdsl.native.controller import write_direct
d = tempfile.mkdtemp(); p = os.path.join(d, "f"); write_direct(p, b"x" * 4096)
buf = L.mmap(0, 4096, 3, L.MAP_PRIVATE | L.MAP_ANONYMOUS)
fd = os.open(p, os.O_RDONLY | os.O_DIRECT); ctx = aio.Context()
t0 = time.monotonic(); ctx.submit(aio.IOCB_CMD_PREAD, fd, buf, 4096); t1 = time.monotonic()
early = ctx.poll(); res = ctx.wait(); t2 = time.monotonic()
print(early, res, round((t1 - t0) * 1000), round((t2 - t1) * 1000))
"""


def test_in_a_guest_an_o_direct_read_stays_in_flight_behind_dm_delay():
    if os.environ.get("COWDSL_KERNEL_TESTS") == "0":
        pytest.skip("COWDSL_KERNEL_TESTS=0")
    k = cache.find("6.1")
    if k is None:
        pytest.skip(f"no 6.1 kernel prepared in {cache.cache_dir()}")
    try:
        qemu.find_qemu(), qemu.find_virtiofsd()
    except KernelError as e:
        pytest.skip(str(e))
    if os.geteuid() != 0:
        pytest.skip("virtiofsd's sandbox needs root")
    r = vm.boot(k, ["sh", "-c", f"grep ' /tmp ' /proc/mounts; {sys.executable} -c '{LATENCY}'"], timeout=300,
                needs={"dm-delay"})
    assert r.exit_code == 0, (r.stdout, r.stderr, r.notes)
    mount, numbers = r.stdout.splitlines()
    assert mount.startswith("/dev/dm-") and " ext4 " in mount
    early, res, submit_ms, flight_ms = numbers.split()
    assert early == "None" and res == "4096"  # in flight when io_submit returned
    assert int(flight_ms) >= guest.DM_DELAY_MS * 0.9
