/*
 * start.c: from boot.S's call to the app and out again.
 *
 * uk_platform_start(start_info), ring 0, on the boot stack: the IDT and TSS (cpu.c), then for good
 * into ring 3 (boot.S's uk_enter_ring3 clears .bss there), where platform_main carries on:
 *   0. the ports opened to ring 3 (cpu.c), 3-4 GiB mapped (the MMIO window),
 *   1. the serial console, 2. the TSC's rate (clock.c),
 *   3. the PVH start info: the command line (copied) and the memory map; RAM between 1 and 3 GiB
 *      mapped if there is any; the heap gets the largest free RAM region above the image and
 *      below 3 GiB,
 *   4. the boot milestones, printed in one go once the platform is ready (each byte is a port
 *      write, ~25 us under this machine's KVM: printed as they happen, the lines would dominate
 *      the times they report),
 *   5. uknet_kernel_main(cmdline), then uk_exit with its status.
 * Any step that cannot go on prints why and exits with UK_STATUS_PLATFORM, never hangs.
 */
#include "platform.h"
#include "ukrt.h"

/* The PVH boot ABI (Xen's public arch-x86/hvm/start_info.h), as far as read here. */
#define PVH_MAGIC 0x336ec578u
struct pvh_start_info {
    uint32_t magic;
    uint32_t version;          /* 1 and up have the memory map */
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;    /* a NUL-terminated string, or 0 */
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};
struct pvh_memmap_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;             /* 1: RAM (the e820 types) */
    uint32_t reserved;
};
#define PVH_MEMMAP_RAM 1

#define HEAP_END (3ull << 30)     /* RAM above is uncached (3-4 GiB) or unmapped (4 GiB on) */
#define CMDLINE_MAX 4096
#define MEMMAP_MAX 128            /* entries looked at (QEMU's e820 has a handful) */

/* uk_pio_count, uk_mmio_count: Sources/CUKHardware/uk_hardware.c */

/* Written before it is read (a NUL ends it): no need to clear it at boot. */
static char cmdline[CMDLINE_MAX] __attribute__((section(".noinit.cmdline")));
static uint64_t ram_bytes;
static uint64_t acpi_rsdp;
static uintptr_t heap_base;
static size_t heap_size;

const char *uk_cmdline(void) { return cmdline; }
uint64_t uk_ram_bytes(void) { return ram_bytes; }
uint64_t uk_acpi_rsdp(void) { return acpi_rsdp; }
uintptr_t uk_heap_base(void) { return heap_base; }
size_t uk_heap_size(void) { return heap_size; }
size_t uk_heap_used(void) { return ukrt_heap_stats().used; }

static uint64_t since_boot_ns(uint64_t tsc) { return uk_tsc_to_ns(tsc - uk_boot_tsc); }

/* ---- Leaving --------------------------------------------------------------------------------- */

_Noreturn void uk_exit(int32_t status) {
    if (status < 0 || status > UK_STATUS_INVALID) status = UK_STATUS_INVALID;
    uint64_t now = uk_tsc();
    uk_console_time(since_boot_ns(now));
    uk_console_puts("exit: status ");
    uk_console_dec((uint64_t)status);
    uk_console_puts(" (port I/O ");
    uk_console_dec(uk_pio_count);
    uk_console_puts(", MMIO ");
    uk_console_dec(uk_mmio_count);
    uk_console_puts(")\n");
    uk_outl(0xf4, (uint32_t)status + 1);   /* isa-debug-exit: QEMU exits with 2 * status + 3 */
    uk_console_puts("exit: no isa-debug-exit device at 0xf4: halted\n");
    uk_halt();                             /* stopped for good: interrupts off, nothing wakes it */
}

/* ---- Boot ---------------------------------------------------------------------------------- */

static _Noreturn void fail(const char *why) {
    uk_console_puts("boot: FAIL: ");
    uk_console_puts(why);
    uk_console_puts("\n");
    uk_exit(UK_STATUS_PLATFORM);
}

/* The command line into cmdline[]; *truncated if it was longer (the rest is cut, and said so). */
static void copy_cmdline(const struct pvh_start_info *si, int *truncated) {
    const char *src = (const char *)(uintptr_t)si->cmdline_paddr;
    size_t n = 0;
    if (src)
        while (n < CMDLINE_MAX - 1 && src[n]) { cmdline[n] = src[n]; n++; }
    cmdline[n] = 0;
    *truncated = src && src[n] != 0;
}

/* boot.S's tables: the PDPT, whose entry 0 (0-1 GiB) the image carries, and three page
 * directories for GiB 1-3 (.noinit), filled here before the PDPT points to them: each PDPT entry
 * goes from not present to present, and a CPU caches no not-present entry, so no TLB flush is
 * needed (none could be done from ring 3). */
