/* transport_dpdk.c — net_stack over a DPDK port, in the loop or on worker
 * lcores; see transport_dpdk.h. */
#include "transport_dpdk.h"

#include "metrics.h"
#include "net_csum.h"
#include "net_shard.h"
#include "net_stack.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define BURST 32
#define TX_MAX 256           /* frames batched between two polls */
#define MBUF_CACHE 256
#define STATS_EVERY_MS 250   /* how often the metrics are refreshed */
#define QUIET_POLLS 256      /* empty polls in a row before idle_sleep may start */
#define EAL_MAX_ARGS 64
#define RING_SIZE 4096       /* command, event and hand-over rings, per worker */
#define IDLE_WAIT_MS 200     /* loop wait with workers and nothing to do */

#define N_PORT_COUNTERS 10
#define N_STACK_COUNTERS 26
#define N_WORKER_COUNTERS 7

/* A command (loop -> worker) or an event (worker -> loop) on a ring. The
 * sender allocates it and gives up every access when it enqueues; the
 * receiver frees it. Bytes travel as a copy in data[]. */
enum msg_type { CMD_CONNECT, CMD_SEND, CMD_CLOSE, EV_CONNECT, EV_RECV, EV_ERROR, EV_DRAINED,
		EV_CLOSED };

struct msg {
	struct msg *next; /* backlog link, sender side only */
	struct dconn *c;
	enum msg_type type;
	int err;
	uint64_t seq;     /* CMD_SEND: bytes sent so far; EV_DRAINED: bytes drained */
	uint32_t src_ip, dst_ip;
	uint16_t src_port, dst_port;
	uint64_t timeout_ms;
	size_t len;
	char data[];
};

/* Messages the ring had no room for, sent first next time (keeps order). */
struct backlog {
	struct msg *head, *tail;
};

struct worker {
	struct transport_dpdk *td;
	unsigned id, lcore;
	uint16_t queue;              /* rx and tx queue */
	struct net_stack *ns;
	struct rte_mbuf *tx[TX_MAX];
	unsigned n_tx;
	unsigned work;               /* frames seen during this poll */
	unsigned empty_polls;        /* polls in a row without a frame */
	uint64_t stats_ms;
	uint64_t tx_dropped, rx_dropped, handovers; /* written by the worker only */
	/* Threaded mode only. cmd: loop -> worker (single producer, single
	 * consumer); evt: worker -> loop (SP/SC); in: frames handed over by
	 * the other workers (multi-producer, single consumer). */
	struct rte_ring *cmd, *evt, *in;
	struct backlog cmd_backlog;  /* loop side */
	struct backlog evt_backlog;  /* worker side */
	bool evt_posted;             /* worker side: wake the loop after this poll */
	int efd;                     /* wakes the worker while it is parked */
	atomic_int parked;
	atomic_bool stop;
	bool launched;
	uint32_t conns;              /* loop side: open conns, for the pick */
	/* What the loop reads for /metrics: a copy taken by the worker. */
	pthread_mutex_t lock;
	struct net_stack_stats snap;
	uint64_t snap_tx_dropped, snap_rx_dropped, snap_handovers;
	uint64_t *m_worker[N_WORKER_COUNTERS];
	int64_t *g_conns;
};

struct transport_dpdk {
	struct transport base;
	struct loop *loop;
	struct rte_mempool *mp;
	uint16_t port;
	bool tx_csum;                /* NIC fills IPv4/TCP checksums */
	bool rx_csum;                /* NIC reports checksum status */
	bool threaded;               /* workers on their own lcores (dpdk.workers >= 1) */
	bool rss;                    /* RSS on, with a key we could read */
	unsigned n_workers;
	struct worker *w;
	unsigned cursor;             /* round-robin start of the next pick */
	uint32_t ips[NET_MAX_IPS];   /* owned source IPs (network order) */
	size_t n_ips;
	uint64_t idle_sleep_ms;
	uint64_t stats_ms;
	/* Threaded mode: workers wake the loop through efd when parked. */
	int efd;
	struct efd_watch *ew;
	atomic_int parked;
	uint8_t mac[6];
	FILE *capture;               /* written under flockfile: workers share it */
	/* metrics: one pointer per exported value (tables below) */
	uint64_t *m_port[N_PORT_COUNTERS];
	uint64_t *m_stack[N_STACK_COUNTERS];
	int64_t *g_stack[4];
	bool eal_up, port_up;
};

/* A connection. Loop mode: everything belongs to the loop thread. Threaded
 * mode: the loop owns the struct and the fields marked loop, the worker
 * only ever touches tcp and w_sent; both learn of each other's changes
 * only through the rings, whose enqueue/dequeue order memory. The loop
 * frees it on EV_CLOSED, the worker's last word about it. */
struct dconn {
	struct conn base;
	struct transport_dpdk *td;
	struct worker *w;
	const struct conn_handler *h;
	void *ctx;
	struct net_tcp *tcp;         /* worker (threaded); NULL if connect failed */
	uint64_t w_sent;             /* worker: bytes handed to net_tcp_send */
	uint64_t sent, drained;      /* loop: bytes given to conn_send, reported drained */
	bool closed;                 /* loop: conn_close called, waiting for EV_CLOSED */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- capture: classic pcap, one record per frame in either direction ---- */

static FILE *capture_open(const char *path)
{
	static const struct {
		uint32_t magic;
		uint16_t major, minor;
		int32_t zone;
		uint32_t sigfigs, snaplen, linktype;
	} hdr = { 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1 /* Ethernet */ };
	FILE *f = fopen(path, "we");

	if (!f)
		return NULL;
	if (fwrite(&hdr, sizeof hdr, 1, f) != 1) {
		fclose(f);
		return NULL;
	}
	return f;
}

static void capture_frame(FILE *f, const void *frame, size_t len)
{
	struct timespec ts;
	uint32_t rec[4];

	clock_gettime(CLOCK_REALTIME, &ts);
	rec[0] = (uint32_t)ts.tv_sec;
	rec[1] = (uint32_t)(ts.tv_nsec / 1000);
	rec[2] = rec[3] = (uint32_t)len;
	flockfile(f);
	fwrite_unlocked(rec, sizeof rec, 1, f);
	fwrite_unlocked(frame, len, 1, f);
	funlockfile(f);
}

/* --- wake-ups: an eventfd written only when its reader is parked --------
 *
 * The reader stores parked = 1, then looks at its rings once more before
 * sleeping; the writer enqueues, then looks at parked. The fence keeps the
 * writer's enqueue ahead of its load of parked (a store-load order x86
 * does not give for free), so one of the two always sees the other. */

static void wake(atomic_int *parked, int efd)
{
	uint64_t one = 1;

	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(parked, memory_order_relaxed) && atomic_exchange(parked, 0)) {
		if (write(efd, &one, sizeof one) < 0) {
			/* EAGAIN: the counter is already non-zero, the reader wakes anyway */
		}
	}
}

/* --- rings -------------------------------------------------------------- */

/* Anything on r? For the park/wake handshake: rte_ring_count reads the
 * indexes with plain loads, this with sequentially consistent ones. */
static bool ring_nonempty(const struct rte_ring *r)
{
	return __atomic_load_n(&r->prod.tail, __ATOMIC_SEQ_CST) !=
	       __atomic_load_n(&r->cons.tail, __ATOMIC_SEQ_CST);
}

static struct msg *msg_new(struct dconn *c, enum msg_type type, size_t len)
{
	struct msg *m = malloc(sizeof *m + len);

