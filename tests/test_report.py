"""The report formats: herd7-style verdict blocks, traces, final-state tables, JSON.

Assertions here are about layout, not about the model: page numbers and
counters are matched loosely so that changes to the semantics do not break them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from examples import LONG_TERM_PIN

from cowdsl.kernel import eras
from cowdsl.load import load_text
from cowdsl.report import jsonout, text
from cowdsl.run import run

ALIAS = eras.BY_NAME["anon-exclusive"].aliases[-1]  # a kernel version or nickname for it
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "json-schema.json"

FAILING = """\
scenario "two of three"
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
assert A.buf == 1
assert A.buf == 2 or A.buf == 3
assert A.buf >= 1
"""

# Swap, the swap cache, a pipe, a file mapping and a multi-page mapping.
MIXED = """\
scenario "mixed"
process A
file F = [7, 8]
pipe P
A: mmap(buf, anon, private, rw, pages=2)
A: mmap(lib, private, ro, file=F, pages=2)
A: write(buf[0], 1)
A: write(buf[1], 2)
A: read(lib[1]) as l
A: vmsplice(buf[0], P)
reclaim: swapout(A.buf[1])
A: pin(buf[0], read) as ro
A: mmap(spare, anon, private, rw)
assert l == 8
assert A.buf[1] == 2
"""

SEGV = """\
scenario "segv"
process A
pipe P
A: mmap(buf, anon, private, ro)
A: pipe_read(P) as v
A: write(buf, 1)
A: read(buf) as x
assert failed(v)
assert segv(A)
"""


def result(source: str, name: str = "t.cow", backend: str = "anon-exclusive"):
    return run(load_text(source, name), backend)


# --- the verdict block ------------------------------------------------------------------


def test_verdict_block_when_everything_holds():
    r = result(LONG_TERM_PIN)
    lines = text.verdict_block(r).splitlines()
    name = "long-term pin stays coherent across fork"
    assert lines[0] == f"Test {name} on anon-exclusive"
    assert lines[1] == "States 1"
    assert lines[2].startswith("A.buf=4; B.buf=3; page(mr)=#") and lines[2].endswith(";")
    assert re.fullmatch(r"A\.buf=4; B\.buf=3; page\(mr\)=#(\d+); page\(A\.buf\)=#\1;", lines[2])
    assert lines[3:6] == ["Ok", "Witnesses", "Positive: 1 Negative: 0"]
    assert lines[6] == "Condition forall (A.buf == 4 /\\ B.buf == 3 /\\ mr is A.buf)"
    assert lines[7] == f"Observation {name} Always 1 0"
    assert re.fullmatch(rf"Time {re.escape(name)} \d+\.\d{{3}}", lines[8])
    assert lines[9:12] == [
        "  Ok  line 13: assert A.buf == 4",
        "  Ok  line 14: assert B.buf == 3",
        "  Ok  line 15: assert mr is A.buf",
    ]
    assert lines[12:] == ["Expect pass on anon-exclusive: got pass, as expected"]


def test_verdict_block_when_an_assertion_fails():
    r = result(FAILING)
    lines = text.verdict_block(r).splitlines()
    assert lines[0] == "Test two of three on anon-exclusive"
    assert lines[2] == "A.buf=1;"  # each term once
    assert lines[3:6] == ["No", "Witnesses", "Positive: 0 Negative: 1"]
    # an assertion with its own `or` is parenthesised inside the conjunction
    assert lines[6] == "Condition forall (A.buf == 1 /\\ (A.buf == 2 or A.buf == 3) /\\ A.buf >= 1)"
    assert lines[7] == "Observation two of three Never 0 1"
    assert lines[9:12] == [
        "  Ok  line 5: assert A.buf == 1",
        "  No  line 6: assert A.buf == 2 or A.buf == 3",
        "  Ok  line 7: assert A.buf >= 1",
    ]
    assert lines[12] == "Verdict fail (no expect line for anon-exclusive, so every assertion must hold)"
    assert len(lines) == 13


def test_scenario_name_defaults_to_the_file():
    r = result(FAILING.replace('scenario "two of three"\n', ""), name="dir/two.cow")
    assert text.verdict_block(r).splitlines()[0].startswith("Test ")
    assert r.scenario.name in text.verdict_block(r).splitlines()[0]


@pytest.mark.parametrize(
    "expect, line",
    [
        ("expect pass on anon-exclusive", "Expect pass on anon-exclusive: got fail, NOT AS EXPECTED"),
        ("expect fail on anon-exclusive", "Expect fail on anon-exclusive: got fail, as expected"),
        (f"expect fail on {ALIAS}", "Expect fail on anon-exclusive: got fail, as expected"),
        ("", "Verdict fail (no expect line for anon-exclusive, so every assertion must hold)"),
    ],
)
def test_expectation_line(expect, line):
    r = result(FAILING + expect + "\n")
    assert text.expectation_line(r) == line
    assert text.verdict_block(r).splitlines()[-1] == line


def test_no_expectation_line_when_passing_without_expect():
    r = result(LONG_TERM_PIN.replace("expect pass on anon-exclusive\n", ""))
    assert text.expectation_line(r) == ""
    assert text.verdict_block(r).splitlines()[-1] == "  Ok  line 15: assert mr is A.buf"


# --- the final state ---------------------------------------------------------------------

COLUMNS = ["where", "pte", "page", "value", "refcount", "mapcount", "pincount", "flags"]


def table(block: str, header_first: str) -> list[str]:
    """The rows of the table whose header starts with ``header_first``, header included."""
    lines = block.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.split()[:1] == [header_first])
    rows = []
    for ln in lines[start:]:
        if not ln.strip():
            break
        rows.append(ln)
    return rows


def test_final_state_columns_line_up():
    s = text.final_state(result(LONG_TERM_PIN).final)
    assert s.splitlines()[0] == "Final state"
    rows = table(s, "where")
    assert rows[0].split() == COLUMNS
    starts = [rows[0].index(c) for c in COLUMNS]
    for row in rows[1:]:
        for c, col in zip(COLUMNS[1:4], starts[1:4]):
            assert row[col - 2:col] == "  " and row[col] != " ", (c, row)
    a = next(r for r in rows if r.startswith("  A.buf "))
    cells = re.split(r"\s{2,}", a.strip())
    assert cells[0] == "A.buf"
    assert cells[1].startswith("present rw")
    assert re.fullmatch(r"#\d+", cells[2])
    assert cells[3] == "4"
    assert int(cells[4]) >= 1024  # FOLL_PIN's bias
    assert cells[5:7] == ["1", "1"]
    assert "pinned" in cells[7].split()
    assert any(r.startswith("  B.buf ") for r in rows)


def test_final_state_pins_and_processes():
    s = text.final_state(result(LONG_TERM_PIN).final)
    pins = table(s, "pin/ref")
    assert pins[0].split() == ["pin/ref", "kind", "page", "value", "owner", "state"]
    assert re.fullmatch(r"  mr\s+FOLL_PIN\|FOLL_WRITE\|FOLL_LONGTERM\s+#\d+\s+4\s+A\s+held", pins[1])
    procs = s.splitlines()[-1]
    assert re.fullmatch(
        r"  processes: A alive, MMF_HAS_PINNED, \d+ faults?, \d+ cop(y|ies); B alive, \d+ faults?, \d+ cop(y|ies)",
        procs,
    )


def test_final_state_swap_pipe_file_and_multi_page_rows():
    s = text.final_state(result(MIXED).final)
    rows = table(s, "where")
    wheres = [re.split(r"\s{2,}", r.strip())[0] for r in rows[1:]]
    assert wheres == ["A.buf[0]", "A.buf[1]", "A.lib[0]", "A.lib[1]", "A.spare"]
    swapped = rows[2]
    assert re.match(r"  A\.buf\[1\]\s+swap slot \d+", swapped)
    assert re.search(r"\s-\s+2\s+swapped out", swapped)  # no page; the value is the slot's
    assert "page-cache F[0]" in rows[3]  # mapped by do_fault_around with lib[1]
    assert re.match(r"  A\.spare\s+none\s+-\s+not faulted in$", rows[5])
    assert "page-cache F[1]" in rows[4]
    assert re.search(r"^  pipe P: #\d+ \(value 1\)$", s, re.M)
    assert re.search(r"^  file F page cache: F\[0\] #\d+ \(value 7\), F\[1\] #\d+ \(value 8\)$", s, re.M)
    pins = table(s, "pin/ref")
    assert re.fullmatch(r"  ro\s+FOLL_PIN\s+#\d+\s+1\s+A\s+held", pins[1])


def test_final_state_of_a_killed_process():
    s = text.final_state(result(SEGV).final)
    assert "  (no mappings)" in s
    assert "  pipe P: empty" in s
    assert re.search(r"^  processes: A killed by SIGSEGV, 0 faults, 0 copies$", s, re.M)


# --- traces and the whole report -----------------------------------------------------------


def test_trace_marks_values_failures_and_steps_not_run():
    t = text.trace(result(SEGV)).splitlines()
    assert t[0] == "Trace of segv on anon-exclusive"
    steps = [ln for ln in t if re.match(r"^\s*\d+  line \d+: ", ln)]
    assert steps[0] == "  1  line 4: A: mmap(buf, anon, private, ro)"
    assert steps[1].startswith("  2  line 5: A: pipe_read(P) as v  → failed: ")
    assert steps[2].startswith("  3  line 6: A: write(buf, 1)  → failed: ")
    assert steps[3] == "  4  line 7: A: read(buf) as x  → not run: A was killed by SIGSEGV"
    assert t[-1] == steps[3]  # the "not run" reason is not repeated as an event
    mixed = text.trace(result(MIXED))
    assert re.search(r"^  5  line 9: A: read\(lib\[1\]\) as l  → 8$", mixed, re.M)
    assert all(ln.startswith("       ") for ln in mixed.splitlines()[1:] if not re.match(r"^\s*\d+  line", ln))


def test_report_parts():
    ok, bad = result(LONG_TERM_PIN), result(FAILING)
    assert text.report(ok) == text.verdict_block(ok) + "\n"
    assert "Final state" in text.report(ok, show_state=True)
    assert "Final state" in text.report(bad)
    full = text.report(ok, show_trace=True, show_state=True)
    assert full.index("Trace of") < full.index("Test ") < full.index("Final state")


# --- JSON ------------------------------------------------------------------------------------


def _document():
    from cowdsl.errors import CowError

    try:
        load_text("process A\nA: pin(buf, write, longtem) as mr\n", "broken.cow")
    except CowError as e:
        broken = e
    else:  # pragma: no cover
        raise AssertionError("the broken scenario loaded")
    results = [result(s) for s in (LONG_TERM_PIN, FAILING, MIXED, SEGV)]
    doc = jsonout.document(results, [broken], [("missing.cow", "no such file or directory")])
    return json.loads(json.dumps(doc))  # exactly what a reader gets


def _structural_check(doc: dict, schema: dict) -> None:
    """Required fields and simple types, for when jsonschema is not installed."""
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list,
             "object": dict, "null": type(None)}

    def check(value, sch, where):
        if "$ref" in sch:
            sch = schema["$defs"][sch["$ref"].rsplit("/", 1)[1]]
        if "const" in sch:
            assert value == sch["const"], where
        if "enum" in sch:
            assert value in sch["enum"], where
        if "oneOf" in sch:
            passed = 0
            for alt in sch["oneOf"]:
                try:
                    check(value, alt, where)
                    passed += 1
                except AssertionError:
                    pass
            assert passed == 1, (where, passed)
        if "anyOf" in sch:
            errors = 0
            for alt in sch["anyOf"]:
                try:
                    check(value, alt, where)
                except AssertionError:
                    errors += 1
            assert errors < len(sch["anyOf"]), where
        if "type" in sch:
            ts = sch["type"] if isinstance(sch["type"], list) else [sch["type"]]
            ok = any(isinstance(value, types[t]) and not (t in ("integer", "number") and isinstance(value, bool))
                     for t in ts)
            assert ok, (where, value, ts)
        if isinstance(value, dict):
            for k in sch.get("required", []):
                assert k in value, (where, k)
            props = sch.get("properties", {})
            if sch.get("additionalProperties") is False:
                assert set(value) <= set(props), (where, set(value) - set(props))
            for k, v in value.items():
                if k in props:
                    check(v, props[k], f"{where}.{k}")
                elif isinstance(sch.get("additionalProperties"), dict):
                    check(v, sch["additionalProperties"], f"{where}.{k}")
        if isinstance(value, list) and "items" in sch:
            for i, v in enumerate(value):
                check(v, sch["items"], f"{where}[{i}]")

    check(doc, schema, "$")


def validate(doc: dict) -> None:
    """Validate with jsonschema (in the test extra), or with the structural check without it."""
    schema = json.loads(SCHEMA_PATH.read_text())
    try:
        import jsonschema
    except ImportError:  # pragma: no cover
        _structural_check(doc, schema)
        return
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(doc)


def test_json_schema_is_valid_and_describes_real_output():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["format_version", "kind", "cowdsl", "errors"]
    for kind in ("run", "matrix", "crosscheck", "error"):
        d = schema["$defs"][f"{kind}_document"]
        assert d["properties"]["format_version"]["const"] == jsonout.FORMAT_VERSION
        assert d["properties"]["kind"]["const"] == kind
        assert {"format_version", "kind", "cowdsl", "errors", "exit"} <= set(d["required"])
    assert schema["$defs"]["run_document"]["properties"]["schema"]["const"] == jsonout.SCHEMA_VERSION
    validate(_document())


def test_cli_json_output_matches_the_schema(tmp_path, capsys):
    from cowdsl.cli import main

    for i, source in enumerate((LONG_TERM_PIN, FAILING, MIXED, SEGV)):
        (tmp_path / f"s{i}.cow").write_text(source)
    (tmp_path / "broken.cow").write_text("process A\nA: frobnicate()\nassert true\n")
    assert main(["run", "--format", "json", str(tmp_path), str(tmp_path / "missing.cow")]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["results"]) == 4 and len(doc["errors"]) >= 2
    validate(doc)


def test_json_structural_check_agrees():
    """The fallback check passes real output and catches a missing or mistyped field."""
    schema = json.loads(SCHEMA_PATH.read_text())
    doc = _document()
    _structural_check(doc, schema)
    broken = json.loads(json.dumps(doc))
    del broken["results"][0]["verdict"]
    with pytest.raises(AssertionError):
        _structural_check(broken, schema)
    broken = json.loads(json.dumps(doc))
    broken["errors"][0]["line"] = "3"
    with pytest.raises(AssertionError):
        _structural_check(broken, schema)


def test_json_document_fields():
    doc = _document()
    assert list(doc) == ["format_version", "kind", "cowdsl", "schema", "results", "errors", "exit"]
    assert (doc["format_version"], doc["kind"], doc["exit"]) == (1, "run", 2)  # 2: there are errors
    failing = doc["results"][1]
    assert (failing["verdict"], failing["ok"], failing["expected"]) == ("fail", False, None)
    assert [a["holds"] for a in failing["assertions"]] == [True, False, True]
    mixed = doc["results"][2]
    assert mixed["final_state"]["files"]["F"] and len(mixed["final_state"]["files"]["F"]) == 2
    assert mixed["final_state"]["results"]["l"] == {"ok": True, "value": 8, "error": None}
    assert mixed["trace"][4]["value"] == 8
    segv = doc["results"][3]
    assert segv["trace"][-1]["ok"] is False and segv["trace"][-1]["error"].startswith("not run")
    errs = doc["errors"]
    assert errs[-1] == {"file": "missing.cow", "line": None, "col": None, "severity": "error",
                        "message": "no such file or directory", "expected": None, "hint": None}
    flag = next(e for e in errs if e["message"].startswith("unknown flag"))
    assert (flag["file"], flag["line"], flag["col"], flag["hint"]) == ("broken.cow", 2, 20, "did you mean `longterm`?")


def test_undecided_assertions_and_no_model_state():
    """A backend that cannot observe a fact (native) leaves holds None and may keep no state."""
    import attrs

    r = result(LONG_TERM_PIN)
    partly = attrs.evolve(r, checks=(attrs.evolve(r.checks[0], holds=None),) + r.checks[1:], final=None)
    lines = text.verdict_block(partly).splitlines()
    assert partly.verdict == "pass" and lines[3] == "Ok"
    assert lines[9] == "  --  line 13: assert A.buf == 4  (not observable on this backend)"
    assert text.final_state(None).splitlines()[0] == "Final state"
    assert "no model state" in text.report(partly, show_state=True)
    skipped = attrs.evolve(partly, checks=tuple(attrs.evolve(c, holds=None) for c in r.checks))
    lines = text.verdict_block(skipped).splitlines()
    assert skipped.verdict == "skip"
    assert lines[3:6] == ["Skip", "Witnesses", "Positive: 0 Negative: 0"]
    assert lines[7].endswith(" Undecided 0 0")
    assert lines[-1] == "Skipped: no assertion could be decided on anon-exclusive"
    doc = jsonout.document([skipped], [])
    assert doc["results"][0]["final_state"] is None
    assert doc["results"][0]["verdict"] == "skip"
    assert doc["results"][0]["assertions"][0]["holds"] is None
    validate(json.loads(json.dumps(doc)))


# --- the native block --------------------------------------------------------------------------

SAMPLED = """\
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
A: fork() as B
A: write(buf, 2)
always: A.buf == 2
never: B.buf == 2
sometimes: B.buf == 1
"""


def natively(r):
    """A model's result as the native backend gives one: its spec, no model state."""
    import attrs

    from cowdsl import native

    return attrs.evolve(r, spec=native.SPEC, final=None)


