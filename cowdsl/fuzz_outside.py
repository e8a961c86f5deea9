"""Fuzzing what surrounds a .cow file: the files, names, sizes, signals and
command lines a hostile or unlucky user hands the CLI.

``cowdsl.fuzz`` feeds bytes to the front end and the model in-process; this
module runs the real command (``python -m cowdsl``) in a child process, in a
fresh temporary folder, and judges only what the user sees.  Five classes:

* ``special``: FIFOs, devices, directories and sparse files where a .cow file
  is expected, given by name or met inside a scenario folder;
* ``names``: file names with control, bidi, non-UTF-8 and markup characters,
  through every output format (text, JSON, JUnit, DOT);
* ``huge``: files at and past the size and step limits, deep nesting, long lines;
* ``signals``: SIGINT, SIGTERM or SIGHUP at a random moment of a run;
* ``matrix``: ``--backend all`` with random ``--max-states`` and ``--timeout``.

The oracle (``judge``): the command ends within its bound, with an exit status
the README lists (or the signal's 128+N), no Python traceback, nothing raw
from outside on the terminal (no control or bidi character), well-formed JSON
or XML where asked, and no temporary folder left behind.

    python -m cowdsl.fuzz outside [--seconds S | --examples N] [--seed N] [--class NAME]
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from attrs import define, field

CLASSES = ("special", "names", "huge", "signals", "matrix")
EXITS = {0, 1, 2, 3}  # the README's exit statuses
SIGNALLED = {130, 143, 129}  # 128 + SIGINT, SIGTERM, SIGHUP: the CLI's own exits after a signal
BOUND_SLACK = 20.0  # seconds over a case's own bound before it counts as a hang (start-up, a loaded machine)
MEMORY_MB = 2048  # the child's address-space limit: past it is a MemoryError, a finding

SMALL = """process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
A: pin(buf, write, longterm) as mr
A: fork() as B
A: write(buf, 2)
assert mr is A.buf
expect pass on anon-exclusive
"""

RACE = """process A
thread T of A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
par {
  A: fork() as B
  T: pin(buf, write, fast) as mr
}
A: write(buf, 2)
never: not (mr is A.buf)
"""


@define
class Case:
    """One command to run in a fresh folder: ``make`` fills the folder and returns
    the arguments after ``cowdsl``; ``bound`` is what the case itself allows."""

    kind: str
    what: str
    make: Callable[[Path], list[str]]
    bound: float = 30.0
    signal_after: float | None = None  # send ``sig`` this many seconds after the start
    sig: int = signal.SIGINT
    fmt: str = "text"


@define
class Outcome:
    case: Case
    status: int | None
    seconds: float
    stdout: str
    stderr: str
    leftovers: list[str] = field(factory=list)


def _unsafe(text: str) -> list[str]:
    return sorted({f"U+{ord(c):04X}" for c in text if c not in "\n\t\r"
                   and unicodedata.category(c) in ("Cc", "Cf")})


def interpreter_start(o: Outcome) -> bool:
    """A signal that came while Python itself was starting (importing its site
    module), before any line of cowdsl ran: the interpreter prints that, no
    program can catch it."""
    return o.case.signal_after is not None and "Fatal Python error: init_import_site" in o.stderr


def judge(o: Outcome) -> list[str]:
    """What is wrong with one outcome (nothing: an empty list)."""
    bad = []
    if o.status is None:
        bad.append(f"no answer in {o.case.bound + BOUND_SLACK:g} s (a hang)")
    elif o.status not in EXITS and not (o.case.signal_after is not None and o.status in SIGNALLED):
        bad.append(f"exit status {o.status}")
    if "Traceback (most recent call last)" in o.stderr + o.stdout and not interpreter_start(o):
        bad.append("a Python traceback")
    if "MemoryError" in o.stderr:
        bad.append("MemoryError")
    for stream, text in (("stdout", o.stdout), ("stderr", o.stderr)):
        if o.case.fmt == "text" and (u := _unsafe(text)):
            bad.append(f"raw {', '.join(u[:4])} on {stream}")
    if o.status in (0, 1, 3) and o.case.signal_after is None:
        if o.case.fmt == "json":
            try:
                json.loads(o.stdout)
            except ValueError as e:
                bad.append(f"JSON not well-formed: {e}")
        elif o.case.fmt == "junit":
            try:
                ET.fromstring(o.stdout)
            except ET.ParseError as e:
                bad.append(f"JUnit XML not well-formed: {e}")
    if o.leftovers:
        bad.append(f"left behind in the temporary folder: {', '.join(o.leftovers[:3])}")
    return bad


def run_case(case: Case, *, python: str = sys.executable) -> Outcome:
    """Run one case in a fresh folder, with its own TMPDIR (to see what a run leaves behind)."""
    with tempfile.TemporaryDirectory(prefix="cowdsl-outside-") as top:
        work, tmp = Path(top) / "work", Path(top) / "tmp"
        work.mkdir()
        tmp.mkdir()
        argv = case.make(work)
        env = dict(os.environ, TMPDIR=str(tmp), NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
        env.pop("COWDSL_DEBUG_INVARIANTS", None)
        t0 = time.monotonic()
        p = subprocess.Popen([python, "-m", "cowdsl", *argv], cwd=work, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_limit_memory)
        status: int | None
        try:
            if case.signal_after is not None:
                try:
                    p.wait(case.signal_after)
                except subprocess.TimeoutExpired:
                    p.send_signal(case.sig)
            out, err = p.communicate(timeout=case.bound + BOUND_SLACK)
            status = p.returncode
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            status = None
        seconds = time.monotonic() - t0
        leftovers = sorted(x.name for x in tmp.iterdir())
        return Outcome(case, status if status is None or status >= 0 else 128 - status, seconds,
                       out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), leftovers)


def _limit_memory() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_MB << 20, resource.RLIM_INFINITY))
    except (ImportError, ValueError, OSError):
        pass


# --- the five classes -----------------------------------------------------------------------


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def special(rnd: random.Random) -> Case:
    kind = rnd.choice(["fifo", "fifo-in-folder", "dev-zero", "directory", "sparse", "symlink-loop", "nul-bytes",
                       "empty"])
    cmd = rnd.choice(["run", "check"])

    def make(d: Path) -> list[str]:
        target = d / "x.cow"
        if kind in ("fifo", "fifo-in-folder"):
            os.mkfifo(target)
        elif kind == "dev-zero":
            return [cmd, "/dev/zero"]
        elif kind == "directory":
            target.mkdir()
        elif kind == "sparse":
            with open(target, "wb") as f:
                f.truncate(6 << 30)  # 6 GB of holes: nothing on disk, everything if read whole
        elif kind == "symlink-loop":
            os.symlink(target, target)
        elif kind == "nul-bytes":
            _write(target, SMALL.encode().replace(b"\n", b"\0\n", 3))
        else:
            _write(target, b"")
        _write(d / "ok.cow", SMALL)
        return [cmd, str(d) if kind == "fifo-in-folder" or rnd.random() < 0.3 else str(target)]

    return Case("special", f"{cmd} {kind}", make, bound=20.0)


_HOSTILE = ["\x1b]0;title\x07", "\x1b[2J", "\u202e", "\u200f", "\x0c", "\x08", "<", "&", "\"", "]]>", "\r",
            "\udcff", "\u2028", "%s", "{x}", " "]


def names(rnd: random.Random) -> Case:
    name = "".join(rnd.choice(_HOSTILE + ["a", "b", "-"]) for _ in range(rnd.randint(1, 6)))
    fmt = rnd.choice(["text", "json", "junit", "dot"])
    body = rnd.choice([SMALL, SMALL.replace("assert mr", "assert\x0cmr"), SMALL.replace("pass", "fail"), RACE])
    named = rnd.random() < 0.3

    def make(d: Path) -> list[str]:
        fname = os.fsencode(name.replace("/", "_")) + b".cow"
        src = (f'scenario "{name}"\n' if named else "") + body
        (Path(os.fsdecode(d)) / os.fsdecode(fname)).write_bytes(src.encode("utf-8", "surrogateescape"))
        if fmt == "dot":
            return ["run", "--dot", str(d / "graphs"), str(d)]
        return ["run", "--format", fmt, str(d)] if fmt != "text" else ["run", "--state", "--trace", str(d)]

    return Case("names", f"{fmt} {name!r}", make, bound=30.0, fmt="text" if fmt == "dot" else fmt)


def huge(rnd: random.Random) -> Case:
    kind = rnd.choice(["steps", "nesting", "long-line", "many-par", "just-under-limit"])

    def make(d: Path) -> list[str]:
        head = "process A\nA: mmap(buf, anon, private, rw)\n"
        if kind == "steps":
            text = head + "A: write(buf, 1)\n" * rnd.choice([1000, 5000, 60_000]) + "assert A.buf == 1\n"
        elif kind == "nesting":
            n = rnd.choice([100, 1000, 300_000])
            text = head + "assert " + "(" * n + "A.buf == 0" + ")" * n + "\n"
        elif kind == "long-line":
            text = head + "# " + "x" * rnd.choice([10_000, 2_000_000]) + "\nassert A.buf == 0\n"
        elif kind == "many-par":
            text = head + "par {\n  A: write(buf, 1)\n}\n" * rnd.choice([50, 2000]) + "assert A.buf == 1\n"
        else:
            line = "A: write(buf, 1)\n"
            text = head + line * ((1 << 20) // len(line) - 10) + "assert A.buf == 1\n"
        _write(d / "big.cow", text)
        return [rnd.choice(["run", "check"]), "big.cow"]

    return Case("huge", kind, make, bound=30.0)


def signals(rnd: random.Random) -> Case:
    sig = rnd.choice([signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
    after = rnd.uniform(0.0, 2.0)

    def make(d: Path) -> list[str]:
        for i in range(rnd.randint(1, 4)):
            _write(d / f"s{i}.cow", rnd.choice([SMALL, RACE]))
        return rnd.choice([["run", str(d)], ["run", "--backend", "all", str(d)], ["check", str(d)],
                           ["run", "--mode", "full", str(d)]])

    return Case("signals", f"{signal.Signals(sig).name} after {after:.2f}s", make, bound=60.0,
                signal_after=after, sig=sig)


def matrix(rnd: random.Random) -> Case:
    states, timeout = rnd.choice([1, 2, 50, 1000]), rnd.choice([0.05, 0.5, 2.0])

    def make(d: Path) -> list[str]:
        _write(d / "race.cow", RACE)
        _write(d / "small.cow", SMALL)
        return ["run", "--backend", "all", "--max-states", str(states), "--timeout", str(timeout), str(d)]

    # every cell is bounded by --timeout; the matrix has at most a few dozen cells here
    return Case("matrix", f"--max-states {states} --timeout {timeout}", make, bound=60.0 * timeout + 30.0)


MAKERS: dict[str, Callable[[random.Random], Case]] = {
    "special": special, "names": names, "huge": huge, "signals": signals, "matrix": matrix}


def fuzz_outside(*, seconds: float | None = 60.0, examples: int | None = None, seed: int | None = None,
                 classes=CLASSES, log=print) -> dict:
    """Run cases until the budget runs out; log each finding.  Returns counts per
    class (cases, findings) and the seed."""
    seed = seed if seed is not None else random.SystemRandom().randrange(1 << 32)
    rnd = random.Random(seed)
    cases: Counter[str] = Counter()
    findings: Counter[str] = Counter()
    t0 = time.monotonic()
    while (examples is None or sum(cases.values()) < examples) and (seconds is None or time.monotonic() - t0 < seconds):
        case = MAKERS[rnd.choice(list(classes))](rnd)
        cases[case.kind] += 1
        bad = judge(run_case(case))
        if bad:
            findings[case.kind] += 1
            log(f"finding ({case.kind}: {case.what}): {'; '.join(bad)}")
    return {"seed": seed, "seconds": round(time.monotonic() - t0, 1), "cases": dict(cases),
            "findings": dict(findings)}


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m cowdsl.fuzz outside",
                                description="Fuzz the command line with hostile files, names, sizes, signals and bounds.")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default 300 without --examples)")
    p.add_argument("--examples", type=int, default=None, help="stop after this many cases")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--class", dest="classes", action="append", choices=CLASSES, help="only these classes (repeatable)")
    args = p.parse_args(argv)
    if shutil.which(sys.executable) is None and not Path(sys.executable).exists():
        print("no Python interpreter to run the command with", file=sys.stderr)
        return 2
    seconds = args.seconds if args.seconds is not None or args.examples is not None else 300.0
    counts = fuzz_outside(seconds=seconds, examples=args.examples, seed=args.seed,
                          classes=tuple(args.classes or CLASSES))
    per = ", ".join(f"{k} {counts['cases'].get(k, 0)}/{counts['findings'].get(k, 0)}" for k in CLASSES)
    print(f"{sum(counts['cases'].values())} cases in {counts['seconds']} s (seed {counts['seed']}), "
          f"cases/findings per class: {per}")
    return 1 if counts["findings"] else 0
