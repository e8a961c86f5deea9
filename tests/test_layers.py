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

in_progress = pytest.mark.xfail(strict=False, reason="structure issue in progress")

# Modules (a file, or a package's folder ending in /) allowed to import other cowdsl
# modules inside functions, and why.
LAZY_ALLOWED = {
    "cowdsl/cli/": "each subcommand imports what it runs, so `cowdsl --version` and `cowdsl check` start fast",
    "cowdsl/pytest_plugin.py": "pytest loads the plugin in every session where cowdsl is installed; "
    "it imports the interpreter only when it collects .cow files",
}


@in_progress
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


@in_progress
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
