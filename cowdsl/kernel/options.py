"""Options of a backend spec (``early-cow:wp_seq=off``), each valid only on the
eras where it changes an answer.

Two kinds, kept apart:
- a *change* option switches one kernel change of the timeline on or off (its
  default is the change applied; a version sets it from the timeline);
- a *variant* is a design argued on the list and never merged, applied on top
  of a version as a what-if.
"""

from __future__ import annotations

from attrs import frozen

from cowdsl.kernel.eras import since

CHANGE, VARIANT = "change", "variant"


@frozen
class Option:
    name: str
    choices: tuple[str, ...]  # the first is the default: the era's newest behaviour
    doc: str
    eras: tuple[str, ...]  # the eras on which it is accepted
    kind: str = CHANGE

    @property
    def default(self) -> str:
        return self.choices[0]


OPTIONS: tuple[Option, ...] = (
    # --- changes of the timeline ---------------------------------------------------------
    Option("foll_cow", ("on", "off"),
           "on: the Dirty COW fix 19be0eaffa3a (4.9): a forced write follows a read-only PTE only if "
           "FOLL_COW and the PTE is dirty; off: the pre-4.9 rule (CVE-2016-5195)",
           ("mapcount", "gup-cow")),
    Option("hugetlb_fork_copy", ("on", "off"),
           "4eae4efa2c29 (5.12): fork copies maybe-pinned hugetlb pages too; off for 5.9–5.11",
           ("early-cow",)),
    Option("device_exclusive", ("on", "off"),
           "make_device_exclusive_range exists (b756a3b5e7ea, 5.14); off for 5.9–5.13",
           ("early-cow",)),
    Option("wp_seq", ("on", "off"),
           "fork and GUP-fast synchronise through write_protect_seq (57efa1fe5957, 5.11 and "
           "5.10.y); off for 5.9 and 5.10.0, where GUP-fast can race a fork",
           ("early-cow",)),
    Option("swap_pin_check", ("on", "off"),
           "feb889fb40fa (5.11, 5.10.y) keeps pinned pages out of the swap cache; off for 5.9 and 5.10.0",
           ("early-cow",)),
    Option("foll_force", ("exclusive", "foll_cow"),
           "how a forced write follows a read-only PTE: exclusive anon page (6.0, 5535be309971) "
           "or the FOLL_COW rule of 5.19.0",
           ("anon-exclusive",)),
    Option("mprotect", ("upgrade", "fault"),
           "mprotect(PROT_WRITE) makes exclusive anon PTEs writable at once (6.0, 64fe24a3e05e) or leaves them "
           "to fault (5.19)",
           ("anon-exclusive",)),
    Option("hugetlb_force", ("refuse", "allow"),
           "FOLL_FORCE|FOLL_WRITE on hugetlb is refused (6.2, f347454d0341) or allowed (5.19–6.1)",
           ("anon-exclusive",)),
    Option("longterm_file_write", ("refuse", "allow"),
           "a FOLL_LONGTERM write pin of a file mapping that needs dirty tracking (a disk file, not "
           "shmem) is refused (6.5, 8ac268436e6d) or allowed (before 6.5)",
           ("anon-exclusive",)),
    Option("longterm_unshare", ("all", "anon"),
           "a R/O long-term pin in a COW mapping unshares page-cache and zero pages too (6.2, "
           "84209e87c696) or only anon pages (5.19–6.1)",
           ("anon-exclusive",)),
    # --- what-ifs from the seed threads ----------------------------------------------------
    Option("pin_scope", ("any", "longterm"),
           "which FOLL_PIN sets has_pinned: any (merged, 008cfe4418b3) or only FOLL_LONGTERM "
           "(Jason Gunthorpe's suggestion, seed thread 003)",
           since("early-cow"), VARIANT),
    Option("devexcl_fork", ("restore", "copy"),
           "fork meets a device-exclusive entry: restore the parent's PTE, then the normal rule "
           "(merged, b756a3b5e7ea), or give parent and child read-only exclusive entries "
           "(the alternative argued in the Popple thread, seed 004)",
           since("early-cow"), VARIANT),
    Option("pin_bias", ("on", "off"),
           "page_maybe_dma_pinned counts GUP_PIN_COUNTING_BIAS in the refcount (on: 1024 "
           "ordinary references look pinned) or reads an exact pin count (off)",
           since("early-cow"), VARIANT),
)

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


def of_era(era: str) -> dict[str, Option]:
    """The options accepted on ``era``."""
    return {o.name: o for o in OPTIONS if era in o.eras}
