"""Sub-page granularity: an address may name one 8-byte word of its page (`buf+8`).

The language (parse, check, errors, layout, highlighting), the model's page
content (every word copied by COW, swap and migration; KSM merges only pages
equal in every word), the judge's observation of a word, and the native
backend on this kernel (the word at the offset, through loads, stores and pins).
"""

from __future__ import annotations

import pytest
from helpers_semantics import assert_checks_hold, outcome, pfn, run_src, scenario, state_after

from cowdsl import scenario as S
from cowdsl.fmt import format_text
from cowdsl.judge.observe import view
from cowdsl.lexer import CowLexer
from cowdsl.native import skip_reason
from cowdsl.semantics.state import Page, Slot, content, content_text, same_content, stored, word
from cowdsl.syntax.parser import parse

H = "process A\nA: mmap(buf, anon, private, rw, pages=2)\n"


# --- the language ---------------------------------------------------------------------------


def test_an_offset_is_parsed_after_the_page():
    step = parse("A: write(A.buf[1]+16, 2)\n").items[0]
    loc = step.args[0]
    assert (loc.owner.text, loc.name.text, loc.index.value, loc.offset.value) == ("A", "buf", 1, 16)
    assert loc.text() == "A.buf[1]+16" and not loc.bare


def test_no_offset_is_offset_zero_and_the_address_of_old():
    sc = scenario(H + "A: write(buf, 1)\nA: write(buf[1]+8, 2)\n")
    assert sc.steps[1].addr == S.Addr("A", "buf", 0) and str(sc.steps[1].addr) == "A.buf"
    assert sc.steps[2].addr == S.Addr("A", "buf", 1, 8) and str(sc.steps[2].addr) == "A.buf[1]+8"


def test_a_const_names_an_offset():
    sc = scenario("const OFF = 24\n" + H + "A: write(buf+$OFF, 2)\n")
    assert sc.steps[1].addr == S.Addr("A", "buf", 0, 24)


@pytest.mark.parametrize("text, where, message, expected, hint", [
    pytest.param("A: write(buf+4, 1)", (3, 14, 1), "offset 4 is not a multiple of 8",
                 "the offset of an 8-byte word: 0, 8, 16, ... 4088",
                 "a load, a store or a DMA moves one aligned 8-byte word: write `+0` or `+8`", id="not_aligned"),
    pytest.param("A: read(buf+4096)", (3, 13, 4), "offset 4096 is past the end of the page (4096 bytes)",
                 "a byte offset from 0 to 4088, a multiple of 8", "another page is named by its index: `buf[1]`",
                 id="too_big"),
    pytest.param("A: write(buf[1]+4104, 1)", (3, 17, 4), "offset 4104 is past the end of the page (4096 bytes)",
                 "a byte offset from 0 to 4088, a multiple of 8", "another page is named by its index: `buf[2]+8`",
                 id="too_big_from_a_later_page"),
    pytest.param("A: munmap(buf+8)", (3, 15, 1), "`munmap` works on whole pages: `+8` names one 8-byte word",
                 "`buf`", None, id="not_a_word_op"),
    pytest.param("reclaim: swapout(A.buf+8)", (3, 24, 1), "`swapout` works on a whole page: `+8` names one 8-byte word",
                 "`A.buf`", None, id="a_page_op"),
    pytest.param("A: write(buf, 1)\nassert A.buf+12 == 0", (4, 14, 2), "offset 12 is not a multiple of 8",
                 "the offset of an 8-byte word: 0, 8, 16, ... 4088",
                 "a load, a store or a DMA moves one aligned 8-byte word: write `+8` or `+16`", id="in_an_assertion"),
    pytest.param("A: pin(buf+8, write) as mr\nassert mr+8 == 0", (4, 11, 1),
                 "`mr+8`: a pin or reference reads the word it was taken at", "`mr`",
                 "to watch another word, take it there: `pin(buf+8, write) as mr`", id="a_pin_has_its_word"),
])
def test_a_bad_offset_is_an_error(load_error, rendered, text, where, message, expected, hint):
    err = load_error(H + text + "\n" + ("" if "assert" in text else "assert true\n"))
    assert len(err.diagnostics) == 1, err.render()
    r = rendered(err)
    line, col, width = where
    assert (r["line"], r["col"], r["width"], r["message"], r["expected"]) == (line, col, width, message, expected)
    if hint is not None:
        assert r["hint"] == hint
    else:  # the ops whose address is a word, from the registry
        assert r["hint"] == (f"write {expected}; an offset is for an op that loads, stores or transfers one word "
                             "(read, write, pin, gup, process_vm_writev, process_vm_readv, proc_mem_write, "
                             "io_uring_register, make_device_exclusive, migrate_to_device)")


