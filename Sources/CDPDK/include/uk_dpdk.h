/*
 * uk_dpdk.h: the C shim between DPDKNet (Swift) and DPDK (libdpdk-dev 22.11).
 *
 * Swift sees no DPDK header: rte_mbuf and rte_mempool are over-aligned structs Swift cannot
 * import, and DPDK's headers want -march flags (../shared/notes/platform-facts.md). Everything
 * crosses as plain integers and pointers; the per-packet work is done here, a burst per call.
 *
 * How a NetBuf and an mbuf are one buffer (DPDKNet's zero copy, in both directions): a pool made
 * for DPDK (DPDKNet.makePool) has 256-byte slots in front of each data room, so every slot is
 *     [.. | struct rte_mbuf (128 B) | NetBuf header (64 B) = the mbuf's private area | data room]
 * and the data room is the mbuf's buffer (buf_addr). The mbuf is the NetBuf header minus 128
 * bytes. DPDK gets its mbufs from a "facade" mempool with ops of our own: its dequeue takes
 * buffers from the RX queue's allocator (the NetBufPool) and dresses their mbufs; its enqueue
 * (DPDK freeing an mbuf after TX, or an RX ring's mbufs at stop) releases the NetBufs. No
 * memory is DPDK's but the facades' small control blocks; every buffer is the pool's.
 */
#ifndef UK_DPDK_H
#define UK_DPDK_H

#include <stddef.h>
#include <stdint.h>

struct rte_mempool;

/* Bytes in front of a NetBuf header that the mbuf takes: sizeof(struct rte_mbuf). */
#define UK_DPDK_MBUF_BYTES 128

/* ---- EAL --------------------------------------------------------------------------------- */
/* rte_eal_init over a copy of the arguments (EAL keeps pointers into them): its result (the
 * number of arguments it consumed, or -1 with uk_dpdk_errno set). Once per process. EAL pins the
 * calling thread to its main lcore's CPU; with keep_affinity the thread's CPUs are put back. */
int uk_dpdk_eal_init(int argc, const char *const *argv, int keep_affinity);
int uk_dpdk_errno(void);
const char *uk_dpdk_strerror(int error);
uint16_t uk_dpdk_port_count(void);
/* Whether `port` names an attached port (port ids need not be dense: a closed vdev leaves a gap). */
int uk_dpdk_port_is_valid(uint16_t port);
/* The ids of the attached ports, up to `capacity`; returns how many there are. */
int uk_dpdk_port_ids(uint16_t *ids, int capacity);
/* Hot-plugs a virtual device after EAL started ("net_virtio_user1,path=SOCK", as --vdev takes
 * it) and gives its port index; a negative errno on failure. */
int uk_dpdk_attach(const char *devargs, uint16_t *port);

struct uk_dpdk_port_info {
    char driver[64];
    uint8_t mac[6];
    uint16_t max_rx_queues, max_tx_queues;
    uint16_t rx_desc_min, rx_desc_max, rx_desc_align;
    uint16_t tx_desc_min, tx_desc_max, tx_desc_align;
    uint32_t min_rx_buffer;      /* smallest data room the PMD accepts */
    uint32_t max_rx_pktlen;
    uint16_t mtu;
    uint8_t link_up;
    uint32_t link_speed_mbps;
    uint8_t tx_checksum;         /* the port can compute UDP and TCP checksums on TX (virtio's CSUM) */
    uint8_t rx_checksum;         /* and check them on RX (virtio's GUEST_CSUM) */
    uint8_t tx_ip_checksum;      /* the IPv4 header checksum too (virtio has none: done in the shim) */
    uint8_t rx_ip_checksum;
};
int uk_dpdk_port_info(uint16_t port, struct uk_dpdk_port_info *out);

/* ---- Facade mempools --------------------------------------------------------------------- */
/* How the facade gets buffers (the RX queue's RxBufferAllocator: fills up to `count` NetBuf
 * headers at `out`, returns how many) and gives them back (NetBuf.release of each header). */
typedef long (*uk_dpdk_alloc_fn)(void *context, void *out, long count);
typedef void (*uk_dpdk_release_fn)(void *const *headers, unsigned count);

