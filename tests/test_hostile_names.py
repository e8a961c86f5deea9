"""Names from outside (a file name, an assertion's white space) in every output
format: text never carries a raw control or bidi character to the terminal, and
JUnit XML, JSON and DOT stay well-formed.  Each failed before the fix."""

from __future__ import annotations

import json
import unicodedata
import xml.etree.ElementTree as ET

import pytest
from examples import LONG_TERM_PIN

from cowdsl.cli import main

# ESC ] 0 ; title BEL sets a terminal's title; U+202E reverses the text after it;
# a form feed clears some terminals and is not allowed in XML 1.0.
HOSTILE = "x\x1b]0;pwn\x07\u202e\x0cy"


def _raw_unsafe(text: str) -> list[str]:
    return [c for c in text if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cf")]


@pytest.fixture
def hostile(tmp_path):
    """A failing scenario, so every output shows the names and the assertion's text."""
    src = "\n".join(x for x in LONG_TERM_PIN.splitlines() if not x.startswith("scenario "))  # named after the file
    src = src.replace("assert mr is A.buf", "assert mr is\x0cA.buf\nassert A.buf == 77")
    f = tmp_path / f"{HOSTILE}.cow"
    f.write_text(src)
    return tmp_path


def test_text_output_escapes_the_file_name(hostile, capsys):
    assert main(["run", "--state", str(hostile)]) == 1
    out = capsys.readouterr().out
    assert _raw_unsafe(out) == []
    assert "Test x\\x1b]0;pwn\\x07\\u202e\\x0cy on " in out
    assert "mr is A.buf /\\ A.buf == 77" in out  # the form feed is white space


def test_junit_is_well_formed(hostile, capsys):
    main(["run", "--format", "junit", str(hostile)])
    xml = capsys.readouterr().out
    root = ET.fromstring(xml)  # raised "not well-formed (invalid token)" before
    case = root.find(".//testcase")
    assert case is not None and case.get("name", "").startswith("x\\x1b]0;pwn")
    failure = root.find(".//failure")
    assert failure is not None and "\x0c" not in (failure.text or "")
    assert _raw_unsafe(xml) == []


def test_json_is_well_formed(hostile, capsys):
    main(["run", "--format", "json", str(hostile)])
    doc = json.loads(capsys.readouterr().out)
    assert doc["results"][0]["scenario"].startswith("x\\x1b]0;pwn")


def test_dot_labels_escape_control_characters(hostile, tmp_path, capsys):
    out = tmp_path / "graphs"
    main(["run", "--dot", str(out), str(hostile)])
    files = sorted(out.glob("*.dot"))
    assert files
    for f in files:
        text = f.read_text()
        assert _raw_unsafe(text) == [], f.name
        assert "\\\\x1b]0;pwn" in text  # shown, as text, in the label
