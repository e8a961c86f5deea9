"""Check a parsed file: names, arities, flags, ordering.  Produces a Scenario.

All problems in a file are collected and reported together, each with its span.
"""

from __future__ import annotations

from pathlib import Path

import attrs
from attrs import define, field

from cowdsl import limits as L
from cowdsl import ops
from cowdsl import scenario as S
from cowdsl.errors import CowError, Diagnostic, Span, did_you_mean, one_of
from cowdsl.kernel.spec import SpecError
from cowdsl.kernel.spec import resolve as resolve_spec
from cowdsl.syntax import ast

MAX_VALUE = (1 << 64) - 1
_BUILTIN_ACTORS = tuple(getattr(ops, "BUILTIN_ACTORS", (ops.RECLAIM,)))
_PROCESS_FACTS = ("segv", "alive", "has_pinned", "cow_copies", "faults")  # facts about a process
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # bidi embeddings, overrides, isolates


def _is_control(c: str) -> bool:
    """A character a report must not print: C0/C1 controls (not tab) and bidi controls."""
    return (c < " " and c != "\t") or "\x7f" <= c <= "\x9f" or c in _BIDI


@define
class Handle:
    kind: str  # ops.BINDS_PIN or ops.BINDS_REF
    write: bool
    owner: str
    line: int
    released_at: int | None = None
    released_by: str = ""  # "unpin", "put", or "exit" (the owner exited)

    @property
    def what(self) -> str:
        return {ops.BINDS_PIN: "pin", ops.BINDS_REF: "gup reference"}.get(self.kind, "device-exclusive handle")

    def released(self) -> str:
        how = f", when `{self.owner}` exited" if self.released_by == "exit" else ""
        return f"released at line {self.released_at}{how}"


@define
class Names:
    """What the checker knows at one point of the program."""

    processes: dict[str, int] = field(factory=dict)  # name -> line created
    exited: dict[str, int] = field(factory=dict)
    threads: dict[str, str] = field(factory=dict)
    files: dict[str, int] = field(factory=dict)  # name -> pages
    pipes: set[str] = field(factory=set)
    mappings: dict[str, dict[str, int]] = field(factory=dict)  # proc -> mapping -> pages
    unmapped: dict[tuple[str, str], int] = field(factory=dict)  # (proc, mapping) -> line
    handles: dict[str, Handle] = field(factory=dict)
    values: set[str] = field(factory=set)  # `as v` of value ops
    outcomes: set[str] = field(factory=set)  # every `as` name
    later: dict[str, int] = field(factory=dict)  # fork children named later: name -> line

    def taken(self) -> set[str]:
        return set(self.processes) | set(self.threads) | set(self.files) | self.pipes | set(self.handles) | self.values | self.outcomes

    def is_taken(self, name: str) -> bool:
        """``name in taken()`` without building the union: fresh() runs once per name."""
        return any(name in names for names in (self.processes, self.threads, self.files, self.pipes, self.handles,
                                                self.values, self.outcomes))


