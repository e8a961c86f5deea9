"""Hints that speak kernel: FOLL_*/MAP_*/PROT_*/MADV_* names, other languages'
statements, nested blocks and a process where a page is meant.  Each one is an
error message test: file:line:col, the line, the caret, expected, the hint."""

from __future__ import annotations

import pytest

from cowdsl.syntax import kernel_words

H = "process A\nA: mmap(buf, anon, private, rw)\n"  # lines 1-2
T = "assert true\n"
STATEMENT = (
    "a statement: `scenario`, `ref`, `include`, `const`, `param`, `process`, `thread`, `file`, `pipe`, "
    "a step `ACTOR: op(...)`, `par {`, `assert` or `expect`"
)
ARG_END = "one of `)`, `,`, `.`, `=`, `[`"  # after a name in a step's arguments
PIN_FLAGS = "one of `read`, `write`, `longterm`, `fast`"

HINTS = [
    # kernel flags joined by |
    pytest.param(H + "A: pin(buf, FOLL_WRITE|FOLL_LONGTERM) as mr\n" + T,
                 "unexpected character `|`", (3, 23, 1), ARG_END,
                 "flags are words separated by commas: write `pin(buf, write, longterm)`", id="foll_write_longterm"),
    pytest.param(H + "A: pin(buf, FOLL_PIN|FOLL_WRITE|FOLL_FAST_ONLY) as mr\n" + T,
                 "unexpected character `|`", (3, 21, 1), ARG_END,
                 "flags are words separated by commas: write `pin(buf, write, fast)`; FOLL_PIN is what `pin` does: "
                 "leave it out", id="foll_pin_fast_only"),
    pytest.param(H + "A: gup(buf, FOLL_GET|FOLL_WRITE) as r\n" + T,
                 "unexpected character `|`", (3, 21, 1), ARG_END,
                 "flags are words separated by commas: write `gup(buf, write)`; FOLL_GET is what `gup` does: leave it out",
                 id="foll_get"),
    pytest.param(H + "A: pin(buf, FOLL_FORCE|FOLL_WRITE) as mr\n" + T,
                 "unexpected character `|`", (3, 23, 1), ARG_END,
                 "flags are words separated by commas: write `pin(buf, write)`; FOLL_FORCE: that is the op `proc_mem_write`",
                 id="foll_force"),
    pytest.param("process A\nA: mmap(buf, MAP_PRIVATE|MAP_ANONYMOUS, PROT_READ|PROT_WRITE)\n" + T,
                 "unexpected character `|`", (2, 25, 1), ARG_END,
                 "flags are words separated by commas: write `mmap(buf, anon, private, rw)`", id="map_prot"),
    pytest.param(H + "A: madvise(buf, MADV_DONTFORK|MADV_WIPEONFORK)\n" + T,
                 "unexpected character `|`", (3, 30, 1), ARG_END,
                 "flags are words separated by commas: write `madvise(buf, dontfork, wipeonfork)`", id="madv"),
    pytest.param(H + "A: pin(buf, write|longterm) as mr\n" + T,
                 "unexpected character `|`", (3, 18, 1), ARG_END,
                 "flags are words separated by commas: write `pin(buf, write, longterm)`", id="plain_flags_with_bar"),
    # one kernel name as a flag
    pytest.param(H + "A: pin(buf, FOLL_LONGTERM) as mr\n" + T,
                 "unknown flag `FOLL_LONGTERM` for `pin`", (3, 13, 13), PIN_FLAGS,
                 "FOLL_LONGTERM is written `longterm` here", id="foll_longterm_alone"),
    pytest.param(H + "A: pin(buf, FOLL_PIN) as mr\n" + T,
                 "unknown flag `FOLL_PIN` for `pin`", (3, 13, 8), PIN_FLAGS, "FOLL_PIN is what `pin` does: leave it out",
                 id="foll_pin_alone"),
    pytest.param(H + "A: gup(buf, FOLL_FORCE) as r\n" + T,
                 "unknown flag `FOLL_FORCE` for `gup`", (3, 13, 10), "one of `read`, `write`, `fast`",
                 "FOLL_FORCE: that is the op `proc_mem_write`", id="foll_force_alone"),
    pytest.param(H + "A: madvise(buf, MADV_PAGEOUT)\n" + T,
                 "unknown flag `MADV_PAGEOUT` for `madvise`", (3, 17, 12), None,
                 "MADV_PAGEOUT is written `pageout` here", id="madv_alone"),
    pytest.param(H + "A: mprotect(buf, PROT_READ)\n" + T,
                 "unknown flag `PROT_READ` for `mprotect`", (3, 18, 9), None,
                 "PROT_READ is written `ro` here", id="prot_read_alone"),
    pytest.param("process A\nA: mmap(buf, MAP_SHARED)\n" + T,
                 "unknown flag `MAP_SHARED` for `mmap`", (2, 14, 10), None,
                 "MAP_SHARED is written `shared` here", id="map_shared_alone"),
    # statements of other languages
    pytest.param(H + "if A.buf == 1\n" + T, "unknown statement `if`", (3, 1, 2), STATEMENT,
                 "a .cow file has no conditionals: write a file per case, or sweep the cases with `param NAME in a, b` "
                 "and say what each expects with `expect ... when NAME=a`", id="if"),
    pytest.param(H + "for i in 1, 2\n" + T, "unknown statement `for`", (3, 1, 3), STATEMENT,
                 "a .cow file has no loops: write the steps out, or sweep values with `param NAME in 1, 2`", id="for"),
    pytest.param(H + "while true\n" + T, "unknown statement `while`", (3, 1, 5), STATEMENT,
                 "a .cow file has no loops: write the steps out, or sweep values with `param NAME in 1, 2`", id="while"),
    pytest.param(H + "  import \"prelude.cow\"\n" + T, "unknown statement `import`", (3, 3, 6), STATEMENT,
                 'to reuse the lines of another file, write `include "file.cow"`', id="import"),
    pytest.param(H + "let N = 4\n" + T, "unknown statement `let`", (3, 1, 3), STATEMENT,
                 "a named number is `const NAME = 4`, used as `$NAME`; values to sweep are `param NAME in 1, 2`",
                 id="let"),
    # the new statements misspelled or misused
    pytest.param("inclde \"prelude.cow\"\n" + H + T, "unknown statement `inclde`", (1, 1, 6), STATEMENT,
                 "did you mean `include`?", id="include_typo"),
    pytest.param("include prelude.cow\n" + H + T, "unexpected `prelude.cow`", (1, 9, 11), 'a quoted string ("...")',
                 'write `include "prelude.cow"`: a file name in double quotes', id="include_unquoted"),
    pytest.param("const N 4\n" + H + T, "unexpected `4`", (1, 9, 1), "`=`", "write `const N = 4`", id="const_no_equal"),
    pytest.param("const K = thp\n" + H + T, "unexpected `thp`", (1, 11, 3), "a number",
                 "a const is a number; to run the file once per name, write `param NAME in a, b`", id="const_name"),
    pytest.param("param kind = small\n" + H + T, "unexpected `=`", (1, 12, 1), "`in`",
                 "write `param kind in small, thp`: the file runs once per value", id="param_equal"),
    pytest.param("prams kind in small, thp\n" + H + T, "unknown statement `prams`", (1, 1, 5), STATEMENT,
                 "did you mean `param`?", id="param_typo"),
    # nested blocks
    pytest.param(H + "thread T of A\npar {\n  T: write(buf, 1)\n  par {\n    A: write(buf, 2)\n  }\n}\n" + T,
                 "blocks do not nest: a `par` block inside a `par` block", (6, 3, 3),
                 "a step `ACTOR: op(...)`, or `}` to end the `par` block",
                 "put every concurrent step in one `par { }` block (each actor keeps its order), or end this block first",
                 id="nested_par"),
    # a process where a page is meant
    pytest.param(H + "A: fork() as B\nassert exclusive(B)\n", "`exclusive` takes a page, not the process `B`", (4, 18, 1),
                 "a page such as `B.buf`", "write `exclusive(B.buf)`", id="exclusive_of_process"),
    pytest.param(H + "assert pinned(A)\n", "`pinned` takes a page, not the process `A`", (3, 15, 1),
                 "a page such as `A.buf`", "write `pinned(A.buf)`", id="pinned_of_process"),
    pytest.param(H + "assert A == 0\n", "`A` is a process, not a page", (3, 8, 1), "a page such as `A.buf`",
                 "write `A.buf`", id="process_as_value"),
]


