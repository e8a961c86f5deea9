"""5.19+: PG_anon_exclusive and GUP-triggered unsharing (David Hildenbrand's
"COW fixes part 2"), with the 6.0 FOLL_FORCE and mprotect rules and the 6.2
R/O long-term pinning rule.  Reference: kernel-cow-semantics.md §6."""

from __future__ import annotations

from cowdsl.semantics.backend import Backend
from cowdsl.semantics.machine import Decision
from cowdsl.semantics.registry import register


@register
class AnonExclusive(Backend):
    name = "anon-exclusive"
    versions = "5.19+"
    description = "PageAnonExclusive: exclusive pages are reused, pinned pages are never shared, R/O pins unshare"
    aliases = ("5.19", "6.0", "6.1", "6.2", "6.6", "6.12", "modern")
    TRACKS_ANON_EXCLUSIVE = True  # 78fbe906cc90, 6c287605fd56

    def wp_can_reuse(self, m, pfn):
        """6c287605fd56: an exclusive page is reused at once.  Otherwise the 5.18
        refcount rule (09854ba94c6a, COW fixes part 1 53a05ad9f21d/d4c470970d45):
        reuse only when nobody else holds a reference, after trying to drop the
        swap cache; a reused page becomes exclusive (page_move_anon_rmap)."""
        page = m.page(pfn)
        if page.anon_exclusive:
            return Decision(True, "PageAnonExclusive → reuse", "6c287605fd56")
        if page.ksm:
            return Decision(False, "KSM page → copy", "1a0cf26323c8")
        in_cache = page.swapcache >= 0
        if page.refcount > 1 + in_cache:
            extra = " + swap cache" if in_cache else ""
            return Decision(False, f"not exclusive, refcount {page.refcount} > 1{extra} → copy", "09854ba94c6a")
        if in_cache:
            self.try_to_free_swap(m, pfn)
        page = m.page(pfn)
        if page.refcount != 1:
            return Decision(False, f"not exclusive, refcount {page.refcount} != 1 → copy", "53a05ad9f21d")
        return Decision(True, "refcount 1: sole user → reuse, now exclusive", "6c287605fd56")

    def fork_copy_anon(self, m, src_mm, pfn):
        """page_try_dup_anon_rmap (6c287605fd56): sharing an exclusive page needs
        its exclusivity cleared, which fails when the mm has pinned (MMF_HAS_PINNED,
        a458b76a4171) and the page may be pinned; then fork copies it for the
        child, as early COW did (70e806e4e645)."""
        page = m.page(pfn)
        if not page.anon_exclusive:
            return Decision(False, "not exclusive → shared read-only", "6c287605fd56")
        if m.mm(src_mm).has_pinned and self.maybe_dma_pinned(page):
            return Decision(True, "exclusive, MMF_HAS_PINNED and maybe pinned → copy for the child", "6c287605fd56")
        return Decision(False, "exclusive, not pinned → exclusivity cleared, shared read-only", "6c287605fd56")

    def gup_break_cow(self, m, vma, flags):
        """a308c71bf1e6 removed 5.8's forced COW break for GUP."""
        return Decision(False, "no forced COW break", "a308c71bf1e6")

    def can_follow_write_pte(self, m, vma, pte, flags):
        """5535be309971 (6.0): FOLL_FORCE may write through a read-only PTE only
        into a private anonymous page that is already exclusive: COW was broken.
        This replaced FOLL_COW and closed CVE-2022-2590.  (5.19.0 itself still had
        the FOLL_COW rule; the fix was backported to 5.19-stable.)"""
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

    def gup_must_unshare(self, m, vma, pfn, flags):
        """a7f226604170 (5.19): a read-only FOLL_PIN on an anonymous page that is
        not exclusive unshares it first (FAULT_FLAG_UNSHARE, c89357e27f20).
        84209e87c696 (6.2): a R/O FOLL_LONGTERM pin in a COW mapping also unshares
        page-cache and zero pages.  FOLL_GET never unshares."""
        if not flags.pin or flags.write:
            return Decision(False, "not a read-only pin → no unshare", "a7f226604170")
        page = m.page(pfn)
        if page.zero or not page.anon:
            if flags.longterm and vma is not None and vma.is_cow_mapping:
                return Decision(True, "R/O long-term pin of a non-anon page in a COW mapping → unshare", "84209e87c696")
            return Decision(False, "non-anon page → no unshare", "84209e87c696")
        if page.anon_exclusive:
            return Decision(False, "exclusive → pin as is", "a7f226604170")
        return Decision(True, "possibly shared anon page → unshare before pinning", "a7f226604170")

    def pin_sets_has_pinned(self, flags):
        """Any FOLL_PIN marks the mm (008cfe4418b3; MMF_HAS_PINNED since a458b76a4171)."""
        return Decision(True, "FOLL_PIN sets MMF_HAS_PINNED", "a458b76a4171")

    def reclaim_keeps_pinned(self, m, pfn):
        """feb889fb40fa: pinned pages are kept out of the swap cache.  The
        reference marks its survival in 6.x UNVERIFIED; shrink_folio_list in
        6.x source still has `if (folio_maybe_dma_pinned(folio)) goto keep_locked;`."""
        if self.maybe_dma_pinned(m.page(pfn)):
            return Decision(True, "page_maybe_dma_pinned → kept out of swap cache", "feb889fb40fa")
        return Decision(False, "not pinned → may enter the swap cache", "feb889fb40fa")

    def unmap_may_share(self, m, pfn):
        """6c287605fd56: try_to_unmap must clear exclusivity to unmap
        (page_try_share_anon_rmap), which fails while the page may be pinned."""
        if self.maybe_dma_pinned(m.page(pfn)):
            return Decision(False, "exclusive and maybe pinned → unmap fails", "6c287605fd56")
        return Decision(True, "exclusive, not pinned → swap entry remembers exclusivity", "1493a1913e34")

    def swapin_free_swapcache(self, m, pfn, write):
        """c145e0b47c77 (5.18): on a write fault, drop the swap cache when the
        fault may be the sole user (page_count == 2: cache + the fault's own)."""
        page = m.page(pfn)
        if write and not page.ksm and page.refcount == 2:
            return Decision(True, "write fault, only the swap cache holds it → try_to_free_swap", "c145e0b47c77")
        return Decision(False, "keep the swap cache", "c145e0b47c77")

    def swapin_exclusive(self, m, pte, pfn):
        """1493a1913e34: the swap PTE remembers exclusivity; otherwise the page is
        exclusive only when no one else holds it (c145e0b47c77)."""
        page = m.page(pfn)
        if page.ksm:
            return Decision(False, "KSM page → read-only", "1493a1913e34")
        if pte.swp_exclusive:
            return Decision(True, "pte_swp_exclusive → exclusive", "1493a1913e34")
        if page.refcount == 1:
            return Decision(True, "refcount 1 → exclusive", "c145e0b47c77")
        return Decision(False, f"refcount {page.refcount}: maybe shared → mapped read-only", "1493a1913e34")

    def mprotect_upgrade(self, m, vma, pte):
        """64fe24a3e05e (6.0): can_change_pte_writable: a private anonymous page
        that is exclusive becomes writable at once; shared mappings need a dirty PTE."""
        if not vma.write:
            return Decision(False, "VM_WRITE clear", "64fe24a3e05e")
        if vma.shared:
            return Decision(pte.dirty, "shared mapping: writable iff dirty", "64fe24a3e05e")
        page = m.page(pte.page)
        if page.anon and not page.zero and page.anon_exclusive:
            return Decision(True, "exclusive anon page → writable now", "64fe24a3e05e")
        return Decision(False, "not an exclusive anon page → stays read-only", "64fe24a3e05e")
