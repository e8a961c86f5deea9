"""Kernels as data: versions, the timeline of changes, and specs resolved once."""

from __future__ import annotations

import re

import pytest

from cowdsl.kernel import options, releases, timeline
from cowdsl.kernel.spec import KernelSpec, SpecError, defaults, resolve
from cowdsl.kernel.version import Version, v


@pytest.mark.parametrize("text, parts", [
    ("5.8", (5, 8, 0, 0)), ("5.9-rc4", (5, 9, 4, 0)), ("5.4.214", (5, 4, 0, 214)), ("6.1.0", (6, 1, 0, 0)),
])
def test_version_parse(text, parts):
    ver = Version.parse(text)
    assert (ver.major, ver.minor, ver.rc, ver.sublevel) == parts
    assert str(ver) == text.removesuffix(".0")


@pytest.mark.parametrize("text", ["5", "5.x", "v5.8", "5.8-rc", "5.8.1.2", "", "5.8 "])
def test_not_a_version(text):
    assert Version.parse(text) is None


def test_version_order():
    order = ["4.19.222", "5.4", "5.4.214", "5.8", "5.9-rc4", "5.9-rc7", "5.9", "5.9.1", "5.10", "5.10.7", "5.11"]
    assert sorted(order, key=lambda t: v(t).key()) == order
    assert v("5.9-rc4") < v("5.9") < v("5.9.1") and v("5.4") == v("5.4.0")


def test_a_change_is_in_a_version_from_its_release_or_its_backport():
    wp_seq = next(c for c in timeline.TIMELINE if c.commit == "57efa1fe5957")
    assert not wp_seq.in_version(v("5.10"))
    assert wp_seq.in_version(v("5.11")) and wp_seq.in_version(v("5.12.3"))
    first = wp_seq.first_in((5, 10))
    assert first is not None and wp_seq.in_version(first)
    assert not wp_seq.in_version(Version(5, 10, sublevel=first.sublevel - 1))
    assert wp_seq.first_in((5, 4)) is None


def test_every_change_sets_known_settings_and_cites_a_commit():
    for c in timeline.TIMELINE:
        # a commit id, or where none is confirmed the release, file and function
        assert (len(c.commit) == 12 and int(c.commit, 16) >= 0) or re.fullmatch(r"v\d+\.\d+ \S+\.c \w+", c.commit), c.key
        for k, val in c.sets:
            if k == "era":
                continue
            assert val in options.BY_NAME[k].choices, (c.key, k)
            assert options.BY_NAME[k].kind == options.CHANGE
    assert set(timeline.BASELINE) - {"era"} == {o.name for o in options.OPTIONS if o.kind == options.CHANGE}


def test_options_not_offered_on_an_era_never_vary_within_it():
    """A change option a spec may not set on an era has one value on all the
    era's versions: otherwise two kernels would share a name and differ."""
    for ver in releases.ALL:
        spec = resolve(str(ver))
        offered = options.of_era(spec.model)
        preset = defaults(spec.model)
        for k, val in spec.options:
            if k not in offered and k in timeline.BASELINE:
                assert val == preset[k], (str(ver), k)


def test_between_is_the_changelog():
    gained, lost = timeline.between(v("5.8"), v("5.12"))
    assert [c.commit for c in gained] == ["09854ba94c6a", "70e806e4e645", "57efa1fe5957", "feb889fb40fa",
                                          "4eae4efa2c29"]
    assert lost == ()
    assert timeline.between(v("5.12"), v("5.8")) == ((), gained)


def test_spec_equality_is_by_model():
    assert resolve("modern").name == resolve("anon-exclusive").name == resolve("6.18").name
    assert resolve("6.18.2").label == "6.18.2 (anon-exclusive)"
    assert resolve("anon-exclusive").label == "anon-exclusive"
    assert isinstance(resolve("native"), KernelSpec) and resolve("native").native


def test_a_bare_release_is_mainline():
    assert resolve("5.10").version == v("5.10.0")
    assert resolve("5.10").name != resolve("5.10.198").name


def test_a_variant_on_a_version():
    spec = resolve("5.10.198:pin_scope=longterm")
    assert spec.model == "early-cow" and spec.option("pin_scope") == "longterm"
    assert spec.option("wp_seq") == "on"


def test_a_refused_option_says_where_it_applies():
    with pytest.raises(SpecError) as info:
        resolve("anon-exclusive:hugetlb_fork_copy=off")
    assert info.value.hint == "it applies to early-cow" and info.value.in_options


def test_a_range_of_versions_in_an_expect_line():
    from cowdsl.load import load_text

    sc = load_text("process A\nA: mmap(buf, anon, private, rw)\nassert true\nexpect pass on 5.9..5.10.9\n")
    assert [str(e.spec.version) for e in sc.expectations] == ["5.9", "5.10.4", "5.10.9"]
    assert {e.spec.text for e in sc.expectations} == {"5.9..5.10.9"}


@pytest.mark.parametrize("text, message", [
    ("5.18..5.9", "the range `5.18..5.9` is empty"),
    ("5.x..5.9", "`5.x..5.9` is not a range of kernel versions"),
])
def test_a_bad_range_is_an_error(text, message):
    from cowdsl.errors import CowError
    from cowdsl.load import load_text

    with pytest.raises(CowError) as info:
        load_text(f"process A\nA: mmap(buf, anon, private, rw)\nassert true\nexpect pass on {text}\n")
    assert [d.message for d in info.value.diagnostics] == [message]


def test_a_range_that_disagrees_with_a_version_names_both_lines():
    from cowdsl.errors import CowError
    from cowdsl.load import load_text

    with pytest.raises(CowError) as info:
        load_text("process A\nA: mmap(buf, anon, private, rw)\nassert true\n"
                  "expect pass on 5.10.4\nexpect fail on 5.9..5.18\n")
    (d,) = info.value.diagnostics
    assert d.span.line == 5 and "expected to pass on line 4 (`5.10.4`) and to fail here" in d.message
