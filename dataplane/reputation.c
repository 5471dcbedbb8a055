/*
 * reputation.c — see reputation.h and docs/reputation.md.
 *
 * One worker thread (an offload) does the blocking work: suppression
 * writes (each one LMDB commit, fsynced) and inbound messages (VERP
 * decode, classification, store writes, verification's DNS). Its results
 * come back to the loop thread, which owns the policy engine's inputs, the
 * event log and the metrics. The policy engine and the recent-actions ring
 * sit behind one mutex because the admin API reads them.
 */
#include "reputation.h"

#include "arf.h"
#include "bounce.h"
#include "err.h"
#include "events.h"
#include "file.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "offload.h"
#include "policy.h"
#include "response_rules.h"
#include "store.h"
#include "suppression.h"
#include "verification.h"
#include "verp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_LEN 32
#define VERP_MAX_AGE_DAYS 60
#define RECENT_MAX 64
#define TICK_MS 1000
#define SETS_MAX 4096

struct tenant_num {
	char name[STORE_NAME_MAX + 1];
	uint64_t id;
};

/* A configuration set the engine holds (or disabled), to resume with its
 * tenant. */
struct held_set {
	char tenant[STORE_NAME_MAX + 1];
	char domain[STORE_DOMAIN_MAX + 1];
	uint8_t stream;
};

struct recent {
	uint64_t at_ms;
	char tenant[STORE_NAME_MAX + 1];
	char what[32];
	char text[480];
};

/* One inbound recipient's result, applied on the loop thread. */
struct rcpt_result {
	enum event_kind kind;    /* EVENT_ASYNC_BOUNCE, EVENT_COMPLAINT; 0 = none */
	char tenant[STORE_NAME_MAX + 1];
	char rcpt[SUPPRESSION_ADDR_MAX + 1]; /* the address the report is about */
	uint8_t stream;
	char id[17];
	enum bounce_reason reason;
	bool hard, suppressed;
	char text[600];
};

/* A piece of work for the worker thread. */
struct reputation_job {
	struct offload_job job;
	struct reputation *r;
	/* a suppression write (suppress_run) */
	char tenant[STORE_NAME_MAX + 1];
	char addr[SUPPRESSION_ADDR_MAX + 1];
	enum suppression_reason sreason;
	int rc;
	/* an inbound message (inbound_run) */
	struct reputation_inbound *in;
	char *body;
	size_t body_len;
	char **rcpts;
	size_t n_rcpts;
	char helo[256], mail_from[SUPPRESSION_ADDR_MAX + 1];
	struct rcpt_result *res;
	int code;
	char enhanced[16], text[256];
};

struct reputation {
	struct reputation_env env;
	const struct sl_bounces_cfg *bc;
	uint8_t secret[SECRET_LEN];
	struct verp_key key;
	struct bounce_rules *brules;
	struct response_rules *rrules;
	struct response_engine *reng; /* NULL: no response rules */
	struct policy *policy;
	pthread_mutex_t mu;           /* policy + recent */
	struct recent recent[RECENT_MAX];
	size_t n_recent, recent_next;
	struct held_set *held;        /* under mu */
	size_t n_held;
	struct held_set *sets;        /* configuration sets seen (under mu), for status */
	size_t n_sets, last_set;
	struct suppression *traps;    /* trap addresses (global list) */
	char **trap_domains;
	size_t n_trap_domains;
	struct tenant_num *nums;
	size_t n_nums, cap_nums;
	struct verification *verif;
	struct offload *offload;
	struct loop_op op_offload;
	uint64_t offload_ev;
	unsigned pending;
	uint64_t ticked_ms;
	uint64_t *c_supp_hits, *c_inbound, *c_async, *c_complaints, *c_supp_added;
};

static uint64_t *counter(struct reputation *r, const char *name, const char *help,
			 const char *label, const char *value)
{
	char labels[256];

	if (!label)
		return metrics_counter(r->env.metrics, name, help, "");
	snprintf(labels, sizeof labels, "%s=\"%s\"", label, value);
	return metrics_counter(r->env.metrics, name, help, labels);
}

static void bump(uint64_t *c)
{
	if (c)
		__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

static void event(struct reputation *r, enum event_kind kind, const char *tenant,
		  const char *rcpt, const char *id, uint8_t stream, const char *text)
{
	const char *at = rcpt ? strrchr(rcpt, '@') : NULL;

	if (!r->env.events)
		return;
	events_write(r->env.events,
		     &(struct event_outcome){ .kind = kind, .time_ms = loop_wall_ms(), .id = id,
					      .tenant = tenant, .rcpt = rcpt,
					      .stream = stream ? "marketing" : "transactional",
					      .domain = at ? at + 1 : NULL, .response = text });
}

static void recent_add(struct reputation *r, const char *tenant, const char *what,
		       const char *text)
{
	struct recent *e;

	pthread_mutex_lock(&r->mu);
	e = &r->recent[r->recent_next];
	r->recent_next = (r->recent_next + 1) % RECENT_MAX;
	if (r->n_recent < RECENT_MAX)
		r->n_recent++;
	e->at_ms = loop_wall_ms();
	snprintf(e->tenant, sizeof e->tenant, "%s", tenant ? tenant : "");
	snprintf(e->what, sizeof e->what, "%s", what);
	snprintf(e->text, sizeof e->text, "%s", text);
	pthread_mutex_unlock(&r->mu);
}

/* --- the VERP secret ---------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Read the hex secret at path, or create it (0600) with fresh randomness. */
static int secret_load(struct reputation *r, const char *path, char *err, size_t errlen)
{
	char *text = NULL, hex[SECRET_LEN * 2 + 2];
	size_t len;
	int rc, fd;

	rc = sl_file_read(path, 4096, &text, &len);
	if (rc == -ENOENT) {
		if (RAND_bytes(r->secret, SECRET_LEN) != 1)
			return -EIO;
		for (size_t i = 0; i < SECRET_LEN; i++)
			snprintf(hex + 2 * i, 3, "%02x", r->secret[i]);
		hex[SECRET_LEN * 2] = '\n';
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, hex, SECRET_LEN * 2 + 1) != SECRET_LEN * 2 + 1 ||
		    fsync(fd) < 0) {
			rc = -errno;
			if (fd >= 0)
				close(fd);
			snprintf(err, errlen, "%s: %s", path, sl_strerror(rc));
			return rc;
		}
		close(fd);
		sl_info("bounces: new VERP secret in %s", path);
		return 0;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, sl_strerror(rc));
		return rc;
	}
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		len--;
	rc = 0;
	if (len != SECRET_LEN * 2)
		rc = SL_ECONFIG;
	for (size_t i = 0; !rc && i < SECRET_LEN; i++) {
		int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);

		if (hi < 0 || lo < 0)
			rc = SL_ECONFIG;
		else
			r->secret[i] = (uint8_t)(hi << 4 | lo);
	}
	free(text);
	if (rc)
		snprintf(err, errlen, "%s: not a VERP secret (%d hex digits expected)", path,
			 SECRET_LEN * 2);
	return rc;
}

