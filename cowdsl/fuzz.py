"""Fuzzing: scenario files are untrusted input.

Whatever the bytes, cowdsl answers with a verdict or with a diagnostic that has
a location: never a Python traceback, a hang or unbounded memory growth, and
the model never breaks its own invariants (``cowdsl.semantics.invariants``,
turned on here).

Three sources of inputs:

* ``generate``: scenarios built from the op registry (``cowdsl.ops``: each op
  declares its generator, ``OpSpec.fuzz``), with names tracked the way the
  checker tracks them, so that almost all of them are valid and reach the
  model, ``par`` blocks included;
* ``grammar``: random derivations of the grammar itself (``grammar/cow.lark``,
  read through Lark's compiled rules), syntactically valid, semantically
  anything, for the checker;
* ``mutate``: the corpus (``scenarios/``, ``benchmarks/``, ``tests/regressions/``
  of a source checkout, read only) with tokens deleted, duplicated, swapped and inserted, random bytes, huge
  numbers, deep nesting, very long lines, bytes that are not UTF-8, NUL bytes,
  CRLF line ends, truncation.

The generators draw through a ``Chooser``: ``RandomChooser`` (the long run) or
``DrawChooser`` (hypothesis, in the test suite: ``strategy()`` turns a
generator into a hypothesis strategy, which shrinks).

    python -m cowdsl.fuzz [--seconds S | --examples N] [--seed N] [--out DIR]
    python -m cowdsl.fuzz atheris [libFuzzer options...]
    python -m cowdsl.fuzz outside [--seconds S | --examples N] [--class NAME]

A concurrent scenario that the default search finishes is also run with the
full search, which must give the same verdicts (the standing differential
test).  ``outside`` runs the command itself on hostile files, names, sizes,
signals and bounds (``cowdsl.fuzz_outside``).

The long run reports every new crash, minimised; it writes nothing unless
``--out DIR`` says where (``--out tests/regressions`` in a source checkout,
where ``tests/test_fuzz.py`` keeps each file as a test).  Each input runs under
a hang alarm (SIGALRM) and the whole run under an address-space limit.

The atheris harness (coverage-guided, libFuzzer) fuzzes the front end:
decode, parse, check.  atheris installs here from PyPI (3.0.0, cp311 wheel);
where it does not, ``python -m cowdsl.fuzz atheris`` says so and exits 2.
atheris instruments only the modules imported inside its entry point, so this
module imports the front end (and whatever imports it: the runner, the
reports) inside the functions that use it, never at the top.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from cowdsl import ops
from cowdsl.semantics.invariants import ENV, InvariantViolation

# A source checkout: its corpus is read (never written) when it is there.
ROOT = Path(__file__).resolve().parents[1]
SOURCE_REGRESSIONS = ROOT / "tests" / "regressions"

# The backends the model is fuzzed on: the six eras and a few variants.
BACKENDS = (
    "mapcount:foll_cow=off",
    "mapcount",
    "gup-cow",
    "refcount",
    "early-cow",
    "early-cow:device_exclusive=off:hugetlb_fork_copy=off:swap_pin_check=off:wp_seq=off",  # 5.9
    "early-cow:devexcl_fork=copy",
    "early-cow:pin_scope=longterm",
    "cow-fixes-1",
    "anon-exclusive",
    "anon-exclusive:foll_force=foll_cow:hugetlb_force=allow:longterm_file_write=allow"
    ":longterm_unshare=anon:mprotect=fault",  # 5.19
    "anon-exclusive:pin_bias=off",
)

# Exploration bounds for fuzzed runs: partial results are fine, time is not.
FUZZ_MAX_STATES = 3000
FUZZ_TIMEOUT = 5.0


# --- choosers ---------------------------------------------------------------------------


class Chooser:
    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def choice(self, seq):
        seq = list(seq)
        return seq[self.integer(0, len(seq) - 1)]

    def boolean(self, p: float = 0.5) -> bool:
        """True with probability about p (shrinks towards False)."""
        return self.integer(0, 99) >= 100 - round(p * 100)

    def subset(self, seq, p: float = 0.5) -> list:
        return [x for x in seq if self.boolean(p)]


class RandomChooser(Chooser):
    def __init__(self, rnd: random.Random):
        self.rnd = rnd

    def integer(self, lo: int, hi: int) -> int:
        return self.rnd.randint(lo, hi)


class DrawChooser(Chooser):
    """Draws through hypothesis, so that failing examples shrink."""

    def __init__(self, draw):
        from hypothesis import strategies as st

        self.draw, self.st = draw, st

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(self.st.integers(lo, hi))


def strategy(generate, *args, **kwargs):
    """A hypothesis strategy from a generator taking a Chooser first."""
    from hypothesis import strategies as st

    @st.composite
    def _s(draw):
        return generate(DrawChooser(draw), *args, **kwargs)

    return _s()


# --- valid scenarios from the op registry ----------------------------------------------------


class _Names:
    """What the checker knows at one point of the file, as the generator sees it."""

    def __init__(self):
        self.procs: dict[str, dict[str, tuple[int, bool]]] = {}  # proc -> mapping -> (pages, file-backed)
        self.exited: set[str] = set()
        self.threads: dict[str, str] = {}
        self.files: dict[str, int] = {}
        self.pipes: list[str] = []
        self.handles: dict[str, tuple[str, bool, str]] = {}  # name -> (kind, write, owner); live only
        self.values: list[str] = []
        self.outcomes: list[str] = []
        self.unmapped: set[tuple[str, str]] = set()
        self.counter = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def alive(self) -> list[str]:
        return [p for p in self.procs if p not in self.exited]

    def tasks(self) -> list[str]:
        return self.alive() + [t for t, p in self.threads.items() if p not in self.exited]

    def task_of(self, actor: str) -> str:
        return self.threads.get(actor, actor)


def task_ops() -> list[str]:
    """The ops a process or thread does, from the op registry (each declares its
    fuzz generator: ``OpSpec.fuzz``)."""
    return actor_ops(ops.TASK)


def actor_ops(actor: str, *, in_par: bool = False) -> list[str]:
    """The ops of one kind of actor, each as often as its declared weight
    (``in_par``: only those drawn inside `par` blocks)."""
    return [name for name, spec in ops.OPS.items() if spec.actor == actor and (spec.fuzz.in_par or not in_par)
            for _ in range(spec.fuzz.weight)]


class ScenarioGenerator:
    """Writes a scenario the checker accepts (nearly always): declarations, steps
    drawn from the op registry with arguments of the right kinds (each op's
    declared generator writes its step), `par` blocks, assertions over what
    exists, sometimes an expect line."""

    def __init__(self, c: Chooser, *, par: bool = True, max_steps: int = 10, max_pages: int = 3):
        self.c = c
        self.par = par
        self.max_steps = max_steps
        self.max_pages = max_pages
        self.n = _Names()
        self.lines: list[str] = []
        self.in_par = False
        self.pending: list = []  # names made in a par block, visible after it

    # --- helpers for the ops' generators ---
    def value(self) -> int:
        return self.c.choice((0, 1, 2, 3, 7, 255)) if self.c.boolean(0.9) else self.c.integer(0, (1 << 64) - 1)

    def own_addr(self, task: str) -> str | None:
        maps = self.n.procs[task]
        if not maps:
            return None
        m = self.c.choice(sorted(maps))
        pages = maps[m][0]
        i = self.c.integer(0, pages - 1)
        return m if i == 0 and self.c.boolean() else f"{m}[{i}]"

    def remote_addr(self) -> str | None:
        cands = [p for p in self.n.alive() if self.n.procs[p]]
        if not cands:
            return None
        p = self.c.choice(cands)
        return f"{p}.{self.own_addr(p)}"

    def any_addr(self, task: str) -> str | None:
        if self.c.boolean(0.3):
            return self.remote_addr()
        return self.own_addr(task)

    def made(self, fn: Callable[[], object]) -> None:
        """Record a name: now, or after the par block."""
        if self.in_par:
            self.pending.append(fn)
        else:
            fn()

    def bind_value(self, p: float) -> str:
        if not self.c.boolean(p):
            return ""
        v = self.n.fresh("v")

        def make() -> None:
            self.n.values.append(v)
            self.n.outcomes.append(v)
        self.made(make)
        return f" as {v}"

    def bind_outcome(self, p: float) -> str:
        if not self.c.boolean(p):
            return ""
        o = self.n.fresh("k")
        self.made(lambda: self.n.outcomes.append(o))
        return f" as {o}"

    def handle(self, task: str, kind: str, write: bool, text: str, p: float = 0.85) -> str:
        """``text``, sometimes with `as NAME` naming the pin, reference or device handle it makes."""
        if not self.c.boolean(p):
            return text
        h = self.n.fresh("h" if kind == ops.BINDS_PIN else "r" if kind == ops.BINDS_REF else "dx")

        def make() -> None:
            self.n.handles[h] = (kind, write, task)
            self.n.outcomes.append(h)
        self.made(make)
        return f"{text} as {h}"

    def release(self, op: ops.OpSpec) -> str | None:
        """A step of an op that releases a live handle of the kind it declares (unpin, put)."""
        live = [h for h, (k, _w, _o) in self.n.handles.items() if k == op.releases]
        if not live:
            return None
        h = self.c.choice(live)
        del self.n.handles[h]
        return f"{op.name}({h})"

    def write_step(self, op: str, actor: str) -> str | None:
        """The op's step as its declared generator writes it (after `ACTOR: `), or None."""
        return ops.OPS[op].fuzz.write(self, actor)

    # --- declarations ---
    def declarations(self) -> None:
        n, c = self.n, self.c
        procs = ["A"] + (["C"] if c.boolean(0.3) else [])
        for p in procs:
            n.procs[p] = {}
        self.lines.append("process " + ", ".join(procs))
        if c.boolean(0.35):
            t = n.fresh("T")
            n.threads[t] = c.choice(procs)
            self.lines.append(f"thread {t} of {n.threads[t]}")
        if c.boolean(0.3):
            f = n.fresh("F")
            pages = c.integer(1, self.max_pages)
            n.files[f] = pages
            self.lines.append(f"file {f} = [{', '.join(str(self.value()) for _ in range(pages))}]")
        if c.boolean(0.3):
            p = n.fresh("P")
            n.pipes.append(p)
            self.lines.append(f"pipe {p}")

    # --- one step: (actor, text) or None ---
    def step(self, actor: str | None = None, in_par: bool = False) -> tuple[str, str] | None:
        n, c = self.n, self.c
        kinds = ["task"] * 8 + ["device"] * 2 + ["reclaim", "ksmd"]
        kind = c.choice(kinds)
        if actor is not None:
            kind = "device" if actor in n.handles else (actor if actor in ("reclaim", "ksmd") else "task")
        if kind == "device":
            live = [h for h in n.handles if actor is None or h == actor]
            if not live:
                return None
            h = c.choice(live)
            text = self.write_step(c.choice(actor_ops(ops.DEVICE)), h)
            return (h, f"{h}: {text}") if text else None
        if kind in ("reclaim", "ksmd"):
            text = self.write_step(c.choice(actor_ops(kind)), kind)
            return (kind, f"{kind}: {text}") if text else None
        tasks = [t for t in n.tasks() if actor is None or t == actor]
        if not tasks:
            return None
        actor = c.choice(tasks)
        text = self.write_step(c.choice(actor_ops(ops.TASK, in_par=in_par)), n.task_of(actor))
        return (actor, f"{actor}: {text}") if text else None

    # --- par blocks ---
    def par_block(self) -> None:
        n, c = self.n, self.c
        candidates = n.tasks() + list(n.handles) + ["reclaim"] * bool(n.alive()) + ["ksmd"] * bool(n.alive())
        candidates = list(dict.fromkeys(candidates))
        if len(candidates) < 2:
            return
        actors: list[str] = []
        while len(actors) < min(len(candidates), c.integer(2, 3)):
            a = c.choice(candidates)
            if a not in actors:
                actors.append(a)
        self.in_par, self.pending = True, []
        body = []
        order = actors[:2] + [c.choice(actors) for _ in range(c.integer(0, 2))]
        for a in order:
            got = self.step(actor=a, in_par=True)
            if got:
                body.append(got)
        self.in_par = False
        for fn in self.pending:
            fn()
        if len({a for a, _ in body}) >= 2:
            self.lines.append("par {")
            self.lines += ["  " + text for _, text in body]
            self.lines.append("}")
        else:
            self.lines += [text for _, text in body]

    # --- assertions ---
    def term_page(self) -> str | None:
        n, c = self.n, self.c
        opts = []
        for p, maps in n.procs.items():
            for m, (pages, _) in maps.items():
                opts.append(f"{p}.{m}" + (f"[{c.integer(0, pages - 1)}]" if pages > 1 and c.boolean() else ""))
        opts += list(n.handles)
        return c.choice(opts) if opts else None

    def condition(self, depth: int = 0) -> str:
        n, c = self.n, self.c
        if depth < 2 and c.boolean(0.25):
            op = c.choice(("and", "or", "implies"))
            return f"{self.condition(depth + 1)} {op} {self.condition(depth + 1)}"
        if depth < 2 and c.boolean(0.1):
            return f"not ({self.condition(depth + 1)})"
        pick = c.integer(0, 7)
        page = self.term_page()
        if pick == 0 and page:
            return f"{page} == {self.value()}"
        if pick == 1 and page:
            fact = c.choice(("exclusive", "pinned", "maybe_pinned", "swapcache", "swapped", "present", "writable",
                             "zero_page", "device_exclusive", "ksm"))
            return f"{fact}({page})"
        if pick == 2 and page:
            return f"{c.choice(('refcount', 'mapcount', 'pincount'))}({page}) {c.choice(('==', '>=', '<', '!='))} {c.integer(0, 3)}"
        if pick == 3 and page:
            other = self.term_page()
            return f"{page} is {'not ' if c.boolean(0.3) else ''}{other}"
        if pick == 4 and n.outcomes:
            return f"failed({c.choice(n.outcomes)})"
        if pick == 5 and n.values:
            return f"{c.choice(n.values)} == {self.value()}"
        if pick == 6:
            p = c.choice(sorted(n.procs))
            return f"{c.choice(('alive', 'segv', 'has_pinned'))}({p})"
        if pick == 7:
            return f"{c.choice(('cow_copies', 'faults'))} >= {c.integer(0, 2)}"
        return c.choice(("true", "false"))

    def assertions(self, concurrent: bool) -> None:
        c = self.c
        for _ in range(c.integer(1, 3)):
            if concurrent and c.boolean(0.6):
                q = c.choice(("always:", "sometimes:", "never:", "invariant", "exists", "~exists"))
            else:
                q = "assert"
            self.lines.append(f"{q} {self.condition()}")
        if c.boolean(0.3):
            b = c.choice(("anon-exclusive", "early-cow", "5.10", "mapcount", "6.1", "early-cow:wp_seq=off"))
            self.lines.append(f"expect {c.choice(('pass', 'fail'))} on {b}")

    def generate(self) -> str:
        c = self.c
        if c.boolean(0.2):
            self.lines.append('scenario "fuzz"')
        self.declarations()
        concurrent = False
        for p in list(self.n.procs):  # most scenarios start by mapping memory and touching it
            if c.boolean(0.8):
                self.lines.append(f"{p}: {self.write_step('mmap', p)}")
                if c.boolean(0.7):
                    self.lines.append(f"{p}: {self.write_step('write', p)}")
        target, attempts = c.integer(1, self.max_steps), 0
        while target > 0 and attempts < 4 * self.max_steps:
            attempts += 1
            if self.par and c.boolean(0.2):
                before = len(self.lines)
                self.par_block()
                concurrent |= any(ln == "par {" for ln in self.lines[before:])
                target -= len(self.lines) > before
                continue
            got = self.step()
            if got:
                self.lines.append(got[1])
                target -= 1
        self.assertions(concurrent)
        return "\n".join(self.lines) + "\n"


