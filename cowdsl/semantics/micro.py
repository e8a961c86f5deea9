"""Ops as programs of atomic micro-steps, split where the kernel really has
preemption or lockless points.

The programs are declared with the ops (``cowdsl.ops``: each micro-step's
label, the lock it waits for, what the op holds before it); the mechanism in
``cowdsl.semantics.mm`` binds to a declaration explicitly::

    @micro_step(FORK_PROGRAM, "lock")
    def fork__lock(self, m: Machine, step: Step, frame: Frame) -> Micro: ...

    @whole_op(MUNMAP)  # an op that runs as one micro-step
    def op_munmap(self, m: Machine, step: Step) -> Outcome: ...

When a Backend class is built, :func:`mechanism_table` collects these bindings
into its dispatch table (``MECHANISM``: (program, label) -> method) and checks
them against the declarations: a declared micro-step without a mechanism, or a
mechanism of no declared micro-step, is a :class:`DeclarationError` then.

A micro-step's frame carries what the op learnt so far (hashable, so it can
live in an explorer's state).  Sequential runs execute an op's micro-steps back
to back; the explorer interleaves them between actors, honouring the declared
locks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from attrs import frozen

from cowdsl import ops
from cowdsl.ops import CPU_STORE, WHOLE, DeclarationError, Lock, MicroStep, OpSpec, PageAt, Program
from cowdsl.semantics import invariants
from cowdsl.semantics.concepts import mirror_refaults
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.state import Mm, Outcome, Pte, State

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine

Frame = tuple[Any, ...]

def migration_entry_at(mm: Mm, step: Step) -> bool:
    """Whether the step's page (or, for an op on a whole mapping or mm, any page of
    the mm) is a migration entry: a migration is in flight there."""
    a = step.addr
    if a is not None and a.proc == mm.name:
        vma = mm.vma(a.mapping)
        pte = vma.ptes[a.index] if vma is not None and a.index < len(vma.ptes) else None
        return pte is not None and pte.migration
    return any(p is not None and p.migration for v in mm.vmas for p in v.ptes)


# What lock_needed answers: the lock a micro-step waits for (Lock.waits).
WRITE, READ, PTL = Lock.MMAP_WRITE.value, Lock.MMAP_READ.value, Lock.PTL.value

__all__ = ["PTL", "READ", "WHOLE", "WRITE", "Frame", "Micro", "MicroSteps", "mechanism_table", "micro_step",
           "whole_op"]


@frozen
class Micro:
    next: str | None  # the next micro-step's label; None when the op is done
    frame: Frame = ()
    outcome: Outcome | None = None


# --- binding the mechanism to the declarations -------------------------------------------

_BINDINGS = "__cowdsl_micro_steps__"  # on a mechanism function: the (program, label, whole) it implements

F = TypeVar("F", bound=Callable[..., Any])


def micro_step(decl: Program | OpSpec, label: str) -> Callable[[F], F]:
    """Bind a method ``(self, m, step, frame) -> Micro`` to a declared micro-step:
    of a program (GUP_FAST, which pin, gup and vmsplice share) or of the one
    program of an op."""
    prog = _program_of(decl)
    if label not in prog.by_label:
        raise DeclarationError(f"@micro_step: program `{prog.name}` declares no micro-step `{label}` "
                               f"(it has {', '.join(prog.labels)})")
    return _bind(prog, label, whole=False)


def whole_op(op: OpSpec | Program) -> Callable[[F], F]:
    """Bind a method ``(self, m, step) -> Outcome`` to an op that runs as one micro-step
    (or to one of its programs that does, e.g. madvise's KSM_MADVISE)."""
    prog = _program_of(op)
    if prog.labels != (WHOLE,):
        raise DeclarationError(f"@whole_op: op `{op.name}` runs the micro-steps {', '.join(prog.labels)}, "
                               "not one: bind each with @micro_step")
    return _bind(prog, WHOLE, whole=True)


def _program_of(decl: Program | OpSpec) -> Program:
    if isinstance(decl, Program):
        return decl
    if isinstance(decl, OpSpec):
        if decl.flag_programs:
            raise DeclarationError(f"op `{decl.name}` runs one of several programs: bind to the program")
        return decl.program
    raise DeclarationError(f"{decl!r} is not a declared op or program")


def _bind(prog: Program, label: str, whole: bool) -> Callable[[F], F]:
    def bind(fn: F) -> F:
        setattr(fn, _BINDINGS, (*getattr(fn, _BINDINGS, ()), (prog, label, whole)))
        return fn
    return bind


Mechanism = tuple[Callable[..., Any], bool]  # the method's function, and whether it runs a whole op


def mechanism_table(cls: type, declared: Mapping[str, OpSpec]) -> dict[tuple[Program, str], Mechanism]:
    """The dispatch table of a Backend class: every declared micro-step of
    ``declared`` to the method bound to it, the most derived definition of each
    method counting.  Raises DeclarationError for a micro-step without a
    mechanism, a mechanism of an undeclared one, two mechanisms of one, or an
    override that drops a base method's binding."""
    runs = ops.programs(dict(declared))
    table: dict[tuple[Program, str], Mechanism] = {}
    where: dict[tuple[Program, str], str] = {}
    resolved: dict[str, tuple[str, Any]] = {}  # method name -> (class, most derived definition)
    for klass in cls.__mro__:
        for name, attr in vars(klass).items():
            bindings = getattr(attr, _BINDINGS, ())
            if name in resolved:
                owner, top = resolved[name]
                if bindings and top is not attr and not getattr(top, _BINDINGS, ()):
                    raise DeclarationError(f"{owner}.{name} overrides the mechanism {klass.__name__}.{name} "
                                           "without binding it (@micro_step or @whole_op)")
                continue
            resolved[name] = (klass.__name__, attr)
            for prog, label, whole in bindings:
                key = (prog, label)
                if prog not in runs:
                    raise DeclarationError(f"{klass.__name__}.{name} is the mechanism of micro-step `{label}` of "
                                           f"program `{prog.name}`, which no declared op runs")
                if key in table and table[key][0] is not attr:
                    raise DeclarationError(f"micro-step `{label}` of program `{prog.name}` has two mechanisms: "
                                           f"{where[key]} and {klass.__name__}.{name}")
                table[key] = (attr, whole)
                where[key] = f"{klass.__name__}.{name}"
    for prog, names in runs.items():
        for label in prog.labels:
            if (prog, label) not in table:
                raise DeclarationError(f"micro-step `{label}` of program `{prog.name}` (op {', '.join(names)}) "
                                       f"has no mechanism in {cls.__name__}: bind one with "
                                       f"@micro_step(..., \"{label}\")" + (" or @whole_op" if label == WHOLE else ""))
    return table


# --- running and scheduling micro-steps ----------------------------------------------------


class MicroSteps(KernelBase):
    """The Model's micro-step interface, driven by the op declarations."""

    DECLARED: ClassVar[Mapping[str, OpSpec]] = ops.OPS  # the ops this class implements
    MECHANISM: ClassVar[dict[tuple[Program, str], Mechanism]] = {}
    debug_invariants: bool = False  # check the model's invariants after every micro-step (Backend sets it)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.MECHANISM = mechanism_table(cls, cls.DECLARED)

    def declared_program(self, step: Step) -> Program:
        """The program the step runs (pin and gup: GUP-fast with `fast`)."""
        return self.DECLARED[step.op].program_for(step.flags)

    def declared_micro_step(self, step: Step, label: str | None) -> MicroStep:
        prog = self.declared_program(step)
        return prog.step(label or prog.entry)

    def program(self, step: Step) -> tuple[str, str]:
        """The program's name and its first label."""
        prog = self.declared_program(step)
        return prog.name, prog.entry

    def micro(self, m: Machine, step: Step, label: str, frame: Frame) -> Micro:
        fn, whole = self.MECHANISM[self.declared_program(step), label]
        if whole:
            return Micro(None, (), fn(self, m, step))
        mic: Micro = fn(self, m, step, frame)
        return mic

    def run_op(self, m: Machine, step: Step) -> Outcome:
        """Run an op's micro-steps back to back (sequential semantics)."""
        _, label = self.program(step)
        frame: Frame = ()
        debug = self.debug_invariants
        before = m.freeze() if debug else None
        while True:
            mic = self.micro(m, step, label, frame)
            if debug:  # COWDSL_DEBUG_INVARIANTS=1: every micro-step keeps the model's invariants
                now = m.freeze()
                invariants.check(self, now, step=step, label=label, before=before,
                                 flight=invariants.in_flight(self, step, mic.next, mic.frame))
                before = now
            if mic.next is None:
                assert mic.outcome is not None, f"{step.op}: micro-step `{label}` ended the op without an outcome"
                return mic.outcome
            label, frame = mic.next, mic.frame

    # --- blocking -------------------------------------------------------------------
    def lock_mm(self, step: Step) -> str | None:
        """The mm whose locks the step takes."""
        if step.addr is not None:
            return step.addr.proc
        return step.task

    def lock_needed(self, step: Step, label: str | None) -> str | None:
        """The lock this micro-step waits for, if any: WRITE, READ or PTL (as declared)."""
        return self.declared_micro_step(step, label).lock.waits

    def blocked(self, state: State, step: Step, label: str | None, frame: Frame) -> str | None:
        """Why the actor cannot take this micro-step now (a sleeping lock is held), or None."""
        ms = self.declared_micro_step(step, label)
        need = ms.lock.waits
        if ms.lock is Lock.HELD and step.op != "fork" and step.addr is not None:
            # GUP's follow/fault loop under a held mmap_lock meets a migration entry: faultin_page's
            # do_swap_page sleeps in migration_entry_wait, then the loop follows the new page
            held = state.mm(step.addr.proc)
            if held is not None and migration_entry_at(held, step):
                return f"a migration entry at {step.addr} (migration_entry_wait)"
        mirrored = self.mirror_pte(state, step)
        if mirrored is not None and mirrored.migration:
            # dmirror_range_fault: hmm_range_fault meets the migration entry, waits in
            # migration_entry_wait and returns -EBUSY; test_hmm retries until it is gone
            return "a migration entry at the device's mirrored address (hmm_range_fault: -EBUSY, retried)"
        if need is None:
            return None
        name = self.lock_mm(step)
        mm = state.mm(name) if name else None
        if mm is None:
            return None
        if need in (WRITE, READ) and step.op != "fork" and migration_entry_at(mm, step):
            # a fault or GUP on the entry sleeps in migration_entry_wait until remove_migration_ptes;
            # the model also holds back the other mm-wide ops (munmap, mprotect, madvise, exit,
            # ksm) on an mm with a migration entry at the step's page, whose entry handling it
            # does not model.  fork copies migration entries (copy_nonpresent_pte).
            return f"a migration entry at {step.addr} (migration_entry_wait)" if step.addr else \
                f"a migration entry in {name} (migration in flight)"
        if need == WRITE and mm.mmap_lock != 0:
            return f"mmap_lock of {name} is held"
        if need == READ:
            if ms.on_fault and not self.cpu_access_faults(state, step, store=ms.on_fault == CPU_STORE):
                return None  # no fault, no lock: a plain load or store
            if mm.mmap_lock < 0:
                return f"mmap_lock of {name} is held for write"
            if mm.ptl:
                return f"the page-table lock of {name} is held"
        if need == PTL and mm.ptl:
            return f"the page-table lock of {name} is held"
        for other in self.other_ptls(state, step, label, frame):
            other_mm = state.mm(other)
            if other != name and other_mm is not None and other_mm.ptl:
                return f"the page-table lock of {other} is held"
        return None

    @staticmethod
    def mirror_pte(state: State, step: Step) -> Pte | None:
        """The entry a device's access re-faults through (a DMA through a mirror whose
        entry was dropped, or a write through a read-only one: mirror_refaults), or None."""
        if step.op not in ("dma_read", "dma_write") or step.handle is None:
            return None
        h = state.handle(step.handle)
        if h is None or h.mirror is None or not mirror_refaults(h, step.op == "dma_write"):
            return None
        mm = state.mm(h.mirror[0])
        vma = mm.vma(h.mirror[1]) if mm is not None else None
        return vma.ptes[h.mirror[2]] if vma is not None and h.mirror[2] < len(vma.ptes) else None

    def other_ptls(self, state: State, step: Step, label: str | None, frame: Frame) -> list[str]:
        """The mms whose page-table lock the micro-step takes besides lock_mm's, as
        declared: an rmap walk (swapout's try_to_unmap, make_device_exclusive's)
        takes the PTL of every mm mapping the page, ksm_merge that of the second
        page's mm too.  (Only fork holds a PTL across micro-steps: between deciding
        to share a page and write-protecting it.)"""
        ms = self.declared_micro_step(step, label)
        out: list[str] = []
        if ms.rmap_walk is not None:
            pfn = self.walked_page(state, step, ms.rmap_walk, frame)
            if pfn is not None:
                out += [mm.name for mm in state.mms
                        if any(p is not None and p.present and p.page == pfn for v in mm.vmas for p in v.ptes)]
        for field_name in ms.also_ptl:
            addr = getattr(step, field_name)
            if addr is not None:
                out.append(addr.proc)
        return out

    @staticmethod
    def walked_page(state: State, step: Step, at: PageAt, frame: Frame) -> int | None:
        """The page an rmap walk starts from: in the op's frame, or mapped at the step's address."""
        if at.frame is not None:
            return frame[at.frame] if len(frame) > at.frame else None
        a = step.addr
        if a is None:
            return None
        mm = state.mm(a.proc)
        vma = mm.vma(a.mapping) if mm else None
        pte = vma.ptes[a.index] if vma and a.index < len(vma.ptes) else None  # past the end: mremap shrank it
        return pte.page if pte is not None and pte.present else None

    def lock_reads(self, state: State, step: Step, label: str | None, frame: Frame) -> set[tuple[str, ...]]:
        """What deciding whether this micro-step can take its locks reads, for
        the explorer's independence relation: the locks themselves; for a CPU
        access, its PTE (no fault, no lock); for an op with an rmap walk, every
        mm's page tables and the set of mms (they say whose page-table locks it
        takes; counted at each of its micro-steps)."""
        name = self.lock_mm(step)
        ms = self.declared_micro_step(step, label)
        waits = ms.lock.waits  # a micro-step that takes no lock reads none (blocked)
        out: set[tuple[str, ...]] = {("mm", name, "mmap_lock"), ("mm", name, "ptl")} if name and waits else set()
        mm = state.mm(name) if name else None
        if mm is not None and step.op != "fork" and waits in (WRITE, READ):
            a = step.addr  # what migration_entry_at reads: the step's PTE, else every VMA of the mm
            if a is not None and a.proc == mm.name:
                out.add(("vma", a.proc, a.mapping))
            else:
                out.update(("vma", mm.name, v.name) for v in mm.vmas)
                out.add(("mm", mm.name, "vmas"))
        if waits:
            out.update(("mm", o, "ptl") for o in self.other_ptls(state, step, label, frame))
        if step.addr is not None and (ms.on_fault or (ms.lock is Lock.HELD and step.op != "fork")):
            out.add(("vma", step.addr.proc, step.addr.mapping))  # the PTE: a fault, or a migration entry
        if step.op in ("dma_read", "dma_write") and step.handle is not None:  # what mirror_pte reads
            out.add(("handle", step.handle))
            h = state.handle(step.handle)
            if h is not None and h.mirror is not None:
                out.add(("vma", h.mirror[0], h.mirror[1]))
        if self.declared_program(step).walks_rmap:
            out.add(("mms",))
            for mm in state.mms:
                out.add(("mm", mm.name, "vmas"))
                out.update(("vma", mm.name, v.name) for v in mm.vmas)
        return out

    @staticmethod
    def cpu_access_faults(state: State, step: Step, store: bool) -> bool:
        a = step.addr
        assert a is not None
        mm = state.mm(a.proc)
        vma = mm.vma(a.mapping) if mm else None
        if vma is None or a.index >= len(vma.ptes):
            return False  # SIGSEGV needs no lock in the model (past the end: mremap shrank the mapping)
        pte = vma.ptes[a.index]
        if pte is None or not pte.present:
            return True
        return store and not pte.write
