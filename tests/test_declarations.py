"""Each op is declared once (cowdsl.ops) and its mechanism (cowdsl.semantics.mm)
binds to the declaration; whatever does not fit is an error when the package
or the Backend class loads, never a silent "no lock" or a missing method later."""

from __future__ import annotations

import pytest

from cowdsl import ops
from cowdsl.ops import (
    FOLL_PIN,
    HOLDS_GRAB,
    OPS,
    TASK,
    WHOLE,
    DeclarationError,
    Fuzz,
    Holds,
    Lock,
    MicroStep,
    OpSpec,
    Param,
    Program,
    whole,
)
from cowdsl.ops.fork import FORK, FORK_PROGRAM
from cowdsl.ops.gup import GUP_FAST, GUP_SLOW
from cowdsl.scenario import Addr, Step
from cowdsl.semantics.backend import Backend
from cowdsl.semantics.machine import Machine
from cowdsl.semantics.micro import Micro, micro_step, whole_op
from cowdsl.semantics.state import Mm, Outcome, State


def _nothing(g, actor):
    return None


FUZZ = Fuzz(_nothing)


def _op(name="mbind", program=None, **kw):
    return OpSpec(name, "set a memory policy", "mbind(2)", params=(Param("mapping", ops.MAPPING, "the mapping"),),
                  program=program or whole(Lock.MMAP_WRITE), fuzz=FUZZ, **kw)


# --- every op is declared whole ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(OPS))
def test_every_op_declares_its_programs_locks_and_fuzz_generator(name):
    op = OPS[name]
    assert isinstance(op.fuzz, Fuzz) and callable(op.fuzz.write)
    for prog in op.programs():
        assert prog.steps and prog.entry == prog.steps[0].label
        for ms in prog.steps:
            assert isinstance(ms.lock, Lock), (name, ms.label)
    assert op.actor in ops.ACTORS
    if op.releases is not None:
        assert op.releases in (ops.BINDS_PIN, ops.BINDS_REF)


def test_the_declared_locks_are_the_kernels():
    """What each micro-step waits for, as declared: mmap_lock for write or read,
    the PTL, or nothing (lockless, or held from an earlier micro-step)."""
    got = {(op.name, prog.name, ms.label): ms.lock.waits
           for op in OPS.values() for prog in op.programs() for ms in prog.steps
           if not (op.name == "madvise" and prog is not op.program)}  # MADV_(UN)MERGEABLE: below
    write = {"mmap", "munmap", "mprotect", "mremap", "exit", "exec", "prctl"}
    read = {"madvise", "ksm_merge", "ksm_merge_zero", "read", "write", "io_uring_register"}
    ptl = {"swapout", "swapin"}
    for (op, prog, label), lock in got.items():
        if prog == WHOLE:
            want = "write" if op in write else "read" if op in read else "ptl" if op in ptl else None
        else:
            want = {("fork", "lock"): "write", ("pmw", "lock"): "read", ("gup_fast", "slow"): "read",
                    ("gup_slow", "take"): "read", ("pvm", "gup"): "read", ("devexcl", "gup"): "read",
                    ("odirect", "gup"): "read", ("migrate", "unmap"): "ptl", ("migrate", "remap"): "ptl",
                    ("devexcl", "install"): "ptl", ("devpriv", "collect"): "read",
                    ("devpriv", "finalize"): "ptl"}.get((prog, label))
        assert lock == want, (op, prog, label)
    assert OPS["read"].program.steps[0].on_fault == ops.CPU_LOAD
    assert OPS["write"].program.steps[0].on_fault == ops.CPU_STORE
    assert OPS["swapout"].program.walks_rmap and OPS["make_device_exclusive"].program.walks_rmap
    assert OPS["ksm_merge"].program.steps[0].also_ptl == ("addr2",)
    for advice in ("mergeable", "unmergeable"):  # madvise_need_mmap_write(): they change vm_flags
        assert OPS["madvise"].program_for({advice}).steps[0].lock is Lock.MMAP_WRITE
    # MADV_COLLAPSE: hpage_collapse_scan_pmd under mmap_lock for read, collapse_huge_page under it for write
    collapse = OPS["madvise"].program_for({"collapse"})
    assert [(ms.label, ms.lock) for ms in collapse.steps] == [("scan", Lock.MMAP_READ), ("collapse", Lock.MMAP_WRITE)]


