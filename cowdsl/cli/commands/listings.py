"""`cowdsl ops [NAME]`, `cowdsl backends [SPEC]`, `cowdsl explain RULE`, `cowdsl new NAME`: help at the prompt."""

from __future__ import annotations

import inspect
from pathlib import Path

from cowdsl import ops as registry_of_ops
from cowdsl.cli import EXIT_ERROR, EXIT_OK
from cowdsl.cli.output import err, out, shown
from cowdsl.errors import did_you_mean
from cowdsl.kernel import eras, options, timeline
from cowdsl.kernel.spec import SpecError, resolve
from cowdsl.kernel.version import Version
from cowdsl.semantics import registry
from cowdsl.semantics.backend import RULES, Backend


def ops(args) -> int:
    name = getattr(args, "name", None)
    if name:
        if name in registry_of_ops.FACTS:
            f = registry_of_ops.FACTS[name]
            out(f"{f.name}: a fact ({f.kind}); {f.doc}")
            return EXIT_OK
        if name not in registry_of_ops.OPS:
            hint = did_you_mean(name, list(registry_of_ops.OPS) + list(registry_of_ops.FACTS))
            err(f"cowdsl: no op or fact `{shown(name)}`" + (f"; {hint}" if hint else "") + " (see `cowdsl ops`)")
            return EXIT_ERROR
        _op(registry_of_ops.OPS[name], program=True)
        return EXIT_OK
    for op in registry_of_ops.OPS.values():
        _op(op)
    out("\nFacts for assertions:")
    for f in registry_of_ops.FACTS.values():
        args_ = {(1,): "X", (0, 1): "[P]"}.get(f.arity, "X")
        out(f"  {f.name}({args_}): {f.doc}")
    return EXIT_OK


def _op(op, program: bool = False) -> None:
    who = {"task": "", "device": "  [done by a pin: PIN: op(...)]", "reclaim": "  [done by reclaim]",
           "ksmd": "  [done by ksmd]"}[op.actor]
    out(f"{op.signature()}{who}")
    out(f"    {op.doc}; kernel: {op.kernel}")
    for p in op.params:
        if p.word:
            out(f"    {p.name}: {p.doc}, or one 8-byte word of the page: {p.doc.split(',')[0].split(' ')[0]}+8")
    for g in op.flags:
        out(f"    {'|'.join(g.choices)}: {g.doc}" + (f" (default {g.default})" if g.default else ""))
    for k in op.keywords:
        out(f"    {k.name}=: {k.doc}" + (f" (default {k.default})" if k.default is not None else ""))
    if program:  # the preemption points the explorer interleaves, and the lock each waits on
        for word, prog in (("", op.program), *op.flag_programs):
            out(f"    micro-steps ({prog.name}{', with `' + word + '`' if word else ''}):")
            for ms in prog.steps:
                out(f"      {ms.label:<8} lock {ms.lock.value:<10} {ms.doc}")


def backends(args) -> int:
    if getattr(args, "spec", None):
        return _one_backend(args.spec)
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


def _one_backend(text: str) -> int:
    """One spec: its model, its options, and the changes of the timeline it has."""
    try:
        spec = resolve(text)
    except SpecError as e:
        err(f"cowdsl: {shown(e.message)}" + (f"; {shown(e.hint)}" if e.hint else ""))
        return EXIT_ERROR
    out(f"{shown(text)}: {spec.label}")
    if spec.native:
        out("  the real kernel under this machine (`cowdsl crosscheck`)")
        return EXIT_OK
    era = eras.BY_NAME[spec.model]
    out(f"  model {era.name} ({era.versions}): {era.description}")
    offered = options.of_era(spec.model)
    for k, v in spec.options:
        if k in offered:
            out(f"  {k}={v}: {offered[k].doc}")
    ver = spec.version or Version.parse(era.preset)
    if ver is not None:
        out(f"  changes in {ver} (commit, mainline release, stable backports):")
        for c in timeline.contained(ver):
            stable = ", ".join(f"{a}.{b}.{sub}" for (a, b), sub in c.stable)
            out(f"    {c.commit} {c.title} ({c.mainline}{'; ' + stable if stable else ''})"
                + ("" if c.modelled else " [not modelled]"))
        missing = [c for c in timeline.ORDER if not c.in_version(ver)]
        if missing:
            out(f"  not in {ver}:")
            for c in missing:
                out(f"    {c.commit} {c.title} ({c.mainline})")
    return EXIT_OK


def explain(args) -> int:
    """What a rule decides, which eras define it, and the changes that set what it reads."""
    rule = args.rule
    if rule not in RULES:
        hint = did_you_mean(rule, list(RULES))
        err(f"cowdsl: no rule `{shown(rule)}`" + (f"; {hint}" if hint else "") + " (rules: `cowdsl backends`)")
        return EXIT_ERROR
    base = getattr(Backend, rule)
    out(f"{rule}: {inspect.getdoc(base)}")
    for era in eras.ERAS:
        cls = registry.BACKENDS[era.name]
        if rule in vars(cls):
            doc = inspect.getdoc(vars(cls)[rule]) or ""
            out(f"\n  {era.name} ({era.versions}):")
            for line in doc.splitlines():
                out(f"    {line}")
    return EXIT_OK


TEMPLATE = """scenario "{name}"
ref "the thread, commit or selftest this question comes from"

# What happens, step by step, and which kernel functions decide it.
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
A: pin(buf, write, longterm) as mr      # pin_user_pages(FOLL_WRITE|FOLL_LONGTERM)
A: fork() as B
A: write(buf, 2)
mr: dma_read() as seen

assert mr is A.buf                      # the pin still maps the parent's page
assert seen == 2
expect pass on anon-exclusive
"""


def new(args) -> int:
    """Write a commented template scenario to NAME.cow (never over an existing file)."""
    path = Path(args.name if args.name.endswith(".cow") else args.name + ".cow")
    try:
        with open(path, "x", encoding="utf-8") as f:
            f.write(TEMPLATE.format(name=path.stem.replace('"', "'")))
    except FileExistsError:
        err(f"cowdsl: {shown(str(path))} exists; not overwritten")
        return EXIT_ERROR
    except OSError as e:
        err(f"cowdsl: {shown(str(path))}: {shown(e.strerror or e)}")
        return EXIT_ERROR
    out(f"wrote {shown(str(path))}: edit it, then `cowdsl run {shown(str(path))}`")
    return EXIT_OK
