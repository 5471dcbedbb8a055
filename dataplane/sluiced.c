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
 * event log (rotation) and reloads the shaping rules, the providers table
 * and the warm-up schedules (each checked in full first: a bad file keeps
 * the old rules and logs FILE:LINE) and the link_check blocklist.
 */
#include "api.h"
#include "api_dataplane.h"
#include "config.h"
#include "control_seed.h"
#include "egress.h"
#include "err.h"
#include "events.h"
#include "dnsbl.h"
#include "fcrdns.h"
#include "ingress.h"
#include "json.h"
#include "link_guard.h"
#include "log.h"
#include "loop.h"
#include "mailbox.h"
#include "metrics.h"
#include "queue.h"
#include "reputation.h"
#include "resolver.h"
#include "sendauth.h"
#include "accept.h"
#include "dkim.h"
#include "spool.h"
#include "spool_waiter.h"
#include "supervisor.h"
#include "store.h"
#include "tenant_view.h"
#include "transport_dpdk.h"
#include "transport_uring.h"
#include "warmup.h"
#include "warmup_db.h"
#include "warmup_gate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
	struct supervisor supervisor;
	struct loop_op op_spool, op_dns;
	uint64_t spool_ev;
	uint64_t events_flushed_ms;
	int64_t *g_msgs, *g_ready, *g_active, *g_deferred, *g_held;
	/* Warm-up (warmup.schedules): schedules, gate, state file. */
	struct warmup_config *warmup;
	struct warmup_gate *gate;
	struct warmup_db *wdb;
	struct fcrdns *fcrdns; /* rDNS of the source IPs, checked at start */
	struct dnsbl *dnsbl;   /* DNSBL self-check of the source IPs (NULL: off) */
	struct link_guard *links; /* outbound link checking (NULL: off) */
	uint64_t warm_flushed_ms, warm_polled_ms, warm_applied;
	uint64_t warm_origin_wall, warm_origin_mono; /* the warm-up clock's start */
	/* The control plane (control: section). */
	struct mailbox *mailbox;
	struct store *store;
	struct api *api;
	struct api_dataplane dp;
	struct tenant_view *tview;   /* loop thread only */
	pthread_mutex_t tview_mu;    /* API threads: one view load + post at a time */
	struct reputation *rep;      /* bounces: section (NULL: none) */
	struct sendauth *sendauth;   /* sender_auth: section (NULL: none) */
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

/* --- warm-up state and operator commands -------------------------------- */

#define WARM_FLUSH_MS 1000 /* state records are written this often */
#define WARM_POLL_MS 200   /* operator commands are looked for this often */

/* Write the states that changed (all: every one) in one transaction. */
static void warm_flush(struct daemon *d, bool all)
{
	size_t n = warmup_gate_count(d->gate), got;
	struct warmup_record *r;
	int rc;

	if (!n || !(r = calloc(n, sizeof *r)))
		return;
	got = warmup_gate_export(d->gate, warmup_gate_clock(d->gate, loop_now_ms(d->loop)), all,
				 r, n);
	if (got && (rc = warmup_db_put_states(d->wdb, r, got)) < 0)
		sl_err("warm-up state: %s", sl_strerror(rc));
	free(r);
}

/* Apply the operator commands queued since the last one applied. */
static void warm_poll(struct daemon *d)
{
	struct warmup_command c[32];
	uint64_t seq;
	size_t n;
	bool any = false;
	int rc;

	if (warmup_db_command_seq(d->wdb, &seq) < 0 || seq <= d->warm_applied)
		return;
	while (warmup_db_commands_after(d->wdb, d->warm_applied, c, 32, &n) == 0 && n) {
		uint64_t now = d->loop ? warmup_gate_clock(d->gate, loop_now_ms(d->loop)) : 0;

		for (size_t i = 0; i < n; i++) {
			rc = warmup_gate_command(d->gate, &c[i], now);
			if (rc < 0)
				sl_warn("warm-up command %llu (%s %s %s): %s",
					(unsigned long long)c[i].seq, warmup_action_name(c[i].action),
					c[i].ip, c[i].provider, sl_strerror(rc));
			else
				sl_info("warm-up: %s %s %s (by %s)", warmup_action_name(c[i].action),
					c[i].ip, c[i].provider, c[i].actor);
			d->warm_applied = c[i].seq;
			any = true;
		}
	}
	if (any) {
		warm_flush(d, false);
		warmup_db_set_applied(d->wdb, d->warm_applied);
		egress_kick_all(d->egress);
	}
}

