/* link_guard.c — outbound link checking at acceptance; see link_guard.h. */
#include "link_guard.h"

#include "err.h"
#include "events.h"
#include "json.h"
#include "link_check.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "resolver.h"
#include "store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_RECENT 32           /* (tenant, host) pairs remembered */
#define AUDIT_QUIET_MS (60 * 1000) /* one audit entry per pair this often */

struct audit_recent {
	uint64_t at_ms;
	char tenant[64];
	char host[LINK_HOST_LEN];
};

struct link_guard {
	struct link_guard_env env;
	const struct sl_link_check_cfg *lc;
	struct link_blocklist *bl;
	struct link_guard_check *pending; /* checks waiting for DNS */
	/* One message is scanned at a time (the loop thread): its hosts and
	 * the decoded part, allocated once. */
	struct link_scan scan;
	char *scratch; /* lc->max_scan + 1 bytes */
	/* The audit entry is a store commit (an fsync) on the loop thread: a
	 * tenant hammering one listed link gets one a minute, not one per
	 * message (the event log has every hit). */
	struct audit_recent recent[AUDIT_RECENT];
	size_t recent_next;
	uint64_t *c_checks, *c_timeouts, *c_dns_errors;
};

struct lookup {
	struct link_guard_check *chk;
	uint64_t handle; /* 0: answered */
	size_t zone;
	char host[LINK_HOST_LEN];
	char name[LINK_HOST_LEN + 256];
};

struct link_guard_check {
	struct link_guard *g;
	struct link_guard_req *rq;
	struct link_guard_check *prev, *next;
	struct loop_timer timer;
	struct lookup *lookups;
	size_t n_lookups, outstanding;
};

static const char *action_name(enum sl_link_action a)
{
	return a == SL_LINK_HOLD ? "hold" : a == SL_LINK_LOG ? "log" : "reject";
}

static void bump(uint64_t *c)
{
	if (c)
		(*c)++;
}

static void audit(struct link_guard *g, const struct link_guard_req *rq, const char *qid,
		  const char *host, const char *list, const char *answer, const char *text)
{
	struct store_audit e = { 0 };
	struct sl_buf b = { 0 };
	struct json_obj o;

	uint64_t now = loop_wall_ms();

	if (!g->env.store)
		return;
	for (size_t i = 0; i < AUDIT_RECENT; i++) {
		struct audit_recent *r = &g->recent[i];

		if (r->at_ms && now - r->at_ms < AUDIT_QUIET_MS && !strcmp(r->host, host) &&
		    !strncmp(r->tenant, rq->tenant, sizeof r->tenant))
			return;
	}
	g->recent[g->recent_next] = (struct audit_recent){ .at_ms = now };
	snprintf(g->recent[g->recent_next].tenant, sizeof g->recent[0].tenant, "%s", rq->tenant);
	snprintf(g->recent[g->recent_next].host, sizeof g->recent[0].host, "%s", host);
	g->recent_next = (g->recent_next + 1) % AUDIT_RECENT;
	snprintf(e.actor, sizeof e.actor, "link_check");
	snprintf(e.action, sizeof e.action, "link.listed");
	snprintf(e.target, sizeof e.target, "tenant:%s", rq->tenant);
	snprintf(e.reason, sizeof e.reason, "%s", text);
	json_obj_begin(&o, &b);
	json_obj_str(&o, "id", qid);
	json_obj_str(&o, "message_id", rq->message_id);
	json_obj_str(&o, "host", host);
	json_obj_str(&o, "list", list);
	json_obj_str(&o, "answer", answer);
	json_obj_str(&o, "action", action_name(g->lc->action));
	if (json_obj_end(&o) == 0 && b.len < sizeof e.details)
		memcpy(e.details, b.data, b.len);
	sl_buf_free(&b);
	store_audit_append(g->env.store, &e);
}

/* host is listed by list (answer: the entry or DNS answer): log, event,
 * audit, metric, and the hold; returns the verdict. */