/* --- spam traps --------------------------------------------------------- */

static int traps_load(struct reputation *r, const char *path, char *err, size_t errlen)
{
	char *text, *line, *save = NULL;
	size_t len, lineno = 0;
	int rc;

	if (!(r->traps = suppression_create(0)))
		return -ENOMEM;
	if (!path)
		return 0;
	if ((rc = sl_file_read(path, 64 << 20, &text, &len)) < 0) {
		snprintf(err, errlen, "%s: %s", path, sl_strerror(rc));
		return rc;
	}
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *p = line, *end;

		lineno++;
		while (*p == ' ' || *p == '\t')
			p++;
		end = p + strlen(p);
		while (end > p && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
			*--end = 0;
		if (!*p || *p == '#')
			continue;
		if (*p == '@') {
			char **d = realloc(r->trap_domains, (r->n_trap_domains + 1) * sizeof *d);

			if (!d || !(d[r->n_trap_domains] = strdup(p + 1))) {
				r->trap_domains = d ? d : r->trap_domains;
				rc = -ENOMEM;
				break;
			}
			r->trap_domains = d;
			r->n_trap_domains++;
			continue;
		}
		rc = suppression_add(r->traps, "", p, SUPPRESSION_MANUAL, 0);
		if (rc < 0) {
			snprintf(err, errlen, "%s:%zu: not an address or @domain", path, lineno);
			break;
		}
		rc = 0;
	}
	free(text);
	return rc < 0 ? rc : 0;
}

bool reputation_is_trap(struct reputation *r, const char *rcpt)
{
	const char *at = strrchr(rcpt, '@');

	if (suppression_check(r->traps, "", rcpt, NULL) == 1)
		return true;
	for (size_t i = 0; at && i < r->n_trap_domains; i++)
		if (strcasecmp(at + 1, r->trap_domains[i]) == 0)
			return true;
	return false;
}

/* --- tenant numbers (VERP tenant ids) ----------------------------------- */

static int tenant_number(struct reputation *r, const char *tenant, uint64_t *id)
{
	struct tenant_num *n;
	int rc;

	for (size_t i = 0; i < r->n_nums; i++)
		if (strcmp(r->nums[i].name, tenant) == 0) {
			*id = r->nums[i].id;
			return 0;
		}
	/* Once per tenant and daemon run: one write when it has no number. */
	if ((rc = store_tenant_number(r->env.store, tenant, true, id)) < 0)
		return rc;
	if (r->n_nums == r->cap_nums) {
		size_t cap = r->cap_nums ? r->cap_nums * 2 : 16;

		if (!(n = realloc(r->nums, cap * sizeof *n)))
			return 0; /* uncached is fine */
		r->nums = n;
		r->cap_nums = cap;
	}
	n = &r->nums[r->n_nums++];
	snprintf(n->name, sizeof n->name, "%s", tenant);
	n->id = *id;
	return 0;
}

int reputation_return_path(struct reputation *r, const struct spool_msg *m, uint32_t rcpt_idx,
			   char *out, size_t outlen)
{
	struct verp_fields f;
	uint64_t id;
	int rc;

	if (!m->mail_from[0])
		return 0; /* DSNs keep the null sender */
	if ((rc = tenant_number(r, m->tenant, &id)) < 0)
		return rc;
	f = (struct verp_fields){ .tenant_id = id, .queue_id = m->id, .rcpt_index = rcpt_idx,
				  .stream = m->stream, .issue_day = verp_day(loop_wall_ms()) };
	return verp_encode(&r->key, NULL, r->bc->return_path_domain, &f, out, outlen);
}

int reputation_verp_decode(struct reputation *r, const char *addr, char tenant[65],
			   uint64_t *queue_id, uint32_t *rcpt_index, uint8_t *stream)
{
	struct verp_fields f;
	int rc;

	rc = verp_decode(&r->key, 1, NULL, addr, verp_day(loop_wall_ms()), VERP_MAX_AGE_DAYS, &f);
	if (rc < 0 && rc != -ESTALE)
		return rc;
	if (store_tenant_by_number(r->env.store, f.tenant_id, tenant) < 0)
		snprintf(tenant, 65, "#%llu", (unsigned long long)f.tenant_id);
	*queue_id = f.queue_id;
	*rcpt_index = f.rcpt_index;
	*stream = f.stream;
	return rc;
}

/* --- the worker --------------------------------------------------------- */

