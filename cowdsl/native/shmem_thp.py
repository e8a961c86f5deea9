"""Shmem THPs natively: `mmap(buf, shared, rw, thp)` is MAP_SHARED|MAP_ANONYMOUS with MADV_HUGEPAGE,
which gets a PMD-size shmem folio when /sys/kernel/mm/transparent_hugepage/shmem_enabled allows it
(always, within_size, force; advise with MADV_HUGEPAGE: shmem_fault's SGP_HUGE in 5.10.198,
shmem_is_huge / shmem_huge_global_enabled in 6.1.158 and 6.18.2).  The knob is machine-wide: a run
sets it only in our guest (host.shmem_thp says where it may), and puts it back after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from cowdsl.native.host import SHMEM_ENABLED, SHMEM_HUGE_MODES, in_guest, probe, shmem_mode

if TYPE_CHECKING:
    from cowdsl import scenario as S


def wants_shmem_thp(sc: S.Scenario) -> bool:
    """A shared anonymous `thp` mapping: the one shmem THP native makes."""
    return any(st.op == "mmap" and "thp" in st.flags and "shared" in st.flags and not st.file for st in sc.steps)


@contextlib.contextmanager
def shmem_knob(sc: S.Scenario) -> Iterator[None]:
    """shmem_enabled=advise for a run that maps a shmem THP, in our guest only, where it is off."""
    mode = shmem_mode()
    if not wants_shmem_thp(sc) or probe().shmem_thp is not None or mode in SHMEM_HUGE_MODES or mode is None:
        yield
        return
    _write("advise")
    try:
        yield
    finally:
        _write(mode)


def _write(mode: str) -> None:
    if not in_guest():  # a machine-wide knob: never a host's, whatever called this
        raise RuntimeError(f"{SHMEM_ENABLED} is machine-wide; only our guest sets it")
    with open(SHMEM_ENABLED, "w") as f:
        f.write(mode)
