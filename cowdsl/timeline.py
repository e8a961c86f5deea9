"""A scenario's verdict on every release of the timeline: runs of equal
verdicts folded, and each flip named by the change that decides it ("which
commit fixed this, and which stable kernels have it")."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

from attrs import frozen

from cowdsl.batch import Workers, run_cost
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


@functools.cache
def _settings(ver: Version) -> dict[str, str]:
    """tl.settings(ver), once per version: every timeline asks it of every release (and
    of both ends of each flip), and it walks the whole list of changes.  Shared: not
    to be changed (``spec_of`` and ``deciding`` make new dicts)."""
    return tl.settings(ver)


@functools.cache
def version_spec(ver: Version) -> KernelSpec:
    """The spec a release resolves to on the timeline."""
    return spec_of(_settings(ver), ver)


@functools.cache
def between(old: Version, new: Version) -> tuple[tuple[tl.Change, ...], tuple[tl.Change, ...]]:
    """tl.between(old, new), once per pair."""
    return tl.between(old, new)


@functools.cache
def _name(spec: KernelSpec) -> str:
    """spec.name, once per spec: a timeline asks the verdict of each spec several
    times (a release's, then each flip's), and the name is worked out anew each time."""
    return spec.name


Runner = Callable[[Scenario, KernelSpec], Result]
Verdicts = dict[str, "str | Exception"]  # spec name -> verdict, or what the run raised


def _verdicts(sc: Scenario, runner: Runner, memo: Verdicts | None = None) -> Callable[[KernelSpec], str]:
    memo = {} if memo is None else memo

    def verdict(spec: KernelSpec) -> str:
        name = _name(spec)
        if name not in memo:
            memo[name] = runner(sc, spec).verdict
        v = memo[name]
        if isinstance(v, Exception):  # a run that crashed (in a worker): the timeline fails as it would here
            raise v
        return v
    return verdict


def deciding(sc: Scenario, old: Version, new: Version, verdict: Callable[[KernelSpec], str]) -> tuple[tl.Change, ...]:
    """The changes between ``old`` and ``new`` each of which, applied alone to the
    version that lacks it, gives the verdict of the version that has it."""
    gained, lost = between(old, new)
    old_s, new_s = _settings(old), _settings(new)
    want_new, want_old = verdict(spec_of(new_s)), verdict(spec_of(old_s))
    out = [c for c in gained if c.modelled and verdict(spec_of(old_s | dict(c.sets))) == want_new]
    out += [c for c in lost if c.modelled and verdict(spec_of(new_s | dict(c.sets))) == want_old]
    return tuple(out)


def build(sc: Scenario, versions: Iterable[Version] = releases.ALL, runner: Runner = run,
          verdicts: Verdicts | None = None) -> Timeline:
    """The timeline of ``sc`` over ``versions``; ``verdicts`` (see ``prefetch``) are
    the runs already made, by spec name: the others are made here by ``runner``."""
    verdict = _verdicts(sc, runner, verdicts)
    cells = tuple(Cell(ver, version_spec(ver), verdict(version_spec(ver))) for ver in versions)
    flips = []
    by_line: dict[tuple[int, int] | None, list[Cell]] = {}
    at: dict[Version, Cell] = {}
    for c in cells:
        by_line.setdefault(None if c.version.mainline else c.version.line, []).append(c)
        at.setdefault(c.version, c)
    for line, seq in by_line.items():
        if line is not None:  # a stable line continues from its mainline release
            base = at.get(Version(*line))
            seq = ([base] if base else []) + seq
        for a, b in zip(seq, seq[1:]):
            if a.verdict != b.verdict:
                gained, lost = between(a.version, b.version)
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
        todo = list({(i, _name(s)): (i, s) for i, s in wanted if _name(s) not in memos[i]}.values())
        # the specs are shared like the scenarios (a few dozen, each asked of every scenario): a job is two indices
        specs = {_name(s): s for _, s in todo}
        column = {name: len(scenarios) + k for k, name in enumerate(specs)}
        items = [(i, column[_name(s)]) for i, s in todo]
        cost = [run_cost(scenarios[i]) for i, _ in todo]
        for (i, s), v in zip(todo, workers.map(_verdict, (*scenarios, *specs.values()), items, cost=cost)):
            memos[i][_name(s)] = v

    fill((i, version_spec(ver)) for i in range(len(scenarios)) for ver in versions)
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


def _verdict(shared: Sequence[Scenario | KernelSpec], item: tuple[int, int]) -> str | Exception:
    """One run of the timeline (a job of the workers): shared[i] on shared[k], its
    verdict or what it raised."""
    i, k = item
    sc, spec = shared[i], shared[k]
    assert isinstance(sc, Scenario) and isinstance(spec, KernelSpec)
    try:
        return run(sc, spec).verdict
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
