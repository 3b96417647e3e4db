/* The C side of LwIPBridge: the only code that includes lwIP's headers (Debian's liblwip-dev is
 * built for the GNU Hurd; its lwipopts.h sets the struct layouts, so glue must be compiled against
 * it). Swift sees lwIP's objects only as opaque pointers. Single-threaded, raw API, no tcpip
 * thread: lwip_init() only, timers from the caller's poll loop. */
#ifndef UK_LWIP_H
#define UK_LWIP_H
#include <stddef.h>
#include <stdint.h>

/* Gives a NetBuf back to its pool (its header); called when lwIP frees a pbuf that wraps it. */
typedef void (*uk_lwip_release_fn)(void *netbuf);
/* lwIP hands a frame to the link. `netbuf` is the NetBuf whose memory already holds the whole
 * frame at `frame` (zero copy: the receiver takes a reference), or NULL when the frame is in
 * lwIP's own memory (copy it with uk_lwip_copy_frame). Returns 0 if taken, -1 if dropped. */
typedef int (*uk_lwip_output_fn)(void *context, void *netbuf, void *frame, uint16_t length, const void *pbuf);
/* A UDP datagram for a bound port: the payload (contiguous), its source (IPv4, network order) and
 * source port (host order). The payload stays valid only during the call. */
typedef void (*uk_lwip_udp_fn)(void *context, const void *payload, uint16_t length, uint32_t source, uint16_t port);

/* lwIP's counters for what this glue does (lwIP's own stats are compiled out in Debian's build). */
struct uk_lwip_counters {
    uint64_t pbufs_live;          /* pbufs wrapping NetBufs that lwIP has not freed yet */
    uint64_t rx_pbufs;            /* RX frames wrapped as pbufs (zero copy) */
    uint64_t rx_pbufs_heap;       /* of them, with the pbuf struct on the heap (no headroom for it) */
    uint64_t tx_pbufs;            /* UDP payloads sent as pbufs over their NetBuf (zero copy) */
    uint64_t tx_pbufs_copied;     /* UDP payloads copied into an lwIP pbuf (no headroom) */
    uint64_t udp_chained;         /* datagrams lwIP delivered in several pbufs (reassembled): copied */
    uint64_t peers_gleaned;       /* senders whose MAC was taught to lwIP's ARP from their IPv4 frame */
    uint64_t input_errors;        /* frames lwIP refused at input */
};

/* Once per process; sets how wrapped NetBufs are given back. */
void uk_lwip_init(uk_lwip_release_fn release);

/* An Ethernet netif with this address (network order), prefix length and MAC; `output` gets its
 * frames. Returns NULL if lwIP refused it. */
void *uk_lwip_netif_add(uint32_t address, int prefix_length, const uint8_t mac[6], uint16_t mtu,
                        uk_lwip_output_fn output, void *context);
void uk_lwip_netif_remove(void *netif);

/* One received frame, handed to lwIP without copying: `netbuf` is released when lwIP frees it.
 * `room` is the start of the NetBuf's data room (the pbuf struct goes in front of the frame when
 * there is space). `glean`: teach lwIP's ARP the sender of an IPv4 frame from our subnet first
 * (lwIP 2 does not learn MACs from IP packets, so it would ARP for every new peer). */
void uk_lwip_input(void *netif, void *netbuf, void *room, void *frame, uint16_t length, int glean);

/* Copies a frame lwIP built in its own memory (the pbuf given to the output callback). */
uint16_t uk_lwip_copy_frame(const void *pbuf, void *destination, uint16_t capacity);

/* A UDP port bound on the netif's address; `receive` gets its datagrams. NULL on failure. */
void *uk_lwip_udp_bind(void *netif, uint16_t port, uk_lwip_udp_fn receive, void *context);
void uk_lwip_udp_remove(void *socket);

/* Sends `length` bytes at `payload` (inside `netbuf`, whose data room starts at `room`) to
 * address:port. lwIP writes its headers into the headroom in front (zero copy) when there is room
 * for them and the pbuf struct; otherwise the payload is copied. The NetBuf is released either way
 * (once lwIP is done with it). Returns lwIP's err_t (0: sent or queued for ARP). */
int uk_lwip_udp_send(void *socket, void *netbuf, void *room, void *payload, uint16_t length, uint32_t address, uint16_t port);

/* Ages out every partial datagram lwIP holds for reassembly (at shutdown: their buffers go back). */
void uk_lwip_drain(void);

/* Runs lwIP's due timers (ARP ageing, reassembly timeouts). */
void uk_lwip_check_timeouts(void);

/* The glue's counters. */
void uk_lwip_counters(struct uk_lwip_counters *out);

/* Headroom a NetBuf needs in front of a UDP payload for zero-copy send. */
size_t uk_lwip_udp_headroom(void);
#endif
