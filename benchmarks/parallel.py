"""-j N against -j 1, side by side: `cowdsl run`, `run --backend all` and `timeline`
over scenarios/, each command started as a user starts it.

Run from anywhere:  python benchmarks/parallel.py [--runs N] [--jobs N] [--only run,matrix,timeline]
                                                   [--no-write] [--json FILE]

For each command, RUNS pairs: -j 1 then -j N, one after the other, so that the
two runs of a pair share the machine's load; the speed-up is taken pair by pair
(-j 1's wall over -j N's) and quoted as the median, with min and max.  Each
run's wall seconds are a monotonic clock around the whole process (start-up
included), its CPU seconds the kernel's accounting of the finished child
(os.wait4).  The load average (/proc/loadavg, 1 minute) is read before each
pair: on a shared machine it says how much the figures can be trusted.  The
two outputs of the first pair must be the same (the runs' own times masked):
a difference is printed and the command exits 1.

The cowdsl measured is the one of this tree (PYTHONPATH is set to it), so a
checkout of an older commit measures that commit.  Figures go to
benchmarks/results.json, key "parallel".  A measurement, not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

COMMANDS = {
    "run": ["run", "scenarios/"],
    "matrix": ["run", "--backend", "all", "scenarios/"],
    "timeline": ["timeline", "scenarios/"],
}
TIMES = re.compile(rb"\d+\.\d+s\b")  # `run` prints each file's time


def loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def measure(argv: list[str]) -> tuple[float, float, bytes, int]:
    """One run: (wall s, user+system s, its standard output, exit status)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "cowdsl", *argv], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read() if p.stdout else b""
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    return wall, usage.ru_utime + usage.ru_stime, out, p.returncode


def spread(xs: list[float], digits: int = 3) -> dict:
    return {"min": round(min(xs), digits), "median": round(statistics.median(xs), digits),
            "max": round(max(xs), digits)}


def side_by_side(name: str, argv: list[str], jobs: int, runs: int) -> dict:
    one_cmd, n_cmd = [argv[0], "-j", "1", *argv[1:]], [argv[0], "-j", str(jobs), *argv[1:]]
    measure(one_cmd)  # warm-up (Lark's tables, the page cache): not counted
    walls: dict[str, list[float]] = {"1": [], "n": []}
    cpus: dict[str, list[float]] = {"1": [], "n": []}
    loads, same, status = [], True, None
    for k in range(runs):
        loads.append(loadavg())
        w1, c1, out1, s1 = measure(one_cmd)
        wn, cn, outn, sn = measure(n_cmd)
        walls["1"].append(w1)
        walls["n"].append(wn)
        cpus["1"].append(c1)
        cpus["n"].append(cn)
        if k == 0:
            same = TIMES.sub(b"", out1) == TIMES.sub(b"", outn) and s1 == sn
            status = s1
    speedups = [a / b for a, b in zip(walls["1"], walls["n"])]
    known = [x for x in loads if x is not None]
    return {
        "command": "cowdsl " + " ".join(argv), "jobs": jobs, "runs": runs, "exit_status": status,
        "same_output": same,
        "wall_s_j1": spread(walls["1"]), f"wall_s_j{jobs}": spread(walls["n"]),
        "cpu_s_j1": spread(cpus["1"]), f"cpu_s_j{jobs}": spread(cpus["n"]),
        "speedup": spread(speedups, 2),
        "loadavg_1min": spread(known, 2) if known else None,
    }


def commit() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "cowdsl"], cwd=ROOT, capture_output=True,
                               text=True)
    except OSError:
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="pairs per command (default 7)")
    ap.add_argument("--jobs", type=int, default=2, help="N of -j N (default 2)")
    ap.add_argument("--only", default=",".join(COMMANDS), help="which commands: run,matrix,timeline (default all)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave results.json alone")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    rows = {}
    print(f"-j {args.jobs} against -j 1, {args.runs} pairs each ({os.cpu_count()} CPUs)")
    for name in args.only.split(","):
        row = side_by_side(name, COMMANDS[name], args.jobs, args.runs)
        rows[name] = row
        w1, wn, s = row["wall_s_j1"], row[f"wall_s_j{args.jobs}"], row["speedup"]
        la = row["loadavg_1min"] or {"min": "?", "max": "?"}
        print(f"  {row['command']:<40} -j 1 {w1['median']:6.2f} s  -j {args.jobs} {wn['median']:6.2f} s  "
              f"speed-up {s['median']:.2f} (min {s['min']:.2f}, max {s['max']:.2f})  load {la['min']}-{la['max']}"
              + ("" if row["same_output"] else "  OUTPUT DIFFERS"))
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": {"python": platform.python_version(), "platform": platform.platform(terse=True),
                    "cpus": os.cpu_count()},
        "note": "wall and CPU seconds of the whole process, -j 1 and -j N one after the other in each pair; "
                "speed-up: -j 1's wall over -j N's, pair by pair; load average read before each pair",
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_write:
        path = HERE / "results.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data["parallel"] = result
        path.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {path.relative_to(ROOT)} (\"parallel\")")
    return 0 if all(r["same_output"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
