"""Exploration benchmark: scaling families, full vs reduced.

Run:  python benchmarks/explore.py [--limit SECONDS] [--no-write]
      python benchmarks/explore.py --vs-spin [--limit SECONDS] [--sizes 1x1,2x1,...]

Family `gupfast_fork` (the S12 race): k threads pin with GUP-fast, on m pages,
while another thread forks.  Family `pvw_fork` (Jann Horn's question): k
processes write into A with process_vm_writev while A forks.  Family
`private_writers`: k processes each fault in and write a page of their own —
independent actors, the case partial-order reduction is for.  Family
`race_bystanders`: k GUP-fast pinners race fork beside m processes writing their
own pages.  Family `forked_writers`: k children of A write their copies of a
page and pin another while A writes it: symmetric processes with memory.  For each size it
measures the plain full search (every interleaving, no symmetry, executions not
counted: its states per CPU-second), the same counting executions, the reduced
search, and the time to verdict of a run in the default mode against one in
`--mode full` (cowdsl.run.explore: symmetry, stopping once decided, the
counterexample); a size whose full search passes --limit seconds ends the
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
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# --tree PATH: measure the cowdsl of another checkout (an older commit's worktree, for --before)
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve() if "--tree" in sys.argv[:-1] else HERE.parent
sys.path.insert(0, str(TREE))

from cowdsl.explore import search  # noqa: E402
from cowdsl.explore.model import Model  # noqa: E402
from cowdsl.load import load_text  # noqa: E402
from cowdsl.run import explore  # noqa: E402
from cowdsl.semantics import registry  # noqa: E402

# issue 17's: the plain full search's states per CPU-second on the race families and on
# independent writers; the default mode's time to verdict over --mode full's on every size
TARGETS = {"reduced_executions_ratio_max": 0.1, "full_states_per_second_min": 100_000,
           "full_states_per_second_min_private_writers": 50_000, "default_over_full_max": 1.2}


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


def race_bystanders(k: int, m: int = 1) -> str:
    """k GUP-fast pinners of one page race fork, and m processes beside them write and
    read pages of their own (faulted in beforehand): contended actors, so the full
    search, whose ample sets run each bystander's moves alone."""
    procs = [f"P{i}" for i in range(m)]
    lines = ["process A, " + ", ".join(procs)] + [f"thread T{i} of A" for i in range(k)] + ["thread F of A"]
    lines += ["A: mmap(p, anon, private, rw)", "A: write(p, 1)"]
    lines += [f"P{i}: mmap(q, anon, private, rw)" for i in range(m)] + [f"P{i}: write(q, 0)" for i in range(m)]
    lines.append("par {")
    lines += [f"  T{i}: pin(p, write, fast) as r{i}" for i in range(k)] + ["  F: fork() as B"]
    for i in range(m):
        lines += [f"  P{i}: write(q, {i + 1})", f"  P{i}: read(q) as v{i}"]
    lines += ["}", "always: " + " and ".join(f"(failed(r{i}) or r{i} is A.p)" for i in range(k))]
    return "\n".join(lines) + "\n"


def forked_writers(k: int, _m: int = 1) -> str:
    """A forks k children before the block; each writes the page it shares with A
    and pins its second page while A writes that one: k processes with memory of
    their own and one program, whose copies come in any order of allocation (the
    canonical world renumbers pages: explore.symmetry)."""
    lines = ["process A", "A: mmap(p, anon, private, rw, pages=2)", "A: write(p, 1)"]
    lines += [f"A: fork() as B{i}" for i in range(k)] + ["par {"]
    for i in range(k):
        lines += [f"  B{i}: write(p, 2)", f"  B{i}: pin(p[1], write) as h{i}"]
    lines += ["  A: write(p[1], 5)", "}", "sometimes: A.p[1] == 5"]
    return "\n".join(lines) + "\n"


FAMILIES = {
    "gupfast_fork": (gupfast_fork, [(1, 1), (2, 1), (2, 2), (3, 2), (3, 3), (4, 2)], "early-cow"),
    "pvw_fork": (pvw_fork, [(1, 1), (2, 1), (3, 1), (4, 1)], "early-cow"),
    "private_writers": (private_writers, [(2, 1), (4, 1), (6, 1), (8, 1), (10, 1)], "anon-exclusive"),
    "race_bystanders": (race_bystanders, [(2, 1), (2, 2), (2, 3), (3, 3)], "early-cow:wp_seq=off"),
    "forked_writers": (forked_writers, [(2, 1), (3, 1), (4, 1)], "anon-exclusive"),
}


