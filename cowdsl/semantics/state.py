"""The machine state: immutable and hashable, so an explorer can keep a visited set.

Names follow the kernel: a ``Page`` is a struct page (order-0), a ``Pte`` a
page-table entry, a ``Vma`` a vm_area_struct, an ``Mm`` an mm_struct.  Counters
are kept the way the kernel keeps them (refcount, mapcount, pincount) rather
than derived, so that the model can get them wrong the way the kernel could, and
the invariant checks can catch it.
"""

from __future__ import annotations

from attrs import evolve, frozen

GUP_PIN_COUNTING_BIAS = 1024  # FOLL_PIN adds this to an order-0 page's refcount
THP_SIBLINGS = 511  # the other subpages of a PTE-mapped 2 MiB THP, each holding a reference

# Page kinds.  A huge page is one value in the model; a PTE-mapped THP is seen
# through one of its subpages, whose folio refcount also counts the siblings.
SMALL, THP, PTE_THP, HUGETLB = "small", "thp", "pte_thp", "hugetlb"

ZERO_PFN = 0  # the shared zero page is always page 0

# A page's content: ``data``, the 8-byte word at offset 0, and ``words``, the other
# words that are not zero, as (byte offset, value) sorted by offset.  A scenario that
# names no offset never makes ``words``, so it runs as with one value per page.
Words = tuple[tuple[int, int], ...]


@frozen(cache_hash=True)
class Page:
    data: int = 0  # the word at offset 0; the others are in ``words``
    refcount: int = 0
    mapcount: int = 0
    pincount: int = 0  # exact FOLL_PIN count (the kernel keeps it for large folios)
    anon: bool = True
    anon_exclusive: bool = False  # PG_anon_exclusive (5.19+)
    swapcache: int = -1  # swap slot while in the swap cache
    ksm: bool = False
    file: str | None = None  # page-cache page of this file ...
    index: int = 0  # ... at this page index
    zero: bool = False
    freed: bool = False
    kind: str = SMALL
    # A PTE-mapped THP is followed through its head page: the references its tail
    # pages' PTEs hold (THP_SIBLINGS after __split_huge_pmd, 0 once they are zapped).
    siblings: int = 0
    # The task whose CPU's lru_add batch holds the page, with one reference of its own
    # (counted in refcount), until that batch is drained onto the LRU; None: on the LRU,
    # or never an LRU page here (mm/swap.c; cowdsl.semantics.mm.swap).
    lru_batch: str | None = None
    words: Words = ()  # the nonzero words past offset 0 (see Words)
    # a ZONE_DEVICE page of MEMORY_DEVICE_PRIVATE (test_hmm's device memory): the CPU
    # cannot map it; only device-private entries name it (cowdsl.semantics.mm.device_private)
    device: bool = False

    @property
    def compound(self) -> bool:
        return self.kind != SMALL


def word(x: Page | Slot, offset: int) -> int:
    """The 8-byte word at byte ``offset`` of a page's (or a swap slot's) content."""
    if offset == 0:
        return x.data
    for off, value in x.words:
        if off == offset:
            return value
    return 0


def stored(x: Page | Slot, offset: int, value: int) -> dict[str, object]:
    """The content fields (``data``, ``words``) of ``x`` with ``value`` stored at ``offset``."""
    if offset == 0:
        return {"data": value, "words": x.words}
    rest = [w for w in x.words if w[0] != offset] + ([(offset, value)] if value else [])
    return {"data": x.data, "words": tuple(sorted(rest))}


def content(x: Page | Slot) -> dict[str, object]:
    """Every word of ``x``: what a copy of the page (COW, swap, migration, collapse) takes."""
    return {"data": x.data, "words": x.words}


def same_content(a: Page | Slot, b: Page | Slot) -> bool:
    """Equal in every word (what KSM's memcmp_pages asks)."""
    return a.data == b.data and a.words == b.words


def at(offset: int) -> str:
    """`` at +8`` for a word past offset 0, for a trace line; nothing for word 0."""
    return f" at +{offset}" if offset else ""


def content_text(x: Page | Slot) -> str:
    """``1``, or ``1 (+8: 2)`` when other words are not zero: the value reports show."""
    if not x.words:
        return str(x.data)
    return f"{x.data} (" + ", ".join(f"+{off}: {v}" for off, v in x.words) + ")"


