"""Hover texts (Markdown): ops, flags, keyword arguments and facts from the op
registry; backends and versions from the kernel timeline; the keywords of the
language."""

from __future__ import annotations

from cowdsl import ops
from cowdsl.kernel import eras, options, timeline
from cowdsl.kernel.spec import SpecError, resolve
from cowdsl.kernel.version import Version

KEYWORDS: dict[str, str] = {
    "scenario": '`scenario "NAME"`: the scenario\'s name (default: the file name)',
    "ref": '`ref "TEXT"`: a source (a mail thread, a commit, a CVE); any number',
    "process": "`process A, C`: processes that exist at the start",
    "thread": "`thread T of A`: a thread sharing A's address space",
    "of": "`thread T of A`: a thread sharing A's address space",
    "file": "`file F = [1, 2]`: a file; its page-cache pages hold these values",
    "pipe": "`pipe P`: a pipe, for `vmsplice` and `pipe_read`",
    "as": "`ACTOR: op(...) as NAME`: names what the step made (a child, a pin, a value, the step's outcome)",
    "par": "`par { ... }`: the steps run concurrently; each actor keeps its program order, "
           "different actors interleave at the kernel's preemption points",
    "assert": "`assert EXPR`: EXPR holds in every final state (= `always`, herd's `forall`)",
    "always": "`always: EXPR`: EXPR is true in every final state (herd `forall`)",
    "forall": "`forall: EXPR`: EXPR is true in every final state (= `always`)",
    "sometimes": "`sometimes: EXPR`: EXPR is true in at least one final state (herd `exists`)",
    "exists": "`exists: EXPR`: EXPR is true in at least one final state (= `sometimes`); `~exists` = `never`",
    "never": "`never: EXPR`: EXPR is false in every final state (herd `~exists`)",
    "invariant": "`invariant EXPR`: EXPR is true in every reachable state, not only final ones",
    "reachable": "`reachable: EXPR`: EXPR is true in at least one reachable state, final or not (EF)",
    "expect": "`expect pass|fail on BACKEND, ... [when PARAM=VALUE, ...]`: what each backend must answer",
    "on": "`expect pass|fail on BACKEND, ...`: what each backend must answer; "
          "`assert on BACKEND, ...: EXPR`: judged on these backends only",
    "when": "`expect ... when kind=thp|pte_thp, pages=2`: only for the swept scenarios with these values; "
            "it overrides a line with fewer conditions",
    "include": '`include "prelude.cow"`: the lines of a .cow file in this folder or below, here',
    "const": "`const N = 4`: a number, used as `$N` where a number goes",
    "param": "`param kind in small, thp`: the file runs once per value (per combination of several "
             "params); `$kind` stands for the value",
    "in": "`param NAME in a, b`: the values the file is run with",
    "pass": "`expect pass on ...`: every assertion holds on these backends",
    "fail": "`expect fail on ...`: some assertion fails on these backends",
    "and": "boolean and", "or": "boolean or", "not": "boolean not",
    "implies": "`a implies b`: not a, or b (weakest binding, right-associative)",
    "is": "`X is Y`: the same page; `is not`: different pages",
    "true": "the constant true", "false": "the constant false",
}

_ACTOR_WORDS = {
    ops.TASK: "a process or a thread",
    ops.DEVICE: "a pin or gup reference (the device doing DMA through it)",
    ops.RECLAIM: "the built-in actor `reclaim`",
    ops.KSMD: "the built-in actor `ksmd`",
}


def op_doc(name: str) -> str | None:
    spec = ops.OPS.get(name)
    if spec is None:
        return None
    out = [f"```cow\n{spec.signature()}\n```", spec.doc, "", f"**Kernel:** `{spec.kernel}`", "",
           f"**Done by:** {_ACTOR_WORDS.get(spec.actor, spec.actor)}"]
    if spec.params:
        out += ["", "**Parameters:**"] + [f"- `{p.name}`: {p.doc}" for p in spec.params]
    if spec.flags:
        out += ["", "**Flags:**"]
        for g in spec.flags:
            dflt = f" (default `{g.default}`)" if g.default else " (optional)"
            out.append(f"- {' | '.join(f'`{c}`' for c in g.choices)}{dflt}: {g.doc}")
    if spec.keywords:
        out += ["", "**Keywords:**"] + [f"- `{k.name}=`: {k.doc}" + (f" (default {k.default})" if k.default is not None else "")
                                        for k in spec.keywords]
    out += _micro_steps(spec)
    return "\n".join(out)


