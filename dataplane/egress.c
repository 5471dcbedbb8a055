/* egress.c — outbound SMTP sessions over the transport; see egress.h. */
#include "egress.h"

#include "dane.h"
#include "err.h"
#include "metrics.h"
#include "providers.h"
#include "reputation.h"
#include "session_io.h"
#include "shaping.h"
#include "smtp_client.h"
#include "smtp_reply.h"
#include "sts_cache.h"
#include "tls.h"
#include "tls_policy.h"
#include "tls_report.h"
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
	struct dane_host *dane; /* a reference; NULL: DANE does not apply */
};

enum resolve_state { RS_NONE, RS_RESOLVING, RS_OK };

/*
 * The shaping state of one source IP of the pool at a site: its sessions,
 * rate limiters and idle sessions, under the rules merged for (that IP,
 * the site) — so an `ips:` rule binds only its IP.
 */
struct site_ip {
	unsigned n_conns, n_connecting;
	struct out_session *idle;    /* this IP's sessions waiting for work */
	struct shaping_values shape; /* (IP, pool, provider, site[, domain]) */
	struct rate_limiter conn_rate, msg_rate;
	/* Response-rule throttle: the factor and base rate last applied. */
	double rep_factor;
	struct shaping_rate rep_base;
};

/*
 * A site: the unit of shaping. Domain queues of one pool whose MX sets are
 * equal (same site key, same route port and TLS requirement) share one
 * site, and with it one ready list and, per source IP of the pool, the
 * connection count, the connection and message rate limiters, the idle
 * sessions and the session-level knobs (struct site_ip). A domain that a
 * shaping rule names (shaping_has_domain_rule) gets a site of its own, so
 * its rule is never diluted by the other domains of its MX set.
 */
struct site {
	struct egress *eg;
	struct site *hnext;    /* hash chain */
	struct site *all_next; /* every site */
	char *key;             /* pool \n site \n port/TLS policy [\n domain] */
	char *mx;              /* the site key (sorted MX set) */
	char *domain;          /* NULL, or the one domain with its own rules */
	char *pool;
	size_t pool_idx;
	enum tls_policy_mode tls_mode;
	uint64_t no_tls_until; /* a handshake failed: opportunistic TLS off until then */
	unsigned n_conns, n_connecting; /* sums over ip[] (the pool's view) */
	struct site_ip *ip;             /* per source IP of the pool */
	size_t n_ip, ip_rr;             /* ip_rr: next IP to try, round-robin */
	/* Member queues with ready work, served round-robin. */
	struct dq_egress *ready_head, *ready_tail;
	struct site *next_kick; /* on egress.kicks while a kick is due */
	bool kick_due;
	struct loop_timer rate_timer; /* a rate limit said "later" */
	struct loop_timer warm_timer; /* warm-up holds until the next window */
	char provider[64];
	int prov_id; /* the provider's warm-up gate id */
};

/* Egress state per domain queue: resolution, and the domain's own retry
 * policy. */
struct dq_egress {
	struct egress *eg;
	struct domain_queue *dq;
	struct dq_egress *all_prev, *all_next; /* every domain queue's state */
	enum resolve_state rs;
	uint64_t resolved_at, lookup;
	struct target *targets;
	size_t n_targets, good; /* good: the target that last connected */
	struct tls_policy tls;  /* the domain's effective TLS policy */
	bool dane;             /* a target is DANE_REQUIRED: a site of DANE domains */
	uint16_t port;
	char *mx;              /* site key of the MX set (NULL before a lookup) */
	struct site *site;     /* NULL before the first lookup */
	struct dq_egress *ready_next; /* on site->ready_* */
	bool on_ready;
	struct shaping_values shape; /* (pool, provider, site, domain) */
};

struct out_session {
	struct egress *eg;
	struct site *se;
	struct dq_egress *de;  /* whose targets the session connects to */
	struct dq_egress *dde; /* the domain of the current delivery */
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
	struct transport *t;             /* the pool's transport */
	struct sockaddr_storage src;
	socklen_t src_len;
	struct event_tls tls_ev; /* this session's TLS, for the event log */
	bool tls_counted;        /* its TLS-RPT result was counted */
	uint8_t *refused;        /* per recipient of d: refused at RCPT (reputation) */
	bool answered_rcpts;     /* refused[] describes the current delivery */
	uint32_t refused_cap;
	/* DANE (RFC 7672; docs/dane.md). INTEGRATION(tls_policy): DANE takes
	 * precedence over MTA-STS and the per-domain TLS policy (RFC 8461
	 * §2): a session with s->dane set is already mandatory, authenticated
	 * TLS. dane_outcome is what the event line's "dane" field reports
	 * (dane_outcome_name(): "none", "verified", "failed"). */
	struct dane_host *dane;         /* the target's DANE_REQUIRED state, a reference */
	enum dane_outcome dane_outcome;
	char dane_why[256];             /* why it failed, for the deferral text */
};

struct egress {
	struct loop *loop;
	struct transport *t;
	struct resolver *res;
	const struct sl_config *cfg;
	struct queue *q;
	struct tls_ctx *tls;        /* opportunistic, require: any certificate */
	struct tls_ctx *tls_verify; /* verify, mta-sts: the chain and name must verify */
	struct sts_cache *sts;      /* NULL: MTA-STS off */
	struct tls_report *rpt;
	struct transport **pool_t; /* per pool; NULL = t */
	unsigned n_sessions;
	struct out_session *sessions;
	bool starved;            /* the global connection cap refused a queue */
	bool slot_freed;         /* a session ended since */
	struct site *kicks;      /* sites to kick at the next tick */
	struct site **site_tab;  /* hash of sites by key */
	size_t n_site_tab, n_sites;
	struct site *sites;      /* every site */
	struct dq_egress *des;   /* every domain queue's state */
	struct shaping_rules *shaping;
	struct provider_table *providers; /* NULL: no provider rules */
	struct warmup_gate *gate;         /* NULL: no warm-up */
	struct reputation *rep;           /* NULL: no VERP, no response rules */
	bool **ip_paused;                 /* [pool][ip]: the DNSBL check paused it; NULL none yet */
	uint64_t *c_sessions, *c_connect_fail, *c_tls;
	uint64_t *c_dane_verified, *c_dane_failed, *c_dane_deferred;
	int64_t *g_sessions;
};

static const struct conn_handler session_handler;
static void session_drive(struct out_session *s);
static void session_destroy(struct out_session *s);
static void dane_note_failure(struct out_session *s);

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

static void site_kick(struct site *se);

static void on_rate_timer(struct loop_timer *t)
{
	site_kick((struct site *)((char *)t - offsetof(struct site, rate_timer)));
}

static void on_warm_timer(struct loop_timer *t)
{
	site_kick((struct site *)((char *)t - offsetof(struct site, warm_timer)));
}

/* The warm-up clock now (only meaningful with a gate). */
static uint64_t warm_now(const struct egress *eg)
{
	return warmup_gate_clock(eg->gate, loop_now_ms(eg->loop));
}

/* No IP of the pool may send to this provider now: hold the site (its
 * mail stays ready, no retry is counted) until warm-up time `at`. */
static void warm_wait(struct site *se, uint64_t now, uint64_t at)
{
	uint64_t delay = warmup_gate_real_delay(se->eg->gate, now, at);

	if (delay == UINT64_MAX)
		return; /* paused everywhere: an operator's resume kicks us */
	if (!loop_timer_armed(&se->warm_timer) ||
	    se->warm_timer.expire_ms > loop_now_ms(se->eg->loop) + delay)
		loop_timer_arm(se->eg->loop, &se->warm_timer, delay);
}

