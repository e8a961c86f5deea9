"""Cross-check a model against the kernel: every scenario on a model (`anon-exclusive` by
default) and on `native`.

For each assertion: the model's answer, the kernel's, and agree / DISAGREE /
unwitnessed / skip (the reason: a step or fact the native backend cannot do or
see, or one the model cannot decide); ``agreement`` decides, the one rule for
this report and for the recorded tables' test.  A disagreement is printed with
the assertion, the values each side looked at, and, given a ``trace`` renderer
(the CLI passes ``cowdsl.report.text.trace``), both traces.  With ``repeat=N``
the native side runs N times and each assertion gets a histogram of its
outcomes, as litmus7 prints one.

A scenario with a `par` block runs natively N times (``repeat``, else
``cowdsl.native.PAR_REPEAT``), its actors on real threads and processes released
together with seeded skews (``seed``): what the runs saw is "witnessed K of N",
"a violation seen (run k)" or "none in N runs", never a proof.  A model verdict
the runs did not happen to show is "unwitnessed", neither agreement nor
disagreement.

    cowdsl crosscheck [DIR|FILE ...] [--repeat N] [--seed S] [--model SPEC] [--format text|json]
                      [--kernel VERSION|IMAGE [--modules DIR] [--need NEED]] [--record [DIR]]

``--model running`` is the model of the running kernel's own version (read from
``/proc/version``: Debian's 5.10.0-32-cloud-amd64 is 5.10.223).  ``--kernel``
boots another kernel under QEMU (``cowdsl.kernels``), runs this cross-check
inside it against the model of *that* kernel's version, and prints the same
report here.  ``--record`` writes what the kernel showed, per file and
assertion, to ``tests/kernels/VERSION.json`` (``cowdsl.kernels.tables``).

Exit status: 1 on any disagreement, 2 on a usage error (an unknown model:
nothing runs; a kernel that cannot be booted), or when a file does not load or
a run crashes (and nothing disagreed), 0 otherwise.

This module sits above both runners (``cowdsl.run`` and ``cowdsl.native``) and
below the reports, which is why the trace renderer is passed in.  A run is
collected into a ``Report`` (plain data, the same in JSON), then printed.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from cowdsl import kernels
from cowdsl.errors import CowError
from cowdsl.judge import Check, Result, sampled
from cowdsl.kernel.eras import NATIVE
from cowdsl.kernel.spec import KernelSpec, resolve
from cowdsl.kernel.spec import check as spec_problem
from cowdsl.kernels import tables
from cowdsl.kernels import version as kversion
from cowdsl.load import find, load_all
from cowdsl.native import DEFAULT_TIMEOUT, PAR_REPEAT, native_runs, probe
from cowdsl.native.plan import guest_needs
from cowdsl.run import run
from cowdsl.scenario import ALWAYS, NEVER, SOMETIMES, Scenario

MODEL = "anon-exclusive"
#: ``--model running``: the model of the version of the kernel this runs on
RUNNING = "running"
#: the guest's default needs for ``--kernel``: the swap scenarios run there, and `thp` mappings
#: (MADV_HUGEPAGE regions; every other native mapping is MADV_NOHUGEPAGE)
DEFAULT_NEEDS = ("swap", "thp=madvise")
JSON_FORMAT = 1


def _word(h: bool | None) -> str:
    return "skip" if h is None else ("true" if h else "false")


def _values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "(none)"


AGREE, DISAGREE, UNWITNESSED, SKIP = "agree", "DISAGREE", "unwitnessed", "skip"


def agreement(quantifier: str, model: bool | None, native: Sequence[bool | None], *,
              model_one_execution: bool) -> str:
    """Whether the kernel's runs agree with the model's verdict on one assertion.

    ``native`` holds each run's answer (None: the run could not decide).  When the model ran
    one execution (``model_one_execution``: a sequential scenario, which the model decides
    deterministically), its verdict speaks of that execution, so every decided run must
    answer the same: AGREE, else DISAGREE.  When the model explored several executions, its
    verdict speaks of some or all of them, and N real runs are a sample:

    - `always`/`never`: a violation seen where the model says the assertion holds is a
      DISAGREE; none seen where the model says it fails is UNWITNESSED (the runs did not
      happen to take the failing way), never AGREE;
    - `sometimes`: witnessed where the model says it fails (no execution does it) is a
      DISAGREE; not witnessed where the model says it holds is UNWITNESSED.

    SKIP when either side decided nothing.
    """
    decided = [h for h in native if h is not None]
    if model is None or not decided:
        return SKIP
    if model_one_execution or quantifier not in (ALWAYS, NEVER, SOMETIMES):
        return AGREE if set(decided) == {model} else DISAGREE
    if sampled.holds(quantifier, decided) == model:
        return AGREE
    # the runs differ from the model: contradicted by what they showed, or only short of it
    return DISAGREE if sampled.violations(quantifier, decided) else UNWITNESSED


def one_execution(model_result: Result) -> bool:
    """Whether the model decided ``model_result`` on a single execution (a sequential run: no
    exploration), so that its verdict is about every execution of the scenario."""
    return model_result.exploration is None


class Row:
    """One assertion: the model's check, the native run(s)' checks, and the status (``agreement``)."""

    def __init__(self, sc: Any, assertion: Any, model_check: Check, native_checks: Sequence[Check], *,
                 model_one_execution: bool = True, seen: str | None = None):
        self.sc = sc
        self.assertion = assertion
        self.model = model_check
        self.natives = native_checks
        self.hist = Counter(_word(c.holds) for c in native_checks)
        self.seen = seen  # what the runs showed, in words ("witnessed 3 of 20"), when repeated
        self.status = agreement(assertion.quantifier, model_check.holds, [c.holds for c in native_checks],
                                model_one_execution=model_one_execution)
        self.reason = ""
        if model_check.holds is None:
            self.reason = "model: " + model_check.values.get("unsupported", "cannot decide")
        elif self.status == SKIP:
            reasons = {c.values.get("unsupported", "native cannot decide") for c in native_checks}
            self.reason = "; ".join(sorted(reasons))
        elif self.status == UNWITNESSED:
            self.reason = (f"the model says it {'holds' if model_check.holds else 'fails'} in some execution; "
                           f"native: {seen or 'not seen'}")


def _native_reason(checks: Sequence[Check]) -> str:
    decided = [c for c in checks if c.holds is not None]
    if decided:
        return ""
    return "; ".join(sorted({c.values.get("unsupported", "native cannot decide") for c in checks}))


@dataclass
class Report:
    """One cross-check, as data: what the text shows and the JSON holds."""

    model: str  # the model's label (``5.10.223 (early-cow:...)``)
    host: str  # what the native side ran on (``Host.describe()``)
    kernel: dict[str, str]  # release, proc_version, version: the kernel the native side ran on
    repeat: int = 1  # native runs of a sequential scenario
    par_repeat: int = PAR_REPEAT  # ... of a scenario with a `par` block
    seed: int = 0  # the par blocks' skews are drawn from it
    loaded: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    scenario_skips: list[list[str]] = field(default_factory=list)  # [file, reason]
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    guest: dict[str, Any] | None = None  # --kernel: how the guest ran (accel, needs, seconds, notes)

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.rows)

    @property
    def exit_code(self) -> int:
        if self.count(DISAGREE):
            return 1
        return 2 if self.errors else 0

    def to_json(self) -> dict[str, Any]:
        return {"format": JSON_FORMAT, **asdict(self), "exit_code": self.exit_code,
                "summary": {"scenarios": self.loaded, "run_natively": self.loaded - len(self.scenario_skips),
                            "skipped_whole": len(self.scenario_skips), "assertions": len(self.rows),
                            "agree": self.count(AGREE), "disagree": self.count(DISAGREE),
                            "unwitnessed": self.count(UNWITNESSED), "skipped": self.count(SKIP),
                            "errors": len(self.errors)}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        if data.get("format") != JSON_FORMAT:
            raise ValueError(f"not a cowdsl crosscheck report of format {JSON_FORMAT}")
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


def _row(r: Row, trace: Callable[[Result], str] | None, on_model: Result, natives: list[Result]) -> dict[str, Any]:
    out: dict[str, Any] = {
        # Scenario.where: a swept file's scenarios are rows of their own (x.cow[kind=thp])
        "file": r.sc.where, "line": r.assertion.span.line, "assertion": r.assertion.text,
        "quantifier": r.assertion.quantifier,
        "model": r.model.holds, "native": [c.holds for c in r.natives],
        "native_reason": _native_reason(r.natives), "status": r.status, "reason": r.reason,
    }
    if r.seen is not None:
        out["seen"] = r.seen
    if r.status == DISAGREE:
        out["model_values"] = {k: str(v) for k, v in r.model.values.items()}
        out["native_values"] = [{k: str(v) for k, v in n.values.items()} for n in r.natives]
        if trace is not None:  # the native run that showed the violation or witness
            out["traces"] = [trace(on_model), trace(natives[sampled.shown(r.sc, natives)])]
    return out


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def resolve_model(spec: str) -> str:
    """``running`` as the running kernel's version (``5.10.223``); any other spec unchanged."""
    return kversion.running() if spec == RUNNING else spec


