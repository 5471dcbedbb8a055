/*
 * sluiced — the sluice appliance daemon.
 *
 *   sluiced [-c FILE] [-n] [-v]
 *
 * -c FILE  configuration (default /etc/sluice/sluice.yaml)
 * -n       check the configuration, print "FILE: OK" or "FILE:LINE:COL: ..."
 *          and exit (0 ok, 78 bad config)
 * -v       debug logging
 *
 * One event-loop thread runs ingress, the scheduler, egress, DNS and the
 * metrics endpoint over io_uring; the spool's writer thread does the group
 * commits. Pools with `transport: dpdk` connect through the DPDK port
 * (docs/dpdk.md), polled by the same thread, which then busy-polls. SIGTERM/SIGINT stop gracefully: listeners close, messages being
 * committed get their replies, outbound sessions end; everything not yet
 * delivered stays in the spool for the next start. SIGHUP reopens the
 * event log (rotation).
 */
#include "config.h"
#include "egress.h"
#include "err.h"
#include "events.h"
#include "ingress.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "queue.h"
#include "resolver.h"
#include "spool.h"
#include "spool_waiter.h"
#include "transport_dpdk.h"
#include "transport_uring.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_CONFIG 78 /* sysexits EX_CONFIG */

static volatile sig_atomic_t stop_requested, reopen_requested;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reopen_requested = 1;
	else
		stop_requested = 1;
}

struct daemon {
	struct sl_config *cfg;
	struct loop *loop;
	struct transport_uring *tu;
	struct transport_dpdk *td; /* NULL: no pool uses dpdk */
	struct metrics *metrics;
	struct events *events;
	struct spool *spool;
	struct resolver *resolver;
	struct queue *queue;
	struct egress *egress;
	struct ingress *ingress;
	struct uring_listener *metrics_listener;
	struct loop_op op_spool, op_dns;
	uint64_t spool_ev;
	uint64_t events_flushed_ms;
	int64_t *g_msgs, *g_ready, *g_active, *g_deferred;
};

/* --- spool completions and DNS readiness -------------------------------- */

static void arm_spool_read(struct daemon *d)
{
	struct io_uring_sqe *sqe = loop_sqe(d->loop, &d->op_spool);

	io_uring_prep_read(sqe, spool_event_fd(d->spool), &d->spool_ev, sizeof d->spool_ev, 0);
}

static void reap_spool(struct daemon *d)
{
	struct spool_op *ops[256];
	size_t n;

	while ((n = spool_reap(d->spool, ops, 256)) > 0)
		for (size_t i = 0; i < n; i++) {
			struct spool_waiter *w = ops[i]->ctx;

			w->done(w, ops[i]);
		}
}

static void on_spool_event(struct loop_op *op, int res, uint32_t flags)
{
	struct daemon *d = (struct daemon *)((char *)op - offsetof(struct daemon, op_spool));

	(void)res;
	(void)flags;
	reap_spool(d);
	arm_spool_read(d);
}

static void arm_dns_poll(struct daemon *d)
{
	struct io_uring_sqe *sqe = loop_sqe(d->loop, &d->op_dns);

	io_uring_prep_poll_add(sqe, resolver_fd(d->resolver), POLLIN);
}

static void on_dns_event(struct loop_op *op, int res, uint32_t flags)
{
	struct daemon *d = (struct daemon *)((char *)op - offsetof(struct daemon, op_dns));

	(void)res;
	(void)flags;
	resolver_process(d->resolver);
	arm_dns_poll(d);
}

/* --- metrics endpoint --------------------------------------------------- */

struct http_conn {
	struct daemon *d;
	struct conn *c;
	struct sl_buf req, resp;
	bool done;
};

static void http_recv(void *ctx, const char *data, size_t len)
{
	struct http_conn *h = ctx;
	int rc;

	if (h->done)
		return;
	if (len == 0 || sl_buf_append(&h->req, data, len) < 0) {
		rc = -1;
	} else {
		rc = metrics_http_respond(h->d->metrics, h->req.data, h->req.len, &h->resp);
		if (rc == 0)
			return;
	}
	h->done = true;
	if (rc > 0 && conn_send(h->c, h->resp.data, h->resp.len) == 0)
		return; /* closed once drained */
	conn_close(h->c);
	sl_buf_free(&h->req);
	sl_buf_free(&h->resp);
	free(h);
}

static void http_drained(void *ctx)
{
	struct http_conn *h = ctx;

	if (!h->done)
		return;
	conn_close(h->c);
	sl_buf_free(&h->req);
	sl_buf_free(&h->resp);
	free(h);
}

