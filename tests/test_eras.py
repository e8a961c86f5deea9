"""Every rule an era overrides flips a decision against its parent era.

Each case builds a real state by running a small scenario, then asks the
parent and the child backend the same question on that same state.
"""

from __future__ import annotations

import pytest

from cowdsl.kernel.spec import check as check_spec
from cowdsl.kernel.spec import resolve
from cowdsl.load import load_text
from cowdsl.run import run
from cowdsl.semantics import registry
from cowdsl.semantics.backend import RULES
from cowdsl.semantics.machine import Machine
from cowdsl.semantics.mm.gup import Foll


def state_after(src: str, backend: str = "anon-exclusive"):
    return run(load_text(src, "era.cow"), backend).final


def ask(backend: str, state, rule: str, *args):
    """The decision `backend` takes for `rule` on a fresh copy of `state`."""
    b = registry.get(backend)
    m = Machine(state)
    return getattr(b, rule)(m, *args)


def pte_of(state, proc, mapping, idx=0):
    return state.mm(proc).vma(mapping).ptes[idx]


def vma_of(state, proc, mapping):
    return state.mm(proc).vma(mapping)


FORKED = """
process P
P: mmap(a, anon, private, rw)
P: write(a, 1)
P: fork() as C
assert true
"""

PINNED = """
process P
P: mmap(a, anon, private, rw)
P: write(a, 1)
P: pin(a, write, longterm) as mr
assert true
"""

GOT = """
process P
P: mmap(a, anon, private, rw)
P: write(a, 1)
P: gup(a, read) as r
assert true
"""


def test_gup_cow_overrides_gup_break_cow():
    st = state_after(FORKED, "mapcount")
    vma = vma_of(st, "P", "a")
    assert not ask("mapcount", st, "gup_break_cow", vma, Foll())
    assert ask("gup-cow", st, "gup_break_cow", vma, Foll())
    assert ask("gup-cow", st, "gup_break_cow", vma, Foll()).commit == "17839856fd58"


def test_gup_cow_overrides_can_follow_write_pte():
    # A dirty read-only PTE after a COW in a !VM_WRITE vma: 5.8 follows it without FOLL_FORCE.
    st = state_after(FORKED, "mapcount")
    vma = vma_of(st, "P", "a")
    pte = pte_of(st, "P", "a")
    flags = Foll(write=True, cow=True)
    assert not pte.write and pte.dirty
    assert not ask("mapcount", st, "can_follow_write_pte", vma, pte, flags)
    assert ask("gup-cow", st, "can_follow_write_pte", vma, pte, flags)


def test_refcount_overrides_wp_can_reuse():
    # A pinned page mapped once: mapcount 1 → reuse in ≤5.8, refcount 1025 → copy in 5.9.
    st = state_after(PINNED, "mapcount")
    pfn = pte_of(st, "P", "a").page
    assert ask("gup-cow", st, "wp_can_reuse", pfn)
    assert not ask("refcount", st, "wp_can_reuse", pfn)


def test_refcount_overrides_gup_break_cow_and_can_follow_write_pte():
    st = state_after(FORKED, "mapcount")
    vma, pte = vma_of(st, "P", "a"), pte_of(st, "P", "a")
    assert ask("gup-cow", st, "gup_break_cow", vma, Foll())
    assert not ask("refcount", st, "gup_break_cow", vma, Foll())
    flags = Foll(write=True, cow=True)
    assert ask("gup-cow", st, "can_follow_write_pte", vma, pte, flags)
    assert not ask("refcount", st, "can_follow_write_pte", vma, pte, flags)


def test_early_cow_overrides_fork_copy_anon():
    st = state_after(PINNED, "early-cow")
    pfn = pte_of(st, "P", "a").page
    assert st.mm("P").has_pinned
    assert not ask("refcount", st, "fork_copy_anon", "P", pfn)
    d = ask("early-cow", st, "fork_copy_anon", "P", pfn)
    assert d and d.commit == "70e806e4e645"


def test_early_cow_overrides_pin_sets_has_pinned_and_its_option():
    assert not ask("refcount", None, "pin_sets_has_pinned", Foll(pin=True)) if False else True
    b_old, b_new = registry.get("refcount"), registry.get("early-cow")
    short = Foll(pin=True)
    assert not b_old.pin_sets_has_pinned(short)
    assert b_new.pin_sets_has_pinned(short)
    narrow = registry.get("early-cow:pin_scope=longterm")
    assert not narrow.pin_sets_has_pinned(short)
    assert narrow.pin_sets_has_pinned(Foll(pin=True, longterm=True))


