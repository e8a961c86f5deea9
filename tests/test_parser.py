"""The parser: every construct of the language, as a syntax tree with spans."""

from __future__ import annotations

import pytest

from cowdsl.errors import CowError, Span
from cowdsl.syntax import ast
from cowdsl.syntax.parser import parse


def items(source: str) -> tuple:
    return parse(source, "t.cow").items


def one(source: str):
    (item,) = items(source)
    return item


def sexp(e):
    """An expression without spans: names as text, operators as tuples."""
    if isinstance(e, ast.Location):
        return e.text()
    if isinstance(e, ast.Number):
        return e.value
    if isinstance(e, ast.Bool):
        return e.value
    if isinstance(e, ast.Not):
        return ("not", sexp(e.operand))
    if isinstance(e, (ast.BoolOp, ast.Compare)):
        return (e.op, sexp(e.left), sexp(e.right))
    if isinstance(e, ast.Same):
        return ("is not" if e.negated else "is", sexp(e.left), sexp(e.right))
    if isinstance(e, ast.Fact):
        return (e.name.text + "()", *map(sexp, e.args))
    raise AssertionError(f"not an expression: {e!r}")


def expr(text: str):
    item = one(f"assert {text}\n")
    assert isinstance(item, ast.Assertion)
    return sexp(item.expr)


def arg(a):
    """A step argument without spans."""
    if isinstance(a, ast.KeywordArg):
        v = a.value
        return (a.key.text + "=", v.value if isinstance(v, ast.Number) else v.text)
    return sexp(a)


def step_shape(st: ast.Step):
    return (st.actor.text, st.op.text, tuple(arg(a) for a in st.args), st.bind.text if st.bind else None)


# --- header -------------------------------------------------------------------------


def test_scenario_and_ref_lines():
    name, ref1, ref2 = items('scenario "long-term pin"\nref "LKML 2020-09-21"\nref "CVE-2020-29374"\n')
    assert name == ast.ScenarioName("long-term pin", Span(1, 1, 25))
    assert isinstance(ref1, ast.RefLine) and ref1.text == "LKML 2020-09-21"
    assert ref2.text == "CVE-2020-29374" and ref2.span.line == 3


def test_string_may_hold_hash_and_punctuation():
    assert one('ref "a#b: c(d), [e] = f"\n').text == "a#b: c(d), [e] = f"


def test_empty_string():
    assert one('scenario ""\n').text == ""


# --- declarations ---------------------------------------------------------------------


def test_process_one():
    d = one("process A\n")
    assert isinstance(d, ast.ProcessDecl)
    assert d.names == (ast.Name("A", Span(1, 9, 10)),)
    assert d.span == Span(1, 1, 10)


def test_process_several():
    d = one("process A, Bee,C\n")
    assert [n.text for n in d.names] == ["A", "Bee", "C"]
    assert d.names[1].span == Span(1, 12, 15)


def test_thread():
    d = one("thread T of A\n")
    assert isinstance(d, ast.ThreadDecl)
    assert (d.name.text, d.process.text) == ("T", "A")
    assert d.process.span == Span(1, 13, 14)


def test_file_values_and_hex():
    d = one("file F = [1, 0x2f, 0XFF, 0]\n")
    assert isinstance(d, ast.FileDecl)
    assert d.name.text == "F"
    assert [n.value for n in d.pages] == [1, 0x2F, 0xFF, 0]
    assert d.pages[1].span == Span(1, 14, 18)


def test_file_empty_list_parses_and_the_checker_refuses_it():
    assert one("file F = []\n").pages == ()


def test_pipe_one_and_several():
    assert [n.text for n in one("pipe P\n").names] == ["P"]
    assert [n.text for n in one("pipe P, Q\n").names] == ["P", "Q"]


