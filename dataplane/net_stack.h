/*
 * net_stack.h — sluice's own userspace ARP/IPv4/ICMP/TCP stack (client side).
 *
 * What it is for: the `dpdk` transport (transport_dpdk.c) carries outbound
 * SMTP connections over a NIC owned by the process. This module is the
 * TCP/IP part, and it is sans-I/O: Ethernet frames in (net_stack_input),
 * frames out (the tx callback), events out (struct net_tcp_handler), the
 * clock passed in (now_ms, monotonic milliseconds). It knows nothing of
 * DPDK, mbufs or threads. One stack per worker core (shared-nothing); a
 * stack is not thread-safe.
 *
 * Why our own and not lwIP: Debian's liblwip is built for the threaded
 * (sys_arch, tcpip_thread) API with a handful of static PCBs (MEMP_NUM_TCP_PCB
 * in the single digits) fixed at compile time; an appliance needs >=100k
 * connections per core, RSS-aware source ports, and a run-to-completion loop
 * without locks. The design borrows from mTCP and F-Stack (per-core TCB
 * tables, hashed 4-tuple lookup, software Toeplitz for port choice) and
 * Seastar (sans-I/O, callbacks into the application).
 *
 * Scope: active open only (no listen), IPv4 only, no IP options on output,
 * no fragment reassembly (fragments are dropped and counted), DF set on
 * output, PMTU from ICMP frag-needed. TCP: MSS, window scale and
 * SACK-permitted options; as a receiver we send SACK blocks (RFC 2018) for
 * out-of-order data, as a sender we ignore the peer's SACK blocks (NewReno
 * recovery, legal per RFC 2018); no timestamps. RFC 6298 RTO
 * (Karn, exponential backoff, min 200 ms, max 60 s, initial 1 s),
 * RFC 5681 slow start / congestion avoidance with IW10 (RFC 6928),
 * RFC 6582 NewReno fast retransmit / fast recovery, delayed ACKs (every 2nd
 * segment or 40 ms), zero-window persist probes, out-of-order segments
 * buffered up to NET_TCP_OOO_MAX bytes per connection (= the advertised
 * receive window, 128 KiB; beyond that dropped, relying on dup ACKs), RFC 5961 challenge ACKs for in-window RST/SYN,
 * RFC 1337 (RST ignored in TIME_WAIT), RST for segments to unknown
 * connections, ISNs per RFC 6528 (keyed hash + clock). Keep-alive is off.
 * Nagle is off (TCP_NODELAY semantics: the SMTP client writes whole lines).
 * Not done: restart-after-idle cwnd reset (RFC 5681 4.1), simultaneous
 * open, urgent data, IP options on input are skipped, not interpreted.
 *
 * TIME_WAIT lasts time_wait_ms (default 2 s, not 2*MSL = 60 s+): this is an
 * outbound-only appliance whose peers are servers; a 4-tuple in TIME_WAIT
 * is never reused (the port picker skips it; an explicit src_port that
 * collides returns -EADDRINUSE).
 *
 * Memory: the connection table is preallocated (max_conns TCBs, hash
 * buckets, timer heap) at create time. An idle ESTABLISHED connection costs
 * NET_TCP_IDLE_BYTES (TCB + hash bucket + heap slot; see net_tcp.c for the
 * static assert); send buffers are allocated on first send and freed when
 * everything is acknowledged, the out-of-order buffer only while segments
 * are out of order. In-order received data is never buffered: it goes
 * straight to on_recv (so the advertised window is constant).
 *
 * Ownership and lifetime: every successful net_tcp_connect() must be
 * balanced by exactly one net_tcp_close() (or net_tcp_abort()), also after
 * on_connect(err < 0) or on_error(): the handle stays valid, in a dead
 * state, until then. After close/abort returns, no callback for that
 * connection runs again and the pointer is dead; the stack finishes the
 * close (FIN, TIME_WAIT) on its own. Callbacks may call net_tcp_send,
 * net_tcp_close and net_tcp_connect re-entrantly.
 *
 * Errors: negative errno. Connection errors reach the handler:
 * on_connect: -ETIMEDOUT (no SYN-ACK before timeout_ms), -ECONNREFUSED (RST
 * or ICMP port/protocol unreachable), -EHOSTUNREACH (ARP failed, or ICMP
 * unreachable reported and then timed out); on_error: -ECONNRESET (RST),
 * -ETIMEDOUT (retransmissions exhausted).
 */
