"""Boot a prepared kernel under QEMU, run one command in it, and return what it printed.

    r = boot(kernel, ["uname", "-r"])
    r.stdout, r.exit_code, r.kernel, r.seconds

The host's root file system is the guest's (read-only, over virtiofs), so the
host's Python and installed cowdsl run unchanged; /tmp is a scratch ext4 disk.
virtiofsd, QEMU and the temporary folder (the job's initrd, the socket, the
disk's overlay) are cleaned up on every exit: result, error, timeout, Ctrl-C.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cowdsl.kernels import cache, guest, initramfs, qemu
from cowdsl.kernels.errors import GuestTimeout, KernelError
from cowdsl.kernels.prepare import find_image, prepare

DEFAULT_TIMEOUT = 900.0  # seconds: a whole crosscheck under TCG takes about a minute
B64_LINE = re.compile(r"^[A-Za-z0-9+/=]+$")


@dataclass
class GuestResult:
    stdout: str
    stderr: str
    exit_code: int
    kernel: str  # `uname -r` in the guest
    seconds: float  # wall time of the whole run, boot included
    boot_seconds: float | None  # until the guest's /init started
    accel: str  # "kvm" or "tcg"
    notes: list[str] = field(default_factory=list)  # setup problems in the guest (a need not met, ...)
    console: str = ""  # the whole serial console, for debugging


def _die_with_parent() -> None:
    # If this Python is killed outright (no finally runs), QEMU and virtiofsd go with it.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(p: subprocess.Popen | None) -> None:
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(timeout=3)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def resolve(kernel: cache.Kernel | str | os.PathLike) -> cache.Kernel:
    """A prepared kernel from a Kernel, a version ("6.1"), a cache folder or a kernel image path.

    An image path is prepared on first use and reused while the file is unchanged.
    """
    if isinstance(kernel, cache.Kernel):
        return kernel
    spec = os.fspath(kernel)
    p = Path(spec).expanduser()
    if p.exists():
        if (k := cache.load(p)) is not None:
            return k
        img = find_image(p.resolve())
        st = img.stat()
        for k in cache.kernels():
            if (k.meta.get("source") == f"path:{img}" and k.meta.get("image_mtime") == int(st.st_mtime)
                    and k.meta.get("image_size") == st.st_size):
                return k
        return prepare(img)
    return cache.require(spec)


def decode_result(console: str, nonce: str) -> dict | None:
    """The JSON result between this run's markers, or None when the guest did not report."""
    begin, end = f"@@cowdsl-begin-{nonce}@@", f"@@cowdsl-end-{nonce}@@"
    lines = console.splitlines()
    try:
        i = next(k for k, ln in enumerate(lines) if ln.strip() == begin)
        j = next(k for k in range(i + 1, len(lines)) if lines[k].strip() == end)
    except StopIteration:
        return None
    # kernel messages may land between the lines; base64 lines are all we want
    body = "".join(ln.strip() for ln in lines[i + 1:j] if B64_LINE.match(ln.strip()))
    try:
        raw = json.loads(base64.b64decode(body))
        for k in ("stdout", "stderr", "notes"):
            raw[k] = base64.b64decode(raw.get(k) or "").decode(errors="replace")
    except (ValueError, binascii.Error) as e:
        raise KernelError(f"the guest's result was garbled on the console ({e})") from None
    return raw


def default_env() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": "/tmp", "TMPDIR": "/tmp",
           "LANG": "C.UTF-8", "TERM": "dumb", "PYTHONDONTWRITEBYTECODE": "1"}
    for k in ("VIRTUAL_ENV", "PYTHONPATH"):
        if os.environ.get(k):
            env[k] = os.environ[k]
    return env


def host_tmp_paths(paths: Sequence[str]) -> list[str]:
    """The top folders under the host's /tmp that must stay visible in the guest (/tmp/X for /tmp/X/...)."""
    keep = []
    for p in paths:
        parts = Path(p).parts
        if len(parts) > 2 and parts[:2] == ("/", "tmp"):
            top = f"/tmp/{parts[2]}"
            if top not in keep:
                keep.append(top)
    return keep


