// C peer for NetdevBench: the same three loops, built on DPDK's own rte_ring and rte_mempool.
//
//   ring_peer single-ring PACKETS   rx_burst(32) -> touch one byte -> tx_burst on an SP/SC ring
//   ring_peer single-null PACKETS   alloc_bulk(32) + 60-byte template copy -> touch -> free_bulk
//   ring_peer two-core    PACKETS   forwarder (CPU 1) and reflector (CPU 0) joined by two rings
//
// Buffers come from rte_pktmbuf_pool_create (not a bare rte_mempool): the Swift NetBuf carries a
// data offset and lengths, so reaching the data through mbuf->buf_addr + data_off and setting
// data_len/pkt_len is the fair equivalent. The null loop is what DPDK's net_null does in copy mode.
//
// The loops are noipa, not just noinline: gcc -O3 would otherwise emit them as
// "peer_..._loop.constprop.0" (valgrind --toggle-collect=peer_..._loop then counts nothing) or,
// with noclone, still fold the caller's constants in (a compile-time template length).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_memcpy.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#define BURST 32
#define RING_SLOTS 1024
#define INFLIGHT 512
#define POOL_SIZE 2047  // 2^n - 1 is the mempool's best size
#define POOL_CACHE 256
#define TIME_LIMIT_S 60.0
#define LOOP __attribute__((noipa))

// EAL creates /var/run/dpdk/<prefix> (even when its init fails) and 22.11 never removes it.
static char runtime_dir[4096];

static void remove_runtime_dir(void) {
    if (runtime_dir[0] != '\0') rmdir(runtime_dir);  // empty thanks to --no-shconf
}

