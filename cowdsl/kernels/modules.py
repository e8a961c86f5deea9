"""Which kernel modules the guest needs, in load order, read from the kernel's own modules.dep.

The initramfs has busybox's `insmod`, which loads one file and knows no
dependencies, and cannot read compressed modules: so the order is worked out
here and the files go into the initramfs decompressed.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cowdsl.kernels.errors import KernelError

# What /init needs to reach the host's root (virtiofs) and its scratch disk (virtio-blk, ext4).
REQUIRED = ("virtio", "virtio_ring", "virtio_pci", "fuse", "virtiofs", "virtio_blk", "ext4")
# Nice to have: zram swap and its compressors, ext4's checksum (a crypto softdep, not a symbol
# dependency, so modules.dep does not list it), a hardware RNG so getrandom() does not block.
OPTIONAL = ("zram", "lzo", "lzo_rle", "lz4", "lz4hc", "zstd", "crc32c_generic", "crc32c_intel", "virtio_rng")
SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")


def name_of(path: str) -> str:
    """The module name of a file: kernel/crypto/lzo-rle.ko.xz -> lzo_rle."""
    base = path.rsplit("/", 1)[-1]
    for suffix in SUFFIXES[::-1]:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


@dataclass
class ModuleIndex:
    """modules.dep and modules.builtin of one kernel: name -> file, name -> dependency names."""

    files: dict[str, str] = field(default_factory=dict)
    deps: dict[str, list[str]] = field(default_factory=dict)
    builtin: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, dep_text: str, builtin_text: str = "") -> ModuleIndex:
        idx = cls()
        for line in dep_text.splitlines():
            if ":" not in line:
                continue
            target, _, rest = line.partition(":")
            name = name_of(target.strip())
            idx.files[name] = target.strip()
            idx.deps[name] = [name_of(d) for d in rest.split()]
        idx.builtin = {name_of(ln.strip()) for ln in builtin_text.splitlines() if ln.strip()}
        return idx

    @classmethod
    def load(cls, moddir: Path) -> ModuleIndex:
        """Read MODDIR/modules.dep (run depmod first) and MODDIR/modules.builtin."""
        try:
            dep = (moddir / "modules.dep").read_text()
        except OSError as e:
            raise KernelError(f"{moddir}: no modules.dep ({e.strerror}); run depmod") from None
        builtin = (moddir / "modules.builtin").read_text() if (moddir / "modules.builtin").exists() else ""
        return cls.parse(dep, builtin)

    def resolve(self, wanted: Sequence[str], optional: Sequence[str] = ()) -> tuple[list[str], list[str]]:
        """The modules to load, dependencies first, and the wanted ones the kernel does not have.

        Built-in modules need no loading.  A required module that is neither a
        module nor built in is reported missing; an optional one is left out.
        """
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str, chain: tuple[str, ...]) -> None:
            if name in seen or name in self.builtin:
                return
            if name in chain:
                raise KernelError(f"modules.dep has a dependency cycle: {' -> '.join((*chain, name))}")
            for d in self.deps.get(name, []):
                visit(d, (*chain, name))
            seen.add(name)
            order.append(name)

        missing = []
        for name in [*wanted, *optional]:
            name = name.replace("-", "_")
            if name in self.files:
                visit(name, ())
            elif name not in self.builtin and name in wanted:
                missing.append(name)
        return order, missing


def read_module(path: Path) -> bytes:
    """A module's ELF bytes, decompressed (busybox insmod cannot read .ko.xz)."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        if not shutil.which("zstd"):
            raise KernelError(f"{path.name}: zstd-compressed modules need the `zstd` tool")
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return data
