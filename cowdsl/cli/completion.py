"""Shell completion (argcomplete): commands, options, backends and versions, .cow files.

The shell runs `cowdsl` with _ARGCOMPLETE set and the line in COMP_LINE /
COMP_POINT; ``complete`` answers and exits before any command runs.  The
completers are attached here, by argument, to the parser of cowdsl.cli.args,
so the command line's grammar stays in one place.  `cowdsl completion SHELL`
prints the script that hooks it into bash, zsh or fish (the same as
argcomplete's `register-python-argcomplete cowdsl`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable

SHELLS = ("bash", "zsh", "fish")


def backend_words(prefix: str) -> list[str]:
    """What a backend spec may be, for ``prefix``: the eras and their aliases, native,
    all, every version of the timeline's releases (cowdsl.kernel.releases), and after
    `NAME:` each option of that era as OPTION=CHOICE."""
    from cowdsl.kernel import eras, options, releases, timeline
    from cowdsl.kernel.version import Version

    if ":" not in prefix:
        words = [e.name for e in eras.ERAS] + list(eras.ALIASES) + [eras.NATIVE, "all"]
        return [w for w in words + [str(x) for x in releases.ALL] if w.startswith(prefix)]
    head, *given, last = prefix.split(":")
    ver = Version.parse(head)
    model = timeline.settings(ver)["era"] if ver is not None else eras.ALIASES.get(head, head)
    taken = {g.split("=", 1)[0] for g in given}
    base = ":".join([head, *given]) + ":"
    pairs = [f"{name}={choice}" for name, o in options.of_era(model).items() if name not in taken
             for choice in o.choices]
    return [base + p for p in pairs if p.startswith(last)]


def version_range_words(prefix: str) -> list[str]:
    """`timeline --versions LO..HI`: a release on each side of the two dots."""
    from cowdsl.kernel import releases

    names = [str(x) for x in releases.ALL]
    if ".." in prefix:
        lo, hi = prefix.split("..", 1)
        return [f"{lo}..{n}" for n in names if n.startswith(hi)]
    return [n for n in names if n.startswith(prefix)]


def op_words(prefix: str) -> list[str]:
    from cowdsl import ops

    return [w for w in [*ops.OPS, *ops.FACTS] if w.startswith(prefix)]


def rule_words(prefix: str) -> list[str]:
    from cowdsl.semantics.backend import RULES

    return [w for w in RULES if w.startswith(prefix)]


def _words(fn):
    def completer(prefix: str, **_: object) -> list[str]:
        return fn(prefix)
    return completer


def _files(prefix: str, **_: object) -> list[str]:
    """.cow files and directories (with a slash, so the shell goes on into them), and `-`."""
    head, _sep, tail = prefix.rpartition("/")
    folder = head + "/" if _sep else ""
    try:
        entries = sorted(os.scandir(folder or "."), key=lambda e: e.name)
    except OSError:
        entries = []
    out_: list[str] = ["-"] if prefix == "" else []
    for e in entries:
        if not e.name.startswith(tail) or (e.name.startswith(".") and not tail.startswith(".")):
            continue
        try:
            is_dir = e.is_dir()
        except OSError:
            continue
        if is_dir:
            out_.append(folder + e.name + "/")
        elif e.name.endswith(".cow"):
            out_.append(folder + e.name)
    return out_


# The completer of each argument, by its dest (the same dest means the same kind of value).
COMPLETERS = {
    "paths": _files,
    "backend": _words(backend_words),
    "left": _words(backend_words),
    "right": _words(backend_words),
    "spec": _words(backend_words),
    "model": _words(lambda p: [w for w in backend_words(p) if w != "all"] + (["running"] if "running".startswith(p) else [])),
    "versions": _words(version_range_words),
    "name@ops": _words(op_words),
    "rule": _words(rule_words),
    "dot": _files,
    "shell": _words(lambda p: [s for s in SHELLS if s.startswith(p)]),
}


def _subparsers(p: argparse.ArgumentParser) -> Iterable[tuple[str, argparse.ArgumentParser]]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def attach(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give each argument of ``p``'s commands its completer; ``p`` back."""
    for command, sub in _subparsers(p):
        for action in sub._actions:
            completer = COMPLETERS.get(f"{action.dest}@{command}") or COMPLETERS.get(action.dest)
            if completer is not None:
                action.completer = completer  # type: ignore[attr-defined]  # argcomplete reads it
    return p


def complete(p: argparse.ArgumentParser, **kw: object) -> None:
    """Answer the shell and exit when it asked for completions (_ARGCOMPLETE set); else
    return at once.  ``kw`` goes to argcomplete (tests pass output_stream, exit_method)."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:  # completion is optional: no answer, no error
        return
    argcomplete.autocomplete(attach(p), **kw)  # type: ignore[arg-type]