def test_early_cow_overrides_reclaim_keeps_pinned_and_its_option():
    st = state_after(PINNED, "early-cow")
    pfn = pte_of(st, "P", "a").page
    assert not ask("refcount", st, "reclaim_keeps_pinned", pfn)
    assert ask("early-cow", st, "reclaim_keeps_pinned", pfn).commit == "feb889fb40fa"
    assert not ask("early-cow:swap_pin_check=off", st, "reclaim_keeps_pinned", pfn)


def test_early_cow_overrides_device_exclusive_rules_and_options():
    assert not registry.get("refcount").has_device_exclusive()
    assert registry.get("early-cow").has_device_exclusive().commit == "b756a3b5e7ea"
    assert not registry.get("early-cow:device_exclusive=off").has_device_exclusive()
    assert registry.get("early-cow").fork_restores_device_exclusive()
    assert not registry.get("early-cow:devexcl_fork=copy").fork_restores_device_exclusive()


def test_early_cow_hugetlb_fork_copy_option():
    st = state_after(PINNED.replace("rw)", "rw, hugetlb)"), "early-cow")
    pfn = pte_of(st, "P", "a").page
    assert ask("early-cow", st, "fork_copy_anon", "P", pfn)
    assert not ask("early-cow:hugetlb_fork_copy=off", st, "fork_copy_anon", "P", pfn)


SWAPPED_IN = """
process P
P: mmap(a, anon, private, rw)
P: write(a, 1)
reclaim: swapout(P.a)
P: read(a)
assert true
"""

# A swapped page that a pipe also holds.
SPLICED_THEN_SWAPPED = """
process P
pipe X
P: mmap(a, anon, private, rw)
P: write(a, 1)
P: vmsplice(a, X)
reclaim: swapout(P.a)
assert true
"""


def swap_cache_page(state, pte) -> int:
    """The live page in the swap cache for the swap entry ``pte``."""
    return next(i for i, p in enumerate(state.pages) if p.swapcache == pte.slot and not p.freed)


def test_cow_fixes_1_overrides_wp_can_reuse():
    # After a read swap-in the page sits in the swap cache: refcount 2, no swap entry left.
    st = state_after(SWAPPED_IN, "early-cow")
    pfn = pte_of(st, "P", "a").page
    assert st.pages[pfn].swapcache >= 0 and st.pages[pfn].refcount == 2
    assert not ask("early-cow", st, "wp_can_reuse", pfn)
    assert ask("cow-fixes-1", st, "wp_can_reuse", pfn)


def test_cow_fixes_1_overrides_thp_wp_can_reuse():
    st = state_after(GOT.replace("rw)", "rw, thp)"), "early-cow")
    pfn = pte_of(st, "P", "a").page
    assert st.pages[pfn].mapcount == 1 and st.pages[pfn].refcount == 2
    assert ask("early-cow", st, "thp_wp_can_reuse", pfn)
    assert not ask("cow-fixes-1", st, "thp_wp_can_reuse", pfn)


def test_cow_fixes_1_overrides_swapin_rules():
    st = state_after(SWAPPED_IN, "early-cow")
    pfn = pte_of(st, "P", "a").page
    assert not ask("early-cow", st, "swapin_free_swapcache", pfn, True)
    assert ask("cow-fixes-1", st, "swapin_free_swapcache", pfn, True)
    # A swapped page that a pipe also holds: mapcount+swapcount says reuse, the refcount says no.
    st = state_after(SPLICED_THEN_SWAPPED, "early-cow")
    pte = pte_of(st, "P", "a")
    cached = swap_cache_page(st, pte)
    m_old, m_new = Machine(st), Machine(st)
    # do_swap_page's own reference and swap_free, as the mechanism does before asking
    for m in (m_old, m_new):
        m.get_page(cached)
        m.update_slot(pte.slot, count=m.slots[pte.slot].count - 1)
    assert registry.get("early-cow").swapin_exclusive(m_old, pte, cached, True)
    assert not registry.get("cow-fixes-1").swapin_exclusive(m_new, pte, cached, True)


def test_anon_exclusive_overrides_wp_can_reuse_and_thp():
    for kind, rule in (("small", "wp_can_reuse"), ("thp", "thp_wp_can_reuse")):
        st = state_after(GOT.replace("rw)", f"rw, {kind})"), "anon-exclusive")
        pfn = pte_of(st, "P", "a").page
        assert st.pages[pfn].anon_exclusive and st.pages[pfn].refcount == 2
        assert not ask("cow-fixes-1", st, rule, pfn)
        assert ask("anon-exclusive", st, rule, pfn).commit == "6c287605fd56"


