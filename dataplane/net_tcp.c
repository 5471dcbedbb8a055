/*
 * net_tcp.c — TCP for the userspace stack: the connection table (hash of
 * 4-tuples over preallocated TCBs, timer min-heap), the client state
 * machine (active open only), retransmission (RFC 6298), congestion
 * control (RFC 5681 + RFC 6582 NewReno), delayed ACKs, persist probes,
 * out-of-order buffering, RSS-aware source ports.
 *
 * Sequence space of a connection: iss is the SYN; the byte at offset k of
 * the send buffer has sequence data_start(c) + k; a FIN, once the user
 * closed, follows the last byte. snd_una..snd_max is in flight, snd_nxt is
 * where the next (re)transmission starts (it goes back to snd_una after an
 * RTO: go-back-N without SACK).
 */
#include "net_csum.h"
#include "net_internal.h"
#include "net_rss.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum tcp_state {
	TCP_CLOSED,
	TCP_SYN_SENT,
	TCP_ESTABLISHED,
	TCP_FIN_WAIT_1,
	TCP_FIN_WAIT_2,
	TCP_CLOSING,
	TCP_TIME_WAIT,
	TCP_CLOSE_WAIT,
	TCP_LAST_ACK,
};

#define F_USER_CLOSED 0x001 /* net_tcp_close/abort called: no callbacks */
#define F_DEAD 0x002        /* failed and reported; waiting for the user's close */
#define F_FIN_PENDING 0x004 /* send FIN after the data */
#define F_RECOVERY 0x008    /* in NewReno fast recovery */
#define F_TIMING 0x010      /* an RTT measurement is running */
#define F_WSCALE 0x020      /* window scaling negotiated */
#define F_SYN_REXMIT 0x040  /* the SYN was retransmitted */
#define F_REAP 0x080        /* on the reap list */
#define F_PARTIAL 0x100     /* first partial ACK of this recovery seen */
#define F_HASHED 0x200      /* in the 4-tuple table */
#define F_ACK_PENDING 0x400 /* received something not yet acknowledged */
#define F_SACK 0x800        /* SACK permitted: our ACKs carry SACK blocks */

#define RCV_WND (128u * 1024)   /* constant: data goes straight to on_recv */
#define RCV_WSCALE 2            /* RCV_WND >> 2 fits 16 bits */
#define RTO_INIT 1000
#define RTO_MIN 200
#define RTO_MAX 60000
#define RTO_AFTER_SYN_LOSS 3000 /* RFC 6298 5.7 */
#define MAX_BACKOFF 10          /* RTOs in a row before -ETIMEDOUT */
#define DELACK_MS 40
#define FIN_WAIT_2_MS 60000     /* orphaned FIN_WAIT_2 lifetime */
#define MSS_FLOOR 88            /* lowest MSS a frag-needed can impose */
#define DEFAULT_MSS 536         /* peer sent no MSS option */
#define SNDBUF_MIN 2048

struct net_sndbuf {
	uint32_t cap, head, len; /* ring of cap (power of two) bytes */
	uint8_t data[];
};

struct net_ooo {
	struct net_ooo *next;
	uint32_t seq, len;
	bool fin;
	uint8_t data[];
};

struct net_tcp {
	struct net_stack *ns;
	const struct net_tcp_handler *h;
	void *ctx;
	struct net_sndbuf *sb;
	struct net_ooo *ooo;
	uint64_t timer_key; /* min of the three below, the heap key; 0 = none */
	uint64_t rto_at, delack_at, deadline_at;
	uint64_t rtt_start;
	uint32_t hnext, heap_pos, reap_next; /* index + 1 links */
	uint32_t lip, rip;
	uint16_t lport, rport;
	uint32_t iss, snd_una, snd_nxt, snd_max;
	uint32_t snd_wnd, snd_wl1, snd_wl2, max_sndwnd;
	uint32_t rcv_nxt;
	uint32_t cwnd, ssthresh, recover, ca_acc, rtt_seq;
	int32_t srtt8, rttvar4; /* RFC 6298 SRTT*8, RTTVAR*4, ms */
	uint32_t rto;
	uint32_t ooo_bytes, ooo_last; /* ooo_last: seq of the latest OOO arrival */
	uint16_t flags, mss;
	uint8_t state, snd_wscale, dupacks, backoff, segs_unacked, soft_err;
};

/* NET_TCP_IDLE_BYTES in net_stack.h: TCB + up to 2 bucket words + heap slot. */
_Static_assert(sizeof(struct net_tcp) + 3 * sizeof(uint32_t) <= NET_TCP_IDLE_BYTES,
	       "net_stack.h NET_TCP_IDLE_BYTES is stale");

/* ---- helpers ---------------------------------------------------------- */

static inline uint32_t min32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}
static inline uint32_t max32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}
static inline uint32_t tcb_idx(const struct net_tcp *c)
{
	return (uint32_t)(c - c->ns->tcbs);
}
static inline uint32_t sb_len(const struct net_tcp *c)
{
	return c->sb ? c->sb->len : 0;
}
/* Sequence number of the first byte in the send buffer. */
static inline uint32_t data_start(const struct net_tcp *c)
{
	return c->state == TCP_SYN_SENT ? c->iss + 1 : c->snd_una;
}
static inline bool cb_ok(const struct net_tcp *c)
{
	return c->h && !(c->flags & (F_USER_CLOSED | F_DEAD | F_REAP));
}
static inline bool gone(const struct net_tcp *c)
{
	return (c->flags & F_REAP) != 0 || c->state == TCP_CLOSED;
}
static uint64_t cur_rto(const struct net_tcp *c)
{
	uint64_t r = (uint64_t)c->rto << c->backoff;
	return r > RTO_MAX ? RTO_MAX : r;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                     \
	do {                                                                         \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);            \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                               \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                               \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);            \
	} while (0)

