"""Resource limits (cowdsl.limits): each one has a clear message, a location and a
flag to raise it; the exploration bounds keep memory bounded."""

from __future__ import annotations

import textwrap
import tracemalloc

import pytest
from examples import pinners_racing_fork

from cowdsl import limits as L
from cowdsl.cli import main
from cowdsl.errors import CowError
from cowdsl.explore.model import Model
from cowdsl.explore.search import Bounds, full, reduced
from cowdsl.load import find, load_all, load_text
from cowdsl.run import run
from cowdsl.semantics import registry


def diag(src: str, limits=None):
    with pytest.raises(CowError) as info:
        load_text(textwrap.dedent(src), "x.cow", limits)
    return info.value.diagnostics


def test_the_defaults_and_replace():
    d = L.DEFAULT
    assert (d.max_processes, d.max_threads, d.max_pages, d.max_total_pages, d.max_steps) == (16, 16, 64, 1024, 1000)
    assert (d.max_states, d.timeout) == (200_000, 60.0)
    raised = d.replace(max_steps=5000, max_pages=None)
    assert raised.max_steps == 5000 and raised.max_pages == 64 and d.max_steps == 1000
    with pytest.raises(AttributeError):
        d.max_steps = 1
    with pytest.raises(TypeError):
        L.Limits(max_widgets=1)


def test_the_corpus_is_within_the_default_limits():
    for path in find(["scenarios", "benchmarks"]):
        assert load_all(path)  # every variant of a swept file


# --- each static limit: message, location, flag -------------------------------------------------------

PROCS = "process " + ", ".join(f"P{i}" for i in range(17)) + "\nassert true\n"


def test_processes():
    [d] = diag(PROCS)
    assert d.message == "more than 16 processes (declared, plus one per fork); the limit is 16"
    assert (d.span.line, d.span.col) == (1, PROCS.index("P16") + 1)
    assert d.hint == "raise the limit with `--max-processes 17`"
    load_text(PROCS, "x.cow", L.Limits(max_processes=17))


def test_forks_count_as_processes():
    src = "process A\nA: mmap(b, anon, private, rw)\n" + "".join(f"A: fork() as C{i}\n" for i in range(3)) + "assert true\n"
    [d] = diag(src, L.Limits(max_processes=3))
    assert d.span.line == 5 and d.message.startswith("more than 3 processes") and "--max-processes 4" in d.hint


def test_threads():
    src = "process A\n" + "".join(f"thread T{i} of A\n" for i in range(17)) + "assert true\n"
    [d] = diag(src)
    assert d.span.line == 18 and d.message == "more than 16 threads; the limit is 16"
    assert d.hint == "raise the limit with `--max-threads 17`"
    load_text(src, "x.cow", L.Limits(max_threads=20))


def test_pages_per_mapping():
    src = "process A\nA: mmap(b, anon, private, rw, pages=100)\nassert true\n"
    [d] = diag(src)
    assert d.message == "`pages=100` is out of range" and d.expected == "1 to 64 pages"
    assert d.hint == "raise the limit with `--max-pages 100`" and (d.span.line, d.span.col) == (2, 37)
    sc = load_text(src, "x.cow", L.Limits(max_pages=128))
    assert sc.steps[0].pages == 100
    assert run(sc).verdict == "pass"


def test_pages_of_a_file():
    src = "process A\nfile F = [" + ", ".join(["1"] * 70) + "]\nassert true\n"
    [d] = diag(src)
    assert d.message == "a file has at most 64 pages, not 70" and "--max-pages 70" in d.hint
    load_text(src, "x.cow", L.Limits(max_pages=70))


def test_total_pages():
    src = "process A\n" + "".join(f"A: mmap(m{i}, anon, private, rw, pages=64)\n" for i in range(17)) + "assert true\n"
    [d] = diag(src)
    assert d.span.line == 18
    assert d.message == "the scenario maps 1088 pages in all here; the limit is 1024"
    assert d.hint == "raise the limit with `--max-total-pages 1088`"
    load_text(src, "x.cow", L.Limits(max_total_pages=2000))


