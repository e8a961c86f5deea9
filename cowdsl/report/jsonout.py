"""Machine-readable results; the schema is docs/json-schema.json (version 1).

The document is ``{"cowdsl": VERSION, "schema": 1, "results": [...], "errors": [...]}``:
one result per scenario run, one error per diagnostic (or per file that could
not be read, or per usage problem such as an unknown backend).  Bump
``SCHEMA_VERSION`` on any change that could break a reader (a field removed,
renamed or retyped); adding a field does not need a bump.
"""

from __future__ import annotations

import attrs

from cowdsl import __version__
from cowdsl.errors import CowError
from cowdsl.judge import Result
from cowdsl.semantics.state import State

SCHEMA_VERSION = 1


def final_state(s: State | None) -> dict | None:
    """The final State with its name→value pair lists turned into objects (None: no model state)."""
    if s is None:
        return None
    d = attrs.asdict(s)
    d["files"] = {name: list(pages) for name, pages in s.files}
    d["results"] = {name: attrs.asdict(out) for name, out in s.results}
    return d


def result(r: Result) -> dict:
    return {
        "file": r.scenario.filename,
        "scenario": r.scenario.name,
        "refs": list(r.scenario.refs),
        "backend": r.backend,
        "verdict": r.verdict,
        "expected": r.expected,
        "ok": r.ok,
        "states": len({w.state for w in r.exploration.finals}) if r.exploration is not None else 1,
        "seconds": round(r.seconds, 6),
        "exploration": exploration(r),
        "assertions": [
            {"text": c.assertion.text, "line": c.assertion.span.line, "quantifier": c.assertion.quantifier,
             "holds": c.holds, "values": dict(c.values), "positive": c.positive, "negative": c.negative,
             "shows": c.shows or None, "execution": execution(c.witness)}
            for c in r.checks
        ],
        "trace": [
            {
                "step": rec.step.number,
                "line": rec.step.span.line,
                "actor": rec.step.actor,
                "op": rec.step.op,
                "text": rec.step.text,
                "ok": rec.outcome.ok,
                "value": rec.outcome.value,
                "error": rec.outcome.error,
                "events": [attrs.asdict(e) for e in rec.events],
            }
            for rec in r.steps
        ],
        "final_state": final_state(r.final),
    }


def exploration(r: Result) -> dict | None:
    ex = r.exploration
    if ex is None:
        return None
    return {"mode": ex.mode, "states": ex.states, "executions": ex.executions, "micro_steps": ex.transitions,
            "final_states": len({w.state for w in ex.finals}), "deadlocks": len(ex.deadlocks),
            "partial": ex.partial, "seconds": round(ex.seconds, 6)}


def execution(trs) -> list[dict] | None:
    """The shown execution: one entry per micro-step."""
    if trs is None:
        return None
    return [
        {"n": n, "actor": t.actor, "step": t.step, "micro_step": t.label,
         "ok": None if t.outcome is None else t.outcome.ok,
         "events": [attrs.asdict(e) for e in t.events]}
        for n, t in enumerate(trs, 1)
    ]


def error(e: CowError) -> list[dict]:
    return [
        {
            "file": e.filename,
            "line": d.span.line,
            "col": d.span.col,
            "severity": d.severity,
            "message": d.message,
            "expected": d.expected,
            "hint": d.hint,
        }
        for d in e.diagnostics
    ]


def plain_error(file: str | None, message: str) -> dict:
    """A problem with no source position: a missing file, an unknown backend."""
    return {"file": file, "line": None, "col": None, "severity": "error", "message": message,
            "expected": None, "hint": None}


def document(results: list[Result], errors: list[CowError], other_errors=()) -> dict:
    """``other_errors``: (file or None, message) pairs for problems without a position."""
    return {
        "cowdsl": __version__,
        "schema": SCHEMA_VERSION,
        "results": [result(r) for r in results],
        "errors": [d for e in errors for d in error(e)] + [plain_error(f, m) for f, m in other_errors],
    }
