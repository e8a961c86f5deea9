"""cowdsl side by side with SPIN on one race family (`explore.py --vs-spin`).

K GUP-fast pinner threads pin M pages (thread t pins page t % M) while the
process forks; afterwards the parent writes every page.  The question: does
every pin end on the page the parent maps?  Two versions of the kernel:

- ``safe``: 5.11+ and 5.10.4+ (write_protect_seq, 57efa1fe5957): it always
  does; the whole state space must be searched to know it.
- ``race``: 5.9 and 5.10.0-5.10.3 (no write_protect_seq): a pin can be left on
  the child's page; a violation exists.

cowdsl runs a generated .cow scenario (``gupfast_fork_vs_spin``) on
``early-cow`` (safe) and ``early-cow:wp_seq=off`` (race), in its default mode
and in ``--mode full``; SPIN runs ``spin/gupfast_fork.pml`` with -DK, -DM and
-DWP_SEQ: ``spin -a``, ``cc -O2``, ``./pan``, with partial-order reduction
(-DSAFETY, SPIN's default) and without it (-DSAFETY -DNOREDUCE).  Every figure
is the wall time of the whole command as a user runs it (cowdsl: start-up,
parse, search, verdict; SPIN: generate, compile, search), all four measured
one after another on the same size, so the ratios are comparable even on a
loaded machine.  Each run has a time limit; a run that hits it has verdict
``timeout``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = HERE / "spin" / "gupfast_fork.pml"

SIZES = [(1, 1), (2, 1), (2, 2), (3, 2), (3, 3), (4, 2)]
OPTIONAL_SIZES = [(4, 3)]
QUESTIONS = {  # question -> (cowdsl backend, SPIN's -DWP_SEQ, the verdict both must give)
    "race": ("early-cow:wp_seq=off", 0, "race"),
    "safe": ("early-cow", 1, "safe"),
}
SPIN_VARIANTS = {"por": ["-DSAFETY"], "noreduce": ["-DSAFETY", "-DNOREDUCE"]}
COWDSL_MODES = ("default", "full")
DECIDED = ("race", "safe")  # other verdicts: timeout, unknown (a partial search), error


def gupfast_fork_vs_spin(k: int, m: int) -> str:
    """The .cow scenario SPIN's model encodes: K GUP-fast write pins on M pages
    racing fork, then the parent's writes; every pin must be on the parent's page."""
    lines = [f'scenario "{k} GUP-fast pinners on {m} page(s) race fork (the SPIN model, K={k} M={m})"',
             "process A"] + [f"thread T{i} of A" for i in range(k)]
    lines.append(f"A: mmap(p, anon, private, rw, pages={m})")
    lines += [f"A: write(p[{j}], 1)" for j in range(m)]
    lines.append("par {")
    lines += [f"  T{i}: pin(p[{i % m}], write, fast) as r{i}" for i in range(k)]
    lines += ["  A: fork() as B", "}"]
    lines += [f"A: write(p[{j}], 2)" for j in range(m)]
    lines.append("always: " + " and ".join(f"(failed(r{i}) or r{i} is A.p[{i % m}])" for i in range(k)))
    return "\n".join(lines) + "\n"


def cowdsl_command() -> list[str]:
    """cowdsl's console script beside this Python, else the one on PATH, else python -m cowdsl."""
    for candidate in (Path(sys.executable).parent / "cowdsl", shutil.which("cowdsl")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    return [sys.executable, "-m", "cowdsl"]


def _timed(cmd: list[str], cwd: Path, timeout: float) -> tuple[float, subprocess.CompletedProcess | None]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, None
    return time.perf_counter() - t0, p


def run_spin(k: int, m: int, wp_seq: int, variant: str, work: Path, limit: float) -> dict:
    """spin -a, cc -O2, ./pan in a fresh directory: seconds of each phase and of
    all three, states stored, and the verdict (race: pan found an assertion
    violation; safe: it searched everything and found none)."""
    d = Path(tempfile.mkdtemp(prefix=f"spin-{k}x{m}-wp{wp_seq}-{variant}-", dir=work))
    shutil.copy(MODEL, d / MODEL.name)
    out: dict = {"variant": variant}
    phases = [
        ("generate", ["spin", "-a", f"-DK={k}", f"-DM={m}", f"-DWP_SEQ={wp_seq}", MODEL.name]),
        ("compile", ["cc", "-O2", "-w", *SPIN_VARIANTS[variant], "-DMEMLIM=8192", "-o", "pan", "pan.c"]),
        ("search", ["./pan"]),  # pan's defaults: stop at the first error, hash table 2^19 slots
    ]
    total = 0.0
    p = None
    for name, cmd in phases:
        t, p = _timed(cmd, d, max(limit - total, 1.0))
        total += t
        out[f"{name}_s"] = round(t, 4)
        if p is None:
            out.update(seconds=round(total, 4), verdict="timeout", states=None)
            return out
        if p.returncode != 0 and name != "search":
            raise RuntimeError(f"{' '.join(cmd)} failed in {d}:\n{p.stdout}\n{p.stderr}")
    assert p is not None
    out["seconds"] = round(total, 4)
    out.update(pan_verdict(p.stdout + p.stderr))
    return out


def pan_verdict(text: str) -> dict:
    """states and verdict from pan's output: race only for a violated assertion
    (an invalid end state is a deadlock in the model: error); safe only for a
    search that was not cut short by the depth or memory bound (else unknown)."""
    errors = re.search(r"errors: (\d+)", text)
    states = re.search(r"(\d+) states, stored", text)
    if errors is None or states is None:
        return {"states": None, "verdict": "error", "note": "no verdict in pan's output: " + text.strip()[-500:]}
    out: dict = {"states": int(states.group(1))}
    if int(errors.group(1)):
        if "assertion violated" in text:
            out["verdict"] = "race"
        else:
            out["verdict"] = "error"
            out["note"] = next((ln.strip() for ln in text.splitlines() if ln.startswith("pan:")), "pan: an error")
    elif "max search depth too small" in text or "MEMLIM" in text:
        out["verdict"] = "unknown"
        out["note"] = "pan's search was cut short by its depth or memory bound"
    else:
        out["verdict"] = "safe"
    return out


def run_cowdsl(path: Path, backend: str, mode: str, limit: float, max_states: int,
               command: list[str] | None = None) -> dict:
    """`cowdsl run FILE --format json` as a user runs it: wall seconds to the
    verdict, states explored, and the verdict (race: the `always` fails;
    safe: it holds; unknown when the search was cut short)."""
    cmd = (command or cowdsl_command()) + ["run", str(path), "--backend", backend, "--format", "json", "--color", "never",
                              "--timeout", str(limit), "--max-states", str(max_states)]
    if mode != "default":
        cmd += ["--mode", mode]
    t, p = _timed(cmd, path.parent, limit + 30)  # cowdsl stops itself at --timeout; this is the backstop
    out: dict = {"mode": mode, "seconds": round(t, 4)}
    if p is None:
        out.update(verdict="timeout", states=None)
        return out
    try:
        result = json.loads(p.stdout)["results"][0]
    except (ValueError, KeyError, IndexError):
        # not a verdict (a crash, a usage error): recorded, never taken for one
        out.update(verdict="error", states=None, exit_status=p.returncode, stderr=p.stderr.strip()[-2000:])
        return out
    ex = result.get("exploration") or {}
    out.update(states=ex.get("states"), search_s=ex.get("seconds"), search_mode=ex.get("mode"),
               partial=ex.get("partial"), cowdsl_verdict=result["verdict"],
               verdict={"fail": "race", "pass": "safe"}.get(result["verdict"], "unknown"))
    if ex.get("partial") and out["verdict"] == "safe":
        out["verdict"] = "unknown"  # a partial search proves nothing safe
    return out


def _ratio(a: dict, b: dict) -> float | None:
    """a's seconds over b's, when both reached a verdict."""
    if a["verdict"] not in DECIDED or b["verdict"] not in DECIDED or not b["seconds"]:
        return None
    return round(a["seconds"] / b["seconds"], 3)


def fastest(runs: list[dict]) -> dict:
    """Of repeated runs of one command, the fastest that reached a verdict (else
    the first), with every run's seconds; verdict `inconsistent` when the runs
    decided differently (a nondeterministic tool is a finding too)."""
    decided = [r for r in runs if r["verdict"] in DECIDED]
    best = dict(min(decided, key=lambda r: r["seconds"]) if decided else runs[0])
    if len(runs) > 1:
        best["runs_seconds"] = [r["seconds"] for r in runs]
        best["runs_verdicts"] = [r["verdict"] for r in runs]
        if len({r["verdict"] for r in decided}) > 1:
            best["verdict"] = "inconsistent"
    return best


def run(sizes: list[tuple[int, int]], limit: float, max_states: int, log=print, repeat: int = 1,
        command: list[str] | None = None) -> dict:
    """Every size and question: the four commands, `repeat` times each; `command`
    starts cowdsl (default: cowdsl_command(), this checkout's)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="cowdsl-vs-spin-") as tmp:
        work = Path(tmp)
        for k, m in sizes:
            for question, (backend, wp_seq, expected) in QUESTIONS.items():
                cow = work / f"gupfast_fork_{k}x{m}_{question}.cow"
                cow.write_text(gupfast_fork_vs_spin(k, m))
                spin_runs: dict[str, list[dict]] = {v: [] for v in SPIN_VARIANTS}
                cowdsl_runs: dict[str, list[dict]] = {mode: [] for mode in COWDSL_MODES}
                for _ in range(repeat):  # the four commands in turn, so repeats share the machine's load
                    for v in SPIN_VARIANTS:
                        spin_runs[v].append(run_spin(k, m, wp_seq, v, work, limit))
                    for mode in COWDSL_MODES:
                        cowdsl_runs[mode].append(run_cowdsl(cow, backend, mode, limit, max_states, command))
                spin = {v: fastest(rs) for v, rs in spin_runs.items()}
                cowdsl = {mode: fastest(rs) for mode, rs in cowdsl_runs.items()}
                verdicts = {f"spin_{v}": r["verdict"] for v, r in spin.items()}
                verdicts |= {f"cowdsl_{mode}": r["verdict"] for mode, r in cowdsl.items()}
                decided = {name: v for name, v in verdicts.items() if v in DECIDED}
                row = {
                    "k": k, "m": m, "question": question, "expected": expected,
                    "cowdsl_backend": backend, "spin_wp_seq": wp_seq,
                    "spin": spin, "cowdsl": cowdsl, "verdicts": verdicts,
                    "agree": len(set(decided.values())) <= 1 and all(v == expected for v in decided.values()),
                    "all_decided": len(decided) == len(verdicts),
                    "ratios": {
                        "cowdsl_full_over_spin_por": _ratio(cowdsl["full"], spin["por"]),
                        "cowdsl_default_over_spin_por": _ratio(cowdsl["default"], spin["por"]),
                        "cowdsl_full_over_spin_noreduce": _ratio(cowdsl["full"], spin["noreduce"]),
                    },
                }
                rows.append(row)
                log(format_row(row))
    disagreements = [f"{r['k']}x{r['m']} {r['question']}: {r['verdicts']}" for r in rows if not r["agree"]]
    undecided = [f"{r['k']}x{r['m']} {r['question']}: {r['verdicts']}" for r in rows if not r["all_decided"]]
    return {
        "cowdsl": cowdsl_revision() if command is None else {"command": command},
        "model": str(MODEL.relative_to(HERE.parent)),
        "sizes": [f"{k}x{m}" for k, m in sizes],
        "limit_s": limit,
        "repeat": repeat,
        "max_states": max_states,
        "spin": spin_version(),
        "rows": rows,
        "disagreements": disagreements,
        "undecided": undecided,
    }


def cowdsl_revision() -> dict:
    """The cowdsl measured: its git commit, and whether its sources differ from it."""
    def git(*args: str) -> str | None:
        try:
            p = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return p.stdout.strip() if p.returncode == 0 else None
    commit = git("rev-parse", "--short=12", "HEAD")
    changed = git("status", "--porcelain", "--", "cowdsl", "grammar")
    return {"commit": commit, "uncommitted_changes": bool(changed) if changed is not None else None}


def spin_version() -> str | None:
    try:
        p = subprocess.run(["spin", "-V"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() or None


def _fmt_s(r: dict) -> str:
    return f"{r['seconds']:7.2f}s" + ("" if r["verdict"] in DECIDED else f" ({r['verdict']})")


def _fmt_ratio(x: float | None) -> str:
    return f"{x:6.2f}" if x is not None else "     -"


def header() -> str:
    return (f"{'KxM':<4} {'question':<6} | {'SPIN POR':>9} {'states':>9} | {'SPIN NOREDUCE':>13} {'states':>9} | "
            f"{'cowdsl default':>14} {'states':>9} | {'cowdsl full':>11} {'states':>9} | "
            f"{'full/POR':>8} {'dflt/POR':>8} | verdicts")


def format_row(r: dict) -> str:
    s, c = r["spin"], r["cowdsl"]

    def st(x: dict) -> str:
        return f"{x['states']:>9}" if x["states"] is not None else f"{'-':>9}"

    verdict = "agree: " + r["expected"] if r["agree"] else "DISAGREE " + json.dumps(r["verdicts"])
    return (f"{r['k']}x{r['m']:<2} {r['question']:<6} | {_fmt_s(s['por']):>9} {st(s['por'])} | "
            f"{_fmt_s(s['noreduce']):>13} {st(s['noreduce'])} | {_fmt_s(c['default']):>14} {st(c['default'])} | "
            f"{_fmt_s(c['full']):>11} {st(c['full'])} | {_fmt_ratio(r['ratios']['cowdsl_full_over_spin_por']):>8} "
            f"{_fmt_ratio(r['ratios']['cowdsl_default_over_spin_por']):>8} | {verdict}")


def have_spin() -> str | None:
    """Why the comparison cannot run here, or None when spin and a C compiler are on PATH."""
    missing = [tool for tool in ("spin", "cc") if shutil.which(tool) is None]
    if missing:
        return (f"{' and '.join(missing)} not found on PATH: the SPIN comparison is skipped "
                "(Debian/Ubuntu: apt-get install spin gcc)")
    return None


def plot(result: dict, path: Path) -> bool:
    """Seconds to the verdict and states per size, race and safe side by side, log scale."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install '.[bench]')")
        return False
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.4), sharex="col")
    series = (("SPIN (POR)", "spin", "por", "o-"), ("SPIN (NOREDUCE)", "spin", "noreduce", "o:"),
              ("cowdsl (default)", "cowdsl", "default", "s-"), ("cowdsl --mode full", "cowdsl", "full", "s--"))
    for col, question in enumerate(QUESTIONS):
        rows = [r for r in result["rows"] if r["question"] == question]
        xs = range(len(rows))
        for row, figure in enumerate(("seconds", "states")):
            ax = axes[row][col]
            for label, tool, key, style in series:
                ys = [r[tool][key][figure] if r[tool][key]["verdict"] in DECIDED else float("nan") for r in rows]
                ax.semilogy(xs, ys, style, label=label)
            ax.set_xticks(list(xs), [f"{r['k']}x{r['m']}" for r in rows])
            ax.grid(True, which="both", lw=0.3)
        axes[0][col].set_title(f"{question}: " + ("a violation exists (no write_protect_seq)" if question == "race"
                                                  else "no violation (write_protect_seq)"), fontsize=10)
        axes[1][col].set_xlabel("K pinners x M pages")
    axes[0][0].set_ylabel("wall seconds to the verdict (log)")
    axes[1][0].set_ylabel("states stored (log)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("GUP-fast pinners racing fork: cowdsl and SPIN, end to end, measured in one run", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
