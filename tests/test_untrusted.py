"""A scenario file is untrusted input: it describes a scenario and can do nothing else.

No construct of the language executes code, imports a module, reads or writes
a file, or reaches the network.  These tests feed files written to try (Python
code, shell, template syntax, `__import__`, path traversal in file names, an
`include` of /etc/passwd) and watch the interpreter with an audit hook
(PEP 578) while cowdsl loads, checks, runs and reports them: every such event
is recorded, and none may happen.  The native backend, which does run real
processes, writes only inside its private temporary directory and starts no
more processes than its limits allow.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap

import pytest

from cowdsl.errors import CowError
from cowdsl.load import load_text
from cowdsl.report import jsonout, junit, text
from cowdsl.run import run

# --- the watch ------------------------------------------------------------------------------------

# Audit events that would mean a file made cowdsl do more than describe a scenario.
FORBIDDEN = ("open", "exec", "compile", "import", "code.__new__", "marshal.", "pickle.", "builtins.input",
             "os.", "subprocess.", "socket.", "ctypes.", "shutil.", "urllib.", "http.", "ftplib.", "smtplib.",
             "webbrowser.", "pty.", "glob.", "sys.addaudithook", "cpython.run_")

_events: list | None = None


def _hook(event: str, args) -> None:
    if _events is not None and event.startswith(FORBIDDEN):
        _events.append((event, args))


sys.addaudithook(_hook)  # cannot be removed: it records only inside watch()


class watch:
    """Record the forbidden audit events of the block."""

    def __enter__(self):
        global _events
        _events = []
        self.events = _events
        return self

    def __exit__(self, *exc):
        global _events
        _events = None
        return False


def everything(src: str, backends=("anon-exclusive", "mapcount", "early-cow:wp_seq=off")):
    """Load, check, run on some backends and render every report of ``src``:
    returns the CowError, or None when it ran."""
    try:
        sc = load_text(src, "untrusted.cow")
    except CowError as e:
        e.render()
        return e
    for b in backends:
        r = run(sc, b)
        text.report(r, show_trace=True, show_state=True)
        jsonout.document([r], [], [])
        junit.to_string(junit.document([r], [], []))
    return None


WARM = """\
process A
thread T of A
file F = [7]
pipe P
A: mmap(buf, anon, private, rw)
A: mmap(fm, private, ro, file=F)
A: write(buf, 1)
par {
  T: pin(buf, read, fast) as mr
  A: fork() as B
}
A: vmsplice(buf, P)
A: pipe_read(P) as v
assert A.fm == 7 and v == 1
"""


@pytest.fixture(scope="module", autouse=True)
def warm():
    """Everything cowdsl imports or caches lazily (the Lark tables, the backends,
    the reports) is loaded once before watching."""
    everything(WARM)
    everything("process A\nA: nope()\nassert true\n")
    everything("procss A\n")


# --- files that try ----------------------------------------------------------------------------------

HOSTILE = {
    "python-import": "__import__('os').system('touch /tmp/cowdsl-pwned')\n",
    "python-exec": 'exec("import os; os.system(\'touch /tmp/cowdsl-pwned\')")\n',
    "python-eval-in-assert": "process A\nassert eval('1')\n",
    "python-import-statement": "import os\nprocess A\nassert true\n",
    "python-from-import": "from os import system\n",
    "dunder-op": "process A\nA: __import__(os)\nassert true\n",
    "dunder-actor": "process A\n__builtins__: exec(A)\nassert true\n",
    "dunder-fact": "process A\nA: mmap(buf, anon, private, rw)\nassert __import__(A.buf)\n",
    "dunder-attribute": "process A\nA: mmap(buf, anon, private, rw)\nassert A.__class__ == 1\n",
    "attribute-chain": "process A\nassert A.__class__.__mro__\n",
    "keyword-file": "process A\nfile F = [1]\nA: mmap(m, private, ro, file=__file__)\nassert true\n",
    "shell-substitution": "process A\nA: mmap(buf, anon, private, rw, $(touch /tmp/cowdsl-pwned))\nassert true\n",
    "backticks": "process `touch /tmp/cowdsl-pwned`\n",
    "template": "process A\nassert {{ 7*7 }}\n",
    "format-string": 'scenario "{0.__class__}"\nprocess A\nassert true\n',
    "path-traversal-file": "process A\nfile ../../etc/passwd = [1]\nassert true\n",
    "absolute-path-file": "process A\nfile /etc/passwd = [1]\nassert true\n",
    "path-in-file-keyword": "process A\nfile F = [1]\nA: mmap(m, private, ro, file=/etc/passwd)\nassert true\n",
    "dotted-file-keyword": "process A\nfile F = [1]\nA: mmap(m, private, ro, file=etc.passwd)\nassert true\n",
    "include": 'include "/etc/passwd"\nprocess A\nassert true\n',
    "include-bare": "include /etc/passwd\n",
    "hash-include": "#include </etc/passwd>\nprocess A\nassert true\n",  # a comment: runs
    "url": "process A\nref \"http://example.com/$(curl evil)\"\nassert true\n",  # a string: runs
    "backend-with-path": "process A\nassert true\nexpect pass on ../../etc/passwd\n",
    "backend-plugin-name": "process A\nassert true\nexpect pass on os:system=rm\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_file_is_a_diagnostic_or_a_harmless_scenario(name):
    with watch() as w:
        err = everything(HOSTILE[name])
    assert w.events == [], w.events
    if name in ("hash-include", "url", "format-string"):
        assert err is None  # text in a comment or a string is only text
    else:
        assert isinstance(err, CowError) and err.diagnostics
        d = err.diagnostics[0]
        assert d.span.line >= 1 and d.span.col >= 1
    assert not os.path.exists("/tmp/cowdsl-pwned")


def test_an_include_of_an_absolute_path_touches_nothing():
    """`include` is confined to the including file's folder (tests/test_reuse.py):
    an absolute path is refused as written, before anything is looked up."""
    with watch() as w:
        err = everything(HOSTILE["include"])
    assert w.events == []
    [d] = err.diagnostics
    assert (d.span.line, d.span.col) == (1, 9) and d.message == "cannot include an absolute path: `/etc/passwd`"
    assert "/etc/passwd" not in repr(err.source.replace('include "/etc/passwd"', ""))  # nothing of the file


def test_path_traversal_in_a_file_name_is_a_syntax_error():
    err = everything(HOSTILE["path-traversal-file"])
    [d] = err.diagnostics
    assert d.message == "unexpected `..`" and (d.span.line, d.span.col) == (2, 6)  # `..` is a token: buf[0..3]


def test_a_file_declaration_never_touches_the_disk(tmp_path, monkeypatch):
    """`file passwd = [1, 2]` is a page cache with these values, whatever the name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "passwd").write_text("root:x:0:0")
    src = "process A\nfile passwd = [1, 2]\nA: mmap(m, private, ro, file=passwd)\nA: read(m[1]) as v\nassert v == 2\n"
    with watch() as w:
        assert everything(src) is None
    assert w.events == []
    assert run(load_text(src)).verdict == "pass"


