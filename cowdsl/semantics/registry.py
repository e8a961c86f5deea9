"""Backends by name, by kernel version, and with options.

A backend spec is ``NAME[:OPTION=CHOICE]...`` (``early-cow:pin_scope=longterm``)
or a kernel version (``5.10``), which picks the era and the options that match
that release.  Third-party backends load through the ``cowdsl.backends`` entry
point group.
"""

from __future__ import annotations

import functools
import re

BACKENDS: dict[str, type] = {}

# The real kernel under this machine: not a model class, run by cowdsl.native.
NATIVE = "native"

# Kernel releases → specs, oldest first: (first version, spec).
RELEASES = (
    ((0, 0), "mapcount:foll_cow=off"),  # before the Dirty COW fix 19be0eaffa3a
    ((4, 9), "mapcount"),
    ((5, 8), "gup-cow"),
    ((5, 9), "early-cow:device_exclusive=off:hugetlb_fork_copy=off:swap_pin_check=off:wp_seq=off"),
    ((5, 10), "early-cow:device_exclusive=off:hugetlb_fork_copy=off"),  # 5.10.y: feb889fb40fa and 57efa1fe5957
    ((5, 12), "early-cow:device_exclusive=off"),  # 4eae4efa2c29: hugetlb early COW
    ((5, 14), "early-cow"),  # b756a3b5e7ea: device-exclusive entries
    ((5, 18), "cow-fixes-1"),
    ((5, 19), "anon-exclusive:foll_force=foll_cow:hugetlb_force=allow:longterm_file_write=allow"
              ":longterm_unshare=anon:mprotect=fault"),
    ((6, 0), "anon-exclusive:hugetlb_force=allow:longterm_file_write=allow:longterm_unshare=anon"),
    ((6, 2), "anon-exclusive:longterm_file_write=allow"),
    ((6, 5), "anon-exclusive"),
)
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.\d+)?$")


class SpecError(ValueError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def register(cls):
    BACKENDS[cls.name] = cls
    return cls


@functools.cache
def _load() -> dict[str, type]:
    from cowdsl.semantics.eras import (  # noqa: F401  (each registers itself)
        anon_exclusive,
        cow_fixes_1,
        early_cow,
        gup_cow,
        mapcount,
        refcount,
    )

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
    return {a: name for name, cls in _load().items() for a in cls.aliases}


def version_spec(version: str) -> str | None:
    m = _VERSION.match(version)
    if not m:
        return None
    v = (int(m.group(1)), int(m.group(2)))
    spec = None
    for first, s in RELEASES:
        if v >= first:
            spec = s
    return spec


def split(spec: str) -> tuple[str, dict[str, str]]:
    """NAME:k=v:k=v → (NAME, {k: v}); a version or alias is expanded first."""
    head, *rest = spec.split(":")
    expanded = version_spec(head) or aliases().get(head)
    options: dict[str, str] = {}
    if expanded:
        head, *pre = expanded.split(":")
        rest = pre + rest
    for part in rest:
        if "=" not in part:
            raise SpecError(f"option `{part}` needs a value", "write OPTION=CHOICE, e.g. early-cow:pin_scope=longterm")
        k, v = part.split("=", 1)
        options[k] = v
    return head, options


def get(spec: str):
    """A backend instance for a spec; SpecError with a suggestion otherwise."""
    from cowdsl.errors import did_you_mean

    backends = _load()
    name, options = split(spec)
    if name not in backends:
        raise SpecError(f"unknown backend `{name}`", did_you_mean(name, known_words()))
    cls = backends[name]
    known = cls.all_options()
    for k, v in options.items():
        if k not in known:
            hint = did_you_mean(k, known) or ("options: " + ", ".join(known) if known else "it takes no options")
            raise SpecError(f"unknown option `{k}` for {name}", hint)
        if v not in known[k].choices:
            raise SpecError(f"option `{k}` of {name} takes {' or '.join(known[k].choices)}, not `{v}`",
                            did_you_mean(v, known[k].choices))
    return cls(**options)


def canonical(spec: str) -> str:
    """The spec a backend reports for itself (defaults dropped), or NATIVE."""
    if spec == NATIVE:
        return NATIVE
    return get(spec).spec


def resolve(spec: str) -> str | None:
    """The canonical spec, or None when the spec is not valid."""
    try:
        return canonical(spec)
    except SpecError:
        return None


def check(spec: str) -> SpecError | None:
    """None when the spec names a backend (or native), else the error."""
    if spec == NATIVE:
        return None
    try:
        get(spec)
    except SpecError as e:
        return e
    return None


def known_words() -> list[str]:
    return names() + list(aliases()) + [NATIVE]
