"""Truth tables: what a real kernel showed for each scenario assertion, kept in the repository.

``cowdsl crosscheck --record`` (on this machine, or ``--kernel 6.1`` in a guest)
writes ``tests/kernels/VERSION.json``; ``tests/test_kernel_tables.py`` holds
the model of each table's version to every answer the kernel gave, on every
test run, without booting anything.

    {
      "format": 1,
      "kernel": {"version": "5.10.223", "release": "5.10.0-32-cloud-amd64", "proc_version": "...",
                 "source": "debian:bullseye:...", "needs": ["swap"], "accel": "tcg", "smp": 1},
      "native": "Linux 5.10.0-32-cloud-amd64, io_uring ok, ...",      (what the native side could do)
      "cowdsl": {"commit": "9599a61...", "dirty": false},
      "recorded": "2026-12-02",
      "summary": {"scenarios": 74, "run_natively": 31, "assertions": ..., "kernel_decided": ...},
      "files": {
        "scenarios/swap/x.cow": {"sha256": "...", "skipped": "unsupported on native: ..."},
        "scenarios/fork/y.cow": {"sha256": "...", "assertions": [
            {"line": 17, "assert": "mr is A.buf", "kernel": true},
            {"line": 18, "assert": "refcount(mr) == 2", "kernel": null, "reason": "unsupported on native: ..."},
            {"line": 19, "assert": "...", "kernel": "mixed", "runs": {"true": 2, "false": 1}}]},
        "scenarios/races/z.cow": {"sha256": "...", "assertions": [
            {"line": 30, "assert": "A.text == 1", "kernel": "mixed", "runs": {"true": 5, "false": 15},
             "seen": "witnessed 5 of 20"}]}
      },
      "native_runs": {"repeat": 1, "par_repeat": 20, "seed": 0},
      "errors": []
    }

A swept file (``param``) has one entry per variant, ``x.cow[kind=thp,swap=dofork]``,
each with the file's sha256.  ``kernel`` is true or false when the kernel decided the assertion (every run
the same way), null when native could not observe it (the reason says why),
"mixed" when repeated runs answered both ways; ``runs`` counts each run's answer when there
were several (a scenario with a `par` block runs 20 times by default), and ``seen`` says what
they showed for the assertion's quantifier ("witnessed 5 of 20", "a violation seen (run 3)",
"none in 20 runs": ``cowdsl.native.repeat``).  ``cowdsl.crosscheck.agreement`` judges a model
against these answers, here and in the test.  ``sha256`` is the scenario file's as recorded: a
file changed since is stale until it is recorded again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

FORMAT = 1
_CHECKOUT = Path(__file__).resolve().parents[2]


def root() -> Path:
    """The checkout cowdsl runs from; installed (not from a checkout), the current folder."""
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "tests").is_dir():
        return _CHECKOUT
    return Path.cwd()


def default_folder() -> Path:
    return root() / "tests" / "kernels"


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def split_variant(name: str) -> tuple[str, str]:
    """A row's scenario name as (file, variant): a swept file's scenarios are rows of their own,
    ``x.cow[kind=thp,swap=dofork]`` (``cowdsl.scenario.variant_suffix``); ``("x.cow", "")`` otherwise."""
    i = name.rfind(".cow[")
    if i >= 0 and name.endswith("]"):
        return name[:i + 4], name[i + 4:]
    return name, ""


def relative(path: str | Path) -> str:
    """A scenario's path relative to the checkout (as given when it is elsewhere)."""
    p = Path(path).resolve()
    try:
        return p.relative_to(root().resolve()).as_posix()
    except ValueError:
        return str(path)


def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(root()), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def commit() -> dict[str, Any]:
    """The cowdsl commit recorded with a table, and whether cowdsl/ or scenarios/ had changes not in it."""
    sha = _git("rev-parse", "HEAD")
    if sha is None:
        return {"commit": None}
    dirty = _git("status", "--porcelain", "--", "cowdsl", "scenarios")
    return {"commit": sha, "dirty": bool(dirty)}


def _verdict(native: list[bool | None]) -> bool | str | None:
    decided = {h for h in native if h is not None}
    if not decided:
        return None
    return decided.pop() if len(decided) == 1 else "mixed"


def answers(recorded: dict[str, Any]) -> list[bool | None]:
    """Each run's answer to one recorded assertion (in no particular order): from its ``runs``
    counts when it ran several times, else its ``kernel`` verdict."""
    runs = recorded.get("runs")
    if runs:
        return [True] * runs.get("true", 0) + [False] * runs.get("false", 0) + [None] * runs.get("skip", 0)
    kernel = recorded.get("kernel")
    return [kernel] if isinstance(kernel, bool) else [None]


def table(report: dict[str, Any]) -> dict[str, Any]:
    """The table of a cross-check report (``cowdsl.crosscheck.Report.to_json()``)."""
    files: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        path, variant = split_variant(name)
        rel = relative(path) + variant
        if rel not in files:
            files[rel] = {"sha256": sha256(path)}  # the file's: a swept file's variants share it
        return files[rel]

    for name, why in report["scenario_skips"]:
        entry(name)["skipped"] = why
    for r in report["rows"]:
        e = entry(r["file"])
        if "skipped" in e:
            continue
        a: dict[str, Any] = {"line": r["line"], "assert": r["assertion"], "kernel": _verdict(r["native"])}
        if a["kernel"] is None:
            a["reason"] = r.get("native_reason") or r.get("reason") or "native cannot decide"
        if len(r["native"]) > 1:
            a["runs"] = dict(Counter("skip" if h is None else str(h).lower() for h in r["native"]))
        if r.get("seen"):
            a["seen"] = r["seen"]
        e.setdefault("assertions", []).append(a)
    kernel = dict(report["kernel"])
    guest = report.get("guest") or {}
    for k in ("source", "needs", "accel", "smp", "memory"):
        if k in guest:
            kernel[k] = guest[k]
    if not guest:
        kernel["source"] = "host"
    decided = sum(a["kernel"] is not None for f in files.values() for a in f.get("assertions", []))
    return {
        "format": FORMAT,
        "kernel": kernel,
        "native": report["host"],
        "cowdsl": commit(),
        "recorded": datetime.date.today().isoformat(),
        "model_when_recorded": report["model"],
        "summary": {**report.get("summary", {}), "kernel_decided": decided},
        "files": dict(sorted(files.items())),
        "native_runs": {k: report[k] for k in ("repeat", "par_repeat", "seed") if k in report},
        "errors": report["errors"],
    }


def write(report: dict[str, Any], folder: str | Path | None = None) -> Path:
    """Write the table of ``report`` to FOLDER/VERSION.json (FOLDER: tests/kernels of the checkout,
    or of the current folder when cowdsl is installed rather than run from a checkout)."""
    t = table(report)
    version = t["kernel"].get("version")
    if not version:
        raise ValueError("the report does not say which kernel version it ran on")
    folder = Path(folder) if folder else default_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{version}.json"
    path.write_text(json.dumps(t, indent=1, sort_keys=False) + "\n")
    return path


def load_all(folder: str | Path | None = None) -> list[dict[str, Any]]:
    """Every table in ``folder`` (``default_folder()`` when not given), by version."""
    folder = Path(folder) if folder else default_folder()
    out = []
    for p in sorted(folder.glob("*.json")):
        t = json.loads(p.read_text())
        if t.get("format") == FORMAT:
            t["path"] = str(p)
            out.append(t)
    return out
