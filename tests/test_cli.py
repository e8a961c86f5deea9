"""The command line: exit statuses, file discovery, output options, listings.

Most tests call ``cowdsl.cli.main`` in-process; two run ``python -m cowdsl`` to
prove the entry point and the lazy imports.  Scenarios are written to tmp_path
so these tests do not depend on scenarios/.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from examples import BROKEN, FAILING, LONG_TERM_PIN

from cowdsl import __version__, ops
from cowdsl.cli import main
from cowdsl.kernel import eras, options, timeline
from cowdsl.kernel.spec import resolve
from cowdsl.semantics import registry

# Every assertion holds, but the expect line says fail: a mismatch.
MISMATCH = """\
scenario "an expect line that is wrong"
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
assert A.buf == 1
expect fail on anon-exclusive
"""

# An assertion fails and the expect line says so: as expected.
EXPECTED_FAIL = """\
scenario "an expected failure"
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
assert A.buf == 2
expect fail on anon-exclusive
"""

STEP_LINE = re.compile(r"^\s*(\d+)  line (\d+): (.*)$")
RULE_WITH_COMMIT = re.compile(r"^\s{7}\S.*  \[[a-z_]+ [0-9a-f]{7,40}\]$")


def write(dirpath: Path, name: str, text: str) -> Path:
    p = dirpath / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def cli(*argv) -> int:
    return main([str(a) for a in argv])


def run_file(tmp_path: Path, capsys, name: str, text: str, status: int) -> tuple[Path, str]:
    """`cowdsl run` on ``text`` written to ``tmp_path/name``: it exits ``status``; the file and stdout."""
    f = write(tmp_path, name, text)
    assert cli("run", f) == status
    return f, capsys.readouterr().out


@pytest.fixture
def example(tmp_path):
    return write(tmp_path, "example.cow", LONG_TERM_PIN)


# --- version and entry point ----------------------------------------------------------


def test_version(capsys):
    assert cli("--version") == 0
    assert capsys.readouterr().out == f"cowdsl {__version__}\n"


def test_version_is_cold_and_lazy():
    """`cowdsl --version` must not import lark, attrs, the syntax or the semantics."""
    code = (
        "import sys\n"
        "from cowdsl.cli import main\n"
        "assert main(['--version']) == 0\n"
        "heavy = ('lark', 'attrs', 'cowdsl.syntax', 'cowdsl.semantics', 'cowdsl.run', 'cowdsl.report')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [f"cowdsl {__version__}", "[]"]


def test_python_m_cowdsl(tmp_path, example):
    broken = write(tmp_path, "broken.cow", BROKEN)
    p = subprocess.run([sys.executable, "-m", "cowdsl", "run", str(example)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert "1 scenario on anon-exclusive: 1 as expected" in p.stdout
    p = subprocess.run([sys.executable, "-m", "cowdsl", "check", str(broken)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2
    assert p.stdout == ""
    assert "did you mean `longterm`?" in p.stderr
    assert "Traceback" not in p.stderr


# --- run: exit statuses ------------------------------------------------------------------


def test_run_as_expected_exits_0(example, capsys):
    assert cli("run", example) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "Test long-term pin stays coherent across fork on anon-exclusive" in out
    assert "\nOk\n" in out
    assert "Expect pass on anon-exclusive: got pass, as expected" in out
    assert "Final state" not in out  # only on request or when not as expected
    assert out.rstrip().splitlines()[-1] == "1 scenario on anon-exclusive: 1 as expected"


def test_failing_assertion_without_expect_exits_1(tmp_path, capsys):
    f, out = run_file(tmp_path, capsys, "failing.cow", FAILING, 1)
    assert "\nNo\n" in out
    assert "Verdict fail (no expect line for anon-exclusive" in out
    assert "Final state" in out  # shown automatically when not as expected
    assert "1 scenario on anon-exclusive: 0 as expected, 1 not as expected" in out
    assert f"  not as expected: {f}: got fail; the file has no expect line, so every assertion must hold" in out


def test_expect_mismatch_exits_1(tmp_path, capsys):
    f, out = run_file(tmp_path, capsys, "mismatch.cow", MISMATCH, 1)
    assert "Expect fail on anon-exclusive: got pass, NOT AS EXPECTED" in out
    assert f"not as expected: {f}: got pass; expected fail" in out


def test_expected_failure_exits_0(tmp_path, capsys):
    _, out = run_file(tmp_path, capsys, "xfail.cow", EXPECTED_FAIL, 0)
    assert "\nNo\n" in out
    assert "Expect fail on anon-exclusive: got fail, as expected" in out


def test_parse_error_exits_2(tmp_path, capsys):
    f = write(tmp_path, "broken.cow", BROKEN)
    assert cli("run", f) == 2
    out, err = capsys.readouterr()
    assert f"{f}:3:" in err
    assert "unknown flag `longtem` for `pin`" in err
    assert "^^^^^^^" in err
    assert "hint: did you mean `longterm`?" in err
    assert "Traceback" not in err
    assert "0 scenarios on anon-exclusive: 0 as expected, 1 file with errors" in out


def test_missing_file_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope.cow"
    assert cli("run", missing) == 2
    out, err = capsys.readouterr()
    assert f"cowdsl: {missing}: no such file or directory" in err
    assert f"error: {missing}: no such file or directory" in out


def test_empty_directory_exits_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli("run", tmp_path / "empty") == 2
    assert "no .cow files found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "spec, message, suggestion",
    [
        ("anon-exclusiv", "unknown backend `anon-exclusiv`", "anon-exclusive"),
        ("refcont", "unknown backend `refcont`", "refcount"),
        ("early-cow:pin_scop=any", "unknown option `pin_scop` for early-cow", "pin_scope"),
        ("early-cow:pin_scope=long", "option `pin_scope` of early-cow takes any or longterm, not `long`", "longterm"),
    ],
)
def test_bad_backend_exits_2_with_suggestion(example, capsys, spec, message, suggestion):
    assert cli("run", "--backend", spec, example) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"cowdsl: {message}")
    assert f"did you mean `{suggestion}`?" in err
    assert "cowdsl backends" in err


def test_no_arguments_exits_2(capsys):
    assert cli() == 2
    assert "usage: cowdsl" in capsys.readouterr().err
    assert cli("run") == 2
    assert "the following arguments are required" in capsys.readouterr().err
    assert cli("frobnicate") == 2


def test_help_exits_0(capsys):
    assert cli("--help") == 0
    assert "run" in capsys.readouterr().out


# --- run: several files ----------------------------------------------------------------


def test_directory_is_searched_recursively(tmp_path, capsys):
    write(tmp_path, "d/one.cow", LONG_TERM_PIN)
    write(tmp_path, "d/sub/deeper/two.cow", EXPECTED_FAIL)
    write(tmp_path, "d/notes.txt", "not a scenario")
    assert cli("run", tmp_path / "d") == 0
    out = capsys.readouterr().out
    assert "d/one.cow" in out and "d/sub/deeper/two.cow" in out  # a line per file
    assert "2 scenarios on anon-exclusive: 2 as expected" in out


def test_a_file_named_twice_runs_once(tmp_path, capsys):
    one = write(tmp_path, "d/one.cow", LONG_TERM_PIN)
    assert cli("run", tmp_path / "d", one) == 0
    assert "1 scenario on anon-exclusive" in capsys.readouterr().out


def test_one_broken_file_does_not_stop_the_others(tmp_path, capsys):
    good = write(tmp_path, "a_good.cow", LONG_TERM_PIN)
    broken = write(tmp_path, "b_broken.cow", BROKEN)
    failing = write(tmp_path, "c_failing.cow", FAILING)
    assert cli("run", good, broken, failing) == 2  # errors win over a mismatch
    out, err = capsys.readouterr()
    assert re.search(r"a_good\.cow\s+pass ", out)  # a line per file ...
    assert "Test long-term pin stays coherent across fork" not in out
    assert "a failing assertion" in out  # ... and the block of the one not as expected
    assert "unknown flag `longtem`" in err
    assert "2 scenarios on anon-exclusive: 1 as expected, 1 not as expected, 1 file with errors" in out
    assert f"  error: {broken}: " in out


def test_a_crashing_backend_is_reported_and_the_others_run(tmp_path, capsys, monkeypatch):
    import cowdsl.run

    real = cowdsl.run.run

    def flaky(sc, backend="anon-exclusive", **kw):
        if "failing" in sc.name:
            raise RuntimeError("model bug")
        return real(sc, backend, **kw)

    monkeypatch.setattr(cowdsl.run, "run", flaky)
    good = write(tmp_path, "good.cow", LONG_TERM_PIN)
    bad = write(tmp_path, "bad.cow", FAILING)
    assert cli("run", good, bad) == 2
    out, err = capsys.readouterr()
    assert f"cowdsl: {bad}: internal error while running on anon-exclusive: RuntimeError: model bug" in err
    assert "Test long-term pin stays coherent across fork" in out
    assert "1 scenario on anon-exclusive: 1 as expected, 1 file with errors" in out


def test_quiet_shows_only_what_is_not_as_expected(tmp_path, capsys):
    good = write(tmp_path, "good.cow", LONG_TERM_PIN)
    bad = write(tmp_path, "bad.cow", FAILING)
    assert cli("run", "-q", good, bad) == 1
    out = capsys.readouterr().out
    assert "Test a failing assertion" in out
    assert "Test long-term pin" not in out
    assert "2 scenarios on anon-exclusive: 1 as expected, 1 not as expected" in out


# --- run: output options ----------------------------------------------------------------


def test_trace_shows_every_step_and_rules_with_commits(example, capsys):
    assert cli("run", "--trace", example) == 0
    out = capsys.readouterr().out
    assert out.startswith("Trace of long-term pin stays coherent across fork on anon-exclusive\n")
    steps = [m.groups() for m in map(STEP_LINE.match, out.splitlines()) if m]
    body = [ln for ln in LONG_TERM_PIN.splitlines()]
    step_lines = [(i + 1, ln) for i, ln in enumerate(body) if re.match(r"^\w+: ", ln)]
    assert [(int(n), int(line), text) for n, line, text in steps] == [
        (k + 1, line, text) for k, (line, text) in enumerate(step_lines)
    ]
    assert any(RULE_WITH_COMMIT.match(ln) for ln in out.splitlines()), out
    assert out.index("Trace of") < out.index("Test long-term")


def test_state_shows_the_final_state_table(example, capsys):
    assert cli("run", "--state", example) == 0
    out = capsys.readouterr().out
    assert "Final state" in out
    header = next(ln for ln in out.splitlines() if ln.strip().startswith("where"))
    assert header.split() == ["where", "pte", "page", "value", "refcount", "mapcount", "pincount", "flags"]
    assert re.search(r"^  A\.buf\s+present rw\S*(?: dirty)?\s+#\d+\s+4\s+\d+\s+1\s+1\s+.*pinned", out, re.M)
    assert re.search(r"^  mr\s+FOLL_PIN\|FOLL_WRITE\|FOLL_LONGTERM\s+#\d+\s+4\s+A\s+held$", out, re.M)
    assert re.search(r"^  processes: A alive, MMF_HAS_PINNED, .*; B alive, ", out, re.M)


@pytest.mark.parametrize("alias", eras.BY_NAME["anon-exclusive"].aliases)
def test_backend_alias(example, capsys, alias):
    assert cli("run", "--backend", alias, example) == 0
    out = capsys.readouterr().out
    assert "Test long-term pin stays coherent across fork on anon-exclusive" in out
    assert "Expect pass on anon-exclusive: got pass, as expected" in out  # the alias resolves for expect too
    assert "1 scenario on anon-exclusive: 1 as expected" in out


def test_backend_6_1(example, capsys):
    """A kernel version runs the backend of its era, with that release's options."""
    spec = resolve("6.1").name
    assert spec.startswith("anon-exclusive")
    assert cli("run", "-b", "6.1", example) == 0  # no expect line for this spec: every assertion must hold
    out = capsys.readouterr().out
    assert f"Test long-term pin stays coherent across fork on {spec}\n" in out
    assert f"1 scenario on {spec}: 1 as expected" in out


