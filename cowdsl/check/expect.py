"""Expect lines: each backend resolved once to its KernelSpec (``cowdsl.kernel.spec``),
a range of versions (``5.9..5.18``) to one spec per model it spans; two
expectations of one model that disagree are an error naming both lines.

In a swept file (``cowdsl.check.sweep``) a line may end with `when kind=thp`:
it is about the scenarios with those values only, and for the models it names
it overrides a line with fewer conditions (`expect pass on 5.10..6.6` and
`expect fail on 5.10 when kind=thp` say 5.10 fails with THP and passes
otherwise).  Two lines with as many conditions that disagree are an error."""

from __future__ import annotations

from cowdsl import scenario as S
from cowdsl.check.context import Context
from cowdsl.errors import Span
from cowdsl.kernel.spec import KernelSpec, SpecError, expand
from cowdsl.syntax import ast


class Expectations(Context):
    def expect_lines(self, lines: list[tuple[ast.Included | None, ast.ExpectLine]]) -> list[S.Expectation]:
        """The expectations of this scenario, the most specific line first."""
        out = []
        for origin, line in sorted(lines, key=lambda ol: -len(ol[1].when)):  # stable: file order otherwise
            self.enter(origin)
            out.extend(self.expect(line, record=self.holds(line.when)))
        return out

    def holds(self, when: tuple[ast.Condition, ...]) -> bool:
        """Whether this scenario's params have the values a `when` asks (the names were checked by the sweep)."""
        values = dict(self.variant)
        return all(values.get(c.param.text) in {_value(v) for v in c.values} for c in when)

    def expect(self, line: ast.ExpectLine, record: bool = True) -> list[S.Expectation]:
        """The line's expectations (none if not ``record``: a line for other params' values is only checked)."""
        out = []
        rank = len(line.when)
        for b in line.backends:
            specs = self.specs(b)
            if not specs or not record:
                continue
            for spec in specs:
                model = spec.name
                earlier, earlier_rank = self.expected.get(model, (None, rank))
                if earlier is not None and earlier_rank > rank:
                    continue  # a line with more `when` conditions said it for this scenario
                if earlier is not None and earlier.outcome != line.outcome:
                    self.error(f"`{b.text}` is {spec.label}, expected to {earlier.outcome} on line "
                               f"{earlier.span.line} (`{earlier.spec.text}`) and to {line.outcome} here", b.span,
                               hint="an expectation per model: remove one of them")
                    break
                e = S.Expectation(line.outcome, spec, b.span)
                self.expected.setdefault(model, (e, rank))
                out.append(e)
        return out


    def specs(self, b: ast.Name) -> tuple[KernelSpec, ...]:
        """The models a backend of an expect line or an assertion's scope names
        (a range, one per model it spans); none, and the problem reported, for a bad one."""
        try:
            return expand(b.text)
        except SpecError as err:
            base = b.text.split(":", 1)[0]
            whole = err.in_options or ".." in base
            span = b.span if whole else Span(b.span.line, b.span.col, b.span.col + len(base))
            self.error(err.message, span, expected=None if whole else "a backend (see `cowdsl backends`)",
                       hint=err.hint)
            return ()


def _value(v: ast.Number | ast.Name) -> int | str:
    return v.value if isinstance(v, ast.Number) else v.text
