"""The exploration model, as small as stateright's: ``init``, ``enabled``,
``step``.  A world is the kernel state plus where each actor of the current
block is: which op, which micro-step, and that op's frame."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Final, Protocol

from attrs import evolve, frozen

from cowdsl.scenario import Scenario, Step
from cowdsl.semantics import invariants
from cowdsl.semantics.machine import Event, Machine
from cowdsl.semantics.mm.swap import holder
from cowdsl.semantics.state import Outcome, State, not_run

if TYPE_CHECKING:
    from cowdsl.semantics.backend import Backend

Tid = tuple[int, int]  # (block, thread index): DPOR's process identity
DRAIN = "drain"  # a drainer's micro-step
Loc = tuple[object, ...]  # something a micro-step reads or writes: ("mm", name, field), ("vma", mm, name), ...
Footprint = frozenset[Loc]


@frozen(cache_hash=True)
class Thread:
    actor: str
    steps: tuple[int, ...]  # indices into Scenario.steps, in program order (a drainer's: one per drain it may make)
    at: int = 0
    label: str | None = None  # the next micro-step of the current op; None before it starts
    frame: tuple[object, ...] = ()
    # A drainer: other activity on this task's CPU, which may drain its lru_add batch at any
    # moment (cowdsl.semantics.mm.swap).  It runs no step of the scenario, and the block
    # ends without it when the scenario's threads are done.
    drain: str | None = None

    @property
    def done(self) -> bool:
        return self.at >= len(self.steps)

    @property
    def settled(self) -> bool:
        """Nothing left that the block must wait for: done, or a drainer."""
        return self.drain is not None or self.at >= len(self.steps)


DRAINER_PREFIX = "lru("  # no scenario actor's name has it


def drainer_name(cpu: str) -> str:
    """A drainer's actor name, as schedules and counterexamples show it."""
    return f"{DRAINER_PREFIX}{cpu})"


@frozen(cache_hash=True)
class World:
    state: State
    block: int
    threads: tuple[Thread, ...]


@frozen
class Transition:
    """One micro-step taken: who, which op, which micro-step, what happened."""

    tid: Tid  # (block, thread index): DPOR's process identity
    actor: str
    step: int  # the step's number in the scenario
    label: str
    events: tuple[Event, ...]
    reads: Footprint
    writes: Footprint
    outcome: Outcome | None  # set when this micro-step finished the op
    marks: Footprint = frozenset()  # mms changed field-wise or counted: conflict only with whole-mm reads

    def dependent(self, other: Footprints) -> bool:
        return bool(self.writes & (other.reads | other.writes) or other.writes & self.reads
                    or self.marks & other.reads or other.marks & self.reads)


class Footprints(Protocol):
    """What a move read and wrote: a Transition's, or many moves' together."""

    @property
    def reads(self) -> Footprint: ...
    @property
    def writes(self) -> Footprint: ...
    @property
    def marks(self) -> Footprint: ...


StepResult = tuple[State, "Thread", Transition]  # a micro-step's state after, thread after and transition
_NO_TRANSITION: Final = Transition((-1, -1), "", 0, "", (), frozenset(), frozenset(), None)  # one not asked for


class _Unasked(Enum):
    UNASKED = 0


_UNASKED: Final = _Unasked.UNASKED  # Model.waits has no answer yet

MEMO_MAX = 100_000  # remembered micro-steps; past it the table starts again (memory stays bounded)
MEMO_PROBE = 2_000  # after this many, a memo that hit less than one time in five is dropped


