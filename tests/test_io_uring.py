"""io_uring_register: the declaration, the mechanism (GUP's long-term write pin, then
io_uring's own VMA check before 6.5), the version boundary and the docs example.
The rule's two outcomes: test_rules.py; gup_longterm.c's units: scenarios/selftests."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_semantics import page, run_src

from cowdsl.kernel import timeline
from cowdsl.kernel.spec import resolve
from cowdsl.kernel.version import v
from cowdsl.load import load_text
from cowdsl.ops import OPS
from cowdsl.run import run

DOCS = Path(__file__).resolve().parent.parent / "docs" / "language.md"


def test_the_op_binds_a_write_pin_under_mmap_read_lock():
    op = OPS["io_uring_register"]
    assert op.binds == "pin" and op.grabs == "pin"
    assert op.signature() == "io_uring_register(addr, write) as PIN"
    assert [ms.lock.waits for ms in op.program.steps] == ["read"]


def test_the_boundary_is_a_timeline_change_with_its_commit():
    c = next(c for c in timeline.TIMELINE if c.key == "io-uring-vma-check")
    assert (c.commit, c.mainline, c.sets) == ("34ed8d0dcd69", v("6.5-rc1"), (("io_uring_vma_check", "off"),))
    assert dict(resolve("6.4").options)["io_uring_vma_check"] == "on"
    assert dict(resolve("6.5").options)["io_uring_vma_check"] == "off"
    assert dict(resolve("5.10.198").options)["io_uring_vma_check"] == "on"


def _register(mapping: str, decl: str = "", backend: str = "6.18") -> tuple[bool, str | None]:
    r = run_src(f"""
        process A
        {decl}
        A: mmap({mapping})
        A: write(buf, 1)
        A: io_uring_register(buf) as r
    """, backend=backend)
    res = r.final.result("r")
    return res.ok, res.error


@pytest.mark.parametrize("mapping, decl", [
    ("buf, anon, private, rw", ""),
    ("buf, anon, shared, rw", ""),                          # shared anonymous memory is shmem
    ("buf, anon, private, rw, hugetlb", ""),                # MAP_HUGETLB: a hugetlbfs file
    ("buf, shared, rw, file=F", "file F = [0] on memfd"),
    ("buf, private, rw, file=F", "file F = [0] on memfd"),  # vma_is_shmem: private too
    ("buf, private, rw, file=F", "file F = [0] on hugetlbfs"),
])
@pytest.mark.parametrize("backend", ["5.10.198", "6.4", "6.18"])
def test_anon_shmem_and_hugetlbfs_buffers_register_in_every_version(mapping, decl, backend):
    assert _register(mapping, decl, backend) == (True, None)


@pytest.mark.parametrize("backend, errno", [("5.10.198", "EOPNOTSUPP"), ("6.4", "EOPNOTSUPP"), ("6.5", "EFAULT")])
def test_a_shared_disk_file_buffer_fails_first_in_io_uring_then_in_gup(backend, errno):
    assert _register("buf, shared, rw, file=F", "file F = [0]", backend) == (False, errno)


def test_the_what_if_option_keeps_the_check_on_a_later_kernel():
    assert _register("buf, private, rw, file=F", "file F = [0]", "anon-exclusive:io_uring_vma_check=on") \
        == (False, "EOPNOTSUPP")


def test_a_refused_buffer_leaves_no_pin_and_no_handle_to_dma_through():
    r = run_src("""
        process A
        file F = [0]
        A: mmap(buf, shared, rw, file=F)
        A: write(buf, 1)
        A: io_uring_register(buf) as r
        r: dma_write(5) as d
    """, backend="6.4")
    assert page(r.final, "A", "buf").pincount == 0
    assert r.final.result("d").error == "EFAULT" and r.final.file_page("F", 0) is not None
    texts = [str(e) for rec in r.steps for e in rec.events]
    assert any("neither shmem nor hugetlbfs → unpin_user_pages, -EOPNOTSUPP" in t for t in texts)


def test_the_docs_example_fails_on_6_4_and_passes_on_6_5():
    text = DOCS.read_text(encoding="utf-8")
    src = text[text.index("### io_uring fixed buffers"):].split("```")[1].split("\n", 1)[1]
    sc = load_text(src, "x.cow")
    assert [run(sc, ver).verdict for ver in ("6.4", "6.5")] == ["fail", "pass"]
    assert all(run(sc, ver).ok for ver in ("6.4", "6.5"))  # as its expect lines say
