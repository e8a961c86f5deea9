"""`cowdsl kernels ...`: fetch, prepare, list, locate and try out the prepared kernels.

    python -m cowdsl.kernels fetch 6.1|5.10|6.12|all
    python -m cowdsl.kernels prepare PATH [--modules DIR] [--release R]
    python -m cowdsl.kernels list
    python -m cowdsl.kernels path VERSION
    python -m cowdsl.kernels run VERSION [--smp N] [--memory M] [--need swap] -- COMMAND...

Errors are one line on stderr, exit status 2; `run` exits with the command's status.
"""

from __future__ import annotations

import argparse
import sys
import time

from cowdsl.kernels import cache, debian, guest, vm
from cowdsl.kernels.errors import KernelError
from cowdsl.kernels.prepare import prepare


def _err(msg: str) -> None:
    print(f"cowdsl kernels: {msg}", file=sys.stderr)


def _size(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def cmd_fetch(args) -> int:
    versions = list(debian.DEBIAN) if args.version == "all" else [args.version]
    for v in versions:
        t = time.monotonic()
        k = debian.fetch(v, suite=args.suite, say=lambda s: print(s, file=sys.stderr) if not args.quiet else None)
        print(f"{k.version}: ready in {k.folder} ({time.monotonic() - t:.0f} s)")
    return 0


def cmd_prepare(args) -> int:
    t = time.monotonic()
    k = prepare(args.path, args.modules, release=args.release)
    print(f"{k.version}: ready in {k.folder} ({time.monotonic() - t:.0f} s)")
    return 0


def cmd_list(args) -> int:
    ks = cache.kernels()
    if not ks:
        print(f"no prepared kernels in {cache.cache_dir()} (try: fetch 6.1)")
        return 0
    rows = [("version", "boots", "size", "source")]
    rows += [(k.version, k.meta.get("boot", "?"), _size(k.size()), k.source) for k in ks]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    return 0


def cmd_path(args) -> int:
    print(cache.require(args.version).folder)
    return 0


def cmd_run(args) -> int:
    command = args.command
    if not command:
        _err("run: no command given (put it after --)")
        return 2
    echo = (lambda ln: print(ln, file=sys.stderr)) if args.console else None
    r = vm.boot(args.version, command, smp=args.smp, memory=args.memory, needs=frozenset(args.need),
                      timeout=args.timeout, on_console=echo, say=lambda s: print(f"note: {s}", file=sys.stderr))
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    for n in r.notes:
        print(f"guest note: {n}", file=sys.stderr)
    print(f"[{r.kernel}, {r.accel}, {r.seconds:.1f} s, boot {r.boot_seconds or 0:.1f} s, exit {r.exit_code}]",
          file=sys.stderr)
    return r.exit_code


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cowdsl kernels", description="Real kernels under QEMU for cowdsl.")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download a Debian kernel and prepare it")
    f.add_argument("version", choices=[*debian.DEBIAN, "all"])
    f.add_argument("--suite", help="the Debian suite to take it from (default: " + "; ".join(
        f"{v}: {', '.join(s.suites)}" for v, s in debian.DEBIAN.items()) + ")")
    f.add_argument("-q", "--quiet", action="store_true")
    f.set_defaults(func=cmd_fetch)
    pr = sub.add_parser("prepare", help="prepare your own kernel build (bzImage, PVH vmlinux or build tree)")
    pr.add_argument("path")
    pr.add_argument("--modules", help="its lib/modules/RELEASE folder or INSTALL_MOD_PATH root")
    pr.add_argument("--release", help="the kernel release, when the image does not tell")
    pr.set_defaults(func=cmd_prepare)
    sub.add_parser("list", help="the prepared kernels").set_defaults(func=cmd_list)
    pa = sub.add_parser("path", help="the folder of a prepared kernel")
    pa.add_argument("version")
    pa.set_defaults(func=cmd_path)
    r = sub.add_parser("run", help="boot a kernel and run a command in it (the host's root, read-only)")
    r.add_argument("version", help="a prepared version (6.1) or a kernel image path")
    r.add_argument("--smp", type=int, default=1)
    r.add_argument("--memory", default="512M")
    r.add_argument("--need", action="append", default=[], metavar="NEED",
                   help=f"switch on in the guest: {', '.join(guest.NEEDS)}, thp=madvise (repeatable)")
    r.add_argument("--timeout", type=float, default=vm.DEFAULT_TIMEOUT)
    r.add_argument("--console", action="store_true", help="echo the serial console to stderr")
    r.add_argument("command", nargs="*", help="the command, after --")
    r.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # everything after `--` is the guest's command, options included
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    try:
        args = parser().parse_args(argv)
        if command:
            args.command = [*getattr(args, "command", []), *command]
    except SystemExit as e:
        return 0 if not e.code else 2
    try:
        return args.func(args)
    except KernelError as e:
        _err(str(e))
        return 2
    except ValueError as e:  # a bad --need
        _err(str(e))
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
