/*
 * net_internal.h — what the net_*.c files of the userspace stack share:
 * the stack object, wire formats, and the internal entry points of each
 * layer. Not for use outside dataplane/net_*.c and their tests.
 */
#ifndef SL_NET_INTERNAL_H
#define SL_NET_INTERNAL_H

#include "net_stack.h"

#include <stdbool.h>
#include <stdint.h>

#define NET_ETH_HLEN 14
#define NET_IP_HLEN 20
#define NET_TCP_HLEN 20
#define NET_ETHERTYPE_IPV4 0x0800
#define NET_ETHERTYPE_ARP 0x0806
#define NET_PROTO_ICMP 1
#define NET_PROTO_TCP 6

#define NET_TH_FIN 0x01
#define NET_TH_SYN 0x02
#define NET_TH_RST 0x04
#define NET_TH_PSH 0x08
#define NET_TH_ACK 0x10

#define NET_ARP_SLOTS 256
#define NET_ARP_QUEUE_MAX 16       /* frames waiting per unresolved next hop */
#define NET_ARP_RETRY_MS 1000      /* request interval while unresolved */
#define NET_ARP_TRIES 3            /* requests before giving up */
#define NET_ARP_FAILED_MS 3000     /* negative cache after giving up */
#define NET_ARP_REACHABLE_MS 60000 /* entry lifetime after a reply */
#define NET_ARP_REFRESH_MS 5000    /* re-request this long before expiry, if used */

#define SEQ_LT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)
#define SEQ_GT(a, b) SEQ_LT(b, a)
#define SEQ_GEQ(a, b) SEQ_LEQ(b, a)

static inline uint16_t net_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t net_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void net_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void net_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

struct net_frame {
	struct net_frame *next;
	size_t len;
	unsigned flags;
	uint8_t data[];
};

enum net_arp_state { NET_ARP_FREE, NET_ARP_INCOMPLETE, NET_ARP_REACHABLE, NET_ARP_FAILED };

struct net_arp_entry {
	uint32_t ip;     /* next hop, network order */
	uint32_t src_ip; /* our address to ask from */
	uint8_t mac[6];
	uint8_t state;
	uint8_t tries;
	uint64_t expire_at;  /* REACHABLE: lifetime; INCOMPLETE: next retry; FAILED: end */
	uint64_t refresh_at; /* last refresh request (REACHABLE) */
	uint64_t used_at;
	struct net_frame *q_head, *q_tail;
	uint16_t qlen;
};

struct net_stack {
	struct net_stack_config cfg;
	uint8_t rss_key[64];
	uint16_t *reta;
	net_tx_fn tx;
	void *tx_ctx;
	uint32_t netmask; /* network order */
	uint8_t *txbuf;   /* one frame being built */
	size_t txbuf_size;
	uint16_t ip_id;
	uint64_t sip_k0, sip_k1; /* ISN / hash secret */

	struct net_arp_entry arp[NET_ARP_SLOTS];
	uint32_t arp_last;
	uint64_t arp_next; /* earliest ARP timer */

	struct net_tcp *tcbs; /* max_conns preallocated */
	uint32_t free_head;   /* index + 1, 0 = none */
	uint32_t *buckets;    /* index + 1 chains */
	uint32_t bucket_mask;
	uint32_t *heap; /* timer min-heap of TCB indices */
	uint32_t heap_len;
	uint32_t reap_head; /* TCBs to free at the end of the current entry point */
	uint32_t port_cursor;
	int depth; /* > 0 while input/timers run (callbacks possible) */

	struct net_stack_stats st;
};

/* net_arp.c */
void net_arp_input(struct net_stack *ns, const uint8_t *frame, size_t len, uint64_t now);
/* Send an IPv4 frame (eth header space at frame[0..14)) towards dst_ip:
 * 0 sent or queued; -ENETUNREACH no route, -EHOSTUNREACH ARP failed,
 * -ENOBUFS ARP queue full. */
int net_arp_output(struct net_stack *ns, uint8_t *frame, size_t len, uint32_t src_ip,
		   uint32_t dst_ip, unsigned flags, uint64_t now);
/* Whether dst_ip is reachable at all (on-link or via a gateway). */
bool net_arp_routable(const struct net_stack *ns, uint32_t dst_ip);
void net_arp_timers(struct net_stack *ns, uint64_t now);
void net_arp_announce(struct net_stack *ns, uint64_t now);
void net_arp_destroy(struct net_stack *ns);
void net_stack_tx(struct net_stack *ns, const uint8_t *frame, size_t len, unsigned flags);

/* net_ipv4.c */
void net_ipv4_input(struct net_stack *ns, const uint8_t *pkt, size_t len, uint64_t now);
/* Fill the Ethernet source/type and a 20-byte IPv4 header (DF) for a frame
 * of len bytes; the IPv4 checksum is left 0 when offload is requested. */
void net_ipv4_header(struct net_stack *ns, uint8_t *frame, size_t len, uint32_t src,
		     uint32_t dst, uint8_t proto, bool offload);
bool net_ipv4_owned(const struct net_stack *ns, uint32_t ip);

/* net_tcp.c */
int net_tcp_table_init(struct net_stack *ns);
void net_tcp_table_destroy(struct net_stack *ns);
void net_tcp_input(struct net_stack *ns, uint32_t src, uint32_t dst, const uint8_t *seg,
		   size_t len, uint64_t now);
/* ICMP destination unreachable quoting our segment lip:lport -> rip:rport. */
void net_tcp_icmp_error(struct net_stack *ns, uint32_t lip, uint32_t rip, uint16_t lport,
			uint16_t rport, uint32_t seq, uint8_t code, uint16_t mtu, uint64_t now);
void net_tcp_timers(struct net_stack *ns, uint64_t now);
uint64_t net_tcp_next_timer(const struct net_stack *ns);
void net_tcp_reap(struct net_stack *ns);

#endif
