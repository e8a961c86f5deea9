"""mm/memory.c: CPU loads and stores, and the faults they take.

Their mechanism: ``cowdsl.semantics.mm.memory``."""

from __future__ import annotations

from cowdsl.ops.spec import (
    ADDRESS,
    BINDS_VALUE,
    CPU_LOAD,
    CPU_STORE,
    VALUE,
    Fuzz,
    Lock,
    OpSpec,
    Param,
    ScenarioGenerator,
    whole,
)


def _fuzz_read(g: ScenarioGenerator, task: str) -> str | None:
    a = g.own_addr(task)
    return f"read({a})" + g.bind_value(0.6) if a else None


# A load or store that does not fault takes no lock at all; a fault runs under
# mmap_lock for read (lock_mm_and_find_vma).
READ = OpSpec(
    "read",
    "CPU load from a page; `as v` keeps the value read",
    "user load, handle_mm_fault",
    params=(Param("addr", ADDRESS, "buf or buf[i]", word=True),),
    binds=BINDS_VALUE,
    program=whole(Lock.MMAP_READ, on_fault=CPU_LOAD),
    fuzz=Fuzz(_fuzz_read),
)


def _fuzz_write(g: ScenarioGenerator, task: str) -> str | None:
    a = g.own_addr(task)
    return f"write({a}, {g.value()})" if a else None


WRITE = OpSpec(
    "write",
    "CPU store of a value to a page",
    "user store, handle_mm_fault(FAULT_FLAG_WRITE)",
    params=(Param("addr", ADDRESS, "buf or buf[i]", word=True), Param("value", VALUE, "the value stored")),
    program=whole(Lock.MMAP_READ, on_fault=CPU_STORE),
    fuzz=Fuzz(_fuzz_write, weight=2),
)
