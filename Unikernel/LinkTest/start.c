/*
 * The C half of the link test: `_start`, an allocator check, and a way out. The binary is linked
 * like the unikernel (no libc, -static, --gc-sections, the ukrt runtime) but started as a plain
 * Linux process, so the check can run it: Linux appears only here, in two system calls (write,
 * exit). The runtime has none.
 *
 *   linktest               allocator checks, then LinkTest.swift; prints what print() kept
 *   linktest double-free   frees one block twice: the runtime must stop it (SIGILL from ud2)
 */
#include <stddef.h>
#include <stdint.h>
#include "ukrt.h"

int posix_memalign(void **out, size_t alignment, size_t size);
void free(void *p);
int uknet_link_test_main(void);   /* LinkTest.swift */

static long syscall3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
static void write_out(const char *s, size_t n) { syscall3(1, 1, (long)s, (long)n); }
static void say(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    write_out(s, n);
}
static _Noreturn void leave(int status) {
    for (;;) syscall3(60, status, 0, 0);
}

static int failures;
static void check(int ok, const char *what) {
    if (ok) return;
    say("link-test: FAIL heap: ");
    say(what);
    say("\n");
    failures++;
}

/* Runs before any Swift code, on an empty heap: every block is returned at the end. */
static void check_heap(void) {
    struct ukrt_heap_stats s0 = ukrt_heap_stats();
    void *a = 0, *b = 0, *c = 0, *untouched = (void *)0x1;
    check(posix_memalign(&a, 8, 100) == 0 && (uintptr_t)a % 16 == 0, "small block, 16-byte aligned");
    check(posix_memalign(&b, 4096, 5000) == 0 && (uintptr_t)b % 4096 == 0, "page-aligned block");
    check(posix_memalign(&c, 16, 0) == 0 && c && c != a && c != b, "size 0: a distinct block");
    for (int i = 0; i < 100; i++) ((unsigned char *)a)[i] = 0xAA;
    for (int i = 0; i < 5000; i++) ((unsigned char *)b)[i] = 0xBB;
    check(((unsigned char *)a)[99] == 0xAA && ((unsigned char *)b)[0] == 0xBB, "blocks do not overlap");

    void *p = untouched;
    check(posix_memalign(&p, 24, 64) == 22 && p == untouched, "alignment not a power of two: EINVAL");
    check(posix_memalign(&p, 4, 64) == 22 && p == untouched, "alignment below sizeof(void *): EINVAL");
    check(posix_memalign(&p, 16, (size_t)-1) == 12 && p == untouched, "SIZE_MAX: ENOMEM, no wrap");
    check(posix_memalign(&p, 16, s0.size) == 12 && p == untouched, "larger than the heap: ENOMEM");
    free(b);
    free(a);
    free(c);
    free(0);
    check(ukrt_heap_stats().used == 0, "everything freed");

    /* Fill the heap with 64 KiB blocks until it says no, then give all back: the free list must
     * merge into one block again, which the heap-sized allocation after it proves. */
    static void *blocks[1024];
    int n = 0;
    while (n < 1024 && posix_memalign(&blocks[n], 64, 65536) == 0) n++;
    check(n > 1 && n < 1024, "exhaustion ends in ENOMEM");
    check(ukrt_heap_stats().used <= s0.size, "never more than the heap");
    for (int i = 0; i < n; i += 2) free(blocks[i]);   /* every other block first: no merging */
    for (int i = 1; i < n; i += 2) free(blocks[i]);
    check(ukrt_heap_stats().used == 0, "exhausted heap all freed");
    check(posix_memalign(&p, 16, s0.size - 16) == 0, "free blocks merged back into one");
    free(p);
}

__attribute__((used)) static _Noreturn void start_main(long argc, char **argv) {
    if (argc > 1 && argv[1][0] == 'd') {
        void *p = 0;
        posix_memalign(&p, 16, 64);
        free(p);
        free(p);   /* must not return */
        say("link-test: a double free went unnoticed\n");
        leave(1);
    }
    check_heap();
    int status = uknet_link_test_main();
    write_out(ukrt_console_buffer, ukrt_console_length);
    leave(failures ? 100 : status);
}

/* Linux enters with argc at (%rsp) and argv above it; C wants a 16-byte aligned stack at a call. */
__attribute__((naked)) void _start(void) {
    __asm__("xor %ebp, %ebp\n\t"
            "mov (%rsp), %rdi\n\t"
            "lea 8(%rsp), %rsi\n\t"
            "and $-16, %rsp\n\t"
            "call start_main\n\t"
            "ud2");
}
