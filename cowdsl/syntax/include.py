"""`include "prelude.cow"`: the lines of another file, in place of the include line.

A .cow file is untrusted, so an include is confined: the path is relative, has
no `..`, names a `.cow` file in the including file's folder or below it, and
(checked by the opener the loader passes in, ``cowdsl.load``) no symbolic link
leads out of that folder.  Includes nest at most ``MAX_DEPTH`` deep, at most
``MAX_FILES`` files are read for one scenario, all of them together at most
``MAX_TOTAL_BYTES``, and a file that includes itself, directly or through
others, is refused with the chain of includes shown.

An error in an included file is reported at its own file:line:col, followed by
a note at each include line that led to it (``IncludedError``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from cowdsl.errors import CowError, Diagnostic, Span, render
from cowdsl.syntax import ast

MAX_DEPTH = 8  # include lines nested
MAX_FILES = 32  # files included, in all
MAX_TOTAL_BYTES = 1 << 20  # the text of every file of one scenario together

# (file name as shown, source, span of its include line) from the outermost file in
Chain = tuple[tuple[str, str, Span], ...]


class IncludeRefused(Exception):
    """The opener's answer for a path it will not read (a symlink out of the folder, not a regular file)."""


# The opener: (folder of the including file, the path as written) -> (a key that
# names the file whatever path reached it, e.g. (st_dev, st_ino), and its text).
Opener = Callable[[object, str], tuple[object, object, str]]


class IncludedError(CowError):
    """Diagnostics in several files: each part is (file, source, diagnostics, chain).

    ``filename``, ``source`` and ``diagnostics`` are the first part's, so that a
    reader of one CowError sees the first problem where it is; ``render`` shows
    every part, each followed by a note at every include line that led to it."""

    def __init__(self, parts: list[tuple[str, str, list[Diagnostic], Chain]]):
        self.parts = parts
        first = parts[0]
        super().__init__(first[0], first[1], first[2])

    def render(self, highlight=None) -> str:
        out = []
        for filename, source, diags, chain in self.parts:
            for d in sorted(diags, key=lambda d: (d.span.line, d.span.col)):
                out.append(render(filename, source, d, highlight))
                for at_file, at_source, span in reversed(chain):
                    out.append(render(at_file, at_source, Diagnostic("included from here", span, severity="note"),
                                      highlight))
        return "\n".join(out)


def in_file(err: CowError, chain: Chain) -> CowError:
    """``err`` (about an included file) with the include lines that led to it."""
    if not chain:
        return err
    if isinstance(err, IncludedError):
        return IncludedError([(f, s, d, chain + c) for f, s, d, c in err.parts])
    return IncludedError([(err.filename, err.source, list(err.diagnostics), chain)])


def bad_path(path: str) -> str | None:
    """Why an include path as written is refused before any file is looked at, or None."""
    p = PurePosixPath(path)
    if not path:
        return "an empty path"
    if path.startswith("/") or "\\" in path or (len(path) > 1 and path[1] == ":"):
        return "an absolute path"
    if ".." in p.parts:
        return "a path with `..`"
    if p.suffix != ".cow":
        return "not a .cow file"
    if any(not c.isprintable() for c in path):
        return "a control character in the path"
    return None


class _Budget:
    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0


def expand(module: ast.Module, filename: str, source: str, folder: object | None, opener: Opener | None,
           parse: Callable[[str, str], ast.Module], key: object | None = None) -> ast.Module:
    """``module`` with every include line replaced by the included file's items
    (an ``ast.Included``), recursively; CowError if any include is refused.

    ``folder`` is the including file's folder as the opener knows it (None: the
    text is not from a file, and includes are refused); ``parse`` parses text;
    ``key`` names the file itself as the opener's keys do, to refuse a cycle back to it."""
    if not any(isinstance(i, ast.IncludeLine) for i in module.items):
        return module
    return _expand(module, filename, source, folder, opener, parse, (), (key,) if key is not None else (), _Budget())


def _expand(module, filename, source, folder, opener, parse, chain: Chain, seen: tuple, budget: _Budget) -> ast.Module:
    items: list[ast.Item] = []
    for item in module.items:
        if not isinstance(item, ast.IncludeLine):
            items.append(item)
            continue
        line = source.split("\n")[item.span.line - 1]
        quote = line.find('"', item.span.col - 1)
        path_span = Span(item.span.line, quote + 1, item.span.end_col) if quote >= 0 else item.span
        here = chain + ((filename, source, item.span),)

        def refuse(message: str, hint: str | None = None, expected: str | None = None,
                   span: Span = path_span) -> CowError:
            return in_file(CowError(filename, source, [Diagnostic(message, span, expected, hint)]), chain)

        why = bad_path(item.path)
        if why:
            raise refuse(f"cannot include {why}: `{item.path}`",
                         expected="a .cow file in this file's folder or below it, e.g. \"prelude.cow\"",
                         hint="an include names a file relative to the including file, and stays in its folder")
        if folder is None or opener is None:
            raise refuse("`include` works in a file read from disk",
                         hint="load the scenario from its file, so that the include has a folder")
        if len(chain) >= MAX_DEPTH:
            raise refuse(f"includes nest more than {MAX_DEPTH} deep", hint="include the files from fewer levels")
        if budget.files >= MAX_FILES:
            raise refuse(f"more than {MAX_FILES} files included", hint="merge some of the included files")
        try:
            key, sub_folder, text = opener(folder, item.path)
        except IncludeRefused as e:
            raise refuse(f"cannot include `{item.path}`: {e}") from None
        except FileNotFoundError:
            raise refuse(f"no file `{item.path}` to include", hint="the path is relative to the including file's folder") from None
        except OSError as e:
            raise refuse(f"cannot include `{item.path}`: {e.strerror or e}") from None
        except CowError as e:  # too big, or not UTF-8 text: said about the included file, where it can be
            if not e.source:
                raise refuse(f"cannot include `{item.path}`: {e.diagnostics[0].message}") from None
            raise in_file(CowError(_shown(filename, item.path), e.source, e.diagnostics), here) from None
        shown = _shown(filename, item.path)
        if key in seen:
            names = [f for f, _, _ in here] + [shown]
            raise refuse("an include cycle: " + " includes ".join(f"`{n}`" for n in names),
                         hint="a file cannot include itself, directly or through another file")
        budget.files += 1
        budget.bytes += len(text)
        if budget.bytes > MAX_TOTAL_BYTES:
            raise refuse(f"the included files hold more than {MAX_TOTAL_BYTES} characters in all")
        text = text if text.endswith("\n") else text + "\n"
        try:
            sub = parse(text, shown)
        except CowError as e:
            raise in_file(e, here) from None
        sub = _expand(sub, shown, text, sub_folder, opener, parse, here, seen + (key,), budget)
        items.append(ast.Included(sub.items, shown, text, here))
    return ast.Module(tuple(items))


def _shown(including: str, path: str) -> str:
    """An included file's name as reports show it: beside the including file's."""
    return str(PurePosixPath(including).parent / path) if including else path


def walk(items, origin: ast.Included | None = None):
    """Every item of a module, included files' too, each with the ``ast.Included``
    it comes from (None: the top file)."""
    for item in items:
        if isinstance(item, ast.Included):
            yield from walk(item.items, item)
        else:
            yield origin, item