def test_names_that_look_like_python_are_only_names():
    src = textwrap.dedent("""\
        process __builtins__, os
        thread system of os
        file __file__ = [1]
        pipe __class__
        __builtins__: mmap(eval, anon, private, rw)
        __builtins__: write(eval, 1)
        __builtins__: fork() as exec
        system: mmap(sh, private, ro, file=__file__)
        system: read(sh) as getattr
        assert __builtins__.eval == 1 and exec.eval == 1 and getattr == 1
    """)
    with watch() as w:
        assert everything(src) is None
    assert w.events == []


def test_terminal_escapes_in_strings_are_refused():
    """A scenario name or ref is printed by the reports: an escape sequence pasted
    from a bug tracker (here: set the terminal title, clear the screen) is refused."""
    err = everything('scenario "\x1b]0;owned\x07\x1b[2J"\nref "\u202eevil"\nref "a\u200fb"\nprocess A\nassert true\n')
    assert [d.message for d in err.diagnostics] == ["control or format character U+001B in a string",
                                                    "control or format character U+202E in a string",
                                                    # a right-to-left mark (found by `fuzz outside`): was printed raw
                                                    "control or format character U+200F in a string"]
    assert [(d.span.line, d.span.col) for d in err.diagnostics] == [(1, 11), (2, 6), (3, 7)]
    assert "\x1b" not in err.render()
    assert everything('scenario "tab\there, ünïcödé, 日本"\nprocess A\nassert true\n') is None


def test_an_expect_line_for_native_never_starts_a_process(monkeypatch):
    """`expect ... on native` is only an expectation: the matrix and the default
    run use the models; the native backend runs only when asked with --backend native."""
    from cowdsl import matrix

    sc = load_text("process A\nA: fork() as B\nassert alive(B)\nexpect pass on native, anon-exclusive\n")
    assert "native" not in [b.name for b in matrix.backends_for([sc])]
    with watch() as w:
        run(sc)
        matrix.build([sc], ["anon-exclusive"])
    assert w.events == []


# --- the native backend ---------------------------------------------------------------------------

from cowdsl.native import skip_reason  # noqa: E402

_SKIP = skip_reason()
native = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")

NATIVE_SC = """\
process A
file F = [1, 2]
pipe P
A: mmap(buf, anon, private, rw)
A: mmap(fm, shared, rw, file=F)
A: write(buf, 1)
A: write(fm[1], 5)
A: pin(buf, write, longterm) as mr
mr: dma_write(4)
mr: dma_read() as d
A: fork() as B
B: vmsplice(buf, P)
A: pipe_read(P) as v
B: proc_mem_write(A.buf, 9)
assert A.buf == 9 and d == 4
"""

_WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@native
def test_native_writes_only_inside_its_private_temporary_directory(monkeypatch):
    """Every path the controller sends a worker, and every file it opens for
    writing, creates or removes, is inside the run's private temporary directory,
    which is gone afterwards; every PID it names is one of the run's processes."""
    from cowdsl.native import controller, run_native

    seen: dict = {"paths": [], "pids": [], "tmp": None, "all": None}
    real_call = controller.Controller.call

    def call(self, p, cmd, fds=(), **kw):
        seen["tmp"], seen["all"] = self.tmp, self.all_pids
        if cmd.get("path"):
            seen["paths"].append(cmd["path"])
        if cmd.get("pid"):
            seen["pids"].append(cmd["pid"])
        return real_call(self, p, cmd, fds, **kw)

    monkeypatch.setattr(controller.Controller, "call", call)
    writes = []

    def hook(event, args):
        if event == "open" and args[0] is not None and (
                (isinstance(args[2], int) and args[2] & _WRITES) or (isinstance(args[1], str) and set(args[1]) & set("wax+"))):
            writes.append((event, os.fsdecode(args[0]) if not isinstance(args[0], int) else args[0], None))
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "os.rename", "shutil.rmtree"):
            dir_fd = args[-1] if event in ("os.remove", "os.rmdir", "os.mkdir") and len(args) > 1 else None
            writes.append((event, os.fsdecode(args[0]), dir_fd))

    sys.addaudithook(lambda e, a: _native_events is not None and hook(e, a))
    global _native_events
    _native_events = True
    try:
        r = run_native(load_text(NATIVE_SC))
    finally:
        _native_events = None
    assert r.verdict == "pass", [c.values for c in r.checks]
    tmp = seen["tmp"]
    assert tmp and tmp.startswith(tempfile.gettempdir()) and os.path.basename(tmp).startswith("cowdsl-native-")
    assert seen["paths"] and all(os.path.dirname(p) == tmp for p in seen["paths"])
    assert seen["pids"] and set(seen["pids"]) <= seen["all"]
    inside = lambda w: isinstance(w, str) and (w == tmp or w.startswith(tmp + os.sep))  # noqa: E731
    rmtree = writes.index(("shutil.rmtree", tmp, None))  # the clean-up, last
    # before it: only paths inside the directory; within it, names relative to its own descriptors
    outside = [w for ev, w, _ in writes[:rmtree] if not inside(w)]
    outside += [w for ev, w, fd in writes[rmtree + 1:] if fd is None and not inside(w)]
    assert outside == [], outside
    assert writes[0] == ("os.mkdir", tmp, None) or any(ev == "os.mkdir" and w == tmp for ev, w, _ in writes)
    assert not os.path.exists(tmp)


_native_events = None


@native
def test_native_starts_no_more_processes_than_its_limit(monkeypatch):
    """Static: a scenario with more processes than Limits.max_processes is skipped
    before anything starts.  Dynamic: with the plan's check bypassed, the
    controller itself refuses the fork past the limit."""
    from cowdsl.native import Limits, plan, run_native, translate

    forks = "process A\nA: mmap(buf, anon, private, rw)\n" + "".join(
        f"A: fork() as C{i}\n" for i in range(5)) + "assert alive(C0)\n"
    spawned = []
    real_fork = translate.OPS["fork"]

    def fork(t, st):
        out, events = real_fork(t, st)
        spawned.append(len(t.ctl.all_pids))
        return out, events

    monkeypatch.setitem(translate.OPS, "fork", fork)
    r = run_native(load_text(forks), limits=Limits(max_processes=3))
    assert r.verdict == "skip" and "exceeds native limits: 6 processes > 3" in r.checks[0].values["unsupported"]
    assert spawned == []
    monkeypatch.setattr(plan, "problem", lambda sc, host, limits: None)
    r = run_native(load_text(forks), limits=Limits(max_processes=3))
    assert max(spawned) <= 3
    refused = [rec.outcome.error for rec in r.steps if rec.step.op == "fork" and not rec.outcome.ok]
    assert refused == ["native limit: 3 processes"] * 3


def test_native_limits_are_strict():
    from cowdsl.native import Limits

    lim = Limits()
    assert (lim.max_processes, lim.max_pages, lim.max_steps) == (16, 1024, 400)
    assert lim.step_timeout <= 5 and lim.worker_alarm <= 120


def test_native_refuses_a_mapping_wider_than_its_address_slot():
    """The model's --max-pages may allow a 100-page mapping; the native backend maps
    each mmap step into a 1 MiB slot with a gap after it, so it skips the scenario
    rather than run it wrong."""
    from types import SimpleNamespace

    from cowdsl.limits import Limits as ModelLimits
    from cowdsl.native import Limits, plan

    sc = load_text("process A\nA: mmap(buf, anon, private, rw, pages=100)\nassert A.buf == 0\n", "x.cow",
                   ModelLimits(max_pages=128))
    host = SimpleNamespace(reason=None, swap=True)
    assert plan.problem(sc, host, Limits()) == (1, "exceeds native limits: a mapping of 100 pages > 64")
    assert plan.problem(sc, host, Limits(max_pages_per_mapping=100)) is None
