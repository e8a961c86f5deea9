"""Kernel names in a .cow file, and what they are written as here.

Someone who knows the kernel writes ``pin(buf, FOLL_WRITE|FOLL_LONGTERM)`` or
``mmap(buf, MAP_PRIVATE|MAP_ANONYMOUS, PROT_READ|PROT_WRITE)``; the errors then
suggest ``pin(buf, write, longterm)`` and ``mmap(buf, anon, private, rw)``.  A
FOLL_*, MADV_*, MAP_*, PROT_*, MREMAP_* or PR_* name maps to the op's flag of
that meaning (the table below, else the name's lower-case tail, e.g.
MADV_DONTFORK to ``dontfork``) when the op has such a flag; the gup flags that
choose an op, not a flag, say which op (FOLL_PIN is ``pin``, FOLL_GET ``gup``,
FOLL_FORCE ``proc_mem_write``)."""

from __future__ import annotations

import re

from cowdsl import ops

PREFIXES = ("FOLL_", "MADV_", "MAP_", "PROT_", "MREMAP_", "PR_")

# Names whose flag is not their lower-case tail.
FLAG = {
    "FOLL_WRITE": "write",
    "FOLL_LONGTERM": "longterm",
    "FOLL_FAST_ONLY": "fast",  # GUP-fast: the lockless walk
    "MAP_ANONYMOUS": "anon",
    "MAP_ANON": "anon",
    "PROT_WRITE": "rw",
    "PROT_READ": "ro",  # alone; PROT_READ|PROT_WRITE is rw
    "PR_SET_MEMORY_MERGE": "memory_merge",
}

# gup flags that an op stands for.
OP = {
    "FOLL_PIN": "pin",  # pin_user_pages
    "FOLL_GET": "gup",  # get_user_pages
    "FOLL_FORCE": "proc_mem_write",  # /proc/PID/mem: access_remote_vm(FOLL_FORCE)
}

_WORD = re.compile(r"[A-Z][A-Z0-9_]*")


def is_kernel(word: str) -> bool:
    return word.startswith(PREFIXES) or word in OP


def flag(op: str, word: str) -> str | None:
    """The flag of ``op`` that the kernel name ``word`` means, if it has one."""
    spec = ops.OPS.get(op)
    if spec is None:
        return None
    words = spec.flag_words()
    tail = word.split("_", 1)[1].lower() if "_" in word else word.lower()
    for cand in (FLAG.get(word), tail):
        if cand and cand in words:
            return cand
    return None


def translate(op: str, words: list[str]) -> tuple[list[str], list[str]]:
    """The flags of ``op`` that kernel names mean, and notes on the rest."""
    flags: list[str] = []
    notes: list[str] = []
    if "PROT_READ" in words and "PROT_WRITE" in words:
        words = [w for w in words if w != "PROT_READ"]  # PROT_READ|PROT_WRITE is rw
    for w in words:
        if w in OP:
            target = OP[w]
            notes.append(f"{w} is what `{target}` does: leave it out" if target == op
                         else f"{w}: that is the op `{target}`")
            continue
        f = flag(op, w)
        if f is None:
            notes.append(f"`{op}` has no flag for {w}")
        elif f not in flags:
            flags.append(f)
    return flags, notes


def flag_hint(op: str, word: str) -> str | None:
    """A hint for the kernel name ``word`` given as a flag of ``op``, or None."""
    if not is_kernel(word):
        return None
    flags, notes = translate(op, [word])
    if flags:
        return f"{word} is written `{flags[0]}` here"
    return "; ".join(notes) or None


def call_hint(line: str) -> str | None:
    """For a step whose flags are joined by `|`, kernel-style
    (``A: pin(buf, FOLL_WRITE|FOLL_LONGTERM) as mr``), the call as .cow writes it."""
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(([^()]*)\)", line)
    if not m or m.group(1) not in ops.OPS or "|" not in m.group(2):
        return None
    op, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
    words = ops.OPS[op].flag_words()
    out: list[str] = []
    notes: list[str] = []
    for a in args:
        parts = [p.strip() for p in a.split("|") if p.strip()]
        if "|" not in a:
            out.append(a)
            continue
        kernel = [p for p in parts if is_kernel(p)]
        flags, more = translate(op, kernel)
        for p in parts:
            if p in words:
                flags.append(p)
            elif not is_kernel(p):
                notes.append(f"`{op}` has no flag `{p}`")
        out += [f for f in flags if f not in out]
        notes += more
    order = list(words)  # flags in the order the op declares them: anon, private, rw
    out = [a for a in out if a not in words] + sorted((a for a in out if a in words), key=order.index)
    text = f"{op}({', '.join(x for x in out if x)})"
    return f"flags are words separated by commas: write `{text}`" + "".join(f"; {n}" for n in notes)
