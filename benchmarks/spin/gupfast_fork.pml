/*
 * K GUP-fast pinner threads on M pages racing fork(), with or without
 * write_protect_seq: the race family of cowdsl's benchmarks/explore.py --vs-spin,
 * written as a Promela model for SPIN.  See README.md beside this file.
 *
 *   spin -a -DK=3 -DM=2 -DWP_SEQ=1 gupfast_fork.pml
 *   cc -O2 -DSAFETY -o pan pan.c && ./pan
 *
 * WP_SEQ=1: 5.11+ and 5.10.4+ (57efa1fe5957): no pin ends on a page the parent
 *           no longer maps; pan must report "errors: 0".
 * WP_SEQ=0: 5.9 and 5.10.0-5.10.3: a violation exists (for every K, M >= 1).
 *
 * One d_step is one micro-step of cowdsl's model (cowdsl/ops/gup.py GUP_FAST,
 * cowdsl/ops/fork.py FORK_PROGRAM): the kernel's preemption points, where
 * another CPU's work can come between.  The kernel is the 5.9-5.17 one
 * (cowdsl's early-cow era): fork copies a maybe-pinned page for the child
 * (70e806e4e645), do_wp_page reuses only at refcount 1 (09854ba94c6a).
 */

#ifndef K
#define K 2                     /* pinner threads; thread t pins page t % M */
#endif
#ifndef M
#define M 1                     /* pages of the private anonymous mapping */
#endif
#ifndef WP_SEQ
#define WP_SEQ 1                /* 57efa1fe5957: fork raises mm->write_protect_seq */
#endif

/* Page frames: M mapped at the start, at most one fork copy per PTE, one COW
 * copy per pinner's slow path and per parent write, a preallocation each. */
#define NP (4 * M + K + 1)
#define NONE 255

byte pte[M];                    /* the parent's PTE j: the page it maps */
bool ptew[M];                   /* ... and whether it is writable */
byte ref[NP];                   /* page_count: one per mapping, one per pin, the prealloc's */
byte pins[NP];                  /* the pin count page_maybe_dma_pinned reads (exact) */
bool has_pinned;                /* mm->has_pinned (008cfe4418b3), set by any FOLL_PIN */
byte wp_seq;                    /* mm->write_protect_seq: odd while fork copies */
bool mmap_wlocked;              /* fork holds mmap_lock for write */
byte pinned[K];                 /* the page pinner t holds when done */

hidden byte newpage;                /* scratch inside d_steps, not part of the state */

/* Allocate the lowest free page frame (a free frame has refcount 0). */
inline alloc_page(p) {
    p = 0;
    do
    :: p < NP && ref[p] != 0 -> p++
    :: else -> break
    od;
    assert(p < NP);
    ref[p] = 1
}

/* do_wp_page on the parent's PTE j, 5.9-5.17 (09854ba94c6a): reuse the page
 * only when nobody else holds it (refcount 1), else wp_page_copy. */
inline write_fault(j) {
    if
    :: ref[pte[j]] == 1 -> ptew[j] = true
    :: else ->
        alloc_page(newpage);
        ref[pte[j]]--;
        pte[j] = newpage;
        ptew[j] = true
    fi
}

/* fork(): dup_mmap and copy_page_range of the one COW mapping (5.10 mm/memory.c). */
proctype Fork() {
    byte i;                     /* the PTE copy_pte_range is at */
    byte pre;                   /* the preallocated page (page_copy_prealloc) */

    /* lock: mmap_write_lock(oldmm), dup_mmap.  No reader holds it: the slow
     * path below takes it as one step. */
    d_step { !mmap_wlocked -> mmap_wlocked = true };
    /* begin: copy_page_range: raw_write_seqcount_begin(&src_mm->write_protect_seq) */
    d_step {
#if WP_SEQ
        wp_seq++
#else
        skip
#endif
    };
decide:
    /* pte: copy_pte_range under the PTL; copy_present_pte -> copy_present_page
     * decides: has_pinned and page_maybe_dma_pinned -> a copy for the child,
     * which needs a new page (-EAGAIN); else share. */
    if
    :: d_step { i < M && has_pinned && pins[pte[i]] > 0 -> skip }; goto prealloc
    :: d_step { i < M && !(has_pinned && pins[pte[i]] > 0) -> skip }
    :: d_step { i == M -> skip }; goto finish      /* "all page-table entries copied" */
    fi;
    /* share: get_page, page_dup_rmap; is_cow_mapping && pte_write ->
     * ptep_set_wrprotect(src_mm) (the PTL held since the decision; GUP-fast
     * takes no lock, so it can run in between: the race 57efa1fe5957 fixes) */
    d_step { ref[pte[i]]++; ptew[i] = false; i++ };
    goto decide;
prealloc:
    /* alloc: the PTL dropped, page_copy_prealloc */
    if :: d_step { alloc_page(pre) } fi;
    /* retry: the PTL retaken, copy_present_pte again: still maybe pinned ->
     * copy_present_page gives the child the copy, the parent keeps its
     * writable PTE; else the prealloc is put and the PTE retried */
    if
    :: d_step { has_pinned && pins[pte[i]] > 0 -> pre = 0; i++ }
    :: d_step { !(has_pinned && pins[pte[i]] > 0) -> ref[pre] = 0; pre = 0 }
    fi;
    goto decide;
finish:
    /* end: raw_write_seqcount_end; mmap_write_unlock */
    if
    :: d_step {
#if WP_SEQ
        wp_seq++;
#endif
        mmap_wlocked = false;
        i = 0
    }
    fi
}

