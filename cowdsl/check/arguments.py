"""A step's arguments against its op in the registry: positional parameters
(numbers, mappings, pipes, handles, addresses), flags and keywords."""

from __future__ import annotations

from typing import Any

from cowdsl import ops
from cowdsl import scenario as S
from cowdsl.check.names import Names
from cowdsl.errors import did_you_mean, one_of
from cowdsl.syntax import ast, kernel_words

Positional = ast.Location | ast.Number
Fields = dict[str, Any]  # keyword arguments of scenario.Step


class Arguments(Names):
    def args(self, st: ast.Step, spec: ops.OpSpec, task: str | None) -> S.Step | None:
        """The checked step, or None (the problems are reported)."""
        flags: set[str] = set()
        fields: Fields = dict(pages=1)
        positional = [a for a in st.args if not isinstance(a, ast.KeywordArg)]
        keywords = [a for a in st.args if isinstance(a, ast.KeywordArg)]
        ok = True
        params = list(spec.params)
        taken_args = positional[: len(params)]
        rest = positional[len(params) :]
        if len(taken_args) < len(params):
            missing = params[len(taken_args)]
            self.error(f"`{spec.name}` needs {missing.name} ({missing.doc})", st.span,
                       expected=spec.signature(), hint=f"write `{st.actor.text}: {spec.signature()}`")
            return None
        for p, a in zip(params, taken_args):
            ok &= self.param(p, a, spec, task, fields)
        chosen: dict[str, ast.Location] = {}
        ok &= self.flags(rest, spec, chosen, flags)
        for g in spec.flags:
            if g.name not in chosen and g.default:
                flags.add(g.default)
            if ok and g.name not in chosen and g.default is None and g.name in ("prot", "advice"):  # not after a bad flag
                what = "advice" if g.name == "advice" else "a protection"
                self.error(f"`{spec.name}` needs {what}", st.span, expected=one_of(g.choices),
                           hint=f"e.g. `{st.actor.text}: {spec.name}(buf, {g.choices[0]})`")
                ok = False
        ok &= self.keywords(keywords, spec, fields)
        if not ok:
            return None
        given = {kw.key.text: kw for kw in keywords}
        if spec.name in ("odirect_read", "odirect_write") and not fields.get("file"):
            self.error(f"`{spec.name}` needs the file it reads or writes", st.span, expected="file=F",
                       hint=f"declare `file F = [1]` and write `{st.actor.text}: {spec.name}(buf, file=F)`")
            return None
        if spec.name == "mmap" and fields.get("file"):
            if "anon" in flags:
                self.error("`anon` and `file=` contradict each other", chosen["backing"].span, hint="drop one of them")
                return None
            have = len(self.n.files[fields["file"]])
            if "pages" not in given:
                fields["pages"] = have
            elif fields["pages"] > have:
                self.error(f"file `{fields['file']}` has {have} page{'s' if have > 1 else ''}, not {fields['pages']}",
                           given["pages"].value.span, expected=f"pages={have} or fewer",
                           hint="leave out `pages=` to map the whole file")
                return None
        if spec.name == "mmap":
            self.add_pages(fields["pages"], st.span)
        if spec.name == "mremap" and task is not None and not self.mremap_args(st, task, fields, flags, given):
            return None
        if spec.name == "madvise" and "wipeonfork" in flags and task is not None:
            mapping = fields.get("mapping")
            if mapping in self.n.mappings.get(task, {}) and mapping in self.n.file_backed.get(task, set()):
                self.error(f"MADV_WIPEONFORK applies to private anonymous mappings only; `{mapping}` maps a file",
                           chosen["advice"].span)
                return None
        if spec.actor == ops.DEVICE:
            fields["handle"] = st.actor.text
        return S.Step(number=len(self.steps) + 1, actor=st.actor.text, task=task, op=spec.name,
                      bind=st.bind.text if st.bind else None, text=self.text_of(st.span), span=st.span,
                      flags=frozenset(flags), **fields)

    def flags(self, words_given: list[Positional], spec: ops.OpSpec, chosen: dict[str, ast.Location],
              flags: set[str]) -> bool:
        """The bare words after the parameters: one flag of each group at most."""
        ok = True
        words = spec.flag_words()
        for a in words_given:
            if not (isinstance(a, ast.Location) and a.bare):
                what = "a number" if isinstance(a, ast.Number) else f"`{a.text()}`"
                self.error(f"too many arguments for `{spec.name}`: {what}", a.span, expected=spec.signature())
                ok = False
                continue
            w = a.name.text
            if w not in words:
                self.error(f"unknown flag `{w}` for `{spec.name}`", a.span,
                           expected=one_of(words) if words else "no flags",
                           hint=kernel_words.flag_hint(spec.name, w) or did_you_mean(w, words))
                ok = False
                continue
            g = words[w]
            if g.name in chosen:
                self.error(f"`{w}` conflicts with `{chosen[g.name].name.text}`", a.span,
                           expected=f"one {g.name}: {one_of(g.choices)}", hint="drop one of them")
                ok = False
                continue
            chosen[g.name] = a
            flags.add(w)
        return ok

    def keywords(self, given: list[ast.KeywordArg], spec: ops.OpSpec, fields: Fields) -> bool:
        """``pages=N``, ``count=N``, ``file=F``: known to the op, in range, naming a declared file."""
        ok = True
        kws = {k.name: k for k in spec.keywords}
        for kw in given:
            k = kws.get(kw.key.text)
            if k is None:
                self.error(f"unknown keyword `{kw.key.text}=` for `{spec.name}`", kw.key.span,
                           expected=one_of(f"{x}=" for x in kws) if kws else "no keywords",
                           hint=did_you_mean(kw.key.text, kws))
                ok = False
            elif k.kind == "int":
                if not isinstance(kw.value, ast.Number):
                    self.error(f"`{k.name}=` takes a number", kw.value.span, expected="a number")
                    ok = False
                elif self.keyword_out_of_range(k, kw.value):
                    ok = False
                else:
                    fields[k.name] = kw.value.value
            elif k.kind == "new-mapping":
                if not isinstance(kw.value, ast.Name) or kw.value.text in ops.keywords():
                    self.error(f"`{k.name}=` takes a new mapping's name", kw.value.span, expected="a name, e.g. buf2")
                    ok = False
                else:
                    fields[k.name] = kw.value.text
            elif k.kind == "file":
                if not isinstance(kw.value, ast.Name):
                    self.error(f"`{k.name}=` takes a file name, not a number", kw.value.span,
                               expected="a file declared with `file NAME = [...]`",
                               hint=f"e.g. `{k.name}={next(iter(self.n.files), 'F')}`")
                    ok = False
                elif kw.value.text not in self.n.files:
                    got = kw.value.text
                    self.error(f"unknown file `{got}`", kw.value.span, expected="a file declared with `file NAME = [...]`",
                               hint=did_you_mean(got, self.n.files))
                    ok = False
                else:
                    fields["file"] = kw.value.text
        return ok

    def mremap_args(self, st: ast.Step, task: str, fields: Fields, flags: set[str],
                    given: dict[str, ast.KeywordArg]) -> bool:
        """mremap moves (to=NAME), resizes (pages=N) or moves a THP's tail pages away (tail): one of them."""
        src = fields.get("mapping")
        ways = [w for w in ("to", "pages") if w in given] + (["tail"] if "tail" in flags else [])
        if len(ways) != 1:
            self.error("`mremap` moves, resizes or moves the tail pages: give one of `to=NAME`, `pages=N`, `tail`"
                       + (f", not {' and '.join(f'`{w}`' for w in ways)}" if ways else ""), st.span,
                       expected="`mremap(buf, to=NAME)`, `mremap(buf, pages=N)` or `mremap(buf, tail)`")
            return False
        if "pages" in given:
            if fields.get("part") is not None:
                self.error("`pages=` resizes the whole mapping", given["pages"].span,
                           expected=f"`mremap({src}, pages=N)`", hint="to move a part, write `to=NAME`")
                return False
            grow = fields["pages"] - self.n.mappings[task][src] if src else 0
            if grow > 0:
                self.add_pages(grow, st.span)
            return True
        fields["pages"] = 0  # no resize
        to = fields.get("to")
        if to is not None and to in self.n.mappings.get(task, {}):
            self.error(f"`{to}` is already mapped in {task}", given["to"].value.span,
                       hint="munmap it first or choose another name")
            return False
        return True

    def param(self, p: ops.Param, a: Positional, spec: ops.OpSpec, task: str | None, fields: Fields) -> bool:
        n = self.n
        if p.kind == ops.VALUE:
            if not isinstance(a, ast.Number):
                self.error(f"`{spec.name}` takes a number as {p.name}", a.span, expected="a number, e.g. 1")
                return False
            fields["value"] = a.value
            return self.value(a)
        if not isinstance(a, ast.Location):
            self.error(f"`{spec.name}` takes {p.doc} as {p.name}", a.span, expected=p.doc)
            return False
        if a.offset is not None and not p.word:
            whole = a.text().rsplit("+", 1)[0]
            what = "a whole page" if p.kind in ops.ADDRESSES else "whole pages"
            words = ", ".join(o.name for o in ops.OPS.values() if any(q.word for q in o.params))
            self.error(f"`{spec.name}` works on {what}: `+{a.offset.value}` names one 8-byte word", a.offset.span,
                       expected=f"`{whole}`", hint=f"write `{whole}`; an offset is for an op that loads, stores "
                       f"or transfers one word ({words})")
            return False
        if p.kind == ops.PIPE:
            if not a.bare or a.name.text not in n.pipes:
                self.error(f"unknown pipe `{a.text()}`", a.span, expected="a pipe declared with `pipe NAME`",
                           hint=did_you_mean(a.text(), n.pipes))
                return False
            fields["pipe"] = a.name.text
            return True
        if p.kind == ops.HANDLE:
            return self.handle(a, spec, fields)
        if p.kind in (ops.NEW_MAPPING, ops.MAPPING, ops.PART):
            assert task is not None, "an op on a mapping is done by a process"
            return self.mapping(p, a, spec, task, fields)
        return self.address(p, a, spec, task, fields)

    def mapping(self, p: ops.Param, a: ast.Location, spec: ops.OpSpec, task: str, fields: Fields) -> bool:
        """A mapping of the actor's process: a new name (mmap) or one it has."""
        n = self.n
        if p.kind == ops.NEW_MAPPING:
            if not a.bare:
                self.error("a new mapping is named by a plain name", a.span, expected="a name, e.g. buf")
                return False
            name = a.name.text
            if name in ops.keywords():
                self.error(f"`{name}` is a keyword and cannot name a mapping", a.name.span, hint="choose another name")
                return False
            if name in n.mappings[task]:
                self.error(f"`{name}` is already mapped in {task}", a.span, hint="munmap it first or choose another name")
                return False
            fields["mapping"] = name
            return True
        if p.kind == ops.PART and a.owner is None and a.index is not None:
            return self.part(a, task, fields)
        if a.owner is not None:
            self.error(f"`{spec.name}` works on the actor's own mappings", a.span,
                       expected=f"`{a.text().split('.', 1)[1]}` without a process")
            return False
        if not a.bare:
            self.error(f"`{spec.name}` takes a whole mapping", a.span, expected="a mapping name, e.g. buf")
            return False
        if not self.has_mapping(task, a.name):
            return False
        fields["mapping"] = a.name.text
        return True

    def part(self, a: ast.Location, task: str, fields: Fields) -> bool:
        """Pages of a mapping: ``buf[i]`` or ``buf[i..j]`` (munmap, mprotect, madvise of a part)."""
        assert a.index is not None
        if not self.has_mapping(task, a.name):
            return False
        pages = self.n.mappings[task][a.name.text]
        first, last = a.index.value, a.end.value if a.end is not None else a.index.value
        for num in (a.index, a.end):
            if num is not None and num.value >= pages:
                self.error(f"page {num.value} is outside `{a.name.text}`, which has {pages} page{'s' if pages > 1 else ''}",
                           num.span, expected=f"an index from 0 to {pages - 1}")
                return False
        if last < first:
            assert a.end is not None
            self.error(f"the range `{a.text()}` ends before it starts", a.end.span,
                       expected=f"a last page from {first} to {pages - 1}", hint=f"write `{a.name.text}[{last}..{first}]`")
            return False
        fields["mapping"] = a.name.text
        if (first, last) != (0, pages - 1):
            fields["part"] = (first, last)
        return True

    def handle(self, a: ast.Location, spec: ops.OpSpec, fields: Fields) -> bool:
        """The pin unpin releases, or the gup reference put releases."""
        want = ops.BINDS_PIN if spec.name == "unpin" else ops.BINDS_REF
        h = self.n.handles.get(a.name.text) if a.bare else None
        if h is None:
            self.error(f"unknown {'pin' if want == ops.BINDS_PIN else 'gup reference'} `{a.text()}`", a.span,
                       expected=f"a name bound by `{'pin' if want == ops.BINDS_PIN else 'gup'}(...) as NAME`",
                       hint=did_you_mean(a.text(), [k for k, v in self.n.handles.items() if v.kind == want]))
            return False
        if h.kind != want:
            other = "put" if spec.name == "unpin" else "unpin"
            how = (f"release it with `{other}({a.name.text})`" if h.kind in (ops.BINDS_PIN, ops.BINDS_REF)
                   else "it is not released by a step: a CPU access to the page revokes it")
            self.error(f"`{a.name.text}` is a {h.what}", a.span, hint=how)
            return False
        if h.released_at is not None:
            self.error(f"`{a.name.text}` was already {h.released()}", a.span,
                       hint="each pin or reference is released once")
            return False
        fields["handle"] = a.name.text
        return True

    def address(self, p: ops.Param, a: ast.Location, spec: ops.OpSpec, task: str | None, fields: Fields) -> bool:
        """A page: ``buf[i]`` of the actor's own memory, or ``A.buf[i]`` of a process."""
        n = self.n
        if p.kind == ops.ADDRESS and a.owner is not None and a.owner.text != task:
            self.error(f"`{spec.name}` works on the actor's own memory", a.span, expected=f"`{a.name.text}` without a process",
                       hint="to reach another process's memory use process_vm_writev/readv or proc_mem_write")
            return False
        if p.kind == ops.REMOTE and a.owner is None:
            self.error(f"`{spec.name}` needs the process whose page it is", a.span, expected=f"PROCESS.{a.name.text}",
                       hint=f"e.g. `{next(iter(n.processes), 'A')}.{a.text()}`")
            return False
        if a.end is not None:
            self.error(f"`{spec.name}` takes one page, not a range", a.span, expected=f"one page, e.g. `{a.name.text}[{a.index.value if a.index else 0}]`",
                       hint="a range of pages is for munmap, mprotect and madvise")
            return False
        proc = a.owner.text if a.owner is not None else task
        assert proc is not None, "an op with an address of the actor's own memory is done by a process"
        if a.owner is not None and a.owner.text in n.later:
            self.error(f"`{a.owner.text}` does not exist yet: it is created by the fork at line {n.later[a.owner.text]}",
                       a.owner.span, hint="move this step after the fork")
            return False
        if a.owner is not None and a.owner.text not in n.processes:
            self.error(f"unknown process `{a.owner.text}`", a.owner.span, expected="a process",
                       hint=did_you_mean(a.owner.text, n.processes))
            return False
        if a.owner is not None and proc in n.exited:
            self.error(f"process `{proc}` exited at line {n.exited[proc]}", a.owner.span,
                       hint="its memory is gone; move this step before the exit")
            return False
        if not self.has_mapping(proc, a.name):
            return False
        pages = n.mappings[proc][a.name.text]
        if a.index is not None and a.index.value >= pages:
            self.error(f"page {a.index.value} is outside `{a.name.text}`, which has {pages} page{'s' if pages > 1 else ''}",
                       a.index.span, expected=f"an index from 0 to {pages - 1}")
            return False
        offset = self.word_offset(a)
        if offset is None:
            return False
        # A second address parameter (ksm_merge's `other`) goes to addr2.
        fields["addr2" if "addr" in fields else "addr"] = S.Addr(proc, a.name.text, a.index.value if a.index else 0,
                                                                 offset)
        return True
