"""The LSP wiring (pygls): documents in, ``cowdsl.lsp.analysis`` answers out.

Imported only when the server starts (``cowdsl.lsp.server.main``), so nothing
else in cowdsl pays for loading pygls.  Positions are converted between the
client's encoding (UTF-16 unless it negotiates another) and character offsets.
"""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from cowdsl import __version__
from cowdsl.lsp import analysis as A
from cowdsl.lsp.index import FACT, FILE, FLAG, KWARG, MAPPING, OP, PIPE, PROCESS, THREAD

NAME = "cowdsl"

_COMPLETION_KINDS = {
    "keyword": T.CompletionItemKind.Keyword, OP: T.CompletionItemKind.Function, FLAG: T.CompletionItemKind.EnumMember,
    KWARG: T.CompletionItemKind.Property, FACT: T.CompletionItemKind.Function, "backend": T.CompletionItemKind.Module,
    "version": T.CompletionItemKind.Module, "option": T.CompletionItemKind.Property,
    "snippet": T.CompletionItemKind.Snippet, "actor": T.CompletionItemKind.Variable,
    PROCESS: T.CompletionItemKind.Class, THREAD: T.CompletionItemKind.Class, FILE: T.CompletionItemKind.File,
    PIPE: T.CompletionItemKind.Variable, MAPPING: T.CompletionItemKind.Field,
}
_SYMBOL_KINDS = {
    "step": T.SymbolKind.Function, "par": T.SymbolKind.Namespace, "assertion": T.SymbolKind.Boolean,
    "expect": T.SymbolKind.Event, "declaration": T.SymbolKind.Variable, "scenario": T.SymbolKind.File,
}
_SEVERITY = {"error": T.DiagnosticSeverity.Error, "warning": T.DiagnosticSeverity.Warning,
             "note": T.DiagnosticSeverity.Information}


class CowLanguageServer(LanguageServer):
    def document(self, uri: str) -> TextDocument:
        return self.workspace.get_text_document(uri)


def _lines(doc: TextDocument) -> Sequence[str]:
    return doc.source.replace("\r\n", "\n").split("\n")


def _from_client(doc: TextDocument, p: T.Position) -> A.Pos:
    sp = doc.position_codec.position_from_client_units(_lines(doc), T.Position(line=p.line, character=p.character))
    return A.Pos(sp.line, sp.character)


def _to_client(doc: TextDocument, r: A.Range) -> T.Range:
    lines = _lines(doc)

    def conv(p: A.Pos) -> T.Position:
        if p.line >= len(lines):
            return T.Position(line=p.line, character=0)
        return T.Position(line=p.line, character=doc.position_codec.client_num_units(lines[p.line][: p.char]))

    return T.Range(start=conv(r.start), end=conv(r.end))


def _filename(uri: str) -> str:
    return to_fs_path(uri) or uri


def _diagnostic(doc: TextDocument, p: A.Problem) -> T.Diagnostic:
    d = p.diagnostic
    return T.Diagnostic(
        range=_to_client(doc, p.range),
        message=p.message,
        severity=_SEVERITY.get(p.severity, T.DiagnosticSeverity.Error),
        source=NAME,
        data={"expected": d.expected, "hint": d.hint},
    )


def _publish(ls: CowLanguageServer, uri: str) -> None:
    doc = ls.document(uri)
    diags = [_diagnostic(doc, p) for p in A.problems(doc.source, _filename(uri))]
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=diags, version=doc.version))