static void die(const char *what) {
    fprintf(stderr, "ring_peer: %s: %s\n", what, rte_strerror(rte_errno));
    remove_runtime_dir();
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// Volatile so the per-packet write survives -O3 as a real load and store.
static inline void touch(struct rte_mbuf *m) { (*rte_pktmbuf_mtod(m, volatile uint8_t *))++; }

static struct rte_ring *make_ring(const char *name) {
    struct rte_ring *r = rte_ring_create(name, RING_SLOTS, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (r == NULL) die("rte_ring_create");
    return r;
}

static void prefill(struct rte_mempool *mp, struct rte_ring *r) {
    struct rte_mbuf *m[INFLIGHT];
    if (rte_pktmbuf_alloc_bulk(mp, m, INFLIGHT) != 0) die("rte_pktmbuf_alloc_bulk (prefill)");
    for (int i = 0; i < INFLIGHT; i++) m[i]->data_len = m[i]->pkt_len = 64;
    if (rte_ring_enqueue_bulk(r, (void **)m, INFLIGHT, NULL) != INFLIGHT) die("prefill enqueue");
}

LOOP static uint64_t peer_single_ring_loop(struct rte_ring *r, uint64_t packets) {
    struct rte_mbuf *objs[BURST];
    uint64_t done = 0;
    while (done < packets) {
        unsigned want = packets - done < BURST ? (unsigned)(packets - done) : BURST;
        unsigned n = rte_ring_sc_dequeue_burst(r, (void **)objs, want, NULL);
        if (n == 0) break;  // cannot happen with 512 in flight; keeps the loop bounded anyway
        for (unsigned i = 0; i < n; i++) touch(objs[i]);
        rte_ring_sp_enqueue_burst(r, (void **)objs, n, NULL);  // always fits: these n just left
        done += n;
    }
    return done;
}

LOOP static uint64_t peer_single_null_loop(struct rte_mempool *mp, const uint8_t *tmpl, uint16_t len,
                                           uint64_t packets) {
    struct rte_mbuf *objs[BURST];
    uint64_t done = 0;
    while (done < packets) {
        unsigned n = packets - done < BURST ? (unsigned)(packets - done) : BURST;
        if (rte_pktmbuf_alloc_bulk(mp, objs, n) != 0) break;
        for (unsigned i = 0; i < n; i++) {
            rte_memcpy(rte_pktmbuf_mtod(objs[i], void *), tmpl, len);  // runtime length, rte_memcpy as in net_null
            objs[i]->data_len = len;
            objs[i]->pkt_len = len;
        }
        for (unsigned i = 0; i < n; i++) touch(objs[i]);
        rte_pktmbuf_free_bulk(objs, n);
        done += n;
    }
    return done;
}

// ---- two-core ----

struct two_core {
    struct rte_ring *ab, *ba;  // reflector -> forwarder, forwarder -> reflector
    uint64_t packets, forwarded;
    double deadline;
    atomic_bool stop;
    int timed_out;
};

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if ((rte_errno = pthread_setaffinity_np(pthread_self(), sizeof set, &set)) != 0)
        die(cpu == 0 ? "pin to CPU 0" : "pin to CPU 1");
}

LOOP static uint64_t peer_forward_loop(struct two_core *t) {
    struct rte_mbuf *objs[BURST];
    uint64_t done = 0;
    unsigned spins = 0;
    while (done < t->packets) {
        // Reading the clock once per 1024 rounds makes the 60 s bound nearly free.
        if ((++spins & 1023) == 0 && now() > t->deadline) { t->timed_out = 1; break; }
        unsigned want = t->packets - done < BURST ? (unsigned)(t->packets - done) : BURST;
        unsigned n = rte_ring_sc_dequeue_burst(t->ab, (void **)objs, want, NULL);
        for (unsigned i = 0; i < n; i++) touch(objs[i]);
        unsigned sent = 0;
        while (sent < n) {
            sent += rte_ring_sp_enqueue_burst(t->ba, (void **)objs + sent, n - sent, NULL);
            if (sent < n && now() > t->deadline) { t->timed_out = 1; return done + sent; }
        }
        done += n;
    }
    return done;
}

static void *forwarder(void *arg) {
    struct two_core *t = arg;
    pin(1);
    t->forwarded = peer_forward_loop(t);
    atomic_store_explicit(&t->stop, true, memory_order_release);
    return NULL;
}

static void reflector(struct two_core *t) {
    struct rte_mbuf *objs[BURST];
    while (!atomic_load_explicit(&t->stop, memory_order_acquire)) {
        unsigned n = rte_ring_sc_dequeue_burst(t->ba, (void **)objs, BURST, NULL);
        unsigned sent = 0;
        while (sent < n && !atomic_load_explicit(&t->stop, memory_order_relaxed))
            sent += rte_ring_sp_enqueue_burst(t->ab, (void **)objs + sent, n - sent, NULL);
    }
}

// ---- main ----

static void report(const char *mode, uint64_t n, double s) {
    printf("peer %s packets=%llu seconds=%.3f mpps=%.3f\n", mode, (unsigned long long)n, s,
           s > 0 ? (double)n / s / 1e6 : 0.0);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s single-ring|single-null|two-core PACKETS\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    char *end;
    uint64_t packets = strtoull(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0' || packets == 0) {
        fprintf(stderr, "ring_peer: PACKETS must be a positive integer\n");
        return 2;
    }
    if (strcmp(mode, "single-ring") != 0 && strcmp(mode, "single-null") != 0 &&
        strcmp(mode, "two-core") != 0) {
        fprintf(stderr, "ring_peer: unknown mode '%s'\n", mode);
        return 2;
    }

    // --no-shconf: no config/fbarray files and no IPC socket, so the prefix dir stays empty and
    // is removed at exit. (--in-memory would imply it, but 22.11 rejects it with --no-huge:
    // "--legacy-mem is not compatible with --in-memory".) -l 0: one EAL lcore (this thread);
    // two-core adds a plain pthread on CPU 1, so no idle EAL worker sits on the forwarder's CPU.
    char prefix[64];
    snprintf(prefix, sizeof prefix, "--file-prefix=ringpeer%d", (int)getpid());
    char *eal_argv[] = {"ring_peer", "--no-huge", "-m", "128", "--no-pci", "--no-shconf", prefix,
                        "--log-level=4", "-l", "0", "--no-telemetry", NULL};
    int eal_argc = (int)(sizeof eal_argv / sizeof eal_argv[0]) - 1;
    int eal_rc = rte_eal_init(eal_argc, eal_argv);
    snprintf(runtime_dir, sizeof runtime_dir, "%s", rte_eal_get_runtime_dir());
    if (eal_rc < 0) die("rte_eal_init");

    struct rte_mempool *mp = rte_pktmbuf_pool_create("peer_pool", POOL_SIZE, POOL_CACHE, 0,
                                                     RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    if (mp == NULL) die("rte_pktmbuf_pool_create");

    int rc = 0;
    if (strcmp(mode, "single-ring") == 0) {
        struct rte_ring *r = make_ring("peer_ring");
        prefill(mp, r);
        double t0 = now();
        uint64_t n = peer_single_ring_loop(r, packets);
        report(mode, n, now() - t0);
        rc = n == packets ? 0 : 1;
        rte_ring_free(r);
    } else if (strcmp(mode, "single-null") == 0) {
        // 60-byte frame: broadcast Ethernet, IPv4 ethertype, zero payload (net_null's is zeros).
        static uint8_t frame[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00};
        double t0 = now();
        uint64_t n = peer_single_null_loop(mp, frame, sizeof frame, packets);
        report(mode, n, now() - t0);
        rc = n == packets ? 0 : 1;
    } else {
        if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
            rte_errno = ENODEV;
            die("two-core needs CPUs 0 and 1");
        }
        struct two_core t = {.ab = make_ring("peer_ab"), .ba = make_ring("peer_ba"), .packets = packets};
        prefill(mp, t.ab);
        pin(0);
        atomic_init(&t.stop, false);
        pthread_t fw;
        double t0 = now();
        t.deadline = t0 + TIME_LIMIT_S;
        if ((rte_errno = pthread_create(&fw, NULL, forwarder, &t)) != 0) die("pthread_create");
        reflector(&t);
        pthread_join(fw, NULL);
        report(mode, t.forwarded, now() - t0);
        if (t.timed_out) fprintf(stderr, "ring_peer: two-core hit the %.0f s limit\n", TIME_LIMIT_S);
        rc = t.forwarded == packets ? 0 : 1;
        rte_ring_free(t.ab);
        rte_ring_free(t.ba);
    }
    if (rc != 0) fprintf(stderr, "ring_peer: %s stopped short of %llu packets\n", mode,
                         (unsigned long long)packets);

    rte_mempool_free(mp);
    rte_eal_cleanup();
    remove_runtime_dir();
    return rc;
}