def model_problem(spec: str) -> str | None:
    """None when ``spec`` names a model backend; else a one-line message (with a
    did-you-mean when there is one)."""
    if spec == NATIVE:
        return "--model native: the model side must be a model backend, not this machine's kernel"
    try:
        real = resolve_model(spec)
    except ValueError as why:
        return f"--model {spec}: {why}"
    bad = spec_problem(real)
    if bad is None:
        return None
    shown = spec if real == spec else f"{spec} ({real})"
    return f"--model {shown}: " + bad.message + (f"; {bad.hint}" if bad.hint else "") + " (see `cowdsl backends`)"


def collect(paths: Iterable[str], repeat: int | None = None, timeout: float | None = None, model: str = MODEL,
            trace: Callable[[Result], str] | None = None, seed: int = 0) -> Report:
    """Run every scenario under ``paths`` on the model and on this kernel (``model`` already checked):
    natively ``repeat`` times (default: once, PAR_REPEAT times with a `par` block)."""
    t0 = time.monotonic()
    paths = list(paths)
    spec = resolve(resolve_model(model))
    host = probe()
    try:
        me = kversion.identity()
    except ValueError:
        me = {"release": os.uname().release, "version": ""}
    report = Report(model=spec.label, host=host.describe(), kernel=me, repeat=max(1, repeat or 1),
                    par_repeat=max(1, repeat or PAR_REPEAT), seed=seed)
    files = [f for f in find(paths) if not f.is_dir()]
    if not files:
        report.errors.append(f"no .cow files found in {', '.join(map(str, paths))}")
    for f in files:
        try:
            scenarios = load_all(f)
        except CowError as e:
            report.errors.append(f"{f}: does not load ({len(e.diagnostics)} error(s))")
            continue
        except OSError as e:
            report.errors.append(f"{f}: {e.strerror or e}")
            continue
        for sc in scenarios:  # one per combination of a swept file's params
            _crosscheck(report, sc, spec, timeout, trace)
    report.seconds = time.monotonic() - t0
    return report


