/* egress.c — outbound SMTP sessions over the transport; see egress.h. */
#include "egress.h"

#include "err.h"
#include "metrics.h"
#include "providers.h"
#include "reputation.h"
#include "session_io.h"
#include "shaping.h"
#include "smtp_client.h"
#include "smtp_reply.h"
#include "tls.h"
#include "verp.h"
#include "warmup_gate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_KEEP_MS 2000       /* builtin: an idle connection waits this long for work */
#define RESOLVE_TTL_MS 300000   /* reuse a lookup this long */
#define NO_TLS_MS 3600000       /* after a failed handshake, plaintext this long */

struct target {
	struct sockaddr_storage addr;
	socklen_t len;
	char host[256];
};

enum resolve_state { RS_NONE, RS_RESOLVING, RS_OK };

/* Egress state per domain queue. */
struct dq_egress {
	struct egress *eg;
	struct domain_queue *dq;
	enum resolve_state rs;
	uint64_t resolved_at, lookup;
	struct target *targets;
	size_t n_targets, good; /* good: the target that last connected */
	bool require_tls;
	uint64_t no_tls_until; /* a handshake failed: opportunistic TLS off until then */
	unsigned n_conns, n_connecting;
	struct out_session *idle; /* sessions waiting for work */
	struct dq_egress *next_kick; /* on egress.kicks while a kick is due */
	bool kick_due;
	/* Shaping for this destination, resolved with each lookup. */
	struct shaping_values shape;
	struct rate_limiter conn_rate, msg_rate;
	struct loop_timer rate_timer; /* a rate limit said "later" */
	char provider[64];
	/* Warm-up: the pool (index into cfg->pools), the provider's gate id
	 * and the timer of a hold until the next window. */
	size_t pool_idx;
	int prov_id;
	struct loop_timer warm_timer;
	/* Response-rule throttle: the factor and base rate last applied. */
	double rep_factor;
	struct shaping_rate rep_base;
};

struct out_session {
	struct egress *eg;
	struct dq_egress *de;
	struct session_io io;
	struct smtp_client *cl;
	struct delivery *d;
	struct sl_buf body;
	struct loop_timer timer;
	size_t target, tries;
	unsigned n_msgs;
	bool connected, ready, closing, idle;
	bool answered; /* the receiver replied to the current transaction */
	uint64_t started_ms;
	char src_ip[INET6_ADDRSTRLEN];
	size_t ip_idx; /* in the pool's ips */
	const char *ehlo;
	struct out_session *next_idle;
	struct out_session *prev, *next; /* every session of the egress */
	char site[256];                  /* the remote host name, for logs */
	struct sockaddr_storage src;
	socklen_t src_len;
	uint8_t *refused;        /* per recipient of d: refused at RCPT (reputation) */
	bool answered_rcpts;     /* refused[] describes the current delivery */
	uint32_t refused_cap;
};

struct egress {
	struct loop *loop;
	struct transport *t;
	struct resolver *res;
	const struct sl_config *cfg;
	struct queue *q;
	struct tls_ctx *tls;
	size_t *pool_rr;
	unsigned n_sessions;
	struct out_session *sessions;
	bool starved;            /* the global connection cap refused a queue */
	bool slot_freed;         /* a session ended since */
	struct dq_egress *kicks; /* queues to kick at the next tick */
	struct shaping_rules *shaping;
	struct provider_table *providers; /* NULL: no provider rules */
	struct warmup_gate *gate;         /* NULL: no warm-up */
	struct reputation *rep;           /* NULL: no VERP, no response rules */
	uint64_t *c_sessions, *c_connect_fail, *c_tls;
	int64_t *g_sessions;
};

static const struct conn_handler session_handler;
static void session_drive(struct out_session *s);
static void session_destroy(struct out_session *s);

/* --- small helpers ------------------------------------------------------ */

static struct smtp_reply local_reply(int code, const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static struct smtp_reply local_reply(int code, const char *enhanced, const char *fmt, ...)
{
	struct smtp_reply r = { .code = code };
	va_list ap;

	snprintf(r.enhanced, sizeof r.enhanced, "%s", enhanced);
	va_start(ap, fmt);
	vsnprintf(r.text, sizeof r.text, fmt, ap);
	va_end(ap);
	return r;
}

static bool domain_requires_tls(const struct sl_config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->delivery.n_require_tls_domains; i++)
		if (!strcasecmp(cfg->delivery.require_tls_domains[i], domain))
			return true;
	return false;
}

static void on_rate_timer(struct loop_timer *t)
{
	struct dq_egress *de = (struct dq_egress *)((char *)t - offsetof(struct dq_egress, rate_timer));

	egress_kick(de->eg, de->dq);
}

static void on_warm_timer(struct loop_timer *t)
{
	struct dq_egress *de = (struct dq_egress *)((char *)t - offsetof(struct dq_egress, warm_timer));

	egress_kick(de->eg, de->dq);
}

