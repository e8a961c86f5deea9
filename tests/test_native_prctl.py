"""prctl(PR_SET_MEMORY_MERGE) on the native backend, and `merge_any(A)` read with the
process's own prctl(PR_GET_MEMORY_MERGE).

These run without a kernel that has it: the worker's prctl is scripted, and the
observation talks to a scripted controller.  The real runs are crosscheck
--kernel's (ksmd runs only in our guests; on the host the planner refuses every
KSM step, prctl's included).
"""

from __future__ import annotations

import errno
import socket
import textwrap
from types import SimpleNamespace

import pytest

from cowdsl.judge.observe import Unsupported
from cowdsl.load import load_text
from cowdsl.native import libc as L
from cowdsl.native import observe, plan, translate, worker
from cowdsl.native.controller import Died


def load(text: str):
    return load_text(textwrap.dedent(text).strip() + "\n", "t.cow")


PRCTL = """
    process A
    A: prctl(memory_merge, enable) as set1
    A: fork() as B
    A: prctl(memory_merge, disable)
    assert merge_any(B) and not merge_any(A)
"""


# --- the plan --------------------------------------------------------------------------------------
def test_prctl_is_translated_not_refused():
    assert "prctl" in translate.OPS and "prctl" not in plan.REFUSED
    assert not hasattr(plan, "UNSUPPORTED_PRCTL")


def test_prctl_runs_only_where_ksmd_is_ours_and_asks_the_guest_for_it():
    sc = load(PRCTL)
    ours = SimpleNamespace(swap=True, thp=None, hugetlb=None, ksm=None)
    theirs = SimpleNamespace(swap=True, thp=None, hugetlb=None,
                             ksm="ksmd is not ours to run (/sys/kernel/mm/ksm/run is a host-wide switch)")
    for st in (sc.steps[0], sc.steps[2]):
        assert plan.step_problem(st, ours) is None
        assert plan.step_problem(st, theirs) == (f"unsupported on this host: `{st.text}`: "
                                                 + theirs.ksm)
    assert plan.guest_needs(sc) == {"ksm"}


# --- the worker ------------------------------------------------------------------------------------
@pytest.fixture
def calls(monkeypatch):
    """The worker's prctl calls; PR_GET_MEMORY_MERGE answers what the last SET set."""
    seen: list[tuple[int, int]] = []
    state = {"on": 0}

    def prctl(option: int, arg2: int = 0) -> int:
        seen.append((option, arg2))
        if option == worker.PR_SET_MEMORY_MERGE:
            state["on"] = arg2
            return 0
        return state["on"]

    monkeypatch.setattr(L, "prctl", prctl)
    return seen


def _worker() -> worker.Worker:
    a, b = socket.socketpair()
    b.close()
    return worker.Worker("A", a, {})


def test_the_worker_sets_and_gets_pr_memory_merge(calls):
    assert (worker.PR_SET_MEMORY_MERGE, worker.PR_GET_MEMORY_MERGE) == (67, 68)  # uapi/linux/prctl.h
    w = _worker()
    on = w.execute({"op": "prctl", "enable": True, "thread": None}, [])
    got = w.execute({"op": "get_memory_merge", "thread": None}, [])
    off = w.execute({"op": "prctl", "enable": False, "thread": None}, [])
    assert on == {"ok": True, "events": ["prctl(PR_SET_MEMORY_MERGE, 1) → 0"]}
    assert got == {"ok": True, "value": 1, "events": ["prctl(PR_GET_MEMORY_MERGE) → 1"]}
    assert off is not None and off["ok"]
    assert calls == [(67, 1), (68, 0), (67, 0)]


def test_einval_before_6_4_is_the_steps_error(monkeypatch):
    def prctl(option: int, arg2: int = 0) -> int:
        raise OSError(errno.EINVAL, "prctl: Invalid argument")

    monkeypatch.setattr(L, "prctl", prctl)
    out = _worker().execute({"op": "prctl", "enable": True, "thread": None}, [])
    assert out is not None and out["ok"] is False and out["error"] == "EINVAL"


def test_the_translation_sends_enable_or_disable():
    sent: list[dict] = []
    sc = load(PRCTL)
    t = SimpleNamespace(simple=lambda st, cmd: sent.append(cmd) or ("out", []))
    translate.prctl(t, sc.steps[0])
    translate.prctl(t, sc.steps[2])
    assert sent == [{"op": "prctl", "enable": True}, {"op": "prctl", "enable": False}]


# --- the observation -------------------------------------------------------------------------------
def _observation(reply: dict | Exception, alive: bool = True):
    asked: list[tuple[str, dict]] = []
    died: list[str] = []

    def call(p, cmd):
        asked.append((p.name, cmd))
        if isinstance(reply, Exception):
            raise reply
        return reply

    proc = SimpleNamespace(name="B", alive=alive)
    run = SimpleNamespace(procs={"B": proc}, ctl=SimpleNamespace(call=call), died=lambda p: died.append(p.name))
    return observe.NativeObservation(run, host=None), asked, died  # type: ignore[arg-type]


def test_merge_any_is_the_processs_own_pr_get_memory_merge():
    obs, asked, _ = _observation({"ok": True, "value": 1})
    assert obs.process("merge_any", "B") is True
    assert asked == [("B", {"op": "get_memory_merge", "thread": None})]
    assert _observation({"ok": True, "value": 0})[0].process("merge_any", "B") is False


def test_merge_any_is_false_where_the_kernel_has_no_such_flag():
    obs, _, _ = _observation({"ok": False, "error": "EINVAL"})  # before 6.4: no PR_GET_MEMORY_MERGE
    assert obs.process("merge_any", "B") is False


def test_merge_any_of_a_gone_process_is_not_observable():
    obs, asked, _ = _observation({"ok": True, "value": 1}, alive=False)
    with pytest.raises(Unsupported, match="only the process itself"):
        obs.process("merge_any", "B")
    assert asked == []
    obs, _, died = _observation(Died("B"))
    with pytest.raises(Unsupported, match="B died"):
        obs.process("merge_any", "B")
    assert died == ["B"]
    with pytest.raises(Unsupported, match="EPERM"):
        _observation({"ok": False, "error": "EPERM"})[0].process("merge_any", "B")