def measure(src: str, backend: str, mode: str, limit: float, *, count: bool = False) -> dict:
    """One search on its own model: ``full`` (plain, executions counted if ``count``) or ``reduced``."""
    model = Model(load_text(src, "bench.cow"), registry.get(backend))
    gc.collect()  # the previous measurement's garbage is not this one's cost
    bounds = search.Bounds(max_states=10_000_000, timeout=limit)
    t0, c0 = time.perf_counter(), time.process_time()
    # (keywords only where asked for: --tree runs this on checkouts older than them)
    if mode in ("full", "full_ample"):
        ex = search.full(model, bounds, count=count, **({"ample": True} if mode == "full_ample" else {}))
    else:
        ex = search.reduced(model, bounds, **({"symmetric": True} if mode == "reduced_symmetric" else {}))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "states": ex.states,
        "executions": ex.executions,
        "micro_steps": ex.transitions,
        "final_states": len({w.state for w in ex.finals}),
        "seconds": round(wall, 4),
        "cpu_seconds": round(cpu, 4),
        "states_per_second": round(ex.states / cpu) if cpu else None,  # per CPU-second: load-proof
        "partial": ex.partial,
    }


def verdict(src: str, backend: str, mode: str, limit: float) -> dict:
    """A run as ``cowdsl run`` makes it (no report drawn): mode auto (the default) or full."""
    sc = load_text(src, "bench.cow")
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    r = explore(sc, registry.get(backend), mode=mode, bounds=search.Bounds(max_states=10_000_000, timeout=limit))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ex = r.exploration
    return {"verdict": r.verdict, "search": ex.mode, "states": ex.states, "stopped": ex.stopped,
            "seconds": round(wall, 4), "cpu_seconds": round(cpu, 4)}


def fastest(runs: list[dict]) -> dict:
    return min(runs, key=lambda x: x["cpu_seconds"])


def newer(fn):
    """A figure of a search an older checkout (--tree) lacks: None there."""
    try:
        return fn()
    except TypeError:
        return None


def measure_row(name: str, k: int, m: int, limit: float, repeat: int = 1) -> dict:
    """Every figure of one size of one family; each search the fastest of ``repeat`` runs."""
    make, _, backend = FAMILIES[name]
    src = make(k, m)
    full = fastest([measure(src, backend, "full", limit) for _ in range(repeat)])
    counted = fastest([measure(src, backend, "full", limit, count=True) for _ in range(repeat)])
    full["executions"] = counted["executions"]
    full["counted_cpu_seconds"] = counted["cpu_seconds"]
    # with ample sets, as `run` makes it in full mode (no symmetry: it is measured on its own)
    full_ample = newer(lambda: fastest([measure(src, backend, "full_ample", limit) for _ in range(repeat)]))
    reduced = fastest([measure(src, backend, "reduced", limit) for _ in range(repeat)])
    # as `--mode reduced` runs it: one world per class of symmetric threads (none in private_writers)
    reduced_sym = newer(lambda: fastest([measure(src, backend, "reduced_symmetric", limit) for _ in range(repeat)]))
    # default and --mode full in turn (at least twice): the faster of each (CPU seconds)
    runs = [(verdict(src, backend, "auto", limit), verdict(src, backend, "full", limit))
            for _ in range(max(2, repeat))]
    default = min((d for d, _ in runs), key=lambda x: x["cpu_seconds"])
    full_mode = min((f for _, f in runs), key=lambda x: x["cpu_seconds"])
    row = {"k": k, "m": m, "backend": backend, "full": full, "full_ample": full_ample, "reduced": reduced,
           "reduced_symmetric": reduced_sym,
           "default": default, "full_mode": full_mode,
           "default_over_full": round(default["cpu_seconds"] / full_mode["cpu_seconds"], 3)
           if full_mode["cpu_seconds"] else None}
    if not full["partial"] and full["executions"]:
        row["executions_ratio"] = reduced["executions"] / full["executions"]
    return row


def combine(rows: list[dict]) -> dict:
    """Rows of one size measured several times: each search's fastest run."""
    out = dict(rows[0])
    for part in ("full", "full_ample", "reduced", "reduced_symmetric", "default", "full_mode"):
        if out.get(part) is not None:
            out[part] = fastest([r[part] for r in rows if r.get(part) is not None])
    out["full"] = dict(out["full"], counted_cpu_seconds=min(r["full"]["counted_cpu_seconds"] for r in rows))
    if out.get("full_mode", {}).get("cpu_seconds"):
        out["default_over_full"] = round(out["default"]["cpu_seconds"] / out["full_mode"]["cpu_seconds"], 3)
    return out


SPEEDUPS = {"full": ("full", "cpu_seconds"), "full_counting": ("full", "counted_cpu_seconds"),
            "full_ample": ("full_ample", "cpu_seconds"),
            "reduced": ("reduced", "cpu_seconds"), "reduced_symmetric": ("reduced_symmetric", "cpu_seconds"),
            "default": ("default", "cpu_seconds"),
            "full_mode": ("full_mode", "cpu_seconds")}


