"""`-` is standard input for `cowdsl run` and `cowdsl check`: bounded like a file,
named `<stdin>` in diagnostics."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from cowdsl.cli import main
from cowdsl.syntax.parser import MAX_SOURCE_BYTES

S5 = Path(__file__).parent.parent / "scenarios/pin-fork/s5-longterm-pin-parent-writes-first.cow"
TYPO = "process P\nP: mmap(buf, anon, privte)\nassert P.buf == 0\n"


class Stdin(io.TextIOWrapper):
    """A standard input whose bytes are counted as they are read."""

    def __init__(self, data: bytes):
        self.raw_bytes = io.BytesIO(data)
        super().__init__(self.raw_bytes)


def feed(monkeypatch, data: bytes) -> Stdin:
    stdin = Stdin(data)
    monkeypatch.setattr(sys, "stdin", stdin)
    return stdin


def test_run_reads_a_scenario_from_stdin(monkeypatch, capsys):
    feed(monkeypatch, S5.read_bytes())
    assert main(["run", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Test <stdin> on anon-exclusive")
    assert "Expect pass on anon-exclusive: got pass, as expected" in out
    feed(monkeypatch, S5.read_bytes())
    assert main(["run", "-b", "mapcount", "-"]) == 0  # S5's expect line for E0 is fail: as expected
    assert "Expect fail on mapcount: got fail, as expected" in capsys.readouterr().out


def test_check_names_stdin_with_line_col_and_caret(monkeypatch, capsys):
    feed(monkeypatch, TYPO.encode())
    assert main(["check", "-"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("<stdin>:2:20: error: unknown flag `privte` for `mmap`")
    assert "   2 | P: mmap(buf, anon, privte)\n     |                    ^^^^^^" in err
    assert "did you mean `private`?" in err


def test_stdin_is_read_once_and_with_files(monkeypatch, capsys):
    feed(monkeypatch, S5.read_bytes())
    assert main(["check", "-", str(S5), "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["<stdin>", str(S5)]


def test_stdin_is_bounded_like_a_file(monkeypatch, capsys):
    stdin = feed(monkeypatch, b"#" * (MAX_SOURCE_BYTES + 4096))
    assert main(["check", "-"]) == 2
    assert f"<stdin>:1:1: error: input is over {MAX_SOURCE_BYTES} bytes" in capsys.readouterr().err
    assert stdin.raw_bytes.tell() <= MAX_SOURCE_BYTES + 8192  # read no further than the limit (and a buffer)


def test_stdin_that_is_not_utf8(monkeypatch, capsys):
    feed(monkeypatch, b"process P\n\xff\n")
    assert main(["check", "-"]) == 2
    assert "<stdin>:2:1: error: the file is not UTF-8 text" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "check"])
def test_dash_through_a_real_pipe(command):
    p = subprocess.run([sys.executable, "-m", "cowdsl", command, "-"], input=S5.read_bytes(),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert b"<stdin>" in p.stdout
