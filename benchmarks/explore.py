"""Exploration benchmark: scaling families, full vs reduced.

Run:  python benchmarks/explore.py [--limit SECONDS] [--no-write]
      python benchmarks/explore.py --vs-spin [--limit SECONDS] [--sizes 1x1,2x1,...]

Family `gupfast_fork` (the S12 race): k threads pin with GUP-fast, on m pages,
while another thread forks.  Family `pvw_fork` (Jann Horn's question): k
processes write into A with process_vm_writev while A forks.  Family
`private_writers`: k processes each fault in and write a page of their own —
independent actors, the case partial-order reduction is for.  For each size it
measures states, executions and micro-steps for both searches, states per
second and wall time; a size whose full search passes --limit seconds ends the
family.  Figures go to benchmarks/results.json (key "explore") and a plot to
benchmarks/explore.png (matplotlib, if installed).  Not a test: it reports
against the targets and never fails on them.

--vs-spin runs the same race (k GUP-fast pinners on m pages racing fork, then
the parent's writes) through cowdsl and through SPIN's Promela model in
benchmarks/spin/, with and without write_protect_seq, side by side: see
vs_spin.py.  It writes results.json's "vs_spin" and benchmarks/vs-spin.png.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cowdsl.explore import search  # noqa: E402
from cowdsl.explore.model import Model  # noqa: E402
from cowdsl.load import load_text  # noqa: E402
from cowdsl.semantics import registry  # noqa: E402

TARGETS = {"reduced_executions_ratio_max": 0.1, "full_states_per_second_min": 20_000}


def gupfast_fork(k: int, m: int) -> str:
    lines = ["process A"] + [f"thread T{i} of A" for i in range(k)] + ["thread F of A"]
    lines.append(f"A: mmap(p, anon, private, rw, pages={m})")
    lines += [f"A: write(p[{j}], 1)" for j in range(m)]
    lines.append("par {")
    lines += [f"  T{i}: pin(p[{i % m}], write, fast) as r{i}" for i in range(k)]
    lines += ["  F: fork() as B", "}"]
    lines.append("always: " + " and ".join(f"(failed(r{i}) or r{i} is A.p[{i % m}])" for i in range(k)))
    return "\n".join(lines) + "\n"


def pvw_fork(k: int, _m: int = 1) -> str:
    writers = [f"W{i}" for i in range(k)]
    lines = ["process A, " + ", ".join(writers), "A: mmap(p, anon, private, rw)", "A: write(p, 1)", "par {"]
    lines += [f"  W{i}: process_vm_writev(A.p, {i + 2})" for i in range(k)]
    lines += ["  A: fork() as B", "}", "sometimes: A.p != 1"]
    return "\n".join(lines) + "\n"


def private_writers(k: int, _m: int = 1) -> str:
    """k processes write and read pages of their own (faulted in beforehand: a new
    page's number depends on allocation order, which makes faults dependent):
    independent actors, the case partial-order reduction is for."""
    procs = [f"P{i}" for i in range(k)]
    lines = ["process " + ", ".join(procs)] + [f"P{i}: mmap(p, anon, private, rw)" for i in range(k)]
    lines += [f"P{i}: write(p, 0)" for i in range(k)]
    lines.append("par {")
    for i in range(k):
        lines += [f"  P{i}: write(p, {i + 1})", f"  P{i}: read(p) as v{i}"]
    lines += ["}", "always: " + " and ".join(f"v{i} == {i + 1}" for i in range(k))]
    return "\n".join(lines) + "\n"


FAMILIES = {
    "gupfast_fork": (gupfast_fork, [(1, 1), (2, 1), (2, 2), (3, 2), (3, 3), (4, 2)], "early-cow"),
    "pvw_fork": (pvw_fork, [(1, 1), (2, 1), (3, 1), (4, 1)], "early-cow"),
    "private_writers": (private_writers, [(2, 1), (4, 1), (6, 1), (8, 1), (10, 1)], "anon-exclusive"),
}


def measure(src: str, backend: str, mode: str, limit: float) -> dict:
    model = Model(load_text(src, "bench.cow"), registry.get(backend))
    gc.collect()  # the previous measurement's garbage is not this one's cost
    t0 = time.perf_counter()
    ex = getattr(search, mode)(model, search.Bounds(max_states=10_000_000, timeout=limit))
    wall = time.perf_counter() - t0
    return {
        "states": ex.states,
        "executions": ex.executions,
        "micro_steps": ex.transitions,
        "final_states": len({w.state for w in ex.finals}),
        "seconds": round(wall, 4),
        "states_per_second": round(ex.states / wall) if wall else None,
        "partial": ex.partial,
    }


def run(limit: float) -> dict:
    out: dict = {"targets": TARGETS, "families": {}}
    for name, (make, sizes, backend) in FAMILIES.items():
        rows = []
        for k, m in sizes:
            src = make(k, m)
            full = measure(src, backend, "full", limit)
            reduced = measure(src, backend, "reduced", limit)
            row = {"k": k, "m": m, "backend": backend, "full": full, "reduced": reduced}
            if not full["partial"] and full["executions"]:
                row["executions_ratio"] = reduced["executions"] / full["executions"]
            rows.append(row)
            print(f"{name:<13} k={k} m={m}  full: {full['states']:>7} states {full['executions']:>16} executions "
                  f"{full['seconds']:>7.2f}s {full['states_per_second'] or 0:>6}/s{' PARTIAL' if full['partial'] else ''}"
                  f"  | reduced: {reduced['states']:>7} states {reduced['executions']:>6} executions "
                  f"{reduced['seconds']:>7.2f}s")
            if full["partial"]:
                break
        done = [r for r in rows if "executions_ratio" in r]
        largest = done[-1] if done else None
        out["families"][name] = {
            "rows": rows,
            "largest_full_size": {"k": largest["k"], "m": largest["m"]} if largest else None,
            "executions_ratio_at_largest": largest["executions_ratio"] if largest else None,
            "full_states_per_second_at_largest": largest["full"]["states_per_second"] if largest else None,
        }
    return out


def plot(result: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    sizes = []
    for name, fam in result["families"].items():
        rows = fam["rows"]
        xs = range(len(rows))
        for ax, key, log in ((axes[0], "executions", True), (axes[1], "states", True), (axes[2], "states_per_second", False)):
            draw = ax.semilogy if log else ax.plot
            draw(xs, [max(r["full"][key] or 0, 1) for r in rows], "o-", label=f"{name} full")
            draw(xs, [max(r["reduced"][key] or 0, 1) for r in rows], "s--", label=f"{name} reduced")
        sizes.append(f"{name}: " + " ".join(f"{i}=k{r['k']}" + (f"m{r['m']}" if name == "gupfast_fork" else "")
                                            for i, r in enumerate(rows)))
    for ax in axes:
        ax.set_xlabel("size index", fontsize=8)
    fig.text(0.01, 0.01, "sizes  " + ";  ".join(sizes), fontsize=7)
    axes[0].set_title("executions (log)")
    axes[1].set_title("states explored (log)")
    axes[2].set_title("states per second")
    axes[2].axhline(TARGETS["full_states_per_second_min"], color="grey", lw=0.8, ls=":")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    return True


def _sizes(text: str) -> list[tuple[int, int]]:
    try:
        return [(int(k), int(m)) for k, m in (s.lower().split("x") for s in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes such as 1x1,2x1,3x2, got {text!r}") from None


def vs_spin(args: argparse.Namespace) -> int:
    """SPIN and cowdsl on the same race family; results.json's "vs_spin", vs-spin.png."""
    sys.path.insert(0, str(HERE))
    import vs_spin as vs

    if (why := vs.have_spin()) is not None:
        print(why)
        return 0
    sizes = args.sizes or vs.SIZES + (vs.OPTIONAL_SIZES if args.with_4x3 else [])
    limit = args.limit if args.limit is not None else 120.0
    print(f"cowdsl vs SPIN: K GUP-fast pinners on M pages racing fork; every run limited to {limit:g} s")
    print(vs.header())
    result = vs.run(sizes, limit, args.max_states, repeat=args.repeat,
                    command=shlex.split(args.cowdsl) if args.cowdsl else None)
    result["machine"] = {"python": platform.python_version(), "platform": platform.platform(terse=True),
                         "cpus": os.cpu_count()}
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["note"] = ("every time is the wall seconds of the whole command (cowdsl: start-up to verdict; "
                      "SPIN: spin -a, cc -O2, pan), the four measured one after another per row, "
                      "on the same machine in one run; with --repeat N the fastest of N; "
                      "a ratio is cowdsl's time over SPIN's")
    if not args.no_write:
        path = HERE / "results.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data["vs_spin"] = result
        path.write_text(json.dumps(data, indent=2) + "\n")
        vs.plot(result, HERE / "vs-spin.png")
    if result["undecided"]:
        print("NO VERDICT from every run (timeout, unknown or error) in:\n  " + "\n  ".join(result["undecided"]))
    if result["disagreements"]:
        print("VERDICTS DISAGREE:\n  " + "\n  ".join(result["disagreements"]))
        return 1
    print("every decided verdict agrees with the question's (race: a violation; safe: none)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=float, default=None,
                   help="seconds a full search may take (default 60); with --vs-spin, each run's limit (default 120)")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--vs-spin", action="store_true", help="cowdsl and SPIN side by side on the GUP-fast/fork race")
    p.add_argument("--sizes", type=_sizes, default=None,
                   help="with --vs-spin: KxM sizes, comma-separated (default 1x1,2x1,2x2,3x2,3x3,4x2)")
    p.add_argument("--with-4x3", action="store_true", help="with --vs-spin: add 4x3 to the default sizes")
    p.add_argument("--max-states", type=int, default=10_000_000, help="with --vs-spin: cowdsl's --max-states")
    p.add_argument("--cowdsl", metavar="COMMAND", default=None,
                   help="with --vs-spin: how to start the cowdsl measured, e.g. 'python -m cowdsl' with another "
                        "checkout on PYTHONPATH (default: this checkout's console script)")
    p.add_argument("--repeat", type=int, default=1,
                   help="with --vs-spin: run each command N times and keep the fastest (default 1)")
    args = p.parse_args(argv)
    if args.vs_spin:
        return vs_spin(args)
    if args.limit is None:
        args.limit = 60.0
    result = run(args.limit)
    result["machine"] = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    result["date"] = time.strftime("%Y-%m-%d")
    if not args.no_write:
        path = HERE / "results.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data["explore"] = result
        path.write_text(json.dumps(data, indent=2) + "\n")
        plot(result, HERE / "explore.png")
    for name, fam in result["families"].items():
        print(f"{name}: largest size full finished: {fam['largest_full_size']}, reduced/full executions "
              f"{fam['executions_ratio_at_largest']:.2e}, full {fam['full_states_per_second_at_largest']} states/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
