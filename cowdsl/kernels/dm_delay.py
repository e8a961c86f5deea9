"""A device-mapper delay target over the guest's scratch disk, set up from the guest's /init.

An O_DIRECT request on a virtio disk under QEMU completes within ~100 µs, mostly before
io_uring_enter() even returns, while a fork takes milliseconds: a `par` block could never
see the request in flight.  dm-delay (drivers/md/dm-delay.c) holds every bio for a fixed
time before passing it on, so the file system on top keeps the user page in its bio for that
long.  This module loads dm-mod and dm-delay from the kernel's own modules folder (a ``.ko``,
or a ``.ko.xz`` decompressed here: init_module(2) takes the bytes), creates the device with the
device-mapper ioctls (include/uapi/linux/dm-ioctl.h; no dmsetup needed) and prints its node,
which /init then mounts as /tmp.  Run by the guest only, chrooted into the host's root:

    python -m cowdsl.kernels.dm_delay MODULES_DIR /dev/vda MS

Loading modules and creating a device would change the machine it runs on, so ``main`` refuses
to run unless the guest's init marked its environment (``guest.IN_GUEST_ENV``): run by hand on
a host, it changes nothing and says so.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import lzma
import os
import struct
import sys
from pathlib import Path

from cowdsl.kernels.guest import IN_GUEST_ENV

NAME = "cowdsl-delay"
MODULES = ("kernel/drivers/md/dm-mod", "kernel/drivers/md/dm-delay")  # dm-delay depends on dm-mod only
SYS_INIT_MODULE = 175  # x86-64
CONTROL = "/dev/mapper/control"

# include/uapi/linux/dm-ioctl.h
DM_IOCTL_SIZE = 312  # struct dm_ioctl
DM_TARGET_SPEC_SIZE = 40  # struct dm_target_spec
DM_VERSION = (4, 0, 0)
DM_DEV_CREATE, DM_DEV_SUSPEND, DM_TABLE_LOAD = 3, 6, 9


def _iowr(nr: int, size: int = DM_IOCTL_SIZE) -> int:
    return (3 << 30) | (size << 16) | (0xFD << 8) | nr


def dm_ioctl(name: str, *, target_count: int = 0, data: bytes = b"", flags: int = 0) -> bytes:
    """One struct dm_ioctl header for device ``name``, with ``data`` after it (8-byte aligned)."""
    data_size = DM_IOCTL_SIZE + len(data)
    head = struct.pack("<3I7IQ128s129s7x", *DM_VERSION, data_size, DM_IOCTL_SIZE, target_count, 0, flags, 0, 0, 0,
                       name.encode(), b"")
    assert len(head) == DM_IOCTL_SIZE
    return head + data


def delay_table(sectors: int, device: str, ms: int) -> bytes:
    """One dm_target_spec: the whole device, `delay` target, reads and writes held ``ms`` each."""
    params = f"{device} 0 {ms} {device} 0 {ms}".encode() + b"\0"
    params += bytes(-len(params) % 8)
    spec = struct.pack("<QQiI16s", 0, sectors, 0, 0, b"delay")
    assert len(spec) == DM_TARGET_SPEC_SIZE
    return spec + params


def load_modules(folder: str) -> list[str]:
    """Load dm-mod and dm-delay from ``folder`` (lib/modules/RELEASE); a module already loaded, or
    absent (built in, say), is left alone.  Returns what was loaded."""
    loaded = []
    for rel in MODULES:
        for suffix in (".ko", ".ko.xz"):
            path = Path(folder) / (rel + suffix)
            if path.exists():
                image = path.read_bytes()
                if suffix == ".ko.xz":
                    image = lzma.decompress(image)
                libc = ctypes.CDLL(None, use_errno=True)
                buf = ctypes.create_string_buffer(image, len(image))
                if libc.syscall(ctypes.c_long(SYS_INIT_MODULE), buf, ctypes.c_ulong(len(image)), b"") != 0:
                    e = ctypes.get_errno()
                    if e != errno.EEXIST:
                        raise OSError(e, f"init_module({path.name}): {os.strerror(e)}")
                else:
                    loaded.append(path.name)
                break
    return loaded


def create(device: str, ms: int) -> str:
    """Create the delay device over ``device`` and return its node (/dev/dm-N)."""
    rdev = os.stat(device).st_rdev
    majmin = f"{os.major(rdev)}:{os.minor(rdev)}"
    sectors = int(Path(f"/sys/dev/block/{majmin}/size").read_text())
    fd = os.open(CONTROL, os.O_RDWR | os.O_CLOEXEC)
    try:
        out = bytearray(dm_ioctl(NAME))
        fcntl.ioctl(fd, _iowr(DM_DEV_CREATE), out)
        fcntl.ioctl(fd, _iowr(DM_TABLE_LOAD), bytearray(dm_ioctl(NAME, target_count=1,
                                                               data=delay_table(sectors, majmin, ms))))
        out = bytearray(dm_ioctl(NAME))  # DM_DEV_SUSPEND without DM_SUSPEND_FLAG: resume, the table goes live
        fcntl.ioctl(fd, _iowr(DM_DEV_SUSPEND), out)
    finally:
        os.close(fd)
    dev = struct.unpack_from("<Q", out, 40)[0]  # the new device's dev_t, encoded as new_encode_dev
    minor = (dev & 0xFF) | ((dev >> 12) & 0xFFF00)
    return f"/dev/dm-{minor}"


def outside_guest() -> str | None:
    """Why this process may not set up dm-delay (None: it is the guest's init that runs it)."""
    if os.environ.get(IN_GUEST_ENV) != "1":
        return (f"refusing to load dm-mod and dm-delay and create a device-mapper device: {IN_GUEST_ENV}=1 is "
                "not set, so this is not a cowdsl guest's init (a host is never changed; "
                "`cowdsl crosscheck --kernel ... --need dm-delay` sets it up in a guest)")
    return None


def main(argv: list[str]) -> int:
    refused = outside_guest()
    if refused is not None:
        print(f"cowdsl.kernels.dm_delay: {refused}", file=sys.stderr)
        return 2
    folder, device, ms = argv
    try:
        load_modules(folder)
        print(create(device, int(ms)))
    except (OSError, ValueError) as e:
        print(f"dm-delay over {device}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
