/*
 * fuzz_net_input.c — arbitrary frames into the userspace stack
 * (net_stack_input) with a connection in a state chosen by the input.
 *
 * Input: byte 0 picks the set-up (connection state, checksum offload,
 * what the callbacks do re-entrantly); then records of [len:2][mode:1]
 * [bytes]. Mode 0 feeds the bytes as a raw Ethernet frame; mode 1 wraps
 * them as a TCP segment of the connection (valid Ethernet/IPv4 headers,
 * the connection's ports, seq/ack relative to the connection, a correct
 * checksum) so the state machine is reached; mode 2 advances the clock
 * and fires timers. Checks the stack's invariants stay sane (no crash,
 * no leak, counters consistent).
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net_csum.h"
#include "net_stack.h"

static const uint8_t us_mac[6] = {2, 0, 0, 0, 0, 2};
static const uint8_t peer_mac[6] = {2, 0, 0, 0, 0, 1};
#define US_IP 0x027100cbu   /* 203.0.113.2 in network order on little-endian */
#define PEER_IP 0x017100cbu /* 203.0.113.1 */

static uint32_t syn_seq;
static uint16_t our_port;
static uint64_t now;
static struct net_tcp *conn;
static unsigned cb_mode;
static int closed;
static size_t tx_frames;

static void tx(void *ctx, const uint8_t *f, size_t len, unsigned flags)
{
	(void)ctx;
	(void)flags;
	tx_frames++;
	if (len > 1514)
		abort(); /* never larger than the MTU */
	if (len >= 54 && f[12] == 8 && f[13] == 0 && f[23] == 6 && (f[47] & 0x02)) {
		memcpy(&syn_seq, f + 38, 4);
		syn_seq = ntohl(syn_seq);
		our_port = (uint16_t)(f[34] << 8 | f[35]);
	}
}

static void on_connect(void *ctx, int err)
{
	(void)ctx;
	if (err && !closed && (cb_mode & 1)) {
		net_tcp_close(conn, now);
		closed = 1;
	}
}
static void on_recv(void *ctx, const char *d, size_t len)
{
	(void)ctx;
	if (closed)
		abort(); /* no callbacks after close */
	if (len && (cb_mode & 2))
		net_tcp_send(conn, d, len, now); /* echo, re-entrantly */
	if ((!len || (len && d[0] == 'Q')) && (cb_mode & 4)) {
		net_tcp_close(conn, now);
		closed = 1;
	}
}
static void on_error(void *ctx, int err)
{
	(void)ctx;
	(void)err;
	if (closed)
		abort();
	if (cb_mode & 1) {
		net_tcp_close(conn, now);
		closed = 1;
	}
}
static void on_drained(void *ctx)
{
	(void)ctx;
	if (closed)
		abort();
}
static const struct net_tcp_handler h = {on_connect, on_recv, on_error, on_drained};

static size_t eth_ip(uint8_t *f, size_t l4len, uint8_t proto)
{
	memcpy(f, us_mac, 6);
	memcpy(f + 6, peer_mac, 6);
	f[12] = 8;
	f[13] = 0;
	uint8_t *ip = f + 14;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + l4len) >> 8);
	ip[3] = (uint8_t)(20 + l4len);
	ip[6] = 0x40;
	ip[8] = 64;
	ip[9] = proto;
	uint32_t s = PEER_IP, d = US_IP;
	memcpy(ip + 12, &s, 4);
	memcpy(ip + 16, &d, 4);
	uint16_t c = net_csum(ip, 20);
	memcpy(ip + 10, &c, 2);
	return 34 + l4len;
}