	if (!m)
		return NULL;
	memset(m, 0, sizeof *m);
	m->c = c;
	m->type = type;
	m->len = len;
	return m;
}

/* Enqueue m after whatever is already waiting in b. */
static void post(struct rte_ring *r, struct backlog *b, struct msg *m)
{
	if (!b->head && rte_ring_sp_enqueue(r, m) == 0)
		return;
	m->next = NULL;
	if (b->tail)
		b->tail->next = m;
	else
		b->head = m;
	b->tail = m;
}

/* Move what fits from b onto r; true if anything moved. */
static bool backlog_flush(struct rte_ring *r, struct backlog *b)
{
	bool moved = false;

	while (b->head && rte_ring_sp_enqueue(r, b->head) == 0) {
		b->head = b->head->next;
		if (!b->head)
			b->tail = NULL;
		moved = true;
	}
	return moved;
}

/* --- frames out --------------------------------------------------------- */

static void tx_flush(struct worker *w)
{
	struct transport_dpdk *td = w->td;
	unsigned sent = 0;

	/* A full ring gets a few more tries; what still does not fit is
	 * dropped and left to TCP's retransmission. */
	for (int tries = 0; sent < w->n_tx && tries < 4; tries++)
		sent += rte_eth_tx_burst(td->port, w->queue, w->tx + sent,
					 (uint16_t)(w->n_tx - sent));
	if (sent < w->n_tx) {
		rte_pktmbuf_free_bulk(w->tx + sent, w->n_tx - sent);
		w->tx_dropped += w->n_tx - sent;
	}
	w->n_tx = 0;
}

static void stack_tx(void *ctx, const uint8_t *frame, size_t len, unsigned flags)
{
	struct worker *w = ctx;
	struct transport_dpdk *td = w->td;
	struct rte_mbuf *m;
	char *p;

	if (td->capture)
		capture_frame(td->capture, frame, len);
	m = rte_pktmbuf_alloc(td->mp);
	if (!m) {
		w->tx_dropped++;
		return;
	}
	p = rte_pktmbuf_append(m, (uint16_t)len);
	if (!p) { /* longer than a buffer: the stack keeps to the MTU */
		rte_pktmbuf_free(m);
		w->tx_dropped++;
		return;
	}
	memcpy(p, frame, len);
	if (flags & (NET_TX_IP_CSUM | NET_TX_TCP_CSUM)) {
		m->l2_len = RTE_ETHER_HDR_LEN;
		m->l3_len = sizeof(struct rte_ipv4_hdr);
		m->ol_flags |= RTE_MBUF_F_TX_IPV4;
		if (flags & NET_TX_IP_CSUM)
			m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
		if (flags & NET_TX_TCP_CSUM)
			m->ol_flags |= RTE_MBUF_F_TX_TCP_CKSUM;
	}
	w->tx[w->n_tx++] = m;
	w->work++;
	if (w->n_tx == TX_MAX)
		tx_flush(w);
}

/* --- frames in ---------------------------------------------------------- */

/* With rx checksum offload the stack skips verification, so frames the NIC
 * judged bad are dropped here and IPv4 frames it did not judge are checked
 * in software. */
static bool rx_csum_ok(const struct rte_mbuf *m)
{
	uint64_t ip = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
	uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
	const struct rte_ether_hdr *eth;
	const struct rte_ipv4_hdr *iph;
	size_t ihl;

	if (ip == RTE_MBUF_F_RX_IP_CKSUM_BAD || l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD)
		return false;
	if (ip == RTE_MBUF_F_RX_IP_CKSUM_GOOD && l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
		return true;
	eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	if (m->data_len < RTE_ETHER_HDR_LEN + sizeof *iph ||
	    eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))
		return true; /* ARP and the like carry no checksum to trust */
	iph = (const struct rte_ipv4_hdr *)(eth + 1);
	ihl = rte_ipv4_hdr_len(iph);
	if (ihl < sizeof *iph || m->data_len < RTE_ETHER_HDR_LEN + ihl)
		return true; /* malformed: the stack drops it */
	if (ip != RTE_MBUF_F_RX_IP_CKSUM_GOOD && rte_raw_cksum(iph, ihl) != 0xffff)
		return false;
	if (l4 != RTE_MBUF_F_RX_L4_CKSUM_GOOD && iph->next_proto_id == IPPROTO_TCP &&
	    !(iph->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))) {
		size_t tot = rte_be_to_cpu_16(iph->total_length);

		if (tot < ihl || RTE_ETHER_HDR_LEN + tot > m->data_len)
			return true; /* the stack drops it */
		uint32_t sum = net_csum_phdr(iph->src_addr, iph->dst_addr, IPPROTO_TCP,
					     (uint16_t)(tot - ihl));

		return net_csum_fold(net_csum_partial((const char *)iph + ihl, tot - ihl, sum)) ==
		       0xffff;
	}
	return true;
}

/* Give frame m to worker `to`; false if its ring is full (the caller
 * drops it: TCP retransmits). */
static bool hand_over(struct worker *w, unsigned to, struct rte_mbuf *m)
{
	struct worker *o = &w->td->w[to];

	if (rte_ring_mp_enqueue(o->in, m) != 0)
		return false;
	wake(&o->parked, o->efd);
	return true;
}

/* An ARP reply is learnt by every worker: each one gets a copy. */
static void copy_to_all(struct worker *w, const struct rte_mbuf *m)
{
	for (unsigned i = 0; i < w->td->n_workers; i++) {
		struct rte_mbuf *c;
		char *p;

		if (i == w->id)
			continue;
		if (!(c = rte_pktmbuf_alloc(w->td->mp)) ||
		    !(p = rte_pktmbuf_append(c, m->data_len))) {
			rte_pktmbuf_free(c);
			w->rx_dropped++;
			continue;
		}
		memcpy(p, rte_pktmbuf_mtod(m, const void *), m->data_len);
		if (!hand_over(w, i, c)) {
			rte_pktmbuf_free(c);
			w->rx_dropped++;
		}
	}
}

static void rx_frames(struct worker *w, uint64_t now)
{
	struct transport_dpdk *td = w->td;
	struct rte_mbuf *rx[BURST], *done[BURST];
	unsigned n_done = 0;
	uint16_t n;

	n = rte_eth_rx_burst(td->port, w->queue, rx, BURST);
	w->work += n;
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = rx[i];
		const uint8_t *frame = rte_pktmbuf_mtod(m, const uint8_t *);
		int owner;

		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void *));
		if (td->capture)
			capture_frame(td->capture, frame, m->data_len);
		/* No scatter: a frame fits one buffer (the pool is sized for the MTU). */
		if (m->nb_segs != 1 || (td->rx_csum && !rx_csum_ok(m))) {
			w->rx_dropped++;
			done[n_done++] = m;
			continue;
		}
		owner = net_shard_owner(td->n_workers, frame, m->data_len);
		if (owner >= 0 && (unsigned)owner != w->id) {
			if (hand_over(w, (unsigned)owner, m)) {
				w->handovers++;
			} else {
				w->rx_dropped++;
				done[n_done++] = m;
			}
			continue;
		}
		if (owner == NET_SHARD_ALL)
			copy_to_all(w, m);
		net_stack_input(w->ns, frame, m->data_len, now);
		done[n_done++] = m;
	}
	if (n_done)
		rte_pktmbuf_free_bulk(done, n_done);
}

