/* Everything is in include/uk_linux.h; SwiftPM needs one source file per C target. */
#include "uk_linux.h"
