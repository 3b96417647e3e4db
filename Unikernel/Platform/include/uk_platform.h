/*
 * uk_platform.h: what the unikernel's platform layer (Unikernel/Platform, booted by
 * Unikernel/Boot) offers to the Swift code above it, imported as the Clang module UKPlatform
 * (module.modulemap beside this file; swiftc -I Unikernel/Platform/include).
 *
 * The app's side of the contract: it defines
 *     @_cdecl("uknet_kernel_main") public func main(_ cmdline: UnsafePointer<CChar>) -> Int32
 * which the platform calls once, in ring 3 with IOPL 3 (port I/O allowed; see Unikernel/Boot/boot.S
 * for why), on the only stack (64 KiB), interrupts off, with the kernel command line (`-append`,
 * never null, "" if none) and the heap ready; its result goes to uk_exit. (Declared in the platform's private header, not here, so the Swift definition does not
 * collide with an imported declaration.)
 *
 * Memory is mapped 1:1 (virtual = physical) for the first 4 GiB: a pointer is a DMA address. The
 * heap (posix_memalign/free, Unikernel/Runtime) is the largest free RAM region above the image,
 * so QEMU's -m decides its size.
 *
 * Port I/O and MMIO are static inline here (Swift has no inline assembly and no volatile access).
 * Each counts itself in uk_pio_count/uk_mmio_count: under KVM every port access and every MMIO
 * access to a device is a VM exit (~25 us each under this machine's KVM), so the counts are the
 * exits the kernel caused. The counters cost one memory increment per access.
 *
 * Single core, interrupts off: nothing here is thread-safe or reentrant.
 */
#ifndef UK_PLATFORM_H
#define UK_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* ---- Leaving: isa-debug-exit ---------------------------------------------------------------
 * uk_exit(s) writes s + 1 to the isa-debug-exit device (port 0xf4, 4 bytes), so QEMU exits with
 * ((s + 1) << 1) | 1 = 2s + 3: status 0 becomes QEMU's 3, never the 1 QEMU itself uses for its
 * own errors or the 0 of a guest reset under -no-reboot. scripts/run-kvm.sh turns 2s + 3 back
 * into s. Without the device (no -device isa-debug-exit), uk_exit prints so and halts: the run
 * script's timeout ends QEMU then. */
#define UK_STATUS_MAX      120   /* app statuses: 0 (success) ... 120 */
#define UK_STATUS_TRAP     121   /* a CPU exception: a Swift trap (fatalError, overflow, bounds), a fault */
#define UK_STATUS_PLATFORM 122   /* the platform could not start the app (boot info, no memory) */
#define UK_STATUS_INVALID  123   /* uk_exit was given a status outside 0...123 */
_Noreturn void uk_exit(int32_t status);

/* ---- Clock ----------------------------------------------------------------------------------
 * The TSC (invariant on KVM with +invtsc), its rate from KVM's CPUID leaf 0x40000010 when QEMU
 * offers it (exact to 1 kHz), else measured against the PIT (channel 0, 10 ms; within ~0.01%,
 * see clock.c). Monotonic nanoseconds count from TSC = 0, whose meaning depends on the
 * hypervisor (TCG: the VM's reset, so uk_boot_ns() is the firmware's time before our first
 * instruction; this machine's kvm-pvm: the host's boot): differences are what mean something. */
uint64_t uk_tsc_hz(void);
uint64_t uk_monotonic_ns(void);
uint64_t uk_boot_ns(void);            /* uk_monotonic_ns() at the boot stub's first instruction */
uint64_t uk_tsc_to_ns(uint64_t ticks); /* a TSC difference in nanoseconds */
/* Gives the CPU back for about `ns` (a local APIC timer interrupt ends the halt): for a poller
 * with nothing to do. 0, or -1 when the local APIC cannot be used (it then returns at once). */
int uk_idle(uint64_t ns);

/* uk_tsc(): CUKHardware's uk_hardware.h, included below. */

/* ---- Console: COM1 (0x3F8) ------------------------------------------------------------------
 * print() from Swift goes here too (the platform's putchar). About one port write per byte: a
 * 40-byte line costs ~1 ms of exits under nested KVM. */
void uk_console_write(const char *bytes, size_t length);

/* ---- Boot information -------------------------------------------------------------------- */
const char *uk_cmdline(void);         /* the kernel command line (a copy; "" if none) */
uint64_t uk_ram_bytes(void);          /* RAM in the firmware's memory map */
uintptr_t uk_heap_base(void);         /* the region the allocator was given */
size_t uk_heap_size(void);
size_t uk_heap_used(void);            /* bytes in allocated blocks now */
uint64_t uk_acpi_rsdp(void);          /* the ACPI RSDP's address, 0 if the firmware has none */

/* Maps [base, base + size) uncached for a device's registers (2 MiB pages), where no RAM is:
 * 3-4 GiB is mapped so at boot; this is for windows below it (q35's PCIe ECAM at 0xB0000000).
 * 0, or -1 if the range is outside 1-4 GiB or overlaps RAM. */
int uk_map_mmio(uint64_t base, uint64_t size);

/* Port I/O, MMIO, barriers, the exit counters and uk_tsc: Sources/CUKHardware, the one definition
 * the platform and the drivers (VirtioNetGuest) share. */
#include "uk_hardware.h"

#endif