static void arm_offload_read(struct reputation *r)
{
	struct io_uring_sqe *sqe = loop_sqe(r->env.loop, &r->op_offload);

	io_uring_prep_read(sqe, offload_fd(r->offload), &r->offload_ev, sizeof r->offload_ev, 0);
}

static void on_offload_event(struct loop_op *op, int res, uint32_t flags)
{
	struct reputation *r =
		(struct reputation *)((char *)op - offsetof(struct reputation, op_offload));

	(void)res;
	(void)flags;
	offload_reap(r->offload);
	arm_offload_read(r);
}

static void job_free(struct reputation_job *j)
{
	for (size_t i = 0; i < j->n_rcpts; i++)
		free(j->rcpts[i]);
	free(j->rcpts);
	free(j->body);
	free(j->res);
	free(j);
}

static void suppress_run(struct offload_job *oj)
{
	struct reputation_job *j = (struct reputation_job *)oj;

	j->rc = store_suppression_add(j->r->env.store, j->tenant, j->addr, j->sreason, 0, NULL);
}

static void suppress_done(struct offload_job *oj)
{
	struct reputation_job *j = (struct reputation_job *)oj;
	struct reputation *r = j->r;

	r->pending--;
	if (j->rc == 0) {
		bump(counter(r, "sluice_suppressions_added_total", "Addresses added to suppression lists",
			     "reason", suppression_reason_name(j->sreason)));
		sl_info("suppressed %s for tenant %s (%s)", j->addr, j->tenant,
			suppression_reason_name(j->sreason));
	} else if (j->rc < 0) {
		sl_warn("suppressing %s for tenant %s: %s", j->addr, j->tenant, sl_strerror(j->rc));
	}
	job_free(j);
}

/* Add (tenant, addr) to the store's suppression list on the worker. */
static void suppress_async(struct reputation *r, const char *tenant, const char *addr,
			   enum suppression_reason reason)
{
	struct reputation_job *j = calloc(1, sizeof *j);

	if (!j)
		return;
	j->r = r;
	j->sreason = reason;
	snprintf(j->tenant, sizeof j->tenant, "%s", tenant);
	if (suppression_normalize(addr, j->addr, sizeof j->addr) < 0) {
		free(j);
		return;
	}
	j->job = (struct offload_job){ .run = suppress_run, .done = suppress_done };
	r->pending++;
	if (offload_submit(r->offload, &j->job) < 0) {
		r->pending--;
		free(j);
	}
}

/* --- policy decisions --------------------------------------------------- */

static const char *event_word(enum tenant_event ev)
{
	switch (ev) {
	case TENANT_EV_POLICY_WARN: return "policy_warn";
	case TENANT_EV_POLICY_HOLD: return "policy_hold";
	case TENANT_EV_POLICY_DISABLE: return "policy_disable";
	case TENANT_EV_POLICY_RECOVER: return "policy_recover";
	case TENANT_EV_GRACE_EXPIRED: return "grace_expired";
	default: return "operator";
	}
}

/* The lifecycle event a decision becomes for its tenant. A configuration
 * set's hold stays with the set (apply_decision); its escalations (a
 * repeat hold, a grace expiry with the numbers still bad) disable the
 * tenant, whose state is not on_hold then, so grace_expired becomes
 * policy_disable. */
static enum tenant_event tenant_event_of(const struct policy_decision *d)
{
	if (d->cfgset && d->event == TENANT_EV_GRACE_EXPIRED)
		return TENANT_EV_POLICY_DISABLE;
	return d->event;
}

/* A decision becomes a store transition, audited with the decision's
 * text: a configuration set's hold pauses that set only
 * (STORE_CFGSET_PAUSED: its mail is accepted and kept, the tenant's other
 * sets deliver); everything else is the tenant's lifecycle transition. A
 * hold for a volume spike has no grace deadline: it waits for an
 * operator. */
static void apply_decision(struct reputation *r, const struct policy_decision *d)
{
	bool set_hold = d->cfgset && d->event == TENANT_EV_POLICY_HOLD;
	bool spike = d->reason == POLICY_R_VOLUME_SPIKE;
	const char *why = NULL;
	int rc;

	if (set_hold) {
		rc = store_cfgset_set_paused(r->env.store, d->tenant, d->domain, d->stream, true,
					     "policy", d->text);
		if (rc == 1) {
			rc = -EALREADY;
			why = "the configuration set is already paused";
		}
	} else {
		rc = store_tenant_set_state(r->env.store, d->tenant, tenant_event_of(d),
					    spike ? 0 : d->grace_until_ms, "policy", d->text, NULL,
					    &why);
	}
	bump(counter(r, "sluice_policy_actions_total", "Reputation policy decisions", "action",
		     event_word(d->event)));
	if (spike)
		bump(counter(r, "sluice_volume_spike_holds_total",
			     "Tenants held for review after a volume spike", "tenant", d->tenant));
	recent_add(r, d->tenant, event_word(d->event), d->text);
	event(r, EVENT_POLICY, d->tenant, NULL, NULL, d->stream, d->text);
	if (rc == 0) {
		sl_warn("policy: %s", d->text);
		if (r->env.tenant_changed)
			r->env.tenant_changed(r->env.ctx, d->tenant);
	} else {
		sl_info("policy: %s (%s unchanged: %s)", d->text,
			set_hold ? "configuration set" : "tenant state", why ? why : sl_strerror(rc));
	}
}

/* Remember a configuration set the engine took out of ok (mu held). */
static void held_add(struct reputation *r, const struct policy_decision *d)
{
	struct held_set *h;

	if (!d->cfgset || (d->event != TENANT_EV_POLICY_HOLD && d->event != TENANT_EV_POLICY_DISABLE))
		return;
	for (size_t i = 0; i < r->n_held; i++)
		if (!strcmp(r->held[i].tenant, d->tenant) && !strcmp(r->held[i].domain, d->domain) &&
		    r->held[i].stream == d->stream)
			return;
	if (!(h = realloc(r->held, (r->n_held + 1) * sizeof *h)))
		return;
	r->held = h;
	h = &r->held[r->n_held++];
	snprintf(h->tenant, sizeof h->tenant, "%s", d->tenant);
	snprintf(h->domain, sizeof h->domain, "%s", d->domain);
	h->stream = d->stream;
}

