"""Real kernels under QEMU: prepare them once, then run a command inside one and get its output.

    from cowdsl import kernels
    kernels.fetch("6.1")                       # Debian's 6.1 cloud kernel, into the cache
    kernels.prepare("~/linux/arch/x86/boot/bzImage", modules="/tmp/mods")   # your own build
    r = kernels.boot("6.1", ["uname", "-r"])   # -> GuestResult(stdout, exit_code, kernel, seconds, ...)
    r = kernels.run_in_guest("6.1", ["crosscheck", "scenarios/"], needs={"swap"})

Modules: ``cache`` (the prepared kernels), ``debian`` (fetch), ``prepare`` (a
kernel of your own), ``image`` / ``lz4`` (kernel image formats), ``modules``
(modules.dep), ``cpio`` / ``initramfs`` / ``guest`` (what the guest boots and
runs), ``qemu`` (tools, KVM or TCG, command lines), ``vm`` (one run: boot, command, result), ``cli``.
See docs/kernels.md.
"""

from __future__ import annotations

from cowdsl.kernels.cache import Kernel, cache_dir, find, kernels
from cowdsl.kernels.debian import DEBIAN, fetch
from cowdsl.kernels.errors import GuestTimeout, KernelError
from cowdsl.kernels.prepare import prepare
from cowdsl.kernels.vm import GuestResult, boot, resolve, run_in_guest

__all__ = ["DEBIAN", "GuestResult", "GuestTimeout", "Kernel", "KernelError", "boot", "cache_dir", "fetch", "find",
           "kernels", "prepare", "resolve", "run_in_guest"]
