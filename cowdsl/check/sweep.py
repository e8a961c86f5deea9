"""Consts and params: `const N = 4`, `param kind in small, thp`, and `$NAME`.

A file with params is a family of scenarios, one per combination of their
values (the cartesian product, in the order the params are declared), as the
kernel's selftests run each test body on each mapping variant.  Each one is the
file with every `$NAME` replaced by its value (``substitute``), checked as a
plain file: every runner sees plain scenarios.  A const is a param with one
value that does not name the scenario.

`$` marks the use of a const or param so that it cannot be read as an op's
flag, a mapping, a pin or a process, which are all bare names.
"""

from __future__ import annotations

import itertools

import attrs

from cowdsl import scenario as S
from cowdsl.check.bounds import Bounds
from cowdsl.errors import Span, did_you_mean, one_of
from cowdsl.syntax import ast

MAX_SCENARIOS = 64  # scenarios one file may sweep (the product of its params' value counts)
MAX_VALUES = 32  # values of one param


def _value(v: ast.Number | ast.Name) -> int | str:
    return v.value if isinstance(v, ast.Number) else v.text


class Sweep(Bounds):
    """The consts and params of a file, its `$` uses and `when` conditions checked."""

    def variants(self) -> list[S.Variant]:
        """One Variant per scenario of the file (``[()]`` without params); CowError for a problem."""
        self.consts: dict[str, int] = {}
        self.params: dict[str, tuple[int | str, ...]] = {}
        declared: dict[str, ast.ConstDecl | ast.ParamDecl] = {}
        for origin, item in self.items:
            self.enter(origin)
            if isinstance(item, ast.ConstDecl | ast.ParamDecl):
                name = item.name.text
                if name in declared:
                    what = "const" if isinstance(declared[name], ast.ConstDecl) else "param"
                    self.error(f"`{name}` is already a {what}, declared at line {declared[name].span.line}",
                               item.name.span, hint="give each const and param its own name")
                    continue
                declared[name] = item
                if isinstance(item, ast.ConstDecl):
                    if self.value(item.value):
                        self.consts[name] = item.value.value
                else:
                    self.param(item)
        count = 1
        for vs in self.params.values():
            count *= len(vs)
        if count > MAX_SCENARIOS:
            first = next(d for d in declared.values() if isinstance(d, ast.ParamDecl))
            self.enter(next(o for o, i in self.items if i is first))
            self.error(f"the params sweep {count} scenarios; the limit is {MAX_SCENARIOS}", first.span,
                       hint="split the file, or sweep fewer values")
        for origin, item in self.items:
            self.enter(origin)
            for var in _vars(item):
                self.use(var, item)
            if isinstance(item, ast.ExpectLine):
                self.conditions(item)
        self.enter(None)
        if self.diags:
            raise self.fail()
        names = list(self.params)
        return [tuple(zip(names, combo)) for combo in itertools.product(*self.params.values())]

    def values(self, variant: S.Variant) -> dict[str, int | str]:
        """What each `$NAME` stands for in the scenario of ``variant``."""
        return {**self.consts, **dict(variant)}

    def param(self, d: ast.ParamDecl) -> None:
        seen: set[int | str] = set()
        for v in d.values:
            if isinstance(v, ast.Number) and not self.value(v):
                return
            if _value(v) in seen:
                self.error(f"`{_value(v)}` is listed twice", v.span, hint="each value once")
                return
            seen.add(_value(v))
        if len(d.values) > MAX_VALUES:
            self.error(f"a param has at most {MAX_VALUES} values, not {len(d.values)}", d.span)
            return
        self.params[d.name.text] = tuple(_value(v) for v in d.values)

    def use(self, var: ast.Var, item: ast.Item) -> None:
        name = var.name
        if name not in self.consts and name not in self.params:
            known = list(self.consts) + list(self.params)
            self.error(f"unknown const or param `${name}`", var.span,
                       expected=one_of(f"${k}" for k in known) if known else "a `const` or `param` declared in the file",
                       hint=did_you_mean(name, known) or f"declare it: `const {name} = 1` or `param {name} in a, b`")
            return
        if isinstance(item, ast.FileDecl) and any(isinstance(v, str) for v in self.params.get(name, ())):
            self.error(f"`${name}` has a name among its values; a file's pages hold numbers", var.span,
                       expected="a number, or a param whose values are numbers")
        elif var in _indexes(item) and any(isinstance(v, str) for v in self.params.get(name, ())):
            self.error(f"`${name}` has a name among its values; a page index is a number", var.span,
                       expected="a number, or a param whose values are numbers")

    def conditions(self, line: ast.ExpectLine) -> None:
        seen: set[str] = set()
        for c in line.when:
            name = c.param.text
            if name not in self.params:
                self.error(f"`when {name}=...`: `{name}` is not a param", c.param.span,
                           expected=one_of(self.params) if self.params else "a param declared with `param NAME in ...`",
                           hint=did_you_mean(name, self.params)
                           or ("a `when` picks some scenarios of a swept file" if not self.params else None))
                continue
            if name in seen:
                self.error(f"`{name}` is in this `when` twice", c.param.span,
                           hint=f"list its values in one condition: `{name}=a|b`")
                continue
            seen.add(name)
            for v in c.values:
                if _value(v) not in self.params[name]:
                    self.error(f"`{_value(v)}` is not a value of `{name}`", v.span,
                               expected=one_of(str(x) for x in self.params[name]),
                               hint=did_you_mean(str(_value(v)), [str(x) for x in self.params[name]]))


