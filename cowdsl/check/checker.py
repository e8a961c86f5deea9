"""The checker: every job composed, walking the file's lines in order.

All problems in a file are collected and reported together, each with its span.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from cowdsl import limits as L
from cowdsl import scenario as S
from cowdsl.check.assertions import Assertions
from cowdsl.check.context import failure
from cowdsl.check.expect import Expectations
from cowdsl.check.steps import Steps
from cowdsl.check.sweep import Sweep, substitute
from cowdsl.errors import CowError, Diagnostic, Span
from cowdsl.syntax import ast
from cowdsl.untrusted import escaped, unsafe

# A character a report must not print: C0 and C1 controls (not tab), and bidi
# embeddings, overrides and isolates.


class Checker(Steps, Assertions, Expectations):
    def run(self) -> S.Scenario:
        name: str | None = None
        refs: list[str] = []
        asserts: list[S.Assertion] = []
        pending: list[tuple[ast.Included | None, ast.Assertion]] = []
        self.count_steps()
        # Children named by fork, so "step by B before the fork" reads well.
        for _, item in self.items:
            for st in item.steps if isinstance(item, ast.ParBlock) else [item]:
                if isinstance(st, ast.Step) and st.op.text == "fork" and st.bind:
                    self.n.later.setdefault(st.bind.text, st.span.line)
        seen_step = False
        expect_lines: list[tuple[ast.Included | None, ast.ExpectLine]] = []
        for origin, item in self.items:
            self.enter(origin)
            if isinstance(item, ast.ScenarioName):
                if name is not None:
                    self.error("a second `scenario` line", item.span, hint="one scenario per file")
                name = item.text
                self.plain_text(item)
            elif isinstance(item, ast.RefLine):
                refs.append(item.text)
                self.plain_text(item)
            elif isinstance(item, ast.ProcessDecl | ast.ThreadDecl | ast.FileDecl | ast.PipeDecl):
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
                pending.append((origin, item))
            elif isinstance(item, ast.ExpectLine):
                expect_lines.append((origin, item))
        expects = self.expect_lines(expect_lines)
        # Assertions are about the final state: resolve their names after every step,
        # wherever they stand in the file.
        for origin, a in pending:
            self.enter(origin)
            try:
                quant = S.QUANTIFIERS[a.quantifier]
                scope = tuple(spec for b in a.scope for spec in self.specs(b))
                asserts.append(S.Assertion(self.boolean(a.expr), a.text, a.span, quant, scope,
                                           ", ".join(b.text for b in a.scope)))
            except RecursionError:
                self.error("this assertion nests too deeply", a.span, hint="split it into several `assert` lines")
        self.enter(None)
        if not pending:
            self.error("the scenario has no `assert`", Span(1, 1, 2), hint="state what must hold at the end, e.g. `assert A.buf == 1`")
        if not any(isinstance(item, ast.ProcessDecl) for _, item in self.items):
            self.error("the scenario declares no process", Span(1, 1, 2), hint="start with `process A`")
        if self.diags:
            raise self.fail()
        return S.Scenario(
            name=(name or escaped(Path(self.filename).stem)) + S.variant_suffix(self.variant),  # a file name is outside text
            filename=self.filename,
            source=self.source,
            refs=tuple(refs),
            processes=tuple(p for p, line in self.n.processes.items() if line == 0),
            threads=tuple(self.n.threads.items()),
            files=tuple(self.n.files.items()),
            file_kinds=tuple(sorted(self.n.file_kinds.items())),
            pipes=tuple(sorted(self.n.pipes)),
            steps=tuple(self.steps),
            assertions=tuple(asserts),
            expectations=tuple(expects),
            params=self.variant,
        )

    def plain_text(self, item: ast.ScenarioName | ast.RefLine) -> None:
        """A scenario name or ref is printed in reports: no control characters (a
        terminal escape sequence pasted from a bug tracker) and no bidi overrides."""
        bad = next((c for c in item.text if c != "\t" and unsafe(c)), None)  # what untrusted.py would escape
        if bad is not None:
            line = self.lines[item.span.line - 1] if item.span.line >= 1 else ""
            col = line.find(bad) + 1 or item.span.col
            self.error(f"control or format character U+{ord(bad):04X} in a string", Span(item.span.line, col, col + 1),
                       hint="a scenario name or ref is plain text")


def check(module: ast.Module, filename: str, source: str, limits: L.Limits | None = None) -> S.Scenario:
    """The checked scenario, or CowError with every problem found; ``limits`` bounds
    processes, threads, pages and steps (``cowdsl.limits.DEFAULT`` if None).
    ValueError for a file with params: ``check_all`` gives its scenarios."""
    out = check_all(module, filename, source, limits)
    if len(out) != 1:
        raise ValueError(f"{filename} sweeps {len(out)} scenarios (its `param` lines): check it with check_all")
    return out[0]


def check_all(module: ast.Module, filename: str, source: str, limits: L.Limits | None = None) -> list[S.Scenario]:
    """One checked scenario per combination of the file's params' values (one
    without params), or CowError with every problem found.  A problem found in
    some of the combinations only says in which."""
    try:
        sweep = Sweep(module, filename, source, limits)
        variants = sweep.variants()
        out: list[S.Scenario] = []
        found: dict[tuple, tuple[ast.Included | None, Diagnostic, list[S.Variant]]] = {}
        for variant in variants:
            checker = Checker(substitute(module, sweep.values(variant)), filename, source, limits)
            checker.variant = variant
            try:
                out.append(checker.run())
            except CowError:
                if not checker.diags:
                    raise
            for origin, d in zip(checker.where, checker.diags):
                key = (origin.at if origin else None, d)
                found.setdefault(key, (origin, d, []))[2].append(variant)
            if len(found) >= L.MAX_DIAGNOSTICS:
                break
        if found:
            raise failure(filename, source, [(origin, _in_variants(d, vs, variants)) for origin, d, vs in found.values()])
        return out
    except RecursionError:
        raise CowError(filename, source, [Diagnostic("an assertion nests too deeply", Span(1, 1, 2))]) from None


def _in_variants(d: Diagnostic, some: list[S.Variant], every: list[S.Variant]) -> Diagnostic:
    """``d``, saying which of the swept scenarios it is in when not in all of them."""
    if len(some) == len(every):
        return d
    shown = "; ".join(S.variant_text(v) for v in some[:3]) + ("; ..." if len(some) > 3 else "")
    return attrs.evolve(d, message=f"{d.message} (with {shown})")