/* A rate limit said later: kick the site at `at` (or earlier if armed so). */
static void rate_wait_until(struct site *se, uint64_t at)
{
	uint64_t now = loop_now_ms(se->eg->loop);

	if (!loop_timer_armed(&se->rate_timer) || se->rate_timer.expire_ms > at)
		loop_timer_arm(se->eg->loop, &se->rate_timer, at > now ? at - now : 1);
}

/* A rate limit refused: come back when rl has a token. */
static void rate_wait(struct site *se, struct rate_limiter *rl)
{
	rate_wait_until(se, rate_next_ms(rl, loop_now_ms(se->eg->loop)));
}

static void kick_later(struct site *se)
{
	if (se->kick_due)
		return;
	se->kick_due = true;
	se->next_kick = se->eg->kicks;
	se->eg->kicks = se;
}

/* --- sites -------------------------------------------------------------- */

static uint64_t hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* An address without its port, as text. */
static void addr_text(const struct sockaddr_storage *a, char *buf, size_t len)
{
	if (a->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, buf, len);
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, buf, len);
}

/* The provider of a site key's MX hosts (comma-separated). */
static const char *site_provider(const struct egress *eg, const char *mx)
{
	const char *hosts[RESOLVER_MAX_HOSTS];
	char buf[SITE_KEY_MAX];
	size_t n = 0;

	if (!eg->providers || !mx)
		return NULL;
	snprintf(buf, sizeof buf, "%s", mx);
	for (char *p = buf, *tok; (tok = strsep(&p, ",")) && n < RESOLVER_MAX_HOSTS;)
		if (*tok)
			hosts[n++] = tok;
	return n ? provider_for_mxs(eg->providers, hosts, n) : NULL;
}

/* Resolve the shaping of every source IP at the site (after creation and
 * after a reload), keeping the rate limiters' fill. */
static void site_shape(struct site *se)
{
	struct egress *eg = se->eg;
	const struct sl_pool_cfg *pc = se->pool_idx < eg->cfg->n_pools ?
				       &eg->cfg->pools[se->pool_idx] : NULL;
	const char *provider = site_provider(eg, se->mx);
	uint64_t now = loop_now_ms(eg->loop);

	snprintf(se->provider, sizeof se->provider, "%s", provider ? provider : "");
	se->prov_id = 0;
	if (eg->gate) {
		int id = warmup_gate_provider(eg->gate, provider);

		se->prov_id = id < 0 ? 0 : id;
	}
	for (size_t i = 0; i < se->n_ip; i++) {
		struct site_ip *sp = &se->ip[i];
		char ip[INET6_ADDRSTRLEN] = "";

		if (pc && i < pc->n_ips)
			addr_text(&pc->ips[i].addr, ip, sizeof ip);
		shaping_resolve(eg->shaping,
				&(struct shaping_key){ .ip = *ip ? ip : NULL, .pool = se->pool,
						       .provider = provider, .site = se->mx,
						       .domain = se->domain },
				&sp->shape);
		rate_update(&sp->conn_rate, &sp->shape.connection_rate, 0, now);
		rate_update(&sp->msg_rate, &sp->shape.message_rate, 0, now);
	}
}

static int site_grow(struct egress *eg)
{
	size_t n = eg->n_site_tab ? eg->n_site_tab * 2 : 256;
	struct site **tab = calloc(n, sizeof *tab);

	if (!tab)
		return -ENOMEM;
	for (struct site *se = eg->sites; se; se = se->all_next) {
		size_t b = hash_key(se->key) & (n - 1);

		se->hnext = tab[b];
		tab[b] = se;
	}
	free(eg->site_tab);
	eg->site_tab = tab;
	eg->n_site_tab = n;
	return 0;
}

static void site_free(struct site *se)
{
	loop_timer_cancel(se->eg->loop, &se->rate_timer);
	loop_timer_cancel(se->eg->loop, &se->warm_timer);
	free(se->key);
	free(se->mx);
	free(se->domain);
	free(se->pool);
	free(se->ip);
	free(se);
}

/* The site of (pool, MX set, port, TLS policy[, domain]), created on
 * first use. NULL when out of memory. */
static struct site *site_get(struct egress *eg, const struct dq_egress *de, const char *domain)
{
	const char *pool = domain_queue_pool(de->dq);
	const struct sl_pool_cfg *pc = config_pool_by_name(eg->cfg, pool);
	char key[SITE_KEY_MAX + 600];
	struct site *se;
	size_t b;

	/* DANE domains never share a site (and so sessions) with domains
	 * whose insecure MX RRset leads to the same hosts: a session opened
	 * for one of those would carry their mail unauthenticated. */
	snprintf(key, sizeof key, "%s\n%s\n%u/%s%s\n%s", pool, de->mx, de->port,
		 tls_policy_name(de->tls.mode), de->dane ? "/dane" : "", domain ? domain : "");
	if (eg->n_site_tab) {
		for (se = eg->site_tab[hash_key(key) & (eg->n_site_tab - 1)]; se; se = se->hnext)
			if (!strcmp(se->key, key))
				return se;
	}
	if (eg->n_sites + 1 > eg->n_site_tab * 2 && site_grow(eg) < 0)
		return NULL;
	se = calloc(1, sizeof *se);
	if (!se)
		return NULL;
	se->eg = eg;
	se->key = strdup(key);
	se->mx = strdup(de->mx);
	se->pool = strdup(pool);
	se->domain = domain ? strdup(domain) : NULL;
	se->n_ip = pc && pc->n_ips ? pc->n_ips : 1;
	se->ip = calloc(se->n_ip, sizeof *se->ip);
	if (!se->key || !se->mx || !se->pool || (domain && !se->domain) || !se->ip) {
		site_free(se);
		return NULL;
	}
	se->pool_idx = pc ? (size_t)(pc - eg->cfg->pools) : 0;
	se->tls_mode = de->tls.mode;
	se->rate_timer.cb = on_rate_timer;
	se->warm_timer.cb = on_warm_timer;
	site_shape(se);
	for (size_t i = 0; i < se->n_ip; i++) {
		struct site_ip *sp = &se->ip[i];

		rate_init(&sp->conn_rate, &sp->shape.connection_rate, 0, loop_now_ms(eg->loop));
		rate_init(&sp->msg_rate, &sp->shape.message_rate, 0, loop_now_ms(eg->loop));
	}
	b = hash_key(key) & (eg->n_site_tab - 1);
	se->hnext = eg->site_tab[b];
	eg->site_tab[b] = se;
	se->all_next = eg->sites;
	eg->sites = se;
	eg->n_sites++;
	return se;
}

static void site_ready_remove(struct site *se, struct dq_egress *de)
{
	struct dq_egress **pp, *prev = NULL;

	if (!de->on_ready)
		return;
	for (pp = &se->ready_head; *pp; prev = *pp, pp = &(*pp)->ready_next)
		if (*pp == de) {
			*pp = de->ready_next;
			if (se->ready_tail == de)
				se->ready_tail = prev;
			break;
		}
	de->on_ready = false;
	de->ready_next = NULL;
}

static void site_ready_add(struct site *se, struct dq_egress *de)
{
	if (de->on_ready)
		return;
	de->on_ready = true;
	de->ready_next = NULL;
	if (se->ready_tail)
		se->ready_tail->ready_next = de;
	else
		se->ready_head = de;
	se->ready_tail = de;
}

