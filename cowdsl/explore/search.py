"""The searches over a Model's worlds.

``full``: breadth-first over every interleaving with a visited set; the
reference (asked to, it takes a bystander's move alone: ``ample``).  ``reduced`` (the default): depth-first source-DPOR with sleep sets
and state caching, over the independence relation given by what each
micro-step read and wrote; it reaches the same final states.  Both stop at
``max_states`` or ``timeout`` and then say the result is partial; asked to,
both explore one world per class of symmetric threads (``symmetry``); given a
``Goal`` (the judge's), both stop once every verdict is decided.  ``shortest``,
``replay`` and ``follow`` find, show and replay one execution.

The searches live in ``full``, ``reduced`` and ``paths``, what they are given and
give back in ``exploration``; this module gathers them.
"""

from __future__ import annotations

import time  # noqa: F401  (Bounds reads the clock through it: tests patch search.time.monotonic)

from cowdsl.explore.exploration import Bounds, Exploration, Goal, Progress
from cowdsl.explore.full import full
from cowdsl.explore.paths import Path, follow, replay, shortest
from cowdsl.explore.reduced import ReducedSearch, reduced

__all__ = ["Bounds", "Exploration", "Goal", "Path", "Progress", "ReducedSearch", "follow", "full", "reduced",
           "replay", "shortest"]
