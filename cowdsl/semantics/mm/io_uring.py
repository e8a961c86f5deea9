"""io_uring/rsrc.c: registering a fixed buffer (IORING_REGISTER_BUFFERS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowdsl.ops.io_uring import IO_URING_REGISTER
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import whole_op
from cowdsl.semantics.mm import addr_of
from cowdsl.semantics.mm.gup import Foll
from cowdsl.semantics.state import Handle, Outcome

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine

# io_uring always pins the buffer writable and long-term: the device may write it
# at any time until the buffer is unregistered.
REGISTER_FOLL = Foll(write=True, pin=True, longterm=True)


class IoUring(KernelBase):
    """io_sqe_buffer_register → io_pin_pages: GUP's long-term write pin, then, before
    6.5, io_uring's own refusal of file-backed buffers that are neither shmem nor
    hugetlbfs (5.10.198 io_uring/io_uring.c, 6.1.158 io_uring/rsrc.c): the check
    runs after the pin, which it drops again.  From 6.5 GUP alone decides
    (check_vma_flags: no long-term write pin of a file that needs dirty tracking)."""

    @whole_op(IO_URING_REGISTER)
    def op_io_uring_register(self, m: Machine, step: Step) -> Outcome:
        a = addr_of(step)
        pfn, err = self.get_user_pages(m, a.proc, a.mapping, a.index, REGISTER_FOLL)
        if err:
            return Outcome(False, error=err)
        assert pfn is not None and step.task is not None  # no errno: GUP holds the page; a process's op
        vma = m.vma_at(a.proc, a.mapping, a.index)
        assert vma is not None  # GUP found it under the same mmap_lock
        if m.decided("io_uring_checks_vmas", self.io_uring_checks_vmas(), "io_pin_pages", minor=True) \
                and vma.file is not None and not vma.shmem and m.state.file_kind(vma.file) == "disk":
            # vma.shmem: shared anonymous memory (its own shmem file); a file's kind: memfd, hugetlbfs or disk
            m.ungrab(pfn, pin=True)
            m.say(f"io_pin_pages: `{a.mapping}` maps {vma.file}, neither shmem nor hugetlbfs "
                  f"→ unpin_user_pages, -EOPNOTSUPP")
            return Outcome(False, error="EOPNOTSUPP")
        name = step.handle_name
        m.add_handle(Handle(name, True, pfn, True, True, step.task, offset=a.offset))
        m.say(f"io_sqe_buffer_register: {REGISTER_FOLL} on #{pfn} registered as {name}")
        return Outcome(True)
