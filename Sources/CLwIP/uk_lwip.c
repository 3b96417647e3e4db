/* LwIPBridge's C side: netif, custom pbufs over NetBufs, UDP raw API. See uk_lwip.h. */
#include "uk_lwip.h"

#include <lwip/init.h>
#include <lwip/ip4_frag.h>
#include <lwip/etharp.h>
#include <lwip/ip4_addr.h>
#include <lwip/netif.h>
#include <lwip/pbuf.h>
#include <lwip/prot/etharp.h>
#include <lwip/prot/iana.h>
#include <lwip/timeouts.h>
#include <lwip/udp.h>
#include <netif/ethernet.h>
#include <stdlib.h>
#include <string.h>

/* A pbuf over a NetBuf's memory. It lives in the NetBuf's headroom when there is space (no
 * allocation per packet), else on the heap. */
struct uk_pbuf {
    struct pbuf_custom custom;
    void *netbuf;
    uint8_t on_heap;
};
#define UK_PBUF_SPACE LWIP_MEM_ALIGN_SIZE(sizeof(struct uk_pbuf))

struct uk_netif {
    struct netif netif;
    uk_lwip_output_fn output;
    void *context;
};

struct uk_udp {
    struct udp_pcb *pcb;
    uk_lwip_udp_fn receive;
    void *context;
    uint8_t *scratch;   /* a datagram lwIP delivered in several pbufs, made contiguous */
};

static uk_lwip_release_fn release_netbuf;
static struct uk_lwip_counters counters;
static int initialized;

void uk_lwip_init(uk_lwip_release_fn release) {
    release_netbuf = release;
    if (!initialized) {
        lwip_init();
        initialized = 1;
    }
}

void uk_lwip_counters(struct uk_lwip_counters *out) { *out = counters; }

size_t uk_lwip_udp_headroom(void) {
    /* The pbuf struct (aligned), then the headers lwIP adds at most (Ethernet, IPv4, UDP). */
    return LWIP_MEM_ALIGN_SIZE(sizeof(struct uk_pbuf)) + MEM_ALIGNMENT + LWIP_MEM_ALIGN_SIZE(PBUF_TRANSPORT);
}

/* lwIP frees a pbuf of ours: the NetBuf goes back (after the struct, which may live inside it, is
 * no longer read). */
static void free_uk_pbuf(struct pbuf *p) {
    struct uk_pbuf *u = (struct uk_pbuf *)p;
    void *netbuf = u->netbuf;
    counters.pbufs_live--;
    if (u->on_heap) free(u);
    release_netbuf(netbuf);
}

/* A uk_pbuf placed at the aligned start of [room, limit), or on the heap if it does not fit. */
static struct uk_pbuf *place(void *netbuf, void *room, void *limit) {
    uintptr_t start = (uintptr_t)LWIP_MEM_ALIGN(room);
    struct uk_pbuf *u;
    if (start + UK_PBUF_SPACE <= (uintptr_t)limit) {
        u = (struct uk_pbuf *)start;
        u->on_heap = 0;
    } else {
        u = malloc(sizeof *u);
        if (!u) return NULL;
        u->on_heap = 1;
    }
    u->custom.custom_free_function = free_uk_pbuf;
    u->netbuf = netbuf;
    counters.pbufs_live++;
    return u;
}

static err_t link_output(struct netif *netif, struct pbuf *p) {
    struct uk_netif *n = (struct uk_netif *)netif;
    void *netbuf = NULL;
    /* Zero copy when the whole frame is one pbuf of ours: its bytes lie in the NetBuf. */
    if (p->next == NULL && (p->flags & PBUF_FLAG_IS_CUSTOM) &&
        ((struct pbuf_custom *)p)->custom_free_function == free_uk_pbuf)
        netbuf = ((struct uk_pbuf *)p)->netbuf;
    return n->output(n->context, netbuf, p->payload, p->tot_len, p) == 0 ? ERR_OK : ERR_MEM;
}

