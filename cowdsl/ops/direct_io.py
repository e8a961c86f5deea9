"""block/bio.c, fs/iomap/direct-io.c and fs/direct-io.c: read(2) and write(2) with
O_DIRECT, whose bio holds the user page while the device transfers it.

Their mechanism: ``cowdsl.semantics.mm.direct_io``."""

from __future__ import annotations

from collections.abc import Callable

from cowdsl.ops.spec import (
    ADDRESS,
    HOLDS_PIN,
    Fuzz,
    Holds,
    Keyword,
    Lock,
    MicroStep,
    OpSpec,
    Param,
    Program,
    ScenarioGenerator,
)

# The short-term GUP of a direct I/O, as three preemption points: the GUP under
# mmap_lock (bio_iov_iter_get_pages); the bio in flight, when the device moves the
# data (no lock: the page is held only by the bio's reference or pin); the
# completion (bio_endio → bio_release_pages: set_page_dirty for a read, then
# put_page or unpin_user_page).  Whether the bio holds a FOLL_GET reference or a
# FOLL_PIN pin is the era's (odirect_foll_pin, 6.5): the invariants ask
# takes_pin, as for process_vm_readv/writev.
ODIRECT = Program("odirect", (
    MicroStep("gup", Lock.MMAP_READ,
              "bio_iov_iter_get_pages: get_user_pages (FOLL_GET, before 6.5) or iov_iter_extract_pages "
              "(FOLL_PIN, 6.5+); FOLL_WRITE for a read"),
    MicroStep("io", Lock.NONE, "the bio in flight: the device writes the page (read) or reads it (write)",
              holds=Holds(0, HOLDS_PIN)),
    MicroStep("complete", Lock.NONE, "bio_endio → bio_release_pages: put_page or unpin_user_page",
              holds=Holds(0, HOLDS_PIN)),
))

FILE = Keyword("file", "file", None, "the declared file read from or written to (its first page)")


def _fuzz(op: str) -> Callable[[ScenarioGenerator, str], str | None]:
    def write(g: ScenarioGenerator, task: str) -> str | None:
        a = g.own_addr(task)
        files = list(g.n.files)
        if not a or not files:
            return None
        return f"{op}({a}, file={g.c.choice(files)})" + g.bind_outcome(0.3)
    return write


ODIRECT_READ = OpSpec(
    "odirect_read",
    "read(2) from a file with O_DIRECT into a page: the device writes the user page while the bio holds it",
    "read(2) with O_DIRECT: iomap_dio_rw / __blockdev_direct_IO, bio_iov_iter_get_pages, bio_release_pages",
    params=(Param("addr", ADDRESS, "buf or buf[i]: the user buffer"),),
    keywords=(FILE,),
    program=ODIRECT,
    fuzz=Fuzz(_fuzz("odirect_read")),
)

ODIRECT_WRITE = OpSpec(
    "odirect_write",
    "write(2) to a file with O_DIRECT from a page: the device reads the user page while the bio holds it",
    "write(2) with O_DIRECT: iomap_dio_rw / __blockdev_direct_IO, bio_iov_iter_get_pages, bio_release_pages",
    params=(Param("addr", ADDRESS, "buf or buf[i]: the user buffer"),),
    keywords=(FILE,),
    program=ODIRECT,
    fuzz=Fuzz(_fuzz("odirect_write")),
)
