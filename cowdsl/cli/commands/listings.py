"""`cowdsl ops` and `cowdsl backends`: what a scenario may say, and what it may run on."""

from __future__ import annotations

from cowdsl import ops as registry_of_ops
from cowdsl.cli import EXIT_OK
from cowdsl.cli.output import out
from cowdsl.kernel import eras, options, timeline
from cowdsl.semantics import registry


def ops(args) -> int:
    for op in registry_of_ops.OPS.values():
        who = {"task": "", "device": "  [done by a pin: PIN: op(...)]", "reclaim": "  [done by reclaim]",
               "ksmd": "  [done by ksmd]"}[op.actor]
        out(f"{op.signature()}{who}")
        out(f"    {op.doc}; kernel: {op.kernel}")
        for g in op.flags:
            out(f"    {'|'.join(g.choices)}: {g.doc}" + (f" (default {g.default})" if g.default else ""))
        for k in op.keywords:
            out(f"    {k.name}=: {k.doc}" + (f" (default {k.default})" if k.default is not None else ""))
    out("\nFacts for assertions:")
    for f in registry_of_ops.FACTS.values():
        args_ = {(1,): "X", (0, 1): "[P]"}.get(f.arity, "X")
        out(f"  {f.name}({args_}): {f.doc}")
    return EXIT_OK


def backends(args) -> int:
    for era in eras.ERAS:
        cls = registry.BACKENDS[era.name]
        out(f"{era.name:<16} {era.versions:<10} {era.description}")
        if era.aliases:
            out(f"{'':<16} aliases: {', '.join(era.aliases)}")
        own = options.of_era(era.name)
        changes = [k for k, o in own.items() if o.kind == options.CHANGE]
        variants = [k for k, o in own.items() if o.kind == options.VARIANT]
        if changes:
            out(f"{'':<16} change options: " + ", ".join(f"{k}={'|'.join(own[k].choices)}" for k in changes))
        if variants:
            out(f"{'':<16} variants: " + ", ".join(f"{k}={'|'.join(own[k].choices)}" for k in variants))
        out(f"{'':<16} rules: {', '.join(cls.overridden_rules()) or '(none of its own)'}")
    out("\nOptions (a change option switches one change of the timeline; on an era name it has the value of "
        "the era's last release; a variant is a design argued on the list and never merged, off by default):")
    for o in options.OPTIONS:
        where = ", ".join(o.eras) or "set by versions only"
        out(f"  {o.name}={'|'.join(o.choices)} [{o.kind}; {where}]: {o.doc}")
    out("\nThe timeline (a version has a change from its mainline release, or from the stable sublevel listed):")
    for c in sorted(timeline.TIMELINE, key=lambda c: c.mainline.key()):
        stable = ", ".join(f"{ln[0]}.{ln[1]}.{sub}" for ln, sub in c.stable)
        sets = ", ".join(f"{k}={v}" for k, v in c.sets)
        out(f"  {str(c.mainline):<8} {c.commit} {c.title}")
        out(f"  {'':<8} sets {sets}" + (f"; stable: {stable}" if stable else ""))
    out(f"\nBackend specs: NAME[:OPTION=CHOICE]... (early-cow:pin_scope=longterm), a kernel version "
        f"(5.8, 5.9-rc4, 5.4.214: a bare 5.4 is mainline 5.4 as released), or `{eras.NATIVE}`, "
        "this machine's kernel.")
    return EXIT_OK