/* Frames the other workers handed over (threaded mode). */
static void rx_handed_over(struct worker *w, uint64_t now)
{
	struct rte_mbuf *rx[BURST];
	unsigned n = rte_ring_sc_dequeue_burst(w->in, (void **)rx, BURST, NULL);

	w->work += n;
	for (unsigned i = 0; i < n; i++)
		net_stack_input(w->ns, rte_pktmbuf_mtod(rx[i], const uint8_t *), rx[i]->data_len,
				now);
	if (n)
		rte_pktmbuf_free_bulk(rx, n);
}

static void worker_snapshot(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	net_stack_stats(w->ns, &w->snap);
	w->snap_tx_dropped = w->tx_dropped;
	w->snap_rx_dropped = w->rx_dropped;
	w->snap_handovers = w->handovers;
	pthread_mutex_unlock(&w->lock);
}

static void worker_commands(struct worker *w, uint64_t now);

/* One run-to-completion round: commands, handed-over frames, one rx burst,
 * due timers, one tx burst, events to the loop. */
static unsigned worker_poll(struct worker *w, uint64_t now)
{
	unsigned n;

	if (w->cmd) {
		worker_commands(w, now);
		rx_handed_over(w, now);
	}
	rx_frames(w, now);
	if (net_stack_next_timer(w->ns) <= now)
		net_stack_timers(w->ns, now);
	if (w->n_tx)
		tx_flush(w);
	if (w->evt) {
		if (backlog_flush(w->evt, &w->evt_backlog))
			w->evt_posted = true;
		if (w->evt_posted) {
			w->evt_posted = false;
			wake(&w->td->parked, w->td->efd);
		}
	}
	if (now - w->stats_ms >= STATS_EVERY_MS) {
		w->stats_ms = now;
		worker_snapshot(w);
	}
	n = w->work;
	w->empty_polls = w->work ? 0 : w->empty_polls + 1;
	w->work = 0;
	return n;
}

/* --- connections: the stack's callbacks --------------------------------- */

/* Loop mode: straight through to the session. */
static void dconn_on_connect(void *ctx, int err)
{
	struct dconn *c = ctx;

	c->h->on_connect(c->ctx, err);
}

static void dconn_on_recv(void *ctx, const char *data, size_t len)
{
	struct dconn *c = ctx;

	c->h->on_recv(c->ctx, data, len);
}

static void dconn_on_error(void *ctx, int err)
{
	struct dconn *c = ctx;

	c->h->on_error(c->ctx, err);
}

static void dconn_on_drained(void *ctx)
{
	struct dconn *c = ctx;

	if (c->h->on_drained)
		c->h->on_drained(c->ctx);
}

static const struct net_tcp_handler dconn_handler = {
	.on_connect = dconn_on_connect,
	.on_recv = dconn_on_recv,
	.on_error = dconn_on_error,
	.on_drained = dconn_on_drained,
};

/* Threaded mode, on the worker: each callback becomes an event. A failed
 * allocation loses the event; for on_recv that would corrupt the stream,
 * so the connection is reported dead instead (the error event is small and
 * retried from the stack's next callback at worst). */
static void ev_post(struct dconn *c, struct msg *m)
{
	struct worker *w = c->w;

	post(w->evt, &w->evt_backlog, m);
	w->evt_posted = true;
}

static void ev_simple(struct dconn *c, enum msg_type type, int err)
{
	struct msg *m = msg_new(c, type, 0);

	if (!m)
		return;
	m->err = err;
	m->seq = c->w_sent;
	ev_post(c, m);
}

static void wconn_on_connect(void *ctx, int err)
{
	ev_simple(ctx, EV_CONNECT, err);
}

static void wconn_on_recv(void *ctx, const char *data, size_t len)
{
	struct dconn *c = ctx;
	struct msg *m = msg_new(c, EV_RECV, len);

	if (!m) {
		ev_simple(c, EV_ERROR, -ENOMEM);
		return;
	}
	memcpy(m->data, data, len);
	ev_post(c, m);
}

static void wconn_on_error(void *ctx, int err)
{
	ev_simple(ctx, EV_ERROR, err);
}

static void wconn_on_drained(void *ctx)
{
	ev_simple(ctx, EV_DRAINED, 0);
}

static const struct net_tcp_handler wconn_handler = {
	.on_connect = wconn_on_connect,
	.on_recv = wconn_on_recv,
	.on_error = wconn_on_error,
	.on_drained = wconn_on_drained,
};

static void worker_exec(struct worker *w, struct msg *m, uint64_t now)
{
	struct dconn *c = m->c;
	int rc;

	switch (m->type) {
	case CMD_CONNECT:
		rc = net_tcp_connect(w->ns, m->src_ip, m->src_port, m->dst_ip, m->dst_port,
				     m->timeout_ms, now, &wconn_handler, c, &c->tcp);
		if (rc < 0) {
			c->tcp = NULL;
			ev_simple(c, EV_CONNECT, rc);
		}
		break;
	case CMD_SEND:
		if (!c->tcp)
			break;
		if ((rc = net_tcp_send(c->tcp, m->data, m->len, now)) < 0)
			ev_simple(c, EV_ERROR, rc);
		else
			c->w_sent += m->len;
		break;
	case CMD_CLOSE:
		if (c->tcp)
			net_tcp_close(c->tcp, now);
		c->tcp = NULL;
		ev_simple(c, EV_CLOSED, 0); /* the last word about c */
		break;
	default:
		break;
	}
	free(m);
}

static void worker_commands(struct worker *w, uint64_t now)
{
	struct msg *m[BURST];
	unsigned n = rte_ring_sc_dequeue_burst(w->cmd, (void **)m, BURST, NULL);

	w->work += n;
	for (unsigned i = 0; i < n; i++)
		worker_exec(w, m[i], now);
}

/* Park until woken or timeout_ms, after re-checking the producers' rings. */
static void worker_park(struct worker *w, uint64_t timeout_ms)
{
	struct pollfd pfd = { .fd = w->efd, .events = POLLIN };
	uint64_t v;

	atomic_store(&w->parked, 1);
	if (ring_nonempty(w->cmd) || ring_nonempty(w->in) || w->evt_backlog.head ||
	    atomic_load(&w->stop)) {
		atomic_store(&w->parked, 0);
		return;
	}
	if (poll(&pfd, 1, (int)timeout_ms) > 0 && read(w->efd, &v, sizeof v) < 0) {
		/* EAGAIN: someone else read it; nothing to do */
	}
	atomic_store(&w->parked, 0);
}

static int worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t now = mono_ms(), next;

	net_stack_announce(w->ns, now);
	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		now = mono_ms();
		worker_poll(w, now);
		if (!w->td->idle_sleep_ms || w->empty_polls < QUIET_POLLS)
			continue;
		next = net_stack_next_timer(w->ns);
		if (next <= now)
			continue;
		worker_park(w, next - now < w->td->idle_sleep_ms ? next - now
								  : w->td->idle_sleep_ms);
	}
	if (w->n_tx)
		tx_flush(w);
	return 0;
}

/* --- connections: the loop side ----------------------------------------- */

static void dconn_free(struct dconn *c)
{
	c->w->conns--;
	free(c);
}

