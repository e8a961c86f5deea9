"""The checker: what a valid scenario becomes, and every error it reports."""

from __future__ import annotations

import pytest

from cowdsl import ops
from cowdsl import scenario as S
from cowdsl.check import check
from cowdsl.errors import CowError, one_of
from cowdsl.kernel.spec import KernelSpec
from cowdsl.load import load_text
from cowdsl.syntax.parser import parse

H = "process A\nA: mmap(buf, anon, private, rw, pages=2)\n"  # lines 1-2
T = "assert true\n"


def sig(op: str) -> str:
    return ops.OPS[op].signature()


ACTORS = "a process, a thread, a pin or a built-in actor (" + ", ".join(f"`{b}`" for b in ops.BUILTIN_ACTORS) + ")"


DOC_EXAMPLE = """scenario "long-term pin stays coherent across fork"
ref "LKML 2020-09-21, mm: Do early cow for pinned pages during fork() for ptes"

process A
A: mmap(buf, anon, private, rw, pages=1)
A: write(buf, 1)
A: pin(buf, write, longterm) as mr      # pin_user_pages(FOLL_WRITE|FOLL_LONGTERM), e.g. RDMA
A: fork() as B
A: write(buf, 2)
B: write(buf, 3)
mr: dma_write(4)                        # the device writes through the pin

assert A.buf == 4                       # the parent sees what the device wrote
assert B.buf == 3
assert mr is A.buf                      # the pin still maps the parent's page
expect pass on anon-exclusive
"""


def load(source: str, filename: str = "x.cow") -> S.Scenario:
    return load_text(source, filename)


def steps(source: str) -> dict:
    """The checked steps of ``source`` by their text."""
    return {st.text: st for st in load(source).steps}


def assertion(source: str, text: str):
    """The resolved expression of ``assert text`` after ``source``."""
    (a,) = load(source + f"assert {text}\n").assertions
    return a.expr


# --- valid scenarios ---------------------------------------------------------------------


def test_doc_example():
    sc = load(DOC_EXAMPLE, "dir/pin.cow")
    assert sc.name == "long-term pin stays coherent across fork"
    assert sc.refs == ("LKML 2020-09-21, mm: Do early cow for pinned pages during fork() for ptes",)
    assert sc.processes == ("A",)
    assert [st.op for st in sc.steps] == ["mmap", "write", "pin", "fork", "write", "write", "dma_write"]
    assert [st.number for st in sc.steps] == list(range(1, 8))
    pin = sc.steps[2]
    assert (pin.actor, pin.task, pin.addr, pin.bind) == ("A", "A", S.Addr("A", "buf", 0), "mr")
    assert {"write", "longterm"} <= pin.flags and not {"read", "fast"} & pin.flags
    assert pin.text == "A: pin(buf, write, longterm) as mr"
    assert pin.span.line == 7
    dma = sc.steps[6]
    assert (dma.actor, dma.task, dma.handle, dma.value) == ("mr", None, "mr", 4)
    child = sc.steps[5]
    assert (child.actor, child.task, child.addr) == ("B", "B", S.Addr("B", "buf", 0))
    assert [a.text for a in sc.assertions] == ["A.buf == 4", "B.buf == 3", "mr is A.buf"]
    assert sc.assertions[2].expr == S.Same(S.HandlePage("mr"), S.PageAt(S.Addr("A", "buf", 0)), False)
    assert [(e.outcome, e.spec.name) for e in sc.expectations] == [("pass", "anon-exclusive")]


def test_name_defaults_to_the_file_stem():
    assert load("process A\n" + T, "some/dir/fork-pin.cow").name == "fork-pin"


def test_mmap_defaults_and_flags():
    st = steps("process A\nA: mmap(buf)\nA: mmap(big, anon, shared, ro, pages=3)\n" + T)
    plain, big = st["A: mmap(buf)"], st["A: mmap(big, anon, shared, ro, pages=3)"]
    assert (plain.mapping, plain.pages, plain.file) == ("buf", 1, None)
    assert {"private", "rw"} <= plain.flags and not {"anon", "shared", "ro"} & plain.flags
    assert big.pages == 3 and {"anon", "shared", "ro"} <= big.flags and not {"private", "rw"} & big.flags


def test_file_mapping_takes_the_file_size_by_default():
    sc = load("process A\nfile F = [7, 0x8, 9]\nA: mmap(m, file=F)\nA: mmap(n, file=F, pages=2)\n" + T)
    assert sc.files == (("F", (7, 8, 9)),)
    assert [(st.file, st.pages) for st in sc.steps] == [("F", 3), ("F", 2)]


def test_threads_pipes_and_their_steps():
    sc = load("process A\nthread T of A\npipe P, Q\nA: mmap(buf)\nT: vmsplice(buf, P)\nT: pipe_read(Q) as v\n" + T)
    assert sc.threads == (("T", "A"),)
    assert sc.pipes == ("P", "Q")
    splice, read = sc.steps[1:]
    assert (splice.actor, splice.task, splice.addr, splice.pipe) == ("T", "A", S.Addr("A", "buf", 0), "P")
    assert (read.pipe, read.bind) == ("Q", "v")


