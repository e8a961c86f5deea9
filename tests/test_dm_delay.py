"""The guest's device-mapper delay target (``cowdsl.kernels.dm_delay``): the ioctl structures as
include/uapi/linux/dm-ioctl.h lays them out, the table, the module loading.  A guest booted with
it is tested in tests/test_native_odirect.py (an O_DIRECT request held in flight)."""

from __future__ import annotations

import lzma
import struct

import pytest

from cowdsl.kernels import dm_delay, guest


def test_the_ioctl_numbers_are_iowr_of_struct_dm_ioctl():
    # _IOWR(0xfd, nr, struct dm_ioctl): DM_DEV_CREATE is 0xc138fd03 on every Linux
    assert dm_delay._iowr(dm_delay.DM_DEV_CREATE) == 0xC138FD03
    assert dm_delay._iowr(dm_delay.DM_TABLE_LOAD) == 0xC138FD09
    assert dm_delay._iowr(dm_delay.DM_DEV_SUSPEND) == 0xC138FD06


def test_the_header_carries_version_sizes_and_name():
    data = dm_delay.delay_table(1048576, "254:0", 200)
    head = dm_delay.dm_ioctl("cowdsl-delay", target_count=1, data=data)
    assert len(head) == dm_delay.DM_IOCTL_SIZE + len(data)
    version = struct.unpack_from("<3I", head)
    data_size, data_start, targets = struct.unpack_from("<3I", head, 12)
    assert version == (4, 0, 0) and (data_size, data_start, targets) == (len(head), 312, 1)
    assert head[48:48 + 13] == b"cowdsl-delay\0"


def test_the_table_delays_reads_and_writes_over_the_whole_device():
    spec = dm_delay.delay_table(1048576, "254:0", 200)
    start, length, status, nxt, kind = struct.unpack_from("<QQiI16s", spec)
    assert (start, length, status, nxt, kind.rstrip(b"\0")) == (0, 1048576, 0, 0, b"delay")
    params = spec[dm_delay.DM_TARGET_SPEC_SIZE:]
    assert params.rstrip(b"\0") == b"254:0 0 200 254:0 0 200" and len(spec) % 8 == 0


def test_modules_are_loaded_compressed_or_not_and_a_loaded_one_is_no_error(tmp_path, monkeypatch):
    md = tmp_path / "kernel" / "drivers" / "md"
    md.mkdir(parents=True)
    (md / "dm-mod.ko").write_bytes(b"MOD")
    (md / "dm-delay.ko.xz").write_bytes(lzma.compress(b"DELAY", format=lzma.FORMAT_XZ))
    seen: list[bytes] = []

    class FakeLibc:
        def syscall(self, nr, buf, length, params):
            assert nr.value == dm_delay.SYS_INIT_MODULE and params == b""
            seen.append(buf.raw[:length.value])
            return 0

    monkeypatch.setattr(dm_delay.ctypes, "CDLL", lambda *a, **k: FakeLibc())
    assert dm_delay.load_modules(str(tmp_path)) == ["dm-mod.ko", "dm-delay.ko.xz"]
    assert seen == [b"MOD", b"DELAY"]
    assert dm_delay.load_modules(str(tmp_path / "none")) == []  # built in: nothing to load


@pytest.mark.parametrize("marker", [None, "", "0"])
def test_it_refuses_to_run_outside_a_guest(capsys, monkeypatch, marker):
    """Run by hand (or by mistake) on a host, it loads no module and creates no device."""
    def touched(*_):
        raise AssertionError("dm_delay touched the kernel outside a guest")

    monkeypatch.setattr(dm_delay, "load_modules", touched)
    monkeypatch.setattr(dm_delay, "create", touched)
    if marker is None:
        monkeypatch.delenv(guest.IN_GUEST_ENV, raising=False)
    else:
        monkeypatch.setenv(guest.IN_GUEST_ENV, marker)
    assert dm_delay.main(["/lib/modules/x", "/dev/vda", "200"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cowdsl.kernels.dm_delay: refusing to load dm-mod and dm-delay") and err.count("\n") == 1
    assert f"{guest.IN_GUEST_ENV}=1 is not set" in err


def test_a_failure_is_one_line_on_stderr(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(guest.IN_GUEST_ENV, "1")  # as in the guest; tmp_path has no module and no disk
    assert dm_delay.main([str(tmp_path), str(tmp_path / "no-such-disk"), "200"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dm-delay over {tmp_path / 'no-such-disk'}: ") and err.count("\n") == 1


def test_the_guest_can_put_its_scratch_disk_behind_dm_delay():
    assert guest.parse_needs({"dm-delay", "swap"}) == (frozenset({"dm-delay", "swap"}), "never")
    job = guest.job_script(["true"], nonce="n", cwd="/", env={}, needs=frozenset({"dm-delay"}),
                           modules="/cache/k/modules", python="/venv/bin/python")
    assert "cowdsl_dm_delay() {" in job
    assert f"/venv/bin/python -m cowdsl.kernels.dm_delay /cache/k/modules /dev/vda {guest.DM_DELAY_MS}" in job
    # env -i empties the environment: the guest marker is given to dm_delay, and to nothing else
    delay_line = next(line for line in job.splitlines() if "cowdsl.kernels.dm_delay" in line)
    assert delay_line.strip().startswith("env -i ")
    assert f" {guest.IN_GUEST_ENV}=1 /bin/chroot /host " in delay_line and job.count(guest.IN_GUEST_ENV) == 1
    init = guest.INIT
    assert 'delayed=$(cowdsl_dm_delay 2>> /notes)' in init
    assert 'mount -t ext4 "$delayed" /host/tmp' in init and "mount -t ext4 /dev/vda /host/tmp" in init
    # the device is made from the host's root, with /dev mounted there, before /tmp is covered
    assert init.index("mount -t devtmpfs dev /host/dev") < init.index("cowdsl_dm_delay") < init.index("cowdsl_keep\n")