/* SipHash-2-4 of a 16-byte message (RFC 6528 wants a keyed PRF for ISNs). */
static uint64_t siphash16(uint64_t k0, uint64_t k1, uint64_t m0, uint64_t m1)
{
	uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
	uint64_t m[2] = {m0, m1};
	for (int i = 0; i < 2; i++) {
		v3 ^= m[i];
		SIPROUND;
		SIPROUND;
		v0 ^= m[i];
	}
	uint64_t b = 16ull << 56;
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- connection table --------------------------------------------------- */

static uint32_t tuple_hash(const struct net_stack *ns, uint32_t lip, uint32_t rip, uint16_t lport,
			  uint16_t rport)
{
	uint64_t h = ((uint64_t)lip << 32 | rip) ^ ns->sip_k0;
	h ^= ((uint64_t)lport << 16 | rport) * 0x9e3779b97f4a7c15ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (uint32_t)h & ns->bucket_mask;
}

static struct net_tcp *tcp_lookup(struct net_stack *ns, uint32_t lip, uint32_t rip,
				  uint16_t lport, uint16_t rport)
{
	uint32_t i = ns->buckets[tuple_hash(ns, lip, rip, lport, rport)];
	while (i) {
		struct net_tcp *c = &ns->tcbs[i - 1];
		if (c->lip == lip && c->rip == rip && c->lport == lport && c->rport == rport)
			return c;
		i = c->hnext;
	}
	return NULL;
}

static void tcp_hash(struct net_tcp *c)
{
	struct net_stack *ns = c->ns;
	uint32_t b = tuple_hash(ns, c->lip, c->rip, c->lport, c->rport);
	c->hnext = ns->buckets[b];
	ns->buckets[b] = tcb_idx(c) + 1;
	c->flags |= F_HASHED;
}

static void tcp_unhash(struct net_tcp *c)
{
	struct net_stack *ns = c->ns;
	if (!(c->flags & F_HASHED))
		return;
	uint32_t *pp = &ns->buckets[tuple_hash(ns, c->lip, c->rip, c->lport, c->rport)];
	uint32_t me = tcb_idx(c) + 1;
	while (*pp && *pp != me)
		pp = &ns->tcbs[*pp - 1].hnext;
	if (*pp)
		*pp = c->hnext;
	c->hnext = 0;
	c->flags &= ~F_HASHED;
}

/* ---- timer heap --------------------------------------------------------- */

static inline uint64_t heap_key(const struct net_stack *ns, uint32_t pos)
{
	return ns->tcbs[ns->heap[pos]].timer_key;
}

static void heap_set(struct net_stack *ns, uint32_t pos, uint32_t idx)
{
	ns->heap[pos] = idx;
	ns->tcbs[idx].heap_pos = pos + 1;
}

static void heap_up(struct net_stack *ns, uint32_t pos)
{
	uint32_t idx = ns->heap[pos];
	uint64_t key = ns->tcbs[idx].timer_key;
	while (pos > 0) {
		uint32_t parent = (pos - 1) / 2;
		if (heap_key(ns, parent) <= key)
			break;
		heap_set(ns, pos, ns->heap[parent]);
		pos = parent;
	}
	heap_set(ns, pos, idx);
}

static void heap_down(struct net_stack *ns, uint32_t pos)
{
	uint32_t idx = ns->heap[pos];
	uint64_t key = ns->tcbs[idx].timer_key;
	for (;;) {
		uint32_t l = 2 * pos + 1, m = pos;
		uint64_t mk = key;
		if (l < ns->heap_len && heap_key(ns, l) < mk) {
			m = l;
			mk = heap_key(ns, l);
		}
		if (l + 1 < ns->heap_len && heap_key(ns, l + 1) < mk)
			m = l + 1;
		if (m == pos)
			break;
		heap_set(ns, pos, ns->heap[m]);
		pos = m;
	}
	heap_set(ns, pos, idx);
}

static void heap_remove(struct net_tcp *c)
{
	struct net_stack *ns = c->ns;
	if (!c->heap_pos)
		return;
	uint32_t pos = c->heap_pos - 1;
	c->heap_pos = 0;
	uint32_t last = ns->heap[--ns->heap_len];
	if (pos == ns->heap_len)
		return;
	heap_set(ns, pos, last);
	heap_up(ns, pos);
	heap_down(ns, ns->tcbs[last].heap_pos - 1);
}

/* Recompute the heap key after any of rto_at/delack_at/deadline_at changed. */
static void timer_sync(struct net_tcp *c)
{
	struct net_stack *ns = c->ns;
	uint64_t k = UINT64_MAX;
	if (c->rto_at && c->rto_at < k)
		k = c->rto_at;
	if (c->delack_at && c->delack_at < k)
		k = c->delack_at;
	if (c->deadline_at && c->deadline_at < k)
		k = c->deadline_at;
	if (k == UINT64_MAX) {
		heap_remove(c);
		c->timer_key = 0;
		return;
	}
	if (c->heap_pos && k == c->timer_key)
		return;
	c->timer_key = k;
	if (!c->heap_pos) {
		heap_set(ns, ns->heap_len++, tcb_idx(c));
		heap_up(ns, ns->heap_len - 1);
	} else {
		uint32_t pos = c->heap_pos - 1;
		heap_up(ns, pos);
		heap_down(ns, c->heap_pos - 1);
	}
}

/* ---- allocation ----------------------------------------------------------- */

int net_tcp_table_init(struct net_stack *ns)
{
	uint32_t n = ns->cfg.max_conns, nb = 1;
	while (nb < n)
		nb <<= 1;
	ns->tcbs = calloc(n, sizeof(*ns->tcbs));
	ns->buckets = calloc(nb, sizeof(*ns->buckets));
	ns->heap = calloc(n, sizeof(*ns->heap));
	if (!ns->tcbs || !ns->buckets || !ns->heap)
		return -ENOMEM;
	ns->bucket_mask = nb - 1;
	for (uint32_t i = 0; i < n; i++)
		ns->tcbs[i].hnext = i + 2 <= n ? i + 2 : 0;
	ns->free_head = n ? 1 : 0;
	return 0;
}

static void tcp_free_buffers(struct net_tcp *c)
{
	free(c->sb);
	c->sb = NULL;
	while (c->ooo) {
		struct net_ooo *o = c->ooo;
		c->ooo = o->next;
		free(o);
	}
	c->ooo_bytes = 0;
}

void net_tcp_table_destroy(struct net_stack *ns)
{
	if (ns->tcbs)
		for (uint32_t i = 0; i < ns->cfg.max_conns; i++)
			tcp_free_buffers(&ns->tcbs[i]);
	free(ns->tcbs);
	free(ns->buckets);
	free(ns->heap);
}

static void set_state(struct net_tcp *c, uint8_t st)
{
	if (c->state == TCP_TIME_WAIT)
		c->ns->st.tcp_conns_time_wait--;
	if (st == TCP_TIME_WAIT)
		c->ns->st.tcp_conns_time_wait++;
	c->state = st;
}

static void tcp_free(struct net_tcp *c)
{
	struct net_stack *ns = c->ns;
	tcp_unhash(c);
	heap_remove(c);
	tcp_free_buffers(c);
	set_state(c, TCP_CLOSED);
	memset(c, 0, sizeof(*c));
	c->ns = ns;
	c->hnext = ns->free_head;
	ns->free_head = tcb_idx(c) + 1;
	ns->st.tcp_conns_active--;
}

/* Free now, or at the end of the current input/timers call if callbacks
 * up the stack may still look at c. */
static void tcp_reap(struct net_tcp *c)
{
	struct net_stack *ns = c->ns;
	if (c->flags & F_REAP)
		return;
	tcp_unhash(c);
	heap_remove(c);
	c->timer_key = c->rto_at = c->delack_at = c->deadline_at = 0;
	if (ns->depth == 0) {
		tcp_free(c);
		return;
	}
	c->flags |= F_REAP;
	c->reap_next = ns->reap_head;
	ns->reap_head = tcb_idx(c) + 1;
}

void net_tcp_reap(struct net_stack *ns)
{
	while (ns->reap_head) {
		struct net_tcp *c = &ns->tcbs[ns->reap_head - 1];
		ns->reap_head = c->reap_next;
		tcp_free(c);
	}
}

/* ---- send buffer ----------------------------------------------------------- */

static int sb_append(struct net_tcp *c, const uint8_t *p, size_t len)
{
	struct net_sndbuf *sb = c->sb;
	size_t need = (size_t)sb_len(c) + len;
	if (need > (1u << 30))
		return -ENOMEM;
	if (!sb || need > sb->cap) {
		uint32_t cap = sb ? sb->cap : SNDBUF_MIN;
		while (cap < need)
			cap <<= 1;
		struct net_sndbuf *n = malloc(sizeof(*n) + cap);
		if (!n)
			return -ENOMEM;
		n->cap = cap;
		n->head = 0;
		n->len = 0;
		if (sb) { /* linearize */
			uint32_t first = min32(sb->len, sb->cap - sb->head);
			memcpy(n->data, sb->data + sb->head, first);
			memcpy(n->data + first, sb->data, sb->len - first);
			n->len = sb->len;
			free(sb);
		}
		c->sb = sb = n;
	}
	uint32_t tail = (sb->head + sb->len) & (sb->cap - 1);
	uint32_t first = min32((uint32_t)len, sb->cap - tail);
	memcpy(sb->data + tail, p, first);
	memcpy(sb->data, p + first, len - first);
	sb->len += (uint32_t)len;
	return 0;
}

static void sb_copy(const struct net_sndbuf *sb, uint32_t off, uint8_t *dst, uint32_t len)
{
	uint32_t pos = (sb->head + off) & (sb->cap - 1);
	uint32_t first = min32(len, sb->cap - pos);
	memcpy(dst, sb->data + pos, first);
	memcpy(dst + first, sb->data, len - first);
}

static void sb_consume(struct net_tcp *c, uint32_t n)
{
	struct net_sndbuf *sb = c->sb;
	if (!sb || !n)
		return;
	if (n >= sb->len) { /* idle connections hold no buffer */
		free(sb);
		c->sb = NULL;
		return;
	}
	sb->head = (sb->head + n) & (sb->cap - 1);
	sb->len -= n;
}

/* ---- output ------------------------------------------------------------------- */

static void tcp_finish_csum(struct net_stack *ns, uint8_t *t, size_t tlen, uint32_t lip,
			    uint32_t rip, unsigned *flags)
{
	uint32_t ph = net_csum_phdr(lip, rip, NET_PROTO_TCP, (uint16_t)tlen);
	uint16_t c;
	if (ns->cfg.tx_csum_offload) {
		c = net_csum_fold(ph);
		*flags |= NET_TX_IP_CSUM | NET_TX_TCP_CSUM;
	} else {
		c = (uint16_t)~net_csum_fold(net_csum_partial(t, tlen, ph));
	}
	memcpy(t + 16, &c, 2);
}

/* A segment without a TCB (RST to an unknown connection). */
static void tcp_send_raw(struct net_stack *ns, uint32_t lip, uint32_t rip, uint16_t lport,
			 uint16_t rport, uint32_t seq, uint32_t ack, uint8_t fl, uint64_t now)
{
	uint8_t *f = ns->txbuf;
	uint8_t *t = f + NET_ETH_HLEN + NET_IP_HLEN;
	size_t flen = NET_ETH_HLEN + NET_IP_HLEN + NET_TCP_HLEN;
	unsigned flags = 0;

	memset(t, 0, NET_TCP_HLEN);
	net_put16(t, lport);
	net_put16(t + 2, rport);
	net_put32(t + 4, seq);
	net_put32(t + 8, ack);
	t[12] = 5 << 4;
	t[13] = fl;
	tcp_finish_csum(ns, t, NET_TCP_HLEN, lip, rip, &flags);
	net_ipv4_header(ns, f, flen, lip, rip, NET_PROTO_TCP, ns->cfg.tx_csum_offload);
	if (fl & NET_TH_RST)
		ns->st.tcp_rst_tx++;
	(void)net_arp_output(ns, f, flen, lip, rip, flags, now);
}

/* Up to 3 SACK blocks (RFC 2018) for the out-of-order data, the one
 * holding the latest arrival first. Returns the number of blocks. */
static size_t sack_blocks(const struct net_tcp *c, uint32_t *b)
{
	uint32_t r[2 * 8];
	size_t n = 0;
	if (!(c->flags & F_SACK))
		return 0;
	for (const struct net_ooo *o = c->ooo; o; o = o->next) {
		if (!o->len)
			continue;
		if (n && SEQ_LEQ(o->seq, r[2 * n - 1])) { /* contiguous or overlapping */
			if (SEQ_GT(o->seq + o->len, r[2 * n - 1]))
				r[2 * n - 1] = o->seq + o->len;
			continue;
		}
		if (n == 8)
			break;
		r[2 * n] = o->seq;
		r[2 * n + 1] = o->seq + o->len;
		n++;
	}
	size_t first = 0;
	for (size_t i = 0; i < n; i++)
		if (SEQ_LEQ(r[2 * i], c->ooo_last) && SEQ_LT(c->ooo_last, r[2 * i + 1]))
			first = i;
	size_t k = 0;
	b[k++] = r[2 * first];
	b[k++] = r[2 * first + 1];
	for (size_t i = 0; i < n && k < 6; i++) {
		if (i == first)
			continue;
		b[k++] = r[2 * i];
		b[k++] = r[2 * i + 1];
	}
	return n ? k / 2 : 0;
}

/* Send one segment of c: len bytes of the send buffer from seq, flags fl. */
static int tcp_xmit(struct net_tcp *c, uint32_t seq, uint8_t fl, uint32_t len, uint64_t now)
{
	struct net_stack *ns = c->ns;
	uint32_t sack[6];
	size_t nsack = (fl & NET_TH_SYN) ? 0 : sack_blocks(c, sack);
	size_t optlen = (fl & NET_TH_SYN) ? 12 : nsack ? 4 + 8 * nsack : 0;
	size_t hl = NET_TCP_HLEN + optlen;
	size_t flen = NET_ETH_HLEN + NET_IP_HLEN + hl + len;
	uint8_t *f = ns->txbuf;
	uint8_t *t = f + NET_ETH_HLEN + NET_IP_HLEN;
	unsigned flags = 0;
	uint32_t wnd;

	if (flen > ns->txbuf_size)
		return -EMSGSIZE; /* cannot happen: len <= mss */
	net_put16(t, c->lport);
	net_put16(t + 2, c->rport);
	net_put32(t + 4, seq);
	net_put32(t + 8, (fl & NET_TH_ACK) ? c->rcv_nxt : 0);
	t[12] = (uint8_t)((hl / 4) << 4);
	t[13] = fl;
	if (fl & NET_TH_SYN)
		wnd = min32(RCV_WND, 65535);
	else
		wnd = min32((c->flags & F_WSCALE) ? RCV_WND >> RCV_WSCALE : RCV_WND, 65535);
	net_put16(t + 14, (uint16_t)wnd);
	net_put16(t + 16, 0);
	net_put16(t + 18, 0);
	if (fl & NET_TH_SYN) {
		uint8_t *o = t + NET_TCP_HLEN;
		o[0] = 2; /* MSS */
		o[1] = 4;
		net_put16(o + 2, (uint16_t)(ns->cfg.mtu - NET_IP_HLEN - NET_TCP_HLEN));
		o[4] = 1; /* NOP */
		o[5] = 3; /* window scale */
		o[6] = 3;
		o[7] = RCV_WSCALE;
		o[8] = 1; /* NOP NOP SACK-permitted */
		o[9] = 1;
		o[10] = 4;
		o[11] = 2;
	} else if (nsack) {
		uint8_t *o = t + NET_TCP_HLEN;
		o[0] = 1;
		o[1] = 1;
		o[2] = 5;
		o[3] = (uint8_t)(2 + 8 * nsack);
		for (size_t i = 0; i < 2 * nsack; i++)
			net_put32(o + 4 + 4 * i, sack[i]);
	}
	if (len)
		sb_copy(c->sb, seq - data_start(c), t + hl, len);
	tcp_finish_csum(ns, t, hl + len, c->lip, c->rip, &flags);
	net_ipv4_header(ns, f, flen, c->lip, c->rip, NET_PROTO_TCP, ns->cfg.tx_csum_offload);
	if (SEQ_LT(seq, c->snd_max) && (len || (fl & (NET_TH_SYN | NET_TH_FIN)))) {
		ns->st.tcp_retransmits++;
		c->flags &= ~F_TIMING; /* Karn */
	}
	if (fl & NET_TH_RST)
		ns->st.tcp_rst_tx++;
	if (fl & NET_TH_ACK) {
		c->flags &= ~F_ACK_PENDING;
		c->segs_unacked = 0;
		if (c->delack_at) {
			c->delack_at = 0;
			timer_sync(c);
		}
	}
	return net_arp_output(ns, f, flen, c->lip, c->rip, flags, now);
}

/* A pure ACK carries snd_max (as BSD does): during a go-back-N snd_nxt may
 * lie below what the peer has, and it would discard the ACK as old. */
static void send_ack(struct net_tcp *c, uint64_t now)
{
	(void)tcp_xmit(c, c->snd_max, NET_TH_ACK, 0, now);
}

static bool can_send_data(const struct net_tcp *c)
{
	switch (c->state) {
	case TCP_ESTABLISHED:
	case TCP_CLOSE_WAIT:
	case TCP_FIN_WAIT_1:
	case TCP_CLOSING:
	case TCP_LAST_ACK:
		return true;
	default:
		return false;
	}
}

/* Payload room in a segment: the MSS less the SACK option we may carry. */
static uint32_t seg_room(const struct net_tcp *c)
{
	return c->mss - (((c->flags & F_SACK) && c->ooo) ? 28u : 0u);
}

/* Send what the congestion and peer windows allow, then the FIN. */
static void tcp_output_force(struct net_tcp *c, uint64_t now, bool force)
{
	if (!can_send_data(c))
		return;
	uint32_t dend = c->snd_una + sb_len(c);
	for (;;) {
		uint32_t wnd = min32(c->cwnd, c->snd_wnd);
		uint32_t lim = c->snd_una + wnd;
		if (SEQ_LT(c->snd_nxt, dend)) {
			uint32_t avail = dend - c->snd_nxt;
			int32_t room = (int32_t)(lim - c->snd_nxt);
			if (room <= 0)
				break;
			uint32_t len = min32(min32(avail, seg_room(c)), (uint32_t)room);
			/* sender-side silly window avoidance (RFC 1122 4.2.3.4) */
			if (len < avail && len < seg_room(c) && len < c->max_sndwnd / 2 && !force)
				break;
			force = false;
			bool fin = (c->flags & F_FIN_PENDING) && len == avail;
			uint8_t fl = NET_TH_ACK;
			if (len == avail)
				fl |= NET_TH_PSH;
			if (fin)
				fl |= NET_TH_FIN;
			if (!(c->flags & F_TIMING) && SEQ_GEQ(c->snd_nxt, c->snd_max)) {
				c->flags |= F_TIMING;
				c->rtt_seq = c->snd_nxt + len;
				c->rtt_start = now;
			}
			(void)tcp_xmit(c, c->snd_nxt, fl, len, now);
			c->snd_nxt += len + fin;
		} else if ((c->flags & F_FIN_PENDING) && c->snd_nxt == dend) {
			(void)tcp_xmit(c, c->snd_nxt, NET_TH_ACK | NET_TH_FIN, 0, now);
			c->snd_nxt++;
		} else {
			break;
		}
		if (SEQ_GT(c->snd_nxt, c->snd_max))
			c->snd_max = c->snd_nxt;
		if (!c->rto_at)
			c->rto_at = now + cur_rto(c);
	}
	/* persist: data waits on a closed window with nothing in flight */
	if (!c->rto_at && c->snd_nxt == c->snd_una && SEQ_LT(c->snd_nxt, dend))
		c->rto_at = now + cur_rto(c);
	timer_sync(c);
}

static void tcp_output(struct net_tcp *c, uint64_t now)
{
	tcp_output_force(c, now, false);
}

/* Retransmit the first unacknowledged segment (fast retransmit). */
static void retransmit_una(struct net_tcp *c, uint64_t now)
{
	uint32_t avail = sb_len(c);
	uint32_t len = min32(avail, seg_room(c));
	uint8_t fl = NET_TH_ACK;
	if ((c->flags & F_FIN_PENDING) && len == avail)
		fl |= NET_TH_FIN;
	if (!len && !(fl & NET_TH_FIN))
		return;
	c->ns->st.tcp_fast_retransmits++;
	(void)tcp_xmit(c, c->snd_una, fl, len, now);
}

/* ---- failure and close ------------------------------------------------------- */

static void tcp_fail(struct net_tcp *c, int err)
{
	bool was_syn = c->state == TCP_SYN_SENT;
	struct net_stack *ns = c->ns;

	tcp_unhash(c);
	c->rto_at = c->delack_at = c->deadline_at = 0;
	timer_sync(c);
	tcp_free_buffers(c);
	set_state(c, TCP_CLOSED);
	if (was_syn)
		ns->st.tcp_conns_failed++;
	if (c->flags & F_USER_CLOSED) {
		tcp_reap(c);
		return;
	}
	bool report = cb_ok(c);
	c->flags |= F_DEAD;
	if (!report)
		return;
	if (was_syn) {
		if (c->h->on_connect)
			c->h->on_connect(c->ctx, err);
	} else if (c->h->on_error) {
		c->h->on_error(c->ctx, err);
	}
}

static void enter_time_wait(struct net_tcp *c, uint64_t now)
{
	set_state(c, TCP_TIME_WAIT);
	tcp_free_buffers(c);
	c->rto_at = 0;
	c->deadline_at = now + c->ns->cfg.time_wait_ms;
	timer_sync(c);
}

/* ---- RTT, congestion ----------------------------------------------------------- */

static void rtt_sample(struct net_tcp *c, uint64_t now)
{
	int32_t m = (int32_t)(now - c->rtt_start);
	if (m < 1)
		m = 1;
	if (!c->srtt8) {
		c->srtt8 = m << 3;
		c->rttvar4 = m << 1;
	} else {
		int32_t delta = m - (c->srtt8 >> 3);
		c->srtt8 += delta;
		if (delta < 0)
			delta = -delta;
		c->rttvar4 += delta - (c->rttvar4 >> 2);
	}
	int32_t var = c->rttvar4 > 1 ? c->rttvar4 : 1;
	uint32_t rto = (uint32_t)((c->srtt8 >> 3) + var);
	c->rto = rto < RTO_MIN ? RTO_MIN : rto > RTO_MAX ? RTO_MAX : rto;
	struct net_stack_stats *st = &c->ns->st;
	st->srtt_ms = st->srtt_ms ? (uint32_t)((7ull * st->srtt_ms + (uint32_t)m) / 8) : (uint32_t)m;
}

static uint32_t flight(const struct net_tcp *c)
{
	return c->snd_max - c->snd_una;
}

/* A new cumulative ACK: congestion control (RFC 5681, RFC 6582). */
static void cc_new_ack(struct net_tcp *c, uint32_t ack, uint32_t acked, uint64_t now)
{
	if (c->flags & F_RECOVERY) {
		if (SEQ_GT(ack, c->recover)) { /* full ACK: leave recovery */
			c->cwnd = min32(c->ssthresh, max32(c->snd_max - ack, c->mss) + c->mss);
			c->flags &= ~(F_RECOVERY | F_PARTIAL);
			c->dupacks = 0;
			return;
		}
		/* partial ACK: retransmit the next hole, deflate */
		c->snd_una = ack; /* for retransmit_una */
		retransmit_una(c, now);
		c->cwnd = acked < c->cwnd ? c->cwnd - acked : c->mss;
		if (acked >= c->mss)
			c->cwnd += c->mss;
		if (!(c->flags & F_PARTIAL)) { /* impatient variant: first partial ACK only */
			c->flags |= F_PARTIAL;
			c->rto_at = now + cur_rto(c);
		}
		return;
	}
	c->dupacks = 0;
	if (c->cwnd < c->ssthresh) {
		c->cwnd += min32(acked, 2u * c->mss); /* RFC 3465 L = 2 */
	} else {
		c->ca_acc += acked;
		if (c->ca_acc >= c->cwnd) {
			c->ca_acc -= c->cwnd;
			c->cwnd += c->mss;
		}
	}
	if (c->cwnd > (1u << 30))
		c->cwnd = 1u << 30;
}

static void cc_dup_ack(struct net_tcp *c, uint32_t ack, uint64_t now)
{
	c->dupacks++;
	if (c->flags & F_RECOVERY) {
		c->cwnd += c->mss;
		return;
	}
	if (c->dupacks != 3 || !SEQ_GT(ack, c->recover))
		return;
	c->ssthresh = max32(flight(c) / 2, 2u * c->mss);
	c->recover = c->snd_max - 1;
	c->flags |= F_RECOVERY;
	c->flags &= ~(F_PARTIAL | F_TIMING);
	retransmit_una(c, now);
	c->cwnd = c->ssthresh + 3u * c->mss;
}

/* ---- input -------------------------------------------------------------------- */

struct seg {
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t fl;
	uint32_t wnd; /* raw 16-bit field */
	uint16_t mss;
	int wscale; /* -1 = option absent */
	bool sack_ok;
	const uint8_t *data;
	uint32_t dlen;
};

static void parse_options(const uint8_t *o, size_t len, struct seg *s)
{
	size_t i = 0;
	while (i < len) {
		uint8_t kind = o[i];
		if (kind == 0)
			break;
		if (kind == 1) {
			i++;
			continue;
		}
		if (i + 1 >= len || o[i + 1] < 2 || i + o[i + 1] > len)
			break;
		uint8_t olen = o[i + 1];
		if (kind == 2 && olen == 4)
			s->mss = net_get16(o + i + 2);
		else if (kind == 3 && olen == 3)
			s->wscale = o[i + 2] > 14 ? 14 : o[i + 2];
		else if (kind == 4 && olen == 2)
			s->sack_ok = true;
		i += olen;
	}
}

static void rst_for(struct net_stack *ns, uint32_t lip, uint32_t rip, const struct seg *s,
		    uint64_t now)
{
	if (s->fl & NET_TH_RST)
		return;
	if (s->fl & NET_TH_ACK) {
		tcp_send_raw(ns, lip, rip, s->dport, s->sport, s->ack, 0, NET_TH_RST, now);
	} else {
		uint32_t len = s->dlen + !!(s->fl & NET_TH_SYN) + !!(s->fl & NET_TH_FIN);
		tcp_send_raw(ns, lip, rip, s->dport, s->sport, 0, s->seq + len,
			     NET_TH_RST | NET_TH_ACK, now);
	}
}

static void syn_sent_input(struct net_tcp *c, const struct seg *s, uint64_t now)
{
	struct net_stack *ns = c->ns;
	if ((s->fl & NET_TH_ACK) && s->ack != c->iss + 1) {
		ns->st.drop_tcp++;
		rst_for(ns, c->lip, c->rip, s, now);
		return;
	}
	if (s->fl & NET_TH_RST) {
		ns->st.tcp_rst_rx++;
		if (s->fl & NET_TH_ACK)
			tcp_fail(c, -ECONNREFUSED);
		else
			ns->st.drop_tcp++;
		return;
	}
	if (!(s->fl & NET_TH_SYN) || !(s->fl & NET_TH_ACK)) {
		ns->st.drop_tcp++; /* simultaneous open is not supported */
		return;
	}
	c->rcv_nxt = s->seq + 1;
	c->snd_una = s->ack;
	if (SEQ_LT(c->snd_nxt, c->snd_una))
		c->snd_nxt = c->snd_una;
	c->snd_max = c->snd_nxt;
	uint32_t mss = s->mss ? s->mss : DEFAULT_MSS;
	c->mss = (uint16_t)min32(mss, c->mss);
	if (c->mss < MSS_FLOOR)
		c->mss = MSS_FLOOR;
	if (s->wscale >= 0) {
		c->flags |= F_WSCALE;
		c->snd_wscale = (uint8_t)s->wscale;
	}
	if (s->sack_ok)
		c->flags |= F_SACK;
	c->snd_wnd = s->wnd; /* never scaled in a SYN */
	c->max_sndwnd = c->snd_wnd;
	c->snd_wl1 = s->seq;
	c->snd_wl2 = s->ack;
	if (c->flags & F_TIMING)
		rtt_sample(c, now);
	else if ((c->flags & F_SYN_REXMIT) && !c->srtt8)
		c->rto = RTO_AFTER_SYN_LOSS;
	c->flags &= ~F_TIMING;
	c->backoff = 0;
	c->cwnd = min32(10u * c->mss, max32(2u * c->mss, 14600)); /* RFC 6928 IW10 */
	c->ssthresh = 1u << 30;
	c->recover = c->iss;
	c->rto_at = 0;
	c->deadline_at = 0;
	set_state(c, TCP_ESTABLISHED);
	ns->st.tcp_conns_established++;
	c->flags |= F_ACK_PENDING;
	tcp_output(c, now); /* data queued before the handshake carries the ACK */
	if (c->flags & F_ACK_PENDING)
		send_ack(c, now);
	timer_sync(c);
	if (cb_ok(c) && c->h->on_connect)
		c->h->on_connect(c->ctx, 0);
}

static bool deliver(struct net_tcp *c, const uint8_t *data, uint32_t len)
{
	if (len && cb_ok(c) && c->h->on_recv)
		c->h->on_recv(c->ctx, (const char *)data, len);
	return !gone(c);
}

/* Keep an out-of-order segment (sorted by seq, bounded). */
static void ooo_insert(struct net_tcp *c, uint32_t seq, const uint8_t *data, uint32_t len,
		       bool fin)
{
	struct net_ooo **pp = &c->ooo;
	for (struct net_ooo *o = c->ooo; o; o = o->next) /* already covered? */
		if (SEQ_LEQ(o->seq, seq) && SEQ_GEQ(o->seq + o->len, seq + len) && (o->fin || !fin))
			return;
	if (c->ooo_bytes + len > NET_TCP_OOO_MAX) {
		c->ns->st.drop_ooo++;
		return;
	}
	struct net_ooo *n = malloc(sizeof(*n) + len);
	if (!n) {
		c->ns->st.drop_ooo++;
		return;
	}
	n->seq = seq;
	n->len = len;
	n->fin = fin;
	c->ooo_last = seq;
	memcpy(n->data, data, len);
	while (*pp && SEQ_LEQ((*pp)->seq, seq))
		pp = &(*pp)->next;
	n->next = *pp;
	*pp = n;
	c->ooo_bytes += len;
}

static void fin_input(struct net_tcp *c, uint64_t now)
{
	c->rcv_nxt++;
	c->flags |= F_ACK_PENDING;
	switch (c->state) {
	case TCP_ESTABLISHED:
		set_state(c, TCP_CLOSE_WAIT);
		send_ack(c, now);
		if (cb_ok(c) && c->h->on_recv)
			c->h->on_recv(c->ctx, "", 0);
		break;
	case TCP_FIN_WAIT_1: /* our FIN not yet acknowledged */
		set_state(c, TCP_CLOSING);
		send_ack(c, now);
		break;
	case TCP_FIN_WAIT_2:
		send_ack(c, now);
		enter_time_wait(c, now);
		break;
	default:
		break;
	}
}

/* Process the ACK field (c is synchronized). false: stop processing. */
static bool ack_input(struct net_tcp *c, const struct seg *s, uint64_t now)
{
	struct net_stack *ns = c->ns;
	uint32_t ack = s->ack;
	if (SEQ_GT(ack, c->snd_max)) { /* acks data never sent */
		ns->st.drop_tcp++;
		send_ack(c, now);
		return false;
	}
	uint32_t wnd = s->wnd << ((c->flags & F_WSCALE) ? c->snd_wscale : 0);
	uint32_t old_wnd = c->snd_wnd;
	bool wnd_update = SEQ_LT(c->snd_wl1, s->seq) ||
			  (c->snd_wl1 == s->seq && SEQ_LEQ(c->snd_wl2, ack));
	if (SEQ_LT(ack, c->snd_una))
		return true; /* old ACK: ignore it, keep the data */
	if (wnd_update) {
		c->snd_wnd = wnd;
		c->snd_wl1 = s->seq;
		c->snd_wl2 = ack;
		if (wnd > c->max_sndwnd)
			c->max_sndwnd = wnd;
	}
	if (ack == c->snd_una) {
		if (s->dlen == 0 && !(s->fl & NET_TH_FIN) && wnd == old_wnd && wnd &&
		    c->snd_max != c->snd_una)
			cc_dup_ack(c, ack, now);
		else if (old_wnd == 0 && wnd)
			c->backoff = 0; /* window opened after persist */
		return true;
	}
	/* new data acknowledged */
	uint32_t acked = ack - c->snd_una;
	uint32_t dlen = sb_len(c);
	uint32_t fin_seq = c->snd_una + dlen;
	bool fin_acked = (c->flags & F_FIN_PENDING) && SEQ_GT(ack, fin_seq);
	if ((c->flags & F_TIMING) && SEQ_GEQ(ack, c->rtt_seq)) {
		c->flags &= ~F_TIMING;
		rtt_sample(c, now);
	}
	c->backoff = 0;
	sb_consume(c, min32(acked, dlen));
	cc_new_ack(c, ack, acked, now);
	c->snd_una = ack;
	if (SEQ_LT(c->snd_nxt, c->snd_una))
		c->snd_nxt = c->snd_una;
	if (c->snd_una == c->snd_max)
		c->rto_at = 0;
	else if (!(c->flags & F_RECOVERY) || !(c->flags & F_PARTIAL) || SEQ_GT(ack, c->recover))
		c->rto_at = now + cur_rto(c);
	timer_sync(c);
	if (fin_acked) {
		switch (c->state) {
		case TCP_FIN_WAIT_1:
			set_state(c, TCP_FIN_WAIT_2);
			c->deadline_at = now + FIN_WAIT_2_MS;
			timer_sync(c);
			break;
		case TCP_CLOSING:
			enter_time_wait(c, now);
			break;
		case TCP_LAST_ACK:
			tcp_reap(c);
			return false;
		default:
			break;
		}
	} else if (dlen && !c->sb && cb_ok(c) && c->h->on_drained) {
		c->h->on_drained(c->ctx);
		if (gone(c))
			return false;
	}
	return true;
}

static void established_input(struct net_tcp *c, struct seg *s, uint64_t now)
{
	struct net_stack *ns = c->ns;
	uint32_t seglen = s->dlen + !!(s->fl & NET_TH_SYN) + !!(s->fl & NET_TH_FIN);
	uint32_t wend = c->rcv_nxt + RCV_WND;
	bool ok;

	/* RFC 793 acceptability */
	if (seglen == 0)
		ok = SEQ_GEQ(s->seq, c->rcv_nxt) && SEQ_LT(s->seq, wend);
	else
		ok = (SEQ_GEQ(s->seq, c->rcv_nxt) && SEQ_LT(s->seq, wend)) ||
		     (SEQ_GEQ(s->seq + seglen - 1, c->rcv_nxt) && SEQ_LT(s->seq + seglen - 1, wend));
	if (!ok) {
		ns->st.drop_tcp++;
		if (!(s->fl & NET_TH_RST)) {
			if (c->state == TCP_TIME_WAIT && (s->fl & NET_TH_FIN)) {
				c->deadline_at = now + ns->cfg.time_wait_ms;
				timer_sync(c);
			}
			send_ack(c, now);
		}
		return;
	}
	if (s->fl & NET_TH_RST) {
		ns->st.tcp_rst_rx++;
		if (s->seq != c->rcv_nxt) { /* RFC 5961 challenge ACK */
			send_ack(c, now);
			return;
		}
		if (c->state == TCP_TIME_WAIT) /* RFC 1337 */
			return;
		if (c->flags & F_USER_CLOSED)
			tcp_reap(c);
		else
			tcp_fail(c, -ECONNRESET);
		return;
	}
	if (s->fl & NET_TH_SYN) { /* RFC 5961 */
		ns->st.drop_tcp++;
		send_ack(c, now);
		return;
	}
	if (!(s->fl & NET_TH_ACK)) {
		ns->st.drop_tcp++;
		return;
	}
	if (c->state == TCP_TIME_WAIT)
		return;
	if (!ack_input(c, s, now))
		return;

	/* data and FIN */
	bool fin = (s->fl & NET_TH_FIN) != 0;
	bool ack_now = false;
	uint32_t seq = s->seq;
	const uint8_t *data = s->data;
	uint32_t dlen = s->dlen;
	bool rcv_open = c->state == TCP_ESTABLISHED || c->state == TCP_FIN_WAIT_1 ||
			c->state == TCP_FIN_WAIT_2;
	if (!rcv_open) {
		dlen = 0;
		fin = false;
	}
	if (SEQ_LT(seq, c->rcv_nxt)) { /* trim the duplicate front */
		uint32_t skip = min32(c->rcv_nxt - seq, dlen);
		if (skip)
			ack_now = true;
		data += skip;
		dlen -= skip;
		seq += skip;
		if (SEQ_LT(seq, c->rcv_nxt))
			fin = false; /* an old FIN */
	}
	if (SEQ_GT(seq + dlen, wend)) { /* trim beyond the window */
		dlen = SEQ_LT(seq, wend) ? wend - seq : 0;
		fin = false;
	}
	if (seq == c->rcv_nxt && (dlen || fin)) {
		bool filled = c->ooo != NULL;
		c->rcv_nxt += dlen;
		if (dlen) {
			c->flags |= F_ACK_PENDING;
			c->segs_unacked++;
		}
		if (!deliver(c, data, dlen))
			return;
		while (c->ooo && SEQ_LEQ(c->ooo->seq, c->rcv_nxt)) {
			struct net_ooo *o = c->ooo;
			c->ooo = o->next;
			c->ooo_bytes -= o->len;
			bool ok2 = true;
			if (SEQ_GT(o->seq + o->len, c->rcv_nxt)) {
				uint32_t off = c->rcv_nxt - o->seq;
				c->rcv_nxt = o->seq + o->len;
				ok2 = deliver(c, o->data + off, o->len - off);
			}
			if (o->fin && o->seq + o->len == c->rcv_nxt)
				fin = true;
			free(o);
			if (!ok2)
				return;
		}
		if (filled)
			ack_now = true;
		if (fin && !gone(c))
			fin_input(c, now);
		if (gone(c))
			return;
	} else if (SEQ_GT(seq, c->rcv_nxt) && (dlen || fin)) {
		ooo_insert(c, seq, data, dlen, fin);
		ack_now = true; /* duplicate ACK tells the sender */
		c->flags |= F_ACK_PENDING;
	}
	if (ack_now)
		c->flags |= F_ACK_PENDING;
	tcp_output(c, now);
	if (c->flags & F_ACK_PENDING) {
		if (ack_now || c->segs_unacked >= 2) {
			send_ack(c, now);
		} else if (!c->delack_at) {
			c->delack_at = now + DELACK_MS;
			timer_sync(c);
		}
	}
}

void net_tcp_input(struct net_stack *ns, uint32_t src, uint32_t dst, const uint8_t *t,
		   size_t len, uint64_t now)
{
	struct seg s = {.wscale = -1};

	if (len < NET_TCP_HLEN) {
		ns->st.drop_proto++;
		return;
	}
	size_t hl = (size_t)(t[12] >> 4) * 4;
	if (hl < NET_TCP_HLEN || hl > len) {
		ns->st.drop_proto++;
		return;
	}
	if (!ns->cfg.rx_csum_ok &&
	    net_csum_fold(net_csum_partial(t, len, net_csum_phdr(src, dst, NET_PROTO_TCP,
								 (uint16_t)len))) != 0xffff) {
		ns->st.drop_csum++;
		return;
	}
	s.sport = net_get16(t);
	s.dport = net_get16(t + 2);
	s.seq = net_get32(t + 4);
	s.ack = net_get32(t + 8);
	s.fl = t[13] & 0x3f;
	s.wnd = net_get16(t + 14);
	s.data = t + hl;
	s.dlen = (uint32_t)(len - hl);
	if (s.fl & NET_TH_SYN)
		parse_options(t + NET_TCP_HLEN, hl - NET_TCP_HLEN, &s);

	struct net_tcp *c = tcp_lookup(ns, dst, src, s.dport, s.sport);
	if (!c) {
		ns->st.drop_tcp++;
		rst_for(ns, dst, src, &s, now);
		return;
	}
	if (c->state == TCP_SYN_SENT)
		syn_sent_input(c, &s, now);
	else
		established_input(c, &s, now);
}

void net_tcp_icmp_error(struct net_stack *ns, uint32_t lip, uint32_t rip, uint16_t lport,
			uint16_t rport, uint32_t seq, uint8_t code, uint16_t mtu, uint64_t now)
{
	struct net_tcp *c = tcp_lookup(ns, lip, rip, lport, rport);
	if (!c || c->state == TCP_TIME_WAIT || SEQ_LT(seq, c->snd_una) ||
	    SEQ_GT(seq, c->snd_max)) {
		ns->st.drop_proto++;
		return;
	}
	switch (code) {
	case 4: { /* fragmentation needed: path MTU */
		uint32_t nmss = mtu >= 68 ? (uint32_t)mtu - NET_IP_HLEN - NET_TCP_HLEN : DEFAULT_MSS;
		nmss = max32(nmss, MSS_FLOOR);
		if (nmss >= c->mss)
			return;
		c->mss = (uint16_t)nmss;
		if (c->state != TCP_SYN_SENT && c->snd_una != c->snd_max) {
			c->snd_nxt = c->snd_una; /* resend at the new size */
			tcp_output(c, now);
		}
		return;
	}
	case 2: /* protocol unreachable */
	case 3: /* port unreachable */
		if (c->state == TCP_SYN_SENT) {
			tcp_fail(c, -ECONNREFUSED);
			return;
		}
		c->soft_err = ECONNREFUSED;
		return;
	default:
		c->soft_err = EHOSTUNREACH;
		return;
	}
}

/* ---- timers ----------------------------------------------------------------------- */

static void rto_fire(struct net_tcp *c, uint64_t now)
{
	struct net_stack *ns = c->ns;
	c->rto_at = 0;
	if (c->state == TCP_SYN_SENT) {
		c->backoff++;
		c->flags |= F_SYN_REXMIT;
		c->flags &= ~F_TIMING;
		ns->st.tcp_rto_timeouts++;
		if (tcp_xmit(c, c->iss, NET_TH_SYN, 0, now) == -EHOSTUNREACH) {
			tcp_fail(c, -EHOSTUNREACH);
			return;
		}
		c->rto_at = now + cur_rto(c);
		timer_sync(c);
		return;
	}
	if (!can_send_data(c))
		return;
	uint32_t dlen = sb_len(c);
	if (c->snd_wnd == 0 && dlen) { /* persist: probe the closed window */
		if (c->backoff >= MAX_BACKOFF && (c->flags & F_USER_CLOSED)) {
			/* orphaned and the window never opens: give up */
			tcp_send_raw(ns, c->lip, c->rip, c->lport, c->rport, c->snd_max, c->rcv_nxt,
				     NET_TH_RST | NET_TH_ACK, now);
			tcp_reap(c);
			return;
		}
		if (c->backoff < MAX_BACKOFF)
			c->backoff++;
		(void)tcp_xmit(c, c->snd_una, NET_TH_ACK, 1, now);
		if (c->snd_nxt == c->snd_una)
			c->snd_nxt++;
		if (SEQ_GT(c->snd_nxt, c->snd_max))
			c->snd_max = c->snd_nxt;
		c->rto_at = now + cur_rto(c);
		timer_sync(c);
		return;
	}
	if (c->snd_una == c->snd_max) { /* persist timer, window open but small */
		tcp_output_force(c, now, true);
		return;
	}
	ns->st.tcp_rto_timeouts++;
	if (++c->backoff > MAX_BACKOFF) {
		tcp_fail(c, c->soft_err ? -(int)c->soft_err : -ETIMEDOUT);
		return;
	}
	c->ssthresh = max32(flight(c) / 2, 2u * c->mss);
	c->cwnd = c->mss;
	c->ca_acc = 0;
	c->recover = c->snd_max - 1;
	c->flags &= ~(F_RECOVERY | F_PARTIAL | F_TIMING);
	c->dupacks = 0;
	c->snd_nxt = c->snd_una; /* go back N */
	tcp_output(c, now);
	if (!c->rto_at) {
		c->rto_at = now + cur_rto(c);
		timer_sync(c);
	}
}

static void tcp_timer_fire(struct net_tcp *c, uint64_t now)
{
	if (c->deadline_at && c->deadline_at <= now) {
		c->deadline_at = 0;
		switch (c->state) {
		case TCP_SYN_SENT:
			tcp_fail(c, c->soft_err ? -(int)c->soft_err : -ETIMEDOUT);
			return;
		default: /* TIME_WAIT, orphaned FIN_WAIT_2 */
			tcp_reap(c);
			return;
		}
	}
	if (c->delack_at && c->delack_at <= now) {
		c->delack_at = 0;
		if (c->flags & F_ACK_PENDING)
			send_ack(c, now);
	}
	if (c->rto_at && c->rto_at <= now)
		rto_fire(c, now);
	if (!gone(c))
		timer_sync(c);
}

void net_tcp_timers(struct net_stack *ns, uint64_t now)
{
	/* bounded: each TCB fires at most once per call (its key moves past now
	 * or it leaves the heap) */
	uint32_t budget = ns->heap_len * 2 + 16;
	while (ns->heap_len && budget--) {
		struct net_tcp *c = &ns->tcbs[ns->heap[0]];
		if (c->timer_key > now)
			break;
		tcp_timer_fire(c, now);
		if (c->heap_pos == 1 && c->timer_key <= now) { /* nothing moved: drop it */
			heap_remove(c);
			c->timer_key = 0;
		}
	}
}

uint64_t net_tcp_next_timer(const struct net_stack *ns)
{
	return ns->heap_len ? ns->tcbs[ns->heap[0]].timer_key : UINT64_MAX;
}

/* ---- API -------------------------------------------------------------------------- */

static bool port_ok(struct net_stack *ns, uint32_t lip, uint32_t rip, uint16_t lport,
		    uint16_t rport)
{
	if (ns->cfg.rss_queues > 1 && ns->cfg.rss_key_len) {
		uint32_t h = net_rss_hash_tcp4(ns->rss_key, ns->cfg.rss_key_len, rip, lip, rport,
					       lport);
		if (net_rss_queue(h, ns->cfg.rss_queues, ns->reta, ns->cfg.reta_size) !=
		    ns->cfg.rss_queue)
			return false;
	}
	return !tcp_lookup(ns, lip, rip, lport, rport);
}

int net_tcp_connect(struct net_stack *ns, uint32_t src_ip, uint16_t src_port, uint32_t dst_ip,
		    uint16_t dst_port, uint64_t timeout_ms, uint64_t now_ms,
		    const struct net_tcp_handler *h, void *ctx, struct net_tcp **out)
{
	if (!ns || !h || !out || !dst_port || !dst_ip)
		return -EINVAL;
	if (!src_ip)
		src_ip = ns->cfg.ips[0];
	if (!net_ipv4_owned(ns, src_ip))
		return -EADDRNOTAVAIL;
	if (!net_arp_routable(ns, dst_ip))
		return -ENETUNREACH;
	if (src_port) {
		if (tcp_lookup(ns, src_ip, dst_ip, src_port, dst_port))
			return -EADDRINUSE;
	} else {
		uint32_t range = (uint32_t)ns->cfg.port_hi - ns->cfg.port_lo + 1;
		for (uint32_t i = 0; i < range; i++) {
			uint16_t p = (uint16_t)(ns->cfg.port_lo + (ns->port_cursor + i) % range);
			if (port_ok(ns, src_ip, dst_ip, p, dst_port)) {
				src_port = p;
				ns->port_cursor = (ns->port_cursor + i + 1) % range;
				break;
			}
		}
		if (!src_port)
			return -EADDRNOTAVAIL;
	}
	if (!ns->free_head)
		return -ENOMEM;
	struct net_tcp *c = &ns->tcbs[ns->free_head - 1];
	ns->free_head = c->hnext;
	memset(c, 0, sizeof(*c));
	c->ns = ns;
	c->h = h;
	c->ctx = ctx;
	c->lip = src_ip;
	c->rip = dst_ip;
	c->lport = src_port;
	c->rport = dst_port;
	uint64_t m0 = (uint64_t)src_ip << 32 | dst_ip, m1 = (uint64_t)src_port << 16 | dst_port;
	c->iss = (uint32_t)siphash16(ns->sip_k0, ns->sip_k1, m0, m1) + (uint32_t)(now_ms * 250);
	c->snd_una = c->iss;
	c->snd_nxt = c->iss;
	c->snd_max = c->iss;
	c->recover = c->iss;
	c->mss = (uint16_t)(ns->cfg.mtu - NET_IP_HLEN - NET_TCP_HLEN);
	c->rto = RTO_INIT;
	c->cwnd = c->mss;
	c->ssthresh = 1u << 30;
	c->state = TCP_SYN_SENT;
	tcp_hash(c);
	ns->st.tcp_conns_active++;
	ns->st.tcp_conns_opened++;
	c->deadline_at = now_ms + (timeout_ms ? timeout_ms : 30000);
	c->rto_at = now_ms + RTO_INIT;
	timer_sync(c);
	(void)tcp_xmit(c, c->iss, NET_TH_SYN, 0, now_ms); /* ARP failure shows at the RTO */
	c->snd_nxt = c->snd_max = c->iss + 1;
	c->flags |= F_TIMING;
	c->rtt_seq = c->iss + 1;
	c->rtt_start = now_ms;
	*out = c;
	return 0;
}

int net_tcp_send(struct net_tcp *c, const void *data, size_t len, uint64_t now_ms)
{
	if (c->flags & (F_USER_CLOSED | F_DEAD | F_FIN_PENDING) || c->state == TCP_CLOSED)
		return -EPIPE;
	if (!len)
		return 0;
	int err = sb_append(c, data, len);
	if (err)
		return err;
	tcp_output(c, now_ms);
	return 0;
}

size_t net_tcp_pending(const struct net_tcp *c)
{
	return sb_len(c);
}

void net_tcp_close(struct net_tcp *c, uint64_t now_ms)
{
	if (c->flags & F_USER_CLOSED)
		return;
	c->flags |= F_USER_CLOSED;
	switch (c->state) {
	case TCP_ESTABLISHED:
		c->flags |= F_FIN_PENDING;
		set_state(c, TCP_FIN_WAIT_1);
		tcp_output(c, now_ms);
		break;
	case TCP_CLOSE_WAIT:
		c->flags |= F_FIN_PENDING;
		set_state(c, TCP_LAST_ACK);
		tcp_output(c, now_ms);
		break;
	default: /* CLOSED (dead), SYN_SENT: nothing to finish */
		tcp_reap(c);
		break;
	}
}

void net_tcp_abort(struct net_tcp *c, uint64_t now_ms)
{
	c->flags |= F_USER_CLOSED;
	if (c->state != TCP_CLOSED && c->state != TCP_TIME_WAIT) {
		uint8_t fl = NET_TH_RST;
		uint32_t ack = 0;
		if (c->state != TCP_SYN_SENT) {
			fl |= NET_TH_ACK;
			ack = c->rcv_nxt;
		}
		tcp_send_raw(c->ns, c->lip, c->rip, c->lport, c->rport, c->snd_max, ack, fl,
			     now_ms);
	}
	tcp_reap(c);
}

void net_tcp_addrs(const struct net_tcp *c, uint32_t *src_ip, uint16_t *src_port,
		   uint32_t *dst_ip, uint16_t *dst_port)
{
	if (src_ip)
		*src_ip = c->lip;
	if (src_port)
		*src_port = c->lport;
	if (dst_ip)
		*dst_ip = c->rip;
	if (dst_port)
		*dst_port = c->rport;
}
