"""Steps: the op of each step, who may do it, and `par` blocks."""

from __future__ import annotations

from typing import Literal

import attrs

from cowdsl import ops
from cowdsl.check.arguments import Arguments
from cowdsl.errors import Span, did_you_mean
from cowdsl.syntax import ast


class Steps(Arguments):
    def step(self, st: ast.Step) -> None:
        spec = ops.OPS.get(st.op.text)
        if spec is None:
            self.error(
                f"unknown op `{st.op.text}`", st.op.span,
                expected="an op (see `cowdsl ops`)", hint=did_you_mean(st.op.text, ops.OPS),
            )
            return
        task = self.actor(st, spec)
        if task is False:
            return
        ir = self.args(st, spec, task)
        if ir is None:
            return
        if spec.name == "exec" and not self.exec_without_threads(st, ir.task):
            return
        if self.par is not None:
            if not self.par_visible(st, ir):
                return
            ir = attrs.evolve(ir, block=self.par, par=True)
        self.bind(st, spec, task, ir)
        self.effects(ir)
        self.steps.append(ir)
        if self.par is not None and st.bind is not None:
            self.par_made[st.bind.text] = (st.actor.text, st.span.line)

    def par_block(self, block: ast.ParBlock) -> None:
        """Steps inside run concurrently: each actor in its order, actors interleaved."""
        par = Span(block.span.line, block.span.col, block.span.col + 3)
        if not block.steps:
            self.error("an empty `par` block", par, hint="put two or more actors' steps inside")
            return
        self.par, self.par_made = len(self.steps) + 1, {}
        for st in block.steps:
            self.step(st)
        if len({st.actor.text for st in block.steps}) < 2:
            self.error("a `par` block with one actor runs in order anyway", par,
                       hint="put steps of two or more actors inside, or drop the `par`")
        self.par = None

    def exec_without_threads(self, st: ast.Step, proc: str | None) -> bool:
        """execve kills the process's other threads first (de_thread), which the model does not do."""
        threads = [t for t, p in self.n.threads.items() if p == proc]
        if threads:
            self.error(f"`exec` in {proc}, which has threads ({', '.join(threads)})", st.op.span,
                       hint="execve's de_thread (killing the other threads) is not modelled: exec in a process "
                       "without `thread` declarations")
            return False
        return True

    @staticmethod
    def ops_of(actor: str) -> str:
        return " or ".join(name for name, spec in ops.OPS.items() if spec.actor == actor)

    def actor(self, st: ast.Step, spec: ops.OpSpec) -> str | None | Literal[False]:
        """The process the actor runs in (None for devices and built-in actors), or False."""
        a = st.actor.text
        n = self.n
        op = st.op.text
        if a in ops.BUILTIN_ACTORS:
            if spec.actor != a:
                doer = "a process" if spec.actor == ops.TASK else (
                    "a device (a pin or gup reference)" if spec.actor == ops.DEVICE else f"`{spec.actor}`")
                self.error(f"`{a}` cannot {op}", st.actor.span, expected=self.ops_of(a),
                           hint=f"`{op}` is done by {doer}")
                return False
            return None
        if a in n.handles:
            h = n.handles[a]
            if spec.actor != ops.DEVICE:
                self.error(f"`{a}` is a {h.what}; it can only do DMA", st.actor.span, expected=self.ops_of(ops.DEVICE),
                           hint=f"a process does `{op}`, e.g. `{h.owner}: {op}(...)`")
                return False
            if h.released_at is not None:
                self.error(f"`{a}` was {h.released()}", st.actor.span,
                           hint=f"DMA through a {h.what} must come before it is released")
                return False
            if op == "dma_write" and not h.write:
                self.error(f"`{a}` is a read-only {h.what}; the device cannot write through it", st.actor.span,
                           hint=f"take it with `write`, e.g. `{'pin' if h.kind == ops.BINDS_PIN else 'gup'}(buf, write) as {a}`")
                return False
            return None
        if a in n.processes or a in n.threads:
            proc = n.threads.get(a, a)
            if proc in n.exited:
                self.error(f"process `{proc}` exited at line {n.exited[proc]}", st.actor.span,
                           hint="a step by an exited process cannot run; move it before the exit")
                return False
            if spec.actor == ops.DEVICE:
                self.error(f"`{op}` is done by a device through a pin", st.actor.span,
                           expected="a pin or gup reference as the actor",
                           hint=f"e.g. `mr: {op}(...)` after `{a}: pin(buf, write) as mr`")
                return False
            if spec.actor == ops.RECLAIM:
                self.error(f"`{op}` is done by the reclaim actor", st.actor.span,
                           expected="`reclaim`", hint=f"write `reclaim: {op}({a}.buf)`, or `{a}: madvise(buf, pageout)`")
                return False
            if spec.actor != ops.TASK:
                self.error(f"`{op}` is done by the built-in actor `{spec.actor}`", st.actor.span,
                           expected=f"`{spec.actor}`", hint=f"write `{spec.actor}: {op}({a}.buf, ...)`")
                return False
            return proc
        if a in n.later:
            self.error(f"`{a}` does not exist yet: it is created by the fork at line {n.later[a]}", st.actor.span,
                       hint="steps by a child come after the fork that creates it")
            return False
        builtins = ", ".join(f"`{b}`" for b in ops.BUILTIN_ACTORS)
        actors = set(n.processes) | set(n.threads) | set(n.handles) | set(ops.BUILTIN_ACTORS)
        self.error(f"unknown actor `{a}`", st.actor.span,
                   expected=f"a process, a thread, a pin or a built-in actor ({builtins})",
                   hint=did_you_mean(a, actors))
        return False
