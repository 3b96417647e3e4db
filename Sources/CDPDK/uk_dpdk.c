/* uk_dpdk.c: see include/uk_dpdk.h. */
#define _GNU_SOURCE
#include "uk_dpdk.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ip.h>
#include <netinet/in.h>

_Static_assert(sizeof(struct rte_mbuf) == UK_DPDK_MBUF_BYTES, "rte_mbuf is not 128 bytes in this DPDK");

/* UKNetdev's NetBuf header (Sources/UKNetdev/NetBuf.swift, NetBuf.Field); DPDKNet checks these
 * against Swift's own at start-up (uk_dpdk_netbuf_layout). */
enum {
    NB_POOL = 0, NB_NEXT = 8, NB_ROOM = 16, NB_REFCOUNT = 24, NB_KIND = 28, NB_DATA_OFFSET = 32,
    NB_LENGTH = 36, NB_PACKET_LENGTH = 40, NB_FLAGS = 44, NB_SEGMENTS = 46, NB_CSUM_START = 48,
    NB_CSUM_OFFSET = 50, NB_CAPACITY = 60, NB_HEADER = 64,
};
enum { NB_NEEDS_CSUM = 1 << 0, NB_NEEDS_IP_CSUM = 1 << 1, NB_CSUM_VALID = 1 << 8, NB_CSUM_BAD = 1 << 9,
       NB_IP_CSUM_VALID = 1 << 10 };

void uk_dpdk_netbuf_layout(uint16_t out[14]) {
    const uint16_t v[14] = {NB_POOL, NB_NEXT, NB_ROOM, NB_REFCOUNT, NB_KIND, NB_DATA_OFFSET, NB_LENGTH,
                            NB_PACKET_LENGTH, NB_FLAGS, NB_SEGMENTS, NB_CSUM_START, NB_CSUM_OFFSET, NB_CAPACITY, NB_HEADER};
    memcpy(out, v, sizeof v);
}

#define U16(h, o) (*(uint16_t *)((char *)(h) + (o)))
#define U32(h, o) (*(uint32_t *)((char *)(h) + (o)))
#define PTR(h, o) (*(void **)((char *)(h) + (o)))

static inline struct rte_mbuf *mbuf_of(void *header) { return (struct rte_mbuf *)((char *)header - UK_DPDK_MBUF_BYTES); }
static inline void *header_of(struct rte_mbuf *m) { return (char *)m + UK_DPDK_MBUF_BYTES; }

/* ---- Bursts and unmapping ----------------------------------------------------------------------
 * Some PMDs share memory with a peer and unmap it on EAL's control thread when the peer goes away,
 * with nothing to keep that from happening while the polling thread is inside rx_burst/tx_burst on
 * those very rings (DPDK 22.11's memif: memif_disconnect clears its CONNECTED flag, then munmaps the
 * regions at once; a poller preempted inside a burst then touches unmapped memory and dies). So the
 * bursts here are counted, and munmap, from any other thread, first waits (a bounded spin: a burst
 * takes microseconds) until no burst is in progress. The PMD has cleared its flag before it unmaps,
 * and the full fences on both sides (Dekker's pattern) mean a burst that starts later sees the flag
 * and touches nothing. Costs two atomic operations per burst. */
static atomic_int bursts_in_progress;
static _Thread_local int in_burst;

static inline void burst_begin(void) {
    in_burst = 1;
    atomic_fetch_add_explicit(&bursts_in_progress, 1, memory_order_seq_cst);
}
static inline void burst_end(void) {
    atomic_fetch_sub_explicit(&bursts_in_progress, 1, memory_order_release);
    in_burst = 0;
}

int munmap(void *addr, size_t length) {
    static int (*real_munmap)(void *, size_t);
    if (!real_munmap) real_munmap = (int (*)(void *, size_t))dlsym(RTLD_NEXT, "munmap");
    if (!in_burst) {
        atomic_thread_fence(memory_order_seq_cst);
        for (long spins = 0; atomic_load_explicit(&bursts_in_progress, memory_order_acquire) != 0 && spins < 100000000; spins++)
            rte_pause();
    }
    return real_munmap(addr, length);
}

