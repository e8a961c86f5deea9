"""The command line's grammar: every command, option and argument of `cowdsl`.

Only argparse and cowdsl.limits (a plain module of numbers) are imported here,
so `cowdsl --version` and `--help` start fast.  Numeric options are checked as
they are parsed: a value out of range is a usage error, one line saying the
accepted range.  Text from the command line is escaped wherever a message
repeats it (cowdsl.cli.output.shown).
"""

from __future__ import annotations

import argparse
import math

from cowdsl import __version__
from cowdsl.cli.output import shown
from cowdsl.limits import DEFAULT as LIMITS
from cowdsl.limits import DEFAULT_MAX_MEMORY
from cowdsl.limits import FLAGS as LIMIT_FLAGS

# The module that runs each command, and its function (cowdsl.cli.commands.*).
COMMANDS = {
    "run": ("run", "run"),
    "check": ("check", "check"),
    "diff": ("diff", "diff"),
    "crosscheck": ("crosscheck", "crosscheck"),
    "ops": ("listings", "ops"),
    "backends": ("listings", "backends"),
    "explain": ("listings", "explain"),
    "new": ("listings", "new"),
    "fmt": ("tools", "fmt"),
    "lsp": ("tools", "lsp"),
    "kernels": ("tools", "kernels"),
    "timeline": ("timeline", "timeline"),
    "completion": ("shell", "completion"),
    "man": ("shell", "man"),
    "playground": ("playground", "playground"),
}

# Commands that parse the rest of the command line themselves: `cowdsl fmt --check FILE`.
PASSTHROUGH = {
    "kernels": "real kernels for crosscheck --kernel: fetch VERSION|all, list, path VERSION, prepare PATH, run",
    "fmt": "rewrite .cow files in the canonical layout (see `cowdsl fmt --help`)",
    "lsp": "the language server for editors, over stdin/stdout (see `cowdsl lsp --help`)",
}


class Parser(argparse.ArgumentParser):
    """argparse, with the user's text escaped in its error messages."""

    def error(self, message: str):
        super().error(shown(message, 1000))


class _Number(argparse.Action):
    """A whole number of at least ``least`` (``kind="int"``), or a finite number of
    seconds above zero (``kind="seconds"``); anything else is a usage error, in one line."""

    def __init__(self, option_strings, dest, kind: str = "int", least: int = 1, **kw):
        super().__init__(option_strings, dest, **kw)
        self.kind, self.least = kind, least

    def accepted(self) -> str:
        if self.kind == "seconds":
            return "a number of seconds greater than 0"
        return f"a whole number of at least {self.least}"

    def __call__(self, parser, namespace, value, option_string=None):
        try:
            n = float(value) if self.kind == "seconds" else int(value)
        except ValueError:
            n = None
        ok = n is not None and (math.isfinite(n) and n > 0 if self.kind == "seconds" else n >= self.least)
        if not ok:
            parser.exit(2, f"{parser.prog}: error: {option_string} takes {self.accepted()}, not `{shown(value)}`\n")
        setattr(namespace, self.dest, n)


def _color_option(p) -> None:
    p.add_argument("--color", "--colour", choices=("auto", "always", "never"), default="auto",
                   help="highlight .cow source in errors and traces: auto (a terminal, unless NO_COLOR is set), "
                        "always or never (default: auto)")


def _parallel_options(p) -> None:
    """-j N, --executor, --scheduler (cowdsl.batch.Workers)."""
    p.add_argument("--jobs", "-j", action=_Number, default=None, metavar="N",
                   help="run N jobs at once, each a file (of the era matrix: a row; of the timeline: a release) "
                        "in a worker process; the output is the same as with -j 1 (default: the number of CPUs)")
    p.add_argument("--executor", choices=("processes", "dask"), default="processes",
                   help="who runs the jobs: worker processes on this machine (the default), or Dask "
                        "(pip install 'cowdsl[dask]'): a local cluster of N workers, or --scheduler's")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the jobs on the Dask cluster whose scheduler is at ADDRESS, e.g. tcp://host:8786 "
                        "(implies --executor dask; its workers need cowdsl installed)")