def scenario_text(c: Chooser, *, par: bool = True, max_steps: int = 10) -> str:
    return ScenarioGenerator(c, par=par, max_steps=max_steps).generate()


def concurrent_scenario(text: str | None):
    """A generated text as a scenario with a par block; None where it is no valid
    scenario (the checker refused it) or runs no two actors at once."""
    from cowdsl.errors import CowError  # lazy, like _run_input's
    from cowdsl.load import load_text

    if text is None:
        return None
    try:
        sc = load_text(text, "t.cow")
    except CowError:
        return None
    return sc if sc.concurrent else None


# --- derivations of the grammar -----------------------------------------------------------------


_GRAMMAR: dict | None = None


def _grammar():
    """The compiled grammar: rules by nonterminal, terminal patterns, and the
    least derivation depth of each nonterminal."""
    global _GRAMMAR
    if _GRAMMAR is None:
        from cowdsl.syntax.parser import lark_parser  # lazy: the front end is atheris's to import (atheris_main)

        p = lark_parser()
        rules: dict[str, list] = {}
        for r in p.rules:
            rules.setdefault(r.origin.name, []).append([(s.name, s.is_term) for s in r.expansion])
        terms = {t.name: t.pattern for t in p.terminals}
        depth = {name: 10**9 for name in rules}
        changed = True
        while changed:
            changed = False
            for name, exps in rules.items():
                for e in exps:
                    d = 1 + max([0] + [depth[s] for s, term in e if not term])
                    if d < depth[name]:
                        depth[name], changed = d, True
        _GRAMMAR = {"rules": rules, "terms": terms, "depth": depth}
    return _GRAMMAR


