/* Port I/O, memory-mapped I/O and CPU counters for the unikernel's drivers, as static inline C:
 * Swift has neither inline assembly nor volatile access. Freestanding (stdint.h only), so it
 * builds for x86_64-unknown-none-elf and, unused, in a hosted build too (a Linux process has no
 * I/O privilege: nothing hosted calls these).
 *
 * Every access has a "memory" clobber: the compiler may not move ring stores past a kick, or
 * ring loads before the device's write is seen. Under (nested) KVM every port access or MMIO
 * access to a device is a VM exit (~25 us here): uk_io_exits counts them, so boot reports can
 * say how many a phase cost.
 */
#ifndef UK_HARDWARE_H
#define UK_HARDWARE_H
#include <stdint.h>

/* Port and MMIO accesses to devices so far (each one a VM exit under KVM). */
extern uint64_t uk_io_exits;

static inline void uk_outb(uint16_t port, uint8_t v) { uk_io_exits++; __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port) : "memory"); }
static inline void uk_outw(uint16_t port, uint16_t v) { uk_io_exits++; __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(port) : "memory"); }
static inline void uk_outl(uint16_t port, uint32_t v) { uk_io_exits++; __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(port) : "memory"); }
static inline uint8_t uk_inb(uint16_t port) { uint8_t v; uk_io_exits++; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory"); return v; }
static inline uint16_t uk_inw(uint16_t port) { uint16_t v; uk_io_exits++; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port) : "memory"); return v; }
static inline uint32_t uk_inl(uint16_t port) { uint32_t v; uk_io_exits++; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory"); return v; }

static inline uint8_t uk_mmio_read8(uintptr_t a) { uk_io_exits++; return *(volatile uint8_t *)a; }
static inline uint16_t uk_mmio_read16(uintptr_t a) { uk_io_exits++; return *(volatile uint16_t *)a; }
static inline uint32_t uk_mmio_read32(uintptr_t a) { uk_io_exits++; return *(volatile uint32_t *)a; }
static inline void uk_mmio_write8(uintptr_t a, uint8_t v) { uk_io_exits++; *(volatile uint8_t *)a = v; __asm__ volatile("" ::: "memory"); }
static inline void uk_mmio_write16(uintptr_t a, uint16_t v) { uk_io_exits++; *(volatile uint16_t *)a = v; __asm__ volatile("" ::: "memory"); }
static inline void uk_mmio_write32(uintptr_t a, uint32_t v) { uk_io_exits++; *(volatile uint32_t *)a = v; __asm__ volatile("" ::: "memory"); }

static inline uint64_t uk_rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
    return (uint64_t)hi << 32 | lo;
}
#endif
