"""Syntax tree → checked ``cowdsl.scenario.Scenario``: ``check(module, filename, source, limits)``.

One module per job, each a mixin over the shared :class:`~cowdsl.check.context.Context`:

- ``context``: the file, the limits, the name table, the steps so far, reporting;
- ``bounds``: resource limits (processes, threads, pages, steps) and value sizes;
- ``names``: declarations, `as` names, what steps make and end, `par` visibility;
- ``arguments``: a step's parameters, flags and keywords against the op registry;
- ``steps``: each step's op and actor, `par` blocks;
- ``assertions``: expressions, locations, facts, comparisons, typed;
- ``expect``: expect lines resolved to KernelSpecs, disagreements, `when` conditions;
- ``sweep``: consts and params; one module per combination of the params' values;
- ``checker``: the jobs composed, walking the file in order.

This layer sits over ``cowdsl.syntax`` and imports nothing above ``cowdsl.scenario``.
"""

from cowdsl.check.checker import Checker, check, check_all

__all__ = ["Checker", "check", "check_all"]
