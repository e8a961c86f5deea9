"""mm/gup.c: get_user_pages and pin_user_pages, and the users built on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from attrs import evolve, frozen

from cowdsl.ops.gup import DMA_READ, DMA_WRITE, GUP_FAST, GUP_SLOW, PROC_MEM_WRITE, PUT, PVM, UNPIN
from cowdsl.semantics.concepts import mirror_refaults, pmd_mapped_file_thp, vma_is_accessible
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import Frame, Micro, micro_step, whole_op
from cowdsl.semantics.mm import addr_of, value_of
from cowdsl.semantics.state import HUGETLB, Handle, Outcome, Vma, at

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine

GUP_RETRIES = 4  # the kernel's retry loop terminates; the model's is bounded


@frozen
class Foll:
    """The FOLL_* flags of one GUP call."""

    write: bool = False
    pin: bool = False  # FOLL_PIN, else FOLL_GET
    longterm: bool = False
    force: bool = False
    fast: bool = False
    cow: bool = False  # FOLL_COW (4.9–5.19): set once a write fault broke COW in a !VM_WRITE vma

    def __str__(self) -> str:
        names = ["FOLL_PIN" if self.pin else "FOLL_GET"]
        names += [n for n, on in (("FOLL_WRITE", self.write), ("FOLL_LONGTERM", self.longterm),
                                  ("FOLL_FORCE", self.force), ("FOLL_COW", self.cow)) if on]
        return "|".join(names)


class Gup(KernelBase):
    # --- __get_user_pages, in halves the micro-step programs share ---------------------
    def gup_prepare(self, m: Machine, mm: str, vname: str, idx: int, flags: Foll) -> tuple[Foll, str | None]:
        """MMF_HAS_PINNED, check_vma_flags and 5.8's forced COW break: (flags, errno)."""
        if flags.pin and m.decided("pin_sets_has_pinned", self.pin_sets_has_pinned(flags), "gup", minor=True):
            if not m.mm_field(mm, "has_pinned"):
                m.update_mm(mm, has_pinned=True)
                m.say(f"gup: {self.HAS_PINNED} set on {mm}")
        vma = m.vma_at(mm, vname, idx)  # the VMA covering this page (a partial op may have split the mapping)
        if vma is None:
            m.say(f"gup: no mapping at `{vname}[{idx}]` in {mm} → -EFAULT")
            return flags, "EFAULT"
        if not flags.write and not vma.read and not flags.force:
            # check_vma_flags' read half (5.10.198, 6.1.158, 6.18.2 mm/gup.c): a VMA without VM_READ
            # (PROT_NONE) needs FOLL_FORCE (and VM_MAYREAD, which every mapping here has)
            m.say(f"check_vma_flags: {flags} on PROT_NONE `{vname}` → -EFAULT")
            return flags, "EFAULT"
        d = self.check_vma_flags(m, vma, flags)
        if not d:
            m.decided("check_vma_flags", d, f"check_vma_flags: {flags} on `{vname}`")
            return flags, "EFAULT"
        if self.unshares_file_thp_pmd(m, mm, vname, idx, vma, flags):
            return flags, "not modelled"
        brk = self.gup_break_cow(m, vma, flags)
        if m.decided("gup_break_cow", brk, f"gup {flags}", minor=not brk):
            flags = evolve(flags, write=True)
        return flags, None

    def unshares_file_thp_pmd(self, m: Machine, mm: str, vname: str, idx: int, vma: Vma, flags: Foll) -> bool:
        """A R/O long-term pin of a page-cache THP that a private mapping maps by a PMD, or
        will at its read fault: follow_huge_pmd asks to unshare it (-EMLINK, 84209e87c696),
        wp_huge_pmd zaps the PMD, and the FAULT_FLAG_UNSHARE fault, not a write, goes to
        do_read_fault, whose filemap_map_pmd / finish_fault map the folio by a PMD again
        (do_set_pmd; read in 6.18.2 mm/gup.c, mm/memory.c, mm/filemap.c).  How GUP's retry
        ends there is not confirmed, so the model gives no answer."""
        if not (flags.pin and flags.longterm and not flags.write) or not vma.is_cow_mapping or vma.file is None:
            return False
        pte = m.pte(mm, vname, idx)
        if pte is None:
            pfn = m.file_page(vma.file, vma.pgoff + idx)
        elif pte.present:
            pfn = pte.page
        else:
            return False
        if not pmd_mapped_file_thp(vma, m.page(pfn)):
            return False
        if not m.decided("gup_must_unshare", self.gup_must_unshare(m, vma, pfn, flags), f"follow_huge_pmd #{pfn}"):
            return False
        m.say(f"gup: {flags} of page-cache THP #{pfn}, PMD-mapped in private `{vname}`: the unshare fault maps "
              "it by a PMD again (do_read_fault → do_set_pmd); not modelled")
        return True

    def follow_page(self, m: Machine, mm: str, vname: str, idx: int,
                    flags: Foll) -> tuple[Literal["page"], int] | tuple[Literal["fault"], str]:
        """follow_page_pte: ("page", pfn) when GUP may take the page as mapped,
        else ("fault", kind) with kind write, unshare or read."""
        vma = m.mapped_vma(mm, vname)
        pte = vma.ptes[idx]
        write = flags.write and not self.foll_write_dropped(flags)
        if pte is None or not pte.present:
            return "fault", "write" if write else "read"
        if write and not m.decided(
            "can_follow_write_pte", self.can_follow_write_pte(m, vma, pte, flags), f"follow_page_pte #{pte.page}",
            minor=pte.write,
        ):
            return "fault", "write"
        if not pte.write and m.decided(
            "gup_must_unshare", self.gup_must_unshare(m, vma, pte.page, flags), f"follow_page_pte #{pte.page}"
        ):
            return "fault", "unshare"
        return "page", pte.page

    def faultin_page(self, m: Machine, mm: str, vname: str, idx: int, kind: str, flags: Foll) -> Foll:
        name = {"write": "FAULT_FLAG_WRITE", "unshare": "FAULT_FLAG_UNSHARE"}.get(kind, "read")
        m.say(f"faultin_page: {name} fault on {mm}.{vname}[{idx}]")
        was = m.pte(mm, vname, idx)
        self.handle_mm_fault(m, mm, vname, idx, write=kind == "write", unshare=kind == "unshare")
        if kind == "write" and was is not None and was.present and not m.mapped_vma(mm, vname).write and self.has_foll_cow():
            flags = evolve(flags, cow=True)  # faultin_page: VM_FAULT_WRITE in a !VM_WRITE vma sets FOLL_COW
        return flags

    def get_user_pages(self, m: Machine, mm: str, vname: str, idx: int,
                       flags: Foll) -> tuple[int, None] | tuple[None, str]:
        """The slow path, whole: (pfn, None) or (None, errno)."""
        flags, err = self.gup_prepare(m, mm, vname, idx, flags)
        if err:
            return None, err
        for _ in range(GUP_RETRIES):
            got = self.follow_page(m, mm, vname, idx, flags)
            if got[0] == "page":
                pfn = got[1]
                m.grab(pfn, flags.pin)
                m.say(f"try_grab_page: {flags} on #{pfn}{self._counts(m, pfn)}")
                return pfn, None
            flags = self.faultin_page(m, mm, vname, idx, got[1], flags)
        m.say("gup: retry limit reached → -EFAULT")
        return None, "EFAULT"

    # --- GUP-fast: lockless, with its own preemption points (gup_pte_range) -------------
    def foll_of(self, step: Step) -> Foll:
        if step.op == "vmsplice":
            return Foll(fast=True)  # iov_iter_get_pages2: a read-only FOLL_GET through GUP-fast
        return Foll(write="write" in step.flags, pin=step.op == "pin", longterm="longterm" in step.flags,
                    fast="fast" in step.flags)

    @micro_step(GUP_FAST, "begin")
    def gup_fast__begin(self, m: Machine, step: Step, frame: Frame) -> Micro:
        a = addr_of(step)
        flags, err = self.gup_prepare(m, a.proc, a.mapping, a.index, self.foll_of(step))
        if err:
            return Micro(None, (), Outcome(False, error=err))
        seq = -1
        hugetlb = m.mapped_vma(a.proc, a.mapping).kind == HUGETLB  # gup_prepare found it
        if flags.pin and m.decided("has_write_protect_seq", self.has_write_protect_seq(), "gup_fast", minor=True) \
                and (not hugetlb or m.decided("hugetlb_fork_wp_seq", self.hugetlb_fork_wp_seq(), "gup_fast",
                                              minor=True)):
            # before 623a1ddfeb23 a hugetlb fork never makes the count odd: the check protects nothing
            seq = m.mm_field(a.proc, "wp_seq")
            if seq % 2:
                m.say("gup_fast: write_protect_seq is odd, fork is copying → slow path")
                return Micro("slow", ())
        return Micro("pte", (seq, flags.write))

    @micro_step(GUP_FAST, "pte")
    def gup_fast__pte(self, m: Machine, step: Step, frame: Frame) -> Micro:
        seq, write = frame
        a = addr_of(step)
        vma = m.vma(a.proc, a.mapping)
        if vma is None:
            # the mapping went away since the walk began (another thread's SIGSEGV tore the mm down)
            m.say(f"gup_fast: nothing mapped at {a} any more → slow path")
            return Micro("slow", ())
        pte = m.pte(a.proc, a.mapping, a.index)
        if pte is None or not pte.present or m.page(pte.page).zero:
            m.say("gup_fast: no normal page mapped → slow path")
            return Micro("slow", ())
        if not vma_is_accessible(vma, a.index):
            # gup_pte_range: a pte_protnone entry takes the slow path (5.10.198, 6.1.158, 6.18.2)
            m.say("gup_fast: pte_protnone (PROT_NONE) → slow path")
            return Micro("slow", ())
        if write and not pte.write:
            m.say("gup_fast: PTE not writable → slow path")
            return Micro("slow", ())
        m.say(f"gup_fast: read PTE → #{pte.page}{' writable' if pte.write else ''}")
        return Micro("grab", (seq, write, pte.page, pte))  # the PTE as read, for the re-check

    @micro_step(GUP_FAST, "grab")
    def gup_fast__grab(self, m: Machine, step: Step, frame: Frame) -> Micro:
        seq, write, pfn, _ = frame
        if m.page(pfn).freed:
            # try_grab_folio → folio_ref_try_add_rcu: no reference on a page whose refcount
            # already dropped to zero (freed since the PTE was read, e.g. by reclaim)
            m.say(f"gup_fast: #{pfn} was freed since the PTE was read (refcount 0) → slow path")
            return Micro("slow", ())
        m.grab(pfn, step.op == "pin")
        m.say(f"gup_fast: grab #{pfn}{self._counts(m, pfn)}")
        return Micro("recheck", frame)

    @micro_step(GUP_FAST, "recheck")
    def gup_fast__recheck(self, m: Machine, step: Step, frame: Frame) -> Micro:
        """gup_pte_range after try_grab_folio: the whole PTE value re-read (a KSM
        write_protect_page that cleaned it counts), then gup_must_unshare on the page
        as it is after the grab: KSM or fork may have cleared PageAnonExclusive
        between the PTE read and the grab; page_try_share_anon_rmap's barrier pairs
        with this check (5.19, a7f226604170)."""
        seq, write, pfn, was = frame
        a = addr_of(step)
        vma = m.vma(a.proc, a.mapping)
        pte = m.pte(a.proc, a.mapping, a.index) if vma is not None else None
        if pte != was:
            m.ungrab(pfn, step.op == "pin")
            m.say("gup_fast: PTE changed under us → drop the page, slow path")
            return Micro("slow", ())
        assert vma is not None  # the PTE is still there
        if not was.write and self.gup_must_unshare(m, vma, pfn, evolve(self.foll_of(step), write=write)):
            m.ungrab(pfn, step.op == "pin")
            m.say(f"gup_fast: #{pfn} must be unshared first (not exclusive) → drop it, slow path")
            return Micro("slow", ())
        m.say(f"gup_fast: PTE unchanged, #{pfn} kept")
        return Micro("seq", frame)

    @micro_step(GUP_FAST, "seq")
    def gup_fast__seq(self, m: Machine, step: Step, frame: Frame) -> Micro:
        seq, write, pfn, _ = frame
        a = addr_of(step)
        if seq >= 0 and m.mm_field(a.proc, "wp_seq") != seq:
            m.ungrab(pfn, step.op == "pin")
            m.say("gup_fast: read_seqcount_retry: a fork ran → unpin, slow path")
            return Micro("slow", ())
        m.say("gup_fast: done" + (" (write_protect_seq unchanged)" if seq >= 0 else " (no seqcount to check)"))
        return Micro(None, (), self.gup_done(m, step, pfn))

    @micro_step(GUP_FAST, "slow")
    def gup_fast__slow(self, m: Machine, step: Step, frame: Frame) -> Micro:
        a = addr_of(step)
        pfn, err = self.get_user_pages(m, a.proc, a.mapping, a.index, evolve(self.foll_of(step), fast=False))
        if err:
            return Micro(None, (), Outcome(False, error=err))
        assert pfn is not None  # no errno: GUP holds the page
        return Micro(None, (), self.gup_done(m, step, pfn))

    def gup_done(self, m: Machine, step: Step, pfn: int) -> Outcome:
        """The page is held: a pin or reference for the caller, or a pipe buffer."""
        if step.op == "vmsplice":
            return self.vmsplice_done(m, step, pfn)
        flags = self.foll_of(step)
        if step.count > 1:  # gup count=N: N references, as N requests in flight (one update, not N)
            m.grab(pfn, flags.pin, step.count - 1)
            m.say(f"{step.count} references on #{pfn}{self._counts(m, pfn)}")
        name = step.handle_name
        assert step.task is not None  # pin and gup are done by a process
        m.add_handle(Handle(name, flags.pin, pfn, flags.write, flags.longterm, step.task, refs=step.count,
                            offset=addr_of(step).offset))
        return Outcome(True)

    @staticmethod
    def _counts(m: Machine, pfn: int) -> str:
        p = m.page(pfn)
        return "" if p.zero else f" (refcount {p.refcount}, pincount {p.pincount})"

    # --- ops --------------------------------------------------------------------------
    @micro_step(GUP_SLOW, "take")
    def gup_slow__take(self, m: Machine, step: Step, frame: Frame) -> Micro:
        a = addr_of(step)
        pfn, err = self.get_user_pages(m, a.proc, a.mapping, a.index, self.foll_of(step))
        if err:
            return Micro(None, (), Outcome(False, error=err))
        assert pfn is not None  # no errno: GUP holds the page
        return Micro(None, (), self.gup_done(m, step, pfn))

    @whole_op(UNPIN)
    @whole_op(PUT)
    def op_release(self, m: Machine, step: Step) -> Outcome:
        """unpin_user_page or put_page on the step's handle."""
        assert step.handle is not None  # the op's pin or ref parameter
        h = m.handle(step.handle)
        if h is None or not h.live:
            m.say(f"{step.handle} holds no page (its GUP failed)")
            return Outcome(False, error="EINVAL")
        m.release_handle(step.handle)
        times = f" ×{h.refs}" if h.refs > 1 else ""
        m.say(f"{'unpin_user_page' if h.pin else 'put_page'}{times}: #{h.page}{self._counts(m, h.page)}")
        return Outcome(True)

    def _device(self, m: Machine, step: Step) -> Handle | None:
        assert step.handle is not None  # the pin or reference the device acts through
        h = m.handle(step.handle)
        if h is None:
            m.say(f"{step.handle} holds no page (its GUP failed): no DMA")
            return None
        if not h.live:
            gone = "its exclusive access was revoked" if h.device else "it was released"
            m.say(f"{step.handle}: {gone}: no DMA")
            return None
        return h

    def _device_page(self, m: Machine, step: Step, write: bool) -> tuple[Handle, int] | str:
        """The handle and the page its DMA reaches, or the errno.  A device mirror
        whose entry an MMU notifier dropped faults it in again first (hmm_refault)."""
        assert step.handle is not None  # the pin or reference the device acts through
        h = m.handle(step.handle)
        # a device write where the mirror's entry is read-only: dmirror_do_write -ENOENT → dmirror_fault
        if h is not None and mirror_refaults(h, write):
            pfn, err = self.hmm_refault(m, h, write)
            if err is not None:
                return err
            assert pfn is not None  # no errno: the fault mapped a page
            return h, pfn
        h = self._device(m, step)
        return "EFAULT" if h is None else (h, h.page)

    @whole_op(DMA_WRITE)
    def op_dma_write(self, m: Machine, step: Step) -> Outcome:
        got = self._device_page(m, step, write=True)
        if isinstance(got, str):
            return Outcome(False, error=got)
        h, pfn = got
        m.store(pfn, h.offset, value_of(step))
        m.say(f"DMA write {step.value} into #{pfn}{at(h.offset)} through {h.name}")
        return Outcome(True)

    @whole_op(DMA_READ)
    def op_dma_read(self, m: Machine, step: Step) -> Outcome:
        got = self._device_page(m, step, write=False)
        if isinstance(got, str):
            return Outcome(False, error=got)
        h, pfn = got
        value = m.load(pfn, h.offset)
        m.say(f"DMA read {value} from #{pfn}{at(h.offset)} through {h.name}")
        return Outcome(True, value)

    # --- remote access: pin_user_pages_remote, then copy, then unpin ---------------------
    @micro_step(PVM, "gup")
    def pvm__gup(self, m: Machine, step: Step, frame: Frame) -> Micro:
        a = addr_of(step)
        write = step.op == "process_vm_writev"
        pin = bool(m.decided("pvm_foll_pin", self.pvm_foll_pin(), "process_vm_rw_core", minor=True))
        pfn, err = self.get_user_pages(m, a.proc, a.mapping, a.index, Foll(write=write, pin=pin))
        if err:
            return Micro(None, (), Outcome(False, error=err))
        return Micro("copy", (pfn,))

    def takes_pin(self, step: Step) -> bool:
        """Whether this op's GUP takes FOLL_PIN here (process_vm_readv/writev:
        from 5.6) or a FOLL_GET reference."""
        if step.op in ("process_vm_writev", "process_vm_readv"):
            return bool(self.pvm_foll_pin())
        if step.op in ("odirect_read", "odirect_write"):
            return bool(self.odirect_foll_pin())
        return step.op == "pin"

    @micro_step(PVM, "copy")
    def pvm__copy(self, m: Machine, step: Step, frame: Frame) -> Micro:
        (pfn,) = frame
        off = addr_of(step).offset
        if step.op == "process_vm_writev":
            m.store(pfn, off, value_of(step))
            m.say(f"process_vm_writev: {step.value} copied into #{pfn}{at(off)}")
            return Micro("unpin", (pfn, -1))
        value = m.load(pfn, off)
        m.say(f"process_vm_readv: read {value} from #{pfn}{at(off)}")
        return Micro("unpin", (pfn, value))

    @micro_step(PVM, "unpin")
    def pvm__unpin(self, m: Machine, step: Step, frame: Frame) -> Micro:
        pfn, value = frame
        pin = self.takes_pin(step)
        m.ungrab(pfn, pin=pin)
        m.say(f"{'unpin_user_pages' if pin else 'put_page'}: #{pfn}")
        return Micro(None, (), Outcome(True, None if value < 0 else value))

    # --- forced write through /proc/PID/mem: GUP's loop with its preemption points --------
    @micro_step(PROC_MEM_WRITE, "lock")
    def pmw__lock(self, m: Machine, step: Step, frame: Frame) -> Micro:
        a = addr_of(step)
        m.update_mm(a.proc, mmap_lock=m.mm_field(a.proc, "mmap_lock") + 1)
        flags, err = self.gup_prepare(m, a.proc, a.mapping, a.index, Foll(write=True, force=True))
        if err:
            return self.pmw_unlock(m, step, Outcome(False, error=err))
        return Micro("follow", (0, flags.cow))

    @micro_step(PROC_MEM_WRITE, "follow")
    def pmw__follow(self, m: Machine, step: Step, frame: Frame) -> Micro:
        tries, cow = frame
        a = addr_of(step)
        if (gone := self.pmw_vma_gone(m, step)) is not None:
            return gone
        got = self.follow_page(m, a.proc, a.mapping, a.index, Foll(write=True, force=True, cow=cow))
        if got[0] == "page":
            pfn = got[1]
            m.grab(pfn, pin=False)
            return Micro("write", (pfn,))
        if tries >= GUP_RETRIES:
            m.say("gup: retry limit reached → -EFAULT")
            return self.pmw_unlock(m, step, Outcome(False, error="EFAULT"))
        return Micro("fault", (tries, cow, got[1]))

    @micro_step(PROC_MEM_WRITE, "fault")
    def pmw__fault(self, m: Machine, step: Step, frame: Frame) -> Micro:
        tries, cow, kind = frame
        a = addr_of(step)
        if (gone := self.pmw_vma_gone(m, step)) is not None:
            return gone
        flags = self.faultin_page(m, a.proc, a.mapping, a.index, kind, Foll(write=True, force=True, cow=cow))
        return Micro("follow", (tries + 1, flags.cow))

    @micro_step(PROC_MEM_WRITE, "write")
    def pmw__write(self, m: Machine, step: Step, frame: Frame) -> Micro:
        (pfn,) = frame
        off = addr_of(step).offset
        m.store(pfn, off, value_of(step))
        m.ungrab(pfn, pin=False)
        page = m.page(pfn)
        where = (f"page-cache page of {page.file}" if page.file else f"page #{pfn}") + at(off)
        m.say(f"access_remote_vm: forced write of {step.value} into {where}")
        return self.pmw_unlock(m, step, Outcome(True))

    def pmw_vma_gone(self, m: Machine, step: Step) -> Micro | None:
        """The mapping was torn down since the lock was taken (the target's SIGSEGV): -EFAULT."""
        a = addr_of(step)
        if m.vma(a.proc, a.mapping) is not None:
            return None
        m.say(f"gup: no mapping `{a.mapping}` in {a.proc} any more → -EFAULT")
        return self.pmw_unlock(m, step, Outcome(False, error="EFAULT"))

    def pmw_unlock(self, m: Machine, step: Step, out: Outcome) -> Micro:
        a = addr_of(step)
        m.update_mm(a.proc, mmap_lock=m.mm_field(a.proc, "mmap_lock") - 1)
        return Micro(None, (), out)