/* The warm-up clock now (only meaningful with a gate). */
static uint64_t warm_now(const struct egress *eg)
{
	return warmup_gate_clock(eg->gate, loop_now_ms(eg->loop));
}

/* No IP of the pool may send to this provider now: hold the queue (its
 * mail stays ready, no retry is counted) until warm-up time `at`. */
static void warm_wait(struct dq_egress *de, uint64_t now, uint64_t at)
{
	uint64_t delay = warmup_gate_real_delay(de->eg->gate, now, at);

	if (delay == UINT64_MAX)
		return; /* paused everywhere: an operator's resume kicks us */
	if (!loop_timer_armed(&de->warm_timer) ||
	    de->warm_timer.expire_ms > loop_now_ms(de->eg->loop) + delay)
		loop_timer_arm(de->eg->loop, &de->warm_timer, delay);
}

/* A rate limit refused: come back when rl has a token. */
static void rate_wait(struct dq_egress *de, struct rate_limiter *rl)
{
	uint64_t now = loop_now_ms(de->eg->loop), at = rate_next_ms(rl, now);

	if (!loop_timer_armed(&de->rate_timer) || de->rate_timer.expire_ms > at)
		loop_timer_arm(de->eg->loop, &de->rate_timer, at > now ? at - now : 1);
}

/* Shaping for the destination now that its MX hosts are known: provider
 * by MX suffix, site = the sorted MX set, then the rules' merge. */
static void dq_shape(struct dq_egress *de, const char *const *mx, size_t n_mx)
{
	struct egress *eg = de->eg;
	const char *provider = eg->providers && n_mx ? provider_for_mxs(eg->providers, mx, n_mx) : NULL;
	char site[1024] = "";
	uint64_t now = loop_now_ms(eg->loop);

	if (n_mx && site_key(mx, n_mx, site, sizeof site) < 0)
		site[0] = 0;
	snprintf(de->provider, sizeof de->provider, "%s", provider ? provider : "");
	if (eg->gate) {
		int id = warmup_gate_provider(eg->gate, provider);

		de->prov_id = id < 0 ? 0 : id;
	}
	shaping_resolve(eg->shaping,
			&(struct shaping_key){ .pool = domain_queue_pool(de->dq),
					       .provider = provider,
					       .site = site[0] ? site : NULL,
					       .domain = domain_queue_domain(de->dq) },
			&de->shape);
	rate_update(&de->conn_rate, &de->shape.connection_rate, 0, now);
	rate_update(&de->msg_rate, &de->shape.message_rate, 0, now);
}

static struct dq_egress *dq_state(struct egress *eg, struct domain_queue *dq)
{
	void **slot = domain_queue_egress_slot(dq);
	struct dq_egress *de = *slot;

	if (!de) {
		de = calloc(1, sizeof *de);
		if (!de)
			return NULL;
		de->eg = eg;
		de->dq = dq;
		de->rate_timer.cb = on_rate_timer;
		de->warm_timer.cb = on_warm_timer;
		{
			const struct sl_pool_cfg *pool =
				config_pool_by_name(eg->cfg, domain_queue_pool(dq));

			de->pool_idx = pool ? (size_t)(pool - eg->cfg->pools) : 0;
		}
		/* Until the first lookup: the shaping rules' defaults. */
		shaping_resolve(eg->shaping,
				&(struct shaping_key){ .pool = domain_queue_pool(dq),
						       .domain = domain_queue_domain(dq) },
				&de->shape);
		rate_init(&de->conn_rate, &de->shape.connection_rate, 0, loop_now_ms(eg->loop));
		rate_init(&de->msg_rate, &de->shape.message_rate, 0, loop_now_ms(eg->loop));
		*slot = de;
	}
	return de;
}

/* An outcome carrying the destination's retry policy from shaping. */
static struct rcpt_outcome de_outcome(const struct dq_egress *de, const struct smtp_reply *r,
				      const char *source_ip, const char *site)
{
	return (struct rcpt_outcome){ .reply = r, .source_ip = source_ip, .site = site,
				      .retry_ms = de->shape.retry_ms,
				      .n_retry = de->shape.n_retry,
				      .max_age_ms = de->shape.max_age_ms };
}

static void outcome_all_ready(struct dq_egress *de, const struct smtp_reply *r)
{
	struct rcpt_outcome o = de_outcome(de, r, NULL, NULL);

	domain_queue_fail_ready(de->eg->q, de->dq, &o);
}

/* --- resolution --------------------------------------------------------- */

static int add_target(struct dq_egress *de, const struct sockaddr_storage *a, const char *host,
		      uint16_t port)
{
	struct target *t = realloc(de->targets, (de->n_targets + 1) * sizeof *t);

	if (!t)
		return -ENOMEM;
	de->targets = t;
	t = &de->targets[de->n_targets++];
	memset(t, 0, sizeof *t);
	t->addr = *a;
	if (a->ss_family == AF_INET6) {
		((struct sockaddr_in6 *)&t->addr)->sin6_port = htons(port);
		t->len = sizeof(struct sockaddr_in6);
	} else {
		((struct sockaddr_in *)&t->addr)->sin_port = htons(port);
		t->len = sizeof(struct sockaddr_in);
	}
	snprintf(t->host, sizeof t->host, "%s", host);
	return 0;
}

