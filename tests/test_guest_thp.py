"""The guest's THP knobs are the kernel's defaults, not those of a small machine.

hugepage_init() (mm/huge_memory.c) sets transparent_hugepage_flags = 0 below 512 MiB of RAM, and a
512 MiB guest has less: use_zero_page, defrag and khugepaged/defrag come up cleared, and a read
fault of a MADV_HUGEPAGE mapping got a fresh THP where any normal system maps the huge zero page
(do_huge_pmd_anonymous_page with transparent_hugepage_use_zero_page()).  The guest's init writes
the defaults back; these tests check that on a fake sysfs folder and in a real 6.1 guest.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_kernels import _kernel_61

from cowdsl.kernels import guest, vm

SMALL_MACHINE = {  # what a < 512 MiB guest shows before the init (5.10.223, 6.1.176, 6.12.117)
    "enabled": "always [madvise] never",
    "defrag": "always defer defer+madvise madvise [never]",
    "use_zero_page": "0",
    "khugepaged/defrag": "0",
}


def _sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "transparent_hugepage"
    for knob, value in SMALL_MACHINE.items():
        (root / knob).parent.mkdir(parents=True, exist_ok=True)
        (root / knob).write_text(value + "\n")
    return root


def _thp_setup(tmp_path: Path, folder: Path, mode: str) -> str:
    """Run the init's thp_setup on the knobs in ``folder``; returns the notes it left."""
    notes = tmp_path / "notes"
    notes.write_text("")
    script = f'note() {{ echo "$*" >> "{notes}"; }}\n' + guest.THP_SETUP + f'thp_setup "{folder}/enabled" {mode}\n'
    subprocess.run(["sh", "-c", script], check=True)
    return notes.read_text()


@pytest.mark.skipif(not shutil.which("sh"), reason="no POSIX shell")
@pytest.mark.parametrize("mode", ["always", "madvise", "never"])
def test_thp_setup_restores_the_kernels_defaults(tmp_path, mode):
    root = _sysfs(tmp_path)
    assert _thp_setup(tmp_path, root, mode) == ""
    assert (root / "use_zero_page").read_text().strip() == "1"
    assert (root / "defrag").read_text().strip() == "madvise"
    assert (root / "khugepaged/defrag").read_text().strip() == "1"
    assert (root / "enabled").read_text().strip() == mode


@pytest.mark.skipif(not shutil.which("sh"), reason="no POSIX shell")
def test_thp_setup_without_thp_notes_only_when_thp_was_asked(tmp_path):
    assert _thp_setup(tmp_path, tmp_path / "absent", "never") == ""
    assert _thp_setup(tmp_path, tmp_path / "absent", "madvise") == "thp: this kernel has no transparent huge pages\n"


def test_the_init_sets_up_thp_in_sysfs():
    assert 'thp_setup /sys/kernel/mm/transparent_hugepage/enabled "$COWDSL_THP"' in guest.INIT
    assert guest.INIT.index("thp_setup() {") < guest.INIT.index("thp_setup /sys")
    assert dict(guest.THP_DEFAULTS) == {"defrag": "madvise", "use_zero_page": "1", "khugepaged/defrag": "1"}


def test_guest_has_the_huge_zero_page_default():
    k = _kernel_61()
    knobs = "/sys/kernel/mm/transparent_hugepage"
    r = vm.boot(k, ["sh", "-c", f"grep MemTotal /proc/meminfo | awk '{{print $2}}'; cat {knobs}/use_zero_page "
                f"{knobs}/defrag {knobs}/khugepaged/defrag {knobs}/enabled"], timeout=300, needs={"thp=madvise"})
    assert r.exit_code == 0, (r.stdout, r.stderr, r.notes)
    mem_kb, *knob_lines = r.stdout.splitlines()
    assert int(mem_kb) < 512 * 1024  # the reason: hugepage_init() cleared the flags at boot
    assert knob_lines == ["1", "always defer defer+madvise [madvise] never", "1", "always [madvise] never"], r.notes
