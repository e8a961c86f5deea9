"""What the browser playground calls in Pyodide: run a scenario's text on a backend,
highlight the editor's text.  Plain Python, so it is tested outside the browser too.

``run`` returns a dict the page shows as it is: the verdict, whether it is as
expected, and the text report of `cowdsl run` as HTML with the verdict words
coloured (the text itself unchanged).  Nothing here touches files: the
scenario is text in memory, named `playground.cow`.
"""

from __future__ import annotations

import html
import re
from typing import Any

import cowdsl.run
from cowdsl.errors import CowError
from cowdsl.explore.search import Bounds
from cowdsl.kernel.spec import SpecError, resolve
from cowdsl.lexer import CowLexer
from cowdsl.limits import Limits, explain_partial
from cowdsl.load import load_text_all
from cowdsl.report import text

FILENAME = "playground.cow"
# A page that explores for minutes is a hung tab: a tighter bound than the CLI's.
TIMEOUT = 20.0

# (pattern on one line of the report, class): the words a reader looks for first.
_MARKS = (
    (re.compile(r"^(Test) (.*)$"), "title"),
    (re.compile(r"^(Ok)$"), "ok"),
    (re.compile(r"^(No)$"), "no"),
    (re.compile(r"^(Counterexample for .*)$"), "no"),
    (re.compile(r"^(Witness for .*)$"), "ok"),
    (re.compile(r"^(  Ok)(  line .*)$"), "ok"),
    (re.compile(r"^(  No)(  line .*)$"), "no"),
    (re.compile(r"^(Expect .*: got .*), (as expected)$"), "ok"),
    (re.compile(r"^(Expect .*: got .*), (not as expected)$"), "no"),
    (re.compile(r"^(schedule: .*)$"), "dim"),
)


def colour(report: str) -> str:
    """The report as HTML: escaped, with the verdict lines and words in spans."""
    out = []
    for line in report.split("\n"):
        for pattern, cls in _MARKS:
            m = pattern.match(line)
            if m:
                groups = [html.escape(g) for g in m.groups()]
                if cls == "title":
                    out.append(f'<span class="title">{groups[0]} {groups[1]}</span>')
                elif len(groups) == 1:
                    out.append(f'<span class="{cls}">{groups[0]}</span>')
                elif "expected" in groups[1]:
                    out.append(f'{groups[0]}, <span class="{cls}">{groups[1]}</span>')
                else:
                    out.append(f'<span class="{cls}">{groups[0]}</span>{groups[1]}')
                break
        else:
            out.append(html.escape(line))
    return "\n".join(out)


def run(source: str, backend: str = "anon-exclusive", filename: str = FILENAME) -> dict[str, Any]:
    """``source`` checked and run on ``backend``: {"status": "pass"|"fail"|"skip"|"error",
    "expected": "pass"|"fail"|None, "ok": bool, "summary": one line, "html": the report,
    "text": the same as text}.  ``filename`` names it in diagnostics (a bundled
    scenario's file name; FILENAME for one typed in)."""
    try:
        spec = resolve(backend)
    except SpecError as e:
        message = e.message + (f"; {e.hint}" if e.hint else "")
        return _error(f"cowdsl: {message} (the picker lists the eras and versions)")
    if spec.native:
        return _error("cowdsl: `native` runs on the machine's own kernel: not in a browser")
    try:
        # no folder: a page has none, so an `include` is refused
        scenarios = load_text_all(source, _base(filename))
    except CowError as e:
        return _error(e.render())
    bounds = Bounds(max_states=Limits().max_states, timeout=TIMEOUT)
    results, reports = [], []
    for sc in scenarios:  # one, or one per combination of its params' values
        r = cowdsl.run.run(sc, spec, bounds=bounds)
        why = explain_partial(sc, r.partial)
        results.append(r)
        reports.append(text.report(r, width=80) + (f"\n{why}" if why else ""))
    report = "\n\n".join(reports)
    ok = all(r.ok for r in results)
    verdict = "as expected" if ok else "not as expected"
    if len(results) == 1:
        r = results[0]
        summary = f"{r.verdict} on {spec}" + (f": expected {r.expected}, {verdict}" if r.expected else "")
        status, expected = r.verdict, r.expected
    else:
        bad = sum(not r.ok for r in results)
        summary = f"{len(results)} scenarios (its params) on {spec}: {len(results) - bad} as expected" + \
            (f", {bad} not as expected" if bad else "")
        verdicts = {r.verdict for r in results}
        status = "fail" if "fail" in verdicts else verdicts.pop() if len(verdicts) == 1 else "pass"
        expected = None
    return {"status": status, "expected": expected, "ok": ok, "summary": summary,
            "backend": str(spec), "text": report, "html": colour(report)}

def _base(filename: str) -> str:
    """The last part of a name from the page (it names nothing on a disk)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return base if base.endswith(".cow") and len(base) <= 200 else FILENAME


def _error(message: str) -> dict[str, Any]:
    return {"status": "error", "expected": None, "ok": False, "summary": "error", "backend": None,
            "text": message, "html": f'<span class="no">{html.escape(message)}</span>'}


def highlight(source: str) -> str:
    """The editor's text as HTML in the Pygments colours (classes of HtmlFormatter)."""
    from pygments import highlight as pyg  # Pygments only for the editor
    from pygments.formatters import HtmlFormatter

    return pyg(source, CowLexer(stripnl=False, ensurenl=False), HtmlFormatter(nowrap=True))

