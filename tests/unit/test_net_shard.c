/* test_net_shard.c — which worker owns a connection and a frame
 * (dataplane/net_shard.h), and that a worker's stack picks source ports in
 * its own slice whose RSS hash lands on its own queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "net_rss.h"
#include "net_shard.h"
#include "net_stack.h"

static void test_slices(void **state)
{
	uint16_t lo, hi, prev_hi = NET_SHARD_PORT_LO - 1;

	(void)state;
	net_shard_ports(1, 0, &lo, &hi);
	assert_int_equal(lo, NET_SHARD_PORT_LO);
	assert_int_equal(hi, NET_SHARD_PORT_HI);
	for (unsigned n = 1; n <= 8; n++) {
		prev_hi = NET_SHARD_PORT_LO - 1;
		for (unsigned w = 0; w < n; w++) {
			net_shard_ports(n, w, &lo, &hi);
			assert_int_equal(lo, prev_hi + 1); /* contiguous, no overlap */
			assert_true(hi >= lo);
			assert_int_equal(net_shard_port_owner(n, lo), w);
			assert_int_equal(net_shard_port_owner(n, hi), w);
			prev_hi = hi;
		}
		assert_int_equal(prev_hi, NET_SHARD_PORT_HI); /* the whole range */
		assert_int_equal(net_shard_port_owner(n, 25), NET_SHARD_ANY);
		assert_int_equal(net_shard_port_owner(n, 61000), NET_SHARD_ANY);
	}
}

/* Ethernet + IPv4 (20 bytes) + payload, returns the frame length. */
static size_t ipv4_frame(uint8_t *f, uint8_t proto, const uint8_t *payload, size_t len)
{
	memset(f, 0, 34);
	f[12] = 0x08;
	f[13] = 0x00;
	f[14] = 0x45;
	f[23] = proto;
	memcpy(f + 34, payload, len);
	return 34 + len;
}

static void test_owner_of_frames(void **state)
{
	uint8_t f[256], tcp[20] = { 0 }, icmp[8 + 20 + 8] = { 0 }, arp[28] = { 0 };
	uint16_t lo1, hi1;
	size_t n;

	(void)state;
	net_shard_ports(2, 1, &lo1, &hi1);
	/* TCP from a server to our port in worker 1's slice. */
	tcp[0] = 0;
	tcp[1] = 25;
	tcp[2] = (uint8_t)(lo1 >> 8);
	tcp[3] = (uint8_t)lo1;
	n = ipv4_frame(f, 6, tcp, sizeof tcp);
	assert_int_equal(net_shard_owner(2, f, n), 1);
	assert_int_equal(net_shard_owner(1, f, n), NET_SHARD_ANY); /* one worker: no question */
	tcp[2] = 0x80; /* 32768: worker 0 */
	tcp[3] = 0x00;
	n = ipv4_frame(f, 6, tcp, sizeof tcp);
	assert_int_equal(net_shard_owner(2, f, n), 0);
	/* A non-first fragment has no TCP header: whoever got it. */
	f[20] = 0x00;
	f[21] = 0x10;
	assert_int_equal(net_shard_owner(2, f, n), NET_SHARD_ANY);
	/* Truncated before the ports. */
	n = ipv4_frame(f, 6, tcp, 2);
	assert_int_equal(net_shard_owner(2, f, n), NET_SHARD_ANY);

	/* ICMP port unreachable quoting a segment we sent from worker 1's port. */
	icmp[0] = 3;
	icmp[1] = 3;
	icmp[8] = 0x45;
	icmp[8 + 9] = 6;
	icmp[28] = (uint8_t)(hi1 >> 8);
	icmp[29] = (uint8_t)hi1;
	n = ipv4_frame(f, 1, icmp, sizeof icmp);
	assert_int_equal(net_shard_owner(2, f, n), 1);
	icmp[0] = 8; /* echo request: anyone answers */
	n = ipv4_frame(f, 1, icmp, sizeof icmp);
	assert_int_equal(net_shard_owner(2, f, n), NET_SHARD_ANY);

	/* ARP: replies to everyone, requests to whoever received them. */
	memset(f, 0, sizeof f);
	f[12] = 0x08;
	f[13] = 0x06;
	arp[7] = 2;
	memcpy(f + 14, arp, sizeof arp);
	assert_int_equal(net_shard_owner(2, f, 42), NET_SHARD_ALL);
	f[14 + 7] = 1;
	assert_int_equal(net_shard_owner(2, f, 42), NET_SHARD_ANY);
	/* IPv6: not ours to steer. */
	f[12] = 0x86;
	f[13] = 0xdd;
	assert_int_equal(net_shard_owner(2, f, 60), NET_SHARD_ANY);
	assert_int_equal(net_shard_owner(2, f, 5), NET_SHARD_ANY);
}