def test_anon_exclusive_overrides_fork_copy_anon():
    # 1024 FOLL_GET references look pinned (page_maybe_dma_pinned); a shared page is never copied in 5.19+.
    st = state_after(FORKED, "anon-exclusive")
    pfn = pte_of(st, "P", "a").page
    m = Machine(st)
    m.update_page(pfn, refcount=m.page(pfn).refcount + 1024)
    m.update_mm("P", has_pinned=True)
    st = m.freeze()
    assert ask("cow-fixes-1", st, "fork_copy_anon", "P", pfn)
    assert not ask("anon-exclusive", st, "fork_copy_anon", "P", pfn)


def test_anon_exclusive_overrides_gup_must_unshare():
    st = state_after(FORKED, "anon-exclusive")
    vma, pfn = vma_of(st, "P", "a"), pte_of(st, "P", "a").page
    ro_pin = Foll(pin=True)
    assert not ask("cow-fixes-1", st, "gup_must_unshare", vma, pfn, ro_pin)
    assert ask("anon-exclusive", st, "gup_must_unshare", vma, pfn, ro_pin).commit == "a7f226604170"
    assert not ask("anon-exclusive", st, "gup_must_unshare", vma, pfn, Foll())  # FOLL_GET never


def test_anon_exclusive_overrides_can_follow_write_pte_and_foll_force_option():
    src = """
process P
file F = [5]
P: mmap(m, file=F, private, ro)
P: proc_mem_write(m, 9)
assert true
"""
    st = state_after(src, "anon-exclusive")
    vma, pte = vma_of(st, "P", "m"), pte_of(st, "P", "m")
    assert not pte.write and st.pages[pte.page].anon_exclusive
    forced = Foll(write=True, force=True)  # no FOLL_COW: 6.0 does not need it
    assert not ask("cow-fixes-1", st, "can_follow_write_pte", vma, pte, forced)
    assert ask("anon-exclusive", st, "can_follow_write_pte", vma, pte, forced).commit == "5535be309971"
    assert not ask("anon-exclusive:foll_force=foll_cow", st, "can_follow_write_pte", vma, pte, forced)


def test_anon_exclusive_overrides_unmap_may_share():
    st = state_after(PINNED, "anon-exclusive")
    pfn = pte_of(st, "P", "a").page
    assert ask("cow-fixes-1", st, "unmap_may_share", pfn)
    assert not ask("anon-exclusive", st, "unmap_may_share", pfn)


def test_anon_exclusive_overrides_swapin_exclusive():
    st = state_after(SPLICED_THEN_SWAPPED, "anon-exclusive")
    pte = pte_of(st, "P", "a")
    assert pte.swp_exclusive
    cached = swap_cache_page(st, pte)
    assert not ask("cow-fixes-1", st, "swapin_exclusive", pte, cached, False)
    assert ask("anon-exclusive", st, "swapin_exclusive", pte, cached, False).commit == "1493a1913e34"


def test_anon_exclusive_overrides_mprotect_upgrade_and_option():
    st = state_after(PINNED + "", "anon-exclusive")
    m = Machine(st)
    vma = vma_of(st, "P", "a")
    pte = pte_of(st, "P", "a")
    from attrs import evolve

    ro = evolve(pte, write=False)
    assert not ask("cow-fixes-1", st, "mprotect_upgrade", vma, ro)
    assert ask("anon-exclusive", st, "mprotect_upgrade", vma, ro).commit == "64fe24a3e05e"  # a dirty PTE
    clean = evolve(ro, dirty=False)
    assert ask("anon-exclusive", st, "mprotect_upgrade", vma, clean).commit == "v6.2 mm/mprotect.c can_change_pte_writable"
    assert not ask("anon-exclusive:mprotect=dirty", st, "mprotect_upgrade", vma, clean)  # 6.0-6.1
    assert not ask("anon-exclusive:mprotect=fault", st, "mprotect_upgrade", vma, ro)
    del m


def test_mapcount_foll_cow_option_is_the_pre_4_9_rule():
    # Before 19be0eaffa3a, GUP dropped FOLL_WRITE once it had broken COW: the retry
    # took whatever page was mapped (the Dirty COW bug); 4.9+ keeps FOLL_WRITE and checks FOLL_COW.
    after_cow = Foll(write=True, force=True, cow=True)
    assert registry.get("mapcount:foll_cow=off").foll_write_dropped(after_cow)
    assert not registry.get("mapcount").foll_write_dropped(after_cow)
    assert not registry.get("mapcount:foll_cow=off").foll_write_dropped(Foll(write=True, force=True))