# A NAME is never one of the grammar's reserved words (`file` is both mmap's keyword and a declaration).
_WORDS = sorted((set(ops.op_names()) | set(ops.flag_names()) | set(ops.fact_names()) | set(ops.keyword_arg_names())
                 | {"A", "B", "C", "T", "buf", "mr", "v", "F", "P", "r", "dx", "reclaim", "ksmd", "x"})
                - set(ops.keywords()))


def _terminal(c: Chooser, name: str, pattern) -> str:
    if name == "NAME":
        return c.choice(_WORDS)
    if name == "INT":
        return c.choice(("0", "1", "2", "3", "0x10", "64", "65", "4096", str(1 << 64), "9" * 41))
    if name == "STRING":
        return c.choice(('"x"', '""', '"a scenario"'))
    if name == "BACKEND":
        return c.choice(("anon-exclusive", "early-cow", "5.10", "6.1", "native", "early-cow:wp_seq=off", "nope",
                         "early-cow:nope=1", "mapcount:foll_cow=maybe"))
    if name == "_NL":
        return c.choice(("\n", "\n", "  # comment\n", "\r\n", "\n\n"))
    if pattern.type == "str":
        return pattern.value
    return {"CMP": c.choice(("==", "!=", "<", "<=", ">", ">=")), "OUTCOME": c.choice(("pass", "fail")),
            "VAR": c.choice(("$N", "$kind", "$x")), "CHOICES": c.choice(("thp|small", "1|2"))}.get(name, "x")


