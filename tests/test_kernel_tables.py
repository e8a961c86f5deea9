"""The model against what real kernels showed: every recorded truth table, on every run, no VM.

``tests/kernels/VERSION.json`` holds, per scenario file and assertion, what a
real kernel of that version answered natively (``cowdsl crosscheck --record``,
``scripts/record-kernels``; the format is in ``cowdsl.kernels.tables``).  Each
assertion the kernel decided is one test: the model of the table's version
(``cowdsl.kernel.spec.resolve(VERSION)``) must decide it the same way.

Model and kernel are compared by ``cowdsl.crosscheck.agreement``, the rule
crosscheck itself applies: a model that decides the scenario on one execution
(sequential) must match every run; a model that explores several (a `par`
block) is contradicted only by what the runs showed (a violation of an
`always`/`never` it says holds, a witness of a `sometimes` it says fails).
What the model allows but the recorded runs did not show is skipped as
"unwitnessed", never passed.

A disagreement fails, naming the file, the assertion, the kernel and the
model.  The ones understood and not (yet) modelled are listed in ``KNOWN``
with the reason, as strict xfails: none is dropped silently, and one that
starts to agree fails until it is taken off the list.  A scenario file changed
since it was recorded is skipped as stale (record it again).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from cowdsl.crosscheck import DISAGREE, UNWITNESSED, agreement, one_execution
from cowdsl.kernel.spec import resolve
from cowdsl.kernels import tables
from cowdsl.load import load_all
from cowdsl.run import run
from cowdsl.scenario import variant_suffix

ROOT = Path(__file__).resolve().parent.parent

# (version prefix, file, assertion text) -> why model and kernel differ there
KNOWN: dict[tuple[str, str, str], str] = {
}


def _known(version: str, file: str, text: str) -> str | None:
    for (prefix, f, a), why in KNOWN.items():
        if (version == prefix or version.startswith(prefix + ".")) and f == file and a == text:
            return why
    return None


def _cases() -> list:
    cases = []
    for t in tables.load_all(ROOT / "tests" / "kernels"):
        version = t["kernel"]["version"]
        for file, entry in t["files"].items():
            for a in entry.get("assertions", []):
                if a["kernel"] is None:
                    continue
                marks = []
                why = _known(version, file, a["assert"])
                if why:
                    marks.append(pytest.mark.xfail(reason=why, strict=True))
                cases.append(pytest.param(version, t["kernel"].get("release", ""), file, entry["sha256"], a,
                                          id=f"{version}:{file}:{a['line']}", marks=marks))
    return cases


CASES = _cases()


@functools.cache
def _model(version: str, file: str):
    """The model's result on the table's scenario (one variant of a swept file: x.cow[kind=thp]), or None."""
    path, variant = tables.split_variant(file)
    sc = next((s for s in load_all(ROOT / path) if variant_suffix(s.params) == variant), None)
    return None if sc is None else run(sc, resolve(version))


def test_tables_were_recorded():
    versions = {t["kernel"]["version"] for t in tables.load_all(ROOT / "tests" / "kernels")}
    assert versions, "no truth tables in tests/kernels (scripts/record-kernels records them)"


@pytest.mark.parametrize("version,release,file,sha,recorded", CASES)
def test_model_decides_as_the_kernel_did(version, release, file, sha, recorded):
    path = ROOT / tables.split_variant(file)[0]
    if not path.exists():
        pytest.skip(f"{file} is gone since the {version} table was recorded")
    if tables.sha256(path) != sha:
        pytest.skip(f"{file} changed since the {version} table was recorded: record it again "
                    "(scripts/record-kernels)")
    result = _model(version, file)
    if result is None:
        pytest.skip(f"{file}: the file has no such variant any more: record it again")
    spec = resolve(version)
    matching = [c for c in result.checks if c.assertion.text == recorded["assert"]]
    if not matching:
        pytest.skip(f"{file} has no assertion `{recorded['assert']}` any more: record it again")
    check = min(matching, key=lambda c: abs(c.assertion.span.line - recorded["line"]))
    runs = tables.answers(recorded)
    kernel = recorded.get("seen") or {True: "true", False: "false"}.get(recorded["kernel"], str(recorded.get("runs")))
    model = {True: "true", False: "false", None: "undecided"}[check.holds]
    status = agreement(check.assertion.quantifier, check.holds, runs, model_one_execution=one_execution(result))
    if status == UNWITNESSED:
        pytest.skip(f"unwitnessed: the model {spec.label} says {check.assertion.quantifier} {recorded['assert']} "
                    f"is {model} in some execution; kernel {version} showed {kernel}")
    assert check.holds is not None and status != DISAGREE, (
        f"{file}:{recorded['line']}: assert {recorded['assert']}: kernel {version} ({release}) showed {kernel}, "
        f"the model {spec.label} says {model} ({', '.join(f'{k}={v}' for k, v in check.values.items())})")


def test_a_disagreement_names_file_assertion_kernel_and_model():
    if not CASES:
        pytest.skip("no truth tables recorded")
    # a sequential scenario's decided answer: the model's one execution must match it exactly
    # (a par file's or a mixed answer, flipped, may be only unwitnessed)
    version, release, file, sha, recorded = next(
        c.values for c in CASES if c.values[2].startswith("scenarios/pin-fork/s5") and isinstance(c.values[4]["kernel"], bool))
    flipped = {**recorded, "kernel": not recorded["kernel"]}
    if tables.sha256(ROOT / tables.split_variant(file)[0]) != sha:
        pytest.skip(f"{file} changed since it was recorded")
    with pytest.raises(AssertionError) as e:
        test_model_decides_as_the_kernel_did(version, release, file, sha, flipped)
    text = str(e.value)
    assert file in text and recorded["assert"] in text and f"kernel {version}" in text
    assert resolve(version).label in text


PAR_FILE = "scenarios/races/s13-dirty-cow-race-private-copy.cow"


def _par_case(line: int, text: str, **recorded):
    return ("6.1.176", "6.1.0-50-cloud-amd64", PAR_FILE, tables.sha256(ROOT / PAR_FILE),
            {"line": line, "assert": text, **recorded})


def test_a_par_files_runs_are_judged_by_their_quantifier():
    """A `par` file's 20 runs: a `sometimes` the model allows, witnessed in some runs, agrees
    (no longer skipped as "mixed"); not witnessed at all, it is skipped as unwitnessed, never
    passed; an `always` the model says holds, broken in one run, fails the test."""
    test_model_decides_as_the_kernel_did(*_par_case(30, "A.text == 1", kernel="mixed", runs={"true": 5, "false": 15},
                                                    seen="witnessed 5 of 20"))
    with pytest.raises(pytest.skip.Exception, match="unwitnessed: .* showed witnessed 0 of 20"):
        test_model_decides_as_the_kernel_did(*_par_case(30, "A.text == 1", kernel=False, runs={"false": 20},
                                                        seen="witnessed 0 of 20"))
    with pytest.raises(AssertionError, match=r"kernel 6\.1\.176 .* showed a violation seen \(run 4\)"):
        test_model_decides_as_the_kernel_did(*_par_case(28, "A.text == 9 or A.text == 1", kernel="mixed",
                                                        runs={"true": 19, "false": 1},
                                                        seen="a violation seen (run 4)"))


def test_runs_are_read_back_from_a_table_entry():
    assert tables.answers({"kernel": True}) == [True]
    assert tables.answers({"kernel": None, "reason": "x"}) == [None]
    assert sorted(tables.answers({"kernel": "mixed", "runs": {"true": 2, "false": 1, "skip": 1}}),
                  key=str) == [False, None, True, True]