/* ---- EAL ---------------------------------------------------------------------------------- */

int uk_dpdk_eal_init(int argc, const char *const *argv, int keep_affinity) {
    char **copy = calloc((size_t)argc + 1, sizeof *copy);   /* kept: EAL may hold on to them */
    if (!copy) return -1;
    for (int i = 0; i < argc; i++) copy[i] = strdup(argv[i]);
    cpu_set_t cpus;
    int saved = keep_affinity && pthread_getaffinity_np(pthread_self(), sizeof cpus, &cpus) == 0;
    int rc = rte_eal_init(argc, copy);
    if (saved) pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
    return rc;
}
int uk_dpdk_errno(void) { return rte_errno; }
const char *uk_dpdk_strerror(int error) { return rte_strerror(error); }
uint16_t uk_dpdk_port_count(void) { return rte_eth_dev_count_avail(); }

int uk_dpdk_port_is_valid(uint16_t port) { return rte_eth_dev_is_valid_port(port); }

int uk_dpdk_port_ids(uint16_t *ids, int capacity) {
    int n = 0;
    uint16_t port;
    RTE_ETH_FOREACH_DEV(port) {
        if (n < capacity) ids[n] = port;
        n++;
    }
    return n;
}

int uk_dpdk_attach(const char *devargs, uint16_t *port) {
    int rc = rte_dev_probe(devargs);
    if (rc < 0) return rc;
    char name[RTE_ETH_NAME_MAX_LEN];
    size_t n = strcspn(devargs, ",");
    if (n >= sizeof name) return -ENAMETOOLONG;
    memcpy(name, devargs, n);
    name[n] = 0;
    return rte_eth_dev_get_port_by_name(name, port);
}

