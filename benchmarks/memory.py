"""Peak memory: what a run costs, and that --max-states bounds it.

Run:  python benchmarks/memory.py [--big] [--json FILE] [--no-write]

Figures go to benchmarks/results.json (key "memory"), and to FILE if given.

Each measurement runs in a fresh process, which reports its peak resident set
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after the run, and the peak of
the Python heap during the run (``tracemalloc``; it slows the run several times
over, so the wall time shown is the traced one).  Measured:

* ``twenty_steps``: ``benchmarks/twenty_steps.cow``, the sequential benchmark
  scenario;
* ``corpus-largest``: the bundled scenario whose exploration has the most states,
  in both search modes;
* the defaults: the race and the largest corpus scenario with every bound at
  its default (200,000 states, 1 GiB of resident memory, ``--max-memory``),
  untraced: their peak resident set must stay under 1 GB;
* ``race``: the S12 race grown until its state space is far past the bound (four
  threads pin three pages with GUP-fast while a fifth forks: over 100,000
  states), explored with ``--max-states`` 5,000 and 20,000 in both modes
  (``--big`` adds 80,000, measured by RSS only, untraced).  The states explored
  never pass the bound, and the memory grows with the bound, not with the
  state space.

Not a test (tests/test_limits.py has the assertions); figures depend on the
machine.  About a minute; ``--big`` adds two or three.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from explore import gupfast_fork  # noqa: E402  (the exploration benchmark's race family)


def largest_corpus_scenario() -> Path:
    from cowdsl.load import find, load_all
    from cowdsl.run import run

    best, most = None, -1
    for path in find([ROOT / "scenarios"]):
        for sc in load_all(path)[:1]:  # a swept file: its first variant
            if not sc.concurrent:
                continue
            r = run(sc, "anon-exclusive", mode="full", all_states=True)  # its whole state space
            if r.exploration.states > most:
                best, most = path, r.exploration.states
    return best


def measure(what: str, mode: str | None, max_states: int | None, traced: bool = True) -> dict:
    """In this process: load, run once, report."""
    from cowdsl.explore.search import Bounds
    from cowdsl.load import load_all, load_text
    from cowdsl.run import run

    sc = load_text(gupfast_fork(4, 3), "race.cow") if what == "race" else load_all(what)[0]  # the S12 race, grown
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    bounds = Bounds(max_states=max_states, timeout=600) if max_states else Bounds()  # the defaults: 200,000 states, 1 GiB
    # bounded rows explore everything up to the bound (--all-states): the bound is what is measured
    r = (run(sc, "anon-exclusive", mode=mode, bounds=bounds, all_states=max_states is not None) if mode
         else run(sc, "anon-exclusive"))
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] if traced else None
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ex = r.exploration
    return {
        "scenario": Path(what).name if what != "race" else "race (4 GUP-fast pins of 3 pages vs fork)",
        "mode": mode or "sequential",
        "max_states": max_states,
        "states": ex.states if ex is not None else len(sc.steps) + 1,
        "partial": ex.partial if ex is not None else None,
        "heap_peak_mb": round(peak / 2**20, 2) if peak is not None else None,
        "rss_before_mb": round(before / 1024, 1),  # ru_maxrss is in KiB on Linux: the interpreter and cowdsl
        "rss_peak_mb": round(after / 1024, 1),
        "seconds": round(seconds, 2),
        "traced": traced,
    }


def in_subprocess(what: str, mode: str | None, max_states: int | None, traced: bool) -> dict:
    cmd = [sys.executable, __file__, "--one", what, "--mode", mode or "-", "--max-states", str(max_states or 0)]
    cmd += [] if traced else ["--untraced"]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--big", action="store_true", help="also the 80,000-state bound (RSS only)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave results.json alone")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--max-states", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--untraced", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        mode = None if args.mode == "-" else args.mode
        print(json.dumps(measure(args.one, mode, args.max_states or None, not args.untraced)))
        return 0
    runs = [(str(HERE / "twenty_steps.cow"), None, None, True)]
    big = str(largest_corpus_scenario())
    runs += [(big, "full", None, True), (big, "reduced", None, True)]
    for bound in (5_000, 20_000):
        runs += [("race", "full", bound, True), ("race", "reduced", bound, True)]
    if args.big:
        runs += [("race", "full", 80_000, False), ("race", "reduced", 80_000, False)]
    defaults = [("race", "full", None, False), ("race", "auto", None, False), (big, "auto", None, False)]
    runs += defaults
    rows = []
    print(f"{'scenario':<44} {'mode':<10} {'bound':>7} {'states':>7} {'heap MB':>8} {'RSS MB':>7} {'s':>7}")
    for what, mode, bound, traced in runs:
        row = in_subprocess(what, mode, bound, traced)
        rows.append(row)
        heap = "-" if row["heap_peak_mb"] is None else row["heap_peak_mb"]
        print(f"{row['scenario'][:44]:<44} {row['mode']:<10} {bound or '-':>7} {row['states']:>7} "
              f"{heap:>8} {row['rss_peak_mb']:>7} {row['seconds']:>7}"
              + (f"  partial ({row['partial']})" if row["partial"] else ""), flush=True)
    doc = {"memory": rows, "python": platform.python_version(), "platform": platform.platform(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if not args.no_write:  # beside the other figures, under "memory"
        path = Path(__file__).resolve().parent / "results.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data["memory"] = doc
        path.write_text(json.dumps(data, indent=2) + "\n")
    over = [r for r in rows if r["max_states"] and r["states"] > r["max_states"]]
    print("every bounded exploration stayed within --max-states" if not over else f"OVER THE BOUND: {over}")
    at_defaults = max(r["rss_peak_mb"] for r in rows[-len(defaults):])
    print(f"peak RSS at the default bounds (--max-states 200000, --max-memory 1024 MiB, untraced): "
          f"{at_defaults} MB" + (" (under 1 GB)" if at_defaults < 1024 else " (OVER 1 GB)"))
    return 0 if at_defaults < 1024 and not over else 1


if __name__ == "__main__":
    sys.exit(main())