PREFIX = "cowdsl-vm-"


def sweep_stale() -> None:
    """Remove the temporary folders of runs whose Python was killed outright (no cleanup ran then)."""
    for d in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            pid = int((d / "owner").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            pass  # not ours, or still being set up


class _Run:
    """One attempt: virtiofsd + QEMU on a temporary folder; ``close`` undoes everything."""

    def __init__(self, k: cache.Kernel, job: str, *, kvm: bool, smp: int, memory: str, extra_append: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=PREFIX))
        (self.tmp / "owner").write_text(str(os.getpid()))
        self.vfs: subprocess.Popen | None = None
        self.qemu: subprocess.Popen | None = None
        self.k, self.job, self.kvm, self.smp, self.memory, self.append = k, job, kvm, smp, memory, extra_append

    def start(self, qemu_bin: str, vfsd: qemu.Virtiofsd) -> None:
        sock = self.tmp / "vfs.sock"
        initrd = initramfs.with_job(self.k.initramfs, self.job, self.tmp / "initrd.img")
        log = open(self.tmp / "virtiofsd.log", "wb")
        self.vfs = subprocess.Popen(vfsd.argv(sock), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + 10
        while not sock.exists():
            if self.vfs.poll() is not None or time.monotonic() > deadline:
                why = (self.tmp / "virtiofsd.log").read_text(errors="replace").strip().splitlines()[-1:]
                root = "" if os.geteuid() == 0 else " (virtiofsd's sandbox needs root)"
                raise KernelError(f"virtiofsd did not start{root}: {why[0] if why else 'no output'}")
            time.sleep(0.02)
        cmd = qemu.command(qemu_bin, image=self.k.image, initrd=initrd, disk=self.k.disk, socket=sock,
                           append=qemu.kernel_cmdline(self.append), kvm=self.kvm, smp=self.smp, memory=self.memory)
        # TMPDIR: where snapshot=on puts the disk's overlay, so it goes with the folder
        self.qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env={**os.environ, "TMPDIR": str(self.tmp)}, preexec_fn=_die_with_parent)

    def close(self) -> None:
        _stop(self.qemu)
        if self.qemu and self.qemu.stdout:
            self.qemu.stdout.close()
        _stop(self.vfs)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _read(run: _Run, nonce: str, deadline: float, on_console: Callable[[str], None] | None) -> tuple[str, float | None]:
    """The console until the end marker, QEMU's exit, or the deadline; and when /init started."""
    assert run.qemu and run.qemu.stdout
    fd = run.qemu.stdout.fileno()
    buf, pending = bytearray(), b""
    started = time.monotonic()
    init_at = None
    init_mark, end_mark = f"@@cowdsl-init-{nonce}@@".encode(), f"@@cowdsl-end-{nonce}@@".encode()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise GuestTimeout("", buf.decode(errors="replace"))
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        if on_console:
            pending += chunk
            *whole, pending = pending.split(b"\n")
            for ln in whole:
                on_console(ln.decode(errors="replace").rstrip("\r"))
        if init_at is None and init_mark in buf:
            init_at = time.monotonic() - started
        if end_mark in buf[-65536 - len(end_mark):]:
            break
    return buf.decode(errors="replace").replace("\r\n", "\n"), init_at


