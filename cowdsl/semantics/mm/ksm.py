"""mm/ksm.c: ksmd merges identical anonymous pages into one read-only KSM page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import evolve

from cowdsl.ops.ksm import KSM_MERGE
from cowdsl.semantics.contract import KernelBase
from cowdsl.semantics.micro import whole_op
from cowdsl.semantics.state import HUGETLB, Outcome

if TYPE_CHECKING:
    from cowdsl.scenario import Step
    from cowdsl.semantics.machine import Machine


class Ksm(KernelBase):
    def write_protect_page(self, m: Machine, mm: str, vname: str, idx: int) -> bool:
        """Refuse a page with references beyond its mappings, when the era compares
        them for this PTE (ksm_checks_refs: before 5.19 not for a read-only clean
        one), else map it read-only and shared."""
        pte = m.pte(mm, vname, idx)
        assert pte is not None  # op_ksm_merge found an anonymous page here
        page = m.page(pte.page)
        expected = page.mapcount + (1 if page.swapcache >= 0 else 0)
        checks = self.ksm_checks_refs(m, pte, pte.page)
        m.decided("ksm_checks_refs", checks, f"write_protect_page #{pte.page}",
                  minor=bool(checks) or page.refcount == expected)
        if checks and page.refcount != expected:
            m.say(f"write_protect_page: #{pte.page} refcount {page.refcount} != mapcount {page.mapcount}"
                  f"{' + swap cache' if page.swapcache >= 0 else ''}: extra references → not merged")
            return False
        if page.anon_exclusive and not m.decided("unmap_may_share", self.unmap_may_share(m, pte.page),
                                                 f"write_protect_page #{pte.page}"):
            return False
        m.update_page(pte.page, anon_exclusive=False)
        m.set_pte(mm, vname, idx, evolve(pte, write=False, dirty=False))  # pte_mkclean(pte_wrprotect(entry))
        return True

    @whole_op(KSM_MERGE)
    def op_ksm_merge(self, m: Machine, step: Step) -> Outcome:
        a, b = step.addr, step.addr2
        assert a is not None and b is not None  # the op's two address parameters
        for addr in (a, b):
            mm = m.mms.get(addr.proc)
            vma = m.vma(addr.proc, addr.mapping) if mm is not None and mm.alive else None
            if vma is None:
                m.say(f"ksm: nothing mapped at {addr}")
                return Outcome(False, error="not mergeable")
            if vma.kind == HUGETLB:
                # ksmd scans only mergeable anonymous VMAs: never VM_HUGETLB (vma_ksm_compatible, mm/ksm.c)
                m.say(f"ksm: {addr} is hugetlb, which KSM never scans")
                return Outcome(False, error="not mergeable")
        pa, pb = m.pte(a.proc, a.mapping, a.index), m.pte(b.proc, b.mapping, b.index)
        for addr, pte in ((a, pa), (b, pb)):
            if pte is None or not pte.present or m.page(pte.page).zero or not m.page(pte.page).anon:
                m.say(f"ksm: nothing anonymous resident at {addr}")
                return Outcome(False, error="not mergeable")
        assert pa is not None and pb is not None  # both resident, as just checked
        if pa.page == pb.page:
            m.say(f"ksm: {a} and {b} already share #{pa.page}")
            return Outcome(False, error="same page")
        if m.page(pa.page).data != m.page(pb.page).data:
            m.say("ksm: the pages differ")
            return Outcome(False, error="pages differ")
        if not (self.write_protect_page(m, a.proc, a.mapping, a.index)
                and self.write_protect_page(m, b.proc, b.mapping, b.index)):
            return Outcome(False, error="EBUSY")
        kpfn = pa.page
        m.update_page(kpfn, ksm=True)
        old = pb.page
        m.set_pte(b.proc, b.mapping, b.index, evolve(pb, page=kpfn, write=False))
        m.page_add_rmap(kpfn)
        m.page_remove_rmap(old)
        m.say(f"ksm: {b} now maps KSM page #{kpfn}, shared read-only with {a}")
        return Outcome(True)
