"""cowdsl benchmarks: cold start, checking, running the scenario suite, one 20-step run.

Run from anywhere:  python benchmarks/bench.py [--runs N] [--no-write]

Writes benchmarks/results.json next to this file and prints a short table.
Each figure is explained in benchmarks/README.md.  This is not a test: it
reports against the targets but never fails because of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TWENTY = HERE / "twenty_steps.cow"
SCENARIOS = ROOT / "scenarios"

TARGETS = {"cold_version_s": 0.3, "run_20_steps_ms": 20.0}


def cowdsl_command() -> tuple[list[str], str]:
    """How to start cowdsl: its console script beside this Python (no pyenv or venv shim
    in between), else the one on PATH, else ``python -m cowdsl``; and how to describe it."""
    for candidate in (Path(sys.executable).parent / "cowdsl", shutil.which("cowdsl")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            via = "console script beside the interpreter" if Path(candidate).parent == Path(sys.executable).parent \
                else "console script on PATH"
            return [str(candidate)], via
    return [sys.executable, "-m", "cowdsl"], "python -m cowdsl"


def wall(cmd: list[str], env=None, cwd=ROOT) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    return time.perf_counter() - t0, p


def median_wall(cmd: list[str], runs: int, env_for_run=None) -> dict:
    times = []
    rc = None
    for i in range(runs):
        env = env_for_run(i) if env_for_run else None
        t, p = wall(cmd, env)
        times.append(t)
        rc = p.returncode
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "max_s": round(max(times), 4), "runs": runs, "exit_status": rc}


def bench_cold(cmd: list[str], runs: int) -> dict:
    out = {"version": median_wall(cmd + ["--version"], runs)}
    rel = str(TWENTY.relative_to(ROOT))
    # Lark keeps its LALR tables in the temp dir: warm a private one once, then time
    # `check` with it; and time `check` with a fresh, empty temp dir each run (no cache).
    with tempfile.TemporaryDirectory(prefix="cowdsl-bench-") as warm:
        env = dict(os.environ, TMPDIR=warm)
        _, p = wall(cmd + ["check", rel], env)
        if p.returncode != 0:
            raise SystemExit(f"cowdsl check {rel} failed:\n{p.stderr}")
        out["check_warm_cache"] = median_wall(cmd + ["check", rel], runs, lambda i: env)
    cold_dirs = [tempfile.mkdtemp(prefix="cowdsl-bench-nocache-") for _ in range(runs)]
    try:
        out["check_no_cache"] = median_wall(cmd + ["check", rel], runs,
                                            lambda i: dict(os.environ, TMPDIR=cold_dirs[i]))
    finally:
        for d in cold_dirs:
            shutil.rmtree(d, ignore_errors=True)
    return out


def bench_suite(cmd: list[str]) -> dict:
    """`cowdsl run scenarios/`: whatever is there now (the suite grows)."""
    files = sorted(SCENARIOS.rglob("*.cow")) if SCENARIOS.is_dir() else []
    if not files:
        return {"scenarios": 0, "note": "scenarios/ has no .cow files"}
    wall(cmd + ["check", "scenarios"])  # warm the Lark cache
    t, p = wall(cmd + ["run", "scenarios"])
    summary = next((ln for ln in reversed(p.stdout.splitlines()) if " on " in ln and "scenario" in ln), "")
    return {"wall_s": round(t, 4), "files": len(files), "summary": summary.strip(), "exit_status": p.returncode}


def bench_in_process(runs: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from cowdsl.load import load_text
    from cowdsl.run import run

    source = TWENTY.read_text()
    name = str(TWENTY.relative_to(ROOT))
    t0 = time.perf_counter()
    sc = load_text(source, name)  # the first parse builds (or loads) the Lark parser
    first_parse = time.perf_counter() - t0
    steps = len(sc.steps)
    r = run(sc)
    if not r.ok:
        raise SystemExit(f"{name} is not as expected on {r.backend}: got {r.verdict}")

    def per_call_ms(fn, number) -> float:
        samples = timeit.repeat(fn, number=number, repeat=max(5, runs))
        return round(statistics.median(samples) / number * 1000, 3)

    return {
        "scenario": name,
        "steps": steps,
        "backend": r.backend,
        "run_ms": per_call_ms(lambda: run(sc), 50),
        "parse_check_ms": per_call_ms(lambda: load_text(source, name), 20),
        "first_parse_check_ms": round(first_parse * 1000, 3),
    }


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        from cowdsl import __version__

        info["cowdsl"] = __version__
    except ImportError:
        pass
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
        if rev.returncode == 0:
            info["git"] = rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except OSError:
        pass
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="subprocess runs per cold-start figure (default 10)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave results.json alone")
    args = ap.parse_args(argv)

    cmd, via = cowdsl_command()
    cold = bench_cold(cmd, args.runs)
    suite = bench_suite(cmd)
    inproc = bench_in_process(args.runs)
    results = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": {"cowdsl": via},
        "targets": TARGETS,
        "cold_start": cold,
        "suite": suite,
        "in_process": inproc,
    }

    def row(label, value, unit, target=None):
        t = "" if target is None else (f"target < {target} {unit}: " + ("ok" if value < target else "MISSED"))
        print(f"  {label:<44} {value:>9.3f} {unit:<3} {t}")

    print(f"cowdsl benchmarks ({results['machine']['platform']}, Python {results['machine']['python']}, "
          f"{results['machine']['cpu_count']} CPUs; cowdsl via {via})")
    row("cold `cowdsl --version` (median wall)", cold["version"]["median_s"], "s", TARGETS["cold_version_s"])
    row("cold `cowdsl check` 1 file, Lark cache warm", cold["check_warm_cache"]["median_s"], "s")
    row("cold `cowdsl check` 1 file, no Lark cache", cold["check_no_cache"]["median_s"], "s")
    if suite.get("files"):
        row(f"`cowdsl run scenarios/` ({suite['files']} files, wall)", suite["wall_s"], "s")
        print(f"  {'':<44} {suite['summary']}")
    else:
        print(f"  `cowdsl run scenarios/`: {suite['note']}")
    row(f"in-process run() of {inproc['steps']} steps (median)", inproc["run_ms"], "ms", TARGETS["run_20_steps_ms"])
    row("in-process parse+check of it (median)", inproc["parse_check_ms"], "ms")
    row("in-process first parse+check (parser load)", inproc["first_parse_check_ms"], "ms")
    if not args.no_write:
        out = HERE / "results.json"
        kept = json.loads(out.read_text()) if out.exists() else {}  # explore.py's figures live here too
        out.write_text(json.dumps({**kept, **results}, indent=2) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