/* Is the configuration set paused in the store? */
static bool set_paused(struct reputation *r, const char *tenant, const char *domain,
		       uint8_t stream)
{
	struct store_cfgset c;

	return store_cfgset_get(r->env.store, tenant, domain, stream, &c) == 0 &&
	       (c.flags & STORE_CFGSET_PAUSED);
}

void reputation_tenant_changed(struct reputation *r, const char *tenant)
{
	struct policy_key k = { .tenant = tenant };
	struct policy_status ps;
	struct store_tenant t;
	uint64_t now = loop_wall_ms();
	bool sending;

	if (!r || store_tenant_get(r->env.store, tenant, &t) < 0)
		return;
	sending = t.state == TENANT_ACTIVE || t.state == TENANT_SANDBOX;
	pthread_mutex_lock(&r->mu);
	if (sending && policy_status(r->policy, &k, now, &ps) == 0 &&
	    (ps.state == POLICY_HELD || ps.state == POLICY_DISABLED))
		policy_set_state(r->policy, &k, POLICY_OK, 0, now);
	/* A set's hold lifts when its pause is cleared (the tenant may be
	 * active all along); a set whose repeat hold disabled the tenant is
	 * not paused and lifts with the tenant's resume. */
	for (size_t i = 0; i < r->n_held;) {
		struct held_set *h = &r->held[i];

		if (strcmp(h->tenant, tenant) != 0 || !sending ||
		    set_paused(r, tenant, h->domain, h->stream)) {
			i++;
			continue;
		}
		policy_set_state(r->policy,
				 &(struct policy_key){ .tenant = tenant, .domain = h->domain,
						       .stream = h->stream },
				 POLICY_OK, 0, now);
		*h = r->held[--r->n_held];
	}
	pthread_mutex_unlock(&r->mu);
}

static void evaluate(struct reputation *r, const struct policy_key *k)
{
	struct policy_decision d[4];
	int n;

	pthread_mutex_lock(&r->mu);
	n = policy_evaluate(r->policy, k, loop_wall_ms(), d, 4);
	for (int i = 0; i < n; i++)
		held_add(r, &d[i]);
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < n; i++)
		apply_decision(r, &d[i]);
}

/* Note k's configuration set for status listings (mu held). */
static void set_note(struct reputation *r, const struct policy_key *k)
{
	struct held_set *h;

	if (!k->domain)
		return;
	if (r->last_set < r->n_sets) {
		h = &r->sets[r->last_set];
		if (h->stream == k->stream && !strcmp(h->tenant, k->tenant) &&
		    !strcasecmp(h->domain, k->domain))
			return;
	}
	for (size_t i = 0; i < r->n_sets; i++)
		if (r->sets[i].stream == k->stream && !strcmp(r->sets[i].tenant, k->tenant) &&
		    !strcasecmp(r->sets[i].domain, k->domain)) {
			r->last_set = i;
			return;
		}
	if (r->n_sets == SETS_MAX || !(h = realloc(r->sets, (r->n_sets + 1) * sizeof *h)))
		return;
	r->sets = h;
	h = &r->sets[r->n_sets];
	snprintf(h->tenant, sizeof h->tenant, "%s", k->tenant);
	snprintf(h->domain, sizeof h->domain, "%s", k->domain);
	h->stream = k->stream;
	r->last_set = r->n_sets++;
}

static void record(struct reputation *r, const struct policy_key *k, enum policy_metric m)
{
	pthread_mutex_lock(&r->mu);
	set_note(r, k);
	policy_record(r->policy, k, m, 1, loop_wall_ms());
	pthread_mutex_unlock(&r->mu);
}

void reputation_tick(struct reputation *r)
{
	struct policy_decision d[8];
	uint64_t now = loop_wall_ms();
	int n;

	if (!r || now - r->ticked_ms < TICK_MS)
		return;
	r->ticked_ms = now;
	pthread_mutex_lock(&r->mu);
	n = policy_tick(r->policy, now, d, 8);
	for (int i = 0; i < n; i++)
		held_add(r, &d[i]);
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < n; i++)
		apply_decision(r, &d[i]);
}

/* The sending domain of a message: its envelope sender's. */
static const char *sender_domain(const struct spool_msg *m)
{
	const char *at = strrchr(m->mail_from, '@');

	return at && at[1] ? at + 1 : NULL;
}

/* --- egress outcomes and response rules --------------------------------- */

static void response_fired(struct reputation *r, const struct spool_msg *m,
			   const struct response_action *a, const char *reply)
{
	char text[1900];

	snprintf(text, sizeof text, "rule %s (line %u): %s %s %s towards %s: %s", a->rule,
		 a->line, response_action_name(a->kind),
		 a->scope == RESPONSE_SCOPE_TENANT ? "tenant" : "ip", a->key,
		 a->provider[0] ? a->provider : "an unknown provider", reply);
	sl_warn("response rule: tenant %s: %s", m ? m->tenant : "-", text);
	bump(counter(r, "sluice_response_rule_firings_total", "Receiver response rules fired",
		     "rule", a->rule));
	recent_add(r, m ? m->tenant : "", "response_rule", text);
	event(r, EVENT_RESPONSE_RULE, m ? m->tenant : NULL, NULL, NULL, m ? m->stream : 0, text);
	if (a->kind == RESPONSE_HOLD_TENANT && m) {
		const char *why = NULL;

		if (store_tenant_set_state(r->env.store, m->tenant, TENANT_EV_POLICY_HOLD, 0, "policy",
					   text, NULL, &why) == 0 &&
		    r->env.tenant_changed)
			r->env.tenant_changed(r->env.ctx, m->tenant);
	}
}