/* The member queue to take the next delivery from (NULL: none ready);
 * queues that ran dry leave the list. */
static struct dq_egress *site_next_ready(struct site *se)
{
	struct dq_egress *de;

	while ((de = se->ready_head) && !domain_queue_ready(de->dq)) {
		se->ready_head = de->ready_next;
		if (!se->ready_head)
			se->ready_tail = NULL;
		de->on_ready = false;
		de->ready_next = NULL;
	}
	return de;
}

/* Move the head queue behind the others (round-robin over the domains). */
static void site_rotate(struct site *se)
{
	struct dq_egress *de = se->ready_head;

	if (!de || !de->ready_next)
		return;
	se->ready_head = de->ready_next;
	de->ready_next = NULL;
	se->ready_tail->ready_next = de;
	se->ready_tail = de;
}

/* Is more than n deliveries' worth of work ready at the site? Stops
 * counting past n, so a site with many domains costs O(n) at most. */
static bool site_ready_over(struct site *se, size_t n)
{
	size_t sum = 0;

	for (struct dq_egress *de = se->ready_head; de; de = de->ready_next) {
		sum += domain_queue_ready(de->dq);
		if (sum > n)
			return true;
	}
	return false;
}

/* A ready member whose lookup succeeded: new sessions connect to its
 * targets (the site's MX hosts). */
static struct dq_egress *site_connect_de(struct site *se)
{
	for (struct dq_egress *de = se->ready_head; de; de = de->ready_next)
		if (de->rs == RS_OK && de->n_targets && domain_queue_ready(de->dq))
			return de;
	return NULL;
}

/* Put de in the site its MX set, route and rules give it, and resolve the
 * domain's own shaping (its retry policy). */
static void dq_assign(struct dq_egress *de)
{
	struct egress *eg = de->eg;
	const char *domain = domain_queue_domain(de->dq);
	struct site *se;

	if (!de->mx)
		return;
	/* An MTA-STS domain's MX patterns are its own: so is its site. */
	se = site_get(eg, de, shaping_has_domain_rule(eg->shaping, domain) ||
			      de->tls.mode == TLS_POLICY_MTA_STS ||
			      de->tls.mode == TLS_POLICY_MTA_STS_TESTING ? domain : NULL);
	if (se && se != de->site) {
		if (de->site)
			site_ready_remove(de->site, de);
		de->site = se;
	}
	shaping_resolve(eg->shaping,
			&(struct shaping_key){ .pool = domain_queue_pool(de->dq),
					       .provider = site_provider(eg, de->mx),
					       .site = de->mx, .domain = domain },
			&de->shape);
}

/* The destination's MX hosts are known: its site key, then its site. */
static void dq_shape(struct dq_egress *de, const char *const *mx, size_t n_mx)
{
	char site[SITE_KEY_MAX];
	char *dup;

	if (!n_mx || site_key(mx, n_mx, site, sizeof site) < 0)
		snprintf(site, sizeof site, "%s", domain_queue_domain(de->dq));
	if (!de->mx || strcmp(de->mx, site)) {
		if (!(dup = strdup(site)))
			return;
		free(de->mx);
		de->mx = dup;
	}
	dq_assign(de);
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
		/* Until the first lookup: the shaping rules' defaults. */
		shaping_resolve(eg->shaping,
				&(struct shaping_key){ .pool = domain_queue_pool(dq),
						       .domain = domain_queue_domain(dq) },
				&de->shape);
		de->all_next = eg->des;
		if (eg->des)
			eg->des->all_prev = de;
		eg->des = de;
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

static void outcome_all_ready(struct dq_egress *de, const struct smtp_reply *r,
			      const struct event_tls *tls)
{
	struct rcpt_outcome o = de_outcome(de, r, NULL, NULL);

	o.tls = tls;
	domain_queue_fail_ready(de->eg->q, de->dq, &o);
}

/* --- resolution --------------------------------------------------------- */

static void targets_clear(struct dq_egress *de)
{
	for (size_t i = 0; i < de->n_targets; i++)
		dane_host_unref(de->targets[i].dane);
	free(de->targets);
	de->targets = NULL;
	de->n_targets = de->good = 0;
}

/* dane: a reference the target takes (may be NULL). */
static int add_target(struct dq_egress *de, const struct sockaddr_storage *a, const char *host,
		      uint16_t port, struct dane_host *dane)
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
	t->dane = dane_host_ref(dane);
	return 0;
}

/* RFC 7672 for MX host h: DANE_REQUIRED gives *dh (a reference the caller
 * drops); DANE_DEFER (a bogus or failed TLSA lookup) means the host must
 * not be used, and its reason lands in why. -ENOMEM counts as a deferral. */
static int dane_for_host(struct egress *eg, const struct mx_result *res, const struct mx_host *h,
			 struct dane_host **dh, char *why, size_t whylen)
{
	int st;

	*dh = NULL;
	if (!eg->cfg->delivery.dane)
		return DANE_NONE;
	st = dane_host_create(res->mx_sec, h, dh);
	if (st == DANE_DEFER || st < 0) {
		snprintf(why, whylen, "%s", st < 0 ? "out of memory" : dane_host_reason(*dh));
		dane_host_unref(*dh);
		*dh = NULL;
		return DANE_DEFER;
	}
	return st;
}

