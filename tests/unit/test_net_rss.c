/* test_net_rss.c — software Toeplitz (dataplane/net_rss.c) against the
 * Microsoft RSS verification suite, checksums, and RSS-aware source ports. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net_csum.h"
#include "net_rss.h"
#include "net_stack.h"

static const uint8_t ms_key[40] = {
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
	0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
	0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

static uint32_t ip4(const char *s)
{
	struct in_addr a;
	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

static void test_toeplitz_ms_vectors(void **state)
{
	(void)state;
	/* "Verifying the RSS Hash Calculation": destination, source, IPv4-only
	 * hash, IPv4+TCP hash. The hash input is src ip, dst ip, src port, dst port. */
	static const struct {
		const char *dst;
		uint16_t dport;
		const char *src;
		uint16_t sport;
		uint32_t h_ip, h_tcp;
	} v[] = {
		{"161.142.100.80", 1766, "66.9.149.187", 2794, 0x323e8fc2, 0x51ccc178},
		{"65.69.140.83", 4739, "199.92.111.2", 14230, 0xd718262a, 0xc626b0ea},
		{"12.22.207.184", 38024, "24.19.198.95", 12898, 0xd2d0a5de, 0x5c2b394a},
		{"209.142.163.6", 2217, "38.27.205.30", 48228, 0x82989176, 0xafc7327f},
		{"202.188.127.2", 1303, "153.39.163.191", 44251, 0x5d1809c5, 0x10e828a2},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint32_t s = ip4(v[i].src), d = ip4(v[i].dst);
		uint8_t in[8];
		memcpy(in, &s, 4);
		memcpy(in + 4, &d, 4);
		assert_int_equal(net_rss_toeplitz(ms_key, sizeof(ms_key), in, 8), v[i].h_ip);
		assert_int_equal(net_rss_hash_tcp4(ms_key, sizeof(ms_key), s, d, v[i].sport,
						   v[i].dport),
				 v[i].h_tcp);
	}
	uint16_t reta[4] = {3, 2, 1, 0};
	assert_int_equal(net_rss_queue(0x51ccc178, 4, NULL, 0), 0x51ccc178 % 4);
	assert_int_equal(net_rss_queue(0x51ccc178, 4, reta, 4), reta[0x51ccc178 % 4]);
}

static void test_csum(void **state)
{
	(void)state;
	/* RFC 1071 example: 0001 f203 f4f5 f6f7 -> sum ddf2 */
	const uint8_t b[8] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
	uint16_t f = net_csum_fold(net_csum_partial(b, 8, 0));
	assert_int_equal(ntohs(f), 0xddf2);
	/* odd length */
	const uint8_t o[3] = {0x12, 0x34, 0x56};
	assert_int_equal(ntohs(net_csum_fold(net_csum_partial(o, 3, 0))), 0x1234 + 0x5600);
	/* incremental update equals a recomputation */
	uint8_t h[20] = {0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 203, 0, 113, 2, 203, 0, 113, 1};
	uint16_t c = net_csum(h, 20), oldw, neww;
	memcpy(h + 10, &c, 2);
	memcpy(&oldw, h + 8, 2);
	h[8] = 63;
	memcpy(&neww, h + 8, 2);
	c = net_csum_update16(c, oldw, neww);
	memcpy(h + 10, &c, 2);
	assert_int_equal(net_csum(h, 20), 0);
}

static void nop_tx(void *ctx, const uint8_t *f, size_t len, unsigned flags)
{
	(void)ctx;
	(void)f;
	(void)len;
	(void)flags;
}

static void nop_connect(void *ctx, int err)
{
	(void)ctx;
	(void)err;
}

static void test_rss_ports(void **state)
{
	(void)state;
	static const struct net_tcp_handler h = {nop_connect, NULL, NULL, NULL};
	for (uint16_t q = 0; q < 4; q++) {
		struct net_stack_config cfg = {0};
		cfg.mac[0] = 2;
		cfg.ips[0] = ip4("203.0.113.2");
		cfg.n_ips = 1;
		cfg.prefix_len = 24;
		cfg.max_conns = 64;
		cfg.rss_key = ms_key;
		cfg.rss_key_len = sizeof(ms_key);
		cfg.rss_queues = 4;
		cfg.rss_queue = q;
		cfg.isn_secret = 3;
		struct net_stack *ns;
		assert_int_equal(net_stack_create(&cfg, nop_tx, NULL, &ns), 0);
		for (int i = 0; i < 50; i++) {
			struct net_tcp *c;
			uint32_t dst = ip4(i % 2 ? "203.0.113.25" : "203.0.113.26");
			assert_int_equal(net_tcp_connect(ns, 0, 0, dst, 25, 1000, 0, &h, NULL, &c), 0);
			uint32_t lip, rip;
			uint16_t lport, rport;
			net_tcp_addrs(c, &lip, &lport, &rip, &rport);
			/* the reply flow, as the NIC sees it */
			uint32_t hash = net_rss_hash_tcp4(ms_key, sizeof(ms_key), rip, lip, rport, lport);
			assert_int_equal(hash % 4, q);
			assert_true(lport >= 32768 && lport <= 60999);
		}
		net_stack_destroy(ns);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_toeplitz_ms_vectors),
		cmocka_unit_test(test_csum),
		cmocka_unit_test(test_rss_ports),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
