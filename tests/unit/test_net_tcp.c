/* test_net_tcp.c — the userspace stack (dataplane/net_*.c) driven by packet
 * transcripts: a scripted peer (test_net_peer.h) sends frames, the tests
 * assert on the frames the stack emits. Every test leaves a pcap of its
 * transcript in $NET_PCAP_DIR (default /tmp/sluice-net-pcap); the main
 * ones are compared with golden pcaps in tests/unit/data/net/
 * (NET_GOLDEN_UPDATE=1 rewrites them). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_net_peer.h"

#define PPORT 25
#define PEER_ISN 1000000u

struct ev {
	int connected; /* 1 = ok, <0 = error */
	int err;
	char rx[1 << 20];
	size_t rx_len;
	int fin;
	int drained;
	int close_on_fin;
	struct net_tcp *c;
};

static struct net_stack *ns;
static struct net_tcp *conn;
static struct ev ev;
static uint32_t our_isn, our_nxt, peer_nxt;
static uint16_t our_port;

static void on_connect(void *ctx, int err)
{
	((struct ev *)ctx)->connected = err ? err : 1;
}
static void on_recv(void *ctx, const char *d, size_t len)
{
	struct ev *e = ctx;
	if (!len) {
		e->fin = 1;
		if (e->close_on_fin)
			net_tcp_close(e->c, now);
		return;
	}
	assert_true(e->rx_len + len <= sizeof(e->rx));
	memcpy(e->rx + e->rx_len, d, len);
	e->rx_len += len;
}
static void on_error(void *ctx, int err)
{
	((struct ev *)ctx)->err = err;
}
static void on_drained(void *ctx)
{
	((struct ev *)ctx)->drained++;
}
static const struct net_tcp_handler handler = {on_connect, on_recv, on_error, on_drained};

static void stack_new(const char *pcap_name, uint32_t max_conns)
{
	struct net_stack_config cfg = {0};
	memcpy(cfg.mac, us_mac, 6);
	cfg.ips[0] = ip4(US_IP);
	cfg.n_ips = 1;
	cfg.prefix_len = 24;
	cfg.max_conns = max_conns;
	cfg.isn_secret = 42;
	cfg.port_lo = 40000;
	cfg.port_hi = 40999;
	now = 1000;
	tout_clear();
	tout_discard = false;
	memset(&ev, 0, sizeof(ev));
	pcap_begin(pcap_name);
	assert_int_equal(net_stack_create(&cfg, test_tx, NULL, &ns), 0);
}

static void stack_free(void)
{
	net_stack_destroy(ns);
	ns = NULL;
	pcap_end();
}

static void send_peer(uint8_t fl, uint32_t seq, uint32_t ack, uint16_t win, const void *d,
		      size_t len)
{
	uint8_t f[2048];
	size_t n = peer_tcp_build(f, PPORT, our_port, fl, seq, ack, win, d, len, NULL);
	peer_frame(ns, f, n);
}

static struct tseg expect_tcp(void)
{
	struct tseg s;
	const struct tframe *fr = tout_next();
	assert_non_null(fr);
	assert_true(parse_tcp(fr, &s));
	return s;
}

static void expect_none(void)
{
	assert_int_equal(tout_pending(), 0);
}

static void peer_arp_reply(void)
{
	uint8_t f[64];
	size_t n = peer_arp_build(f, 2, ip4(PEER_IP), us_mac, ip4(US_IP), false);
	peer_frame(ns, f, n);
}

/* connect, answer ARP and the SYN, check the handshake */
static void establish(uint16_t peer_win, const struct peer_opts *po)
{
	assert_int_equal(net_tcp_connect(ns, 0, 0, ip4(PEER_IP), PPORT, 5000, now, &handler, &ev,
					 &conn),
			 0);
	ev.c = conn;
	const struct tframe *arp = tout_next();
	assert_non_null(arp);
	assert_int_equal(arp->d[12], 0x08);
	assert_int_equal(arp->d[13], 0x06);
	assert_int_equal(arp->d[21], 1); /* request */
	expect_none();                    /* SYN waits for ARP */
	peer_arp_reply();
	struct tseg s = expect_tcp();
	assert_int_equal(s.fl, 0x02);
	assert_int_equal(s.mss, 1460);
	assert_int_equal(s.ws, 2);
	assert_int_equal(s.dport, PPORT);
	our_port = s.sport;
	our_isn = s.seq;
	assert_int_equal(ev.connected, 0);
	now += 10;
	uint8_t f[128];
	struct peer_opts def = {1460, 0, false};
	size_t n = peer_tcp_build(f, PPORT, our_port, 0x12, PEER_ISN, our_isn + 1, peer_win, NULL, 0,
				  po ? po : &def);
	peer_frame(ns, f, n);
	s = expect_tcp();
	assert_int_equal(s.fl, 0x10);
	assert_int_equal(s.seq, our_isn + 1);
	assert_int_equal(s.ack, PEER_ISN + 1);
	assert_int_equal(ev.connected, 1);
	our_nxt = our_isn + 1;
	peer_nxt = PEER_ISN + 1;
}

