"""Reuse and parameters: `include`, `const`, `param` sweeps and `expect ... when`.

An include is untrusted input: it stays in the including file's folder (no
absolute path, no `..`, no symbolic link, no FIFO opened), is bounded, refuses
cycles with the chain, and an error inside the included file is shown where it
is and at the include line that led there."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cowdsl.batch import Batch
from cowdsl.errors import CowError
from cowdsl.load import load, load_all, load_text, load_text_all
from cowdsl.run import run
from cowdsl.syntax import include

pytest_plugins = ["pytester"]

FAMILY = """\
scenario "cow in parent"
ref "tools/testing/selftests/mm/cow.c: test_cow_in_parent"
param kind in small, thp, hugetlb
param n in 1, 2
const V = 7
process A
A: mmap(buf, anon, private, rw, $kind, pages=$n)
A: write(buf, 1)
A: fork() as B
B: write(buf, $V)
assert A.buf == 1
assert B.buf == $V
expect pass on anon-exclusive, 5.10
expect fail on 5.10 when kind=thp|hugetlb
expect pass on 5.10 when kind=thp, n=2
"""


def write(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def error_of(fn, *a) -> CowError:
    with pytest.raises(CowError) as info:
        fn(*a)
    return info.value


# --- param sweeps and consts ---------------------------------------------------------------


def test_a_sweep_is_one_scenario_per_combination_in_declaration_order():
    scs = load_text_all(FAMILY, "fam.cow")
    assert [sc.name for sc in scs] == [
        "cow in parent[kind=small,n=1]", "cow in parent[kind=small,n=2]", "cow in parent[kind=thp,n=1]",
        "cow in parent[kind=thp,n=2]", "cow in parent[kind=hugetlb,n=1]", "cow in parent[kind=hugetlb,n=2]"]
    assert scs[3].params == (("kind", "thp"), ("n", 2))
    assert scs[3].where == "fam.cow[kind=thp,n=2]"
    mmap = scs[3].steps[0]
    assert "thp" in mmap.flags and "small" not in mmap.flags and mmap.pages == 2
    assert scs[0].steps[0].pages == 1 and "small" in scs[0].steps[0].flags
    assert scs[0].steps[3].value == 7  # B: write(buf, $V)


def test_a_file_without_params_is_one_scenario_named_as_before():
    scs = load_text_all("const N = 3\nprocess A\nA: mmap(buf, anon, private, rw, pages=$N)\nassert A.buf[2] == 0\n", "x.cow")
    assert len(scs) == 1 and scs[0].name == "x" and scs[0].params == () and scs[0].steps[0].pages == 3


def test_consts_go_where_numbers_go():
    sc = load_text("const P = 2\nconst C = 5\nconst V = 9\nprocess A\nfile F = [$V, 1]\n"
                   "A: mmap(buf, anon, private, rw, pages=$P)\nA: gup(buf, read, count=$C) as r\n"
                   "assert F[0] == $V\n", "x.cow")
    assert sc.files == (("F", (9, 1)),)
    assert sc.steps[0].pages == 2 and sc.steps[1].count == 5


def test_a_page_index_from_a_param_or_const():
    src = ("param i in 0, 1\nconst L = 2\nprocess A\nA: mmap(buf, anon, private, rw, pages=3)\n"
           "A: write(buf[$i], 5)\nA: munmap(buf[1..$L])\nassert A.buf[$i] == 5\n")
    first, second = load_text_all(src, "x.cow")
    assert second.steps[1].addr.index == 1 and first.steps[1].addr.index == 0
    assert first.steps[2].part == (1, 2)
    from cowdsl.fmt import format_text

    assert format_text(src) == src


def test_expect_lines_per_param_value_the_more_specific_line_wins():
    got = {sc.name.split("[")[1]: {e.spec.name: e.outcome for e in sc.expectations} for sc in load_text_all(FAMILY, "f.cow")}
    ae = "anon-exclusive"
    five = [e.spec.name for e in load_text_all(FAMILY, "f.cow")[0].expectations if e.spec.text == "5.10"][0]
    assert got["kind=small,n=1]"] == {ae: "pass", five: "pass"}
    assert got["kind=thp,n=1]"] == {ae: "pass", five: "fail"}
    assert got["kind=hugetlb,n=2]"] == {ae: "pass", five: "fail"}
    assert got["kind=thp,n=2]"] == {ae: "pass", five: "pass"}  # two conditions beat one


def test_two_lines_as_specific_that_disagree_are_an_error(load_error, rendered):
    src = FAMILY + "expect pass on 5.10 when kind=hugetlb\n"
    err = load_error(src)
    r = rendered(err)
    assert r["message"].startswith("`5.10` is ") and "and to pass here" in r["message"]
    assert "(with kind=hugetlb,n=1; kind=hugetlb,n=2)" in r["message"]
    assert r["line"] == 16


@pytest.mark.parametrize("source, message, where, expected, hint", [
    pytest.param("process A\nassert A.buf == $M\n", "unknown const or param `$M`", (2, 17, 2),
                 "a `const` or `param` declared in the file", "declare it: `const M = 1` or `param M in a, b`",
                 id="unknown_var"),
    pytest.param("const LEN = 1\nprocess A\nA: mmap(buf, anon, private, rw, pages=$LNE)\nassert true\n",
                 "unknown const or param `$LNE`", (3, 39, 4), "`$LEN`", "did you mean `LEN`?", id="var_typo"),
    pytest.param("const N = 1\nparam N in 1, 2\nprocess A\nassert true\n", "`N` is already a const, declared at line 1",
                 (2, 7, 1), None, "give each const and param its own name", id="duplicate"),
    pytest.param("param k in a, b, a\nprocess A\nassert true\n", "`a` is listed twice", (1, 18, 1), None,
                 "each value once", id="duplicate_value"),
    pytest.param("process A\nassert true\nexpect pass on 5.10 when kind=thp\n", "`when kind=...`: `kind` is not a param",
                 (3, 26, 4), "a param declared with `param NAME in ...`", "a `when` picks some scenarios of a swept file",
                 id="when_without_params"),
    pytest.param("param kind in small, thp\nprocess A\nassert true\nexpect pass on 5.10 when kind=tph\n",
                 "`tph` is not a value of `kind`", (4, 31, 3), "`small` or `thp`", "did you mean `thp`?", id="when_bad_value"),
    pytest.param("param kind in small, thp\nprocess A\nassert true\nexpect pass on 5.10 when knd=thp\n",
                 "`when knd=...`: `knd` is not a param", (4, 26, 3), "`kind`", "did you mean `kind`?", id="when_typo"),
    pytest.param("param k in a, b\nprocess A\nfile F = [$k]\nassert true\n",
                 "`$k` has a name among its values; a file's pages hold numbers", (3, 11, 2),
                 "a number, or a param whose values are numbers", None, id="name_in_file"),
    pytest.param("param k in a, b\nprocess A\nA: mmap(buf, anon, private, rw, pages=2)\nA: write(buf[$k], 1)\n"
                 "assert true\n", "`$k` has a name among its values; a page index is a number", (4, 14, 2),
                 "a number, or a param whose values are numbers", None, id="name_as_index"),
    pytest.param("param a in " + ", ".join(map(str, range(9))) + "\nparam b in " + ", ".join(map(str, range(8)))
                 + "\nprocess A\nassert true\n", "the params sweep 72 scenarios; the limit is 64", (1, 1, 36), None,
                 "split the file, or sweep fewer values", id="too_many"),
    pytest.param("param kind in small, ro\nprocess A\nA: mmap(buf, anon, private, rw, $kind)\nassert true\n",
                 "`ro` conflicts with `rw` (with kind=ro)", (3, 33, 5), "one prot: `rw` or `ro`", "drop one of them",
                 id="error_in_one_value"),
])
def test_sweep_errors(load_error, rendered, source, message, where, expected, hint):
    err = load_error(source)
    r = rendered(err)
    line, col, width = where
    assert (r["line"], r["col"], r["message"]) == (line, col, message), err.render()
    assert (r["pad"], r["width"]) == (col - 1, width)
    assert (r["expected"], r["hint"]) == (expected, hint)


def test_load_refuses_a_swept_file_and_load_all_takes_it(tmp_path):
    f = write(tmp_path, "fam.cow", FAMILY)
    with pytest.raises(ValueError, match="sweeps 6 scenarios"):
        load(f)
    assert len(load_all(f)) == 6


def test_every_runner_sees_plain_scenarios_named_by_their_values(tmp_path, capsys):
    from cowdsl.cli import main

    f = write(tmp_path, "fam.cow", FAMILY.replace("expect pass on 5.10 when kind=thp, n=2\n", ""))
    batch = Batch()
    assert [sc.name for sc in batch.load([f])][-1] == "cow in parent[kind=hugetlb,n=2]"
    main(["run", "-j", "1", "--format", "json", str(f)])
    doc = json.loads(capsys.readouterr().out)
    names = [r["scenario"] for r in doc["results"]]
    assert "cow in parent[kind=thp,n=1]" in names and len(names) == 6
    main(["run", "-j", "1", "--format", "junit", str(f)])
    assert 'name="cow in parent[kind=hugetlb,n=1] on anon-exclusive"' in capsys.readouterr().out
    main(["run", "-j", "1", "-b", "all", str(f)])
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:8]]
    assert rows == ["fam[kind=small,n=1]", "fam[kind=small,n=2]", "fam[kind=thp,n=1]", "fam[kind=thp,n=2]",
                    "fam[kind=hugetlb,n=1]", "fam[kind=hugetlb,n=2]"]


def test_the_pytest_plugin_runs_one_item_per_value_and_backend(pytester):
    pytester.makefile(".cow", fam=FAMILY.replace("expect pass on 5.10 when kind=thp, n=2\n", "")
                      .replace("expect pass on anon-exclusive, 5.10\n", "expect pass on anon-exclusive\n")
                      .replace("expect fail on 5.10 when kind=thp|hugetlb\n", ""))
    result = pytester.runpytest("-p", "no:cowdsl", "-p", "cowdsl.pytest_plugin", "-p", "no:hypothesispytest",
                                "-p", "no:benchmark", "-p", "no:cacheprovider", "--cow", "-v")
    result.assert_outcomes(passed=6)
    out = result.stdout.str()
    assert "fam.cow::anon-exclusive[kind=thp,n=2] PASSED" in out


# --- include ------------------------------------------------------------------------------------

PRELUDE = "process A\nA: mmap(buf, anon, private, rw, $kind)\nA: write(buf, 1)\n"


def test_include_puts_the_files_lines_in_place(tmp_path):
    write(tmp_path, "lib/prelude.cow", PRELUDE)
    f = write(tmp_path, "t.cow", 'param kind in small, thp\ninclude "lib/prelude.cow"\nA: fork() as B\nassert B.buf == 1\n')
    scs = load_all(f)
    assert [sc.name for sc in scs] == ["t[kind=small]", "t[kind=thp]"]
    assert [s.op for s in scs[1].steps] == ["mmap", "write", "fork"] and "thp" in scs[1].steps[0].flags


def test_a_nested_include_is_relative_to_the_including_file(tmp_path):
    write(tmp_path, "lib/a.cow", 'include "b.cow"\nA: write(buf, 2)\n')
    write(tmp_path, "lib/b.cow", "process A\nA: mmap(buf, anon, private, rw)\n")
    f = write(tmp_path, "t.cow", 'include "lib/a.cow"\nassert A.buf == 2\n')
    assert [s.op for s in load(f).steps] == ["mmap", "write"]


def test_an_error_inside_an_included_file_shows_both_places(tmp_path):
    write(tmp_path, "lib/prelude.cow", "process A\nA: mmapp(buf, anon, private, rw)\n")
    f = write(tmp_path, "t.cow", 'scenario "x"\ninclude "lib/prelude.cow"\nassert true\n')
    err = error_of(load, f)
    text = err.render()
    lines = text.splitlines()
    assert lines[0] == f"{tmp_path}/lib/prelude.cow:2:4: error: unknown op `mmapp`"
    assert lines[1] == "   2 | A: mmapp(buf, anon, private, rw)"
    assert lines[2] == "     |    ^^^^^"
    assert "  hint: did you mean `mmap`?" in lines
    assert f"{f}:2:1: note: included from here" in lines
    assert '   2 | include "lib/prelude.cow"' in lines
    # the first diagnostic's file is the included one (JSON's "file" and "line")
    assert err.filename == f"{tmp_path}/lib/prelude.cow" and err.diagnostics[0].span.line == 2


def test_a_syntax_error_in_an_included_file(tmp_path):
    write(tmp_path, "p.cow", "process A\nA: mmap(buf,, rw)\n")
    f = write(tmp_path, "t.cow", 'include "p.cow"\nassert true\n')
    text = error_of(load, f).render()
    assert text.startswith(f"{tmp_path}/p.cow:2:13: error: unexpected `,`")
    assert f"{f}:1:1: note: included from here" in text


@pytest.mark.parametrize("path, message", [
    ("/etc/passwd.cow", "cannot include an absolute path: `/etc/passwd.cow`"),
    ("../up.cow", "cannot include a path with `..`: `../up.cow`"),
    ("lib/../../up.cow", "cannot include a path with `..`: `lib/../../up.cow`"),
    ("notes.txt", "cannot include not a .cow file: `notes.txt`"),
    ("", "cannot include an empty path: ``"),
    ("missing.cow", "no file `missing.cow` to include"),
])
def test_include_paths_that_are_refused(tmp_path, path, message):
    (tmp_path / "up.cow").write_text("process A\n")
    f = write(tmp_path, "sub/t.cow", f'include "{path}"\nprocess A\nassert true\n')
    err = error_of(load, f)
    d = err.diagnostics[0]
    assert d.message == message
    assert (d.span.line, d.span.col) == (1, 9)  # the quoted path


def test_include_follows_no_symbolic_link(tmp_path):
    outside = tmp_path / "outside"
    write(outside, "secret.cow", "process A\n")
    inside = tmp_path / "in"
    inside.mkdir()
    os.symlink(outside / "secret.cow", inside / "link.cow")
    os.symlink(outside, inside / "dir")
    for target, word in (("link.cow", "link.cow"), ("dir/secret.cow", "dir")):
        f = write(inside, "t.cow", f'include "{target}"\nassert true\n')
        err = error_of(load, f)
        assert err.diagnostics[0].message == f"cannot include `{target}`: `{word}` is a symbolic link; an include follows none"


def test_include_never_opens_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "pipe.cow")
    f = write(tmp_path, "t.cow", 'include "pipe.cow"\nassert true\n')
    err = error_of(load, f)  # would block forever if the FIFO were opened for reading without O_NONBLOCK
    assert err.diagnostics[0].message == "cannot include `pipe.cow`: not a regular file (a FIFO)"


def test_an_include_cycle_is_refused_with_its_chain(tmp_path):
    write(tmp_path, "a.cow", 'include "b.cow"\n')
    write(tmp_path, "b.cow", 'include "a.cow"\n')
    f = write(tmp_path, "t.cow", 'include "a.cow"\nassert true\n')
    err = error_of(load, f)
    assert err.diagnostics[0].message == (f"an include cycle: `{f}` includes `{tmp_path}/a.cow` includes "
                                          f"`{tmp_path}/b.cow` includes `{tmp_path}/a.cow`")
    text = err.render()
    assert text.count("note: included from here") == 2


def test_a_file_including_itself(tmp_path):
    f = write(tmp_path, "t.cow", 'include "t.cow"\nprocess A\nassert true\n')
    assert error_of(load, f).diagnostics[0].message == f"an include cycle: `{f}` includes `{tmp_path}/t.cow`"


def test_includes_nest_boundedly(tmp_path):
    for i in range(include.MAX_DEPTH + 1):
        write(tmp_path, f"d{i}.cow", f'include "d{i + 1}.cow"\n')
    write(tmp_path, f"d{include.MAX_DEPTH + 1}.cow", "process A\n")
    f = write(tmp_path, "t.cow", 'include "d0.cow"\nassert true\n')
    assert error_of(load, f).diagnostics[0].message == f"includes nest more than {include.MAX_DEPTH} deep"


def test_includes_are_bounded_in_number(tmp_path):
    write(tmp_path, "one.cow", "# nothing\n")
    f = write(tmp_path, "t.cow", 'include "one.cow"\n' * (include.MAX_FILES + 1) + "process A\nassert true\n")
    err = error_of(load, f)
    assert err.diagnostics[0].message == f"more than {include.MAX_FILES} files included"
    assert err.diagnostics[0].span.line == include.MAX_FILES + 1


def test_include_needs_a_file_on_disk():
    err = error_of(load_text, 'include "x.cow"\nprocess A\nassert true\n', "<stdin>")
    assert err.diagnostics[0].message == "`include` works in a file read from disk"


def test_a_bad_file_reads_no_include(tmp_path, monkeypatch):
    """A file with a syntax error never looks at its include lines."""
    import cowdsl.load

    def never(*a):
        raise AssertionError("an include was opened")

    monkeypatch.setattr(cowdsl.load, "open_included", never)
    f = write(tmp_path, "t.cow", 'include "x.cow"\nprocess A\nassert A.buf = 1\n')
    assert error_of(load, f).diagnostics[0].message == "unexpected `=`"


def test_fmt_keeps_the_new_lines(tmp_path):
    from cowdsl.fmt import format_text

    src = ('param  kind in small ,thp\nconst N=4\ninclude   "p.cow"\nprocess A\nfile F = [$N,1]\n'
           "A: mmap(buf, anon, private, rw, $kind, pages = $N)\nassert A.buf==$N\n"
           "expect pass on 5.10  when kind = thp|small ,N=4\n")
    out = format_text(src)
    assert out == ('param kind in small, thp\nconst N = 4\ninclude "p.cow"\nprocess A\nfile F = [$N, 1]\n'
                   "A: mmap(buf, anon, private, rw, $kind, pages=$N)\nassert A.buf == $N\n"
                   "expect pass on 5.10 when kind=thp|small, N=4\n")
    assert format_text(out) == out


# --- the examples of docs/language.md -------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "language.md"


def _blocks_after(heading: str) -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    rest = text[text.index(heading):]
    return [b.split("\n", 1)[1] for b in rest.split("```")[1::2]]


def test_the_docs_family_example_loads_as_eight_scenarios(tmp_path):
    family, lib = _blocks_after("## Reuse and parameters")[:2]
    write(tmp_path, "lib/one-process.cow", lib)
    f = write(tmp_path, "cow-in-parent.cow", family)
    scs = load_all(f)
    assert len(scs) == 8 and scs[-1].name == "cow in parent[kind=hugetlb,pages=2]"
    assert all(r.ok for r in (run(sc, "6.1") for sc in scs))


def test_the_docs_reachable_example_holds():
    src = _blocks_after("`invariant` and `reachable` are judged")[0]
    r = run(load_text(src, "x.cow"), "anon-exclusive")
    assert [c.holds for c in r.checks] == [True, True]


def test_json_gives_the_error_in_the_included_file_and_the_include_line(tmp_path, capsys):
    from cowdsl.cli import main

    write(tmp_path, "p.cow", "process A\nA: mmapp(buf)\n")
    f = write(tmp_path, "t.cow", 'include "p.cow"\nassert true\n')
    assert main(["run", "-j", "1", "--format", "json", str(f)]) == 2
    errs = json.loads(capsys.readouterr().out)["errors"]
    assert [(e["file"], e["line"], e["col"], e["severity"], e["message"]) for e in errs] == [
        (f"{tmp_path}/p.cow", 2, 4, "error", "unknown op `mmapp`"),
        (str(f), 1, 1, "note", "included from here"),
    ]


def test_crosscheck_rows_name_each_swept_scenario(tmp_path):
    from cowdsl import crosscheck

    f = write(tmp_path, "x.cow", "param n in 1, 2\nprocess A\nA: mmap(buf, anon, private, rw, pages=$n)\n"
                                 "A: write(buf, 3)\nassert A.buf == 3\n")
    report = crosscheck.collect([str(f)])
    assert report.loaded == 2
    assert sorted(r["file"] for r in report.rows) == [f"{f}[n=1]", f"{f}[n=2]"]


def test_a_directory_run_skips_the_files_others_include(tmp_path):
    from cowdsl.load import scan

    write(tmp_path, "lib/prelude.cow", PRELUDE)
    a = write(tmp_path, "a.cow", 'param kind in small\ninclude "lib/prelude.cow"\nassert A.buf == 1\n')
    write(tmp_path, "b.cow", 'include "../outside.cow"\nprocess A\nassert true\n')  # refused path: ignored here
    found, left_out = scan([tmp_path])
    assert found == [a, tmp_path / "b.cow"]
    assert left_out == [(tmp_path / "lib/prelude.cow", f"skipped: included by {a}, a fragment, not a scenario")]
