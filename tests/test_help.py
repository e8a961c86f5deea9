"""Help at the prompt: one op, one backend spec, one rule, a template."""

from __future__ import annotations

from cowdsl.cli import main
from cowdsl.load import load


def test_ops_describes_one_op_with_its_micro_steps(capsys):
    # Regression: `cowdsl ops pin` was a usage error.
    assert main(["ops", "pin"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pin(addr, read|write, [longterm], [fast]) as PIN")
    assert "micro-steps (gup_fast, with `fast`):" in out and "grab     lock none" in out


def test_ops_describes_a_fact_and_suggests_on_a_typo(capsys):
    assert main(["ops", "maybe_pinned"]) == 0
    assert "page_maybe_dma_pinned" in capsys.readouterr().out
    assert main(["ops", "pinn"]) == 2
    assert "did you mean `pin`?" in capsys.readouterr().err


def test_backends_describes_one_version(capsys):
    assert main(["backends", "5.10.198"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("5.10.198: 5.10.198 (early-cow:")
    assert "57efa1fe5957 mm/gup: prevent gup_fast from racing with COW during fork (5.11-rc1; 5.10.4)" in out
    not_in = out[out.index("not in 5.10.198:"):]
    assert "6c287605fd56" in not_in and "57efa1fe5957" not in not_in
    assert main(["backends", "erly-cow"]) == 2


def test_explain_a_rule_per_era(capsys):
    assert main(["explain", "has_write_protect_seq"]) == 0
    out = capsys.readouterr().out
    assert "57efa1fe5957" in out and "early-cow (5.9–5.17):" in out
    assert main(["explain", "fork_copy_an"]) == 2
    assert "did you mean `fork_copy_anon`?" in capsys.readouterr().err


def test_new_writes_a_template_that_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["new", "my-question"]) == 0
    sc = load(tmp_path / "my-question.cow")
    assert sc.name == "my-question" and sc.expectations
    assert main(["run", "my-question.cow"]) == 0
    assert main(["new", "my-question"]) == 2  # never over an existing file