uint16_t uk_lwip_copy_frame(const void *pbuf, void *destination, uint16_t capacity) {
    const struct pbuf *p = pbuf;
    return pbuf_copy_partial(p, destination, p->tot_len < capacity ? p->tot_len : capacity, 0);
}

static err_t netif_setup(struct netif *netif) {
    netif->name[0] = 'u';
    netif->name[1] = 'k';
    netif->output = etharp_output;
    netif->linkoutput = link_output;
    netif->hwaddr_len = ETH_HWADDR_LEN;
    netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_LINK_UP;
    return ERR_OK;
}

void *uk_lwip_netif_add(uint32_t address, int prefix_length, const uint8_t mac[6], uint16_t mtu,
                        uk_lwip_output_fn output, void *context) {
    struct uk_netif *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->output = output;
    n->context = context;
    ip4_addr_t ip, mask, gw;
    ip4_addr_set_u32(&ip, address);
    ip4_addr_set_u32(&mask, prefix_length <= 0 ? 0 : lwip_htonl(0xffffffffu << (32 - (prefix_length > 32 ? 32 : prefix_length))));
    ip4_addr_set_zero(&gw);
    memcpy(n->netif.hwaddr, mac, 6);
    if (!netif_add(&n->netif, &ip, &mask, &gw, n, netif_setup, ethernet_input)) {
        free(n);
        return NULL;
    }
    memcpy(n->netif.hwaddr, mac, 6);
    n->netif.mtu = mtu;
    netif_set_default(&n->netif);
    netif_set_up(&n->netif);
    netif_set_link_up(&n->netif);
    return n;
}

void uk_lwip_netif_remove(void *netif) {
    struct uk_netif *n = netif;
    netif_remove(&n->netif);
    free(n);
}

/* lwIP 2 does not learn a peer's MAC from its IP packets: a reply to a new client waits for an
 * ARP round trip (and a replayed trace has none). An IPv4 frame from an on-link sender lwIP does
 * not know yet is taught to its ARP table as the ARP reply that sender would have given. */
static void glean(struct uk_netif *n, const uint8_t *frame, uint16_t length) {
    if (length < 34 || frame[12] != 0x08 || frame[13] != 0x00) return;
    ip4_addr_t sender;
    memcpy(&sender, frame + 26, 4);
    const ip4_addr_t *own = netif_ip4_addr(&n->netif);
    if (!ip4_addr_netcmp(&sender, own, netif_ip4_netmask(&n->netif)) || ip4_addr_cmp(&sender, own) ||
        ip4_addr_isany_val(sender) || ip4_addr_isbroadcast(&sender, &n->netif) || (frame[6] & 1))
        return;
    struct eth_addr *known_mac;
    const ip4_addr_t *known_ip;
    if (etharp_find_addr(&n->netif, &sender, &known_mac, &known_ip) >= 0) return;
    struct pbuf *p = pbuf_alloc(PBUF_RAW, SIZEOF_ETHARP_HDR, PBUF_RAM);
    if (!p) return;
    struct etharp_hdr *h = p->payload;
    h->hwtype = PP_HTONS(LWIP_IANA_HWTYPE_ETHERNET);
    h->proto = PP_HTONS(ETHTYPE_IP);
    h->hwlen = ETH_HWADDR_LEN;
    h->protolen = sizeof(ip4_addr_t);
    h->opcode = PP_HTONS(ARP_REPLY);
    memcpy(&h->shwaddr, frame + 6, ETH_HWADDR_LEN);
    memcpy(&h->sipaddr, &sender, 4);
    memcpy(&h->dhwaddr, n->netif.hwaddr, ETH_HWADDR_LEN);
    memcpy(&h->dipaddr, own, 4);
    etharp_input(p, &n->netif);   /* frees p */
    counters.peers_gleaned++;
}

