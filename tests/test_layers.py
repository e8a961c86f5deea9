"""The package's layers: the import-linter contract in pyproject.toml holds, and no
module imports another cowdsl module inside a function (the usual way to dodge an
import cycle that the layers forbid), except where a lazy import buys start-up time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cowdsl"

# Modules (a file, or a package's folder ending in /) allowed to import other cowdsl
# modules inside functions, and why.
LAZY_ALLOWED = {
    "cowdsl/cli/": "each subcommand imports what it runs, so `cowdsl --version` and `cowdsl check` start fast",
    "cowdsl/pytest_plugin.py": "pytest loads the plugin in every session where cowdsl is installed; "
    "it imports the interpreter only when it collects .cow files",
    "cowdsl/batch.py": "Batch.run imports the runner, so loading files (`cowdsl check`, the pytest plugin's "
    "collection) never imports the model: importing it is about a third of `cowdsl check`'s time",
    "cowdsl/fuzz.py": "atheris instruments only the modules first imported inside atheris_main's "
    "instrument_imports(), so nothing at the top of cowdsl.fuzz may import the front end (the parser, "
    "the checker, cowdsl.errors, cowdsl.scenario), nor the runner and the reports, which import it",
}

# What each lazy import above keeps out: (code run in a fresh interpreter, modules it must not load).
KEPT_OUT = {
    "cowdsl/batch.py": ("from cowdsl.batch import Batch; assert Batch().load(['scenarios'])",
                        ("cowdsl.run", "cowdsl.explore", "cowdsl.semantics", "cowdsl.judge", "cowdsl.native")),
    "cowdsl/fuzz.py": ("import cowdsl.fuzz",
                       ("cowdsl.errors", "cowdsl.scenario", "cowdsl.kernel", "cowdsl.syntax", "cowdsl.check",
                        "cowdsl.load", "cowdsl.limits", "lark")),
}


def test_the_layer_contracts_hold():
    pytest.importorskip("importlinter")
    p = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())",
         "--no-cache", "--no-logo"],  # reads ROOT/pyproject.toml
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """What an import statement in ``module`` imports, as dotted names (relative imports
    resolved; ``from a import b`` gives ``a.b``, a module or a name in ``a``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".")
        base = ".".join(parts[: len(parts) - node.level] + ([base] if base else []))
    return [f"{base}.{a.name}" for a in node.names]


def _function_level_imports(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    if path.name == "__init__.py":
        module += ".__init__"  # so that a relative import resolves against the package itself
    found = []
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"), rel)):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, module):
                    if target.startswith("cowdsl."):
                        found.append(f"{rel}:{node.lineno} in {fn.name}(): {target}")
    return found


def test_no_cowdsl_import_inside_a_function():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if not any(rel == allowed or allowed.endswith("/") and rel.startswith(allowed) for allowed in LAZY_ALLOWED):
            found += _function_level_imports(path)
    assert not found, "imports inside functions (move them to the top; fix the layering if that makes a cycle):\n" + \
        "\n".join(dict.fromkeys(found))


def test_the_allowlist_names_existing_files():
    for rel in LAZY_ALLOWED:
        assert (ROOT / rel).is_dir() if rel.endswith("/") else (ROOT / rel).is_file(), rel


@pytest.mark.parametrize("rel", sorted(KEPT_OUT))
def test_a_lazy_import_keeps_out_what_it_says(rel):
    assert rel in LAZY_ALLOWED
    code, kept_out = KEPT_OUT[rel]
    check = f"import sys\n{code}\nprint(sorted(m for m in sys.modules if m.startswith({kept_out!r})))"
    p = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "[]", f"{rel}: {LAZY_ALLOWED[rel]}"
