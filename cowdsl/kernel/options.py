"""Options of a backend spec (``early-cow:wp_seq=off``), each accepted only on
the eras where it changes an answer.

Two kinds, kept apart:
- a *change* option switches one change of the timeline (``timeline.py``): a
  version sets it, and on an era name it takes the value of the era's preset
  release; naming it is a what-if "this kernel without (or with) that change";
- a *variant* is a design argued on the list and never merged, applied on top
  of any version where it makes sense.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

from attrs import frozen

from cowdsl.kernel.eras import since

CHANGE, VARIANT = "change", "variant"


@frozen
class Option:
    name: str
    choices: tuple[str, ...]  # for a variant the first is the merged behaviour, its default
    doc: str
    eras: tuple[str, ...]  # the eras on which a spec may set it
    kind: str = CHANGE


OPTIONS: tuple[Option, ...] = (
    # --- changes of the timeline: a version sets them -------------------------------------
    Option("foll_cow", ("on", "off"),
           "on: the Dirty COW fix 19be0eaffa3a (4.9): a forced write follows a read-only PTE only if "
           "FOLL_COW and the PTE is dirty; off: the pre-4.9 rule (CVE-2016-5195)",
           ("mapcount", "gup-cow")),
    Option("ksm_reuse", ("on", "off"),
           "do_wp_page reuses a KSM page mapped only here (reuse_ksm_page, 52d1e606ee73, 5.1 until "
           "1a0cf26323c8 in 5.9-rc4) or always copies it (before 5.1)",
           ("mapcount", "gup-cow")),
    Option("thp_wp", ("split", "whole"),
           "a write fault on a shared PMD-mapped THP splits it and copies one page (3917c80280c9, 5.8) or "
           "copies the whole THP (≤5.7, and the late 4.x/5.4 stable kernels that took the 5.8 GUP fix)",
           ("mapcount", "gup-cow")),
    Option("pvm_pin", ("pin", "get"),
           "process_vm_readv/writev take FOLL_PIN (803e4572d7c5, 5.6) or FOLL_GET references",
           ("mapcount", "gup-cow")),
    Option("hugetlb_fork_copy", ("on", "off"),
           "4eae4efa2c29 (5.12): fork copies maybe-pinned hugetlb pages too; off for 5.9–5.11",
           ("early-cow",)),
    Option("device_exclusive", ("on", "off"),
           "make_device_exclusive_range exists (b756a3b5e7ea, 5.14); off for 5.9–5.13",
           ("early-cow",)),
    Option("wp_seq", ("on", "off"),
           "fork and GUP-fast synchronise through write_protect_seq (57efa1fe5957, 5.11 and "
           "5.10.4); off for 5.9 and 5.10.0–5.10.3, where GUP-fast can race a fork",
           ("early-cow",)),
    Option("swap_pin_check", ("on", "off"),
           "feb889fb40fa (5.11-rc4, 5.10.9) keeps pinned pages out of the swap cache; off for 5.9–5.10.8",
           ("early-cow",)),
    Option("fork_anon_only", ("on", "off"),
           "fork's early COW copies only anonymous pages (5.10.153 and 5.15.173 stable; mainline from 5.19 "
           "through fb3d824d1a46) or any maybe-pinned page of a COW mapping, page-cache pages of private "
           "file mappings included (5.9–5.18 mainline)",
           ("early-cow", "cow-fixes-1")),
    Option("foll_force", ("exclusive", "foll_cow"),
           "how a forced write follows a read-only PTE: exclusive anon page (5535be309971: 6.0, 5.19.6) "
           "or the FOLL_COW rule of 5.19.0–5.19.5",
           ("anon-exclusive",)),
    Option("mprotect", ("upgrade", "dirty", "fault"),
           "mprotect(PROT_WRITE) makes exclusive anon PTEs writable at once (6.2, \"mm/mprotect: allow clean "
           "exclusive anon pages to be writable\"), only dirty ones (64fe24a3e05e, 6.0–6.1), or leaves them "
           "to fault (5.19)",
           ("anon-exclusive",)),
    Option("hugetlb_force", ("refuse", "allow"),
           "FOLL_FORCE|FOLL_WRITE on hugetlb is refused (f347454d0341: 6.2, 6.1.2, until 6.13) or allowed "
           "(5.19–6.1.1; again from 6.14, \"mm/hugetlb: support FOLL_FORCE|FOLL_WRITE\")",
           ("anon-exclusive",)),
    Option("longterm_file_write", ("refuse", "allow"),
           "a FOLL_LONGTERM write pin of a file mapping that needs dirty tracking (a disk file, not "
           "shmem) is refused (6.5, 8ac268436e6d) or allowed (before 6.5)",
           ("anon-exclusive",)),
    Option("longterm_unshare", ("all", "anon"),
           "a R/O long-term pin in a COW mapping unshares page-cache and zero pages too (6.2, "
           "84209e87c696) or only anon pages (5.19–6.1)",
           ("anon-exclusive",)),
    Option("swapin_writable", ("on", "off"),
           "a read fault that swaps in an exclusive page of a VM_WRITE mapping maps it writable "
           "(c18160dba5ff, 6.11) or read-only",
           ("anon-exclusive",)),
    Option("odirect_pin", ("pin", "get"),
           "an O_DIRECT read or write holds the user page with FOLL_PIN (a7e689dd1c06, 6.5: "
           "iov_iter_extract_pages, BIO_PAGE_PINNED) or a FOLL_GET reference (before 6.5)",
           ("anon-exclusive",)),
    Option("ksm_break", ("unshare", "write"),
           "MADV_UNMERGEABLE breaks a KSM page with an unshare fault, the copy read-only (6.2, \"mm/ksm: fix "
           "KSM COW breaking with userfaultfd-wp via FAULT_FLAG_UNSHARE\"), or with a write fault (before 6.2)",
           ("anon-exclusive",)),
    Option("ksm_merge_any", ("on", "off"),
           "prctl(PR_SET_MEMORY_MERGE) exists (d7597f59d1d3, 6.4) or is -EINVAL (before 6.4)",
           ("anon-exclusive",)),
    Option("large_folio_reuse", ("on", "off"),
           "a write fault on a non-exclusive subpage of a PTE-mapped THP reuses it when the folio is mapped "
           "only by this mm and nothing else holds it (__wp_can_reuse_large_anon_folio, 6.15) or always "
           "copies (before 6.15)",
           ("anon-exclusive",)),
    Option("ksm_use_zero_pages", ("on", "off"),
           "/sys/kernel/mm/ksm/use_zero_pages exists (e86c59b1b12d, 4.11): with it set, ksmd maps the shared zero "
           "page in place of a zero-filled page (ksm_merge_zero); off: no such knob, ksm_merge_zero fails",
           ("mapcount", "gup-cow")),
    Option("madv_collapse", ("on", "off"),
           "madvise(MADV_COLLAPSE) exists (7d8faaf15545, 6.1): a PTE-mapped range collapses into a PMD-mapped THP; "
           "off: unknown advice, -EINVAL",
           ("anon-exclusive",)),
    Option("collapse_errno", ("eagain", "einval"),
           "MADV_COLLAPSE of a page with unexpected references (a pin, a GUP reference: SCAN_PAGE_COUNT) fails "
           "with EAGAIN (ae63c898f400: 6.2, 6.1.13) or EINVAL (6.1.0-6.1.12)",
           ("anon-exclusive",)),
    Option("collapse_ro", ("allow", "refuse"),
           "MADV_COLLAPSE (and khugepaged) collapse a range none of whose PTEs is writable (6.18, \"mm: enable "
           "khugepaged to operate on non-writable VMAs\") or refuse it (SCAN_PAGE_RO: -EINVAL, 6.1-6.17), e.g. "
           "the parent's range right after fork",
           ("anon-exclusive",)),
    Option("ksm_zero_unshare", ("on", "off"),
           "KSM marks the zero pages it places (a dirty special PTE) and MADV_UNMERGEABLE unshares them like KSM "
           "pages (79271476b336, 6.5); off: they stay mapped after MADV_UNMERGEABLE",
           ("anon-exclusive",)),
    Option("io_uring_vma_check", ("on", "off"),
           "io_uring's fixed-buffer registration refuses a page of a file mapping that is neither shmem nor "
           "hugetlbfs with -EOPNOTSUPP, MAP_PRIVATE included (io_pin_pages before 6.5) or leaves the VMAs to "
           "GUP's long-term pin (34ed8d0dcd69, 6.5)",
           ("anon-exclusive",)),
    Option("unmap_lru_drain", ("on", "off"),
           "exit_mmap, unmap_region and MADV_DONTNEED's zap drain the local lru_add batch first (until 6.13) "
           "or not (6.14, \"mm: remove unnecessary calls to lru_add_drain\"), so a page a batch holds keeps "
           "its reference across a child's exit",
           ("anon-exclusive",)),
    Option("devexcl", ("rework", "range"),
           "device-exclusive entries as reworked in 6.15 (\"mm: fixes for device-exclusive entries (hmm)\": "
           "make_device_exclusive on one writable PTE, the mapcount kept, restored writable iff VM_WRITE and "
           "PageAnonExclusive, unmapped by reclaim and migration) or as 5.14-6.14 had them "
           "(make_device_exclusive_range's rmap walk drops the mapcount; restored writable iff the entry was)",
           ("anon-exclusive",)),
    Option("ksm_fork_counters", ("reset", "copy"),
           "fork's child starts with mm->ksm_merging_pages and ksm_rmap_items at 0 (ksm_fork, 4d6fc29f3634: 6.18, "
           "6.6.113, 6.12.54, 6.17.4) or keeps dup_mm's copy of the parent's (5.19 until then)",
           ("anon-exclusive",)),
    Option("ksm_exec_merge_any", ("keep", "drop"),
           "execve's new mm keeps MMF_VM_MERGE_ANY (MMF_INIT_MASK has it: 3c6f33b7273a, 6.7) or starts without it "
           "(6.4-6.6)",
           ("anon-exclusive",)),
    Option("ksm_execve", ("on", "off"),
           "execve enters a new mm with MMF_VM_MERGE_ANY into ksmd's list (ksm_execve, 3a9e567ca45f: 6.10, 6.8.12, "
           "6.9.3) or leaves it out, so ksmd never scans it (6.7 until then)",
           ("anon-exclusive",)),
    Option("follow_page_protnone", ("follow", "skip"),
           "follow_page() without FOLL_FORCE follows a PROT_NONE VMA's pte_protnone entries (before 474098edac26, "
           "and from d74943a2f3cd: 6.5, 6.4.13) or not (6.1-6.4.12: KSM neither merges nor, on 6.1, unmerges "
           "pages of PROT_NONE mappings)",
           ("anon-exclusive",)),
    # Changes fixed within each era (a version sets them; no spec names them):
    Option("hugetlb_wp_seq", ("on", "off"),
           "fork of a hugetlb mapping runs inside write_protect_seq (623a1ddfeb23, 5.19); before, "
           "copy_hugetlb_page_range ran outside it and GUP-fast on hugetlb could race fork",
           ()),
    Option("ksm_excl_check", ("on", "off"),
           "KSM's write_protect_page checks the page's references also when its PTE is read-only and "
           "clean but the page is exclusive (6c287605fd56, 5.19); before, a read-only clean PTE was "
           "merged despite GUP references",
           ()),
    Option("ksm_merging_pages", ("on", "off"),
           "mm->ksm_merging_pages and /proc/PID/ksm_merging_pages exist (7609385337a4, 5.19); before, the "
           "`ksm_merging_pages(A)` term is not in the version",
           ()),
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
VARIANTS: dict[str, Option] = {o.name: o for o in OPTIONS if o.kind == VARIANT}


@functools.cache
def of_era(era: str) -> Mapping[str, Option]:
    """The options a spec may set on ``era`` (read-only: one mapping per era, shared)."""
    return MappingProxyType({o.name: o for o in OPTIONS if era in o.eras})