def _vars(node: object):
    """Every ``ast.Var`` in a syntax node (not in an included file's items);
    iterative, as an assertion may nest thousands deep."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Var):
            yield n
        elif isinstance(n, tuple):
            stack.extend(reversed(n))
        elif attrs.has(type(n)) and not isinstance(n, ast.Included | Span | ast.Name | ast.Number):
            stack.extend(getattr(n, f.name) for f in reversed(attrs.fields(type(n))))  # type: ignore[arg-type]


def _indexes(node: object) -> list[ast.Var]:
    """The `$i` page indexes and word offsets (``buf[$i]``, ``buf[0..$n]``, ``buf+$off``) in a syntax node."""
    out: list[ast.Var] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Location):
            parts: tuple[object, ...] = (n.index, n.end, n.offset)  # a Var until substituted, though typed Number
            out += [x for x in parts if isinstance(x, ast.Var)]
        elif isinstance(n, tuple):
            stack.extend(n)
        elif attrs.has(type(n)) and not isinstance(n, ast.Included | Span | ast.Name | ast.Number | ast.Var):
            stack.extend(getattr(n, f.name) for f in attrs.fields(type(n)))  # type: ignore[arg-type]
    return out


def substitute(module: ast.Module, values: dict[str, int | str]) -> ast.Module:
    """``module`` with each ``$NAME`` replaced by its value: a number, or a bare
    name (a flag) where a step's argument or a term goes.  The new node keeps the
    `$NAME`'s span, so an error about the value points at it."""
    if not values:
        return module
    return ast.Module(_sub(module.items, values))


def _sub(node, values):
    if isinstance(node, ast.Var):
        v = values[node.name]
        if isinstance(v, int):
            return ast.Number(v, node.span)
        return ast.Location(None, ast.Name(v, node.span), None, node.span)
    if isinstance(node, tuple):
        return tuple(_sub(x, values) for x in node)
    if isinstance(node, ast.KeywordArg) and isinstance(node.value, ast.Var):
        v = values[node.value.name]
        new = ast.Number(v, node.value.span) if isinstance(v, int) else ast.Name(v, node.value.span)
        return attrs.evolve(node, value=new)
    if isinstance(node, ast.Included):
        return attrs.evolve(node, items=_sub(node.items, values))
    if attrs.has(type(node)) and not isinstance(node, Span | ast.Name | ast.Number):
        changes = {f.name: _sub(getattr(node, f.name), values) for f in attrs.fields(type(node))
                   if _has_var(getattr(node, f.name))}
        return attrs.evolve(node, **changes) if changes else node
    return node


def _has_var(node) -> bool:
    return next(_vars(node), None) is not None or isinstance(node, ast.Included)