static void loop_event(struct msg *m)
{
	struct dconn *c = m->c;

	switch (m->type) {
	case EV_CONNECT:
		if (!c->closed)
			c->h->on_connect(c->ctx, m->err);
		break;
	case EV_RECV:
		if (!c->closed)
			c->h->on_recv(c->ctx, m->data, m->len);
		break;
	case EV_ERROR:
		if (!c->closed)
			c->h->on_error(c->ctx, m->err);
		break;
	case EV_DRAINED:
		/* Stale if the loop sent more since the worker saw it drained. */
		c->drained = m->seq;
		if (!c->closed && c->drained == c->sent && c->h->on_drained)
			c->h->on_drained(c->ctx);
		break;
	case EV_CLOSED:
		dconn_free(c);
		break;
	default:
		break;
	}
	free(m);
}

/* Threaded mode, on the loop: commands out, events in. */
static unsigned loop_exchange(struct transport_dpdk *td)
{
	unsigned total = 0;

	for (unsigned i = 0; i < td->n_workers; i++) {
		struct worker *w = &td->w[i];
		struct msg *m[BURST];
		unsigned n;

		if (backlog_flush(w->cmd, &w->cmd_backlog))
			wake(&w->parked, w->efd);
		/* Bounded: events posted meanwhile wait for the next poll. */
		for (int round = 0; round < 8; round++) {
			n = rte_ring_sc_dequeue_burst(w->evt, (void **)m, BURST, NULL);
			for (unsigned j = 0; j < n; j++)
				loop_event(m[j]);
			total += n;
			if (n < BURST)
				break;
		}
	}
	return total;
}

static void cmd_post(struct dconn *c, struct msg *m)
{
	post(c->w->cmd, &c->w->cmd_backlog, m);
	wake(&c->w->parked, c->w->efd);
}

static bool ip_owned(const struct transport_dpdk *td, uint32_t ip)
{
	for (size_t i = 0; i < td->n_ips; i++)
		if (td->ips[i] == ip)
			return true;
	return false;
}

static int dpdk_connect(struct transport *t, const struct sockaddr *src, socklen_t src_len,
			const struct sockaddr *dst, socklen_t dst_len, uint64_t timeout_ms,
			const struct conn_handler *h, void *ctx, struct conn **out)
{
	struct transport_dpdk *td = (struct transport_dpdk *)t;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)src;
	const struct sockaddr_in *d4 = (const struct sockaddr_in *)dst;
	uint32_t load[RTE_MAX_LCORE], src_ip = 0;
	uint16_t src_port = 0;
	struct dconn *c;
	struct msg *m;
	int rc;

	if (dst->sa_family != AF_INET || dst_len < sizeof *d4)
		return -EAFNOSUPPORT; /* the stack is IPv4 only */
	if (src && src_len && (src->sa_family != AF_INET || src_len < sizeof *s4))
		return -EAFNOSUPPORT;
	if (src && src_len) {
		src_ip = s4->sin_addr.s_addr;
		src_port = ntohs(s4->sin_port);
	}
	if (src_ip && !ip_owned(td, src_ip))
		return -EADDRNOTAVAIL;
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->base.t = t;
	c->td = td;
	c->h = h;
	c->ctx = ctx;
	if (!td->threaded) {
		c->w = &td->w[0];
		rc = net_tcp_connect(c->w->ns, src_ip, src_port, d4->sin_addr.s_addr,
				     ntohs(d4->sin_port), timeout_ms, loop_now_ms(td->loop),
				     &dconn_handler, c, &c->tcp);
		if (rc < 0) {
			free(c);
			return rc;
		}
	} else {
		/* An explicit source port belongs to the worker whose slice has it. */
		int owner = src_port ? net_shard_port_owner(td->n_workers, src_port) : -1;

		if (owner < 0) {
			for (unsigned i = 0; i < td->n_workers; i++)
				load[i] = td->w[i].conns;
			owner = (int)net_shard_pick(td->n_workers, load, &td->cursor);
		}
		c->w = &td->w[owner];
		if (!(m = msg_new(c, CMD_CONNECT, 0))) {
			free(c);
			return -ENOMEM;
		}
		m->src_ip = src_ip;
		m->src_port = src_port;
		m->dst_ip = d4->sin_addr.s_addr;
		m->dst_port = ntohs(d4->sin_port);
		m->timeout_ms = timeout_ms;
		cmd_post(c, m);
	}
	c->w->conns++;
	*out = &c->base;
	return 0;
}

static int dpdk_send(struct conn *base, const void *data, size_t len)
{
	struct dconn *c = (struct dconn *)base;
	struct msg *m;

	if (!c->td->threaded)
		return net_tcp_send(c->tcp, data, len, loop_now_ms(c->td->loop));
	if (!len)
		return 0;
	if (!(m = msg_new(c, CMD_SEND, len)))
		return -ENOMEM;
	memcpy(m->data, data, len);
	c->sent += len;
	m->seq = c->sent;
	cmd_post(c, m);
	return 0;
}

static size_t dpdk_pending(const struct conn *base)
{
	const struct dconn *c = (const struct dconn *)base;

	if (!c->td->threaded)
		return net_tcp_pending(c->tcp);
	return (size_t)(c->sent - c->drained);
}

static void dpdk_close(struct conn *base)
{
	struct dconn *c = (struct dconn *)base;
	struct msg *m;

	if (!c->td->threaded) {
		net_tcp_close(c->tcp, loop_now_ms(c->td->loop));
		dconn_free(c);
		return;
	}
	c->closed = true;
	/* Without memory for the command the worker never hears of the close:
	 * its TCB then lingers until the peer or a timer ends it, and c
	 * leaks. Retrying cannot be done from here (close cannot fail). */
	if ((m = msg_new(c, CMD_CLOSE, 0)))
		cmd_post(c, m);
}

static const struct transport_ops dpdk_ops = {
	.name = "dpdk",
	.connect = dpdk_connect,
	.send = dpdk_send,
	.close = dpdk_close,
	.pending = dpdk_pending,
};

/* --- the loop's side of polling ----------------------------------------- */

static void metrics_refresh(struct transport_dpdk *td);

unsigned transport_dpdk_poll(struct transport_dpdk *td)
{
	uint64_t now = loop_now_ms(td->loop);
	unsigned n;

	if (td->threaded) {
		atomic_store(&td->parked, 0);
		n = loop_exchange(td);
	} else {
		n = worker_poll(&td->w[0], now);
	}
	if (now - td->stats_ms >= STATS_EVERY_MS) {
		td->stats_ms = now;
		metrics_refresh(td);
		if (td->capture)
			fflush(td->capture);
	}
	return n;
}

static bool events_waiting(const struct transport_dpdk *td)
{
	for (unsigned i = 0; i < td->n_workers; i++)
		if (ring_nonempty(td->w[i].evt) || td->w[i].cmd_backlog.head)
			return true;
	return false;
}

uint64_t transport_dpdk_wait_ms(struct transport_dpdk *td)
{
	const struct worker *w = &td->w[0];
	uint64_t now = loop_now_ms(td->loop), next;

	if (td->threaded) {
		/* Park, then look again: a worker that posted before it could
		 * see parked set is caught here, one after it writes efd. */
		if (events_waiting(td))
			return 0;
		atomic_store(&td->parked, 1);
		if (events_waiting(td)) {
			atomic_store(&td->parked, 0);
			return 0;
		}
		return IDLE_WAIT_MS;
	}
	if (!td->idle_sleep_ms || w->empty_polls < QUIET_POLLS)
		return 0;
	next = net_stack_next_timer(w->ns);
	if (next <= now)
		return 0;
	return next - now < td->idle_sleep_ms ? next - now : td->idle_sleep_ms;
}