static void on_resolved(void *ctx, int err, const struct mx_result *res)
{
	struct dq_egress *de = ctx;
	const struct sl_route_cfg *route =
		config_route_for(de->eg->cfg, domain_queue_domain(de->dq));
	uint16_t port = route ? route->port : 25;
	struct smtp_reply r;

	de->lookup = 0;
	de->rs = RS_NONE;
	free(de->targets);
	de->targets = NULL;
	de->n_targets = de->good = 0;
	if (!err) {
		const char *mx[RESOLVER_MAX_HOSTS];
		size_t n_mx = 0;

		for (size_t i = 0; i < res->n_hosts; i++) {
			for (size_t j = 0; j < res->hosts[i].n_addrs; j++)
				add_target(de, &res->hosts[i].addrs[j], res->hosts[i].name, port);
			if (n_mx < RESOLVER_MAX_HOSTS)
				mx[n_mx++] = res->hosts[i].name;
		}
		dq_shape(de, mx, n_mx);
	}
	if (!err && de->n_targets) {
		de->rs = RS_OK;
		de->resolved_at = loop_now_ms(de->eg->loop);
		egress_kick(de->eg, de->dq);
		return;
	}
	if (err == SL_ENOTFOUND)
		r = local_reply(550, "5.1.2", "Host or domain name not found: %s",
				domain_queue_domain(de->dq));
	else
		r = local_reply(451, "4.4.3", "DNS lookup for %s failed: %s",
				domain_queue_domain(de->dq), sl_strerror(err ? err : SL_EDNS));
	outcome_all_ready(de, &r);
}

/* Make sure de has targets; false while a lookup is running or failed. */
static bool dq_resolve(struct dq_egress *de)
{
	struct egress *eg = de->eg;
	const char *domain = domain_queue_domain(de->dq);
	const struct sl_route_cfg *route = config_route_for(eg->cfg, domain);
	uint64_t now = loop_now_ms(eg->loop);
	struct sockaddr_storage ss = { 0 };
	int rc;

	if (de->rs == RS_RESOLVING)
		return false;
	if (de->rs == RS_OK && now - de->resolved_at < RESOLVE_TTL_MS)
		return true;
	de->require_tls = (route && route->require_tls) || domain_requires_tls(eg->cfg, domain);
	if (route) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET, route->host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
		} else if (inet_pton(AF_INET6, route->host, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
		}
		if (ss.ss_family) {
			free(de->targets);
			de->targets = NULL;
			de->n_targets = de->good = 0;
			if (add_target(de, &ss, route->host, route->port) < 0)
				return false;
			dq_shape(de, (const char *const *)&route->host, 1);
			de->rs = RS_OK;
			de->resolved_at = now;
			return true;
		}
		de->rs = RS_RESOLVING;
		rc = resolver_lookup_host(eg->res, route->host, on_resolved, de, &de->lookup);
	} else {
		de->rs = RS_RESOLVING;
		rc = resolver_lookup_mx(eg->res, domain, on_resolved, de, &de->lookup);
	}
	if (rc < 0) {
		struct smtp_reply r = local_reply(451, "4.4.3", "DNS lookup for %s failed: %s",
						  domain, sl_strerror(rc));

		de->rs = RS_NONE;
		outcome_all_ready(de, &r);
		return false;
	}
	return false;
}

/* --- sessions ----------------------------------------------------------- */

static void session_reply_all(struct out_session *s, const struct smtp_reply *r)
{
	struct rcpt_outcome o = de_outcome(s->de, r, s->src_ip, s->site);

	if (!s->d)
		return;
	delivery_all_result(s->eg->q, s->d, &o);
	queue_delivery_done(s->eg->q, s->d, loop_now_ms(s->eg->loop) - s->started_ms);
	s->d = NULL;
}

/* The connection failed while s had a delivery. A reused connection that
 * died before the receiver said anything about this transaction (say it
 * had timed the idle connection out) attempted nothing: the delivery goes
 * back to the front of the ready list for a fresh connection instead of
 * waiting out a retry interval. Anything else is a real failure. Each
 * fresh connection delivers or fails for real, so this cannot loop. */
static void session_lost(struct out_session *s, const struct smtp_reply *r)
{
	if (s->d && s->n_msgs > 0 && !s->answered) {
		queue_delivery_requeue(s->eg->q, s->d);
		s->d = NULL;
		return;
	}
	session_reply_all(s, r);
}

static void session_unidle(struct out_session *s)
{
	struct out_session **pp;

	if (!s->idle)
		return;
	for (pp = &s->de->idle; *pp; pp = &(*pp)->next_idle)
		if (*pp == s) {
			*pp = s->next_idle;
			break;
		}
	s->idle = false;
}

