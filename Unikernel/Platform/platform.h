/*
 * platform.h: what the platform's C files share with each other (not exported to Swift).
 *
 *   start.c    uk_platform_start (boot.S calls it): PVH start info, heap, milestones, the app,
 *              uk_exit
 *   cpu.c      IDT, TSS (the way back to ring 0 for exceptions), CPU exception reports
 *   console.c  COM1: putchar, uk_console_write, and the few number formats the platform prints
 *   clock.c    TSC rate (KVM's CPUID leaf or the PIT), uk_monotonic_ns and friends
 */
#ifndef UK_PLATFORM_PRIVATE_H
#define UK_PLATFORM_PRIVATE_H

#include "uk_platform.h"

/* The app: a @_cdecl Swift function (see uk_platform.h). */
int32_t uknet_kernel_main(const char *cmdline);

/* boot.S */
extern uint64_t uk_boot_tsc;          /* the TSC at the first instruction */
extern const char uk_trap_stubs[];    /* 32 exception entry stubs, 16 bytes apart */
extern char uk_boot_stack_top[];
extern char __kernel_start[], __kernel_end[];
_Noreturn void uk_enter_ring3(void (*fn)(void *), void *arg, void *stack_top);   /* fn must not return */

/* cpu.c */
void uk_cpu_init(void);               /* the IDT and TSS registers; ring 0 */
void uk_cpu_ring3_init(void);         /* the IDT, the TSS, the ports opened: first thing in ring 3 */
_Noreturn void uk_halt(void);         /* boot.S: stops the machine (from ring 3 too) */
void uk_idle_hlt(void);               /* boot.S: ring 3's hlt, done in ring 0 until an interrupt */
extern const char uk_gp_entry[], uk_timer_entry[], uk_spurious_entry[];   /* boot.S: IDT entries */

/* console.c */
int uk_console_init(void);            /* 1: COM1 answered; 0: no UART there (output is dropped) */
int uk_console_ready(void);           /* uk_console_init found a UART */
void uk_console_puts(const char *s);
void uk_console_dec(uint64_t v);
void uk_console_hex(uint64_t v);      /* 0x-prefixed */
void uk_console_time(uint64_t ns);    /* "[s.uuuuuu] " as Linux prints its log */

/* clock.c */
enum uk_clock_source { UK_CLOCK_CPUID, UK_CLOCK_PIT, UK_CLOCK_NONE };
void uk_clock_probe(void);            /* ring 0: the hypervisor's TSC rate, if it says */
enum uk_clock_source uk_clock_init(void);
int uk_tsc_invariant(void);           /* CPUID 0x80000007 EDX bit 8 */

#endif
