#include "uk_hardware.h"

uint64_t uk_pio_count, uk_mmio_count;
