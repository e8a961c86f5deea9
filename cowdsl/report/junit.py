"""JUnit XML for CI systems: one testcase per scenario and backend.

    <testsuites name="cowdsl" tests= failures= errors= skipped= time=>
      <testsuite name="cowdsl on anon-exclusive" ...>
        <testcase classname="scenarios.pin-fork.s5-..." name="S5: ... on anon-exclusive"
                  file="scenarios/pin-fork/s5-....cow" line="27" time="0.001">
          <properties> backend, verdict, expected </properties>
          <failure message="got fail; expected pass" type="NotAsExpected">verdict block, trace, state</failure>
        </testcase>
      </testsuite>
      <testsuite name="cowdsl: files with errors">
        <testcase classname="..." name="load" file="x.cow"><error message="1 error" type="CowError">diagnostics</error>
      </testsuite>
    </testsuites>

A run is a failure when it is not as expected (``Result.ok``); in the era
matrix (``--backend all``) only when it contradicts an expect line, as the
matrix marks it.  A run where no assertion could be decided is skipped.  A file
that does not parse, or a problem with no file (an unknown backend), is an
error.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from cowdsl.judge import Result
from cowdsl.report import text
from cowdsl.untrusted import escaped


def classname(filename: str) -> str:
    """scenarios/pin-fork/s5.cow → scenarios.pin-fork.s5 (what CI systems group by)."""
    path = os.path.normpath(filename)
    if os.path.isabs(path):
        try:
            path = os.path.relpath(path)
        except ValueError:
            pass
    path = path.removesuffix(".cow").lstrip("./" + os.sep)
    return path.replace(os.sep, ".").replace("/", ".") or "cowdsl"


def _expect_line(r: Result) -> int:
    for e in r.scenario.expectations:
        if e.spec.name == r.spec.name:
            return e.span.line
    return r.scenario.assertions[0].span.line if r.scenario.assertions else 1


def assertion_text(a) -> str:
    """`assert X`, or `never: X` for a quantified assertion of a concurrent scenario."""
    q = getattr(a, "quantifier", None)
    return f"assert {a.text}" if q in (None, "always") else f"{q}: {a.text}"


def failure_text(r: Result) -> str:
    """What a CI reader needs: why, the failing assertions, the verdict block, the trace, the state."""
    why = (f"expected {r.expected}" if r.expected
           else "the file has no expect line, so every assertion must hold")
    out = [f"{r.scenario.filename}: {r.scenario.name}", f"on {r.backend}: got {r.verdict}; {why}", ""]
    if r.expected == "fail":
        out.append("every assertion held, but the expect line says one fails:")
        shown = [c for c in r.checks if c.holds]
    else:
        out.append("failing assertions:")
        shown = [c for c in r.checks if c.holds is False]
    for c in shown:
        values = ", ".join(f"{k}={v}" for k, v in c.values.items())
        out.append(f"  line {c.assertion.span.line}: {assertion_text(c.assertion)}" + (f"    ({values})" if values else ""))
    if getattr(r, "exploration", None) is not None:  # a concurrent scenario: the block shows the execution
        out += ["", text.report(r, show_state=True).rstrip("\n")]
    else:
        out += ["", text.verdict_block(r), "", "Counterexample:", text.trace(r), "", text.final_state(r.final)]
    return "\n".join(out)


def _failed(r: Result, matrix: bool) -> bool:
    if r.verdict == "skip":
        return False
    return (r.expected is not None and not r.ok) if matrix else not r.ok


def _testcase(r: Result, matrix: bool) -> tuple[ET.Element, str]:
    tc = ET.Element("testcase", {
        "classname": classname(r.scenario.filename),
        "name": f"{r.scenario.name} on {r.backend}",
        "file": r.scenario.filename,
        "line": str(_expect_line(r)),
        "time": f"{r.seconds:.6f}",
    })
    props = ET.SubElement(tc, "properties")
    for k, v in (("backend", r.backend), ("verdict", r.verdict), ("expected", r.expected or "")):
        ET.SubElement(props, "property", {"name": k, "value": v})
    if r.verdict == "skip":
        ET.SubElement(tc, "skipped", {"message": f"no assertion could be decided on {r.backend}"})
        return tc, "skipped"
    if _failed(r, matrix):
        why = f"expected {r.expected}" if r.expected else "every assertion must hold"
        f = ET.SubElement(tc, "failure", {"message": f"got {r.verdict}; {why}", "type": "NotAsExpected"})
        f.text = failure_text(r)
        return tc, "failure"
    return tc, "ok"


def _suite(name: str, cases: list[tuple[ET.Element, str, float]]) -> ET.Element:
    counts = {k: sum(1 for _, s, _ in cases if s == k) for k in ("failure", "error", "skipped")}
    suite = ET.Element("testsuite", {
        "name": name,
        "tests": str(len(cases)),
        "failures": str(counts["failure"]),
        "errors": str(counts["error"]),
        "skipped": str(counts["skipped"]),
        "time": f"{sum(t for _, _, t in cases):.6f}",
    })
    for tc, _, _ in cases:
        suite.append(tc)
    return suite


def document(results: list[Result], errors=(), other_errors=(), matrix: bool = False) -> ET.Element:
    """``errors``: CowErrors (files that did not parse); ``other_errors``: (file or None, message)."""
    by_backend: dict[str, list] = {}
    for r in results:
        tc, status = _testcase(r, matrix)
        by_backend.setdefault(r.backend, []).append((tc, status, r.seconds))
    suites = [_suite(f"cowdsl on {b}", cases) for b, cases in by_backend.items()]
    bad = []
    for e in errors:
        tc = ET.Element("testcase", {"classname": classname(e.filename), "name": "load", "file": e.filename,
                                     "line": str(e.diagnostics[0].span.line if e.diagnostics else 1), "time": "0"})
        n = len(e.diagnostics)
        err = ET.SubElement(tc, "error", {"message": f"{n} error{'s' if n != 1 else ''}: "
                                          + (e.diagnostics[0].message if e.diagnostics else ""),
                                          "type": "CowError"})
        err.text = e.render()
        bad.append((tc, "error", 0.0))
    for file, message in other_errors:
        tc = ET.Element("testcase", {"classname": classname(file) if file else "cowdsl", "name": "load",
                                     "time": "0", **({"file": file} if file else {})})
        ET.SubElement(tc, "error", {"message": message, "type": "Error"}).text = message
        bad.append((tc, "error", 0.0))
    if bad:
        suites.append(_suite("cowdsl: files with errors", bad))
    root = ET.Element("testsuites", {"name": "cowdsl"})
    for k in ("tests", "failures", "errors", "skipped"):
        root.set(k, str(sum(int(s.get(k) or 0) for s in suites)))
    root.set("time", f"{sum(float(s.get('time') or 0) for s in suites):.6f}")
    root.extend(suites)
    return root


def _well_formed(root: ET.Element) -> None:
    """Names, paths and assertion text come from outside: a control character (a
    form feed is white space in a .cow file) is not allowed in XML 1.0, and escape
    sequences or bidi overrides would reach a CI page; all are shown escaped."""
    for el in root.iter():
        for k, v in el.attrib.items():
            el.set(k, escaped(v))
        if el.text:
            el.text = escaped(el.text, keep="\n\t")


def to_string(root: ET.Element) -> str:
    _well_formed(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
