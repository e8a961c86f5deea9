"""The models, by era name, and the backend a resolved spec runs on.

Eras are listed here explicitly (oldest first), so the list is read in one
place and no era module imports the registry back.  Third-party backends load
through the ``cowdsl.backends`` entry point group.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from cowdsl.kernel import eras
from cowdsl.kernel.spec import KernelSpec, resolve
from cowdsl.semantics.backend import Backend
from cowdsl.semantics.eras.anon_exclusive import AnonExclusive
from cowdsl.semantics.eras.cow_fixes_1 import CowFixes1
from cowdsl.semantics.eras.early_cow import EarlyCow
from cowdsl.semantics.eras.gup_cow import GupCow
from cowdsl.semantics.eras.mapcount import Mapcount
from cowdsl.semantics.eras.refcount import Refcount

NATIVE = eras.NATIVE

BACKENDS: dict[str, type[Backend]] = {cls.name: cls for cls in (
    Mapcount, GupCow, Refcount, EarlyCow, CowFixes1, AnonExclusive)}


@functools.cache
def _plugins() -> dict[str, type[Backend]]:
    out: dict[str, type[Backend]] = {}
    try:
        for ep in entry_points(group="cowdsl.backends"):
            cls = ep.load()
            out[cls.name] = cls
    except Exception:  # a broken plugin must not break the built-in backends
        pass
    return out


def names() -> list[str]:
    return list(BACKENDS)


def get(spec: KernelSpec | str) -> Backend:
    """The backend for a spec (a text is resolved first; SpecError if invalid)."""
    if isinstance(spec, str):
        spec = resolve(spec)
    cls = BACKENDS.get(spec.model) or _plugins()[spec.model]
    return cls(spec)
