/*
 * boot.S: the unikernel's first instructions, from the PVH entry to C.
 *
 * `qemu-system-x86_64 -kernel IMAGE` boots an ELF that carries a PVH entry note (below): the
 * firmware's PVH option ROM (pvh.bin, under SeaBIOS, qboot, or microvm's qboot) loads the ELF's
 * segments, builds an hvm_start_info (command line, memory map) and jumps to the note's address in
 * 32-bit protected mode: paging off, flat 4 GiB segments, interrupts off, %ebx = &hvm_start_info.
 * The stub takes it to 64-bit mode and calls uk_platform_start(start_info) (start.c), which sets
 * up the exception handlers and leaves ring 0 for good through uk_enter_ring3 (below): .bss is
 * cleared, and everything else, the platform's set-up and the app, runs in ring 3.
 *
 * Why ring 3: this machine's /dev/kvm is kvm-pvm (software virtualization inside a VM): it runs a
 * guest's ring-3 code natively but emulates its ring-0 code instruction by instruction (~0.4 us
 * each, 1000 times slower), and its emulator knows SSE moves but no SSE arithmetic (xorps, paddq,
 * any double: "KVM internal error ... emulation failure"). In ring 3 the Swift code runs at native
 * speed with all of SSE. On hardware KVM and under TCG ring 3 costs nothing: there are no system
 * calls (IOPL 3 allows port I/O, cli/sti; every page is user-accessible), and exceptions switch to
 * a ring-0 stack (the TSS's RSP0), which also makes Swift's red zone safe.
 *
 * Memory: the image is linked at 1 MiB (kernel.ld) and runs at the addresses it was linked at.
 * Paging maps the first 4 GiB 1:1 (virtual = physical, so a DMA address is just a pointer) with
 * 2 MiB pages, which every x86_64 CPU has: 0-3 GiB write-back (RAM), 3-4 GiB uncached (the PCI
 * MMIO hole, the LAPIC and IOAPIC, microvm's virtio-mmio windows near 0xFEB00000). The tables for
 * 0-1 GiB (the image, the boot info and RAM up to -m 1G) are in the image, written at build time
 * (12 KiB of it): building them here took ~5,000 emulated ring-0 instructions, ~2 ms of boot
 * under kvm-pvm. start.c maps the rest (3-4 GiB, and 1-3 GiB as far as the memory map has RAM)
 * from ring 3, where kvm-pvm runs it natively: directories not yet in use are plain memory there,
 * while one in use is write-protected by kvm-pvm's shadow paging (every store to it traps).
 * RAM above 3 GiB (-m above ~3 GiB, which QEMU puts above 4 GiB) is not used. Every page is
 * writable, executable and user-accessible: one program, no protection between its parts.
 */

#define XEN_ELFNOTE_PHYS32_ENTRY 18

#define CR0_PE      (1 << 0)     /* protected mode (already on) */
#define CR0_MP      (1 << 1)     /* with TS: wait/fwait trap (SSE wants MP set, EM clear) */
#define CR0_EM      (1 << 2)     /* x87/SSE emulation: must be off, or every SSE instruction faults */
#define CR0_TS      (1 << 3)     /* task switched: the first SSE instruction would fault (#NM) */
#define CR0_NE      (1 << 5)     /* x87 errors as exceptions, not the legacy IRQ 13 */
#define CR0_NW      (1 << 29)    /* not write-through, and */
#define CR0_CD      (1 << 30)    /* cache disable: both set at reset */
#define CR0_PG      (1 << 31)
#define CR4_PAE     (1 << 5)     /* long mode requires PAE paging */
#define CR4_OSFXSR  (1 << 9)     /* the OS saves SSE state: SSE instructions allowed */
#define CR4_OSXMMEXCPT (1 << 10) /* SSE floating-point errors as #XM */
#define MSR_EFER    0xC0000080
#define EFER_LME    (1 << 8)     /* long mode, active once paging is on */

#define PTE_P   0x01
#define PTE_RW  0x02
#define PTE_US  0x04             /* user-accessible: the code runs in ring 3 */
#define PTE_PWT 0x08
#define PTE_PCD 0x10             /* PWT|PCD: uncached under the reset PAT */
#define PTE_PS  0x80             /* a 1 GiB / 2 MiB page */
#define PTE     (PTE_P + PTE_RW + PTE_US)

#define STACK_SIZE       (64 * 1024)
#define TRAP_STACK_SIZE  (16 * 1024)