# --- steps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, shape",
    [
        ("A: fork() as B", ("A", "fork", (), "B")),
        ("A: exit()", ("A", "exit", (), None)),
        ("A: munmap(buf)", ("A", "munmap", ("buf",), None)),
        ("A: write(buf[2], 7)", ("A", "write", ("buf[2]", 7), None)),
        ("A: write(buf, 0x10)", ("A", "write", ("buf", 16), None)),
        ("B: process_vm_writev(A.buf[1], 5)", ("B", "process_vm_writev", ("A.buf[1]", 5), None)),
        ("reclaim: swapout(A.buf)", ("reclaim", "swapout", ("A.buf",), None)),
        ("A: pin(buf, write, longterm, fast) as mr", ("A", "pin", ("buf", "write", "longterm", "fast"), "mr")),
        (
            "A: mmap(buf, anon, private, rw, pages=2)",
            ("A", "mmap", ("buf", "anon", "private", "rw", ("pages=", 2)), None),
        ),
        ("A: mmap(fm, shared, ro, file=F)", ("A", "mmap", ("fm", "shared", "ro", ("file=", "F")), None)),
        ("mr: dma_write(4)", ("mr", "dma_write", (4,), None)),
        ("mr: dma_read() as v", ("mr", "dma_read", (), "v")),
        ("A: vmsplice(buf[1], P)", ("A", "vmsplice", ("buf[1]", "P"), None)),
        ("A  :  write ( buf [ 1 ] , 2 )  as  w", ("A", "write", ("buf[1]", 2), "w")),
    ],
)
def test_step_forms(line, shape):
    st = one(line + "\n")
    assert isinstance(st, ast.Step)
    assert step_shape(st) == shape


def test_step_spans():
    st = one("A: pin(buf[1], write) as mr\n")
    assert st.span == Span(1, 1, 28)
    assert st.actor.span == Span(1, 1, 2)
    assert st.op.span == Span(1, 4, 7)
    loc, flag = st.args
    assert loc == ast.Location(None, ast.Name("buf", Span(1, 8, 11)), ast.Number(1, Span(1, 12, 13)), Span(1, 8, 14))
    assert flag.bare and flag.span == Span(1, 16, 21)
    assert st.bind == ast.Name("mr", Span(1, 26, 28))


def test_remote_location_parts():
    (loc, _) = one("B: process_vm_writev(A.buf[3], 1)\n").args
    assert loc.owner == ast.Name("A", Span(1, 22, 23))
    assert loc.name.text == "buf" and loc.index.value == 3
    assert not loc.bare


def test_keyword_arg_spans():
    (_, pages, file) = one("A: mmap(m, pages=2, file=F)\n").args
    assert isinstance(pages, ast.KeywordArg)
    assert pages.key.span == Span(1, 12, 17) and pages.value == ast.Number(2, Span(1, 18, 19))
    assert file.value == ast.Name("F", Span(1, 26, 27))
    assert pages.span == Span(1, 12, 19)


# --- layout -------------------------------------------------------------------------------


def test_comments_and_blank_lines():
    src = "# a comment first\n\n   \nprocess A   # trailing\n\n\n# between\nA: mmap(buf)#tight\n\n"
    decl, st = items(src)
    assert decl.span.line == 4 and st.span.line == 8
    assert step_shape(st) == ("A", "mmap", ("buf",), None)


def test_only_comments_and_empty():
    assert items("") == ()
    assert items("\n\n") == ()
    assert items("# nothing\n   # at all") == ()


def test_crlf_line_endings():
    src = "process A\r\nA: mmap(buf)\r\n\r\n# c\r\nassert A.buf == 0\r\n"
    decl, st, a = items(src)
    assert a.span == Span(5, 1, 18)
    assert a.text == "A.buf == 0"
    assert sexp(a.expr) == ("==", "A.buf", 0)


def test_missing_final_newline():
    decl, a = items("process A\nassert true")
    assert isinstance(a, ast.Assertion) and a.expr.value is True


def test_tabs_are_spaces():
    st = one("A:\twrite(buf,\t1)\n")
    assert step_shape(st) == ("A", "write", ("buf", 1), None)
    assert st.op.span.col == 4


def test_leading_whitespace_on_a_line():
    assert one("   process A\n").span == Span(1, 4, 13)


# --- assertions -----------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_comparison_operators(op):
    assert expr(f"A.buf {op} 3") == (op, "A.buf", 3)


def test_is_and_is_not():
    assert expr("mr is A.buf") == ("is", "mr", "A.buf")
    assert expr("mr is not F[0]") == ("is not", "mr", "F[0]")


def test_terms():
    assert expr("true") is True
    assert expr("false") is False
    assert expr("v == 0x1f") == ("==", "v", 31)
    assert expr("A.buf[1] == B.buf[0]") == ("==", "A.buf[1]", "B.buf[0]")


def test_facts_with_zero_one_and_two_args():
    assert expr("cow_copies() == 0") == ("==", ("cow_copies()",), 0)
    assert expr("exclusive(A.buf)") == ("exclusive()", "A.buf")
    assert expr("pincount(mr) > 0") == (">", ("pincount()", "mr"), 0)
    assert expr("f(A, B.x[1])") == ("f()", "A", "B.x[1]")


