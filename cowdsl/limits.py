"""Resource limits: every bound on what one scenario may make cowdsl do, in one place.

A scenario file is untrusted input (it gets pasted from mailing lists and bug
trackers), so what it may ask for is bounded, and every bound has a clear
message and a command-line flag to raise it:

| limit | default | flag | checked by |
|---|---|---|---|
| processes (declared, plus one per `fork`) | 16 | `--max-processes` | the checker |
| threads | 16 | `--max-threads` | the checker |
| pages per mapping (`mmap pages=`, a file's pages) | 64 | `--max-pages` | the checker |
| total pages (every `mmap`, every file) | 1024 | `--max-total-pages` | the checker |
| steps (`par` blocks included) | 1000 | `--max-steps` | the checker |
| states explored | 200000 | `--max-states` | the explorer (the result is partial) |
| wall time of an exploration | 60 s | `--timeout` | the explorer (the result is partial) |
| resident memory of the process | 1024 MiB | `--max-memory` | the explorer (the result is partial) |

The static limits (the first five) are checked when a file is loaded
(``cowdsl.load.load_text(..., limits=)``), so a scenario over them never
reaches the model.  The three dynamic ones stop an exploration, which then says
its result is partial and claims no verdict it did not establish; a `par`
block whose interleavings outgrow them (a `fork` of many pages racing other
actors) is explained by ``explain_partial``, which the CLI prints.

The native backend has its own, stricter limits (``cowdsl.native.Limits``):
real processes and pages on this machine.
"""

from __future__ import annotations

import math

# The limits and their defaults.  (A plain class, not attrs: the CLI builds its
# argument parser from this module, and `cowdsl --version` must start fast.)
_DEFAULTS = {
    "max_processes": 16,
    "max_threads": 16,
    "max_pages": 64,  # per mapping
    "max_total_pages": 1024,
    "max_steps": 1000,
    "max_states": 200_000,
    "timeout": 60.0,
}


