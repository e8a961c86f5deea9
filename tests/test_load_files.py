"""Reading a .cow file without trusting it: its type and size are checked before
anything is read, at most the limit (plus one byte) is ever read, and nothing
blocks.  Before, a FIFO hung forever (even one named x.cow in a scenario folder),
/dev/zero grew until MemoryError and a sparse file of gigabytes cost its size in
memory.  The command lines run in a child under a memory limit, so that a
regression fails the test instead of the machine."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from examples import LONG_TERM_PIN

from cowdsl.errors import CowError
from cowdsl.load import NotAFile, find, load, read, scan
from cowdsl.syntax.parser import MAX_SOURCE_BYTES

MEMORY = 1 << 30  # address space of the child: far less than a 6 GB file


def _limited():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def cowdsl(*argv, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python -m cowdsl ARGV` with a bounded memory; a hang is a failure, not a stuck suite."""
    try:
        return subprocess.run([sys.executable, "-m", "cowdsl", *map(str, argv)], capture_output=True, text=True,
                              timeout=timeout, preexec_fn=_limited)
    except subprocess.TimeoutExpired:
        pytest.fail(f"cowdsl {' '.join(map(str, argv))} did not finish in {timeout} s")


@pytest.fixture
def fifo(tmp_path):
    p = tmp_path / "pipe.cow"
    os.mkfifo(p)
    return p


@pytest.fixture
def sparse(tmp_path):
    p = tmp_path / "huge.cow"
    with open(p, "wb") as f:
        f.truncate(6 << 30)  # 6 GB of holes: no disk, and no memory unless read
    return p


# --- load() ---------------------------------------------------------------------------------------


def test_a_fifo_is_refused_without_blocking(fifo):
    p = cowdsl("check", fifo)
    assert p.returncode == 2, p.stderr
    assert p.stderr == f"cowdsl: {fifo}: not a regular file (a FIFO); a scenario is a .cow text file\n"
    with pytest.raises(NotAFile) as info:  # (in-process only after the child showed it does not hang)
        load(fifo)
    assert info.value.kind == "a FIFO" and isinstance(info.value, OSError)


def test_a_device_is_refused_without_reading_it():
    p = cowdsl("check", "/dev/zero")
    assert p.returncode == 2, p.stderr[-2000:]
    assert p.stderr == "cowdsl: /dev/zero: not a regular file (a character device); a scenario is a .cow text file\n"
    with pytest.raises(NotAFile):
        read("/dev/zero", MAX_SOURCE_BYTES)


def test_a_sparse_file_of_6_gb_is_refused_by_its_size(sparse):
    p = cowdsl("check", sparse)
    assert p.returncode == 2, p.stderr[-2000:]
    assert f"{sparse}:1:1: error: file is {6 << 30} bytes; the limit is {MAX_SOURCE_BYTES}" in p.stderr
    assert "Traceback" not in p.stderr and "MemoryError" not in p.stderr


def test_one_byte_over_the_limit_is_refused_and_the_limit_is_read(tmp_path):
    over = tmp_path / "over.cow"
    over.write_bytes(b"#" * (MAX_SOURCE_BYTES + 1))
    with pytest.raises(CowError) as info:
        load(over)
    assert info.value.diagnostics[0].message == f"file is {MAX_SOURCE_BYTES + 1} bytes; the limit is {MAX_SOURCE_BYTES}"
    at = tmp_path / "at.cow"
    at.write_bytes(b"x" * MAX_SOURCE_BYTES)
    assert len(read(at, MAX_SOURCE_BYTES)) == MAX_SOURCE_BYTES


def test_a_file_that_grows_past_the_limit_is_read_only_to_the_limit(tmp_path, monkeypatch):
    """fstat says small, the file then grows: at most limit + 1 bytes are read."""
    f = tmp_path / "grows.cow"
    f.write_bytes(b"x" * 100)
    real_fstat = os.fstat

    def stale(fd):
        st = real_fstat(fd)
        os.write(os.open(f, os.O_WRONLY | os.O_APPEND), b"y" * 5000)  # grows after the size was read
        return st

    asked = []
    real_read = os.read
    monkeypatch.setattr(os, "fstat", stale)
    monkeypatch.setattr(os, "read", lambda fd, n: asked.append(n) or real_read(fd, n))
    with pytest.raises(CowError) as info:
        read(f, 1000)
    assert info.value.diagnostics[0].message == "file is over 1000 bytes; the limit is 1000"
    assert sum(asked) <= 1001 + 1001


def test_a_missing_file_is_still_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.cow")


# --- folders --------------------------------------------------------------------------------------


def test_a_fifo_in_a_folder_is_skipped_with_a_message(tmp_path):
    d = tmp_path / "scen"
    d.mkdir()
    (d / "a.cow").write_text(LONG_TERM_PIN)
    os.mkfifo(d / "x.cow")
    os.symlink("/dev/zero", d / "z.cow")
    (d / "dir.cow").mkdir()  # a directory named x.cow is searched, not loaded
    (d / "dir.cow" / "b.cow").write_text(LONG_TERM_PIN)
    p = cowdsl("run", d)
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines() == [
        f"cowdsl: {d / 'x.cow'}: skipped: a FIFO, not a regular file",
        f"cowdsl: {d / 'z.cow'}: skipped: a character device, not a regular file",
    ]
    assert "2 scenarios on anon-exclusive: 2 as expected" in p.stdout
    found, left_out = scan([d])
    assert found == [d / "a.cow", d / "dir.cow" / "b.cow"] == find([d])
    assert [(f.name, why) for f, why in left_out] == [("x.cow", "skipped: a FIFO, not a regular file"),
                                                      ("z.cow", "skipped: a character device, not a regular file")]


def test_a_fifo_given_among_other_files_is_an_error_and_the_others_run(tmp_path, fifo):
    good = tmp_path / "good.cow"
    good.write_text(LONG_TERM_PIN)
    p = cowdsl("run", good, fifo)
    assert p.returncode == 2
    assert f"  error: {fifo}: not a regular file (a FIFO); a scenario is a .cow text file" in p.stdout
    assert "1 scenario on anon-exclusive: 1 as expected, 1 file with errors" in p.stdout


def test_paths_given_are_kept_whatever_they_are(tmp_path, fifo):
    assert find([fifo, tmp_path / "missing.cow"]) == [Path(fifo), tmp_path / "missing.cow"]