static void test_handshake_data(void **state)
{
	(void)state;
	stack_new("handshake_data", 16);
	establish(65535, NULL);
	/* we send a line, the peer ACKs it */
	assert_int_equal(net_tcp_send(conn, "EHLO x\r\n", 8, now), 0);
	struct tseg s = expect_tcp();
	assert_int_equal(s.fl, 0x18);
	assert_int_equal(s.dlen, 8);
	assert_memory_equal(s.data, "EHLO x\r\n", 8);
	assert_int_equal(net_tcp_pending(conn), 8);
	now += 10;
	send_peer(0x10, peer_nxt, our_nxt + 8, 65535, NULL, 0);
	our_nxt += 8;
	assert_int_equal(net_tcp_pending(conn), 0);
	assert_int_equal(ev.drained, 1);
	expect_none();
	/* the peer sends a reply: delayed ACK after 40 ms */
	send_peer(0x18, peer_nxt, our_nxt, 65535, "250 ok\r\n", 8);
	peer_nxt += 8;
	assert_int_equal(ev.rx_len, 8);
	assert_memory_equal(ev.rx, "250 ok\r\n", 8);
	expect_none();
	assert_int_equal(net_stack_next_timer(ns), now + 40);
	now += 40;
	net_stack_timers(ns, now);
	s = expect_tcp();
	assert_int_equal(s.fl, 0x10);
	assert_int_equal(s.ack, peer_nxt);
	/* two segments: the second is ACKed at once */
	send_peer(0x10, peer_nxt, our_nxt, 65535, "aaaa", 4);
	peer_nxt += 4;
	expect_none();
	send_peer(0x10, peer_nxt, our_nxt, 65535, "bbbb", 4);
	peer_nxt += 4;
	s = expect_tcp();
	assert_int_equal(s.ack, peer_nxt);
	assert_int_equal(ev.rx_len, 16);
	/* stats */
	struct net_stack_stats st;
	net_stack_stats(ns, &st);
	assert_int_equal(st.tcp_conns_active, 1);
	assert_int_equal(st.tcp_conns_established, 1);
	assert_int_equal(st.srtt_ms, 10);
	net_tcp_abort(conn, now);
	s = expect_tcp();
	assert_true(s.fl & 0x04);
	stack_free();
	assert_int_equal(golden_compare("handshake_data"), 0);
}

