"""Fetch Debian's cloud kernels (5.10, 6.1, 6.12) with apt, without touching the host's apt setup.

apt runs with a private sources list, lists folder and package cache in a
temporary folder (as Debian's `chdist` does), so /etc/apt and the host's
package lists stay as they were.  The package is unpacked with `dpkg-deb -x`,
never installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cowdsl.kernels import cache
from cowdsl.kernels.errors import KernelError
from cowdsl.kernels.prepare import install, which

MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class Source:
    suites: tuple[str, ...]  # tried in order
    prefix: str  # for `apt-cache pkgnames`
    pattern: str  # the whole package name


# The unsigned cloud images: small (few drivers), with virtio and the PVH note.
# 6.12: trixie's build first.  bookworm-backports' 6.12.95 build double-faults early in boot under
# QEMU 7.2's TCG (in kmem_cache_alloc, with or without any device), where trixie's 6.12.117 boots.
DEBIAN = {
    "5.10": Source(("bullseye",), "linux-image-5.10.0-", r"linux-image-5\.10\.0-\d+-cloud-amd64-unsigned"),
    "6.1": Source(("bookworm",), "linux-image-6.1.0-", r"linux-image-6\.1\.0-\d+-cloud-amd64-unsigned"),
    "6.12": Source(("trixie", "bookworm-backports"), "linux-image-6.12.",
                   r"linux-image-6\.12\.\d+\+\S+-cloud-amd64-unsigned"),
}


class Apt:
    """apt-get / apt-cache confined to a private folder."""

    def __init__(self, work: Path, suite: str, mirror: str = MIRROR) -> None:
        for tool, pkg in (("apt-get", "apt"), ("apt-cache", "apt"), ("dpkg-deb", "dpkg")):
            which(tool, pkg)
        self.work = work
        for d in ("lists/partial", "cache/archives/partial", "empty", "dl"):
            (work / d).mkdir(parents=True, exist_ok=True)
        signed = f" signed-by={KEYRING}" if Path(KEYRING).is_file() else ""
        (work / "sources.list").write_text(f"deb [arch=amd64{signed}] {mirror} {suite} main\n")
        self.options = [
            "-o", f"Dir::Etc::SourceList={work / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={work / 'empty'}",
            "-o", f"Dir::Etc::Preferences={work / 'empty' / 'none'}",
            "-o", f"Dir::Etc::PreferencesParts={work / 'empty'}",
            "-o", f"Dir::State::Lists={work / 'lists'}",
            "-o", f"Dir::Cache={work / 'cache'}",
            "-o", "APT::Architecture=amd64",
        ]
        if os.geteuid() == 0:  # root's apt hands downloads to user _apt, who cannot write a private temp folder
            self.options += ["-o", "APT::Sandbox::User=root"]

    def _run(self, tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([tool, *self.options, *args], capture_output=True, text=True, cwd=cwd,
                              env={**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"})

    def update(self) -> None:
        p = self._run("apt-get", "update")
        errors = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith(("E:", "Err:"))]
        if p.returncode != 0 or errors:
            raise KernelError(f"apt-get update failed: {(errors or ['exit ' + str(p.returncode)])[0]}")

    def candidates(self, src: Source) -> list[tuple[str, str]]:
        """(package, version) of the packages matching ``src``, newest first."""
        names = self._run("apt-cache", "pkgnames", src.prefix).stdout.split()
        names = sorted((n for n in names if re.fullmatch(src.pattern, n)), key=cache._version_key, reverse=True)
        found = []
        for n in names:  # pkgnames also lists names only mentioned in dependencies: keep real ones
            policy = self._run("apt-cache", "policy", n).stdout
            m = re.search(r"Candidate:\s*(\S+)", policy)
            if m and m.group(1) != "(none)":
                found.append((n, m.group(1)))
        return found

    def download(self, package: str, version: str) -> Path:
        dl = self.work / "dl"
        p = self._run("apt-get", "download", f"{package}={version}", cwd=dl)
        debs = list(dl.glob(f"{package}_*.deb"))
        if p.returncode != 0 or not debs:
            last = [ln for ln in (p.stderr + p.stdout).splitlines() if ln.startswith("E:")][-1:] or ["no .deb"]
            raise KernelError(f"apt-get download {package} failed: {last[0]}")
        return debs[0]


def unpack(deb: Path, dest: Path) -> tuple[str, Path, Path, Path]:
    """Extract the package; return (release, image, modules folder, System.map)."""
    p = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if p.returncode != 0:
        raise KernelError(f"dpkg-deb -x {deb.name} failed: {p.stderr.strip()}")
    for base in (dest / "lib" / "modules", dest / "usr" / "lib" / "modules"):
        releases = [d.name for d in base.glob("*") if d.is_dir()] if base.is_dir() else []
        if releases:
            release = releases[0]
            return release, dest / "boot" / f"vmlinuz-{release}", base / release, dest / "boot" / f"System.map-{release}"
    raise KernelError(f"{deb.name}: no lib/modules folder in the package")


def _download(work: Path, suite: str, src: Source, mirror: str, say) -> tuple[Path, str, str]:
    """The newest package of ``src`` in ``suite``: (the .deb, its name, its version)."""
    apt = Apt(work, suite, mirror)
    say(f"apt-get update ({suite})")
    apt.update()
    found = apt.candidates(src)
    if not found:
        raise KernelError(f"no package matching {src.pattern} in Debian {suite}")
    problems = []
    for package, version in found[:4]:  # a mirror may lack the newest file: try older ones
        try:
            say(f"downloading {package} {version}")
            return apt.download(package, version), package, version
        except KernelError as e:
            problems.append(str(e))
    raise KernelError(problems[0] if len(problems) == 1 else f"{problems[0]} (and {len(problems) - 1} older)")


def fetch(version: str, *, suite: str | None = None, root: Path | None = None, mirror: str | None = None,
          say=None) -> cache.Kernel:
    """Download Debian's cloud kernel ``version`` (5.10, 6.1 or 6.12) and prepare it in the cache.

    ``suite`` picks one Debian suite instead of the known ones (e.g. bookworm-backports for 6.12).
    """
    if version not in DEBIAN:
        raise KernelError(f"no Debian package known for kernel {version!r} (known: {', '.join(DEBIAN)})")
    src = DEBIAN[version]
    tell = say or (lambda s: None)
    mirror = mirror or os.environ.get("COWDSL_DEBIAN_MIRROR", MIRROR)
    tmp = Path(tempfile.mkdtemp(prefix="cowdsl-fetch-"))
    try:
        problems = []
        for s in (suite,) if suite else src.suites:
            try:
                deb, package, pkg_version = _download(tmp / s, s, src, mirror, lambda m: tell(f"{version}: {m}"))
                break
            except KernelError as e:
                problems.append(str(e))
        else:
            raise KernelError("; ".join(problems))
        release, image_path, moddir, system_map = unpack(deb, tmp / "root")
        tell(f"{version}: preparing {release}")
        return install(image_path, moddir, release, f"debian:{s}:{package}={pkg_version}",
                       system_map=system_map, root=root,
                       extra={"package": package, "package_version": pkg_version, "suite": s})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