/* A facade mempool named `name` for buffers whose data rooms are `data_room` bytes; `iova_delta`
 * is added to a data room's virtual address to get its IOVA (0 in IOVA-as-VA mode). `alloc` may
 * be NULL for a TX-only facade (its dequeue then always fails). NULL with uk_dpdk_errno set. */
struct rte_mempool *uk_dpdk_facade_create(const char *name, uint16_t data_room, int64_t iova_delta,
                                          void *alloc_context, uk_dpdk_alloc_fn alloc,
                                          uk_dpdk_release_fn release);
void uk_dpdk_facade_free(struct rte_mempool *mp);
/* Gives the calling lcore's cached mbufs back (to the NetBufPool, through the facade's put). */
void uk_dpdk_facade_flush(struct rte_mempool *mp);
#define UK_DPDK_FACADE_CACHE 256
/* Buffers handed to DPDK through the facade and not yet given back. */
uint64_t uk_dpdk_facade_outstanding(const struct rte_mempool *mp);

/* The IOVA of virtual address `va` in DPDK-managed memory, or UINT64_MAX if DPDK does not know
 * it; whether EAL runs in IOVA-as-VA mode. */
uint64_t uk_dpdk_virt2iova(const void *va);
int uk_dpdk_iova_is_va(void);
/* DPDK heap memory for a pool's slab (every PMD can reach it, a vhost-user backend too). */
void *uk_dpdk_zmalloc(size_t bytes, size_t align);
void uk_dpdk_free(void *p);

/* ---- The port ---------------------------------------------------------------------------- */
int uk_dpdk_configure(uint16_t port, uint16_t rx_queues, uint16_t tx_queues, int tx_checksum, int rx_checksum);
int uk_dpdk_rx_queue_setup(uint16_t port, uint16_t queue, uint16_t descriptors, struct rte_mempool *mp);
int uk_dpdk_tx_queue_setup(uint16_t port, uint16_t queue, uint16_t descriptors);
int uk_dpdk_start(uint16_t port);
/* Waits up to `milliseconds` for the port's link to come up (a memif or vhost peer connecting);
 * 1 if it is up. */
int uk_dpdk_wait_link(uint16_t port, unsigned milliseconds);
int uk_dpdk_stop(uint16_t port);
int uk_dpdk_close(uint16_t port);

/* RX: up to `n` packets from the port, written into the front of `headers` as NetBuf headers
 * (data offset, lengths, segments, chain links and checksum flags set from their mbufs);
 * returns how many. */
uint16_t uk_dpdk_rx(uint16_t port, uint16_t queue, void **headers, uint16_t n, uint16_t *partial);

/* Set in a received NetBuf's flags (with its checksumStart/Offset) when the PMD said the L4
 * checksum is only partial (RTE_MBUF_F_RX_L4_CKSUM_NONE: a virtio peer offloaded it); DPDKNet
 * completes it and clears the bit. uk_dpdk_rx counts these in *partial. */
enum { UK_DPDK_CSUM_PARTIAL = 1 << 15 };

/* TX of `n` NetBufs (single-segment, sole owner, in a DPDK pool: DPDKNet checks) as their mbufs,
 * freed through `facade` once sent; checksum requests (OffloadFlags in the NetBuf header) become
 * the mbufs' offload flags. Returns how many the port took (the rest stay the caller's) and
 * adds their bytes to *bytes. */
uint16_t uk_dpdk_tx(uint16_t port, uint16_t queue, struct rte_mempool *facade, int64_t iova_delta,
                    void *const *headers, uint16_t n, uint64_t *bytes);

struct uk_dpdk_stats {
    uint64_t ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf;
};
int uk_dpdk_stats(uint16_t port, struct uk_dpdk_stats *out);

/* The NetBuf header layout the shim writes (UKNetdev's NetBuf.Field), for DPDKNet to check
 * against Swift's at start-up: offsets of pool, next, room, refcount, kind, dataOffset, length,
 * packetLength, flags, segments, checksumStart, checksumOffset, capacity; then the header size. */
void uk_dpdk_netbuf_layout(uint16_t out[14]);

#endif
