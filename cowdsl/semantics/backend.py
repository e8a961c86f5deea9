"""The Backend: kernel mechanism plus named decision rules.

Shaped after stateright's Model (``init_state``, ``actions``, ``next_state``)
and sqlglot's dialects: the mechanism lives in the mixins of ``cowdsl.semantics.mm``
and calls the rule methods below at each point where the kernel's behaviour
changed between eras.  An era is a subclass that overrides only the rules that
changed, each citing its commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from cowdsl.kernel.options import VARIANTS
from cowdsl.kernel.spec import KernelSpec
from cowdsl.scenario import Scenario, Step
from cowdsl.semantics import concepts, invariants
from cowdsl.semantics.machine import Decision, Event, Machine
from cowdsl.semantics.micro import MicroSteps
from cowdsl.semantics.mm.device_exclusive import DeviceExclusive
from cowdsl.semantics.mm.device_private import DevicePrivate
from cowdsl.semantics.mm.direct_io import DirectIo
from cowdsl.semantics.mm.execve import Execve
from cowdsl.semantics.mm.fork import Fork
from cowdsl.semantics.mm.gup import Foll, Gup
from cowdsl.semantics.mm.io_uring import IoUring
from cowdsl.semantics.mm.khugepaged import Khugepaged
from cowdsl.semantics.mm.ksm import Ksm
from cowdsl.semantics.mm.memory import Memory
from cowdsl.semantics.mm.migrate import Migrate
from cowdsl.semantics.mm.mmap import AddressSpace
from cowdsl.semantics.mm.pipe import Pipes
from cowdsl.semantics.mm.swap import LruBatches
from cowdsl.semantics.mm.vmscan import Reclaim
from cowdsl.semantics.state import HUGETLB, SMALL, Mm, Outcome, Page, Pipe, Pte, State, Vma, not_run

# The decision points an era may override.  `cowdsl backends` lists them.
RULES = (
    "wp_can_reuse",
    "thp_wp_can_reuse",
    "hugetlb_wp_can_reuse",
    "fork_copy_anon",
    "gup_break_cow",
    "can_follow_write_pte",
    "gup_must_unshare",
    "pin_sets_has_pinned",
    "reclaim_keeps_pinned",
    "unmap_may_share",
    "swapin_free_swapcache",
    "swapin_exclusive",
    "mprotect_upgrade",
    "has_device_exclusive",
    "fork_restores_device_exclusive",
    "devexcl_single_pte",
    "devexcl_restore_writable",
    "unmap_device_exclusive",
    "has_write_protect_seq",
    "check_vma_flags",
    "thp_wp_copies_whole",
    "pvm_foll_pin",
    "odirect_foll_pin",
    "ksm_break_unshares",
    "has_memory_merge_prctl",
    "hugetlb_fork_wp_seq",
    "ksm_checks_refs",
    "swapin_read_writable",
    "has_madv_collapse",
    "collapse_needs_writable",
    "collapse_count_eagain",
    "has_ksm_use_zero_pages",
    "ksm_marks_zero_pages",
    "io_uring_checks_vmas",
)


class Backend(MicroSteps, Memory, Fork, Execve, Gup, Reclaim, AddressSpace, Pipes, Ksm, DeviceExclusive, DevicePrivate,
              DirectIo, Migrate, Khugepaged, IoUring, LruBatches):
    name: ClassVar[str]
    TRACKS_ANON_EXCLUSIVE: ClassVar[bool] = False  # PG_anon_exclusive exists (5.19+)
    HAS_PINNED: ClassVar[str] = "MMF_HAS_PINNED"  # its name in traces: mm->has_pinned before 5.14
    # fork's per-entry functions as the era names them: copy_one_pte until 5.9-rc7
    # (79a1971c5f14 split it), copy_present_pte / copy_nonpresent_pte after
    COPY_PTE: ClassVar[str] = "copy_present_pte"
    COPY_NONPRESENT_PTE: ClassVar[str] = "copy_nonpresent_pte"

    def __init__(self, kernel: KernelSpec) -> None:
        if kernel.model != self.name:
            raise ValueError(f"a {kernel.model} spec for the {self.name} model")
        self.kernel = kernel  # resolved once, by cowdsl.kernel.spec
        # the settings of every change of the timeline, as the spec resolved them,
        # and the variants (those not offered on this era as merged)
        self.options = {k: o.choices[0] for k, o in VARIANTS.items()} | dict(kernel.options)
        # check the model's invariants after every micro-step (cowdsl.semantics.invariants)
        self.debug_invariants = invariants.env_enabled()

    @property
    def spec(self) -> str:
        """The canonical spec: the name with the options that differ from the defaults."""
        return self.kernel.name

    # --- the Model interface --------------------------------------------------------
    def init_state(self, sc: Scenario) -> State:
        pages = [Page(zero=True, anon=False)]
        files: list[tuple[str, tuple[int, ...]]] = []
        kinds = dict(sc.file_kinds)
        for fname, contents in sc.files:
            ids: list[int] = []
            size = HUGETLB if kinds.get(fname) == "hugetlbfs" else SMALL  # a hugetlbfs file's pages are huge pages
            for i, data in enumerate(contents):
                pages.append(Page(data=data, refcount=1, anon=False, file=fname, index=i, kind=size))
                ids.append(len(pages) - 1)
            files.append((fname, tuple(ids)))
        return State(
            mms=tuple(Mm(p) for p in sc.processes),
            pages=tuple(pages),
            pipes=tuple(Pipe(p) for p in sc.pipes),
            files=tuple(files),
            file_kinds=sc.file_kinds,
        )

    def next_state(self, state: State, step: Step) -> tuple[State, Outcome, list[Event]]:
        """Run one step to completion; the events say which rules fired."""
        m = Machine(state, task=step.actor)
        mm = m.mms.get(step.task) if step.task is not None else None
        dead = step.task is not None and (mm is None or not mm.alive)
        if dead:
            error = not_run(step.task, mm)
            out = Outcome(False, error=error)
            m.say(error)
        elif (gone := self.unborn(state, step)) is not None:
            out = self.no_such_process(m, gone)
        else:
            out = self.run_op(m, step)
        if step.bind:
            m.set_result(step.bind, out)
        return m.freeze(), out, m.events

    @staticmethod
    def unborn(state: State, step: Step) -> str | None:
        """A process whose page the step names but that was never created (the
        fork that makes it did not run: its parent had been killed)."""
        for a in (step.addr, step.addr2):
            if a is not None and state.mm(a.proc) is None:
                return a.proc
        return None

    @staticmethod
    def no_such_process(m: Machine, proc: str) -> Outcome:
        m.reads.add(("mm", proc, "alive"))  # fork's add_mm writes it
        error = f"ESRCH: {proc} was never created (the fork that makes it did not run)"
        out = Outcome(False, error=error)
        m.say(error)
        return out

    def run(self, sc: Scenario) -> Iterator[tuple[Step, State, Outcome, list[Event]]]:
        """The steps one after the other, with no other activity: no lru_add batch is
        drained but where the kernel code drains it.  The last state has every batch
        drained (``lru_quiesce``): the one the assertions judge."""
        state = self.init_state(sc)
        for n, step in enumerate(sc.steps, 1):
            state, out, events = self.next_state(state, step)
            if n == len(sc.steps):
                state = self.lru_quiesce(state)
            yield step, state, out, events

    # --- helpers shared by the rules ---------------------------------------------------
    def maybe_dma_pinned(self, page: Page) -> bool:
        """page_maybe_dma_pinned() as this backend computes it (option pin_bias)."""
        return concepts.page_maybe_dma_pinned(page, pin_bias=self.options["pin_bias"] == "on")

    # --- decision rules ------------------------------------------------------------------
    def wp_can_reuse(self, m: Machine, pfn: int) -> Decision:
        """do_wp_page: may the faulting mm reuse this read-only anonymous page
        (make the PTE writable) instead of copying it?"""
        raise NotImplementedError

    def thp_wp_can_reuse(self, m: Machine, pfn: int) -> Decision:
        """do_huge_pmd_wp_page: may a write fault on a PMD-mapped THP reuse it?
        Otherwise the PMD is split and the subpage copied."""
        raise NotImplementedError

    def hugetlb_wp_can_reuse(self, m: Machine, pfn: int) -> Decision:
        """hugetlb_wp (hugetlb_cow): may a write fault reuse this hugetlb page?"""
        raise NotImplementedError

    def fork_copy_anon(self, m: Machine, src_mm: str, pfn: int) -> Decision:
        """copy_present_pte: must fork give the child a copy of this anonymous
        page instead of sharing it read-only?"""
        raise NotImplementedError

    def gup_break_cow(self, m: Machine, vma: Vma, flags: Foll) -> Decision:
        """__get_user_pages: does a GUP taking a page reference break COW first
        (turn into a write GUP) in a COW mapping?"""
        raise NotImplementedError

    def can_follow_write_pte(self, m: Machine, vma: Vma, pte: Pte, flags: Foll) -> Decision:
        """follow_page_pte: may a write GUP use this PTE as it is, or must it fault?"""
        raise NotImplementedError

    def gup_must_unshare(self, m: Machine, vma: Vma, pfn: int, flags: Foll) -> Decision:
        """follow_page_pte/GUP-fast: must a read-only GUP unshare the page before
        taking it (FAULT_FLAG_UNSHARE)?"""
        raise NotImplementedError

    def pin_sets_has_pinned(self, flags: Foll) -> Decision:
        """Does this FOLL_PIN call mark the mm as having pinned pages?"""
        raise NotImplementedError

    def reclaim_keeps_pinned(self, m: Machine, pfn: int) -> Decision:
        """shrink_page_list: is this page kept out of the swap cache because it
        may be pinned?"""
        raise NotImplementedError

    def unmap_may_share(self, m: Machine, pfn: int) -> Decision:
        """try_to_unmap: may reclaim turn this exclusive page's PTE into a swap
        entry (page_try_share_anon_rmap)?"""
        raise NotImplementedError

    def swapin_free_swapcache(self, m: Machine, pfn: int, write: bool) -> Decision:
        """do_swap_page: try to drop the swap cache before mapping the page?"""
        raise NotImplementedError

    def swapin_exclusive(self, m: Machine, pte: Pte, pfn: int, write: bool) -> Decision:
        """do_swap_page: map the page exclusively (writable on a write fault)?"""
        raise NotImplementedError

    def mprotect_upgrade(self, m: Machine, vma: Vma, pte: Pte) -> Decision:
        """change_pte_range on mprotect(PROT_WRITE): may the read-only PTE become
        writable right away, without a later write fault?"""
        raise NotImplementedError

    def has_device_exclusive(self) -> Decision:
        """Does make_device_exclusive_range exist (b756a3b5e7ea, 5.14)?"""
        raise NotImplementedError

    def fork_restores_device_exclusive(self) -> Decision:
        """copy_nonpresent_pte on a device-exclusive entry: restore the parent's
        PTE first (the device loses exclusivity), or copy read-only entries?"""
        raise NotImplementedError

    def devexcl_single_pte(self) -> Decision:
        """make_device_exclusive: one writable PTE, the mapcount kept (6.15), or an
        rmap walk over every mapping that drops their mapcount (5.14-6.14)?"""
        raise NotImplementedError

    def devexcl_restore_writable(self, m: Machine, vma: Vma, pte: Pte) -> Decision:
        """restore_exclusive_pte: is the restored PTE writable?"""
        raise NotImplementedError

    def unmap_device_exclusive(self) -> Decision:
        """Do try_to_unmap / try_to_migrate handle device-exclusive entries (6.15)?"""
        raise NotImplementedError

    def check_vma_flags(self, m: Machine, vma: Vma, flags: Foll) -> Decision:
        """check_vma_flags: may this GUP touch this VMA at all?"""
        raise NotImplementedError

    def has_write_protect_seq(self) -> Decision:
        """Do fork and GUP-fast synchronise through mm->write_protect_seq
        (57efa1fe5957, 5.11 and 5.10.y)?"""
        raise NotImplementedError

    def has_foll_cow(self) -> bool:
        """Whether GUP knows FOLL_COW (4.9–5.19)."""
        raise NotImplementedError

    def foll_write_dropped(self, flags: Foll) -> bool:
        """Whether GUP stopped asking for write access after breaking COW (before 4.9)."""
        raise NotImplementedError

    def thp_wp_copies_whole(self) -> Decision:
        """do_huge_pmd_wp_page: does a write fault that cannot reuse a THP copy it
        whole (≤5.7), or split the PMD and copy one page?"""
        raise NotImplementedError

    def pvm_foll_pin(self) -> Decision:
        """process_vm_readv/writev: FOLL_PIN (5.6+) or FOLL_GET?"""
        raise NotImplementedError

    def odirect_foll_pin(self) -> Decision:
        """O_DIRECT's bio: FOLL_PIN (6.5+) or FOLL_GET?"""
        raise NotImplementedError

    def ksm_break_unshares(self) -> Decision:
        """break_ksm: an unshare fault (6.2+) or a write fault?"""
        raise NotImplementedError

    def has_memory_merge_prctl(self) -> Decision:
        """Does prctl(PR_SET_MEMORY_MERGE) exist (6.4+)?"""
        raise NotImplementedError

    def hugetlb_fork_wp_seq(self) -> Decision:
        """Does fork copy hugetlb mappings inside write_protect_seq (5.19+)?"""
        raise NotImplementedError

    def ksm_checks_refs(self, m: Machine, pte: Pte, pfn: int) -> Decision:
        """write_protect_page: does KSM compare this page's references with its
        mappings before merging it?"""
        raise NotImplementedError

    def swapin_read_writable(self, m: Machine, vma: Vma) -> Decision:
        """do_swap_page: does a read fault map an exclusive page writable (6.11+)?"""
        raise NotImplementedError

    def has_madv_collapse(self) -> Decision:
        """Does MADV_COLLAPSE exist (6.1+)?"""
        raise NotImplementedError

    def collapse_needs_writable(self) -> Decision:
        """Does MADV_COLLAPSE refuse a range with no writable PTE (before 6.18)?"""
        raise NotImplementedError

    def collapse_count_eagain(self) -> Decision:
        """Is MADV_COLLAPSE's refusal for unexpected references -EAGAIN (6.2, 6.1.13) or -EINVAL?"""
        raise NotImplementedError

    def has_ksm_use_zero_pages(self) -> Decision:
        """Does /sys/kernel/mm/ksm/use_zero_pages exist (4.11+)?"""
        raise NotImplementedError

    def io_uring_checks_vmas(self) -> Decision:
        """io_pin_pages: does io_uring refuse file-backed buffers itself (before 6.5)?"""
        raise NotImplementedError

    def ksm_marks_zero_pages(self) -> Decision:
        """Does KSM mark the zero pages it places, so that unmerging unshares them (6.5+)?"""
        raise NotImplementedError

    @classmethod
    def overridden_rules(cls) -> list[str]:
        """The rules this class itself defines (not inherited)."""
        return [r for r in RULES if r in vars(cls)]
