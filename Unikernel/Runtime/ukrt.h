/*
 * ukrt: the freestanding C runtime under the Embedded Swift objects (the core, the KV engine, the
 * generator) when they run without an OS. Only what those objects call, plus the knobs the
 * platform layer needs; scripts/embedded-undefined-symbols.txt lists every symbol the Swift
 * objects take from here, with the reason.
 *
 *   string.c   memset, memcpy, memmove, memcmp
 *   heap.c     posix_memalign, free over one region (a static arena by default)
 *   random.c   arc4random_buf (Hasher seeding): RDRAND, else a TSC mix; weak
 *   console.c  putchar (print): weak, into a buffer until the platform brings a serial port
 *
 * Not here, because no object needs them: malloc/calloc/realloc (Embedded Swift allocates only
 * through posix_memalign), strlen, and libm (a Set or Dictionary would bring ceil, from its table
 * sizing; a Double remainder fmod). The symbol check names any such need before it gets here.
 *
 * Single core, interrupts off: nothing here is thread-safe or reentrant.
 * Only freestanding headers (stddef.h, stdint.h): build with -ffreestanding -nostdlibinc.
 */
#ifndef UKRT_H
#define UKRT_H

#include <stddef.h>
#include <stdint.h>

/* Hands the allocator its region instead of the static arena (the platform's free memory from the
 * boot memory map). Only before the first allocation: returns 0, or -1 if the heap is already in
 * use or the region is too small to hold one block. */
int ukrt_heap_init(void *base, size_t size);

struct ukrt_heap_stats {
    size_t size;       /* bytes the allocator manages */
    size_t used;       /* bytes in allocated blocks, headers and alignment gaps included */
    size_t peak;       /* highest `used` so far */
    size_t failures;   /* posix_memalign calls answered ENOMEM or EINVAL */
};
struct ukrt_heap_stats ukrt_heap_stats(void);

/* What the default putchar kept (the platform's putchar replaces it and leaves these empty). */
extern char ukrt_console_buffer[];
extern size_t ukrt_console_length;   /* bytes kept; bytes past the buffer's end are dropped */
extern size_t ukrt_console_dropped;

#endif
