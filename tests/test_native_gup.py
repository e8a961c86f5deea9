"""FOLL_GET references on native: `gup(buf, read, count=N)` as pipe buffers (vmsplice), until `put`."""

from __future__ import annotations

import textwrap
from types import SimpleNamespace

import pytest

from cowdsl.native import skip_reason

_SKIP = skip_reason()


def load(text: str):
    from cowdsl.load import load_text

    return load_text(textwrap.dedent(text).strip() + "\n", "t.cow")


HOST = SimpleNamespace(reason=None, uffd=None, swap=False, thp=None, hugetlb=None, ksm=None, odirect=None)
LIMITS = SimpleNamespace(max_steps=100, max_processes=8, max_pages=64, max_pages_per_mapping=64)
SCENARIO = """
    process A, W
    A: mmap(buf, anon, private, rw)
    A: write(buf, 1)
    {step}
    assert A.buf == 1
"""


def why(step: str) -> str | None:
    from cowdsl.native import plan

    got = plan.problem(load(SCENARIO.format(step=step)), HOST, LIMITS)
    return None if got is None else got[1]


@pytest.mark.parametrize("step", ["A: gup(buf, read) as r", "A: gup(buf, read, count=1024) as r\nA: put(r)",
                                  "A: gup(buf) as r"])
def test_read_references_of_the_process_s_own_page_are_planned(step):
    assert why(step) is None


@pytest.mark.parametrize("step, reason", [
    ("A: gup(buf, write) as r", "an O_DIRECT read in flight here"),
    ("A: gup(buf, read, fast) as r", "a GUP-fast one that must not fall back"),
    ("W: gup(A.buf, read) as r", "of the process's own page"),
    ("par {\n  A: gup(buf, read) as r\n  W: mmap(x, anon, private, rw)\n}", "FOLL_GET references user space can hold"),
    ("A: gup(buf, read) as r\nr: dma_read() as v", "no device reads or writes through it"),
])
def test_references_user_space_cannot_hold_are_refused_with_the_reason(step, reason):
    assert reason in (why(step) or "")


@pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")
def test_references_are_pipe_buffers_on_the_page_until_put():
    from cowdsl.native import run_native

    r = run_native(load("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: gup(buf, read, count=300) as r
        A: fork() as B
        A: write(buf, 2)
        A: put(r)
        assert B.buf == 1 and A.buf == 2
    """))
    assert [c.holds for c in r.checks] == [True]
    gup = next(s for s in r.steps if s.step.op == "gup")
    assert gup.outcome.ok and any("vmsplice of 300 iovecs" in e.text and "2 pipes" in e.text for e in gup.events)
    assert any("referenced page: pfn" in e.text for e in gup.events)
    put = r.steps[-1]
    assert put.outcome.ok and "put_page, 2 pipe(s)" in put.events[-1].text


@pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")
def test_a_reference_is_observed_as_its_page():
    from cowdsl.native import run_native

    r = run_native(load("""
        process A
        A: mmap(buf, anon, private, rw)
        A: write(buf, 1)
        A: gup(buf, read) as r
        assert r is A.buf and r == 1
    """))
    assert [c.holds for c in r.checks] == [True]


# --- `gup(buf, write)`: an O_DIRECT read in flight, before 6.5 ----------------------------------


def dio_why(rest: str, kernel: str = "5.10.0-32-cloud-amd64", odirect: str | None = None) -> str | None:
    from cowdsl.native import plan

    host = SimpleNamespace(**{**vars(HOST), "kernel": kernel, "odirect": odirect})
    got = plan.problem(load(SCENARIO.format(step="A: gup(buf, write) as io\n" + rest)), host, LIMITS)
    return None if got is None else got[1]


def test_a_write_reference_is_an_odirect_read_whose_completion_is_its_one_device_write():
    assert dio_why("io: dma_write(9)") is None
    assert dio_why("io: dma_write(9)\nA: put(io)") is None
    assert "takes FOLL_PIN for it (a7e689dd1c06, 6.5)" in (dio_why("io: dma_write(9)", "6.12.117+deb13-cloud-amd64") or "")
    assert "tmpfs" in (dio_why("io: dma_write(9)", odirect="tmpfs has no direct I/O") or "")
    assert "exactly one device write" in (dio_why("A: put(io)") or "")
    assert "exactly one device write" in (dio_why("io: dma_write(9)\nio: dma_write(8)") or "")
    assert "must come right after" in (dio_why("io: dma_write(9)\nA: write(buf, 2)\nA: put(io)") or "")
    assert "not one word" in (dio_why("io: dma_write(9)\nA: write(buf+8, 2)") or "")


def test_a_write_reference_needs_the_guests_delay_unless_it_is_refused_anyway():
    from cowdsl.native import plan

    assert plan.guest_needs(load(SCENARIO.format(step="A: gup(buf, write) as io\nio: dma_write(9)"))) == {"dm-delay"}
    assert plan.guest_needs(load(SCENARIO.format(step="W: gup(A.buf, write) as io\nio: dma_write(9)"))) == set()


# --- `ksm_merge_zero`: use_zero_pages, a machine-wide knob, only in our guest --------------------


def test_ksm_merge_zero_needs_our_guest_and_is_refused_elsewhere_with_the_reason():
    from cowdsl.native import host, plan

    step = load("process A\nA: mmap(buf, anon, private, rw)\nksmd: ksm_merge_zero(A.buf) as z\nassert true\n").steps[1]
    assert plan.step_problem(step, SimpleNamespace(**{**vars(HOST), "ksm_zero": None})) is None
    why = plan.step_problem(step, SimpleNamespace(**{**vars(HOST), "ksm_zero": "not our guest"})) or ""
    assert why.endswith("not our guest")
    assert not host.in_guest()  # this machine's kernel command line has no mark: never its knob
    assert host._ksm_zero(None) is not None and "machine-wide" in (host._ksm_zero(None) or "")


def test_the_guests_kernel_command_line_carries_the_mark_in_guest_looks_for():
    from cowdsl.kernels import qemu
    from cowdsl.native import host

    assert host.GUEST_CMDLINE_MARK in qemu.kernel_cmdline().split()


def test_a_run_with_ksm_merge_zero_cannot_also_ksm_merge():
    from cowdsl.native import plan

    sc = load("""
        process A, B
        A: mmap(buf, anon, private, rw)
        B: mmap(buf, anon, private, rw)
        ksmd: ksm_merge_zero(A.buf) as z
        ksmd: ksm_merge(A.buf, B.buf) as k
        assert true
    """)
    number, why = plan.ksm_zero_problem(sc) or (0, "")
    assert number == 4 and "use_zero_pages is on for this run" in why


def test_ksmd_is_paused_between_its_steps_in_our_guest_and_the_knobs_are_put_back(monkeypatch):
    """Regression (a DISAGREE at versions/ksm-merges-ro-clean-page-with-gup-reference on 6.12): the
    guest's ksmd ran continuously and merged the two pages as soon as they were written, before the
    swap-out and the GUP the scenario puts before its ksm_merge."""
    from cowdsl.native import translate as T

    knobs = {"run": "1", "use_zero_pages": "0"}
    writes: list[tuple[str, str]] = []

    def knob(name, value=None):
        if value is not None:
            writes.append((name, value))
            knobs[name] = value
        return knobs[name]

    monkeypatch.setattr(T, "_ksm_knob", knob)
    monkeypatch.setattr(T, "probe", lambda: SimpleNamespace(ksm_zero=None))  # as in our guest
    sc = load("""
        process A, B
        A: mmap(buf, anon, private, rw)
        B: mmap(buf, anon, private, rw)
        ksmd: ksm_merge_zero(A.buf) as z
        assert true
    """)
    with T.ksmd_knobs(sc):
        assert knobs == {"run": "0", "use_zero_pages": "1"}  # paused; zero pages for this run
    assert knobs == {"run": "1", "use_zero_pages": "0"} and writes[0] == ("run", "0")
    writes.clear()
    monkeypatch.setattr(T, "probe", lambda: SimpleNamespace(ksm_zero="not our guest"))  # a host
    with T.ksmd_knobs(sc):
        pass
    assert writes == []  # never a host's knob


def test_a_write_reference_is_refused_when_an_assertion_names_another_word():
    from cowdsl.native import plan

    sc = load(SCENARIO.format(step="A: gup(buf, write) as io\nio: dma_write(9)").replace(
        "assert A.buf == 1", "assert A.buf+8 == 0"))
    host = SimpleNamespace(**{**vars(HOST), "kernel": "5.10.0-32-cloud-amd64", "odirect": None})
    assert "not one word" in (plan.problem(sc, host, LIMITS) or (0, ""))[1]


def test_refs_lists_the_terms_of_an_assertion_left_to_right():
    from cowdsl import scenario as S

    sc = load("process A\nA: mmap(buf, anon, private, rw, pages=2)\nA: read(buf) as v\n"
              "assert not (A.buf[1]+8 == v) and failed(v) or A.buf is A.buf[1]\n")
    got = list(S.refs(sc.assertions[0].expr))
    assert [type(r).__name__ for r in got] == ["PageAt", "Bound", "StepRef", "PageAt", "PageAt"]
    assert got[0].addr.offset == 8 and got[0].addr.index == 1


def test_a_ksm_knob_is_never_written_outside_our_guest_whoever_asks():
    from cowdsl.native import translate as T

    with pytest.raises(T.Unrunnable, match="machine-wide; only our guest sets it"):
        T._ksm_knob("run", "0")  # this machine's command line has no guest mark
