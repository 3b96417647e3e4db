/*
 * console.c: the serial console on COM1 (a 16550 UART at 0x3F8), QEMU's -serial.
 *
 * putchar here is strong and replaces the runtime's weak one (Unikernel/Runtime/console.c), so
 * Swift's print() writes to the serial port. Output only; no interrupts.
 *
 * Cost: every port access is a VM exit under KVM. The FIFO is on, so the transmitter's state
 * (LSR.THRE: "the FIFO is empty") is read once per 16 bytes, not once per byte: about 1.06 port
 * accesses per byte instead of 2. "\n" is sent as is (no "\r": QEMU's stdio and a pipe need none).
 */
#include "platform.h"

#define COM1 0x3F8
#define THR 0     /* transmit holding register (DLAB 0) */
#define DLL 0     /* divisor latch, low byte (DLAB 1) */
#define IER 1     /* interrupt enable (DLAB 0) */
#define DLM 1     /* divisor latch, high byte (DLAB 1) */
#define FCR 2     /* FIFO control */
#define LCR 3     /* line control */
#define MCR 4     /* modem control */
#define LSR 5     /* line status */
#define LSR_THRE 0x20
#define FIFO_SIZE 16
/* How long to wait for the FIFO to drain: at 115200 baud 16 bytes take 1.4 ms, far fewer polls
 * than this; QEMU drains it at once. Past it the byte goes out anyway (a lost byte, not a hang). */
#define DRAIN_POLLS 100000

static int present;
static unsigned queued;   /* bytes written since the FIFO was last seen empty */

int uk_console_init(void) {
    /* A port with nothing behind it reads 0xFF; a 16550's LSR never does (bit 7 is a FIFO error). */
    if (uk_inb(COM1 + LSR) == 0xFF) return present = 0;
    uk_outb(COM1 + IER, 0x00);   /* no interrupts */
    uk_outb(COM1 + LCR, 0x80);   /* DLAB: the divisor follows */
    uk_outb(COM1 + DLL, 1);      /* 115200 baud (QEMU ignores it; real UARTs do not) */
    uk_outb(COM1 + DLM, 0);
    uk_outb(COM1 + LCR, 0x03);   /* 8 data bits, no parity, 1 stop bit; DLAB off */
    uk_outb(COM1 + FCR, 0xC7);   /* FIFOs on and cleared */
    uk_outb(COM1 + MCR, 0x03);   /* DTR, RTS */
    queued = 0;
    return present = 1;
}

int uk_console_ready(void) { return present; }

static void put(char c) {
    if (!present) return;
    if (queued == FIFO_SIZE) {
        for (int i = 0; i < DRAIN_POLLS && !(uk_inb(COM1 + LSR) & LSR_THRE); i++) uk_pause();
        queued = 0;
    }
    uk_outb(COM1 + THR, (uint8_t)c);
    queued++;
}

int putchar(int c) {
    put((char)c);
    return (unsigned char)c;
}

void uk_console_write(const char *bytes, size_t length) {
    for (size_t i = 0; i < length; i++) put(bytes[i]);
}

void uk_console_puts(const char *s) {
    while (*s) put(*s++);
}

void uk_console_dec(uint64_t v) {
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) put(digits[--n]);
}

void uk_console_hex(uint64_t v) {
    int shift = 60;
    while (shift > 0 && !(v >> shift)) shift -= 4;   /* no leading zeros */
    uk_console_puts("0x");
    for (; shift >= 0; shift -= 4) put("0123456789abcdef"[(v >> shift) & 0xF]);
}

void uk_console_time(uint64_t ns) {
    uint64_t us = ns / 1000;
    put('[');
    uk_console_dec(us / 1000000);
    put('.');
    for (uint64_t d = 100000; d; d /= 10) put((char)('0' + us / d % 10));
    uk_console_puts("] ");
}
