"""What an op declaration is made of.

An op is declared once, as an :class:`OpSpec`: its surface (parameters, flags,
keywords, what ``as NAME`` binds or which handle it releases), its micro-step
program (each micro-step's label and the lock it waits for), what it holds
between micro-steps, and its fuzz generator.  The declarations are data: this
package imports nothing of ``cowdsl.semantics``; the mechanism there binds to
them (``@micro_step(PROGRAM, "label")`` in ``cowdsl.semantics.mm``), and the
binding is checked when the Backend class is built.

Everything here is validated when it is constructed, so a malformed
declaration is an error when the package loads.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol

from attrs import field, frozen
from attrs.validators import instance_of


class DeclarationError(ValueError):
    """An op declaration that contradicts itself, or a mechanism that does not match the declarations."""


# What a positional parameter holds.
ADDRESS = "address"  # buf or buf[i], a page of the acting process
REMOTE = "remote"  # A.buf or A.buf[i], a page of another process (or own)
ANY_ADDRESS = "any-address"  # either of the above
ADDRESSES = (ADDRESS, REMOTE, ANY_ADDRESS)  # a parameter that names one page
NEW_MAPPING = "new-mapping"  # a mapping name being created
MAPPING = "mapping"  # an existing mapping of the acting process
PART = "part"  # an existing mapping, or pages of it: buf, buf[i], buf[i..j]
VALUE = "value"  # an integer written to memory
PIPE = "pipe"  # a declared pipe
HANDLE = "handle"  # a pin or gup reference made by an earlier step

# Who may perform an op.
TASK = "task"  # a process or a thread of one
DEVICE = "device"  # a pin or gup reference: the device doing DMA through it
RECLAIM = "reclaim"  # the built-in page-reclaim actor
KSMD = "ksmd"  # the built-in KSM daemon
ACTORS = (TASK, DEVICE, RECLAIM, KSMD)

# What `as NAME` binds (and what unpin/put release).
BINDS_VALUE = "value"
BINDS_PIN = "pin"
BINDS_REF = "ref"
BINDS_PROCESS = "process"
BINDS_DEVICE = "device"  # device-exclusive access, usable as a DMA actor
BINDS_OUTCOME = "outcome"
HANDLES = (BINDS_PIN, BINDS_REF, BINDS_DEVICE)

# What a GUP inside an op's program takes: a FOLL_PIN pin or a FOLL_GET reference.
FOLL_PIN = "pin"
FOLL_GET = "get"


@frozen
class Param:
    name: str
    kind: str
    doc: str
    # an address that may name one 8-byte word of its page (`buf+8`): the op loads,
    # stores or transfers that word; without it, an offset is refused
    word: bool = False


@frozen
class FlagGroup:
    """Mutually exclusive bare words; ``default`` None means the flag is optional."""

    name: str
    choices: tuple[str, ...]
    default: str | None
    doc: str


@frozen
class Keyword:
    name: str
    kind: str  # "int", "file" or "new-mapping" (a name the step creates: mremap's to=)
    default: int | None
    doc: str
    lo: int = 1  # accepted range of an int keyword
    hi: int = 64


# --- micro-step programs ---------------------------------------------------------------


class Lock(enum.Enum):
    """What a micro-step waits for on the mm it works on (``lock_mm``: the mm of
    its address, else the acting process's).  Sleeping locks block the actor."""

    MMAP_WRITE = "write"  # mmap_write_lock
    MMAP_READ = "read"  # mmap_read_lock (it also waits while another micro-step holds the PTL)
    PTL = "ptl"  # only the page-table lock
    NONE = "none"  # lockless: GUP-fast, DMA through a pin, pipe buffers, put_page
    HELD = "held"  # the lock an earlier micro-step of the op took, still held

    @property
    def waits(self) -> str | None:
        """The lock the explorer makes the actor wait for: "write", "read", "ptl" or None."""
        return None if self in (Lock.NONE, Lock.HELD) else self.value


CPU_LOAD, CPU_STORE = "load", "store"


@frozen
class PageAt:
    """Which page a micro-step works on: the pfn at ``frame[i]`` of the op's frame,
    or (``frame`` None) the page mapped at the step's address."""

    frame: int | None = None


ADDR_PAGE = PageAt()  # the page mapped at the step's address


# What an op holds between micro-steps (the invariants count it).
HOLDS_PIN = "pin"  # a FOLL_PIN pin GUP returned
HOLDS_GET = "get"  # one reference: FOLL_GET, or a page only the op's frame knows
HOLDS_GRAB = "grab"  # GUP-fast's grab before its re-checks: a speculative pin if the op pins, else a reference


@frozen
class Holds:
    """The page at ``frame[frame]`` is held, as ``kind``, while the op waits to run this micro-step."""

    frame: int = field(validator=instance_of(int))
    kind: str = field()

    @kind.validator
    def _kind(self, _a: object, v: str) -> None:
        if v not in (HOLDS_PIN, HOLDS_GET, HOLDS_GRAB):
            raise DeclarationError(f"holds: `{v}` is not one of pin, get, grab")


@frozen
class MicroStep:
    """One atomic step of an op, between two of the kernel's preemption points.

    ``lock`` has no default: every micro-step says what it waits for."""

    label: str = field(validator=instance_of(str))
    lock: Lock = field(validator=instance_of(Lock))
    doc: str = ""
    # a CPU access ("load" or "store"): it takes ``lock`` only when it faults
    on_fault: str | None = None
    # an rmap walk: it also takes the PTL of every mm mapping this page
    rmap_walk: PageAt | None = None
    # it also takes the PTL of the mm of these addresses of the step ("addr2": ksm_merge's second page)
    also_ptl: tuple[str, ...] = ()
    # what the op holds (taken by an earlier micro-step) when this one is next
    holds: Holds | None = None

    def __attrs_post_init__(self) -> None:
        where = f"micro-step `{self.label}`"
        if not self.label.isidentifier():
            raise DeclarationError(f"{where}: a label is a word")
        if self.on_fault is not None:
            if self.on_fault not in (CPU_LOAD, CPU_STORE):
                raise DeclarationError(f"{where}: on_fault is `load` or `store`, not `{self.on_fault}`")
            if self.lock is not Lock.MMAP_READ:
                raise DeclarationError(f"{where}: a CPU access faults under mmap_lock for read, not {self.lock}")
        for a in self.also_ptl:
            if a not in ("addr", "addr2"):
                raise DeclarationError(f"{where}: also_ptl names a step address (addr, addr2), not `{a}`")


@frozen(eq=False)  # a program is an identity: the mechanism binds to this very object
class Program:
    """An op's micro-steps; the first is where it starts.  Ops without an inner
    preemption point run whole: one micro-step labelled ``op`` (:func:`whole`)."""

    name: str
    steps: tuple[MicroStep, ...]
    doc: str = ""
    _by_label: dict[str, MicroStep] = field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.steps:
            raise DeclarationError(f"program `{self.name}` has no micro-step")
        by_label: dict[str, MicroStep] = {}
        for s in self.steps:
            if not isinstance(s, MicroStep):
                raise DeclarationError(f"program `{self.name}`: {s!r} is not a MicroStep")
            if s.label in by_label:
                raise DeclarationError(f"program `{self.name}` declares micro-step `{s.label}` twice")
            by_label[s.label] = s
        if self.steps[0].lock is Lock.HELD:
            raise DeclarationError(f"program `{self.name}`: its first micro-step `{self.steps[0].label}` "
                                   "cannot hold a lock from an earlier one")
        if any(s.lock is Lock.HELD for s in self.steps) and self.steps[0].lock.waits is None:
            raise DeclarationError(f"program `{self.name}`: a micro-step holds a lock that no earlier one takes "
                                   f"(its first, `{self.steps[0].label}`, takes {self.steps[0].lock.name})")
        if self.steps[0].holds is not None:
            raise DeclarationError(f"program `{self.name}`: nothing is held before its first micro-step")
        object.__setattr__(self, "_by_label", by_label)

    @property
    def entry(self) -> str:
        return self.steps[0].label

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.by_label)

    @property
    def by_label(self) -> dict[str, MicroStep]:
        return self._by_label

    def step(self, label: str) -> MicroStep:
        return self._by_label[label]

    @property
    def walks_rmap(self) -> bool:
        return any(s.rmap_walk is not None for s in self.steps)