static void warm_tick(struct daemon *d)
{
	uint64_t now = loop_now_ms(d->loop);

	if (!d->gate)
		return;
	if (now - d->warm_polled_ms >= WARM_POLL_MS) {
		d->warm_polled_ms = now;
		warm_poll(d);
	}
	if (now - d->warm_flushed_ms >= WARM_FLUSH_MS) {
		d->warm_flushed_ms = now;
		warm_flush(d, false);
	}
}

/* The gate over the pools, its saved state and pending commands. */
static int warm_start(struct daemon *d)
{
	const struct sl_config *cfg = d->cfg;
	char path[4096];
	struct warmup_record *r;
	size_t n;
	struct timespec ts;
	uint64_t wall, mono;
	int rc;

	if (!d->warmup)
		return 0;
	/* The clock's origin: both clocks read now (the loop's cached
	 * monotonic time may be a while old here). */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	mono = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	wall = loop_wall_ms();
	d->warm_origin_wall = wall;
	d->warm_origin_mono = mono;
	rc = warmup_gate_create(d->warmup, cfg, cfg->warmup_clock_scale, wall, mono, &d->gate);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof path, "%s/%s", cfg->spool.path, WARMUP_DB_FILE);
	if ((rc = warmup_db_open(path, cfg->spool.sync, &d->wdb)) < 0) {
		sl_err("warm-up state %s: %s", path, sl_strerror(rc));
		return rc;
	}
	if ((rc = warmup_db_states(d->wdb, &r, &n)) < 0) {
		sl_err("warm-up state %s: %s", path, sl_strerror(rc));
		return rc;
	}
	for (size_t i = 0; i < n; i++)
		warmup_gate_restore(d->gate, &r[i]);
	free(r);
	warmup_db_applied(d->wdb, &d->warm_applied);
	warm_poll(d);
	egress_set_warmup(d->egress, d->gate);
	if (cfg->warmup_clock_scale != 1)
		sl_warn("warm-up: TEST CLOCK x%u from wall %llu ms (monotonic %llu ms)",
			cfg->warmup_clock_scale, (unsigned long long)wall,
			(unsigned long long)mono);
	sl_info("warm-up: %zu saved state(s) from %s", n, path);
	return 0;
}

/* SIGHUP: the warm-up schedules again. The new gate takes over every
 * state of the old one (days, today's and this hour's counts, pauses) on
 * the same clock; a file that does not load keeps the old schedules. */