def test_pin_and_gup_declare_the_gup_fast_choice():
    for name in ("pin", "gup"):
        op = OPS[name]
        assert op.program is GUP_SLOW and op.flag_programs == (("fast", GUP_FAST),)
        assert op.program_for(frozenset({"read", "fast"})) is GUP_FAST
        assert op.program_for(frozenset({"read"})) is GUP_SLOW
    assert OPS["vmsplice"].program is GUP_FAST
    assert (OPS["pin"].grabs, OPS["gup"].grabs, OPS["vmsplice"].grabs) == (FOLL_PIN, ops.FOLL_GET, ops.FOLL_GET)


def test_unpin_and_put_release_what_pin_and_gup_bind():
    assert OPS["unpin"].releases == OPS["pin"].binds == ops.BINDS_PIN
    assert OPS["put"].releases == OPS["gup"].binds == ops.BINDS_REF


def test_the_declarations_do_not_import_the_semantics():
    """The syntax layer, the lexer and the editors read cowdsl.ops: it is data."""
    import subprocess
    import sys

    code = "import sys, cowdsl.ops; print(sorted(m for m in sys.modules if m.startswith('cowdsl.semantics')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- malformed declarations: errors when they are made --------------------------------------------


def test_a_micro_step_without_a_lock_is_an_error():
    with pytest.raises(TypeError, match="lock"):
        MicroStep("remap")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="lock"):
        MicroStep("remap", "write")  # type: ignore[arg-type]  # a word, not a Lock
    with pytest.raises(TypeError, match="lock"):
        MicroStep("remap", None)  # type: ignore[arg-type]


def test_an_op_without_a_program_or_a_fuzz_generator_is_an_error():
    with pytest.raises(TypeError, match="program"):
        OpSpec("mbind", "doc", "mbind(2)", fuzz=FUZZ)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="fuzz"):
        OpSpec("mbind", "doc", "mbind(2)", program=whole(Lock.MMAP_WRITE))  # type: ignore[call-arg]


@pytest.mark.parametrize("steps, message", [
    ((), "no micro-step"),
    ((MicroStep("a", Lock.NONE), MicroStep("a", Lock.NONE)), "twice"),
    ((MicroStep("a", Lock.HELD),), "cannot hold a lock"),
    ((MicroStep("a", Lock.NONE), MicroStep("b", Lock.HELD)), "no earlier one takes"),
    ((MicroStep("a", Lock.NONE, holds=Holds(0, ops.HOLDS_GET)),), "nothing is held"),
])
def test_a_malformed_program_is_an_error(steps, message):
    with pytest.raises(DeclarationError, match=message):
        Program("bad", steps)


@pytest.mark.parametrize("kw, message", [
    ({"on_fault": "load", "lock": Lock.MMAP_WRITE}, "faults under mmap_lock for read"),
    ({"on_fault": "execute", "lock": Lock.MMAP_READ}, "load` or `store"),
    ({"also_ptl": ("addr3",), "lock": Lock.MMAP_READ}, "also_ptl"),
])
def test_a_malformed_micro_step_is_an_error(kw, message):
    with pytest.raises(DeclarationError, match=message):
        MicroStep("op", **kw)


def test_a_malformed_op_is_an_error():
    with pytest.raises(DeclarationError, match="not one of its flags"):
        _op(flag_programs=(("fast", GUP_FAST),))
    with pytest.raises(DeclarationError, match="grabs"):
        _op(program=Program("p", (MicroStep("a", Lock.NONE), MicroStep("b", Lock.NONE, holds=Holds(0, HOLDS_GRAB)))))
    with pytest.raises(DeclarationError, match="actor"):
        _op(actor="kswapd")
    with pytest.raises(DeclarationError, match="declared twice"):
        ops.registry(_op(), _op())


# --- declaration and mechanism: checked when the Backend class is built ----------------------------