def test_reclaim_and_remote_steps():
    st = steps(H + "A: fork() as B\nreclaim: swapout(B.buf[1])\nB: process_vm_readv(A.buf) as v\n"
               "A: proc_mem_write(buf[1], 3)\nA: proc_mem_write(B.buf, 4)\n" + T)
    assert (st["reclaim: swapout(B.buf[1])"].task, st["reclaim: swapout(B.buf[1])"].addr) == (None, S.Addr("B", "buf", 1))
    assert st["B: process_vm_readv(A.buf) as v"].addr == S.Addr("A", "buf", 0)
    assert st["A: proc_mem_write(buf[1], 3)"].addr == S.Addr("A", "buf", 1)
    assert st["A: proc_mem_write(B.buf, 4)"].addr == S.Addr("B", "buf", 0)


def test_child_inherits_mappings_and_handles_release():
    st = steps(H + "A: gup(buf[1], write, fast) as r\nA: fork() as B\nB: write(buf[1], 1)\nA: put(r)\n"
               "A: munmap(buf)\nA: mmap(buf)\nA: write(buf, 2)\n" + T)
    assert {"write", "fast"} <= st["A: gup(buf[1], write, fast) as r"].flags
    assert st["A: put(r)"].handle == "r"
    assert st["A: munmap(buf)"].mapping == "buf"


def test_ksm_merge_takes_two_addresses():
    st = steps(H + "A: fork() as B\nksmd: ksm_merge(A.buf[1], B.buf) as km\n" + T)
    km = st["ksmd: ksm_merge(A.buf[1], B.buf) as km"]
    assert (km.actor, km.task, km.addr, km.addr2) == ("ksmd", None, S.Addr("A", "buf", 1), S.Addr("B", "buf", 0))


def test_device_exclusive_handle_does_dma_and_is_a_page_in_assertions():
    sc = load(H + "A: make_device_exclusive(buf[1]) as dx\ndx: dma_write(9)\ndx: dma_read() as v\n"
              "assert dx is A.buf[1] and device_exclusive(dx)\n")
    assert [(st.actor, st.handle) for st in sc.steps[2:]] == [("dx", "dx"), ("dx", "dx")]
    assert sc.assertions[0].expr.left == S.Same(S.HandlePage("dx"), S.PageAt(S.Addr("A", "buf", 1)), False)


def test_default_access_flag_is_read():
    st = steps(H + "A: pin(buf) as mr\n" + T)
    flags = st["A: pin(buf) as mr"].flags
    assert "read" in flags and not {"write", "longterm", "fast"} & flags


def test_assertion_terms_resolve():
    src = "process A\nfile F = [1]\nA: mmap(buf, pages=2)\nA: pin(buf[1]) as mr\nA: read(buf) as v\n"
    assert assertion(src, "A.buf[1] >= v") == S.Cmp(S.PageAt(S.Addr("A", "buf", 1)), ">=", S.Bound("v"))
    assert assertion(src, "mr is not F[0]") == S.Same(S.HandlePage("mr"), S.FilePage("F", 0), True)
    assert assertion(src, "exclusive(A.buf)") == S.FactCall("exclusive", (S.PageAt(S.Addr("A", "buf", 0)),))
    assert assertion(src, "failed(mr) or segv(A)") == S.BoolOp(
        "or", S.FactCall("failed", (S.StepRef("mr"),)), S.FactCall("segv", (S.ProcessRef("A"),)))
    assert assertion(src, "not true implies false") == S.BoolOp("implies", S.Not(S.Const(True)), S.Const(False))
    assert assertion(src, "refcount(mr) == 2") == S.Cmp(S.FactCall("refcount", (S.HandlePage("mr"),)), "==", S.Const(2))


def test_counters_with_and_without_parentheses():
    src = H
    assert assertion(src, "cow_copies() == 0") == S.Cmp(S.FactCall("cow_copies", ()), "==", S.Const(0))
    assert assertion(src, "cow_copies == 0") == S.Cmp(S.FactCall("cow_copies", ()), "==", S.Const(0))
    assert assertion(src, "faults(A) > faults") == S.Cmp(
        S.FactCall("faults", (S.ProcessRef("A"),)), ">", S.FactCall("faults", ()))


def test_conditions_compare_with_conditions():
    assert assertion(H, "exclusive(A.buf) == pinned(A.buf)") == S.Cmp(
        S.FactCall("exclusive", (S.PageAt(S.Addr("A", "buf", 0)),)), "==",
        S.FactCall("pinned", (S.PageAt(S.Addr("A", "buf", 0)),)))


def test_assertions_are_about_the_final_state_wherever_they_stand():
    sc = load("process A\nassert B.buf == 1\nA: mmap(buf)\nA: fork() as B\n")
    assert sc.assertions[0].expr == S.Cmp(S.PageAt(S.Addr("B", "buf", 0)), "==", S.Const(1))


def test_assertions_may_name_unmapped_and_exited():
    sc = load(H + "A: fork() as B\nB: exit()\nA: munmap(buf)\nassert A.buf[1] == 0 and not alive(B)\n")
    assert len(sc.assertions) == 1


def test_a_child_may_touch_a_mapping_its_fork_did_not_copy():
    """MADV_DONTFORK: the child has no `buf`, and touching it is a SIGSEGV at run
    time that scenarios assert (scenarios/pin-fork/dontfork-rdma-workaround.cow),
    so the checker accepts the step."""
    sc = load(H + "A: madvise(buf, dontfork)\nA: fork() as B\nB: write(buf[1], 3)\nassert segv(B) and B.buf[1] == 0\n")
    assert sc.steps[-1].addr == S.Addr("B", "buf", 1)