/* The loop's read of td->efd: completes when a worker wakes the loop, and
 * is re-armed. Static, not in td: a read still in flight when td is
 * destroyed completes into this later (or never, if the loop goes first);
 * there is one transport per process (EAL initialises once). */
struct efd_watch {
	struct loop_op op; /* first: the callback gets this pointer */
	struct loop *loop;
	int fd;
	bool orphan;
	uint64_t val;
};

static struct efd_watch efd_watch;

static void efd_arm(struct efd_watch *ew)
{
	struct io_uring_sqe *sqe = loop_sqe(ew->loop, &ew->op);

	io_uring_prep_read(sqe, ew->fd, &ew->val, sizeof ew->val, 0);
}

static void efd_done(struct loop_op *op, int res, uint32_t flags)
{
	struct efd_watch *ew = (struct efd_watch *)op;

	(void)flags;
	if (ew->orphan)
		close(ew->fd);
	else if (res >= 0)
		efd_arm(ew);
	/* else (not seen in practice) the loop wakes every IDLE_WAIT_MS */
}

/* --- metrics ------------------------------------------------------------ */

#define ST(f) offsetof(struct net_stack_stats, f)

static const struct {
	const char *name, *help, *labels;
	size_t off;
} stack_counters[] = {
	{ "sluice_netstack_rx_packets_total", "Frames received by the userspace stack", "", ST(rx_packets) },
	{ "sluice_netstack_rx_bytes_total", "Bytes received by the userspace stack", "", ST(rx_bytes) },
	{ "sluice_netstack_tx_packets_total", "Frames sent by the userspace stack", "", ST(tx_packets) },
	{ "sluice_netstack_tx_bytes_total", "Bytes sent by the userspace stack", "", ST(tx_bytes) },
	{ "sluice_netstack_rx_drops_total", "Received frames dropped, by reason", "reason=\"eth\"", ST(drop_eth) },
	{ "sluice_netstack_rx_drops_total", NULL, "reason=\"ip_header\"", ST(drop_ip_hdr) },
	{ "sluice_netstack_rx_drops_total", NULL, "reason=\"checksum\"", ST(drop_csum) },
	{ "sluice_netstack_rx_drops_total", NULL, "reason=\"not_ours\"", ST(drop_not_ours) },
	{ "sluice_netstack_rx_drops_total", NULL, "reason=\"fragment\"", ST(drop_frag) },
	{ "sluice_netstack_rx_drops_total", NULL, "reason=\"protocol\"", ST(drop_proto) },
	{ "sluice_netstack_rx_drops_total", NULL, "reason=\"tcp\"", ST(drop_tcp) },
	{ "sluice_netstack_rx_drops_total", NULL, "reason=\"out_of_order\"", ST(drop_ooo) },
	{ "sluice_netstack_tx_drops_total", "Frames the stack could not send, by reason", "reason=\"arp_queue_full\"", ST(tx_arp_queue_full) },
	{ "sluice_netstack_tx_drops_total", NULL, "reason=\"arp_failed\"", ST(tx_arp_failed) },
	{ "sluice_netstack_tx_drops_total", NULL, "reason=\"no_route\"", ST(tx_no_route) },
	{ "sluice_netstack_tcp_retransmits_total", "TCP segments retransmitted", "", ST(tcp_retransmits) },
	{ "sluice_netstack_tcp_fast_retransmits_total", "TCP fast retransmits (dup/partial ACKs)", "", ST(tcp_fast_retransmits) },
	{ "sluice_netstack_tcp_rto_timeouts_total", "TCP retransmission timeouts", "", ST(tcp_rto_timeouts) },
	{ "sluice_netstack_tcp_rst_total", "TCP resets, by direction", "direction=\"rx\"", ST(tcp_rst_rx) },
	{ "sluice_netstack_tcp_rst_total", NULL, "direction=\"tx\"", ST(tcp_rst_tx) },
	{ "sluice_netstack_tcp_connections_total", "TCP connections, by outcome", "outcome=\"opened\"", ST(tcp_conns_opened) },
	{ "sluice_netstack_tcp_connections_total", NULL, "outcome=\"established\"", ST(tcp_conns_established) },
	{ "sluice_netstack_tcp_connections_total", NULL, "outcome=\"failed\"", ST(tcp_conns_failed) },
	{ "sluice_netstack_icmp_echo_replies_total", "ICMP echo replies sent", "", ST(icmp_echo_replies) },
	{ "sluice_netstack_arp_total", "ARP frames sent, by kind", "kind=\"request\"", ST(arp_requests_tx) },
	{ "sluice_netstack_arp_total", NULL, "kind=\"reply\"", ST(arp_replies_tx) },
};

static const struct {
	const char *name, *help;
} port_counters[] = {
	{ "sluice_dpdk_rx_packets_total", "Frames received by the DPDK port" },
	{ "sluice_dpdk_tx_packets_total", "Frames sent by the DPDK port" },
	{ "sluice_dpdk_rx_bytes_total", "Bytes received by the DPDK port" },
	{ "sluice_dpdk_tx_bytes_total", "Bytes sent by the DPDK port" },
	{ "sluice_dpdk_rx_missed_total", "Frames the port dropped for lack of rx descriptors" },
	{ "sluice_dpdk_rx_errors_total", "Erroneous frames received" },
	{ "sluice_dpdk_tx_errors_total", "Frames the port failed to send" },
	{ "sluice_dpdk_rx_nombuf_total", "Receive failures for lack of mbufs" },
	{ "sluice_dpdk_tx_dropped_total", "Frames dropped before the port (tx ring or mbuf pool full)" },
	{ "sluice_dpdk_rx_dropped_total", "Frames dropped before the stack (bad checksum, multi-segment, hand-over ring full)" },
};

/* Per worker, label worker="i". */
static const struct {
	const char *name, *help;
} worker_counters[] = {
	{ "sluice_dpdk_worker_rx_packets_total", "Frames received by a worker's stack" },
	{ "sluice_dpdk_worker_tx_packets_total", "Frames sent by a worker's stack" },
	{ "sluice_dpdk_worker_rx_drops_total", "Frames a worker dropped on receive (all reasons)" },
	{ "sluice_dpdk_worker_tx_drops_total", "Frames a worker could not send (all reasons)" },
	{ "sluice_dpdk_worker_retransmits_total", "TCP segments a worker retransmitted" },
	{ "sluice_dpdk_worker_handovers_total", "Frames a worker received for a connection of another worker and handed over" },
	{ "sluice_dpdk_worker_connections_total", "TCP connections a worker opened" },
};
_Static_assert(sizeof port_counters / sizeof port_counters[0] == N_PORT_COUNTERS, "port_counters");
_Static_assert(sizeof stack_counters / sizeof stack_counters[0] == N_STACK_COUNTERS, "stack_counters");
_Static_assert(sizeof worker_counters / sizeof worker_counters[0] == N_WORKER_COUNTERS, "worker_counters");

