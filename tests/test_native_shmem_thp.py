"""Shmem THPs natively: `mmap(buf, shared, rw, thp)` runs where shmem_enabled gives a MADV_HUGEPAGE
shared anonymous mapping a THP, or in our guest, which switches shmem_enabled to advise for the run
and back after; never on a host whose setting is off (the knob is machine-wide)."""

from __future__ import annotations

import textwrap
from types import SimpleNamespace

import pytest

from cowdsl.load import load_text
from cowdsl.native import host, plan, shmem_thp


def load(text: str):
    return load_text(textwrap.dedent(text).strip() + "\n", "t.cow")


SHARED = """
    process A
    A: mmap(buf, shared, rw, thp)
    A: mmap(pte, shared, rw, pte_thp)
    A: mmap(two, shared, rw, thp, pages=2)
    A: write(buf, 1)
    assert A.buf == 1
"""


def test_a_shared_thp_mapping_needs_shmem_thp_and_is_one_shared_anonymous_thp():
    one, pte, two = load(SHARED).steps[:3]
    on = SimpleNamespace(swap=True, thp=None, shmem_thp=None)
    assert plan.step_problem(one, on) is None
    assert "no tmpfs or memfd file THP" in plan.step_problem(pte, on)
    assert "one shared anonymous" in plan.step_problem(two, on)
    off = SimpleNamespace(swap=True, thp=None, shmem_thp="shmem THPs are off here (shmem_enabled = never)")
    assert plan.step_problem(one, off).startswith("unsupported on this host") and "never" in plan.step_problem(one, off)


def test_a_file_thp_mapping_is_not_run_natively():
    sc = load("""
        process A
        file F = [1] on memfd
        A: mmap(buf, shared, rw, thp, file=F)
        assert A.buf == 1
    """)
    on = SimpleNamespace(swap=True, thp=None, shmem_thp=None)
    assert "no tmpfs or memfd file THP" in plan.step_problem(sc.steps[0], on)


@pytest.mark.parametrize("mode, guest, why", [
    ("always", False, None), ("advise", False, None), ("within_size", False, None), ("force", False, None),
    ("never", True, None), ("never", False, "machine-wide"), ("deny", False, "machine-wide"),
    (None, True, "no shmem THP in this kernel"),
])
def test_where_a_shmem_thp_can_be_had(monkeypatch, mode, guest, why):
    monkeypatch.setattr(host, "shmem_mode", lambda: mode)
    monkeypatch.setattr(host, "in_guest", lambda: guest)
    monkeypatch.setattr(host.os, "access", lambda path, how: guest)
    got = host._shmem_thp(None)
    assert got is None if why is None else why in got
    assert host._shmem_thp("transparent huge pages are off here") == "transparent huge pages are off here"


def _knob(tmp_path, monkeypatch, mode: str, guest: bool):
    path = tmp_path / "shmem_enabled"
    path.write_text(f"always within_size advise [{mode}] deny force\n")
    monkeypatch.setattr(shmem_thp, "SHMEM_ENABLED", str(path))
    monkeypatch.setattr(shmem_thp, "shmem_mode", lambda: path.read_text().split("[")[1].split("]")[0]
                        if "[" in path.read_text() else path.read_text().strip())
    monkeypatch.setattr(shmem_thp, "in_guest", lambda: guest)
    monkeypatch.setattr(shmem_thp, "probe", lambda: SimpleNamespace(shmem_thp=None))
    return path


def test_the_guest_switches_shmem_enabled_to_advise_for_the_run_and_back(tmp_path, monkeypatch):
    path = _knob(tmp_path, monkeypatch, "never", guest=True)
    with shmem_thp.shmem_knob(load(SHARED)):
        assert path.read_text() == "advise"
    assert path.read_text() == "never"


def test_a_run_without_a_shared_thp_leaves_the_knob_alone(tmp_path, monkeypatch):
    path = _knob(tmp_path, monkeypatch, "never", guest=True)
    with shmem_thp.shmem_knob(load("process A\nA: mmap(buf, anon, private, rw, thp)\nassert A.buf == 0\n")):
        assert "[never]" in path.read_text()


def test_the_knob_is_never_written_outside_our_guest(tmp_path, monkeypatch):
    path = _knob(tmp_path, monkeypatch, "never", guest=False)
    with pytest.raises(RuntimeError, match="machine-wide"), shmem_thp.shmem_knob(load(SHARED)):
        pass
    assert "[never]" in path.read_text()


def test_on_this_host_a_shmem_thp_runs_or_is_skipped_with_the_reason():
    from cowdsl.native import run_native, skip_reason

    if skip_reason() is not None:
        pytest.skip(skip_reason())
    sc = load("""
        process A
        A: mmap(buf, shared, rw, thp)
        A: write(buf, 1)
        A: fork() as B
        B: write(buf, 2)
        assert A.buf == 2 and mapcount(A.buf) == 2
    """)
    r = run_native(sc)
    why = host.probe().shmem_thp
    if why is not None:
        assert r.checks[0].holds is None and why in r.checks[0].values["unsupported"]
    else:
        assert r.checks[0].holds is True
