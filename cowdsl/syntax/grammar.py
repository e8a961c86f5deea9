"""The grammar's text: inside the installed package, or grammar/ in a checkout.
Its own module, so that the Pygments lexer reads it without loading Lark."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def grammar_text() -> str:
    packaged = resources.files("cowdsl") / "grammar" / "cow.lark"
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parents[2] / "grammar" / "cow.lark").read_text(encoding="utf-8")