def test_steps():
    src = "process A\nA: mmap(b, anon, private, rw)\n" + "A: write(b, 1)\n" * 1000 + "assert A.b == 1\n"
    [d] = diag(src)
    assert d.message == "the scenario has 1001 steps; the limit is 1000" and d.span.line == 1002
    assert d.hint == "raise the limit with `--max-steps 1001`"
    assert run(load_text(src, "x.cow", L.Limits(max_steps=1001))).verdict == "pass"


def test_steps_in_par_blocks_count():
    src = "process A\nthread T of A\nA: mmap(b, anon, private, rw)\npar {\n  A: write(b, 1)\n  T: write(b, 2)\n}\nassert true\n"
    [d] = diag(src, L.Limits(max_steps=2))
    assert d.span.line == 6 and "3 steps" in d.message


def test_a_limit_is_reported_once():
    src = "process A\n" + "".join(f"A: mmap(m{i}, anon, private, rw, pages=64)\n" for i in range(20)) + "assert true\n"
    assert len(diag(src)) == 1


# --- the flags on the command line ----------------------------------------------------------------------


def test_cli_flags_raise_the_limits(tmp_path, capsys):
    f = tmp_path / "procs.cow"
    f.write_text(PROCS)
    assert main(["check", str(f)]) == 2
    err = capsys.readouterr().err
    assert "the limit is 16" in err and "--max-processes 17" in err
    assert main(["check", str(f), "--max-processes", "17"]) == 0
    assert main(["run", str(f), "--max-processes", "20"]) == 0
    big = tmp_path / "big.cow"
    big.write_text("process A\nA: mmap(b, anon, private, rw, pages=100)\nA: write(b[99], 1)\nassert A.b[99] == 1\n")
    assert main(["run", str(big)]) == 2
    capsys.readouterr()
    assert main(["run", str(big), "--max-pages", "100", "--max-total-pages", "100", "--max-steps", "2",
                 "--max-threads", "1"]) == 0


def test_cli_rejects_a_limit_that_is_not_positive(capsys):
    assert main(["check", "scenarios", "--max-steps", "0"]) == 2
    assert capsys.readouterr().err == "cowdsl check: error: --max-steps takes a whole number of at least 1, not `0`\n"


# --- exploration: states and time ---------------------------------------------------------------------

RACE = pinners_racing_fork(3, 3)


@pytest.mark.parametrize("search", [full, reduced])
def test_the_visited_set_never_outgrows_max_states(search):
    """The race has over 8,000 states; bounded at 300 (or 1,200), the search keeps
    at most that many worlds, and its memory follows the bound."""
    model = Model(load_text(RACE), registry.get("anon-exclusive"))
    peaks = {}
    for bound in (300, 1200):
        tracemalloc.start()
        ex = search(model, Bounds(max_states=bound, timeout=60))
        peaks[bound] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert ex.partial == f"--max-states {bound}"
        assert ex.states <= bound + len(model.init().threads)
        assert len(ex.visited) <= bound + 5
    assert peaks[300] < 8 * 2**20, peaks  # megabytes, not the whole state space
    assert peaks[300] < peaks[1200]


@pytest.mark.parametrize("mode", ["full", "reduced"])
def test_the_timeout_stops_an_exploration(mode, monkeypatch):
    # a clock that runs a second per look: deterministic however fast the search is
    ticks = iter(range(10**9))
    monkeypatch.setattr("cowdsl.explore.search.time.monotonic", lambda: float(next(ticks)))
    r = run(load_text(RACE), "anon-exclusive", mode=mode, bounds=Bounds(max_states=10**9, timeout=30, started=0.0))
    assert r.partial == "--timeout 30s" and r.verdict in ("unknown", "fail")
    assert 0 < r.exploration.states < 100


def test_a_par_block_with_a_fork_of_many_pages_is_explained():
    sc = load_text(textwrap.dedent("""\
        process A
        thread T of A
        A: mmap(buf, anon, private, rw, pages=64)
        A: write(buf, 1)
        par {
          A: fork() as B
          T: pin(buf, read, fast) as mr
          reclaim: swapout(A.buf)
        }
        sometimes: failed(mr)
    """))
    [b] = L.par_blocks(sc)
    assert b["line"] == 6 and b["fork_pages"] == 64 and b["micro_steps"] == 4 + 2 * 64 + 5 + 1
    assert b["interleavings"] > 10**5
    text = L.explain_partial(sc, "--max-states 500")
    assert text.startswith("the exploration stopped at --max-states 500, so some verdicts are unknown: "
                           "the par block from line 6 has 3 actors")
    assert "a fork copying 64 pages" in text and "raise --max-states" in text
    assert L.explain_partial(sc, None) is None
    assert "raise --timeout" in L.explain_partial(sc, "--timeout 1s")


