"""block/bio.c and fs/iomap/direct-io.c: an O_DIRECT read or write holds the user
page in a bio while the device transfers it (short-term GUP)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowdsl.ops.direct_io import ODIRECT
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import Frame, Micro, micro_step
from cowdsl.semantics.mm import addr_of
from cowdsl.semantics.mm.gup import Foll
from cowdsl.semantics.state import Outcome, content, content_text

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine


class DirectIo(KernelBase):
    """The direct I/O's GUP (bio_iov_iter_get_pages), the transfer while the bio is
    in flight, and its completion (bio_release_pages).  Only the GUP takes a lock;
    fork, reclaim or a CPU write can run while the I/O is in flight, which is
    Jann Horn's short-term GUP question (LKML 2020-09-21): with FOLL_GET fork
    does not see the reference, with FOLL_PIN it does."""

    @micro_step(ODIRECT, "gup")
    def odirect__gup(self, m: Machine, step: Step, frame: Frame) -> Micro:
        a = addr_of(step)
        read = step.op == "odirect_read"  # the device writes the user page: FOLL_WRITE
        pin = bool(m.decided("odirect_foll_pin", self.odirect_foll_pin(), "bio_iov_iter_get_pages", minor=True))
        pfn, err = self.get_user_pages(m, a.proc, a.mapping, a.index, Foll(write=read, pin=pin))
        if err:
            return Micro(None, (), Outcome(False, error=err))
        assert pfn is not None  # no errno: GUP holds the page
        m.say(f"bio_iov_iter_get_pages: the bio holds #{pfn} ({'FOLL_PIN' if pin else 'FOLL_GET'})")
        return Micro("io", (pfn,))

    @micro_step(ODIRECT, "io")
    def odirect__io(self, m: Machine, step: Step, frame: Frame) -> Micro:
        (pfn,) = frame
        assert step.file is not None  # the checker requires file=
        fpfn = m.file_page(step.file, 0)
        # one page-sized transfer: every word of the page moves
        if step.op == "odirect_read":
            src = m.page(fpfn)
            m.update_page(pfn, **content(src))
            m.say(f"DMA: the device writes {content_text(src)} (from {step.file}) into #{pfn}")
        else:
            src = m.page(pfn)
            m.update_page(fpfn, **content(src))
            m.say(f"DMA: the device reads {content_text(src)} from #{pfn} into {step.file}")
        return Micro("complete", frame)

    @micro_step(ODIRECT, "complete")
    def odirect__complete(self, m: Machine, step: Step, frame: Frame) -> Micro:
        (pfn,) = frame
        pin = self.takes_pin(step)
        m.ungrab(pfn, pin=pin)
        m.say(f"bio_release_pages: {'unpin_user_page' if pin else 'put_page'} #{pfn}")
        return Micro(None, (), Outcome(True))
