"""A kernel state as a tuple of small ints: each of its parts interned.

A State is a tree of attrs objects; hashing a new one and comparing it with an
equal one walks the tree.  A search makes a new state at almost every
micro-step where actors are independent, so it keeps states as codes: one int
per part (each mm, each result, the handles, swap slots, pipes and files, each
page), the int naming that part's value in a table of values seen.  Two
states are equal when their codes are; a micro-step that changed one page
changes one int (explore.footprint).

The positions are fixed by the scenario: each mm of its processes and fork's
children from ``mm_at[name]`` on, its bound names (results), the handles, swap
slots, pipes and files, the mms' order, then the pages from position ``pages``
on (pages are only ever added).  An mm that two actors of a par block touch
(``contended``) takes MM_WIDTH positions: its VMAs with their page tables,
then its own fields in groups that change apart (``GROUPS``), so that a
GUP-fast walk that reads a PTE and wp_seq does not depend on the page-table
lock fork toggles, nor on the fault counters.  Any other mm takes one: a
shorter code is cheaper to copy and hash, and nothing races on it."""

from __future__ import annotations

from operator import attrgetter

from attrs import fields

from cowdsl.scenario import Scenario
from cowdsl.semantics.state import Mm, State

Code = tuple[int, ...]

# a contended mm's own fields (all but its name and VMAs), in groups that change apart, each group
# one position after the VMAs': the locks, which fork holds across micro-steps; what GUP-fast checks;
# the fault counters; the rest, which changes at an op's start or end (alive, SIGSEGV, KSM's).  Such
# an mm takes MM_WIDTH positions, 0s where it does not exist
GROUPS: tuple[tuple[str, ...], ...] = (("mmap_lock", "ptl"), ("has_pinned", "wp_seq"), ("faults", "cow_copies"))
GROUPS += (tuple(a.name for a in fields(Mm) if a.name not in {"name", "vmas", *(f for g in GROUPS for f in g)}),)
GROUP_OF = {f: 1 + i for i, g in enumerate(GROUPS) for f in g}  # field -> its offset from the mm's first position
MM_WIDTH = 1 + len(GROUPS)
_groups = tuple(attrgetter(*g) if len(g) > 1 else (lambda m, _f=g[0]: (getattr(m, _f),)) for g in GROUPS)
_FIELD_ORDER = tuple(f for g in GROUPS for f in g)


def _parts(m: Mm) -> list[object]:
    """A contended mm's values, position by position: its VMAs, then each group of its fields."""
    return [m.vmas, *(g(m) for g in _groups)]


def contended(sc: Scenario) -> frozenset[str]:
    """The mms that two actors of one par block touch: threads of the process, or a
    step of another naming its addresses (fork: its child too); an actor of no
    process (reclaim, a device, ksmd) may touch every mm."""
    every = set(sc.processes) | {s.bind for s in sc.steps if s.op == "fork" and s.bind}
    out: set[str] = set()
    for block in sc.blocks():
        if not block[0].par:
            continue
        actors: dict[str, set[str]] = {}
        for s in block:
            names = every if s.task is None else \
                {s.task, *(a.proc for a in (s.addr, s.addr2) if a is not None), *((s.bind,) if s.op == "fork" else ())}
            for n in names:
                actors.setdefault(str(n), set()).add(s.actor)
        out |= {n for n, who in actors.items() if len(who) > 1}
    return frozenset(out)


def _mm(name: str, parts: list[object]) -> Mm:
    vals = [x for g in parts[1:] for x in g]  # type: ignore[attr-defined]
    return Mm(name=name, vmas=parts[0], **dict(zip(_FIELD_ORDER, vals)))  # type: ignore[arg-type]


