/* The inline helpers are in include/uk_linux.h; what needs _GNU_SOURCE lives here. */
#define _GNU_SOURCE
#include <sched.h>
#include "uk_linux.h"

int uk_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}