def test_backend_names_versions_and_options():
    sc = load(H + T + "expect pass on anon-exclusive, 5.10.198\nexpect fail on early-cow:pin_scope=longterm\n")
    assert [(e.outcome, e.spec.text, e.spec.name) for e in sc.expectations] == [
        ("pass", "anon-exclusive", "anon-exclusive"),
        ("pass", "5.10.198", "early-cow:device_exclusive=off:fork_anon_only=on:hugetlb_fork_copy=off"),
        ("fail", "early-cow:pin_scope=longterm", "early-cow:pin_scope=longterm")]
    assert str(sc.expectations[1].spec.version) == "5.10.198"


def test_an_expectation_is_resolved_once_to_a_typed_spec():
    sc = load(H + T + "expect pass on modern\n")
    (e,) = sc.expectations
    assert isinstance(e.spec, KernelSpec) and e.spec.model == "anon-exclusive" and e.spec.text == "modern"


def test_two_expectations_of_one_model_that_disagree():
    # Regression: the second silently overrode the first.
    src = H + T + "expect pass on anon-exclusive\nexpect fail on 6.18\n"
    with pytest.raises(CowError) as info:
        check(parse(src), "x.cow", src)
    (d,) = info.value.diagnostics
    assert d.span.line == 5 and d.message == (
        "`6.18` is 6.18 (anon-exclusive), expected to pass on line 4 (`anon-exclusive`) and to fail here")


def test_two_expectations_of_one_model_that_agree():
    sc = load(H + T + "expect pass on anon-exclusive, modern, 6.18\n")
    assert len(sc.expectations) == 3


def test_long_flat_assertion():
    load(H + "assert " + " and ".join(["A.buf == 0"] * 300) + "\n")


# --- errors ------------------------------------------------------------------------------------


def test_all_errors_are_reported_together_in_order():
    err = pytest.raises(CowError, load, H + "A: wirte(buf, 1)\nZ: exit()\nassert A.bfu == 1\n").value
    assert [(d.span.line, d.message) for d in err.diagnostics] == [
        (3, "unknown op `wirte`"), (4, "unknown actor `Z`"), (5, "unknown mapping `bfu` in A")]


def test_empty_file_has_two_errors(load_error):
    err = load_error("")
    assert [d.message for d in err.diagnostics] == ["the scenario has no `assert`", "the scenario declares no process"]


def test_failed_declaration_does_not_also_say_no_process(load_error):
    err = load_error("process as\n" + T)
    assert [d.message for d in err.diagnostics] == ["`as` is a keyword and cannot name a process"]


