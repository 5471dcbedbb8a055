/* transport_dpdk.c — net_stack over a DPDK port; see transport_dpdk.h. */
#include "transport_dpdk.h"

#include "metrics.h"
#include "net_csum.h"
#include "net_stack.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BURST 32
#define TX_MAX 256           /* frames batched between two polls */
#define MBUF_CACHE 256
#define STATS_EVERY_MS 250   /* how often the metrics are refreshed */
#define QUIET_POLLS 256      /* empty polls in a row before idle_sleep may start */
#define EAL_MAX_ARGS 64

#define N_PORT_COUNTERS 10
#define N_STACK_COUNTERS 26

struct transport_dpdk {
	struct transport base;
	struct loop *loop;
	struct net_stack *ns;
	struct rte_mempool *mp;
	uint16_t port, queue;
	bool tx_csum;                /* NIC fills IPv4/TCP checksums */
	bool rx_csum;                /* NIC reports checksum status */
	uint64_t idle_sleep_ms;
	unsigned empty_polls;        /* polls in a row without a frame */
	uint64_t stats_ms;
	struct rte_mbuf *tx[TX_MAX];
	unsigned n_tx;
	unsigned work;               /* frames seen during this poll */
	uint64_t tx_dropped, rx_dropped;
	uint8_t mac[6];
	FILE *capture;
	/* metrics: one pointer per exported value (tables below) */
	uint64_t *m_port[N_PORT_COUNTERS];
	uint64_t *m_stack[N_STACK_COUNTERS];
	int64_t *g_stack[4];
	bool eal_up, port_up;
};

struct dconn {
	struct conn base;
	struct transport_dpdk *td;
	struct net_tcp *tcp;
	const struct conn_handler *h;
	void *ctx;
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
	fwrite(rec, sizeof rec, 1, f);
	fwrite(frame, len, 1, f);
}

/* --- frames out --------------------------------------------------------- */

static void tx_flush(struct transport_dpdk *td)
{
	unsigned sent = 0;

	/* A full ring gets a few more tries; what still does not fit is
	 * dropped and left to TCP's retransmission. */
	for (int tries = 0; sent < td->n_tx && tries < 4; tries++)
		sent += rte_eth_tx_burst(td->port, td->queue, td->tx + sent,
					 (uint16_t)(td->n_tx - sent));
	if (sent < td->n_tx) {
		rte_pktmbuf_free_bulk(td->tx + sent, td->n_tx - sent);
		td->tx_dropped += td->n_tx - sent;
	}
	td->n_tx = 0;
}

static void stack_tx(void *ctx, const uint8_t *frame, size_t len, unsigned flags)
{
	struct transport_dpdk *td = ctx;
	struct rte_mbuf *m;
	char *p;

	if (td->capture)
		capture_frame(td->capture, frame, len);
	m = rte_pktmbuf_alloc(td->mp);
	if (!m) {
		td->tx_dropped++;
		return;
	}
	p = rte_pktmbuf_append(m, (uint16_t)len);
	if (!p) { /* longer than a buffer: the stack keeps to the MTU */
		rte_pktmbuf_free(m);
		td->tx_dropped++;
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
	td->tx[td->n_tx++] = m;
	td->work++;
	if (td->n_tx == TX_MAX)
		tx_flush(td);
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

static void metrics_refresh(struct transport_dpdk *td);

unsigned transport_dpdk_poll(struct transport_dpdk *td)
{
	uint64_t now = loop_now_ms(td->loop);
	struct rte_mbuf *rx[BURST];
	uint16_t n;

	n = rte_eth_rx_burst(td->port, td->queue, rx, BURST);
	td->work += n;
	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = rx[i];

		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void *));
		if (td->capture)
			capture_frame(td->capture, rte_pktmbuf_mtod(m, void *), m->data_len);
		/* No scatter: a frame fits one buffer (the pool is sized for the MTU). */
		if (m->nb_segs != 1 || (td->rx_csum && !rx_csum_ok(m))) {
			td->rx_dropped++;
			continue;
		}
		net_stack_input(td->ns, rte_pktmbuf_mtod(m, const uint8_t *), m->data_len, now);
	}
	if (n)
		rte_pktmbuf_free_bulk(rx, n);
	if (net_stack_next_timer(td->ns) <= now)
		net_stack_timers(td->ns, now);
	if (td->n_tx)
		tx_flush(td);
	if (now - td->stats_ms >= STATS_EVERY_MS) {
		td->stats_ms = now;
		metrics_refresh(td);
		if (td->capture)
			fflush(td->capture);
	}
	n = (uint16_t)td->work;
	td->empty_polls = td->work ? 0 : td->empty_polls + 1;
	td->work = 0;
	return n;
}

uint64_t transport_dpdk_wait_ms(const struct transport_dpdk *td)
{
	uint64_t now = loop_now_ms(td->loop), next;

	if (!td->idle_sleep_ms || td->empty_polls < QUIET_POLLS)
		return 0;
	next = net_stack_next_timer(td->ns);
	if (next <= now)
		return 0;
	return next - now < td->idle_sleep_ms ? next - now : td->idle_sleep_ms;
}

