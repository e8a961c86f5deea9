"""Names and declarations: processes, threads, files, pipes, mappings, handles and
`as` names; what each step makes or ends; visibility across `par` blocks."""

from __future__ import annotations

from cowdsl import ops
from cowdsl import scenario as S
from cowdsl.check.bounds import Bounds
from cowdsl.check.context import Handle
from cowdsl.errors import did_you_mean, one_of
from cowdsl.ops.mmap import FILE_KINDS
from cowdsl.syntax import ast

Declaration = ast.ProcessDecl | ast.ThreadDecl | ast.FileDecl | ast.PipeDecl


class Names(Bounds):
    def fresh(self, name: ast.Name, what: str) -> bool:
        if name.text in ops.keywords():
            self.error(f"`{name.text}` is a keyword and cannot name a {what}", name.span, hint="choose another name")
            return False
        if name.text in ops.BUILTIN_ACTORS:
            self.error(f"`{name.text}` is a built-in actor and cannot name a {what}", name.span,
                       hint="choose another name")
            return False
        if self.n.is_taken(name.text):
            self.error(f"`{name.text}` is already used", name.span, hint=f"give the {what} its own name")
            return False
        return True

    def declare(self, d: Declaration) -> None:
        n = self.n
        if isinstance(d, ast.ProcessDecl):
            for nm in d.names:
                if self.fresh(nm, "process"):
                    self.add_process(nm.span)
                    n.processes[nm.text] = 0
                    n.mappings[nm.text] = {}
        elif isinstance(d, ast.ThreadDecl):
            if d.process.text not in n.processes:
                self.error(
                    f"unknown process `{d.process.text}`", d.process.span,
                    expected="a process declared above", hint=did_you_mean(d.process.text, n.processes),
                )
            elif self.fresh(d.name, "thread"):
                self.add_thread(d.name.span)
                n.threads[d.name.text] = d.process.text
        elif isinstance(d, ast.FileDecl):
            if not d.pages:
                self.error("a file needs at least one page", d.span, hint="e.g. `file F = [1]`")
            elif not self.file_too_long(d) and self.fresh(d.name, "file"):
                nums = [num for num in d.pages if isinstance(num, ast.Number)]  # a `$N` was substituted
                for num in nums:
                    self.value(num)
                self.add_pages(len(d.pages), d.span)
                n.files[d.name.text] = tuple(num.value for num in nums)
                if d.kind is not None:
                    if d.kind.text not in FILE_KINDS:
                        self.error(f"unknown file kind `{d.kind.text}`", d.kind.span, expected=one_of(FILE_KINDS),
                                   hint=did_you_mean(d.kind.text, FILE_KINDS))
                    elif d.kind.text != "disk":
                        n.file_kinds[d.name.text] = d.kind.text
        else:
            for nm in d.names:
                if self.fresh(nm, "pipe"):
                    n.pipes.add(nm.text)

    def word_offset(self, a: ast.Location) -> int | None:
        """The byte offset of the word ``buf+8`` names in its page (0 without one), or
        None, reported, when it names no 8-byte word of a 4 KiB page."""
        if a.offset is None:
            return 0
        off = a.offset.value
        if off % S.WORD_BYTES == 0 and off < S.PAGE_BYTES:
            return off
        last = S.PAGE_BYTES - S.WORD_BYTES
        if off >= S.PAGE_BYTES:
            page = (a.index.value if a.index else 0) + off // S.PAGE_BYTES
            rest = off % S.PAGE_BYTES - off % S.WORD_BYTES
            where = (f"{a.owner.text}." if a.owner else "") + f"{a.name.text}[{page}]" + (f"+{rest}" if rest else "")
            self.error(f"offset {off} is past the end of the page ({S.PAGE_BYTES} bytes)", a.offset.span,
                       expected=f"a byte offset from 0 to {last}, a multiple of {S.WORD_BYTES}",
                       hint=f"another page is named by its index: `{where}`")
        else:
            down = off - off % S.WORD_BYTES
            self.error(f"offset {off} is not a multiple of {S.WORD_BYTES}", a.offset.span,
                       expected=f"the offset of an {S.WORD_BYTES}-byte word: 0, 8, 16, ... {last}",
                       hint=f"a load, a store or a DMA moves one aligned {S.WORD_BYTES}-byte word: write "
                       f"`+{down}` or `+{min(down + S.WORD_BYTES, last)}`")
        return None

    def has_mapping(self, proc: str, name: ast.Name) -> bool:
        if name.text in self.n.mappings.get(proc, {}):
            return True
        gone = self.n.unmapped.get((proc, name.text))
        if gone and self.n.execs.get(proc) == gone:
            self.error(f"`{name.text}` is gone: {proc} ran exec at line {gone}", name.span,
                       hint="exec gives the process a new mm without mappings: map it again after the exec")
        elif gone:
            self.error(f"`{name.text}` was unmapped in {proc} at line {gone}", name.span,
                       hint="map it again, or move this step before the munmap")
        else:
            self.error(f"unknown mapping `{name.text}` in {proc}", name.span,
                       expected=f"a mapping of {proc}: {one_of(self.n.mappings.get(proc, {})) if self.n.mappings.get(proc) else 'it has none yet'}",
                       hint=did_you_mean(name.text, self.n.mappings.get(proc, {})) or "create it with `mmap(NAME, ...)` first")
        return False

    def par_visible(self, st: ast.Step, ir: S.Step) -> bool:
        """A name made inside this par block exists only after the block, for other actors."""
        used = [st.actor.text, ir.handle, ir.addr.proc if ir.addr else None, ir.addr2.proc if ir.addr2 else None]
        for name in used:
            made = self.par_made.get(name) if name else None
            if made and made[0] != st.actor.text:
                self.error(f"`{name}` is made by {made[0]} at line {made[1]} in this par block", st.span,
                           hint="another actor can use it only after the block; move this step below the `}`")
                return False
        return True

    def bind(self, st: ast.Step, spec: ops.OpSpec, task: str | None, ir: S.Step) -> None:
        """The name after `as`: a child process, a handle, a value, or the step's outcome."""
        n = self.n
        if st.bind is None:
            if spec.binds == ops.BINDS_PROCESS:
                self.error("fork needs a name for the child", st.span, hint=f"write `{st.actor.text}: fork() as B`")
            return
        name = st.bind
        if spec.binds == ops.BINDS_PROCESS:
            assert task is not None, "fork is done by a process"
            if name.text in n.processes:
                self.error(f"`{name.text}` is already a process", name.span, hint="name the child afresh")
                return
            n.later.pop(name.text, None)
            if not self.fresh(name, "process"):
                return
            self.add_process(st.span)
            n.processes[name.text] = st.span.line
            # Every name the parent has, even a MADV_DONTFORK mapping the fork does not copy:
            # the child touching it is a SIGSEGV at run time, which scenarios assert.
            n.mappings[name.text] = dict(n.mappings[task])
            for m in n.file_backed.get(task, set()):
                n.file_backed.setdefault(name.text, set()).add(m)
            n.outcomes.add(name.text)
            return
        if not self.fresh(name, "result"):
            return
        if spec.binds in (ops.BINDS_PIN, ops.BINDS_REF):
            assert task is not None, "pin and gup are done by a process"
            n.handles[name.text] = Handle(spec.binds, "write" in ir.flags, task, st.span.line)
        elif spec.binds == ops.BINDS_DEVICE:  # device-exclusive access: the device may write
            assert task is not None, "make_device_exclusive is done by a process"
            n.handles[name.text] = Handle(spec.binds, True, task, st.span.line)
        elif spec.binds == ops.BINDS_VALUE:
            n.values.add(name.text)
        n.outcomes.add(name.text)

    def effects(self, ir: S.Step) -> None:
        """What a checked step makes or ends: mappings, an exited process, a released handle."""
        n = self.n
        if ir.op in ("mmap", "munmap", "exit") and ir.part is None:  # munmap of a part: the rest stays
            task = ir.task
            assert task is not None, f"{ir.op} is done by a process"
            if ir.op == "exit":
                n.exited[task] = ir.span.line
                for h in n.handles.values():
                    if h.owner == task and h.released_at is None:
                        h.released_at, h.released_by = ir.span.line, "exit"
                return
            mapping = ir.mapping
            assert mapping is not None, f"{ir.op} names a mapping"
            if ir.op == "mmap":
                n.mappings[task][mapping] = ir.pages
                n.unmapped.pop((task, mapping), None)
                if ir.file:
                    n.file_backed.setdefault(task, set()).add(mapping)
            else:
                del n.mappings[task][mapping]
                n.unmapped[(task, mapping)] = ir.span.line
        elif ir.op == "mremap":
            task, src = ir.task, ir.mapping
            assert task is not None and src is not None, "mremap is done by a process, on a mapping"
            if ir.to is not None:  # the pages move to a new mapping; the whole of src moves: src is gone
                first, last = ir.part if ir.part is not None else (0, n.mappings[task][src] - 1)
                n.mappings[task][ir.to] = last - first + 1
                n.unmapped.pop((task, ir.to), None)
                if src in n.file_backed.get(task, set()):
                    n.file_backed[task].add(ir.to)
                if ir.part is None:
                    del n.mappings[task][src]
                    n.unmapped[(task, src)] = ir.span.line
            elif ir.pages:
                n.mappings[task][src] = ir.pages
        elif ir.op == "exec":  # a new mm: every mapping is gone, the handles stay the process's
            task = ir.task
            assert task is not None, "exec is done by a process"
            for mapping in n.mappings[task]:
                n.unmapped[(task, mapping)] = ir.span.line
            n.mappings[task] = {}
            n.file_backed.pop(task, None)
            n.execs[task] = ir.span.line
        elif ir.op in ("unpin", "put"):
            assert ir.handle is not None, f"{ir.op} names a handle"
            h = n.handles[ir.handle]
            h.released_at, h.released_by = ir.span.line, ir.op