def _micro_steps(spec: ops.OpSpec) -> list[str]:
    """The op's micro-steps: the kernel functions between its preemption points, per program."""
    out: list[str] = []
    for prog in spec.programs():
        steps = [s for s in prog.steps if s.doc]
        if not steps:
            continue
        chosen = next((w for w, p in spec.flag_programs if p is prog), None)
        out += ["", f"**Micro-steps** (`{prog.name}`" + (f", with `{chosen}`" if chosen else "") + "):"]
        out += [f"{i}. `{s.label}` [{s.lock.name.lower()}]: `{s.doc}`" for i, s in enumerate(steps, 1)]
    return out


def flag_doc(word: str, op: str | None) -> str | None:
    specs = [ops.OPS[op]] if op in ops.OPS else list(ops.OPS.values())
    out: list[str] = []
    for spec in specs:
        g = spec.flag_words().get(word)
        if g is not None:
            out.append(f"`{word}` — flag of `{spec.name}` ({g.name}: {' | '.join(g.choices)}): {g.doc}")
    return "\n\n".join(out) or None


def kwarg_doc(word: str, op: str | None) -> str | None:
    specs = [ops.OPS[op]] if op in ops.OPS else list(ops.OPS.values())
    out = [f"`{k.name}=` — keyword of `{s.name}`: {k.doc}" + (f" ({k.lo}..{k.hi})" if k.kind == "int" else "")
           for s in specs for k in s.keywords if k.name == word]
    return "\n\n".join(out) or None


def fact_doc(name: str) -> str | None:
    f = ops.FACTS.get(name)
    if f is None:
        return None
    forms = " or ".join(f"`{name}`" if n == 0 else f"`{name}({', '.join(['X'] * n)})`" for n in f.arity)
    return f"{forms} → {f.kind}\n\n{f.doc}"


def _changes(ver: Version) -> list[str]:
    out = []
    for c in timeline.contained(ver):
        sets = ", ".join(f"{k}={v}" for k, v in c.sets) or "recorded, not modelled"
        out.append(f"- `{c.commit}` {c.title} ({c.mainline}; {sets})")
    return out


def backend_doc(text: str, part: int = 0) -> str:
    """Hover for the backend spec ``text``; ``part`` is which of its ``:``-separated
    pieces is under the cursor (0: the era or version, 1..: an option)."""
    head, *rest = text.split(":")
    if part > 0 and part <= len(rest):
        name, _, choice = rest[part - 1].partition("=")
        o = options.BY_NAME.get(name)
        if o is None:
            return f"`{name}`: not an option (see `cowdsl backends`)"
        changes = [c for c in timeline.TIMELINE if any(k == name for k, _ in c.sets)]
        out = [f"**option `{name}`** ({o.kind}; {' | '.join(o.choices)})" + (f", here `{choice}`" if choice else ""),
               "", o.doc, "", f"Applies to: {', '.join(o.eras) or 'set by versions only'}"]
        if changes:
            out += ["", "**Changes:**"] + [f"- `{c.commit}` {c.title} ({c.mainline}: {dict(c.sets)[name]})"
                                           for c in changes]
        return "\n".join(out)
    if head == eras.NATIVE:
        return "**native**: the real kernel of this machine (or a guest's): `cowdsl crosscheck`"
    try:
        spec = resolve(text)
    except SpecError as e:
        return f"`{text}`: {e.message}" + (f" ({e.hint})" if e.hint else "")
    ver = Version.parse(head)
    era = eras.BY_NAME[spec.model]
    if ver is None:
        out = [f"**{era.name}** — era {era.versions}" + (f" (alias {', '.join(era.aliases)})" if era.aliases else ""),
               "", era.description, "", f"The bare name means **{era.preset}**, its last release."]
        ver = Version.parse(era.preset)
        accepted = options.of_era(era.name)
        if accepted:
            out += ["", "**Options:** " + ", ".join(f"`{k}={'|'.join(o.choices)}`" for k, o in accepted.items())]
    else:
        out = [f"**Linux {ver}** → `{spec.name}`", "", f"era **{era.name}** ({era.versions}): {era.description}"]
    if ver is not None:
        out += ["", f"**Changes of the timeline it has** ({len(timeline.contained(ver))}):"] + _changes(ver)
    return "\n".join(out)