def test_the_canonical_layout_writes_no_space_around_the_offset():
    assert format_text("process A\nA: write( buf + 8 , 2 )\nassert A.buf + 8 == 2\n") == (
        "process A\nA: write(buf+8, 2)\nassert A.buf+8 == 2\n")


def test_the_plus_of_an_offset_is_an_operator_to_the_lexer():
    toks = [(str(t), v) for t, v in CowLexer().get_tokens("A: write(buf+8, 2)\n") if v.strip()]
    assert ("Token.Operator", "+") in toks
    assert not any(t == "Token.Error" for t, _ in toks)


def test_cowdsl_ops_says_which_addresses_may_name_a_word(capsys):
    from cowdsl.cli import main

    assert main(["ops", "process_vm_writev"]) == 0
    assert "    addr: A.buf or A.buf[i], or one 8-byte word of the page: A.buf+8\n" in capsys.readouterr().out
    assert main(["ops", "swapout"]) == 0
    assert "8-byte word" not in capsys.readouterr().out


# --- the model's page content ----------------------------------------------------------------


def test_a_word_is_read_and_stored_without_touching_the_others():
    p = Page(data=1)
    q = Page(**stored(p, 16, 3))
    assert (word(q, 0), word(q, 8), word(q, 16)) == (1, 0, 3)
    assert q.words == ((16, 3),) and content_text(q) == "1 (+16: 3)"
    assert Page(**stored(q, 16, 0)) == p  # a word back to zero leaves nothing behind: the state is canonical
    assert content(Slot(**content(q))) == content(q)


def test_cow_copies_every_word_of_the_page():
    src = H + """
        A: write(buf, 1)
        A: write(buf+8, 2)
        A: fork() as B
        B: write(buf+16, 3)
    """
    st = state_after(src, "B: write(buf+16, 3)")
    a, b = st.pages[pfn(st, "A", "buf")], st.pages[pfn(st, "B", "buf")]
    assert a is not b and (a.data, a.words) == (1, ((8, 2),))
    assert (b.data, b.words) == (1, ((8, 2), (16, 3)))


def test_swap_out_and_in_keeps_every_word():
    r = run_src(H + """
        A: write(buf, 1)
        A: write(buf+8, 2)
        reclaim: swapout(A.buf)
        A: read(buf+8) as v
        assert v == 2 and A.buf == 1 and A.buf+8 == 2
    """)
    assert outcome(r, "reclaim: swapout(A.buf)").ok
    assert_checks_hold(r)


@pytest.mark.parametrize("other, merged", [(0, True), (3, False)])
def test_ksm_merges_only_pages_equal_in_every_word(other, merged):
    r = run_src(f"""
        process A, B
        A: mmap(buf, anon, private, rw)
        A: madvise(buf, mergeable)
        B: mmap(buf, anon, private, rw)
        B: madvise(buf, mergeable)
        A: write(buf, 1)
        B: write(buf, 1)
        B: write(buf+8, {other})
        ksmd: ksm_merge(A.buf, B.buf) as k
        assert {'not ' if merged else ''}failed(k) and A.buf == 1 and B.buf == 1 and B.buf+8 == {other}
    """)
    assert_checks_hold(r)
    assert same_content(Page(data=1), Page(**stored(Page(data=1), 8, 0)))
    assert not same_content(Page(data=1), Page(**stored(Page(data=1), 8, 3)))