int uk_dpdk_port_info(uint16_t port, struct uk_dpdk_port_info *out) {
    struct rte_eth_dev_info info;
    memset(out, 0, sizeof *out);
    int rc = rte_eth_dev_info_get(port, &info);
    if (rc != 0) return rc;
    if (info.driver_name) strncpy(out->driver, info.driver_name, sizeof out->driver - 1);
    struct rte_ether_addr mac;
    if (rte_eth_macaddr_get(port, &mac) == 0) memcpy(out->mac, mac.addr_bytes, 6);
    out->max_rx_queues = info.max_rx_queues;
    out->max_tx_queues = info.max_tx_queues;
    out->rx_desc_min = info.rx_desc_lim.nb_min;
    out->rx_desc_max = info.rx_desc_lim.nb_max;
    out->rx_desc_align = info.rx_desc_lim.nb_align ? info.rx_desc_lim.nb_align : 1;
    out->tx_desc_min = info.tx_desc_lim.nb_min;
    out->tx_desc_max = info.tx_desc_lim.nb_max;
    out->tx_desc_align = info.tx_desc_lim.nb_align ? info.tx_desc_lim.nb_align : 1;
    out->min_rx_buffer = info.min_rx_bufsize;
    out->max_rx_pktlen = info.max_rx_pktlen;
    uint16_t mtu = 1500;
    rte_eth_dev_get_mtu(port, &mtu);
    out->mtu = mtu;
    struct rte_eth_link link;
    if (rte_eth_link_get_nowait(port, &link) == 0) {
        out->link_up = link.link_status == RTE_ETH_LINK_UP;
        out->link_speed_mbps = link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed;
    }
    /* L4 alone is what the core's needsChecksum asks for (virtio-net offers no IPv4 header
     * checksum: requiring it would hide virtio_user's offload). */
    const uint64_t tx = RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
    const uint64_t rx = RTE_ETH_RX_OFFLOAD_UDP_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
    out->tx_checksum = (info.tx_offload_capa & tx) == tx;
    out->rx_checksum = (info.rx_offload_capa & rx) == rx;
    out->tx_ip_checksum = (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0;
    out->rx_ip_checksum = (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) != 0;
    return 0;
}

/* ---- Facade mempools ---------------------------------------------------------------------- */

struct facade {
    void *alloc_context;
    uk_dpdk_alloc_fn alloc;
    uk_dpdk_release_fn release;
    int64_t iova_delta;
    uint16_t data_room;
    uint64_t outstanding;      /* handed to DPDK, not yet back: single-threaded, like the pools */
};

static int facade_alloc(struct rte_mempool *mp) { (void)mp; return 0; }
static void facade_free(struct rte_mempool *mp) { (void)mp; }

/* An mbuf over the NetBuf's data room, as rte_pktmbuf_init and _reset would leave it. */
static inline void dress(struct rte_mbuf *m, struct rte_mempool *mp, void *header, int64_t iova_delta) {
    void *room = PTR(header, NB_ROOM);
    m->buf_addr = room;
    m->buf_iova = (rte_iova_t)((int64_t)(uintptr_t)room + iova_delta);
    m->buf_len = (uint16_t)U32(header, NB_CAPACITY);
    m->pool = mp;
    m->priv_size = NB_HEADER;
    m->refcnt = 1;
    m->nb_segs = 1;
    m->next = NULL;
    m->port = RTE_MBUF_PORT_INVALID;
    m->ol_flags = 0;
    m->packet_type = 0;
    m->tx_offload = 0;
    m->vlan_tci = 0;
    m->data_off = (uint16_t)RTE_MIN((unsigned)RTE_PKTMBUF_HEADROOM, (unsigned)m->buf_len);
    m->data_len = 0;
    m->pkt_len = 0;
}

/* DPDK wants n buffers (all or none), e.g. a PMD refilling its RX ring. */
static int facade_dequeue(struct rte_mempool *mp, void **objs, unsigned n) {
    struct facade *f = mp->pool_config;
    if (!f->alloc) return -ENOBUFS;
    void *headers[512];
    unsigned done = 0;
    while (done < n) {
        unsigned want = RTE_MIN(n - done, 512u);
        long got = f->alloc(f->alloc_context, headers, (long)want);
        for (long i = 0; i < got; i++) {
            struct rte_mbuf *m = mbuf_of(headers[i]);
            dress(m, mp, headers[i], f->iova_delta);
            objs[done + (unsigned)i] = m;
        }
        done += (unsigned)(got > 0 ? got : 0);
        if ((unsigned long)got < want) {   /* not enough: give back what we took, deliver none */
            for (unsigned i = 0; i < done; i++) {
                void *h = header_of(objs[i]);
                f->release(&h, 1);
            }
            return -ENOBUFS;
        }
    }
    f->outstanding += n;
    return 0;
}

/* DPDK gives buffers back: after TX, or the RX ring's at stop. */
static int facade_enqueue(struct rte_mempool *mp, void *const *objs, unsigned n) {
    struct facade *f = mp->pool_config;
    void *headers[64];
    for (unsigned i = 0; i < n; ) {
        unsigned k = 0;
        while (k < 64 && i < n) headers[k++] = header_of(objs[i++]);
        f->release(headers, k);
    }
    f->outstanding -= n;
    return 0;
}

static unsigned facade_count(const struct rte_mempool *mp) { (void)mp; return 0; }

static struct rte_mempool_ops facade_ops = {
    .name = "uknet_netbuf",
    .alloc = facade_alloc,
    .free = facade_free,
    .enqueue = facade_enqueue,
    .dequeue = facade_dequeue,
    .get_count = facade_count,
};
static int facade_ops_registered;

struct rte_mempool *uk_dpdk_facade_create(const char *name, uint16_t data_room, int64_t iova_delta,
                                          void *alloc_context, uk_dpdk_alloc_fn alloc,
                                          uk_dpdk_release_fn release) {
    if (!facade_ops_registered) {
        if (rte_mempool_register_ops(&facade_ops) < 0) return NULL;
        facade_ops_registered = 1;
    }
    struct facade *f = rte_zmalloc("uknet_facade", sizeof *f, 0);
    if (!f) { rte_errno = ENOMEM; return NULL; }
    *f = (struct facade){alloc_context, alloc, release, iova_delta, data_room, 0};
    /* A per-lcore cache of UK_DPDK_FACADE_CACHE mbufs: a PMD freeing sent mbufs one at a time
     * (net_null, pcap) puts them there with DPDK's inline code, and they reach the NetBufPool
     * (or come back to the PMD's RX refill) in bulk. uk_dpdk_facade_flush empties it (at stop),
     * so the pool is whole again. */
    struct rte_mempool *mp = rte_mempool_create_empty(name, 1u << 16, UK_DPDK_MBUF_BYTES + NB_HEADER + data_room, UK_DPDK_FACADE_CACHE,
                                                      sizeof(struct rte_pktmbuf_pool_private), SOCKET_ID_ANY, 0);
    if (!mp) { rte_free(f); return NULL; }
    if (rte_mempool_set_ops_byname(mp, "uknet_netbuf", f) != 0) {
        rte_mempool_free(mp);
        rte_free(f);
        return NULL;
    }
    struct rte_pktmbuf_pool_private priv = {.mbuf_data_room_size = data_room, .mbuf_priv_size = NB_HEADER};
    rte_pktmbuf_pool_init(mp, &priv);
    return mp;
}

void uk_dpdk_facade_free(struct rte_mempool *mp) {
    if (!mp) return;
    struct facade *f = mp->pool_config;
    rte_mempool_free(mp);
    rte_free(f);
}

void uk_dpdk_facade_flush(struct rte_mempool *mp) {
    if (!mp) return;
    struct rte_mempool_cache *cache = rte_mempool_default_cache(mp, rte_lcore_id());
    if (cache) rte_mempool_cache_flush(cache, mp);
}

uint64_t uk_dpdk_facade_outstanding(const struct rte_mempool *mp) {
    return ((const struct facade *)mp->pool_config)->outstanding;
}

uint64_t uk_dpdk_virt2iova(const void *va) {
    rte_iova_t iova = rte_mem_virt2iova(va);
    return iova == RTE_BAD_IOVA ? UINT64_MAX : iova;
}
int uk_dpdk_iova_is_va(void) { return rte_eal_iova_mode() == RTE_IOVA_VA; }
void *uk_dpdk_zmalloc(size_t bytes, size_t align) { return rte_zmalloc("uknet_pool", bytes, (unsigned)align); }
void uk_dpdk_free(void *p) { rte_free(p); }

/* ---- The port ----------------------------------------------------------------------------- */

/* Ports whose TX computes IPv4 header / UDP and TCP checksums; for the others the shim does. */
static uint8_t tx_ip_offload[RTE_MAX_ETHPORTS], tx_l4_offload[RTE_MAX_ETHPORTS];

int uk_dpdk_configure(uint16_t port, uint16_t rx_queues, uint16_t tx_queues, int tx_checksum, int rx_checksum) {
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    struct rte_eth_dev_info info;
    if (rte_eth_dev_info_get(port, &info) != 0) memset(&info, 0, sizeof info);
    if (tx_checksum) conf.txmode.offloads = RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
    if (rx_checksum) conf.rxmode.offloads = RTE_ETH_RX_OFFLOAD_UDP_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
    conf.txmode.offloads |= info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
    conf.rxmode.offloads |= info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
    if (port < RTE_MAX_ETHPORTS) {
        tx_ip_offload[port] = (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0;
        tx_l4_offload[port] = tx_checksum != 0;
    }
    if (rx_queues > 1) conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    return rte_eth_dev_configure(port, rx_queues, tx_queues, &conf);
}
int uk_dpdk_rx_queue_setup(uint16_t port, uint16_t queue, uint16_t descriptors, struct rte_mempool *mp) {
    return rte_eth_rx_queue_setup(port, queue, descriptors, (unsigned)rte_eth_dev_socket_id(port) == (unsigned)SOCKET_ID_ANY ? 0 : (unsigned)rte_eth_dev_socket_id(port), NULL, mp);
}
int uk_dpdk_tx_queue_setup(uint16_t port, uint16_t queue, uint16_t descriptors) {
    return rte_eth_tx_queue_setup(port, queue, descriptors, (unsigned)rte_eth_dev_socket_id(port) == (unsigned)SOCKET_ID_ANY ? 0 : (unsigned)rte_eth_dev_socket_id(port), NULL);
}
int uk_dpdk_start(uint16_t port) { return rte_eth_dev_start(port); }
int uk_dpdk_stop(uint16_t port) { return rte_eth_dev_stop(port); }
int uk_dpdk_wait_link(uint16_t port, unsigned milliseconds) {
    for (unsigned waited = 0;; waited += 10) {
        struct rte_eth_link link;
        if (rte_eth_link_get_nowait(port, &link) == 0 && link.link_status == RTE_ETH_LINK_UP) return 1;
        if (waited >= milliseconds) return 0;
        rte_delay_us_sleep(10 * 1000);
    }
}
int uk_dpdk_close(uint16_t port) { return rte_eth_dev_close(port); }

/* A partial L4 checksum (RX_L4_CKSUM_NONE): where it starts and where its field is, for
 * DPDKNet to complete; 0 if the frame is not IPv4 UDP/TCP in one segment. */
static inline uint16_t mark_partial(struct rte_mbuf *m, void *h) {
    if (m->nb_segs != 1) return 0;
    const uint8_t *frame = rte_pktmbuf_mtod(m, const uint8_t *);
    uint32_t len = m->data_len;
    uint32_t l2 = (len >= 18 && frame[12] == 0x81 && frame[13] == 0x00) ? 18 : 14;
    if (len < l2 + 20 || frame[l2 - 2] != 0x08 || frame[l2 - 1] != 0x00) return 0;
    uint32_t start = l2 + (frame[l2] & 0x0f) * 4u;
    uint8_t proto = frame[l2 + 9];
    uint16_t offset = proto == IPPROTO_UDP ? 6 : proto == IPPROTO_TCP ? 16 : 0;
    if (offset == 0 || start + offset + 2 > len) return 0;
    U16(h, NB_CSUM_START) = (uint16_t)start;
    U16(h, NB_CSUM_OFFSET) = offset;
    return UK_DPDK_CSUM_PARTIAL;
}

uint16_t uk_dpdk_rx(uint16_t port, uint16_t queue, void **headers, uint16_t n, uint16_t *partial) {
    struct rte_mbuf **mbufs = (struct rte_mbuf **)headers;   /* the same array: mbuf -> header in place */
    burst_begin();
    uint16_t got = rte_eth_rx_burst(port, queue, mbufs, n);
    burst_end();
    for (uint16_t i = 0; i < got; i++) {
        struct rte_mbuf *m = mbufs[i];
        void *h = header_of(m);
        uint16_t flags = 0;
        uint64_t ol = m->ol_flags;
        if ((ol & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD) flags |= NB_CSUM_VALID;
        if ((ol & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_BAD) flags |= NB_CSUM_BAD;
        if ((ol & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD) flags |= NB_IP_CSUM_VALID;
        if (unlikely((ol & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_NONE)) {
            uint16_t p = mark_partial(m, h);
            flags |= p;
            *partial += p != 0;
        }
        U32(h, NB_PACKET_LENGTH) = m->pkt_len;
        U16(h, NB_FLAGS) = flags;
        U16(h, NB_SEGMENTS) = m->nb_segs;
        for (struct rte_mbuf *s = m; s; s = s->next) {
            void *sh = header_of(s);
            U32(sh, NB_DATA_OFFSET) = s->data_off;
            U32(sh, NB_LENGTH) = s->data_len;
            PTR(sh, NB_NEXT) = s->next ? header_of(s->next) : NULL;
        }
        headers[i] = h;
    }
    return got;
}

uint16_t uk_dpdk_tx(uint16_t port, uint16_t queue, struct rte_mempool *facade, int64_t iova_delta,
                    void *const *headers, uint16_t n, uint64_t *bytes) {
    struct rte_mbuf *mbufs[64];
    uint16_t sent = 0;
    struct facade *f = facade->pool_config;
    while (sent < n) {
        uint16_t k = RTE_MIN((uint16_t)(n - sent), (uint16_t)64);
        uint64_t burst_len = 0;
        for (uint16_t i = 0; i < k; i++) {
            void *h = headers[sent + i];
            struct rte_mbuf *m = mbuf_of(h);
            /* A slot's buffer fields never change once set (its room is fixed): dress it fully
             * only the first time; after that what a send needs. Fields a receive or the app may
             * have left (a chain's links, offload flags) are always reset. */
            if (unlikely(m->buf_addr != PTR(h, NB_ROOM))) dress(m, facade, h, iova_delta);
            m->pool = facade;
            m->refcnt = 1;
            m->nb_segs = 1;
            m->next = NULL;
            m->ol_flags = 0;
            m->data_off = (uint16_t)U32(h, NB_DATA_OFFSET);
            m->data_len = (uint16_t)U32(h, NB_LENGTH);
            m->pkt_len = U32(h, NB_PACKET_LENGTH);
            m->port = port;
            uint16_t flags = U16(h, NB_FLAGS);
            if (flags & (NB_NEEDS_CSUM | NB_NEEDS_IP_CSUM)) {
                const uint8_t *frame = rte_pktmbuf_mtod(m, const uint8_t *);
                uint16_t l2 = (frame[12] == 0x81 && frame[13] == 0x00) ? 18 : 14;
                m->l2_len = l2;
                m->ol_flags |= RTE_MBUF_F_TX_IPV4;
                if (flags & NB_NEEDS_IP_CSUM) {
                    if (likely(tx_ip_offload[port])) {
                        m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
                    } else {   /* virtio and the software PMDs: done here, as DPDK's vhost does */
                        struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(uintptr_t)(frame + l2);
                        ip->hdr_checksum = 0;
                        ip->hdr_checksum = rte_ipv4_cksum(ip);
                    }
                }
                if (flags & NB_NEEDS_CSUM) {
                    uint16_t start = U16(h, NB_CSUM_START), offset = U16(h, NB_CSUM_OFFSET);
                    m->l3_len = start > l2 ? start - l2 : 20;
                    if (likely(tx_l4_offload[port])) {
                        m->ol_flags |= offset == 16 ? RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM;
                    } else if (start < m->data_len && (uint32_t)offset + 2 <= (uint32_t)(m->data_len - start)) {
                        /* A port without L4 offload: the field holds the pseudo-header sum; finish it. */
                        uint8_t *l4 = rte_pktmbuf_mtod_offset(m, uint8_t *, start);
                        uint16_t sum = (uint16_t)~rte_raw_cksum(l4, m->data_len - start);
                        if (sum == 0) sum = 0xffff;
                        l4[offset] = (uint8_t)(sum >> 8);
                        l4[offset + 1] = (uint8_t)sum;
                    }
                } else {
                    m->l3_len = (frame[l2] & 0x0f) * 4;
                }
            }
            burst_len += m->pkt_len;
            mbufs[i] = m;
        }
        f->outstanding += k;
        burst_begin();
        uint16_t took = rte_eth_tx_burst(port, queue, mbufs, k);
        burst_end();
        /* The bytes taken: all of the burst's, less those the port left (still ours to read; the
         * ones it took may already be freed). */
        *bytes += burst_len;
        for (uint16_t i = took; i < k; i++) *bytes -= mbufs[i]->pkt_len;
        f->outstanding -= (uint16_t)(k - took);   /* not taken: still the caller's NetBufs */
        sent += took;
        if (took < k) break;
    }
    return sent;
}

int uk_dpdk_stats(uint16_t port, struct uk_dpdk_stats *out) {
    struct rte_eth_stats s;
    int rc = rte_eth_stats_get(port, &s);
    if (rc != 0) return rc;
    *out = (struct uk_dpdk_stats){s.ipackets, s.opackets, s.ibytes, s.obytes, s.imissed, s.ierrors, s.oerrors, s.rx_nombuf};
    return 0;
}
