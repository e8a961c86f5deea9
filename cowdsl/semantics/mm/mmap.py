"""mm/mmap.c, mm/mprotect.c, mm/madvise.c and exit: the address space."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import evolve

from cowdsl.ops.mmap import EXIT, MADVISE, MMAP, MPROTECT, MUNMAP
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import whole_op
from cowdsl.semantics.state import HUGETLB, PTE_THP, SMALL, THP, Outcome, Vma

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine


class AddressSpace(KernelBase):
    @whole_op(MMAP)
    def op_mmap(self, m: Machine, step: Step) -> Outcome:
        assert step.task is not None and step.mapping is not None  # a process's op; its new-mapping parameter
        shared = "shared" in step.flags
        write = "rw" in step.flags
        file = step.file
        kind = next((k for k in (THP, PTE_THP, HUGETLB) if k in step.flags), SMALL)
        if kind != SMALL and (shared or file):
            m.say(f"mmap: {kind} pages are modelled for private anonymous mappings only → -EINVAL")
            return Outcome(False, error="EINVAL")
        if shared and file is None:
            # MAP_SHARED|MAP_ANONYMOUS is shmem: a page-cache object of its own
            file = f"{step.task}.{step.mapping}"
            m.add_file(file, tuple(m.alloc_page(anon=False, refcount=1, file=file, index=i) for i in range(step.pages)))
        vma = Vma(
            name=step.mapping,
            anon=file is None,
            shared=shared,
            write=write,
            maywrite=True,  # private mappings may always be written (COW); files are opened read-write
            file=file,
            ptes=(None,) * step.pages,
            kind=kind,
            shmem=shared and step.file is None,
        )
        m.set_vma(step.task, vma)
        what = f"file {file}" if step.file else ("shmem" if shared else "anonymous")
        size = "" if kind == SMALL else f" {kind}"
        m.say(f"mmap: `{step.mapping}`, {step.pages}{size} page(s), {what}, {'shared' if shared else 'private'}, {'rw' if write else 'ro'}")
        return Outcome(True)

    @whole_op(MUNMAP)
    def op_munmap(self, m: Machine, step: Step) -> Outcome:
        assert step.task is not None and step.mapping is not None  # a process's op; its mapping parameter
        if m.vma(step.task, step.mapping) is None:
            m.say(f"munmap: nothing mapped at `{step.mapping}` in {step.task} (not an error)")
            return Outcome(True)
        self.zap_vma(m, step.task, step.mapping)
        m.remove_vma(step.task, step.mapping)
        m.say(f"munmap: `{step.mapping}` removed from {step.task}")
        return Outcome(True)

    def exit_mmap(self, m: Machine, mm: str) -> None:
        for vma in m.vmas(mm):
            self.zap_vma(m, mm, vma.name)
        m.update_mm(mm, vmas=())
        for h in m.all_handles():
            if h.owner == mm and h.live:
                m.release_handle(h.name)
                m.say(f"exit: {mm}'s {'pin' if h.pin else 'reference'} {h.name} on #{h.page} released")

    @whole_op(EXIT)
    def op_exit(self, m: Machine, step: Step) -> Outcome:
        assert step.task is not None  # a process exits
        self.exit_mmap(m, step.task)
        m.update_mm(step.task, alive=False)
        m.say(f"exit: {step.task} is gone")
        return Outcome(True)

    @whole_op(MPROTECT)
    def op_mprotect(self, m: Machine, step: Step) -> Outcome:
        mm, vname = step.task, step.mapping
        assert mm is not None and vname is not None  # a process's op; its mapping parameter
        vma = m.vma(mm, vname)
        if vma is None:
            m.say(f"mprotect: no mapping `{vname}` in {mm} → -ENOMEM")
            return Outcome(False, error="ENOMEM")
        write = "rw" in step.flags
        m.set_vma(mm, evolve(vma, write=write))
        for idx, pte in enumerate(vma.ptes):
            if pte is not None and pte.devexcl and not write and pte.write:
                m.set_pte(mm, vname, idx, evolve(pte, write=False))  # writable entry → readable entry
                continue
            if pte is None or not pte.present:
                continue
            if not write and pte.write:
                m.set_pte(mm, vname, idx, evolve(pte, write=False))
            elif write and not pte.write:
                d = m.decided(
                    "mprotect_upgrade", self.mprotect_upgrade(m, m.mapped_vma(mm, vname), pte), f"change_pte_range #{pte.page}"
                )
                if d:
                    m.set_pte(mm, vname, idx, evolve(pte, write=True))
        m.say(f"mprotect: `{vname}` is now {'rw' if write else 'ro'}")
        return Outcome(True)

    @whole_op(MADVISE)
    def op_madvise(self, m: Machine, step: Step) -> Outcome:
        mm, vname = step.task, step.mapping
        assert mm is not None and vname is not None  # a process's op; its mapping parameter
        vma = m.vma(mm, vname)
        advice = next(iter(step.flags))
        if vma is None:
            m.say(f"madvise: no mapping `{vname}` in {mm} → -ENOMEM")
            return Outcome(False, error="ENOMEM")
        if advice == "dontneed":
            self.zap_vma(m, mm, vname)
            m.say(f"MADV_DONTNEED: `{vname}` zapped")
        elif advice in ("dontfork", "dofork"):
            m.set_vma(mm, evolve(vma, dontfork=advice == "dontfork"))
            m.say(f"MADV_{advice.upper()}: `{vname}`")
        elif advice == "wipeonfork":
            if not vma.anon or vma.shared:
                m.say("MADV_WIPEONFORK: only private anonymous mappings → -EINVAL")
                return Outcome(False, error="EINVAL")
            m.set_vma(mm, evolve(vma, wipeonfork=True))
            m.say(f"MADV_WIPEONFORK: `{vname}`")
        elif advice == "pageout":
            for _idx, pte in enumerate(vma.ptes):
                if pte is None or not pte.present:
                    continue
                page = m.page(pte.page)
                if page.zero or not page.anon:
                    continue
                if page.mapcount != 1:
                    m.say(f"MADV_PAGEOUT: #{pte.page} is mapped by other processes: skipped")
                    continue
                self.shrink_page(m, pte.page)
        return Outcome(True)
