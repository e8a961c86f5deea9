"""A kernel state as a tuple of small ints: each of its parts interned.

A State is a tree of attrs objects; hashing a new one and comparing it with an
equal one walks the tree.  A search makes a new state at almost every
micro-step where actors are independent, so it keeps states as codes: one int
per part (each mm, each result, the handles, swap slots, pipes and files, each
page), the int naming that part's value in a table of values seen.  Two
states are equal when their codes are; a micro-step that changed one page
changes one int (explore.footprint).

The positions are fixed by the scenario: its processes and fork's children
(mms), its bound names (results), the mms' order, then the pages from position ``pages`` on
(pages are only ever added)."""

from __future__ import annotations

from cowdsl.scenario import Scenario
from cowdsl.semantics.state import State

Code = tuple[int, ...]


class Codec:
    __slots__ = ("mm_names", "result_names", "mm_at", "result_at", "handles", "slots", "pipes", "files", "order", "pages",
                 "file_kinds", "values", "ids")

    def __init__(self, sc: Scenario) -> None:
        self.mm_names = tuple(sorted(set(sc.processes) | {s.bind for s in sc.steps if s.op == "fork" and s.bind}))
        self.result_names = tuple(sorted({s.bind for s in sc.steps if s.bind}))
        self.mm_at = {n: i for i, n in enumerate(self.mm_names)}
        r = len(self.mm_names)
        self.result_at = {n: r + i for i, n in enumerate(self.result_names)}
        w = r + len(self.result_names)
        self.handles, self.slots, self.pipes, self.files, self.order, self.pages = w, w + 1, w + 2, w + 3, w + 4, w + 5
        self.file_kinds = sc.file_kinds  # set at the start, never changed (Machine.freeze keeps them)
        self.values: list[object] = [None]  # int -> a part's value (0: absent)
        self.ids: dict[object, int] = {None: 0}

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
            out[at] = intern(m)
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
        if after.mms is before.mms and after.results is before.results and after.handles is before.handles \
                and after.slots is before.slots and after.pipes is before.pipes and after.files is before.files:
            out = list(code[:self.pages])
        else:
            head = self.encode(State(mms=after.mms, pages=(), handles=after.handles, slots=after.slots,
                                     pipes=after.pipes, files=after.files, file_kinds=after.file_kinds,
                                     results=after.results))
            out = list(head)
        if after.pages is before.pages:
            out += code[self.pages:]
        else:
            old, intern, base = before.pages, self.intern, self.pages
            n = len(old)
            out += [code[base + i] if i < n and p is old[i] else intern(p) for i, p in enumerate(after.pages)]
        return tuple(out)

    def decode(self, code: Code) -> State:
        """The State a code stands for (names in order, as Machine.freeze leaves them)."""
        v = self.values
        r, p = len(self.mm_names), self.handles
        return State(
            mms=tuple(v[code[self.mm_at[name]]] for name in v[code[self.order]]),  # type: ignore[misc,attr-defined]
            pages=tuple(v[n] for n in code[self.pages:]),  # type: ignore[misc]
            handles=v[code[self.handles]],  # type: ignore[arg-type]
            slots=v[code[self.slots]],  # type: ignore[arg-type]
            pipes=v[code[self.pipes]],  # type: ignore[arg-type]
            files=v[code[self.files]],  # type: ignore[arg-type]
            file_kinds=self.file_kinds,
            results=tuple((name, v[n]) for name, n in zip(self.result_names, code[r:p]) if n),  # type: ignore[misc]
        )