#ifndef SL_NET_STACK_H
#define SL_NET_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_MAX_IPS 16
/* Out-of-order bytes buffered per connection before further ones are dropped. */
#define NET_TCP_OOO_MAX (128 * 1024)
/* Memory per idle connection, all tables included: a 192-byte TCB, a
 * 4-byte hash bucket (buckets are max_conns rounded up to a power of two,
 * so up to 8 bytes) and a 4-byte timer-heap slot. net_tcp.c asserts it. */
#define NET_TCP_IDLE_BYTES 204

/* tx flags, only with tx_csum_offload. The frame is Ethernet (14 bytes,
 * no VLAN) + IPv4 with a 20-byte header (no options) + TCP/ICMP/ARP.
 * NET_TX_IP_CSUM: the IPv4 header checksum field is 0, the NIC fills it.
 * NET_TX_TCP_CSUM: the TCP checksum field holds the pseudo-header sum
 * (not complemented), as DPDK's rte_ipv4_phdr_cksum() computes; the NIC
 * finishes it. ARP and ICMP frames always carry full software checksums. */
#define NET_TX_IP_CSUM 0x1u
#define NET_TX_TCP_CSUM 0x2u

struct net_stack;
struct net_tcp;

struct net_stack_config {
	uint8_t mac[6];            /* our MAC */
	uint32_t ips[NET_MAX_IPS]; /* owned IPv4 addresses, network order */
	size_t n_ips;
	uint32_t gateway;   /* next hop for off-subnet dsts (network order), 0 = none */
	uint8_t prefix_len; /* on-link subnet of ips[] (each ips[i]/prefix_len); 0 = all on-link */
	uint16_t mtu;       /* IP MTU; 0 = 1500 */
	uint32_t max_conns; /* connection table size (TIME_WAIT included); 0 = 1024 */
	uint16_t port_lo, port_hi; /* ephemeral source ports, inclusive; 0,0 = 32768..60999 */
	/* RSS: replies must land on rx queue `rss_queue` of `rss_queues`. key
	 * NULL or rss_queues <= 1 = no constraint. reta NULL / reta_size 0:
	 * queue = hash % rss_queues; else queue = reta[hash % reta_size]
	 * (DPDK's hash & (reta_size - 1) for power-of-two sizes). */
	const uint8_t *rss_key; /* copied at create; 40 bytes for IPv4+TCP */
	size_t rss_key_len;
	uint16_t rss_queues, rss_queue;
	const uint16_t *reta; /* copied at create */
	uint16_t reta_size;
	bool rx_csum_ok;      /* NIC verified IPv4/TCP checksums */
	bool tx_csum_offload; /* leave IPv4/TCP checksums to the NIC (tx flags) */
	uint32_t time_wait_ms; /* TIME_WAIT duration; 0 = 2000 */
	/* ISN secret (RFC 6528); 0 = random from getrandom(). Tests set it to
	 * get deterministic transcripts. */
	uint64_t isn_secret;
};

/* Called for each frame to send; bytes valid only during the call. It may
 * run inside any net_* call (input, timers, connect, send, close) and must
 * not call back into the stack. */
typedef void (*net_tx_fn)(void *ctx, const uint8_t *frame, size_t len, unsigned flags);

/* Validate cfg and allocate the stack with its preallocated tables.
 * -EINVAL for a bad config, -ENOMEM. */
int net_stack_create(const struct net_stack_config *cfg, net_tx_fn tx, void *tx_ctx,
		     struct net_stack **out);
/* Free everything, open connections included (no callbacks, nothing sent). */
void net_stack_destroy(struct net_stack *ns);
/* One received Ethernet frame. Never trusts it; responses (ACKs, ARP
 * replies, RSTs) go out through tx during the call. */
void net_stack_input(struct net_stack *ns, const uint8_t *frame, size_t len, uint64_t now_ms);
/* Fire due timers (RTO, persist, delayed ACK, ARP retry/expiry, TIME_WAIT,
 * connect timeout). */
void net_stack_timers(struct net_stack *ns, uint64_t now_ms);
/* When net_stack_timers next has work (UINT64_MAX if never). */
uint64_t net_stack_next_timer(const struct net_stack *ns);
/* Gratuitous ARP for every owned IP, and an ARP request for the gateway
 * (call at start-up and on link up). */