static void warm_reload(struct daemon *d)
{
	struct warmup_config *wc;
	struct warmup_gate *g;
	struct warmup_record *r = NULL;
	size_t n, got = 0;
	char err[1024] = "";
	int rc;

	if (!d->gate || !d->cfg->warmup_schedules)
		return;
	rc = warmup_load(d->cfg->warmup_schedules, &wc, err, sizeof err);
	if (rc < 0) {
		sl_err("reload: %s (keeping the old warm-up schedules)",
		       err[0] ? err : sl_strerror(rc));
		return;
	}
	rc = warmup_gate_create(wc, d->cfg, d->cfg->warmup_clock_scale, d->warm_origin_wall,
				d->warm_origin_mono, &g);
	if (rc < 0) {
		sl_err("reload: warm-up: %s (keeping the old schedules)", sl_strerror(rc));
		warmup_free(wc);
		return;
	}
	n = warmup_gate_count(d->gate);
	if (n && (r = calloc(n, sizeof *r)))
		got = warmup_gate_export(d->gate, warmup_gate_clock(d->gate, loop_now_ms(d->loop)),
					 true, r, n);
	if (n && !r) {
		sl_err("reload: warm-up: %s (keeping the old schedules)", sl_strerror(-ENOMEM));
		warmup_gate_destroy(g);
		warmup_free(wc);
		return;
	}
	/* The export cleared the change marks: the states are written with
	 * the new gate's next flush (restore marks nothing), so save now. */
	if (got && (rc = warmup_db_put_states(d->wdb, r, got)) < 0)
		sl_err("warm-up state: %s", sl_strerror(rc));
	for (size_t i = 0; i < got; i++)
		warmup_gate_restore(g, &r[i]);
	free(r);
	egress_set_warmup(d->egress, g);
	warmup_gate_destroy(d->gate);
	warmup_free(d->warmup);
	d->gate = g;
	d->warmup = wc;
	sl_info("reload: warm-up schedules from %s", d->cfg->warmup_schedules);
}

/* SIGHUP: shaping rules, providers, warm-up schedules. */
static void daemon_reload(struct daemon *d)
{
	char err[1024] = "";
	int rc;

	rc = egress_reload(d->egress, err, sizeof err);
	if (rc < 0)
		sl_err("reload: %s (keeping the old shaping rules)", err[0] ? err : sl_strerror(rc));
	else
		sl_info("reload: shaping rules %s, providers %s",
			d->cfg->shaping_rules ? d->cfg->shaping_rules : "(none)",
			d->cfg->shaping_providers ? d->cfg->shaping_providers : "(none)");
	warm_reload(d);
	if (d->links) {
		rc = link_guard_reload(d->links, err, sizeof err);
		if (rc < 0)
			sl_err("reload: %s (keeping the old link blocklist)",
			       err[0] ? err : sl_strerror(rc));
		else if (d->cfg->link_check.blocklist)
			sl_info("reload: link blocklist %s: %zu domain(s)", d->cfg->link_check.blocklist,
				link_guard_blocklist_count(d->links));
	}
}

/* --- source IPs: forward-confirmed rDNS, `sluicectl ip list` ----------- */

static void fcrdns_done(void *ctx, const struct fcrdns_result *r)
{
	(void)ctx;
	if (r->status == FCRDNS_OK)
		sl_info("rDNS of %s (pool %s): %s, forward-confirmed", r->ip, r->pool, r->rdns);
	else
		sl_warn("rDNS of %s (pool %s, EHLO %s): %s: %s", r->ip, r->pool, r->ehlo,
			fcrdns_status_name(r->status), r->why);
}

/* An (IP, zone) pair of the DNSBL self-check changed: pause or resume the
 * IP (only the check's own pause), alarm, event, metric. */
static void dnsbl_changed(void *ctx, const struct dnsbl_ip *ip, const char *zone, bool listed,
			  const char *answer)
{
	struct daemon *d = ctx;
	struct sl_buf lb = { 0 };
	char text[400];
	size_t n;

	sl_buf_appendf(&lb, "ip=\"%s\",zone=\"", ip->ip);
	metrics_label_escape(&lb, zone);
	if (sl_buf_append(&lb, "\"", 2) == 0) {
		int64_t *g = metrics_gauge(d->metrics, "sluice_ip_blocklisted",
					   "1 while the DNSBL self-check finds the source IP listed",
					   lb.data);

		if (g)
			*g = listed;
	}
	sl_buf_free(&lb);
	n = egress_pause_ip(d->egress, (const struct sockaddr *)&ip->addr, ip->listed_any);
	if (listed) {
		snprintf(text, sizeof text, "source IP %s is listed in %s (%s): paused", ip->ip, zone,
			 answer);
		sl_err("dnsbl: %s for every provider (%zu pool IP(s))", text, n);
	} else {
		snprintf(text, sizeof text, "source IP %s is no longer listed in %s%s", ip->ip, zone,
			 ip->listed_any ? "; still listed elsewhere, stays paused" : ": resumed");
		sl_info("dnsbl: %s", text);
	}
	if (d->events)
		events_write(d->events,
			     &(struct event_outcome){ .kind = listed ? EVENT_IP_BLOCKLISTED :
								       EVENT_IP_DELISTED,
						      .time_ms = loop_wall_ms(), .source_ip = ip->ip,
						      .site = zone, .response = text });
}

