/*
 * policy.c — windowed reputation counters and the threshold engine (see
 * policy.h).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "file.h"
#include "json.h"
#include "policy.h"
#include "shaping.h"

#define NIL UINT32_MAX
#define RING_MAX 4096
#define DEFAULT_MAX_SUBJECTS 100000
#define HOUR (3600ull * 1000)

struct bucket {
	uint64_t tag; /* bucket number + 1; 0 = empty */
	uint32_t c[POLICY_N_METRICS];
};

struct hist {
	uint64_t tag;
	uint32_t sent;
};

struct subject {
	uint32_t next, hash;
	bool used, cfgset;
	char tenant[POLICY_NAME_MAX + 1];
	char domain[POLICY_DOMAIN_MAX + 1];
	uint8_t stream;
	enum policy_state state;
	uint64_t touched_ms, held_at_ms, grace_until_ms, resumed_at_ms;
	unsigned holds;
	bool recovered;
	struct bucket *ring; /* n_ring */
	struct hist *hist;   /* n_hist, tenants only */
};

struct policy {
	struct policy_config cfg;
	size_t n_win, n_ring, n_hist;
	struct subject *v;
	uint32_t *bucket;
	size_t cap, alloc, used, nbucket;
	uint32_t free_head;
	size_t cursor; /* policy_tick() */
};

/* --- names and configuration ---------------------------------------------- */

const char *policy_state_name(enum policy_state s)
{
	static const char *const n[] = { "ok", "warned", "held", "disabled" };
	return (unsigned)s < 4 ? n[s] : "?";
}

const char *policy_reason_name(enum policy_reason r)
{
	static const char *const n[] = { "bounce_rate", "unknown_user_rate", "complaint_rate",
					 "spam_trap",   "volume_spike",      "recovered" };
	return (unsigned)r < 6 ? n[r] : "?";
}

const char *policy_metric_name(enum policy_metric m)
{
	static const char *const n[] = { "sent",       "delivered", "bounced",
					 "unknown_user", "complaints", "trap_hits", "accepted" };
	return (unsigned)m < POLICY_N_METRICS ? n[m] : "?";
}

static const char *stream_name(uint8_t s)
{
	return s == 0 ? "transactional" : s == 1 ? "marketing" : "?";
}

void policy_config_default(struct policy_config *c)
{
	memset(c, 0, sizeof *c);
	c->window_ms = 24 * HOUR;
	c->bucket_ms = HOUR;
	c->bounce = (struct policy_threshold){ 0.05, 0.10, 100 };
	c->unknown = (struct policy_threshold){ 0.03, 0.08, 100 };
	c->complaint = (struct policy_threshold){ 0.001, 0.003, 1000 };
	c->trap_hold = 1;
	c->tenant_trap_hold = 3;
	c->grace_ms = 24 * HOUR;
	c->repeat_ms = 7 * 24 * HOUR;
	c->spike_factor = 10;
	c->spike_floor = 1000;
	c->spike_min_buckets = 6;
	c->spike_baseline_ms = 7 * 24 * HOUR;
}

