"""What runs inside the guest: the fixed /init of the initramfs and the per-run job it sources.

/init (busybox sh) loads the modules, mounts the host's root read-only over
virtiofs at /host, the scratch disk at /host/tmp, proc/sys/dev into /host,
switches on what the run needs, chroots into /host and runs the command.  The
command's stdout, stderr and exit status, with `uname -r` and any setup
notes, come back on the serial console as base64 JSON between two markers
that carry a per-run nonce, so kernel messages or a stray marker in the
command's own output cannot be mistaken for the result.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence

# Per-run switches (the guest only: nothing changes on the host).
NEEDS = {
    "swap": "zram swap (256 MiB)",
    "hugetlb": "16 huge pages in /proc/sys/vm/nr_hugepages",
    "ksm": "KSM running (/sys/kernel/mm/ksm/run = 1, pages_to_scan 10000, sleep_millisecs 0)",
    "thp": "transparent huge pages = always (thp=madvise for madvise); never when not asked",
    "dm-delay": "the scratch disk (/tmp) behind a device-mapper delay target: every bio held 200 ms, so that an "
                "O_DIRECT request stays in flight while a `par` block's other actors run",
}
SWAP_SIZE = "256M"
HUGEPAGES = 16
KSM_PAGES_TO_SCAN = 10000  # ksmd scans every mergeable page of a scenario in one go, with no sleep between
#: dm-delay's hold on each bio, reads and writes.  Without it a 4 KiB O_DIRECT read on the virtio disk
#: completes in ~0.1 ms; a par block's fork, the controller's round trip and the next fault take
#: 10-300 ms under TCG with two vCPUs (measured in 5.10, 6.1 and 6.12 guests)
DM_DELAY_MS = 200
#: the environment variable that tells the native backend in the guest which needs the guest's init
#: switched on: the huge page pool and ksmd are the guest's, so native may use them (never the host's)
GUEST_NEEDS_ENV = "COWDSL_GUEST_NEEDS"
#: set (to 1) in the environment of what the guest's init runs as root before the job: dm_delay loads
#: modules and creates a device-mapper device, so it refuses to run where this is not set (a host)
IN_GUEST_ENV = "COWDSL_IN_GUEST"

#: hugepage_init() (mm/huge_memory.c, 5.10 to 6.18) sets transparent_hugepage_flags = 0 when
#: totalram_pages() < 512 MiB, and a 512 MiB guest has less (481288 kB MemTotal in 6.1.176): that
#: clears not only `enabled` but the defaults of the initializer of transparent_hugepage_flags,
#: TRANSPARENT_HUGEPAGE_DEFRAG_REQ_MADV_FLAG, _DEFRAG_KHUGEPAGED_FLAG and _USE_ZERO_PAGE_FLAG.  Without
#: use_zero_page a read fault in do_huge_pmd_anonymous_page() allocates a THP instead of mapping the huge
#: zero page.  The guest's init writes them back, as a system with 512 MiB or more boots with them.
THP_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("defrag", "madvise"),
    ("use_zero_page", "1"),
    ("khugepaged/defrag", "1"),
)

#: thp_setup ENABLED MODE: the THP knobs next to ENABLED (/sys/kernel/mm/transparent_hugepage/enabled):
#: the kernel's defaults of THP_DEFAULTS, then ENABLED = MODE (always, madvise or never)
THP_SETUP = (
    "thp_setup() {\n"
    "    if [ ! -w \"$1\" ]; then\n"
    "        [ \"$2\" != never ] && note \"thp: this kernel has no transparent huge pages\"\n"
    "        return 0\n"
    "    fi\n"
    + "".join(f"    echo {value} > \"${{1%/*}}/{knob}\" || note \"thp: cannot set {knob} to {value}\"\n"
              for knob, value in THP_DEFAULTS)
    + "    echo \"$2\" > \"$1\" || note \"thp: cannot set $2\"\n"
    "}\n"
)

INIT = r"""#!/bin/sh
# cowdsl guest init: set up, run the job, report on the console, power off.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
dmesg -n 1
. /job.sh
echo "@@cowdsl-init-$COWDSL_NONCE@@"
: > /notes
note() { echo "$*" >> /notes; }

report() {  # report RC: the result as JSON, base64 between markers, then power off
    {
        printf '{"rc": %s, "uname": "%s", "stdout": "' "$1" "$(uname -r)"
        base64 -w 0 /out; printf '", "stderr": "'
        base64 -w 0 /err; printf '", "notes": "'
        base64 -w 0 /notes; printf '"}'
    } > /result
    echo "@@cowdsl-begin-$COWDSL_NONCE@@"
    base64 -w 76 /result
    echo "@@cowdsl-end-$COWDSL_NONCE@@"
    sync
    sleep 5   # the host stops QEMU when it sees the end marker; this is only a fallback
    reboot -f
}
: > /out; : > /err

fail() { note "$*"; report null; }
""" + THP_SETUP + r"""
for m in $(cat /modules.load); do
    insmod "/lib/modules/$m.ko" 2>> /notes || note "insmod $m failed"
done

wait_for() {  # a device node appears shortly after its driver probes
    i=0; while [ ! -e "$1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
}

mount -t virtiofs -o ro hostroot /host 2>> /notes || fail "cannot mount the host's root (virtiofs tag hostroot)"
mount -o bind /host/tmp /hosttmp   # the host's /tmp, before the scratch disk covers it
wait_for /dev/vda
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
delayed=
case " $COWDSL_NEEDS " in
*" dm-delay "*)  # the host's Python makes the device (the host's /tmp is still visible: its modules may be there)
    delayed=$(cowdsl_dm_delay 2>> /notes)
    [ -b "$delayed" ] || { delayed=; note "dm-delay: not set up; /tmp is the scratch disk itself"; } ;;
