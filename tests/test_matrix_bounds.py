"""The era matrix honours the bounds per cell, and its width is bounded; KSM
never merges hugetlb pages."""

from __future__ import annotations

import pytest
from examples import pinners_racing_fork

from cowdsl import matrix
from cowdsl.cli import main
from cowdsl.load import load_text
from cowdsl.run import run


def test_backend_all_honours_max_states_per_cell(tmp_path, capsys):
    # Regression: --backend all explored every cell with the default bounds.
    f = tmp_path / "big.cow"
    f.write_text(pinners_racing_fork(3, 3))
    code = main(["run", "--backend", "all", "--max-states", "50", str(f)])
    out = capsys.readouterr().out
    assert "unknown" in out and code == 3


def test_matrix_cells_get_the_bounds():
    mx = matrix.build([load_text(pinners_racing_fork(3, 3), "big.cow")], ["early-cow"], max_states=50)
    (r,) = mx.results.values()
    assert r.partial == "--max-states 50" and r.verdict == "unknown"


def test_the_number_of_columns_is_bounded():
    lines = "\n".join(f"expect pass on 5.10.{n}" for n in range(1, 2 * matrix.MAX_COLUMNS))
    sc = load_text("process A\nA: mmap(buf, anon, private, rw)\nassert true\n" + lines + "\n", "wide.cow")
    with pytest.raises(matrix.TooManyColumns):
        matrix.build([sc], [f"5.10.{n}" for n in range(1, 2 * matrix.MAX_COLUMNS)])


def test_ksm_never_merges_hugetlb_pages():
    # Regression: the model let KSM merge hugetlb pages; ksmd never scans VM_HUGETLB.
    r = run(load_text("""
process A, B
A: mmap(buf, anon, private, rw, hugetlb)
B: mmap(buf, anon, private, rw, hugetlb)
A: write(buf, 1)
B: write(buf, 1)
ksmd: ksm_merge(A.buf, B.buf) as k
assert failed(k)
assert not ksm(A.buf)
""", "h.cow"))
    assert [c.holds for c in r.checks] == [True, True]