def herd_words(block: str) -> list[str]:
    return [w for w in ("States", "Witnesses", "Positive", "Negative", "Condition", "Observation", "Undecided")
            if re.search(rf"^{w}\b|\b{w}:", block, flags=re.M)]


def test_a_native_block_says_the_kernel_ran_it_once():
    """One real execution: no herd7 state count, witnesses or observation."""
    r = natively(result(LONG_TERM_PIN))
    block = text.verdict_block(r)
    assert herd_words(block) == []
    assert block.splitlines() == [
        "Test long-term pin stays coherent across fork on native",
        "Runs on this kernel: 1 (one real execution)",
        "A.buf=4; B.buf=3; page(mr)=#1; page(A.buf)=#1;",
        "Ok",
        "  Ok  line 13: assert A.buf == 4",
        "  Ok  line 14: assert B.buf == 3",
        "  Ok  line 15: assert mr is A.buf",
        f"Time {r.seconds:.3f} s",
        "Expect pass on native: got pass, as expected",
    ]
    assert text.report(r) == block + "\n"


def test_a_native_block_says_how_many_runs_and_what_each_assertion_saw():
    """N runs, fewer when the timeout ended them: each assertion with its quantifier and the
    words of cowdsl.judge.sampled; the run counts are not printed as values."""
    import attrs

    from cowdsl.native import repeat

    one = natively(result(SAMPLED, "sampled.cow"))
    unwitnessed = attrs.evolve(one, checks=one.checks[:2] + (attrs.evolve(one.checks[2], holds=False),))
    runs = repeat.combine(one.scenario, [unwitnessed, one, one], requested=5, seed=9,
                          stopped="the 1 s timeout ended the runs after 3 of 5", seconds=0.25)
    block = text.verdict_block(runs.result, width=80)
    assert herd_words(block) == []
    assert block.splitlines() == [
        "Test sampled on native",
        "Runs on this kernel: 3 of 5 (seed 9); the 1 s timeout ended the runs after 3 of",
        "  5; sampled executions, never a proof",
        "A.buf=2; B.buf=1;",
        "Ok",
        "  Ok  line 6: assert A.buf == 2  (none in 3 runs)",
        "  Ok  line 7: never B.buf == 2  (none in 3 runs)",
        "  Ok  line 8: sometimes B.buf == 1  (witnessed 2 of 3)",
        "Time 0.250 s",
    ]
    validate(json.loads(json.dumps(jsonout.document([runs.result], []))))  # the JSON is as it was