void uk_lwip_input(void *netif, void *netbuf, void *room, void *frame, uint16_t length, int glean_sender) {
    struct uk_netif *n = netif;
    if (glean_sender) glean(n, frame, length);
    struct uk_pbuf *u = place(netbuf, room, frame);
    if (!u) {
        counters.input_errors++;
        release_netbuf(netbuf);
        return;
    }
    counters.rx_pbufs++;
    counters.rx_pbufs_heap += u->on_heap;
    struct pbuf *p = pbuf_alloced_custom(PBUF_RAW, length, PBUF_REF, &u->custom, frame, length);
    if (n->netif.input(p, &n->netif) != ERR_OK) {
        counters.input_errors++;
        pbuf_free(p);
    }
}

static void udp_received(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *address, u16_t port) {
    (void)pcb;
    struct uk_udp *s = arg;
    uint32_t source = ip4_addr_get_u32(ip_2_ip4(address));
    if (p->next == NULL) {
        s->receive(s->context, p->payload, p->len, source, port);
    } else {
        counters.udp_chained++;
        uint16_t n = pbuf_copy_partial(p, s->scratch, p->tot_len, 0);
        s->receive(s->context, s->scratch, n, source, port);
    }
    pbuf_free(p);
}

void *uk_lwip_udp_bind(void *netif, uint16_t port, uk_lwip_udp_fn receive, void *context) {
    struct uk_netif *n = netif;
    struct uk_udp *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->scratch = malloc(65536);
    s->pcb = udp_new_ip_type(IPADDR_TYPE_V4);
    if (!s->scratch || !s->pcb || udp_bind(s->pcb, netif_ip_addr4(&n->netif), port) != ERR_OK) {
        if (s->pcb) udp_remove(s->pcb);
        free(s->scratch);
        free(s);
        return NULL;
    }
    s->receive = receive;
    s->context = context;
    udp_recv(s->pcb, udp_received, s);
    return s;
}

void uk_lwip_udp_remove(void *socket) {
    struct uk_udp *s = socket;
    udp_remove(s->pcb);
    free(s->scratch);
    free(s);
}

int uk_lwip_udp_send(void *socket, void *netbuf, void *room, void *payload, uint16_t length, uint32_t address, uint16_t port) {
    struct uk_udp *s = socket;
    ip_addr_t destination;
    ip_addr_set_ip4_u32_val(destination, address);
    struct pbuf *p;
    /* lwIP puts its headers in front of the payload (PBUF_RAM: it may move the payload pointer
     * back, as far as the end of the pbuf struct, which sits at the start of the room). */
    uint8_t *payload_memory = (uint8_t *)payload - LWIP_MEM_ALIGN_SIZE(PBUF_TRANSPORT);
    struct uk_pbuf *u = NULL;
    if (payload_memory >= (uint8_t *)room && (uintptr_t)LWIP_MEM_ALIGN(room) + UK_PBUF_SPACE <= (uintptr_t)payload_memory)
        u = place(netbuf, room, payload_memory);
    if (u) {
        counters.tx_pbufs++;
        p = pbuf_alloced_custom(PBUF_TRANSPORT, length, PBUF_RAM, &u->custom, payload_memory,
                                (u16_t)(LWIP_MEM_ALIGN_SIZE(PBUF_TRANSPORT) + length));
    } else {
        counters.tx_pbufs_copied++;
        p = pbuf_alloc(PBUF_TRANSPORT, length, PBUF_RAM);
        if (p) memcpy(p->payload, payload, length);
        release_netbuf(netbuf);
        if (!p) return ERR_MEM;
    }
    err_t err = udp_sendto(s->pcb, p, &destination, port);
    pbuf_free(p);
    return err;
}

void uk_lwip_check_timeouts(void) { sys_check_timeouts(); }

void uk_lwip_drain(void) {
    /* Each call ages every partial datagram by one IP_TMR_INTERVAL; IP_REASS_MAXAGE calls drop all. */
    for (int i = 0; i <= IP_REASS_MAXAGE; i++) ip_reass_tmr();
}
