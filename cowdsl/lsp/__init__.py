"""``cowdsl lsp``: a language server for .cow files, speaking LSP over stdio.

- ``index``: a syntax tree even of a file being typed (lines that do not parse
  are left out), and every word in it with its role: an op, a flag, a fact, a
  backend, or a name (process, thread, file, pipe, mapping, `as` name) with
  where it is declared and used;
- ``analysis``: what the editor asks, as plain data (0-based lines and
  character offsets): diagnostics from the checker, hover, completion,
  definition, references, rename, code actions for hints, document symbols,
  formatting (``cowdsl.fmt``);
- ``docs``: hover texts from the op registry and the kernel timeline;
- ``server``: ``main(argv)``, which imports the LSP library (pygls) only when
  the server starts, and ``protocol``: the LSP wiring.
"""