static int cfg_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return SL_ECONFIG;
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int policy_config_set(struct policy_config *c, const char *key, const char *value, char *err,
		      size_t errlen)
{
	static const struct {
		const char *name;
		char kind; /* f fraction, u count, d duration, x factor */
		size_t off;
	} knobs[] = {
		{ "window", 'd', offsetof(struct policy_config, window_ms) },
		{ "bucket", 'd', offsetof(struct policy_config, bucket_ms) },
		{ "bounce_warn", 'f', offsetof(struct policy_config, bounce.warn) },
		{ "bounce_hold", 'f', offsetof(struct policy_config, bounce.hold) },
		{ "bounce_min_sent", 'u', offsetof(struct policy_config, bounce.min_volume) },
		{ "unknown_user_warn", 'f', offsetof(struct policy_config, unknown.warn) },
		{ "unknown_user_hold", 'f', offsetof(struct policy_config, unknown.hold) },
		{ "unknown_user_min_sent", 'u', offsetof(struct policy_config, unknown.min_volume) },
		{ "complaint_warn", 'f', offsetof(struct policy_config, complaint.warn) },
		{ "complaint_hold", 'f', offsetof(struct policy_config, complaint.hold) },
		{ "complaint_min_delivered", 'u',
		  offsetof(struct policy_config, complaint.min_volume) },
		{ "trap_hold", 'u', offsetof(struct policy_config, trap_hold) },
		{ "tenant_trap_hold", 'u', offsetof(struct policy_config, tenant_trap_hold) },
		{ "grace", 'd', offsetof(struct policy_config, grace_ms) },
		{ "repeat_window", 'd', offsetof(struct policy_config, repeat_ms) },
		{ "spike_factor", 'x', offsetof(struct policy_config, spike_factor) },
		{ "spike_floor", 'u', offsetof(struct policy_config, spike_floor) },
		{ "spike_min_buckets", 'u', offsetof(struct policy_config, spike_min_buckets) },
		{ "spike_baseline", 'd', offsetof(struct policy_config, spike_baseline_ms) },
	};

	if (!c || !key || !value)
		return -EINVAL;
	for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
		char *p = (char *)c + knobs[i].off;
		if (strcmp(key, knobs[i].name))
			continue;
		switch (knobs[i].kind) {
		case 'f':
			if (config_parse_fraction(value, (double *)p) < 0)
				return cfg_err(err, errlen, "%s: \"%.40s\" is not a rate (\"5%%\", \"0.05\")",
					       key, value);
			return 0;
		case 'u':
			if (parse_u32(value, (uint32_t *)p) < 0)
				return cfg_err(err, errlen, "%s: \"%.40s\" is not a count", key, value);
			return 0;
		case 'd':
			if (config_parse_duration(value, (uint64_t *)p) < 0)
				return cfg_err(err, errlen,
					       "%s: \"%.40s\" is not a duration (\"1h\", \"24h\", \"7d\")",
					       key, value);
			return 0;
		default: {
			char *end;
			double v;
			errno = 0;
			v = strtod(value, &end);
			if (errno || end == value || *end || !(v >= 1 && v <= 1e6))
				return cfg_err(err, errlen, "%s: \"%.40s\" is not a factor >= 1", key,
					       value);
			*(double *)p = v;
			return 0;
		}
		}
	}
	return cfg_err(err, errlen, "unknown policy key \"%.40s\"", key);
}

int policy_config_check(const struct policy_config *c, char *err, size_t errlen)
{
	const struct {
		const char *name;
		const struct policy_threshold *t;
	} th[] = { { "bounce", &c->bounce }, { "unknown_user", &c->unknown },
		   { "complaint", &c->complaint } };

	if (!c->bucket_ms || !c->window_ms || c->window_ms % c->bucket_ms)
		return cfg_err(err, errlen, "window must be a non-zero multiple of bucket");
	if (c->window_ms / c->bucket_ms > RING_MAX / 2 ||
	    c->spike_baseline_ms / c->bucket_ms > RING_MAX)
		return cfg_err(err, errlen, "window or spike_baseline has too many buckets (max %d)",
			       RING_MAX / 2);
	for (size_t i = 0; i < 3; i++)
		if (th[i].t->warn && th[i].t->hold && th[i].t->warn > th[i].t->hold)
			return cfg_err(err, errlen, "%s_warn is above %s_hold", th[i].name,
				       th[i].name);
	if (c->spike_factor < 1)
		return cfg_err(err, errlen, "spike_factor must be at least 1");
	if (c->grace_ms > 365 * 24 * HOUR || c->repeat_ms > 365 * 24 * HOUR)
		return cfg_err(err, errlen, "grace and repeat_window are at most 365d");
	return 0;
}

