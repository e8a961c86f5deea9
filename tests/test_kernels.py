"""cowdsl.kernels: real kernels under QEMU.

Unit tests need no VM: the cpio writer, LZ4, kernel image parsing, modules.dep
resolution, the cache, QEMU's command line, the guest's scripts, the result
decoding and the CLI's errors.  The integration tests at the end boot the
prepared 6.1 kernel; they run when it is in the cache (`python -m
cowdsl.kernels fetch 6.1`), unless COWDSL_KERNEL_TESTS=0; COWDSL_KERNEL_TESTS=1
makes a missing kernel a failure instead of a skip.
"""

from __future__ import annotations

import base64
import gzip
import json
import lzma
import os
import shutil
import stat
import struct
import subprocess
import sys
import zlib

import pytest

from cowdsl.kernels import cache, cli, cpio, guest, image, initramfs, lz4, qemu, vm
from cowdsl.kernels.errors import KernelError
from cowdsl.kernels.modules import ModuleIndex, name_of, read_module

# --- cpio ---------------------------------------------------------------------------------------------------


def _sample() -> list[cpio.Entry]:
    return [cpio.directory("bin"), cpio.file("bin/busybox", b"\x7fELF" + bytes(range(256)) * 3, 0o755),
            cpio.symlink("bin/sh", "busybox"), cpio.directory("dev"), cpio.chardev("dev/console", 5, 1),
            cpio.file("init", b"#!/bin/sh\necho hi\n", 0o755), cpio.file("empty", b""), cpio.file("a/odd", b"123")]


def test_cpio_round_trips():
    entries = _sample()
    data = cpio.archive(entries)
    assert data.startswith(b"070701") and len(data) % 4 == 0
    assert cpio.parse(data) == entries
    assert cpio.parse(gzip.decompress(cpio.gzipped(entries))) == entries
    assert cpio.archive(entries) == data  # reproducible: no timestamps, no owners