/* --- connections ---------------------------------------------------------- */

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

static int dpdk_connect(struct transport *t, const struct sockaddr *src, socklen_t src_len,
			const struct sockaddr *dst, socklen_t dst_len, uint64_t timeout_ms,
			const struct conn_handler *h, void *ctx, struct conn **out)
{
	struct transport_dpdk *td = (struct transport_dpdk *)t;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)src;
	const struct sockaddr_in *d4 = (const struct sockaddr_in *)dst;
	struct dconn *c;
	int rc;

	if (dst->sa_family != AF_INET || dst_len < sizeof *d4)
		return -EAFNOSUPPORT; /* the stack is IPv4 only */
	if (src && src_len && (src->sa_family != AF_INET || src_len < sizeof *s4))
		return -EAFNOSUPPORT;
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->base.t = t;
	c->td = td;
	c->h = h;
	c->ctx = ctx;
	rc = net_tcp_connect(td->ns, src && src_len ? s4->sin_addr.s_addr : 0,
			     src && src_len ? ntohs(s4->sin_port) : 0, d4->sin_addr.s_addr,
			     ntohs(d4->sin_port), timeout_ms, loop_now_ms(td->loop), &dconn_handler,
			     c, &c->tcp);
	if (rc < 0) {
		free(c);
		return rc;
	}
	*out = &c->base;
	return 0;
}

static int dpdk_send(struct conn *base, const void *data, size_t len)
{
	struct dconn *c = (struct dconn *)base;

	return net_tcp_send(c->tcp, data, len, loop_now_ms(c->td->loop));
}

static size_t dpdk_pending(const struct conn *base)
{
	const struct dconn *c = (const struct dconn *)base;

	return net_tcp_pending(c->tcp);
}

static void dpdk_close(struct conn *base)
{
	struct dconn *c = (struct dconn *)base;

	net_tcp_close(c->tcp, loop_now_ms(c->td->loop));
	free(c);
}

static const struct transport_ops dpdk_ops = {
	.name = "dpdk",
	.connect = dpdk_connect,
	.send = dpdk_send,
	.close = dpdk_close,
	.pending = dpdk_pending,
};

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
	{ "sluice_dpdk_rx_dropped_total", "Frames dropped before the stack (bad checksum, multi-segment)" },
};
_Static_assert(sizeof port_counters / sizeof port_counters[0] == N_PORT_COUNTERS, "port_counters");
_Static_assert(sizeof stack_counters / sizeof stack_counters[0] == N_STACK_COUNTERS, "stack_counters");

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
				       "Smoothed TCP round-trip time (ms), stack-wide", "");
	td->g_stack[3] = metrics_gauge(m, "sluice_netstack_arp_cache_entries",
				       "Entries in the ARP cache", "");
	for (int i = 0; i < 4; i++)
		if (!td->g_stack[i])
			return -ENOMEM;
	return 0;
}

