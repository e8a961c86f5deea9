"""`exec()`: execve(2), the process's new mm.

The old mm's mappings are zapped (exit_mmap of the old mm); a page a pin or GUP
reference holds stays allocated (the device's handle is the process's, not the
mm's).  The new mm keeps MMF_VM_MERGE_ANY only through MMF_INIT_MASK
(3c6f33b7273a, 6.7) and is entered into ksmd's list by ksm_execve
(3a9e567ca45f: 6.10, 6.8.12, 6.9.3).  What ksm_functional_tests.c
test_prctl_fork_exec asks.
"""

from __future__ import annotations

import pytest
from helpers_semantics import mm, record, run_src

from cowdsl import ops
from cowdsl.errors import CowError
from cowdsl.kernel import timeline
from cowdsl.kernel.version import v
from cowdsl.load import load_text
from cowdsl.native.plan import step_problem
from cowdsl.ops.spec import WHOLE, Lock

EXECED = """
    process A
    A: prctl(memory_merge, enable)
    A: fork() as B
    B: exec()
    B: mmap(buf, anon, private, rw, pages=2)
    B: write(buf[0], 7)
    B: write(buf[1], 7)
    ksmd: ksm_merge(B.buf[0], B.buf[1]) as k
"""


def checks(r) -> dict[str, bool | None]:
    return {c.assertion.text: c.holds for c in r.checks}


def test_exec_is_declared_once_as_a_process_op_under_mmap_write_lock():
    spec = ops.OPS["exec"]
    assert spec.actor == ops.TASK and not spec.params and not spec.flags and spec.binds == ops.BINDS_OUTCOME
    (prog,) = spec.programs()
    assert prog.name == WHOLE and [s.lock for s in prog.steps] == [Lock.MMAP_WRITE]


def test_the_old_mappings_are_gone_and_a_pinned_page_stays():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: mmap(other, anon, private, rw)
        A: write(buf, 5)
        A: write(other, 6)
        A: pin(buf, write, longterm) as mr
        A: exec()
        assert mr == 5 and pinned(mr)
        assert not present(A.other)
    """, backend="6.18")
    assert mm(r.final, "A").vmas == ()
    h = next(h for h in r.final.handles if h.name == "mr")
    assert h.live and r.final.pages[h.page].mapcount == 0 and not r.final.pages[h.page].freed
    assert r.verdict == "pass", checks(r)


def test_the_parent_reuses_the_page_the_child_no_longer_maps():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: fork() as B
        B: exec()
        A: write(buf, 2)
        assert cow_copies(A) == 0 and A.buf == 2
    """, backend="6.18")
    assert r.verdict == "pass", checks(r)


def test_has_pinned_does_not_survive_exec():
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw)
        A: pin(buf, write, longterm) as mr
        A: exec()
        assert not has_pinned(A)
    """, backend="6.18")
    assert r.verdict == "pass", checks(r)


@pytest.mark.parametrize("version, kept, scanned", [
    ("6.6", False, False), ("6.7", True, False), ("6.8.11", True, False), ("6.8.12", True, True),
    ("6.9.2", True, False), ("6.9.3", True, True), ("6.10", True, True), ("6.18", True, True),
])
def test_merge_any_and_ksmds_scan_after_exec(version, kept, scanned):
    r = run_src(EXECED + "    assert merge_any(B)\n    assert not failed(k)\n", backend=version)
    assert mm(r.final, "B").merge_any is kept and mm(r.final, "B").ksm_entered is scanned
    assert [c.holds for c in r.checks] == [kept, scanned]
    said = " ".join(e.text for e in record(r, "B: exec()").events)
    assert ("3c6f33b7273a" in said) and (("ksm_execve enters" in said) is scanned)
    if kept and not scanned:
        assert any("no mm_slot" in e.text for e in record(r, "ksmd: ksm_merge(B.buf[0], B.buf[1]) as k").events)


def test_a_child_of_a_madvised_parent_is_scanned_without_exec():
    """ksm_fork enters the child of an MMF_VM_MERGEABLE parent in every version."""
    r = run_src("""
        process A
        A: mmap(buf, anon, private, rw, pages=2)
        A: madvise(buf, mergeable)
        A: fork() as B
        B: write(buf[0], 3)
        B: write(buf[1], 3)
        ksmd: ksm_merge(B.buf[0], B.buf[1]) as k
        assert not failed(k)
    """, backend="5.10")
    assert r.verdict == "pass", checks(r)


def test_the_timeline_has_both_changes():
    s = timeline.settings
    assert s(v("6.6"))["ksm_exec_merge_any"] == "drop" and s(v("6.7"))["ksm_exec_merge_any"] == "keep"
    for old, new in (("6.8.11", "6.8.12"), ("6.9.2", "6.9.3"), ("6.9", "6.10")):
        assert s(v(old))["ksm_execve"] == "off" and s(v(new))["ksm_execve"] == "on"


@pytest.mark.parametrize("text, message, where", [
    ("A: exec()\nA: write(buf, 1)\n", "`buf` is gone: A ran exec at line 3", "x.cow:4:"),
    ("A: exec()\nA: pin(buf) as mr\n", "`buf` is gone: A ran exec at line 3", "x.cow:4:"),
    ("A: exec(buf)\n", "unknown flag `buf` for `exec`", "x.cow:3:9"),
])
def test_misuse_is_an_error(text, message, where):
    with pytest.raises(CowError) as e:
        load_text("process A\nA: mmap(buf, anon, private, rw)\n" + text + "assert true\n", "x.cow")
    assert message in str(e.value) and where in str(e.value)


def test_exec_in_a_process_with_threads_is_refused():
    with pytest.raises(CowError) as e:
        load_text("process A\nthread T of A\nA: exec()\nassert true\n", "x.cow")
    text = str(e.value)
    assert "x.cow:3:4" in text and "`exec` in A, which has threads (T)" in text and "de_thread" in text


def test_a_mapping_made_after_exec_is_usable_and_pins_stay_the_processs():
    sc = load_text("""process A
A: mmap(buf, anon, private, rw)
A: pin(buf, write) as mr
A: exec()
A: mmap(buf, anon, private, rw, pages=2)
A: write(buf[1], 1)
A: unpin(mr)
assert A.buf[1] == 1
""", "x.cow")
    assert [st.op for st in sc.steps] == ["mmap", "pin", "exec", "mmap", "write", "unpin"]


def test_native_refuses_it_with_a_reason():
    sc = load_text("process A\nA: exec()\nassert true\n", "x.cow")
    why = step_problem(sc.steps[0], object())
    assert why is not None and "execve() a new worker" in why