def test_cpio_header_fields():
    data = cpio.archive([cpio.chardev("dev/console", 5, 1)])
    fields = [int(data[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
    mode, uid, gid, rmaj, rmin, namesize = fields[1], fields[2], fields[3], fields[9], fields[10], fields[11]
    assert stat.S_ISCHR(mode) and (uid, gid) == (0, 0) and (rmaj, rmin) == (5, 1)
    assert namesize == len("dev/console") + 1
    assert data.rstrip(b"\0").endswith(b"TRAILER!!!")


@pytest.mark.skipif(not shutil.which("cpio"), reason="the cpio tool is not installed (parse() is checked instead)")
def test_cpio_tool_reads_the_archive():
    out = subprocess.run(["cpio", "-t", "--quiet"], input=cpio.archive(_sample()), capture_output=True, check=True)
    assert out.stdout.decode().split() == [e.name for e in _sample()]


def test_job_archive_is_appended_at_a_four_byte_boundary(tmp_path):
    base = tmp_path / "initramfs.img"
    base.write_bytes(cpio.gzipped([cpio.file("init", b"x")]) + b"abc")  # odd length on purpose
    out = initramfs.with_job(base, "JOB=1\n", tmp_path / "run.img")
    data = out.read_bytes()
    tail = data[base.stat().st_size:]
    start = base.stat().st_size + len(tail) - len(tail.lstrip(b"\0"))
    assert start % 4 == 0
    assert cpio.parse(gzip.decompress(data[start:])) == [cpio.file("job.sh", b"JOB=1\n", 0o644),
                                                          cpio.file("init", guest.INIT.encode(), 0o755)]


# --- LZ4 and kernel images ----------------------------------------------------------------------------------


def _legacy(block: bytes) -> bytes:
    return struct.pack("<II", lz4.LEGACY_MAGIC, len(block)) + block


def test_lz4_literals_and_overlapping_match():
    # "abc", then a 9-byte match at offset 3 (overlapping), then the literal "!"
    block = bytes([0x35]) + b"abc" + bytes([3, 0]) + bytes([0x10]) + b"!"
    assert lz4.legacy(_legacy(block)) == b"abc" + b"abcabcabc" + b"!"


def test_lz4_long_literal_run():
    lit = bytes(range(256)) * 2
    block = bytes([0xF0, 255, len(lit) - 15 - 255]) + lit
    assert lz4.legacy(_legacy(block)) == lit


@pytest.mark.skipif(not shutil.which("lz4"), reason="the lz4 tool is not installed")
def test_lz4_matches_the_lz4_tool():
    data = b"".join(b"line %d of a kernel image\n" % (i % 97) for i in range(20000)) + os.urandom(3000)
    packed = subprocess.run(["lz4", "-l", "-c"], input=data, capture_output=True, check=True).stdout
    assert lz4.legacy(packed, len(data)) == data


def _elf(notes: list[tuple[bytes, int, bytes]], extra: bytes = b"") -> bytes:
    """A minimal ELF64 with one PT_NOTE segment holding ``notes`` (name, type, desc)."""
    body = b""
    for name, ntype, desc in notes:
        n = name + b"\0"
        body += struct.pack("<III", len(n), len(desc), ntype) + n + b"\0" * (-len(n) % 4) + desc + b"\0" * (-len(desc) % 4)
    ehdr_size, phdr_size = 64, 56
    note_off = ehdr_size + phdr_size
    ident = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, ehdr_size, 0, 0, ehdr_size, phdr_size, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(body), len(body), 4)
    return ehdr + phdr + body + extra


PVH_ELF = _elf([(b"GNU", 3, b"\1" * 20), (b"Xen", 18, b"\0\0\x00\x01")], b"Linux version 6.7.0-test+ (me@box) #1\0")


def _bzimage(payload: bytes, version: str = "6.7.0-test+ (me@box) #1 SMP") -> bytes:
    """A fake bzImage: boot header, version string, and ``payload`` where the protected-mode code goes."""
    setup_sects = 4
    head = bytearray((setup_sects + 1) * 512)
    head[0x1F1] = setup_sects
    head[0x202:0x206] = b"HdrS"
    ver = version.encode() + b"\0"
    head[0x400:0x400 + len(ver)] = ver
    struct.pack_into("<H", head, 0x20E, 0x400 - 0x200)
    struct.pack_into("<II", head, 0x248, 16, len(payload))
    return bytes(head) + b"\0" * 16 + payload


def _gzip_payload(elf: bytes) -> bytes:
    z = zlib.compressobj(wbits=31)
    return z.compress(elf) + z.flush() + struct.pack("<I", len(elf))


def test_release_from_a_bzimage_and_a_vmlinux(tmp_path):
    bz = tmp_path / "bzImage"
    bz.write_bytes(_bzimage(b"x" * 64))
    assert image.release_of(bz) == "6.7.0-test+"
    vml = tmp_path / "vmlinux"
    vml.write_bytes(PVH_ELF)
    assert image.release_of(vml) == "6.7.0-test+"
    (tmp_path / "junk").write_bytes(b"\0" * 4096)
    assert image.release_of(tmp_path / "junk") is None


def test_pvh_note():
    assert image.has_pvh_note(PVH_ELF)
    assert not image.has_pvh_note(_elf([(b"GNU", 3, b"\1" * 20)]))
    assert not image.has_pvh_note(b"MZ" + b"\0" * 100)


def test_vmlinux_is_extracted_when_it_has_the_pvh_note(tmp_path):
    assert image.extract_vmlinux(_bzimage(_gzip_payload(PVH_ELF))) == PVH_ELF
    xz = lzma.compress(PVH_ELF, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32) + struct.pack("<I", len(PVH_ELF))
    assert image.extract_vmlinux(_bzimage(xz)) == PVH_ELF
    src = tmp_path / "bzImage"
    src.write_bytes(_bzimage(_gzip_payload(PVH_ELF)))
    out = tmp_path / "out"
    out.mkdir()
    assert image.boot_image(src, out).name == "vmlinux"


def test_bzimage_is_kept_without_the_pvh_note(tmp_path):
    src = tmp_path / "bzImage"
    src.write_bytes(_bzimage(_gzip_payload(_elf([(b"GNU", 3, b"\1" * 20)]))))
    out = tmp_path / "out"
    out.mkdir()
    kept = image.boot_image(src, out)
    assert kept.name == "bzImage" and kept.read_bytes() == src.read_bytes()
    plain = tmp_path / "vmlinux"
    plain.write_bytes(_elf([]))
    with pytest.raises(KernelError, match="PVH"):
        image.boot_image(plain, out)


# --- modules ------------------------------------------------------------------------------------------------

DEP = """\
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/fs/jbd2/jbd2.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/lib/crc16.ko.xz:
kernel/drivers/block/zram/zram.ko.xz: kernel/mm/zsmalloc.ko.xz
kernel/mm/zsmalloc.ko.xz:
kernel/crypto/lzo-rle.ko.xz: kernel/lib/lzo/lzo_compress.ko.xz
kernel/lib/lzo/lzo_compress.ko.xz:
kernel/fs/fuse/virtiofs.ko.xz: kernel/fs/fuse/fuse.ko.xz
kernel/fs/fuse/fuse.ko.xz:
"""
BUILTIN = "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n"


def test_module_names():
    assert name_of("kernel/crypto/lzo-rle.ko.xz") == "lzo_rle"
    assert name_of("kernel/fs/ext4/ext4.ko") == "ext4"
    assert name_of("kernel/fs/ext4/ext4.ko.zst") == "ext4"


def test_dependencies_come_first_builtins_are_skipped():
    idx = ModuleIndex.parse(DEP, BUILTIN)
    order, missing = idx.resolve(["virtio", "virtiofs", "ext4"], ["zram", "lzo-rle", "lz4"])
    assert order.index("fuse") < order.index("virtiofs")
    for dep in ("crc16", "mbcache", "jbd2"):
        assert order.index(dep) < order.index("ext4")
    assert order.index("zsmalloc") < order.index("zram") and order.index("lzo_compress") < order.index("lzo_rle")
    assert "virtio" not in order and len(order) == len(set(order))
    assert missing == []


def test_missing_required_module_is_reported_optional_is_not():
    idx = ModuleIndex.parse(DEP, BUILTIN)
    order, missing = idx.resolve(["virtio_blk", "ext4"], ["no_such_compressor"])
    assert missing == ["virtio_blk"] and "ext4" in order


def test_dependency_cycle_is_an_error():
    idx = ModuleIndex.parse("a.ko: b.ko\nb.ko: a.ko\n")
    with pytest.raises(KernelError, match="cycle"):
        idx.resolve(["a"])


def test_module_files_go_in_decompressed(tmp_path):
    (tmp_path / "kernel" / "fs" / "fuse").mkdir(parents=True)
    (tmp_path / "kernel" / "fs" / "fuse" / "fuse.ko.xz").write_bytes(lzma.compress(b"\x7fELF fuse"))
    (tmp_path / "kernel" / "fs" / "fuse" / "virtiofs.ko").write_bytes(b"\x7fELF virtiofs")
    (tmp_path / "modules.dep").write_text("kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko.xz\n"
                                          "kernel/fs/fuse/fuse.ko.xz:\n")
    (tmp_path / "modules.builtin").write_text("".join(f"kernel/x/{m}.ko\n" for m in
                                                      ("virtio", "virtio_ring", "virtio_pci", "virtio_blk", "ext4")))
    assert read_module(tmp_path / "kernel/fs/fuse/fuse.ko.xz") == b"\x7fELF fuse"
    entries, order, missing = initramfs.module_entries(tmp_path)
    assert order == ["fuse", "virtiofs"] and missing == []
    files = {e.name: e.data for e in entries}
    assert files["lib/modules/fuse.ko"] == b"\x7fELF fuse"
    assert files["modules.load"] == b"fuse\nvirtiofs\n"


def test_no_modules_folder_means_all_built_in():
    entries, order, missing = initramfs.module_entries(None)
    assert order == [] and missing == [] and entries == [cpio.file("modules.load", b"")]


# --- the initramfs and the guest's scripts --------------------------------------------------------------------


def test_init_script_sets_up_the_guest():
    init = guest.INIT
    assert init.startswith("#!/bin/sh\n")
    assert "mount -t virtiofs -o ro hostroot /host" in init
    assert "mount -t ext4 /dev/vda /host/tmp" in init  # /tmp is a disk file system, not tmpfs (shmem)
    for fs in ("proc proc /host/proc", "sysfs sys /host/sys", "devtmpfs dev /host/dev"):
        assert f"mount -t {fs}" in init
    assert "@@cowdsl-begin-$COWDSL_NONCE@@" in init and "@@cowdsl-end-$COWDSL_NONCE@@" in init
    assert "/sys/block/zram0/disksize" in init and "swapon /dev/zram0" in init
    assert "/proc/sys/vm/nr_hugepages" in init and "/sys/kernel/mm/ksm/run" in init
    assert "/sys/kernel/mm/transparent_hugepage/enabled" in init
    assert "reboot -f" in init
    assert qemu.TAG == "hostroot"


@pytest.mark.skipif(not shutil.which("sh"), reason="no POSIX shell")
def test_init_script_is_valid_shell(tmp_path):
    (tmp_path / "init").write_text(guest.INIT)
    subprocess.run(["sh", "-n", str(tmp_path / "init")], check=True)


def test_job_script_quotes_arguments_through_the_shell(tmp_path):
    # a stand-in `chroot` that ignores the new root, so the job runs here
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "chroot").write_text('#!/bin/sh\nshift\nexec "$@"\n')
    (bindir / "chroot").chmod(0o755)
    args = ["a b", "$HOME", "it's", "`x`", "--flag=1;2", ""]
    job = guest.job_script([sys.executable, "-c", "import json, os, sys; print(json.dumps([os.getcwd(), sys.argv[1:], "
                            "os.environ.get('X'), 'HOME' in os.environ]))", *args],
                           nonce="n1", cwd=str(tmp_path), env={"PATH": f"{bindir}:/usr/bin:/bin", "X": "y z"},
                           needs=frozenset({"swap"}), thp="madvise", keep=["/tmp/venv-x", "/work/ignored"],
                           chroot=str(bindir / "chroot"))
    (tmp_path / "job.sh").write_text(job)
    out = subprocess.run(["sh", "-c", ". ./job.sh && cowdsl_run && echo $COWDSL_NEEDS $COWDSL_THP && type cowdsl_keep"],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout.splitlines()
    assert json.loads(out[0]) == [str(tmp_path), args, "y z", False]  # env -i: only what was given
    assert out[1] == "swap madvise"
    assert "keep /tmp/venv-x" in job and "/work/ignored" not in job
    # the command learns which needs the guest's init switched on (native may use that pool, never the host's)
    assert f"{guest.GUEST_NEEDS_ENV}=swap" in job


def test_the_guest_switches_on_hugetlb_and_ksm_in_its_init_only():
    assert 'echo "$COWDSL_HUGEPAGES" > /proc/sys/vm/nr_hugepages' in guest.INIT
    assert "echo 0 > /sys/kernel/mm/ksm/sleep_millisecs" in guest.INIT
    assert 'echo "$COWDSL_KSM_PAGES" > /sys/kernel/mm/ksm/pages_to_scan' in guest.INIT
    assert f"COWDSL_KSM_PAGES={guest.KSM_PAGES_TO_SCAN}" in guest.job_script(["true"], nonce="n", cwd="/", env={})


def test_each_run_carries_the_current_init():
    """A kernel prepared by an older cowdsl has an older /init in its initramfs: the per-run
    archive holds the current one, which the kernel unpacks over it."""
    data = gzip.decompress(initramfs.job_archive("JOB=1\n"))
    assert b"job.sh" in data and b"init" in data and guest.INIT.encode() in data


def test_needs():
    assert guest.parse_needs({"swap", "ksm"}) == (frozenset({"swap", "ksm"}), "never")
    assert guest.parse_needs(["thp"]) == (frozenset(), "always")
    assert guest.parse_needs(["thp=madvise", "hugetlb"]) == (frozenset({"hugetlb"}), "madvise")
    with pytest.raises(ValueError, match="unknown need"):
        guest.parse_needs({"zswap"})


def test_busybox_and_applets_in_the_initramfs():
    try:
        bb = initramfs.find_busybox()
    except KernelError as e:
        pytest.skip(str(e))
    entries = {e.name: e for e in initramfs.base_entries(bb)}
    assert stat.S_ISCHR(entries["dev/console"].mode)
    assert entries["init"].data == guest.INIT.encode() and entries["init"].mode & 0o111
    assert entries["bin/sh"].data == b"busybox" and "bin/busybox" in entries
    assert not any(e.name != "bin/busybox" and e.name.endswith("/busybox") for e in entries.values())


def test_static_check(tmp_path):
    (tmp_path / "static").write_bytes(_elf([]))
    assert initramfs._is_static(tmp_path / "static")  # no PT_INTERP


# --- the result on the console --------------------------------------------------------------------------------


def _console(nonce: str, result: dict, noise: bool = True) -> str:
    raw = {**result, **{k: base64.b64encode(result[k].encode()).decode() for k in ("stdout", "stderr", "notes")}}
    body = base64.encodebytes(json.dumps(raw).encode()).decode().splitlines()
    lines = ["[    0.000000] Linux version ...", f"@@cowdsl-init-{nonce}@@", f"@@cowdsl-begin-{nonce}@@"]
    lines += body[:1] + (["[   12.3] random: crng init done"] if noise else []) + body[1:]
    return "\n".join([*lines, f"@@cowdsl-end-{nonce}@@", "reboot: Restarting system"])


def test_result_is_decoded_between_this_runs_markers():
    res = {"rc": 0, "uname": "6.1.0-50-cloud-amd64", "stdout": "é\n" * 100 + "@@cowdsl-end-other@@\n",
           "stderr": "warn\n", "notes": ""}
    text = _console("abc", {**res, "stdout": "decoy"}).replace("abc", "old") + "\n" + _console("abc", res)
    got = vm.decode_result(text, "abc")
    assert got == res


def test_missing_or_garbled_result():
    assert vm.decode_result("Kernel panic - not syncing: No working init found", "abc") is None
    with pytest.raises(KernelError, match="garbled"):
        vm.decode_result("@@cowdsl-begin-abc@@\nAAAA\n@@cowdsl-end-abc@@", "abc")


def test_host_tmp_paths_kept_visible():
    assert vm.host_tmp_paths(["/tmp/tmp.x/venv", "/tmp/tmp.x/other", "/work/main", "/tmp", "/tmpfoo/x"]) == ["/tmp/tmp.x"]


# --- QEMU -------------------------------------------------------------------------------------------------------


def _cmd(**kw):
    base = dict(image="/k/vmlinux", initrd="/r/initrd.img", disk="/k/scratch.ext4", socket="/r/vfs.sock",
                append="console=ttyS0", kvm=False)
    return qemu.command("qemu-system-x86_64", **{**base, **kw})


def _after(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == flag]


def test_qemu_command_tcg_and_kvm():
    tcg = _cmd()
    assert _after(tcg, "-accel") == ["tcg"] and _after(tcg, "-cpu") == ["max"]
    assert _after(_cmd(smp=2), "-accel") == ["tcg,thread=multi"]
    kvm = _cmd(kvm=True, smp=2, memory="1G")
    assert _after(kvm, "-accel") == ["kvm"] and _after(kvm, "-cpu") == ["host"] and _after(kvm, "-smp") == ["2"]
    assert _after(kvm, "-m") == ["1G"]
    assert "memory-backend-memfd,id=mem,size=1G,share=on" in _after(kvm, "-object")  # vhost-user maps guest RAM


def test_qemu_command_devices():
    cmd = _cmd()
    assert "vhost-user-fs-pci,chardev=vfs,tag=hostroot" in _after(cmd, "-device")
    assert "socket,id=vfs,path=/r/vfs.sock" in _after(cmd, "-chardev")
    (drive,) = _after(cmd, "-drive")
    assert "snapshot=on" in drive and "if=virtio" in drive and "format=raw" in drive
    assert _after(cmd, "-serial") == ["stdio"] and "-no-reboot" in cmd and "-nodefaults" in cmd
    assert _after(cmd, "-kernel") == ["/k/vmlinux"] and _after(cmd, "-initrd") == ["/r/initrd.img"]
    assert "panic=-1" in qemu.kernel_cmdline() and "console=ttyS0" in qemu.kernel_cmdline()


def test_virtiofsd_flags_c_and_rust():
    c = qemu.Virtiofsd("/usr/lib/qemu/virtiofsd", rust=False).argv("/r/s")
    assert c[1:] == ["--socket-path=/r/s", "-o", "source=/", "-o", "cache=auto", "-o", "sandbox=chroot"]
    r = qemu.Virtiofsd("/usr/libexec/virtiofsd", rust=True).argv("/r/s")
    assert "--shared-dir=/" in r and "--socket-path=/r/s" in r


def test_accel_can_be_forced(monkeypatch):
    qemu.kvm_usable.cache_clear()
    monkeypatch.setenv("COWDSL_KERNEL_ACCEL", "tcg")
    try:
        assert qemu.kvm_usable("qemu-system-x86_64") == "COWDSL_KERNEL_ACCEL=tcg"
    finally:
        qemu.kvm_usable.cache_clear()


# --- the cache ------------------------------------------------------------------------------------------------


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("COWDSL_KERNEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "cowdsl" / "kernels"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "cowdsl" / "kernels"
    monkeypatch.setenv("COWDSL_KERNEL_CACHE", str(tmp_path / "mine"))
    assert cache.cache_dir() == tmp_path / "mine"


def _fake_kernel(root, version: str) -> cache.Kernel:
    work = cache.staging(root, version)
    (work / "vmlinux").write_bytes(b"x")
    files = {"image": "vmlinux", "initramfs": "initramfs.img", "disk": "scratch.ext4"}
    return cache.publish(work, {"version": version, "source": "test", "files": files}, root)


def test_cache_layout_and_lookup(tmp_path):
    for v in ("6.12.95+deb12-cloud-amd64", "6.1.0-50-cloud-amd64", "5.10.0-32-cloud-amd64", "6.1.0-9-cloud-amd64"):
        _fake_kernel(tmp_path, v)
    (tmp_path / ".tmp-half-done-1").mkdir()  # an interrupted preparation is not a kernel
    (tmp_path / "no-meta").mkdir()
    assert [k.version for k in cache.kernels(tmp_path)] == [
        "5.10.0-32-cloud-amd64", "6.1.0-9-cloud-amd64", "6.1.0-50-cloud-amd64", "6.12.95+deb12-cloud-amd64"]
    k = cache.find("6.1", tmp_path)
    assert k.version == "6.1.0-50-cloud-amd64" and k.folder == tmp_path / k.version
    assert json.loads((k.folder / "meta.json").read_text())["version"] == k.version
    assert k.image == k.folder / "vmlinux" and k.disk.name == "scratch.ext4" and k.file("modules") is None
    assert cache.find("6.12", tmp_path).version.startswith("6.12.")
    assert cache.find("6.2", tmp_path) is None
    with pytest.raises(KernelError, match="not prepared.*fetch 4.19"):
        cache.require("4.19", tmp_path)


def test_publish_replaces_an_older_copy(tmp_path):
    _fake_kernel(tmp_path, "6.1.0-50-cloud-amd64")
    k = _fake_kernel(tmp_path, "6.1.0-50-cloud-amd64")
    assert [p.name for p in tmp_path.iterdir()] == [k.version]


def test_version_matching():
    assert cache.matches("6.1.0-50-cloud-amd64", "6.1")
    assert not cache.matches("6.12.95+deb12-cloud-amd64", "6.1")
    assert cache.matches("6.8.0-rc1+", "6.8.0-rc1+") and cache.matches("6.8.0+", "6.8.0")


def test_prepare_own_build_detects_the_release(tmp_path, monkeypatch):
    try:
        initramfs.find_busybox()
        from cowdsl.kernels.prepare import which
        which("mkfs.ext4", "e2fsprogs")
    except KernelError as e:
        pytest.skip(str(e))
    from cowdsl.kernels import prepare

    tree = tmp_path / "linux"
    (tree / "arch/x86/boot").mkdir(parents=True)
    (tree / "arch/x86/boot/bzImage").write_bytes(_bzimage(_gzip_payload(PVH_ELF)))
    k = prepare(tree, root=tmp_path / "cache")  # a build tree stands for its bzImage; no modules: all built in
    assert k.version == "6.7.0-test+" and k.meta["boot"] == "pvh-vmlinux"
    assert k.source == f"path:{tree / 'arch/x86/boot/bzImage'}"
    assert {p.name for p in k.folder.iterdir()} == {"vmlinux", "initramfs.img", "scratch.ext4", "meta.json"}
    assert k.initramfs.read_bytes()[:2] == b"\x1f\x8b"


# --- the CLI ----------------------------------------------------------------------------------------------------


def test_cli_errors_are_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COWDSL_KERNEL_CACHE", str(tmp_path))
    assert cli.main(["list"]) == 0
    assert "no prepared kernels" in capsys.readouterr().out
    assert cli.main(["path", "6.1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not prepared" in err and "Traceback" not in err
    assert cli.main(["fetch", "4.19"]) == 2
    assert cli.main(["run", "6.1", "--need", "zswap", "--", "true"]) == 2
    assert "unknown need" in capsys.readouterr().err


def test_missing_qemu_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COWDSL_KERNEL_CACHE", str(tmp_path))
    _fake_kernel(tmp_path, "6.1.0-50-cloud-amd64")
    monkeypatch.setenv("COWDSL_QEMU", str(tmp_path / "no-such-qemu"))
    assert cli.main(["run", "6.1", "--", "true"]) == 2
    assert "no-such-qemu is not an executable" in capsys.readouterr().err
    monkeypatch.delenv("COWDSL_QEMU")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KernelError, match="package qemu-system-x86"):
        qemu.find_qemu()


def test_cli_list_and_path(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COWDSL_KERNEL_CACHE", str(tmp_path))
    k = _fake_kernel(tmp_path, "6.1.0-50-cloud-amd64")
    assert cli.main(["list"]) == 0
    assert "6.1.0-50-cloud-amd64" in capsys.readouterr().out
    assert cli.main(["path", "6.1"]) == 0
    assert capsys.readouterr().out.strip() == str(k.folder)


# --- integration: a real 6.1 kernel under QEMU ----------------------------------------------------------------


def _kernel_61() -> cache.Kernel:
    wanted = os.environ.get("COWDSL_KERNEL_TESTS")
    if wanted == "0":
        pytest.skip("COWDSL_KERNEL_TESTS=0")
    k = cache.find("6.1")
    if k is None:
        if wanted == "1":
            pytest.fail("COWDSL_KERNEL_TESTS=1 but no 6.1 kernel is prepared (python -m cowdsl.kernels fetch 6.1)")
        pytest.skip(f"no 6.1 kernel prepared in {cache.cache_dir()} (python -m cowdsl.kernels fetch 6.1)")
    for tool in (qemu.find_qemu, qemu.find_virtiofsd):
        try:
            tool()
        except KernelError as e:
            pytest.skip(str(e)) if wanted != "1" else pytest.fail(str(e))
    if os.geteuid() != 0 and wanted != "1":
        pytest.skip("virtiofsd's sandbox needs root")
    return k


@pytest.fixture(scope="module")
def kernel_61():
    return _kernel_61()


def test_guest_uname(kernel_61):
    r = vm.boot(kernel_61, ["uname", "-r"], timeout=300)
    assert r.exit_code == 0 and r.stdout.strip() == kernel_61.version == r.kernel
    assert r.accel in ("kvm", "tcg") and r.seconds > 0


def test_guest_runs_the_hosts_python_with_needs(kernel_61):
    r = vm.boot(kernel_61, ["python3", "-c", "print(1); import sys; sys.exit(3)"], timeout=300,
                needs={"swap", "hugetlb"})
    assert (r.stdout, r.exit_code) == ("1\n", 3)
    r = vm.boot(kernel_61, ["sh", "-c", "grep -c zram /proc/swaps; cat /proc/sys/vm/nr_hugepages; "
                            "df -T /tmp | tail -1 | awk '{print $2}'"], timeout=300, needs={"swap", "hugetlb"})
    assert r.stdout.split() == ["1", "16", "ext4"], (r.stdout, r.notes)


# --- leftovers, apt, modules folders ---------------------------------------------------------------------------


def test_stale_run_folders_are_swept(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    for name, owner in (("cowdsl-vm-dead", str(dead.pid)), ("cowdsl-vm-live", str(os.getpid())),
                        ("cowdsl-vm-unknown", None)):
        (tmp_path / name).mkdir()
        if owner:
            (tmp_path / name / "owner").write_text(owner)
    vm.sweep_stale()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cowdsl-vm-live", "cowdsl-vm-unknown"]


def test_apt_candidates_newest_real_package_first(monkeypatch):
    from cowdsl.kernels import debian

    apt = object.__new__(debian.Apt)
    names = ("linux-image-6.1.0-9-cloud-amd64-unsigned linux-image-6.1.0-10-cloud-amd64-unsigned "
             "linux-image-6.1.0-11-cloud-amd64-unsigned linux-image-6.1.0-10-cloud-amd64 linux-image-6.1.0-10-rt-amd64")

    def run(tool, *args, cwd=None):
        if args[0] == "pkgnames":
            out = names
        elif "-11-" in args[1]:  # only named in a dependency: no candidate
            out = f"{args[1]}:\n  Installed: (none)\n  Candidate: (none)\n"
        else:
            out = f"{args[1]}:\n  Installed: (none)\n  Candidate: 6.1.{args[1].split('-')[3]}-1\n"
        return subprocess.CompletedProcess([tool], 0, out, "")

    monkeypatch.setattr(apt, "_run", run, raising=False)
    assert apt.candidates(debian.DEBIAN["6.1"]) == [("linux-image-6.1.0-10-cloud-amd64-unsigned", "6.1.10-1"),
                                                    ("linux-image-6.1.0-9-cloud-amd64-unsigned", "6.1.9-1")]


def test_modules_folder_forms(tmp_path):
    from cowdsl.kernels.prepare import modules_root

    tree = tmp_path / "mods" / "lib" / "modules" / "6.9.0-rc1+"
    (tree / "kernel").mkdir(parents=True)
    (tree / "modules.order").write_text("")
    assert modules_root(tmp_path / "mods", "6.9.0-rc1+") == tree  # an INSTALL_MOD_PATH root
    assert modules_root(tmp_path / "mods", None) == tree
    assert modules_root(tree, None) == tree  # lib/modules/RELEASE itself
    with pytest.raises(KernelError, match="no modules tree"):
        modules_root(tmp_path, None)


# --- versions, truth tables, crosscheck --kernel --------------------------------------------------------------

DEBIAN_510 = ("Linux version 5.10.0-32-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-10 (Debian 10.2.1-6) "
              "10.2.1 20210110, GNU ld (GNU Binutils for Debian) 2.35.2) #1 SMP Debian 5.10.223-1 (2024-08-10)")


def test_upstream_version_of_a_kernel():
    from cowdsl.kernels.version import upstream

    assert upstream("5.10.0-32-cloud-amd64", DEBIAN_510) == "5.10.223"  # not the compiler's 10.2.1
    assert upstream("6.12.117+deb13-cloud-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1 (2025)") == "6.12.117"
    assert upstream("5.15.0-91-generic", "", "Ubuntu 5.15.0-91.101-generic 5.15.131") == "5.15.131"
    assert upstream("6.9.0-rc1+") == "6.9-rc1"
    assert upstream("6.18.44-fc-v1098", "Linux version 6.18.44-fc-v1098 (builder@x) #1 SMP") == "6.18.44"
    with pytest.raises(ValueError):
        upstream("weird")


def _report(tmp_path, native=(True,), status="agree") -> dict:
    f = tmp_path / "x.cow"
    f.write_text("scenario \"x\"\n")
    return {"format": 1, "model": "6.1.176 (anon-exclusive)", "host": "Linux 6.1.0-50-cloud-amd64, swap on",
            "kernel": {"release": "6.1.0-50-cloud-amd64", "proc_version": "... Debian 6.1.176-1", "version": "6.1.176"},
            "repeat": len(native), "loaded": 2, "errors": [], "seconds": 1.0, "guest": None,
            "scenario_skips": [[str(tmp_path / "par.cow"), "concurrent (`par` blocks)"]],
            "rows": [{"file": str(f), "line": 3, "assertion": "a is b", "model": True, "native": list(native),
                      "native_reason": "", "status": status, "reason": ""},
                     {"file": str(f), "line": 4, "assertion": "refcount(a) == 1", "model": True, "native": [None],
                      "native_reason": "unsupported on native: `refcount`", "status": "skip", "reason": "x"}],
            "summary": {}}


def test_a_table_records_what_the_kernel_showed(tmp_path):
    from cowdsl.kernels import tables

    (tmp_path / "par.cow").write_text("par\n")
    t = tables.table(_report(tmp_path))
    assert t["kernel"]["version"] == "6.1.176" and t["kernel"]["source"] == "host"
    entry = t["files"][str(tmp_path / "x.cow")]
    assert entry["sha256"] == tables.sha256(tmp_path / "x.cow")
    assert entry["assertions"] == [{"line": 3, "assert": "a is b", "kernel": True},
                                   {"line": 4, "assert": "refcount(a) == 1", "kernel": None,
                                    "reason": "unsupported on native: `refcount`"}]
    assert t["files"][str(tmp_path / "par.cow")]["skipped"].startswith("concurrent")
    mixed = tables.table(_report(tmp_path, native=(True, False, True)))
    a = mixed["files"][str(tmp_path / "x.cow")]["assertions"][0]
    assert a["kernel"] == "mixed" and a["runs"] == {"true": 2, "false": 1}
    path = tables.write(_report(tmp_path), tmp_path / "tables")
    assert path.name == "6.1.176.json" and tables.load_all(tmp_path / "tables")[0]["kernel"]["version"] == "6.1.176"


def test_a_swept_files_variants_are_entries_of_their_own_with_the_files_hash(tmp_path):
    from cowdsl.kernels import tables

    f = tmp_path / "s.cow"
    f.write_text("param kind in small, thp\n")
    rep = _report(tmp_path)
    rep["scenario_skips"] = [[f"{f}[kind=thp]", "unsupported on this host: no THP"]]
    rep["rows"] = [{**rep["rows"][0], "file": f"{f}[kind=small]"}]
    t = tables.table(rep)
    assert t["files"][f"{f}[kind=small]"]["sha256"] == tables.sha256(f)
    assert t["files"][f"{f}[kind=small]"]["assertions"][0]["kernel"] is True
    assert t["files"][f"{f}[kind=thp]"] == {"sha256": tables.sha256(f), "skipped": "unsupported on this host: no THP"}
    assert tables.split_variant("a/b.cow[kind=thp,swap=dofork]") == ("a/b.cow", "[kind=thp,swap=dofork]")
    assert tables.split_variant("a/b.cow") == ("a/b.cow", "")


def test_crosscheck_kernel_switches_on_hugetlb_and_ksm_only_for_scenarios_that_need_them(tmp_path, monkeypatch):
    import io

    from cowdsl import crosscheck as cc

    (tmp_path / "small.cow").write_text("process A\nA: mmap(buf, anon, private, rw)\nA: write(buf, 1)\n"
                                        "assert A.buf == 1\n")
    assert cc.scenario_needs([str(tmp_path)]) == []
    (tmp_path / "huge.cow").write_text("process A\nA: mmap(buf, anon, private, rw, hugetlb)\nA: write(buf, 1)\n"
                                       "assert A.buf == 1\n")
    (tmp_path / "ksm.cow").write_text("process A, B\nA: mmap(buf, anon, private, rw)\nA: madvise(buf, mergeable)\n"
                                      "B: mmap(buf, anon, private, rw)\nB: madvise(buf, mergeable)\n"
                                      "ksmd: ksm_merge(A.buf, B.buf) as k\nassert not failed(k)\n")
    assert cc.scenario_needs([str(tmp_path)]) == ["hugetlb", "ksm"]
    assert cc.scenario_needs([str(tmp_path / "huge.cow")]) == ["hugetlb"]
    seen = {}
    k = _fake_kernel(tmp_path / "cache", "6.1.0-50-cloud-amd64")

    def guest(kernel, args, **kw):
        seen["needs"] = kw["needs"]
        raise vm.KernelError("stop here")

    monkeypatch.setattr(cc.kernels, "resolve", lambda spec: k)
    monkeypatch.setattr(cc.kernels, "run_in_guest", guest)
    cc.crosscheck_kernel("6.1", [str(tmp_path)], out=io.StringIO(), err=io.StringIO())
    assert seen["needs"] == frozenset({"swap", "thp=madvise", "hugetlb", "ksm"})
    cc.crosscheck_kernel("6.1", [str(tmp_path)], needs=["swap"], out=io.StringIO(), err=io.StringIO())
    assert seen["needs"] == frozenset({"swap"})  # --need given: exactly that


def test_crosscheck_kernel_runs_the_guest_and_prints_its_report(tmp_path, monkeypatch):
    import io

    from cowdsl import crosscheck as cc

    (tmp_path / "par.cow").write_text("par\n")
    seen = {}
    k = _fake_kernel(tmp_path / "cache", "6.1.0-50-cloud-amd64")

    def guest(kernel, args, **kw):
        seen["args"], seen["kw"] = list(args), kw
        return vm.GuestResult(stdout=json.dumps(_report(tmp_path, native=(False,), status="DISAGREE")), stderr="",
                              exit_code=1, kernel="6.1.0-50-cloud-amd64", seconds=30.0, boot_seconds=4.0, accel="tcg")

    monkeypatch.setattr(cc.kernels, "resolve", lambda spec: k)
    monkeypatch.setattr(cc.kernels, "run_in_guest", guest)
    out, err = io.StringIO(), io.StringIO()
    status = cc.crosscheck_kernel("6.1", [str(tmp_path)], out=out, err=err, record=str(tmp_path / "t"))
    assert status == 1, out.getvalue() + err.getvalue()
    assert seen["args"][:2] == ["crosscheck", str(tmp_path)] and "--kernel" not in seen["args"]
    assert seen["args"][seen["args"].index("--model") + 1] == "running" and "json" in seen["args"]
    assert seen["kw"]["needs"] == frozenset({"swap", "thp=madvise"})
    text = out.getvalue()
    assert "under QEMU: Linux 6.1.176 (6.1.0-50-cloud-amd64)" in text and "DISAGREEMENT" in text
    assert "1 disagree" in text.splitlines()[-1]
    t = json.loads((tmp_path / "t" / "6.1.176.json").read_text())
    assert t["kernel"]["needs"] == ["swap", "thp=madvise"] and t["kernel"]["accel"] == "tcg"

    monkeypatch.setattr(cc.kernels, "run_in_guest", lambda *a, **kw: vm.GuestResult(
        "Traceback ...\n", "boom\n", 1, "6.1.0", 9.0, 3.0, "tcg"))
    err = io.StringIO()
    assert cc.crosscheck_kernel("6.1", [str(tmp_path)], out=io.StringIO(), err=err) == 2
    assert "the guest gave no report" in err.getvalue()

    def no_kernel(spec):
        raise KernelError("kernel '4.2' is not prepared")

    monkeypatch.setattr(cc.kernels, "resolve", no_kernel)
    err = io.StringIO()
    assert cc.crosscheck_kernel("4.2", [str(tmp_path)], out=io.StringIO(), err=err) == 2
    assert "not prepared" in err.getvalue()


CROSSCHECK_SUBSET = ("scenarios/swap", "scenarios/gup-leak/vmsplice-swapcache-extra-ref.cow",
                     "scenarios/gup-leak/s2-vmsplice-child-leak-thp.cow",
                     "scenarios/pin-fork/s6-longterm-pin-child-writes-first.cow",
                     # a PTE-mapped THP, hugetlb from the guest's pool, KSM merges by the guest's ksmd
                     "scenarios/pin-fork/s5-longterm-pin-parent-writes-first-pte-thp.cow",
                     "scenarios/pin-fork/s5-longterm-pin-parent-writes-first-hugetlb.cow",
                     "scenarios/ksm/ksm-never-merges-pinned-page.cow",
                     "scenarios/ksm/madvise-unmergeable-unshares.cow")


def test_crosscheck_in_the_61_guest_agrees_with_the_61_model(kernel_61):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [p for p in CROSSCHECK_SUBSET if os.path.exists(os.path.join(root, p))]
    r = subprocess.run([sys.executable, "-m", "cowdsl", "crosscheck", "--kernel", kernel_61.version, *paths],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(model) against native" in r.stdout and "6.1." in r.stdout.splitlines()[0]
    assert "swap on" in r.stdout and "THP on MADV_HUGEPAGE" in r.stdout, r.stdout
    assert "hugetlb pool" in r.stdout and "ksmd running" in r.stdout, r.stdout  # switched on for these scenarios
    assert " 0 disagree" in r.stdout.splitlines()[-1], r.stdout
    for name in ("pte-thp.cow", "hugetlb.cow", "ksm-never-merges-pinned-page.cow", "madvise-unmergeable-unshares.cow"):
        assert not any(name in ln and "whole scenario" in ln for ln in r.stdout.splitlines()), r.stdout