static void http_error(void *ctx, int err)
{
	struct http_conn *h = ctx;

	(void)err;
	conn_close(h->c);
	sl_buf_free(&h->req);
	sl_buf_free(&h->resp);
	free(h);
}

static const struct conn_handler http_handler = {
	.on_recv = http_recv,
	.on_error = http_error,
	.on_drained = http_drained,
};

static void http_accept(void *ctx, struct conn *c, const struct sockaddr *peer, socklen_t len)
{
	struct http_conn *h = calloc(1, sizeof *h);

	(void)peer;
	(void)len;
	if (!h) {
		conn_close(c);
		return;
	}
	h->d = ctx;
	h->c = c;
	conn_start(c, &http_handler, h);
}

/* --- the loop ----------------------------------------------------------- */

static void idle_hook(void *arg)
{
	struct daemon *d = arg;
	struct queue_stats st;

	if (d->td)
		transport_dpdk_poll(d->td);
	egress_tick(d->egress);
	queue_stats(d->queue, &st);
	*d->g_msgs = (int64_t)st.messages;
	*d->g_ready = (int64_t)st.ready;
	*d->g_active = (int64_t)st.active;
	*d->g_deferred = (int64_t)st.deferred;
	/* The event log is written in chunks: every 50 ms (or at 64 KiB, by
	 * events_write itself), not once per loop iteration. */
	if (d->events && loop_now_ms(d->loop) - d->events_flushed_ms >= 50) {
		events_flush(d->events);
		d->events_flushed_ms = loop_now_ms(d->loop);
	}
}

/* The DPDK port, when a pool uses it; after the spool and resolver, so
 * their threads keep the CPU affinity EAL gives this one. */
static int start_dpdk(struct daemon *d)
{
	const struct sl_config *cfg = d->cfg;
	char err[512] = "";
	uint8_t mac[6];
	int rc;

	for (size_t i = 0; i < cfg->n_pools; i++) {
		if (cfg->pools[i].transport != SL_TRANSPORT_DPDK)
			continue;
		if (!d->td) {
			rc = transport_dpdk_create(d->loop, cfg, d->metrics, &d->td, err, sizeof err);
			if (rc < 0) {
				sl_err("%s", err[0] ? err : sl_strerror(rc));
				return rc;
			}
			transport_dpdk_mac(d->td, mac);
			sl_info("dpdk: port up, MAC %02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
				mac[2], mac[3], mac[4], mac[5]);
		}
		egress_set_pool_transport(d->egress, i, transport_dpdk_base(d->td));
		sl_info("pool %s: transport dpdk", cfg->pools[i].name);
	}
	return 0;
}

static int daemon_start(struct daemon *d)
{
	const struct sl_config *cfg = d->cfg;
	struct queue_env qenv;
	struct ingress_env ienv;
	char err[512] = "";
	int rc;

	if ((rc = metrics_create(&d->metrics)) < 0)
		return rc;
	d->g_msgs = metrics_gauge(d->metrics, "sluice_queue_messages", "Messages in the spool", "");
	d->g_ready = metrics_gauge(d->metrics, "sluice_queue_ready", "Deliveries ready to go", "");
	d->g_active = metrics_gauge(d->metrics, "sluice_queue_active", "Deliveries in progress", "");
	d->g_deferred = metrics_gauge(d->metrics, "sluice_queue_deferred",
				      "Deliveries waiting for a retry", "");
	if (!d->g_msgs || !d->g_ready || !d->g_active || !d->g_deferred)
		return -ENOMEM;
	if (cfg->events_path && (rc = events_open(cfg->events_path, &d->events)) < 0) {
		sl_err("event log %s: %s", cfg->events_path, sl_strerror(rc));
		return rc;
	}
	rc = spool_open(cfg->spool.path, cfg->spool.map_size, cfg->spool.sync,
			cfg->spool.commit_batch, &d->spool);
	if (rc < 0) {
		sl_err("spool %s: %s", cfg->spool.path, sl_strerror(rc));
		return rc;
	}
	if ((rc = loop_create(4096, &d->loop)) < 0) {
		sl_err("io_uring: %s", sl_strerror(rc));
		return rc;
	}
	if ((rc = transport_uring_create(d->loop, &d->tu)) < 0)
		return rc;
	rc = resolver_create(cfg->dns.servers, cfg->dns.server_lens, cfg->dns.n_servers,
			     &d->resolver);
	if (rc < 0) {
		sl_err("resolver: %s", sl_strerror(rc));
		return rc;
	}
	rc = egress_create(d->loop, transport_uring_base(d->tu), d->resolver, cfg, d->metrics,
			   &d->egress, err, sizeof err);
	if (rc < 0) {
		sl_err("egress: %s", err[0] ? err : sl_strerror(rc));
		return rc;
	}
	if ((rc = start_dpdk(d)) < 0)
		return rc;
	qenv = (struct queue_env){ .loop = d->loop, .spool = d->spool, .events = d->events,
				   .metrics = d->metrics, .cfg = cfg,
				   .hooks = { .kick = egress_kick, .forget = egress_forget,
					      .ctx = d->egress } };
	if ((rc = queue_create(&qenv, &d->queue)) < 0)
		return rc;
	egress_set_queue(d->egress, d->queue);
	d->op_spool.cb = on_spool_event;
	d->op_dns.cb = on_dns_event;
	arm_spool_read(d);
	arm_dns_poll(d);
	rc = queue_recover(d->queue);
	if (rc < 0) {
		sl_err("spool %s: recovering the queue: %s", cfg->spool.path, sl_strerror(rc));
		return rc;
	}
	sl_info("recovered %d message(s) from the spool %s", rc, cfg->spool.path);
	ienv = (struct ingress_env){ .loop = d->loop, .tu = d->tu, .spool = d->spool,
				     .queue = d->queue, .metrics = d->metrics,
				     .events = d->events, .cfg = cfg };
	rc = ingress_create(&ienv, &d->ingress, err, sizeof err);
	if (rc < 0) {
		sl_err("%s", err[0] ? err : sl_strerror(rc));
		return rc;
	}
	rc = transport_uring_listen(d->tu, (const struct sockaddr *)&cfg->metrics_addr,
				    cfg->metrics_addr_len, http_accept, d, &d->metrics_listener);
	if (rc < 0) {
		sl_err("metrics listener: %s", sl_strerror(rc));
		return rc;
	}
	loop_set_idle_hook(d->loop, idle_hook, d);
	return 0;
}