def build() -> CowLanguageServer:
    """The server, every feature registered."""
    server = CowLanguageServer(NAME, __version__)

    @server.feature(T.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CowLanguageServer, params: T.DidOpenTextDocumentParams) -> None:
        _publish(ls, params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CowLanguageServer, params: T.DidChangeTextDocumentParams) -> None:
        _publish(ls, params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: CowLanguageServer, params: T.DidSaveTextDocumentParams) -> None:
        _publish(ls, params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CowLanguageServer, params: T.DidCloseTextDocumentParams) -> None:
        ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))

    @server.feature(T.TEXT_DOCUMENT_HOVER)
    def hover(ls: CowLanguageServer, params: T.HoverParams) -> T.Hover | None:
        doc = ls.document(params.text_document.uri)
        found = A.hover(doc.source, _from_client(doc, params.position))
        if found is None:
            return None
        md, rng = found
        return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=md), range=_to_client(doc, rng))

    @server.feature(T.TEXT_DOCUMENT_COMPLETION,
                    T.CompletionOptions(trigger_characters=[":", "(", ",", ".", " ", "="]))
    def completion(ls: CowLanguageServer, params: T.CompletionParams) -> T.CompletionList:
        doc = ls.document(params.text_document.uri)
        items = []
        for c in A.completions(doc.source, _from_client(doc, params.position)):
            items.append(T.CompletionItem(
                label=c.label,
                kind=_COMPLETION_KINDS.get(c.kind, T.CompletionItemKind.Variable),
                detail=c.detail or None,
                documentation=T.MarkupContent(kind=T.MarkupKind.Markdown, value=c.doc) if c.doc else None,
                insert_text=c.insert,
                insert_text_format=T.InsertTextFormat.Snippet if c.snippet else T.InsertTextFormat.PlainText,
            ))
        return T.CompletionList(is_incomplete=False, items=items)

    @server.feature(T.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: CowLanguageServer, params: T.DefinitionParams) -> list[T.Location]:
        doc = ls.document(params.text_document.uri)
        return [T.Location(uri=doc.uri, range=_to_client(doc, r))
                for r in A.definition(doc.source, _from_client(doc, params.position))]

    @server.feature(T.TEXT_DOCUMENT_REFERENCES)
    def references(ls: CowLanguageServer, params: T.ReferenceParams) -> list[T.Location]:
        doc = ls.document(params.text_document.uri)
        rs = A.references(doc.source, _from_client(doc, params.position), params.context.include_declaration)
        return [T.Location(uri=doc.uri, range=_to_client(doc, r)) for r in rs]

    @server.feature(T.TEXT_DOCUMENT_RENAME)
    def rename(ls: CowLanguageServer, params: T.RenameParams) -> T.WorkspaceEdit:
        doc = ls.document(params.text_document.uri)
        edits = A.rename(doc.source, _from_client(doc, params.position), params.new_name)
        if isinstance(edits, str):
            raise ValueError(edits)  # pygls answers the request with this error
        return T.WorkspaceEdit(changes={doc.uri: [T.TextEdit(range=_to_client(doc, e.range), new_text=e.new_text) for e in edits]})

    @server.feature(T.TEXT_DOCUMENT_CODE_ACTION,
                    T.CodeActionOptions(code_action_kinds=[T.CodeActionKind.QuickFix]))
    def code_action(ls: CowLanguageServer, params: T.CodeActionParams) -> list[T.CodeAction]:
        doc = ls.document(params.text_document.uri)
        within = A.Range(_from_client(doc, params.range.start), _from_client(doc, params.range.end))
        out = []
        for a in A.code_actions(doc.source, within, _filename(doc.uri)):
            out.append(T.CodeAction(
                title=a.title,
                kind=T.CodeActionKind.QuickFix,
                diagnostics=[_diagnostic(doc, a.problem)],
                is_preferred=True,
                edit=T.WorkspaceEdit(changes={doc.uri: [T.TextEdit(range=_to_client(doc, a.edit.range), new_text=a.edit.new_text)]}),
            ))
        return out

    @server.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(ls: CowLanguageServer, params: T.DocumentSymbolParams) -> list[T.DocumentSymbol]:
        doc = ls.document(params.text_document.uri)

        def conv(s: A.Symbol) -> T.DocumentSymbol:
            return T.DocumentSymbol(name=s.name, kind=_SYMBOL_KINDS.get(s.kind, T.SymbolKind.Object), detail=s.detail,
                                    range=_to_client(doc, s.range), selection_range=_to_client(doc, s.selection),
                                    children=[conv(c) for c in s.children] or None)

        return [conv(s) for s in A.symbols(doc.source)]

    @server.feature(T.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: CowLanguageServer, params: T.DocumentFormattingParams) -> list[T.TextEdit] | None:
        doc = ls.document(params.text_document.uri)
        edits = A.formatting(doc.source)
        if edits is None:
            return None
        return [T.TextEdit(range=_to_client(doc, e.range), new_text=e.new_text) for e in edits]

    return server