/* api_dataplane.tls_json, on the loop thread. */
static int tls_json(void *daemon, struct sl_buf *out)
{
	return egress_tls_json(((struct daemon *)daemon)->egress, out);
}

/* api_dataplane.ips_json, on the loop thread. */
static int ips_json(void *daemon, struct sl_buf *out)
{
	struct daemon *d = daemon;

	sl_buf_append(out, "[", 1);
	for (size_t i = 0; i < fcrdns_count(d->fcrdns); i++) {
		const struct fcrdns_result *r = fcrdns_get(d->fcrdns, i);
		const struct warmup_ip *w = d->warmup ? warmup_ip_for(d->warmup, r->ip) : NULL;
		char warm[128] = "none";
		const char *bl = "", *bl_why = "";
		struct json_obj o;

		if (w) {
			time_t t = (time_t)(w->start_ms / 1000);
			struct tm tm;

			gmtime_r(&t, &tm);
			snprintf(warm, sizeof warm, "%s from %04d-%02d-%02d",
				 warmup_curve_for(w->schedule, NULL)->schedule,
				 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
		}
		if (i)
			sl_buf_append(out, ",", 1);
		json_obj_begin(&o, out);
		json_obj_str(&o, "pool", r->pool);
		json_obj_str(&o, "ip", r->ip);
		json_obj_str(&o, "ehlo", r->ehlo);
		json_obj_str(&o, "rdns", r->rdns);
		json_obj_str(&o, "fcrdns", fcrdns_status_name(r->status));
		json_obj_str(&o, "why", r->why);
		json_obj_str(&o, "transport", strchr(r->ip, ':') ? "tcp6" : "tcp4");
		json_obj_str(&o, "warmup", warm);
		if (d->dnsbl && !dnsbl_find(d->dnsbl, r->ip, &bl, &bl_why))
			bl_why = "not checked";
		json_obj_str(&o, "dnsbl", d->dnsbl ? (bl[0] ? "listed" : "clean") : "off");
		json_obj_str(&o, "dnsbl_zones", bl);
		json_obj_str(&o, "dnsbl_why", bl_why);
		json_obj_bool(&o, "paused", bl[0] != 0);
		if (json_obj_end(&o) < 0)
			return -ENOMEM;
	}
	return sl_buf_append(out, "]", 1) < 0 ? -ENOMEM : 0;
}

/* --- the tenant view --------------------------------------------------- */

static bool view_may_deliver(void *ctx, const struct spool_msg *m)
{
	struct daemon *d = ctx;

	return tenant_view_msg_may_deliver(d->tview, m->tenant, m->mail_from, m->stream);
}

struct view_msg {
	struct mailbox_msg msg;
	struct daemon *d;
	struct tenant_view *v;
	bool set_keys;            /* sender_auth: replace the verified domains' keys */
	struct dkim_signer *keys;
};

/* Loop thread: adopt the new view; held mail of resumed tenants goes. */
static void view_swap(struct mailbox_msg *m)
{
	struct view_msg *vm = (struct view_msg *)m;
	struct daemon *d = vm->d;

	tenant_view_free(d->tview);
	d->tview = vm->v;
	if (vm->set_keys && d->ingress)
		accept_set_domain_keys(ingress_accept(d->ingress), vm->keys);
	free(vm);
	if (d->queue)
		queue_tenants_changed(d->queue);
}

/* API threads (and the grace timer): a tenant changed in the store; load
 * a fresh view and post it to the loop. Loads and posts are serialised so
 * the loop adopts views in the order they were read. */
static void tenant_changed(void *arg, const char *tenant)
{
	struct daemon *d = ((struct api_dataplane *)arg)->daemon;
	struct view_msg *vm = calloc(1, sizeof *vm);
	int rc;

	reputation_tenant_changed(d->rep, tenant);
	if (!vm)
		goto fail;
	vm->msg.run = view_swap;
	vm->d = d;
	pthread_mutex_lock(&d->tview_mu);
	rc = tenant_view_load(d->store, &vm->v);
	if (rc == 0 && d->sendauth && sendauth_signer_load(d->store, &vm->keys) == 0)
		vm->set_keys = true;
	if (rc == 0 && (rc = mailbox_post(d->mailbox, &vm->msg)) < 0) {
		tenant_view_free(vm->v);
		dkim_signer_destroy(vm->keys);
	}
	pthread_mutex_unlock(&d->tview_mu);
	if (rc == 0)
		return;
	free(vm);
fail:
	sl_warn("tenant %s changed but the data path could not be told", tenant);
}

/* Loop thread (reputation decisions): load a fresh view and adopt it. */
static void tenant_changed_here(void *ctx, const char *tenant)
{
	struct daemon *d = ctx;
	struct tenant_view *v;

	pthread_mutex_lock(&d->tview_mu);
	if (tenant_view_load(d->store, &v) == 0) {
		tenant_view_free(d->tview);
		d->tview = v;
		if (d->queue)
			queue_tenants_changed(d->queue);
	} else {
		sl_warn("tenant %s changed but the data path could not be told", tenant);
	}
	pthread_mutex_unlock(&d->tview_mu);
}

static int reputation_start(struct daemon *d)
{
	struct reputation_env env = { .loop = d->loop, .cfg = d->cfg, .store = d->store,
				      .events = d->events, .metrics = d->metrics,
				      .tenant_changed = tenant_changed_here, .ctx = d };
	char err[512];
	int rc;

	if (!d->cfg->bounces.enabled || !d->store)
		return 0;
	rc = reputation_create(&env, &d->rep, err, sizeof err);
	if (rc < 0) {
		sl_err("bounces: %s", err[0] ? err : sl_strerror(rc));
		return rc;
	}
	egress_set_reputation(d->egress, d->rep);
	sl_info("bounces: VERP return paths @%s", d->cfg->bounces.return_path_domain);
	return 0;
}

static int control_start(struct daemon *d)
{
	const struct sl_control_cfg *ctl = &d->cfg->control;
	char msg[512];
	int rc;

	rc = store_open(ctl->store, 0, d->cfg->spool.sync, &d->store);
	if (rc < 0) {
		sl_err("control store %s: %s", ctl->store, sl_strerror(rc));
		return rc;
	}
	rc = control_seed(d->store, d->cfg, ctl->store, msg, sizeof msg);
	if (rc < 0) {
		sl_err("control store %s: %s", ctl->store, msg[0] ? msg : sl_strerror(rc));
		return rc;
	}
	if (msg[0])
		sl_info("%s", msg);
	if ((rc = tenant_view_load(d->store, &d->tview)) < 0) {
		sl_err("control store %s: %s", ctl->store, sl_strerror(rc));
		return rc;
	}
	return 0;
}

static int api_begin(struct daemon *d)
{
	const struct sl_control_cfg *ctl = &d->cfg->control;
	struct api_config ac = { 0 };
	int rc;

	d->dp = (struct api_dataplane){ .accept = ingress_accept(d->ingress), .queue = d->queue,
					.cfg = d->cfg, .daemon = d, .ips_json = ips_json,
					.tls_json = tls_json,
					.rep = d->rep };
	if (d->cfg->sender_auth.enabled) {
		char err[256];

		/* domains re-checked in the background republish the view */
		rc = sendauth_start(d->cfg, d->store, tenant_changed, &d->dp, &d->sendauth, err,
				    sizeof err);
		if (rc < 0) {
			sl_err("sender_auth: %s", err[0] ? err : sl_strerror(rc));
			return rc;
		}
		d->dp.domains = sendauth_domains_env(d->sendauth);
		d->dp.verification = sendauth_verification(d->sendauth);
		d->dp.tenants = &d->tview;
		{
			struct dkim_signer *keys;

			if (sendauth_signer_load(d->store, &keys) == 0)
				accept_set_domain_keys(ingress_accept(d->ingress), keys);
		}
		if (d->rep)
			reputation_set_verification(d->rep, d->dp.verification);
	}
	ac = (struct api_config){ .address = ctl->api_address, .tls_cert = ctl->api_tls_cert,
				  .tls_key = ctl->api_tls_key, .mailbox = d->mailbox,
				  .daemon = &d->dp, .tenant_changed = tenant_changed };
	rc = api_start(&ac, d->store, &d->api);
	if (rc < 0) {
		sl_err("admin API %s: %s", ctl->api_address, sl_strerror(rc));
		return rc;
	}
	sl_info("admin API on %s%s", ctl->api_address, ctl->api_tls_cert ? " (TLS)" : "");
	return 0;
}

/* --- the loop ----------------------------------------------------------- */

static void idle_hook(void *arg)
{
	struct daemon *d = arg;
	struct queue_stats st;

	if (d->td)
		transport_dpdk_poll(d->td);
	egress_tick(d->egress);
	reputation_tick(d->rep);
	supervisor_tick(&d->supervisor, loop_now_ms(d->loop));
	dnsbl_tick(d->dnsbl, loop_now_ms(d->loop));
	warm_tick(d);
	queue_stats(d->queue, &st);
	*d->g_msgs = (int64_t)st.messages;
	*d->g_ready = (int64_t)st.ready;
	*d->g_active = (int64_t)st.active;
	*d->g_deferred = (int64_t)st.deferred;
	*d->g_held = (int64_t)st.held;
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
	bool threaded, rss;
	unsigned n;
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
			n = transport_dpdk_workers(d->td, &threaded, &rss);
			if (threaded && n != cfg->dpdk.workers)
				sl_warn("dpdk: the port has %u queue pair(s): %u worker(s), not %u", n,
					n, cfg->dpdk.workers);
			if (threaded)
				sl_info("dpdk: %u worker lcore(s), %s", n,
					rss ? "source ports follow the port's RSS hash"
					    : "no RSS key: frames reach their worker by hand-over");
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
	d->g_held = metrics_gauge(d->metrics, "sluice_queue_held",
				  "Deliveries kept: tenant on hold or configuration set paused", "");
	if (!d->g_msgs || !d->g_ready || !d->g_active || !d->g_deferred || !d->g_held)
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
	if ((rc = mailbox_create(d->loop, &d->mailbox)) < 0) {
		sl_err("mailbox: %s", sl_strerror(rc));
		return rc;
	}
	if (cfg->control.enabled && (rc = control_start(d)) < 0)
		return rc;
	if ((rc = transport_uring_create(d->loop, &d->tu)) < 0)
		return rc;
	rc = resolver_create(cfg->dns.servers, cfg->dns.server_lens, cfg->dns.n_servers,
			     &d->resolver);
	if (rc < 0) {
		sl_err("resolver: %s", sl_strerror(rc));
		return rc;
	}
	/* DNSSEC validation with the configured trust anchor; TLSA lookups
	 * for DANE (docs/dane.md). */
	if (cfg->dns.trust_anchor_file &&
	    (rc = resolver_set_trust_anchor_file(d->resolver, cfg->dns.trust_anchor_file)) < 0) {
		sl_err("dns.trust_anchor_file %s: %s", cfg->dns.trust_anchor_file, sl_strerror(rc));
		return rc;
	}
	resolver_set_tlsa(d->resolver, cfg->delivery.dane);
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
				   .stuck_age_ms = cfg->delivery.stuck_age_ms,
				   .stuck_deferrals = cfg->delivery.stuck_deferrals,
				   .hooks = { .kick = egress_kick, .forget = egress_forget,
					      .ctx = d->egress } };
	if (d->store) {
		qenv.hooks.may_deliver = view_may_deliver;
		qenv.hooks.tenant_ctx = d;
	}
	if ((rc = queue_create(&qenv, &d->queue)) < 0)
		return rc;
	egress_set_queue(d->egress, d->queue);
	if ((rc = warm_start(d)) < 0)
		return rc;
	if ((rc = reputation_start(d)) < 0)
		return rc;
	d->op_spool.cb = on_spool_event;
	d->op_dns.cb = on_dns_event;
	arm_spool_read(d);
	arm_dns_poll(d);
	if ((rc = fcrdns_start(d->resolver, cfg, fcrdns_done, d, &d->fcrdns)) < 0)
		return rc;
	if (cfg->dnsbl.enabled &&
	    (rc = dnsbl_create(d->resolver, cfg, dnsbl_changed, d, &d->dnsbl)) < 0)
		return rc;
	if (cfg->link_check.enabled) {
		struct link_guard_env lenv = { .loop = d->loop, .resolver = d->resolver, .cfg = cfg,
					       .metrics = d->metrics, .events = d->events,
					       .store = d->store, .tenant_changed = tenant_changed_here,
					       .ctx = d };

		rc = link_guard_create(&lenv, &d->links, err, sizeof err);
		if (rc < 0) {
			sl_err("link_check: %s", err[0] ? err : sl_strerror(rc));
			return rc;
		}
		sl_info("link_check: action %s, %zu blocklisted domain(s), %zu URI blocklist(s)",
			cfg->link_check.action == SL_LINK_HOLD  ? "hold" :
			cfg->link_check.action == SL_LINK_LOG ? "log" : "reject",
			link_guard_blocklist_count(d->links), cfg->link_check.n_uribl_zones);
	}
	rc = queue_recover(d->queue);
	if (rc < 0) {
		sl_err("spool %s: recovering the queue: %s", cfg->spool.path, sl_strerror(rc));
		return rc;
	}
	sl_info("recovered %d message(s) from the spool %s", rc, cfg->spool.path);
	ienv = (struct ingress_env){ .loop = d->loop, .tu = d->tu, .spool = d->spool,
				     .queue = d->queue, .metrics = d->metrics,
				     .events = d->events, .cfg = cfg, .store = d->store,
				     .tenants = d->store ? &d->tview : NULL, .rep = d->rep,
				     .links = d->links };
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
	if (d->store && (rc = api_begin(d)) < 0)
		return rc;
	loop_set_idle_hook(d->loop, idle_hook, d);
	return 0;
}

