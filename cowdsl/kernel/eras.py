"""The eras: named models, oldest first.  Each is a preset (its newest
behaviour, every option at its default) and a chapter of the COW changelog;
a kernel version resolves to one of them plus the options of its changes."""

from __future__ import annotations

from attrs import frozen


@frozen
class Era:
    name: str
    versions: str  # the mainline releases it stands for
    description: str
    preset: str  # the release whose behaviour the bare name means: the era's last
    aliases: tuple[str, ...] = ()


ERAS: tuple[Era, ...] = (
    Era("mapcount", "≤5.7", "reuse on mapcount + swapcount; refcount (GUP, pipes, DMA) ignored; fork shares pinned pages",
        "5.7"),
    Era("gup-cow", "5.8", "GUP with a page reference breaks COW first; GUP-fast refuses read-only entries",
        "5.8"),
    Era("refcount", "5.9-rc", "do_wp_page reuses only at refcount 1; no forced COW break; no pin handling at fork",
        "5.9-rc6", aliases=("5.9-rc",)),
    Era("early-cow", "5.9–5.17",
        "has_pinned, and fork copies maybe-pinned pages for the child; pinned pages kept out of swap cache",
        "5.17"),
    Era("cow-fixes-1", "5.18", "refcount rule after dropping the swap cache, for swap-in and THP too", "5.18"),
    Era("anon-exclusive", "5.19+",
        "PageAnonExclusive: exclusive pages are reused, pinned pages are never shared, R/O pins unshare",
        "6.18", aliases=("modern",)),
)

BY_NAME: dict[str, Era] = {e.name: e for e in ERAS}
ALIASES: dict[str, str] = {a: e.name for e in ERAS for a in e.aliases}

# The real kernel under this machine (or a guest's): not a model.
NATIVE = "native"


def since(name: str) -> tuple[str, ...]:
    """The era ``name`` and every later one."""
    names = [e.name for e in ERAS]
    return tuple(names[names.index(name):])
