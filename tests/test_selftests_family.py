"""docs/selftests.md and scenarios/selftests/ agree.

The document lists every unit (a selftest case on one mapping variant) of the
kernel's COW selftests, whether a .cow file can state it, which file does, and
which `param` values of that file sweep the variant.  These tests keep the table
honest: a unit marked expressible names a file that exists, asks that case
(its `ref` names the case) and sweeps that variant; a unit that is not
expressible says why; every file in the family is in the table; the summary's
counts are the table's.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "selftests.md"
FAMILY = ROOT / "scenarios" / "selftests"
ERAS = ("mapcount", "gup-cow", "refcount", "early-cow", "cow-fixes-1", "anon-exclusive")


def _section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"## {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def _rows(lines: list[str]) -> list[list[str]]:
    rows = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            for line in lines if line.startswith("|")]
    return rows[2:]  # drop the header and the |---| line


def _units() -> list[dict[str, str]]:
    keys = ("n", "selftest", "case", "variant", "expressible", "scenario", "sweep", "note")
    rows = _rows(_section(DOC.read_text(encoding="utf-8"), "Units"))
    assert rows, "docs/selftests.md has no Units table"
    units = []
    for r in rows:
        assert len(r) == len(keys), f"row {r[0]}: {len(r)} cells, expected {len(keys)}"
        units.append(dict(zip(keys, r)))
    return units


def _path(cell: str) -> Path:
    return ROOT / cell.strip("`")


def _params(path: Path) -> dict[str, set[str]]:
    """`param NAME in V1, V2` lines of the file (and of what it includes)."""
    found: dict[str, set[str]] = {}
    seen: set[Path] = set()

    def read(p: Path) -> None:
        if p in seen:
            return
        seen.add(p)
        for line in p.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.fullmatch(r"param\s+(\w+)\s+in\s+(.+)", line)
            if m:
                found.setdefault(m[1], set()).update(v.strip() for v in m[2].split(","))
            m = re.fullmatch(r'include\s+"([^"]+)"', line)
            if m:
                read(p.parent / m[1])

    read(path)
    return found


def _scenario_files() -> list[Path]:
    """Files that are scenarios (a `scenario` line), not included preludes."""
    return sorted(p for p in FAMILY.rglob("*.cow")
                  if re.search(r"^scenario\s", p.read_text(encoding="utf-8"), re.M))


def test_units_are_numbered_and_classified() -> None:
    units = _units()
    assert [u["n"] for u in units] == [str(i) for i in range(1, len(units) + 1)]
    for u in units:
        assert u["expressible"] in ("yes", "no"), u
        if u["expressible"] == "no":
            assert u["scenario"] == "—", u
            assert u["note"], f"unit {u['n']} ({u['case']} on {u['variant']}) is not expressible but gives no reason"


def test_units_are_unique() -> None:
    keys = Counter((u["selftest"], u["case"], u["variant"]) for u in _units())
    assert [k for k, n in keys.items() if n > 1] == []


@pytest.mark.parametrize("unit", [u for u in _units() if u["expressible"] == "yes"],
                         ids=lambda u: f"{u['n']}-{u['case'].strip('`')}-{u['variant']}")
def test_expressible_unit_names_a_file_that_asks_it(unit: dict[str, str]) -> None:
    path = _path(unit["scenario"])
    assert path.is_file(), f"unit {unit['n']}: {unit['scenario']} does not exist"
    assert FAMILY in path.parents, f"unit {unit['n']}: {unit['scenario']} is not in scenarios/selftests/"
    text = path.read_text(encoding="utf-8")
    case = unit["case"].strip("`")
    refs = "\n".join(line for line in text.splitlines() if line.startswith("ref "))
    assert unit["selftest"] in refs, f"{path.name}: no ref names {unit['selftest']}"
    assert re.search(rf"\b{re.escape(case)}\b", refs), f"{path.name}: no ref names the case {case}"
    if unit["sweep"] != "—":
        params = _params(path)
        for cond in unit["sweep"].split(","):
            name, _, value = cond.strip().partition("=")
            assert value in params.get(name, set()), (
                f"unit {unit['n']}: {path.name} does not sweep {name}={value} (its params: {params})")


def test_every_family_file_is_in_the_table() -> None:
    named = {_path(u["scenario"]) for u in _units() if u["expressible"] == "yes"}
    missing = [str(p.relative_to(ROOT)) for p in _scenario_files() if p not in named]
    assert missing == []


def test_every_family_file_expects_an_answer_per_era() -> None:
    for path in _scenario_files():
        named = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            m = re.match(r"expect\s+(pass|fail)\s+on\s+([^#]+?)(\s+when\s.*)?$", line.split("#", 1)[0].strip())
            if m:
                named.update(b.strip() for b in m[2].split(","))
        assert set(ERAS) <= named, f"{path.name}: no expect line for {sorted(set(ERAS) - named)}"


def test_summary_counts_are_the_tables() -> None:
    units = _units()
    summary = {r[0].strip("*"): r[1:] for r in _rows(_section(DOC.read_text(encoding="utf-8"), "Summary"))}
    groups: dict[str, list[dict[str, str]]] = {}
    for u in units:
        groups.setdefault(u["selftest"], []).append(u)
    groups["all"] = units
    assert set(summary) == set(groups)
    for name, us in groups.items():
        total, yes, pct = (c.strip("*") for c in summary[name])
        n_yes = sum(u["expressible"] == "yes" for u in us)
        assert (int(total), int(yes)) == (len(us), n_yes), name
        assert pct == f"{100 * n_yes / len(us):.0f}%", name


def _body(path: Path) -> list[str]:
    """The steps and assertions after the include line: the test body (without the
    swap-out check, which only the files that swap out have)."""
    lines = [line.rstrip() for line in path.read_text(encoding="utf-8").splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("include "))
    return [line for line in lines[start + 1:]
            if line and not line.startswith(("#", "expect ")) and "failed(so)" not in line]


def test_a_bodys_variant_files_repeat_it_exactly() -> None:
    """cow.c's body is written in BODY.cow; BODY--single-pte.cow, --partial-shared.cow and --partial-mremap.cow
    repeat it after their own prelude (an include path cannot be a param)."""
    cow = FAMILY / "cow"
    bodies = [p for p in cow.glob("*.cow")  # anon-thp-*: anon_thp_test_cases[] run on the PMD-mapped THP only
              if "--" not in p.stem and not p.stem.startswith(("prelude", "non-anon", "anon-thp"))]
    assert len(bodies) == 14
    for main in bodies:
        for suffix in ("--single-pte", "--partial-shared", "--partial-mremap"):
            other = cow / f"{main.stem}{suffix}.cow"
            assert other.is_file(), other
            assert _body(other) == _body(main), f"{other.name} does not repeat {main.name}'s body"