extern uint64_t uk_pdpt[512];
extern uint64_t uk_pd_high[3][512];
#define PTE_RAM 0x87                /* present, writable, user, 2 MiB page */
#define PTE_MMIO (0x87 | 0x18)      /* and uncached (PWT|PCD) */
#define PTE_TABLE 0x07              /* present, writable, user: a directory */

/* GiB d (1-3): its page directory filled, the first `pages` 2 MiB pages mapped with `flags` and
 * the rest not present, then put in the PDPT. */
static void map_gib(uint64_t d, uint64_t pages, uint64_t flags) {
    uint64_t *pd = uk_pd_high[d - 1];
    for (uint64_t i = 0; i < 512; i++) pd[i] = i < pages ? (d << 30) + (i << 21) + flags : 0;
    uk_pdpt[d] = (uintptr_t)pd + PTE_TABLE;
}

/* The MMIO window, right at ring 3's start. */
static void map_mmio(void) { map_gib(3, 512, PTE_MMIO); }

/* RAM between 1 and 3 GiB (-m above 1 GiB), write-back, in 2 MiB pages (a partial one rounded
 * out); the rest of those GiBs stays unmapped, for uk_map_mmio (q35's ECAM window at 2.75 GiB
 * lies right after its low RAM). */
static void map_ram_region(uint64_t start, uint64_t end) {
    if (end > (3ull << 30)) end = 3ull << 30;
    if (start < (1ull << 30)) start = 1ull << 30;
    for (uint64_t a = start & ~((2ull << 20) - 1); a < end; a += 2ull << 20) {
        uint64_t d = a >> 30;
        if (!(uk_pdpt[d] & 1)) map_gib(d, 0, 0);   /* a directory of absent pages, then this one */
        uk_pd_high[d - 1][(a >> 21) & 511] = a + PTE_RAM;
    }
}

int uk_map_mmio(uint64_t base, uint64_t size) {
    if (size == 0 || base + size < base || base + size > (4ull << 30)) return -1;
    if (base >= (3ull << 30)) return 0;                         /* mapped uncached at boot */
    if (base < (1ull << 30)) return -1;                         /* RAM: the image's own tables */
    for (uint64_t a = base & ~((2ull << 20) - 1); a < base + size; a += 2ull << 20) {
        uint64_t d = a >> 30, i = (a >> 21) & 511;
        if (a >= (3ull << 30)) break;
        if (!(uk_pdpt[d] & 1)) map_gib(d, 0, 0);                 /* a directory of absent pages */
        uint64_t *pd = uk_pd_high[d - 1];
        if (pd[i] & 1) {
            if (pd[i] != a + PTE_MMIO) return -1;               /* RAM there: not a device's */
            continue;
        }
        /* Absent before, so no TLB holds it: no flush needed (none could be done in ring 3). */
        pd[i] = a + PTE_MMIO;
    }
    return 0;
}

/* The RSDP: where the PVH start info says (QEMU's PVH loader fills it in when it finds one), else
 * found as the ACPI spec says, a "RSD PTR " signature on a 16-byte boundary in the BIOS area
 * 0xE0000-0xFFFFF with a valid checksum over its first 20 bytes. 0 if there is none. */
static uint64_t find_rsdp(const struct pvh_start_info *si) {
    if (si->rsdp_paddr) return si->rsdp_paddr;
    for (uintptr_t a = 0xE0000; a < 0x100000; a += 16) {
        const uint8_t *p = (const uint8_t *)a;
        if (p[0] != 'R' || p[1] != 'S' || p[2] != 'D' || p[3] != ' ' || p[4] != 'P' || p[5] != 'T' ||
            p[6] != 'R' || p[7] != ' ')
            continue;
        uint8_t sum = 0;
        for (int i = 0; i < 20; i++) sum += p[i];
        if (sum == 0) return a;
    }
    return 0;
}

/* The largest piece of RAM above the image and below HEAP_END, page-aligned, into heap_*. */
static uint32_t find_heap(const struct pvh_start_info *si) {
    const struct pvh_memmap_entry *map = (const struct pvh_memmap_entry *)(uintptr_t)si->memmap_paddr;
    uint32_t entries = si->memmap_entries < MEMMAP_MAX ? si->memmap_entries : MEMMAP_MAX;
    uint64_t floor = (uintptr_t)__kernel_end;
    for (uint32_t i = 0; i < entries; i++) {
        if (map[i].type != PVH_MEMMAP_RAM) continue;
        map_ram_region(map[i].addr, map[i].addr + map[i].size);
        ram_bytes += map[i].size;
        uint64_t start = map[i].addr > floor ? map[i].addr : floor;
        uint64_t end = map[i].addr + map[i].size;
        if (end > HEAP_END) end = HEAP_END;
        start = (start + 4095) & ~4095ull;
        end &= ~4095ull;
        if (end > start && end - start > heap_size) {
            heap_base = (uintptr_t)start;
            heap_size = (size_t)(end - start);
        }
    }
    return entries;
}

