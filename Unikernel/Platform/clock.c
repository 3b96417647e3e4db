/*
 * clock.c: the monotonic clock, the TSC scaled to nanoseconds.
 *
 * The TSC's rate, from the first source that answers:
 *  1. CPUID leaf 0x40000010 (the hypervisor "timing information" leaf: EAX = TSC kHz). QEMU/KVM
 *     offers it when the TSC rate is stable and known, i.e. with -cpu ...,+invtsc (or an explicit
 *     tsc-frequency); scripts/run-kvm.sh asks for invtsc. Exact to 1 kHz (1 ppm at 1 GHz): it is
 *     the rate KVM itself measured. Asked in ring 0 (uk_clock_probe): under kvm-pvm, CPUID in
 *     ring 3 runs natively and answers for the machine QEMU runs on, without QEMU's leaves.
 *  2. The PIT (i8254, 1.193182 MHz), channel 0 as a free-running counter (mode 2, period 65536):
 *     its count latched and read at the start and again once 10 ms of PIT ticks have gone by,
 *     the TSC read just before and just after each latching write (the latch happens between the
 *     two; the midpoint is taken), and of 5 such readings at each end the one with the two TSC
 *     reads closest together. Both ends are measured the same way, so a port access's delay
 *     cancels out; what is left is the jitter of one access at each end, where an access costs
 *     ~25 us (this machine's KVM): within +-85 ppm of the CPUID value in 16 boots here (one
 *     reading per end had outliers of 0.1-0.25% when the host drew an exit out); under TCG
 *     within +-50 ppm of the host's rate. scripts/unikernel-check.sh measures it against the CPUID
 *     leaf every run. Costs 10 ms of boot. Nothing is wired to IRQ 0
 *     (interrupts stay off), so taking channel 0 is harmless. (Port 0x61's view of channel 2 is
 *     not there on microvm; the CMOS clock ticks once a second, too slow to wait for at boot.)
 *  3. Neither (no hypervisor leaf and no PIT: -M microvm,pit=off without +invtsc): 1 GHz is
 *     assumed and the boot log says the clock is wrong.
 *
 * Scaling without division at run time: ns = ticks * mult >> 32 with mult = 10^9 * 2^32 / rate,
 * one 64x64->128-bit multiply (a single mul instruction; no 128-bit division, which would need
 * the compiler runtime's __udivti3). Rounding of mult: under 1 ns per second.
 */
#include "platform.h"

#define PIT_HZ 1193182u
#define PIT_WINDOW 11932u                /* 10.000 ms of PIT ticks */
#define PIT_POLLS 1000000                /* bound on the samples: a PIT ends it in 10 ms */
#define PIT_STILL 1000                   /* samples with the count unchanged: no PIT there */
#define PIT_BEST 5                       /* readings at each end, the sharpest kept */

static uint64_t tsc_hz;
static uint64_t mult;                    /* ns per tick, 32.32 fixed point */
static uint64_t hv_tsc_khz __attribute__((section(".data.clock")));   /* set in ring 0, before .bss is cleared */

static void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

int uk_tsc_invariant(void) {
    uint32_t a, b, c, d;
    cpuid(0x80000000, &a, &b, &c, &d);
    if (a < 0x80000007) return 0;
    cpuid(0x80000007, &a, &b, &c, &d);
    return (d >> 8) & 1;
}

/* The hypervisor's TSC rate in kHz, or 0. */
static uint64_t cpuid_tsc_khz(void) {
    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    if (!(c & (1u << 31))) return 0;     /* no hypervisor: the leaves 0x4000xxxx mean nothing */
    cpuid(0x40000000, &a, &b, &c, &d);   /* EAX: the highest hypervisor leaf */
    if (a < 0x40000010 || a > 0x400000FF) return 0;
    cpuid(0x40000010, &a, &b, &c, &d);
    return a;
}

void uk_clock_probe(void) { hv_tsc_khz = cpuid_tsc_khz(); }

/* One reading of PIT channel 0: its count, latched between two TSC reads. */
struct pit_sample {
    uint64_t tsc;        /* the midpoint of the two reads */
    uint64_t width;      /* how far apart they were: the uncertainty of tsc */
    uint16_t count;
};

static struct pit_sample pit_sample(void) {
    uint64_t before = uk_tsc();
    uk_outb(0x43, 0x00);                 /* latch channel 0's count */
    uint64_t after = uk_tsc();
    uint8_t lo = uk_inb(0x40);
    uint8_t hi = uk_inb(0x40);
    return (struct pit_sample){before + (after - before) / 2, after - before, (uint16_t)(lo | hi << 8)};
}

