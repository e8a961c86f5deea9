"""A backend spec, resolved once: ``--backend`` arguments and expect lines
become a ``KernelSpec`` when they are read, and nothing parses the text again.

``NAME[:OPTION=CHOICE]...`` names an era (or an alias) with options;
``VERSION[:OPTION=CHOICE]...`` a kernel version, resolved through the
timeline to its era and change options; ``native`` the real kernel.
"""

from __future__ import annotations

import functools

import attrs
from attrs import frozen

from cowdsl.errors import did_you_mean
from cowdsl.kernel import eras, options, releases, timeline
from cowdsl.kernel.version import Version


class SpecError(ValueError):
    def __init__(self, message: str, hint: str | None = None, *, in_options: bool = False):
        super().__init__(message)
        self.message, self.hint = message, hint
        self.in_options = in_options  # the name before the first `:` is fine; an option is not


@frozen
class KernelSpec:
    """What a backend spec means: the model (an era, or native), the value of
    every option that model accepts, and the version it was resolved from."""

    model: str
    options: tuple[tuple[str, str], ...] = ()  # every change option and the era's variants, sorted
    version: Version | None = None
    text: str = ""  # as written

    @functools.cached_property  # asked for on every step's rule decisions: worked out once per spec
    def name(self) -> str:
        """The canonical spec: the model and the options a spec may set on it
        that differ from its preset (``early-cow:wp_seq=off``).  Two specs with
        one name run the same model."""
        if self.native:
            return self.model
        preset = defaults(self.model)
        accepted = options.of_era(self.model)
        extra = [f"{k}={val}" for k, val in self.options if k in accepted and val != preset[k]]
        return ":".join([self.model, *extra])

    @property
    def label(self) -> str:
        """The name, with the version it came from: ``5.4.214 (gup-cow)``."""
        if self.version is None:
            return self.name
        return f"{self.version} ({self.name})"

    @property
    def native(self) -> bool:
        return self.model == eras.NATIVE

    def option(self, name: str) -> str:
        return dict(self.options)[name]

    def __str__(self) -> str:
        return self.name


@functools.cache
def defaults(era: str) -> dict[str, str]:
    """Every option's value on the bare era name: the change options of its
    preset release, the variants as merged."""
    out = timeline.settings(Version.parse(eras.BY_NAME[era].preset) or Version(0, 0))
    out.pop("era")
    out.update({k: o.choices[0] for k, o in options.VARIANTS.items() if era in o.eras})
    return out


def known_words() -> list[str]:
    """The names a spec may start with (for did-you-mean)."""
    return [e.name for e in eras.ERAS] + list(eras.ALIASES) + [eras.NATIVE]


def _given(parts: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in parts:
        if "=" not in part:
            raise SpecError(f"option `{part}` needs a value", "write OPTION=CHOICE, e.g. early-cow:pin_scope=longterm",
                            in_options=True)
        k, val = part.split("=", 1)
        out[k] = val
    return out


def _check_options(model: str, given: dict[str, str], where: str) -> None:
    accepted = options.of_era(model)
    for k, val in given.items():
        if k not in accepted:
            other = options.BY_NAME.get(k)
            if other is not None:
                raise SpecError(f"option `{k}` does not apply to {where}",
                                f"it applies to {', '.join(other.eras)}", in_options=True)
            hint = did_you_mean(k, list(accepted)) or (
                "options: " + ", ".join(accepted) if accepted else "it takes no options")
            raise SpecError(f"unknown option `{k}` for {where}", hint, in_options=True)
        if val not in accepted[k].choices:
            raise SpecError(f"option `{k}` of {model} takes {' or '.join(accepted[k].choices)}, not `{val}`",
                            did_you_mean(val, list(accepted[k].choices)), in_options=True)


def resolve(text: str) -> KernelSpec:
    """The spec ``text`` means; SpecError with a suggestion otherwise."""
    head, *rest = text.split(":")
    given = _given(rest)
    if head == eras.NATIVE:
        if given:
            raise SpecError("`native` takes no options", "the real kernel is what it is", in_options=True)
        return KernelSpec(eras.NATIVE, (), None, text)
    ver = Version.parse(head)
    if ver is not None:
        values = timeline.settings(ver)
        model = values.pop("era")
        values.update({k: o.choices[0] for k, o in options.VARIANTS.items() if model in o.eras})
        where = f"{ver} ({model})"
    else:
        model = eras.ALIASES.get(head, head)
        if model not in eras.BY_NAME:
            raise SpecError(f"unknown backend `{head}`", did_you_mean(head, known_words()))
        values = dict(defaults(model))
        where = model
    _check_options(model, given, where)
    values.update(given)
    return KernelSpec(model, tuple(sorted(values.items())), ver, text)


def check(text: str) -> SpecError | None:
    """None when ``text`` is a valid spec, else the error."""
    try:
        resolve(text)
    except SpecError as e:
        return e
    return None


def expand(text: str) -> tuple[KernelSpec, ...]:
    """A spec, or a range of versions ``LO..HI[:OPTION=CHOICE]...`` (every
    listed release, rc and stable sublevel from LO to HI), one spec per model."""
    head, _, tail = text.partition(":")
    if ".." not in head:
        return (resolve(text),)
    lo_text, hi_text = head.split("..", 1)
    lo, hi = Version.parse(lo_text), Version.parse(hi_text)
    if lo is None or hi is None:
        raise SpecError(f"`{head}` is not a range of kernel versions", "write LO..HI, e.g. 5.9..5.18")
    if hi < lo:
        raise SpecError(f"the range `{head}` is empty", f"write {hi}..{lo}")
    out: dict[str, KernelSpec] = {}
    for ver in releases.within(lo, hi):
        spec = resolve(str(ver) + (":" + tail if tail else ""))
        out.setdefault(spec.name, attrs.evolve(spec, text=text))
    return tuple(out.values())