void net_stack_announce(struct net_stack *ns, uint64_t now_ms);

struct net_tcp_handler { /* mirrors transport.h's struct conn_handler */
	/* Handshake done: 0, or -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH. */
	void (*on_connect)(void *ctx, int err);
	/* In-order bytes; len 0 = the peer sent FIN. data valid during the call. */
	void (*on_recv)(void *ctx, const char *data, size_t len);
	/* The connection died (-ECONNRESET, -ETIMEDOUT); close it. */
	void (*on_error)(void *ctx, int err);
	/* Every byte sent so far has been acknowledged (may be NULL). */
	void (*on_drained)(void *ctx);
};

/* Active open from src_ip (one of ips[], network order; 0 = ips[0]) and
 * src_port (host order; 0 = pick a free RSS-matching port) to dst_ip:dst_port
 * (network order / host order). on_connect follows later, never during the
 * call. timeout_ms bounds the handshake (0 = 30 s). -EADDRNOTAVAIL (src_ip
 * not ours, or no free port), -EADDRINUSE (explicit 4-tuple taken), -ENOMEM
 * (table full), -EINVAL. */
int net_tcp_connect(struct net_stack *ns, uint32_t src_ip, uint16_t src_port, uint32_t dst_ip,
		    uint16_t dst_port, uint64_t timeout_ms, uint64_t now_ms,
		    const struct net_tcp_handler *h, void *ctx, struct net_tcp **out);
/* Queue a copy of data and send what the windows allow. May be called
 * before the handshake finishes. -ENOMEM, -EPIPE (closed or dead). */
int net_tcp_send(struct net_tcp *c, const void *data, size_t len, uint64_t now_ms);
/* Bytes queued and not yet acknowledged by the peer. */
size_t net_tcp_pending(const struct net_tcp *c);
/* Graceful close: FIN after the queued data. No callbacks after it returns. */
void net_tcp_close(struct net_tcp *c, uint64_t now_ms);
/* Abortive close: RST now, queued data dropped, TCB freed. */
void net_tcp_abort(struct net_tcp *c, uint64_t now_ms);
/* Local and remote address (network order IPs, host order ports). */
void net_tcp_addrs(const struct net_tcp *c, uint32_t *src_ip, uint16_t *src_port,
		   uint32_t *dst_ip, uint16_t *dst_port);

struct net_stack_stats {
	uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
	/* receive drops by reason */
	uint64_t drop_eth;       /* not for our MAC / unknown ethertype / runt */
	uint64_t drop_ip_hdr;    /* bad version, IHL, length, TTL */
	uint64_t drop_csum;      /* bad IPv4/TCP/ICMP checksum */
	uint64_t drop_not_ours;  /* destination IP not owned */
	uint64_t drop_frag;      /* IPv4 fragments (no reassembly) */
	uint64_t drop_proto;     /* not TCP/ICMP, or malformed TCP/ICMP/ARP */
	uint64_t drop_tcp;       /* TCP segment unacceptable for its connection */
	uint64_t drop_ooo;       /* out-of-order segment beyond NET_TCP_OOO_MAX */
	/* transmit side */
	uint64_t tx_arp_queue_full; /* frames dropped waiting for ARP */
	uint64_t tx_arp_failed;     /* frames dropped when ARP gave up */
	uint64_t tx_no_route;       /* off-link dst and no gateway */
	/* TCP */
	uint64_t tcp_retransmits;      /* segments retransmitted (all causes) */
	uint64_t tcp_fast_retransmits; /* of which by 3 dup ACKs / partial ACKs */
	uint64_t tcp_rto_timeouts;     /* RTO expirations */
	uint64_t tcp_rst_rx, tcp_rst_tx;
	uint64_t tcp_conns_opened, tcp_conns_established, tcp_conns_failed;
	uint32_t tcp_conns_active;    /* TCBs in use (TIME_WAIT included) */
	uint32_t tcp_conns_time_wait; /* of which in TIME_WAIT */
	uint32_t srtt_ms;             /* smoothed RTT over all samples, stack-wide */
	uint64_t icmp_echo_replies;
	uint64_t arp_requests_tx, arp_replies_tx, arp_cache_entries;
};

void net_stack_stats(const struct net_stack *ns, struct net_stack_stats *out);

#endif
