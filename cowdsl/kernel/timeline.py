"""The timeline: every kernel change the model knows, as data.

A change names its commit (or, where the mainline id is not confirmed, the
release tag, file and function), the first mainline release that has it, the
first sublevel of each stable line that carries it, and what it sets: the era
(which model), or change options.  A version contains a change when it is at or
after the change's mainline release, or on a stable line at or after the
backport's sublevel.  Resolving a version applies, oldest first, every change
it contains to the settings of the oldest kernels (``BASELINE``).

Diffing two versions' change sets is the kernel's COW changelog
(``between``).  Each entry's ``note`` says how its release data were
confirmed: stable release announcements (their shortlogs), merge-window pull
requests, -rc announcements, and per-version source trees, as recorded in
kernel-cow-semantics.md §15 and its verification.
"""

from __future__ import annotations

from attrs import frozen

from cowdsl.kernel.version import Version, v


@frozen
class Change:
    key: str  # a short name, used in traces and `cowdsl timeline`
    commit: str  # the upstream commit id (12 hex), or "vX.Y file function" where no id is confirmed
    title: str
    mainline: Version  # the first mainline release (or -rc) that has it
    sets: tuple[tuple[str, str], ...]  # ("era", NAME) or (option, value); () = recorded, not modelled
    stable: tuple[tuple[tuple[int, int], int], ...] = ()  # ((major, minor), first sublevel) per stable line
    note: str = ""

    def in_version(self, ver: Version) -> bool:
        if ver >= self.mainline:
            return True
        return any(ver.line == line and ver.sublevel >= sub for line, sub in self.stable)

    def first_in(self, line: tuple[int, int]) -> Version | None:
        """The first version of a line that has the change, if any."""
        if Version(*line) >= self.mainline:
            return Version(*line)
        return next((Version(*line, sublevel=sub) for ln, sub in self.stable if ln == line), None)

    @property
    def modelled(self) -> bool:
        return bool(self.sets)


# The oldest kernels: no change applied.
BASELINE: dict[str, str] = {
    "era": "mapcount",
    "foll_cow": "off",
    "ksm_reuse": "off",
    "thp_wp": "whole",
    "pvm_pin": "get",
    "wp_seq": "off",
    "swap_pin_check": "off",
    "hugetlb_fork_copy": "off",
    "device_exclusive": "off",
    "fork_anon_only": "off",
    "foll_force": "foll_cow",
    "mprotect": "fault",
    "hugetlb_force": "allow",
    "longterm_file_write": "allow",
    "longterm_unshare": "anon",
    "swapin_writable": "off",
    "hugetlb_wp_seq": "off",
    "ksm_excl_check": "off",
    "large_folio_reuse": "off",
    "odirect_pin": "get",
    "ksm_break": "write",
    "ksm_merge_any": "off",
    "ksm_use_zero_pages": "off",
    "madv_collapse": "off",
    "collapse_errno": "einval",
    "collapse_ro": "refuse",
    "ksm_zero_unshare": "off",
    "ksm_merging_pages": "off",
    "ksm_fork_counters": "copy",
    "ksm_exec_merge_any": "drop",
    "ksm_execve": "off",
    "follow_page_protnone": "follow",
    "io_uring_vma_check": "on",
    "unmap_lru_drain": "on",
    "devexcl": "range",
}

_ANN = "stable release announcement shortlog"

