"""What a kernel image is: its release string, whether QEMU can boot it as an ELF (PVH), its vmlinux.

Booting the vmlinux inside a bzImage directly (QEMU's PVH entry) skips the
decompressor, which under TCG costs about 5 s per boot.  That needs the ELF
note XEN_ELFNOTE_PHYS32_ENTRY, which kernels built with CONFIG_PVH carry.
"""

from __future__ import annotations

import bz2
import lzma
import mmap
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from cowdsl.kernels import lz4
from cowdsl.kernels.errors import KernelError

ELF_MAGIC = b"\x7fELF"
XEN_ELFNOTE_PHYS32_ENTRY = 18
PT_NOTE = 4
BANNER = re.compile(rb"Linux version (\d+\.\d+[^\s\x00]*) \(")


def is_bzimage(head: bytes) -> bool:
    return len(head) >= 0x260 and head[0x202:0x206] == b"HdrS"


def is_elf(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


def bzimage_release(data: bytes) -> str | None:
    """The release string the boot protocol header points at (kernel_version, offset 0x20E)."""
    if not is_bzimage(data):
        return None
    ptr = struct.unpack_from("<H", data, 0x20E)[0]
    if not ptr:
        return None
    text = data[0x200 + ptr:0x200 + ptr + 256].split(b"\0")[0].decode(errors="replace")
    return text.split()[0] if text.split() else None


def banner_release(data: bytes | mmap.mmap) -> str | None:
    """The release in the "Linux version X (" banner of an uncompressed kernel."""
    m = BANNER.search(data)
    return m.group(1).decode() if m else None


def has_pvh_note(elf: bytes | mmap.mmap) -> bool:
    """Does this 64-bit little-endian ELF carry the Xen PHYS32_ENTRY note (QEMU's PVH boot)?"""
    if elf[:4] != ELF_MAGIC or elf[4] != 2 or elf[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for k in range(phnum):
        p = phoff + k * phentsize
        p_type, = struct.unpack_from("<I", elf, p)
        if p_type != PT_NOTE:
            continue
        off, = struct.unpack_from("<Q", elf, p + 8)
        size, = struct.unpack_from("<Q", elf, p + 32)
        pos, end = off, off + size
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = bytes(elf[pos + 12:pos + 12 + namesz]).rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    return False


def payload(bz: bytes) -> tuple[bytes, int]:
    """The compressed kernel inside a bzImage and its decompressed size (the 4 bytes after it)."""
    setup_sects = bz[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bz, 0x248)
    start = (setup_sects + 1) * 512 + offset
    data = bz[start:start + length]
    return data, struct.unpack_from("<I", data, len(data) - 4)[0]


def _tool(argv: list[str], data: bytes) -> bytes:
    if not shutil.which(argv[0]):
        raise KernelError(f"the bzImage payload needs `{argv[0]}` to decompress; it is not installed")
    return subprocess.run(argv, input=data, capture_output=True).stdout  # trailing size bytes: warning only


def decompress(data: bytes, size: int) -> bytes:
    """Decompress a bzImage payload by its magic number."""
    if data[:2] == b"\x1f\x8b":
        return zlib.decompressobj(wbits=31).decompress(data)
    if data[:6] == b"\xfd7zXZ\0":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data)
    if data[:3] == b"\x5d\0\0":
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data)
    if data[:3] == b"BZh":
        return bz2.BZ2Decompressor().decompress(data)
    if struct.unpack_from("<I", data)[0] == lz4.LEGACY_MAGIC:
        return lz4.legacy(data, size)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return _tool(["zstd", "-dc"], data)
    if data[:4] == b"\x89LZO":
        return _tool(["lzop", "-dc"], data)
    raise KernelError(f"unknown compression of the bzImage payload (magic {data[:4].hex()})")


def extract_vmlinux(bz: bytes) -> bytes:
    """The ELF vmlinux inside a bzImage."""
    data, size = payload(bz)
    out = decompress(data, size)[:size]
    if not is_elf(out):
        raise KernelError("the bzImage payload did not decompress to an ELF vmlinux")
    return out


def release_of(path: Path) -> str | None:
    """The kernel release of an image file (bzImage header, else the banner of a vmlinux)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        head = m[:0x300]
        if is_bzimage(head):
            return bzimage_release(m[:0x8000])
        return banner_release(m)


def boot_image(src: Path, dest_dir: Path) -> Path:
    """Put the image QEMU should boot into ``dest_dir``: the PVH vmlinux when there is one, else the bzImage.

    Returns the file written (``vmlinux`` or ``bzImage``).
    """
    data = src.read_bytes()
    if is_elf(data):
        if not has_pvh_note(data):
            raise KernelError(f"{src}: a vmlinux without the PVH note (CONFIG_PVH) cannot be booted by QEMU; "
                              "give the bzImage (arch/x86/boot/bzImage)")
        out = dest_dir / "vmlinux"
        out.write_bytes(data)
        return out
    if not is_bzimage(data):
        raise KernelError(f"{src}: neither a bzImage nor an ELF vmlinux")
    try:
        elf = extract_vmlinux(data)
    except (KernelError, ValueError, lzma.LZMAError, zlib.error, OSError, struct.error):
        elf = b""  # boot the bzImage itself: slower, but it works
    if elf and has_pvh_note(elf):
        out = dest_dir / "vmlinux"
        out.write_bytes(elf)
    else:
        out = dest_dir / "bzImage"
        out.write_bytes(data)
    return out