def test_backend_with_options(example, capsys):
    assert cli("run", "-b", "early-cow:pin_scope=longterm", example) in (0, 1)
    assert "1 scenario on early-cow:pin_scope=longterm: " in capsys.readouterr().out


def test_json_output(tmp_path, capsys):
    good = write(tmp_path, "good.cow", LONG_TERM_PIN)
    bad = write(tmp_path, "bad.cow", FAILING)
    broken = write(tmp_path, "broken.cow", BROKEN)
    missing = tmp_path / "missing.cow"
    assert cli("run", "--format", "json", good, bad, broken, missing) == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)  # stdout is nothing but the document
    assert doc["cowdsl"] == __version__
    assert doc["schema"] == 1
    assert sorted(r["file"] for r in doc["results"]) == sorted([str(good), str(bad)])
    by_file = {r["file"]: r for r in doc["results"]}
    g, b = by_file[str(good)], by_file[str(bad)]
    assert (g["verdict"], g["expected"], g["ok"]) == ("pass", "pass", True)
    assert (b["verdict"], b["expected"], b["ok"]) == ("fail", None, False)
    assert g["scenario"] == "long-term pin stays coherent across fork"
    assert g["refs"] == ["LKML 2020-09-21, mm: Do early cow for pinned pages during fork() for ptes"]
    assert g["backend"] == "anon-exclusive"
    assert [(a["text"], a["line"], a["holds"]) for a in g["assertions"]] == [
        ("A.buf == 4", 13, True), ("B.buf == 3", 14, True), ("mr is A.buf", 15, True)]
    assert g["assertions"][0]["values"] == {"A.buf": "4"}
    assert [s["op"] for s in g["trace"]] == ["mmap", "write", "pin", "fork", "write", "write", "dma_write"]
    assert [s["actor"] for s in g["trace"]][-1] == "mr"
    assert any(e["commit"] for s in g["trace"] for e in s["events"])
    assert {m["name"] for m in g["final_state"]["mms"]} == {"A", "B"}
    assert "mr" in g["final_state"]["results"]
    errs = doc["errors"]
    assert {(e["file"], e["message"]) for e in errs} >= {
        (str(broken), "unknown flag `longtem` for `pin`"), (str(missing), "no such file or directory")}
    flag = next(e for e in errs if e["message"].startswith("unknown flag"))
    assert (flag["line"], flag["hint"]) == (3, "did you mean `longterm`?")
    assert "unknown flag" in err  # the diagnostics still reach people on stderr