@frozen(cache_hash=True)
class Pte:
    """A present entry (``page`` >= 0), a swap entry (``slot`` >= 0), a
    device-exclusive entry (``devexcl``: not present, still names its page), a
    migration entry (``migration``: not present, names the page being migrated;
    ``write`` is a writable entry, ``swp_exclusive`` a readable-exclusive one), or a
    device-private entry (``devpriv``: not present, names a device page)."""

    page: int = -1
    write: bool = False
    dirty: bool = False
    slot: int = -1
    swp_exclusive: bool = False  # pte_swp_exclusive (5.19+)
    devexcl: bool = False  # SWP_DEVICE_EXCLUSIVE_{READ,WRITE} (5.14+); `write` says which
    migration: bool = False  # SWP_MIGRATION_{READ,WRITE} (and READ_EXCLUSIVE, 5.19+): faults wait on it
    devpriv: bool = False  # SWP_DEVICE_{READ,WRITE}: a device-private page; a CPU access migrates it back

    @property
    def present(self) -> bool:
        return self.page >= 0 and not self.devexcl and not self.migration and not self.devpriv

    @property
    def swap(self) -> bool:
        return self.slot >= 0


@frozen(cache_hash=True)
class Part:
    """One page's share of a mapping that a partial munmap, mprotect or madvise split
    (split_vma, mm/mmap.c): the flags of the VMA that covers that page now."""

    mapped: bool = True  # False: munmap()ed, a hole in the mapping
    write: bool = False
    dontfork: bool = False
    wipeonfork: bool = False
    read: bool = True


@frozen(cache_hash=True)
class Vma:
    name: str
    anon: bool
    shared: bool
    write: bool  # VM_WRITE
    maywrite: bool  # VM_MAYWRITE
    file: str | None
    ptes: tuple[Pte | None, ...]
    dontfork: bool = False  # VM_DONTCOPY
    wipeonfork: bool = False  # VM_WIPEONFORK
    kind: str = SMALL  # the kind of page a fault allocates here
    shmem: bool = False  # MAP_SHARED|MAP_ANONYMOUS: page cache without dirty tracking
    anon_vma: bool = False  # an anonymous page was ever faulted in here (fork copies PTEs only then)
    mergeable: bool | None = None  # VM_MERGEABLE: set by MADV_MERGEABLE, cleared by MADV_UNMERGEABLE; None: never advised
    pgoff: int = 0  # vm_pgoff: the file page mapped at page 0 (a part moved by mremap starts further in)
    read: bool = True  # VM_READ (VM_MAYREAD always): clear after mprotect(PROT_NONE)
    # Per page, once a partial op split the mapping into several VMAs (empty: one VMA);
    # the scalar flags above then hold for no page in particular: read them through at().
    parts: tuple[Part, ...] = ()

    @property
    def is_cow_mapping(self) -> bool:
        """is_cow_mapping(): private and may be written."""
        return not self.shared and self.maywrite

    def at(self, idx: int) -> Vma | None:
        """The VMA that covers page ``idx`` of the mapping (None: unmapped there, or past
        its end: a device's mirror of a page that mremap shrank away)."""
        if idx >= len(self.ptes):
            return None
        if not self.parts:
            return self
        p = self.parts[idx]
        return self._whole(p) if p.mapped else None

    def _whole(self, p: Part) -> Vma:
        """This mapping as one VMA with part ``p``'s flags."""
        return evolve(self, write=p.write, read=p.read, dontfork=p.dontfork, wipeonfork=p.wipeonfork, parts=())

    def part(self, idx: int) -> Part:
        if self.parts:
            return self.parts[idx]
        return Part(True, self.write, self.dontfork, self.wipeonfork, self.read)

    def with_parts(self, first: int, last: int, **flags: bool) -> Vma:
        """Pages first..last get these flags: split_vma where they differ from their
        neighbours', and vma_merge back into one VMA when every page agrees again."""
        n = len(self.ptes)
        parts = tuple(evolve(self.part(i), **flags) if first <= i <= last else self.part(i) for i in range(n))
        if len(set(parts)) == 1 and parts[0].mapped:
            return self._whole(parts[0])
        return evolve(self, parts=parts)

    @property
    def unmapped(self) -> bool:
        """Every page munmap()ed: no VMA left."""
        return bool(self.parts) and not any(p.mapped for p in self.parts)