class Model:
    def __init__(self, sc: Scenario, backend: Backend, *, drains: bool = False):
        """``drains``: each block also has a drainer per task (``Thread.drain``), so a
        page may leave its lru_add batch at any moment; without them a batch is drained
        only where the kernel code drains it (the first, cheaper search: whether a
        decision depended on a batch is then known, ``lru_mattered``)."""
        self.sc = sc
        self.backend = backend
        index = {id(s): i for i, s in enumerate(sc.steps)}
        self.blocks = [[index[id(s)] for s in block] for block in sc.blocks()]
        self.cpus: tuple[str, ...] = ()  # the tasks whose CPUs' batches have drainers
        self.lru_mattered = False  # some micro-step's decision depended on an lru_add batch's reference
        self.memo: dict[tuple[State, Thread], StepResult] | None = {}  # (state, thread) -> (state after, thread after, transition): see step
        self.lookups = self.misses = 0  # micro-steps asked of the memo, and run for it
        # the states and footprints the memo holds, one instance each
        self.shared_states: dict[State, State] = {}
        self.shared_footprints: dict[Footprint, Footprint] = {}
        self.waits: dict[tuple[State, Thread], str | None] = {}  # (state, thread) -> why it is blocked, or None
        if drains:
            self.drain_batches()

    def drain_batches(self) -> None:
        """From now on, drainers: one per task that runs in a process (the CPU a page
        it adds waits on).  Worlds made before are not this model's any more: call it
        before a search starts."""
        cpus = tuple(sorted({s.actor for s in self.sc.steps if s.task is not None}))
        if cpus != self.cpus:
            self.cpus = cpus
            if self.memo is not None:
                self.memo.clear()
            self.waits.clear()
            self.shared_states.clear()
            self.shared_footprints.clear()

    def threads_for(self, block: int) -> tuple[Thread, ...]:
        """The block's threads, one per actor in the order they first appear, then
        the drainers (as many drains each as the block has steps)."""
        order: dict[str, list[int]] = {}
        for i in self.blocks[block]:
            order.setdefault(self.sc.steps[i].actor, []).append(i)
        drains = (-1,) * len(self.blocks[block])
        return tuple(Thread(a, tuple(ix)) for a, ix in order.items()) + tuple(
            Thread(drainer_name(c), drains, drain=c) for c in self.cpus)

    def finish(self, state: State) -> State:
        """The final state, every lru_add batch drained: what the assertions judge."""
        return self.backend.lru_quiesce(state)

    def init(self) -> World:
        state = self.backend.init_state(self.sc)
        return World(state, 0, self.threads_for(0) if self.blocks else ())

    def is_final(self, w: World) -> bool:
        return w.block >= len(self.blocks)

    def blocked(self, w: World, i: int, remember: bool = True) -> str | None:
        t = w.threads[i]
        if t.drain is not None:
            cpu = t.drain
            return None if any(p.lru_batch == cpu for p in w.state.pages) else f"{holder(cpu)} is empty"
        key = (w.state, t)
        why = self.waits.get(key, _UNASKED)
        if why is _UNASKED:
            step = self.sc.steps[t.steps[t.at]]
            if t.label is None and self.dead(w.state, step):
                why = None  # it will be skipped, which needs no lock
            else:
                why = self.backend.blocked(w.state, step, t.label, t.frame)
            if remember and self.memo is not None:  # remembered while micro-steps are
                if len(self.waits) >= MEMO_MAX:
                    self.waits.clear()
                self.waits[key] = why
        return why

    def enabled(self, w: World) -> list[int]:
        return [i for i, t in enumerate(w.threads) if not t.done and self.blocked(w, i) is None]

    def unfinished(self, w: World) -> list[int]:
        return [i for i, t in enumerate(w.threads) if not t.done]

    @staticmethod
    def dead(state: State, step: Step) -> bool:
        if step.task is None:
            return False
        mm = state.mm(step.task)
        return mm is None or not mm.alive

    def lock_footprint(self, w: World, i: int) -> Footprint:
        """What a blocked thread waits on, for the independence relation (a drainer:
        its batch, which a page added to it fills)."""
        t = w.threads[i]
        if t.drain is not None:
            return frozenset({("lru", t.drain)})
        return frozenset(self.backend.lock_reads(w.state, self.sc.steps[t.steps[t.at]], t.label, t.frame))

    def step(self, w: World, i: int, trace: bool = True, remember: bool = True) -> tuple[World, Transition]:
        """Thread i's next micro-step.  ``trace=False`` (the searches) skips
        building the events, which a replay of the path makes again, and
        remembers the result: a micro-step depends only on the state and the
        thread, and many worlds share both (they differ in where other threads
        are), so most steps of a search are looked up rather than run.
        ``remember=False``: a caller that remembers micro-steps itself (lean.Lean)."""
        t = w.threads[i]
        debug = self.backend.debug_invariants  # COWDSL_DEBUG_INVARIANTS=1
        memo = None if trace or debug or not remember else self.memo
        key = (w.state, t)
        hit = None
        if memo is not None:
            self.lookups += 1
            hit = memo.get(key)
        if hit is None:
            hit = self._micro(w, i, trace)
            if memo is not None:
                self.remember(key, hit)
        state, t2, tr = hit
        threads = w.threads[:i] + (t2,) + w.threads[i + 1 :]
        block = w.block
        if t2.drain is None and t2.done and all(x.settled for x in threads):
            block += 1
            threads = self.threads_for(block) if block < len(self.blocks) else ()
            if block >= len(self.blocks):
                state = self.finish(state)
        w2 = World(state, block, threads)
        if debug:
            self.check_invariants(w, w2, self.sc.steps[t.steps[t.at]], tr.label)
        return w2, tr

    def remember(self, key: tuple[State, Thread], hit: StepResult) -> None:
        memo = self.memo
        assert memo is not None  # step remembers only while there is a memo
        if len(memo) >= MEMO_MAX:
            memo.clear()
            self.shared_states.clear()
            self.shared_footprints.clear()
        self.misses += 1
        if self.lookups >= MEMO_PROBE and self.misses > self.lookups * 0.8:
            self.memo = None  # worlds here rarely share a state: remembering costs more than it saves
            self.shared_states.clear()
            self.shared_footprints.clear()
            self.waits.clear()
            return
        state, t2, tr = hit
        share = self.shared_footprints.setdefault  # one instance of each state and footprint, shared with the worlds
        tr = evolve(tr, reads=share(tr.reads, tr.reads), writes=share(tr.writes, tr.writes),
                    marks=share(tr.marks, tr.marks))
        memo[key] = (self.shared_states.setdefault(state, state), t2, tr)

    def micro(self, w: World, i: int) -> tuple[State, Thread]:
        """Thread i's next micro-step, run (not remembered, no events, no
        invariants checked, no footprint): the state after and the thread after.
        What lean.Lean runs: the full search needs no independence relation."""
        st, t2, _ = self._micro(w, i, False, footprints=False)
        return st, t2

    def run_micro(self, w: World, i: int) -> StepResult:
        """Thread i's next micro-step, run (not remembered, no events, no invariants
        checked), with what it read and wrote: what lean.Lean keeps for the reduced search."""
        return self._micro(w, i, False)

    def _micro(self, w: World, i: int, trace: bool, footprints: bool = True) -> StepResult:
        t = w.threads[i]
        if t.drain is not None:
            return self._drain(w, i, trace)
        step = self.sc.steps[t.steps[t.at]]
        m = Machine(w.state, quiet=not trace, task=step.actor)
        if t.label is None and step.task is not None:
            m.reads.add(("mm", step.task, "alive"))  # whether the op runs at all depends on the process being alive
        out: Outcome | None
        if t.label is None and step.task is not None and self.dead(w.state, step):
            error = not_run(step.task, w.state.mm(step.task))
            out = Outcome(False, error=error)
            m.say(error)
            label, nxt, frame = "op", None, ()
        elif t.label is None and (gone := self.backend.unborn(w.state, step)) is not None:
            out = self.backend.no_such_process(m, gone)
            label, nxt, frame = "op", None, ()
        else:
            label = t.label or self.backend.program(step)[1]
            if footprints and self.backend.lock_needed(step, label):  # whether it could run depended on the locks
                m.reads.update(self.backend.lock_reads(w.state, step, label, t.frame))
            mic = self.backend.micro(m, step, label, t.frame)
            out, nxt, frame = mic.outcome, mic.next, mic.frame
        if nxt is None and step.bind:
            assert out is not None  # an op's last micro-step says how it ended
            m.set_result(step.bind, out)
        if m.lru_decided:
            self.lru_mattered = True
        t2 = Thread(t.actor, t.steps, t.at + 1) if nxt is None else Thread(t.actor, t.steps, t.at, nxt, frame)
        if not footprints:
            return m.freeze(), t2, _NO_TRANSITION
        tr = Transition((w.block, i), t.actor, step.number, label, tuple(m.events),
                        frozenset(m.reads), frozenset(m.writes), out if nxt is None else None, frozenset(m.marks))
        return m.freeze(), t2, tr

    def _drain(self, w: World, i: int, trace: bool) -> StepResult:
        """A drainer's move: other activity on its task's CPU drains that CPU's
        lru_add batch (a transition of no step of the scenario: step 0)."""
        t = w.threads[i]
        assert t.drain is not None  # _micro hands only drainers here
        m = Machine(w.state, quiet=not trace)
        self.backend.lru_drain_move(m, t.drain)
        t2 = Thread(t.actor, t.steps, t.at + 1, drain=t.drain)
        tr = Transition((w.block, i), t.actor, 0, DRAIN, tuple(m.events), frozenset(m.reads),
                        frozenset(m.writes), Outcome(True), frozenset(m.marks))
        return m.freeze(), t2, tr

    def check_invariants(self, before: World, after: World, step: Step, label: str) -> None:
        """The model's invariants after one micro-step, counting what every actor's
        unfinished op holds between its micro-steps; raises InvariantViolation."""
        flight = []
        for t in after.threads:
            if t.label is not None and not t.done and t.drain is None:
                flight += invariants.in_flight(self.backend, self.sc.steps[t.steps[t.at]], t.label, t.frame)
        invariants.check(self.backend, after.state, step=step, label=label, flight=flight, before=before.state)
