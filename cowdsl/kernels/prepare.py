"""Turn a kernel image (and its modules) into a prepared kernel in the cache.

Used by ``fetch`` for Debian's packages and directly for a developer's own
build: ``prepare("~/linux/arch/x86/boot/bzImage", modules="/tmp/mods")``.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from pathlib import Path

from cowdsl.kernels import cache, image, initramfs
from cowdsl.kernels.errors import KernelError

DISK_SIZE = 512 * 1024 * 1024
SBIN = ("/usr/sbin", "/sbin")


def which(tool: str, package: str) -> str:
    """A host tool, also found in the sbin folders a non-root PATH lacks."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    found = shutil.which(tool, path=path)
    if not found:
        raise KernelError(f"`{tool}` is not installed (package {package})")
    return found


def run(argv: list[str], what: str) -> subprocess.CompletedProcess:
    """Run a host tool; its failure becomes a one-line KernelError with the tool's last words."""
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        last = (p.stderr.strip() or p.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise KernelError(f"{what} failed ({Path(argv[0]).name} exit {p.returncode}): {last[0]}")
    return p


def make_disk(dest: Path, size: int = DISK_SIZE) -> None:
    """A sparse ext4 image, the guest's /tmp (ext4 features every kernel from 5.10 on mounts)."""
    mkfs = which("mkfs.ext4", "e2fsprogs")
    with open(dest, "wb") as f:
        f.truncate(size)
    base = [mkfs, "-q", "-F", "-m", "0", "-L", "cowdsl-tmp", "-E", "root_owner=0:0"]
    # e2fsprogs 1.47 can default to orphan_file, which kernels before 5.15 refuse to mount
    p = subprocess.run([*base, "-O", "^orphan_file", str(dest)], capture_output=True, text=True)
    if p.returncode != 0:
        run([*base, str(dest)], "making the scratch disk")


def depmod(root: Path, release: str, system_map: Path | None) -> None:
    """modules.dep for ROOT/lib/modules/RELEASE (Debian's packages ship none)."""
    argv = [which("depmod", "kmod"), "-b", str(root)]
    if system_map and system_map.is_file():
        argv += ["-F", str(system_map)]
    run([*argv, release], "depmod")


def modules_root(folder: Path, release: str | None) -> Path:
    """The lib/modules/RELEASE folder in ``folder``: itself, or below an INSTALL_MOD_PATH-style root."""
    if (folder / "modules.order").exists() or (folder / "kernel").is_dir():
        return folder
    for base in (folder / "lib" / "modules", folder / "usr" / "lib" / "modules", folder):
        if release and (base / release).is_dir():
            return base / release
        subs = [d for d in base.glob("*") if d.is_dir() and (d / "modules.order").exists()] if base.is_dir() else []
        if len(subs) == 1:
            return subs[0]
    raise KernelError(f"{folder}: no modules tree found (expected lib/modules/RELEASE or a folder with modules.order)")


def _copy_modules(src: Path, dest: Path) -> None:
    # `build` and `source` point back into the build tree: not part of the modules
    shutil.copytree(src, dest, symlinks=True, ignore=lambda d, names: [n for n in names if
                                                                        Path(d) == src and n in ("build", "source")])


def install(image_path: Path, moddir: Path | None, release: str, source: str, *,
            system_map: Path | None = None, extra: dict | None = None, root: Path | None = None) -> cache.Kernel:
    """Prepare a kernel in the cache from its image and (optional) modules tree; replaces an older copy."""
    root = root or cache.cache_dir()
    work = cache.staging(root, release)
    try:
        boot = image.boot_image(image_path, work)
        files = {"image": boot.name, "initramfs": "initramfs.img", "disk": "scratch.ext4"}
        mods = None
        if moddir is not None:
            tree = work / "depmod" / "lib" / "modules" / release
            tree.parent.mkdir(parents=True)
            _copy_modules(moddir, tree)
            depmod(work / "depmod", release, system_map)
            mods = work / "modules"
            tree.rename(mods)
            shutil.rmtree(work / "depmod")
            files["modules"] = "modules"
        built = initramfs.build(work / files["initramfs"], mods)
        make_disk(work / files["disk"])
        meta = {
            "version": release,
            "source": source,
            "files": files,
            "boot": "pvh-vmlinux" if boot.name == "vmlinux" else "bzImage",
            "initramfs_modules": built["modules"],
            "prepared": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **(extra or {}),
        }
        return cache.publish(work, meta, root)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def find_image(path: Path) -> Path:
    """A kernel build tree stands for its bzImage."""
    if path.is_dir():
        for rel in ("arch/x86/boot/bzImage", "arch/x86_64/boot/bzImage", "vmlinux"):
            if (path / rel).is_file():
                return path / rel
        raise KernelError(f"{path}: a folder without arch/x86/boot/bzImage or vmlinux")
    if not path.is_file():
        raise KernelError(f"{path}: no such kernel image")
    return path


def prepare(path: str | os.PathLike, modules: str | os.PathLike | None = None, *,
            release: str | None = None, root: Path | None = None) -> cache.Kernel:
    """Prepare a kernel of your own: a bzImage or PVH vmlinux (or a build tree), and its modules.

    ``modules`` is the lib/modules/RELEASE folder or an INSTALL_MOD_PATH root;
    without it the kernel must have virtio-pci, virtiofs, virtio-blk and ext4
    built in.  The release comes from the image, else from the modules folder's
    name, else ``release``.
    """
    img = find_image(Path(path).expanduser().resolve())
    found = image.release_of(img)
    moddir = modules_root(Path(modules).expanduser().resolve(), release or found) if modules else None
    release = release or found or (moddir.name if moddir else None)
    if not release:
        raise KernelError(f"{img}: cannot read the kernel release from the image; give it with --release")
    if moddir and moddir.name != release and moddir.name[:1].isdigit():
        raise KernelError(f"modules folder {moddir} is for kernel {moddir.name}, the image is {release}")
    stat = img.stat()
    return install(img, moddir, release, f"path:{img}", system_map=_system_map(img, release),
                   extra={"image_mtime": int(stat.st_mtime), "image_size": stat.st_size}, root=root)


def _system_map(img: Path, release: str) -> Path | None:
    """System.map of a build tree (arch/x86/boot/bzImage -> top) or next to the image (/boot style)."""
    candidates = [img.parent / "System.map", img.parent / f"System.map-{release}"]
    if img.parent.name == "boot" and len(img.parents) > 3:
        candidates.append(img.parents[3] / "System.map")
    return next((p for p in candidates if p.is_file()), None)
