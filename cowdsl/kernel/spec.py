"""A backend spec, resolved once: ``--backend`` arguments and expect lines
become a ``KernelSpec`` when they are read, and nothing parses the text again.

``NAME[:OPTION=CHOICE]...`` names an era (or an alias) with options;
``VERSION[:OPTION=CHOICE]...`` a kernel version, resolved through the
timeline to its era and change options; ``native`` the real kernel.
"""

from __future__ import annotations

from attrs import frozen

from cowdsl.errors import did_you_mean
from cowdsl.kernel import eras, options, timeline
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
    options: tuple[tuple[str, str], ...] = ()  # every accepted option, sorted by name
    version: Version | None = None
    text: str = ""  # as written

    @property
    def name(self) -> str:
        """The canonical spec: the model and the options that differ from its
        defaults (``early-cow:wp_seq=off``).  Two specs with one name run the
        same model."""
        extra = [f"{k}={val}" for k, val in self.options if val != options.BY_NAME[k].default]
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
        base = timeline.settings(ver)
        model = base.pop("era")
        where = f"{ver} ({model})"
    else:
        model = eras.ALIASES.get(head, head)
        if model not in eras.BY_NAME:
            raise SpecError(f"unknown backend `{head}`", did_you_mean(head, known_words()))
        base = {}
        where = model
    _check_options(model, given, where)
    accepted = options.of_era(model)
    values = {k: given.get(k, base.get(k, o.default)) for k, o in accepted.items()}
    return KernelSpec(model, tuple(sorted(values.items())), ver, text)


def check(text: str) -> SpecError | None:
    """None when ``text`` is a valid spec, else the error."""
    try:
        resolve(text)
    except SpecError as e:
        return e
    return None
