"""cowdsl lsp: the language server over stdio (pygls's client in a subprocess), and
the analysis behind it."""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if os.environ.get("COWDSL_REQUIRE_LSP") == "1":  # CI: the language server's tests must run, not skip
    import pygls  # noqa: F401
else:
    pytest.importorskip("pygls", reason="the language server needs pygls (pip install 'pygls>=2,<3')")

from lsprotocol import types as T  # noqa: E402
from pygls.lsp.client import BaseLanguageClient  # noqa: E402

from cowdsl import fmt  # noqa: E402
from cowdsl.load import load_text  # noqa: E402
from cowdsl.lsp import analysis as A  # noqa: E402
from cowdsl.lsp.index import build  # noqa: E402

TYPO = """\
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
A: pin(buf, write, longtem) as mr
A: fork() as B
A: write(buf, 2)
assert A.buf == 2
expect pass on anon-exclusive
"""

GOOD = """\
scenario "pin across fork"
process A
thread T of A
A: mmap(buf, anon, private, rw, pages=2)
A: write(buf, 1)
A: pin(buf, write, longterm) as mr      # the device's pin
par {
  T: gup(buf[1], read, fast) as r
  A: fork() as B
}
B: write(buf, 3)
mr: dma_write(4)

assert mr is A.buf
always: B.buf == 3 and refcount(A.buf[1]) >= 2
expect pass on anon-exclusive, 5.10.4
"""


def pos_of(text: str, needle: str, nth: int = 0, offset: int = 0) -> T.Position:
    """The position of the ``nth`` occurrence of ``needle`` (plus ``offset`` characters)."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    at += offset
    line = text.count("\n", 0, at)
    return T.Position(line=line, character=at - (text.rfind("\n", 0, at) + 1))


class Session:
    """A cowdsl lsp process and pygls's client, talking over the process's stdin/stdout."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.client = BaseLanguageClient("cowdsl-test", "1")
        self.diagnostics: dict[str, asyncio.Queue[list[T.Diagnostic]]] = {}

        @self.client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(params: T.PublishDiagnosticsParams) -> None:
            self.queue(params.uri).put_nowait(params.diagnostics)

    def queue(self, uri: str) -> asyncio.Queue[list[T.Diagnostic]]:
        return self.diagnostics.setdefault(uri, asyncio.Queue())

    async def start(self) -> T.InitializeResult:
        await self.client.start_io(sys.executable, "-m", "cowdsl.lsp.server", "--stdio")
        result = await self.client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities(), process_id=None))
        self.client.initialized(T.InitializedParams())
        return result

    def open(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text)
        uri = path.as_uri()
        self.client.text_document_did_open(T.DidOpenTextDocumentParams(text_document=T.TextDocumentItem(uri=uri, language_id="cow", version=1, text=text)))
        return uri

    async def next_diagnostics(self, uri: str) -> list[T.Diagnostic]:
        return list(await asyncio.wait_for(self.queue(uri).get(), 20))

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