/* pin_user_pages_fast(FOLL_PIN|FOLL_WRITE) of the parent's page t % M, on a
 * thread of the parent: internal_get_user_pages_fast, lockless_pages_from_mm
 * (5.11-6.8; gup_fast in 6.9+), gup_pte_range. */
proctype Pinner(byte t) {
    byte seq;                   /* raw_read_seqcount(&mm->write_protect_seq) */
    byte pg;                    /* the page the PTE read gave */
    bool pw;                    /* the PTE read was writable */

    /* begin: has_pinned = 1 (before the walk); with 57efa1fe5957,
     * seq = raw_read_seqcount(write_protect_seq): odd -> slow path */
    d_step { has_pinned = true; seq = wp_seq };
    if
    :: WP_SEQ && (seq & 1) -> goto slowpath
    :: else -> skip
    fi;
    /* pte: gup_get_pte(ptep); a write pin needs pte_access_permitted(pte, FOLL_WRITE), else slow path */
    d_step { pg = pte[t % M]; pw = ptew[t % M] };
    if
    :: !pw -> goto slowpath
    :: else -> skip
    fi;
    /* grab: try_grab_compound_head(FOLL_PIN) */
    d_step { ref[pg]++; pins[pg]++ };
    /* recheck: pte_val(pte) != pte_val(*ptep) -> drop the page, slow path */
    if
    :: d_step { pte[t % M] != pg || ptew[t % M] != pw -> ref[pg]--; pins[pg]-- }; goto slowpath
    :: d_step { pte[t % M] == pg && ptew[t % M] == pw -> skip }
    fi;
    /* seq: read_seqcount_retry(write_protect_seq, seq) -> unpin, slow path;
     * without 57efa1fe5957 the count never moves and this always passes */
    if
    :: d_step { wp_seq != seq -> ref[pg]--; pins[pg]-- }; goto slowpath
    :: d_step { wp_seq == seq -> pinned[t] = pg; pg = 0; pw = false; seq = 0 }; goto done
    fi;
slowpath:
    /* slow: __gup_longterm_unlocked -> get_user_pages_unlocked ->
     * __get_user_pages under mmap_read_lock (it waits for fork), whole:
     * follow_page_pte needs a writable PTE (can_follow_write_pte), else
     * faultin_page(FAULT_FLAG_WRITE) -> do_wp_page, then try_grab_page */
    if
    :: d_step {
        !mmap_wlocked ->
        if
        :: ptew[t % M] -> skip
        :: else -> write_fault(t % M)
        fi;
        ref[pte[t % M]]++;
        pins[pte[t % M]]++;
        pinned[t] = pte[t % M];
        pg = 0; pw = false; seq = 0
    }
    fi;
done:
    skip
}

init {
    byte j;
    /* A: mmap(p, anon, private, rw, pages=M); A: write(p[j], 1): each page
     * faulted in writable and exclusive */
    d_step {
        j = 0;
        do
        :: j < M -> pte[j] = j; ptew[j] = true; ref[j] = 1; j++
        :: else -> break
        od;
        j = 0;
        do
        :: j < K -> pinned[j] = NONE; j++
        :: else -> break
        od;
        j = 0
    };
    /* par { Tt: pin(p[t % M], write, fast) as rt ...  A: fork() as B } */
    atomic {
        j = 0;
        do
        :: j < K -> run Pinner(j); j++
        :: else -> break
        od;
        run Fork();
        j = 0
    };
    (_nr_pr == 1);              /* the par block is over */
    /* A: write(p[j], 2) for every j: the parent's CPU writes after both */
    d_step {
        j = 0;
        do
        :: j < M -> if :: !ptew[j] -> write_fault(j) :: else -> skip fi; j++
        :: else -> break
        od;
        j = 0
    };
    /* always: rt is A.p[t % M] for every pinner t */
    d_step {
        j = 0;
        do
        :: j < K -> assert(pinned[j] == pte[j % M]); j++
        :: else -> break
        od
    }
}
