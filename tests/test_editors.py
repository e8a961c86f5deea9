"""The editor grammars (editors/) stay in step with the op registry.

- the generated files are what editors/generate.py makes from the registry now
  (a new op, flag or keyword makes this fail until they are regenerated);
- every registry word is in each grammar's word lists, and the TextMate rules
  (checked here with Python's re, a near subset of Oniguruma) give each fixture
  entry its scope;
- when vim and emacs are installed, their own tests run too (editors/check.sh,
  which .ci/run calls, installs them and runs vscode-tmgrammar-test as well).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cowdsl import ops

ROOT = Path(__file__).resolve().parent.parent
EDITORS = ROOT / "editors"

pytestmark = pytest.mark.skipif(not (EDITORS / "generate.py").is_file(), reason="editors/ is not in this tree")


def _generate():
    spec = importlib.util.spec_from_file_location("editors_generate", EDITORS / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def registry_words() -> dict[str, tuple[str, ...]]:
    return {
        "keyword": tuple(ops.keywords()),
        "op": tuple(ops.op_names()),
        "flag": tuple(ops.flag_names()),
        "kwarg": tuple(ops.keyword_arg_names()),
        "fact": tuple(ops.fact_names()),
        "builtin-actor": tuple(ops.BUILTIN_ACTORS),
    }


def test_generated_files_are_up_to_date():
    stale = _generate().stale()
    assert not stale, f"stale generated files {stale}: run python editors/generate.py"


def test_every_registry_word_is_in_every_grammar():
    vim = (EDITORS / "vim/syntax/cow.vim").read_text()
    emacs = (EDITORS / "emacs/cow-mode.el").read_text()
    tm = (EDITORS / "vscode/syntaxes/cow.tmLanguage.json").read_text()
    fixture = (EDITORS / "tests/words.tsv").read_text()
    for kind, words in registry_words().items():
        for w in words:
            assert f"'{w}'" in vim, f"vim: {kind} `{w}`"
            assert f'"{w}"' in emacs, f"emacs: {kind} `{w}`"
            assert re.search(rf"[(:|]{re.escape(w)}[|)]", tm), f"textmate: {kind} `{w}`"
            assert f"\t{w}\n" in fixture, f"fixture: {kind} `{w}`"


def _tm_scopes_at(grammar: dict, line: str) -> list[set[str]]:
    """A small TextMate interpreter for this grammar's rules (match, captures,
    begin/end on one line): the scopes of each character of one line."""
    repo = grammar["repository"]
    scopes: list[set[str]] = [set() for _ in line]

    def rules(patterns):
        for p in patterns:
            if "include" in p:
                yield from rules([repo[p["include"][1:]]])
            elif "patterns" in p and "match" not in p and "begin" not in p:
                yield from rules(p["patterns"])
            else:
                yield p

    def paint(m, rule):
        if "name" in rule:
            for i in range(m.start(), m.end()):
                scopes[i].add(rule["name"])
        for k, cap in rule.get("captures", rule.get("beginCaptures", {})).items():
            for i in range(m.start(int(k)), m.end(int(k))):
                scopes[i].add(cap["name"])

    def scan(pos: int, end: int, patterns) -> int:
        while pos < end:
            best = None
            for rule in rules(patterns):
                rx = re.compile(rule.get("match") or rule["begin"], re.M)
                m = rx.search(line, pos, end)
                if m and (best is None or m.start() < best[0].start()):
                    best = (m, rule)
            if best is None or best[0].end() == best[0].start() == end:
                return end
            m, rule = best
            paint(m, rule)
            pos = max(m.end(), m.start() + 1) if "match" in rule else m.end()
            if "begin" in rule:
                e = re.compile(rule["end"]).search(line, pos)
                stop = e.start() if e else end
                pos = scan(pos, stop, rule.get("patterns", []))
        return pos

    scan(0, len(line), grammar["patterns"])
    return scopes


def test_textmate_rules_give_every_fixture_entry_its_scope():
    gen = _generate()
    grammar = json.loads((EDITORS / "vscode/syntaxes/cow.tmLanguage.json").read_text())
    lines = (EDITORS / "tests/words.cow").read_text().split("\n")
    own = set(gen.SCOPES.values())
    cache: dict[int, list[set[str]]] = {}
    for row in (EDITORS / "tests/words.tsv").read_text().splitlines():
        if row.startswith("#"):
            continue
        n, col, length, cat, word = row.split("\t")
        n, col, length = int(n), int(col), int(length)
        at = cache.setdefault(n, _tm_scopes_at(grammar, lines[n - 1]))
        for i in range(col - 1, col - 1 + length):
            if cat == "plain":
                assert not (at[i] & own), f"words.cow:{n}:{i + 1} `{word}` should be plain, has {at[i]}"
            else:
                assert gen.SCOPES[cat] in at[i], f"words.cow:{n}:{i + 1} `{word}` ({cat}) has {at[i]}"


def test_vscode_extension_manifest():
    pkg = json.loads((EDITORS / "vscode/package.json").read_text())
    grammar = json.loads((EDITORS / "vscode/syntaxes/cow.tmLanguage.json").read_text())
    (lang,) = pkg["contributes"]["languages"]
    (gram,) = pkg["contributes"]["grammars"]
    assert lang["id"] == gram["language"] == "cow" and ".cow" in lang["extensions"]
    assert gram["scopeName"] == grammar["scopeName"] == "source.cow"
    assert (EDITORS / "vscode" / gram["path"]).is_file()
    conf = json.loads((EDITORS / "vscode" / lang["configuration"]).read_text())
    assert conf["comments"]["lineComment"] == "#"
    assert pkg["publisher"] and pkg["engines"]["vscode"]
    ignored = (EDITORS / "vscode/.vscodeignore").read_text()
    assert "tests/**" in ignored and "*.vsix" in ignored
    assert "*.vsix" in (ROOT / ".gitignore").read_text()


def test_readme_covers_every_editor():
    text = (EDITORS / "README.md").read_text()
    for word in ("Vim", "Emacs", "VS Code", "Pygments", "check.sh", "generate.py"):
        assert word in text


def _vim_ok() -> bool:
    exe = shutil.which("vim")
    if not exe:
        return False
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return "+syntax" in out and "+eval" in out


@pytest.mark.skipif(not _vim_ok(), reason="vim (with +syntax) is not installed; editors/check.sh installs it")
def test_vim_syntax_headless():
    p = subprocess.run(["vim", "-Nu", "NONE", "-es", "-S", "editors/vim/test/run.vim", "-c", "cquit"],
                       cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "checks passed" in p.stdout, p.stdout + p.stderr


@pytest.mark.skipif(shutil.which("emacs") is None, reason="emacs is not installed; editors/check.sh installs it")
def test_emacs_ert():
    p = subprocess.run(["emacs", "--batch", "-Q", "-L", "editors/emacs", "-l", "editors/emacs/test/cow-mode-test.el",
                        "-f", "ert-run-tests-batch-and-exit"],
                       cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