def test_a_declared_micro_step_without_a_mechanism_is_an_error_when_the_class_is_built():
    mbind = _op(program=Program("mbind", (MicroStep("lock", Lock.MMAP_WRITE), MicroStep("move", Lock.HELD))))
    with pytest.raises(DeclarationError, match=r"micro-step `lock` of program `mbind` \(op mbind\) has no mechanism"):
        class WithMbind(Backend):
            DECLARED = {**OPS, "mbind": mbind}


def test_a_mechanism_of_an_undeclared_micro_step_is_an_error_when_the_class_is_built():
    stray = Program("stray", (MicroStep("op", Lock.NONE),))
    with pytest.raises(DeclarationError, match="which no declared op runs"):
        class WithStray(Backend):
            @micro_step(stray, "op")
            def stray__op(self, m, step, frame) -> Micro:
                return Micro(None, (), Outcome(True))


def test_binding_a_label_the_program_does_not_declare_is_an_error():
    with pytest.raises(DeclarationError, match="declares no micro-step `unlock`"):
        micro_step(FORK, "unlock")
    with pytest.raises(DeclarationError, match="runs one of several programs"):
        micro_step(OPS["pin"], "take")
    with pytest.raises(DeclarationError, match="not one"):
        whole_op(FORK)


def test_two_mechanisms_of_one_micro_step_are_an_error():
    with pytest.raises(DeclarationError, match="two mechanisms"):
        class Twice(Backend):
            @micro_step(FORK_PROGRAM, "lock")
            def another_fork_lock(self, m, step, frame) -> Micro:
                return Micro("begin", ())


def test_an_override_that_drops_the_binding_is_an_error():
    with pytest.raises(DeclarationError, match="overrides the mechanism"):
        class Unbound(Backend):
            def fork__lock(self, m, step, frame) -> Micro:
                return Micro("begin", ())


def test_an_override_that_rebinds_is_dispatched_to():
    class Rebound(Backend):
        @micro_step(FORK, "lock")
        def fork__lock(self, m, step, frame) -> Micro:
            return super().fork__lock(m, step, frame)

    assert Rebound.MECHANISM[FORK_PROGRAM, "lock"][0] is Rebound.__dict__["fork__lock"]
    assert Backend.MECHANISM[FORK_PROGRAM, "lock"][0] is not Rebound.__dict__["fork__lock"]


def test_a_complete_new_op_loads_and_dispatches():
    """What adding an op takes: its declaration, its mechanism, nothing else."""
    mbind = _op()

    class WithMbind(Backend):
        DECLARED = {**OPS, "mbind": mbind}

        @whole_op(mbind)
        def op_mbind(self, m, step) -> Outcome:
            m.say("mbind: done")
            return Outcome(True)

    assert WithMbind.MECHANISM[mbind.program, WHOLE][1]
    b = object.__new__(WithMbind)  # the options do not matter here
    step = Step(number=1, actor="A", task="A", op="mbind", mapping="buf")
    m = Machine(State(mms=(Mm("A"),), pages=()))
    assert b.lock_needed(step, None) == "write" and b.program(step) == (WHOLE, WHOLE)
    mic = b.micro(m, step, WHOLE, ())
    assert mic.next is None and mic.outcome.ok and [e.text for e in m.events] == ["mbind: done"]


def test_lock_decisions_follow_the_declarations():
    """The explorer's questions, answered from the declared properties."""
    from cowdsl.semantics import registry

    b = registry.get("anon-exclusive")
    read = Step(number=1, actor="A", task="A", op="read", addr=Addr("A", "buf", 0))
    fork = Step(number=1, actor="A", task="A", op="fork", bind="B")
    pin_fast = Step(number=1, actor="A", task="A", op="pin", addr=Addr("A", "buf", 0), flags=frozenset({"fast"}))
    assert b.lock_needed(read, None) == "read"
    assert [b.lock_needed(fork, lab) for lab in FORK_PROGRAM.labels] == ["write"] + [None] * 6
    assert [b.lock_needed(pin_fast, lab) for lab in GUP_FAST.labels] == [None] * 5 + ["read"]
    assert b.program(pin_fast) == ("gup_fast", "begin")
    assert TASK == OPS["read"].actor