static void reply_line(const struct smtp_reply *reply, char *line, size_t len)
{
	snprintf(line, len, "%d%s%s %s", reply->code, reply->enhanced[0] ? " " : "",
		 reply->enhanced, reply->text);
}

void reputation_reply(struct reputation *r, const struct spool_msg *m,
		      const struct smtp_reply *reply, const char *source_ip, const char *provider)
{
	struct response_action a;
	char line[1100];

	if (reply->code < 400 || !r->reng || !source_ip)
		return;
	reply_line(reply, line, sizeof line);
	if (response_engine_observe(r->reng, provider && *provider ? provider : NULL, source_ip,
				    m->tenant[0] ? m->tenant : NULL, line, loop_wall_ms(), &a) == 1)
		response_fired(r, m->tenant[0] ? m : NULL, &a, line);
}

void reputation_accepted(struct reputation *r, const struct spool_msg *m)
{
	if (!r || !m->tenant[0])
		return;
	record(r, &(struct policy_key){ .tenant = m->tenant, .domain = sender_domain(m),
					.stream = m->stream },
	       POLICY_ACCEPTED);
}

void reputation_outcome(struct reputation *r, const struct spool_msg *m, const char *rcpt,
			const struct smtp_reply *reply)
{
	struct policy_key k = { .tenant = m->tenant, .domain = sender_domain(m),
				.stream = m->stream };
	struct bounce_result br;
	enum policy_metric pm[2];
	char line[1100];
	int n;

	if (reply->code < 200 || (reply->code >= 400 && reply->code < 500))
		return; /* deferrals are judged when they end */
	record(r, &k, POLICY_SENT);
	if (reputation_is_trap(r, rcpt)) {
		char text[400];

		snprintf(text, sizeof text, "spam trap hit: %s", rcpt);
		record(r, &k, POLICY_TRAP_HIT);
		recent_add(r, m->tenant, "trap_hit", text);
		bump(counter(r, "sluice_spamtrap_hits_total", "Mail sent to a spam-trap address", NULL,
			     NULL));
	}
	if (reply->code < 300) {
		record(r, &k, POLICY_DELIVERED);
	} else {
		reply_line(reply, line, sizeof line);
		bounce_classify_reply(r->brules, line, &br);
		n = policy_metrics_for_bounce(br.reason, br.hard, pm);
		for (int i = 0; i < n; i++)
			record(r, &k, pm[i]);
		if (br.hard && (br.reason == BOUNCE_R_USERUNKNOWN || br.reason == BOUNCE_R_HOSTUNKNOWN))
			suppress_async(r, m->tenant, rcpt, SUPPRESSION_HARD_BOUNCE);
	}
	evaluate(r, &k);
}

bool reputation_may_send(struct reputation *r, const char *provider, const char *source_ip,
			 const char *tenant, uint64_t *until_ms)
{
	uint64_t now = loop_wall_ms(), until = 0;

	if (!r || !r->reng)
		return true;
	if (!response_engine_suspended(r->reng, provider && *provider ? provider : NULL,
				       source_ip, tenant, now, &until))
		return true;
	if (until_ms)
		*until_ms = until;
	return false;
}

double reputation_rate_factor(struct reputation *r, const char *provider, const char *source_ip)
{
	if (!r || !r->reng)
		return 1.0;
	return response_engine_rate_factor(r->reng, provider && *provider ? provider : NULL,
					   source_ip, loop_wall_ms());
}

/* --- injection ---------------------------------------------------------- */

int reputation_suppressed(struct reputation *r, const char *tenant, const char *rcpt,
			  const char **reason)
{
	struct suppression_entry e;
	int rc;

	if (!r)
		return 0;
	rc = store_suppression_check(r->env.store, tenant, rcpt, &e);
	if (rc == 1 && reason)
		*reason = suppression_reason_name(e.reason);
	if (rc == 1)
		bump(r->c_supp_hits);
	return rc == -EINVAL ? 0 : rc;
}

void reputation_refused(struct reputation *r, const char *tenant, const char *rcpt,
			const char *reason)
{
	char text[128];

	snprintf(text, sizeof text, "550 5.7.1 recipient suppressed (%s)", reason);
	event(r, EVENT_SUPPRESSED, tenant, rcpt, NULL, 0, text);
}

/* --- inbound ------------------------------------------------------------ */

static bool domain_is(const char *addr, const char *domain)
{
	const char *at = strrchr(addr, '@');

	return at && domain && strcasecmp(at + 1, domain) == 0;
}

static bool is_fbl(struct reputation *r, const char *rcpt)
{
	return r->bc->fbl_address && strcasecmp(rcpt, r->bc->fbl_address) == 0;
}

bool reputation_inbound_accepts(struct reputation *r, const char *rcpt)
{
	const char *fbl_at = r->bc->fbl_address ? strrchr(r->bc->fbl_address, '@') : NULL;

	if (domain_is(rcpt, r->bc->return_path_domain) || is_fbl(r, rcpt) ||
	    (fbl_at && domain_is(rcpt, fbl_at + 1)))
		return true;
	for (size_t i = 0; i < r->bc->n_domains; i++)
		if (domain_is(rcpt, r->bc->domains[i]))
			return true;
	return r->verif && verification_is_recipient(r->verif, rcpt);
}

static void fail(struct reputation_job *j, int code, const char *enhanced, const char *text)
{
	if (j->code != 250)
		return; /* the first failure answers */
	j->code = code;
	snprintf(j->enhanced, sizeof j->enhanced, "%s", enhanced);
	snprintf(j->text, sizeof j->text, "%s", text);
}

