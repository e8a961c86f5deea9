"""Expect lines: each backend resolved once to its KernelSpec (``cowdsl.kernel.spec``),
a range of versions (``5.9..5.18``) to one spec per model it spans; two
expectations of one model that disagree are an error naming both lines."""

from __future__ import annotations

from cowdsl import scenario as S
from cowdsl.check.context import Context
from cowdsl.errors import Span
from cowdsl.kernel.spec import SpecError, expand
from cowdsl.syntax import ast


class Expectations(Context):
    def expect(self, line: ast.ExpectLine) -> list[S.Expectation]:
        out = []
        for b in line.backends:
            try:
                specs = expand(b.text)
            except SpecError as err:
                base = b.text.split(":", 1)[0]
                whole = err.in_options or ".." in base
                span = b.span if whole else Span(b.span.line, b.span.col, b.span.col + len(base))
                self.error(err.message, span, expected=None if whole else "a backend (see `cowdsl backends`)",
                           hint=err.hint)
                continue
            for spec in specs:
                model = spec.name
                earlier = self.expected.get(model)
                if earlier is not None and earlier.outcome != line.outcome:
                    self.error(f"`{b.text}` is {spec.label}, expected to {earlier.outcome} on line "
                               f"{earlier.span.line} (`{earlier.spec.text}`) and to {line.outcome} here", b.span,
                               hint="an expectation per model: remove one of them")
                    break
                e = S.Expectation(line.outcome, spec, b.span)
                self.expected.setdefault(model, e)
                out.append(e)
        return out