def grammar_text(c: Chooser, *, max_depth: int = 12, max_items: int = 30) -> str:
    """A random derivation of the grammar's start symbol (syntactically valid)."""
    g = _grammar()
    out: list[str] = []
    budget = [max_items * 20]

    def expand(sym: str, depth: int) -> None:
        exps = g["rules"][sym]
        budget[0] -= 1
        if depth >= max_depth or budget[0] <= 0:  # wrap up: the shallowest expansion
            exps = [min(exps, key=lambda e: (max([0] + [g["depth"][s] for s, t in e if not t]), len(e)))]
        elif "_star_" in sym:  # a repetition: go on most of the time
            again = [e for e in exps if (sym, False) in e]
            exps = again if again and c.boolean(0.85) else [e for e in exps if e not in again] or exps
        elif len(exps) > 1:  # prefer longer expansions, so files have a body
            exps = [e for e in exps for _ in range(1 + len(e))]
        star = "_star_" in sym  # its recursion is breadth, not depth
        for s, term in c.choice(exps):
            if term:
                out.append(_terminal(c, s, g["terms"][s]))
            else:
                expand(s, depth if star and s == sym else depth + 1)

    expand("start", 0)
    text = ""
    for tok in out:
        text += tok if tok.endswith("\n") or not text or text.endswith("\n") else " " + tok
    return text