static int listed(struct link_guard *g, struct link_guard_req *rq, const char *host,
		  const char *list, const char *answer)
{
	enum sl_link_action a = g->lc->action;
	char qid[17], text[480], labels[300];
	struct sl_buf lb = { 0 };
	const char *why = NULL;

	snprintf(qid, sizeof qid, "%016" PRIx64, rq->id);
	snprintf(text, sizeof text, "message %s %s of tenant %s links to %s, listed by %s (%s)", qid,
		 rq->message_id, rq->tenant, host, list, answer);
	snprintf(rq->refusal, sizeof rq->refusal, "it links to %s (listed by %s)", host, list);
	sl_warn("link check: tenant %s: %s; action %s", rq->tenant, text, action_name(a));
	sl_buf_appendf(&lb, "list=\"");
	metrics_label_escape(&lb, list);
	sl_buf_appendf(&lb, "\",action=\"%s\"", action_name(a));
	if (lb.data && lb.len < sizeof labels) {
		memcpy(labels, lb.data, lb.len);
		labels[lb.len] = 0;
		bump(metrics_counter(g->env.metrics, "sluice_link_hits_total",
				     "Messages linking to a blocklisted host, by list and action",
				     labels));
	}
	sl_buf_free(&lb);
	if (g->env.events)
		events_write(g->env.events,
			     &(struct event_outcome){
				     .kind = EVENT_LINK_LISTED, .time_ms = loop_wall_ms(), .id = qid,
				     .tenant = rq->tenant, .message_id = rq->message_id,
				     .stream = rq->stream == SL_STREAM_MARKETING ? "marketing" :
										   "transactional",
				     .site = list, .domain = host, .response = text });
	audit(g, rq, qid, host, list, answer, text);
	if (a == SL_LINK_HOLD && g->env.store) {
		if (store_tenant_set_state(g->env.store, rq->tenant, TENANT_EV_POLICY_HOLD, 0,
					   "link_check", text, NULL, &why) == 0) {
			sl_warn("link check: tenant %s put on hold", rq->tenant);
			if (g->env.tenant_changed)
				g->env.tenant_changed(g->env.ctx, rq->tenant);
		} else {
			sl_info("link check: tenant %s not put on hold: %s", rq->tenant,
				why ? why : "store error");
		}
	}
	return a == SL_LINK_REJECT ? LINK_GUARD_REJECT : LINK_GUARD_PASS;
}

static void check_free(struct link_guard_check *c)
{
	struct link_guard *g = c->g;

	for (size_t i = 0; i < c->n_lookups; i++)
		if (c->lookups[i].handle)
			resolver_cancel(g->env.resolver, c->lookups[i].handle);
	loop_timer_cancel(g->env.loop, &c->timer);
	if (c->prev)
		c->prev->next = c->next;
	else if (g->pending == c)
		g->pending = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->rq)
		c->rq->chk = NULL;
	free(c->lookups);
	free(c);
}

static void check_end(struct link_guard_check *c, int verdict)
{
	struct link_guard_req *rq = c->rq;

	check_free(c);
	rq->done(rq, verdict);
}

static void on_timeout(struct loop_timer *t)
{
	struct link_guard_check *c =
		(struct link_guard_check *)((char *)t - offsetof(struct link_guard_check, timer));
	const char *name = "?";

	for (size_t i = 0; i < c->n_lookups; i++)
		if (c->lookups[i].handle) {
			name = c->lookups[i].name;
			break;
		}
	bump(c->g->c_timeouts);
	sl_warn("link check: tenant %s: message %016" PRIx64 " %s: %zu lookup(s) (%s ...) "
		"unanswered after %" PRIu64 " ms; accepted unchecked (fail open)",
		c->rq->tenant, c->rq->id, c->rq->message_id, c->outstanding, name,
		c->g->lc->dns_timeout_ms);
	check_end(c, LINK_GUARD_PASS);
}

static void on_answer(void *ctx, int err, const struct mx_result *res)
{
	struct lookup *lk = ctx;
	struct link_guard_check *c = lk->chk;
	struct link_guard *g = c->g;
	uint32_t a4[RESOLVER_MAX_ADDRS];
	size_t n = 0;
	char code[32] = "";
	enum link_dns_verdict v = LINK_DNS_CLEAN;

	lk->handle = 0;
	c->outstanding--;
	if (err == SL_EDNS || err == -ENOMEM) {
		bump(g->c_dns_errors);
		sl_debug("link check: %s: %s", lk->name, sl_strerror(err));
	} else if (!err) {
		n = resolver_host_ipv4s(&res->hosts[0], a4, RESOLVER_MAX_ADDRS);
		v = link_dns_verdict(a4, n, code, sizeof code);
		if (v == LINK_DNS_ERROR) {
			bump(g->c_dns_errors);
			sl_debug("link check: %s: an answer that is not a listing, ignored", lk->name);
		}
	}
	if (v == LINK_DNS_LISTED) {
		int verdict = listed(g, c->rq, lk->host, g->lc->uribl_zones[lk->zone], code);

		check_end(c, verdict);
		return;
	}
	if (!c->outstanding)
		check_end(c, LINK_GUARD_PASS);
}

/* Start the URI blocklist lookups of the hosts in g->scan; how many
 * started. */
