"""A scenario's verdict on every release of the timeline: runs of equal
verdicts folded, and each flip named by the change that decides it ("which
commit fixed this, and which stable kernels have it")."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from attrs import frozen

from cowdsl.batch import Workers
from cowdsl.judge import Result
from cowdsl.kernel import releases
from cowdsl.kernel import timeline as tl
from cowdsl.kernel.options import VARIANTS
from cowdsl.kernel.spec import KernelSpec
from cowdsl.kernel.version import Version
from cowdsl.run import run
from cowdsl.scenario import Scenario


@frozen
class Cell:
    version: Version
    spec: KernelSpec
    verdict: str


@frozen
class Flip:
    before: Cell
    after: Cell
    deciding: tuple[tl.Change, ...]  # the changes that alone turn the earlier verdict into the later
    gained: tuple[tl.Change, ...]  # every change between the two
    lost: tuple[tl.Change, ...]


@frozen
class Timeline:
    scenario: Scenario
    cells: tuple[Cell, ...]
    flips: tuple[Flip, ...]

    def runs(self, line: tuple[int, int] | None = None) -> list[tuple[Cell, Cell]]:
        """Consecutive cells with one verdict folded: (first, last); mainline only
        without ``line``."""
        cells = [c for c in self.cells if (c.version.line == line if line else c.version.mainline)]
        out: list[tuple[Cell, Cell]] = []
        for c in cells:
            if out and out[-1][1].verdict == c.verdict:
                out[-1] = (out[-1][0], c)
            else:
                out.append((c, c))
        return out


def spec_of(settings: dict[str, str], version: Version | None = None) -> KernelSpec:
    """The spec of a set of timeline settings (what a version resolves to)."""
    values = dict(settings)
    model = values.pop("era")
    values.update({k: o.choices[0] for k, o in VARIANTS.items() if model in o.eras})
    return KernelSpec(model, tuple(sorted(values.items())), version, str(version or model))


Runner = Callable[[Scenario, KernelSpec], Result]
Verdicts = dict[str, "str | Exception"]  # spec name -> verdict, or what the run raised


def _verdicts(sc: Scenario, runner: Runner, memo: Verdicts | None = None) -> Callable[[KernelSpec], str]:
    memo = {} if memo is None else memo

    def verdict(spec: KernelSpec) -> str:
        if spec.name not in memo:
            memo[spec.name] = runner(sc, spec).verdict
        v = memo[spec.name]
        if isinstance(v, Exception):  # a run that crashed (in a worker): the timeline fails as it would here
            raise v
        return v
    return verdict


def deciding(sc: Scenario, old: Version, new: Version, verdict: Callable[[KernelSpec], str]) -> tuple[tl.Change, ...]:
    """The changes between ``old`` and ``new`` each of which, applied alone to the
    version that lacks it, gives the verdict of the version that has it."""
    gained, lost = tl.between(old, new)
    old_s, new_s = tl.settings(old), tl.settings(new)
    want_new, want_old = verdict(spec_of(new_s)), verdict(spec_of(old_s))
    out = [c for c in gained if c.modelled and verdict(spec_of(old_s | dict(c.sets))) == want_new]
    out += [c for c in lost if c.modelled and verdict(spec_of(new_s | dict(c.sets))) == want_old]
    return tuple(out)


def build(sc: Scenario, versions: Iterable[Version] = releases.ALL, runner: Runner = run,
          verdicts: Verdicts | None = None) -> Timeline:
    """The timeline of ``sc`` over ``versions``; ``verdicts`` (see ``prefetch``) are
    the runs already made, by spec name: the others are made here by ``runner``."""
    verdict = _verdicts(sc, runner, verdicts)
    cells = tuple(Cell(ver, spec_of(tl.settings(ver), ver), verdict(spec_of(tl.settings(ver), ver)))
                  for ver in versions)
    flips = []
    by_line: dict[tuple[int, int] | None, list[Cell]] = {}
    for c in cells:
        by_line.setdefault(None if c.version.mainline else c.version.line, []).append(c)
    for line, seq in by_line.items():
        if line is not None:  # a stable line continues from its mainline release
            base = next((c for c in cells if c.version == Version(*line)), None)
            seq = ([base] if base else []) + seq
        for a, b in zip(seq, seq[1:]):
            if a.verdict != b.verdict:
                gained, lost = tl.between(a.version, b.version)
                flips.append(Flip(a, b, deciding(sc, a.version, b.version, verdict), gained, lost))
    return Timeline(sc, cells, tuple(flips))


def prefetch(scenarios: Sequence[Scenario], versions: Iterable[Version] = releases.ALL,
             workers: Workers | None = None) -> list[Verdicts]:
    """Every run the timelines of ``scenarios`` need, a run per job of ``workers``:
    first each version's spec, then the specs that name the change deciding each
    flip (asked by a dry build, which needs the first verdicts to find the flips)."""
    versions = tuple(versions)
    workers = workers or Workers(1)
    memos: list[Verdicts] = [{} for _ in scenarios]

    def fill(wanted: Iterable[tuple[int, KernelSpec]]) -> None:
        todo = list({(i, s.name): (i, s) for i, s in wanted if s.name not in memos[i]}.values())
        for (i, s), v in zip(todo, workers.map(_verdict, scenarios, todo)):
            memos[i][s.name] = v

    fill((i, spec_of(tl.settings(ver), ver)) for i in range(len(scenarios)) for ver in versions)
    asked: list[tuple[int, KernelSpec]] = []
    for i, sc in enumerate(scenarios):
        def ask(sc: Scenario, spec: KernelSpec, i: int = i) -> Result:
            asked.append((i, spec))
            # a dry build reads the verdict only
            return _Unknown()  # type: ignore[return-value]
        try:
            build(sc, versions, ask, dict(memos[i]))
        except Exception:  # a run that crashed: the real build reports it
            continue
    fill(asked)
    return memos


class _Unknown:
    verdict = "?"


def _verdict(scenarios: Sequence[Scenario], item: tuple[int, KernelSpec]) -> str | Exception:
    """One run of the timeline (a job of the workers): its verdict, or what it raised."""
    i, spec = item
    try:
        return run(scenarios[i], spec).verdict
    except Exception as e:
        return e


def text(t: Timeline) -> str:
    sc = t.scenario
    out = [f"Timeline {sc.name}", f"  file {sc.filename}", "", "mainline:"]
    for first, last in t.runs():
        span = str(first.version) if first is last else f"{first.version} .. {last.version}"
        out.append(f"  {span:<18} {first.verdict}")
    stable = sorted({c.version.line for c in t.cells if not c.version.mainline})
    if stable:
        out += ["", "stable lines:"]
        for line in stable:
            runs = " · ".join(f"{a.version}{'' if a is b else '..' + str(b.version)} {a.verdict}"
                              for a, b in t.runs(line))
            out.append(f"  {line[0]}.{line[1]}.y  {runs}")
    if t.flips:
        out += ["", "flips:"]
        for f in t.flips:
            out.append(f"  {f.before.version} {f.before.verdict} → {f.after.version} {f.after.verdict}")
            named = f.deciding or tuple(c for c in f.gained + f.lost if c.modelled)
            for c in named:
                where = "decides" if c in f.deciding else "between"
                out.append(f"    {where}: {c.commit} {c.title} ({_releases(c)})")
    return "\n".join(out)


def _releases(c: tl.Change) -> str:
    stable = ", ".join(f"{a}.{b}.{s}" for (a, b), s in c.stable)
    return f"mainline {c.mainline}" + (f"; stable {stable}" if stable else "")


def as_json(t: Timeline) -> dict:
    return {
        "scenario": t.scenario.name,
        "file": t.scenario.filename,
        "cells": [{"version": str(c.version), "spec": c.spec.name, "verdict": c.verdict} for c in t.cells],
        "flips": [{"from": str(f.before.version), "to": str(f.after.version),
                   "verdicts": [f.before.verdict, f.after.verdict],
                   "deciding": [c.commit for c in f.deciding],
                   "between": [c.commit for c in f.gained + f.lost]} for f in t.flips],
    }


_COLOURS = {"pass": "#b7e1a1", "fail": "#f4a6a6", "unknown": "#f6e3a1", "skip": "#dddddd"}


def dot(t: Timeline) -> str:
    """Graphviz: a row per release line (mainline first), one cell per version,
    coloured by verdict."""
    rows = [("mainline", [c for c in t.cells if c.version.mainline])]
    rows += [(f"{a}.{b}.y", [c for c in t.cells if c.version.line == (a, b) and not c.version.mainline])
             for a, b in sorted({c.version.line for c in t.cells if not c.version.mainline})]
    html = ['<<table border="0" cellborder="1" cellspacing="0">']
    for name, cells in rows:
        tds = "".join(f'<td bgcolor="{_COLOURS.get(c.verdict, "#ffffff")}">{c.version}</td>' for c in cells)
        html.append(f"<tr><td><b>{name}</b></td>{tds}</tr>")
    html.append("</table>>")
    title = t.scenario.name.replace('"', "'")
    return ("digraph timeline {\n  node [shape=plaintext fontname=Helvetica fontsize=10];\n"
            f'  label="{title}"; labelloc=t;\n  t [label={"".join(html)}];\n}}\n')