@pytest.mark.parametrize("value, merged", [(0, True), (1, False)])
def test_the_zero_page_replaces_only_a_page_zero_in_every_word(value, merged):
    r = run_src(f"""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 0)
        A: write(buf+8, {value})
        A: madvise(buf, mergeable)
        ksmd: ksm_merge_zero(A.buf) as k
        assert {'not ' if merged else ''}failed(k) and A.buf == 0 and A.buf+8 == {value}
        assert {'' if merged else 'not '}zero_page(A.buf)
    """)
    assert_checks_hold(r)


def test_a_pin_moves_the_word_it_was_taken_at():
    r = run_src(H + """
        A: write(buf, 1)
        A: pin(buf+8, write, longterm) as mr
        mr: dma_write(5)
        mr: dma_read() as d
        assert A.buf == 1 and A.buf+8 == 5 and mr == 5 and d == 5
        assert mr is A.buf and mr is A.buf+8
    """)
    assert_checks_hold(r)
    assert r.final.handles[0].offset == 8


def test_the_judge_reads_the_word_at_the_offset():
    src = H + "A: write(buf[1]+8, 2)\n"
    st = state_after(src, "A: write(buf[1]+8, 2)")
    assert view(st, S.PageAt(S.Addr("A", "buf", 1, 8))).value == 2
    assert view(st, S.PageAt(S.Addr("A", "buf", 1))).value == 0
    assert view(st, S.PageAt(S.Addr("A", "buf", 1, 8))).pfn == view(st, S.PageAt(S.Addr("A", "buf", 1))).pfn


def test_remote_access_and_forced_writes_take_the_offset():
    r = run_src("""
        process A, W
        A: mmap(buf, anon, private, rw)
        A: mmap(ro, anon, private)
        W: process_vm_writev(A.buf+8, 4)
        W: process_vm_readv(A.buf+8) as v
        W: proc_mem_write(A.ro+16, 6)
        assert v == 4 and A.buf == 0 and A.buf+8 == 4 and A.ro == 0 and A.ro+16 == 6
    """)
    assert_checks_hold(r)


# --- the native backend on this kernel ------------------------------------------------------

_SKIP = skip_reason()


@pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")
def test_native_writes_and_reads_the_word_at_the_offset():
    from cowdsl.native import run_native

    r = run_native(scenario("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf+8, 2)
        A: read(buf+8) as v
        assert A.buf+8 == 2 and A.buf == 0
        assert v == 2
    """))
    assert [c.holds for c in r.checks] == [True, True]
    assert any("store 2 to" in e.text for e in r.steps[1].events)


@pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")
def test_native_pin_moves_its_word_across_fork():
    from cowdsl.native import run_native

    r = run_native(scenario("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: pin(buf+16, write, longterm) as mr
        A: fork() as B
        A: write(buf, 2)
        mr: dma_write(5)
        mr: dma_read() as d
        assert A.buf == 2 and A.buf+16 == 5 and d == 5 and mr == 5
        assert B.buf == 1 and B.buf+16 == 0
    """))
    assert [c.holds for c in r.checks] == [True, True], [(c.assertion.text, c.values) for c in r.checks]


@pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")
def test_native_held_pin_writes_its_word_after_the_target_forks():
    """A short-term remote write pin (process_vm_writev held mid-copy) at +8, held across A's
    fork while A stores to word 0: the copy writes the word at +8 of A's page (5.9+: fork
    copied the pinned page for B)."""
    from cowdsl.native import run_native
    from cowdsl.native.heldpin import probe

    if probe() is not None:
        pytest.skip(probe() or "")
    r = run_native(scenario("""
        process A, W
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        W: pin(A.buf+8, write) as mr
        A: fork() as B
        A: write(buf, 3)
        mr: dma_write(7)
        assert A.buf+8 == 7 and A.buf == 3
        assert B.buf+8 == 0 and B.buf == 1
    """))
    assert [c.holds for c in r.checks] == [True, True], [(c.assertion.text, c.values) for c in r.checks]