static void session_destroy(struct out_session *s)
{
	struct egress *eg = s->eg;
	struct dq_egress *de = s->de;

	session_unidle(s);
	if (s->d) {
		struct smtp_reply r = local_reply(451, "4.4.2", "connection to %s lost", s->site);
		session_lost(s, &r);
	}
	loop_timer_cancel(eg->loop, &s->timer);
	if (s->io.conn)
		conn_close(s->io.conn);
	session_io_release(&s->io);
	if (s->cl)
		smtp_client_destroy(s->cl);
	sl_buf_free(&s->body);
	free(s->refused);
	if (s->connected)
		s->de->n_conns--;
	else
		s->de->n_connecting--;
	eg->n_sessions--;
	(*eg->g_sessions)--;
	if (s->prev)
		s->prev->next = s->next;
	else
		eg->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
	eg->slot_freed = true;
	/* A connection slot came free: its own queue may want it (say the
	 * session ended at max_messages_per_connection with work left). */
	if (!de->kick_due) {
		de->kick_due = true;
		de->next_kick = eg->kicks;
		eg->kicks = de;
	}
}

static void session_timeout(struct loop_timer *t)
{
	struct out_session *s = (struct out_session *)((char *)t - offsetof(struct out_session, timer));

	if (!s->cl) /* still connecting: the transport's own timeout decides */
		return;
	if (s->idle) { /* no work came: say goodbye */
		session_unidle(s);
		smtp_client_quit(s->cl);
	} else {
		smtp_client_timeout(s->cl);
	}
	loop_timer_arm(s->eg->loop, &s->timer, s->eg->cfg->delivery.command_timeout_ms);
	session_drive(s);
}

/* --- reputation: VERP return paths, outcomes, response rules ------------ */

/* The envelope sender for s's delivery: its VERP return path when
 * bounces are configured, else the message's own. */
static const char *rep_mail_from(struct out_session *s, const struct spool_msg *m, char *buf,
				 size_t len)
{
	s->answered_rcpts = false;
	if (!s->eg->rep || s->d->n_rcpts == 0 ||
	    reputation_return_path(s->eg->rep, m, s->d->rcpt_idx[0], buf, len) <= 0)
		return m->mail_from;
	return buf;
}

/* Recipient i of s's delivery was refused at RCPT with r. */
static void rep_rcpt_refused(struct out_session *s, unsigned i, const struct smtp_reply *r)
{
	const struct spool_msg *m;

	if (!s->eg->rep || i >= s->d->n_rcpts)
		return;
	m = delivery_msg(s->d);
	reputation_reply(s->eg->rep, m, r, s->src_ip, s->de->provider);
	reputation_outcome(s->eg->rep, m, m->rcpts[s->d->rcpt_idx[i]].addr, r);
	if (s->refused_cap < s->d->n_rcpts) {
		uint8_t *p = realloc(s->refused, s->d->n_rcpts);

		if (!p)
			return;
		s->refused = p;
		s->refused_cap = s->d->n_rcpts;
	}
	if (!s->answered_rcpts) {
		memset(s->refused, 0, s->d->n_rcpts);
		s->answered_rcpts = true;
	}
	s->refused[i] = 1;
}

/* The transaction's final reply (or the session's failure) r: every
 * recipient not refused at RCPT gets it; a reply without a delivery is
 * the receiver's word on the session (response rules only). */
static void rep_message_done(struct out_session *s, const struct smtp_reply *r)
{
	const struct spool_msg *m;

	if (!s->eg->rep)
		return;
	if (!s->d) {
		static const struct spool_msg none = { .tenant = "", .mail_from = "" };

		if (r->code >= 400)
			reputation_reply(s->eg->rep, &none, r, s->src_ip, s->de->provider);
		return;
	}
	m = delivery_msg(s->d);
	reputation_reply(s->eg->rep, m, r, s->src_ip, s->de->provider);
	for (uint32_t i = 0; i < s->d->n_rcpts; i++)
		if (!s->answered_rcpts || i >= s->refused_cap || !s->refused[i])
			reputation_outcome(s->eg->rep, m, m->rcpts[s->d->rcpt_idx[i]].addr, r);
	s->answered_rcpts = false;
}

/* May s's source IP still send to its provider (a response rule may have
 * suspended it since the session opened)? */
static bool rep_session_may_send(struct out_session *s)
{
	return reputation_may_send(s->eg->rep, s->de->provider, s->src_ip, NULL, NULL);
}

/* A response rule suspended m's tenant towards this provider (scope
 * tenant): its delivery is deferred locally (retried on its schedule,
 * never bounced for this) and s takes the next one. */
static bool rep_tenant_suspended(struct out_session *s, const struct spool_msg *m)
{
	struct smtp_reply r;

	if (reputation_may_send(s->eg->rep, s->de->provider, s->src_ip, m->tenant, NULL))
		return false;
	r = local_reply(451, "4.7.0", "tenant %s suspended towards %s by a receiver response rule",
			m->tenant, s->de->provider[0] ? s->de->provider : "this destination");
	session_reply_all(s, &r);
	return true;
}