class Checker:
    def __init__(self, module: ast.Module, filename: str, source: str, limits=None):
        self.module = module
        self.limits = limits or L.DEFAULT
        self.total_pages = 0  # pages of every mmap and file so far, for max_total_pages
        self.over: set[str] = set()  # limits already reported
        self.filename = filename
        self.source = source
        self.diags: list[Diagnostic] = []
        self.n = Names()
        self.steps: list[S.Step] = []
        self.expected: dict[str, S.Expectation] = {}  # by canonical spec
        self.declared_threads: list[tuple[str, str]] = []
        self.par: int | None = None  # the block id while checking a par block
        self.par_made: dict[str, tuple[str, int]] = {}
        self.file_pages: dict[str, tuple[int, ...]] = {}
        self.file_backed: dict[str, set[str]] = {}  # proc -> file-backed mapping names

    # --- reporting ---------------------------------------------------------------
    def error(self, message, span, expected=None, hint=None):
        if len(self.diags) >= L.MAX_DIAGNOSTICS:  # stop: the work and the output stay bounded
            self.diags.append(Diagnostic(f"too many errors: checking stopped after {L.MAX_DIAGNOSTICS}", span,
                                         hint="fix the errors above and check again"))
            raise CowError(self.filename, self.source, self.diags)
        self.diags.append(Diagnostic(message, span, expected, hint))

    def text_of(self, span: Span) -> str:
        """The source text under a span (lines split on \\n only, as the parser counts them)."""
        lines = self.source.split("\n")
        if 0 < span.line <= len(lines):
            return lines[span.line - 1][span.col - 1 : span.end_col - 1].strip()
        return ""

    # --- driver --------------------------------------------------------------------
    def over_limit(self, field: str, message: str, span: Span, value: int) -> None:
        """A resource limit (cowdsl.limits) is exceeded: report it once, with its flag."""
        if field not in self.over:
            self.over.add(field)
            self.error(message, span, hint=L.hint(field, value))

    def count_steps(self) -> None:
        """Too many steps: report it, and check nothing else (the work is bounded by the limit)."""
        limit, n = self.limits.max_steps, 0
        for item in self.module.items:
            for st in item.steps if isinstance(item, ast.ParBlock) else [item]:
                if isinstance(st, ast.Step):
                    n += 1
                    if n == limit + 1:
                        first = st
        if n > limit:
            self.over_limit("max_steps", f"the scenario has {n} steps; the limit is {limit}", first.span, n)
            raise CowError(self.filename, self.source, self.diags)

    def add_pages(self, pages: int, span: Span) -> None:
        self.total_pages += pages
        limit = self.limits.max_total_pages
        if self.total_pages > limit:
            self.over_limit("max_total_pages", f"the scenario maps {self.total_pages} pages in all here; the limit is {limit}",
                            span, self.total_pages)

    def add_process(self, span: Span) -> None:
        """One more process (the name is still recorded, so that its steps check)."""
        limit = self.limits.max_processes
        if len(self.n.processes) >= limit:
            self.over_limit("max_processes", f"more than {limit} processes (declared, plus one per fork); the limit is {limit}",
                            span, len(self.n.processes) + 1)

    def run(self) -> S.Scenario:
        name, refs, asserts, expects, pending = None, [], [], [], []
        self.count_steps()
        # Children named by fork, so "step by B before the fork" reads well.
        for item in self.module.items:
            for st in item.steps if isinstance(item, ast.ParBlock) else [item]:
                if isinstance(st, ast.Step) and st.op.text == "fork" and st.bind:
                    self.n.later.setdefault(st.bind.text, st.span.line)
        seen_step = False
        for item in self.module.items:
            if isinstance(item, ast.ScenarioName):
                if name is not None:
                    self.error("a second `scenario` line", item.span, hint="one scenario per file")
                name = item.text
                self.plain_text(item)
            elif isinstance(item, ast.RefLine):
                refs.append(item.text)
                self.plain_text(item)
            elif isinstance(item, (ast.ProcessDecl, ast.ThreadDecl, ast.FileDecl, ast.PipeDecl)):
                if seen_step:
                    self.error("declarations come before the steps", item.span, hint="move this line above the first step")
                self.declare(item)
            elif isinstance(item, ast.Step):
                seen_step = True
                self.step(item)
            elif isinstance(item, ast.ParBlock):
                seen_step = True
                self.par_block(item)
            elif isinstance(item, ast.Assertion):
                pending.append(item)
            elif isinstance(item, ast.ExpectLine):
                expects.extend(self.expect(item))
        # Assertions are about the final state: resolve their names after every step,
        # wherever they stand in the file.
        for item in pending:
            try:
                quant = S.QUANTIFIERS[item.quantifier]
                asserts.append(S.Assertion(self.boolean(item.expr), item.text, item.span, quant))
            except RecursionError:
                self.error("this assertion nests too deeply", item.span, hint="split it into several `assert` lines")
        if not pending:
            self.error("the scenario has no `assert`", Span(1, 1, 2), hint="state what must hold at the end, e.g. `assert A.buf == 1`")
        if not any(isinstance(item, ast.ProcessDecl) for item in self.module.items):
            self.error("the scenario declares no process", Span(1, 1, 2), hint="start with `process A`")
        if self.diags:
            raise CowError(self.filename, self.source, self.diags)
        return S.Scenario(
            name=name or Path(self.filename).stem,
            filename=self.filename,
            source=self.source,
            refs=tuple(refs),
            processes=tuple(p for p, line in self.n.processes.items() if line == 0),
            threads=tuple(self.declared_threads),
            files=tuple((f, self.file_pages[f]) for f in self.file_pages),
            pipes=tuple(sorted(self.n.pipes)),
            steps=tuple(self.steps),
            assertions=tuple(asserts),
            expectations=tuple(expects),
        )

    def plain_text(self, item) -> None:
        """A scenario name or ref is printed in reports: no control characters (a
        terminal escape sequence pasted from a bug tracker) and no bidi overrides."""
        bad = next((c for c in item.text if _is_control(c)), None)
        if bad is not None:
            line = self.source.split("\n")[item.span.line - 1] if item.span.line >= 1 else ""
            col = line.find(bad) + 1 or item.span.col
            self.error(f"control character U+{ord(bad):04X} in a string", Span(item.span.line, col, col + 1),
                       hint="a scenario name or ref is plain text")

    # --- declarations ----------------------------------------------------------------
    def fresh(self, name: ast.Name, what: str) -> bool:
        if name.text in ops.keywords():
            self.error(f"`{name.text}` is a keyword and cannot name a {what}", name.span, hint="choose another name")
            return False
        if name.text in _BUILTIN_ACTORS:
            self.error(f"`{name.text}` is a built-in actor and cannot name a {what}", name.span,
                       hint="choose another name")
            return False
        if self.n.is_taken(name.text):
            self.error(f"`{name.text}` is already used", name.span, hint=f"give the {what} its own name")
            return False
        return True

    def declare(self, d):
        if isinstance(d, ast.ProcessDecl):
            for nm in d.names:
                if self.fresh(nm, "process"):
                    self.add_process(nm.span)
                    self.n.processes[nm.text] = 0
                    self.n.mappings[nm.text] = {}
        elif isinstance(d, ast.ThreadDecl):
            if d.process.text not in self.n.processes:
                self.error(
                    f"unknown process `{d.process.text}`", d.process.span,
                    expected="a process declared above", hint=did_you_mean(d.process.text, self.n.processes),
                )
            elif self.fresh(d.name, "thread"):
                if len(self.n.threads) >= self.limits.max_threads:
                    self.over_limit("max_threads", f"more than {self.limits.max_threads} threads; the limit is "
                                    f"{self.limits.max_threads}", d.name.span, len(self.n.threads) + 1)
                self.n.threads[d.name.text] = d.process.text
                self.declared_threads.append((d.name.text, d.process.text))
        elif isinstance(d, ast.FileDecl):
            if not d.pages:
                self.error("a file needs at least one page", d.span, hint="e.g. `file F = [1]`")
            elif len(d.pages) > self.limits.max_pages:
                limit = self.limits.max_pages
                self.error(f"a file has at most {limit} pages, not {len(d.pages)}", d.span,
                           hint=L.hint("max_pages", len(d.pages)))
            elif self.fresh(d.name, "file"):
                for num in d.pages:
                    self.value(num)
                self.add_pages(len(d.pages), d.span)
                self.n.files[d.name.text] = len(d.pages)
                self.file_pages[d.name.text] = tuple(num.value for num in d.pages)
        elif isinstance(d, ast.PipeDecl):
            for nm in d.names:
                if self.fresh(nm, "pipe"):
                    self.n.pipes.add(nm.text)

    # --- steps -------------------------------------------------------------------
    def actor_names(self):
        return set(self.n.processes) | set(self.n.threads) | set(self.n.handles) | set(_BUILTIN_ACTORS)

    @staticmethod
    def ops_of(actor: str) -> str:
        return " or ".join(name for name, spec in ops.OPS.items() if spec.actor == actor)

    def step(self, st: ast.Step):
        spec = ops.OPS.get(st.op.text)
        if spec is None:
            self.error(
                f"unknown op `{st.op.text}`", st.op.span,
                expected="an op (see `cowdsl ops`)", hint=did_you_mean(st.op.text, ops.OPS),
            )
            return
        task = self.actor(st, spec)
        if task is False:
            return
        ir = self.args(st, spec, task)
        if ir is None:
            return
        if self.par is not None:
            if not self.par_visible(st, ir):
                return
            ir = attrs.evolve(ir, block=self.par, par=True)
        self.bind(st, spec, task, ir)
        self.effects(ir)
        self.steps.append(ir)
        if self.par is not None and st.bind is not None:
            self.par_made[st.bind.text] = (st.actor.text, st.span.line)

    # --- par blocks ------------------------------------------------------------------
    def par_block(self, block: ast.ParBlock) -> None:
        """Steps inside run concurrently: each actor in its order, actors interleaved."""
        if not block.steps:
            self.error("an empty `par` block", Span(block.span.line, block.span.col, block.span.col + 3),
                       hint="put two or more actors' steps inside")
            return
        self.par, self.par_made = len(self.steps) + 1, {}
        for st in block.steps:
            self.step(st)
        actors = {st.actor.text for st in block.steps}
        if len(actors) < 2:
            self.error("a `par` block with one actor runs in order anyway", Span(block.span.line, block.span.col, block.span.col + 3),
                       hint="put steps of two or more actors inside, or drop the `par`")
        self.par = None

    def par_visible(self, st: ast.Step, ir: S.Step) -> bool:
        """A name made inside this par block exists only after the block, for other actors."""
        used = [st.actor.text, ir.handle, ir.addr.proc if ir.addr else None, ir.addr2.proc if ir.addr2 else None]
        for name in used:
            made = self.par_made.get(name) if name else None
            if made and made[0] != st.actor.text:
                self.error(f"`{name}` is made by {made[0]} at line {made[1]} in this par block", st.span,
                           hint="another actor can use it only after the block; move this step below the `}`")
                return False
        return True
    def actor(self, st: ast.Step, spec: ops.OpSpec):
        """The process the actor runs in (None for devices and built-in actors), or False."""
        a = st.actor.text
        n = self.n
        op = st.op.text
        if a in _BUILTIN_ACTORS:
            if spec.actor != a:
                doer = "a process" if spec.actor == ops.TASK else (
                    "a device (a pin or gup reference)" if spec.actor == ops.DEVICE else f"`{spec.actor}`")
                self.error(f"`{a}` cannot {op}", st.actor.span, expected=self.ops_of(a),
                           hint=f"`{op}` is done by {doer}")
                return False
            return None
        if a in n.handles:
            h = n.handles[a]
            if spec.actor != ops.DEVICE:
                self.error(f"`{a}` is a {h.what}; it can only do DMA", st.actor.span, expected=self.ops_of(ops.DEVICE),
                           hint=f"a process does `{op}`, e.g. `{h.owner}: {op}(...)`")
                return False
            if h.released_at is not None:
                self.error(f"`{a}` was {h.released()}", st.actor.span,
                           hint=f"DMA through a {h.what} must come before it is released")
                return False
            if op == "dma_write" and not h.write:
                self.error(f"`{a}` is a read-only {h.what}; the device cannot write through it", st.actor.span,
                           hint=f"take it with `write`, e.g. `{'pin' if h.kind == ops.BINDS_PIN else 'gup'}(buf, write) as {a}`")
                return False
            return None
        if a in n.processes or a in n.threads:
            proc = n.threads.get(a, a)
            if proc in n.exited:
                self.error(f"process `{proc}` exited at line {n.exited[proc]}", st.actor.span,
                           hint="a step by an exited process cannot run; move it before the exit")
                return False
            if spec.actor == ops.DEVICE:
                self.error(f"`{op}` is done by a device through a pin", st.actor.span,
                           expected="a pin or gup reference as the actor",
                           hint=f"e.g. `mr: {op}(...)` after `{a}: pin(buf, write) as mr`")
                return False
            if spec.actor == ops.RECLAIM:
                self.error(f"`{op}` is done by the reclaim actor", st.actor.span,
                           expected="`reclaim`", hint=f"write `reclaim: {op}({a}.buf)`, or `{a}: madvise(buf, pageout)`")
                return False
            if spec.actor != ops.TASK:
                self.error(f"`{op}` is done by the built-in actor `{spec.actor}`", st.actor.span,
                           expected=f"`{spec.actor}`", hint=f"write `{spec.actor}: {op}({a}.buf, ...)`")
                return False
            return proc
        if a in n.later:
            self.error(f"`{a}` does not exist yet: it is created by the fork at line {n.later[a]}", st.actor.span,
                       hint="steps by a child come after the fork that creates it")
            return False
        builtins = ", ".join(f"`{b}`" for b in _BUILTIN_ACTORS)
        self.error(f"unknown actor `{a}`", st.actor.span,
                   expected=f"a process, a thread, a pin or a built-in actor ({builtins})",
                   hint=did_you_mean(a, self.actor_names()))
        return False

    def args(self, st: ast.Step, spec: ops.OpSpec, task):
        fields = dict(flags=set(), pages=1)
        positional = [a for a in st.args if not isinstance(a, ast.KeywordArg)]
        keywords = [a for a in st.args if isinstance(a, ast.KeywordArg)]
        ok = True
        params = list(spec.params)
        taken_args = positional[: len(params)]
        rest = positional[len(params) :]
        if len(taken_args) < len(params):
            missing = params[len(taken_args)]
            self.error(f"`{spec.name}` needs {missing.name} ({missing.doc})", st.span,
                       expected=spec.signature(), hint=f"write `{st.actor.text}: {spec.signature()}`")
            return None
        for p, a in zip(params, taken_args):
            ok &= self.param(p, a, st, spec, task, fields)
        words = spec.flag_words()
        chosen: dict[str, ast.Location] = {}
        for a in rest:
            if not (isinstance(a, ast.Location) and a.bare):
                what = "a number" if isinstance(a, ast.Number) else f"`{a.text()}`"
                self.error(f"too many arguments for `{spec.name}`: {what}", a.span, expected=spec.signature())
                ok = False
                continue
            w = a.name.text
            if w not in words:
                self.error(f"unknown flag `{w}` for `{spec.name}`", a.span,
                           expected=one_of(words) if words else "no flags", hint=did_you_mean(w, words))
                ok = False
                continue
            g = words[w]
            if g.name in chosen:
                self.error(f"`{w}` conflicts with `{chosen[g.name].name.text}`", a.span,
                           expected=f"one {g.name}: {one_of(g.choices)}", hint="drop one of them")
                ok = False
                continue
            chosen[g.name] = a
            fields["flags"].add(w)
        for g in spec.flags:
            if g.name not in chosen and g.default:
                fields["flags"].add(g.default)
            if g.name not in chosen and g.default is None and g.name in ("prot", "advice"):
                what = "advice" if g.name == "advice" else "a protection"
                self.error(f"`{spec.name}` needs {what}", st.span, expected=one_of(g.choices),
                           hint=f"e.g. `{st.actor.text}: {spec.name}(buf, {g.choices[0]})`")
                ok = False
        kws = {k.name: k for k in spec.keywords}
        for kw in keywords:
            k = kws.get(kw.key.text)
            if k is None:
                self.error(f"unknown keyword `{kw.key.text}=` for `{spec.name}`", kw.key.span,
                           expected=one_of(f"{x}=" for x in kws) if kws else "no keywords",
                           hint=did_you_mean(kw.key.text, kws))
                ok = False
            elif k.kind == "int":
                if not isinstance(kw.value, ast.Number):
                    self.error(f"`{k.name}=` takes a number", kw.value.span, expected="a number")
                    ok = False
                elif not getattr(k, "lo", 1) <= kw.value.value <= self.keyword_hi(k):
                    lo, hi = getattr(k, "lo", 1), self.keyword_hi(k)
                    unit = " pages" if k.name == "pages" else ""
                    raise_ = L.hint("max_pages", kw.value.value) if k.name == "pages" and kw.value.value > hi \
                        and kw.value.value <= MAX_VALUE else None
                    self.error(f"`{k.name}={kw.value.value}` is out of range", kw.value.span, expected=f"{lo} to {hi}{unit}",
                               hint=raise_)
                    ok = False
                else:
                    fields[k.name] = kw.value.value
            elif k.kind == "file":
                if not isinstance(kw.value, ast.Name):
                    self.error(f"`{k.name}=` takes a file name, not a number", kw.value.span,
                               expected="a file declared with `file NAME = [...]`",
                               hint=f"e.g. `{k.name}={next(iter(self.n.files), 'F')}`")
                    ok = False
                elif kw.value.text not in self.n.files:
                    got = kw.value.text
                    self.error(f"unknown file `{got}`", kw.value.span, expected="a file declared with `file NAME = [...]`",
                               hint=did_you_mean(got, self.n.files))
                    ok = False
                else:
                    fields["file"] = kw.value.text
        if not ok:
            return None
        given = {kw.key.text: kw for kw in keywords}
        if spec.name == "mmap" and fields.get("file"):
            if "anon" in fields["flags"]:
                self.error("`anon` and `file=` contradict each other", chosen["backing"].span, hint="drop one of them")
                return None
            have = self.n.files[fields["file"]]
            if "pages" not in given:
                fields["pages"] = have
            elif fields["pages"] > have:
                self.error(f"file `{fields['file']}` has {have} page{'s' if have > 1 else ''}, not {fields['pages']}",
                           given["pages"].value.span, expected=f"pages={have} or fewer",
                           hint="leave out `pages=` to map the whole file")
                return None
        if spec.name == "mmap":
            self.add_pages(fields["pages"], st.span)
        if spec.name == "madvise" and "wipeonfork" in fields["flags"]:
            m = self.n.mappings.get(task, {}).get(fields.get("mapping"))
            if m is not None and fields.get("mapping") in self.file_backed.get(task, set()):
                self.error(f"MADV_WIPEONFORK applies to private anonymous mappings only; `{fields['mapping']}` maps a file",
                           chosen["advice"].span)
                return None
        fields["flags"] = frozenset(fields["flags"])
        if spec.actor == ops.DEVICE:
            fields["handle"] = st.actor.text
        return S.Step(number=len(self.steps) + 1, actor=st.actor.text, task=task, op=spec.name,
                      bind=st.bind.text if st.bind else None, text=self.text_of(st.span), span=st.span, **fields)

    def keyword_hi(self, k) -> int:
        """The largest value of an int keyword: pages= is bounded by the max_pages limit."""
        return self.limits.max_pages if k.name == "pages" else getattr(k, "hi", 64)

    def value(self, num: ast.Number) -> bool:
        if num.value > MAX_VALUE:
            self.error("value too large", num.span, expected="a number below 2**64")
            return False
        return True

    def param(self, p: ops.Param, a, st, spec, task, fields) -> bool:
        n = self.n
        if p.kind == ops.VALUE:
            if not isinstance(a, ast.Number):
                self.error(f"`{spec.name}` takes a number as {p.name}", a.span, expected="a number, e.g. 1")
                return False
            fields["value"] = a.value
            return self.value(a)
        if not isinstance(a, ast.Location):
            self.error(f"`{spec.name}` takes {p.doc} as {p.name}", a.span, expected=p.doc)
            return False
        if p.kind == ops.NEW_MAPPING:
            if not a.bare:
                self.error("a new mapping is named by a plain name", a.span, expected="a name, e.g. buf")
                return False
            name = a.name.text
            if name in ops.keywords():
                self.error(f"`{name}` is a keyword and cannot name a mapping", a.name.span, hint="choose another name")
                return False
            if name in n.mappings[task]:
                self.error(f"`{name}` is already mapped in {task}", a.span, hint="munmap it first or choose another name")
                return False
            fields["mapping"] = name
            return True
        if p.kind == ops.MAPPING:
            if not a.bare:
                self.error(f"`{spec.name}` takes a whole mapping", a.span, expected="a mapping name, e.g. buf")
                return False
            if not self.has_mapping(task, a.name):
                return False
            fields["mapping"] = a.name.text
            return True
        if p.kind == ops.PIPE:
            if not a.bare or a.name.text not in n.pipes:
                self.error(f"unknown pipe `{a.text()}`", a.span, expected="a pipe declared with `pipe NAME`",
                           hint=did_you_mean(a.text(), n.pipes))
                return False
            fields["pipe"] = a.name.text
            return True
        if p.kind == ops.HANDLE:
            want = ops.BINDS_PIN if spec.name == "unpin" else ops.BINDS_REF
            h = n.handles.get(a.name.text) if a.bare else None
            if h is None:
                self.error(f"unknown {'pin' if want == ops.BINDS_PIN else 'gup reference'} `{a.text()}`", a.span,
                           expected=f"a name bound by `{'pin' if want == ops.BINDS_PIN else 'gup'}(...) as NAME`",
                           hint=did_you_mean(a.text(), [k for k, v in n.handles.items() if v.kind == want]))
                return False
            if h.kind != want:
                other = "put" if spec.name == "unpin" else "unpin"
                how = (f"release it with `{other}({a.name.text})`" if h.kind in (ops.BINDS_PIN, ops.BINDS_REF)
                       else "it is not released by a step: a CPU access to the page revokes it")
                self.error(f"`{a.name.text}` is a {h.what}", a.span, hint=how)
                return False
            if h.released_at is not None:
                self.error(f"`{a.name.text}` was already {h.released()}", a.span,
                           hint="each pin or reference is released once")
                return False
            fields["handle"] = a.name.text
            return True
        # addresses
        if p.kind == ops.ADDRESS and a.owner is not None and a.owner.text != task:
            self.error(f"`{spec.name}` works on the actor's own memory", a.span, expected=f"`{a.name.text}` without a process",
                       hint="to reach another process's memory use process_vm_writev/readv or proc_mem_write")
            return False
        if p.kind == ops.REMOTE and a.owner is None:
            self.error(f"`{spec.name}` needs the process whose page it is", a.span, expected=f"PROCESS.{a.name.text}",
                       hint=f"e.g. `{next(iter(n.processes), 'A')}.{a.text()}`")
            return False
        proc = a.owner.text if a.owner is not None else task
        if a.owner is not None and a.owner.text in n.later:
            self.error(f"`{a.owner.text}` does not exist yet: it is created by the fork at line {n.later[a.owner.text]}",
                       a.owner.span, hint="move this step after the fork")
            return False
        if a.owner is not None and a.owner.text not in n.processes:
            self.error(f"unknown process `{a.owner.text}`", a.owner.span, expected="a process",
                       hint=did_you_mean(a.owner.text, n.processes))
            return False
        if a.owner is not None and proc in n.exited:
            self.error(f"process `{proc}` exited at line {n.exited[proc]}", a.owner.span,
                       hint="its memory is gone; move this step before the exit")
            return False
        if not self.has_mapping(proc, a.name):
            return False
        index = a.index.value if a.index is not None else 0
        pages = n.mappings[proc][a.name.text]
        if index >= pages:
            self.error(f"page {index} is outside `{a.name.text}`, which has {pages} page{'s' if pages > 1 else ''}",
                       a.index.span, expected=f"an index from 0 to {pages - 1}")
            return False
        # A second address parameter (ksm_merge's `other`) goes to addr2.
        fields["addr2" if "addr" in fields else "addr"] = S.Addr(proc, a.name.text, index)
        return True

    def has_mapping(self, proc: str, name: ast.Name) -> bool:
        if name.text in self.n.mappings.get(proc, {}):
            return True
        gone = self.n.unmapped.get((proc, name.text))
        if gone:
            self.error(f"`{name.text}` was unmapped in {proc} at line {gone}", name.span,
                       hint="map it again, or move this step before the munmap")
        else:
            self.error(f"unknown mapping `{name.text}` in {proc}", name.span,
                       expected=f"a mapping of {proc}: {one_of(self.n.mappings.get(proc, {})) if self.n.mappings.get(proc) else 'it has none yet'}",
                       hint=did_you_mean(name.text, self.n.mappings.get(proc, {})) or "create it with `mmap(NAME, ...)` first")
        return False

    def bind(self, st: ast.Step, spec: ops.OpSpec, task, ir: S.Step):
        if st.bind is None:
            if spec.binds == ops.BINDS_PROCESS:
                self.error("fork needs a name for the child", st.span, hint=f"write `{st.actor.text}: fork() as B`")
            return
        name = st.bind
        if spec.binds == ops.BINDS_PROCESS:
            if name.text in self.n.processes:
                self.error(f"`{name.text}` is already a process", name.span, hint="name the child afresh")
                return
            self.n.later.pop(name.text, None)
            if not self.fresh(name, "process"):
                return
            self.add_process(st.span)
            self.n.processes[name.text] = st.span.line
            # Every name the parent has, even a MADV_DONTFORK mapping the fork does not copy:
            # the child touching it is a SIGSEGV at run time, which scenarios assert.
            self.n.mappings[name.text] = dict(self.n.mappings[task])
            for m in self.file_backed.get(task, set()):
                self.file_backed.setdefault(name.text, set()).add(m)
            self.n.outcomes.add(name.text)
            return
        if not self.fresh(name, "result"):
            return
        if spec.binds in (ops.BINDS_PIN, ops.BINDS_REF):
            self.n.handles[name.text] = Handle(spec.binds, "write" in ir.flags, task, st.span.line)
        elif spec.binds == getattr(ops, "BINDS_DEVICE", None):  # device-exclusive access: the device may write
            self.n.handles[name.text] = Handle(spec.binds, True, task, st.span.line)
        elif spec.binds == ops.BINDS_VALUE:
            self.n.values.add(name.text)
        self.n.outcomes.add(name.text)

    def effects(self, ir: S.Step):
        n = self.n
        if ir.op == "mmap":
            n.mappings[ir.task][ir.mapping] = ir.pages
            n.unmapped.pop((ir.task, ir.mapping), None)
            if ir.file:
                self.file_backed.setdefault(ir.task, set()).add(ir.mapping)
        elif ir.op == "munmap":
            del n.mappings[ir.task][ir.mapping]
            n.unmapped[(ir.task, ir.mapping)] = ir.span.line
        elif ir.op == "exit":
            n.exited[ir.task] = ir.span.line
            for h in n.handles.values():
                if h.owner == ir.task and h.released_at is None:
                    h.released_at, h.released_by = ir.span.line, "exit"
        elif ir.op in ("unpin", "put"):
            h = n.handles[ir.handle]
            h.released_at, h.released_by = ir.span.line, ir.op

    # --- assertions ------------------------------------------------------------------
    def boolean(self, e):
        r, kind = self.expr(e)
        if kind not in ("bool", "error"):
            self.error(f"`{self.show(e)}` is not true or false", e.span,
                       expected="a condition, e.g. `A.buf == 1`, `mr is A.buf`, `exclusive(A.buf)`")
        return r

    def show(self, e) -> str:
        return e.text() if isinstance(e, ast.Location) else self.text_of(e.span)

    def expr(self, e):
        """Resolve an expression: (term, kind) with kind in bool/int/page/error."""
        if isinstance(e, ast.Bool):
            return S.Const(e.value), "bool"
        if isinstance(e, ast.Number):
            return S.Const(e.value), "int"
        if isinstance(e, ast.Not):
            return S.Not(self.boolean(e.operand)), "bool"
        if isinstance(e, ast.BoolOp):
            return S.BoolOp(e.op, self.boolean(e.left), self.boolean(e.right)), "bool"
        if isinstance(e, ast.Compare):
            (l, lk), (r, rk) = self.expr(e.left), self.expr(e.right)
            if "error" in (lk, rk):
                return S.Cmp(l, e.op, r), "bool"
            if e.op not in ("==", "!="):
                for side, k in ((e.left, lk), (e.right, rk)):
                    if k == "bool":
                        self.error(f"`{self.show(side)}` is true or false, not a number", side.span,
                                   expected="a number", hint=f"`{e.op}` orders numbers; `==` and `!=` also compare conditions")
                        return S.Cmp(l, e.op, r), "bool"
            if (lk == "bool") != (rk == "bool"):
                self.error("cannot compare a condition with a number", e.span,
                           hint="compare values (`A.buf == 1`) or test conditions (`exclusive(A.buf)`)")
            return S.Cmp(l, e.op, r), "bool"
        if isinstance(e, ast.Same):
            sides = []
            for side in (e.left, e.right):
                r, k = self.expr(side)
                if k not in ("page", "error"):
                    self.error(f"`{self.show(side)}` is not a page", side.span,
                               expected="a page: A.buf, A.buf[1], a pin, or F[0]")
                sides.append(r)
            return S.Same(sides[0], sides[1], e.negated), "bool"
        if isinstance(e, ast.Fact):
            return self.fact(e)
        if isinstance(e, ast.Location):
            return self.location_term(e)
        return S.Const(False), "error"

    def location_term(self, loc: ast.Location):
        """A location in an assertion: a page (value and identity) or a kept value."""
        n = self.n
        name = loc.name.text
        if loc.owner is not None:
            proc = loc.owner.text
            if proc not in n.processes:
                self.error(f"unknown process `{proc}`", loc.owner.span, expected="a process",
                           hint=did_you_mean(proc, n.processes))
                return S.Const(False), "error"
            if name not in n.mappings.get(proc, {}) and (proc, name) not in n.unmapped:
                self.has_mapping(proc, loc.name)
                return S.Const(False), "error"
            pages = n.mappings.get(proc, {}).get(name, 64)
            idx = loc.index.value if loc.index else 0
            if idx >= pages:
                self.error(f"page {idx} is outside `{name}`, which has {pages} page{'s' if pages > 1 else ''}", loc.index.span,
                           expected=f"an index from 0 to {pages - 1}")
                return S.Const(False), "error"
            return S.PageAt(S.Addr(proc, name, idx)), "page"
        if name in n.files:
            idx = loc.index.value if loc.index else 0
            if idx >= n.files[name]:
                pages = n.files[name]
                self.error(f"page {idx} is outside file `{name}`, which has {pages} page{'s' if pages > 1 else ''}",
                           loc.index.span, expected=f"an index from 0 to {pages - 1}")
                return S.Const(False), "error"
            return S.FilePage(name, idx), "page"
        if loc.index is not None and (name in n.handles or name in n.values):
            self.error(f"`{loc.text()}`: only mappings and files have pages", loc.span,
                       expected=f"`{name}` without an index")
            return S.Const(False), "error"
        if name in n.handles:
            return S.HandlePage(name), "page"
        if name in n.values:
            return S.Bound(name), "int"
        fact = ops.FACTS.get(name)
        if fact is not None and loc.bare:
            if 0 in fact.arity:  # `cow_copies`, `faults`: a counter over all processes
                return S.FactCall(name, ()), fact.kind
            self.error(f"`{name}` needs an argument", loc.span, expected=f"`{name}(...)`",
                       hint=f"e.g. `{name}(A.buf)`" if name not in _PROCESS_FACTS else f"e.g. `{name}(A)`")
            return S.Const(False), "error"
        owners = [p for p, ms in n.mappings.items() if name in ms]
        if owners:
            self.error(f"`{name}`: say whose mapping", loc.span, expected=one_of(f"{p}.{name}" for p in owners),
                       hint=f"write `{owners[0]}.{loc.text()}`")
        else:
            self.error(f"unknown name `{name}` in assertion", loc.span,
                       expected="A.mapping, a pin, a value kept with `as`, or a file page",
                       hint=did_you_mean(name, n.handles.keys() | n.values | set(n.files)))
        return S.Const(False), "error"

    def fact(self, e: ast.Fact):
        spec = ops.FACTS.get(e.name.text)
        if spec is None:
            self.error(f"unknown fact `{e.name.text}`", e.name.span, expected="a fact (see `cowdsl ops`)",
                       hint=did_you_mean(e.name.text, ops.FACTS))
            return S.Const(False), "error"
        if len(e.args) not in spec.arity:
            want = " or ".join(str(a) for a in spec.arity)
            example = "A" if spec.name in _PROCESS_FACTS else "NAME" if spec.name == "failed" else "A.buf"
            forms = [f"`{spec.name}()`" if k == 0 else f"`{spec.name}({example})`" for k in spec.arity]
            self.error(f"`{spec.name}` takes {want} argument{'s' if spec.arity != (1,) else ''}", e.span,
                       expected=" or ".join(forms))
            return S.Const(False), "error"
        args = []
        for a in e.args:
            if not isinstance(a, ast.Location):
                what = "a process" if spec.name in _PROCESS_FACTS else (
                    "a step named with `as`" if spec.name == "failed" else "a page")
                self.error(f"`{spec.name}` takes {what}, not `{self.show(a)}`", a.span,
                           expected="a process name" if spec.name in _PROCESS_FACTS else (
                               "a name bound by `as`" if spec.name == "failed" else "A.buf, A.buf[1], a pin or F[0]"))
                return S.Const(False), "error"
            if spec.name in _PROCESS_FACTS:
                if not a.bare or a.name.text not in self.n.processes:
                    self.error(f"`{spec.name}` takes a process", a.span, expected="a process name",
                               hint=did_you_mean(a.text(), self.n.processes)
                               or f"e.g. `{spec.name}({next(iter(self.n.processes), 'A')})`")
                    return S.Const(False), "error"
                args.append(S.ProcessRef(a.name.text))
            elif spec.name == "failed":
                if not a.bare or a.name.text not in self.n.outcomes:
                    self.error("`failed` takes a step named with `as`", a.span, expected="a name bound by `as`",
                               hint=did_you_mean(a.text(), self.n.outcomes) or "name the step: `A: pin(buf) as mr`")
                    return S.Const(False), "error"
                args.append(S.StepRef(a.name.text))
            else:
                r, k = self.location_term(a)
                if k == "error":
                    return S.Const(False), "error"
                if k != "page":
                    self.error(f"`{spec.name}` takes a page, not `{a.text()}`", a.span,
                               expected="A.buf, A.buf[1], a pin or F[0]")
                    return S.Const(False), "error"
                args.append(r)
        return S.FactCall(spec.name, tuple(args)), spec.kind

    # --- expectations ------------------------------------------------------------------
    def expect(self, line: ast.ExpectLine) -> list[S.Expectation]:
        """Each backend of an expect line resolved to its KernelSpec, once; two
        expectations of one spec that disagree are an error naming both lines."""
        out = []
        for b in line.backends:
            try:
                spec = resolve_spec(b.text)
            except SpecError as err:
                base = b.text.split(":", 1)[0]
                whole = err.in_options
                span = b.span if whole else Span(b.span.line, b.span.col, b.span.col + len(base))
                self.error(err.message, span, expected=None if whole else "a backend (see `cowdsl backends`)",
                           hint=err.hint)
                continue
            earlier = self.expected.get(spec.name)
            if earlier is not None and earlier.outcome != line.outcome:
                self.error(f"`{b.text}` is {spec.label}, expected to {earlier.outcome} on line {earlier.span.line} "
                           f"(`{earlier.spec.text}`) and to {line.outcome} here", b.span,
                           hint="an expectation per model: remove one of them")
                continue
            e = S.Expectation(line.outcome, spec, b.span)
            self.expected.setdefault(spec.name, e)
            out.append(e)
        return out


def check(module: ast.Module, filename: str, source: str, limits=None) -> S.Scenario:
    """``limits`` (cowdsl.limits.Limits) bounds processes, threads, pages and steps."""
    try:
        return Checker(module, filename, source, limits).run()
    except RecursionError:
        raise CowError(filename, source, [Diagnostic("an assertion nests too deeply", Span(1, 1, 2))]) from None
