"""LZ4 "legacy" frames, the format of an LZ4-compressed bzImage payload, decoded in pure Python.

Debian compresses its kernels with LZ4 and the standard library has no LZ4;
the `lz4` tool is used when installed (much faster), this is the fallback.
"""

from __future__ import annotations

import struct

LEGACY_MAGIC = 0x184C2102


def block(src: bytes | memoryview, out: bytearray) -> None:
    """Append the decompression of one raw LZ4 block to ``out`` (matches may reach into earlier blocks)."""
    i, n = 0, len(src)
    while i < n:
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            while True:
                b = src[i]
                i += 1
                lit += b
                if b != 255:
                    break
        out += src[i:i + lit]
        i += lit
        if i >= n:  # the last sequence has literals only
            break
        off = src[i] | (src[i + 1] << 8)
        i += 2
        ml = token & 15
        if ml == 15:
            while True:
                b = src[i]
                i += 1
                ml += b
                if b != 255:
                    break
        ml += 4
        start = len(out) - off
        if off <= 0 or start < 0:
            raise ValueError("corrupt LZ4 block (bad match offset)")
        if off >= ml:
            out += out[start:start + ml]
        else:  # an overlapping match repeats the last `off` bytes
            pat = bytes(out[start:])
            out += (pat * (ml // off + 1))[:ml]


def legacy(data: bytes, expect: int | None = None) -> bytes:
    """Decode a legacy frame: the magic, then blocks each preceded by its compressed size.

    The kernel appends the decompressed size after the last block; ``expect``
    (that size) tells where to stop, as trailing bytes look like a block size.
    """
    mv = memoryview(data)
    if struct.unpack_from("<I", mv, 0)[0] != LEGACY_MAGIC:
        raise ValueError("not an LZ4 legacy frame")
    out = bytearray()
    pos = 4
    while pos + 4 <= len(mv) and (expect is None or len(out) < expect):
        size = struct.unpack_from("<I", mv, pos)[0]
        pos += 4
        if size == LEGACY_MAGIC:  # concatenated frames
            continue
        if size == 0 or pos + size > len(mv):
            break
        block(mv[pos:pos + size], out)
        pos += size
    return bytes(out)
