/*
 * putchar: Embedded Swift's print() writes through it, byte by byte. The platform layer (the
 * serial console) defines the real one; this weak default keeps the bytes in a buffer so a
 * program without a console (the link test, or a kernel before its serial port is up) loses
 * nothing it could show later. Bytes past the buffer's end are counted and dropped.
 */
#include <stddef.h>
#include <stdint.h>
#include "ukrt.h"

#ifndef UKRT_CONSOLE_SIZE
#define UKRT_CONSOLE_SIZE 4096
#endif

char ukrt_console_buffer[UKRT_CONSOLE_SIZE];
size_t ukrt_console_length;
size_t ukrt_console_dropped;

__attribute__((weak)) int putchar(int c) {
    if (ukrt_console_length < sizeof ukrt_console_buffer)
        ukrt_console_buffer[ukrt_console_length++] = (char)c;
    else
        ukrt_console_dropped++;
    return (unsigned char)c;
}