static int metrics_setup(struct transport_dpdk *td, struct metrics *m)
{
	char labels[64];

	snprintf(labels, sizeof labels, "port=\"%u\"", td->port);
	for (size_t i = 0; i < N_PORT_COUNTERS; i++)
		if (!(td->m_port[i] = metrics_counter(m, port_counters[i].name,
						      port_counters[i].help, labels)))
			return -ENOMEM;
	for (size_t i = 0; i < N_STACK_COUNTERS; i++)
		if (!(td->m_stack[i] = metrics_counter(m, stack_counters[i].name,
						       stack_counters[i].help,
						       stack_counters[i].labels)))
			return -ENOMEM;
	td->g_stack[0] = metrics_gauge(m, "sluice_netstack_tcp_connections",
				       "TCBs in use (TIME_WAIT included)", "");
	td->g_stack[1] = metrics_gauge(m, "sluice_netstack_tcp_time_wait",
				       "TCBs in TIME_WAIT", "");
	td->g_stack[2] = metrics_gauge(m, "sluice_netstack_tcp_srtt_ms",
				       "Smoothed TCP round-trip time (ms), mean of the workers", "");
	td->g_stack[3] = metrics_gauge(m, "sluice_netstack_arp_cache_entries",
				       "Entries in the ARP cache (of worker 0)", "");
	for (int i = 0; i < 4; i++)
		if (!td->g_stack[i])
			return -ENOMEM;
	for (unsigned w = 0; w < td->n_workers; w++) {
		struct worker *wk = &td->w[w];

		snprintf(labels, sizeof labels, "worker=\"%u\"", w);
		for (size_t i = 0; i < N_WORKER_COUNTERS; i++)
			if (!(wk->m_worker[i] = metrics_counter(m, worker_counters[i].name,
								w ? NULL : worker_counters[i].help,
								labels)))
				return -ENOMEM;
		if (!(wk->g_conns = metrics_gauge(m, "sluice_dpdk_worker_connections",
						  w ? NULL : "TCBs a worker holds (TIME_WAIT included)",
						  labels)))
			return -ENOMEM;
	}
	return 0;
}

static uint64_t stack_drops(const struct net_stack_stats *s)
{
	return s->drop_eth + s->drop_ip_hdr + s->drop_csum + s->drop_not_ours + s->drop_frag +
	       s->drop_proto + s->drop_tcp + s->drop_ooo;
}

static void metrics_refresh(struct transport_dpdk *td)
{
	uint64_t sum[N_STACK_COUNTERS] = { 0 }, tx_dropped = 0, rx_dropped = 0;
	int64_t conns = 0, time_wait = 0, srtt = 0, n_srtt = 0;
	struct rte_eth_stats es;

	if (rte_eth_stats_get(td->port, &es) == 0) {
		*td->m_port[0] = es.ipackets;
		*td->m_port[1] = es.opackets;
		*td->m_port[2] = es.ibytes;
		*td->m_port[3] = es.obytes;
		*td->m_port[4] = es.imissed;
		*td->m_port[5] = es.ierrors;
		*td->m_port[6] = es.oerrors;
		*td->m_port[7] = es.rx_nombuf;
	}
	for (unsigned w = 0; w < td->n_workers; w++) {
		struct worker *wk = &td->w[w];
		struct net_stack_stats ns;
		uint64_t txd, rxd, hand;

		pthread_mutex_lock(&wk->lock);
		ns = wk->snap;
		txd = wk->snap_tx_dropped;
		rxd = wk->snap_rx_dropped;
		hand = wk->snap_handovers;
		pthread_mutex_unlock(&wk->lock);
		for (size_t i = 0; i < N_STACK_COUNTERS; i++)
			sum[i] += *(const uint64_t *)((const char *)&ns + stack_counters[i].off);
		tx_dropped += txd;
		rx_dropped += rxd;
		conns += ns.tcp_conns_active;
		time_wait += ns.tcp_conns_time_wait;
		if (ns.srtt_ms) {
			srtt += ns.srtt_ms;
			n_srtt++;
		}
		if (w == 0)
			*td->g_stack[3] = (int64_t)ns.arp_cache_entries;
		*wk->m_worker[0] = ns.rx_packets;
		*wk->m_worker[1] = ns.tx_packets;
		*wk->m_worker[2] = stack_drops(&ns) + rxd;
		*wk->m_worker[3] = ns.tx_arp_queue_full + ns.tx_arp_failed + ns.tx_no_route + txd;
		*wk->m_worker[4] = ns.tcp_retransmits;
		*wk->m_worker[5] = hand;
		*wk->m_worker[6] = ns.tcp_conns_opened;
		*wk->g_conns = ns.tcp_conns_active;
	}
	*td->m_port[8] = tx_dropped;
	*td->m_port[9] = rx_dropped;
	for (size_t i = 0; i < N_STACK_COUNTERS; i++)
		*td->m_stack[i] = sum[i];
	*td->g_stack[0] = conns;
	*td->g_stack[1] = time_wait;
	*td->g_stack[2] = n_srtt ? srtt / n_srtt : 0;
}

/* --- set-up ------------------------------------------------------------- */

static int eal_init(const struct sl_dpdk_cfg *dc, char *err, size_t errlen)
{
	char *argv[EAL_MAX_ARGS + 2];
	int argc = 0, rc;

	if (dc->n_eal_args > EAL_MAX_ARGS) {
		set_err(err, errlen, "dpdk.eal_args: more than %d arguments", EAL_MAX_ARGS);
		return -EINVAL;
	}
	argv[argc++] = "sluiced";
	for (size_t i = 0; i < dc->n_eal_args; i++)
		argv[argc++] = dc->eal_args[i];
	argv[argc] = NULL;
	rc = rte_eal_init(argc, argv);
	if (rc < 0) {
		rc = rte_errno ? -rte_errno : -EINVAL;
		set_err(err, errlen, "dpdk: EAL initialisation failed: %s (check dpdk.eal_args)",
			rte_strerror(-rc));
		return rc;
	}
	return 0;
}

static int find_port(const struct sl_dpdk_cfg *dc, uint16_t *port, char *err, size_t errlen)
{
	char *end;
	unsigned long id;

	if (rte_eth_dev_count_avail() == 0) {
		set_err(err, errlen,
			"dpdk: no ports (add a device with -a PCI-ADDRESS or --vdev in dpdk.eal_args, and bind the NIC to vfio-pci)");
		return -ENODEV;
	}
	if (!dc->port) {
		*port = (uint16_t)rte_eth_find_next(0);
		return 0;
	}
	id = strtoul(dc->port, &end, 10);
	if (*end == '\0' && id < RTE_MAX_ETHPORTS && rte_eth_dev_is_valid_port((uint16_t)id)) {
		*port = (uint16_t)id;
		return 0;
	}
	if (rte_eth_dev_get_port_by_name(dc->port, port) == 0)
		return 0;
	set_err(err, errlen, "dpdk.port: no port '%s' (%u port(s) available)", dc->port,
		rte_eth_dev_count_avail());
	return -ENODEV;
}

/* RSS key and redirection table of the port, for the stacks' port pickers. */
static void rss_read(uint16_t port, uint16_t reta_size, uint8_t *key, size_t *key_len,
		     uint16_t *reta)
{
	struct rte_eth_rss_conf rss = { .rss_key = key, .rss_key_len = (uint8_t)*key_len };
	struct rte_eth_rss_reta_entry64 conf[512 / RTE_ETH_RETA_GROUP_SIZE];

	*key_len = 0;
	if (rte_eth_dev_rss_hash_conf_get(port, &rss) == 0)
		*key_len = rss.rss_key_len;
	if (!reta_size || reta_size > 512)
		return;
	memset(conf, 0, sizeof conf);
	for (unsigned i = 0; i < reta_size / RTE_ETH_RETA_GROUP_SIZE; i++)
		conf[i].mask = ~0ull;
	if (rte_eth_dev_rss_reta_query(port, conf, reta_size) != 0)
		return;
	for (unsigned i = 0; i < reta_size; i++)
		reta[i] = conf[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE];
}

