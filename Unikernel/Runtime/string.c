/*
 * memset, memcpy, memmove, memcmp: Swift lowers variable-length copies, fills and comparisons
 * (buffer copies, zeroed allocations, byte-wise equality) to these calls.
 *
 * x86_64 string instructions keep this small and fast on every CPU that has ERMSB (Ivy Bridge
 * and later, Zen 3 and later): `rep movsb`/`rep stosb` are byte-exact by definition, including
 * for overlap when copying forwards. Built with -ffreestanding, so the compiler never turns the
 * loops below back into calls to these very functions.
 */
#include <stddef.h>
#include <stdint.h>

void *memset(void *dst, int c, size_t n) {
    void *d = dst;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

void *memcpy(void *restrict dst, const void *restrict src, size_t n) {
    void *d = dst;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    /* A forward copy is right unless the destination starts inside the source. */
    if ((uintptr_t)d - (uintptr_t)s >= n) {
        __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
        return dst;
    }
    /* Backwards byte by byte: `std; rep movsb` is the slow microcode path anyway, and this case
     * (an overlapping shift towards higher addresses) is rare. */
    while (n-- > 0) d[n] = s[n];
    return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}