esac
if [ -n "$delayed" ]; then
    mount -t ext4 "$delayed" /host/tmp 2>> /notes || fail "cannot mount the scratch disk behind dm-delay at /tmp"
else
    mount -t ext4 /dev/vda /host/tmp 2>> /notes || fail "cannot mount the scratch disk /dev/vda at /tmp"
fi
chmod 1777 /host/tmp
keep() {  # keep a host folder under /tmp visible (a virtualenv made with mktemp, say)
    rel=${1#/tmp/}
    mkdir -p "/host/tmp/$rel" && mount -o bind "/hosttmp/$rel" "/host/tmp/$rel" 2>> /notes || note "cannot keep $1"
}
cowdsl_keep
mkdir -p /host/dev/shm /host/dev/pts
mount -t tmpfs shm /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs run /host/run 2>/dev/null

thp_setup /sys/kernel/mm/transparent_hugepage/enabled "$COWDSL_THP"
for need in $COWDSL_NEEDS; do
    case $need in
    swap)
        if [ -e /sys/block/zram0/disksize ] && echo "$COWDSL_SWAP" > /sys/block/zram0/disksize \
            && mkswap /dev/zram0 > /dev/null && swapon /dev/zram0; then :; else note "swap: zram swap not set up"; fi ;;
    hugetlb)
        echo "$COWDSL_HUGEPAGES" > /proc/sys/vm/nr_hugepages
        [ "$(cat /proc/sys/vm/nr_hugepages)" = "$COWDSL_HUGEPAGES" ] || note "hugetlb: nr_hugepages is $(cat /proc/sys/vm/nr_hugepages)" ;;
    ksm)
        echo "$COWDSL_KSM_PAGES" > /sys/kernel/mm/ksm/pages_to_scan 2>> /notes || note "ksm: cannot set pages_to_scan"
        echo 0 > /sys/kernel/mm/ksm/sleep_millisecs 2>> /notes || note "ksm: cannot set sleep_millisecs"
        # 6.7+ smart scan skips pages that did not merge in earlier scans: a timing optimisation, off here
        [ -w /sys/kernel/mm/ksm/smart_scan ] && echo 0 > /sys/kernel/mm/ksm/smart_scan
        echo 1 > /sys/kernel/mm/ksm/run 2>> /notes || note "ksm: cannot start" ;;
    esac
done

cowdsl_run < /dev/null > /out 2> /err
report $?
"""


def job_script(argv: Sequence[str], *, nonce: str, cwd: str, env: Mapping[str, str],
               needs: frozenset[str] = frozenset(), thp: str = "never", keep: Sequence[str] = (),
               chroot: str = "/bin/chroot", modules: str | None = None, python: str = sys.executable) -> str:
    """The /job.sh one run appends to the initramfs: its settings, `cowdsl_keep` (host folders under
    /tmp to keep visible), `cowdsl_dm_delay` (``python``, chrooted, makes the `dm-delay` device over
    the scratch disk from the kernel's ``modules`` folder, and prints its node) and `cowdsl_run`,
    the chrooted command."""
    q = shlex.quote
    keeps = "".join(f"    keep {q(k)}\n" for k in keep if k.startswith("/tmp/"))
    env = {**env, GUEST_NEEDS_ENV: " ".join(sorted(needs))}
    assignments = " ".join(q(f"{k}={v}") for k, v in sorted(env.items()))
    command = " ".join(q(a) for a in argv)
    # env -i clears the environment: the marker dm_delay checks is passed explicitly
    dm_delay = (f"env -i {assignments} {IN_GUEST_ENV}=1 {chroot} /host {q(python)} -m cowdsl.kernels.dm_delay "
                f"{q(modules or '/')} /dev/vda {DM_DELAY_MS}")
    return (
        f"COWDSL_NONCE={q(nonce)}\n"
        f"COWDSL_CWD={q(cwd)}\n"
        f"COWDSL_NEEDS={q(' '.join(sorted(needs)))}\n"
        f"COWDSL_THP={q(thp)}\n"
        f"COWDSL_SWAP={SWAP_SIZE}\n"
        f"COWDSL_HUGEPAGES={HUGEPAGES}\n"
        f"COWDSL_KSM_PAGES={KSM_PAGES_TO_SCAN}\n"
        f"cowdsl_keep() {{\n{keeps}    :\n}}\n"
        f"cowdsl_dm_delay() {{\n    {dm_delay}\n}}\n"
        # busybox's chroot by its path (the host's PATH need not have /bin); the host's /bin/sh
        # does the cd, so the working directory is resolved inside the chroot
        f"cowdsl_run() {{\n"
        f"    env -i {assignments} {chroot} /host /bin/sh -c 'cd \"$1\" && shift && exec \"$@\"' sh \"$COWDSL_CWD\" {command}\n"
        f"}}\n"
    )


def parse_needs(needs: frozenset[str] | set[str] | Sequence[str]) -> tuple[frozenset[str], str]:
    """Check ``needs`` and split off the THP mode: ({"swap", ...}, "always" | "madvise" | "never")."""
    plain, thp = set(), "never"
    for n in needs:
        if n in ("thp", "thp=always"):
            thp = "always"
        elif n == "thp=madvise":
            thp = "madvise"
        elif n in NEEDS:
            plain.add(n)
        else:
            raise ValueError(f"unknown need {n!r}: choose from {', '.join(sorted(NEEDS))}, thp=madvise")
    return frozenset(plain), thp