int policy_config_parse(struct policy_config *cfg, const char *name, const char *yaml,
			size_t len, char *err, size_t errlen)
{
	struct shaping_ynode *root = NULL;
	struct policy_config c;
	char msg[200];
	int rc;

	if (!cfg || (!yaml && len))
		return -EINVAL;
	if (!name)
		name = "<string>";
	c = *cfg;
	rc = shaping_yaml_parse(name, yaml, len, &root, err, errlen);
	if (rc)
		return rc;
	if (root && root->kind != SHAPING_Y_MAP) {
		rc = cfg_err(err, errlen, "%s:%u:%u: expected a mapping of policy knobs", name,
			     root->line, root->col);
		goto out;
	}
	for (size_t i = 0; root && i + 1 < root->n; i += 2) {
		const struct shaping_ynode *k = root->kids[i], *v = root->kids[i + 1];
		if (v->kind != SHAPING_Y_SCALAR) {
			rc = cfg_err(err, errlen, "%s:%u:%u: %.40s: expected a scalar", name, v->line,
				     v->col, k->val);
			goto out;
		}
		if (policy_config_set(&c, k->val, v->val, msg, sizeof msg) < 0) {
			const struct shaping_ynode *at = strncmp(msg, "unknown", 7) ? v : k;
			rc = cfg_err(err, errlen, "%s:%u:%u: %s", name, at->line, at->col, msg);
			goto out;
		}
	}
	if (policy_config_check(&c, msg, sizeof msg) < 0) {
		rc = cfg_err(err, errlen, "%s: %s", name, msg);
		goto out;
	}
	*cfg = c;
out:
	shaping_yaml_free(root);
	return rc;
}

int policy_config_load(struct policy_config *cfg, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	rc = sl_file_read(path, 1u << 20, &text, &len);
	if (rc < 0) {
		cfg_err(err, errlen, "%s: %s", path, sl_strerror(rc));
		return rc == SL_ETOOBIG ? SL_ECONFIG : rc;
	}
	rc = policy_config_parse(cfg, path, text, len, err, errlen);
	free(text);
	return rc;
}

int policy_metrics_for_bounce(enum bounce_reason reason, bool hard, enum policy_metric m[2])
{
	switch (reason) {
	case BOUNCE_R_FEEDBACK:
		m[0] = POLICY_COMPLAINT;
		return 1;
	case BOUNCE_R_DELIVERED:
		m[0] = POLICY_DELIVERED;
		return 1;
	case BOUNCE_R_VACATION:
		return 0;
	default:
		if (!hard)
			return 0;
		m[0] = POLICY_BOUNCED;
		if (reason != BOUNCE_R_USERUNKNOWN)
			return 1;
		m[1] = POLICY_UNKNOWN_USER;
		return 2;
	}
}

/* --- subjects -------------------------------------------------------------- */

static uint32_t subj_hash(bool cfgset, const char *tenant, const char *domain, uint8_t stream)
{
	uint32_t h = 2166136261u;

	h = (h ^ (cfgset ? 1u : 2u)) * 16777619u;
	for (const char *s = tenant; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (const char *s = domain; *s; s++)
		h = (h ^ (uint8_t)tolower((unsigned char)*s)) * 16777619u;
	return (h ^ stream) * 16777619u;
}

struct policy *policy_create(const struct policy_config *cfg, size_t max_subjects)
{
	struct policy *p;
	size_t nb = 64;

	if (!cfg || policy_config_check(cfg, NULL, 0) < 0)
		return NULL;
	if (!max_subjects)
		max_subjects = DEFAULT_MAX_SUBJECTS;
	p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->cfg = *cfg;
	p->n_win = cfg->window_ms / cfg->bucket_ms;
	p->n_ring = p->n_win + (cfg->grace_ms + cfg->bucket_ms - 1) / cfg->bucket_ms + 1;
	if (p->n_ring > RING_MAX)
		p->n_ring = RING_MAX;
	p->n_hist = cfg->spike_baseline_ms / cfg->bucket_ms + 1;
	if (p->n_hist < 2)
		p->n_hist = 2;
	while (nb < max_subjects && nb < (1u << 30))
		nb <<= 1;
	p->bucket = malloc(nb * sizeof *p->bucket);
	if (!p->bucket) {
		free(p);
		return NULL;
	}
	for (size_t i = 0; i < nb; i++)
		p->bucket[i] = NIL;
	p->nbucket = nb;
	p->cap = max_subjects;
	p->free_head = NIL;
	return p;
}

static void subj_release(struct subject *s)
{
	free(s->ring);
	free(s->hist);
	s->ring = NULL;
	s->hist = NULL;
	s->used = false;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->alloc; i++)
		if (p->v[i].used)
			subj_release(&p->v[i]);
	free(p->v);
	free(p->bucket);
	free(p);
}

