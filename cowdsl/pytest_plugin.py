"""A pytest plugin: .cow scenarios as test items, one per backend their expect lines name.

Installed with cowdsl (the ``pytest11`` entry point ``cowdsl``) but it collects
nothing unless asked, so an installed cowdsl never changes another project's
test run:

    pytest --cow scenarios/              # on the command line, or in the ini file:

    [tool.pytest.ini_options]
    cow_scenarios = ["true"]             # every .cow file pytest looks at, or
    cow_scenarios = ["scenarios"]        # only those under these directories

A file with ``expect pass on early-cow, anon-exclusive`` gives the items
``FILE::early-cow`` and ``FILE::anon-exclusive``; a file with no expect line
one item on the default backend, where every assertion must hold.  The
``native`` backend (this machine's kernel) is skipped unless ``--cow-native`` is
given.  A failure shows the verdict block, the failing assertions and the trace
(the counterexample), not a Python traceback; a file that does not parse is a
collection error showing its diagnostics.  ``-p no:cowdsl`` turns the plugin off.
"""

from __future__ import annotations

from typing import Any

import pytest

DEFAULT_BACKEND = "anon-exclusive"
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def pytest_addoption(parser):
    group = parser.getgroup("cowdsl", "cowdsl scenarios (.cow files)")
    group.addoption("--cow", action="store_true", default=False,
                    help="collect .cow scenario files as tests (one item per backend in their expect lines)")
    group.addoption("--cow-native", action="store_true", default=False,
                    help="also run expect lines for the `native` backend (this machine's kernel); skipped otherwise")
    parser.addini("cow_scenarios",
                  "collect .cow scenario files: `true`, or directories (relative to the rootdir) to collect them from",
                  type="args", default=[])


def pytest_configure(config):
    config.addinivalue_line("markers", "cow: a .cow scenario run on one backend (cowdsl)")


def _wanted(config, path) -> bool:
    if config.getoption("cow", False):
        return True
    values = [v for v in (config.getini("cow_scenarios") or []) if v]
    if not values or all(v.lower() in _FALSE for v in values):
        return False
    if any(v.lower() in _TRUE for v in values):
        return True
    path = path.resolve()
    for v in values:
        base = (config.rootpath / v).resolve()
        if path == base or base in path.parents:
            return True
    return False


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".cow" and _wanted(parent.config, file_path):
        return CowFile.from_parent(parent, path=file_path)
    return None


class CowFile(pytest.File):
    """A .cow file: one item per backend (per swept scenario and backend, for a file with params)."""

    def collect(self):
        from cowdsl.batch import Batch  # lazy: the plugin loads in every pytest session
        from cowdsl.kernel.spec import resolve  # lazy, like Batch

        batch = Batch()
        scenarios = batch.load_file(self.path)
        if scenarios is None:
            raise self.CollectError(problem_text(batch.problems[0])) from None
        native = self.config.getoption("cow_native", False)
        for sc in scenarios:
            yield from self._items(sc, native, resolve)

    def _items(self, sc, native: bool, resolve):
        from cowdsl.scenario import variant_text  # lazy, like Batch

        specs: dict[str, tuple[Any, int]] = {}  # one item per model: an alias and its name are one
        for e in sc.expectations:
            specs.setdefault(e.spec.name, (e.spec, e.span.line))
        if not specs:
            specs[DEFAULT_BACKEND] = (resolve(DEFAULT_BACKEND), 0)
        # a swept scenario's item is named by its params' values too, as pytest
        # names a parametrized test: x.cow::anon-exclusive[kind=thp,n=2]
        values = variant_text(sc.params)
        for spec, line in specs.values():
            name = f"{spec.name}[{values}]" if values else spec.name
            item = CowItem.from_parent(self, name=name, scenario=sc, spec=spec, line=line)
            item.add_marker(pytest.mark.cow)
            if spec.native and not native:
                item.add_marker(pytest.mark.skip(reason="the native backend runs on this machine's kernel: "
                                                        "give --cow-native to run it"))
            yield item


class CowFailure(Exception):
    """A scenario whose verdict is not as expected on a backend."""

    def __init__(self, result):
        super().__init__(result.verdict)
        self.result = result


class CowInternalError(Exception):
    """A crash in cowdsl or a backend while running a scenario (its traceback is the message)."""


class CowItem(pytest.Item):
    """One scenario on one backend."""

    def __init__(self, *, scenario, spec, line: int, **kw):
        super().__init__(**kw)
        self.scenario = scenario
        self.spec = spec  # a KernelSpec, resolved when the file was checked
        self.line = line
        self.result = None

    def runtest(self):
        from cowdsl.batch import Batch  # lazy: the plugin loads in every pytest session

        batch = Batch()
        self.result = r = batch.run(self.scenario, self.spec)
        if r is None:
            raise CowInternalError(problem_text(batch.problems[0]))
        if r.verdict == "skip":
            pytest.skip(f"no assertion could be decided on {r.backend}")
        if not r.ok:
            raise CowFailure(r)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CowFailure):
            return failure_text(excinfo.value.result)
        if isinstance(excinfo.value, CowInternalError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, max(self.line - 1, 0), f"{self.scenario.name} on {self.spec.label}"


def failure_text(r) -> str:
    """The failing assertions, the verdict block, the trace and the final state."""
    from cowdsl.report import junit  # lazy, like Batch: the reports import the model

    return junit.failure_text(r)


def problem_text(p) -> str:
    """A cowdsl.batch.Problem: the diagnostics, or the message (and the traceback of an internal error)."""
    if p.error is not None:
        return p.error.render()
    if p.exception is not None:
        return f"{p.file}: internal error while {p.doing}: {type(p.exception).__name__}: {p.exception}\n" + p.traceback()
    return f"{p.file}: {p.message}"
