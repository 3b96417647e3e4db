/* Atomics, barriers and CPU hints for UKNet's core.
 *
 * Swift has no atomics on raw memory that also build for Embedded Swift
 * on x86_64-unknown-none-elf, so the few operations the data plane needs
 * are static inline C over the compiler's __atomic builtins. They compile
 * to plain loads/stores (x86 is TSO) plus the one lock-prefixed RMW where
 * an RMW is really needed. Freestanding: only <stdint.h>.
 */
#ifndef UK_ATOMICS_H
#define UK_ATOMICS_H
#include <stdint.h>

static inline uint32_t uk_load_acquire_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void uk_store_release_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t uk_load_relaxed_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void uk_store_relaxed_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
/* Returns the value after the addition. */
static inline uint32_t uk_add_fetch_u32(uint32_t *p, uint32_t v) { return __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL); }
static inline uint32_t uk_sub_fetch_u32(uint32_t *p, uint32_t v) { return __atomic_sub_fetch(p, v, __ATOMIC_ACQ_REL); }

/* 16-bit ring indices shared with another party (virtio's avail/used idx and flags). */
static inline uint16_t uk_load_acquire_u16(const uint16_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void uk_store_release_u16(uint16_t *p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint16_t uk_load_relaxed_u16(const uint16_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void uk_store_relaxed_u16(uint16_t *p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

static inline uint64_t uk_load_relaxed_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void uk_store_relaxed_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

/* Test-and-set spinlock on one byte-sized word; returns when held. */
static inline void uk_spin_lock(uint32_t *lock) {
    while (__atomic_exchange_n(lock, 1u, __ATOMIC_ACQUIRE) != 0u) {
        while (__atomic_load_n(lock, __ATOMIC_RELAXED) != 0u) { __builtin_ia32_pause(); }
    }
}
static inline void uk_spin_unlock(uint32_t *lock) { __atomic_store_n(lock, 0u, __ATOMIC_RELEASE); }

static inline void uk_cpu_relax(void) { __builtin_ia32_pause(); }
/* Full fence (mfence): needed where a store must be visible before a later load (virtio event index). */
static inline void uk_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
/* Compiler-only barrier: keeps the compiler from moving memory accesses across it. */
static inline void uk_compiler_barrier(void) { __asm__ __volatile__("" ::: "memory"); }
static inline void uk_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
static inline void uk_prefetch_write(const void *p) { __builtin_prefetch(p, 1, 3); }

#endif
