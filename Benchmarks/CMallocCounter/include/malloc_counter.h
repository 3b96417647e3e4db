#ifndef MALLOC_COUNTER_H
#define MALLOC_COUNTER_H
#include <stdint.h>
/* Calls to malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign in this process
 * since it started (counted by the wrappers in malloc_counter.c, which replace glibc's). */
uint64_t malloc_counter_calls(void);
#endif
