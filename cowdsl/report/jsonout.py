"""Machine-readable results; the schema is docs/json-schema.json (version 1)."""

from __future__ import annotations

import attrs

from cowdsl import __version__
from cowdsl.errors import CowError
from cowdsl.run import Result

SCHEMA_VERSION = 1


def result(r: Result) -> dict:
    return {
        "file": r.scenario.filename,
        "scenario": r.scenario.name,
        "refs": list(r.scenario.refs),
        "backend": r.backend,
        "verdict": r.verdict,
        "expected": r.expected,
        "ok": r.ok,
        "states": 1,
        "seconds": round(r.seconds, 6),
        "assertions": [
            {"text": c.assertion.text, "line": c.assertion.span.line, "holds": c.holds, "values": c.values}
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
        "final_state": attrs.asdict(r.final),
    }


def error(e: CowError) -> list[dict]:
    return [
        {
            "file": e.filename,
            "line": d.span.line,
            "col": d.span.col,
            "message": d.message,
            "expected": d.expected,
            "hint": d.hint,
        }
        for d in e.diagnostics
    ]


def document(results: list[Result], errors: list[CowError]) -> dict:
    return {
        "cowdsl": __version__,
        "schema": SCHEMA_VERSION,
        "results": [result(r) for r in results],
        "errors": [d for e in errors for d in error(e)],
    }