/* The tenant (and queue id, stream) a VERP return path names; false if
 * it is not one of ours. */
static bool verp_owner(struct reputation *r, const char *addr, struct rcpt_result *res)
{
	uint64_t qid;
	uint32_t idx;

	if (!verp_is_candidate(NULL, addr) ||
	    reputation_verp_decode(r, addr, res->tenant, &qid, &idx, &res->stream) < 0 ||
	    res->tenant[0] == '#')
		return false;
	snprintf(res->id, sizeof res->id, "%016llx", (unsigned long long)qid);
	return true;
}

static void inbound_complaint(struct reputation_job *j, struct rcpt_result *res)
{
	struct reputation *r = j->r;
	struct arf_report rep;

	if (arf_parse(j->body, j->body_len, &rep) < 0) {
		fail(j, 550, "5.6.0", "not a feedback report");
		return;
	}
	if (!verp_owner(r, rep.original_mail_from, res)) {
		/* Not about our mail (or redacted beyond recognition): taken,
		 * nothing to record. */
		sl_info("inbound: feedback report about %s: not a return path of ours",
			rep.original_mail_from);
		return;
	}
	res->kind = EVENT_COMPLAINT;
	res->reason = BOUNCE_R_FEEDBACK;
	snprintf(res->rcpt, sizeof res->rcpt, "%s", rep.original_rcpt_to);
	snprintf(res->text, sizeof res->text, "complaint (%s, %s) from %s", rep.feedback_type,
		 arf_format_name(rep.format), rep.source_ip[0] ? rep.source_ip : "?");
	if (rep.original_rcpt_to[0] &&
	    store_suppression_add(r->env.store, res->tenant, rep.original_rcpt_to,
				  SUPPRESSION_COMPLAINT, 0, NULL) >= 0)
		res->suppressed = true;
}

static void inbound_bounce(struct reputation_job *j, const char *rcpt, struct rcpt_result *res)
{
	struct reputation *r = j->r;
	struct bounce_result br;
	int rc;

	if (!verp_owner(r, rcpt, res)) {
		fail(j, 550, "5.1.1", "no such return path");
		return;
	}
	rc = bounce_classify_message(r->brules, j->body, j->body_len, &br);
	if (rc < 0 && rc != SL_EPROTO) {
		fail(j, 451, "4.3.0", "cannot classify the message now");
		return;
	}
	res->reason = br.reason;
	res->hard = br.hard;
	snprintf(res->rcpt, sizeof res->rcpt, "%s", br.recipient);
	snprintf(res->text, sizeof res->text, "%s%s%s %s: %s", bounce_reason_name(br.reason),
		 br.status[0] ? " " : "", br.status, br.hard ? "hard" : "soft", br.diagnostic);
	if (br.reason == BOUNCE_R_FEEDBACK) {
		res->kind = EVENT_COMPLAINT;
		if (br.recipient[0] && store_suppression_add(r->env.store, res->tenant, br.recipient,
							     SUPPRESSION_COMPLAINT, 0, NULL) >= 0)
			res->suppressed = true;
		return;
	}
	if (br.reason == BOUNCE_R_VACATION || br.reason == BOUNCE_R_DELIVERED || rc == SL_EPROTO)
		return; /* not a failure: taken, nothing to record */
	res->kind = EVENT_ASYNC_BOUNCE;
	if (br.hard && br.recipient[0] &&
	    store_suppression_add(r->env.store, res->tenant, br.recipient, SUPPRESSION_HARD_BOUNCE, 0,
				  NULL) >= 0)
		res->suppressed = true;
}

static void inbound_run(struct offload_job *oj)
{
	struct reputation_job *j = (struct reputation_job *)oj;
	struct reputation *r = j->r;
	char why[256];
	int rc;

	j->code = 250;
	for (size_t i = 0; i < j->n_rcpts; i++) {
		const char *rcpt = j->rcpts[i];

		if (is_fbl(r, rcpt)) {
			inbound_complaint(j, &j->res[i]);
		} else if (verp_is_candidate(NULL, rcpt) &&
			   domain_is(rcpt, r->bc->return_path_domain)) {
			inbound_bounce(j, rcpt, &j->res[i]);
		} else if (r->verif && verification_is_recipient(r->verif, rcpt)) {
			why[0] = 0;
			rc = verification_receive(r->verif, rcpt, j->body, j->body_len,
						  (const struct sockaddr *)&j->in->client, j->helo,
						  j->mail_from, why, sizeof why);
			if (rc < 0)
				fail(j, 550, "5.7.1", why[0] ? why : sl_strerror(rc));
		} else if (!strncasecmp(rcpt, "verify+", 7)) {
			fail(j, 550, "5.7.1", "verification not configured");
		} else {
			fail(j, 550, "5.1.1", "no such mailbox");
		}
	}
	if (j->code == 250) {
		snprintf(j->enhanced, sizeof j->enhanced, "2.0.0");
		snprintf(j->text, sizeof j->text, "Ok: processed");
	}
}