static void tcp_frame(struct net_stack *ns, uint8_t fl, uint32_t seq, uint32_t ack, uint16_t win,
		      const uint8_t *opt, size_t optlen, const uint8_t *data, size_t len)
{
	static uint8_t f[2048];
	optlen &= ~(size_t)3;
	if (optlen > 40)
		optlen = 40;
	if (34 + 20 + optlen + len > sizeof(f))
		len = sizeof(f) - 34 - 20 - optlen;
	uint8_t *t = f + 34;
	memset(t, 0, 20);
	t[0] = 0;
	t[1] = 25;
	t[2] = (uint8_t)(our_port >> 8);
	t[3] = (uint8_t)our_port;
	uint32_t v = htonl(seq);
	memcpy(t + 4, &v, 4);
	v = htonl(ack);
	memcpy(t + 8, &v, 4);
	t[12] = (uint8_t)(((20 + optlen) / 4) << 4);
	t[13] = fl;
	t[14] = (uint8_t)(win >> 8);
	t[15] = (uint8_t)win;
	if (optlen)
		memcpy(t + 20, opt, optlen);
	if (len)
		memcpy(t + 20 + optlen, data, len);
	size_t tl = 20 + optlen + len;
	uint16_t c = (uint16_t)~net_csum_fold(
		net_csum_partial(t, tl, net_csum_phdr(PEER_IP, US_IP, 6, (uint16_t)tl)));
	memcpy(t + 16, &c, 2);
	size_t n = eth_ip(f, tl, 6);
	net_stack_input(ns, f, n, now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t setup = data[0];
	data++;
	size--;
	struct net_stack_config cfg = {0};
	memcpy(cfg.mac, us_mac, 6);
	cfg.ips[0] = US_IP;
	cfg.n_ips = 1;
	cfg.prefix_len = 24;
	cfg.max_conns = 8;
	cfg.isn_secret = 99;
	cfg.rx_csum_ok = setup & 0x80;
	cfg.tx_csum_offload = setup & 0x40;
	struct net_stack *ns;
	if (net_stack_create(&cfg, tx, NULL, &ns))
		abort();
	now = 1000;
	closed = 0;
	cb_mode = (setup >> 3) & 7;
	tx_frames = 0;
	uint8_t arp[60] = {0};
	memcpy(arp, us_mac, 6);
	memcpy(arp + 6, peer_mac, 6);
	arp[12] = 8;
	arp[13] = 6;
	arp[15] = 1;
	arp[16] = 8;
	arp[18] = 6;
	arp[19] = 4;
	arp[21] = 2;
	memcpy(arp + 22, peer_mac, 6);
	uint32_t pip = PEER_IP, uip = US_IP;
	memcpy(arp + 28, &pip, 4);
	memcpy(arp + 32, us_mac, 6);
	memcpy(arp + 38, &uip, 4);
	if (net_tcp_connect(ns, 0, 0, PEER_IP, 25, 3000, now, &h, NULL, &conn))
		abort();
	net_stack_input(ns, arp, sizeof(arp), now);
	uint32_t peer_isn = 5000;
	unsigned state = setup & 7;
	static const uint8_t synopt[12] = {2, 4, 5, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2};
	if (state >= 1) /* ESTABLISHED */
		tcp_frame(ns, 0x12, peer_isn, syn_seq + 1, 65535, synopt, 12, NULL, 0);
	uint32_t snd = syn_seq + 1;
	if (state >= 2 && !closed) { /* data in flight */
		static uint8_t d[5000];
		memset(d, 'd', sizeof(d));
		net_tcp_send(conn, d, sizeof(d), now);
	}
	if (state == 3 && !closed) { /* FIN_WAIT_1 */
		net_tcp_close(conn, now);
		closed = 1;
	}
	if (state == 4) /* CLOSE_WAIT */
		tcp_frame(ns, 0x11, peer_isn + 1, snd, 65535, NULL, 0, NULL, 0);

	while (size >= 3) {
		size_t len = (size_t)(data[0] << 8 | data[1]) % 1600;
		uint8_t mode = data[2] % 3;
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		const uint8_t *p = data;
		data += len;
		size -= len;
		if (mode == 0) {
			net_stack_input(ns, p, len, now);
		} else if (mode == 1 && len >= 12) {
			uint32_t so, ao;
			memcpy(&so, p, 4);
			memcpy(&ao, p + 4, 4);
			/* mostly small offsets around the expected numbers */
			int32_t sd = (int32_t)so % 70000, ad = (int32_t)ao % 70000;
			uint8_t fl = p[8];
			uint16_t win = (uint16_t)(p[9] << 8 | p[10]);
			size_t optlen = p[11] % 44;
			if (optlen > len - 12)
				optlen = len - 12;
			tcp_frame(ns, fl, peer_isn + 1 + (uint32_t)sd, snd + (uint32_t)ad, win, p + 12,
				  optlen, p + 12 + (optlen & ~(size_t)3), len - 12 - (optlen & ~(size_t)3));
		} else if (mode == 2 && len >= 1) {
			now += (uint64_t)p[0] * (len > 1 ? p[1] + 1 : 1);
			net_stack_timers(ns, now);
		}
		uint64_t nt = net_stack_next_timer(ns);
		if (nt < now) { /* a due timer must be fired by net_stack_timers */
			net_stack_timers(ns, now);
			if (net_stack_next_timer(ns) < now)
				abort();
		}
	}
	/* run the clock out: every connection ends within the bounded timers */
	for (int i = 0; i < 200; i++) {
		uint64_t nt = net_stack_next_timer(ns);
		if (nt == UINT64_MAX)
			break;
		now = nt > now ? nt : now;
		net_stack_timers(ns, now);
		if (net_stack_next_timer(ns) <= now && net_stack_next_timer(ns) == nt)
			abort(); /* timers must make progress */
	}
	struct net_stack_stats st;
	net_stack_stats(ns, &st);
	if (!closed)
		net_tcp_abort(conn, now);
	net_stack_stats(ns, &st);
	if (st.tcp_conns_time_wait > st.tcp_conns_active || st.tcp_conns_active > 1)
		abort();
	net_stack_destroy(ns);
	return 0;
}