static void daemon_stop(struct daemon *d)
{
	if (d->api) {
		/* Handlers may wait on the loop (mailbox): keep it running while
		 * they finish, then refuse further calls and stop the server. */
		api_quiesce(d->api);
		for (int i = 0; i < 500 && api_active(d->api); i++)
			loop_run_once(d->loop, 10);
	}
	if (d->mailbox)
		mailbox_close(d->mailbox);
	api_stop(d->api);
	d->api = NULL;
	if (d->ingress) {
		ingress_shutdown(d->ingress);
		/* Answer every message whose commit is under way. */
		for (int i = 0; i < 500 && !ingress_idle(d->ingress); i++)
			loop_run_once(d->loop, 10);
	}
	if (d->egress)
		egress_shutdown(d->egress);
	/* Suppression writes under way land; inbound answers go out. */
	for (int i = 0; i < 500 && reputation_inbound_pending(d->rep); i++)
		loop_run_once(d->loop, 10);
	if (d->wdb) {
		warm_flush(d, true);
		warmup_db_close(d->wdb);
	}
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
	if (d->egress)
		egress_set_reputation(d->egress, NULL);
	reputation_destroy(d->rep); /* answers what is still pending: before its sessions go */
	sendauth_stop(d->sendauth); /* after the API and the inbound listener: both use it */
	link_guard_destroy(d->links); /* checks still waiting: their sessions are answered */
	ingress_destroy(d->ingress);
	queue_destroy(d->queue);
	egress_destroy(d->egress);
	warmup_gate_destroy(d->gate);
	warmup_free(d->warmup);
	transport_dpdk_destroy(d->td);
	fcrdns_destroy(d->fcrdns);
	dnsbl_destroy(d->dnsbl);
	if (d->resolver)
		resolver_destroy(d->resolver);
	transport_uring_destroy(d->tu);
	mailbox_destroy(d->mailbox);
	loop_destroy(d->loop);
	tenant_view_free(d->tview);
	if (d->store)
		store_close(d->store);
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

/*
 * Keep freed heap memory instead of handing it back to the kernel at once.
 * The spool's writer allocates a body-sized dirty buffer per message in
 * LMDB and frees the whole batch after the commit; with glibc's defaults
 * the arena's top is trimmed (and bodies past 128 KiB are mmapped) every
 * time, so each new batch page-faults its memory in again: 3/5 of the CPU
 * of a 100 KiB message. Allocations up to MALLOC_MMAP_MAX
 * come from the heap, and up to MALLOC_TRIM_KEEP free bytes stay mapped.
 */
#define MALLOC_MMAP_MAX (32 << 20)
#define MALLOC_TRIM_KEEP (128 << 20)

static void tune_malloc(void)
{
	mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_MAX);
	mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_KEEP);
}