static size_t start_lookups(struct link_guard_check *c)
{
	struct link_guard *g = c->g;
	const struct link_scan *sc = &g->scan;
	size_t nz = g->lc->n_uribl_zones;

	if (!nz || !sc->n_hosts)
		return 0;
	c->lookups = calloc(sc->n_hosts * nz, sizeof *c->lookups);
	if (!c->lookups)
		return 0;
	for (size_t h = 0; h < sc->n_hosts; h++)
		for (size_t z = 0; z < nz; z++) {
			struct lookup *lk = &c->lookups[c->n_lookups];
			bool dup = false;

			if (link_uribl_name(sc->hosts[h], g->lc->uribl_zones[z], lk->name,
					    sizeof lk->name) < 0)
				continue;
			for (size_t i = 0; i < c->n_lookups && !dup; i++)
				dup = !strcmp(c->lookups[i].name, lk->name);
			if (dup)
				continue;
			lk->chk = c;
			memcpy(lk->host, sc->hosts[h], sizeof lk->host);
			lk->zone = z;
			if (resolver_lookup_host(g->env.resolver, lk->name, on_answer, lk,
						 &lk->handle) < 0) {
				lk->handle = 0;
				continue; /* not a name the resolver takes (IDNA, '_' ...) */
			}
			c->n_lookups++;
			c->outstanding++;
		}
	return c->outstanding;
}

int link_guard_check(struct link_guard *g, struct link_guard_req *rq)
{
	struct link_scan *sc = &g->scan;
	struct link_guard_check *c;

	rq->chk = NULL;
	rq->refusal[0] = 0;
	bump(g->c_checks);
	link_scan_init(sc, g->lc->max_hosts);
	link_scan_message(sc, rq->body, rq->body_len, g->lc->max_scan, g->scratch);
	if (sc->truncated)
		sl_debug("link check: tenant %s: message %016" PRIx64 ": scan cut at %zu bytes, "
			 "%zu hosts", rq->tenant, rq->id, sc->scanned, sc->n_hosts);
	for (size_t h = 0; h < sc->n_hosts; h++) {
		const char *m = link_blocklist_match(g->bl, sc->hosts[h]);

		if (m) {
			char answer[LINK_HOST_LEN + 16];

			snprintf(answer, sizeof answer, "entry %s", m);
			return listed(g, rq, sc->hosts[h], "local blocklist", answer);
		}
	}
	if (!g->lc->n_uribl_zones || !sc->n_hosts)
		return LINK_GUARD_PASS;
	if (!(c = calloc(1, sizeof *c)))
		return -ENOMEM;
	c->g = g;
	c->rq = rq;
	if (!start_lookups(c)) {
		free(c->lookups);
		free(c);
		return LINK_GUARD_PASS;
	}
	rq->chk = c;
	c->next = g->pending;
	if (g->pending)
		g->pending->prev = c;
	g->pending = c;
	c->timer.cb = on_timeout;
	loop_timer_arm(g->env.loop, &c->timer, g->lc->dns_timeout_ms);
	return LINK_GUARD_PENDING;
}

int link_guard_reload(struct link_guard *g, char *err, size_t errlen)
{
	struct link_blocklist *bl;
	int rc;

	if (!g->lc->blocklist)
		return 0;
	rc = link_blocklist_load(g->lc->blocklist, &bl, err, errlen);
	if (rc < 0)
		return rc;
	link_blocklist_free(g->bl);
	g->bl = bl;
	return 0;
}

size_t link_guard_blocklist_count(const struct link_guard *g)
{
	return link_blocklist_count(g->bl);
}

int link_guard_create(const struct link_guard_env *env, struct link_guard **out, char *err,
		      size_t errlen)
{
	struct link_guard *g = calloc(1, sizeof *g);
	int rc;

	if (!g)
		return -ENOMEM;
	g->env = *env;
	g->lc = &env->cfg->link_check;
	if (!(g->scratch = malloc(g->lc->max_scan + 1))) {
		free(g);
		return -ENOMEM;
	}
	g->c_checks = metrics_counter(env->metrics, "sluice_link_checks_total",
				      "Messages whose links were checked", "");
	g->c_timeouts = metrics_counter(env->metrics, "sluice_link_check_timeouts_total",
					"Link checks accepted unchecked: DNS blocklists too slow", "");
	g->c_dns_errors = metrics_counter(env->metrics, "sluice_link_check_dns_errors_total",
					  "URI blocklist lookups that failed or gave no listing answer",
					  "");
	if ((rc = link_guard_reload(g, err, errlen)) < 0) {
		free(g->scratch);
		free(g);
		return rc;
	}
	*out = g;
	return 0;
}

void link_guard_destroy(struct link_guard *g)
{
	if (!g)
		return;
	while (g->pending)
		check_end(g->pending, -ECANCELED);
	link_blocklist_free(g->bl);
	free(g->scratch);
	free(g);
}