static void milestone(uint64_t tsc, const char *what) {
    uk_console_time(since_boot_ns(tsc));
    uk_console_puts("boot: ");
    uk_console_puts(what);
}

/* Milestones taken in ring 0, before .bss is cleared: in .data. */
static uint64_t t_long_mode __attribute__((section(".data.milestones")));

static _Noreturn void platform_main(void *start_info);

/* Whether the command line has the word `word` (alone, not key=value): `quiet` turns the boot
 * milestones off, so that boot-time measurements are not a measure of the serial port. */
static int cmdline_has_word(const char *word) {
    for (const char *p = cmdline; *p; ) {
        while (*p == ' ') p++;
        const char *w = word;
        const char *q = p;
        while (*w && *q == *w) { q++; w++; }
        if (!*w && (*q == ' ' || *q == 0)) return 1;
        while (*p && *p != ' ') p++;
    }
    return 0;
}

_Noreturn void uk_platform_start(const struct pvh_start_info *si) {
    t_long_mode = uk_tsc();
    uk_cpu_init();
    uk_clock_probe();
    uk_enter_ring3(platform_main, (void *)si, uk_boot_stack_top);
}

static _Noreturn void platform_main(void *start_info) {
    const struct pvh_start_info *si = start_info;
    uint64_t t_ring3 = uk_tsc();
    uk_cpu_ring3_init();
    map_mmio();
    int console = uk_console_init();
    uint64_t t_console = uk_tsc();
    enum uk_clock_source clock = uk_clock_init();
    uint64_t t_clock = uk_tsc();

    if (si->magic != PVH_MAGIC) fail("no PVH start info (bad magic in %ebx's structure)");
    int truncated;
    copy_cmdline(si, &truncated);
    if (si->version < 1 || si->memmap_paddr == 0) fail("PVH start info without a memory map (version 0)");
    uint32_t entries = find_heap(si);
    acpi_rsdp = find_rsdp(si);
    if (heap_size == 0 || ukrt_heap_init((void *)heap_base, heap_size) != 0)
        fail("no free RAM above the image for the heap");
    uint64_t t_ready = uk_tsc(), pio_ready = uk_pio_count;

    if (cmdline_has_word("quiet")) uk_exit(uknet_kernel_main(cmdline));

    /* Everything above is done: now say so (the costly part under KVM). */
    milestone(uk_boot_tsc, "first instruction (PVH entry, 32-bit protected mode); uk_boot_ns ");
    uk_console_dec(uk_boot_ns() / 1000);
    uk_console_puts(" us\n");
    milestone(t_long_mode, "long mode, paging (0-4 GiB 1:1), SSE\n");
    milestone(t_ring3, "ring 3, IOPL 3 (exceptions to ring 0)\n");
    milestone(t_console, console ? "console: COM1\n" : "console: none\n");
    milestone(t_clock, "clock: TSC ");
    uk_console_dec(uk_tsc_hz() / 1000);
    uk_console_puts(clock == UK_CLOCK_CPUID ? " kHz from CPUID 0x40000010"
                    : clock == UK_CLOCK_PIT ? " kHz measured against the PIT (10 ms)"
                                            : " kHz ASSUMED: no CPUID leaf, no PIT; times are wrong");
    uk_console_puts(uk_tsc_invariant() ? ", invariant\n" : ", not invariant\n");
    milestone(t_ready, "memory: ");
    uk_console_dec(ram_bytes >> 10);
    uk_console_puts(" KiB RAM in ");
    uk_console_dec(entries);
    uk_console_puts(" map entries; image ");
    uk_console_hex((uintptr_t)__kernel_start);
    uk_console_puts("-");
    uk_console_hex((uintptr_t)__kernel_end);
    uk_console_puts("; heap ");
    uk_console_dec(heap_size >> 10);
    uk_console_puts(" KiB at ");
    uk_console_hex(heap_base);
    uk_console_puts("; ACPI RSDP ");
    if (acpi_rsdp) uk_console_hex(acpi_rsdp); else uk_console_puts("none");
    uk_console_puts("\n");
    milestone(t_ready, "cmdline: \"");
    uk_console_puts(cmdline);
    uk_console_puts(truncated ? "\" (cut: longer than 4095 bytes)\n" : "\"\n");
    milestone(t_ready, "ready: guest time ");
    uk_console_dec(since_boot_ns(t_ready) / 1000);
    uk_console_puts(" us, ");
    uk_console_dec(pio_ready);
    uk_console_puts(" port I/O to get there\n");
    uint64_t t_main = uk_tsc();
    milestone(t_main, "main: uknet_kernel_main (printing the lines above took ");
    uk_console_dec(uk_tsc_to_ns(t_main - t_ready) / 1000);
    uk_console_puts(" us)\n");

    uk_exit(uknet_kernel_main(cmdline));
}
