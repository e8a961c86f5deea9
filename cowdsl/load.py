"""Read a .cow file: bytes → text → syntax tree → checked Scenario."""

from __future__ import annotations

from pathlib import Path

from cowdsl.scenario import Scenario


def load_text(source: str, filename: str = "<input>") -> Scenario:
    from cowdsl.semantics import registry
    from cowdsl.syntax.checker import check
    from cowdsl.syntax.parser import parse

    module = parse(source, filename)
    return check(module, filename, source if source.endswith("\n") else source + "\n", registry.known_words())


def load(path: str | Path) -> Scenario:
    from cowdsl.syntax.parser import decode

    p = Path(path)
    return load_text(decode(p.read_bytes(), str(p)), str(p))


def find(paths) -> list[Path]:
    """Expand directories into their .cow files, sorted; keep files as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(p.rglob("*.cow")))
        else:
            out.append(p)
    return out
