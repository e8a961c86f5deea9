"""odirect_read / odirect_write: the declaration, the mechanism, the version boundary
(a7e689dd1c06, 6.5) and Jann Horn's short-term GUP question (seed 000)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers_semantics import page, run_src

from cowdsl import ops
from cowdsl.errors import CowError
from cowdsl.kernel import timeline
from cowdsl.kernel.spec import resolve
from cowdsl.kernel.version import v
from cowdsl.load import load, load_text
from cowdsl.ops import Lock
from cowdsl.run import run
from cowdsl.semantics import invariants as inv

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios/direct-io/odirect-read-in-flight-fork.cow"


@pytest.fixture(autouse=True)
def debug_invariants(monkeypatch):
    monkeypatch.setenv(inv.ENV, "1")  # every micro-step keeps refcount/pincount bookkeeping


def test_declared_with_three_micro_steps_and_only_the_gup_takes_a_lock():
    for name in ("odirect_read", "odirect_write"):
        op = ops.OPS[name]
        assert [s.label for s in op.program.steps] == ["gup", "io", "complete"]
        assert [s.lock for s in op.program.steps] == [Lock.MMAP_READ, Lock.NONE, Lock.NONE]
        assert [s.holds.kind if s.holds else None for s in op.program.steps] == [None, "pin", "pin"]
        assert op.signature() == f"{name}(addr, file=FILE)"


def test_timeline_change_sets_foll_pin_from_6_5_with_no_stable_backport():
    c = next(c for c in timeline.TIMELINE if c.key == "odirect-pin")
    assert c.commit == "a7e689dd1c06" and c.modelled and c.stable == ()
    assert c.in_version(v("6.5")) and not c.in_version(v("6.4.16")) and not c.in_version(v("6.1.158"))
    assert timeline.settings(v("6.4"))["odirect_pin"] == "get"
    assert timeline.settings(v("6.5"))["odirect_pin"] == "pin"
    assert dict(resolve("6.1").options)["odirect_pin"] == "get"
    assert dict(resolve("6.18").options)["odirect_pin"] == "pin"


def test_odirect_write_reads_the_user_page_into_the_file_with_a_read_only_gup():
    r = run_src("""
        process A
        file F = [0]
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        A: odirect_write(buf, file=F)
    """, backend="6.6")
    assert r.final.pages[r.final.file_page("F", 0)].data == 5
    texts = [str(e) for rec in r.steps for e in rec.events]
    assert any("FOLL_PIN on" in t for t in texts)  # no FOLL_WRITE: the device only reads the page
    assert page(r.final, "A", "buf").refcount == 1


def test_a_read_only_odirect_write_pin_unshares_a_cow_shared_page_from_5_19():
    """gup_must_unshare (a7f226604170) applies to the bio's FOLL_PIN like any R/O pin."""
    src = """
        process A
        file F = [0]
        A: mmap(buf, anon, private, rw)
        A: write(buf, 5)
        A: fork() as B
        A: odirect_write(buf, file=F)
    """
    r = run_src(src, backend="6.6")
    assert page(r.final, "A", "buf").anon_exclusive  # unshared: A got its own copy
    assert r.final.pages[r.final.file_page("F", 0)].data == 5
    r = run_src(src, backend="6.1")  # FOLL_GET: no unshare, the shared page is read
    assert not page(r.final, "A", "buf").anon_exclusive


def test_odirect_read_into_a_read_only_buffer_fails_with_efault():
    """The bio's GUP asks FOLL_WRITE: check_vma_flags refuses a !VM_WRITE vma."""
    r = run_src("""
        process A
        file F = [3]
        A: mmap(buf, anon, private, ro)
        A: odirect_read(buf, file=F) as io
        A: odirect_write(buf, file=F) as out
        assert failed(io)
        assert not failed(out)
        assert F[0] == 0
    """, backend="6.6")
    assert r.verdict == "pass", [(c.assertion.text, c.holds) for c in r.checks]


def test_file_is_required_with_a_clear_error():
    with pytest.raises(CowError) as err:
        load_text(textwrap.dedent("""\
            process A
            A: mmap(buf, anon, private, rw)
            A: odirect_read(buf)
        """), "t.cow")
    text = str(err.value)
    assert "t.cow:3:" in text and "needs the file it reads or writes" in text
    assert "odirect_read(buf, file=F)" in text and "^" in text


@pytest.mark.parametrize("version, verdict", [("5.10", "fail"), ("6.1", "fail"), ("6.4", "fail"),
                                              ("6.5", "pass"), ("6.18", "pass")])
def test_short_term_gup_racing_fork_lands_in_the_child_until_6_5(version, verdict):
    s = load(SCENARIO)
    r = run(s, version)
    assert r.verdict == verdict, [(c.assertion.text, c.holds) for c in r.checks]


def test_the_losing_interleaving_gups_before_fork_and_transfers_after_the_cow():
    s = load(SCENARIO)
    r = run(s, "6.4")
    bad = next(c for c in r.checks if not c.holds)
    texts = [e.text for tr in bad.witness for e in tr.events]
    gup = next(i for i, t in enumerate(texts) if "the bio holds" in t and "FOLL_GET" in t)
    fork = next(i for i, t in enumerate(texts) if "fork: A → B" in t)
    dma = next(i for i, t in enumerate(texts) if "DMA: the device writes 9" in t)
    cow = next(i for i, t in enumerate(texts) if "wp_page_copy" in t or "COW copies" in t)
    assert gup < fork < cow < dma