@frozen(cache_hash=True)
class Mm:
    name: str
    vmas: tuple[Vma, ...] = ()
    has_pinned: bool = False  # mm->has_pinned, later MMF_HAS_PINNED
    merge_any: bool = False  # MMF_VM_MERGE_ANY: prctl(PR_SET_MEMORY_MERGE, 1) (6.4+), inherited by fork
    # MMF_VM_MERGEABLE: __ksm_enter gave the mm an mm_slot on ksm_mm_head, so ksmd scans it
    # (MADV_MERGEABLE, PR_SET_MEMORY_MERGE=1, ksm_fork from such a parent, ksm_execve 6.10+)
    ksm_entered: bool = False
    # mm->ksm_merging_pages (5.19+): +1 as each rmap_item joins the stable tree, -1 as a scan takes it
    # out; fork copies the number until ksm_fork resets it (6.18).  ksm_stable: those rmap_items,
    # as (mapping, index): the child of a fork has none, whatever number it was given
    ksm_merging_pages: int = 0
    ksm_stable: tuple[tuple[str, int], ...] = ()
    alive: bool = True
    segv: bool = False
    faults: int = 0
    cow_copies: int = 0
    mmap_lock: int = 0  # 0 free, n > 0 readers, -1 a writer
    ptl: bool = False  # the page-table lock is held across a preemption point (fork)
    wp_seq: int = 0  # write_protect_seq (5.11+): odd while fork copies page tables

    def vma(self, name: str) -> Vma | None:
        for v in self.vmas:
            if v.name == name:
                return v
        return None


@frozen(cache_hash=True)
class Handle:
    """A GUP result held by a driver: a FOLL_PIN pin or a FOLL_GET reference.  The device
    reads and writes the 8-byte word at ``offset`` of the page (the address it was taken at)."""

    name: str
    pin: bool  # FOLL_PIN, else FOLL_GET
    page: int
    write: bool
    longterm: bool
    owner: str
    live: bool = True
    refs: int = 1  # FOLL_GET references held (gup count=N)
    device: bool = False  # device-exclusive access (make_device_exclusive), not a GUP reference
    offset: int = 0  # the byte offset in the page of the word its DMA moves
    # a device's mirror of one address (mm, mapping, index): test_hmm's entry for it
    mirror: tuple[str, str, int] | None = None
    refault: bool = False  # an MMU notifier dropped the mirror's entry: the next access faults (hmm_range_fault)


@frozen(cache_hash=True)
class Slot:
    """A swap slot: the data written out (every word of the page) and the swap count
    (swap PTEs referring to it)."""

    data: int = 0
    count: int = 0
    free: bool = False
    words: Words = ()  # the nonzero words past offset 0 (see Words)


@frozen(cache_hash=True)
class Pipe:
    name: str
    bufs: tuple[int, ...] = ()  # pages referenced by the pipe, oldest first


@frozen(cache_hash=True)
class Outcome:
    """What a named step produced."""

    ok: bool = True
    value: int | None = None
    error: str | None = None


NOT_RUN = "not run: "  # an outcome's error that names the process it did not run in


def not_run(task: str | None, mm: Mm | None) -> str:
    """The error of a step whose process ``task`` is not there to run it (``mm``: its mm,
    if it was ever made).  It names the process: symmetry renames it there."""
    why = "was never created" if mm is None else "was killed by SIGSEGV" if mm.segv else "has exited"
    return f"{NOT_RUN}{task} {why}"


@frozen(cache_hash=True)
class State:
    mms: tuple[Mm, ...]
    pages: tuple[Page, ...]
    handles: tuple[Handle, ...] = ()
    slots: tuple[Slot, ...] = ()
    pipes: tuple[Pipe, ...] = ()
    files: tuple[tuple[str, tuple[int, ...]], ...] = ()  # file -> page-cache page per index
    file_kinds: tuple[tuple[str, str], ...] = ()  # files not on disk: shmem, memfd, hugetlbfs
    results: tuple[tuple[str, Outcome], ...] = ()

    def mm(self, name: str) -> Mm | None:
        for m in self.mms:
            if m.name == name:
                return m
        return None

    def handle(self, name: str) -> Handle | None:
        for h in self.handles:
            if h.name == name:
                return h
        return None

    def result(self, name: str) -> Outcome | None:
        for n, o in self.results:
            if n == name:
                return o
        return None

    def file_kind(self, file: str) -> str:
        return dict(self.file_kinds).get(file, "disk")

    def file_page(self, file: str, index: int) -> int:
        for f, pages in self.files:
            if f == file:
                return pages[index]
        raise KeyError(file)

