"""fs/splice.c and fs/pipe.c: vmsplice gives the pipe a reference to user pages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import evolve

from cowdsl.ops.pipe import PIPE_READ
from cowdsl.semantics.micro import whole_op
from cowdsl.semantics.state import Outcome

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine


class Pipes:
    def vmsplice_done(self, m: Machine, step: Step, pfn: int) -> Outcome:
        """vmsplice_to_pipe → iter_to_pipe → iov_iter_get_pages2: the page, taken
        read-only with FOLL_GET through GUP-fast, goes into a pipe buffer (6.x; a
        2026 proposal would make vmsplice copy instead)."""
        assert step.pipe is not None  # vmsplice's pipe parameter
        pipe = m.pipe(step.pipe)
        m.set_pipe(evolve(pipe, bufs=pipe.bufs + (pfn,)))
        m.say(f"vmsplice: pipe {step.pipe} holds a reference to #{pfn}")
        return Outcome(True)

    @whole_op(PIPE_READ)
    def op_pipe_read(self, m: Machine, step: Step) -> Outcome:
        assert step.pipe is not None  # the op's pipe parameter
        pipe = m.pipe(step.pipe)
        if not pipe.bufs:
            m.say(f"pipe_read: {step.pipe} is empty → -EAGAIN")
            return Outcome(False, error="EAGAIN")
        pfn, rest = pipe.bufs[0], pipe.bufs[1:]
        value = m.page(pfn).data
        m.set_pipe(evolve(pipe, bufs=rest))
        m.say(f"pipe_read: {value} from #{pfn}")
        m.put_page(pfn)
        return Outcome(True, value)
