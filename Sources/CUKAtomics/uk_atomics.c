/* Everything lives in include/uk_atomics.h as static inline functions; SwiftPM needs one source file per C target. */
#include "uk_atomics.h"
