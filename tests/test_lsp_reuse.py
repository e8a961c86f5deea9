"""The language server on `include`, `param`, `const` and scoped assertions:
a problem inside an included file is shown at the include line (with the
included file's name, line and column, and no quick fix that would edit the
including file); hover on `$kind`, a param's or const's declaration, `when`."""

from __future__ import annotations

from cowdsl.lsp import analysis as A

FAMILY = """\
param kind in small, thp, hugetlb
param n in 1, 2
const V = 7
process A
A: mmap(buf, anon, $kind, pages=$n)
assert on anon-exclusive: A.buf == $V
expect fail on 5.10 when kind=thp
"""


def test_a_problem_in_an_included_file_is_shown_at_the_include_line(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "p.cow").write_text("process A\nA: mmapp(buf)\n")
    main = tmp_path / "t.cow"
    text = 'scenario "x"\ninclude "lib/p.cow"\nassert true\n'
    main.write_text(text)
    [p] = A.problems(text, str(main))
    assert p.range == A.Range(A.Pos(1, 0), A.Pos(1, 19))
    assert p.message.startswith(f"in `{tmp_path}/lib/p.cow`, line 2, column 4: unknown op `mmapp`")
    assert "hint: did you mean `mmap`?" in p.message and p.elsewhere == f"{tmp_path}/lib/p.cow"
    assert A.code_actions(text, filename=str(main)) == []


def test_a_refused_include_is_a_problem_of_its_own_line(tmp_path):
    text = 'include "../x.cow"\nprocess A\nassert true\n'
    [p] = A.problems(text, str(tmp_path / "t.cow"))
    assert p.range.start == A.Pos(0, 8) and p.message.startswith("cannot include a path with `..`")


def test_a_good_swept_file_has_no_problems(tmp_path):
    assert A.problems(FAMILY, str(tmp_path / "f.cow")) == []


def test_hover_on_a_param_a_const_and_when():
    md, r = A.hover(FAMILY, A.Pos(4, 20))  # $kind
    assert md == ("param `kind`: the file runs once per value: `small`, `thp`, `hugetlb`; `$kind` stands for it "
                  "(6 scenarios in all, named `NAME[kind=...]`)")
    assert r == A.Range(A.Pos(4, 19), A.Pos(4, 24))
    assert A.hover(FAMILY, A.Pos(0, 7))[0].startswith("param `kind`")  # where it is declared
    assert A.hover(FAMILY, A.Pos(5, 36))[0] == "const `V` = 7; `$V` stands for it"
    assert A.hover(FAMILY, A.Pos(6, 27))[0].startswith("param `kind`")  # in `when kind=thp`
    assert A.hover(FAMILY, A.Pos(6, 21))[0].startswith("`expect ... when kind=thp|pte_thp, pages=2`")
    assert "early-cow" in A.hover(FAMILY, A.Pos(6, 16))[0]  # the backend before `when` is still one


def test_hover_on_the_new_keywords():
    text = 'include "p.cow"\nreachable: true\n'
    assert A.hover(text, A.Pos(0, 2))[0].startswith('`include "prelude.cow"`')
    assert A.hover(text, A.Pos(1, 3))[0].startswith("`reachable: EXPR`")
