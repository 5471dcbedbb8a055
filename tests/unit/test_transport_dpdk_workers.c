/* test_transport_dpdk_workers.c — the dpdk transport with dpdk.workers: 2
 * over DPDK's net_ring device (no hugepages, no NIC): two worker lcores,
 * two queue pairs, one stack each, conn calls and callbacks over rings.
 *
 * net_ring loops each tx queue back into the rx queue of the same number
 * (ring ETH_RXTX<q>_net_ring0), so a worker hears only itself, and the
 * test can put a frame on queue 0's ring by hand: a TCP segment for a port
 * of worker 1's slice must be handed over to worker 1 (which answers it
 * with a RST, there being no such connection).
 *
 * EAL initialises once per process, hence a binary of its own. If EAL
 * cannot start here, the test is skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "config.h"
#include "err.h"
#include "loop.h"
#include "metrics.h"
#include "net_csum.h"
#include "net_shard.h"
#include "transport_dpdk.h"

#include "test_dpdk_probe.h"

/* No gateway: once its gratuitous ARPs are out, worker 0 sends nothing, so
 * the test may put frames on queue 0's ring (single producer) safely. */
static const char yaml_fmt[] =
	"pools:\n"
	"  - name: fast\n"
	"    transport: dpdk\n"
	"    ips: [{address: 198.51.100.20, ehlo: a.example}, {address: 198.51.100.21, ehlo: b.example}]\n"
	"dpdk:\n"
	"  eal_args: [--no-huge, --no-pci, -m, '128', --no-shconf, --no-telemetry,\n"
	"             '--lcores=(0-2)@(0-%ld)', --file-prefix=sluiceutw%d, --vdev=net_ring0,\n"
	"             --log-level=lib.eal:error]\n"
	"  workers: 2\n"
	"  idle_sleep: 1ms\n"
	"  mbufs: 4095\n"
	"  rx_descriptors: 256\n"
	"  tx_descriptors: 256\n";

static uint64_t metric(const char *text, const char *series)
{
	const char *p = strstr(text, series);

	return p ? strtoull(p + strlen(series), NULL, 10) : 0;
}

static uint64_t metric_now(struct metrics *m, const char *series)
{
	struct sl_buf out = { 0 };
	uint64_t v;

	assert_int_equal(metrics_render(m, &out), 0);
	assert_int_equal(sl_buf_append(&out, "", 1), 0);
	v = metric(out.data, series);
	sl_buf_free(&out);
	return v;
}

static void spin(struct loop *l, struct transport_dpdk *td, int rounds)
{
	for (int i = 0; i < rounds; i++) {
		uint64_t wait = transport_dpdk_wait_ms(td);

		loop_run_once(l, wait < 2 ? wait : 2);
		transport_dpdk_poll(td);
	}
}

/* An ACK from 198.51.100.99:25 to 198.51.100.20:port, checksums right. */
static void inject_tcp(const uint8_t mac[6], uint16_t port)
{
	struct rte_mempool *mp = rte_mempool_lookup("sluice_mbufs");
	struct rte_ring *r = rte_ring_lookup("ETH_RXTX0_net_ring0");
	uint8_t f[54] = { 0 };
	uint32_t src = inet_addr("198.51.100.99"), dst = inet_addr("198.51.100.20");
	uint16_t v;
	struct rte_mbuf *m;

	assert_non_null(mp);
	assert_non_null(r);
	memcpy(f, mac, 6);
	memcpy(f + 6, "\x02\x00\x00\x00\x00\x63", 6);
	f[12] = 0x08;
	f[14] = 0x45;
	f[17] = 40; /* total length */
	f[22] = 64; /* TTL */
	f[23] = 6;
	memcpy(f + 26, &src, 4);
	memcpy(f + 30, &dst, 4);
	v = net_csum(f + 14, 20);
	memcpy(f + 24, &v, 2);
	f[35] = 25;
	f[36] = (uint8_t)(port >> 8);
	f[37] = (uint8_t)port;
	f[41] = 1;     /* seq */
	f[45] = 1;     /* ack */
	f[46] = 0x50;  /* data offset */
	f[47] = 0x10;  /* ACK */
	f[48] = 0x10;  /* window */
	v = (uint16_t)~net_csum_fold(net_csum_partial(f + 34, 20, net_csum_phdr(src, dst, 6, 20)));
	memcpy(f + 50, &v, 2);
	m = rte_pktmbuf_alloc(mp);
	assert_non_null(m);
	memcpy(rte_pktmbuf_append(m, sizeof f), f, sizeof f);
	assert_int_equal(rte_ring_enqueue(r, m), 0);
}