TIMELINE: tuple[Change, ...] = (
    Change("dirty-cow", "19be0eaffa3a", "mm: remove gup_flags FOLL_WRITE games from __get_user_pages()",
           v("4.9"), (("foll_cow", "on"),), stable=(((4, 4), 26), ((4, 8), 3)),
           note="CVE-2016-5195; mainline and the 4.4.26/4.8.3 backports as published with the CVE, "
                "not re-read here"),
    Change("ksm-reuse", "52d1e606ee73", "mm: reuse only-pte-mapped KSM page in do_wp_page()",
           v("5.1-rc1"), (("ksm_reuse", "on"),),
           note="committed after v5.0; 4.19.222 has no reuse_ksm_page, 5.4.214 has it (trees read); removed "
                "by 1a0cf26323c8 in 5.9-rc4 with the refcount do_wp_page"),
    Change("ksm-use-zero-pages", "e86c59b1b12d", "mm/ksm: improve deduplication of zero pages with colouring",
           v("4.11-rc1"), (("ksm_use_zero_pages", "on"),),
           note="Claudio Imbrenda, posted 2017-01-12; in mmotm's since-4.10 branch (2017-02-23, based on v4.10) "
                "with the 4.11 merge window's userfaultfd series; 5.10.198, 6.1.158 and 6.18.2 have "
                "use_zero_pages and try_to_merge_with_zero_page (trees read)"),
    Change("pvm-pin", "803e4572d7c5", "mm/process_vm_access: set FOLL_PIN via pin_user_pages_remote()",
           v("5.6-rc1"), (("pvm_pin", "pin"),),
           note="5.6.4 calls pin_user_pages_remote, 5.4.214 get_user_pages_remote (trees read)"),
    Change("migrate-vma", "8763cb45ab96", "mm/migrate: new memory migration helper for use with device memory",
           v("4.14-rc1"), (),
           note="recorded, not modelled: device-private memory and migrate_vma (HMM, Jérôme Glisse); the model "
                "offers migrate_to_device on every version. The release is from the HMM series' merge, not a "
                "tree read; 5.10.198 mm/migrate.c has migrate_vma_setup/pages/finalize (a7d1f22bb74f, 5.4)"),
    Change("test-hmm", "b2ef9f5a5cb3", "mm/hmm/test: add selftest driver for HMM",
           v("5.7-rc1"), (),
           note="recorded, not modelled: lib/test_hmm.c, whose HMM_DMIRROR_MIGRATE(_TO_DEV) migrate_to_device "
                "models (Ralph Campbell; its Fixes: threads are from April 2020, the release is not confirmed by "
                "a tree read). 5.10.198, 6.1.158 and 6.18.2 have it (trees read)"),
    Change("forced-cow-break", "17839856fd58", "gup: document and work around \"COW can break either way\" issue",
           v("5.8-rc1"), (("era", "gup-cow"),),
           stable=(((4, 4), 289), ((4, 9), 287), ((4, 14), 232), ((4, 19), 189), ((5, 4), 47), ((5, 6), 19),
                   ((5, 7), 3)),
           note=f"{_ANN}s of each sublevel; should_force_cow_break read in 4.19.222 and 5.4.214. On 4.9.y "
                "x86 GUP-fast takes the forced break only from 4.9.298, and mips/s390/sh/sparc GUP-fast on "
                "4.14.y from 4.14.263 (not modelled: the model's GUP-fast is the generic one)"),
    Change("thp-cow-split", "3917c80280c9", "thp: change CoW semantics for anon-THP",
           v("5.8-rc1"), (("thp_wp", "split"),),
           note="posted after 5.7-rc1; a later fix is Cc: stable # v5.8+; 4.19.222 still copies the whole THP"),
    Change("refcount-cow", "09854ba94c6a", "mm: do_wp_page() simplification",
           v("5.9-rc4"), (("era", "refcount"),),
           note="with a308c71bf1e6 (no forced COW break) and 1a0cf26323c8 (reuse_ksm_page removed): all in the "
                "5.9-rc4 announcement shortlog"),
    Change("early-cow", "70e806e4e645", "mm: Do early cow for pinned pages during fork() for ptes",
           v("5.9-rc7"), (("era", "early-cow"),),
           note="with 008cfe4418b3 (has_pinned) and d042035eaf5f (fork splits a pinned huge PMD): 5.9-rc7 "
                "announcement shortlog"),
    Change("write-protect-seq", "57efa1fe5957", "mm/gup: prevent gup_fast from racing with COW during fork",
           v("5.11-rc1"), (("wp_seq", "on"),), stable=(((5, 10), 4),),
           note=f"5.10.4 {_ANN}; 5.10.0 has no write_protect_seq (tree read)"),
    Change("swap-pin-check", "feb889fb40fa", "mm: don't put pinned pages into the swap cache",
           v("5.11-rc4"), (("swap_pin_check", "on"),), stable=(((5, 10), 9),),
           note=f"5.11-rc4 announcement; 5.10.9 {_ANN}; absent in 5.10.7, present in 5.10.198 (trees read)"),
    Change("hugetlb-early-cow", "4eae4efa2c29", "hugetlb: do early cow when page pinned on src mm",
           v("5.12-rc3"), (("hugetlb_fork_copy", "on"),), note="5.12-rc3 announcement shortlog"),
    Change("device-exclusive", "b756a3b5e7ea", "mm: device exclusive memory access",
           v("5.14-rc1"), (("device_exclusive", "on"),), note="committed in the 5.14 merge window"),
    Change("cow-fixes-1", "c145e0b47c77", "mm: streamline COW logic in do_swap_page()",
           v("5.18-rc1"), (("era", "cow-fixes-1"),),
           note="\"COW fixes part 1\": 53a05ad9f21d, d4c470970d45, 84d60fdd3733, c145e0b47c77, 3bff7e3f1f16, "
                "363106c4cefe, 03104c2c5db8, 55c62fa7c533, 7f7609175ff2; 5.18 merge window"),
    Change("fork-anon-only", "fb3d824d1a46", "mm/memory: add non-anonymous page check in the copy_present_page()",
           v("5.19-rc1"), (("fork_anon_only", "on"),), stable=(((5, 10), 153), ((5, 15), 173)),
           note=f"a stable-only patch (Yuanzheng Song) in 5.10.153 and 5.15.173 ({_ANN}s); mainline never "
                "had it: fb3d824d1a46 (5.19, page_try_dup_anon_rmap) ended the bug there"),
    Change("anon-exclusive", "6c287605fd56", "mm: remember exclusively mapped anonymous pages with PG_anon_exclusive",
           v("5.19-rc1"), (("era", "anon-exclusive"), ("ksm_excl_check", "on")),
           note="with a7f226604170 (GUP unshare); its mm/ksm.c part adds the anon_exclusive test to "
                "write_protect_page; 5.19-rc1 MM pull"),
    Change("ksm-merging-pages", "7609385337a4", "ksm: count ksm merging pages for each process", v("5.19-rc1"),
           (("ksm_merging_pages", "on"),),
           note="xu xin; 5.19-rc1 MM pull; 5.15.135 fs/proc/base.c has no ksm_merging_pages, 6.1.158 and 6.18.2 "
                "show mm->ksm_merging_pages there, counted in stable_tree_append and "
                "remove_rmap_item_from_tree / remove_node_from_stable_tree (trees read)"),
    Change("hugetlb-wp-seq", "623a1ddfeb23", "mm/hugetlb: take src_mm->write_protect_seq in copy_hugetlb_page_range()",
           v("5.19-rc1"), (("hugetlb_wp_seq", "on"),), note="5.19-rc1 MM pull; 5.17-rc5 hugetlb.c has no seqcount"),
    Change("foll-force-exclusive", "5535be309971", "mm/gup: fix FOLL_FORCE COW security issue and remove FOLL_COW",
           v("6.0-rc1"), (("foll_force", "exclusive"),), stable=(((5, 19), 6),),
           note=f"5.19.6 {_ANN} (stable 9def52eb10ba)"),
    Change("mprotect-upgrade", "64fe24a3e05e", "mm/mprotect: try avoiding write faults for exclusive anonymous "
           "pages when changing protection", v("6.0-rc1"), (("mprotect", "dirty"),),
           note="can_change_pte_writable returns false on !pte_dirty in 6.0.1 and 6.1.158 (trees read)"),
    Change("mprotect-clean", "v6.2 mm/mprotect.c can_change_pte_writable",
           "mm/mprotect: allow clean exclusive anon pages to be writable", v("6.2-rc1"), (("mprotect", "upgrade"),),
           note="Nadav Amit, in the 6.2-rc1 MM pull; mainline id not confirmed"),
    Change("madv-collapse", "7d8faaf15545", "mm/madvise: introduce MADV_COLLAPSE sync hugepage collapse",
           v("6.1-rc1"), (("madv_collapse", "on"),),
           note="Zach O'Keefe; committed 2022-09-11 for the 6.1 merge window (after 6.0's), the id as later "
                "Fixes: tags cite it; 6.1.158 and 6.18.2 have madvise_collapse, 5.15.135 has no MADV_COLLAPSE "
                "(trees read)"),
    Change("follow-page-protnone", "474098edac26", "mm/gup: replace FOLL_NUMA by gup_can_follow_protnone()",
           v("6.1-rc1"), (("follow_page_protnone", "skip"),),
           note="David Hildenbrand, posted after 6.0-rc1: follow_page() callers that never set FOLL_NUMA (KSM's "
                "scan and 6.1's break_ksm) stop following pte_protnone entries, so KSM neither merges nor "
                "unmerges pages of PROT_NONE VMAs; 5.15.135 mm/gup.c tests FOLL_NUMA, 6.1.158 "
                "gup_can_follow_protnone(flags) is FOLL_FORCE (trees read); the release as the tree reads, "
                "not confirmed by an announcement"),
    Change("ksm-break-unshare", "6cce3314b928",
           "mm/ksm: fix KSM COW breaking with userfaultfd-wp via FAULT_FLAG_UNSHARE", v("6.2-rc1"),
           (("ksm_break", "unshare"),),
           note="David Hildenbrand's break_ksm series in the 6.2-rc1 MM pull (mm-stable-2022-12-13); "
                "5.10.198 break_ksm asks FAULT_FLAG_WRITE, 6.4.6 and 6.18.2 FAULT_FLAG_UNSHARE (trees "
                "read); the id as the 6.2 MM merge's shortlog lists it (6cce3314b928b2db7d5f48171e18314226551c3f)"),
    Change("longterm-unshare-all", "84209e87c696", "mm/gup: reliable R/O long-term pinning in COW mappings",
           v("6.2-rc1"), (("longterm_unshare", "all"),), note="6.2-rc1 MM pull"),
    Change("hugetlb-no-force-write", "f347454d0341", "mm/gup: disallow FOLL_FORCE|FOLL_WRITE on hugetlb mappings",
           v("6.2-rc1"), (("hugetlb_force", "refuse"),), stable=(((6, 1), 2),),
           note="6.2-rc1 MM pull; 6.1.2-rc1 stable review"),
    Change("collapse-eagain", "ae63c898f400", "mm/MADV_COLLAPSE: set EAGAIN on unexpected page refcount",
           v("6.2"), (("collapse_errno", "eagain"),), stable=(((6, 1), 13),),
           note="Zach O'Keefe (Fixes: 7d8faaf15545, Cc: stable): SCAN_PAGE_COUNT joins the EAGAIN cases of "
                "madvise_collapse_errno; merged with the mm hotfixes after 6.2-rc8, in 6.1.13 "
                f"({_ANN}); 6.1.158 and 6.18.2 have it (trees read)"),
    Change("ksm-merge-any", "d7597f59d1d3", "mm: add new api to enable ksm per process", v("6.4-rc1"),
           (("ksm_merge_any", "on"),),
           note="Stefan Roesch's PR_SET_MEMORY_MERGE (v7 posted 2023-04-13, before the 6.4 merge window); "
                "the id as a later Fixes: tag cites it; 6.4.6 has PR_SET_MEMORY_MERGE and ksm_fork "
                "inheriting MMF_VM_MERGE_ANY (tree read)"),
    Change("ksm-zero-unshare", "79271476b336", "ksm: support unsharing KSM-placed zero pages", v("6.5-rc1"),
           (("ksm_zero_unshare", "on"),),
           note="xu xin, v8 posted 2023-05; with e2942062e01d (ksm_zero_pages) and 6080d19f0704 (per-process "
                "ksm_zero_pages in /proc/PID/ksm_stat), merged for 6.5 beside the zswap multiple-zpools series; "
                "the id as a later Fixes: tag cites it. 6.1.158 break_ksm breaks PageKsm pages only, 6.18.2 also "
                "is_ksm_zero_pte (a dirty zero-page PTE; trees read)"),
    Change("ksm-exec-merge-any", "3c6f33b7273a", "mm/ksm: support fork/exec for prctl", v("6.7-rc1"),
           (("ksm_exec_merge_any", "keep"),),
           note="Stefan Roesch; MMF_VM_MERGE_ANY joins MMF_INIT_MASK, so execve's mm_init keeps it (and fork's "
                "mm_init, where ksm_fork set it before); the id as 3a9e567ca45f's message cites it. 6.1.158 "
                "include/linux/sched/coredump.h MMF_INIT_MASK has no MMF_VM_MERGE_ANY, 6.13.7 and 6.18.2 "
                "include/linux/mm_types.h have MMF_VM_MERGE_ANY_MASK in it (trees read)"),
    Change("ksm-execve", "3a9e567ca45f", "mm/ksm: fix ksm exec support for prctl", v("6.10-rc1"),
           (("ksm_execve", "on"),), stable=(((6, 8), 12), ((6, 9), 3)),
           note="Jinjiang Tu; the series \"mm/ksm: fix ksm exec support for prctl\" in the MM updates for 6.10-rc1 "
                f"pull (mm-stable-2024-05-17); in the 6.8.12 and 6.9.3 {_ANN}s. 6.13.7 fs/exec.c "
                "__bprm_mm_init and 6.18.2 mm/vma_exec.c call ksm_execve (trees read)"),
    Change("foll-honor-numa-fault", "d74943a2f3cd", "mm/gup: reintroduce FOLL_NUMA as FOLL_HONOR_NUMA_FAULT",
           v("6.5"), (("follow_page_protnone", "follow"),), stable=(((6, 4), 13),),
           note="David Hildenbrand (Fixes: 474098edac26, Cc: stable): in Linux 6.5's shortlog (the week after "
                "-rc7) and the 6.4.13-rc1 stable queue; it failed to apply to 6.1-stable (6.1.158 still has "
                "gup_can_follow_protnone(flags)); 6.13.7 include/linux/mm.h has FOLL_HONOR_NUMA_FAULT (trees read)"),
    Change("longterm-file-write", "8ac268436e6d", "mm/gup: disallow FOLL_LONGTERM GUP-nonfast writing to "
           "file-backed mappings", v("6.5-rc1"), (("longterm_file_write", "refuse"),),
           note="with a6e79df92e4a (GUP-fast); 6.5-rc1 MM pull"),
    Change("io-uring-vma-check", "34ed8d0dcd69", "io_uring: rsrc: delegate VMA file-backed check to GUP",
           v("6.5-rc1"), (("io_uring_vma_check", "off"),),
           note="Lorenzo Stoakes, v6 posted 2023-05-17, patch 4/6 of the series removing the vmas parameter of "
                "pin_user_pages, after 8ac268436e6d (GUP's own refusal); merged for 6.5 with 89207c669bbf "
                "(gup_longterm.c's liburing tests). 5.10.198 io_uring/io_uring.c io_sqe_buffer_register and "
                "6.1.158 io_uring/rsrc.c io_pin_pages refuse non-shmem, non-hugetlbfs file VMAs with "
                "-EOPNOTSUPP; 6.18.2 io_uring/memmap.c io_pin_pages has no VMA check (trees read)"),
    Change("odirect-pin", "a7e689dd1c06",
           "block: Convert bio_iov_iter_get_pages to use iov_iter_extract_pages", v("6.5-rc1"),
           (("odirect_pin", "pin"),),
           note="with fd363244e883 (BIO_PAGE_PINNED), 403b6fb8dac1 (bio_map_user_iov) and 1ccf164ec866 "
                "(fs/direct-io.c); the 6.5 block pull (for-6.5/block-2023-06-23); ids as cited by a later "
                "Fixes: tag and a stable dependency list. No stable backport: 6.4.6 block/bio.c calls "
                "iov_iter_get_pages, 6.18.2 iov_iter_extract_pages with BIO_PAGE_PINNED (trees read)"),
    Change("swapin-writable", "c18160dba5ff", "mm: swap: reuse exclusive folio directly instead of wp page faults",
           v("6.11-rc1"), (("swapin_writable", "on"),),
           note="with 20dfa5b7adc5 (soft-dirty); 6.11-rc1 MM pull; present in 6.13.7 and 6.18.2 (trees read)"),
    Change("hugetlb-force-write", "v6.14 mm/gup.c can_follow_write_common", "mm/hugetlb: support FOLL_FORCE|FOLL_WRITE",
           v("6.14"), (("hugetlb_force", "allow"),),
           note="Guillaume Morin; 6.13.7 refuses, 6.14.0 allows (trees read); mainline id not confirmed"),
    Change("devexcl-rework", "v6.15 mm/rmap.c make_device_exclusive", "mm: fixes for device-exclusive entries (hmm)",
           v("6.15-rc1"), (("devexcl", "rework"),),
           note="David Hildenbrand, v2 posted 2025-02-10 (patch 4/17 \"mm/rmap: implement make_device_exclusive() "
                "using folio_walk instead of rmap walk\" is 438354724f69 in a mirror of mainline); 6.15-rc1 MM "
                "pull. 6.13.7 and 6.14.0 mm/rmap.c have make_device_exclusive_range (rmap walk, mapcount "
                "dropped), 6.18.2 make_device_exclusive (one PTE, mapcount kept), restore_exclusive_pte's "
                "can_change_pte_writable and try_to_unmap_one's PFN swap PTEs (trees read)"),
    Change("large-folio-reuse", "v6.15 mm/memory.c __wp_can_reuse_large_anon_folio",
           "mm: COW reuse support for PTE-mapped THP with CONFIG_MM_ID", v("6.15-rc1"),
           (("large_folio_reuse", "on"),),
           note="6.15-rc1 MM pull; 6.14.0 lacks it, 6.18.2 has it (trees read)"),
    Change("unmap-no-lru-drain", "v6.14 mm/mmap.c exit_mmap",
           "mm: remove unnecessary calls to lru_add_drain", v("6.14-rc1"), (("unmap_lru_drain", "off"),),
           note="Rik van Riel: exit_mmap, unmap_region, zap_page_range_single and free_pages_and_swap_cache "
                "no longer drain the local lru_add batch; 6.13.7 has the calls, 6.14.0 and 6.18.2 do not "
                "(trees read); mainline id not confirmed (mm-tree ids only)"),
    Change("ksm-fork-counters", "4d6fc29f3634", "mm/ksm: fix incorrect KSM counter handling in mm_struct during fork",
           v("6.18-rc1"), (("ksm_fork_counters", "reset"),), stable=(((6, 6), 113), ((6, 12), 54), ((6, 17), 4)),
           note="Donet Tom, in the 6.18 merge window's MM pull beside "
                "08ff89b5659d (the selftest test_fork_ksm_merging_page_count); in the 6.6.113, 6.12.54 and "
                f"6.17.4 {_ANN}s. 6.13.7 and 6.14.0 include/linux/ksm.h ksm_fork leaves the copied counters, "
                "6.18.2 zeroes ksm_merging_pages and ksm_rmap_items when the parent is MMF_VM_MERGEABLE "
                "(trees read)"),
    Change("collapse-ro", "v6.18 mm/khugepaged.c hpage_collapse_scan_pmd",
           "mm: enable khugepaged to operate on non-writable VMAs", v("6.18-rc1"), (("collapse_ro", "allow"),),
           note="Dev Jain (RFC 2025-09-01, v1 2025-09-03, after the 6.17 merge window): the `writable` test and "
                "SCAN_PAGE_RO leave hpage_collapse_scan_pmd and __collapse_huge_page_isolate; 6.1.158 refuses a "
                "range with no writable PTE, 6.18.2 does not (trees read); mainline id not confirmed"),
)

ORDER: tuple[Change, ...] = tuple(sorted(TIMELINE, key=lambda c: c.mainline.key()))


def contained(ver: Version) -> tuple[Change, ...]:
    """The changes ``ver`` has, oldest first."""
    return tuple(c for c in ORDER if c.in_version(ver))


def settings(ver: Version) -> dict[str, str]:
    """The era and change options of ``ver``."""
    out = dict(BASELINE)
    for c in contained(ver):
        out.update(c.sets)
    return out


def between(old: Version, new: Version) -> tuple[tuple[Change, ...], tuple[Change, ...]]:
    """(changes ``new`` has and ``old`` lacks, changes ``old`` has and ``new`` lacks)."""
    a, b = set(contained(old)), set(contained(new))
    return tuple(c for c in ORDER if c in b - a), tuple(c for c in ORDER if c in a - b)

