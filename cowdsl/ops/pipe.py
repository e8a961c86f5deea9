"""fs/splice.c and fs/pipe.c: vmsplice and reading the pipe.

Their mechanism: ``cowdsl.semantics.mm.pipe`` (vmsplice's GUP-fast program is
``cowdsl.semantics.mm.gup``'s)."""

from __future__ import annotations

from cowdsl.ops.gup import GUP_FAST
from cowdsl.ops.spec import ADDRESS, BINDS_VALUE, FOLL_GET, PIPE, Fuzz, Lock, OpSpec, Param, ScenarioGenerator, whole


def _fuzz_vmsplice(g: ScenarioGenerator, task: str) -> str | None:
    a = g.own_addr(task)
    if not a or not g.n.pipes:
        return None
    return f"vmsplice({a}, {g.c.choice(g.n.pipes)})"


VMSPLICE = OpSpec(
    "vmsplice",
    "splice a page into a pipe: the pipe keeps a FOLL_GET reference to the page",
    "vmsplice(2), iov_iter_get_pages",
    params=(Param("addr", ADDRESS, "buf or buf[i]"), Param("pipe", PIPE, "a declared pipe")),
    program=GUP_FAST,  # iov_iter_get_pages2: a read-only FOLL_GET through GUP-fast
    grabs=FOLL_GET,
    fuzz=Fuzz(_fuzz_vmsplice),
)


def _fuzz_pipe_read(g: ScenarioGenerator, task: str) -> str | None:
    if not g.n.pipes:
        return None
    return f"pipe_read({g.c.choice(g.n.pipes)})" + g.bind_value(0.6)


PIPE_READ = OpSpec(
    "pipe_read",
    "read the oldest buffer from a pipe: the page's content now; `as v` keeps it",
    "read(2) on a pipe",
    params=(Param("pipe", PIPE, "a declared pipe"),),
    binds=BINDS_VALUE,
    program=whole(Lock.NONE),  # the pipe's own mutex, which no other op takes
    fuzz=Fuzz(_fuzz_pipe_read),
)