def before_row(tree: Path, name: str, k: int, m: int, limit: float, repeat: int) -> dict | None:
    """The same size measured on another checkout, in a process of its own."""
    p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--tree", str(tree), "--row", name, str(k),
                        str(m), "--limit", str(limit), "--repeat", str(repeat)], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"--before {tree}: {name} k={k} m={m} failed:\n{p.stderr[-2000:]}")
        return None
    return json.loads(p.stdout.splitlines()[-1])


def run(limit: float, before: Path | None = None, repeat: int = 1) -> dict:
    out: dict = {"targets": TARGETS, "families": {}}
    for name, (_, sizes, _) in FAMILIES.items():
        rows = []
        for k, m in sizes:
            if before is None:
                old, row = None, measure_row(name, k, m, limit, repeat)
            else:  # in turns, one run each, so that a pair shares the machine's load
                pairs = [(before_row(before, name, k, m, limit, 1), measure_row(name, k, m, limit, 1))
                         for _ in range(repeat)]
                olds = [o for o, _ in pairs if o is not None]
                old = combine(olds) if olds else None
                row = combine([r for _, r in pairs])
            full, reduced, default, full_mode = row["full"], row["reduced"], row["default"], row["full_mode"]
            if old is not None:  # before's CPU seconds over now's: above 1, now is faster
                row["before"] = {key: old[part][field] for key, (part, field) in SPEEDUPS.items()
                                 if (old.get(part) or {}).get(field) is not None}
                row["before"]["full_states"] = old["full"]["states"]
                row["before"]["default_states"] = old["default"]["states"] if "default" in old else None
                row["speedup"] = {key: round(row["before"][key] / row[part][field], 2)
                                  for key, (part, field) in SPEEDUPS.items()
                                  if row["before"].get(key) and (row.get(part) or {}).get(field)}
            rows.append(row)
            print(f"{name:<15} k={k:<2} m={m}  full: {full['states']:>7} states {full['cpu_seconds']:>6.2f}s "
                  f"{full['states_per_second'] or 0:>7}/s{' PARTIAL' if full['partial'] else ''}"
                  f" (counting {full['counted_cpu_seconds']:.2f}s; ample {row['full_ample']['states']} states "
                  f"{row['full_ample']['cpu_seconds']:.2f}s)  reduced: {reduced['states']:>7} states "
                  f"{reduced['cpu_seconds']:>6.2f}s (symmetric {row['reduced_symmetric']['states']:>7} states "
                  f"{row['reduced_symmetric']['cpu_seconds']:>6.2f}s)  | to verdict: default ({default['search']}) "
                  f"{default['cpu_seconds']:.3f}s, --mode full {full_mode['cpu_seconds']:.3f}s "
                  f"({default['verdict']}, {row['default_over_full']})", flush=True)
            if "speedup" in row:
                print("    speed-up over --before: " + ", ".join(f"{key} {v}" for key, v in row["speedup"].items()))
            if full["partial"]:
                break
        done = [r for r in rows if "executions_ratio" in r]
        largest = done[-1] if done else None
        out["families"][name] = {
            "rows": rows,
            "largest_full_size": {"k": largest["k"], "m": largest["m"]} if largest else None,
            "executions_ratio_at_largest": largest["executions_ratio"] if largest else None,
            "full_states_per_second_at_largest": largest["full"]["states_per_second"] if largest else None,
            "default_over_full_max": max((r["default_over_full"] for r in rows if r["default_over_full"]),
                                         default=None),
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


def _commit(tree: Path) -> str | None:
    p = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    return p.stdout.strip() or None


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
    p.add_argument("--tree", type=Path, default=None, help="measure the cowdsl of this checkout (see --before)")
    p.add_argument("--row", nargs=3, metavar=("FAMILY", "K", "M"), default=None,
                   help="measure one size and print its row as JSON (what --before runs)")
    p.add_argument("--before", type=Path, default=None, metavar="CHECKOUT",
                   help="also measure each size on another checkout (e.g. a worktree of an older commit), "
                        "just before this one's, and write the speed-ups")
    p.add_argument("--repeat", type=int, default=1,
                   help="run each search (with --vs-spin: each command) N times and keep the fastest (default 1)")
    args = p.parse_args(argv)
    if args.vs_spin:
        return vs_spin(args)
    if args.limit is None:
        args.limit = 60.0
    if args.row is not None:
        name, k, m = args.row[0], int(args.row[1]), int(args.row[2])
        print(json.dumps(measure_row(name, k, m, args.limit, args.repeat)))
        return 0
    result = run(args.limit, args.before, args.repeat)
    result["repeat"] = args.repeat
    if args.before is not None:
        result["before"] = {"tree": str(args.before), "commit": _commit(args.before)}
    result["commit"] = _commit(TREE)
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
              f"{fam['executions_ratio_at_largest']:.2e}, full {fam['full_states_per_second_at_largest']} states/s, "
              f"default/full time to verdict at most {fam['default_over_full_max']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
