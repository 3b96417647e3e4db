/* Port I/O, memory-mapped I/O, barriers and the TSC for the unikernel (its platform layer and
 * its drivers: VirtioNetGuest), as static inline C: Swift has neither inline assembly nor
 * volatile access. The one definition: Unikernel/Platform's uk_platform.h includes it.
 * Freestanding (stdint.h only), so it builds for x86_64-unknown-none-elf and, unused, in a hosted
 * build too (a Linux process has no I/O privilege: nothing hosted calls these).
 *
 * Every access has a "memory" clobber: the compiler may not move ring stores past a kick (outw
 * to a queue notify port), or ring loads before the device's write is seen. Under KVM every port
 * access and every MMIO access to a device is a VM exit (~25 us on this machine's nested KVM):
 * uk_pio_count and uk_mmio_count count them, so boot reports can say what a phase cost.
 */
#ifndef UK_HARDWARE_H
#define UK_HARDWARE_H
#include <stdint.h>

/* ---- Exit counters (Sources/CUKHardware/uk_hardware.c) ---------------------------------------- */
extern uint64_t uk_pio_count;         /* port I/O instructions through the functions below */
extern uint64_t uk_mmio_count;        /* MMIO accesses through the functions below */

/* ---- Barriers ---------------------------------------------------------------------------------
 * uk_barrier: the compiler keeps memory accesses on their side (x86 keeps stores in order with
 * stores and loads with loads). uk_mb: a full fence, for a store that must be visible before a
 * later load (virtio's event-index checks). Port I/O is serializing, and MMIO to the uncached
 * 3-4 GiB window is strongly ordered, so an I/O barrier is the compiler barrier. */
static inline void uk_barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline void uk_mb(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void uk_io_barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline void uk_pause(void) { __asm__ volatile("pause" ::: "memory"); }

/* ---- Port I/O ---------------------------------------------------------------------------------- */
static inline uint8_t uk_inb(uint16_t port) { uint8_t v; uk_pio_count++; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory"); return v; }
static inline uint16_t uk_inw(uint16_t port) { uint16_t v; uk_pio_count++; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port) : "memory"); return v; }
static inline uint32_t uk_inl(uint16_t port) { uint32_t v; uk_pio_count++; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory"); return v; }
static inline void uk_outb(uint16_t port, uint8_t v) { uk_pio_count++; __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory"); }
static inline void uk_outw(uint16_t port, uint16_t v) { uk_pio_count++; __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port) : "memory"); }
static inline void uk_outl(uint16_t port, uint32_t v) { uk_pio_count++; __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory"); }

/* ---- MMIO ---------------------------------------------------------------------------------------
 * Volatile accesses of exactly the width asked (a device register must not be read as two halves
 * or merged with its neighbour). Addresses are physical = virtual. */
static inline uint8_t uk_mmio_read8(uintptr_t a) { uk_mmio_count++; return *(volatile uint8_t *)a; }
static inline uint16_t uk_mmio_read16(uintptr_t a) { uk_mmio_count++; return *(volatile uint16_t *)a; }
static inline uint32_t uk_mmio_read32(uintptr_t a) { uk_mmio_count++; return *(volatile uint32_t *)a; }
static inline void uk_mmio_write8(uintptr_t a, uint8_t v) { uk_mmio_count++; *(volatile uint8_t *)a = v; uk_io_barrier(); }
static inline void uk_mmio_write16(uintptr_t a, uint16_t v) { uk_mmio_count++; *(volatile uint16_t *)a = v; uk_io_barrier(); }
static inline void uk_mmio_write32(uintptr_t a, uint32_t v) { uk_mmio_count++; *(volatile uint32_t *)a = v; uk_io_barrier(); }

/* ---- TSC ---------------------------------------------------------------------------------------- */
static inline uint64_t uk_tsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
    return (uint64_t)hi << 32 | lo;
}
#endif