def run(tmp: Path, body: Callable[[Session], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        s = Session(tmp)
        caps = await s.start()
        assert caps.server_info is not None and caps.server_info.name == "cowdsl"
        try:
            return await asyncio.wait_for(body(s), 60)
        finally:
            await s.stop()

    return asyncio.run(go())


def rng(l1: int, c1: int, l2: int, c2: int) -> T.Range:
    return T.Range(start=T.Position(line=l1, character=c1), end=T.Position(line=l2, character=c2))


def doc(uri: str) -> T.TextDocumentIdentifier:
    return T.TextDocumentIdentifier(uri=uri)


# --- over stdio ----------------------------------------------------------------------------------


def test_typo_gives_diagnostic_hover_and_completion(tmp_path: Path) -> None:
    async def body(s: Session) -> None:
        uri = s.open("typo.cow", TYPO)
        diags = await s.next_diagnostics(uri)
        assert len(diags) == 1
        d = diags[0]
        assert d.message.startswith("unknown flag `longtem` for `pin`")
        assert "expected: one of `read`, `write`, `longterm`, `fast`" in d.message
        assert "hint: did you mean `longterm`?" in d.message
        assert d.range == rng(3, 19, 3, 26)
        assert d.severity == T.DiagnosticSeverity.Error and d.source == "cowdsl"

        hover = await s.client.text_document_hover_async(T.HoverParams(text_document=doc(uri), position=pos_of(TYPO, "pin(", offset=1)))
        assert hover is not None and isinstance(hover.contents, T.MarkupContent)
        assert "pin(addr, read|write, [longterm], [fast]) as PIN" in hover.contents.value
        assert "pin_user_pages" in hover.contents.value  # the kernel function
        assert hover.range == rng(3, 3, 3, 6)

        got = await s.client.text_document_completion_async(
            T.CompletionParams(text_document=doc(uri), position=pos_of(TYPO, "longtem", offset=len("longtem"))))
        assert isinstance(got, T.CompletionList)
        labels = {i.label for i in got.items}
        assert {"longterm", "fast"} <= labels
        assert "buf" in labels  # a mapping of A
        assert "write" not in labels  # the access flag is given already

        # fixed as you type: the diagnostic goes away
        s.client.text_document_did_change(T.DidChangeTextDocumentParams(
            text_document=T.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[T.TextDocumentContentChangePartial(range=d.range, text="longterm")]))
        assert await s.next_diagnostics(uri) == []

    run(tmp_path, body)


def test_definition_references_and_rename(tmp_path: Path) -> None:
    async def body(s: Session) -> None:
        uri = s.open("good.cow", GOOD)
        assert await s.next_diagnostics(uri) == []
        use = pos_of(GOOD, "mr is", offset=1)
        defs = await s.client.text_document_definition_async(T.DefinitionParams(text_document=doc(uri), position=use))
        assert isinstance(defs, list) and len(defs) == 1
        assert defs[0].range == T.Range(start=pos_of(GOOD, "as mr", offset=3), end=pos_of(GOOD, "as mr", offset=5))

        refs = await s.client.text_document_references_async(
            T.ReferenceParams(text_document=doc(uri), position=use, context=T.ReferenceContext(include_declaration=True)))
        assert refs is not None
        assert sorted((r.range.start.line, r.range.start.character) for r in refs) == [(5, 32), (11, 0), (13, 7)]

        # B: made by `fork() as B`, used as an actor and as A.buf's owner
        b_defs = await s.client.text_document_definition_async(T.DefinitionParams(text_document=doc(uri), position=pos_of(GOOD, "B: write")))
        assert isinstance(b_defs, list) and b_defs[0].range.start == pos_of(GOOD, "as B", offset=3)

        edit = await s.client.text_document_rename_async(T.RenameParams(text_document=doc(uri), position=use, new_name="pin0"))
        assert edit is not None and edit.changes is not None
        assert len(edit.changes[uri]) == 3 and {e.new_text for e in edit.changes[uri]} == {"pin0"}

    run(tmp_path, body)


def test_code_action_replaces_the_word(tmp_path: Path) -> None:
    async def body(s: Session) -> None:
        uri = s.open("typo.cow", TYPO)
        (d,) = await s.next_diagnostics(uri)
        actions = await s.client.text_document_code_action_async(
            T.CodeActionParams(text_document=doc(uri), range=d.range, context=T.CodeActionContext(diagnostics=[d])))
        assert actions is not None and len(actions) == 1
        a = actions[0]
        assert isinstance(a, T.CodeAction)
        assert a.title == "Replace `longtem` with `longterm`" and a.kind == T.CodeActionKind.QuickFix
        assert a.edit is not None and a.edit.changes is not None
        assert list(a.edit.changes[uri]) == [T.TextEdit(range=d.range, new_text="longterm")]

    run(tmp_path, body)


def test_document_symbols(tmp_path: Path) -> None:
    async def body(s: Session) -> None:
        uri = s.open("good.cow", GOOD)
        syms = await s.client.text_document_document_symbol_async(T.DocumentSymbolParams(text_document=doc(uri)))
        assert syms is not None
        by_kind: dict[T.SymbolKind, list[str]] = {}
        for sym in syms:
            assert isinstance(sym, T.DocumentSymbol)
            by_kind.setdefault(sym.kind, []).append(sym.name)
        assert by_kind[T.SymbolKind.Function] == ["A: mmap(buf, anon, private, rw, pages=2)", "A: write(buf, 1)",
                                                  "A: pin(buf, write, longterm) as mr", "B: write(buf, 3)",
                                                  "mr: dma_write(4)"]
        assert by_kind[T.SymbolKind.Boolean] == ["assert mr is A.buf", "always: B.buf == 3 and refcount(A.buf[1]) >= 2"]
        par = next(sym for sym in syms if isinstance(sym, T.DocumentSymbol) and sym.kind == T.SymbolKind.Namespace)
        assert par.range.start.line == 6 and par.range.end.line == 9
        assert [c.name for c in par.children or []] == ["T: gup(buf[1], read, fast) as r", "A: fork() as B"]

    run(tmp_path, body)


def test_formatting(tmp_path: Path) -> None:
    messy = "process   A\nA:mmap(buf,anon)\npar{\nA: write(buf,1)\n}\nassert A.buf==1 # done\n"

    async def body(s: Session) -> None:
        uri = s.open("messy.cow", messy)
        opts = T.FormattingOptions(tab_size=2, insert_spaces=True)
        edits = await s.client.text_document_formatting_async(T.DocumentFormattingParams(text_document=doc(uri), options=opts))
        assert edits is not None and len(edits) == 1
        assert edits[0].new_text == fmt.format_text(messy)
        assert edits[0].new_text.startswith("process A\nA: mmap(buf, anon)\npar {\n  A: write(buf, 1)\n}\n")
        assert edits[0].range == rng(0, 0, 6, 0)

    run(tmp_path, body)


def test_utf16_positions(tmp_path: Path) -> None:
    """Columns after a character outside the BMP are counted in UTF-16 code units (two for the cow)."""
    text = 'ref "\U0001F404\x01"\nprocess A\nA: mmap(buf)\nassert alive(A)\n'

    async def body(s: Session) -> None:
        uri = s.open("u.cow", text)
        (d,) = await s.next_diagnostics(uri)
        assert d.message.startswith("control or format character U+0001")
        assert d.range == rng(0, 7, 0, 8)

    run(tmp_path, body)


def test_server_module_loads_without_pygls() -> None:
    """Start-up stays fast: importing the server (and the CLI's entry to it) does not import pygls."""
    code = "import sys, cowdsl.lsp.server, cowdsl.lsp.analysis; sys.exit('pygls' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- the analysis ------------------------------------------------------------------------------


def P(text: str, needle: str, nth: int = 0, offset: int = 0) -> A.Pos:
    p = pos_of(text, needle, nth, offset)
    return A.Pos(p.line, p.character)


def test_mapping_definition_follows_fork_and_the_actor() -> None:
    text = ("process A, C\nA: mmap(buf)\nC: mmap(buf)\nA: fork() as B\nB: write(buf, 1)\nC: write(buf, 2)\n"
            "assert B.buf == 1\n")
    a_def, c_def = P(text, "buf"), P(text, "buf", 1)
    assert [r.start for r in A.definition(text, P(text, "buf", 2))] == [a_def]  # B's buf is A's, by fork
    assert [r.start for r in A.definition(text, P(text, "buf", 3))] == [c_def]
    assert [r.start for r in A.definition(text, P(text, "B.buf", offset=2))] == [a_def]
    assert len(A.references(text, P(text, "buf"))) == 5


def test_names_survive_the_line_being_typed() -> None:
    text = "process A\nthread T of A\nA: mmap(buf)\nA: pin(buf, write) as mr\nT: \npar {\n  A: write(buf, 1)\n"
    idx = build(text)
    assert idx.blanked  # the unfinished line was left out
    ops_here = {c.label for c in A.completions(text, A.Pos(4, 3), idx)}
    assert {"pin", "fork", "mmap"} <= ops_here and "dma_read" not in ops_here
    assert [r.start.line for r in A.definition(text, P(text, "buf", 2))] == [2]
    device = {c.label for c in A.completions(text + "mr: ", A.Pos(7, 4))}
    assert device == {"dma_read", "dma_write"}


def test_completion_contexts() -> None:
    text = "process A\nfile F = [1]\npipe P\nA: mmap(buf, file=F)\nA: pin(buf, read) as mr\n"
    labels = lambda t, p: [c.label for c in A.completions(t, p)]  # noqa: E731
    start = labels(text + "\n", A.Pos(5, 0))
    assert {"process", "par", "assert", "always", "expect", "A", "mr", "reclaim", "ksmd"} <= set(start)
    assert "pin across fork" not in start  # snippets for an empty file only
    assert {"pin across fork", "GUP-fast race"} <= set(labels("", A.Pos(0, 0)))
    t = text + "A: mmap(x, file="
    assert labels(t, A.Pos(5, len("A: mmap(x, file="))) == ["F"]
    t = text + "A: vmsplice(buf, "
    assert "P" in labels(t, A.Pos(5, len("A: vmsplice(buf, ")))
    t = text + "A: unpin("
    assert labels(t, A.Pos(5, len("A: unpin("))) == ["mr"]
    t = text + "assert pinned(A."
    assert labels(t, A.Pos(5, len(t.split("\n")[-1]))) == ["buf"]
    t = text + "assert "
    got = set(labels(t, A.Pos(5, 7)))
    assert {"pinned", "refcount", "cow_copies", "failed", "A.", "mr", "F[", "not"} <= got
    t = text + "expect "
    assert labels(t, A.Pos(5, 7)) == ["pass", "fail"]
    t = text + "expect pass on early-cow, "
    got = set(labels(t, A.Pos(5, len(t.split("\n")[-1]))))
    assert {"anon-exclusive", "mapcount", "native", "5.10.4", "6.1"} <= got
    t = text + "expect pass on early-cow:pin_scope="
    assert labels(t, A.Pos(5, len(t.split("\n")[-1]))) == ["any", "longterm"]
    t = text + "A: write(buf, 1)  # pin("
    assert labels(t, A.Pos(5, len(t.split("\n")[-1]))) == []


def test_hover_on_fact_flag_backend_version_and_names() -> None:
    h = lambda p: A.hover(GOOD, p)  # noqa: E731
    fact = h(P(GOOD, "refcount("))
    assert fact is not None and "page_count()" in fact[0]
    flag = h(P(GOOD, "longterm"))
    assert flag is not None and "FOLL_LONGTERM" in flag[0]
    kw = h(P(GOOD, "pages="))
    assert kw is not None and "pages=" in kw[0]
    era = h(P(GOOD, "anon-exclusive", 0, 3))
    assert era is not None and "PageAnonExclusive" in era[0] and "6c287605fd56" in era[0]
    ver = h(P(GOOD, "5.10.4"))
    assert ver is not None and "Linux 5.10.4" in ver[0] and "early-cow" in ver[0]
    assert "57efa1fe5957" in ver[0]  # write_protect_seq: in 5.10.4 by its stable backport
    assert "feb889fb40fa" not in ver[0]  # the swap pin check came in 5.10.9
    proc = h(P(GOOD, "B: write"))
    assert proc is not None and "forked from A" in proc[0] and "A: fork() as B" in proc[0]
    mapping = h(P(GOOD, "A.buf", offset=3))
    assert mapping is not None and "mapping `buf` of A" in mapping[0]
    kw2 = h(P(GOOD, "par"))
    assert kw2 is not None and "concurrently" in kw2[0]
    opt = A.hover("process A\nassert alive(A)\nexpect fail on early-cow:wp_seq=off\n", A.Pos(2, 30))
    assert opt is not None and "write_protect_seq" in opt[0] and "57efa1fe5957" in opt[0]


def test_code_actions_for_backend_option_and_comparison() -> None:
    text = "process A\nA: mmap(buf)\nassert A.buf == 0\nexpect pass on anon-exclusiv, 5.10:wp_seq=of\n"
    titles = {a.title: a.edit for a in A.code_actions(text)}
    assert titles["Replace `anon-exclusiv` with `anon-exclusive`"].range == A.Range(A.Pos(3, 15), A.Pos(3, 28))
    assert titles["Replace `of` with `off`"] == A.Edit(A.Range(A.Pos(3, 42), A.Pos(3, 44)), "off")
    (cmp,) = A.code_actions("process A\nA: mmap(buf)\nassert A.buf = 0\n")
    assert cmp.edit.new_text == "==" and cmp.edit.range == A.Range(A.Pos(2, 13), A.Pos(2, 14))
    (stmt,) = A.code_actions("procss A\n")
    assert stmt.edit == A.Edit(A.Range(A.Pos(0, 0), A.Pos(0, 6)), "process")


def test_rename_refuses_keywords_and_taken_names() -> None:
    assert isinstance(A.rename(GOOD, P(GOOD, "mr is"), "assert"), str)
    assert isinstance(A.rename(GOOD, P(GOOD, "mr is"), "r"), str)
    assert isinstance(A.rename(GOOD, P(GOOD, "mr is"), "9x"), str)


def test_formatting_of_a_broken_file_is_none() -> None:
    assert A.formatting("process A\nA: mmap(buf\n") is None
    assert A.formatting(fmt.format_text(GOOD)) == []


def _expand(snippet: str) -> str:
    """An LSP snippet with every placeholder at its default."""
    values: dict[str, str] = {}

    def keep(m: re.Match[str]) -> str:
        values[m.group(1)] = m.group(2)
        return m.group(2)

    out = re.sub(r"\$\{(\d+):([^}]*)\}", keep, snippet)
    return re.sub(r"\$(\d+)", lambda m: values.get(m.group(1), ""), out)


@pytest.mark.parametrize("name", [s[0] for s in A.SNIPPETS])
def test_snippets_are_scenarios(name: str) -> None:
    (body,) = [b for n, _, b in A.SNIPPETS if n == name]
    load_text(_expand(body))


SCENARIO_FILES = sorted((Path(__file__).resolve().parents[1] / "scenarios").rglob("*.cow"))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SCENARIO_FILES), st.randoms(use_true_random=False))
def test_every_request_answers_on_a_file_being_typed(path: Path, rnd: random.Random) -> None:
    """A prefix of a scenario, maybe with one character changed: no request raises."""
    src = path.read_text(encoding="utf-8")
    text = src[: rnd.randint(0, len(src))]
    if text and rnd.random() < 0.5:
        i = rnd.randrange(len(text))
        text = text[:i] + rnd.choice(["(", ")", ":", ",", "x", "", "\n", ".", "=", "{", "}", '"', "#"]) + text[i + 1:]
    lines = text.split("\n")
    idx = build(text)
    A.problems(text)
    A.completions(text, A.Pos(len(lines) - 1, len(lines[-1])), idx)
    for _ in range(5):
        ln = rnd.randrange(len(lines))
        p = A.Pos(ln, rnd.randint(0, len(lines[ln])))
        A.hover(text, p, idx)
        A.definition(text, p, idx)
        A.references(text, p, True, idx)
        A.completions(text, p, idx)
    A.symbols(text, idx)
    A.code_actions(text)
    A.formatting(text)


def test_without_pygls_the_server_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from cowdsl.lsp import server

    def missing(name: str) -> None:
        raise ImportError(f"No module named '{name}'")

    monkeypatch.setattr(server.importlib, "import_module", missing)
    assert server.main([]) == 2
    assert "pip install 'pygls" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        server.main(["--version"])
    assert e.value.code == 0
