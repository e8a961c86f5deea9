"""5.19+: PG_anon_exclusive and GUP-triggered unsharing (David Hildenbrand's
"COW fixes part 2", reference §6), with the 6.0 FOLL_FORCE and mprotect rules
and the 6.2 R/O long-term pinning rule; options select the earlier 5.19–6.1
behaviour."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowdsl.semantics.eras.cow_fixes_1 import CowFixes1
from cowdsl.semantics.eras.mapcount import Mapcount
from cowdsl.semantics.machine import Decision, Machine
from cowdsl.semantics.state import HUGETLB, PTE_THP

if TYPE_CHECKING:
    from cowdsl.semantics.mm.gup import Foll
    from cowdsl.semantics.state import Pte, Vma

MPROTECT_CLEAN = "v6.2 mm/mprotect.c can_change_pte_writable"
LARGE_FOLIO_REUSE = "v6.15 mm/memory.c __wp_can_reuse_large_anon_folio"


class AnonExclusive(CowFixes1):
    name = "anon-exclusive"
    TRACKS_ANON_EXCLUSIVE = True  # 78fbe906cc90, 6c287605fd56

    def has_foll_cow(self) -> bool:
        """5535be309971 (6.0) removed FOLL_COW; 5.19.0 still had it."""
        return self.options["foll_force"] == "foll_cow"

    def wp_can_reuse(self, m: Machine, pfn: int) -> Decision:
        """6c287605fd56: an exclusive page is reused at once; otherwise the 5.18
        refcount rule, and a reused page becomes exclusive (page_move_anon_rmap)."""
        page = m.page(pfn)
        if page.anon_exclusive:
            return Decision(True, "PageAnonExclusive → reuse", "6c287605fd56")
        if page.kind == PTE_THP:
            return self.large_folio_can_reuse(m, pfn)
        d = super().wp_can_reuse(m, pfn)
        return Decision(d.value, f"not exclusive, {d.why}" + (", now exclusive" if d else ""), d.commit)

    def thp_wp_can_reuse(self, m: Machine, pfn: int) -> Decision:
        """6c287605fd56: an exclusive THP is reused; otherwise the 5.18 rule."""
        if m.page(pfn).anon_exclusive:
            return Decision(True, "PageAnonExclusive → reuse", "6c287605fd56")
        return super().thp_wp_can_reuse(m, pfn)

    def check_vma_flags(self, m: Machine, vma: Vma, flags: Foll) -> Decision:
        """6.2 f347454d0341 [M]: no FOLL_FORCE|FOLL_WRITE on hugetlb.  6.5
        8ac268436e6d ("mm/gup: disallow FOLL_LONGTERM GUP-nonfast writing to
        file-backed mappings", Lorenzo Stoakes, writable_file_mapping_allowed;
        the ID as cited on LKML, not in the reference): no
        long-term write pins of file mappings that need dirty tracking — model
        files are disk files; shared anonymous memory is shmem and allowed.
        Found by the native cross-check on a 6.18 host (ext4 temp files)."""
        if flags.write and flags.pin and flags.longterm and vma.file is not None and vma.shared \
                and not vma.shmem and self.options["longterm_file_write"] == "refuse":
            return Decision(False, "FOLL_LONGTERM write pin of a disk-file mapping → -EFAULT", "8ac268436e6d")
        if flags.write and flags.force and not vma.write and vma.kind == HUGETLB and self.options["hugetlb_force"] == "refuse":
            return Decision(False, "FOLL_FORCE|FOLL_WRITE on hugetlb → -EFAULT", "f347454d0341")
        return super().check_vma_flags(m, vma, flags)

    def fork_copy_anon(self, m: Machine, src_mm: str, pfn: int) -> Decision:
        """page_try_dup_anon_rmap (6c287605fd56): sharing an exclusive page needs
        its exclusivity cleared, which fails when the mm has pinned (MMF_HAS_PINNED,
        a458b76a4171) and the page may be pinned; then fork copies it for the
        child, as early COW did (70e806e4e645)."""
        page = m.page(pfn)
        if not page.anon:
            return Decision(False, "page-cache page → page_dup_file_rmap, shared", "fb3d824d1a46")
        if not page.anon_exclusive:
            return Decision(False, "not exclusive → shared read-only", "6c287605fd56")
        if m.mm_field(src_mm, "has_pinned") and self.maybe_dma_pinned(page):
            return Decision(True, "exclusive, MMF_HAS_PINNED and maybe pinned → copy for the child", "6c287605fd56")
        return Decision(False, "exclusive, not pinned → exclusivity cleared, shared read-only", "6c287605fd56")

    def can_follow_write_pte(self, m: Machine, vma: Vma, pte: Pte, flags: Foll) -> Decision:
        """5535be309971 (6.0): FOLL_FORCE may write through a read-only PTE only
        into a private anonymous page that is already exclusive: COW was broken.
        This replaced FOLL_COW and closed CVE-2022-2590; foll_force=foll_cow is
        5.19.0, which still had the 4.9 rule (the fix was backported to 5.19-stable)."""
        if self.options["foll_force"] == "foll_cow":
            return Mapcount.can_follow_write_pte(self, m, vma, pte, flags)
        if pte.write:
            return Decision(True, "PTE writable", None)
        if not flags.force:
            return Decision(False, "PTE read-only → write fault", None)
        if vma.shared or vma.write or not vma.maywrite:
            return Decision(False, "FOLL_FORCE only writes through R/O private mappings → write fault", "5535be309971")
        page = m.page(pte.page)
        if page.zero or not page.anon or not page.anon_exclusive:
            return Decision(False, "FOLL_FORCE: not an exclusive anon page → break COW first", "5535be309971")
        return Decision(True, "FOLL_FORCE into an exclusive anon page (COW broken)", "5535be309971")

    def gup_must_unshare(self, m: Machine, vma: Vma, pfn: int, flags: Foll) -> Decision:
        """a7f226604170 (5.19): a read-only FOLL_PIN on an anonymous page that is
        not exclusive unshares it first (FAULT_FLAG_UNSHARE, c89357e27f20).
        84209e87c696 (6.2): a R/O FOLL_LONGTERM pin in a COW mapping also unshares
        page-cache and zero pages.  FOLL_GET never unshares."""
        if not flags.pin or flags.write:
            return Decision(False, "not a read-only pin → no unshare", "a7f226604170")
        page = m.page(pfn)
        if page.zero or not page.anon:
            if self.options["longterm_unshare"] == "all" and flags.longterm and vma.is_cow_mapping:
                return Decision(True, "R/O long-term pin of a non-anon page in a COW mapping → unshare", "84209e87c696")
            return Decision(False, "non-anon page → no unshare", "a7f226604170")
        if page.anon_exclusive:
            return Decision(False, "exclusive → pin as is", "a7f226604170")
        return Decision(True, "possibly shared anon page → unshare before pinning", "a7f226604170")

    def unmap_may_share(self, m: Machine, pfn: int) -> Decision:
        """6c287605fd56: try_to_unmap must clear exclusivity to unmap
        (page_try_share_anon_rmap), which fails while the page may be pinned."""
        if self.maybe_dma_pinned(m.page(pfn)):
            return Decision(False, "exclusive and maybe pinned → unmap fails", "6c287605fd56")
        return Decision(True, "exclusive, not pinned → exclusivity given up (page_try_share_anon_rmap)", "6c287605fd56")

    def swapin_exclusive(self, m: Machine, pte: Pte, pfn: int, write: bool) -> Decision:
        """1493a1913e34: the swap PTE remembers exclusivity; otherwise the 5.18
        rule (exclusive when no one else holds the page)."""
        page = m.page(pfn)
        if not page.ksm and pte.swp_exclusive:
            return Decision(True, "pte_swp_exclusive → exclusive", "1493a1913e34")
        return super().swapin_exclusive(m, pte, pfn, write)

    def mprotect_upgrade(self, m: Machine, vma: Vma, pte: Pte) -> Decision:
        """64fe24a3e05e (6.0): can_change_pte_writable: a private anonymous page
        that is exclusive becomes writable at once; shared mappings need a dirty
        PTE.  6.0 and 6.1 also return false on a clean PTE before the private
        check (mprotect=dirty, read in 6.0.1 and 6.1.158); 6.2 ("mm/mprotect:
        allow clean exclusive anon pages to be writable") dropped that test."""
        if self.options["mprotect"] == "fault":
            return super().mprotect_upgrade(m, vma, pte)
        if not vma.write:
            return Decision(False, "VM_WRITE clear", "64fe24a3e05e")
        if vma.shared:
            return Decision(pte.dirty, "shared mapping: writable iff dirty", "64fe24a3e05e")
        if self.options["mprotect"] == "dirty" and not pte.dirty:
            return Decision(False, "clean PTE → stays read-only (6.0-6.1)", "64fe24a3e05e")
        page = m.page(pte.page)
        if page.anon and not page.zero and page.anon_exclusive:
            return Decision(True, "exclusive anon page → writable now", "64fe24a3e05e" if pte.dirty else MPROTECT_CLEAN)
        return Decision(False, "not an exclusive anon page → stays read-only", "64fe24a3e05e")

    def large_folio_can_reuse(self, m: Machine, pfn: int) -> Decision:
        """wp_can_reuse_anon_folio on a subpage of a PTE-mapped THP that is not
        exclusive: 6.14 and before never reuse a large folio (`return false`,
        read in 6.13.7); 6.15 (__wp_can_reuse_large_anon_folio, CONFIG_MM_ID)
        reuses it when only this mm maps the folio and nothing but its mappings
        holds it (folio_large_mapcount == folio_ref_count; read in 6.18.2)."""
        page = m.page(pfn)
        if self.options["large_folio_reuse"] == "off":
            return Decision(False, "large folio, not exclusive → copy", LARGE_FOLIO_REUSE)
        if page.ksm or page.swapcache >= 0:
            return Decision(False, "KSM or swap-cache large folio → copy", LARGE_FOLIO_REUSE)
        mapped = page.mapcount + page.siblings  # the siblings are mapped by the same mms
        if page.mapcount == 1 and page.refcount == mapped:
            return Decision(True, "large folio mapped only by this mm, no other references → reuse",
                            LARGE_FOLIO_REUSE)
        return Decision(False, f"large folio: mapcount {page.mapcount}, refcount {page.refcount} → copy",
                        LARGE_FOLIO_REUSE)
