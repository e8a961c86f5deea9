"""One function per kernel concept that is read off a page or an entry.

The rules, the invariants, the judge's facts, the reports and DOT all ask
these, so a concept cannot drift apart between them: ``page_maybe_dma_pinned``
decides fork's early COW and reclaim's pin check, and is what
``maybe_pinned(X)`` shows.
"""

from __future__ import annotations

from cowdsl.semantics.state import GUP_PIN_COUNTING_BIAS, THP, Handle, Page, Pte, Vma


def pin_refs(page: Page) -> int:
    """What one FOLL_PIN adds to the refcount (try_grab_folio): the bias on an
    order-0 page, one reference on a large folio, which counts pins exactly."""
    return 1 if page.compound else GUP_PIN_COUNTING_BIAS


def page_maybe_dma_pinned(page: Page, *, pin_bias: bool = True) -> bool:
    """page_maybe_dma_pinned() / folio_maybe_dma_pinned() (include/linux/mm.h):
    a large folio reads its exact pincount; an order-0 page guesses from
    refcount >= GUP_PIN_COUNTING_BIAS, so 1024 ordinary references look pinned
    too.  ``pin_bias=False`` is the what-if where order-0 pages count exactly."""
    if page.zero:
        return False
    if page.compound or not pin_bias:
        return page.pincount > 0
    return page.refcount >= GUP_PIN_COUNTING_BIAS


def pinned(page: Page) -> bool:
    """The page holds FOLL_PIN pins (the exact count, which user space never sees)."""
    return page.pincount > 0


def exclusive(page: Page) -> bool:
    """PageAnonExclusive (5.19+): only one mm maps this anonymous page."""
    return page.anon_exclusive


def mapcount(page: Page) -> int:
    """page_mapcount(): how many page-table entries map the page."""
    return page.mapcount


def in_swapcache(page: Page) -> bool:
    """PageSwapCache."""
    return page.swapcache >= 0


def pte_writable(pte: Pte | None) -> bool:
    """pte_write() on a present entry (a device-exclusive entry is not present)."""
    return pte is not None and pte.present and pte.write


def pmd_mapped_file_thp(vma: Vma, page: Page) -> bool:
    """A page-cache THP (shmem, memfd) that a `thp` mapping maps by a PMD (do_set_pmd).
    Such a PMD is zapped, never remapped by PTEs, when it is split, and fork does not copy
    it (copy_huge_pmd); a mapping that a tail op left 4 KiB maps the head by a PTE."""
    return vma.kind == THP and page.kind == THP and not page.anon and not page.zero


def device_private_entry(pte: Pte | None) -> bool:
    """is_device_private_entry(): a non-present entry that names a device-private
    page (ZONE_DEVICE, MEMORY_DEVICE_PRIVATE); the CPU cannot map that page."""
    return pte is not None and pte.devpriv


def vma_is_accessible(vma: Vma | None, idx: int) -> bool:
    """vma_is_accessible() of the VMA covering page ``idx``: false for PROT_NONE (no VM_READ,
    VM_WRITE or VM_EXEC), whose present PTEs are pte_protnone: a load or store by the process
    faults (and is refused), GUP-fast leaves them to the slow path."""
    v = vma.at(idx) if vma is not None else None
    return v is not None and v.read


def mirror_refaults(h: Handle | None, write: bool) -> bool:
    """Whether a device's access through ``h`` goes through dmirror_fault →
    hmm_range_fault first: its mirror entry was dropped by an MMU notifier, or it is
    read-only and the device writes (dmirror_do_write -ENOENT)."""
    return h is not None and (h.refault or (write and h.device and h.live and not h.write))