def _crosscheck(report: Report, sc: Scenario, spec: KernelSpec, timeout: float | None,
                trace: Callable[[Result], str] | None) -> None:
    """One scenario on the model and natively, its rows added to ``report``."""
    report.loaded += 1
    where = sc.where  # a swept file's scenario: x.cow[kind=thp]
    try:
        on_model = run(sc, spec)
        runs = native_runs(sc, timeout=timeout or DEFAULT_TIMEOUT, seed=report.seed,
                           repeat=report.par_repeat if sc.concurrent else report.repeat)
        natives = list(runs.results)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # a crash in a backend: report it, go on
        report.errors.append(f"{where}: internal error: {type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stderr)
        return
    if all(n.verdict == "skip" for n in natives) and all(
            c.values.get("unsupported", "").startswith(("unsupported on", "exceeds", "native run aborted"))
            for n in natives for c in n.checks):
        report.scenario_skips.append(
            [where, natives[0].checks[0].values["unsupported"] if natives[0].checks else "?"])
    single = one_execution(on_model)
    for i, a in enumerate(sc.assertions):
        seen = runs.result.checks[i].values.get(sampled.key(a)) if len(natives) > 1 or sc.concurrent else None
        r = Row(sc, a, on_model.checks[i], [n.checks[i] for n in natives], model_one_execution=single, seen=seen)
        report.rows.append(_row(r, trace, on_model, natives))


def _assertion_text(row: dict[str, Any]) -> str:
    """The assertion as the table shows it: with its quantifier unless it is `always`."""
    q = row.get("quantifier", ALWAYS)
    return row["assertion"] if q == ALWAYS else f"{q}: {row['assertion']}"


def _status_text(row: dict[str, Any]) -> str:
    """``agree``, ``agree (witnessed 3 of 20)``, ``skip (why)`` when the reason is short."""
    if row["status"] == SKIP:
        return SKIP + (f" ({row['reason']})" if len(row["reason"]) < 70 else "")
    return row["status"] + (f" ({row['seen']})" if row.get("seen") else "")


def _native_text(row: dict[str, Any]) -> str:
    natives = [_word(h) for h in row["native"]]
    if len(natives) == 1:
        return natives[0]
    hist = Counter(natives)
    return " ".join(f"{k}:{hist[k]}" for k in ("true", "false", "skip") if hist[k])


def render(report: Report, stream: IO[str]) -> None:
    """The report as text: header, table, disagreements, skips, errors, summary."""
    def say(s: str = "") -> None:
        stream.write(s + "\n")

    g = report.guest
    where = f"{report.host}; under QEMU: {g['kernel']}" if g else report.host
    say(f"cross-check: {report.model} (model) against native ({where})"
        + (f", native runs {report.repeat} times" if report.repeat > 1 else "")
        + (f", a scenario with a `par` block {report.par_repeat} times (seed {report.seed})"
           if any(r.get("seen") for r in report.rows) else ""))
    if g:
        say(f"  guest: {g.get('source', '?')}, {g.get('accel', '?')}, needs: {', '.join(g.get('needs', [])) or 'none'}"
            f", {g.get('seconds', 0):.0f} s (boot {g.get('boot_seconds') or 0:.0f} s)")
        for n in g.get("notes", []):
            say(f"  guest note: {n}")
    rows = report.rows
    if rows:
        table = [["scenario", "line", "assertion", "model", "native", "status"]]
        for r in rows:
            table.append([r["file"], str(r["line"]), _assertion_text(r), _word(r["model"]), _native_text(r),
                          _status_text(r)])
        say()
        for line in _table(table):
            say(line)

    bad = [r for r in rows if r["status"] == DISAGREE]
    for r in bad:
        say()
        say(f"DISAGREEMENT: {r['file']}:{r['line']}: assert {_assertion_text(r)}"
            + (f": native: {r['seen']}" if r.get("seen") else ""))
        say(f"  model ({report.model}): {_word(r['model'])}; values: {_values(r.get('model_values', {}))}")
        nv = r.get("native_values") or [{}] * len(r["native"])
        for k, (h, v) in enumerate(zip(r["native"], nv)):
            if k == 0 or v != nv[0]:
                say(f"  native{'' if len(r['native']) == 1 else f' run {k + 1}'}: {_word(h)}; values: {_values(v)}")
        for t in r.get("traces", []):
            say("  " + t.replace("\n", "\n  "))

    unseen = [r for r in rows if r["status"] == UNWITNESSED]
    if unseen:
        say()
        say("unwitnessed (not a disagreement; not an agreement either):")
        for r in unseen:
            say(f"  {r['file']}:{r['line']}: assert {_assertion_text(r)}: {r['reason']}")
    skipped = [r for r in rows if r["status"] == SKIP]
    if report.scenario_skips or skipped:
        say()
        say("skipped:")
        seen = set()
        for name, why in report.scenario_skips:
            say(f"  {name}: whole scenario: {why}")
            seen.add(name)
        for r in skipped:
            if r["file"] not in seen:
                say(f"  {r['file']}:{r['line']}: assert {r['assertion']}: {r['reason']}")
    for message in report.errors:
        say(f"error: {message}")
    n_sc = report.loaded
    n_skip = len(report.scenario_skips)
    say()
    say(f"{n_sc} scenario{'s' if n_sc != 1 else ''} ({n_sc - n_skip} run natively, "
        f"{n_skip} skipped whole), {len(rows)} assertions: {report.count(AGREE)} agree, {len(bad)} disagree, "
        + (f"{len(unseen)} unwitnessed, " if unseen else "")
        + f"{report.count(SKIP)} skipped" + (f", {len(report.errors)} error(s)" if report.errors else ""))


def crosscheck(paths: Iterable[str], repeat: int | None = None, out: IO[str] | None = None,
               timeout: float | None = None, model: str = MODEL, trace: Callable[[Result], str] | None = None,
               err: IO[str] | None = None, fmt: str = "text", record: str | None = None, seed: int = 0) -> int:
    """Run every scenario under ``paths`` on the model and on this kernel; print the comparison.

    An unknown ``model`` is a usage error: a one-line message on ``err``
    (stderr) and exit status 2, before anything is loaded or run.  ``trace``
    renders a result's trace for each disagreement (none shown without it).
    ``fmt``: "text" or "json" (the ``Report``); ``record``: a folder to write
    the kernel's table into (``cowdsl.kernels.tables``).
    """
    problem = model_problem(model)
    if problem is not None:
        (err or sys.stderr).write(f"cowdsl crosscheck: {problem}\n")
        return 2
    report = collect(paths, repeat, timeout, model, trace, seed)
    return finish(report, out, err, fmt, record)


def finish(report: Report, out: IO[str] | None, err: IO[str] | None, fmt: str, record: str | None) -> int:
    """Print ``report`` (text or JSON), record it when asked, and give the exit status."""
    stream = out or sys.stdout
    if fmt == "json":
        stream.write(json.dumps(report.to_json(), indent=1) + "\n")
    else:
        render(report, stream)
    if record is not None:
        path = tables.write(report.to_json(), record or None)
        (err or sys.stderr).write(f"cowdsl crosscheck: recorded {path}\n")
    return report.exit_code


def scenario_needs(paths: Iterable[str]) -> list[str]:
    """The guest needs of the scenarios under ``paths`` beyond ``DEFAULT_NEEDS`` (hugetlb, ksm):
    switched on only for a run that has such scenarios."""
    needs: set[str] = set()
    for f in find(paths):
        if f.is_dir():
            continue
        try:
            for sc in load_all(f):
                needs |= guest_needs(sc)
        except (CowError, OSError):
            continue  # the guest reports the file
    return sorted(needs)


def crosscheck_kernel(kernel: str, paths: Iterable[str], *, modules: str | None = None, repeat: int | None = None,
                      seed: int = 0,
                      model: str = RUNNING, needs: Sequence[str] | None = None, smp: int = 1,
                      memory: str = "512M", boot_timeout: float | None = None, out: IO[str] | None = None,
                      err: IO[str] | None = None, fmt: str = "text", record: str | None = None,
                      say: Callable[[str], None] | None = None) -> int:
    """Boot ``kernel`` (a prepared version such as ``6.1``, or an image path, with ``modules``)
    under QEMU, run this cross-check inside it against ``model`` (by default the
    model of the guest's own version), and print the report here.

    The guest runs ``cowdsl crosscheck PATHS --format json --model MODEL`` (never
    with ``--kernel``: it does not recurse); its report comes back on the console.
    A kernel that cannot be booted, or a guest that gives no report, is exit 2.
    """
    errs = err or sys.stderr
    paths = list(paths)
    if model != RUNNING:
        problem = model_problem(model)
        if problem is not None:
            errs.write(f"cowdsl crosscheck: {problem}\n")
            return 2
    if needs is None:  # the defaults, and what the scenarios need
        needs = [*DEFAULT_NEEDS, *scenario_needs(paths)]
    plain = [n for n in needs if n != "none"]
    try:
        k = kernels.prepare(kernel, modules) if modules else kernels.resolve(kernel)
        argv = ["crosscheck", *paths, "--format", "json", "--model", model, "--seed", str(seed)]
        if repeat is not None:
            argv += ["--repeat", str(max(1, repeat))]
        kw: dict[str, Any] = {"needs": frozenset(plain), "smp": smp, "memory": memory, "say": say}
        if boot_timeout is not None:
            kw["timeout"] = boot_timeout
        r = kernels.run_in_guest(k, argv, **kw)
    except (kernels.KernelError, ValueError) as e:
        errs.write(f"cowdsl crosscheck: --kernel {kernel}: {e}\n")
        return 2
    if r.stderr.strip():
        errs.write("".join(f"guest: {ln}\n" for ln in r.stderr.rstrip().splitlines()))
    try:
        report = Report.from_json(json.loads(r.stdout))
    except ValueError:
        tail = (r.stdout.strip() or r.stderr.strip() or "no output").splitlines()[-1][:300]
        errs.write(f"cowdsl crosscheck: --kernel {kernel}: the guest gave no report (exit {r.exit_code}): {tail}\n")
        return 2
    report.guest = {"kernel": f"Linux {report.kernel.get('version') or '?'} ({r.kernel})", "source": k.source,
                    "accel": r.accel, "needs": sorted(plain), "smp": smp, "memory": memory,
                    "seconds": round(r.seconds, 1), "boot_seconds": round(r.boot_seconds or 0, 1), "notes": r.notes}
    return finish(report, out, err, fmt, record)