static void test_bulk_segmentation_and_cwnd(void **state)
{
	(void)state;
	static char big[100000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	stack_new("bulk", 16);
	establish(65535, NULL);
	assert_int_equal(net_tcp_send(conn, big, sizeof(big), now), 0);
	/* IW10: 10 full segments */
	uint32_t seq = our_nxt;
	for (int i = 0; i < 10; i++) {
		struct tseg s = expect_tcp();
		assert_int_equal(s.seq, seq);
		assert_int_equal(s.dlen, 1460);
		assert_memory_equal(s.data, big + (seq - our_nxt), 1460);
		seq += 1460;
	}
	expect_none();
	/* ACK everything in steps until all is through */
	uint32_t acked = our_nxt, hi = seq;
	int rounds = 0;
	while (acked != our_nxt + sizeof(big) && rounds++ < 1000) {
		struct tseg s;
		while (tout_pending()) {
			s = expect_tcp();
			hi = s.seq + (uint32_t)s.dlen;
		}
		now += 5;
		send_peer(0x10, peer_nxt, hi, 65535, NULL, 0);
		acked = hi;
	}
	assert_int_equal(acked, our_nxt + sizeof(big));
	assert_int_equal(net_tcp_pending(conn), 0);
	struct net_stack_stats st;
	net_stack_stats(ns, &st);
	assert_int_equal(st.tcp_retransmits, 0);
	net_tcp_abort(conn, now);
	stack_free();
}

static void test_zero_window_persist(void **state)
{
	(void)state;
	stack_new("zero_window", 16);
	establish(3000, NULL);
	static char d[5000];
	memset(d, 'x', sizeof(d));
	assert_int_equal(net_tcp_send(conn, d, sizeof(d), now), 0);
	struct tseg s = expect_tcp();
	assert_int_equal(s.dlen, 1460);
	s = expect_tcp();
	assert_int_equal(s.dlen, 1460);
	/* 80 bytes of window left: silly window avoidance holds them */
	expect_none();
	now += 10;
	send_peer(0x10, peer_nxt, our_nxt + 2920, 0, NULL, 0); /* window full */
	our_nxt += 2920;
	expect_none();
	uint64_t t = net_stack_next_timer(ns);
	assert_true(t > now && t != UINT64_MAX);
	uint64_t d1 = t - now;
	now = t;
	net_stack_timers(ns, now);
	s = expect_tcp(); /* a one-byte window probe */
	assert_int_equal(s.seq, our_nxt);
	assert_int_equal(s.dlen, 1);
	send_peer(0x10, peer_nxt, our_nxt, 0, NULL, 0); /* still closed */
	expect_none();
	uint64_t t2 = net_stack_next_timer(ns);
	assert_int_equal(t2 - now, 2 * d1); /* backed off */
	now = t2;
	net_stack_timers(ns, now);
	s = expect_tcp();
	assert_int_equal(s.seq, our_nxt);
	assert_int_equal(s.dlen, 1);
	/* window opens (the probe byte accepted): the rest flows */
	send_peer(0x10, peer_nxt, our_nxt + 1, 65535, NULL, 0);
	our_nxt += 1;
	s = expect_tcp();
	assert_int_equal(s.seq, our_nxt);
	assert_int_equal(s.dlen, 1460);
	s = expect_tcp();
	assert_int_equal(s.dlen, 5000 - 2920 - 1 - 1460);
	expect_none();
	net_tcp_abort(conn, now);
	stack_free();
}

static void test_rto_retransmit(void **state)
{
	(void)state;
	stack_new("rto", 16);
	establish(65535, NULL);
	assert_int_equal(net_tcp_send(conn, "DATA\r\n", 6, now), 0);
	struct tseg s = expect_tcp();
	assert_int_equal(s.dlen, 6);
	/* no ACK: RTO (srtt 10 ms -> rto floor 200 ms) */
	uint64_t t = net_stack_next_timer(ns);
	assert_int_equal(t, now + 200);
	now = t;
	net_stack_timers(ns, now);
	s = expect_tcp();
	assert_int_equal(s.seq, our_nxt);
	assert_int_equal(s.dlen, 6);
	/* backoff doubles */
	assert_int_equal(net_stack_next_timer(ns), now + 400);
	now += 400;
	net_stack_timers(ns, now);
	s = expect_tcp();
	assert_int_equal(s.seq, our_nxt);
	send_peer(0x10, peer_nxt, our_nxt + 6, 65535, NULL, 0);
	assert_int_equal(net_tcp_pending(conn), 0);
	struct net_stack_stats st;
	net_stack_stats(ns, &st);
	assert_int_equal(st.tcp_retransmits, 2);
	assert_int_equal(st.tcp_rto_timeouts, 2);
	/* retransmissions exhausted: -ETIMEDOUT */
	our_nxt += 6;
	assert_int_equal(net_tcp_send(conn, "X", 1, now), 0);
	for (int i = 0; i < 20 && !ev.err; i++) {
		now = net_stack_next_timer(ns);
		net_stack_timers(ns, now);
	}
	assert_int_equal(ev.err, -ETIMEDOUT);
	net_tcp_close(conn, now);
	net_stack_stats(ns, &st);
	assert_int_equal(st.tcp_conns_active, 0);
	stack_free();
}

static void test_fast_retransmit(void **state)
{
	(void)state;
	static char d[8 * 1460];
	for (size_t i = 0; i < sizeof(d); i++)
		d[i] = (char)i;
	stack_new("fast_retransmit", 16);
	establish(65535, NULL);
	assert_int_equal(net_tcp_send(conn, d, sizeof(d), now), 0);
	for (int i = 0; i < 8; i++)
		(void)expect_tcp();
	now += 10;
	/* segment 1 lost: the peer acks segment 0 then dup-acks 3 times */
	send_peer(0x10, peer_nxt, our_nxt + 1460, 65535, NULL, 0);
	expect_none();
	for (int i = 0; i < 3; i++)
		send_peer(0x10, peer_nxt, our_nxt + 1460, 65535, NULL, 0);
	struct tseg s = expect_tcp();
	assert_int_equal(s.seq, our_nxt + 1460);
	assert_int_equal(s.dlen, 1460);
	assert_memory_equal(s.data, d + 1460, 1460);
	struct net_stack_stats st;
	net_stack_stats(ns, &st);
	assert_int_equal(st.tcp_fast_retransmits, 1);
	/* partial ACK (up to segment 4): NewReno retransmits segment 4 */
	send_peer(0x10, peer_nxt, our_nxt + 4 * 1460, 65535, NULL, 0);
	s = expect_tcp();
	assert_int_equal(s.seq, our_nxt + 4 * 1460);
	/* full ACK ends recovery */
	send_peer(0x10, peer_nxt, our_nxt + sizeof(d), 65535, NULL, 0);
	while (tout_pending())
		(void)expect_tcp();
	assert_int_equal(net_tcp_pending(conn), 0);
	net_stack_stats(ns, &st);
	assert_int_equal(st.tcp_fast_retransmits, 2);
	assert_int_equal(st.tcp_rto_timeouts, 0);
	net_tcp_abort(conn, now);
	stack_free();
}

static void test_out_of_order(void **state)
{
	(void)state;
	stack_new("out_of_order", 16);
	struct peer_opts po = {1460, 0, true};
	establish(65535, &po);
	/* "cccc" then "bbbb" then "aaaa" */
	send_peer(0x10, peer_nxt + 8, our_nxt, 65535, "cccc", 4);
	struct tseg s = expect_tcp(); /* dup ACK with a SACK block */
	assert_int_equal(s.ack, peer_nxt);
	assert_int_equal(s.nsack, 1);
	assert_int_equal(s.sack[0], peer_nxt + 8);
	assert_int_equal(s.sack[1], peer_nxt + 12);
	send_peer(0x10, peer_nxt + 4, our_nxt, 65535, "bbbb", 4);
	s = expect_tcp();
	assert_int_equal(s.ack, peer_nxt);
	assert_int_equal(ev.rx_len, 0);
	send_peer(0x18, peer_nxt, our_nxt, 65535, "aaaa", 4);
	s = expect_tcp(); /* hole filled: immediate ACK of everything */
	assert_int_equal(s.ack, peer_nxt + 12);
	assert_int_equal(ev.rx_len, 12);
	assert_memory_equal(ev.rx, "aaaabbbbcccc", 12);
	peer_nxt += 12;
	/* a duplicate of old data is re-ACKed, not delivered */
	send_peer(0x10, peer_nxt - 4, our_nxt, 65535, "cccc", 4);
	s = expect_tcp();
	assert_int_equal(s.ack, peer_nxt);
	assert_int_equal(ev.rx_len, 12);
	/* an out-of-order FIN is kept until the gap fills */
	send_peer(0x11, peer_nxt + 2, our_nxt, 65535, "yz", 2);
	(void)expect_tcp();
	assert_int_equal(ev.fin, 0);
	send_peer(0x10, peer_nxt, our_nxt, 65535, "wx", 2);
	assert_int_equal(ev.fin, 1);
	assert_memory_equal(ev.rx + 12, "wxyz", 4);
	s = expect_tcp();
	assert_int_equal(s.ack, peer_nxt + 5);
	net_tcp_abort(conn, now);
	stack_free();
}

static void test_rst_from_peer(void **state)
{
	(void)state;
	stack_new("rst_established", 16);
	establish(65535, NULL);
	/* out-of-window RST ignored, in-window but inexact: challenge ACK */
	send_peer(0x04, peer_nxt + 1000000, 0, 0, NULL, 0);
	assert_int_equal(ev.err, 0);
	send_peer(0x04, peer_nxt + 10, 0, 0, NULL, 0);
	struct tseg s = expect_tcp();
	assert_int_equal(s.fl, 0x10);
	assert_int_equal(ev.err, 0);
	send_peer(0x04, peer_nxt, 0, 0, NULL, 0);
	assert_int_equal(ev.err, -ECONNRESET);
	assert_int_equal(net_tcp_send(conn, "x", 1, now), -EPIPE);
	net_tcp_close(conn, now);
	expect_none();
	stack_free();
}

static void test_rst_in_syn_sent(void **state)
{
	(void)state;
	stack_new("rst_syn_sent", 16);
	assert_int_equal(net_tcp_connect(ns, 0, 0, ip4(PEER_IP), PPORT, 5000, now, &handler, &ev,
					 &conn),
			 0);
	peer_arp_reply();
	tout_rd = tout_n - 1;
	struct tseg s = expect_tcp();
	our_port = s.sport;
	/* RST with a wrong ACK is ignored, with the right one refuses */
	send_peer(0x14, 0, s.seq + 5, 0, NULL, 0);
	assert_int_equal(ev.connected, 0);
	send_peer(0x14, 0, s.seq + 1, 0, NULL, 0);
	assert_int_equal(ev.connected, -ECONNREFUSED);
	net_tcp_close(conn, now);
	struct net_stack_stats st;
	net_stack_stats(ns, &st);
	assert_int_equal(st.tcp_conns_active, 0);
	stack_free();
}

static void test_syn_timeout(void **state)
{
	(void)state;
	stack_new("syn_timeout", 16);
	uint64_t start = now;
	assert_int_equal(net_tcp_connect(ns, 0, 0, ip4(PEER_IP), PPORT, 5000, now, &handler, &ev,
					 &conn),
			 0);
	peer_arp_reply();
	int syns = 0;
	for (int i = 0; i < 20 && !ev.connected; i++) {
		while (tout_pending()) {
			struct tseg s;
			if (parse_tcp(tout_next(), &s) && s.fl == 0x02)
				syns++;
		}
		now = net_stack_next_timer(ns);
		net_stack_timers(ns, now);
	}
	assert_int_equal(ev.connected, -ETIMEDOUT);
	assert_int_equal(now - start, 5000);
	assert_int_equal(syns, 3); /* t=0, 1 s, 3 s */
	net_tcp_close(conn, now);
	stack_free();
}

static void test_fin_both_ways_time_wait(void **state)
{
	(void)state;
	stack_new("fin_time_wait", 16);
	establish(65535, NULL);
	uint16_t port = our_port;
	/* we close first: FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT */
	net_tcp_send(conn, "QUIT\r\n", 6, now);
	net_tcp_close(conn, now);
	struct tseg s = expect_tcp();
	assert_int_equal(s.fl, 0x18); /* no Nagle: the data went at once */
	assert_int_equal(s.dlen, 6);
	s = expect_tcp();
	assert_int_equal(s.fl, 0x11);
	assert_int_equal(s.seq, our_nxt + 6);
	send_peer(0x10, peer_nxt, our_nxt + 7, 65535, NULL, 0);
	expect_none();
	send_peer(0x11, peer_nxt, our_nxt + 7, 65535, NULL, 0);
	s = expect_tcp();
	assert_int_equal(s.ack, peer_nxt + 1);
	struct net_stack_stats st;
	net_stack_stats(ns, &st);
	assert_int_equal(st.tcp_conns_time_wait, 1);
	/* the FIN retransmitted in TIME_WAIT is re-ACKed */
	send_peer(0x11, peer_nxt, our_nxt + 7, 65535, NULL, 0);
	s = expect_tcp();
	assert_int_equal(s.ack, peer_nxt + 1);
	/* a new connection to the same peer avoids the TIME_WAIT port */
	struct net_tcp *c2;
	struct ev ev2 = {0};
	assert_int_equal(net_tcp_connect(ns, 0, port, ip4(PEER_IP), PPORT, 5000, now, &handler,
					 &ev2, &c2),
			 -EADDRINUSE);
	assert_int_equal(net_tcp_connect(ns, 0, 0, ip4(PEER_IP), PPORT, 5000, now, &handler, &ev2,
					 &c2),
			 0);
	s = expect_tcp();
	assert_int_not_equal(s.sport, port);
	net_tcp_abort(c2, now);
	tout_clear();
	/* TIME_WAIT expires after 2 s */
	now += 2000;
	net_stack_timers(ns, now);
	net_stack_stats(ns, &st);
	assert_int_equal(st.tcp_conns_time_wait, 0);
	assert_int_equal(st.tcp_conns_active, 0);
	/* now an unknown connection: RST */
	send_peer(0x10, peer_nxt, our_nxt + 7, 65535, NULL, 0);
	s = expect_tcp();
	assert_int_equal(s.fl, 0x04);
	assert_int_equal(s.seq, our_nxt + 7);
	stack_free();
	assert_int_equal(golden_compare("fin_time_wait"), 0);

	/* the peer closes first: CLOSE_WAIT -> LAST_ACK -> gone */
	stack_new("fin_passive", 16);
	establish(65535, NULL);
	ev.close_on_fin = 1;
	send_peer(0x11, peer_nxt, our_nxt, 65535, NULL, 0);
	assert_int_equal(ev.fin, 1);
	s = expect_tcp();
	assert_int_equal(s.ack, peer_nxt + 1);
	s = expect_tcp();
	assert_int_equal(s.fl, 0x11);
	send_peer(0x10, peer_nxt + 1, our_nxt + 1, 65535, NULL, 0);
	net_stack_stats(ns, &st);
	assert_int_equal(st.tcp_conns_active, 0);
	stack_free();
}

static void test_arp(void **state)
{
	(void)state;
	stack_new("arp", 16);
	uint8_t f[64];
	static const uint8_t zero[6];
	/* a request for our address gets a reply */
	size_t n = peer_arp_build(f, 1, ip4(PEER_IP), zero, ip4(US_IP), true);
	peer_frame(ns, f, n);
	const struct tframe *r = tout_next();
	assert_non_null(r);
	assert_memory_equal(r->d, peer_mac, 6);
	assert_int_equal(r->d[21], 2);
	assert_memory_equal(r->d + 22, us_mac, 6);
	uint32_t us = ip4(US_IP);
	assert_memory_equal(r->d + 28, &us, 4);
	/* ... and taught us the peer: connecting needs no ARP request */
	assert_int_equal(net_tcp_connect(ns, 0, 0, ip4(PEER_IP), PPORT, 5000, now, &handler, &ev,
					 &conn),
			 0);
	struct tseg s = expect_tcp();
	assert_int_equal(s.fl, 0x02);
	net_tcp_abort(conn, now);
	tout_clear();
	/* requests for other addresses are ignored */
	n = peer_arp_build(f, 1, ip4(PEER_IP), zero, ip4("203.0.113.9"), true);
	peer_frame(ns, f, n);
	expect_none();
	/* an unresolvable on-link neighbour: 3 requests, then -EHOSTUNREACH */
	assert_int_equal(net_tcp_connect(ns, 0, 0, ip4("203.0.113.77"), PPORT, 20000, now,
					 &handler, &ev, &conn),
			 0);
	int reqs = 0;
	for (int i = 0; i < 30 && !ev.connected; i++) {
		const struct tframe *fr;
		while ((fr = tout_next()))
			reqs += fr->d[12] == 0x08 && fr->d[13] == 0x06;
		now = net_stack_next_timer(ns);
		net_stack_timers(ns, now);
	}
	assert_int_equal(reqs, 3);
	assert_int_equal(ev.connected, -EHOSTUNREACH);
	net_tcp_close(conn, now);
	/* no route off-link without a gateway */
	assert_int_equal(net_tcp_connect(ns, 0, 0, ip4("198.51.100.1"), PPORT, 5000, now, &handler,
					 &ev, &conn),
			 -ENETUNREACH);
	/* gratuitous ARP */
	tout_clear();
	net_stack_announce(ns, now);
	r = tout_next();
	assert_non_null(r);
	assert_memory_equal(r->d + 28, &us, 4);
	assert_memory_equal(r->d + 38, &us, 4);
	stack_free();
	assert_int_equal(golden_compare("arp"), 0);
}

static void test_gateway(void **state)
{
	(void)state;
	struct net_stack_config cfg = {0};
	memcpy(cfg.mac, us_mac, 6);
	cfg.ips[0] = ip4(US_IP);
	cfg.n_ips = 1;
	cfg.prefix_len = 24;
	cfg.gateway = ip4(PEER_IP);
	cfg.isn_secret = 5;
	tout_clear();
	memset(&ev, 0, sizeof(ev));
	pcap_begin("gateway");
	assert_int_equal(net_stack_create(&cfg, test_tx, NULL, &ns), 0);
	net_stack_announce(ns, now);
	const struct tframe *g = tout_next(); /* gratuitous */
	assert_non_null(g);
	const struct tframe *r = tout_next(); /* who-has gateway */
	assert_non_null(r);
	uint32_t gw = ip4(PEER_IP), dst = ip4("198.51.100.7");
	assert_memory_equal(r->d + 38, &gw, 4);
	assert_int_equal(net_tcp_connect(ns, 0, 0, dst, PPORT, 5000, now, &handler, &ev, &conn), 0);
	expect_none(); /* queued behind the gateway's ARP */
	peer_arp_reply();
	struct tseg s = expect_tcp();
	assert_int_equal(s.fl, 0x02);
	const struct tframe *syn = &tout[tout_rd - 1];
	assert_memory_equal(syn->d, peer_mac, 6);
	assert_memory_equal(syn->d + 30, &dst, 4);
	net_tcp_abort(conn, now);
	stack_free();
}

static void test_icmp(void **state)
{
	(void)state;
	stack_new("icmp", 16);
	uint8_t f[256], icmp[64];
	memset(icmp, 0, sizeof(icmp));
	icmp[0] = 8;
	icmp[4] = 0x12;
	icmp[6] = 0;
	icmp[7] = 1;
	memcpy(icmp + 8, "pingpayload", 11);
	uint16_t c = net_csum(icmp, 19);
	memcpy(icmp + 2, &c, 2);
	memcpy(f + 34, icmp, 19);
	size_t n = peer_ip(f, 19, 1, ip4(PEER_IP), ip4(US_IP));
	peer_frame(ns, f, n);
	const struct tframe *r = tout_next(); /* ARP request first */
	assert_non_null(r);
	assert_int_equal(r->d[13], 0x06);
	peer_arp_reply();
	r = tout_next();
	assert_non_null(r);
	assert_int_equal(r->len, 14 + 20 + 19);
	assert_int_equal(r->d[34], 0);
	assert_int_equal(net_csum(r->d + 34, 19), 0);
	assert_int_equal(net_csum(r->d + 14, 20), 0);
	assert_memory_equal(r->d + 42, "pingpayload", 11);
	/* a bad checksum is dropped */
	f[36] ^= 1;
	peer_frame(ns, f, n);
	expect_none();
	/* port unreachable for our SYN: -ECONNREFUSED */
	assert_int_equal(net_tcp_connect(ns, 0, 0, ip4(PEER_IP), PPORT, 5000, now, &handler, &ev,
					 &conn),
			 0);
	const struct tframe *syn = tout_next();
	assert_non_null(syn);
	uint8_t u[8 + 28];
	memset(u, 0, 8);
	u[0] = 3;
	u[1] = 3;
	memcpy(u + 8, syn->d + 14, 28);
	c = net_csum(u, sizeof(u));
	memcpy(u + 2, &c, 2);
	memcpy(f + 34, u, sizeof(u));
	n = peer_ip(f, sizeof(u), 1, ip4(PEER_IP), ip4(US_IP));
	peer_frame(ns, f, n);
	assert_int_equal(ev.connected, -ECONNREFUSED);
	net_tcp_close(conn, now);
	/* fragments are dropped and counted */
	memcpy(f + 34, icmp, 19);
	n = peer_ip(f, 19, 1, ip4(PEER_IP), ip4(US_IP));
	f[20] = 0x20; /* MF */
	f[24] = f[25] = 0;
	c = net_csum(f + 14, 20);
	memcpy(f + 24, &c, 2);
	peer_frame(ns, f, n);
	struct net_stack_stats st;
	net_stack_stats(ns, &st);
	assert_int_equal(st.drop_frag, 1);
	assert_int_equal(st.icmp_echo_replies, 1);
	stack_free();
}

static void test_pmtu(void **state)
{
	(void)state;
	stack_new("pmtu", 16);
	establish(65535, NULL);
	static char d[3000];
	memset(d, 'p', sizeof(d));
	net_tcp_send(conn, d, sizeof(d), now);
	const struct tframe *seg = tout_next();
	assert_non_null(seg);
	while (tout_next())
		;
	uint8_t u[8 + 28], f[128];
	memset(u, 0, 8);
	u[0] = 3;
	u[1] = 4;
	u[6] = 1400 >> 8;
	u[7] = 1400 & 0xff;
	memcpy(u + 8, seg->d + 14, 28);
	uint16_t c = net_csum(u, sizeof(u));
	memcpy(u + 2, &c, 2);
	memcpy(f + 34, u, sizeof(u));
	size_t n = peer_ip(f, sizeof(u), 1, ip4(PEER_IP), ip4(US_IP));
	peer_frame(ns, f, n);
	struct tseg s = expect_tcp();
	assert_int_equal(s.seq, our_nxt);
	assert_int_equal(s.dlen, 1360);
	net_tcp_abort(conn, now);
	stack_free();
}

static void test_tx_offload(void **state)
{
	(void)state;
	struct net_stack_config cfg = {0};
	memcpy(cfg.mac, us_mac, 6);
	cfg.ips[0] = ip4(US_IP);
	cfg.n_ips = 1;
	cfg.prefix_len = 24;
	cfg.isn_secret = 1;
	cfg.tx_csum_offload = true;
	tout_clear();
	pcap_begin("offload");
	assert_int_equal(net_stack_create(&cfg, test_tx, NULL, &ns), 0);
	peer_arp_reply();
	uint8_t f[64];
	static const uint8_t zero[6];
	size_t n = peer_arp_build(f, 1, ip4(PEER_IP), zero, ip4(US_IP), true);
	peer_frame(ns, f, n);
	tout_clear();
	assert_int_equal(net_tcp_connect(ns, 0, 0, ip4(PEER_IP), PPORT, 5000, now, &handler, &ev,
					 &conn),
			 0);
	const struct tframe *fr = tout_next();
	assert_non_null(fr);
	assert_int_equal(fr->flags, NET_TX_IP_CSUM | NET_TX_TCP_CSUM);
	assert_int_equal(fr->d[24] | fr->d[25], 0); /* IP checksum left to the NIC */
	uint32_t src = ip4(US_IP), dst = ip4(PEER_IP);
	uint16_t ph = net_csum_fold(net_csum_phdr(src, dst, 6, 32)), got;
	memcpy(&got, fr->d + 34 + 16, 2);
	assert_int_equal(got, ph);
	net_tcp_abort(conn, now);
	stack_free();
}

static void test_many_conns(void **state)
{
	(void)state;
	/* 100k connections in SYN_SENT and ESTABLISHED-idle memory figure */
	enum { N = 100000 };
	struct net_stack_config cfg = {0};
	memcpy(cfg.mac, us_mac, 6);
	cfg.ips[0] = ip4(US_IP);
	cfg.ips[1] = ip4("203.0.113.3");
	cfg.ips[2] = ip4("203.0.113.4");
	cfg.ips[3] = ip4("203.0.113.5");
	cfg.n_ips = 4;
	cfg.prefix_len = 24;
	cfg.max_conns = N;
	cfg.isn_secret = 7;
	tout_clear();
	tout_discard = true;
	assert_int_equal(net_stack_create(&cfg, test_tx, NULL, &ns), 0);
	peer_arp_reply();
	uint8_t f[64];
	static const uint8_t zero[6];
	size_t n = peer_arp_build(f, 1, ip4(PEER_IP), zero, ip4(US_IP), true);
	peer_frame(ns, f, n);
	static struct net_tcp *cs[N];
	struct ev e = {0};
	for (int i = 0; i < N; i++)
		assert_int_equal(net_tcp_connect(ns, cfg.ips[i % 4], 0, ip4(PEER_IP), PPORT, 5000,
						 now, &handler, &e, &cs[i]),
				 0);
	struct net_tcp *extra;
	assert_int_equal(net_tcp_connect(ns, 0, 0, ip4(PEER_IP), PPORT, 5000, now, &handler, &e,
					 &extra),
			 -ENOMEM);
	struct net_stack_stats st;
	net_stack_stats(ns, &st);
	assert_int_equal(st.tcp_conns_active, N);
	assert_int_equal(st.tx_packets, N + 1);
	for (int i = 0; i < N; i++)
		net_tcp_close(cs[i], now);
	net_stack_stats(ns, &st);
	assert_int_equal(st.tcp_conns_active, 0);
	assert_true(net_stack_next_timer(ns) >= now + 50000); /* only ARP's expiry */
	tout_discard = false;
	net_stack_destroy(ns);
}

static void test_garbage_frames(void **state)
{
	(void)state;
	stack_new("garbage", 16);
	establish(65535, NULL);
	uint8_t f[2048];
	unsigned seed = 1;
	for (int i = 0; i < 20000; i++) {
		size_t n = peer_tcp_build(f, PPORT, our_port, (uint8_t)rand_r(&seed),
					  peer_nxt + (uint32_t)(rand_r(&seed) % 200000) - 100000,
					  our_nxt + (uint32_t)(rand_r(&seed) % 2000) - 1000,
					  (uint16_t)rand_r(&seed), "zz", (size_t)(rand_r(&seed) % 3),
					  NULL);
		net_stack_input(ns, f, n, now);
		if (i % 100 == 0)
			net_stack_timers(ns, now += 50);
		tout_clear();
	}
	if (!ev.err)
		net_tcp_abort(conn, now);
	else
		net_tcp_close(conn, now);
	stack_free();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_data),
		cmocka_unit_test(test_bulk_segmentation_and_cwnd),
		cmocka_unit_test(test_zero_window_persist),
		cmocka_unit_test(test_rto_retransmit),
		cmocka_unit_test(test_fast_retransmit),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_rst_from_peer),
		cmocka_unit_test(test_rst_in_syn_sent),
		cmocka_unit_test(test_syn_timeout),
		cmocka_unit_test(test_fin_both_ways_time_wait),
		cmocka_unit_test(test_arp),
		cmocka_unit_test(test_gateway),
		cmocka_unit_test(test_icmp),
		cmocka_unit_test(test_pmtu),
		cmocka_unit_test(test_tx_offload),
		cmocka_unit_test(test_many_conns),
		cmocka_unit_test(test_garbage_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