# --- mutations of the corpus ----------------------------------------------------------------


_CORPUS: dict[bool, list[bytes]] = {}


def corpus(extra: bool = True) -> list[bytes]:
    """The bundled scenarios, the benchmark scenario and the regression inputs (read once)."""
    if extra not in _CORPUS:
        _CORPUS[extra] = _read_corpus(extra)
    return _CORPUS[extra]


def _read_corpus(extra: bool) -> list[bytes]:
    files = sorted((ROOT / "scenarios").rglob("*.cow")) + sorted((ROOT / "benchmarks").glob("*.cow"))
    if extra:
        files += regression_files(SOURCE_REGRESSIONS)
    out = []
    for f in files:
        try:
            out.append(f.read_bytes())
        except OSError:
            pass
    return out or [b"process A\nA: mmap(buf, anon, private, rw)\nA: write(buf, 1)\nassert A.buf == 1\n"]


_TOKEN = re.compile(rb"\s+|\w+|[^\w\s]")
_EXTRA = [b"(", b")", b"[", b"]", b",", b".", b":", b"=", b"==", b" is ", b" not ", b"{", b"}", b"\n", b"#", b'"',
          b"\r\n", b"\r", b"\t", b"\x00", b"\xff", b"\xc3(", b"\xe2\x80\xa8", b"\x0c", b"\xef\xbb\xbf", b"-", b"0x",
          b"par {\n", b"}\n", b" as ", b"expect pass on ", b"assert ", b"5.10", "\u00e9".encode(), b"\xed\xa0\x80",
          b"include \"/etc/passwd\"\n", b"__import__('os')", b"../../etc/passwd"]


