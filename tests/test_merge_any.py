"""`merge_any(A)`: MMF_VM_MERGE_ANY as prctl(PR_GET_MEMORY_MERGE) reports it.

Set by prctl(memory_merge, enable) (6.4+, d7597f59d1d3; EINVAL before), cleared
by `disable` (ksm_disable_merge_any), inherited by fork (ksm_fork 6.4-6.6,
MMF_INIT_MASK from 6.7, 3c6f33b7273a).  What the selftest
ksm_functional_tests.c test_prctl / test_prctl_fork asks.
"""

from __future__ import annotations

import pytest
from helpers_semantics import mm, run_src

from cowdsl import ops
from cowdsl import scenario as S
from cowdsl.check.assertions import PROCESS_FACTS
from cowdsl.errors import CowError
from cowdsl.load import load_text

FORKED = """
    process A
    A: prctl(memory_merge, enable) as set1
    A: fork() as B
    A: prctl(memory_merge, disable) as set0
"""


def checks(r) -> dict[str, bool | None]:
    return {c.assertion.text: c.holds for c in r.checks}


def test_merge_any_is_a_process_fact():
    spec = ops.FACTS["merge_any"]
    assert spec.kind == "bool" and spec.arity == (1,) and "PR_GET_MEMORY_MERGE" in spec.doc
    assert "merge_any" in PROCESS_FACTS
    (a,) = load_text("process A\nassert merge_any(A)\n", "x.cow").assertions
    assert a.expr == S.FactCall("merge_any", (S.ProcessRef("A"),))


@pytest.mark.parametrize("text, message", [
    ("assert merge_any(A.buf)\n", "`merge_any` takes a process"),
    ("assert merge_any\n", "`merge_any` needs an argument"),
    ("assert merge_any(C)\n", "`merge_any` takes a process"),
])
def test_merge_any_takes_a_process(text, message):
    with pytest.raises(CowError) as e:
        load_text("process A\nA: mmap(buf, anon, private, rw)\n" + text, "x.cow")
    assert message in str(e.value)


def test_prctl_sets_and_clears_it_and_fork_inherits_it_on_6_4():
    r = run_src(FORKED + """
        assert not failed(set1) and not failed(set0)
        reachable: merge_any(A)
        assert not merge_any(A)
        assert merge_any(B)
    """, backend="6.4")
    assert r.verdict == "pass", checks(r)
    assert not mm(r.final, "A").merge_any and mm(r.final, "B").merge_any


def test_it_is_never_set_before_6_4():
    r = run_src(FORKED + """
        assert failed(set1)
        sometimes: merge_any(A) or merge_any(B)
    """, backend="6.3")
    assert checks(r) == {"failed(set1)": True, "merge_any(A) or merge_any(B)": False}


def test_the_childs_flag_is_its_own():
    """The child's PR_SET_MEMORY_MERGE=0 leaves the parent's set: MMF_VM_MERGE_ANY is per mm."""
    r = run_src("""
        process A
        A: prctl(memory_merge, enable)
        A: fork() as B
        B: prctl(memory_merge, disable)
        assert merge_any(A) and not merge_any(B)
    """, backend="6.12")
    assert r.verdict == "pass", checks(r)
