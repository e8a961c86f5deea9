"""Counterexamples keep only the actors that take part in the race
(cowdsl.judge.shrink): an actor whose moves can all run after (or before) the
others' without losing the violation is a bystander."""

from __future__ import annotations

import textwrap

from cowdsl.explore import search
from cowdsl.explore.model import Model
from cowdsl.judge.evaluate import evaluate
from cowdsl.judge.quantify import model_observer
from cowdsl.judge.shrink import bystanders
from cowdsl.load import load_text
from cowdsl.semantics import registry

# S12 without write_protect_seq (5.10.3), and C, another process, writing its own page meanwhile
RACE = """
process A, C
thread T of A
A: mmap(buf, anon, private, rw)
C: mmap(own, anon, private, rw)
A: write(buf, 1)
par {
  C: write(own, 5)
  T: pin(buf, write, fast) as mr
  A: fork() as B
  C: write(own, 6)
}
A: write(buf, 2)
always: mr is A.buf
"""


def _setup(src, backend):
    sc = load_text(textwrap.dedent(src).lstrip("\n"), "t.cow")
    model = Model(sc, registry.get(backend))
    observe = model_observer(model.backend)
    a = sc.assertions[0]

    def violated(w):
        return evaluate(observe(w.state), a)[0] is False

    return model, violated


def _interleaved(model, path):
    actors = [w.threads[i].actor for w, i in path]
    return sum(x != y for x, y in zip(actors, actors[1:]))


def test_a_process_writing_its_own_page_is_a_bystander():
    model, violated = _setup(RACE, "5.10.3")
    # an execution where C's writes are interleaved with the race
    path, last = search.follow(model, ["A", "C", "A", "A", "A", "A", "C", "T", "T", "T", "C", "T", "T", "A", "A", "A", "A"])
    assert violated(last), "the schedule must reach the violation"
    new, out = bystanders(model, path, violated)
    assert out == ("C",)
    par = max(w.block for w, _ in new if len(w.threads) > 1)
    actors = [(w.threads[i].actor, w.block) for w, i in new]
    # C's moves in the par block now run together, out of the race, and the violation still happens
    c = [k for k, (a, b) in enumerate(actors) if a == "C" and b == par]
    assert len(c) == 2
    assert c == list(range(c[0], c[0] + len(c)))
    end = new[-1]
    assert violated(model.step(*end)[0])
    assert _interleaved(model, new) < _interleaved(model, path)


def test_the_racing_actors_stay():
    model, violated = _setup(RACE, "5.10.3")
    path = search.shortest(model, violated, search.Bounds())
    assert path is not None
    _, out = bystanders(model, path, violated)
    assert "T" not in out and "A" not in out  # the pin and fork race: neither can be moved out