#define USER_DATA 0x1b           /* GDT selectors | RPL 3 (see uk_gdt) */
#define USER_CODE 0x23
#define RFLAGS_IOPL3 0x3002      /* IOPL 3 (port I/O in ring 3), IF 0, bit 1 (always set) */

/* The PVH entry note: name "Xen", type 18, the 32-bit entry address. QEMU finds it through the
 * PT_NOTE program header (kernel.ld) and reads the descriptor at the name's end rounded up to that
 * segment's alignment, so the section stays 4-byte aligned. Linux writes an 8-byte descriptor on
 * 64-bit kernels; QEMU reads its low 32 bits. */
    .section .note.pvh, "a", @note
    .p2align 2
    .long 4                         /* n_namesz: "Xen" and its NUL */
    .long 8                         /* n_descsz */
    .long XEN_ELFNOTE_PHYS32_ENTRY  /* n_type */
    .asciz "Xen"
    .p2align 2
    .quad uk_pvh_entry

    .section .text.boot, "ax", @progbits
    .code32
    .globl uk_pvh_entry
uk_pvh_entry:
    cli
    cld
    /* The first instruction's time: uk_boot_tsc is in .data, which nothing clears. */
    rdtsc
    movl %eax, uk_boot_tsc
    movl %edx, uk_boot_tsc + 4
    movl %ebx, %esi                 /* &hvm_start_info: %esi survives everything below */

    /* Long mode: PAE and SSE in CR4, the tables in CR3, EFER.LME, then paging on. CR0 gets its
     * cache bits cleared too: CD and NW are set at reset and firmware need not clear them. */
    movl $uk_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $(CR4_PAE + CR4_OSFXSR + CR4_OSXMMEXCPT), %eax
    movl %eax, %cr4
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    andl $~(CR0_EM + CR0_TS + CR0_NW + CR0_CD), %eax
    orl $(CR0_PG + CR0_PE + CR0_MP + CR0_NE), %eax
    movl %eax, %cr0                 /* now in compatibility mode: 32-bit code, 4-level paging */

    /* Our GDT, and a far jump into its 64-bit code segment. */
    lgdt uk_gdt_descriptor
    ljmp $0x08, $long_mode

    .code64
long_mode:
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    xorl %eax, %eax
    movl %eax, %fs
    movl %eax, %gs
    leaq uk_boot_stack_top(%rip), %rsp   /* 16-byte aligned: the call leaves it as the ABI wants */
    xorl %ebp, %ebp                       /* the end of the frame chain for a debugger */
    movl %esi, %edi                       /* zero-extends: the start info lies below 4 GiB */
    call uk_platform_start                /* start.c: .bss is not clear yet; it uses none */
5:  hlt                                   /* uk_platform_start does not return: never reached */
    jmp 5b

/* uk_enter_ring3(void (*fn)(void *), void *arg, void *stack_top): leaves ring 0 for good. An
 * iretq into ring 3 with IOPL 3, on stack_top (16-byte aligned), and a call of fn(arg).
 * There, before fn: .bss cleared (QEMU's loader zero-fills it, but the PVH ABI does not promise
 * that). fn must not return. */
    .globl uk_enter_ring3
uk_enter_ring3:
    movq %rdi, %r8
    movq %rsi, %r9
    pushq $USER_DATA                      /* ss */
    pushq %rdx                            /* rsp */
    pushq $RFLAGS_IOPL3                   /* rflags */
    pushq $USER_CODE                      /* cs */
    leaq ring3(%rip), %rax
    pushq %rax                            /* rip */
    iretq
ring3:
    leaq __bss_start(%rip), %rdi
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    shrq $3, %rcx                         /* kernel.ld aligns both ends to 16 */
    xorl %eax, %eax
    rep stosq
    movq %r9, %rdi
    call *%r8
6:  jmp 6b                                /* fn does not return: never reached (no hlt in ring 3) */

/* CPU exceptions 0-31: one 16-byte stub per vector (start.c fills the IDT from uk_trap_stubs +
 * 16 * vector). Each pushes its vector number and joins uk_trap_common, which hands C a pointer to
 * [vector, (error code,) rip, cs, rflags, rsp, ss]. From ring 3 the CPU switches to the TSS's
 * ring-0 stack first. Fatal reports only (uk_trap prints and exits), never a return. */
    .p2align 4
    .globl uk_trap_stubs
uk_trap_stubs:
    .irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .p2align 4
    pushq $\vector
    jmp uk_trap_common
    .endr
uk_trap_common:
    movq %rsp, %rdi
    andq $-16, %rsp
    call uk_trap                          /* does not return */