/* How many workers the port can carry: one rx/tx queue pair each. */
static unsigned queues_for(const struct rte_eth_dev_info *info, unsigned want)
{
	unsigned n = want;

	if (n > info->max_rx_queues)
		n = info->max_rx_queues;
	if (n > info->max_tx_queues)
		n = info->max_tx_queues;
	return n ? n : 1;
}

static int port_setup(struct transport_dpdk *td, const struct sl_dpdk_cfg *dc, char *err,
		      size_t errlen)
{
	struct rte_eth_conf conf = { 0 };
	struct rte_eth_dev_info info;
	uint16_t nrx = (uint16_t)dc->rx_descriptors, ntx = (uint16_t)dc->tx_descriptors;
	unsigned need;
	uint32_t room;
	int socket, rc;

	if ((rc = rte_eth_dev_info_get(td->port, &info)) != 0) {
		set_err(err, errlen, "dpdk: port %u: %s", td->port, rte_strerror(-rc));
		return rc;
	}
	td->n_workers = queues_for(&info, td->n_workers);
	socket = rte_eth_dev_socket_id(td->port);
	if (socket < 0)
		socket = (int)rte_socket_id();
	/* One buffer holds a whole frame (no scatter). */
	room = RTE_PKTMBUF_HEADROOM + dc->mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN + 8;
	if (room < RTE_MBUF_DEFAULT_BUF_SIZE)
		room = RTE_MBUF_DEFAULT_BUF_SIZE;
	need = td->n_workers * (dc->rx_descriptors + dc->tx_descriptors + TX_MAX + BURST) +
	       MBUF_CACHE;
	if (dc->mbufs < need) {
		set_err(err, errlen,
			"dpdk.mbufs: %u is too few for %u queue pair(s) of %u rx + %u tx descriptors (need at least %u)",
			dc->mbufs, td->n_workers, dc->rx_descriptors, dc->tx_descriptors, need);
		return -EINVAL;
	}
	td->mp = rte_pktmbuf_pool_create("sluice_mbufs", dc->mbufs, MBUF_CACHE, 0, (uint16_t)room,
					 socket);
	if (!td->mp) {
		set_err(err, errlen,
			"dpdk: cannot allocate %u mbufs of %u bytes: %s (raise EAL -m or lower dpdk.mbufs)",
			dc->mbufs, room, rte_strerror(rte_errno));
		return -ENOMEM;
	}
	if ((info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) &&
	    (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_TCP_CKSUM)) {
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
		td->tx_csum = true;
	}
	if ((info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) &&
	    (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TCP_CKSUM)) {
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
		td->rx_csum = true;
	}
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
	/* Several queues: RSS over IPv4/TCP when the PMD hashes that. */
	if (td->n_workers > 1 &&
	    (info.flow_type_rss_offloads & (RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_IPV4))) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf =
			info.flow_type_rss_offloads & (RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_IPV4);
		td->rss = true;
	}
	conf.rxmode.mtu = dc->mtu;
	if ((rc = rte_eth_dev_configure(td->port, (uint16_t)td->n_workers,
					(uint16_t)td->n_workers, &conf)) != 0) {
		set_err(err, errlen, "dpdk: configuring port %u (%u queue pair(s)): %s", td->port,
			td->n_workers, rte_strerror(-rc));
		return rc;
	}
	if ((rc = rte_eth_dev_adjust_nb_rx_tx_desc(td->port, &nrx, &ntx)) != 0)
		goto queues;
	for (uint16_t q = 0; q < td->n_workers; q++)
		if ((rc = rte_eth_rx_queue_setup(td->port, q, nrx, (unsigned)socket, NULL,
						 td->mp)) != 0 ||
		    (rc = rte_eth_tx_queue_setup(td->port, q, ntx, (unsigned)socket, NULL)) != 0)
			goto queues;
	if ((rc = rte_eth_dev_start(td->port)) != 0) {
		set_err(err, errlen, "dpdk: starting port %u: %s", td->port, rte_strerror(-rc));
		return rc;
	}
	td->port_up = true;
	rte_eth_macaddr_get(td->port, (struct rte_ether_addr *)td->mac);
	return 0;
queues:
	set_err(err, errlen, "dpdk: port %u queues (%u rx, %u tx descriptors): %s", td->port, nrx,
		ntx, rte_strerror(-rc));
	return rc;
}

/* The source IPs of every dpdk pool, once each. */
static int collect_ips(struct transport_dpdk *td, const struct sl_config *cfg, char *err,
		       size_t errlen)
{
	for (size_t i = 0; i < cfg->n_pools; i++) {
		const struct sl_pool_cfg *p = &cfg->pools[i];

		if (p->transport != SL_TRANSPORT_DPDK)
			continue;
		for (size_t j = 0; j < p->n_ips; j++) {
			uint32_t ip = ((const struct sockaddr_in *)&p->ips[j].addr)->sin_addr.s_addr;

			if (ip_owned(td, ip))
				continue; /* the same IP in two dpdk pools */
			if (td->n_ips == NET_MAX_IPS) {
				set_err(err, errlen, "dpdk: more than %d source IPs on the port",
					NET_MAX_IPS);
				return -EINVAL;
			}
			td->ips[td->n_ips++] = ip;
		}
	}
	return 0;
}

/* One stack per worker; with several, each picks source ports in its own
 * slice (net_shard.h) that RSS steers back to its own queue. */
