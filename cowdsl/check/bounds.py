"""Limits (``cowdsl.limits``): processes, threads, pages, steps, and the size of a value."""

from __future__ import annotations

from cowdsl import limits as L
from cowdsl import ops
from cowdsl.check.context import Context
from cowdsl.errors import Span
from cowdsl.syntax import ast

MAX_VALUE = (1 << 64) - 1


class Bounds(Context):
    def over_limit(self, field: str, message: str, span: Span, value: int) -> None:
        """A resource limit is exceeded: report it once, with its flag."""
        if field not in self.over:
            self.over.add(field)
            self.error(message, span, hint=L.hint(field, value))

    def count_steps(self) -> None:
        """Too many steps: report it, and check nothing else (the work is bounded by the limit)."""
        limit, n = self.limits.max_steps, 0
        first: ast.Step | None = None  # the first step over the limit
        for _, item in self.items:
            for st in item.steps if isinstance(item, ast.ParBlock) else [item]:
                if isinstance(st, ast.Step):
                    n += 1
                    if n == limit + 1:
                        first = st
        if first is not None:
            self.over_limit("max_steps", f"the scenario has {n} steps; the limit is {limit}", first.span, n)
            raise self.fail()

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

    def add_thread(self, span: Span) -> None:
        limit = self.limits.max_threads
        if len(self.n.threads) >= limit:
            self.over_limit("max_threads", f"more than {limit} threads; the limit is {limit}", span, len(self.n.threads) + 1)

    def file_too_long(self, d: ast.FileDecl) -> bool:
        if len(d.pages) > self.limits.max_pages:
            self.error(f"a file has at most {self.limits.max_pages} pages, not {len(d.pages)}", d.span,
                       hint=L.hint("max_pages", len(d.pages)))
            return True
        return False

    def keyword_hi(self, k: ops.Keyword) -> int:
        """The largest value of an int keyword: pages= is bounded by the max_pages limit."""
        return self.limits.max_pages if k.name == "pages" else k.hi

    def keyword_out_of_range(self, k: ops.Keyword, num: ast.Number) -> bool:
        lo, hi = k.lo, self.keyword_hi(k)
        if lo <= num.value <= hi:
            return False
        unit = " pages" if k.name == "pages" else ""
        raise_ = L.hint("max_pages", num.value) if k.name == "pages" and hi < num.value <= MAX_VALUE else None
        self.error(f"`{k.name}={num.value}` is out of range", num.span, expected=f"{lo} to {hi}{unit}", hint=raise_)
        return True

    def value(self, num: ast.Number) -> bool:
        if num.value > MAX_VALUE:
            self.error("value too large", num.span, expected="a number below 2**64")
            return False
        return True
