"""Backends by name and alias; third-party backends load through the
``cowdsl.backends`` entry point group."""

from __future__ import annotations

import functools

BACKENDS: dict[str, type] = {}

# The real kernel under this machine: not a model class, run by cowdsl.native.
NATIVE = "native"


def register(cls):
    BACKENDS[cls.name] = cls
    return cls


@functools.cache
def _load() -> dict[str, type]:
    from cowdsl.semantics.eras import anon_exclusive  # noqa: F401  (registers itself)

    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="cowdsl.backends"):
            register(ep.load())
    except Exception:  # a broken plugin must not break the built-in backends
        pass
    return BACKENDS


def names() -> list[str]:
    return list(_load())


def aliases() -> dict[str, str]:
    out = {}
    for name, cls in _load().items():
        for a in cls.aliases:
            out[a] = name
    return out


def resolve(spec: str) -> str | None:
    """A backend name for a name or a version alias, or None."""
    backends = _load()
    if spec == NATIVE or spec in backends:
        return spec
    return aliases().get(spec)


def get(spec: str):
    name = resolve(spec)
    if name is None:
        raise KeyError(spec)
    return _load()[name]()


def known_words() -> list[str]:
    return names() + list(aliases()) + [NATIVE]
