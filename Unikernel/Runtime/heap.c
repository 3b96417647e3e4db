/*
 * posix_memalign and free: every allocation of the Embedded Swift objects goes through them
 * (class instances, UnsafeMutablePointer.allocate, array and string storage; Swift calls no
 * malloc). The hot paths allocate nothing per packet, so this aims at small and safe, not fast.
 *
 * A first-fit free list, sorted by address, over one region: a static arena (UKRT_HEAP_SIZE bytes
 * of .bss, 1 MiB unless the build says otherwise) or the region the platform hands over with
 * ukrt_heap_init before the first allocation. free returns the block to the list and merges it
 * with free neighbours, so memory freed is memory reused.
 *
 * Limits: one region, no growth; O(free blocks) per call; an alignment above 16 may leave a gap
 * in front of the block (kept on the list, reclaimed when a neighbour is freed); 16 bytes of header
 * per block. Out of memory, a size larger than the region, or a bad alignment: the error code POSIX
 * defines (ENOMEM, EINVAL), *out untouched, the heap unchanged. A free of a pointer this heap did
 * not hand out, or a second free of the same pointer, stops the machine (ud2) instead of
 * corrupting the list. Not thread-safe: single core, and no interrupt handler may allocate.
 */
#include <stddef.h>
#include <stdint.h>
#include "ukrt.h"

#define UKRT_EINVAL 22   /* Linux's values, as Swift code compiled for Linux would expect */
#define UKRT_ENOMEM 12

#ifndef UKRT_HEAP_SIZE
#define UKRT_HEAP_SIZE (1u << 20)
#endif

/* In front of every block, free or allocated; blocks and payloads are 16-byte aligned (malloc's
 * guarantee on x86_64, and what Swift assumes for its default alignment). */
struct block {
    size_t size;                 /* the whole block, header included: a multiple of 16 */
    union {
        struct block *next;      /* free: the next free block, by address */
        uintptr_t tag;           /* allocated: USED */
    };
};
#define HEADER ((size_t)sizeof(struct block))
/* Not a canonical x86_64 address, so a free block's `next` can never look like it. */
#define USED ((uintptr_t)0xA110CA7EDB10C000ull)

_Static_assert(sizeof(struct block) == 16, "payloads stay 16-byte aligned");

static _Alignas(4096) unsigned char arena[UKRT_HEAP_SIZE];
static uintptr_t heap_start, heap_end;
static struct block *free_list;
static struct ukrt_heap_stats stats;

static uintptr_t align_up(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }

static int setup(uintptr_t base, size_t size) {
    uintptr_t start = align_up(base, HEADER);
    if (size < HEADER * 2 || start - base > size - HEADER * 2) return -1;
    uintptr_t end = (base + size) & ~(uintptr_t)(HEADER - 1);
    heap_start = start;
    heap_end = end;
    free_list = (struct block *)start;
    free_list->size = end - start;
    free_list->next = 0;
    stats.size = end - start;
    return 0;
}

/* The static arena, unless ukrt_heap_init came first. */
static void ensure_setup(void) {
    if (heap_end == 0) setup((uintptr_t)arena, sizeof arena);
}

int ukrt_heap_init(void *base, size_t size) {
    if (stats.peak != 0) return -1;
    return setup((uintptr_t)base, size);
}

struct ukrt_heap_stats ukrt_heap_stats(void) {
    ensure_setup();
    return stats;
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    ensure_setup();
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) {
        stats.failures++;
        return UKRT_EINVAL;
    }
    if (alignment < HEADER) alignment = HEADER;
    /* Checked before any arithmetic, so the sums below cannot wrap. */
    if (size > stats.size || alignment > stats.size) {
        stats.failures++;
        return UKRT_ENOMEM;
    }
    size_t need = HEADER + align_up(size ? size : 1, HEADER);

    for (struct block **link = &free_list; *link; link = &(*link)->next) {
        struct block *b = *link;
        uintptr_t start = (uintptr_t)b, end = start + b->size;
        uintptr_t payload = align_up(start + HEADER, alignment);
        if (payload - HEADER + need > end) continue;

        struct block *a = (struct block *)(payload - HEADER);
        uintptr_t after = (uintptr_t)a + need;
        struct block *rest = b->next;
        /* What is left behind the block (0 or at least one header: everything is a multiple
         * of 16) stays free. */
        if (after < end) {
            struct block *tail = (struct block *)after;
            tail->size = end - after;
            tail->next = rest;
            rest = tail;
        }
        /* The gap in front (alignment) stays free as b itself; otherwise b leaves the list. */
        if (a != b) {
            b->size = (uintptr_t)a - start;
            b->next = rest;
        } else {
            *link = rest;
        }
        a->size = need;
        a->tag = USED;
        stats.used += need;
        if (stats.used > stats.peak) stats.peak = stats.used;
        *out = (void *)payload;
        return 0;
    }
    stats.failures++;
    return UKRT_ENOMEM;
}

void free(void *p) {
    if (p == 0) return;
    uintptr_t at = (uintptr_t)p - HEADER;
    struct block *a = (struct block *)at;
    /* Ours, allocated, and whole: anything else is a double or foreign free. */
    if ((uintptr_t)p % HEADER != 0 || at < heap_start || at >= heap_end || a->tag != USED ||
        a->size < HEADER * 2 || a->size > heap_end - at)
        __builtin_trap();

    struct block *prev = 0, *next = free_list;
    while (next && (uintptr_t)next < at) {
        prev = next;
        next = next->next;
    }
    stats.used -= a->size;
    a->next = next;   /* overwrites USED: a second free of p traps, even once merged into prev */
    if (next && at + a->size == (uintptr_t)next) {
        a->size += next->size;
        a->next = next->next;
    }
    if (prev && (uintptr_t)prev + prev->size == at) {
        prev->size += a->size;
        prev->next = a->next;
    } else if (prev) {
        prev->next = a;
    } else {
        free_list = a;
    }
}
