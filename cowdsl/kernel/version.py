"""Kernel versions: mainline (``5.8``), release candidates (``5.9-rc4``) and
stable releases with a sublevel (``5.4.214``).  A bare ``5.4`` is mainline 5.4
as released, the same as ``5.4.0``."""

from __future__ import annotations

import re

from attrs import frozen

_VERSION = re.compile(r"^(\d{1,2})\.(\d{1,3})(?:-rc(\d{1,2})|\.(\d{1,4}))?$")


@frozen(order=False)
class Version:
    major: int
    minor: int
    rc: int = 0  # 0: the release itself; N: -rcN before it
    sublevel: int = 0  # stable sublevel; 0 for mainline

    @classmethod
    def parse(cls, text: str) -> Version | None:
        m = _VERSION.match(text)
        if not m:
            return None
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), int(m.group(4) or 0))

    @property
    def line(self) -> tuple[int, int]:
        """The release (and stable line) this version belongs to."""
        return (self.major, self.minor)

    @property
    def mainline(self) -> bool:
        return self.sublevel == 0

    def key(self) -> tuple[int, int, int, int, int]:
        # an -rc sorts before its release, a stable sublevel after it
        return (self.major, self.minor, 0 if self.rc else 1, self.rc, self.sublevel)

    def __lt__(self, other: Version) -> bool:
        return self.key() < other.key()

    def __le__(self, other: Version) -> bool:
        return self.key() <= other.key()

    def __gt__(self, other: Version) -> bool:
        return self.key() > other.key()

    def __ge__(self, other: Version) -> bool:
        return self.key() >= other.key()

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}"
        if self.rc:
            return f"{base}-rc{self.rc}"
        return f"{base}.{self.sublevel}" if self.sublevel else base


def v(text: str) -> Version:
    """A version written in the project's own data (a typo there is a bug)."""
    out = Version.parse(text)
    if out is None:
        raise ValueError(f"not a kernel version: {text!r}")
    return out
