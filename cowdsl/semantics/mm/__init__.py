"""The kernel mechanism, one module per mm/ source file.

Each class is a mixin of ``Backend``: it holds the code paths (fault handling,
fork, GUP, reclaim) and calls the backend's named decision rules where the
kernel's behaviour changed between eras.  Each op is declared in the
``cowdsl.ops`` module of the same name (its surface, its micro-steps and their
locks); the methods that run it bind to the declaration with
``@micro_step(DECLARATION, "label")`` or ``@whole_op(OP)``
(``cowdsl.semantics.micro``), checked when the Backend class is built.
What a mixin may call on ``self`` that another class defines (the rules, the
era's attributes, another file's entry points) is declared once, in
``cowdsl.semantics.contract.Kernel``, and checked by mypy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cowdsl.scenario import Addr, Step


def addr_of(step: Step) -> Addr:
    """The page the step names: an op that runs this mechanism declares the
    address as its parameter, and the checker requires it."""
    assert step.addr is not None, f"{step.op} takes an address"
    return step.addr


def value_of(step: Step) -> int:
    """The value the step stores: an op that runs this mechanism declares it as its
    parameter, and the checker requires it."""
    assert step.value is not None, f"{step.op} takes a value"
    return step.value
