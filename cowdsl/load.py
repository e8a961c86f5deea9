"""Read a .cow file: bytes → text → syntax tree → checked Scenario."""

from __future__ import annotations

from pathlib import Path

from cowdsl.scenario import Scenario


def load_text(source: str, filename: str = "<input>", limits=None) -> Scenario:
    """``limits``: a cowdsl.limits.Limits (processes, threads, pages, steps); the defaults otherwise."""
    from cowdsl.check import check
    from cowdsl.syntax.parser import parse

    module = parse(source, filename)
    return check(module, filename, source if source.endswith("\n") else source + "\n", limits)


def load(path: str | Path, limits=None) -> Scenario:
    from cowdsl.syntax.parser import decode

    p = Path(path)
    return load_text(decode(p.read_bytes(), str(p)), str(p), limits)


def find(paths) -> list[Path]:
    """Expand directories into their .cow files, sorted; keep files as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(p.rglob("*.cow")))
        else:
            out.append(p)
    return out
