/*
 * test_dpdk_probe.h — the connection callbacks of the dpdk transport's unit
 * tests (test_transport_dpdk*.c): no peer ever answers there, so a probe
 * only records how the active open ended, and any data or error before the
 * handshake fails the test. Header-only; include after <cmocka.h>.
 */
#ifndef SL_TEST_DPDK_PROBE_H
#define SL_TEST_DPDK_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "transport.h"

struct probe {
	int connect_err;
	bool connected;
};

static void on_connect(void *ctx, int err)
{
	struct probe *p = ctx;

	p->connected = true;
	p->connect_err = err;
}

static void on_recv(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	fail_msg("no peer, so nothing can arrive");
}

static void on_error(void *ctx, int err)
{
	(void)ctx;
	fail_msg("on_error(%d) before the handshake", err);
}

static const struct conn_handler handler = { on_connect, on_recv, on_error, NULL };

#endif