size_t policy_count(const struct policy *p)
{
	return p ? p->used : 0;
}

static struct subject *subj_find(struct policy *p, bool cfgset, const char *tenant,
				 const char *domain, uint8_t stream)
{
	uint32_t h = subj_hash(cfgset, tenant, domain, stream);

	for (uint32_t i = p->bucket[h & (p->nbucket - 1)]; i != NIL; i = p->v[i].next) {
		struct subject *s = &p->v[i];
		if (s->hash == h && s->cfgset == cfgset && s->stream == stream &&
		    !strcmp(s->tenant, tenant) && !strcasecmp(s->domain, domain))
			return s;
	}
	return NULL;
}

static void subj_remove(struct policy *p, uint32_t idx)
{
	uint32_t *pp = &p->bucket[p->v[idx].hash & (p->nbucket - 1)];

	while (*pp != idx)
		pp = &p->v[*pp].next;
	*pp = p->v[idx].next;
	subj_release(&p->v[idx]);
	p->v[idx].next = p->free_head;
	p->free_head = idx;
	p->used--;
}

static int subj_get(struct policy *p, bool cfgset, const char *tenant, const char *domain,
		    uint8_t stream, uint64_t now_ms, struct subject **out)
{
	struct subject *s = subj_find(p, cfgset, tenant, domain, stream);
	uint32_t idx;

	if (s) {
		*out = s;
		return 0;
	}
	if (p->used >= p->cap) {
		uint32_t lru = NIL;
		for (uint32_t i = 0; i < p->alloc; i++)
			if (p->v[i].used && p->v[i].state == POLICY_OK &&
			    (lru == NIL || p->v[i].touched_ms < p->v[lru].touched_ms))
				lru = i;
		if (lru == NIL)
			return -ENOSPC;
		subj_remove(p, lru);
	}
	if (p->free_head != NIL) {
		idx = p->free_head;
		p->free_head = p->v[idx].next;
	} else {
		if (p->alloc % 64 == 0) {
			struct subject *nv = realloc(p->v, (p->alloc + 64) * sizeof *nv);
			if (!nv)
				return -ENOMEM;
			p->v = nv;
		}
		idx = (uint32_t)p->alloc++;
		p->v[idx].used = false;
	}
	s = &p->v[idx];
	memset(s, 0, sizeof *s);
	s->ring = calloc(p->n_ring, sizeof *s->ring);
	s->hist = cfgset ? NULL : calloc(p->n_hist, sizeof *s->hist);
	if (!s->ring || (!cfgset && !s->hist)) {
		free(s->ring);
		free(s->hist);
		s->next = p->free_head;
		p->free_head = idx;
		return -ENOMEM;
	}
	s->used = true;
	s->cfgset = cfgset;
	snprintf(s->tenant, sizeof s->tenant, "%s", tenant);
	for (size_t i = 0; domain[i] && i < POLICY_DOMAIN_MAX; i++)
		s->domain[i] = (char)tolower((unsigned char)domain[i]);
	s->stream = stream;
	s->touched_ms = now_ms;
	s->hash = subj_hash(cfgset, s->tenant, s->domain, stream);
	s->next = p->bucket[s->hash & (p->nbucket - 1)];
	p->bucket[s->hash & (p->nbucket - 1)] = idx;
	p->used++;
	*out = s;
	return 0;
}

static bool key_ok(const struct policy_key *k)
{
	return k && k->tenant && *k->tenant && strlen(k->tenant) <= POLICY_NAME_MAX &&
	       (!k->domain || strlen(k->domain) <= POLICY_DOMAIN_MAX);
}

static bool key_has_cfgset(const struct policy_key *k)
{
	return k->domain && *k->domain;
}

