"""io_uring/rsrc.c (fs/io_uring.c before 5.19): IORING_REGISTER_BUFFERS, the
registration of a fixed buffer, which long-term pins the user page writable.

Its mechanism: ``cowdsl.semantics.mm.io_uring``."""

from __future__ import annotations

from cowdsl.ops.spec import (
    ADDRESS,
    BINDS_PIN,
    FOLL_PIN,
    FlagGroup,
    Fuzz,
    Lock,
    OpSpec,
    Param,
    ScenarioGenerator,
    whole,
)


def _fuzz(g: ScenarioGenerator, task: str) -> str | None:
    a = g.own_addr(task)
    return g.handle(task, BINDS_PIN, True, f"io_uring_register({a})") if a else None


# io_pin_pages: pin_user_pages(FOLL_WRITE|FOLL_LONGTERM) under mmap_read_lock, and
# before 6.5 (34ed8d0dcd69) io_uring's own check of the VMAs it got, under the same
# lock; no preemption point between them, so one micro-step.
IO_URING_REGISTER = OpSpec(
    "io_uring_register",
    "register a page as an io_uring fixed buffer (a FOLL_WRITE|FOLL_LONGTERM pin); `as r` names it, "
    "a pin for dma_read, dma_write and unpin",
    "io_uring_register(IORING_REGISTER_BUFFERS): io_sqe_buffer_register → io_pin_pages",
    params=(Param("addr", ADDRESS, "buf or buf[i]: the buffer's page", word=True),),
    # the one access io_uring asks for; a default, so the handle is a write pin
    flags=(FlagGroup("access", ("write",), "write", "FOLL_WRITE, always: the device may write the buffer"),),
    binds=BINDS_PIN,
    program=whole(Lock.MMAP_READ, doc="io_pin_pages: pin_user_pages(FOLL_WRITE|FOLL_LONGTERM); "
                                      "before 6.5 the check of each pinned page's VMA"),
    grabs=FOLL_PIN,
    fuzz=Fuzz(_fuzz),
)