def test_json_unknown_backend_is_a_document(example, capsys):
    assert cli("run", "-f", "json", "-b", "nope", example) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "error" and doc["exit"] == 2 and doc["format_version"] == 1
    assert doc["errors"][0]["file"] is None
    assert doc["errors"][0]["message"].startswith("unknown backend `nope`")


# --- check, ops, backends ----------------------------------------------------------------


def test_check(tmp_path, capsys):
    a = write(tmp_path, "a.cow", LONG_TERM_PIN)
    b = write(tmp_path, "b.cow", FAILING)
    assert cli("check", a, b) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{a}: ok (7 steps, 3 assertions, 1 expect line)",
        f"{b}: ok (4 steps, 2 assertions)",
    ]
    assert err == ""


def test_check_errors_exit_2(tmp_path, capsys):
    a = write(tmp_path, "a.cow", LONG_TERM_PIN)
    broken = write(tmp_path, "broken.cow", BROKEN)
    assert cli("check", a, broken) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{a}: ok (7 steps, 3 assertions, 1 expect line)"]
    assert f"{broken}:3:" in err
    assert "1 of 2 files have errors" in err
    assert cli("check", tmp_path / "nope.cow") == 2


def test_ops_lists_every_op_and_fact(capsys):
    assert cli("ops") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name, op in ops.OPS.items():
        assert any(ln.startswith(f"{name}(") for ln in lines), name
        assert op.doc in out
    facts = out[out.index("Facts for assertions:"):]
    for name, fact in ops.FACTS.items():
        assert re.search(rf"^  {name}\(", facts, re.M), name
        assert fact.doc in facts


