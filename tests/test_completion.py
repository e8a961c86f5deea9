"""Shell completion: argcomplete's protocol (COMP_LINE / COMP_POINT in the
environment, the answer on a stream) driven in this process, through the real
entry point, and through bash with the script `cowdsl completion bash` prints."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

argcomplete = pytest.importorskip("argcomplete")

from cowdsl.cli import main  # noqa: E402
from cowdsl.cli.args import parser  # noqa: E402
from cowdsl.cli.completion import complete  # noqa: E402
from cowdsl.kernel import releases  # noqa: E402

ROOT = Path(__file__).parent.parent


class Answered(Exception):
    pass


def _exit(code: int = 0) -> None:
    raise Answered(code)


def completions(line: str, monkeypatch, point: int | None = None) -> list[str]:
    # argcomplete's debug stream is fd 9 by default, which it would close: pytest's own
    monkeypatch.setattr(argcomplete.finders.CompletionFinder, "_init_debug_stream", lambda self: None)
    monkeypatch.setenv("_ARGCOMPLETE", "1")
    monkeypatch.setenv("COMP_LINE", line)
    monkeypatch.setenv("COMP_POINT", str(len(line) if point is None else point))
    monkeypatch.setenv("_ARGCOMPLETE_IFS", "\n")
    stream = io.StringIO()
    with pytest.raises(Answered):
        complete(parser(), output_stream=stream, exit_method=_exit)
    # a single answer ends with the space the shell should type after it
    return stream.getvalue().split("\n")


def test_commands(monkeypatch):
    assert completions("cowdsl r", monkeypatch) == ["run "]
    assert set(completions("cowdsl c", monkeypatch)) == {"check", "crosscheck", "completion"}
    from cowdsl.cli.args import COMMANDS

    assert set(COMMANDS) <= set(completions("cowdsl ", monkeypatch))  # every command, fmt and lsp too


def test_options(monkeypatch):
    assert completions("cowdsl run --fo", monkeypatch) == ["--form", "--format"]
    assert completions("cowdsl run --format j", monkeypatch) == ["json", "junit"]


def test_versions_from_the_release_list(monkeypatch):
    got = completions("cowdsl run --backend 5.10.", monkeypatch)
    assert "5.10.198" in got
    assert got == [str(x) for x in releases.ALL if str(x).startswith("5.10.")]
    assert completions("cowdsl run -b 5.10.19", monkeypatch) == ["5.10.198 "]
    assert completions("cowdsl run --backend=6.1.15", monkeypatch) == ["--backend=6.1.158 "]


def test_eras_and_their_options(monkeypatch):
    assert completions("cowdsl run --backend early", monkeypatch) == ["early-cow "]
    assert completions("cowdsl run --backend mod", monkeypatch) == ["modern "]
    got = completions("cowdsl run --backend early-cow:pin_s", monkeypatch)
    assert got == ["early-cow:pin_scope=any", "early-cow:pin_scope=longterm"]
    # a version's options are those of its era (5.10.198 is early-cow); one already given is not offered again
    got = completions("cowdsl run --backend 5.10.198:pin_scope=any:", monkeypatch)
    assert "5.10.198:pin_scope=any:pin_bias=off" in got and not any("pin_scope=longterm" in w for w in got)
    assert completions("cowdsl diff mapc", monkeypatch) == ["mapcount "]
    assert completions("cowdsl backends nat", monkeypatch) == ["native "]


def test_version_ranges_ops_rules_shells(monkeypatch):
    assert "5.4..5.19" in completions("cowdsl timeline --versions 5.4..5.1", monkeypatch)
    assert completions("cowdsl ops pi", monkeypatch) == ["pin", "pipe_read", "pinned", "pincount"]
    assert completions("cowdsl explain has_write", monkeypatch) == ["has_write_protect_seq "]
    assert completions("cowdsl completion z", monkeypatch) == ["zsh "]


def test_cow_files_and_directories(monkeypatch, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.cow").write_text("")
    (tmp_path / "b.txt").write_text("")
    monkeypatch.chdir(tmp_path)
    files = [w for w in completions("cowdsl run ", monkeypatch) if not w.startswith("--") and len(w) != 2]
    assert sorted(files) == ["-", "a.cow", "sub/"]  # and the options, as at any empty word
    assert completions("cowdsl check s", monkeypatch) == ["sub/"]


def test_the_entry_point_answers_on_fd_8():
    # what the shell does: run `cowdsl` with the line in the environment, read fd 8
    line = "cowdsl run --backend 5.10."
    r, w = os.pipe()
    env = dict(os.environ, _ARGCOMPLETE="1", COMP_LINE=line, COMP_POINT=str(len(line)), _ARGCOMPLETE_IFS="\n")
    code = f"import os; os.dup2({w}, 8); from cowdsl.cli import main; main()"
    p = subprocess.run([sys.executable, "-c", code], env=env, pass_fds=(w,), timeout=60, capture_output=True)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        answer = f.read().decode().split("\n")
    assert p.returncode == 0, p.stderr
    assert "5.10.198" in answer


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("cowdsl")), reason="needs bash and cowdsl on PATH")
def test_bash_with_the_printed_script():
    script = ('eval "$(cowdsl completion bash)"; COMP_LINE="cowdsl run --backend 5.10.1"; '
              'COMP_POINT=${#COMP_LINE}; COMP_WORDS=(cowdsl run --backend 5.10.1); COMP_CWORD=3; '
              '_python_argcomplete cowdsl 5.10.1 --backend; printf "%s\\n" "${COMPREPLY[@]}"')
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.stdout.split() == ["5.10.152", "5.10.153", "5.10.198"], p.stderr


@pytest.mark.parametrize("shell, mark", [("bash", "complete -o nospace"), ("zsh", "compdef"),
                                         ("fish", "complete --command cowdsl")])
def test_completion_prints_the_script(shell, mark, capsys):
    assert main(["completion", shell]) == 0
    out = capsys.readouterr().out
    assert mark in out and "cowdsl" in out
    assert main(["completion", "tcsh"]) == 2
