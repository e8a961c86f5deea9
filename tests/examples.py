"""Small example scenarios shared by the tests of the command line, the output
formats and the pytest plugin (test_cli, test_report, test_junit, test_dot, test_plugin),
and the growing race the explorer's and the limits' tests use.

Those tests assert on the scenario names, line numbers and step counts below:
change a scenario here and run them all.
"""

# docs/language.md's example without its comments: every assertion holds on anon-exclusive,
# as its expect line says.
# Steps at lines 5-11, assertions at lines 13-15.
LONG_TERM_PIN = """\
scenario "long-term pin stays coherent across fork"
ref "LKML 2020-09-21, mm: Do early cow for pinned pages during fork() for ptes"

process A
A: mmap(buf, anon, private, rw, pages=1)
A: write(buf, 1)
A: pin(buf, write, longterm) as mr
A: fork() as B
A: write(buf, 2)
B: write(buf, 3)
mr: dma_write(4)

assert A.buf == 4
assert B.buf == 3
assert mr is A.buf
expect pass on anon-exclusive
"""

# A pin survives fork; no expect line, so callers add the one they need.
PIN_SURVIVES_FORK = """\
scenario "a pin survives fork"
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
A: pin(buf, write, longterm) as mr
A: fork() as B
A: write(buf, 2)
assert mr is A.buf
"""

# The assertion at line 8 fails; no expect line, so every assertion must hold: not as expected.
FAILING = """\
scenario "a failing assertion"
process A
A: mmap(buf, anon, private, rw)
A: write(buf, 1)
A: fork() as B
B: write(buf, 2)
assert A.buf == 1
assert A.buf == 2
"""

# Does not load: an unknown flag at line 3 (a typo for `longterm`).
BROKEN = """\
process A
A: mmap(buf, anon, private, rw)
A: pin(buf, write, longtem) as mr
assert A.buf == 0
"""

# Two threads race: one schedule breaks the `always` at line 9.
RACE = """\
scenario "two writers"
process A
thread T of A
A: mmap(buf, anon, private, rw)
par {
  A: write(buf, 1)
  T: write(buf, 2)
}
always: A.buf == 1
"""


def pinners_racing_fork(pins: int, pages: int) -> str:
    """S12 grown: `pins` threads pin with GUP-fast, page i % pages each, while
    thread F forks (the explorer's and the limits' tests)."""
    lines = ["process A", *(f"thread T{i} of A" for i in range(pins)), "thread F of A",
             f"A: mmap(p, anon, private, rw, pages={pages})", *(f"A: write(p[{j}], 1)" for j in range(pages)),
             "par {", *(f"  T{i}: pin(p[{i % pages}], write, fast) as r{i}" for i in range(pins)),
             "  F: fork() as B", "}", "always: failed(r0) or r0 is A.p[0]"]
    return "\n".join(lines) + "\n"


# Three actors of two processes in a par block that run natively (threads and a process);
# each quantifier once, the last `sometimes` never witnessed.
NATIVE_PAR = """\
process A, B
thread T of A
A: mmap(x, anon, private, rw)
A: mmap(y, anon, private, rw)
A: write(x, 1)
A: write(y, 1)
par {
  A: write(x, 2)
  T: write(y, 3)
  B: mmap(z, anon, private, rw)
}
always: A.x == 2 and A.y == 3
never: A.x == 1
sometimes: A.y == 3
sometimes: A.x == 5
"""