static void inbound_done(struct offload_job *oj)
{
	struct reputation_job *j = (struct reputation_job *)oj;
	struct reputation *r = j->r;
	struct reputation_inbound *in = j->in;

	r->pending--;
	bump(r->c_inbound);
	for (size_t i = 0; i < j->n_rcpts; i++) {
		struct rcpt_result *res = &j->res[i];
		struct policy_key k = { .tenant = res->tenant, .stream = res->stream };
		enum policy_metric pm[2];
		int n;

		if (!res->kind)
			continue;
		event(r, res->kind, res->tenant, res->rcpt[0] ? res->rcpt : NULL, res->id,
		      res->stream, res->text);
		sl_info("inbound %s: tenant %s id %s rcpt %s: %s%s",
			res->kind == EVENT_COMPLAINT ? "complaint" : "bounce", res->tenant, res->id,
			res->rcpt[0] ? res->rcpt : "?", res->text,
			res->suppressed ? " (suppressed)" : "");
		if (res->suppressed)
			bump(counter(r, "sluice_suppressions_added_total",
				     "Addresses added to suppression lists", "reason",
				     res->kind == EVENT_COMPLAINT ? "complaint" : "hard_bounce"));
		if (res->kind == EVENT_COMPLAINT) {
			bump(r->c_complaints);
			record(r, &k, POLICY_COMPLAINT);
		} else {
			bump(r->c_async);
			n = policy_metrics_for_bounce(res->reason, res->hard, pm);
			for (int m = 0; m < n; m++)
				record(r, &k, pm[m]);
		}
		evaluate(r, &k);
	}
	in->done(in, j->code, j->enhanced, j->text);
	job_free(j);
}

int reputation_inbound_submit(struct reputation *r, struct reputation_inbound *in)
{
	struct reputation_job *j = calloc(1, sizeof *j);

	if (!j)
		return -ENOMEM;
	j->r = r;
	j->in = in;
	snprintf(j->helo, sizeof j->helo, "%s", in->helo ? in->helo : "");
	snprintf(j->mail_from, sizeof j->mail_from, "%s", in->mail_from ? in->mail_from : "");
	j->body = malloc(in->body_len + 1);
	j->rcpts = calloc(in->n_rcpts, sizeof *j->rcpts);
	j->res = calloc(in->n_rcpts, sizeof *j->res);
	if (!j->body || !j->rcpts || !j->res)
		goto fail;
	memcpy(j->body, in->body, in->body_len);
	j->body[in->body_len] = 0;
	j->body_len = in->body_len;
	for (size_t i = 0; i < in->n_rcpts; i++, j->n_rcpts++)
		if (!(j->rcpts[i] = strdup(in->rcpts[i])))
			goto fail;
	j->job = (struct offload_job){ .run = inbound_run, .done = inbound_done };
	r->pending++;
	if (offload_submit(r->offload, &j->job) < 0) {
		r->pending--;
		goto fail;
	}
	return 0;
fail:
	job_free(j);
	return -ENOMEM;
}

unsigned reputation_inbound_pending(const struct reputation *r)
{
	return r ? r->pending : 0;
}

void reputation_set_verification(struct reputation *r, struct verification *v)
{
	r->verif = v;
}

/* --- visibility --------------------------------------------------------- */

static void rate(struct json_obj *o, const char *key, double v)
{
	char num[32];

	if (v < 0) {
		json_obj_raw(o, key, "null", 4);
		return;
	}
	snprintf(num, sizeof num, "%.6f", v);
	json_obj_raw(o, key, num, strlen(num));
}

/* {"policy_state", "counts", "rates", "holds", "grace_until_ms"} members
 * of key's subject into o (mu held). */
static void subject_json(struct reputation *r, const struct policy_key *k, struct json_obj *o)
{
	struct sl_buf cb = { 0 }, rb = { 0 };
	struct policy_status st;
	struct json_obj c, rt;

	if (policy_status(r->policy, k, loop_wall_ms(), &st) < 0) { /* no numbers yet */
		memset(&st, 0, sizeof st);
		st.n.bounce_rate = st.n.unknown_rate = st.n.complaint_rate = -1;
	}
	json_obj_begin(&c, &cb);
	for (int i = 0; i < POLICY_N_METRICS; i++)
		json_obj_u64(&c, policy_metric_name((enum policy_metric)i), st.n.count[i]);
	json_obj_end(&c);
	json_obj_begin(&rt, &rb);
	rate(&rt, "bounce", st.n.bounce_rate);
	rate(&rt, "unknown_user", st.n.unknown_rate);
	rate(&rt, "complaint", st.n.complaint_rate);
	json_obj_end(&rt);
	json_obj_str(o, "policy_state", policy_state_name(st.state));
	json_obj_raw(o, "counts", sl_buf_head(&cb), sl_buf_avail(&cb));
	json_obj_raw(o, "rates", sl_buf_head(&rb), sl_buf_avail(&rb));
	json_obj_u64(o, "holds", st.holds);
	json_obj_u64(o, "grace_until_ms", st.grace_until_ms);
	sl_buf_free(&cb);
	sl_buf_free(&rb);
}

/* Append one set's {"domain", "stream", subject_json's members, "paused"}
 * to the JSON array being built in b (mu held); ask_store false: the
 * caller knows it is paused. */
static void set_json(struct reputation *r, const char *tenant, const char *domain,
		     uint8_t stream, bool ask_store, struct sl_buf *b)
{
	struct sl_buf eb = { 0 };
	struct json_obj e;

	json_obj_begin(&e, &eb);
	json_obj_str(&e, "domain", domain);
	json_obj_str(&e, "stream", stream ? "marketing" : "transactional");
	subject_json(r, &(struct policy_key){ .tenant = tenant, .domain = domain, .stream = stream },
		     &e);
	json_obj_bool(&e, "paused", !ask_store || set_paused(r, tenant, domain, stream));
	json_obj_end(&e);
	if (sl_buf_avail(b) > 1)
		sl_buf_append(b, ",", 1);
	sl_buf_append(b, sl_buf_head(&eb), sl_buf_avail(&eb));
	sl_buf_free(&eb);
}

/* Append the tenant's paused sets that the engine has not seen since the
 * start (a hold from before a restart, an operator's pause) (mu held). */
