"""The upstream version of a kernel, from what it says about itself.

A distribution's release string is not its version: Debian's
``5.10.0-32-cloud-amd64`` is 5.10.223, and ``/proc/version`` says so
("... Debian 5.10.223-1 ..."); Ubuntu's ``/proc/version_signature`` ends in
the upstream version ("Ubuntu 5.15.0-91.101-generic 5.15.131").  A kernel
built from a tree is named by its version (``6.9.0-rc1+``, ``6.18.44-xyz``).

    upstream("5.10.0-32-cloud-amd64", "Linux version ... Debian 5.10.223-1 (2024-08-10)")  -> "5.10.223"
    running()                                                                            -> this kernel's
"""

from __future__ import annotations

import os
import re

_DEBIAN = re.compile(r"\bDebian (\d+\.\d+(?:\.\d+)?)(?:[-~+][\w.+~-]*)?(?:\s|\)|$)")
_UBUNTU_SIGNATURE = re.compile(r"^Ubuntu \S+ (\d+\.\d+(?:\.\d+)?)\s*$")
_RELEASE = re.compile(r"^(\d+\.\d+(?:\.\d+)?)(-rc\d+)?")


def upstream(release: str, proc_version: str = "", signature: str = "") -> str:
    """The upstream version (``5.10.223``, ``6.9-rc1``) of a kernel whose ``uname -r`` is ``release``.

    ``proc_version`` (/proc/version) and ``signature`` (/proc/version_signature) win
    over the release when they name a distribution package's upstream version.
    Raises ValueError when nothing looks like a version.
    """
    m = _UBUNTU_SIGNATURE.match(signature.strip())
    if m:
        return m.group(1)
    m = _RELEASE.match(release.strip())
    if not m:
        raise ValueError(f"cannot tell the kernel version from {release!r}")
    series = ".".join(m.group(1).split(".")[:2]) + "."
    # the package's version, not the compiler's ("(gcc-10 (Debian 10.2.1-6) ...) ... SMP Debian 5.10.223-1")
    for d in reversed(_DEBIAN.findall(proc_version)):
        if d.startswith(series):
            return d
    version, rc = m.group(1), m.group(2)
    if rc:  # 6.9.0-rc1 is 6.9-rc1
        version = re.sub(r"\.0$", "", version) + rc
    return version


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def identity() -> dict[str, str]:
    """This kernel as it describes itself: ``release``, ``proc_version`` and ``version`` (upstream)."""
    release, proc_version = os.uname().release, _read("/proc/version").strip()
    signature = _read("/proc/version_signature").strip()
    out = {"release": release, "proc_version": proc_version, "version": upstream(release, proc_version, signature)}
    if signature:
        out["signature"] = signature
    return out


def running() -> str:
    """The upstream version of the kernel this process runs on."""
    return identity()["version"]
