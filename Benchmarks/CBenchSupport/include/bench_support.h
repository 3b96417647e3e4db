#ifndef BENCH_SUPPORT_H
#define BENCH_SUPPORT_H
#include <stdint.h>
/* Calls to malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign in this process
 * since it started (counted by the wrappers in bench_support.c, which replace glibc's). */
uint64_t malloc_counter_calls(void);
#endif