def test_fact_args_are_any_term_so_the_checker_can_say_what_is_wrong():
    assert expr("exclusive(3)") == ("exclusive()", 3)
    assert expr("exclusive(true)") == ("exclusive()", True)


def test_bare_counter_is_a_location_resolved_by_the_checker():
    assert expr("cow_copies > 0") == (">", "cow_copies", 0)


def test_not_binds_tighter_than_and():
    assert expr("not a and b") == ("and", ("not", "a"), "b")


def test_and_binds_tighter_than_or():
    assert expr("a or b and c") == ("or", "a", ("and", "b", "c"))
    assert expr("a and b or c") == ("or", ("and", "a", "b"), "c")


def test_or_and_and_are_left_associative():
    assert expr("a or b or c") == ("or", ("or", "a", "b"), "c")
    assert expr("a and b and c") == ("and", ("and", "a", "b"), "c")


def test_implies_is_weakest_and_right_associative():
    assert expr("a implies b implies c") == ("implies", "a", ("implies", "b", "c"))
    assert expr("a or b implies c and d") == ("implies", ("or", "a", "b"), ("and", "c", "d"))
    assert expr("not a implies b") == ("implies", ("not", "a"), "b")


def test_comparison_binds_tighter_than_not():
    assert expr("not A.buf == 1") == ("not", ("==", "A.buf", 1))
    assert expr("not not a") == ("not", ("not", "a"))
    assert expr("A.buf == 1 and mr is A.buf") == ("and", ("==", "A.buf", 1), ("is", "mr", "A.buf"))


def test_parentheses_override_precedence():
    assert expr("(a or b) and c") == ("and", ("or", "a", "b"), "c")
    assert expr("(a implies b) implies c") == ("implies", ("implies", "a", "b"), "c")
    assert expr("not (a and b)") == ("not", ("and", "a", "b"))
    assert expr("((true))") is True


def test_assertion_text_and_spans():
    a = one("assert  exclusive(A.buf) or   v != 2   # why\n")
    assert a.text == "exclusive(A.buf) or   v != 2"
    assert a.span == Span(1, 1, 37)
    assert a.expr.span == Span(1, 9, 37)
    left = a.expr.left
    assert isinstance(left, ast.Fact) and left.name.span == Span(1, 9, 18)
    assert left.span == Span(1, 9, 25)
    assert a.expr.right.span == Span(1, 31, 37)


# --- expectations ---------------------------------------------------------------------------


def test_expect_one_backend():
    e = one("expect pass on anon-exclusive\n")
    assert isinstance(e, ast.ExpectLine)
    assert e.outcome == "pass"
    assert e.backends == (ast.Name("anon-exclusive", Span(1, 16, 30)),)


def test_expect_several_backends_with_versions_and_options():
    e = one("expect fail on 5.10, early-cow:pin_scope=longterm,6.1 , mapcount:foll_cow=off:x=y\n")
    assert e.outcome == "fail"
    assert [b.text for b in e.backends] == ["5.10", "early-cow:pin_scope=longterm", "6.1", "mapcount:foll_cow=off:x=y"]
    assert e.backends[1].span == Span(1, 22, 50)


# --- par blocks -----------------------------------------------------------------------------------


def test_par_block():
    p = one("par {\n  A: write(buf, 1)\n\n  B: write(buf, 2)  # c\n}\n")
    assert isinstance(p, ast.ParBlock)
    assert [step_shape(s) for s in p.steps] == [("A", "write", ("buf", 1), None), ("B", "write", ("buf", 2), None)]
    assert p.span.line == 1 and p.steps[1].span.line == 4


def test_empty_par_block():
    assert one("par {\n}\n").steps == ()


# --- a whole file ---------------------------------------------------------------------------------


def test_whole_scenario_item_kinds():
    src = """scenario "s"
ref "r"
process A
thread T of A
file F = [1]
pipe P
A: mmap(buf)
assert A.buf == 0
expect pass on anon-exclusive
"""
    kinds = [type(i).__name__ for i in items(src)]
    assert kinds == ["ScenarioName", "RefLine", "ProcessDecl", "ThreadDecl", "FileDecl", "PipeDecl", "Step",
                     "Assertion", "ExpectLine"]


def test_keywords_cannot_start_a_step():
    with pytest.raises(CowError):
        parse("process: write(buf, 1)\n")