/* The sharpest of PIT_BEST readings (the latch whose exit was not drawn out by the host). */
static struct pit_sample pit_best_sample(void) {
    struct pit_sample best = pit_sample();
    for (int i = 1; i < PIT_BEST; i++) {
        struct pit_sample s = pit_sample();
        if (s.width < best.width) best = s;
    }
    return best;
}

/* The TSC rate measured against the PIT, or 0 without a PIT. */
static uint64_t pit_tsc_hz(void) {
    uk_outb(0x43, 0x34);                 /* channel 0, low then high byte, mode 2, binary */
    uk_outb(0x40, 0);                    /* count 0: 65536, a 54.9 ms period */
    uk_outb(0x40, 0);
    struct pit_sample start = pit_best_sample();
    uint32_t elapsed = 0;
    for (int i = 0; i < PIT_POLLS && elapsed < PIT_WINDOW; i++) {
        elapsed = (uint16_t)(start.count - pit_sample().count);   /* counts down; wraps at 65536 */
        if (elapsed == 0 && i == PIT_STILL) return 0;
    }
    if (elapsed < PIT_WINDOW) return 0;
    struct pit_sample end = pit_best_sample();
    elapsed = (uint16_t)(start.count - end.count);
    return (end.tsc - start.tsc) * PIT_HZ / elapsed;
}

enum uk_clock_source uk_clock_init(void) {
    enum uk_clock_source source = UK_CLOCK_CPUID;
    tsc_hz = hv_tsc_khz * 1000;
    if (!tsc_hz) {
        source = UK_CLOCK_PIT;
        tsc_hz = pit_tsc_hz();
    }
    if (!tsc_hz) {
        source = UK_CLOCK_NONE;
        tsc_hz = 1000000000;
    }
    mult = (1000000000ull << 32) / tsc_hz;   /* fits: 10^9 * 2^32 < 2^62 */
    return source;
}

uint64_t uk_tsc_hz(void) { return tsc_hz; }

uint64_t uk_tsc_to_ns(uint64_t ticks) {
    return (uint64_t)(((unsigned __int128)ticks * mult) >> 32);
}

uint64_t uk_monotonic_ns(void) { return uk_tsc_to_ns(uk_tsc()); }

uint64_t uk_boot_ns(void) { return uk_tsc_to_ns(uk_boot_tsc); }

/* ---- Idle: a nap on the local APIC timer ------------------------------------------------------
 * A polling app that finds nothing to do can give its CPU back for a while (the vCPU sleeps in
 * the host; under this machine's KVM three pollers share two CPUs). The local APIC (xAPIC, MMIO
 * at 0xFEE00000, mapped uncached and reachable from ring 3) counts down in one-shot mode and
 * interrupts on vector 0x40; uk_idle_hlt (boot.S) halts in ring 0 until then. The APIC timer's
 * rate is measured against the TSC on first use (1 ms). */
#define LAPIC 0xFEE00000u
static uint64_t lapic_ticks_per_ms;

static void lapic_write(uint32_t reg, uint32_t v) { uk_mmio_write32(LAPIC + reg, v); }
static uint32_t lapic_read(uint32_t reg) { return uk_mmio_read32(LAPIC + reg); }

static int lapic_setup(void) {
    lapic_write(0xF0, 0x14F);           /* software enable, spurious vector 0x4f */
    lapic_write(0x3E0, 0xB);            /* divide by 1 */
    lapic_write(0x320, 0x40 | 1u << 16);   /* one-shot, vector 0x40, masked while measuring */
    lapic_write(0x380, 0xFFFFFFFFu);
    uint64_t t0 = uk_tsc(), wait = uk_tsc_hz() / 1000;
    while (uk_tsc() - t0 < wait) uk_pause();
    uint32_t left = lapic_read(0x390);
    lapic_write(0x380, 0);
    lapic_ticks_per_ms = 0xFFFFFFFFu - left;
    lapic_write(0x320, 0x40);           /* unmasked: the next count interrupts */
    return lapic_ticks_per_ms > 0;
}

int uk_idle(uint64_t ns) {
    if (lapic_ticks_per_ms == 0 && !lapic_setup()) return -1;
    uint64_t ticks = lapic_ticks_per_ms * ns / 1000000;
    if (ticks == 0) ticks = 1;
    if (ticks > 0xFFFFFFFFu) ticks = 0xFFFFFFFFu;
    lapic_write(0x380, (uint32_t)ticks);
    uk_idle_hlt();
    return 0;
}
