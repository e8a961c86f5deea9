"""Assertions: expressions resolved to scenario terms and typed (condition,
number, page), locations, facts and comparisons."""

from __future__ import annotations

from typing import TypeAlias

from cowdsl import ops
from cowdsl import scenario as S
from cowdsl.check.names import Names
from cowdsl.errors import did_you_mean, one_of
from cowdsl.syntax import ast

PROCESS_FACTS = tuple(f.name for f in ops.FACTS.values() if f.takes == "process")  # facts about a process

Term: TypeAlias = S.Ref | S.FactCall | S.Cmp | S.Same | S.Not | S.BoolOp
Kind: TypeAlias = str  # "bool", "int", "page", or "error" (already reported)
Typed: TypeAlias = tuple[Term, Kind]
ERROR: Typed = (S.Const(False), "error")


class Assertions(Names):
    def boolean(self, e: ast.Expr) -> Term:
        r, kind = self.expr(e)
        if kind not in ("bool", "error"):
            self.error(f"`{self.show(e)}` is not true or false", e.span,
                       expected="a condition, e.g. `A.buf == 1`, `mr is A.buf`, `exclusive(A.buf)`")
        return r

    def show(self, e: ast.Expr) -> str:
        return e.text() if isinstance(e, ast.Location) else self.text_of(e.span)

    def expr(self, e: ast.Expr) -> Typed:
        """Resolve an expression: its term and kind."""
        if isinstance(e, ast.Bool):
            return S.Const(e.value), "bool"
        if isinstance(e, ast.Number):
            return S.Const(e.value), "int"
        if isinstance(e, ast.Not):
            return S.Not(self.boolean(e.operand)), "bool"
        if isinstance(e, ast.BoolOp):
            return S.BoolOp(e.op, self.boolean(e.left), self.boolean(e.right)), "bool"
        if isinstance(e, ast.Compare):
            return self.compare(e), "bool"
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
        return ERROR

    def compare(self, e: ast.Compare) -> S.Cmp:
        (l, lk), (r, rk) = self.expr(e.left), self.expr(e.right)
        if "error" in (lk, rk):
            return S.Cmp(l, e.op, r)
        if e.op not in ("==", "!="):
            for side, k in ((e.left, lk), (e.right, rk)):
                if k == "bool":
                    self.error(f"`{self.show(side)}` is true or false, not a number", side.span,
                               expected="a number", hint=f"`{e.op}` orders numbers; `==` and `!=` also compare conditions")
                    return S.Cmp(l, e.op, r)
        if (lk == "bool") != (rk == "bool"):
            self.error("cannot compare a condition with a number", e.span,
                       hint="compare values (`A.buf == 1`) or test conditions (`exclusive(A.buf)`)")
        return S.Cmp(l, e.op, r)

    def location_term(self, loc: ast.Location) -> Typed:
        """A location in an assertion: a page (value and identity) or a kept value."""
        n = self.n
        name = loc.name.text
        if loc.end is not None:
            self.error(f"`{loc.text()}`: an assertion names one page, not a range", loc.span,
                       expected=f"one page, e.g. `{loc.text().split('[')[0]}[{loc.index.value if loc.index else 0}]`")
            return ERROR
        if loc.owner is not None:
            proc = loc.owner.text
            if proc not in n.processes:
                self.error(f"unknown process `{proc}`", loc.owner.span, expected="a process",
                           hint=did_you_mean(proc, n.processes))
                return ERROR
            if name not in n.mappings.get(proc, {}) and (proc, name) not in n.unmapped:
                self.has_mapping(proc, loc.name)
                return ERROR
            pages = n.mappings.get(proc, {}).get(name, 64)
            if loc.index is not None and loc.index.value >= pages:
                self.error(f"page {loc.index.value} is outside `{name}`, which has {pages} page{'s' if pages > 1 else ''}",
                           loc.index.span, expected=f"an index from 0 to {pages - 1}")
                return ERROR
            offset = self.word_offset(loc)
            if offset is None:
                return ERROR
            return S.PageAt(S.Addr(proc, name, loc.index.value if loc.index else 0, offset)), "page"
        if name in n.files:
            pages = len(n.files[name])
            if loc.index is not None and loc.index.value >= pages:
                self.error(f"page {loc.index.value} is outside file `{name}`, which has {pages} page{'s' if pages > 1 else ''}",
                           loc.index.span, expected=f"an index from 0 to {pages - 1}")
                return ERROR
            offset = self.word_offset(loc)
            if offset is None:
                return ERROR
            return S.FilePage(name, loc.index.value if loc.index else 0, offset), "page"
        if loc.bare and (name in n.processes or name in n.threads):
            proc = n.threads.get(name, name)
            example = f"{name}.{next(iter(n.mappings.get(proc, {})), 'buf')}"
            self.error(f"`{name}` is a {'thread' if name in n.threads else 'process'}, not a page", loc.span,
                       expected=f"a page such as `{example}`", hint=f"write `{example}`")
            return ERROR
        if loc.index is not None and (name in n.handles or name in n.values):
            self.error(f"`{loc.text()}`: only mappings and files have pages", loc.span,
                       expected=f"`{name}` without an index")
            return ERROR
        if loc.offset is not None and name in n.handles:
            self.error(f"`{loc.text()}`: a pin or reference reads the word it was taken at", loc.offset.span,
                       expected=f"`{name}`", hint=f"to watch another word, take it there: `pin(buf+{loc.offset.value}, "
                       f"write) as {name}`")
            return ERROR
        if loc.offset is not None and name in n.values:
            self.error(f"`{loc.text()}`: a value kept with `as` is a number, not a page", loc.offset.span,
                       expected=f"`{name}`")
            return ERROR
        if name in n.handles:
            return S.HandlePage(name), "page"
        if name in n.values:
            return S.Bound(name), "int"
        fact = ops.FACTS.get(name)
        if fact is not None and loc.bare:
            if 0 in fact.arity:  # `cow_copies`, `faults`: a counter over all processes
                return S.FactCall(name, ()), fact.kind
            self.error(f"`{name}` needs an argument", loc.span, expected=f"`{name}(...)`",
                       hint=f"e.g. `{name}(A.buf)`" if name not in PROCESS_FACTS else f"e.g. `{name}(A)`")
            return ERROR
        owners = [p for p, ms in n.mappings.items() if name in ms]
        if owners:
            self.error(f"`{name}`: say whose mapping", loc.span, expected=one_of(f"{p}.{name}" for p in owners),
                       hint=f"write `{owners[0]}.{loc.text()}`")
        else:
            self.error(f"unknown name `{name}` in assertion", loc.span,
                       expected="A.mapping, a pin, a value kept with `as`, or a file page",
                       hint=did_you_mean(name, n.handles.keys() | n.values | set(n.files)))
        return ERROR

    def fact(self, e: ast.Fact) -> Typed:
        spec = ops.FACTS.get(e.name.text)
        if spec is None:
            self.error(f"unknown fact `{e.name.text}`", e.name.span, expected="a fact (see `cowdsl ops`)",
                       hint=did_you_mean(e.name.text, ops.FACTS))
            return ERROR
        if len(e.args) not in spec.arity:
            want = " or ".join(str(a) for a in spec.arity)
            example = "A" if spec.name in PROCESS_FACTS else "NAME" if spec.takes == "step" else "A.buf"
            forms = [f"`{spec.name}()`" if k == 0 else f"`{spec.name}({example})`" for k in spec.arity]
            self.error(f"`{spec.name}` takes {want} argument{'s' if spec.arity != (1,) else ''}", e.span,
                       expected=" or ".join(forms))
            return ERROR
        args: list[S.Ref] = []
        for a in e.args:
            ref = self.fact_arg(spec, a)
            if ref is None:
                return ERROR
            args.append(ref)
        return S.FactCall(spec.name, tuple(args)), spec.kind

    def fact_arg(self, spec: ops.FactSpec, a: ast.Expr) -> S.Ref | None:
        """An argument of a fact: a process, a step named with `as`, or a page; None if wrong."""
        if not isinstance(a, ast.Location):  # the parser takes any term, so that this can say what is wrong
            what = "a process" if spec.name in PROCESS_FACTS else (
                "a step named with `as`" if spec.takes == "step" else "a page")
            self.error(f"`{spec.name}` takes {what}, not `{self.show(a)}`", a.span,
                       expected="a process name" if spec.name in PROCESS_FACTS else (
                           "a name bound by `as`" if spec.takes == "step" else "A.buf, A.buf[1], a pin or F[0]"))
            return None
        if spec.name in PROCESS_FACTS:
            if not a.bare or a.name.text not in self.n.processes:
                self.error(f"`{spec.name}` takes a process", a.span, expected="a process name",
                           hint=did_you_mean(a.text(), self.n.processes)
                           or f"e.g. `{spec.name}({next(iter(self.n.processes), 'A')})`")
                return None
            return S.ProcessRef(a.name.text)
        if spec.takes == "step":
            if not a.bare or a.name.text not in self.n.outcomes:
                self.error("`failed` takes a step named with `as`", a.span, expected="a name bound by `as`",
                           hint=did_you_mean(a.text(), self.n.outcomes) or "name the step: `A: pin(buf) as mr`")
                return None
            return S.StepRef(a.name.text)
        if a.bare and a.name.text in self.n.processes:  # `exclusive(B)`: a page of B is meant
            example = f"{a.name.text}.{next(iter(self.n.mappings.get(a.name.text, {})), 'buf')}"
            self.error(f"`{spec.name}` takes a page, not the process `{a.name.text}`", a.span,
                       expected=f"a page such as `{example}`", hint=f"write `{spec.name}({example})`")
            return None
        r, k = self.location_term(a)
        if k == "error":
            return None
        if k != "page":
            self.error(f"`{spec.name}` takes a page, not `{a.text()}`", a.span,
                       expected="A.buf, A.buf[1], a pin or F[0]")
            return None
        assert isinstance(r, S.PageAt | S.HandlePage | S.FilePage)
        return r