/* The destination's message rate times the response rules' factor for
 * (source_ip, provider); a rate without a limit stays unlimited. */
static void rep_throttle(struct dq_egress *de, const char *source_ip)
{
	double f = reputation_rate_factor(de->eg->rep, de->provider, source_ip);
	struct shaping_rate rt = de->shape.message_rate;

	if (f == de->rep_factor && rt.count == de->rep_base.count && rt.per_ms == de->rep_base.per_ms)
		return;
	de->rep_factor = f;
	de->rep_base = rt;
	if (rt.count && f > 0 && f < 1)
		rt.per_ms = (uint64_t)((double)rt.per_ms / f);
	rate_update(&de->msg_rate, &rt, 0, loop_now_ms(de->eg->loop));
}

/* Pick a pool IP that no response rule suspended towards de's provider,
 * starting at *ii; -EAGAIN (and a kick when the first suspension ends)
 * when there is none. */
static int rep_pick_ip(struct dq_egress *de, const struct sl_pool_cfg *pool, size_t *ii)
{
	uint64_t until, first = UINT64_MAX, now = loop_wall_ms(), delay;
	char ip[INET6_ADDRSTRLEN];

	for (size_t k = 0; k < pool->n_ips; k++) {
		size_t c = (*ii + k) % pool->n_ips;
		const struct sockaddr_storage *a = &pool->ips[c].addr;

		if (a->ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, ip, sizeof ip);
		else
			inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, ip, sizeof ip);
		if (reputation_may_send(de->eg->rep, de->provider, ip, NULL, &until)) {
			*ii = c;
			return 0;
		}
		if (until < first)
			first = until;
		/* Only a gated pool's pick is binding: try the others. */
		if (de->eg->gate && warmup_gate_pool_gated(de->eg->gate, de->pool_idx))
			break;
	}
	delay = first > now ? first - now : 1;
	if (!loop_timer_armed(&de->rate_timer) ||
	    de->rate_timer.expire_ms > loop_now_ms(de->eg->loop) + delay)
		loop_timer_arm(de->eg->loop, &de->rate_timer, delay);
	return -EAGAIN;
}

static int session_connect(struct out_session *s)
{
	struct dq_egress *de = s->de;
	struct target *t;

	if (s->target >= de->n_targets)
		return -EHOSTUNREACH;
	t = &de->targets[s->target];
	snprintf(s->site, sizeof s->site, "%s", t->host);
	return transport_connect(s->eg->t, (struct sockaddr *)&s->src, s->src_len,
				 (struct sockaddr *)&t->addr, t->len,
				 de->shape.connect_timeout_ms, &session_handler, s,
				 &s->io.conn);
}

static int session_start(struct dq_egress *de)
{
	struct egress *eg = de->eg;
	const struct sl_pool_cfg *pool = config_pool_by_name(eg->cfg, domain_queue_pool(de->dq));
	const struct sl_source_ip_cfg *ip;
	struct out_session *s;
	size_t pi;
	int rc;

	size_t ii;

	if (!pool)
		pool = &eg->cfg->pools[0];
	pi = (size_t)(pool - eg->cfg->pools);
	if (eg->gate && warmup_gate_pool_gated(eg->gate, pi)) {
		uint64_t now = warm_now(eg), next;

		rc = warmup_gate_pick(eg->gate, pi, de->prov_id, now, &next);
		if (rc < 0) {
			warm_wait(de, now, next);
			return rc;
		}
		ii = (size_t)rc;
	} else {
		ii = eg->pool_rr[pi]++ % pool->n_ips;
	}
	if (eg->rep && (rc = rep_pick_ip(de, pool, &ii)) < 0)
		return rc;
	ip = &pool->ips[ii];
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->eg = eg;
	s->de = de;
	s->src = ip->addr;
	s->src_len = ip->addr_len;
	s->ehlo = ip->ehlo;
	s->ip_idx = ii;
	s->timer.cb = session_timeout;
	s->target = de->good < de->n_targets ? de->good : 0;
	s->started_ms = loop_now_ms(eg->loop);
	if (ip->addr.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ip->addr)->sin6_addr, s->src_ip,
			  sizeof s->src_ip);
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ip->addr)->sin_addr, s->src_ip,
			  sizeof s->src_ip);
	rc = session_connect(s);
	if (rc < 0) {
		free(s);
		return rc;
	}
	s->next = eg->sessions;
	if (s->next)
		s->next->prev = s;
	eg->sessions = s;
	de->n_connecting++;
	eg->n_sessions++;
	(*eg->g_sessions)++;
	(*eg->c_sessions)++;
	return 0;
}

static void session_park(struct out_session *s)
{
	s->idle = true;
	s->next_idle = s->de->idle;
	s->de->idle = s;
	loop_timer_arm(s->eg->loop, &s->timer, s->de->shape.idle_timeout_ms);
}