CHECKER_ERRORS = [
    # header and structure
    pytest.param(
        'scenario "a"\nscenario "b"\nprocess A\n' + T,
        'a second `scenario` line', (2, 1, 12), None, 'one scenario per file',
        id="second_scenario",
    ),
    pytest.param(
        "process A\n",
        'the scenario has no `assert`', (1, 1, 1), None, 'state what must hold at the end, e.g. `assert A.buf == 1`',
        id="no_assert",
    ),
    pytest.param(
        T,
        'the scenario declares no process', (1, 1, 1), None, 'start with `process A`',
        id="no_process",
    ),
    pytest.param(
        H + "process C\n" + T,
        'declarations come before the steps', (3, 1, 9), None, 'move this line above the first step',
        id="declaration_after_step",
    ),
    pytest.param(
        H + "par {\nA: write(buf, 1)\n}\n" + T,
        'a `par` block with one actor runs in order anyway', (3, 1, 3), None,
        'put steps of two or more actors inside, or drop the `par`',
        id="par_one_actor",
    ),
    pytest.param(
        "process A\nthread T of A\nA: mmap(buf, anon, private, rw)\npar {\nA: pin(buf, write) as mr\nT: unpin(mr)\n}\n" + T,
        '`mr` is made by A at line 5 in this par block', (6, 1, 12), None,
        'another actor can use it only after the block; move this step below the `}`',
        id="par_name_made_in_the_block",
    ),
    pytest.param(
        "process A\nassert " + "not " * 3000 + "true\n",
        'this assertion nests too deeply', (2, 1, 12011), None, 'split it into several `assert` lines',
        id="assertion_too_deep",
    ),
    # names
    pytest.param(
        "process as\nprocess A\n" + T,
        '`as` is a keyword and cannot name a process', (1, 9, 2), None, 'choose another name',
        id="keyword_as_process",
    ),
    pytest.param(
        "process A\npipe of\n" + T,
        '`of` is a keyword and cannot name a pipe', (2, 6, 2), None, 'choose another name',
        id="keyword_as_pipe",
    ),
    pytest.param(
        "process A\nfile on = [1]\n" + T,
        '`on` is a keyword and cannot name a file', (2, 6, 2), None, 'choose another name',
        id="keyword_as_file",
    ),
    pytest.param(
        "process A\nthread not of A\n" + T,
        '`not` is a keyword and cannot name a thread', (2, 8, 3), None, 'choose another name',
        id="keyword_as_thread",
    ),
    pytest.param(
        H + "A: fork() as true\n" + T,
        '`true` is a keyword and cannot name a process', (3, 14, 4), None, 'choose another name',
        id="keyword_as_child",
    ),
    pytest.param(
        H + "A: read(buf) as and\n" + T,
        '`and` is a keyword and cannot name a result', (3, 17, 3), None, 'choose another name',
        id="keyword_as_result",
    ),
    pytest.param(
        "process A\nA: mmap(is)\n" + T,
        '`is` is a keyword and cannot name a mapping', (2, 9, 2), None, 'choose another name',
        id="keyword_as_mapping",
    ),
    pytest.param(
        "process A, reclaim\n" + T,
        '`reclaim` is a built-in actor and cannot name a process', (1, 12, 7), None, 'choose another name',
        id="reclaim_as_name",
    ),
    pytest.param(
        "process A, A\n" + T,
        '`A` is already used', (1, 12, 1), None, 'give the process its own name',
        id="duplicate_process",
    ),
    pytest.param(
        "process A\npipe P\nfile P = [1]\n" + T,
        '`P` is already used', (3, 6, 1), None, 'give the file its own name',
        id="duplicate_across_kinds",
    ),
    pytest.param(
        H + "A: read(buf) as v\nA: read(buf) as v\n" + T,
        '`v` is already used', (4, 17, 1), None, 'give the result its own name',
        id="duplicate_result",
    ),
    pytest.param(
        H + "A: fork() as B\nA: fork() as B\n" + T,
        '`B` is already a process', (4, 14, 1), None, 'name the child afresh',
        id="duplicate_child",
    ),
    pytest.param(
        H + "A: pin(buf) as mr\nA: fork() as mr\n" + T,
        '`mr` is already used', (4, 14, 2), None, 'give the process its own name',
        id="child_named_like_a_pin",
    ),
    pytest.param(
        H + "A: mmap(buf)\n" + T,
        '`buf` is already mapped in A', (3, 9, 3), None, 'munmap it first or choose another name',
        id="duplicate_mapping",
    ),
    pytest.param(
        "process A\nthread T of B\n" + T,
        'unknown process `B`', (2, 13, 1), 'a process declared above', None,
        id="thread_of_unknown_process",
    ),
    pytest.param(
        "process Alpha\nthread T of Alpah\n" + T,
        'unknown process `Alpah`', (2, 13, 5), 'a process declared above', 'did you mean `Alpha`?',
        id="thread_of_typo_process",
    ),
    # files
    pytest.param(
        "process A\nfile F = []\n" + T,
        'a file needs at least one page', (2, 1, 11), None, 'e.g. `file F = [1]`',
        id="file_without_pages",
    ),
    pytest.param(
        "process A\nfile F = [" + ", ".join(["0"] * 65) + "]\n" + T,
        'a file has at most 64 pages, not 65', (2, 1, 204), None, 'raise the limit with `--max-pages 65`',
        id="file_too_big",
    ),
    pytest.param(
        "process A\nfile F = [1, 0x10000000000000000]\n" + T,
        'value too large', (2, 14, 19), 'a number below 2**64', None,
        id="file_value_too_large",
    ),
    # ops and actors
    pytest.param(
        H + "A: wirte(buf, 1)\n" + T,
        'unknown op `wirte`', (3, 4, 5), 'an op (see `cowdsl ops`)', 'did you mean `write`?',
        id="unknown_op",
    ),
    pytest.param(
        H + "A: frobnicate()\n" + T,
        'unknown op `frobnicate`', (3, 4, 10), 'an op (see `cowdsl ops`)', None,
        id="unknown_op_no_hint",
    ),
    pytest.param(
        H + "Z: write(buf, 1)\n" + T,
        'unknown actor `Z`', (3, 1, 1), ACTORS, None,
        id="unknown_actor",
    ),
    pytest.param(
        "process Alpha\nAlpah: exit()\n" + T,
        'unknown actor `Alpah`', (2, 1, 5), ACTORS, 'did you mean `Alpha`?',
        id="unknown_actor_typo",
    ),
    pytest.param(
        H + "B: write(buf, 1)\nA: fork() as B\n" + T,
        '`B` does not exist yet: it is created by the fork at line 4', (3, 1, 1), None, 'steps by a child come after the fork that creates it',
        id="child_before_fork",
    ),
    pytest.param(
        H + "A: exit()\nA: write(buf, 1)\n" + T,
        'process `A` exited at line 3', (4, 1, 1), None, 'a step by an exited process cannot run; move it before the exit',
        id="exited_process",
    ),
    pytest.param(
        "process A\nthread T of A\nA: mmap(buf)\nA: exit()\nT: write(buf, 1)\n" + T,
        'process `A` exited at line 4', (5, 1, 1), None, 'a step by an exited process cannot run; move it before the exit',
        id="thread_of_exited_process",
    ),
    pytest.param(
        H + "reclaim: write(buf, 1)\n" + T,
        '`reclaim` cannot write', (3, 1, 7), 'swapout or swapin', '`write` is done by a process',
        id="reclaim_doing_write",
    ),
    pytest.param(
        H + "A: dma_write(1)\n" + T,
        '`dma_write` is done by a device through a pin', (3, 1, 1), 'a pin or gup reference as the actor', 'e.g. `mr: dma_write(...)` after `A: pin(buf, write) as mr`',
        id="process_doing_dma_write",
    ),
    pytest.param(
        H + "A: swapout(A.buf)\n" + T,
        '`swapout` is done by the reclaim actor', (3, 1, 1), '`reclaim`', 'write `reclaim: swapout(A.buf)`, or `A: madvise(buf, pageout)`',
        id="process_doing_swapout",
    ),
    pytest.param(
        H + "ksmd: write(buf, 1)\n" + T,
        '`ksmd` cannot write', (3, 1, 4), 'ksm_merge or ksm_merge_zero', '`write` is done by a process',
        id="ksmd_doing_write",
    ),
    pytest.param(
        H + "A: fork() as B\nA: ksm_merge(A.buf, B.buf)\n" + T,
        '`ksm_merge` is done by the built-in actor `ksmd`', (4, 1, 1), '`ksmd`', 'write `ksmd: ksm_merge(A.buf, ...)`',
        id="process_doing_ksm_merge",
    ),
    pytest.param(
        H + "reclaim: dma_read() as v\n" + T,
        '`reclaim` cannot dma_read', (3, 1, 7), 'swapout or swapin', '`dma_read` is done by a device (a pin or gup reference)',
        id="reclaim_doing_dma",
    ),
    pytest.param(
        "process A, ksmd\n" + T,
        '`ksmd` is a built-in actor and cannot name a process', (1, 12, 4), None, 'choose another name',
        id="ksmd_as_name",
    ),
    pytest.param(
        H + "A: make_device_exclusive(buf) as dx\nA: unpin(dx)\n" + T,
        '`dx` is a device-exclusive handle', (4, 10, 2), None,
        'it is not released by a step: a CPU access to the page revokes it',
        id="unpin_a_device_handle",
    ),
    pytest.param(
        H + "A: gup(buf, count=5000) as r\n" + T,
        '`count=5000` is out of range', (3, 19, 4), '1 to 4096', None,
        id="count_out_of_range",
    ),
    pytest.param(
        H + "A: pin(buf, write) as mr\nmr: write(buf, 1)\n" + T,
        '`mr` is a pin; it can only do DMA', (4, 1, 2), 'dma_read or dma_write', 'a process does `write`, e.g. `A: write(...)`',
        id="pin_doing_write",
    ),
    pytest.param(
        H + "A: gup(buf) as r\nr: exit()\n" + T,
        '`r` is a gup reference; it can only do DMA', (4, 1, 1), 'dma_read or dma_write', 'a process does `exit`, e.g. `A: exit(...)`',
        id="gup_ref_doing_exit",
    ),
    pytest.param(
        H + "A: pin(buf, write) as mr\nA: unpin(mr)\nmr: dma_write(1)\n" + T,
        '`mr` was released at line 4', (5, 1, 2), None, 'DMA through a pin must come before it is released',
        id="dma_through_released_pin",
    ),
    pytest.param(
        H + "A: pin(buf, write) as mr\nA: exit()\nmr: dma_read() as v\n" + T,
        '`mr` was released at line 4, when `A` exited', (5, 1, 2), None, 'DMA through a pin must come before it is released',
        id="dma_after_owner_exit",
    ),
    pytest.param(
        H + "A: pin(buf, read) as mr\nmr: dma_write(1)\n" + T,
        '`mr` is a read-only pin; the device cannot write through it', (4, 1, 2), None, 'take it with `write`, e.g. `pin(buf, write) as mr`',
        id="dma_write_read_only_pin",
    ),
    pytest.param(
        H + "A: gup(buf) as r\nr: dma_write(1)\n" + T,
        '`r` is a read-only gup reference; the device cannot write through it', (4, 1, 1), None, 'take it with `write`, e.g. `gup(buf, write) as r`',
        id="dma_write_read_only_ref",
    ),
    pytest.param(
        H + "A: pin(buf) as mr\nA: unpin(mr)\nA: unpin(mr)\n" + T,
        '`mr` was already released at line 4', (5, 10, 2), None, 'each pin or reference is released once',
        id="unpin_twice",
    ),
    pytest.param(
        H + "A: pin(buf) as pin1\nA: unpin(pin2)\n" + T,
        'unknown pin `pin2`', (4, 10, 4), 'a name bound by `pin(...) as NAME`', 'did you mean `pin1`?',
        id="unpin_unknown",
    ),
    pytest.param(
        H + "A: put(r)\n" + T,
        'unknown gup reference `r`', (3, 8, 1), 'a name bound by `gup(...) as NAME`', None,
        id="put_unknown",
    ),
    pytest.param(
        H + "A: gup(buf) as r\nA: unpin(r)\n" + T,
        '`r` is a gup reference', (4, 10, 1), None, 'release it with `put(r)`',
        id="unpin_a_gup_ref",
    ),
    pytest.param(
        H + "A: pin(buf) as mr\nA: put(mr)\n" + T,
        '`mr` is a pin', (4, 8, 2), None, 'release it with `unpin(mr)`',
        id="put_a_pin",
    ),
    # arguments
    pytest.param(
        H + "A: write(buf)\n" + T,
        '`write` needs value (the value stored)', (3, 1, 13), sig("write"), f"write `A: {sig('write')}`",
        id="missing_param",
    ),
    pytest.param(
        H + "A: vmsplice()\n" + T,
        '`vmsplice` needs addr (buf or buf[i])', (3, 1, 13), sig("vmsplice"), f"write `A: {sig('vmsplice')}`",
        id="missing_all_params",
    ),
    pytest.param(
        H + "A: write(buf, 1, 2)\n" + T,
        'too many arguments for `write`: a number', (3, 18, 1), sig("write"), None,
        id="too_many_args_number",
    ),
    pytest.param(
        H + "A: fork(buf[1]) as B\n" + T,
        'too many arguments for `fork`: `buf[1]`', (3, 9, 6), sig("fork"), None,
        id="too_many_args_location",
    ),
    pytest.param(
        H + "A: pin(buf, longtem) as mr\n" + T,
        'unknown flag `longtem` for `pin`', (3, 13, 7), one_of(ops.OPS["pin"].flag_words()), 'did you mean `longterm`?',
        id="unknown_flag",
    ),
    pytest.param(
        H + "A: fork(fast) as B\n" + T,
        'unknown flag `fast` for `fork`', (3, 9, 4), 'no flags', None,
        id="flag_for_op_without_flags",
    ),
    pytest.param(
        H + "A: pin(buf, read, write) as mr\n" + T,
        '`write` conflicts with `read`', (3, 19, 5), 'one access: `read` or `write`', 'drop one of them',
        id="conflicting_flags",
    ),
    pytest.param(
        "process A\nA: mmap(m, rw, ro)\n" + T,
        '`ro` conflicts with `rw`', (2, 16, 2), 'one prot: `rw` or `ro`', 'drop one of them',
        id="conflicting_prot",
    ),
    pytest.param(
        H + "A: mprotect(buf)\n" + T,
        '`mprotect` needs a protection', (3, 1, 16), 'one of `rw`, `ro`, `none`', 'e.g. `A: mprotect(buf, rw)`',
        id="missing_prot",
    ),
    pytest.param(
        H + "A: madvise(buf)\n" + T,
        '`madvise` needs advice', (3, 1, 15), one_of(ops.OPS["madvise"].flags[0].choices), 'e.g. `A: madvise(buf, dontneed)`',
        id="missing_advice",
    ),
    pytest.param(
        H + "A: mmap(m, pags=2)\n" + T,
        'unknown keyword `pags=` for `mmap`', (3, 12, 4), one_of(f"{k.name}=" for k in ops.OPS["mmap"].keywords), 'did you mean `pages`?',
        id="unknown_keyword",
    ),
    pytest.param(
        H + "A: fork(pages=2) as B\n" + T,
        'unknown keyword `pages=` for `fork`', (3, 9, 5), 'no keywords', None,
        id="keyword_for_op_without_keywords",
    ),
    pytest.param(
        H + "A: mmap(m, pages=two)\n" + T,
        '`pages=` takes a number', (3, 18, 3), 'a number', None,
        id="pages_not_a_number",
    ),
    pytest.param(
        H + "A: mmap(m, pages=0)\n" + T,
        '`pages=0` is out of range', (3, 18, 1), '1 to 64 pages', None,
        id="pages_zero",
    ),
    pytest.param(
        H + "A: mmap(m, pages=65)\n" + T,
        '`pages=65` is out of range', (3, 18, 2), '1 to 64 pages', 'raise the limit with `--max-pages 65`',
        id="pages_too_many",
    ),
    pytest.param(
        "process A\nfile F = [1]\nA: mmap(m, file=1)\n" + T,
        '`file=` takes a file name, not a number', (3, 17, 1), 'a file declared with `file NAME = [...]`', 'e.g. `file=F`',
        id="file_kw_number",
    ),
    pytest.param(
        "process A\nfile Foo = [1]\nA: mmap(m, file=Fo)\n" + T,
        'unknown file `Fo`', (3, 17, 2), 'a file declared with `file NAME = [...]`', 'did you mean `Foo`?',
        id="unknown_file",
    ),
    pytest.param(
        "process A\nfile F = [1]\nA: mmap(m, anon, file=F)\n" + T,
        '`anon` and `file=` contradict each other', (3, 12, 4), None, 'drop one of them',
        id="anon_with_file",
    ),
    pytest.param(
        "process A\nfile F = [1, 2]\nA: mmap(m, file=F, pages=3)\n" + T,
        'file `F` has 2 pages, not 3', (3, 26, 1), 'pages=2 or fewer', 'leave out `pages=` to map the whole file',
        id="pages_beyond_file",
    ),
    pytest.param(
        "process A\nfile F = [1]\nA: mmap(m, file=F)\nA: madvise(m, wipeonfork)\n" + T,
        'MADV_WIPEONFORK applies to private anonymous mappings only; `m` maps a file', (4, 15, 10), None, None,
        id="wipeonfork_on_file",
    ),
    pytest.param(
        H + "A: write(buf, 18446744073709551616)\n" + T,
        'value too large', (3, 15, 20), 'a number below 2**64', None,
        id="value_too_large",
    ),
    pytest.param(
        H + "A: write(buf, buf)\n" + T,
        '`write` takes a number as value', (3, 15, 3), 'a number, e.g. 1', None,
        id="value_not_a_number",
    ),
    pytest.param(
        H + "A: write(3, 1)\n" + T,
        '`write` takes buf or buf[i] as addr', (3, 10, 1), 'buf or buf[i]', None,
        id="address_is_a_number",
    ),
    pytest.param(
        H + "A: mmap(A.m)\n" + T,
        'a new mapping is named by a plain name', (3, 9, 3), 'a name, e.g. buf', None,
        id="new_mapping_not_plain",
    ),
    pytest.param(
        H + "A: munmap(A.buf[1])\n" + T,
        "`munmap` works on the actor's own mappings", (3, 11, 8), '`buf[1]` without a process', None,
        id="own_mapping_wanted",
    ),
    pytest.param(
        H + "A: write(bfu, 1)\n" + T,
        'unknown mapping `bfu` in A', (3, 10, 3), 'a mapping of A: `buf`', 'did you mean `buf`?',
        id="unknown_mapping",
    ),
    pytest.param(
        "process A\nA: write(buf, 1)\n" + T,
        'unknown mapping `buf` in A', (2, 10, 3), 'a mapping of A: it has none yet', 'create it with `mmap(NAME, ...)` first',
        id="unknown_mapping_none_yet",
    ),
    pytest.param(
        H + "A: munmap(bfu)\n" + T,
        'unknown mapping `bfu` in A', (3, 11, 3), 'a mapping of A: `buf`', 'did you mean `buf`?',
        id="munmap_unknown_mapping",
    ),
    pytest.param(
        H + "A: munmap(buf)\nA: write(buf, 1)\n" + T,
        '`buf` was unmapped in A at line 3', (4, 10, 3), None, 'map it again, or move this step before the munmap',
        id="unmapped_mapping",
    ),
    pytest.param(
        "process A\npipe Pipe\nA: mmap(buf)\nA: vmsplice(buf, Pip)\n" + T,
        'unknown pipe `Pip`', (4, 18, 3), 'a pipe declared with `pipe NAME`', 'did you mean `Pipe`?',
        id="unknown_pipe",
    ),
    pytest.param(
        "process A\npipe P\nA: mmap(buf)\nA: vmsplice(buf, 3)\n" + T,
        '`vmsplice` takes a declared pipe as pipe', (4, 18, 1), 'a declared pipe', None,
        id="pipe_not_a_name",
    ),
    pytest.param(
        "process A, C\nA: mmap(buf)\nA: write(C.buf, 1)\n" + T,
        "`write` works on the actor's own memory", (3, 10, 5), '`buf` without a process', "to reach another process's memory use process_vm_writev/readv or proc_mem_write",
        id="own_memory_only",
    ),
    pytest.param(
        H + "A: process_vm_writev(buf, 1)\n" + T,
        '`process_vm_writev` needs the process whose page it is', (3, 22, 3), 'PROCESS.buf', 'e.g. `A.buf`',
        id="remote_needs_process",
    ),
    pytest.param(
        H + "A: process_vm_writev(X.buf, 1)\n" + T,
        'unknown process `X`', (3, 22, 1), 'a process', None,
        id="remote_unknown_process",
    ),
    pytest.param(
        H + "A: process_vm_writev(B.buf, 1)\nA: fork() as B\n" + T,
        '`B` does not exist yet: it is created by the fork at line 4', (3, 22, 1), None, 'move this step after the fork',
        id="remote_child_before_fork",
    ),
    pytest.param(
        "process A, C\nC: mmap(buf)\nC: exit()\nA: process_vm_writev(C.buf, 1)\n" + T,
        'process `C` exited at line 3', (4, 22, 1), None, 'its memory is gone; move this step before the exit',
        id="remote_exited_process",
    ),
    pytest.param(
        H + "A: write(buf[2], 1)\n" + T,
        'page 2 is outside `buf`, which has 2 pages', (3, 14, 1), 'an index from 0 to 1', None,
        id="index_out_of_range",
    ),
    pytest.param(
        "process A\nA: mmap(m)\nA: write(m[1], 1)\n" + T,
        'page 1 is outside `m`, which has 1 page', (3, 12, 1), 'an index from 0 to 0', None,
        id="index_out_of_range_one_page",
    ),
    pytest.param(
        H + "A: fork()\n" + T,
        'fork needs a name for the child', (3, 1, 9), None, 'write `A: fork() as B`',
        id="fork_without_name",
    ),
    # assertions
    pytest.param(
        H + "assert Z.buf == 1\n",
        'unknown process `Z`', (3, 8, 1), 'a process', None,
        id="assert_unknown_process",
    ),
    pytest.param(
        H + "assert A.bfu == 1\n",
        'unknown mapping `bfu` in A', (3, 10, 3), 'a mapping of A: `buf`', 'did you mean `buf`?',
        id="assert_unknown_mapping",
    ),
    pytest.param(
        H + "assert A.buf[2] == 1\n",
        'page 2 is outside `buf`, which has 2 pages', (3, 14, 1), 'an index from 0 to 1', None,
        id="assert_index_out_of_range",
    ),
    pytest.param(
        "process A\nfile F = [1]\nassert F[1] == 1\n",
        'page 1 is outside file `F`, which has 1 page', (3, 10, 1), 'an index from 0 to 0', None,
        id="assert_file_index_out_of_range",
    ),
    pytest.param(
        H + "A: read(buf) as v\nassert v[0] == 1\n",
        '`v[0]`: only mappings and files have pages', (4, 8, 4), '`v` without an index', None,
        id="assert_index_on_value",
    ),
    pytest.param(
        H + "assert buf == 1\n",
        '`buf`: say whose mapping', (3, 8, 3), '`A.buf`', 'write `A.buf`',
        id="assert_bare_mapping",
    ),
    pytest.param(
        H + "assert buf[1] == 1\n",
        '`buf`: say whose mapping', (3, 8, 6), '`A.buf`', 'write `A.buf[1]`',
        id="assert_bare_mapping_index",
    ),
    pytest.param(
        H + "A: read(buf) as value\nassert valeu == 1\n",
        'unknown name `valeu` in assertion', (4, 8, 5), 'A.mapping, a pin, a value kept with `as`, or a file page', 'did you mean `value`?',
        id="assert_unknown_name",
    ),
    pytest.param(
        H + "assert exclusive\n",
        '`exclusive` needs an argument', (3, 8, 9), '`exclusive(...)`', 'e.g. `exclusive(A.buf)`',
        id="assert_fact_without_args",
    ),
    pytest.param(
        H + "assert segv\n",
        '`segv` needs an argument', (3, 8, 4), '`segv(...)`', 'e.g. `segv(A)`',
        id="assert_process_fact_without_args",
    ),
    pytest.param(
        H + "assert exclusiv(A.buf)\n",
        'unknown fact `exclusiv`', (3, 8, 8), 'a fact (see `cowdsl ops`)', 'did you mean `exclusive`?',
        id="assert_unknown_fact",
    ),
    pytest.param(
        H + "assert exclusive(A.buf, A.buf)\n",
        '`exclusive` takes 1 argument', (3, 8, 23), '`exclusive(A.buf)`', None,
        id="assert_fact_arity",
    ),
    pytest.param(
        H + "assert cow_copies(A, A) == 0\n",
        '`cow_copies` takes 0 or 1 arguments', (3, 8, 16), '`cow_copies()` or `cow_copies(A)`', None,
        id="assert_counter_arity",
    ),
    pytest.param(
        H + "assert exclusive(3)\n",
        '`exclusive` takes a page, not `3`', (3, 18, 1), 'A.buf, A.buf[1], a pin or F[0]', None,
        id="assert_fact_of_number",
    ),
    pytest.param(
        H + "assert alive(1)\n",
        '`alive` takes a process, not `1`', (3, 14, 1), 'a process name', None,
        id="assert_process_fact_of_number",
    ),
    pytest.param(
        H + "assert failed(true)\n",
        '`failed` takes a step named with `as`, not `true`', (3, 15, 4), 'a name bound by `as`', None,
        id="assert_failed_of_bool",
    ),
    pytest.param(
        H + "assert segv(A.buf)\n",
        '`segv` takes a process', (3, 13, 5), 'a process name', 'e.g. `segv(A)`',
        id="assert_process_fact_of_mapping",
    ),
    pytest.param(
        H + "A: pin(buf) as mr\nassert failed(rm)\n",
        '`failed` takes a step named with `as`', (4, 15, 2), 'a name bound by `as`', 'name the step: `A: pin(buf) as mr`',
        id="assert_failed_unknown",
    ),
    pytest.param(
        H + "assert failed(x)\n",
        '`failed` takes a step named with `as`', (3, 15, 1), 'a name bound by `as`', 'name the step: `A: pin(buf) as mr`',
        id="assert_failed_nothing_named",
    ),
    pytest.param(
        H + "A: read(buf) as v\nassert exclusive(v)\n",
        '`exclusive` takes a page, not `v`', (4, 18, 1), 'A.buf, A.buf[1], a pin or F[0]', None,
        id="assert_page_fact_of_value",
    ),
    pytest.param(
        H + "assert exclusive(A.bfu)\n",
        'unknown mapping `bfu` in A', (3, 20, 3), 'a mapping of A: `buf`', 'did you mean `buf`?',
        id="assert_fact_of_unknown_mapping",
    ),
    pytest.param(
        H + "assert A.buf is 3\n",
        '`3` is not a page', (3, 17, 1), 'a page: A.buf, A.buf[1], a pin, or F[0]', None,
        id="assert_is_number",
    ),
    pytest.param(
        H + "assert A.buf\n",
        '`A.buf` is not true or false', (3, 8, 5), 'a condition, e.g. `A.buf == 1`, `mr is A.buf`, `exclusive(A.buf)`', None,
        id="assert_not_a_condition",
    ),
    pytest.param(
        H + "assert 1\n",
        '`1` is not true or false', (3, 8, 1), 'a condition, e.g. `A.buf == 1`, `mr is A.buf`, `exclusive(A.buf)`', None,
        id="assert_number_not_a_condition",
    ),
    pytest.param(
        H + "assert exclusive(A.buf) == 1\n",
        'cannot compare a condition with a number', (3, 8, 21), None, 'compare values (`A.buf == 1`) or test conditions (`exclusive(A.buf)`)',
        id="assert_condition_vs_number",
    ),
    pytest.param(
        H + "assert true < 1\n",
        '`true` is true or false, not a number', (3, 8, 4), 'a number', '`<` orders numbers; `==` and `!=` also compare conditions',
        id="assert_bool_ordered",
    ),
    pytest.param(
        H + "assert not 3\n",
        '`3` is not true or false', (3, 12, 1), 'a condition, e.g. `A.buf == 1`, `mr is A.buf`, `exclusive(A.buf)`', None,
        id="assert_not_of_number",
    ),
    pytest.param(
        H + "assert true and A.buf\n",
        '`A.buf` is not true or false', (3, 17, 5), 'a condition, e.g. `A.buf == 1`, `mr is A.buf`, `exclusive(A.buf)`', None,
        id="assert_and_of_page",
    ),
    # expectations
    pytest.param(
        H + T + "expect pass on anon-exclusiv\n",
        'unknown backend `anon-exclusiv`', (4, 16, 13), 'a backend (see `cowdsl backends`)', 'did you mean `anon-exclusive`?',
        id="unknown_backend",
    ),
    pytest.param(
        H + T + "expect pass on erly-cow:pin_scope=longterm\n",
        'unknown backend `erly-cow`', (4, 16, 8), 'a backend (see `cowdsl backends`)', 'did you mean `early-cow`?',
        id="unknown_backend_with_options",
    ),
    pytest.param(
        H + T + "expect pass on early-cow:pin_scop=longterm\n",
        'unknown option `pin_scop` for early-cow', (4, 16, 27), None, 'did you mean `pin_scope`?',
        id="unknown_backend_option",
    ),
]


@pytest.mark.parametrize("source, message, where, expected, hint", CHECKER_ERRORS)
def test_checker_error(load_error, rendered, source, message, where, expected, hint):
    err = load_error(source)
    assert len(err.diagnostics) == 1, err.render()
    line, col, width = where
    r = rendered(err)
    assert (r["file"], r["line"], r["col"], r["message"]) == ("x.cow", line, col, message)
    assert r["source"] == source.split("\n")[line - 1]
    assert (r["pad"], r["width"]) == (col - 1, width)
    assert (r["expected"], r["hint"]) == (expected, hint)
