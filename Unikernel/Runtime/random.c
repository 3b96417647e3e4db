/*
 * arc4random_buf: Embedded Swift's stdlib calls it for one thing in these objects: the Hasher
 * seed (two 64-bit words, drawn on the first hash of the program's life), which every Hashable
 * value uses. The need cannot be compiled away: besides the explicit conformances (NetBuf,
 * MACAddress, IPv4Address, OffloadFlags), every payload-free enum (KVStore's StoreCommand,
 * PktGen's FlowVariation, ...) is Hashable by the language, and the Embedded stdlib has no
 * deterministic-hashing switch. So the runtime provides it.
 *
 * What the seed is for: a per-boot secret that keeps someone who chooses keys (addresses, in a
 * network stack) from forcing collisions in a Set or Dictionary (hash flooding). Nothing more:
 * it is not a key, nonce or sequence number, and nothing should use this function as one.
 *
 * The source, honestly:
 *  - RDRAND when CPUID says the CPU has it (retried up to 10 times per word, Intel's advice; an
 *    all-ones result counts as a failure, an AMD erratum). Unpredictable as far as RDRAND is.
 *  - Otherwise (QEMU's qemu64 and TCG CPU models have no RDRAND; platform-facts recommends
 *    -cpu qemu64 on this machine's nested KVM): the time-stamp counter, run through SplitMix64
 *    with a counter. Each word differs, but the entropy is only the jitter of a boot's cycle
 *    count: someone who can time the boot could guess the seed. Treat the seed as weak there.
 * Weak, so the platform can replace it with a better source (virtio-rng, RDSEED) without
 * touching this file.
 */
#include <stddef.h>
#include <stdint.h>

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int has_rdrand(void) {
    uint32_t a = 1, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    return (c >> 30) & 1;
}

static int rdrand64(uint64_t *out) {
    for (int i = 0; i < 10; i++) {
        uint64_t v;
        unsigned char ok;
        __asm__ volatile("rdrand %0; setc %1" : "=r"(v), "=qm"(ok) : : "cc");
        if (ok && v != ~0ull) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

static uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

__attribute__((weak)) void arc4random_buf(void *buf, size_t n) {
    static uint64_t counter;
    static int rdrand = -1;   /* unknown until the first call */
    if (rdrand < 0) rdrand = has_rdrand();
    unsigned char *p = buf;
    while (n > 0) {
        uint64_t word;
        if (!rdrand || !rdrand64(&word)) {
            uint64_t state = rdtsc() ^ (counter++ << 32);
            word = splitmix64(&state);
        }
        for (int i = 0; i < 8 && n > 0; i++, n--) {
            *p++ = (unsigned char)word;
            word >>= 8;
        }
    }
}