/* Give s the next ready delivery of its domain (false: none, or the
 * destination's message rate says later; s is then parked idle or QUITs). */
static bool session_take_work(struct out_session *s)
{
	struct egress *eg = s->eg;
	struct dq_egress *de = s->de;
	const struct spool_msg *m;
	struct smtp_client_msg cm;
	const char **rcpts;
	char verp[VERP_ADDR_MAX];
	int rc;

	if (s->n_msgs >= de->shape.max_messages_per_connection) {
		smtp_client_quit(s->cl);
		return false;
	}
	if (!domain_queue_ready(de->dq)) {
		session_park(s);
		return false;
	}
	if (eg->rep && !rep_session_may_send(s)) {
		smtp_client_quit(s->cl);
		return false;
	}
	if (eg->rep)
		rep_throttle(de, s->src_ip);
	if (!rate_allow(&de->msg_rate, loop_now_ms(eg->loop), 1)) {
		rate_wait(de, &de->msg_rate);
		session_park(s);
		return false;
	}
	if (eg->gate && !warmup_gate_take(eg->gate, de->pool_idx, s->ip_idx, de->prov_id,
					  warm_now(eg))) {
		/* This IP may not send to the provider now: end the session;
		 * its end kicks the queue, which picks another IP or holds. */
		smtp_client_quit(s->cl);
		return false;
	}
	s->d = domain_queue_take(de->dq);
	s->answered = false;
	m = delivery_msg(s->d);
	if (eg->rep && rep_tenant_suspended(s, m))
		return session_take_work(s);
	sl_buf_reset(&s->body);
	rc = delivery_read_body(eg->q, s->d, &s->body);
	rcpts = calloc(s->d->n_rcpts, sizeof *rcpts);
	if (rc < 0 || !rcpts) {
		struct smtp_reply r = local_reply(451, "4.3.0", "cannot read spooled message: %s",
						  sl_strerror(rc < 0 ? rc : -ENOMEM));
		free(rcpts);
		session_reply_all(s, &r);
		return session_take_work(s);
	}
	for (uint32_t i = 0; i < s->d->n_rcpts; i++)
		rcpts[i] = m->rcpts[s->d->rcpt_idx[i]].addr;
	cm = (struct smtp_client_msg){
		.mail_from = rep_mail_from(s, m, verp, sizeof verp),
		.rcpts = rcpts,
		.n_rcpts = s->d->n_rcpts,
		.body = s->body.data,
		.body_len = s->body.len,
		.flags = (m->flags & SPOOL_F_8BITMIME ? SMTP_CLIENT_MSG_8BITMIME : 0) |
			 (m->flags & SPOOL_F_SMTPUTF8 ? SMTP_CLIENT_MSG_SMTPUTF8 : 0),
	};
	s->started_ms = loop_now_ms(eg->loop);
	rc = smtp_client_send(s->cl, &cm);
	free(rcpts);
	if (rc < 0) {
		struct smtp_reply r = local_reply(451, "4.3.0", "cannot send: %s", sl_strerror(rc));

		session_reply_all(s, &r);
		smtp_client_quit(s->cl);
		return false;
	}
	return true;
}

/* Run the client's events until it needs input; flush its output. */
static void session_drive(struct out_session *s)
{
	struct egress *eg = s->eg;
	struct smtp_client_event ev;
	struct rcpt_outcome o;
	int kind, rc;

	for (;;) {
		kind = smtp_client_next(s->cl, &ev);
		if (kind == SMTP_CLIENT_EV_NONE)
			break;
		switch (kind) {
		case SMTP_CLIENT_EV_STARTTLS:
			if (session_io_flush(&s->io, smtp_client_output(s->cl)) < 0 ||
			    session_io_start_tls(&s->io, eg->tls, false,
						 s->site) < 0) {
				smtp_client_tls_failed(s->cl);
				continue;
			}
			(*eg->c_tls)++;
			return; /* wait for the handshake */
		case SMTP_CLIENT_EV_READY:
			s->ready = true;
			session_take_work(s);
			break;
		case SMTP_CLIENT_EV_RCPT:
			if (s->d) {
				s->answered = true;
				rep_rcpt_refused(s, ev.rcpt, ev.reply);
				o = de_outcome(s->de, ev.reply, s->src_ip, s->site);
				delivery_rcpt_result(eg->q, s->d, ev.rcpt, &o);
			}
			break;
		case SMTP_CLIENT_EV_MESSAGE_DONE:
			s->n_msgs++;
			rep_message_done(s, ev.reply);
			session_reply_all(s, ev.reply);
			break;
		case SMTP_CLIENT_EV_FAILED:
			if (!ev.local)
				rep_message_done(s, ev.reply);
			if (s->d && ev.local) {
				session_lost(s, ev.reply);
			} else if (s->d) {
				session_reply_all(s, ev.reply);
			} else if (!s->ready) {
				/* The receiver refused us before any transaction:
				 * the domain's waiting mail shares that fate. */
				outcome_all_ready(s->de, ev.reply);
			}
			session_destroy(s);
			return;
		case SMTP_CLIENT_EV_CLOSED:
			session_io_flush(&s->io, smtp_client_output(s->cl));
			session_destroy(s);
			return;
		}
	}
	rc = session_io_flush(&s->io, smtp_client_output(s->cl));
	if (rc < 0)
		session_destroy(s);
}