def mutate(c: Chooser, data: bytes, *, max_mutations: int = 6) -> bytes:
    """One corpus input, mutated a few times."""
    toks = _TOKEN.findall(data) or [data]
    words = [t for t in toks if t.strip()] or [b"x"]
    for _ in range(c.integer(1, max_mutations)):
        kind = c.integer(0, 15)
        k = c.integer(0, max(len(toks) - 1, 0))
        if not toks:
            toks = [b"x"]
        if kind == 0:
            del toks[k]
        elif kind == 1:
            toks.insert(k, toks[k])
        elif kind == 2:
            j = c.integer(0, len(toks) - 1)
            toks[k], toks[j] = toks[j], toks[k]
        elif kind == 3:
            toks.insert(k, c.choice(_EXTRA + words))
        elif kind == 4:  # random bytes
            toks.insert(k, bytes(c.integer(0, 255) for _ in range(c.integer(1, 6))))
        elif kind == 5:  # a huge number
            digits = c.choice((20, 39, 40, 41, 300, 5000))
            toks[k] = (b"0x" + b"f" * digits) if c.boolean() else b"9" * digits
        elif kind == 6:  # deep nesting in an assertion
            d = c.choice((50, 50, 500, 3000, 20000))
            shape = c.integer(0, 3)
            expr = {0: b"(" * d + b"true" + b")" * d, 1: b"not " * d + b"true",
                    2: b" and ".join([b"true"] * d), 3: b" implies ".join([b"true"] * d)}[shape]
            toks.insert(k, b"\nassert " + expr + b"\n")
        elif kind == 7:  # nested par blocks
            d = c.choice((2, 20, 500))
            toks.insert(k, b"\n" + b"par {\n" * d + b"A: write(buf, 1)\n" + b"}\n" * d)
        elif kind == 8:  # a very long line
            n = c.choice((1000, 1000, 1000, 100_000, 600_000))
            toks.insert(k, c.choice((b"\nref \"" + b"x" * n + b"\"\n", b"\nprocess " + b"A" * n + b"\n",
                                     b"\nprocess " + b", ".join(b"P%d" % i for i in range(n // 8)) + b"\n")))
        elif kind == 9:  # bytes that are not UTF-8
            toks.insert(k, c.choice((b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80")))
        elif kind == 10:
            toks.insert(k, b"\x00")
        elif kind == 11:  # CRLF, or bare CR line ends
            return_ = c.choice((b"\r\n", b"\r"))
            toks = [t.replace(b"\n", return_) for t in toks]
        elif kind == 12:  # truncate
            toks = toks[:k]
        elif kind == 13:  # many steps
            n = c.choice((100, 100, 100, 2000))
            toks.insert(k, b"\n" + b"A: write(buf, 1)\n" * n)
        elif kind == 14:  # many pages or a big count
            toks.insert(k, c.choice((b"\nA: mmap(big, anon, private, rw, pages=64)\n", b"pages=65",
                                     b"count=4096", b"count=4097", b"\nfile G = [" + b"1, " * 70 + b"1]\n")))
        else:
            toks.insert(k, c.choice(words))
    return b"".join(toks)


def mutated_input(c: Chooser) -> bytes:
    base = corpus()
    return mutate(c, c.choice(base))


# --- the target ---------------------------------------------------------------------------------


class Crash(Exception):
    """An input made cowdsl do something other than a verdict or a located diagnostic."""

    def __init__(self, kind: str, detail: str, key: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail, self.key = kind, detail, key


def _key(e: BaseException) -> str:
    """Crash identity for de-duplication: the exception type and the innermost cowdsl frame."""
    tb = traceback.extract_tb(e.__traceback__)
    frames = [f for f in tb if "cowdsl" in f.filename and "fuzz.py" not in f.filename] or tb
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    inv = getattr(e, "invariant", None)
    return f"{type(e).__name__}{'[' + inv + ']' if inv else ''}@{where}"


def _check_diagnostics(e, source: str) -> None:
    from cowdsl.errors import CowError  # lazy, like lark_parser in _grammar

    assert isinstance(e, CowError)
    if not e.diagnostics:
        raise Crash("no-location", "a CowError without diagnostics", "CowError-empty")
    for d in e.diagnostics:
        if not (d.span.line >= 1 and d.span.col >= 1 and d.span.end_col > d.span.col):
            raise Crash("no-location", f"diagnostic without a proper location: {d}", "CowError-span")
    text = e.render()
    if ": error: " not in text:
        raise Crash("no-location", "a diagnostic that does not render", "CowError-render")


def run_input(data: bytes, backends=("anon-exclusive",), *, max_states: int = FUZZ_MAX_STATES,
              timeout: float = FUZZ_TIMEOUT, run: bool = True) -> str:
    """Feed one input through decode, parse, check and (if it is a scenario) the
    model on each backend, with the invariants on, and render the results.
    Returns "diagnostic" or "verdict"; raises Crash for anything else."""
    before = os.environ.get(ENV)
    os.environ[ENV] = "1"  # every backend made below checks its invariants after every micro-step
    try:
        return _run_input(data, backends, max_states, timeout, run)
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def _run_input(data: bytes, backends, max_states: int, timeout: float, run: bool) -> str:
    # lazy, like lark_parser in _grammar: each of these imports the front end (cowdsl.errors, cowdsl.scenario at least)
    from cowdsl.errors import CowError
    from cowdsl.explore.search import Bounds
    from cowdsl.load import load_text_all
    from cowdsl.report import jsonout
    from cowdsl.report import text as textout
    from cowdsl.run import run as run_scenario
    from cowdsl.syntax.parser import decode

    source = ""
    try:
        source = decode(data, "fuzz.cow")
        sc = load_text_all(source, "fuzz.cow")[0]  # a swept file: its first scenario is run
    except CowError as e:
        _check_diagnostics(e, source)
        return "diagnostic"
    except Crash:
        raise
    except RecursionError as e:
        raise Crash("recursion", f"RecursionError: {e}", _key(e)) from e
    except MemoryError as e:
        raise Crash("memory", "MemoryError", _key(e)) from e
    except Exception as e:
        raise Crash("front-end", f"{type(e).__name__}: {e}\n{''.join(traceback.format_exception(e))}", _key(e)) from e
    if not run:
        return "verdict"
    for spec in backends:
        try:
            r = run_scenario(sc, spec, bounds=Bounds(max_states=max_states, timeout=timeout))
            if r.verdict not in ("pass", "fail", "unknown", "skip"):
                raise Crash("verdict", f"verdict {r.verdict!r} on {spec}", "verdict")
            textout.report(r, show_trace=True, show_state=True)
            jsonout.document([r], [], [])
            if sc.concurrent and r.exploration is not None and r.exploration.partial is None:
                _differential(sc, spec, r, max_states, timeout)
        except Crash:
            raise
        except InvariantViolation as e:
            raise Crash("invariant", f"on {spec}: {textout.invariant_violation(e)}", _key(e)) from e
        except MemoryError as e:
            raise Crash("memory", f"MemoryError on {spec}", _key(e)) from e
        except Exception as e:
            raise Crash("model", f"on {spec}: {type(e).__name__}: {e}\n{''.join(traceback.format_exception(e))}",
                        _key(e)) from e
    return "verdict"


def _differential(sc, spec, reduced, max_states: int, timeout: float) -> None:
    """The default search against the reference: the full search must give the
    same verdict and the same answer for every assertion (a reduction that
    loses a final state shows here)."""
    from cowdsl.explore.search import Bounds
    from cowdsl.run import run as run_scenario

    full = run_scenario(sc, spec, mode="full", bounds=Bounds(max_states=max_states, timeout=timeout))
    if full.exploration is None or full.exploration.partial is not None:
        return
    got = (reduced.verdict, [c.holds for c in reduced.checks])
    want = (full.verdict, [c.holds for c in full.checks])
    if got != want:
        raise Crash("differential", f"on {spec}: the default search gives {got}, the full search {want}",
                    f"differential:{got}:{want}")


def regression_files(directory: Path) -> list[Path]:
    """Every input kept in a regressions directory (all files but the README)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("README"))


def save_regression(data: bytes, kind: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}-{hashlib.sha256(data).hexdigest()[:12]}.input"
    path.write_bytes(data)
    return path


def minimise(data: bytes, still_crashes, deadline: float) -> bytes:
    """Greedy: drop lines, then tokens (never the white space between them, so the
    result stays readable), while the same crash reproduces.  A line ends at LF,
    CRLF or a bare CR (mutated inputs have all three)."""
    for by_line in (True, False):
        parts = data.splitlines(keepends=True) if by_line else _TOKEN.findall(data)
        joiner = b""
        i = 0
        while i < len(parts) and time.monotonic() < deadline:
            if not by_line and not parts[i].strip():
                i += 1
                continue
            trial = joiner.join(parts[:i] + parts[i + 1 :])
            if still_crashes(trial):
                parts, data = parts[:i] + parts[i + 1 :], trial
            else:
                i += 1
    # runs of blanks to one, none at the ends of lines: each kept only if the crash does
    for pattern, repl in ((rb"[ \t\f\v]+", b" "), (rb"(?m)^ | (?=\r|\n|$)", b"")):
        trial = re.sub(pattern, repl, data)
        if trial != data and time.monotonic() < deadline and still_crashes(trial):
            data = trial
    return data


# --- the long run -------------------------------------------------------------------------------


_SHOWN = 2000  # bytes of a crashing input shown when it is not written


class _Hang(BaseException):  # not an Exception: run_input must not take it for a crash of its own
    pass


def _alarm(seconds: float):
    import signal

    def fire(signum, frame):
        raise _Hang()

    signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _disarm():
    import signal

    signal.setitimer(signal.ITIMER_REAL, 0)


def fuzz(*, seconds: float | None = 60.0, examples: int | None = None, seed: int | None = None,
         out: Path | None = None, hang_seconds: float = 30.0, backends=BACKENDS, minimise_seconds: float = 30.0,
         log=print) -> dict:
    """Generate, derive and mutate inputs until the time or example budget runs out;
    returns counts, and reports each new crash, minimised: written to ``out`` when
    given, else shown (nothing is written)."""
    seed = seed if seed is not None else random.SystemRandom().randrange(1 << 32)
    rnd = random.Random(seed)
    c = RandomChooser(rnd)
    counts: dict[str, float] = {"examples": 0, "diagnostic": 0, "verdict": 0, "crashes": 0, "seed": seed}
    seen: set[str] = set()
    t0 = time.monotonic()
    sources = (("generate", lambda: scenario_text(c).encode()), ("grammar", lambda: grammar_text(c).encode()),
               ("mutate", lambda: mutated_input(c)))

    def once(data: bytes, specs) -> str:
        _alarm(hang_seconds)
        try:
            return run_input(data, specs)
        except _Hang:
            raise Crash("hang", f"no answer in {hang_seconds:g} s", "hang") from None
        finally:
            _disarm()

    while True:
        if examples is not None and counts["examples"] >= examples:
            break
        if seconds is not None and time.monotonic() - t0 >= seconds:
            break
        name, make = c.choice(sources)
        data = make()
        specs = (c.choice(backends),) if name != "generate" else tuple(c.subset(backends, 0.3)) or (c.choice(backends),)
        counts["examples"] += 1
        try:
            counts[once(data, specs)] += 1
        except Crash as e:
            if e.key in seen:
                continue
            seen.add(e.key)
            counts["crashes"] += 1

            def again(d: bytes, key=e.key, specs=specs) -> bool:
                try:
                    once(d, specs)
                except Crash as e2:
                    return e2.key == key
                return False

            small = minimise(data, again, time.monotonic() + minimise_seconds)
            if out is not None:
                where = f"written to {save_regression(small, e.kind, out)}"
            else:
                shown = repr(small[:_SHOWN]) + (f" ... ({len(small)} bytes)" if len(small) > _SHOWN else "")
                where = f"input {shown}"
            log(f"crash ({e.kind}, {e.key}) from {name} on {', '.join(specs)}: {where}")
            log("  " + str(e).splitlines()[0][:300])
    counts["seconds"] = round(time.monotonic() - t0, 1)
    return counts


# --- atheris ------------------------------------------------------------------------------------


def atheris_main(argv: list[str]) -> int:
    """Coverage-guided fuzzing of the front end (decode, parse, check) with atheris.

    Without a corpus directory among the arguments, the bundled corpus is copied
    to a temporary directory (libFuzzer writes new inputs into its first corpus
    directory: never into scenarios/), a dictionary of the language's words is
    written beside it, and crash files go to that temporary directory too unless
    ``-artifact_prefix=`` says where."""
    try:
        import atheris
    except ImportError:
        print("cowdsl.fuzz: atheris is not installed (`pip install atheris`; it needs a wheel for this "
              "Python or clang to build one)", file=sys.stderr)
        return 2
    import tempfile

    # atheris instruments a module only when it is first imported inside this block: no
    # module imported at the top of cowdsl.fuzz may import the front end (tests/test_layers.py)
    with atheris.instrument_imports():
        from cowdsl.errors import CowError
        from cowdsl.load import load_text_all
        from cowdsl.syntax.parser import decode

    def one_input(data: bytes) -> None:
        try:
            load_text_all(decode(data, "fuzz.cow"), "fuzz.cow")
        except CowError as e:
            _check_diagnostics(e, "")

    args = list(argv)
    work = Path(tempfile.mkdtemp(prefix="cowdsl-atheris-"))
    if not any(not a.startswith("-") for a in args):
        corpus_dir = work / "corpus"
        corpus_dir.mkdir()
        for i, data in enumerate(corpus()):
            (corpus_dir / f"{i:04d}.cow").write_bytes(data)
        args.append(str(corpus_dir))
    if not any(a.startswith("-dict=") for a in args):
        words = sorted(set(_WORDS) | set(ops.keywords()) | {"(", ")", "[", "]", ",", ":", ".", "=", "==", "{", "}"})
        (work / "cow.dict").write_text("".join(f'"{w}"\n' for w in words))
        args.append(f"-dict={work / 'cow.dict'}")
    if not any(a.startswith("-artifact_prefix=") for a in args):
        args.append(f"-artifact_prefix={work}/atheris-")
        print(f"cowdsl.fuzz: crash files go to {work}/ (-artifact_prefix= to choose)", file=sys.stderr)
    if not any(a.startswith("-max_len=") for a in args):
        args.append("-max_len=4096")
    atheris.Setup([sys.argv[0]] + args, one_input)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["atheris"]:
        return atheris_main(argv[1:])
    if argv[:1] == ["outside"]:  # files, names, sizes, signals and bounds, through the real command
        from cowdsl import fuzz_outside

        return fuzz_outside.main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m cowdsl.fuzz",
                                description="Fuzz cowdsl and report the crashing inputs; --out DIR keeps them.")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default 300 without --examples)")
    p.add_argument("--examples", type=int, default=None, help="stop after this many inputs")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="write each crashing input, minimised, into DIR (default: show it, write nothing); "
                        "in a source checkout, tests/regressions/ keeps them as tests")
    p.add_argument("--hang-seconds", type=float, default=30.0, help="an input that takes longer is a hang")
    p.add_argument("--memory-mb", type=int, default=4096, help="address-space limit of the run (MemoryError past it)")
    p.add_argument("--backend", action="append", dest="backends", help="fuzz only these backends (repeatable)")
    args = p.parse_args(argv)
    try:
        import resource

        limit = args.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (ImportError, ValueError, OSError):
        pass
    seconds = args.seconds if args.seconds is not None or args.examples is not None else 300.0
    counts = fuzz(seconds=seconds, examples=args.examples, seed=args.seed, out=args.out,
                  hang_seconds=args.hang_seconds, backends=tuple(args.backends or BACKENDS))
    print(f"{counts['examples']} inputs in {counts['seconds']} s (seed {counts['seed']}): "
          f"{counts['verdict']} verdicts, {counts['diagnostic']} diagnostics, {counts['crashes']} new crashes")
    if counts["crashes"] and args.out is None:
        print("(shown, not written: --out DIR keeps them)")
    return 1 if counts["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
