#include "malloc_counter.h"
uint64_t malloc_counter_calls(void) { return 0; }