static void on_session_connect(void *ctx, int err)
{
	struct out_session *s = ctx;
	struct dq_egress *de = s->de;
	struct egress *eg = s->eg;
	struct smtp_client_params p;
	int rc;

	if (err) {
		(*eg->c_connect_fail)++;
		conn_close(s->io.conn);
		s->io.conn = NULL;
		/* Try the next target (MX host or address) in order. */
		if (++s->tries < de->n_targets) {
			s->target = (s->target + 1) % de->n_targets;
			if (session_connect(s) == 0)
				return;
		}
		{
			struct smtp_reply r = local_reply(451, "4.4.1", "connect to %s failed: %s",
							  s->site,
							  sl_strerror(err));
			outcome_all_ready(de, &r);
		}
		session_destroy(s);
		return;
	}
	de->good = s->target;
	de->n_connecting--;
	de->n_conns++;
	s->connected = true;
	p = (struct smtp_client_params){
		.ehlo_name = s->ehlo,
		.tls_available = eg->tls != NULL &&
				 (de->require_tls || loop_now_ms(eg->loop) >= de->no_tls_until),
		.require_tls = de->require_tls,
	};
	rc = smtp_client_create(&p, &s->cl);
	if (rc < 0) {
		session_destroy(s);
		return;
	}
	loop_timer_arm(eg->loop, &s->timer, eg->cfg->delivery.command_timeout_ms);
}

static void on_session_recv(void *ctx, const char *data, size_t len)
{
	struct out_session *s = ctx;
	const char *plain;
	size_t plain_len;
	int rc;

	if (len == 0) {
		smtp_client_eof(s->cl);
		session_drive(s);
		return;
	}
	if (!s->idle)
		loop_timer_arm(s->eg->loop, &s->timer, s->eg->cfg->delivery.command_timeout_ms);
	rc = session_io_input(&s->io, data, len, &plain, &plain_len);
	if (rc < 0) {
		if (s->io.handshaking) {
			/* Like Postfix: an opportunistic handshake that fails
			 * is retried in plaintext, not deferred forever. */
			if (!s->de->require_tls)
				s->de->no_tls_until = loop_now_ms(s->eg->loop) + NO_TLS_MS;
			smtp_client_tls_failed(s->cl);
			session_drive(s);
			return;
		}
		session_destroy(s);
		return;
	}
	if (rc == SESSION_IO_TLS_READY)
		smtp_client_tls_started(s->cl);
	if (plain_len && smtp_client_input(s->cl, plain, plain_len) < 0) {
		session_destroy(s);
		return;
	}
	session_drive(s);
}

static void on_session_error(void *ctx, int err)
{
	struct out_session *s = ctx;
	struct smtp_reply r = local_reply(451, "4.4.2", "connection to %s failed: %s",
					  s->site, sl_strerror(err));

	session_lost(s, &r);
	session_destroy(s);
}

static const struct conn_handler session_handler = {
	.on_connect = on_session_connect,
	.on_recv = on_session_recv,
	.on_error = on_session_error,
};

/* --- scheduling --------------------------------------------------------- */

void egress_kick(void *ctx, struct domain_queue *dq)
{
	struct egress *eg = ctx;
	struct dq_egress *de = dq_state(eg, dq);

	if (!de || !eg->q)
		return;
	/* Idle sessions first: they are connected already. */
	while (de->idle && domain_queue_ready(dq)) {
		struct out_session *s = de->idle;
		bool took;

		session_unidle(s);
		loop_timer_arm(eg->loop, &s->timer, eg->cfg->delivery.command_timeout_ms);
		took = session_take_work(s);
		session_drive(s);
		if (!took && s->idle)
			return; /* the message rate says later; its timer kicks again */
	}
	if (!domain_queue_ready(dq) || !dq_resolve(de))
		return;
	while (domain_queue_ready(dq) > de->n_connecting &&
	       de->n_conns + de->n_connecting < de->shape.max_connections) {
		if (eg->n_sessions >= eg->cfg->delivery.max_connections) {
			eg->starved = true;
			return;
		}
		if (!rate_allow(&de->conn_rate, loop_now_ms(eg->loop), 1)) {
			rate_wait(de, &de->conn_rate);
			return;
		}
		if (session_start(de) < 0)
			return;
	}
}

void egress_forget(void *egress, void *state)
{
	struct dq_egress *de = state;
	struct dq_egress **pp;

	(void)egress;
	for (pp = &de->eg->kicks; *pp; pp = &(*pp)->next_kick)
		if (*pp == de) {
			*pp = de->next_kick;
			break;
		}
	if (de->lookup)
		resolver_cancel(de->eg->res, de->lookup);
	loop_timer_cancel(de->eg->loop, &de->rate_timer);
	loop_timer_cancel(de->eg->loop, &de->warm_timer);
	free(de->targets);
	free(de);
}

