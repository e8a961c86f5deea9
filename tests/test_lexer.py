"""The Pygments lexer: registration, token streams, lossless round trips, golden
token files, every registry word highlighted, and colour in `cowdsl run`.

Golden files: tests/golden/tokens/NAME.cow → NAME.tokens (one token a line:
the type, a tab, the text's repr).  COWDSL_UPDATE_GOLDEN=1 rewrites them.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation

from cowdsl import ops
from cowdsl.cli import _colour, main
from cowdsl.lexer import CATEGORY_TOKENS, CowLexer, categories, highlighter

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").rglob("*.cow"))
GOLDEN = Path(__file__).resolve().parent / "golden" / "tokens"
WORDS = ROOT / "editors" / "tests"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def lexer() -> CowLexer:
    return CowLexer(stripnl=False)


def tokens(text: str) -> list[tuple[object, str]]:
    """(type, text) pairs without whitespace, from the raw token stream."""
    return [(t, v) for _, t, v in CowLexer(stripnl=False, ensurenl=False).get_tokens_unprocessed(text)
            if v.strip()]


def _entry_point_declared() -> bool:
    try:
        eps = metadata.distribution("cowdsl").entry_points
    except metadata.PackageNotFoundError:
        return False
    return any(ep.group == "pygments.lexers" and ep.value == "cowdsl.lexer:CowLexer" for ep in eps)


needs_entry_point = pytest.mark.skipif(
    not _entry_point_declared(),
    reason="cowdsl is installed without its pygments.lexers entry point (reinstall: pip install -e .)",
)


# --- registration ---------------------------------------------------------------------


@needs_entry_point
def test_found_by_name_filename_and_mimetype():
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename, get_lexer_for_mimetype

    assert isinstance(get_lexer_by_name("cow"), CowLexer)
    assert isinstance(get_lexer_by_name("cowdsl"), CowLexer)
    assert isinstance(get_lexer_for_filename("x.cow"), CowLexer)
    assert isinstance(get_lexer_for_mimetype("text/x-cow"), CowLexer)


@needs_entry_point
def test_pygmentize_command_line():
    def run(*a):
        return subprocess.run([sys.executable, "-m", "pygments", *a], capture_output=True, text=True,
                                        timeout=60)
    assert run("-N", "x.cow").stdout.strip() == "cow"
    out = run("-l", "cow", "-f", "html", str(GOLDEN / "pin-fork.cow"))
    assert out.returncode == 0, out.stderr
    assert '<span class="nf">mmap</span>' in out.stdout


def test_guess_prefers_cow_for_a_scenario():
    assert CowLexer.analyse_text((GOLDEN / "pin-fork.cow").read_text()) >= 0.5
    assert CowLexer.analyse_text("def f():\n    return 1\n") == 0


# --- token streams ----------------------------------------------------------------------


def test_token_stream_of_a_step():
    P = Punctuation
    assert tokens("A: pin(buf[1], write, longterm) as mr  # RDMA") == [
        (Name.Label, "A"), (P, ":"), (Name.Function, "pin"), (P, "("), (Name, "buf"), (P, "["),
        (Number.Integer, "1"), (P, "]"), (P, ","), (Name.Constant, "write"), (P, ","), (Name.Constant, "longterm"),
        (P, ")"), (Keyword, "as"), (Name, "mr"), (Comment.Single, "# RDMA"),
    ]


def test_token_stream_of_an_assertion():
    assert tokens("assert not failed(so) and cow_copies(A) >= 0x1 implies true") == [
        (Keyword, "assert"), (Operator.Word, "not"), (Name.Builtin, "failed"), (Punctuation, "("), (Name, "so"),
        (Punctuation, ")"), (Operator.Word, "and"), (Name.Builtin, "cow_copies"), (Punctuation, "("),
        (Name, "A"), (Punctuation, ")"), (Operator, ">="), (Number.Hex, "0x1"), (Operator.Word, "implies"),
        (Keyword.Constant, "true"),
    ]


def test_words_that_mean_two_things():
    # `read(` is an op, `read` a flag; `file=` a keyword argument, `file F` a declaration.
    assert (Name.Function, "read") in tokens("A: read(buf) as v")
    assert (Name.Constant, "read") in tokens("A: pin(buf, read)")
    assert (Name.Attribute, "file") in tokens("A: mmap(lib, private, file=F)")
    assert tokens("file F = [1, 0x2f]")[0] == (Keyword.Declaration, "file")
    assert (Number.Hex, "0x2f") in tokens("file F = [1, 0x2f]")
    # a field after a dot, and a longer name, are plain names
    assert (Name, "fast") in tokens("assert A.fast == 1")
    assert (Name.Function, "pipe_read") in tokens("A: pipe_read(P) as v")


def test_expect_line_backends():
    toks = tokens("expect fail on 5.10, early-cow:pin_scope=longterm, anon-exclusive  # pass")
    assert toks[:3] == [(Keyword, "expect"), (Keyword.Constant, "fail"), (Keyword, "on")]
    backends = [v for t, v in toks if t is Name.Namespace]
    assert backends == ["5.10", "early-cow:pin_scope=longterm", "anon-exclusive"]
    assert toks[-1] == (Comment.Single, "# pass")


def test_actors_and_builtin_actors():
    assert tokens("mr: dma_write(4)")[0] == (Name.Label, "mr")
    for actor in ops.BUILTIN_ACTORS:
        assert tokens(f"{actor}: swapout(A.buf)")[0] == (Name.Builtin.Pseudo, actor)
    assert tokens("    T: read(buf)")[0] == (Name.Label, "T")


def test_invalid_text_is_an_error_token_not_a_crash():
    assert any(t is Error for t, _ in tokens('assert "unterminated'))
    assert any(t is Error for t, _ in tokens("A: write(buf, 1) @"))


# --- every word of the registry ------------------------------------------------------------


def test_every_registry_word_is_highlighted():
    for op in ops.op_names():
        assert (Name.Function, op) in tokens(f"A: {op}(buf)"), op
    for flag in ops.flag_names():
        assert (Name.Constant, flag) in tokens(f"A: mmap(buf, {flag})"), flag
    for kw in ops.keyword_arg_names():
        assert (Name.Attribute, kw) in tokens(f"A: mmap(buf, {kw}=1)"), kw
    for fact in ops.fact_names():
        assert (Name.Builtin, fact) in tokens(f"assert {fact}(A.buf)"), fact
    for word in ops.keywords():  # includes the quantifiers once the registry has them
        t, v = tokens(f"{word} x")[0]
        assert v == word and (t in Keyword or t in Operator.Word), (word, t)
    for actor in ops.BUILTIN_ACTORS:
        assert tokens(f"{actor}: swapout(A.buf)")[0][0] in Name.Builtin


def test_no_word_is_ambiguous():
    from cowdsl.lexer import ambiguities

    assert ambiguities() == []


def test_categories_come_from_the_registry_and_grammar():
    c = categories()
    assert c["op"] == ops.op_names()
    assert c["flag"] == ops.flag_names()
    assert c["kwarg"] == ops.keyword_arg_names()
    assert c["fact"] == ops.fact_names()
    assert c["builtin-actor"] == tuple(ops.BUILTIN_ACTORS)
    keywords = {w for k in ("declaration", "keyword", "operator-word", "constant", "outcome") for w in c[k]}
    assert set(ops.keywords()) <= keywords
    from cowdsl.lexer import grammar_words

    assert set(grammar_words()) <= keywords
    assert {"scenario", "assert", "expect", "implies"} <= set(grammar_words())


@pytest.mark.skipif(not (WORDS / "words.tsv").is_file(), reason="editors/ is not in this tree")
def test_editor_fixture_categories():
    """The fixture every editor grammar is tested on, checked against the lexer too."""
    text = (WORDS / "words.cow").read_text()
    starts = [0]
    for line in text.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    at: dict[int, object] = {}
    for pos, t, v in CowLexer(stripnl=False).get_tokens_unprocessed(text):
        for i in range(len(v)):
            at[pos + i] = t
    for row in (WORDS / "words.tsv").read_text().splitlines():
        if row.startswith("#"):
            continue
        line, col, length, cat, word = row.split("\t")
        want = CATEGORY_TOKENS[cat]
        for i in range(int(length)):
            got = at[starts[int(line) - 1] + int(col) - 1 + i]
            assert got in want, f"words.cow:{line}:{col}: `{word}` ({cat}) is {got}, expected {want}"


# --- round trips and the corpus ----------------------------------------------------------------


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: str(p.relative_to(ROOT)))
def test_scenario_round_trip_without_error_tokens(path):
    src = path.read_text(encoding="utf-8")
    toks = list(lexer().get_tokens(src))
    assert "".join(v for _, v in toks) == src
    errors = [(t, v) for t, v in toks if t in Error]
    assert not errors, f"{path}: {errors}"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("Aab_ .:,()[]{}=<>!#\"\n\t\r0x19-@é") + ["expect ", "on ", "pin", "read(",
                                                                                      "assert ", "reclaim:"]),
                max_size=60).map("".join))
def test_any_text_round_trips(text):
    """Tokens join back to the source for any text, valid or not (raw stream: no newline added)."""
    lx = CowLexer(stripnl=False, ensurenl=False)
    assert "".join(v for _, _, v in lx.get_tokens_unprocessed(text)) == text


# --- golden token files ---------------------------------------------------------------------------


def _golden_text(src: str) -> str:
    return "".join(f"{str(t).removeprefix('Token.')}\t{v!r}\n" for t, v in lexer().get_tokens(src))


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN.glob("*.cow")))
def test_golden_tokens(name):
    src = (GOLDEN / f"{name}.cow").read_text(encoding="utf-8")
    got = _golden_text(src)
    golden = GOLDEN / f"{name}.tokens"
    if os.environ.get("COWDSL_UPDATE_GOLDEN") == "1":
        golden.write_text(got, encoding="utf-8")
    assert golden.is_file(), f"no {golden.name}: run with COWDSL_UPDATE_GOLDEN=1"
    assert got == golden.read_text(encoding="utf-8"), "tokens changed: COWDSL_UPDATE_GOLDEN=1 to accept"


# --- colour in cowdsl run -------------------------------------------------------------------------


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


class _Args:
    def __init__(self, color):
        self.color = color


def test_colour_decision(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert _colour(_Args("auto"), _Stream(tty=True)) is not None
    assert _colour(_Args("auto"), _Stream(tty=False)) is None
    assert _colour(_Args("never"), _Stream(tty=True)) is None
    assert _colour(_Args("always"), _Stream(tty=False)) is not None
    monkeypatch.setenv("NO_COLOR", "1")
    assert _colour(_Args("auto"), _Stream(tty=True)) is None
    assert _colour(_Args("always"), _Stream(tty=True)) is not None  # the flag beats the variable
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert _colour(_Args("auto"), _Stream(tty=True)) is None


def test_highlighter_keeps_the_text():
    colour = highlighter()
    line = "A: pin(buf, write, longterm) as mr  # x"
    out = colour(line)
    assert ANSI.search(out)
    assert ANSI.sub("", out) == line


BROKEN = "process A\nA: mmap(buf, anon, private, rw)\nA: pin(buf, write, longtem) as mr\nassert A.buf == 0\n"
GOOD = "process A\nA: mmap(buf, anon, private, rw)\nA: write(buf, 1)\nassert A.buf == 1\n"


def test_run_colours_error_source_lines_but_not_the_caret(tmp_path, capsys):
    f = tmp_path / "broken.cow"
    f.write_text(BROKEN)
    assert main(["run", "--color", "always", str(f)]) == 2
    coloured = capsys.readouterr().err
    assert main(["run", "--color", "never", str(f)]) == 2
    plain = capsys.readouterr().err
    assert ANSI.search(coloured) and not ANSI.search(plain)
    assert ANSI.sub("", coloured) == plain  # same text, same caret columns
    source_line = next(line for line in coloured.splitlines() if "longtem" in line and "|" in line)
    assert ANSI.search(source_line)


def test_run_colours_traces_only_when_asked(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    f = tmp_path / "good.cow"
    f.write_text(GOOD)
    assert main(["run", "--trace", "--color", "always", str(f)]) == 0
    coloured = capsys.readouterr().out
    assert main(["run", "--trace", str(f)]) == 0  # auto: captured output is not a terminal
    plain = capsys.readouterr().out
    assert ANSI.search(coloured) and not ANSI.search(plain)
    def untimed(text: str) -> str:  # the runs' own times differ
        return re.sub(r"\d+\.\d+(s|\b)", "T", text)

    assert untimed(ANSI.sub("", coloured)) == untimed(plain)
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["run", "--trace", "--color", "auto", str(f)]) == 0
    assert not ANSI.search(capsys.readouterr().out)


def test_json_and_junit_are_never_coloured(tmp_path, capsys):
    f = tmp_path / "good.cow"
    f.write_text(GOOD)
    for fmt in ("json", "junit"):
        assert main(["run", "--color", "always", "--format", fmt, str(f)]) == 0
        assert not ANSI.search(capsys.readouterr().out)