@pytest.mark.parametrize("source, message, where, expected, hint", HINTS)
def test_hint(load_error, rendered, source, message, where, expected, hint):
    err = load_error(source)
    line, col, width = where
    r = rendered(err)
    assert (r["file"], r["line"], r["col"], r["message"]) == ("x.cow", line, col, message), err.render()
    assert r["source"] == source.split("\n")[line - 1]
    assert (r["pad"], r["width"]) == (col - 1, width)
    if expected is not None:
        assert r["expected"] == expected
    assert r["hint"] == hint


def test_every_foll_name_the_ops_understand_maps_somewhere():
    """FOLL_WRITE, FOLL_LONGTERM and FOLL_FAST_ONLY are pin's flags; FOLL_PIN, FOLL_GET and FOLL_FORCE are ops."""
    assert kernel_words.translate("pin", ["FOLL_WRITE", "FOLL_LONGTERM", "FOLL_FAST_ONLY"]) == (
        ["write", "longterm", "fast"], [])
    assert kernel_words.translate("gup", ["FOLL_WRITE", "FOLL_FAST_ONLY"]) == (["write", "fast"], [])
    for word, op in (("FOLL_PIN", "pin"), ("FOLL_GET", "gup"), ("FOLL_FORCE", "proc_mem_write")):
        assert kernel_words.OP[word] == op
        from cowdsl import ops

        assert op in ops.OPS
    assert kernel_words.translate("gup", ["FOLL_LONGTERM"]) == ([], ["`gup` has no flag for FOLL_LONGTERM"])
    assert kernel_words.translate("mmap", ["PROT_READ"]) == (["ro"], [])
    assert kernel_words.translate("mmap", ["PROT_READ", "PROT_WRITE"]) == (["rw"], [])
    assert kernel_words.flag_hint("pin", "longtem") is None  # not a kernel name: did-you-mean answers
