#include "uk_hardware.h"

uint64_t uk_io_exits;
