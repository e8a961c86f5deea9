"""QEMU and virtiofsd: finding them, choosing KVM or TCG, and the command lines.

KVM is used when /dev/kvm is there and a tiny probe (SeaBIOS starting under
`-accel kvm -cpu host`) works; some machines have a /dev/kvm that cannot run
a stock kernel (a paravirtual KVM fails setting an MSR), so the probe is
needed, and TCG (`-accel tcg -cpu max`) is the fallback.
"""

from __future__ import annotations

import functools
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cowdsl.kernels.errors import KernelError

VIRTIOFSD_PATHS = ("/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/virtiofsd")
TAG = "hostroot"


def find_qemu() -> str:
    forced = os.environ.get("COWDSL_QEMU")
    if forced:
        found = shutil.which(forced)
        if not found:
            raise KernelError(f"COWDSL_QEMU={forced} is not an executable")
        return found
    q = shutil.which("qemu-system-x86_64")
    if not q:
        raise KernelError("qemu-system-x86_64 is not installed (package qemu-system-x86)")
    return q


@dataclass(frozen=True)
class Virtiofsd:
    path: str
    rust: bool  # the Rust virtiofsd takes --shared-dir; QEMU 7.2's C one takes -o source=

    def argv(self, socket: Path, shared: str = "/") -> list[str]:
        if self.rust:
            return [self.path, f"--socket-path={socket}", f"--shared-dir={shared}", "--cache=auto",
                    "--sandbox=chroot"]
        return [self.path, f"--socket-path={socket}", "-o", f"source={shared}", "-o", "cache=auto",
                "-o", "sandbox=chroot"]


def find_virtiofsd() -> Virtiofsd:
    candidates = [os.environ["COWDSL_VIRTIOFSD"]] if os.environ.get("COWDSL_VIRTIOFSD") else []
    candidates += [*VIRTIOFSD_PATHS, shutil.which("virtiofsd") or ""]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            out = subprocess.run([c, "--help"], capture_output=True, text=True, timeout=10)
            return Virtiofsd(c, "--shared-dir" in out.stdout + out.stderr)
    raise KernelError("virtiofsd is not installed (QEMU 7.2's package qemu-system-common has "
                      "/usr/lib/qemu/virtiofsd; newer systems: package virtiofsd)")


@functools.cache
def kvm_usable(qemu: str) -> str | None:
    """None when KVM can run a guest here, else why not.  $COWDSL_KERNEL_ACCEL=tcg|kvm decides instead."""
    forced = os.environ.get("COWDSL_KERNEL_ACCEL")
    if forced == "tcg":
        return "COWDSL_KERNEL_ACCEL=tcg"
    if forced == "kvm":
        return None
    if not os.path.exists("/dev/kvm"):
        return "no /dev/kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "no permission to use /dev/kvm"
    argv = [qemu, "-accel", "kvm", "-cpu", "host", "-m", "64", "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", "-chardev", "stdio,id=dbg", "-device",
            "isa-debugcon,iobase=0x402,chardev=dbg"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert p.stdout is not None
    fd = p.stdout.fileno()
    seen = b""
    try:
        deadline = time.monotonic() + 10
        while b"SeaBIOS" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                seen += chunk
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
    if b"SeaBIOS" in seen:
        return None
    why = seen.decode(errors="replace").strip().splitlines()
    return "KVM probe failed: " + (why[0] if why else "no firmware output")


def command(qemu: str, *, image: Path, initrd: Path, disk: Path, socket: Path, append: str,
            kvm: bool, smp: int = 1, memory: str = "512M") -> list[str]:
    """The QEMU command line for one run.

    Memory is a shared memfd because vhost-user (virtiofsd) maps the guest's
    RAM; the scratch disk is opened with snapshot=on, so the guest's writes go
    to a throw-away overlay and the prepared image stays pristine.
    """
    accel = ["-accel", "kvm", "-cpu", "host"] if kvm else [
        "-accel", "tcg" + (",thread=multi" if smp > 1 else ""), "-cpu", "max"]
    return [
        qemu, *accel, "-smp", str(smp), "-m", memory,
        "-object", f"memory-backend-memfd,id=mem,size={memory},share=on",
        "-machine", "pc,memory-backend=mem",
        "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-monitor", "none",
        "-no-reboot",
        "-chardev", f"socket,id=vfs,path={socket}",
        "-device", f"vhost-user-fs-pci,chardev=vfs,tag={TAG}",
        "-drive", f"file={disk},if=virtio,format=raw,cache=unsafe,snapshot=on",
        "-device", "virtio-rng-pci",
        "-kernel", str(image), "-initrd", str(initrd), "-append", append,
    ]


def kernel_cmdline(extra: str = "") -> str:
    # panic=-1 plus -no-reboot: a crashed guest ends QEMU at once instead of hanging until the timeout.
    # no_timer_check: under TCG on a loaded host the IO-APIC timer check can miss its ticks and
    # panic ("IO-APIC + timer doesn't work!"); a virtual machine's timer needs no such check.
    # cowdsl.guest=1: what native's host.in_guest() looks for before it touches a machine-wide knob
    base = "console=ttyS0 loglevel=1 panic=-1 rdinit=/init random.trust_cpu=on no_timer_check cowdsl.guest=1"
    return f"{base} {extra}".strip()