static int stacks_setup(struct transport_dpdk *td, const struct sl_config *cfg, char *err,
			size_t errlen)
{
	const struct sl_dpdk_cfg *dc = &cfg->dpdk;
	struct net_stack_config nc = { 0 };
	struct rte_eth_dev_info info;
	uint8_t key[64];
	size_t key_len = sizeof key;
	uint16_t reta[512];
	int rc;

	memcpy(nc.mac, td->mac, 6);
	memcpy(nc.ips, td->ips, sizeof td->ips);
	nc.n_ips = td->n_ips;
	nc.gateway = dc->gateway;
	nc.prefix_len = (uint8_t)dc->prefix_len;
	nc.mtu = (uint16_t)dc->mtu;
	nc.max_conns = dc->max_conns;
	nc.rx_csum_ok = td->rx_csum;
	nc.tx_csum_offload = td->tx_csum;
	if (td->rss && rte_eth_dev_info_get(td->port, &info) == 0)
		rss_read(td->port, info.reta_size, key, &key_len, reta);
	else
		key_len = 0;
	/* RSS whose key we cannot read (net_tap) steers flows we cannot
	 * predict: ports are then picked by slice alone, and the hand-over
	 * ring does the steering. */
	td->rss = key_len > 0;
	if (key_len) {
		nc.rss_key = key;
		nc.rss_key_len = key_len;
		nc.reta = info.reta_size && info.reta_size <= 512 ? reta : NULL;
		nc.reta_size = nc.reta ? info.reta_size : 0;
	}
	nc.rss_queues = (uint16_t)td->n_workers;
	for (unsigned i = 0; i < td->n_workers; i++) {
		struct worker *w = &td->w[i];

		nc.rss_queue = w->queue;
		if (td->n_workers > 1)
			net_shard_ports(td->n_workers, i, &nc.port_lo, &nc.port_hi);
		rc = net_stack_create(&nc, stack_tx, w, &w->ns);
		if (rc < 0) {
			set_err(err, errlen, "dpdk: creating the TCP/IP stack: %s", strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* Rings, wake-up fds and lcores for threaded mode. */
static int workers_setup(struct transport_dpdk *td, char *err, size_t errlen)
{
	char name[RTE_RING_NAMESIZE];
	unsigned lcore = rte_get_next_lcore(-1, 1, 0);

	if (rte_lcore_count() < td->n_workers + 1) {
		set_err(err, errlen,
			"dpdk.workers: %u worker(s) need %u lcores in dpdk.eal_args (-l/--lcores: the loop's plus one per worker), EAL has %u",
			td->n_workers, td->n_workers + 1, rte_lcore_count());
		return -EINVAL;
	}
	if ((td->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -errno;
	td->ew = &efd_watch;
	*td->ew = (struct efd_watch){ .op.cb = efd_done, .loop = td->loop, .fd = td->efd };
	efd_arm(td->ew);
	for (unsigned i = 0; i < td->n_workers; i++, lcore = rte_get_next_lcore(lcore, 1, 0)) {
		struct worker *w = &td->w[i];

		w->lcore = lcore;
		snprintf(name, sizeof name, "sl_cmd%u", i);
		w->cmd = rte_ring_create(name, RING_SIZE, rte_socket_id(),
					 RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof name, "sl_evt%u", i);
		w->evt = rte_ring_create(name, RING_SIZE, rte_socket_id(),
					 RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof name, "sl_in%u", i);
		w->in = rte_ring_create(name, RING_SIZE, rte_socket_id(), RING_F_SC_DEQ);
		if (!w->cmd || !w->evt || !w->in) {
			set_err(err, errlen, "dpdk: worker rings: %s", rte_strerror(rte_errno));
			return -ENOMEM;
		}
		if ((w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			return -errno;
	}
	return 0;
}

static int workers_launch(struct transport_dpdk *td, char *err, size_t errlen)
{
	for (unsigned i = 0; i < td->n_workers; i++) {
		struct worker *w = &td->w[i];
		int rc = rte_eal_remote_launch(worker_main, w, w->lcore);

		if (rc < 0) {
			set_err(err, errlen, "dpdk: launching worker %u on lcore %u: %s", i,
				w->lcore, rte_strerror(-rc));
			return rc;
		}
		w->launched = true;
	}
	return 0;
}

static void workers_stop(struct transport_dpdk *td)
{
	for (unsigned i = 0; i < td->n_workers; i++) {
		struct worker *w = &td->w[i];

		if (!w->launched)
			continue;
		atomic_store(&w->stop, true);
		wake(&w->parked, w->efd);
		rte_eal_wait_lcore(w->lcore);
		w->launched = false;
	}
}

/* After the workers stopped: free what is still on the rings. A conn whose
 * close the worker never acknowledged is freed here. */
static void worker_drain(struct worker *w)
{
	struct backlog *bl[2] = { &w->cmd_backlog, &w->evt_backlog };
	struct rte_ring *rings[2] = { w->cmd, w->evt };
	void *p;

	for (int i = 0; i < 2; i++) {
		while (bl[i]->head) {
			struct msg *m = bl[i]->head;

			bl[i]->head = m->next;
			if (m->type == CMD_CLOSE || m->type == EV_CLOSED)
				free(m->c);
			free(m);
		}
		while (rings[i] && rte_ring_sc_dequeue(rings[i], &p) == 0) {
			struct msg *m = p;

			if (m->type == CMD_CLOSE || m->type == EV_CLOSED)
				free(m->c);
			free(m);
		}
	}
	while (w->in && rte_ring_sc_dequeue(w->in, &p) == 0)
		rte_pktmbuf_free(p);
}

int transport_dpdk_create(struct loop *l, const struct sl_config *cfg, struct metrics *m,
			  struct transport_dpdk **out, char *err, size_t errlen)
{
	struct transport_dpdk *td = calloc(1, sizeof *td);
	unsigned want = cfg->dpdk.workers ? cfg->dpdk.workers : 1;
	int rc;

	if (!td)
		return -ENOMEM;
	td->base.ops = &dpdk_ops;
	td->loop = l;
	td->efd = -1;
	td->idle_sleep_ms = cfg->dpdk.idle_sleep_ms;
	td->threaded = cfg->dpdk.workers > 0;
	td->n_workers = want;
	if ((rc = collect_ips(td, cfg, err, errlen)) < 0)
		goto fail;
	if ((rc = eal_init(&cfg->dpdk, err, errlen)) < 0)
		goto fail;
	td->eal_up = true;
	if ((rc = find_port(&cfg->dpdk, &td->port, err, errlen)) < 0 ||
	    (rc = port_setup(td, &cfg->dpdk, err, errlen)) < 0)
		goto fail;
	/* port_setup may have lowered n_workers to the port's queue count. */
	if (!(td->w = calloc(td->n_workers, sizeof *td->w))) {
		rc = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < td->n_workers; i++) {
		td->w[i].td = td;
		td->w[i].id = i;
		td->w[i].queue = (uint16_t)i;
		td->w[i].efd = -1;
		pthread_mutex_init(&td->w[i].lock, NULL);
	}
	if ((rc = stacks_setup(td, cfg, err, errlen)) < 0 || (rc = metrics_setup(td, m)) < 0)
		goto fail;
	if (td->threaded && (rc = workers_setup(td, err, errlen)) < 0)
		goto fail;
	if (cfg->dpdk.capture && !(td->capture = capture_open(cfg->dpdk.capture))) {
		rc = -errno;
		set_err(err, errlen, "dpdk.capture: %s: %s", cfg->dpdk.capture, strerror(errno));
		goto fail;
	}
	td->stats_ms = loop_now_ms(l);
	for (unsigned i = 0; i < td->n_workers; i++)
		worker_snapshot(&td->w[i]);
	if (td->threaded) {
		if ((rc = workers_launch(td, err, errlen)) < 0)
			goto fail;
	} else {
		net_stack_announce(td->w[0].ns, loop_now_ms(l));
		tx_flush(&td->w[0]);
	}
	*out = td;
	return 0;
fail:
	transport_dpdk_destroy(td);
	return rc;
}

void transport_dpdk_destroy(struct transport_dpdk *td)
{
	if (!td)
		return;
	workers_stop(td);
	for (unsigned i = 0; td->w && i < td->n_workers; i++) {
		struct worker *w = &td->w[i];

		worker_drain(w);
		if (w->n_tx)
			tx_flush(w);
		if (w->ns)
			net_stack_destroy(w->ns);
		rte_ring_free(w->cmd);
		rte_ring_free(w->evt);
		rte_ring_free(w->in);
		if (w->efd >= 0)
			close(w->efd);
		pthread_mutex_destroy(&w->lock);
	}
	free(td->w);
	if (td->ew) /* its read is in flight: efd is closed when it completes */
		td->ew->orphan = true;
	else if (td->efd >= 0)
		close(td->efd);
	if (td->port_up) {
		rte_eth_dev_stop(td->port);
		rte_eth_dev_close(td->port);
	}
	if (td->mp)
		rte_mempool_free(td->mp);
	if (td->capture)
		fclose(td->capture);
	if (td->eal_up)
		rte_eal_cleanup();
	free(td);
}

struct transport *transport_dpdk_base(struct transport_dpdk *td)
{
	return &td->base;
}

void transport_dpdk_mac(const struct transport_dpdk *td, uint8_t mac[6])
{
	memcpy(mac, td->mac, 6);
}

unsigned transport_dpdk_workers(const struct transport_dpdk *td, bool *threaded, bool *rss)
{
	if (threaded)
		*threaded = td->threaded;
	if (rss)
		*rss = td->rss;
	return td->n_workers;
}
