/* test_transport_dpdk.c — the dpdk transport's glue (dataplane/transport_dpdk.h)
 * over DPDK's net_null device: no hugepages, no NIC, no TAP. net_null hands
 * out zero-filled frames on every rx burst and swallows every tx frame, so
 * the stack sees a stream of junk and no peer ever answers. The delivery
 * path itself is tested end to end by tests/e2e/test_dpdk.py.
 *
 * EAL initialises once per process, so everything runs in one test. If EAL
 * cannot start here (no permission to lock memory), the test is skipped. */
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

#include "config.h"
#include "err.h"
#include "loop.h"
#include "metrics.h"
#include "transport_dpdk.h"

#include "test_dpdk_probe.h"

static const char yaml_fmt[] =
	"pools:\n"
	"  - name: fast\n"
	"    transport: dpdk\n"
	"    ips: [{address: 198.51.100.20, ehlo: a.example}, {address: 198.51.100.21, ehlo: b.example}]\n"
	"dpdk:\n"
	"  eal_args: [--no-huge, --no-pci, -m, '128', --no-shconf, --no-telemetry, -l, '0',\n"
	"             --file-prefix=sluiceut%d, --vdev=net_null0, --log-level=lib.eal:error]\n"
	"  port: %s\n"
	"  mbufs: 2047\n"
	"  rx_descriptors: 256\n"
	"  tx_descriptors: 256\n"
	"  gateway: 198.51.100.1\n";

static struct sl_config *load(const char *port)
{
	struct sl_config *cfg = NULL;
	char yaml[1024], err[512] = "";

	snprintf(yaml, sizeof yaml, yaml_fmt, (int)getpid(), port);
	if (config_load_string("t.yaml", yaml, strlen(yaml), &cfg, err, sizeof err))
		fail_msg("config: %s", err);
	return cfg;
}

static uint64_t metric(const char *text, const char *series)
{
	const char *p = strstr(text, series);

	return p ? strtoull(p + strlen(series), NULL, 10) : 0;
}

static void test_null_port(void **state)
{
	struct sl_config *cfg = load("net_null0");
	struct transport_dpdk *td = NULL;
	struct metrics *m;
	struct loop *l;
	struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET };
	struct sockaddr_in6 dst6 = { .sin6_family = AF_INET6, .sin6_port = htons(25) };
	struct probe pr = { 0 };
	struct conn *c = NULL;
	struct sl_buf out = { 0 };
	char err[512] = "";
	uint8_t mac[6], zero[6] = { 0 };
	int rc;

	(void)state;
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
	transport_dpdk_mac(td, mac);
	assert_memory_not_equal(mac, zero, 6);
	assert_string_equal(transport_dpdk_base(td)->ops->name, "dpdk");
	/* Busy-poll unless idle_sleep is set. */
	assert_int_equal(transport_dpdk_wait_ms(td), 0);

	/* The stack is IPv4 only. */
	rc = transport_connect(transport_dpdk_base(td), NULL, 0, (struct sockaddr *)&dst6,
			       sizeof dst6, 100, &handler, &pr, &c);
	assert_int_equal(rc, -EAFNOSUPPORT);

	/* An on-link peer that never answers ARP: the handshake fails through
	 * on_connect, never during connect, and the conn is then closed. */
	src.sin_addr.s_addr = inet_addr("198.51.100.21");
	dst.sin_addr.s_addr = inet_addr("198.51.100.99");
	dst.sin_port = htons(25);
	rc = transport_connect(transport_dpdk_base(td), (struct sockaddr *)&src, sizeof src,
			       (struct sockaddr *)&dst, sizeof dst, 200, &handler, &pr, &c);
	assert_int_equal(rc, 0);
	assert_false(pr.connected);
	assert_int_equal(conn_send(c, "EHLO x\r\n", 8), 0); /* queued before the handshake */
	assert_int_equal(conn_pending(c), 8);
	for (int i = 0; i < 20000 && !pr.connected; i++) {
		loop_run_once(l, 1);
		transport_dpdk_poll(td);
	}
	assert_true(pr.connected);
	assert_true(pr.connect_err == -ETIMEDOUT || pr.connect_err == -EHOSTUNREACH);
	conn_close(c);

	/* A source address the port does not own is refused. */
	src.sin_addr.s_addr = inet_addr("198.51.100.10");
	rc = transport_connect(transport_dpdk_base(td), (struct sockaddr *)&src, sizeof src,
			       (struct sockaddr *)&dst, sizeof dst, 200, &handler, &pr, &c);
	assert_int_equal(rc, -EADDRNOTAVAIL);

	/* net_null's junk frames were received, counted and dropped; the ARP
	 * requests went out. */
	for (int i = 0; i < 300; i++) {
		loop_run_once(l, 1);
		transport_dpdk_poll(td);
	}
	assert_int_equal(metrics_render(m, &out), 0);
	assert_int_equal(sl_buf_append(&out, "", 1), 0);
	assert_true(metric(out.data, "sluice_dpdk_rx_packets_total{port=\"0\"} ") > 0);
	assert_true(metric(out.data, "sluice_dpdk_tx_packets_total{port=\"0\"} ") > 0);
	assert_true(metric(out.data, "sluice_netstack_rx_drops_total{reason=\"eth\"} ") > 0);
	assert_true(metric(out.data, "sluice_netstack_arp_total{kind=\"request\"} ") > 0);
	assert_true(metric(out.data,
			   "sluice_netstack_tcp_connections_total{outcome=\"failed\"} ") == 1);
	sl_buf_free(&out);

	transport_dpdk_destroy(td);
	metrics_destroy(m);
	loop_destroy(l);
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_null_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