def boot(kernel: cache.Kernel | str | os.PathLike, argv: Sequence[str], *, smp: int = 1, memory: str = "512M",
         needs: frozenset[str] | set[str] | Sequence[str] = frozenset(), timeout: float = DEFAULT_TIMEOUT,
         cwd: str | None = None, env: Mapping[str, str] | None = None, keep: Sequence[str] = (),
         on_console: Callable[[str], None] | None = None, say: Callable[[str], None] | None = None) -> GuestResult:
    """Boot ``kernel`` under QEMU, run ``argv`` chrooted into the host's root, return its output.

    ``needs``: "swap", "hugetlb", "ksm", "thp" (or "thp=madvise"), "dm-delay", switched on in the guest only.
    ``keep``: host paths under /tmp that must stay visible (the guest's /tmp is its scratch disk);
    the working directory and this Python's prefix are kept automatically.
    Raises KernelError (GuestTimeout on timeout) when the guest cannot run the command.
    """
    plain, thp = guest.parse_needs(needs)  # a typo fails before anything starts
    k = resolve(kernel)
    qemu_bin, vfsd = qemu.find_qemu(), qemu.find_virtiofsd()
    cwd = cwd or os.getcwd()
    keep_paths = host_tmp_paths([cwd, sys.prefix, sys.base_prefix, *keep,
                                 *(a for a in argv if a.startswith("/tmp/"))])
    nonce = secrets.token_hex(8)
    modules = k.file("modules")
    job = guest.job_script(argv, nonce=nonce, cwd=cwd, env=env if env is not None else default_env(),
                           needs=plain, thp=thp, keep=keep_paths, modules=str(modules) if modules else None)
    no_kvm = qemu.kvm_usable(qemu_bin)
    if no_kvm and say:
        say(f"KVM unusable ({no_kvm}); using TCG (slower)")
    kvm = no_kvm is None
    sweep_stale()
    t0 = time.monotonic()
    while True:
        run = _Run(k, job, kvm=kvm, smp=smp, memory=memory, extra_append="")
        try:
            run.start(qemu_bin, vfsd)
            console, init_at = _read(run, nonce, t0 + timeout, on_console)
        except GuestTimeout as e:
            tail = " | ".join(e.console.strip().splitlines()[-3:])
            raise GuestTimeout(f"kernel {k.version}: no result after {timeout:.0f} s"
                               + (f" (console ends: {tail[-200:]})" if tail else ""), e.console) from None
        finally:
            run.close()
        if init_at is None and kvm and os.environ.get("COWDSL_KERNEL_ACCEL") != "kvm":
            # the probe passed, but this kernel did not get to /init under KVM: try once more with TCG
            if say:
                say("the guest did not start under KVM; retrying with TCG")
            kvm = False
            continue
        break
    seconds = time.monotonic() - t0
    result = decode_result(console, nonce)
    if result is None:
        raise KernelError(f"kernel {k.version}: the guest ended without a result ({_why(console, init_at)})")
    notes = [n for n in result["notes"].splitlines() if n.strip()]
    if result.get("rc") is None:
        raise KernelError(f"kernel {k.version}: guest setup failed: {notes[-1] if notes else 'unknown'}")
    return GuestResult(stdout=result["stdout"], stderr=result["stderr"], exit_code=int(result["rc"]),
                       kernel=result.get("uname", "?"), seconds=seconds, boot_seconds=init_at,
                       accel="kvm" if kvm else "tcg", notes=notes, console=console)


def _why(console: str, init_at: float | None) -> str:
    for pattern in ("Kernel panic", "qemu-system-x86_64:", "Unable to mount", "No working init"):
        hit = next((ln.strip() for ln in console.splitlines() if pattern in ln), None)
        if hit:
            return hit[:200]
    return "it reached /init but printed no result" if init_at is not None else "it never reached /init"


def run_in_guest(kernel: cache.Kernel | str | os.PathLike, args: Sequence[str], **kw) -> GuestResult:
    """Run ``python -m cowdsl ARGS`` (this interpreter, this cowdsl) inside ``kernel``.

    The building block of `cowdsl crosscheck --kernel SPEC`:
    ``run_in_guest("6.1", ["crosscheck", "scenarios/"], needs={"swap"})``.
    """
    return boot(kernel, [sys.executable, "-m", "cowdsl", *args], **kw)
