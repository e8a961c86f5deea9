"""mm/gup.c: get_user_pages and pin_user_pages, and the users built on them."""

from __future__ import annotations

from attrs import evolve, frozen

from cowdsl.semantics.state import Handle, Outcome

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


class Gup:
    def get_user_pages(self, m, mm, vname, idx, flags: Foll):
        """Returns (pfn, None) or (None, errno)."""
        if flags.pin and m.decided("pin_sets_has_pinned", self.pin_sets_has_pinned(flags), "gup", minor=True):
            if not m.mm(mm).has_pinned:
                m.update_mm(mm, has_pinned=True)
                m.say(f"gup: MMF_HAS_PINNED set on {mm}")
        vma = m.vma(mm, vname)
        if vma is None:
            m.say(f"gup: no mapping `{vname}` in {mm} → -EFAULT")
            return None, "EFAULT"
        if flags.write and not vma.write and not (flags.force and vma.maywrite):
            m.say(f"check_vma_flags: {flags} on read-only `{vname}` → -EFAULT")
            return None, "EFAULT"
        brk = self.gup_break_cow(m, vma, flags)
        if m.decided("gup_break_cow", brk, f"gup {flags}", minor=not brk):
            flags = evolve(flags, write=True)
        if flags.fast:
            pfn = self.gup_fast(m, mm, vname, idx, flags)
            if pfn is not None:
                return pfn, None
        for _ in range(GUP_RETRIES):
            pte = m.pte(mm, vname, idx)
            if pte is not None and pte.present:
                if flags.write and not m.decided(
                    "can_follow_write_pte", self.can_follow_write_pte(m, vma, pte, flags), f"follow_page_pte #{pte.page}",
                    minor=pte.write,
                ):
                    self.faultin_page(m, mm, vname, idx, write=True)
                    if not vma.write and self.has_foll_cow():
                        flags = evolve(flags, cow=True)  # faultin_page: VM_FAULT_WRITE in a !VM_WRITE vma
                    continue
                if not pte.write and m.decided(
                    "gup_must_unshare", self.gup_must_unshare(m, vma, pte.page, flags), f"follow_page_pte #{pte.page}"
                ):
                    self.faultin_page(m, mm, vname, idx, unshare=True)
                    continue
                m.grab(pte.page, flags.pin)
                m.say(f"try_grab_page: {flags} on #{pte.page}{self._counts(m, pte.page)}")
                return pte.page, None
            self.faultin_page(m, mm, vname, idx, write=flags.write)
            vma = m.vma(mm, vname)
        m.say("gup: retry limit reached → -EFAULT")
        return None, "EFAULT"

    def faultin_page(self, m, mm, vname, idx, *, write=False, unshare=False) -> None:
        kind = "FAULT_FLAG_WRITE" if write else "FAULT_FLAG_UNSHARE" if unshare else "read"
        m.say(f"faultin_page: {kind} fault on {mm}.{vname}[{idx}]")
        self.handle_mm_fault(m, mm, vname, idx, write=write, unshare=unshare)

    def gup_fast(self, m, mm, vname, idx, flags: Foll):
        """gup_pte_range: lockless; any doubt falls back to the slow path."""
        pte = m.pte(mm, vname, idx)
        if pte is None or not pte.present or m.page(pte.page).zero:
            m.say("gup_fast: no normal page mapped → slow path")
            return None
        if flags.write and not pte.write:
            m.say("gup_fast: PTE not writable → slow path")
            return None
        if not pte.write and self.gup_must_unshare(m, m.vma(mm, vname), pte.page, flags):
            m.say("gup_fast: page must be unshared first → slow path")
            return None
        m.grab(pte.page, flags.pin)
        m.say(f"gup_fast: {flags} on #{pte.page}{self._counts(m, pte.page)}")
        return pte.page

    @staticmethod
    def _counts(m, pfn) -> str:
        p = m.page(pfn)
        return "" if p.zero else f" (refcount {p.refcount}, pincount {p.pincount})"

    # --- ops --------------------------------------------------------------------------
    def _take(self, m, step, pin: bool) -> Outcome:
        a = step.addr
        flags = Foll(write="write" in step.flags, pin=pin, longterm="longterm" in step.flags, fast="fast" in step.flags)
        pfn, err = self.get_user_pages(m, a.proc, a.mapping, a.index, flags)
        if err:
            return Outcome(False, error=err)
        for _ in range(step.count - 1):  # gup count=N: N references, as N requests in flight
            m.grab(pfn, pin)
        if step.count > 1:
            m.say(f"{step.count} references on #{pfn}{self._counts(m, pfn)}")
        name = step.bind or f"{step.op}@{step.number}"
        m.add_handle(Handle(name, pin, pfn, flags.write, flags.longterm, step.task, refs=step.count))
        return Outcome(True)

    def op_pin(self, m, step) -> Outcome:
        return self._take(m, step, pin=True)

    def op_gup(self, m, step) -> Outcome:
        return self._take(m, step, pin=False)

    def _release(self, m, step) -> Outcome:
        h = m.handle(step.handle)
        if h is None or not h.live:
            m.say(f"{step.handle} holds no page (its GUP failed)")
            return Outcome(False, error="EINVAL")
        m.release_handle(step.handle)
        times = f" ×{h.refs}" if h.refs > 1 else ""
        m.say(f"{'unpin_user_page' if h.pin else 'put_page'}{times}: #{h.page}{self._counts(m, h.page)}")
        return Outcome(True)

    op_unpin = _release
    op_put = _release

    def _device(self, m, step):
        h = m.handle(step.handle)
        if h is None or not h.live:
            m.say(f"{step.handle} holds no page (its GUP failed): no DMA")
            return None
        return h

    def op_dma_write(self, m, step) -> Outcome:
        h = self._device(m, step)
        if h is None:
            return Outcome(False, error="EFAULT")
        m.update_page(h.page, data=step.value)
        m.say(f"DMA write {step.value} into #{h.page} through {h.name}")
        return Outcome(True)

    def op_dma_read(self, m, step) -> Outcome:
        h = self._device(m, step)
        if h is None:
            return Outcome(False, error="EFAULT")
        value = m.page(h.page).data
        m.say(f"DMA read {value} from #{h.page} through {h.name}")
        return Outcome(True, value)

    # --- remote access ---------------------------------------------------------------
    def op_process_vm_writev(self, m, step) -> Outcome:
        a = step.addr
        pfn, err = self.get_user_pages(m, a.proc, a.mapping, a.index, Foll(write=True, pin=True))
        if err:
            return Outcome(False, error=err)
        m.update_page(pfn, data=step.value)
        m.ungrab(pfn, pin=True)
        m.say(f"process_vm_writev: {step.value} written to #{pfn}, unpinned")
        return Outcome(True)

    def op_process_vm_readv(self, m, step) -> Outcome:
        a = step.addr
        pfn, err = self.get_user_pages(m, a.proc, a.mapping, a.index, Foll(pin=True))
        if err:
            return Outcome(False, error=err)
        value = m.page(pfn).data
        m.ungrab(pfn, pin=True)
        m.say(f"process_vm_readv: read {value} from #{pfn}, unpinned")
        return Outcome(True, value)

    def op_proc_mem_write(self, m, step) -> Outcome:
        a = step.addr
        pfn, err = self.get_user_pages(m, a.proc, a.mapping, a.index, Foll(write=True, force=True))
        if err:
            return Outcome(False, error=err)
        m.update_page(pfn, data=step.value)
        m.ungrab(pfn, pin=False)
        page = m.page(pfn)
        where = f"page-cache page of {page.file}" if page.file else f"page #{pfn}"
        m.say(f"access_remote_vm: forced write of {step.value} into {where}")
        return Outcome(True)
