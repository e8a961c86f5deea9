"""cowdsl fmt: the canonical layout, idempotent, and never a change of meaning."""

from __future__ import annotations

import io
import random
import re
import sys
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cowdsl import fmt
from cowdsl.errors import CowError
from cowdsl.load import load_text, load_text_all

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").rglob("*.cow"))


def shape(x: object) -> object:
    """A checked scenario without what depends on layout: spans, the source, texts as written."""
    if attrs.has(type(x)):
        out: list[object] = [type(x).__name__]
        for f in attrs.fields(type(x)):
            v = getattr(x, f.name)
            if f.name in ("span", "source", "filename"):
                continue
            if f.name == "text":
                v = "".join(str(v).split())
            out.append((f.name, shape(v)))
        return tuple(out)
    if isinstance(x, tuple | list):
        return tuple(shape(y) for y in x)
    if isinstance(x, frozenset):
        return tuple(sorted(map(str, x)))
    return x


MESSY = (
    'scenario   "spacing"  \r\n'
    "\r\n\r\n\r\n"
    "process A ,C\r\n"
    "thread T   of A\n"
    "file F=[1 ,2]\n"
    "pipe P\n"
    "A :mmap( buf,anon , private,rw,pages = 2 )   # two pages\n"
    "  A: write(buf[ 1 ],1)\n"
    "\tA: pin(buf,write , longterm)as mr\n"
    "par{\n"
    "T: gup(buf, read, fast) as r # racing\n"
    "     # a comment inside the block\n"
    "A:fork()as B\n"
    "     }\n"
    "assert A.buf[1]==1 and not(pinned( A.buf )or B . buf != 2)\n"
    "always :mr is A.buf\n"
    "~ exists: refcount(B.buf)>=2 implies cow_copies==0\n"
    "invariant   true\n"
    "expect pass  on  anon-exclusive ,early-cow:pin_scope=longterm,5.10.4\n"
    "\n\n"
)

CANONICAL = (
    'scenario "spacing"\n'
    "\n"
    "process A, C\n"
    "thread T of A\n"
    "file F = [1, 2]\n"
    "pipe P\n"
    "A: mmap(buf, anon, private, rw, pages=2)  # two pages\n"
    "A: write(buf[1], 1)\n"
    "A: pin(buf, write, longterm) as mr\n"
    "par {\n"
    "  T: gup(buf, read, fast) as r          # racing\n"
    "  # a comment inside the block\n"
    "  A: fork() as B\n"
    "}\n"
    "assert A.buf[1] == 1 and not (pinned(A.buf) or B.buf != 2)\n"
    "always: mr is A.buf\n"
    "~exists: refcount(B.buf) >= 2 implies cow_copies == 0\n"
    "invariant true\n"
    "expect pass on anon-exclusive, early-cow:pin_scope=longterm, 5.10.4\n"
)


def test_messy_file_gets_the_canonical_layout() -> None:
    assert fmt.format_text(MESSY) == CANONICAL
    assert fmt.format_text(CANONICAL) == CANONICAL
    assert shape(load_text(MESSY)) == shape(load_text(CANONICAL))


def test_comments_kept_word_for_word_and_strings_untouched() -> None:
    src = 'scenario "a  # not a comment ,x"\nprocess A   #  two  spaces kept\n# full line  \n'
    out = fmt.format_text(src + "A: mmap(buf)\nassert alive(A)\n")
    assert out.startswith('scenario "a  # not a comment ,x"\nprocess A                               #  two  spaces kept\n# full line\n')


def test_long_code_pushes_its_comment_two_spaces_past_it() -> None:
    long = "assert not writable(A.buf) and not writable(A.buf) and alive(A)"
    out = fmt.format_text(f"process A\nA: mmap(buf)\n{long} # why\nassert alive(A) # short\n")
    assert f"{long}  # why\n" in out
    assert "assert alive(A)" + " " * (fmt.COMMENT_COLUMN - 1 - len("assert alive(A)")) + "# short\n" in out