static void on_resolved(void *ctx, int err, const struct mx_result *res)
{
	struct dq_egress *de = ctx;
	const struct sl_route_cfg *route =
		config_route_for(de->eg->cfg, domain_queue_domain(de->dq));
	uint16_t port = route ? route->port : 25;
	struct smtp_reply r;
	char dane_why[200] = "";

	de->lookup = 0;
	de->rs = RS_NONE;
	targets_clear(de);
	de->dane = false;
	if (!err) {
		const char *mx[RESOLVER_MAX_HOSTS];
		size_t n_mx = 0;

		for (size_t i = 0; i < res->n_hosts; i++) {
			struct dane_host *dh = NULL;

			/* A host DANE says not to use now is skipped (RFC 7672
			 * §2.2.1); if every host is, the mail is deferred. A
			 * host with usable TLSA records is DANE's, whatever
			 * the domain's MTA-STS policy says (RFC 8461 §2). */
			if (tls_policy_allows_dane(de->tls.mode) &&
			    dane_for_host(de->eg, res, &res->hosts[i], &dh, dane_why,
					  sizeof dane_why) == DANE_DEFER)
				continue;
			if (!dh && !tls_policy_mx_allowed(&de->tls, res->hosts[i].name))
				continue; /* MTA-STS enforce: not a listed MX */
			for (size_t j = 0; j < res->hosts[i].n_addrs; j++)
				add_target(de, &res->hosts[i].addrs[j], res->hosts[i].name, port,
					   dh);
			de->dane |= dh != NULL;
			dane_host_unref(dh);
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
	if (!err && dane_why[0]) {
		static const struct event_tls dane_dnssec = {
			.policy = "dane", .failure = "dnssec-invalid"
		};

		(*de->eg->c_dane_deferred)++;
		tls_report_count(de->eg->rpt, domain_queue_domain(de->dq), TLS_POLICY_DANE,
				 TLS_RPT_DNSSEC_INVALID);
		r = local_reply(451, "4.7.5", "DANE: %s", dane_why);
		outcome_all_ready(de, &r, &dane_dnssec);
		return;
	}
	if (!err) {
		/* Every MX host failed the domain's MTA-STS policy (RFC 8461
		 * §4.2): defer, the policy or the MX set may change. */
		static const struct event_tls sts_mx = {
			.policy = "mta-sts", .failure = "validation-failure"
		};

		tls_report_count(de->eg->rpt, domain_queue_domain(de->dq), de->tls.mode,
				 TLS_RPT_VALIDATION_FAILURE);
		r = local_reply(451, "4.7.5", "no MX host of %s matches its MTA-STS policy",
				domain_queue_domain(de->dq));
		outcome_all_ready(de, &r, &sts_mx);
		return;
	}
	if (err == SL_ENOTFOUND)
		r = local_reply(550, "5.1.2", "Host or domain name not found: %s",
				domain_queue_domain(de->dq));
	else
		r = local_reply(451, "4.4.3", "DNS lookup for %s failed: %s",
				domain_queue_domain(de->dq), sl_strerror(err ? err : SL_EDNS));
	outcome_all_ready(de, &r, NULL);
}

/* The domain's effective TLS policy into de->tls: 1, or 0 while its
 * MTA-STS policy is being looked up the first time (the check's notify
 * kicks the queue). A static route's own TLS settings are all that apply
 * to a routed domain. */
static int dq_tls_policy(struct dq_egress *de, const char *domain,
			 const struct sl_route_cfg *route)
{
	struct egress *eg = de->eg;
	enum tls_policy_mode mode = tls_policy_configured(eg->cfg, domain, route);
	const struct mta_sts_policy *sts = NULL;

	if (eg->sts && !route && mode == TLS_POLICY_OPPORTUNISTIC) {
		int rc = sts_cache_get(eg->sts, domain, loop_now_ms(eg->loop), &sts);

		if (rc == 0)
			return 0;
		if (rc < 0)
			sts = NULL;
	}
	de->tls = tls_policy_effective(mode, sts);
	return 1;
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
	if (dq_tls_policy(de, domain, route) == 0)
		return false; /* the MTA-STS check kicks the queue when done */
	de->port = route ? route->port : 25;
	if (route) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET, route->host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
		} else if (inet_pton(AF_INET6, route->host, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
		}
		de->dane = false; /* routes are operator-chosen: no DANE */
		if (ss.ss_family) {
			targets_clear(de);
			if (add_target(de, &ss, route->host, route->port, NULL) < 0)
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
		outcome_all_ready(de, &r, NULL);
		return false;
	}
	return false;
}

/* --- sessions ----------------------------------------------------------- */

static void session_reply_all(struct out_session *s, const struct smtp_reply *r)
{
	struct rcpt_outcome o;

	if (!s->d)
		return;
	o = de_outcome(s->dde, r, s->src_ip, s->site);
	o.tls = s->cl ? &s->tls_ev : NULL;
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
	for (pp = &s->se->ip[s->ip_idx].idle; *pp; pp = &(*pp)->next_idle)
		if (*pp == s) {
			*pp = s->next_idle;
			break;
		}
	s->idle = false;
}

static void session_destroy(struct out_session *s)
{
	struct egress *eg = s->eg;
	struct site *se = s->se;

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
	dane_host_unref(s->dane);
	if (s->connected) {
		se->n_conns--;
		se->ip[s->ip_idx].n_conns--;
	} else {
		se->n_connecting--;
		se->ip[s->ip_idx].n_connecting--;
	}
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
	/* A connection slot came free: its own site may want it (say the
	 * session ended at max_messages_per_connection with work left). */
	kick_later(se);
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

/* --- DANE (RFC 7672) ----------------------------------------------------- */

/* The TLS policy s runs under: its site's, or DANE's when its MX host has
 * usable TLSA records (tls_policy.h). */
static enum tls_policy_mode session_tls_mode(const struct out_session *s)
{
	return s->dane ? TLS_POLICY_DANE : s->se->tls_mode;
}

/* STARTTLS for s: with DANE, the conn must match the host's TLSA records
 * (dane_host_apply); otherwise the policy's context: the one that verifies
 * certificates for verify and MTA-STS enforce, the plain one else. */
static int session_start_tls(struct out_session *s)
{
	struct tls_conn *c;
	int rc;

	if (!s->dane)
		return session_io_start_tls(&s->io, tls_policy_verifies(s->se->tls_mode) ?
					    s->eg->tls_verify : s->eg->tls, false, s->site);
	rc = tls_conn_create(s->eg->tls, false, s->site, &c);
	if (rc < 0)
		return rc;
	rc = dane_host_apply(s->dane, c);
	if (rc < 0) {
		tls_conn_destroy(c);
		dane_note_failure(s);
		return rc;
	}
	return session_io_start_tls_conn(&s->io, c);
}

/* The DANE handshake of s failed: remember why (the TLS detail). */
static void dane_note_failure(struct out_session *s)
{
	char detail[200];

	if (s->dane_outcome == DANE_OUTCOME_FAILED)
		return;
	tls_last_error(detail, sizeof detail);
	s->dane_outcome = DANE_OUTCOME_FAILED;
	(*s->eg->c_dane_failed)++;
	if (strstr(detail, "DANE TLSA") || strstr(detail, "dane"))
		snprintf(s->dane_why, sizeof s->dane_why, "no matching TLSA record for %.100s (%.120s)",
			 s->site, detail);
	else
		snprintf(s->dane_why, sizeof s->dane_why, "TLS with %.100s failed (%.120s)", s->site,
			 detail[0] ? detail : "handshake failed");
}

/* The handshake of s completed: did a TLSA record authenticate the peer? */
static bool dane_verified(struct out_session *s)
{
	if (tls_conn_dane_verified(s->io.tls)) {
		s->dane_outcome = DANE_OUTCOME_VERIFIED;
		(*s->eg->c_dane_verified)++;
		return true;
	}
	dane_note_failure(s);
	return false;
}

/* A DANE session failed before any transaction with the client's local
 * reply r. A TLS failure (4.7.x: STARTTLS not offered or refused, the
 * handshake or the TLSA match failed) becomes "DANE: why" in *out (still
 * 4xx: RFC 7672 §2.2 defers, never bounces); anything else stays r. */
static const struct smtp_reply *dane_failed(struct out_session *s, const struct smtp_reply *r,
					    struct smtp_reply *out)
{
	if (s->dane_outcome != DANE_OUTCOME_FAILED) {
		if (strncmp(r->enhanced, "4.7.", 4) != 0)
			return r;
		s->dane_outcome = DANE_OUTCOME_FAILED;
		(*s->eg->c_dane_failed)++;
		snprintf(s->dane_why, sizeof s->dane_why, "TLSA records for %.100s require TLS: %.120s",
			 s->site, r->text);
	}
	/* The next attempt starts with the next MX host or address
	 * (RFC 7672 §2.2: a host that fails DANE is skipped), not this one. */
	if (s->de->n_targets > 1)
		s->de->good = (s->target + 1) % s->de->n_targets;
	*out = local_reply(451, r->enhanced[0] ? r->enhanced : "4.7.5", "DANE: %s", s->dane_why);
	return out;
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
	reputation_reply(s->eg->rep, m, r, s->src_ip, s->se->provider);
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
			reputation_reply(s->eg->rep, &none, r, s->src_ip, s->se->provider);
		return;
	}
	m = delivery_msg(s->d);
	reputation_reply(s->eg->rep, m, r, s->src_ip, s->se->provider);
	for (uint32_t i = 0; i < s->d->n_rcpts; i++)
		if (!s->answered_rcpts || i >= s->refused_cap || !s->refused[i])
			reputation_outcome(s->eg->rep, m, m->rcpts[s->d->rcpt_idx[i]].addr, r);
	s->answered_rcpts = false;
}

/* May s's source IP still send to its provider (a response rule may have
 * suspended it since the session opened)? */
static bool rep_session_may_send(struct out_session *s)
{
	return reputation_may_send(s->eg->rep, s->se->provider, s->src_ip, NULL, NULL);
}

/* A response rule suspended m's tenant towards this provider (scope
 * tenant): its delivery is deferred locally (retried on its schedule,
 * never bounced for this) and s takes the next one. */
static bool rep_tenant_suspended(struct out_session *s, const struct spool_msg *m)
{
	struct smtp_reply r;

	if (reputation_may_send(s->eg->rep, s->se->provider, s->src_ip, m->tenant, NULL))
		return false;
	r = local_reply(451, "4.7.0", "tenant %s suspended towards %s by a receiver response rule",
			m->tenant, s->se->provider[0] ? s->se->provider : "this destination");
	session_reply_all(s, &r);
	return true;
}

/* The message rate of (source IP i, site) times the response rules' factor
 * for (source_ip, provider); a rate without a limit stays unlimited. */
static void rep_throttle(struct site *se, size_t i, const char *source_ip)
{
	struct site_ip *sp = &se->ip[i];
	double f = reputation_rate_factor(se->eg->rep, se->provider, source_ip);
	struct shaping_rate rt = sp->shape.message_rate;

	if (f == sp->rep_factor && rt.count == sp->rep_base.count && rt.per_ms == sp->rep_base.per_ms)
		return;
	sp->rep_factor = f;
	sp->rep_base = rt;
	if (rt.count && f > 0 && f < 1)
		rt.per_ms = (uint64_t)((double)rt.per_ms / f);
	rate_update(&sp->msg_rate, &rt, 0, loop_now_ms(se->eg->loop));
}

/* Has a response rule suspended source IP i of se's pool towards se's
 * provider? Then *at (loop ms) is lowered to when the suspension ends. */
static bool rep_ip_suspended(struct site *se, size_t i, uint64_t now, uint64_t *at)
{
	const struct sl_pool_cfg *pool = &se->eg->cfg->pools[se->pool_idx];
	uint64_t until, wall = loop_wall_ms();
	char ip[INET6_ADDRSTRLEN];

	if (!se->eg->rep || i >= pool->n_ips)
		return false;
	addr_text(&pool->ips[i].addr, ip, sizeof ip);
	if (reputation_may_send(se->eg->rep, se->provider, ip, NULL, &until))
		return false;
	until = now + (until > wall ? until - wall : 1);
	if (until < *at)
		*at = until;
	return true;
}

/* Has the DNSBL check paused source IP i of pool? */
static bool ip_paused(const struct egress *eg, size_t pool, size_t i)
{
	return eg->ip_paused && eg->ip_paused[pool] && eg->ip_paused[pool][i];
}

static int session_connect(struct out_session *s)
{
	struct dq_egress *de = s->de;
	struct target *t;

	if (s->target >= de->n_targets)
		return -EHOSTUNREACH;
	t = &de->targets[s->target];
	snprintf(s->site, sizeof s->site, "%s", t->host);
	dane_host_unref(s->dane);
	s->dane = dane_host_ref(t->dane);
	return transport_connect(s->t, (struct sockaddr *)&s->src, s->src_len,
				 (struct sockaddr *)&t->addr, t->len,
				 s->se->ip[s->ip_idx].shape.connect_timeout_ms, &session_handler, s,
				 &s->io.conn);
}

/* May source IP i open a session to the site now? No when it is at its
 * max_connections (a session's end kicks the site), a response rule
 * suspended it towards the site's provider, or its connection or message
 * rate has no token (then *at = min(*at, when the wait ends)). */
static bool site_ip_can_open(struct site *se, size_t i, uint64_t now, uint64_t *at)
{
	struct site_ip *sp = &se->ip[i];
	uint32_t max = sp->shape.max_connections;
	uint64_t t;

	if (max && sp->n_conns + sp->n_connecting >= max)
		return false;
	if (ip_paused(se->eg, se->pool_idx, i))
		return false; /* egress_pause_ip(false) kicks every queue */
	if (rep_ip_suspended(se, i, now, at))
		return false;
	if (!rate_available(&sp->conn_rate, now)) {
		t = rate_next_ms(&sp->conn_rate, now);
	} else if (!rate_available(&sp->msg_rate, now)) {
		t = rate_next_ms(&sp->msg_rate, now);
	} else {
		return true;
	}
	if (t < *at)
		*at = t;
	return false;
}

struct ip_usable_ctx {
	struct site *se;
	uint64_t now, at;
};

static bool ip_usable(void *ctx, size_t ip)
{
	struct ip_usable_ctx *c = ctx;

	return ip < c->se->n_ip && site_ip_can_open(c->se, ip, c->now, &c->at);
}

/* The source IP for a new session: the warm-up gate's choice among the IPs
 * whose own (IP, site) limits allow a session now, or round-robin over
 * those. -EAGAIN when none may: the site is kicked again when the earliest
 * one can (a rate's next token, a warm-up window, or a session's end). */
static int site_pick_ip(struct site *se)
{
	struct egress *eg = se->eg;
	size_t pi = se->pool_idx;
	struct ip_usable_ctx c = { .se = se, .now = loop_now_ms(eg->loop), .at = UINT64_MAX };
	int rc = -EAGAIN;

	if (eg->gate && warmup_gate_pool_gated(eg->gate, pi)) {
		uint64_t now = warm_now(eg), next;

		rc = warmup_gate_pick_usable(eg->gate, pi, se->prov_id, now, ip_usable, &c,
					     &next);
		if (rc == -EAGAIN)
			warm_wait(se, now, next);
	} else {
		for (size_t k = 0; k < se->n_ip; k++) {
			size_t i = (se->ip_rr + k) % se->n_ip;

			if (site_ip_can_open(se, i, c.now, &c.at)) {
				se->ip_rr = i + 1;
				rc = (int)i;
				break;
			}
		}
	}
	if (rc == -EBUSY || rc == -EAGAIN) {
		if (c.at != UINT64_MAX)
			rate_wait_until(se, c.at);
		return -EAGAIN;
	}
	if (rc >= 0)
		rate_allow(&se->ip[rc].conn_rate, c.now, 1);
	return rc;
}

/* A new session for the site, connecting to de's targets. */
static int session_start(struct site *se, struct dq_egress *de)
{
	struct egress *eg = se->eg;
	size_t pi = se->pool_idx, ii;
	const struct sl_pool_cfg *pool = &eg->cfg->pools[pi];
	const struct sl_source_ip_cfg *ip;
	struct out_session *s;
	int rc;

	rc = site_pick_ip(se);
	if (rc < 0)
		return rc;
	ii = (size_t)rc;
	if (ii >= pool->n_ips)
		return -EINVAL;
	ip = &pool->ips[ii];
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->eg = eg;
	s->se = se;
	s->de = s->dde = de;
	s->t = eg->pool_t[pi] ? eg->pool_t[pi] : eg->t;
	s->src = ip->addr;
	s->src_len = ip->addr_len;
	s->ehlo = ip->ehlo;
	s->ip_idx = ii;
	s->timer.cb = session_timeout;
	s->target = de->good < de->n_targets ? de->good : 0;
	s->started_ms = loop_now_ms(eg->loop);
	addr_text(&ip->addr, s->src_ip, sizeof s->src_ip);
	rc = session_connect(s);
	if (rc < 0) {
		free(s);
		return rc;
	}
	s->next = eg->sessions;
	if (s->next)
		s->next->prev = s;
	eg->sessions = s;
	se->n_connecting++;
	se->ip[ii].n_connecting++;
	eg->n_sessions++;
	(*eg->g_sessions)++;
	(*eg->c_sessions)++;
	return 0;
}

static void session_park(struct out_session *s)
{
	struct site_ip *sp = &s->se->ip[s->ip_idx];

	s->idle = true;
	s->next_idle = sp->idle;
	sp->idle = s;
	loop_timer_arm(s->eg->loop, &s->timer, sp->shape.idle_timeout_ms);
}

/* Give s the next ready delivery of any domain of its site, round-robin
 * over the domains (false: none, or its IP's message rate says later; s
 * is then parked idle or QUITs). One transaction carries one delivery:
 * recipients of one domain. */
static bool session_take_work(struct out_session *s)
{
	struct egress *eg = s->eg;
	struct site *se = s->se;
	struct site_ip *sp = &se->ip[s->ip_idx];
	struct dq_egress *de;
	const struct spool_msg *m;
	struct smtp_client_msg cm;
	const char **rcpts;
	char verp[VERP_ADDR_MAX];
	int rc;

	if (sp->shape.max_messages_per_connection &&
	    s->n_msgs >= sp->shape.max_messages_per_connection) {
		smtp_client_quit(s->cl);
		return false;
	}
	if (!(de = site_next_ready(se))) {
		session_park(s);
		return false;
	}
	if ((eg->rep && !rep_session_may_send(s)) || ip_paused(eg, se->pool_idx, s->ip_idx)) {
		smtp_client_quit(s->cl);
		return false;
	}
	if (eg->rep)
		rep_throttle(se, s->ip_idx, s->src_ip);
	if (!rate_allow(&sp->msg_rate, loop_now_ms(eg->loop), 1)) {
		rate_wait(se, &sp->msg_rate);
		session_park(s);
		return false;
	}
	if (eg->gate && !warmup_gate_take(eg->gate, se->pool_idx, s->ip_idx, se->prov_id,
					  warm_now(eg))) {
		/* This IP may not send to the provider now: end the session;
		 * its end kicks the queue, which picks another IP or holds. */
		smtp_client_quit(s->cl);
		return false;
	}
	s->d = domain_queue_take(de->dq);
	s->dde = de;
	site_rotate(se);
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

/* --- TLS outcome: the event log's "tls" and the TLS-RPT counters ------- */

/* Count s's TLS result once, for policies that report (not none or
 * opportunistic), under the domain whose targets s connected to. */
static void session_tls_count(struct out_session *s, enum tls_rpt_result r)
{
	enum tls_policy_mode m = session_tls_mode(s);

	if (s->tls_counted || m == TLS_POLICY_NONE || m == TLS_POLICY_OPPORTUNISTIC)
		return;
	s->tls_counted = true;
	tls_report_count(s->eg->rpt, domain_queue_domain(s->de->dq), m, r);
}

/* The result under the domain's policy as far as s got: a testing MTA-STS
 * policy also fails for an MX host outside its patterns. */
static enum tls_rpt_result session_tls_result(struct out_session *s, enum tls_rpt_result r)
{
	if (r == TLS_RPT_SUCCESS && session_tls_mode(s) == TLS_POLICY_MTA_STS_TESTING &&
	    s->de->tls.sts && !mta_sts_mx_match(s->de->tls.sts, s->site))
		return TLS_RPT_VALIDATION_FAILURE;
	return r;
}

/* The handshake finished. Verifying policies only get here verified; a
 * testing policy counts an unverified certificate as its failure. */
static void session_tls_ready(struct out_session *s)
{
	struct tls_conn *tc = s->io.tls;
	enum tls_rpt_result r = TLS_RPT_SUCCESS;

	s->tls_ev.active = true;
	s->tls_ev.version = tls_conn_version(tc);
	s->tls_ev.cipher = tls_conn_cipher(tc);
	s->tls_ev.verified = tls_conn_peer_verified(tc);
	if (session_tls_mode(s) == TLS_POLICY_MTA_STS_TESTING && !s->tls_ev.verified)
		r = tls_rpt_from_verify(tls_conn_verify_status(tc));
	r = session_tls_result(s, r);
	if (r != TLS_RPT_SUCCESS && session_tls_mode(s) == TLS_POLICY_MTA_STS_TESTING)
		s->tls_ev.failure = tls_rpt_result_name(r);
	session_tls_count(s, r);
}

/* The handshake failed (the certificate, or anything else). */
static void session_tls_failed(struct out_session *s)
{
	enum tls_verify_status st = s->io.tls ? tls_conn_verify_status(s->io.tls) :
				    TLS_VERIFY_NO_CERT;
	enum tls_rpt_result r = st == TLS_VERIFY_OK || st == TLS_VERIFY_NO_CERT ?
				TLS_RPT_VALIDATION_FAILURE : tls_rpt_from_verify(st);

	enum tls_policy_mode m = session_tls_mode(s);

	if (m != TLS_POLICY_NONE && m != TLS_POLICY_OPPORTUNISTIC)
		s->tls_ev.failure = tls_rpt_result_name(r);
	session_tls_count(s, r);
}

/* The session goes on (or failed) without TLS: the receiver did not offer
 * or refused STARTTLS, or the policy did not try it. */
static void session_tls_plain(struct out_session *s)
{
	enum tls_policy_mode m = session_tls_mode(s);

	if (m == TLS_POLICY_NONE || m == TLS_POLICY_OPPORTUNISTIC || s->tls_counted)
		return;
	/* Offered but not tried: the plaintext hour after a failed
	 * handshake, which was counted then. */
	if (s->io.tls || (!tls_policy_mandatory(m) && smtp_client_has_ext(s->cl,
									  SMTP_CLIENT_EXT_STARTTLS)))
		return;
	s->tls_ev.failure = tls_rpt_result_name(TLS_RPT_STARTTLS_NOT_SUPPORTED);
	session_tls_count(s, TLS_RPT_STARTTLS_NOT_SUPPORTED);
}

/* Run the client's events until it needs input; flush its output. */
static void session_drive(struct out_session *s)
{
	struct egress *eg = s->eg;
	struct smtp_client_event ev;
	struct rcpt_outcome o;
	struct smtp_reply dr;
	int kind, rc;

	for (;;) {
		kind = smtp_client_next(s->cl, &ev);
		if (kind == SMTP_CLIENT_EV_NONE)
			break;
		switch (kind) {
		case SMTP_CLIENT_EV_STARTTLS:
			if (session_io_flush(&s->io, smtp_client_output(s->cl)) < 0 ||
			    session_start_tls(s) < 0) {
				session_tls_failed(s);
				smtp_client_tls_failed(s->cl);
				continue;
			}
			(*eg->c_tls)++;
			return; /* wait for the handshake */
		case SMTP_CLIENT_EV_READY:
			if (!s->ready && !smtp_client_tls_active(s->cl))
				session_tls_plain(s); /* STARTTLS not offered (or not tried) */
			s->ready = true;
			session_take_work(s);
			break;
		case SMTP_CLIENT_EV_RCPT:
			if (s->d) {
				s->answered = true;
				rep_rcpt_refused(s, ev.rcpt, ev.reply);
				o = de_outcome(s->dde, ev.reply, s->src_ip, s->site);
				o.tls = &s->tls_ev;
				delivery_rcpt_result(eg->q, s->d, ev.rcpt, &o);
			}
			break;
		case SMTP_CLIENT_EV_MESSAGE_DONE:
			s->n_msgs++;
			rep_message_done(s, ev.reply);
			session_reply_all(s, ev.reply);
			break;
		case SMTP_CLIENT_EV_FAILED:
			if (s->dane && !s->ready && ev.local)
				ev.reply = dane_failed(s, ev.reply, &dr);
			/* 4.7.4: the client's "TLS required but STARTTLS not
			 * offered / refused" (smtp_client.h). */
			if (ev.local && !strcmp(ev.reply->enhanced, "4.7.4"))
				session_tls_plain(s);
			if (!ev.local)
				rep_message_done(s, ev.reply);
			if (s->d && ev.local) {
				session_lost(s, ev.reply);
			} else if (s->d) {
				session_reply_all(s, ev.reply);
			} else if (!s->ready) {
				/* The receiver refused us before any transaction:
				 * the domain's waiting mail shares that fate. */
				outcome_all_ready(s->de, ev.reply, &s->tls_ev);
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
	bool mandatory;
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
			outcome_all_ready(de, &r, NULL);
		}
		session_destroy(s);
		return;
	}
	de->good = s->target;
	s->se->n_connecting--;
	s->se->n_conns++;
	s->se->ip[s->ip_idx].n_connecting--;
	s->se->ip[s->ip_idx].n_conns++;
	s->connected = true;
	/* DANE and the other mandatory policies never fall back to plaintext. */
	mandatory = tls_policy_mandatory(session_tls_mode(s));
	s->tls_ev = (struct event_tls){ .policy = tls_policy_name(session_tls_mode(s)) };
	p = (struct smtp_client_params){
		.ehlo_name = s->ehlo,
		.tls_available = eg->tls != NULL && tls_policy_tries_tls(session_tls_mode(s)) &&
				 (mandatory || loop_now_ms(eg->loop) >= s->se->no_tls_until),
		.require_tls = mandatory,
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
			 * is retried in plaintext, not deferred forever. Never
			 * for DANE: its TLSA records say TLS must be used. */
			if (s->dane)
				dane_note_failure(s);
			else if (!tls_policy_mandatory(s->se->tls_mode))
				s->se->no_tls_until = loop_now_ms(s->eg->loop) + NO_TLS_MS;
			session_tls_failed(s);
			smtp_client_tls_failed(s->cl);
			session_drive(s);
			return;
		}
		session_destroy(s);
		return;
	}
	if (rc == SESSION_IO_TLS_READY && s->dane && !dane_verified(s)) {
		session_tls_failed(s);
		smtp_client_tls_failed(s->cl);
		session_drive(s);
		return;
	}
	if (rc == SESSION_IO_TLS_READY) {
		session_tls_ready(s);
		smtp_client_tls_started(s->cl);
	}
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

/* Idle sessions of the site take ready work first (they are connected
 * already), IP by IP round-robin, each IP while its message rate allows;
 * then new sessions open while there is more work than sessions
 * connecting, from source IPs whose own max_connections and rates allow
 * (site_pick_ip), up to the global delivery.max_connections. */
static void site_kick(struct site *se)
{
	struct egress *eg = se->eg;
	struct dq_egress *de;
	size_t first = se->ip_rr;

	if (!eg->q)
		return;
	for (size_t k = 0; k < se->n_ip && site_next_ready(se); k++) {
		struct site_ip *sp = &se->ip[(first + k) % se->n_ip];

		while (sp->idle && site_next_ready(se)) {
			struct out_session *s = sp->idle;
			bool took;

			session_unidle(s);
			loop_timer_arm(eg->loop, &s->timer, eg->cfg->delivery.command_timeout_ms);
			took = session_take_work(s);
			session_drive(s);
			if (!took && s->idle)
				break; /* this IP's message rate says later; its timer kicks */
		}
	}
	while (site_ready_over(se, se->n_connecting)) {
		if (!(de = site_connect_de(se)))
			return;
		if (eg->n_sessions >= eg->cfg->delivery.max_connections) {
			eg->starved = true;
			return;
		}
		if (session_start(se, de) < 0)
			return;
	}
}

void egress_kick(void *ctx, struct domain_queue *dq)
{
	struct egress *eg = ctx;
	struct dq_egress *de = dq_state(eg, dq);

	if (!de || !eg->q || !domain_queue_ready(dq))
		return;
	/* A lookup under way (first or refresh) kicks again when done;
	 * meanwhile a site known from the last lookup keeps serving. */
	dq_resolve(de);
	if (!de->site || !domain_queue_ready(dq))
		return;
	site_ready_add(de->site, de);
	site_kick(de->site);
}

void egress_forget(void *egress, void *state)
{
	struct dq_egress *de = state;
	struct egress *eg = de->eg;

	(void)egress;
	if (de->site)
		site_ready_remove(de->site, de);
	if (de->all_prev)
		de->all_prev->all_next = de->all_next;
	else
		eg->des = de->all_next;
	if (de->all_next)
		de->all_next->all_prev = de->all_prev;
	if (de->lookup)
		resolver_cancel(eg->res, de->lookup);
	targets_clear(de);
	free(de->mx);
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
		struct site *se = e->kicks;

		e->kicks = se->next_kick;
		se->kick_due = false;
		site_kick(se);
	}
	if (!e->starved || !e->slot_freed)
		return;
	e->starved = e->slot_freed = false;
	queue_foreach_ready(e->q, kick_one, e);
}

/* --- lifecycle ---------------------------------------------------------- */

/* Load the shaping rules and provider table the config names, with
 * delivery.* as the builtin layer under them (and as everything when no
 * rules file is configured). Nothing changes in eg. */
static int shaping_setup(const struct sl_config *cfg, struct shaping_rules **rules,
			 struct provider_table **providers, char *err, size_t errlen)
{
	const struct sl_delivery_cfg *dc = &cfg->delivery;
	struct shaping_values base;
	int rc;

	*rules = NULL;
	*providers = NULL;
	const char *file = cfg->shaping_rules;

	if (cfg->shaping_rules)
		rc = shaping_load(cfg->shaping_rules, rules, err, errlen);
	else
		rc = (*rules = shaping_empty()) ? 0 : -ENOMEM;
	if (rc < 0)
		goto fail;
	if (cfg->shaping_providers) {
		file = cfg->shaping_providers;
		rc = providers_load(cfg->shaping_providers, providers, err, errlen);
		if (rc < 0)
			goto fail;
	}
	shaping_builtin(&base);
	base.max_connections = dc->max_connections_per_domain;
	base.max_messages_per_connection = dc->max_messages_per_connection;
	base.connect_timeout_ms = dc->connect_timeout_ms;
	base.max_age_ms = dc->max_age_ms;
	base.idle_timeout_ms = IDLE_KEEP_MS;
	base.n_retry = dc->n_retry < 32 ? dc->n_retry : 32;
	memcpy(base.retry_ms, dc->retry_ms, base.n_retry * sizeof base.retry_ms[0]);
	shaping_set_builtin(*rules, &base);
	return 0;
fail:
	if (*rules)
		shaping_free(*rules);
	*rules = NULL;
	if (rc != SL_ECONFIG && err && errlen)
		snprintf(err, errlen, "%s: %s", file ? file : "shaping", sl_strerror(rc));
	return rc;
}

/* Apply the current rules, providers and gate to every site and domain:
 * re-resolve each site's shaping (rate limiters keep their fill, so a
 * reload is not a fresh burst), move domains whose site key changed (a
 * domain rule added or removed), then kick everything with ready work. */
static void egress_reshape(struct egress *e)
{
	for (struct site *se = e->sites; se; se = se->all_next)
		site_shape(se);
	for (struct dq_egress *de = e->des; de; de = de->all_next)
		dq_assign(de);
	egress_kick_all(e);
}

/* An MTA-STS check of domain finished: count its failure, and have the
 * domain's queues look at their policy (and MX set) again. */
static void on_sts_checked(void *ctx, const char *domain, enum tls_rpt_result failure)
{
	struct egress *eg = ctx;
	uint64_t now = loop_now_ms(eg->loop);

	if (failure != TLS_RPT_SUCCESS)
		tls_report_count(eg->rpt, domain, TLS_POLICY_MTA_STS, failure);
	for (struct dq_egress *de = eg->des, *next; de; de = next) {
		next = de->all_next;
		if (strcasecmp(domain_queue_domain(de->dq), domain))
			continue;
		if (de->rs == RS_OK)
			de->resolved_at = now - RESOLVE_TTL_MS;
		egress_kick(eg, de->dq);
	}
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
	eg->pool_t = calloc(cfg->n_pools ? cfg->n_pools : 1, sizeof *eg->pool_t);
	eg->c_sessions = metrics_counter(m, "sluice_egress_connections_total",
					 "Outbound connections opened", "");
	eg->c_connect_fail = metrics_counter(m, "sluice_egress_connect_failures_total",
					     "Outbound connection attempts that failed", "");
	eg->c_tls = metrics_counter(m, "sluice_egress_starttls_total",
				    "Outbound sessions that started TLS", "");
	eg->g_sessions = metrics_gauge(m, "sluice_egress_sessions", "Open outbound sessions", "");
	eg->c_dane_verified = metrics_counter(m, "sluice_dane_verified_total",
					      "Outbound sessions whose peer a DANE TLSA record authenticated", "");
	eg->c_dane_failed = metrics_counter(m, "sluice_dane_failed_total",
					    "DANE sessions that failed: no STARTTLS or no matching TLSA record", "");
	eg->c_dane_deferred = metrics_counter(m, "sluice_dane_lookup_deferred_total",
					      "Destinations deferred because their TLSA lookups were bogus or failed", "");
	if (!eg->pool_t || !eg->c_sessions || !eg->c_connect_fail || !eg->c_tls ||
	    !eg->g_sessions || !eg->c_dane_verified || !eg->c_dane_failed || !eg->c_dane_deferred)
		goto fail;
	rc = shaping_setup(cfg, &eg->shaping, &eg->providers, err, errlen);
	if (rc < 0)
		goto fail;
	/* Both load the CA bundle: the opportunistic one to tell a testing
	 * MTA-STS policy whether the certificate would have verified. */
	rc = tls_ctx_client_create(false, cfg->delivery.tls_ca_file, &eg->tls);
	if (rc < 0 || (rc = tls_ctx_client_create(true, cfg->delivery.tls_ca_file,
						   &eg->tls_verify)) < 0) {
		if (err && errlen)
			snprintf(err, errlen, "TLS client context (CA bundle %s): %s",
				 cfg->delivery.tls_ca_file ? cfg->delivery.tls_ca_file : "system",
				 sl_strerror(rc));
		goto fail;
	}
	if ((rc = tls_report_create(m, &eg->rpt)) < 0)
		goto fail;
	if (cfg->delivery.mta_sts &&
	    (rc = sts_cache_create(l, r, cfg->delivery.tls_ca_file, on_sts_checked, eg,
				   &eg->sts)) < 0)
		goto fail;
	if (cfg->delivery.dane && (rc = tls_ctx_enable_dane(eg->tls)) < 0)
		goto fail;
	*out = eg;
	return 0;
fail:
	if (eg->tls)
		tls_ctx_destroy(eg->tls);
	if (eg->tls_verify)
		tls_ctx_destroy(eg->tls_verify);
	tls_report_destroy(eg->rpt);
	if (eg->shaping)
		shaping_free(eg->shaping);
	if (eg->providers)
		providers_free(eg->providers);
	free(eg->pool_t);
	free(eg);
	return rc;
}

int egress_reload(struct egress *e, char *err, size_t errlen)
{
	struct shaping_rules *rules;
	struct provider_table *providers;
	int rc = shaping_setup(e->cfg, &rules, &providers, err, errlen);

	if (rc < 0)
		return rc;
	shaping_free(e->shaping);
	if (e->providers)
		providers_free(e->providers);
	e->shaping = rules;
	e->providers = providers;
	egress_reshape(e);
	return 0;
}

void egress_set_warmup(struct egress *e, struct warmup_gate *gate)
{
	e->gate = gate;
	/* Provider ids are the gate's: look them up again. */
	for (struct site *se = e->sites; se; se = se->all_next) {
		loop_timer_cancel(e->loop, &se->warm_timer);
		site_shape(se);
	}
	egress_kick_all(e);
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

void egress_set_pool_transport(struct egress *e, size_t pool, struct transport *t)
{
	if (pool < e->cfg->n_pools)
		e->pool_t[pool] = t;
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
	while (e->sites) {
		struct site *se = e->sites;

		e->sites = se->all_next;
		site_free(se);
	}
	free(e->site_tab);
	sts_cache_destroy(e->sts);
	tls_report_destroy(e->rpt);
	if (e->tls)
		tls_ctx_destroy(e->tls);
	if (e->tls_verify)
		tls_ctx_destroy(e->tls_verify);
	if (e->shaping)
		shaping_free(e->shaping);
	if (e->providers)
		providers_free(e->providers);
	for (size_t p = 0; e->ip_paused && p < e->cfg->n_pools; p++)
		free(e->ip_paused[p]);
	free(e->ip_paused);
	free(e->pool_t);
	free(e);
}

size_t egress_pause_ip(struct egress *e, const struct sockaddr *ip, bool paused)
{
	const struct sl_config *cfg = e->cfg;
	size_t n = 0;

	if (!e->ip_paused && !(e->ip_paused = calloc(cfg->n_pools, sizeof *e->ip_paused)))
		return 0;
	for (size_t p = 0; p < cfg->n_pools; p++)
		for (size_t i = 0; i < cfg->pools[p].n_ips; i++) {
			const struct sockaddr_storage *a = &cfg->pools[p].ips[i].addr;
			bool same = a->ss_family == ip->sa_family &&
				    (a->ss_family == AF_INET ?
					     !memcmp(&((const struct sockaddr_in *)a)->sin_addr,
						     &((const struct sockaddr_in *)ip)->sin_addr, 4) :
					     !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
						     &((const struct sockaddr_in6 *)ip)->sin6_addr, 16));

			if (!same)
				continue;
			if (!e->ip_paused[p] &&
			    !(e->ip_paused[p] = calloc(cfg->pools[p].n_ips, sizeof(bool))))
				continue;
			e->ip_paused[p][i] = paused;
			n++;
		}
	if (!paused && n)
		egress_kick_all(e);
	return n;
}

int egress_tls_json(const struct egress *e, struct sl_buf *out)
{
	return tls_report_json(e->rpt, out);
}

unsigned egress_sessions(const struct egress *e)
{
	return e->n_sessions;
}

size_t egress_sites(const struct egress *e)
{
	return e->n_sites;
}
