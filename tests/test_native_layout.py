"""The native backend's structure: every op is translated or refused with a reason,
dispatch goes through explicit tables, and the package imports nothing above it.

These need no kernel support: they read the registry, the tables and the source.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from cowdsl import ops
from cowdsl.native import par, plan, translate, worker
from cowdsl.scenario import Step

ROOT = Path(__file__).resolve().parent.parent / "cowdsl"
NATIVE = sorted((ROOT / "native").glob("*.py"))
# what sits above `native` (cli | report, pytest_plugin, fuzz | crosscheck, diff, matrix | run, native)
ABOVE = ("cowdsl.run", "cowdsl.crosscheck", "cowdsl.report", "cowdsl.cli", "cowdsl.diff", "cowdsl.matrix",
         "cowdsl.pytest_plugin", "cowdsl.fuzz")


def test_every_op_is_translated_or_refused_with_a_reason():
    names = set(ops.op_names())
    assert names == set(ops.OPS)
    translated, refused = set(translate.OPS), set(plan.REFUSED)
    assert not translated & refused, "an op is both translated and refused"
    assert names - translated - refused == set(), "ops neither translated nor refused by native/plan.py"
    assert translated | refused <= names, "a table names an op the registry does not have"
    for op, reason in plan.REFUSED.items():
        assert reason.format(text=f"A: {op}(...)", op=op).startswith("unsupported on native: ")


@pytest.mark.parametrize("op", sorted(plan.REFUSED))
def test_a_refused_op_skips_the_scenario_with_its_reason(op):
    st = Step(number=1, actor="A", task="A", op=op, text=f"A: {op}(buf)")
    why = plan.step_problem(st, SimpleNamespace(swap=True))
    assert why == plan.REFUSED[op].format(text=f"A: {op}(buf)", op=op)


def test_the_translations_talk_to_commands_the_worker_has():
    # swapout/swapin are done from the controller (process_madvise), not by a worker, and so is
    # ksm_merge and ksm_merge_zero (the controller watches pagemap while ksmd merges)
    assert set(translate.OPS) - par.CONTROLLER_OPS <= set(worker.COMMANDS)
    assert {"ping", "sleep"} <= set(worker.COMMANDS)


def test_an_unknown_worker_command_is_an_error_reply_not_a_crash():
    w = worker.Worker.__new__(worker.Worker)
    reply = worker.Worker.execute(w, {"op": "frobnicate"}, [])
    assert reply is not None and reply["ok"] is False and reply["error"] == "EINVAL"


def _imports(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            for a in node.names:
                yield f"{node.module}.{a.name}"


@pytest.mark.parametrize("path", NATIVE, ids=lambda p: p.name)
def test_native_imports_nothing_above_it(path):
    bad = sorted({name for name in _imports(path) if any(name == m or name.startswith(m + ".") for m in ABOVE)})
    assert bad == [], f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", [*NATIVE, ROOT / "crosscheck.py"], ids=lambda p: p.name)
def test_no_import_inside_a_function(path):
    tree = ast.parse(path.read_text(), str(path))
    inner = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            inner += [f"line {n.lineno}" for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert inner == [], f"{path.name}: imports inside functions at {inner}"


def test_no_getattr_dispatch():
    for path in NATIVE:
        text = path.read_text()
        assert 'getattr(self, "op_"' not in text and 'getattr(self, "do_"' not in text, path.name