static void daemon_stop(struct daemon *d)
{
	if (d->ingress) {
		ingress_shutdown(d->ingress);
		/* Answer every message whose commit is under way. */
		for (int i = 0; i < 500 && !ingress_idle(d->ingress); i++)
			loop_run_once(d->loop, 10);
	}
	if (d->egress)
		egress_shutdown(d->egress);
	if (d->metrics_listener)
		transport_uring_listener_close(d->metrics_listener);
	if (d->loop)
		for (int i = 0; i < 5; i++)
			loop_run_once(d->loop, 1);
	if (d->spool) {
		/* Let the queue's last writes land before the writer stops. */
		spool_close(d->spool);
		d->spool = NULL;
	}
	ingress_destroy(d->ingress);
	queue_destroy(d->queue);
	egress_destroy(d->egress);
	transport_dpdk_destroy(d->td);
	if (d->resolver)
		resolver_destroy(d->resolver);
	transport_uring_destroy(d->tu);
	loop_destroy(d->loop);
	if (d->events)
		events_close(d->events);
	metrics_destroy(d->metrics);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: sluiced [-c FILE] [-n] [-v]\n"
		   "  -c FILE  configuration file (default /etc/sluice/sluice.yaml)\n"
		   "  -n       check the configuration and exit\n"
		   "  -v       verbose (debug) logging\n");
}

int main(int argc, char **argv)
{
	const char *path = "/etc/sluice/sluice.yaml";
	struct daemon d = { 0 };
	bool check = false;
	char err[1024];
	int opt, rc;

	while ((opt = getopt(argc, argv, "c:nvh")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'n': check = true; break;
		case 'v': sl_log_set_level(SL_LOG_DEBUG); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	rc = config_load(path, &d.cfg, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "sluiced: %s\n", err[0] ? err : sl_strerror(rc));
		return EXIT_CONFIG;
	}
	if (check) {
		printf("%s: OK\n", path);
		config_free(d.cfg);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_signal);
	rc = daemon_start(&d);
	if (rc < 0) {
		daemon_stop(&d);
		config_free(d.cfg);
		return 1;
	}
	sl_info("sluiced ready: %zu listener(s), %zu pool(s), spool %s", d.cfg->n_listeners,
		d.cfg->n_pools, d.cfg->spool.path);
	while (!stop_requested) {
		rc = loop_run_once(d.loop, d.td ? transport_dpdk_wait_ms(d.td) : 200);
		if (rc < 0) {
			sl_err("event loop: %s", sl_strerror(rc));
			break;
		}
		if (reopen_requested && d.events) {
			reopen_requested = 0;
			events_reopen(d.events);
		}
	}
	sl_info("sluiced stopping");
	daemon_stop(&d);
	config_free(d.cfg);
	return rc < 0 ? 1 : 0;
}
