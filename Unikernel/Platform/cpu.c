/*
 * cpu.c: the CPU's tables for the one-way trip to ring 3 (see boot.S for why ring 3), and the
 * report of a CPU exception.
 *
 *   IDT   vectors 0-31 (exceptions) -> boot.S's stubs -> uk_trap, which prints what happened and
 *         where, then exits with UK_STATUS_TRAP: a Swift trap (fatalError, precondition, overflow,
 *         an index out of bounds: ud2, #UD) or a bad free in the heap becomes a message and a
 *         status instead of a silent triple fault (a reset, which -no-reboot turns into an exit
 *         that says nothing). A #GP at uk_halt's hlt (boot.S) is ring 3 asking to halt: done.
 *   TSS   RSP0, the stack exceptions from ring 3 switch to, and an I/O permission bitmap that
 *         allows every port. IOPL 3 alone should allow ring 3 all ports, and does on hardware
 *         and TCG; kvm-pvm checks the bitmap regardless (without it the first inb faults, #GP).
 *
 * uk_cpu_init (ring 0, before .bss is cleared) only loads the two tables' registers; the tables
 * are in .bss and uk_cpu_ring3_init fills them in ring 3 once .bss is clear, where kvm-pvm runs
 * the ~600 instructions natively instead of emulating them (~0.25 ms of boot). Compiled without SSE (-mgeneral-regs-only, scripts/build-image.sh) like all the platform's
 * C, since kvm-pvm cannot emulate SSE arithmetic in ring 0.
 */
#include "platform.h"

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type;              /* present, DPL, 64-bit interrupt gate (0xE) */
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t zero;
};
#define GATE_RING0 0x8E

struct __attribute__((packed)) tss {
    uint32_t reserved0;
    uint64_t rsp[3];           /* rsp[0]: the stack for exceptions from ring 3 */
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;       /* where the I/O permission bitmap starts */
};
#define TSS_SELECTOR 0x28
#define IOMAP_BYTES (65536 / 8)    /* a bit per port; a 0 bit allows the port */

/* Vectors 0-31 (exceptions), 0x40 (the local APIC timer: uk_idle) and 0x4f (its spurious vector,
 * which must end in 1111); 0x20-0x4f otherwise "not present". */
#define IDT_VECTORS 0x50
static struct idt_gate idt[IDT_VECTORS];
static struct __attribute__((packed)) {
    struct tss tss;
    uint8_t iomap[IOMAP_BYTES + 1];   /* the CPU wants a byte of all ones after the bitmap */
} tss __attribute__((aligned(16)));

extern uint64_t uk_gdt[];                       /* boot.S: 0x28 and 0x30 are the TSS's */
extern char uk_trap_stack_top[];

static void set_gate(int vector, uintptr_t handler, uint8_t type) {
    idt[vector] = (struct idt_gate){(uint16_t)handler, 0x08, 0, type, (uint16_t)(handler >> 16),
                                    (uint32_t)(handler >> 32), 0};
}

/* Ring 0: only what needs it (the IDT's and the TSS's registers, the TSS descriptor ltr checks).
 * The CPU reads the gates and the TSS's fields when an exception comes, not when lidt or ltr
 * runs, so uk_cpu_ring3_init writes them, natively, before anything in ring 3 can fault. */
void uk_cpu_init(void) {
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } idtr = {sizeof idt - 1, (uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(idtr));
    uint64_t base = (uintptr_t)&tss, limit = sizeof tss - 1;
    uk_gdt[TSS_SELECTOR / 8] = (limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | 0x89ull << 40 |   /* present, 64-bit TSS */
                               ((limit >> 16) & 0xF) << 48 | ((base >> 24) & 0xFF) << 56;
    uk_gdt[TSS_SELECTOR / 8 + 1] = base >> 32;
    __asm__ volatile("ltr %w0" : : "r"(TSS_SELECTOR));
}

/* Ring 3, right after .bss is cleared (the IDT and the TSS are in .bss: all zeros until here). */
void uk_cpu_ring3_init(void) {
    tss.tss.rsp[0] = (uintptr_t)uk_trap_stack_top;
    tss.tss.iomap_base = sizeof tss.tss;
    tss.iomap[IOMAP_BYTES] = 0xFF;
    for (int v = 0; v < 32; v++) set_gate(v, (uintptr_t)uk_trap_stubs + 16 * (uintptr_t)v, GATE_RING0);
    set_gate(13, (uintptr_t)uk_gp_entry, GATE_RING0);                /* ring 3's idle hlt, else fatal */
    set_gate(0x40, (uintptr_t)uk_timer_entry, GATE_RING0);           /* the local APIC timer (uk_idle) */
    set_gate(0x4F, (uintptr_t)uk_spurious_entry, GATE_RING0);
}

static const char *const trap_names[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound",
    "#UD invalid opcode: a Swift trap (fatalError, precondition, overflow, bounds) or a bad free",
    "#NM no FPU", "#DF double fault", "coprocessor segment overrun", "#TS invalid TSS",
    "#NP segment not present", "#SS stack fault", "#GP general protection", "#PF page fault",
    0, "#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD error",
    "#VE virtualization", "#CP control protection",
};

/* boot.S: frame = [vector, (error code,) rip, cs, rflags, rsp, ss]. */
_Noreturn void uk_trap(const uint64_t *frame) {
    uint64_t vector = frame[0] & 31;
    int has_error = vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 ||
                    vector == 29 || vector == 30;
    const uint64_t *hw = frame + 1 + has_error;   /* rip, cs, rflags, rsp, ss */
    if (vector == 13 && hw[0] == (uintptr_t)uk_halt) uk_halt();   /* ring 3 asked to halt */
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    if (!uk_console_ready()) uk_console_init();   /* a trap before the console was set up */
    uk_console_puts("\npanic: CPU exception ");
    uk_console_dec(vector);
    uk_console_puts(" (");
    uk_console_puts(trap_names[vector] ? trap_names[vector] : "reserved");
    uk_console_puts(") at rip ");
    uk_console_hex(hw[0]);
    uk_console_puts((hw[1] & 3) == 3 ? " (ring 3)" : " (ring 0)");
    if (has_error) {
        uk_console_puts(", error code ");
        uk_console_hex(frame[1]);
    }
    if (vector == 14) {
        uk_console_puts(", address ");
        uk_console_hex(cr2);
    }
    uk_console_puts(", rsp ");
    uk_console_hex(hw[3]);
    uk_console_puts("\n");
    uk_exit(UK_STATUS_TRAP);
}
