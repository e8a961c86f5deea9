"""Machine-readable results; one schema, docs/json-schema.json, covers every
document cowdsl prints, told apart by ``kind``:

- ``run`` (``document``): one result per scenario run on one backend,
  ``{"format_version": 1, "kind": "run", "cowdsl": VERSION, "schema": 1,
  "results": [...], "errors": [...]}`` (``schema`` is the older name of
  ``format_version``, kept for readers of the first documents);
- ``matrix`` (``matrix_document``): `run --backend all`, scenarios × backends,
  each cell with its verdict, expectation and exit status, and the mismatches;
- ``crosscheck`` (``crosscheck_document``): the model against the kernel, one
  row per assertion;
- ``error`` (``error_document``): nothing ran (a usage problem).

Every document has ``format_version``, ``kind``, ``cowdsl`` and ``errors`` (one
per diagnostic, per file that could not be read, or per problem without a file).
Bump ``FORMAT_VERSION`` on any change that could break a reader (a field
removed, renamed or retyped); adding a field does not need a bump.
"""

from __future__ import annotations

import attrs

from cowdsl import __version__
from cowdsl.errors import CowError
from cowdsl.judge import Result
from cowdsl.report import exitcode, race
from cowdsl.semantics.state import State

FORMAT_VERSION = 1
SCHEMA_VERSION = FORMAT_VERSION  # the older name


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
        "final_states": final_states(r),
        "exit": exitcode.cell(r),
    }


def final_states(r: Result) -> list[dict] | None:
    """An explored run's distinct final states: the facts its assertions see, the
    lines it breaks, and how many executions reach it (null when unknown)."""
    if r.exploration is None:
        return None
    return [{"facts": dict(f.facts), "breaks": [a.span.line for a in f.fails], "executions": f.executions,
             "deadlock": f.deadlock} for f in race.final_states(r)]


def exploration(r: Result) -> dict | None:
    ex = r.exploration
    if ex is None:
        return None
    return {"mode": ex.mode, "states": ex.states, "executions": ex.executions, "micro_steps": ex.transitions,
            "final_states": len({w.state for w in ex.finals}), "deadlocks": len(ex.deadlocks),
            "partial": ex.partial, "stopped": ex.stopped, "seconds": round(ex.seconds, 6)}


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
    """Each diagnostic; one inside an included file (cowdsl.syntax.include) is
    followed by a `note` at each include line that led to it."""
    out = []
    for filename, _, diags, chain in getattr(e, "parts", [(e.filename, e.source, e.diagnostics, ())]):
        for d in diags:
            out.append({"file": filename, "line": d.span.line, "col": d.span.col, "severity": d.severity,
                        "message": d.message, "expected": d.expected, "hint": d.hint})
            out += [{"file": at, "line": span.line, "col": span.col, "severity": "note",
                     "message": "included from here", "expected": None, "hint": None}
                    for at, _, span in reversed(chain)]
    return out


def plain_error(file: str | None, message: str) -> dict:
    """A problem with no source position: a missing file, an unknown backend."""
    return {"file": file, "line": None, "col": None, "severity": "error", "message": message,
            "expected": None, "hint": None}


def errors_of(errors=(), other_errors=()) -> list[dict]:
    """CowErrors (their diagnostics) and (file or None, message) pairs, as error objects."""
    return [d for e in errors for d in error(e)] + [plain_error(f, m) for f, m in other_errors]


def _head(kind: str) -> dict:
    return {"format_version": FORMAT_VERSION, "kind": kind, "cowdsl": __version__}


def document(results: list[Result], errors: list[CowError], other_errors=()) -> dict:
    """A run on one backend.  ``other_errors``: (file or None, message) pairs for
    problems without a position."""
    return {
        **_head("run"),
        "schema": SCHEMA_VERSION,
        "results": [result(r) for r in results],
        "errors": errors_of(errors, other_errors),
        "exit": exitcode.exit_code(results, bool(errors) or bool(other_errors)),
    }


def matrix_document(mx, errors=(), other_errors=()) -> dict:
    """`run --backend all`: a cowdsl.matrix.Matrix, every scenario on every backend.
    Each cell exits as the run would alone (``exit``, cowdsl.report.exitcode)."""
    def cell(r: Result) -> dict:
        return {
            "verdict": r.verdict,
            "expected": r.expected,
            "ok": r.ok,
            "mismatch": r.expected is not None and not r.ok,
            "exit": exitcode.cell(r),
            "partial": r.partial,
            "seconds": round(r.seconds, 6),
            "assertions": [{"line": c.assertion.span.line, "text": c.assertion.text, "holds": c.holds}
                           for c in r.checks],
        }

    return {
        **_head("matrix"),
        "backends": list(mx.backends),
        "rows": [
            {"file": sc.filename, "scenario": sc.name,
             "cells": {b: cell(mx.cell(sc, b)) for b in mx.backends}}
            for sc in mx.scenarios
        ],
        "mismatches": [
            {"file": r.scenario.filename, "backend": r.backend, "expected": r.expected, "got": r.verdict}
            for r in mx.mismatches()
        ],
        "errors": errors_of(errors, other_errors),
        "exit": exitcode.matrix_exit_code(mx, bool(errors) or bool(other_errors)),
    }


def _holds(h: bool | None) -> str:
    return "skip" if h is None else ("true" if h else "false")


def crosscheck_document(model: str, rows=(), skipped=(), errors=(), other_errors=(), host: str | None = None,
                        repeat: int = 1) -> dict:
    """`cowdsl crosscheck`: ``rows`` are cowdsl.crosscheck.Row (an assertion, the
    model's check, the native runs' checks, the status); ``skipped`` (file,
    reason) pairs for whole scenarios left out; ``other_errors`` (file or None,
    message) pairs.  Exit: 1 on a disagreement, else 2 on an error, else 0."""
    out_rows = []
    for r in rows:
        natives = [c.holds for c in r.natives]
        out_rows.append({
            "file": r.sc.filename,
            "line": r.assertion.span.line,
            "assertion": r.assertion.text,
            "model": r.model.holds,
            "native": natives,
            "histogram": {k: sum(1 for h in natives if _holds(h) == k) for k in ("true", "false", "skip")},
            "status": "disagree" if r.status == "DISAGREE" else r.status,
            "reason": r.reason or None,
            "model_values": dict(r.model.values),
            "native_values": dict(r.natives[0].values) if r.natives else {},
        })
    errs = errors_of(errors, other_errors)
    disagree = any(x["status"] == "disagree" for x in out_rows)
    return {
        **_head("crosscheck"),
        "model": model,
        "host": host,
        "repeat": repeat,
        "rows": out_rows,
        "skipped": [{"file": f, "reason": why} for f, why in skipped],
        "errors": errs,
        "exit": exitcode.NOT_AS_EXPECTED if disagree else (exitcode.ERROR if errs else exitcode.OK),
    }


def error_document(errors=(), other_errors=()) -> dict:
    """Nothing ran: a usage problem (an unknown backend, a bad option)."""
    return {**_head("error"), "errors": errors_of(errors, other_errors), "exit": exitcode.ERROR}


def timeline_document(timelines: list[dict], errors=(), other_errors=(), exit: int = 0) -> dict:
    """`cowdsl timeline --format json`: ``timelines`` as cowdsl.timeline.as_json gives them."""
    return {**_head("timeline"), "errors": errors_of(errors, other_errors), "exit": exit, "timelines": timelines}