static void kick_one(void *ctx, struct domain_queue *dq)
{
	egress_kick(ctx, dq);
}

void egress_tick(struct egress *e)
{
	if (!e->q)
		return;
	while (e->kicks) {
		struct dq_egress *de = e->kicks;

		e->kicks = de->next_kick;
		de->kick_due = false;
		if (domain_queue_ready(de->dq))
			egress_kick(e, de->dq);
	}
	if (!e->starved || !e->slot_freed)
		return;
	e->starved = e->slot_freed = false;
	queue_foreach_ready(e->q, kick_one, e);
}

/* --- lifecycle ---------------------------------------------------------- */

/* The shaping rules and provider table, with delivery.* as the builtin
 * layer under them (and as everything when no rules file is configured). */
static int egress_shaping_setup(struct egress *eg, char *err, size_t errlen)
{
	const struct sl_delivery_cfg *dc = &eg->cfg->delivery;
	struct shaping_values base;
	int rc;

	if (eg->cfg->shaping_rules)
		rc = shaping_load(eg->cfg->shaping_rules, &eg->shaping, err, errlen);
	else
		rc = (eg->shaping = shaping_empty()) ? 0 : -ENOMEM;
	if (rc < 0)
		return rc;
	if (eg->cfg->shaping_providers) {
		rc = providers_load(eg->cfg->shaping_providers, &eg->providers, err, errlen);
		if (rc < 0)
			return rc;
	}
	shaping_builtin(&base);
	base.max_connections = dc->max_connections_per_domain;
	base.max_messages_per_connection = dc->max_messages_per_connection;
	base.connect_timeout_ms = dc->connect_timeout_ms;
	base.max_age_ms = dc->max_age_ms;
	base.idle_timeout_ms = IDLE_KEEP_MS;
	base.n_retry = dc->n_retry < 32 ? dc->n_retry : 32;
	memcpy(base.retry_ms, dc->retry_ms, base.n_retry * sizeof base.retry_ms[0]);
	shaping_set_builtin(eg->shaping, &base);
	return 0;
}

int egress_create(struct loop *l, struct transport *t, struct resolver *r,
		  const struct sl_config *cfg, struct metrics *m, struct egress **out,
		  char *err, size_t errlen)
{
	struct egress *eg = calloc(1, sizeof *eg);
	int rc = -ENOMEM;

	if (!eg)
		return -ENOMEM;
	eg->loop = l;
	eg->t = t;
	eg->res = r;
	eg->cfg = cfg;
	eg->pool_rr = calloc(cfg->n_pools ? cfg->n_pools : 1, sizeof *eg->pool_rr);
	eg->c_sessions = metrics_counter(m, "sluice_egress_connections_total",
					 "Outbound connections opened", "");
	eg->c_connect_fail = metrics_counter(m, "sluice_egress_connect_failures_total",
					     "Outbound connection attempts that failed", "");
	eg->c_tls = metrics_counter(m, "sluice_egress_starttls_total",
				    "Outbound sessions that started TLS", "");
	eg->g_sessions = metrics_gauge(m, "sluice_egress_sessions", "Open outbound sessions", "");
	if (!eg->pool_rr || !eg->c_sessions || !eg->c_connect_fail || !eg->c_tls ||
	    !eg->g_sessions)
		goto fail;
	rc = egress_shaping_setup(eg, err, errlen);
	if (rc < 0)
		goto fail;
	rc = tls_ctx_client_create(cfg->delivery.tls_verify, NULL, &eg->tls);
	if (rc < 0)
		goto fail;
	*out = eg;
	return 0;
fail:
	if (eg->shaping)
		shaping_free(eg->shaping);
	if (eg->providers)
		providers_free(eg->providers);
	free(eg->pool_rr);
	free(eg);
	return rc;
}

void egress_set_warmup(struct egress *e, struct warmup_gate *gate)
{
	e->gate = gate;
}

void egress_set_reputation(struct egress *e, struct reputation *r)
{
	e->rep = r;
}

void egress_kick_all(struct egress *e)
{
	if (e->q)
		queue_foreach_ready(e->q, kick_one, e);
}

void egress_set_queue(struct egress *e, struct queue *q)
{
	e->q = q;
}

void egress_shutdown(struct egress *e)
{
	while (e->sessions)
		session_destroy(e->sessions);
}

void egress_destroy(struct egress *e)
{
	if (!e)
		return;
	egress_shutdown(e);
	if (e->tls)
		tls_ctx_destroy(e->tls);
	if (e->shaping)
		shaping_free(e->shaping);
	if (e->providers)
		providers_free(e->providers);
	free(e->pool_rr);
	free(e);
}

unsigned egress_sessions(const struct egress *e)
{
	return e->n_sessions;
}