WHOLE = "op"  # the name and the one label of an op that runs as one micro-step


def whole(lock: Lock, **kw: object) -> Program:
    """The program of an op that runs as one micro-step."""
    return Program(WHOLE, (MicroStep(WHOLE, lock, **kw),))  # type: ignore[arg-type]


# --- fuzzing ------------------------------------------------------------------------------


class ScenarioGenerator(Protocol):
    """What an op's fuzz generator may use: ``cowdsl.fuzz.ScenarioGenerator``
    (spelled out here, since the declarations sit below it)."""

    n: Any  # the names the checker knows at this point of the file
    c: Any  # the chooser every random draw goes through
    in_par: bool
    max_pages: int

    def value(self) -> int: ...
    def own_addr(self, task: str) -> str | None: ...
    def remote_addr(self) -> str | None: ...
    def any_addr(self, task: str) -> str | None: ...
    def made(self, fn: Callable[[], object]) -> None: ...
    def bind_value(self, p: float) -> str: ...
    def bind_outcome(self, p: float) -> str: ...
    def handle(self, task: str, kind: str, write: bool, text: str, p: float = 0.85) -> str: ...
    def release(self, op: OpSpec) -> str | None: ...


@frozen
class Fuzz:
    """How ``cowdsl.fuzz`` writes a valid step of the op: ``write(g, actor)`` returns
    the text after ``ACTOR: `` (or None when nothing fits now), given the
    generator ``g`` (what exists at that point of the file) and the actor: the
    process of a task, the handle of a device, ``reclaim`` or ``ksmd``."""

    write: Callable[[ScenarioGenerator, str], str | None]
    weight: int = 1  # how often it is drawn against the actor's other ops
    in_par: bool = True  # drawn inside `par` blocks