static void test_two_workers(void **state)
{
	struct sl_config *cfg = NULL;
	struct transport_dpdk *td = NULL;
	struct metrics *m;
	struct loop *l;
	struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET };
	struct probe pr[2] = { 0 };
	struct conn *c[2] = { NULL, NULL };
	char yaml[1024], err[512] = "";
	uint8_t mac[6];
	uint16_t lo1, hi1;
	bool threaded, rss;
	int rc;

	(void)state;
	snprintf(yaml, sizeof yaml, yaml_fmt, sysconf(_SC_NPROCESSORS_ONLN) - 1, (int)getpid());
	if (config_load_string("t.yaml", yaml, strlen(yaml), &cfg, err, sizeof err))
		fail_msg("config: %s", err);
	assert_int_equal(cfg->dpdk.workers, 2);
	assert_int_equal(loop_create(64, &l), 0);
	assert_int_equal(metrics_create(&m), 0);
	rc = transport_dpdk_create(l, cfg, m, &td, err, sizeof err);
	if (rc < 0 && strstr(err, "EAL initialisation failed")) {
		print_message("EAL cannot start here (%s): skipped\n", err);
		metrics_destroy(m);
		loop_destroy(l);
		config_free(cfg);
		skip();
	}
	if (rc < 0)
		fail_msg("create: %d %s", rc, err);
	assert_int_equal(transport_dpdk_workers(td, &threaded, &rss), 2);
	assert_true(threaded);
	assert_false(rss); /* net_ring has no RSS: the hand-over ring is the fallback */
	transport_dpdk_mac(td, mac);

	/* A source address the port does not own is refused at once. */
	src.sin_addr.s_addr = inet_addr("198.51.100.10");
	dst.sin_addr.s_addr = inet_addr("198.51.100.99");
	dst.sin_port = htons(25);
	rc = transport_connect(transport_dpdk_base(td), (struct sockaddr *)&src, sizeof src,
			       (struct sockaddr *)&dst, sizeof dst, 200, &handler, &pr[0], &c[0]);
	assert_int_equal(rc, -EADDRNOTAVAIL);

	/* Two connections to a peer that never answers ARP: one per worker;
	 * the failures come back through on_connect on this thread. */
	src.sin_addr.s_addr = inet_addr("198.51.100.21");
	for (int i = 0; i < 2; i++) {
		rc = transport_connect(transport_dpdk_base(td), (struct sockaddr *)&src,
				       sizeof src, (struct sockaddr *)&dst, sizeof dst, 200,
				       &handler, &pr[i], &c[i]);
		assert_int_equal(rc, 0);
		assert_int_equal(conn_send(c[i], "EHLO x\r\n", 8), 0);
		assert_int_equal(conn_pending(c[i]), 8);
	}
	for (int i = 0; i < 5000 && !(pr[0].connected && pr[1].connected); i++)
		spin(l, td, 1);
	for (int i = 0; i < 2; i++) {
		assert_true(pr[i].connected);
		assert_true(pr[i].connect_err == -ETIMEDOUT ||
			    pr[i].connect_err == -EHOSTUNREACH);
		conn_close(c[i]);
	}
	spin(l, td, 300);
	assert_int_equal(metric_now(m, "sluice_dpdk_worker_connections_total{worker=\"0\"} "), 1);
	assert_int_equal(metric_now(m, "sluice_dpdk_worker_connections_total{worker=\"1\"} "), 1);
	assert_int_equal(metric_now(m, "sluice_netstack_tcp_connections_total{outcome=\"failed\"} "),
			 2);

	/* A segment for worker 1's slice arrives on queue 0: handed over, and
	 * worker 1's stack resets it (no such connection). */
	net_shard_ports(2, 1, &lo1, &hi1);
	inject_tcp(mac, lo1);
	for (int i = 0; i < 3000 &&
			!metric_now(m, "sluice_netstack_tcp_rst_total{direction=\"tx\"} ");
	     i++)
		spin(l, td, 1);
	assert_int_equal(metric_now(m, "sluice_dpdk_worker_handovers_total{worker=\"0\"} "), 1);
	assert_int_equal(metric_now(m, "sluice_dpdk_worker_handovers_total{worker=\"1\"} "), 0);
	assert_int_equal(metric_now(m, "sluice_netstack_tcp_rst_total{direction=\"tx\"} "), 1);

	transport_dpdk_destroy(td);
	metrics_destroy(m);
	loop_destroy(l);
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_workers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