static void metrics_refresh(struct transport_dpdk *td)
{
	struct net_stack_stats ns;
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
	*td->m_port[8] = td->tx_dropped;
	*td->m_port[9] = td->rx_dropped;
	net_stack_stats(td->ns, &ns);
	for (size_t i = 0; i < N_STACK_COUNTERS; i++)
		*td->m_stack[i] = *(const uint64_t *)((const char *)&ns + stack_counters[i].off);
	*td->g_stack[0] = ns.tcp_conns_active;
	*td->g_stack[1] = ns.tcp_conns_time_wait;
	*td->g_stack[2] = ns.srtt_ms;
	*td->g_stack[3] = (int64_t)ns.arp_cache_entries;
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

/* RSS key and redirection table of the port, for the stack's port picker.
 * One queue per stack today, so they only matter once there are more. */
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

static int port_setup(struct transport_dpdk *td, const struct sl_dpdk_cfg *dc, char *err,
		      size_t errlen)
{
	struct rte_eth_conf conf = { 0 };
	struct rte_eth_dev_info info;
	uint16_t nrx = (uint16_t)dc->rx_descriptors, ntx = (uint16_t)dc->tx_descriptors;
	uint32_t room;
	int socket, rc;

	if ((rc = rte_eth_dev_info_get(td->port, &info)) != 0) {
		set_err(err, errlen, "dpdk: port %u: %s", td->port, rte_strerror(-rc));
		return rc;
	}
	socket = rte_eth_dev_socket_id(td->port);
	if (socket < 0)
		socket = (int)rte_socket_id();
	/* One buffer holds a whole frame (no scatter). */
	room = RTE_PKTMBUF_HEADROOM + dc->mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN + 8;
	if (room < RTE_MBUF_DEFAULT_BUF_SIZE)
		room = RTE_MBUF_DEFAULT_BUF_SIZE;
	if (dc->mbufs < dc->rx_descriptors + dc->tx_descriptors + TX_MAX + BURST + MBUF_CACHE) {
		set_err(err, errlen,
			"dpdk.mbufs: %u is too few for %u rx + %u tx descriptors (need at least %u)",
			dc->mbufs, dc->rx_descriptors, dc->tx_descriptors,
			dc->rx_descriptors + dc->tx_descriptors + TX_MAX + BURST + MBUF_CACHE);
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
	conf.rxmode.mtu = dc->mtu;
	if ((rc = rte_eth_dev_configure(td->port, 1, 1, &conf)) != 0) {
		set_err(err, errlen, "dpdk: configuring port %u: %s", td->port, rte_strerror(-rc));
		return rc;
	}
	if ((rc = rte_eth_dev_adjust_nb_rx_tx_desc(td->port, &nrx, &ntx)) != 0 ||
	    (rc = rte_eth_rx_queue_setup(td->port, 0, nrx, (unsigned)socket, NULL, td->mp)) != 0 ||
	    (rc = rte_eth_tx_queue_setup(td->port, 0, ntx, (unsigned)socket, NULL)) != 0) {
		set_err(err, errlen, "dpdk: port %u queues (%u rx, %u tx descriptors): %s", td->port,
			nrx, ntx, rte_strerror(-rc));
		return rc;
	}
	if ((rc = rte_eth_dev_start(td->port)) != 0) {
		set_err(err, errlen, "dpdk: starting port %u: %s", td->port, rte_strerror(-rc));
		return rc;
	}
	td->port_up = true;
	rte_eth_macaddr_get(td->port, (struct rte_ether_addr *)td->mac);
	return 0;
}

static int stack_setup(struct transport_dpdk *td, const struct sl_config *cfg, char *err,
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
	for (size_t i = 0; i < cfg->n_pools; i++) {
		const struct sl_pool_cfg *p = &cfg->pools[i];

		if (p->transport != SL_TRANSPORT_DPDK)
			continue;
		for (size_t j = 0; j < p->n_ips; j++) {
			uint32_t ip = ((const struct sockaddr_in *)&p->ips[j].addr)->sin_addr.s_addr;
			size_t k;

			for (k = 0; k < nc.n_ips && nc.ips[k] != ip; k++)
				;
			if (k < nc.n_ips)
				continue; /* the same IP in two dpdk pools */
			if (nc.n_ips == NET_MAX_IPS) {
				set_err(err, errlen, "dpdk: more than %d source IPs on the port",
					NET_MAX_IPS);
				return -EINVAL;
			}
			nc.ips[nc.n_ips++] = ip;
		}
	}
	nc.gateway = dc->gateway;
	nc.prefix_len = (uint8_t)dc->prefix_len;
	nc.mtu = (uint16_t)dc->mtu;
	nc.max_conns = dc->max_conns;
	nc.rx_csum_ok = td->rx_csum;
	nc.tx_csum_offload = td->tx_csum;
	if (rte_eth_dev_info_get(td->port, &info) == 0) {
		rss_read(td->port, info.reta_size, key, &key_len, reta);
		if (key_len) {
			nc.rss_key = key;
			nc.rss_key_len = key_len;
			nc.reta = info.reta_size && info.reta_size <= 512 ? reta : NULL;
			nc.reta_size = nc.reta ? info.reta_size : 0;
		}
	}
	nc.rss_queues = 1; /* one rx queue per stack until there are workers */
	nc.rss_queue = 0;
	rc = net_stack_create(&nc, stack_tx, td, &td->ns);
	if (rc < 0)
		set_err(err, errlen, "dpdk: creating the TCP/IP stack: %s", strerror(-rc));
	return rc;
}

int transport_dpdk_create(struct loop *l, const struct sl_config *cfg, struct metrics *m,
			  struct transport_dpdk **out, char *err, size_t errlen)
{
	struct transport_dpdk *td = calloc(1, sizeof *td);
	int rc;

	if (!td)
		return -ENOMEM;
	td->base.ops = &dpdk_ops;
	td->loop = l;
	td->idle_sleep_ms = cfg->dpdk.idle_sleep_ms;
	if ((rc = eal_init(&cfg->dpdk, err, errlen)) < 0)
		goto fail;
	td->eal_up = true;
	if ((rc = find_port(&cfg->dpdk, &td->port, err, errlen)) < 0 ||
	    (rc = port_setup(td, &cfg->dpdk, err, errlen)) < 0 ||
	    (rc = stack_setup(td, cfg, err, errlen)) < 0)
		goto fail;
	if ((rc = metrics_setup(td, m)) < 0)
		goto fail;
	if (cfg->dpdk.capture && !(td->capture = capture_open(cfg->dpdk.capture))) {
		rc = -errno;
		set_err(err, errlen, "dpdk.capture: %s: %s", cfg->dpdk.capture, strerror(errno));
		goto fail;
	}
	td->stats_ms = loop_now_ms(l);
	net_stack_announce(td->ns, loop_now_ms(l));
	tx_flush(td);
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
	if (td->n_tx)
		tx_flush(td);
	if (td->ns)
		net_stack_destroy(td->ns);
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