static void test_pick(void **state)
{
	uint32_t load[3] = { 0, 0, 0 };
	unsigned cursor = 0, w;

	(void)state;
	/* Equal loads: round-robin. */
	for (unsigned i = 0; i < 6; i++) {
		w = net_shard_pick(3, load, &cursor);
		assert_int_equal(w, i % 3);
	}
	/* The least loaded wins whatever the cursor says. */
	load[0] = 5;
	load[1] = 2;
	load[2] = 4;
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(net_shard_pick(3, load, &cursor), 1);
	load[1] = 4; /* tie between 1 and 2: taken in turn */
	w = net_shard_pick(3, load, &cursor);
	assert_true(w == 1 || w == 2);
	assert_int_not_equal(net_shard_pick(3, load, &cursor), w);
}

static void swallow(void *ctx, const uint8_t *frame, size_t len, unsigned flags)
{
	(void)ctx;
	(void)frame;
	(void)len;
	(void)flags;
}

static void nop_connect(void *ctx, int err)
{
	(void)ctx;
	(void)err;
}

static void nop_recv(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
}

static const struct net_tcp_handler nop = { nop_connect, nop_recv, nop_connect, NULL };

/* Worker 1 of 2 with a Toeplitz key: every port it picks is in its slice
 * and hashes (as the NIC sees the reply) to queue 1. The same without a
 * key (a PMD without RSS): the slice alone. */
static void test_stack_ports_rss(void **state)
{
	static const uint8_t key[40] = { /* Microsoft's example key */
		0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
		0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
		0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
	};
	uint16_t reta[128];

	(void)state;
	for (unsigned i = 0; i < 128; i++)
		reta[i] = (uint16_t)(i % 2);
	for (int with_key = 0; with_key < 2; with_key++) {
		struct net_stack_config nc = { .mac = { 2, 0, 0, 0, 0, 1 }, .n_ips = 1,
					       .prefix_len = 24, .max_conns = 256,
					       .rss_queues = 2, .rss_queue = 1 };
		struct net_stack *ns;
		uint16_t lo, hi;

		nc.ips[0] = inet_addr("198.51.100.20");
		if (with_key) {
			nc.rss_key = key;
			nc.rss_key_len = sizeof key;
			nc.reta = reta;
			nc.reta_size = 128;
		}
		net_shard_ports(2, 1, &nc.port_lo, &nc.port_hi);
		lo = nc.port_lo;
		hi = nc.port_hi;
		assert_int_equal(net_stack_create(&nc, swallow, NULL, &ns), 0);
		for (unsigned i = 0; i < 100; i++) {
			struct net_tcp *c;
			uint32_t sip, dip;
			uint16_t sport, dport;

			assert_int_equal(net_tcp_connect(ns, 0, 0, htonl(0xc6336400 + 30 + i % 50),
							 (uint16_t)(25 + i / 50), 1000, 0, &nop,
							 NULL, &c), 0);
			net_tcp_addrs(c, &sip, &sport, &dip, &dport);
			assert_true(sport >= lo && sport <= hi);
			assert_int_equal(net_shard_port_owner(2, sport), 1);
			if (with_key) {
				uint32_t h = net_rss_hash_tcp4(key, sizeof key, dip, sip, dport,
							       sport);

				assert_int_equal(net_rss_queue(h, 2, reta, 128), 1);
			}
		}
		net_stack_destroy(ns);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slices),
		cmocka_unit_test(test_owner_of_frames),
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_stack_ports_rss),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
