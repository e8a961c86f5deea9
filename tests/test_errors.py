"""Syntax errors, file decoding and the rendering of diagnostics.

Every syntax error the parser can produce has a row in SYNTAX_ERRORS: its
message, file:line:col, the caret under the source text, the `expected:` line
and the `hint:`.  The checker's errors are in test_checker.py.  Whatever the
input, loading it returns a Scenario or raises CowError: never a traceback.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cowdsl import ops
from cowdsl.errors import CowError, Diagnostic, Span, did_you_mean, one_of, render
from cowdsl.load import load_text
from cowdsl.scenario import Scenario
from cowdsl.syntax.parser import MAX_SOURCE_BYTES, decode, parse

H = "process A\nA: mmap(buf, anon, private, rw, pages=2)\n"  # lines 1-2
T = "assert true\n"
STATEMENT = (
    "a statement: `scenario`, `ref`, `include`, `const`, `param`, `process`, `thread`, `file`, `pipe`, "
    "a step `ACTOR: op(...)`, `par {`, `assert` or `expect`"
)

SYNTAX_ERRORS = [
    pytest.param(
        H + "assert A.buf = 2\n",
        'unexpected `=`', (3, 14, 1), 'one of `[`, `and`, `implies`, `is`, `or`, a comparison (==, !=, <, <=, >, >=), the end of the line', 'compare with `==`',
        id="equals_instead_of_double_equals",
    ),
    pytest.param(
        H + "assert A.buf[1] = 2\n",
        'unexpected `=`', (3, 17, 1), 'one of `and`, `implies`, `is`, `or`, a comparison (==, !=, <, <=, >, >=), the end of the line', 'compare with `==`',
        id="equals_after_index",
    ),
    pytest.param(
        H + "assert A.buf $ 1\n",
        'unexpected character `$`', (3, 14, 1), 'one of `[`, `and`, `implies`, `is`, `or`, a comparison (==, !=, <, <=, >, >=), the end of the line', None,
        id="unexpected_character_in_assertion",
    ),
    pytest.param(
        H + "assert true && false\n",
        'unexpected character `&`', (3, 13, 1), 'one of `and`, `implies`, `is`, `or`, a comparison (==, !=, <, <=, >, >=), the end of the line', 'write `and`',
        id="ampersand_for_and",
    ),
    pytest.param(
        H + "assert true || false\n",
        'unexpected character `|`', (3, 13, 1), 'one of `and`, `implies`, `is`, `or`, a comparison (==, !=, <, <=, >, >=), the end of the line', 'write `or`',
        id="pipe_for_or",
    ),
    pytest.param(
        H + "assert !true\n",
        'unexpected character `!`', (3, 8, 1), 'one of `(`, `false`, `not`, `true`, a name, a number', 'write `not`, or `!=` to compare',
        id="bang_for_not",
    ),
    pytest.param(
        H + "A: write(buf, 1);\n" + T,
        'unexpected character `;`', (3, 17, 1), '`as` or the end of the line', 'one statement per line; no `;` needed',
        id="semicolon",
    ),
    pytest.param(
        H + "A write(buf, 1)\n" + T,
        'unexpected `write`', (3, 3, 5), '`:`', 'a step is written `ACTOR: op(args)`: put `:` after `A`',
        id="missing_colon_after_actor",
    ),
    pytest.param(
        "procss A\n" + T,
        'unknown statement `procss`', (1, 1, 6), STATEMENT, 'did you mean `process`?',
        id="misspelled_keyword",
    ),
    pytest.param(
        H + "asert A.buf == 1\n",
        'unknown statement `asert`', (3, 1, 5), STATEMENT, 'did you mean `assert`?',
        id="misspelled_assert",
    ),
    pytest.param(
        H + "A: fork as B\n" + T,
        'unexpected `as`', (3, 9, 2), '`(`', 'an op is called with parentheses, e.g. `A: fork() as B`',
        id="missing_parentheses",
    ),
    pytest.param(
        H + "A: write(buf, 1\n" + T,
        'unexpected end of line', (3, 16, 1), '`)` or `,`', None,
        id="unclosed_call",
    ),
    pytest.param(
        H + "A: write(buf, 1) extra\n" + T,
        'unexpected `extra`', (3, 18, 5), '`as` or the end of the line', None,
        id="junk_after_step",
    ),
    pytest.param(
        H + "A: read(buf) as\n" + T,
        'unexpected end of line', (3, 16, 1), 'a name', None,
        id="as_without_name",
    ),
    pytest.param(
        H + "process: exit()\n" + T,
        'unexpected `:`', (3, 8, 1), 'a name', '`process` is a keyword; an actor needs another name',
        id="keyword_as_actor",
    ),
    pytest.param(
        H + "A: write(buf, -1)\n" + T,
        'unexpected character `-`', (3, 15, 1), 'a name or a number', 'values are 0 or more, in decimal or hex (`0x1f`)',
        id="negative_number",
    ),
    pytest.param(
        H + "A: write(buf, 0x)\n" + T,
        'unexpected `x`', (3, 16, 1), '`)` or `,`', 'a hex number is written like `0x1f`',
        id="bad_hex",
    ),
    pytest.param(
        H + "A: write(buf, 1.5)\n" + T,
        'unexpected `.`', (3, 16, 1), '`)` or `,`', 'numbers are whole: no decimal point',
        id="decimal_point",
    ),
    pytest.param(
        H + "A: write(bùf, 1)\n" + T,
        'unexpected character `ù`', (3, 11, 1), 'one of `)`, `,`, `.`, `=`, `[`', 'names use ASCII letters, digits and `_`',
        id="non_ascii_name",
    ),
    pytest.param(
        H + "A: write(buf, 1)\x01\n" + T,
        'unexpected character U+0001', (3, 17, 1), '`as` or the end of the line', None,
        id="control_character",
    ),
    pytest.param(
        "\ufeffprocess A\n" + T,
        'unexpected character U+FEFF', (1, 1, 1), STATEMENT, 'remove the byte-order mark (save as UTF-8 without BOM)',
        id="byte_order_mark_in_text",
    ),
    pytest.param(
        H + "assert A.buf[] == 1\n",
        'unexpected `]`', (3, 14, 1), 'a number', None,
        id="empty_index",
    ),
    pytest.param(
        H + "A: write(A.buf.x, 1)\n" + T,
        'unexpected `.`', (3, 15, 1), 'one of `)`, `,`, `[`', None,
        id="location_with_two_dots",
    ),
    pytest.param(
        H + "assert A.buf == 1 == 2\n",
        'unexpected `==`', (3, 19, 2), 'one of `and`, `implies`, `or`, the end of the line', None,
        id="comparison_chain",
    ),
    pytest.param(
        H + "assert A.buf ==\n",
        'unexpected end of line', (3, 16, 1), 'one of `(`, `false`, `true`, a name, a number', None,
        id="dangling_comparison",
    ),
    pytest.param(
        H + "assert not\n",
        'unexpected end of line', (3, 11, 1), 'one of `(`, `false`, `not`, `true`, a name, a number', None,
        id="dangling_not",
    ),
    pytest.param(
        H + "assert (A.buf == 1\n",
        'unexpected end of line', (3, 19, 1), 'one of `)`, `and`, `implies`, `or`', None,
        id="unclosed_parenthesis",
    ),
    pytest.param(
        H + "assert exclusive(A.buf\n",
        'unexpected end of line', (3, 23, 1), 'one of `)`, `,`, `[`', None,
        id="unclosed_fact",
    ),
    pytest.param(
        H + "assert exclusive(A.buf == 1)\n",
        'unexpected `==`', (3, 24, 2), 'one of `)`, `,`, `[`', None,
        id="expression_in_fact_argument",
    ),
    pytest.param(
        "scenario pin\nprocess A\n" + T,
        'unexpected `pin`', (1, 10, 3), 'a quoted string ("...")', 'strings are in double quotes on one line, e.g. ref "LKML 2020-09-21"',
        id="scenario_name_unquoted",
    ),
    pytest.param(
        'ref "LKML\nprocess A\n' + T,
        'unterminated string', (1, 5, 5), 'a closing `"` on the same line', 'strings are in double quotes on one line, e.g. ref "LKML 2020-09-21"',
        id="unterminated_string",
    ),
    pytest.param(
        "process A B\n" + T,
        'unexpected `B`', (1, 11, 1), '`,` or the end of the line', 'separate names with commas, e.g. `process A, B`',
        id="process_names_without_comma",
    ),
    pytest.param(
        "process A\nthread T A\n" + T,
        'unexpected `A`', (2, 10, 1), '`of`', 'write `thread T of A`',
        id="thread_without_of",
    ),
    pytest.param(
        "file F = [1, 2\nprocess A\n" + T,
        'unexpected end of line', (1, 15, 1), '`,` or `]`', None,
        id="file_unclosed_list",
    ),
    pytest.param(
        "file F [1]\nprocess A\n" + T,
        'unexpected `[`', (1, 8, 1), '`=`', 'write `file F = [1, 2]`',
        id="file_without_equals",
    ),
    pytest.param(
        H + T + "expect maybe on 6.1\n",
        'unexpected `maybe`', (4, 8, 5), '`pass` or `fail`', None,
        id="expect_bad_outcome",
    ),
    pytest.param(
        H + T + "expect pass\n",
        'unexpected end of line', (4, 12, 1), '`on`', None,
        id="expect_without_on",
    ),
    pytest.param(
        H + T + "expect pass on\n",
        'unexpected end of line', (4, 15, 1), 'a backend name (see `cowdsl backends`)', 'list backends after `on`, e.g. `expect pass on anon-exclusive`',
        id="expect_without_backend",
    ),
    pytest.param(
        H + T + "expect pass on anon-exclusive,\n",
        'unexpected end of line', (4, 31, 1), 'a backend name (see `cowdsl backends`)', 'list backends after `on`, e.g. `expect pass on anon-exclusive`',
        id="expect_trailing_comma",
    ),
    pytest.param(
        H + T + "expect pass on early-cow:pin_scope\n",
        'unexpected `:`', (4, 25, 1), '`,` or the end of the line',
        'a backend option is written NAME:OPTION=CHOICE, e.g. `early-cow:pin_scope=longterm`',
        id="expect_option_without_value",
    ),
    pytest.param(
        H + "par { A: write(buf, 1) }\n" + T,
        'unexpected `A`', (3, 7, 1), 'the end of the line', 'a `par {` block has one step per line and ends with `}` on its own line',
        id="par_on_one_line",
    ),
    pytest.param(
        H + T + "par {\nA: write(buf, 1)\n",
        'unexpected end of file', (5, 17, 1), 'a step `ACTOR: op(...)`, or `}` to end the `par` block', 'a `par {` block has one step per line and ends with `}` on its own line',
        id="par_not_closed",
    ),
    pytest.param(
        H + "}\n" + T,
        'unexpected `}`', (3, 1, 1), STATEMENT, 'a `par {` block has one step per line and ends with `}` on its own line',
        id="stray_closing_brace",
    ),
    pytest.param(
        "---\nprocess A\n" + T,
        'unexpected character `-`', (1, 1, 1), STATEMENT, None,
        id="junk_at_line_start",
    ),
]


@pytest.mark.parametrize("source, message, where, expected, hint", SYNTAX_ERRORS)
def test_syntax_error(load_error, rendered, source, message, where, expected, hint):
    err = load_error(source)
    assert len(err.diagnostics) == 1, err.render()
    line, col, width = where
    r = rendered(err)
    assert (r["file"], r["line"], r["col"], r["message"]) == ("x.cow", line, col, message)
    assert (r["pad"], r["width"]) == (col - 1, width)
    assert (r["expected"], r["hint"]) == (expected, hint)


def test_render_layout_matches_the_documentation(load_error):
    err = load_error("process A\nA: mmap(buf)\n\n\nA: pin(buf, write, longtem) as mr\n" + T)
    assert err.render() == (
        "x.cow:5:20: error: unknown flag `longtem` for `pin`\n"
        "   5 | A: pin(buf, write, longtem) as mr\n"
        "     |                    ^^^^^^^\n"
        f"  expected: {one_of(ops.OPS['pin'].flag_words())}\n"
        "  hint: did you mean `longterm`?"
    )
    assert str(err) == err.render()


# --- the expected list says only what fits at that point -----------------------------------


def expected_of(load_error, source: str) -> str:
    (d,) = load_error(source).diagnostics
    return d.expected


def test_no_parenthesis_or_comma_after_a_term_outside_parentheses(load_error):
    for text in ("assert A.buf = 2", "assert A.buf[1] = 2", "assert v = 2", "assert true = 2"):
        exp = expected_of(load_error, H + text + "\n")
        assert "`)`" not in exp and "`,`" not in exp, (text, exp)
        assert "a comparison" in exp and "the end of the line" in exp


def test_parenthesis_and_comma_where_they_fit(load_error):
    assert "`)`" in expected_of(load_error, H + "assert (A.buf = 2)\n")
    assert "`,`" not in expected_of(load_error, H + "assert (A.buf = 2)\n")
    exp = expected_of(load_error, H + "assert exclusive(A.buf = 2)\n")
    assert "`)`" in exp and "`,`" in exp


def test_no_assertion_words_inside_step_arguments(load_error):
    exp = expected_of(load_error, H + "A: write(A.buf $ 1)\n" + T)
    assert exp == "one of `)`, `,`, `[`"
    for word in ("and", "or", "implies", "is", "comparison"):
        assert word not in exp


def test_true_and_false_are_offered_after_a_comparison(load_error):
    exp = expected_of(load_error, H + "assert A.buf == \n")
    assert "`true`" in exp and "`false`" in exp and "a number" in exp


def test_end_of_file_is_not_offered_next_to_end_of_line(load_error):
    assert "end of the file" not in expected_of(load_error, H + "assert A.buf == 1 == 2")


# --- decoding bytes -------------------------------------------------------------------------


def test_decode_plain_utf8():
    assert decode("process A # é\n".encode(), "x.cow") == "process A # é\n"


def test_decode_drops_a_byte_order_mark():
    text = decode(b"\xef\xbb\xbfprocess A\n" + T.encode(), "x.cow")
    assert text.startswith("process A")
    assert isinstance(load_text(text), Scenario)


def decode_error(rendered, data: bytes) -> dict:
    """The rendered CowError that decoding ``data`` raises."""
    with pytest.raises(CowError) as info:
        decode(data, "x.cow")
    return rendered(info.value)


def test_decode_non_utf8(rendered):
    r = decode_error(rendered, b"process A\nref \"caf\xe9\"\n")
    assert (r["line"], r["col"], r["pad"], r["width"]) == (2, 9, 8, 1)
    assert r["message"] == "the file is not UTF-8 text: byte 0xe9 cannot start or continue a character"
    assert r["hint"] == "save it as UTF-8"
    assert r["source"] == 'ref "caf\ufffd"'


def test_decode_non_utf8_after_multibyte_characters(rendered):
    r = decode_error(rendered, "ref \"éé\" ".encode() + b"\xff\n")
    assert (r["line"], r["col"]) == (1, 10)


def test_decode_nul_byte(rendered):
    r = decode_error(rendered, b"process A\nA: mm\x00ap(buf)\n")
    assert (r["message"], r["line"], r["col"], r["pad"]) == ("NUL byte in the file", 2, 6, 5)
    assert r["hint"] == "a .cow file is plain text"
    assert r["source"] == "A: mm ap(buf)"


def test_nul_in_text_given_directly(load_error, rendered):
    r = rendered(load_error("process A\x00\n" + T))
    assert (r["message"], r["line"], r["col"]) == ("NUL byte in the file", 1, 10)


def test_decode_too_large():
    with pytest.raises(CowError) as info:
        decode(b"#" * (MAX_SOURCE_BYTES + 1), "x.cow")
    (d,) = info.value.diagnostics
    assert d.message == f"file is {MAX_SOURCE_BYTES + 1} bytes; the limit is {MAX_SOURCE_BYTES}"
    assert info.value.render().startswith("x.cow:1:1: error: file is")


def test_parse_too_large():
    with pytest.raises(CowError) as info:
        parse("#" * (MAX_SOURCE_BYTES + 1), "x.cow")
    assert info.value.diagnostics[0].message.endswith(f"the limit is {MAX_SOURCE_BYTES}")


def test_number_too_long(load_error, rendered):
    r = rendered(load_error(H + "A: write(buf, " + "9" * 5000 + ")\n" + T))
    assert (r["message"], r["line"], r["col"], r["width"]) == ("number too long (5000 digits)", 3, 15, 5000)
    assert r["expected"] == "a number below 2**64"


def test_deep_nesting_is_an_error_not_a_crash(load_error, rendered):
    r = rendered(load_error("process A\nassert " + "not " * 5000 + "true\n"))
    assert (r["message"], r["line"]) == ("this assertion nests too deeply", 2)
    load_error("process A\nassert " + " implies ".join(["true"] * 5000) + "\n")


def test_deep_parentheses_are_fine():
    load_text("process A\nassert " + "(" * 2000 + "true" + ")" * 2000 + "\n")


# --- rendering ---------------------------------------------------------------------------


def show(source: str, span: Span, message="m") -> list[str]:
    return render("x.cow", source, Diagnostic(message, span)).split("\n")


def test_render_with_crlf():
    lines = show("process A\r\nA: x\r\n", Span(2, 4, 5))
    assert lines == ["x.cow:2:4: error: m", "   2 | A: x", "     |    ^"]


def test_render_counts_lines_like_the_parser():
    # str.splitlines would split at the form feed and at U+2028 and show the wrong line
    src = "process A\x0c\nref \"a\u2028b\"\nA: x\n"
    assert show(src, Span(3, 1, 2))[1] == "   3 | A: x"


def test_render_tabs_and_control_characters_keep_the_caret_aligned():
    lines = show("\tA: x\x1b[31m y\n", Span(1, 12, 13))
    assert lines[1] == "   1 |  A: x\ufffd[31m y"
    assert lines[2].index("^") == lines[1].index("y")


def test_render_wide_characters_keep_the_caret_aligned():
    lines = show('ref "日本" x\n', Span(1, 10, 11))
    assert lines[2] == "     |" + " " * 12 + "^"  # 日本 take two columns each


def test_render_clamps_spans_outside_the_source():
    assert show("abc\n", Span(9, 99, 120))[:3] == ["x.cow:1:4: error: m", "   1 | abc", "     |    ^"]
    assert show("", Span(1, 1, 2))[1:] == ["   1 | ", "     | ^"]
    assert show("abcdef\n", Span(1, 2, 99))[2] == "     |  ^^^^^"


def test_render_expected_and_hint_lines():
    text = render("f", "x\n", Diagnostic("m", Span(1, 1, 2), expected="e", hint="h"))
    assert text.split("\n")[3:] == ["  expected: e", "  hint: h"]


def test_diagnostics_are_sorted_by_position():
    err = CowError("f", "a\nb\n", [Diagnostic("two", Span(2, 1, 2)), Diagnostic("one", Span(1, 1, 2))])
    assert [d.message for d in err.diagnostics] == ["one", "two"]


def test_did_you_mean_and_one_of():
    assert did_you_mean("longtem", ["longterm", "fast"]) == "did you mean `longterm`?"
    assert did_you_mean("RW", ["rw", "ro"]) == "did you mean `rw`?"
    assert did_you_mean("zzz", ["rw"]) is None
    assert one_of([]) == "nothing here" and one_of(["a"]) == "`a`" and one_of("ab") == "`a` or `b`"


# --- nothing but CowError, whatever the input -----------------------------------------------

VALID = """scenario "everything"
ref "a"
process A
thread T of A
file F = [1, 0x2]
pipe P
A: mmap(buf, anon, private, rw, pages=2)
A: mmap(fm, shared, ro, file=F)
A: write(buf[1], 1)
T: read(buf) as v
A: pin(buf, write, longterm) as mr
A: gup(buf[1], read, fast) as r
A: fork() as B
A: vmsplice(buf, P)
B: process_vm_writev(A.buf[1], 5)
reclaim: swapout(A.buf[1])
mr: dma_write(4)
A: put(r)
A: madvise(buf, dontfork)
A: mprotect(buf, ro)
assert A.buf == 4 and not exclusive(B.buf) or failed(r) implies (v != 3)
assert B.buf[1] >= 3
assert mr is A.buf and mr is not F[1]
assert cow_copies(A) < 3 and cow_copies > 0
expect pass on anon-exclusive
"""
TOKENS = re.findall(r"\s+|\w+|[^\w\s]", VALID)
EXTRA = ["(", ")", "[", "]", ",", ".", ":", "=", "==", "is", "not", "{", "}", "\n", "#", '"', "\r\n", "\t",
         "\x00", "\u2028", "\x0c", "\ufeff", "-", "0x", "9" * 30, "par", "as", "expect", "assert", "5.10", "é"]


def test_the_valid_scenario_is_valid():
    assert isinstance(load_text(VALID), Scenario)


def check_outcome(source: str) -> None:
    """``load_text`` returns a Scenario or raises a CowError that renders."""
    try:
        result = load_text(source, "f.cow")
    except CowError as e:
        assert e.diagnostics
        for d in e.diagnostics:
            assert d.span.line >= 1 and d.span.col >= 1 and d.span.end_col > d.span.col, d
            assert d.span.line <= source.count("\n") + 2, d
        text = e.render()
        assert text.startswith("f.cow:") and text.count(": error: ") == len(e.diagnostics)
        return
    assert isinstance(result, Scenario)


@pytest.mark.parametrize(
    "source",
    ["", "\n", "\r", "\r\n", "#", '"', "(", ")", "{", "}", "par {", "par {\n", "}\n", "assert", "assert (",
     "process", "process A,", "A:", "A: x(", "expect", "expect pass on", "file F = [", "thread T of",
     "\ufeff", "\x00", "\u2028process A", "process A\x0c\n" + T, "\x1b[2J", " " * 1000, "((((((((((",
     "assert " + "(" * 50, "A: write(buf, 0x" + "f" * 100 + ")", "process " + "A" * 10000, "ref \"" + "x" * 10000],
)
def test_odd_inputs(source):
    check_outcome(source)


_MUTATION = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 10**6)),
    st.tuples(st.just("duplicate"), st.integers(0, 10**6)),
    st.tuples(st.just("swap"), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.sampled_from(TOKENS + EXTRA)),
    st.tuples(st.just("bytes"), st.integers(0, 10**6), st.binary(min_size=1, max_size=4)),
)


def mutate(tokens: list[str], mutations) -> str:
    t = list(tokens)
    for m in mutations:
        if not t:
            break
        k = m[1] % len(t)
        if m[0] == "delete":
            del t[k]
        elif m[0] == "duplicate":
            t.insert(k, t[k])
        elif m[0] == "swap":
            j = m[2] % len(t)
            t[k], t[j] = t[j], t[k]
        elif m[0] == "insert":
            t.insert(k, m[2])
        else:
            t.insert(k, m[2].decode("utf-8", "replace"))
    return "".join(t)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(_MUTATION, min_size=1, max_size=5))
def test_mutated_scenarios_load_or_raise_cow_error(mutations):
    check_outcome(mutate(TOKENS, mutations))


@FUZZ
@given(st.text(alphabet=st.one_of(st.characters(), st.sampled_from("()[]{},.:=<>!#\"\n\r\t 0x19_aAz")), max_size=80))
def test_arbitrary_text_loads_or_raises_cow_error(text):
    check_outcome(text)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS + EXTRA), max_size=40))
def test_token_soup_loads_or_raises_cow_error(tokens):
    check_outcome("".join(tokens))


@FUZZ
@given(st.binary(max_size=80))
def test_arbitrary_bytes_decode_or_raise_cow_error(data):
    try:
        text = decode(b"process A\n" + data, "f.cow")
    except CowError as e:
        assert all(d.span.line >= 1 and d.span.col >= 1 for d in e.diagnostics)
        e.render()
        return
    check_outcome(text)


def test_300000_nested_parentheses_are_refused_before_parsing(monkeypatch):
    """Were accepted, at seconds of CPU and a tree 300,000 deep: the depth is
    counted before the parser runs, at the first parenthesis past the limit."""
    from cowdsl.syntax import parser

    def no_parse():
        raise AssertionError("the parser ran")

    monkeypatch.setattr(parser, "lark_parser", no_parse)
    n = 300_000
    with pytest.raises(CowError) as e:
        parser.parse("process A\nassert " + "(" * n + "true" + ")" * n + "\n", "deep.cow")
    d = e.value.diagnostics[0]
    assert d.message == f"the expression nests more than {parser.MAX_NESTING} parentheses deep"
    assert (d.span.line, d.span.col) == (2, len("assert ") + parser.MAX_NESTING + 1)


def test_parentheses_in_comments_and_strings_do_not_count():
    load_text('scenario "' + "(" * 3000 + '"\nprocess A\n# ' + "(" * 3000 + "\nassert true\n")