# --- the op ---------------------------------------------------------------------------------


@frozen
class OpSpec:
    """One op, declared once.  The syntax layer, ``cowdsl ops``, the lexer and the
    editor grammars read the surface (up to ``binds``); the model reads the rest."""

    name: str
    doc: str
    kernel: str  # the kernel entry point it models
    actor: str = TASK
    params: tuple[Param, ...] = ()
    flags: tuple[FlagGroup, ...] = ()
    keywords: tuple[Keyword, ...] = ()
    binds: str = BINDS_OUTCOME
    # --- the model ---
    program: Program = field(kw_only=True, validator=instance_of(Program))
    # a flag word that selects another program: pin and gup run GUP-fast with `fast`
    flag_programs: tuple[tuple[str, Program], ...] = field(kw_only=True, default=())
    releases: str | None = field(kw_only=True, default=None)  # the handle kind it releases (unpin, put)
    grabs: str | None = field(kw_only=True, default=None)  # FOLL_PIN or FOLL_GET, for an op with GUP-fast's grab
    fuzz: Fuzz = field(kw_only=True, validator=instance_of(Fuzz))

    def __attrs_post_init__(self) -> None:
        where = f"op `{self.name}`"
        if self.actor not in ACTORS:
            raise DeclarationError(f"{where}: actor `{self.actor}` is not one of {', '.join(ACTORS)}")
        words = self.flag_words()
        for word, prog in self.flag_programs:
            if word not in words:
                raise DeclarationError(f"{where}: program chosen by `{word}`, which is not one of its flags")
            if not isinstance(prog, Program):
                raise DeclarationError(f"{where}: `{word}` selects {prog!r}, not a Program")
        if self.releases is not None and self.releases not in HANDLES:
            raise DeclarationError(f"{where}: releases `{self.releases}`, not a handle kind")
        if self.grabs not in (None, FOLL_PIN, FOLL_GET):
            raise DeclarationError(f"{where}: grabs is FOLL_PIN or FOLL_GET, not `{self.grabs}`")
        for prog in self.programs():
            if any(s.holds is not None and s.holds.kind == HOLDS_GRAB for s in prog.steps) and self.grabs is None:
                raise DeclarationError(f"{where}: program `{prog.name}` holds a GUP-fast grab: say what it "
                                       "grabs (grabs=FOLL_PIN or FOLL_GET)")

    def flag_words(self) -> dict[str, FlagGroup]:
        return {w: g for g in self.flags for w in g.choices}

    def program_for(self, flags: frozenset[str] | set[str] | tuple[str, ...]) -> Program:
        """The program a step with these flags runs."""
        for word, prog in self.flag_programs:
            if word in flags:
                return prog
        return self.program

    def programs(self) -> tuple[Program, ...]:
        return (self.program,) + tuple(p for _, p in self.flag_programs)

    def signature(self) -> str:
        parts = [p.name for p in self.params]
        for g in self.flags:
            words = "|".join(g.choices)
            parts.append(f"{words}" if g.default else f"[{words}]")
        parts += [f"{k.name}=" + {"int": "N", "file": "FILE"}.get(k.kind, "NAME") for k in self.keywords]
        sig = f"{self.name}({', '.join(parts)})"
        if self.binds != BINDS_OUTCOME:
            sig += f" as {self.binds.upper()}"
        return sig


def registry(*declared: OpSpec) -> dict[str, OpSpec]:
    """The ops by name, in the order given (the order ``cowdsl ops`` and the word lists use)."""
    out: dict[str, OpSpec] = {}
    for op in declared:
        if not isinstance(op, OpSpec):
            raise DeclarationError(f"{op!r} is not an OpSpec")
        if op.name in out:
            raise DeclarationError(f"op `{op.name}` is declared twice")
        out[op.name] = op
    return out
