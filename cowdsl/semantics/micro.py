"""Ops as programs of atomic micro-steps, split where the kernel really has
preemption or lockless points.

A micro-step is a method ``<program>__<label>(m, step, frame) -> Micro``; the
frame carries what the op learnt so far (hashable, so it can live in an
explorer's state).  Ops without an inner preemption point run as one
micro-step.  Sequential runs execute an op's micro-steps back to back; the
explorer interleaves them between actors, honouring the locks below.
"""

from __future__ import annotations

from attrs import frozen

from cowdsl.semantics.state import Outcome, State

WHOLE = "op"


@frozen
class Micro:
    next: str | None  # the next micro-step's label; None when the op is done
    frame: tuple = ()
    outcome: Outcome | None = None


# The program each op runs, and its first label; ops not listed run whole.
PROGRAMS = {
    "fork": ("fork", "lock"),
    "proc_mem_write": ("pmw", "lock"),
    "process_vm_writev": ("pvm", "gup"),
    "process_vm_readv": ("pvm", "gup"),
    "vmsplice": ("gup_fast", "begin"),
    "make_device_exclusive": ("devexcl", "gup"),
}

# Which lock a whole op (or a program's first step) needs on the mm it works on:
# mmap_lock for write or read, or only the page-table lock.
WRITE, READ, PTL = "write", "read", "ptl"
LOCKS = {
    "mmap": WRITE, "munmap": WRITE, "mprotect": WRITE, "exit": WRITE, "fork": WRITE,
    "madvise": READ, "pin": READ, "gup": READ, "make_device_exclusive": READ,
    "process_vm_writev": READ, "process_vm_readv": READ, "proc_mem_write": READ, "ksm_merge": READ,
    "swapout": PTL, "swapin": PTL, "read": READ, "write": READ,
}


class MicroSteps:
    def program(self, step) -> tuple[str, str]:
        if step.op in ("pin", "gup"):
            return ("gup_fast", "begin") if "fast" in step.flags else ("gup_slow", "take")
        return PROGRAMS.get(step.op, (WHOLE, WHOLE))

    def micro(self, m, step, label: str, frame: tuple) -> Micro:
        prog, _ = self.program(step)
        if prog == WHOLE:
            return Micro(None, (), getattr(self, "op_" + step.op)(m, step))
        return getattr(self, f"{prog}__{label}")(m, step, frame)

    def run_op(self, m, step) -> Outcome:
        """Run an op's micro-steps back to back (sequential semantics)."""
        _, label = self.program(step)
        frame: tuple = ()
        debug = getattr(self, "debug_invariants", False)
        before = m.freeze() if debug else None
        while True:
            mic = self.micro(m, step, label, frame)
            if debug:  # COWDSL_DEBUG_INVARIANTS=1: every micro-step keeps the model's invariants
                from cowdsl.semantics import invariants

                now = m.freeze()
                invariants.check(self, now, step=step, label=label, before=before,
                                 flight=invariants.in_flight(self, step, mic.next, mic.frame))
                before = now
            if mic.next is None:
                return mic.outcome
            label, frame = mic.next, mic.frame

    # --- blocking -------------------------------------------------------------------
    def lock_mm(self, step) -> str | None:
        """The mm whose locks the step takes."""
        if step.addr is not None:
            return step.addr.proc
        return step.task

    def lock_needed(self, step, label: str | None) -> str | None:
        """The lock this micro-step waits for, if any: WRITE, READ or PTL."""
        prog, first = self.program(step)
        label = label or first
        if prog == "fork" and label != "lock":
            return None  # fork holds mmap_lock for write throughout
        if prog == "pmw" and label != "lock":
            return None  # held for read from lock to write
        if prog == "gup_fast" and label != "slow":
            return None  # GUP-fast takes no lock at all
        if prog == "pvm" and label != "gup":
            return None
        if prog == "devexcl":
            return READ if label == "gup" else PTL  # the walk holds mmap_lock already, needs the PTL
        if prog in ("gup_fast", "gup_slow"):
            return READ
        return LOCKS.get(step.op)

    def blocked(self, state: State, step, label: str | None, frame: tuple) -> str | None:
        """Why the actor cannot take this micro-step now (a sleeping lock is held), or None."""
        need = self.lock_needed(step, label)
        if need is None:
            return None
        name = self.lock_mm(step)
        mm = state.mm(name) if name else None
        if mm is None:
            return None
        if need == WRITE and mm.mmap_lock != 0:
            return f"mmap_lock of {name} is held"
        if need == READ:
            if step.op in ("read", "write") and not self.cpu_access_faults(state, step):
                return None  # no fault, no lock: a plain load or store
            if mm.mmap_lock < 0:
                return f"mmap_lock of {name} is held for write"
            if mm.ptl:
                return f"the page-table lock of {name} is held"
        if need == PTL and mm.ptl:
            return f"the page-table lock of {name} is held"
        for other in self.other_ptls(state, step, label, frame):
            if other != name and state.mm(other) is not None and state.mm(other).ptl:
                return f"the page-table lock of {other} is held"
        return None

    def other_ptls(self, state: State, step, label: str | None, frame: tuple) -> list[str]:
        """The mms whose page-table lock the micro-step takes besides lock_mm's: an
        rmap walk (try_to_unmap for swapout, make_device_exclusive's) takes the PTL
        of every mm mapping the page, ksm_merge that of both pages' mms.  (Only fork
        holds a PTL across micro-steps: between deciding to share a page and
        write-protecting it.)"""
        pfn = None
        if step.op == "swapout" and step.addr is not None:
            mm = state.mm(step.addr.proc)
            vma = mm.vma(step.addr.mapping) if mm else None
            pte = vma.ptes[step.addr.index] if vma else None
            pfn = pte.page if pte is not None and pte.present else None
        elif step.op == "make_device_exclusive" and label == "install" and frame:
            pfn = frame[0]
        elif step.op == "ksm_merge" and step.addr2 is not None:
            return [step.addr2.proc]
        if pfn is None:
            return []
        return [m.name for m in state.mms if any(p is not None and p.present and p.page == pfn
                                                 for v in m.vmas for p in v.ptes)]

    def lock_reads(self, state: State, step, label: str | None, frame: tuple) -> set:
        """What deciding whether this micro-step can take its locks reads, for
        the explorer's independence relation: the locks themselves; for a CPU
        access, its PTE (no fault, no lock); for an rmap walk, every mm's page
        tables and the set of mms (they say whose page-table locks it takes)."""
        name = self.lock_mm(step)
        out = {("mm", name, "mmap_lock"), ("mm", name, "ptl")} if name else set()
        out.update(("mm", o, "ptl") for o in self.other_ptls(state, step, label, frame))
        if step.op in ("read", "write") and step.addr is not None:
            out.add(("vma", step.addr.proc, step.addr.mapping))
        if step.op in ("swapout", "make_device_exclusive"):
            out.add(("mms",))
            for mm in state.mms:
                out.add(("mm", mm.name, "vmas"))
                out.update(("vma", mm.name, v.name) for v in mm.vmas)
        return out

    @staticmethod
    def cpu_access_faults(state: State, step) -> bool:
        a = step.addr
        mm = state.mm(a.proc)
        vma = mm.vma(a.mapping) if mm else None
        if vma is None:
            return False  # SIGSEGV needs no lock in the model
        pte = vma.ptes[a.index]
        if pte is None or not pte.present:
            return True
        return step.op == "write" and not pte.write