class Limits:
    """Immutable: ``Limits(max_processes=32)``; ``replace(**changes)`` makes a new one."""

    __slots__ = tuple(_DEFAULTS)
    # set in __init__ from _DEFAULTS; declared so a type checker knows them
    max_processes: int
    max_threads: int
    max_pages: int
    max_total_pages: int
    max_steps: int
    max_states: int
    timeout: float

    def __init__(self, **values):
        unknown = set(values) - set(_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown limit {', '.join(sorted(unknown))}")
        for k, default in _DEFAULTS.items():
            object.__setattr__(self, k, values.get(k, default))

    def __setattr__(self, name, value):
        raise AttributeError("Limits is immutable; use replace()")

    def asdict(self) -> dict:
        return {k: getattr(self, k) for k in _DEFAULTS}

    def replace(self, **changes) -> Limits:
        return Limits(**{**self.asdict(), **{k: v for k, v in changes.items() if v is not None}})

    def __eq__(self, other) -> bool:
        return isinstance(other, Limits) and self.asdict() == other.asdict()

    def __hash__(self) -> int:
        return hash(tuple(self.asdict().values()))

    def __repr__(self) -> str:
        return "Limits(" + ", ".join(f"{k}={v!r}" for k, v in self.asdict().items()) + ")"


DEFAULT = Limits()

# The explorer's memory bound (cowdsl.explore.exploration.Bounds): resident MiB of
# the process; `run --max-memory` sets the variable for the run and its workers.
MEMORY_ENV = "COWDSL_MAX_MEMORY"
DEFAULT_MAX_MEMORY = 1024  # a laptop's share

# Not a resource a scenario asks for, but bounded too: the checker stops after
# this many errors (a file of 100,000 duplicate names is one mistake, repeated).
MAX_DIAGNOSTICS = 100

# field -> (flag, what it bounds, for --help)
FLAGS = {
    "max_processes": ("--max-processes", "processes a scenario may have (declared, plus one per fork)"),
    "max_threads": ("--max-threads", "threads a scenario may declare"),
    "max_pages": ("--max-pages", "pages in one mapping (mmap pages=, or a file's pages)"),
    "max_total_pages": ("--max-total-pages", "pages of all mappings and files together"),
    "max_steps": ("--max-steps", "steps in a scenario, par blocks included"),
}
STATIC = tuple(FLAGS)


def flag(field: str) -> str:
    return FLAGS[field][0] if field in FLAGS else "--" + field.replace("_", "-")


def hint(field: str, value: int) -> str:
    """How to raise a limit: the flag, and a value that would do."""
    return f"raise the limit with `{flag(field)} {value}`"


def add_arguments(p) -> None:
    """The limit flags on an argparse (sub)parser: ``--max-processes`` and the rest."""
    for fld, (name, what) in FLAGS.items():
        p.add_argument(name, type=_positive, default=None, metavar="N",
                       help=f"the most {what} (default {getattr(DEFAULT, fld)})")


def from_args(args) -> Limits:
    return DEFAULT.replace(**{f: getattr(args, f, None) for f in STATIC})


def _positive(text: str) -> int:
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is not a positive number")
    return n


# --- par blocks: how many interleavings ---------------------------------------------------------

# micro-steps of an op (see cowdsl.semantics.micro); a fork also takes about two per PTE it copies
_MICRO = {"fork": 4, "proc_mem_write": 4, "process_vm_writev": 3, "process_vm_readv": 3, "vmsplice": 5}


def micro_steps(step, pages_of_parent: int = 0) -> int:
    if step.op in ("pin", "gup") and "fast" in step.flags:
        return 5
    if step.op == "fork":
        return _MICRO["fork"] + 2 * pages_of_parent
    return _MICRO.get(step.op, 1)


def par_blocks(sc) -> list[dict]:
    """Each `par` block: the line of its first step, its actors, the micro-steps of each actor
    (an upper estimate) and the number of interleavings (a multinomial)."""
    pages: dict[str, dict[str, int]] = {p: {} for p in sc.processes}
    out = []
    for block in sc.blocks():
        if block[0].par:
            per: dict[str, int] = {}
            for st in block:
                mine = sum(pages.get(st.task, {}).values()) if st.op == "fork" else 0
                per[st.actor] = per.get(st.actor, 0) + micro_steps(st, mine)
            total = sum(per.values())
            ways = math.factorial(total)
            for n in per.values():
                ways //= math.factorial(n)
            forks = [st for st in block if st.op == "fork"]
            out.append({"line": block[0].span.line, "actors": per, "micro_steps": total, "interleavings": ways,
                        "fork_pages": sum(sum(pages.get(st.task, {}).values()) for st in forks)})
        for st in block:  # what each process has mapped, as the checker saw it
            if st.op == "mmap" and st.task is not None:
                pages.setdefault(st.task, {})[st.mapping] = st.pages
            elif st.op == "munmap" and st.task is not None and st.part is None:
                pages.get(st.task, {}).pop(st.mapping, None)
            elif st.op == "fork" and st.bind:
                pages[st.bind] = dict(pages.get(st.task, {}))
    return out


def _magnitude(n: int) -> str:
    if n < 10_000:
        return str(n)
    return f"10^{len(str(n)) - 1}"


def explain_partial(sc, partial: str | None) -> str | None:
    """Why an exploration stopped, in words, with the flags that raise the bounds;
    None when it did not stop early."""
    if not partial:
        return None
    raise_ = next((f for f in ("--max-states", "--max-memory") if partial.startswith(f)), "--timeout")
    blocks = sorted(par_blocks(sc), key=lambda b: -b["interleavings"])
    text = f"the exploration stopped at {partial}, so some verdicts are unknown"
    if blocks:
        b = blocks[0]
        actors = len(b["actors"])
        fork = f" (a fork copying {b['fork_pages']} page{'s' if b['fork_pages'] != 1 else ''})" if b["fork_pages"] else ""
        text += (f": the par block from line {b['line']} has {actors} actors and about {b['micro_steps']} micro-steps"
                 f"{fork}, about {_magnitude(b['interleavings'])} interleavings")
    return text + f"; raise {raise_}, or make the par block smaller (fewer pages for a fork, fewer steps)"