def test_early_cow_overrides_has_write_protect_seq():
    assert not registry.get("refcount").has_write_protect_seq()
    assert registry.get("early-cow").has_write_protect_seq().commit == "57efa1fe5957"
    assert not registry.get("early-cow:wp_seq=off").has_write_protect_seq()


def test_anon_exclusive_overrides_check_vma_flags():
    src = """
process P
file F = [1]
P: mmap(m, shared, rw, file=F)
assert true
"""
    st = state_after(src, "anon-exclusive")
    vma = vma_of(st, "P", "m")
    longterm = Foll(write=True, pin=True, longterm=True)
    assert ask("cow-fixes-1", st, "check_vma_flags", vma, longterm)
    assert not ask("anon-exclusive", st, "check_vma_flags", vma, longterm)
    assert ask("anon-exclusive:longterm_file_write=allow", st, "check_vma_flags", vma, longterm)


# Every (era, rule) override above is listed here; the test below checks that no
# override goes untested and no listed one is stale.
TESTED_OVERRIDES = {
    "gup-cow": {"gup_break_cow", "can_follow_write_pte"},
    "refcount": {"wp_can_reuse", "gup_break_cow", "can_follow_write_pte"},
    "early-cow": {"fork_copy_anon", "pin_sets_has_pinned", "reclaim_keeps_pinned",
                  "has_device_exclusive", "fork_restores_device_exclusive", "has_write_protect_seq"},
    "cow-fixes-1": {"wp_can_reuse", "thp_wp_can_reuse", "swapin_free_swapcache", "swapin_exclusive"},
    "anon-exclusive": {
        "wp_can_reuse",
        "thp_wp_can_reuse",
        "fork_copy_anon",
        "can_follow_write_pte",
        "gup_must_unshare",
        "unmap_may_share",
        "swapin_exclusive",
        "mprotect_upgrade",
        "check_vma_flags",
    },
}


def test_every_override_is_tested():
    for name in registry.names():
        cls = registry.BACKENDS[name]
        if name == "mapcount":
            assert set(cls.overridden_rules()) == set(RULES), "the root era defines every rule"
            continue
        assert set(cls.overridden_rules()) == TESTED_OVERRIDES[name], name


def test_family_line():
    order = ["mapcount", "gup-cow", "refcount", "early-cow", "cow-fixes-1", "anon-exclusive"]
    assert registry.names()[:6] == order
    for parent, child in zip(order, order[1:]):
        assert registry.BACKENDS[child].__mro__[1] is registry.BACKENDS[parent]


def test_every_rule_docstring_cites_a_commit_or_source():
    import re

    for name in registry.names():
        cls = registry.BACKENDS[name]
        for rule in cls.overridden_rules():
            doc = getattr(cls, rule).__doc__ or ""
            assert re.search(r"\b[0-9a-f]{12}\b|v5\.7|UNVERIFIED|hugetlb_cow|§", doc), (name, rule)