def test_the_cli_says_why_a_run_is_partial(tmp_path, capsys):
    f = tmp_path / "race.cow"
    f.write_text(RACE)
    assert main(["run", str(f), "--max-states", "200", "--mode", "full"]) == 3  # undecided: a bound was hit before a verdict
    out, err = capsys.readouterr()
    assert "partial: " in out and "the par block from line 11 has 4 actors" in err and "raise --max-states" in err


def test_too_many_steps_is_refused_before_the_file_is_parsed(monkeypatch):
    """Was 12-14 s of CPU and 234 MB for a file just under 1 MiB (60,000 steps
    against --max-steps 1000): the whole file was parsed before the checker
    counted its steps.  Now the steps are counted first, with the checker's
    message and location."""
    import cowdsl.load as load_mod
    from cowdsl.errors import CowError

    line = "A: write(buf, 1)\n"
    src = "process A\nA: mmap(buf, anon, private, rw)\n" + line * ((1 << 20) // len(line) - 10) + "assert A.buf == 1\n"

    def no_parse(*a, **k):
        raise AssertionError("parsed a file whose step count is over the limit")

    monkeypatch.setattr(load_mod, "parse", no_parse)
    with pytest.raises(CowError) as e:
        load_mod.load_text(src, "big.cow")
    d = e.value.diagnostics[0]
    assert d.message == f"the scenario has {src.count(line) + 1} steps; the limit is 1000"
    assert (d.span.line, d.span.col) == (1002, 1)
    assert "--max-steps" in (d.hint or "")


def test_assertions_and_comments_are_not_counted_as_steps():
    from cowdsl.load import load_text

    src = ("process A\nA: mmap(buf, anon, private, rw)\n" + "# A: write(buf, 1)\n" * 2000
           + "A: write(buf, 1)\n" + "sometimes: writable(A.buf)\n" * 1500)
    assert len(load_text(src, "t.cow", folder=None).steps) == 2


def test_the_memory_bound_stops_a_growing_search(monkeypatch):
    """--max-memory: resident memory is bounded, not only states (about 6.4 KB a
    state on page-cache-heavy files: 1.3 GB at the default 200,000 states)."""
    from cowdsl.explore import exploration

    rss = iter([100.0] + [100.0 + 10 * k for k in range(1, 10_000)])
    monkeypatch.setattr(exploration, "resident_mib", lambda: next(rss))
    bounds = exploration.Bounds(max_states=10**9, timeout=600, max_memory=150)
    from cowdsl.semantics import registry

    model = Model(load_text(pinners_racing_fork(3, 2), "t.cow"), registry.get("anon-exclusive"))
    ex = full(model, bounds)
    assert ex.partial == "--max-memory 150 MiB"


def test_memory_left_over_from_an_earlier_search_does_not_stop_the_next(monkeypatch):
    from cowdsl.explore import exploration

    monkeypatch.setattr(exploration, "resident_mib", lambda: 2000.0)  # a big heap kept from before, not growing
    bounds = exploration.Bounds(max_states=10**9, timeout=600, max_memory=150)
    assert all(bounds.hit(1) is None for _ in range(5 * exploration.MEMORY_EVERY))


def test_max_memory_option(monkeypatch, capsys, tmp_path):
    import os

    from cowdsl.explore import exploration

    monkeypatch.delenv(L.MEMORY_ENV, raising=False)
    assert exploration.Bounds().max_memory == L.DEFAULT_MAX_MEMORY == 1024
    f = tmp_path / "race.cow"
    f.write_text(pinners_racing_fork(2, 1))
    assert main(["run", "--max-memory", "0", str(f)]) == 2
    assert "--max-memory takes a whole number of at least 1, not `0`" in capsys.readouterr().err
    monkeypatch.setenv(L.MEMORY_ENV, "1024")  # restored after the test: main sets it for the process
    main(["run", "--max-memory", "512", str(f)])
    assert os.environ[L.MEMORY_ENV] == "512"  # the searches here and in -j workers read it
    assert exploration.Bounds().max_memory == 512