def _limit_options(p) -> None:
    """--max-processes, --max-threads, --max-pages, --max-total-pages, --max-steps (cowdsl.limits)."""
    for field, (name, what) in LIMIT_FLAGS.items():
        p.add_argument(name, action=_Number, default=None, metavar="N",
                       help=f"the most {what} (default {getattr(LIMITS, field)})")


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="cowdsl",
        description="Scenarios for Linux copy-on-write, page pinning and fork.",
        epilog="Exit status: 0 all as expected, 1 a verdict not as expected, 2 a usage or parse error, "
               "3 undecided (a bound was hit before a verdict).",
    )
    p.add_argument("--version", action="version", version=f"cowdsl {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser("run", help="run scenarios and print verdicts")
    r.add_argument("paths", nargs="+", metavar="FILE|DIR", help=".cow files, directories searched for them, or - (standard input)")
    r.add_argument("--backend", "-b", default="anon-exclusive",
                   help="a backend: NAME[:OPTION=CHOICE]..., a kernel version such as 5.10, native, or all "
                        "(the era matrix) (default: anon-exclusive; see `cowdsl backends`)")
    r.add_argument("--assertions", action="store_true", help="with --backend all: one matrix row per assertion")
    r.add_argument("--mode", choices=("auto", "reduced", "full"), default=None,
                   help="how concurrent scenarios are explored: auto (the default: full where the actors of "
                        "a par block touch memory in common; else full up to 5,000 states, then reduced), reduced "
                        "(partial-order reduction, the same final states and verdicts as full) or full (every "
                        "interleaving, with a visited set, up to symmetric threads and processes and moves that commute with "
                        "everything else; all of them with --all-states: the reference)")
    r.add_argument("--max-states", action=_Number, default=LIMITS.max_states, metavar="N",
                   help=f"stop exploring after N states and say the result is partial (default {LIMITS.max_states}); "
                        "the visited states never outgrow it")
    r.add_argument("--timeout", action=_Number, kind="seconds", default=LIMITS.timeout, metavar="SECONDS",
                   help="stop exploring after this long and say the result is partial; with --backend native: "
                        "the most one scenario's runs take together, a run that would not fit is not started "
                        f"(default {LIMITS.timeout:g})")
    r.add_argument("--max-memory", action=_Number, default=None, metavar="MIB",
                   help="stop exploring once this process holds more than MIB MiB of resident memory and say "
                        f"the result is partial (default {DEFAULT_MAX_MEMORY}; each -j worker has its own)")
    r.add_argument("--all-states", action="store_true",
                   help="explore every state for herd's complete list of final states (default: stop once every "
                        "assertion's verdict is decided, at the first counterexample or witness)")
    _parallel_options(r)
    r.add_argument("--swarm", action=_Number, default=None, metavar="N",
                   help="for a space too big to finish: N randomised depth-first searches, each stopping at its "
                        "first violation, -j at a time; reports the violations and the states covered, never a "
                        "proof")
    r.add_argument("--seed", action=_Number, least=0, default=0, metavar="S",
                   help="with --swarm: the first search's seed (search k uses S+k); with --backend native: the seed "
                        "the `par` blocks' start skews are drawn from; so that a run can be made again (default 0)")
    r.add_argument("--repeat", "-r", action=_Number, default=None, metavar="N",
                   help="with --backend native: run each scenario N times, each assertion judged on the runs as "
                        "\"witnessed K of N\", \"a violation seen (run k)\" or \"none in N runs\", never a proof "
                        "(default: once; 20 times for a scenario with a `par` block)")
    r.add_argument("--schedule", metavar="ACTORS",
                   help="replay one interleaving exactly: the actor of each micro-step, e.g. A,A,A,T,T,A "
                        "(the `schedule:` line of a counterexample)")
    r.add_argument("--trace", "-t", action="store_true", help="print every step with the rules that fired")
    r.add_argument("--state", "-s", action="store_true",
                   help="print the final state even when all is as expected (it is always printed otherwise)")
    r.add_argument("--quiet", "-q", action="store_true",
                   help="print only the scenarios that are not as expected, and the summary")
    r.add_argument("--verbose", "-v", action="store_true",
                   help="with several files, every file's full block (default: a line per file, blocks for "
                        "those not as expected); unfold the steps before and after a race")
    r.add_argument("--width", action=_Number, default=80, metavar="COLUMNS",
                   help="fit counterexamples into this many columns (default 80, for a mail)")
    r.add_argument("--form", choices=("lanes", "list"), default=None,
                   help="counterexamples as the kernel's race diagram, one column per CPU (lanes: the default "
                        "for two or three actors) or as a numbered list")
    r.add_argument("--format", "-f", choices=("text", "json", "junit"), default="text",
                   help="text (herd7-style verdicts), json (schema: docs/json-schema.json) or junit "
                        "(JUnit XML for CI: one testcase per scenario and backend)")
    r.add_argument("--dot", metavar="FILE|DIR",
                   help="also write Graphviz graphs of the final state and of each counterexample trace: "
                        "FILE.dot, FILE.svg or FILE.png for one scenario (the trace goes to FILE.trace.*), "
                        "or a directory (the SVG/PNG/PDF formats need Graphviz's `dot`)")
    r.add_argument("--dot-format", choices=("dot", "svg", "png", "pdf"), default=None,
                   help="the format of the --dot files (default: from FILE's suffix; dot for a directory)")
    _limit_options(r)
    _color_option(r)
    c = sub.add_parser("check", help="parse and validate only")
    c.add_argument("paths", nargs="+", metavar="FILE|DIR", help=".cow files, directories searched for them, or - (standard input)")
    _limit_options(c)
    _color_option(c)
    d = sub.add_parser("diff", help="where two backends' traces first diverge, and the rule that decided differently")
    d.add_argument("left", metavar="BACKEND1")
    d.add_argument("right", metavar="BACKEND2")
    d.add_argument("paths", nargs="+", metavar="FILE|DIR")
    _color_option(d)
    x = sub.add_parser("crosscheck", help="run scenarios on a model and on this machine's kernel (a `par` block: "
                                          "repeatedly, on real threads); exit 1 on any disagreement")
    x.add_argument("paths", nargs="*", default=["scenarios"], metavar="DIR|FILE")
    x.add_argument("--repeat", "-r", action=_Number, default=None, metavar="N",
                   help="run natively N times and print a histogram (default: once; 20 times for a scenario with "
                        "a `par` block, whose runs are judged as \"witnessed K of N\", \"a violation seen (run k)\" "
                        "or \"none in N runs\", never a proof)")
    x.add_argument("--seed", action=_Number, least=0, default=0, metavar="S",
                   help="the seed the `par` blocks' start skews are drawn from, so that a cross-check can be run "
                        "again (default 0)")
    x.add_argument("--model", default=None,
                   help="the model backend, or `running`: the model of the native kernel's own version (default: "
                        "anon-exclusive; running with --kernel or --record)")
    x.add_argument("--format", "-f", choices=("text", "json"), default="text",
                   help="text (the table) or json (the same report as data)")
    x.add_argument("--kernel", "-k", metavar="VERSION|IMAGE",
                   help="run the native side in this kernel under QEMU: a prepared version (5.10, 6.1, 6.12; "
                        "`cowdsl kernels fetch`) or a kernel image / build tree; compared with the model of its "
                        "version")
    x.add_argument("--modules", metavar="DIR", help="with --kernel IMAGE: its lib/modules/RELEASE folder")
    x.add_argument("--need", action="append", default=None, metavar="NEED",
                   help="with --kernel: switch on in the guest: swap, hugetlb, ksm, dm-delay, thp, thp=madvise, or none "
                        "(repeatable; default: swap and thp=madvise, plus hugetlb and ksm when a scenario needs them)")
    x.add_argument("--smp", action=_Number, default=1, help="with --kernel: the guest's CPUs (default 1)")
    x.add_argument("--memory", default="512M", help="with --kernel: the guest's memory (default 512M)")
    x.add_argument("--record", action="store_true",
                   help="write what the kernel showed, per file and assertion, to tests/kernels/VERSION.json "
                        "of the cowdsl checkout, or of the current folder when cowdsl is installed (or --record-dir)")
    x.add_argument("--record-dir", metavar="DIR", help="with --record: the folder for VERSION.json")
    t = sub.add_parser("timeline", help="a scenario's verdict on every kernel release of the timeline, each "
                                        "flip named by the change that decides it")
    t.add_argument("paths", nargs="+", metavar="FILE|DIR")
    t.add_argument("--format", "-f", choices=("text", "json", "dot"), default="text",
                   help="text, json, or dot (Graphviz: a row per stable line, coloured by verdict)")
    t.add_argument("--versions", metavar="LO..HI", help="only the releases in this range, e.g. 5.4..5.19")
    _parallel_options(t)
    _color_option(t)
    o = sub.add_parser("ops", help="list the ops and facts, or describe one (`cowdsl ops pin`)")
    o.add_argument("name", nargs="?", metavar="OP|FACT")
    b = sub.add_parser("backends", help="list the eras, options and timeline, or describe one spec "
                                         "(`cowdsl backends 5.10.198`)")
    b.add_argument("spec", nargs="?", metavar="SPEC")
    e = sub.add_parser("explain", help="what a decision rule decides, and in which eras and versions")
    e.add_argument("rule", metavar="RULE")
    n = sub.add_parser("new", help="write a commented template scenario NAME.cow")
    n.add_argument("name", metavar="NAME")
    sc = sub.add_parser("completion", help="print the shell's completion script: "
                                          "eval \"$(cowdsl completion bash)\" (zsh and fish alike)")
    sc.add_argument("shell", choices=("bash", "zsh", "fish"), metavar="bash|zsh|fish")
    sub.add_parser("man", help="print the manual page (the one installed as man 1 cowdsl)")
    pg = sub.add_parser("playground", help="serve the browser playground on 127.0.0.1 (cowdsl in Pyodide; "
                                           "the bundle is laid out first from `python -m cowdsl.playground build`)")
    pg.add_argument("--port", action=_Number, least=0, default=8000, metavar="N",
                    help="the port on 127.0.0.1 (default 8000; 0: any free port)")
    for name, text in PASSTHROUGH.items():  # listed in --help; main() hands them the rest of the line
        sub.add_parser(name, help=text, add_help=False)
    return p


def passthrough(argv: list[str]) -> argparse.Namespace | None:
    """The command and the rest of ``argv`` when it names a command with its own parser."""
    if argv and argv[0] in PASSTHROUGH:
        return argparse.Namespace(command=argv[0], rest=argv[1:])
    return None