def test_backends_lists_anon_exclusive(capsys):
    assert cli("backends") == 0
    out = capsys.readouterr().out
    era = eras.BY_NAME["anon-exclusive"]
    cls = registry.BACKENDS[era.name]
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("anon-exclusive "))
    block = [lines[start]] + list(itertools.takewhile(lambda ln: ln.startswith(" "), lines[start + 1:]))
    assert era.versions in block[0] and era.description in block[0]
    fields = {ln.split(":", 1)[0].strip(): ln.split(":", 1)[1].strip() for ln in block[1:]}
    assert fields["aliases"] == ", ".join(era.aliases)
    assert fields["rules"].split(", ") == list(cls.overridden_rules())
    for k, o in options.of_era(era.name).items():
        field = "change options" if o.kind == options.CHANGE else "variants"
        assert f"{k}={'|'.join(o.choices)}" in fields[field]
        assert f"  {k}={'|'.join(o.choices)} [{o.kind}; {', '.join(o.eras)}]: {o.doc}" in out  # documented once
    for name in registry.names():
        assert any(ln.startswith(f"{name} ") for ln in lines), name
    shown = out[out.index("The timeline"):]
    for c in timeline.TIMELINE:
        assert re.search(rf"^  {re.escape(str(c.mainline))}\s+{c.commit} ", shown, re.M), c.key


