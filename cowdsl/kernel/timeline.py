"""The timeline: every kernel change the model knows, as data.

A change names its commit, the first mainline release that has it, the first
sublevel of each stable line that carries it, and what it sets: the era
(which model), or a change option.  A version contains a change when it is at
or after the change's mainline release, or on a stable line at or after the
backport's sublevel.  Resolving a version applies, oldest first, every change
it contains to the settings of the oldest kernels (``BASELINE``).

Diffing two versions' change sets is the kernel's COW changelog
(``between``).  Each entry's ``note`` says how its release data were
confirmed (kernel-cow-semantics.md §15, merge shortlogs, stable changelogs).
"""

from __future__ import annotations

from attrs import frozen

from cowdsl.kernel.version import Version, v


@frozen
class Change:
    key: str  # a short name, used in traces and `cowdsl timeline`
    commit: str  # the upstream commit id (12 hex)
    title: str
    mainline: Version  # the first mainline release (or -rc) that has it
    sets: tuple[tuple[str, str], ...]  # ("era", NAME) or (option, value)
    stable: tuple[tuple[tuple[int, int], int], ...] = ()  # ((major, minor), first sublevel) per stable line
    note: str = ""

    def in_version(self, ver: Version) -> bool:
        if ver >= self.mainline:
            return True
        return any(ver.line == line and ver.sublevel >= sub for line, sub in self.stable)

    def first_in(self, line: tuple[int, int]) -> Version | None:
        """The first version of a stable line that has the change, if any."""
        if Version(*line) >= self.mainline:
            return Version(*line)
        return next((Version(*line, sublevel=sub) for ln, sub in self.stable if ln == line), None)


# The oldest kernels: before the Dirty COW fix, no change applied.
BASELINE: dict[str, str] = {
    "era": "mapcount",
    "foll_cow": "off",
    "wp_seq": "off",
    "swap_pin_check": "off",
    "hugetlb_fork_copy": "off",
    "device_exclusive": "off",
    "foll_force": "foll_cow",
    "mprotect": "fault",
    "hugetlb_force": "allow",
    "longterm_file_write": "allow",
    "longterm_unshare": "anon",
}

TIMELINE: tuple[Change, ...] = (
    Change("dirty-cow", "19be0eaffa3a", "mm: remove gup_flags FOLL_WRITE games from __get_user_pages()",
           v("4.9"), (("foll_cow", "on"),),
           note="reference §1 (CVE-2016-5195); stable backports to older lines not modelled"),
    Change("forced-cow-break", "17839856fd58", "gup: document and work around \"COW can break either way\" issue",
           v("5.8"), (("era", "gup-cow"),),
           note="reference §2, §15.1 item 1"),
    Change("refcount-cow", "09854ba94c6a", "mm: do_wp_page() simplification",
           v("5.9-rc4"), (("era", "refcount"),),
           note="with a308c71bf1e6 (gup: remove the forced COW break); §15.1 item 2: in the rc4 shortlog"),
    Change("early-cow", "70e806e4e645", "mm: Do early cow for pinned pages during fork() for ptes",
           v("5.9-rc7"), (("era", "early-cow"),),
           note="with 008cfe4418b3 (has_pinned); §15.1 item 2: new for rc7"),
    Change("write-protect-seq", "57efa1fe5957", "mm/gup: prevent gup_fast from racing with COW during fork",
           v("5.11"), (("wp_seq", "on"),), stable=(((5, 10), 7),),
           note="§15.1 item 8: read in 5.10.7"),
    Change("swap-pin-check", "feb889fb40fa", "mm: don't put pinned pages into the swap cache",
           v("5.11"), (("swap_pin_check", "on"),), stable=(((5, 10), 198),),
           note="§15.1 item 8: absent in 5.10.7, present in 5.10.198"),
    Change("hugetlb-early-cow", "4eae4efa2c29", "hugetlb: do early cow when page pinned on src mm",
           v("5.12"), (("hugetlb_fork_copy", "on"),), note="§15.3"),
    Change("device-exclusive", "b756a3b5e7ea", "mm: Device exclusive memory access",
           v("5.14"), (("device_exclusive", "on"),), note="§9.1, §15.3"),
    Change("cow-fixes-1", "c145e0b47c77", "mm: streamline COW logic in do_swap_page()",
           v("5.18"), (("era", "cow-fixes-1"),), note="the 5.18 COW fixes part 1 set (THP and swap), §5"),
    Change("anon-exclusive", "6c287605fd56", "mm: remember exclusively mapped anonymous pages with PG_anon_exclusive",
           v("5.19"), (("era", "anon-exclusive"),), note="with a7f226604170 (GUP unshare), §6"),
    Change("foll-force-exclusive", "5535be309971", "mm/gup: fix FOLL_FORCE COW security issue and remove FOLL_COW",
           v("6.0"), (("foll_force", "exclusive"),), note="§15.3 (5.19.y backport not modelled)"),
    Change("mprotect-upgrade", "64fe24a3e05e", "mm/mprotect: try avoiding write faults for exclusive anonymous pages "
           "when changing protection", v("6.0"), (("mprotect", "upgrade"),), note="§6.7"),
    Change("longterm-unshare-all", "84209e87c696", "mm/gup: reliable R/O long-term pinning in COW mappings",
           v("6.2"), (("longterm_unshare", "all"),), note="§15.3"),
    Change("hugetlb-no-force-write", "f347454d0341", "mm: don't allow FOLL_FORCE|FOLL_WRITE on hugetlb",
           v("6.2"), (("hugetlb_force", "refuse"),), stable=(((6, 1), 2),), note="§15.1 item 5"),
    Change("longterm-file-write", "8ac268436e6d", "mm/gup: disallow FOLL_LONGTERM GUP-nonfast writing to "
           "file-backed mappings", v("6.5"), (("longterm_file_write", "refuse"),), note="as cited on LKML"),
)


def contained(ver: Version) -> tuple[Change, ...]:
    """The changes ``ver`` has, oldest first."""
    return tuple(c for c in sorted(TIMELINE, key=lambda c: c.mainline.key()) if c.in_version(ver))


def settings(ver: Version) -> dict[str, str]:
    """The era and change options of ``ver``."""
    out = dict(BASELINE)
    for c in contained(ver):
        out.update(c.sets)
    return out


def between(old: Version, new: Version) -> tuple[tuple[Change, ...], tuple[Change, ...]]:
    """(changes ``new`` has and ``old`` lacks, changes ``old`` has and ``new`` lacks)."""
    a, b = set(contained(old)), set(contained(new))
    order = sorted(TIMELINE, key=lambda c: c.mainline.key())
    return tuple(c for c in order if c in b - a), tuple(c for c in order if c in a - b)