@pytest.mark.parametrize(
    "version, spec",
    [
        ("4.4", "mapcount:foll_cow=off:ksm_reuse=off:ksm_use_zero_pages=off:pvm_pin=get"),
        ("4.19", "mapcount:ksm_reuse=off:pvm_pin=get"),
        ("4.19.222", "gup-cow:ksm_reuse=off:pvm_pin=get:thp_wp=whole"),  # 17839856fd58 in 4.19.189
        ("5.4.214", "gup-cow:pvm_pin=get:thp_wp=whole"),
        ("5.7", "mapcount"),
        ("5.7.14", "gup-cow:thp_wp=whole"),
        ("5.8", "gup-cow"),
        ("5.9-rc", "refcount"),
        ("5.9-rc4", "refcount"),
        ("5.9-rc6", "refcount"),
        ("5.9-rc7", "early-cow:device_exclusive=off:hugetlb_fork_copy=off:swap_pin_check=off:wp_seq=off"),
        ("5.9", "early-cow:device_exclusive=off:hugetlb_fork_copy=off:swap_pin_check=off:wp_seq=off"),
        # mainline 5.10 has neither backport; 5.10.4 has write_protect_seq, 5.10.9 the swap-cache check
        ("5.10", "early-cow:device_exclusive=off:hugetlb_fork_copy=off:swap_pin_check=off:wp_seq=off"),
        ("5.10.3", "early-cow:device_exclusive=off:hugetlb_fork_copy=off:swap_pin_check=off:wp_seq=off"),
        ("5.10.4", "early-cow:device_exclusive=off:hugetlb_fork_copy=off:swap_pin_check=off"),
        ("5.10.9", "early-cow:device_exclusive=off:hugetlb_fork_copy=off"),
        ("5.10.198", "early-cow:device_exclusive=off:fork_anon_only=on:hugetlb_fork_copy=off"),
        ("5.11", "early-cow:device_exclusive=off:hugetlb_fork_copy=off"),
        ("5.12", "early-cow:device_exclusive=off"),
        ("5.15", "early-cow"),
        ("5.15.173", "early-cow:fork_anon_only=on"),
        ("5.18", "cow-fixes-1"),
        ("5.19", "anon-exclusive:collapse_errno=einval:collapse_ro=refuse:devexcl=range:foll_force=foll_cow:io_uring_vma_check=on"
                 ":ksm_break=write:ksm_exec_merge_any=drop:ksm_execve=off:ksm_fork_counters=copy"
                 ":ksm_merge_any=off:ksm_zero_unshare=off:large_folio_reuse=off:longterm_file_write=allow"
                 ":longterm_unshare=anon:madv_collapse=off:mprotect=fault:odirect_pin=get:swapin_writable=off"
                 ":unmap_lru_drain=on"),
        ("6.1", "anon-exclusive:collapse_errno=einval:collapse_ro=refuse:devexcl=range:follow_page_protnone=skip"
                ":io_uring_vma_check=on:ksm_break=write"
                ":ksm_exec_merge_any=drop:ksm_execve=off:ksm_fork_counters=copy:ksm_merge_any=off"
                ":ksm_zero_unshare=off:large_folio_reuse=off:longterm_file_write=allow:longterm_unshare=anon"
                ":mprotect=dirty:odirect_pin=get:swapin_writable=off:unmap_lru_drain=on"),
        ("6.1.2", "anon-exclusive:collapse_errno=einval:collapse_ro=refuse:devexcl=range:follow_page_protnone=skip"
                  ":hugetlb_force=refuse:io_uring_vma_check=on"
                  ":ksm_break=write:ksm_exec_merge_any=drop:ksm_execve=off:ksm_fork_counters=copy"
                  ":ksm_merge_any=off:ksm_zero_unshare=off:large_folio_reuse=off:longterm_file_write=allow"
                  ":longterm_unshare=anon:mprotect=dirty:odirect_pin=get:swapin_writable=off:unmap_lru_drain=on"),
        ("6.2", "anon-exclusive:collapse_ro=refuse:devexcl=range:follow_page_protnone=skip:hugetlb_force=refuse"
                ":io_uring_vma_check=on"
                ":ksm_exec_merge_any=drop:ksm_execve=off:ksm_fork_counters=copy:ksm_merge_any=off:ksm_zero_unshare=off"
                ":large_folio_reuse=off:longterm_file_write=allow:odirect_pin=get:swapin_writable=off"
                ":unmap_lru_drain=on"),
        ("6.13.7", "anon-exclusive:collapse_ro=refuse:devexcl=range:hugetlb_force=refuse:ksm_fork_counters=copy"
                   ":large_folio_reuse=off:unmap_lru_drain=on"),
        ("6.14", "anon-exclusive:collapse_ro=refuse:devexcl=range:ksm_fork_counters=copy:large_folio_reuse=off"),
        ("6.18", "anon-exclusive"),
        ("modern", "anon-exclusive"),
    ],
)
def test_version_specs(version, spec):
    assert resolve(version).name == spec


@pytest.mark.parametrize(
    "spec, message",
    [
        ("early-cow:pin_scope=long", "option `pin_scope` of early-cow takes any or longterm, not `long`"),
        ("early-cow:pinscope=longterm", "unknown option `pinscope` for early-cow"),
        ("erly-cow", "unknown backend `erly-cow`"),
        ("early-cow:pin_scope", "option `pin_scope` needs a value"),
        # options are scoped to the eras where they change an answer
        ("anon-exclusive:hugetlb_fork_copy=off", "option `hugetlb_fork_copy` does not apply to anon-exclusive"),
        ("cow-fixes-1:wp_seq=off", "option `wp_seq` does not apply to cow-fixes-1"),
        ("mapcount:pin_bias=off", "option `pin_bias` does not apply to mapcount"),
        ("6.5:wp_seq=off", "option `wp_seq` does not apply to 6.5 (anon-exclusive)"),
        ("native:wp_seq=off", "`native` takes no options"),
    ],
)
def test_bad_specs_are_rejected_with_a_message(spec, message):
    err = check_spec(spec)
    assert err is not None and err.message == message
    assert err.hint  # a suggestion or the list of options