def test_a_crashing_checker_is_reported_and_the_others_load(tmp_path, capsys, monkeypatch):
    import cowdsl.load

    real = cowdsl.load.load_all

    def flaky(path):
        if "bad" in str(path):
            raise KeyError("checker bug")
        return real(path)

    monkeypatch.setattr(cowdsl.load, "load_all", flaky)
    good = write(tmp_path, "good.cow", LONG_TERM_PIN)
    bad = write(tmp_path, "bad.cow", LONG_TERM_PIN)
    assert cli("check", good, bad) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{good}: ok (7 steps, 3 assertions, 1 expect line)"]
    assert f"cowdsl: {bad}: internal error while loading: KeyError: 'checker bug'" in err
    assert "Traceback" in err


def test_fmt_and_lsp_are_commands(tmp_path, capsys):
    """The editors start `cowdsl lsp`, and docs/editors.md documents `cowdsl fmt`: both are
    handed the rest of the command line."""
    messy = write(tmp_path, "messy.cow", "process A\nA:   mmap(buf, anon, private, rw)\nassert A.buf == 0\n")
    assert cli("fmt", "--check", messy) == 1
    assert cli("fmt", messy) == 0
    assert cli("fmt", "--check", messy) == 0
    capsys.readouterr()
    assert cli("lsp", "--version") == 0
    assert capsys.readouterr().out == f"cowdsl lsp {__version__}\n"
    assert cli("fmt", "--bogus") == 2
    assert cli("--help") == 0
    out = capsys.readouterr().out
    assert re.search(r"^    fmt +rewrite \.cow files", out, re.M) and re.search(r"^    lsp +the language server", out, re.M)