def test_a_file_that_does_not_parse_is_an_error() -> None:
    with pytest.raises(CowError):
        fmt.format_text("process A\nA: mmap(buf\n")


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: str(p.relative_to(ROOT / "scenarios")))
def test_scenarios_round_trip(path: Path) -> None:
    src = path.read_text(encoding="utf-8")
    once = fmt.format_text(src, str(path))
    assert fmt.format_text(once, str(path)) == once  # idempotent
    # the same scenarios (a file's includes are read from its folder; a swept file is several)
    assert (shape(load_text_all(once, str(path), folder=path.parent))
            == shape(load_text_all(src, str(path), folder=path.parent)))


def _respace(src: str, rnd: random.Random) -> str:
    """The same file with whitespace changed wherever the grammar ignores it (blank lines
    separate paragraphs, so only their number changes, not where they are)."""
    out = [rnd.choice(["", "\n", "\n\n"])]
    for line in src.split("\n"):
        code, comment = fmt.split_comment(line)
        if code.strip().startswith("expect"):  # a backend spec is one token: space only around commas
            m = re.match(r"\s*expect\s+(\w+)\s+on\s+(.*)$", code)
            assert m
            specs = [s.strip() for s in m.group(2).split(",")]
            body = f"expect{' ' * rnd.randint(1, 3)}{m.group(1)} on " + (" " * rnd.randint(0, 2) + ",").join(specs)
        else:
            toks = [t for _, t in fmt.tokens(code)]
            body = "".join(t + rnd.choice([" ", "  ", "\t", " \t "]) for t in toks)
        pad = rnd.choice(["", " ", "    ", "\t"])
        tail = rnd.choice(["", " ", "\t"]) + (comment or "")
        out.append(pad + body + tail + rnd.choice(["", "\r"]))
        if not line.strip() and rnd.random() < 0.3:  # a blank line is kept, but only one of a run
            out.append(rnd.choice(["", "   ", "\t"]))
    return "\n".join(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SCENARIOS), st.randoms(use_true_random=False))
def test_whitespace_never_changes_the_layout(path: Path, rnd: random.Random) -> None:
    src = path.read_text(encoding="utf-8")
    messy = _respace(src, rnd)
    assert fmt.format_text(messy) == fmt.format_text(src)


# --- the command --------------------------------------------------------------------------------


def test_check_exits_1_when_a_file_would_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "x.cow"
    f.write_bytes(MESSY.encode())
    assert fmt.main(["--check", str(f)]) == 1
    assert f.read_bytes() == MESSY.encode()  # --check writes nothing
    assert "would reformat" in capsys.readouterr().err
    assert fmt.main([str(tmp_path)]) == 0  # a folder: its .cow files, rewritten
    assert f.read_text() == CANONICAL
    assert fmt.main(["--check", str(f)]) == 0


def test_diff_prints_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "x.cow"
    f.write_bytes(MESSY.encode())
    assert fmt.main(["--diff", str(f)]) == 0
    assert "+process A, C" in capsys.readouterr().out
    assert f.read_bytes() == MESSY.encode()


def test_stdin_to_stdout(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(MESSY.encode())))
    assert fmt.main(["-"]) == 0
    assert capsys.readouterr().out == CANONICAL
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(MESSY.encode())))
    assert fmt.main(["--check", "-"]) == 1
    assert capsys.readouterr().out == ""


def test_syntax_error_exits_2_with_the_diagnostic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.cow"
    f.write_text("process A\nA: mmap(buf,\n")
    assert fmt.main([str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}:2:" in err
    assert f.read_text() == "process A\nA: mmap(buf,\n"


def test_mode_is_kept(tmp_path: Path) -> None:
    f = tmp_path / "x.cow"
    f.write_bytes(MESSY.encode())
    f.chmod(0o640)
    assert fmt.main([str(f)]) == 0
    assert f.stat().st_mode & 0o777 == 0o640


def test_a_page_range_is_one_token() -> None:
    """`..` of buf[0..1] is one token: spaced out as two dots it would not parse
    (the respacing property found it on a KSM selftest scenario)."""
    assert ("punct", "..") in fmt.tokens("A: madvise(buf[0..1], dontneed)")
    messy = "process A\nA: mmap(buf, anon, private, rw, pages=2)\nA: madvise( buf [ 0 ..  1 ] ,dontneed)\n" \
            "assert A.buf[0] == 0\n"
    assert "A: madvise(buf[0..1], dontneed)\n" in fmt.format_text(messy)
