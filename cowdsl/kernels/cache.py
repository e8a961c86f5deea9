"""The cache of prepared kernels: one folder per kernel release.

    $COWDSL_KERNEL_CACHE, else $XDG_CACHE_HOME/cowdsl/kernels, else ~/.cache/cowdsl/kernels
      6.1.0-41-cloud-amd64/
        vmlinux | bzImage     the boot image (vmlinux when the bzImage carries the PVH note)
        modules/              the kernel's lib/modules/RELEASE tree, with modules.dep
        initramfs.img         busybox, /init and the modules the guest needs (gzip'd newc cpio)
        scratch.ext4          the guest's /tmp: a disk file system (runs use a throw-away overlay)
        meta.json             {"version", "source", "files", ...}

A folder is only visible once meta.json is written, and it is written last:
an interrupted preparation leaves no half kernel behind (only a ``.tmp-*`` folder).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cowdsl.kernels.errors import KernelError

META = "meta.json"


def cache_dir() -> Path:
    """Where prepared kernels live (not created here)."""
    if os.environ.get("COWDSL_KERNEL_CACHE"):
        return Path(os.environ["COWDSL_KERNEL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "cowdsl" / "kernels"


@dataclass(frozen=True)
class Kernel:
    """A prepared kernel: its folder and what meta.json says about it."""

    folder: Path
    meta: dict

    @property
    def version(self) -> str:
        return self.meta["version"]

    @property
    def source(self) -> str:
        return self.meta.get("source", "?")

    def file(self, role: str) -> Path | None:
        """The file playing ``role`` (image, initramfs, disk, modules), or None when it has none."""
        name = self.meta.get("files", {}).get(role)
        return self.folder / name if name else None

    @property
    def image(self) -> Path:
        return self.folder / self.meta["files"]["image"]

    @property
    def initramfs(self) -> Path:
        return self.folder / self.meta["files"]["initramfs"]

    @property
    def disk(self) -> Path:
        return self.folder / self.meta["files"]["disk"]

    def size(self) -> int:
        """Bytes on disk (sparse files count what they really use)."""
        total = 0
        for p in self.folder.rglob("*"):
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_blocks * 512
        return total


def load(folder: Path) -> Kernel | None:
    """The kernel in ``folder``, or None when it is not a complete prepared kernel."""
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or "version" not in meta or "image" not in meta.get("files", {}):
        return None
    return Kernel(folder, meta)


def kernels(root: Path | None = None) -> list[Kernel]:
    """Every prepared kernel, sorted by version."""
    root = root or cache_dir()
    if not root.is_dir():
        return []
    found = [k for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") for k in [load(d)] if k]
    return sorted(found, key=lambda k: _version_key(k.version))


def _version_key(v: str) -> tuple:
    parts = []
    for chunk in v.replace("-", ".").replace("+", ".").split("."):
        parts.append((0, int(chunk), "") if chunk.isdigit() else (1, 0, chunk))
    return tuple(parts)


def matches(release: str, spec: str) -> bool:
    """Does kernel ``release`` answer to ``spec``?  "6.1" matches 6.1.0-41-cloud-amd64, not 6.12.x."""
    return release == spec or release.startswith((spec + ".", spec + "-", spec + "+"))


def find(spec: str, root: Path | None = None) -> Kernel | None:
    """The newest prepared kernel whose release matches ``spec`` (see ``matches``)."""
    hits = [k for k in kernels(root) if matches(k.version, spec)]
    return hits[-1] if hits else None


def require(spec: str, root: Path | None = None) -> Kernel:
    """Like ``find``, but a clear error when nothing matches."""
    k = find(spec, root)
    if k is None:
        have = ", ".join(k.version for k in kernels(root)) or "none"
        raise KernelError(f"kernel {spec!r} is not prepared (prepared: {have}); "
                          f"run `cowdsl kernels fetch {spec}` or give the path of a kernel image")
    return k


def staging(root: Path, name: str) -> Path:
    """A fresh work folder inside the cache (same file system, so the final rename is atomic)."""
    root.mkdir(parents=True, exist_ok=True)
    d = root / f".tmp-{name}-{os.getpid()}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    return d


def publish(work: Path, meta: dict, root: Path) -> Kernel:
    """Write meta.json into ``work`` and move it to its final place, replacing an older copy."""
    (work / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    final = root / meta["version"]
    if final.exists():
        old = root / f".old-{meta['version']}-{os.getpid()}"
        final.rename(old)
        work.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        work.rename(final)
    return Kernel(final, meta)
