"""The manual page: generated from the argparse definitions, committed current, shipped."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cowdsl.cli import main, manpage
from cowdsl.cli.args import COMMANDS, PASSTHROUGH

pytest.importorskip("argparse_manpage")


def test_committed_page_is_current():
    assert manpage.CHECKOUT_PAGE.read_text(encoding="utf-8") == manpage.render(), \
        "man/cowdsl.1 is stale: regenerate it with `python -m cowdsl.cli.manpage` after changing cowdsl/cli/args.py"


def test_page_mentions_every_command_and_option():
    page = manpage.render()
    sections = set(re.findall(r"^\.SH COMMAND \\fI\\,'cowdsl ([a-z]+)'", page, flags=re.M))
    assert sections == set(COMMANDS) | set(PASSTHROUGH)
    assert r"\fB\-\-backend\fR" in page and r"\fB\-\-max\-states\fR" in page
    assert page.startswith('.TH COWDSL "1" "cowdsl ')


def test_page_does_not_depend_on_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    wide = manpage.render()
    monkeypatch.setenv("COLUMNS", "40")
    assert manpage.render() == wide


def test_cowdsl_man_prints_the_installed_page(capsys):
    assert main(["man"]) == 0
    assert capsys.readouterr().out == manpage.installed()
    assert manpage.installed() == manpage.CHECKOUT_PAGE.read_text(encoding="utf-8")


def test_man_renders_it():
    if subprocess.run(["sh", "-c", "command -v man"], capture_output=True).returncode:
        pytest.skip("no man(1) here")
    p = subprocess.run(["man", "-l", str(manpage.CHECKOUT_PAGE)], capture_output=True, text=True, timeout=60,
                       env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin", "MAN_KEEP_FORMATTING": ""})
    assert p.returncode == 0, p.stderr
    assert "cowdsl run [-h] [--backend BACKEND]" in p.stdout.replace("\u2010", "-")


def test_a_wheel_install_ships_it():
    shared = Path(sys.prefix) / "share" / "man" / "man1" / "cowdsl.1"
    if not shared.exists():
        pytest.skip("cowdsl is not installed from a wheel here (an editable install ships no data files)")
    assert shared.read_text(encoding="utf-8") == manpage.CHECKOUT_PAGE.read_text(encoding="utf-8")