class Codec:
    __slots__ = ("mm_names", "split", "mm_at", "mms_end", "result_names", "result_at", "handles", "slots", "pipes", "files", "order", "pages",
                 "file_kinds", "values", "ids")

    def __init__(self, sc: Scenario) -> None:
        self.mm_names = tuple(sorted(set(sc.processes) | {s.bind for s in sc.steps if s.op == "fork" and s.bind}))
        self.result_names = tuple(sorted({s.bind for s in sc.steps if s.bind}))
        self.split = contended(sc) & set(self.mm_names)
        self.mm_at: dict[str, int] = {}
        r = 0
        for n in self.mm_names:
            self.mm_at[n] = r
            r += MM_WIDTH if n in self.split else 1
        self.mms_end = r  # the mms' positions are 0 .. mms_end - 1
        self.result_at = {n: r + i for i, n in enumerate(self.result_names)}
        w = r + len(self.result_names)
        self.handles, self.slots, self.pipes, self.files, self.order, self.pages = w, w + 1, w + 2, w + 3, w + 4, w + 5
        self.file_kinds = sc.file_kinds  # set at the start, never changed (Machine.freeze keeps them)
        self.values: list[object] = [None]  # int -> a part's value (0: absent)
        self.ids: dict[object, int] = {None: 0}

    def positions(self, kind: str, name: str, field: str = "") -> range:
        """Where an mm's part is: ``mm`` all of it, ``vmas`` its VMAs, ``own`` the group of ``field``."""
        at = self.mm_at[name]
        if name not in self.split:
            return range(at, at + 1)
        if kind == "mm":
            return range(at, at + MM_WIDTH)
        at += 0 if kind == "vmas" else GROUP_OF[field]
        return range(at, at + 1)

    def _mm_ints(self, m: Mm) -> list[int]:
        return list(map(self.intern, _parts(m))) if m.name in self.split else [self.intern(m)]

    def intern(self, x: object) -> int:
        n = self.ids.get(x)
        if n is None:
            n = self.ids[x] = len(self.values)
            self.values.append(x)
        return n

    def encode(self, st: State) -> Code:
        intern = self.intern
        out = [0] * self.pages
        for m in st.mms:
            at = self.mm_at.get(m.name)
            assert at is not None, f"an mm the scenario does not name: {m.name}"
            ints = self._mm_ints(m)
            out[at:at + len(ints)] = ints
        for name, o in st.results:
            at = self.result_at.get(name)
            assert at is not None, f"a result the scenario does not bind: {name}"
            out[at] = intern(o)
        assert st.file_kinds == self.file_kinds, "file kinds change only at the start"
        out[self.handles] = intern(st.handles)
        out[self.slots] = intern(st.slots)
        out[self.pipes] = intern(st.pipes)
        out[self.files] = intern(st.files)
        # the mms' order: the initial state's is the scenario's, Machine.freeze's by name (an rmap
        # walk and ksmd visit them in it)
        out[self.order] = intern(tuple(m.name for m in st.mms))
        out += map(intern, st.pages)
        return tuple(out)

    def encode_after(self, after: State, before: State, code: Code) -> Code:
        """``after``'s code, where ``before`` (of code ``code``) is the state a micro-step
        started from: the parts Machine.freeze left as they were keep their ints."""
        if after is before:
            return code
        out = list(code[:self.pages])
        intern = self.intern
        if after.mms is not before.mms:  # an mm changed: its parts that did not keep their ints
            old = {m.name: m for m in before.mms}
            for m in after.mms:
                was, at = old.pop(m.name, None), self.mm_at.get(m.name)
                assert at is not None, f"an mm the scenario does not name: {m.name}"
                if m is not was:
                    ints = self._mm_ints(m)
                    out[at:at + len(ints)] = ints
            for name in old:  # gone
                for i in self.positions("mm", name):
                    out[i] = 0
            out[self.order] = intern(tuple(m.name for m in after.mms))
        if after.results is not before.results:
            for at in self.result_at.values():
                out[at] = 0
            for name, o in after.results:
                out[self.result_at[name]] = intern(o)
        if after.handles is not before.handles:
            out[self.handles] = intern(after.handles)
        if after.slots is not before.slots:
            out[self.slots] = intern(after.slots)
        if after.pipes is not before.pipes:
            out[self.pipes] = intern(after.pipes)
        if after.files is not before.files:
            out[self.files] = intern(after.files)
        if after.pages is before.pages:
            out += code[self.pages:]
        else:
            was_pages, base = before.pages, self.pages
            n = len(was_pages)
            out += [code[base + i] if i < n and p is was_pages[i] else intern(p) for i, p in enumerate(after.pages)]
        return tuple(out)

    def decode(self, code: Code) -> State:
        """The State a code stands for (names in order, as Machine.freeze leaves them)."""
        v = self.values
        r, p = self.mms_end, self.handles
        return State(
            mms=tuple(_mm(name, [v[n] for n in code[self.mm_at[name]:self.mm_at[name] + MM_WIDTH]])
                      if name in self.split else v[code[self.mm_at[name]]]  # type: ignore[misc]
                      for name in v[code[self.order]]),  # type: ignore[attr-defined]
            pages=tuple(v[n] for n in code[self.pages:]),  # type: ignore[misc]
            handles=v[code[self.handles]],  # type: ignore[arg-type]
            slots=v[code[self.slots]],  # type: ignore[arg-type]
            pipes=v[code[self.pipes]],  # type: ignore[arg-type]
            files=v[code[self.files]],  # type: ignore[arg-type]
            file_kinds=self.file_kinds,
            results=tuple((name, v[n]) for name, n in zip(self.result_names, code[r:p]) if n),  # type: ignore[misc]
        )
