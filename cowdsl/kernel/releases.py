"""The versions a timeline is drawn over: mainline releases, the -rc where an
era begins between releases, the stable sublevels on both sides of each
backport, and the distribution kernels people run."""

from __future__ import annotations

from cowdsl.kernel.timeline import TIMELINE
from cowdsl.kernel.version import Version, v

MAINLINE: tuple[Version, ...] = (
    *(Version(4, n) for n in range(0, 21)),
    *(Version(5, n) for n in range(0, 20)),
    *(Version(6, n) for n in range(0, 19)),
)
# Between 5.9-rc4 and 5.9-rc7 the refcount era is the only kernel: no release has it.
RC: tuple[Version, ...] = (v("5.9-rc4"),)
# Stable kernels that distributions ship (the versions users ask about).
DISTRIBUTION: tuple[Version, ...] = tuple(map(v, ("4.19.222", "5.4.214", "5.10.198", "5.15.135", "6.1.158")))


def _backport_edges() -> tuple[Version, ...]:
    out = []
    for c in TIMELINE:
        for (major, minor), sub in c.stable:
            out += [Version(major, minor, sublevel=sub - 1), Version(major, minor, sublevel=sub)]
    return tuple(out)


ALL: tuple[Version, ...] = tuple(sorted(set(MAINLINE + RC + DISTRIBUTION + _backport_edges()), key=Version.key))


def within(lo: Version, hi: Version) -> tuple[Version, ...]:
    """The listed versions from ``lo`` to ``hi``, both included."""
    return tuple(x for x in ALL if lo <= x <= hi)


def lines() -> dict[tuple[int, int], tuple[Version, ...]]:
    """The listed versions by release line (``(5, 10)``: 5.10, 5.10.3, ...)."""
    out: dict[tuple[int, int], list[Version]] = {}
    for x in ALL:
        out.setdefault(x.line, []).append(x)
    return {k: tuple(vs) for k, vs in out.items()}