static void paused_sets_json(struct reputation *r, const char *tenant, struct sl_buf *b)
{
	struct store_cfgset page[32], after;
	bool more = true, first = true;
	size_t n;

	while (more) {
		if (store_cfgset_list(r->env.store, tenant, first ? NULL : &after, page, 32, &n,
				      &more) < 0)
			return;
		first = false;
		for (size_t i = 0; i < n; i++) {
			bool seen = false;

			if (!(page[i].flags & STORE_CFGSET_PAUSED))
				continue;
			for (size_t j = 0; j < r->n_sets && !seen; j++)
				seen = r->sets[j].stream == page[i].stream &&
				       !strcmp(r->sets[j].tenant, tenant) &&
				       !strcasecmp(r->sets[j].domain, page[i].domain);
			if (!seen)
				set_json(r, tenant, page[i].domain, page[i].stream, false, b);
		}
		if (n)
			after = page[n - 1];
	}
}

int reputation_status_json(struct reputation *r, const char *tenant, struct sl_buf *b)
{
	struct sl_buf list = { 0 }, sets = { 0 }, eb = { 0 };
	struct json_obj o, e;
	bool first = true;
	int rc;

	pthread_mutex_lock(&r->mu);
	sl_buf_append(&list, "[", 1);
	for (size_t i = 0; i < r->n_recent; i++) {
		const struct recent *x =
			&r->recent[(r->recent_next + RECENT_MAX - r->n_recent + i) % RECENT_MAX];

		if (strcmp(x->tenant, tenant) != 0)
			continue;
		sl_buf_reset(&eb);
		json_obj_begin(&e, &eb);
		json_obj_u64(&e, "time_ms", x->at_ms);
		json_obj_str(&e, "action", x->what);
		json_obj_str(&e, "text", x->text);
		json_obj_end(&e);
		if (!first)
			sl_buf_append(&list, ",", 1);
		sl_buf_append(&list, sl_buf_head(&eb), sl_buf_avail(&eb));
		first = false;
	}
	sl_buf_append(&list, "]", 1);
	sl_buf_append(&sets, "[", 1);
	for (size_t i = 0; i < r->n_sets; i++)
		if (!strcmp(r->sets[i].tenant, tenant))
			set_json(r, tenant, r->sets[i].domain, r->sets[i].stream, true, &sets);
	paused_sets_json(r, tenant, &sets);
	sl_buf_append(&sets, "]", 1);
	json_obj_begin(&o, b);
	json_obj_str(&o, "tenant", tenant);
	subject_json(r, &(struct policy_key){ .tenant = tenant }, &o);
	pthread_mutex_unlock(&r->mu);
	json_obj_raw(&o, "sets", sl_buf_head(&sets), sl_buf_avail(&sets));
	json_obj_raw(&o, "recent", sl_buf_head(&list), sl_buf_avail(&list));
	rc = json_obj_end(&o);
	sl_buf_free(&list);
	sl_buf_free(&sets);
	sl_buf_free(&eb);
	return rc;
}

/* --- lifecycle ---------------------------------------------------------- */

int reputation_create(const struct reputation_env *env, struct reputation **out, char *err,
		      size_t errlen)
{
	const struct sl_bounces_cfg *bc = &env->cfg->bounces;
	struct policy_config pc;
	struct reputation *r;
	char path[4096];
	int rc;

	err[0] = 0;
	if (!env->store || !bc->enabled)
		return -EINVAL;
	if (!(r = calloc(1, sizeof *r)))
		return -ENOMEM;
	r->env = *env;
	r->bc = bc;
	pthread_mutex_init(&r->mu, NULL);
	if (bc->secret_file)
		snprintf(path, sizeof path, "%s", bc->secret_file);
	else
		snprintf(path, sizeof path, "%s/verp.secret", env->cfg->control.store);
	if ((rc = secret_load(r, path, err, errlen)) < 0)
		goto fail;
	r->key = (struct verp_key){ .secret = r->secret, .len = SECRET_LEN };
	if ((rc = bounce_rules_load(bc->bounce_rules, &r->brules, err, errlen)) < 0)
		goto fail;
	if (bc->response_rules) {
		if ((rc = response_rules_load(bc->response_rules, &r->rrules, err, errlen)) < 0)
			goto fail;
		if (!(r->reng = response_engine_create(r->rrules, 0))) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	policy_config_default(&pc);
	if (bc->policy && (rc = policy_config_load(&pc, bc->policy, err, errlen)) < 0)
		goto fail;
	if (!(r->policy = policy_create(&pc, 0))) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = traps_load(r, bc->spamtraps, err, errlen)) < 0)
		goto fail;
	if ((rc = offload_create(1, &r->offload)) < 0)
		goto fail;
	r->c_supp_hits = counter(r, "sluice_suppression_hits_total",
				 "Recipients refused at injection as suppressed", NULL, NULL);
	r->c_inbound = counter(r, "sluice_inbound_messages_total",
			       "Messages taken by the inbound listener", NULL, NULL);
	r->c_async = counter(r, "sluice_async_bounces_total", "Asynchronous bounces processed",
			     NULL, NULL);
	r->c_complaints = counter(r, "sluice_complaints_total", "Feedback reports processed", NULL,
				  NULL);
	r->op_offload.cb = on_offload_event;
	arm_offload_read(r);
	*out = r;
	return 0;
fail:
	reputation_destroy(r);
	return rc;
}

void reputation_destroy(struct reputation *r)
{
	if (!r)
		return;
	if (r->offload)
		offload_destroy(r->offload); /* runs every pending done */
	for (size_t i = 0; i < r->n_trap_domains; i++)
		free(r->trap_domains[i]);
	free(r->trap_domains);
	suppression_free(r->traps);
	policy_free(r->policy);
	response_engine_free(r->reng);
	response_rules_free(r->rrules);
	bounce_rules_free(r->brules);
	free(r->nums);
	free(r->held);
	free(r->sets);
	pthread_mutex_destroy(&r->mu);
	OPENSSL_cleanse(r->secret, sizeof r->secret);
	free(r);
}