int main(int argc, char **argv)
{
	const char *path = "/etc/sluice/sluice.yaml";
	struct daemon d = { .tview_mu = PTHREAD_MUTEX_INITIALIZER };
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
	if (d.cfg->warmup_schedules) {
		rc = warmup_load(d.cfg->warmup_schedules, &d.warmup, err, sizeof err);
		if (rc < 0) {
			fprintf(stderr, "sluiced: %s\n", err[0] ? err : sl_strerror(rc));
			config_free(d.cfg);
			return EXIT_CONFIG;
		}
	}
	if (check) {
		printf("%s: OK\n", path);
		warmup_free(d.warmup);
		config_free(d.cfg);
		return 0;
	}
	tune_malloc();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_signal);
	supervisor_init(&d.supervisor);
	rc = daemon_start(&d);
	if (rc < 0) {
		daemon_stop(&d);
		config_free(d.cfg);
		return 1;
	}
	snprintf(err, sizeof err, "%zu listener(s), %zu pool(s), spool %s", d.cfg->n_listeners,
		 d.cfg->n_pools, d.cfg->spool.path);
	sl_info("sluiced ready: %s", err);
	supervisor_ready(&d.supervisor, err);
	while (!stop_requested) {
		rc = loop_run_once(d.loop, d.td ? transport_dpdk_wait_ms(d.td) : 200);
		if (rc < 0) {
			sl_err("event loop: %s", sl_strerror(rc));
			break;
		}
		if (reopen_requested) {
			reopen_requested = 0;
			if (d.events)
				events_reopen(d.events);
			daemon_reload(&d);
		}
	}
	sl_info("sluiced stopping");
	supervisor_stopping(&d.supervisor);
	daemon_stop(&d);
	config_free(d.cfg);
	return rc < 0 ? 1 : 0;
}