/* Idle: ring 3 calls uk_idle_hlt after arming the local APIC timer (clock.c's uk_idle). Its hlt
 * needs ring 0: it raises #GP, and uk_gp_entry (IDT vector 13), seeing the fault at this very
 * instruction, resumes after it, halts in ring 0 with interrupts on until the timer's interrupt
 * (uk_timer_entry: EOI) or any other, and returns to ring 3. The vCPU sleeps in the host
 * meanwhile: a poller that naps lets another program have the CPU. Any other #GP is fatal, as
 * every exception is (uk_trap_stubs' vector 13). */
    .globl uk_idle_hlt
uk_idle_hlt:
    hlt
    ret

    .globl uk_gp_entry
uk_gp_entry:                              /* [error code, rip, cs, rflags, rsp, ss] */
    pushq %rax
    leaq uk_idle_hlt(%rip), %rax
    cmpq %rax, 16(%rsp)
    jne 1f
    popq %rax
    addq $8, %rsp                         /* the error code */
    incq (%rsp)                           /* resume after the one-byte hlt */
    sti
    hlt
    cli
    iretq
1:  popq %rax
    pushq $13
    jmp uk_trap_common

    .globl uk_timer_entry
uk_timer_entry:                           /* the local APIC timer (vector 0x40): end of interrupt */
    pushq %rax
    movl $0xfee000b0, %eax
    movl $0, (%rax)
    popq %rax
    iretq

    .globl uk_spurious_entry
uk_spurious_entry:                        /* the local APIC's spurious vector (0x4f): no EOI */
    iretq

/* uk_halt: stops the machine for good (interrupts are off: nothing wakes it). hlt needs ring 0:
 * in ring 3 it raises #GP, and uk_trap, seeing the fault at this very instruction, calls uk_halt
 * again from ring 0. (Not `int n` through a ring-3 gate: kvm-pvm answers that with #UD.) */
    .globl uk_halt
uk_halt:
    hlt
    jmp uk_halt

    .section .data.boot, "aw", @progbits
    .p2align 4
    .globl uk_gdt
uk_gdt:
    .quad 0                         /* the null descriptor */
    .quad 0x00AF9A000000FFFF        /* 0x08: code, 64-bit (L), present, ring 0 */
    .quad 0x00CF92000000FFFF        /* 0x10: data, writable, present, ring 0 */
    .quad 0x00CFF2000000FFFF        /* 0x18: data, writable, present, ring 3 */
    .quad 0x00AFFA000000FFFF        /* 0x20: code, 64-bit (L), present, ring 3 */
    .quad 0, 0                      /* 0x28: the TSS (16 bytes; start.c fills it in) */
uk_gdt_end:
uk_gdt_descriptor:
    .word uk_gdt_end - uk_gdt - 1   /* limit */
    .quad uk_gdt                    /* base (lgdt in 32-bit mode reads the low 4 bytes) */

    .p2align 3
    .globl uk_boot_tsc
uk_boot_tsc:                        /* the TSC at uk_pvh_entry's first instruction */
    .quad 0

    /* The page tables for 0-1 GiB, complete in the image: PML4[0] -> the PDPT, PDPT[0] -> page
     * directory 0, whose 512 entries map 0-1 GiB with 2 MiB pages. */
    .section .data.pagetables, "aw", @progbits
    .p2align 12
    .globl uk_pdpt                  /* start.c maps 1-4 GiB through it */
uk_pml4:
    .quad uk_pdpt + PTE
    .fill 511, 8, 0
uk_pdpt:
    .quad uk_pd0 + PTE
    .fill 511, 8, 0
uk_pd0:
    .set page, 0
    .rept 512
    .quad page + PTE + PTE_PS
    .set page, page + 0x200000
    .endr

    /* Not cleared at boot (kernel.ld puts .noinit after __bss_end): the stacks need no zeros, and
     * the page directories for 1-4 GiB are written whole before use (start.c). */
    .section .noinit.boot, "aw", @nobits
    .p2align 12
    .globl uk_pd_high
uk_pd_high:                         /* GiB 1, 2 and 3 */
    .skip 3 * 4096
    .p2align 4
    .globl uk_boot_stack_top, uk_trap_stack_top
uk_boot_stack:                      /* ring 0 until uk_enter_ring3, then ring 3's: no guard page */
    .skip STACK_SIZE
uk_boot_stack_top:
uk_trap_stack:                      /* exceptions from ring 3 land here (TSS.RSP0) */
    .skip TRAP_STACK_SIZE
uk_trap_stack_top:
