"""5.8: "gup: document and work around 'COW can break either way' issue"
(17839856fd58, reference §2).  GUP taking a page reference in a COW mapping
breaks COW first, so the page it returns belongs to the caller."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowdsl.semantics.eras.mapcount import Mapcount
from cowdsl.semantics.machine import Decision, Machine

if TYPE_CHECKING:
    from cowdsl.semantics.mm.gup import Foll
    from cowdsl.semantics.state import Pte, Vma


class GupCow(Mapcount):
    name = "gup-cow"

    def gup_break_cow(self, m: Machine, vma: Vma, flags: Foll) -> Decision:
        """17839856fd58: should_force_cow_break = is_cow_mapping && (FOLL_GET|FOLL_PIN) → FOLL_WRITE.
        GUP-fast then needs a writable PTE and falls back to the slow path."""
        if vma.is_cow_mapping:
            return Decision(True, "COW mapping: GUP breaks COW first (FOLL_WRITE)", "17839856fd58")
        return Decision(False, "not a COW mapping", "17839856fd58")

    def can_follow_write_pte(self, m: Machine, vma: Vma, pte: Pte, flags: Foll) -> Decision:
        """17839856fd58 dropped FOLL_FORCE from the check: pte_write || (FOLL_COW && pte_dirty)."""
        if pte.write:
            return Decision(True, "PTE writable", None)
        if flags.cow and pte.dirty:
            return Decision(True, "FOLL_COW and a dirty PTE → follow the private copy", "17839856fd58")
        return Decision(False, "PTE read-only → write fault", "17839856fd58")