def test_a_native_block_says_why_the_kernel_ran_nothing():
    from cowdsl import native
    from cowdsl.judge import Check, Result, StepRecord
    from cowdsl.semantics.state import Outcome

    sc = load_text(LONG_TERM_PIN, "t.cow")
    why = "unsupported on native: `A: pin(buf, write, longterm) as mr`: no pin here"
    steps = tuple(StepRecord(st, Outcome(False, error=why if st.number == 3 else "not run: scenario skipped"), ())
                  for st in sc.steps)
    r = Result(sc, native.SPEC, None, steps, tuple(Check(a, None, {"unsupported": why}) for a in sc.assertions),
               None, 0.001)
    lines = text.verdict_block(r, width=200).splitlines()
    assert lines[1:4] == [f"Runs on this kernel: none; {why}", "Skip", "  --  line 13: assert A.buf == 4  (not run)"]
    assert lines[-1] == "Skipped: no assertion could be decided on native"
    assert herd_words("\n".join(lines)) == []


# --- one schema for every document ---------------------------------------------------------------


def test_every_json_builder_validates_against_the_one_schema():
    """A run (with an explored, a partial and a skipped result), the era matrix, a
    crosscheck and an error document: each validates, each says its format_version."""
    from examples import RACE, pinners_racing_fork

    from cowdsl import matrix
    from cowdsl.crosscheck import Row
    from cowdsl.explore.search import Bounds

    explored = run(load_text(RACE, "race.cow"), "anon-exclusive", mode="reduced", all_states=True)  # herd's list
    partial = run(load_text(pinners_racing_fork(3, 3), "big.cow"), "anon-exclusive",
                  bounds=Bounds(max_states=50, timeout=60))
    assert partial.verdict == "unknown"
    run_doc = json.loads(json.dumps(jsonout.document([result(LONG_TERM_PIN), explored, partial], [])))
    assert run_doc["exit"] == 1  # the race fails without an expect line: 1 wins over 3
    assert [r["exit"] for r in run_doc["results"]] == [0, 1, 3]
    assert run_doc["results"][2]["verdict"] == "unknown"
    assert run_doc["results"][1]["final_states"] == [
        {"facts": {"A.buf": "1"}, "breaks": [], "executions": None, "deadlock": False},
        {"facts": {"A.buf": "2"}, "breaks": [9], "executions": None, "deadlock": False}]
    assert run_doc["results"][0]["final_states"] is None

    scs = [load_text(LONG_TERM_PIN, "pin.cow"), load_text(RACE, "race.cow")]
    mx = matrix.build(scs, ["anon-exclusive", "mapcount"])
    mx_doc = json.loads(json.dumps(jsonout.matrix_document(mx, [], [("gone.cow", "no such file")])))
    assert mx_doc["kind"] == "matrix" and mx_doc["backends"] == ["anon-exclusive", "mapcount"]
    cell = mx_doc["rows"][1]["cells"]["anon-exclusive"]
    assert (cell["verdict"], cell["exit"], cell["mismatch"]) == ("fail", 1, False)
    assert cell["assertions"] == [{"line": 9, "text": "A.buf == 1", "holds": False}]
    assert mx_doc["exit"] == 2 and mx_doc["errors"][0]["file"] == "gone.cow"

    ok = result(LONG_TERM_PIN)
    rows = [Row(ok.scenario, a, c, [c, c]) for a, c in zip(ok.scenario.assertions, ok.checks)]
    x_doc = json.loads(json.dumps(jsonout.crosscheck_document("anon-exclusive", rows, [("race.cow", "concurrent")],
                                                              host="Linux 6.18", repeat=2)))
    assert x_doc["rows"][0]["status"] == "agree" and x_doc["rows"][0]["histogram"] == {"true": 2, "false": 0,
                                                                                       "skip": 0}
    assert x_doc["exit"] == 0
    e_doc = jsonout.error_document([], [(None, "unknown backend `frob`")])
    for doc in (run_doc, mx_doc, x_doc, e_doc):
        assert doc["format_version"] == jsonout.FORMAT_VERSION
        validate(json.loads(json.dumps(doc)))
    # the shape the matrix used to print fails the schema
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        validate({"matrix": matrix.as_json(mx), "errors": []})