static uint32_t sat_add(uint32_t a, uint32_t b)
{
	return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

static void subj_count(struct policy *p, struct subject *s, enum policy_metric m, uint32_t n,
		       uint64_t now_ms)
{
	uint64_t b = now_ms / p->cfg.bucket_ms;
	struct bucket *bk = &s->ring[b % p->n_ring];

	if (bk->tag != b + 1) {
		memset(bk, 0, sizeof *bk);
		bk->tag = b + 1;
	}
	bk->c[m] = sat_add(bk->c[m], n);
	if (s->hist && m == POLICY_ACCEPTED) {
		struct hist *h = &s->hist[b % p->n_hist];
		if (h->tag != b + 1) {
			h->tag = b + 1;
			h->sent = 0;
		}
		h->sent = sat_add(h->sent, n);
	}
	s->touched_ms = now_ms;
}

int policy_record(struct policy *p, const struct policy_key *key, enum policy_metric metric,
		  uint32_t n, uint64_t now_ms)
{
	struct subject *c = NULL, *t = NULL;
	int rc;

	if (!p || !key_ok(key) || (unsigned)metric >= POLICY_N_METRICS)
		return -EINVAL;
	if (key_has_cfgset(key)) {
		rc = subj_get(p, true, key->tenant, key->domain, key->stream, now_ms, &c);
		if (rc < 0)
			return rc;
	}
	rc = subj_get(p, false, key->tenant, "", 0, now_ms, &t);
	if (rc < 0)
		return rc;
	/* the tenant's lookup may have evicted the set; find it again */
	if (key_has_cfgset(key) && !(c = subj_find(p, true, key->tenant, key->domain, key->stream)))
		return -ENOSPC;
	if (c)
		subj_count(p, c, metric, n, now_ms);
	subj_count(p, t, metric, n, now_ms);
	return 0;
}

/* --- judging ---------------------------------------------------------------- */

static double rate(uint64_t num, uint64_t den, uint32_t guard)
{
	if (!den || den < guard)
		return -1;
	return (double)num / (double)den;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Sums over buckets [from, to] (bucket numbers) and the spike numbers. */
static void numbers(struct policy *p, const struct subject *s, uint64_t from, uint64_t to,
		    struct policy_numbers *n)
{
	const struct policy_config *c = &p->cfg;

	memset(n, 0, sizeof *n);
	for (size_t i = 0; i < p->n_ring; i++) {
		const struct bucket *bk = &s->ring[i];
		if (!bk->tag || bk->tag - 1 < from || bk->tag - 1 > to)
			continue;
		for (int m = 0; m < POLICY_N_METRICS; m++)
			n->count[m] += bk->c[m];
	}
	n->bounce_rate = rate(n->count[POLICY_BOUNCED], n->count[POLICY_SENT], c->bounce.min_volume);
	n->unknown_rate =
		rate(n->count[POLICY_UNKNOWN_USER], n->count[POLICY_SENT], c->unknown.min_volume);
	n->complaint_rate = rate(n->count[POLICY_COMPLAINT], n->count[POLICY_DELIVERED],
				 c->complaint.min_volume);
	n->baseline = -1;
	if (s->hist) {
		uint32_t *v = malloc(p->n_hist * sizeof *v);
		size_t k = 0;

		for (size_t i = 0; i < p->n_hist; i++) {
			const struct hist *h = &s->hist[i];
			if (!h->tag)
				continue;
			if (h->tag - 1 == to)
				n->bucket_sent = h->sent;
			else if (h->tag - 1 < to && h->tag - 1 + p->n_hist > to && h->sent && v)
				v[k++] = h->sent;
		}
		if (v && k && k >= p->cfg.spike_min_buckets) {
			qsort(v, k, sizeof *v, cmp_u32);
			n->baseline = k % 2 ? v[k / 2] : (v[k / 2 - 1] + (double)v[k / 2]) / 2;
		}
		free(v);
	}
}

struct verdict {
	int level; /* 0 fine, 1 warn, 2 hold */
	enum policy_reason reason;
	double value, threshold;
};

static void judge(const struct policy *p, const struct subject *s, const struct policy_numbers *n,
		  bool with_spike, struct verdict *v)
{
	const struct policy_config *c = &p->cfg;
	const struct {
		enum policy_reason r;
		double value;
		const struct policy_threshold *t;
	} rates[] = {
		{ POLICY_R_COMPLAINT_RATE, n->complaint_rate, &c->complaint },
		{ POLICY_R_UNKNOWN_RATE, n->unknown_rate, &c->unknown },
		{ POLICY_R_BOUNCE_RATE, n->bounce_rate, &c->bounce },
	};
	uint32_t traps = s->cfgset ? c->trap_hold : c->tenant_trap_hold;

	memset(v, 0, sizeof *v);
	if (traps && n->count[POLICY_TRAP_HIT] >= traps) {
		*v = (struct verdict){ 2, POLICY_R_SPAM_TRAP, (double)n->count[POLICY_TRAP_HIT],
				       traps };
		return;
	}
	for (int l = 2; l >= 1; l--) {
		for (size_t i = 0; i < 3; i++) {
			double th = l == 2 ? rates[i].t->hold : rates[i].t->warn;
			if (th > 0 && rates[i].value >= 0 && rates[i].value >= th) {
				*v = (struct verdict){ l, rates[i].r, rates[i].value, th };
				return;
			}
		}
		if (l == 2 && with_spike && !s->cfgset && n->baseline >= 0 &&
		    n->bucket_sent >= c->spike_floor &&
		    (double)n->bucket_sent > c->spike_factor * n->baseline) {
			*v = (struct verdict){ 2, POLICY_R_VOLUME_SPIKE, (double)n->bucket_sent,
					       c->spike_factor * n->baseline };
			return;
		}
	}
}

static void fmt_value(char *out, size_t len, enum policy_reason r, double v)
{
	if (r == POLICY_R_SPAM_TRAP || r == POLICY_R_VOLUME_SPIKE)
		snprintf(out, len, "%.0f", v);
	else
		snprintf(out, len, "%.2f%%", v * 100);
}

static void fill(const struct policy *p, const struct subject *s, enum tenant_event ev,
		 const struct verdict *v, const struct policy_numbers *n, uint64_t now_ms,
		 struct policy_decision *d)
{
	char who[POLICY_NAME_MAX + POLICY_DOMAIN_MAX + 40], val[32], lim[32];
	const uint64_t *c = n->count;
	unsigned hours = (unsigned)(p->cfg.window_ms / HOUR);

	memset(d, 0, sizeof *d);
	d->cfgset = s->cfgset;
	strcpy(d->tenant, s->tenant);
	strcpy(d->domain, s->domain);
	d->stream = s->stream;
	d->event = ev;
	d->reason = v->reason;
	d->value = v->value;
	d->threshold = v->threshold;
	d->n = *n;
	d->at_ms = now_ms;
	d->grace_until_ms = ev == TENANT_EV_POLICY_HOLD ? s->grace_until_ms : 0;
	if (s->cfgset)
		snprintf(who, sizeof who, "configuration set %s/%s/%s", s->tenant, s->domain,
			 stream_name(s->stream));
	else
		snprintf(who, sizeof who, "tenant %s", s->tenant);
	fmt_value(val, sizeof val, v->reason, v->value);
	fmt_value(lim, sizeof lim, v->reason, v->threshold);
	if (v->reason == POLICY_R_RECOVERED)
		snprintf(d->text, sizeof d->text,
			 "%s: %s: below every warn threshold (%llu sent, %llu bounced, %llu "
			 "complaints in %uh)",
			 who, tenant_event_name(ev), (unsigned long long)c[POLICY_SENT],
			 (unsigned long long)c[POLICY_BOUNCED], (unsigned long long)c[POLICY_COMPLAINT],
			 hours);
	else if (v->reason == POLICY_R_VOLUME_SPIKE)
		snprintf(d->text, sizeof d->text,
			 "%s: %s: volume spike: %s accepted this bucket > %g x median %.1f of its "
			 "recent non-empty buckets (limit %s, bucket %llus)",
			 who, tenant_event_name(ev), val, p->cfg.spike_factor, n->baseline, lim,
			 (unsigned long long)(p->cfg.bucket_ms / 1000));
	else
		snprintf(d->text, sizeof d->text,
			 "%s: %s: %s %s >= %s (%llu sent, %llu delivered, %llu bounced, %llu unknown "
			 "users, %llu complaints, %llu trap hits in %uh)",
			 who, tenant_event_name(ev), policy_reason_name(v->reason), val, lim,
			 (unsigned long long)c[POLICY_SENT], (unsigned long long)c[POLICY_DELIVERED],
			 (unsigned long long)c[POLICY_BOUNCED],
			 (unsigned long long)c[POLICY_UNKNOWN_USER],
			 (unsigned long long)c[POLICY_COMPLAINT], (unsigned long long)c[POLICY_TRAP_HIT],
			 hours);
}

static void window_numbers(struct policy *p, const struct subject *s, uint64_t now_ms,
			   struct policy_numbers *n)
{
	uint64_t b = now_ms / p->cfg.bucket_ms;
	uint64_t from = b + 1 >= p->n_win ? b + 1 - p->n_win : 0;

	numbers(p, s, from, b, n);
}

/* Judge one subject; 1 with *d filled when its state changes, else 0. */
static int evaluate(struct policy *p, struct subject *s, uint64_t now_ms, struct policy_decision *d)
{
	const struct policy_config *c = &p->cfg;
	struct policy_numbers n;
	struct verdict v;

	switch (s->state) {
	case POLICY_OK:
	case POLICY_WARNED:
		window_numbers(p, s, now_ms, &n);
		judge(p, s, &n, true, &v);
		if (v.level == 2) {
			if (s->holds && s->resumed_at_ms && now_ms - s->resumed_at_ms < c->repeat_ms) {
				s->state = POLICY_DISABLED;
				s->holds++;
				fill(p, s, TENANT_EV_POLICY_DISABLE, &v, &n, now_ms, d);
				return 1;
			}
			s->state = POLICY_HELD;
			s->held_at_ms = now_ms;
			s->grace_until_ms = now_ms + c->grace_ms;
			s->recovered = false;
			s->holds++;
			fill(p, s, TENANT_EV_POLICY_HOLD, &v, &n, now_ms, d);
			return 1;
		}
		if (v.level == 1 && s->state == POLICY_OK) {
			s->state = POLICY_WARNED;
			fill(p, s, TENANT_EV_POLICY_WARN, &v, &n, now_ms, d);
			return 1;
		}
		if (v.level == 0 && s->state == POLICY_WARNED) {
			s->state = POLICY_OK;
			v.reason = POLICY_R_RECOVERED;
			fill(p, s, TENANT_EV_POLICY_RECOVER, &v, &n, now_ms, d);
			return 1;
		}
		return 0;
	case POLICY_HELD:
		if (!s->grace_until_ms || now_ms < s->grace_until_ms || s->recovered)
			return 0;
		{
			/* the window before the hold and everything since */
			uint64_t b = now_ms / c->bucket_ms, hb = s->held_at_ms / c->bucket_ms;
			uint64_t from = hb + 1 >= p->n_win ? hb + 1 - p->n_win : 0;
			if (b - from >= p->n_ring)
				from = b - p->n_ring + 1;
			numbers(p, s, from, b, &n);
		}
		judge(p, s, &n, false, &v);
		if (v.level < 2) {
			s->recovered = true;
			return 0;
		}
		s->state = POLICY_DISABLED;
		fill(p, s, TENANT_EV_GRACE_EXPIRED, &v, &n, now_ms, d);
		return 1;
	default:
		return 0;
	}
}

int policy_evaluate(struct policy *p, const struct policy_key *key, uint64_t now_ms,
		    struct policy_decision *out, size_t max)
{
	struct subject *s[2];
	int k = 0;

	if (!p || !key_ok(key) || (max && !out))
		return -EINVAL;
	s[0] = key_has_cfgset(key) ? subj_find(p, true, key->tenant, key->domain, key->stream)
				   : NULL;
	s[1] = subj_find(p, false, key->tenant, "", 0);
	for (int i = 0; i < 2; i++)
		if (s[i] && (size_t)k < max && evaluate(p, s[i], now_ms, &out[k]))
			k++;
	return k;
}

int policy_tick(struct policy *p, uint64_t now_ms, struct policy_decision *out, size_t max)
{
	size_t k = 0, seen = 0;

	if (!p || (max && !out))
		return -EINVAL;
	if (p->cursor >= p->alloc)
		p->cursor = 0;
	while (seen < p->alloc && k < max) {
		struct subject *s = &p->v[p->cursor];
		if (s->used && evaluate(p, s, now_ms, &out[k]))
			k++;
		seen++;
		if (++p->cursor >= p->alloc)
			p->cursor = 0;
	}
	return (int)k;
}

int policy_set_state(struct policy *p, const struct policy_key *key, enum policy_state st,
		     uint64_t grace_until_ms, uint64_t now_ms)
{
	struct subject *s;
	int rc;

	if (!p || !key_ok(key) || (unsigned)st > POLICY_DISABLED)
		return -EINVAL;
	rc = key_has_cfgset(key)
		     ? subj_get(p, true, key->tenant, key->domain, key->stream, now_ms, &s)
		     : subj_get(p, false, key->tenant, "", 0, now_ms, &s);
	if (rc < 0)
		return rc;
	if (st == POLICY_OK && s->state != POLICY_OK) {
		memset(s->ring, 0, p->n_ring * sizeof *s->ring);
		if (s->hist)
			memset(s->hist, 0, p->n_hist * sizeof *s->hist);
		s->resumed_at_ms = now_ms;
	}
	if (st == POLICY_HELD) {
		s->held_at_ms = now_ms;
		s->grace_until_ms = grace_until_ms;
	} else {
		s->held_at_ms = s->grace_until_ms = 0;
	}
	s->recovered = false;
	s->state = st;
	s->touched_ms = now_ms;
	return 0;
}

int policy_status(struct policy *p, const struct policy_key *key, uint64_t now_ms,
		  struct policy_status *out)
{
	struct subject *s;

	if (!p || !key_ok(key) || !out)
		return -EINVAL;
	s = key_has_cfgset(key) ? subj_find(p, true, key->tenant, key->domain, key->stream)
				: subj_find(p, false, key->tenant, "", 0);
	if (!s)
		return SL_ENOTFOUND;
	memset(out, 0, sizeof *out);
	out->state = s->state;
	window_numbers(p, s, now_ms, &out->n);
	out->held_at_ms = s->held_at_ms;
	out->grace_until_ms = s->grace_until_ms;
	out->resumed_at_ms = s->resumed_at_ms;
	out->holds = s->holds;
	out->recovered = s->recovered;
	return 0;
}

/* --- JSON -------------------------------------------------------------------- */

static void obj_double(struct json_obj *o, const char *key, double v)
{
	char tmp[40];
	int n;

	if (v < 0 || !isfinite(v)) {
		json_obj_raw(o, key, "null", 4);
		return;
	}
	n = snprintf(tmp, sizeof tmp, "%.6g", v);
	json_obj_raw(o, key, tmp, (size_t)n);
}

int policy_decision_json(const struct policy_decision *d, struct sl_buf *b)
{
	struct json_obj o;

	if (!d || !b)
		return -EINVAL;
	json_obj_begin(&o, b);
	json_obj_str(&o, "scope", d->cfgset ? "cfgset" : "tenant");
	json_obj_str(&o, "tenant", d->tenant);
	if (d->cfgset) {
		json_obj_str(&o, "domain", d->domain);
		json_obj_str(&o, "stream", stream_name(d->stream));
	}
	json_obj_str(&o, "event", tenant_event_name(d->event));
	json_obj_str(&o, "reason", policy_reason_name(d->reason));
	obj_double(&o, "value", d->value);
	obj_double(&o, "threshold", d->threshold);
	for (int m = 0; m < POLICY_N_METRICS; m++)
		json_obj_u64(&o, policy_metric_name((enum policy_metric)m), d->n.count[m]);
	obj_double(&o, "bounce_rate", d->n.bounce_rate);
	obj_double(&o, "unknown_user_rate", d->n.unknown_rate);
	obj_double(&o, "complaint_rate", d->n.complaint_rate);
	if (!d->cfgset) {
		json_obj_u64(&o, "bucket_sent", d->n.bucket_sent);
		obj_double(&o, "baseline", d->n.baseline);
	}
	json_obj_u64(&o, "at", d->at_ms);
	if (d->grace_until_ms)
		json_obj_u64(&o, "grace_until", d->grace_until_ms);
	json_obj_str(&o, "text", d->text);
	return json_obj_end(&o);
}
