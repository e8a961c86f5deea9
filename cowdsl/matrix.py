"""The era matrix: every scenario on every backend, and the mismatches with
the scenarios' expect lines."""

from __future__ import annotations

from collections.abc import Sequence

from attrs import evolve, frozen

from cowdsl.batch import Workers, run_cost
from cowdsl.explore.search import Bounds
from cowdsl.judge import Result
from cowdsl.kernel.eras import ERAS
from cowdsl.kernel.spec import KernelSpec, resolve
from cowdsl.run import run
from cowdsl.scenario import Scenario, variant_suffix


@frozen
class Matrix:
    backends: tuple[str, ...]
    scenarios: tuple[Scenario, ...]
    results: dict  # (Scenario.where, backend) -> Result

    def cell(self, sc: Scenario, backend: str) -> Result:
        return self.results[(sc.where, backend)]

    def mismatches(self) -> list[Result]:
        return [r for r in self.results.values() if mismatch(r)]


def default_backends() -> list[KernelSpec]:
    """The eras as presets, oldest first."""
    return [resolve(e.name) for e in ERAS]


def backends_for(scenarios, extra=()) -> list[KernelSpec]:
    """The eras, then every other model the files' expect lines name."""
    out = default_backends()
    seen = {s.name for s in out}
    for spec in [e.spec for sc in scenarios for e in sc.expectations] + list(extra):
        if spec.name not in seen and not spec.native:
            seen.add(spec.name)
            out.append(spec)
    return out


MAX_COLUMNS = 64  # each distinct spec an expect line names adds a column


class TooManyColumns(ValueError):
    pass


def build(scenarios, backends=None, *, max_states: int | None = None, timeout: float | None = None,
          workers: Workers | None = None, slim: bool = False) -> Matrix:
    """Every scenario on every backend; each cell explored within the bounds given
    (--max-states, --timeout per cell).  ``workers`` run a row (one file) per job.
    ``slim``: a cell as its expect line says keeps its verdicts only (see ``_slim``)."""
    specs = tuple(resolve(b) if isinstance(b, str) else b for b in (backends or backends_for(scenarios)))
    if len(specs) > MAX_COLUMNS:
        raise TooManyColumns(f"the matrix would have {len(specs)} columns (at most {MAX_COLUMNS}): the expect "
                             "lines name too many distinct backends; run fewer files, or name the backend")
    scenarios = tuple(scenarios)
    n = len(scenarios)
    # the specs are shared like the scenarios: a result refers to its spec, never a copy of it
    rows = (workers or Workers(1)).map(_row, scenarios + specs,
                                       [(i, range(n, n + len(specs)), max_states, timeout, slim) for i in range(n)],
                                       cost=[run_cost(sc) for sc in scenarios])
    results = {}
    for sc, row in zip(scenarios, rows):
        for b, r in zip(specs, row):
            results[(sc.where, b.name)] = r
    return Matrix(tuple(b.name for b in specs), scenarios, results)


def _row(shared: Sequence[Scenario | KernelSpec], item: tuple) -> list[Result]:
    """One file on every backend (a job of the workers): shared[i] on shared[k] for k in ``columns``."""
    i, columns, max_states, timeout, slim = item
    sc = shared[i]
    assert isinstance(sc, Scenario)
    out = []
    for k in columns:
        b = shared[k]
        assert isinstance(b, KernelSpec)
        bounds = Bounds()  # a fresh clock per cell
        if max_states is not None:
            bounds.max_states = max_states
        if timeout is not None:
            bounds.timeout = timeout
        r = run(sc, b, bounds=bounds)
        out.append(_slim(r) if slim and not mismatch(r) else r)
    return out


def mismatch(r: Result) -> bool:
    """The cell contradicts its expect line (marked `!`; its report shows why)."""
    return r.expected is not None and not r.ok


def _slim(r: Result) -> Result:
    """The cell's verdicts, without the final state, steps, evidence and worlds that
    only a report of the cell shows: the matrix's text, JSON and JUnit show those
    only for a mismatch.  A worker's result costs about as much to unpickle as to
    compute, and a cell's steps and states are most of it."""
    ex = r.exploration
    if ex is not None:
        ex = evolve(ex, finals=[], deadlocks=[], visited=set(), routes=None)
    return evolve(r, final=None, steps=(), checks=tuple(evolve(c, witness=None) for c in r.checks), exploration=ex)


def cell_text(r: Result) -> str:
    mark = "" if r.expected is None or r.ok else "!"
    return r.verdict + mark


def labels(scenarios) -> dict[str, str]:
    """Short row labels: file paths without their common folder and suffix."""
    import os

    names = [sc.filename for sc in scenarios]
    base = os.path.commonpath([os.path.dirname(n) or "." for n in names]) if names else ""
    # keyed by Scenario.where: the scenarios a swept file gives are rows of their own
    return {sc.where: os.path.relpath(sc.filename, base or ".").removesuffix(".cow") + variant_suffix(sc.params)
            for sc in scenarios}


def text(mx: Matrix, by_assertion: bool = False) -> str:
    """Rows: scenarios (or assertions); columns: backends; `!` marks a mismatch."""
    header = ["scenario"] + list(mx.backends)
    rows = [header]
    label = labels(mx.scenarios)
    for sc in mx.scenarios:
        if by_assertion:
            for i, a in enumerate(sc.assertions):
                row = [f"{label[sc.where]}: {a.text}"]
                for b in mx.backends:
                    c = mx.cell(sc, b).checks[i]
                    row.append("skip" if c.holds is None else ("ok" if c.holds else "no"))
                rows.append(row)
        else:
            rows.append([label[sc.where]] + [cell_text(mx.cell(sc, b)) for b in mx.backends])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    bad = mx.mismatches()
    lines.append("")
    if bad:
        lines.append(f"{len(bad)} mismatch(es) with expect lines:")
        for r in bad:
            lines.append(f"  {r.scenario.where}: {r.backend}: expected {r.expected}, got {r.verdict}")
    else:
        lines.append("all expect lines hold")
    return "\n".join(lines)


def as_json(mx: Matrix) -> dict:
    return {
        "backends": list(mx.backends),
        "rows": [
            {
                "file": sc.filename,
                "scenario": sc.name,
                "cells": {
                    b: {
                        "verdict": mx.cell(sc, b).verdict,
                        "expected": mx.cell(sc, b).expected,
                        "ok": mx.cell(sc, b).ok,
                        "assertions": [c.holds for c in mx.cell(sc, b).checks],
                    }
                    for b in mx.backends
                },
            }
            for sc in mx.scenarios
        ],
        "mismatches": [
            {"file": r.scenario.filename, "backend": r.backend, "expected": r.expected, "got": r.verdict}
            for r in mx.mismatches()
        ],
    }
