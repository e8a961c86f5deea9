"""The guest's initramfs, made by the project: Debian's static busybox, /init, the kernel's modules.

One run appends a second small archive holding /job.sh (the kernel unpacks
concatenated archives in order), so the prepared initramfs never changes.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

from cowdsl.kernels import cpio
from cowdsl.kernels.errors import KernelError
from cowdsl.kernels.guest import INIT
from cowdsl.kernels.modules import OPTIONAL, REQUIRED, ModuleIndex, read_module

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


def _is_static(path: Path) -> bool:
    """An ELF without a PT_INTERP program header needs no dynamic loader (the initramfs has none)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + k * phentsize)[0] != 3 for k in range(phnum))


def find_busybox() -> Path:
    """The static busybox (package busybox-static; $COWDSL_BUSYBOX overrides)."""
    candidates = [os.environ["COWDSL_BUSYBOX"]] if os.environ.get("COWDSL_BUSYBOX") else list(BUSYBOX_PATHS)
    for c in candidates:
        p = Path(c)
        if p.is_file() and _is_static(p):
            return p
    raise KernelError("no static busybox found (install the busybox-static package, "
                      "or set COWDSL_BUSYBOX to a statically linked busybox)")


def applets(busybox: Path) -> list[str]:
    """The applets this busybox has (it runs on the host: it is static)."""
    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
    # `busybox` itself gets no link: a link named busybox pointing at busybox loops (ELOOP at init)
    return sorted(a for a in out.split() if a and a != "busybox" and "/" not in a)


def base_entries(busybox: Path) -> list[cpio.Entry]:
    """Folders, /dev/console, busybox and its applet links, /init."""
    entries = [cpio.directory(d) for d in ("bin", "dev", "proc", "sys", "host", "hosttmp", "lib", "lib/modules", "tmp")]
    entries.append(cpio.chardev("dev/console", 5, 1))  # without it /init starts with no console
    entries.append(cpio.chardev("dev/null", 1, 3, 0o666))
    entries.append(cpio.file("bin/busybox", busybox.read_bytes(), 0o755))
    entries += [cpio.symlink(f"bin/{a}", "busybox") for a in applets(busybox)]
    entries.append(cpio.file("init", INIT.encode(), 0o755))
    return entries


def module_entries(moddir: Path | None) -> tuple[list[cpio.Entry], list[str], list[str]]:
    """The modules /init loads, decompressed, and /modules.load (their order).

    Returns (entries, loaded names, required names the kernel lacks).  Without
    a modules folder everything is assumed built in.
    """
    if moddir is None:
        return [cpio.file("modules.load", b"")], [], []
    idx = ModuleIndex.load(moddir)
    order, missing = idx.resolve(list(REQUIRED), list(OPTIONAL))
    entries = [cpio.file(f"lib/modules/{n}.ko", read_module(moddir / idx.files[n])) for n in order]
    entries.append(cpio.file("modules.load", "".join(f"{n}\n" for n in order).encode()))
    return entries, order, missing


def build(dest: Path, moddir: Path | None, busybox: Path | None = None) -> dict:
    """Write the gzip'd initramfs to ``dest``; return what went in (for meta.json)."""
    busybox = busybox or find_busybox()
    mods, order, missing = module_entries(moddir)
    if missing:
        raise KernelError(f"the kernel has neither as module nor built in: {', '.join(missing)} "
                          "(the guest needs virtio-pci, virtiofs, virtio-blk and ext4)")
    dest.write_bytes(cpio.gzipped(base_entries(busybox) + mods))
    return {"modules": order, "busybox": str(busybox)}


def job_archive(job_sh: str) -> bytes:
    """The per-run archive appended to the initramfs: /job.sh, and this cowdsl's /init again (the
    kernel unpacks the archives in order and a later file replaces an earlier one), so a kernel
    prepared by an older cowdsl runs the current /init."""
    return cpio.gzipped([cpio.file("job.sh", job_sh.encode(), 0o644), cpio.file("init", INIT.encode(), 0o755)])


def with_job(initramfs: Path, job_sh: str, dest: Path) -> Path:
    """Copy the prepared initramfs to ``dest`` with the job archive appended."""
    with open(initramfs, "rb") as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
        out.write(b"\0" * (-out.tell() % 4))  # the kernel looks for the next archive at a 4-byte boundary
        out.write(job_archive(job_sh))
    return dest
