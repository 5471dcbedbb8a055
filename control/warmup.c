/*
 * warmup.c — warm-up schedules, caps by day, per (IP, provider) counters;
 * see warmup.h. The YAML tree comes from shaping_yaml_parse().
 */
#include "warmup.h"

#include "file.h"

#include "err.h"
#include "shaping.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HOUR_MS 3600000ull
#define DAY_MS (24ull * HOUR_MS)
#define WARMUP_MAX_FILE (4u << 20)
#define WARMUP_MAX_DAY 3650u

struct warmup_schedule {
	char *name;
	uint32_t hourly_spread;
	struct warmup_curve def;
	struct warmup_curve *prov;
	size_t n_prov;
};

struct warmup_pool {
	char *name;
	enum warmup_overflow overflow;
};

struct warmup_config {
	struct warmup_schedule **sched;
	size_t n_sched;
	struct warmup_ip *ips;
	size_t n_ips;
	struct warmup_pool *pools;
	size_t n_pools;
};

/* ---- loading ------------------------------------------------------------ */

struct wctx {
	const char *name;
	char *err;
	size_t errlen;
	char path[256];
	struct warmup_config *cfg;
};

__attribute__((format(printf, 3, 4))) static int bad(struct wctx *c, const struct shaping_ynode *n,
						     const char *fmt, ...)
{
	va_list ap;
	int k;

	if (!c->err || !c->errlen)
		return SL_ECONFIG;
	k = snprintf(c->err, c->errlen, "%s:%u:%u: %s%s", c->name, n->line, n->col, c->path,
		     c->path[0] ? ": " : "");
	if (k >= 0 && (size_t)k < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
		va_end(ap);
	}
	return SL_ECONFIG;
}

static int nomem(struct wctx *c)
{
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: out of memory", c->name);
	return -ENOMEM;
}

static size_t path_push(struct wctx *c, const char *seg)
{
	size_t old = strlen(c->path);

	snprintf(c->path + old, sizeof(c->path) - old, "%s%s", old ? "." : "", seg);
	return old;
}

static void path_pop(struct wctx *c, size_t old)
{
	c->path[old] = '\0';
}

static void path_index(struct wctx *c, size_t i)
{
	size_t old = strlen(c->path);

	snprintf(c->path + old, sizeof(c->path) - old, "[%zu]", i);
}

static bool is_null(const struct shaping_ynode *n)
{
	return n->kind == SHAPING_Y_SCALAR && n->plain &&
	       (n->len == 0 || !strcmp(n->val, "~") || !strcmp(n->val, "null"));
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	bool digit = false;

	if (!*s)
		return SL_ECONFIG;
	for (; *s; s++) {
		if ((*s == ',' || *s == '_') && digit)
			continue;
		if (!isdigit((unsigned char)*s))
			return SL_ECONFIG;
		digit = true;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return SL_ECONFIG;
	}
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (int64_t)doe - 719468;
}

/* "YYYY-MM-DD" (1970..9999) to ms since the epoch at 00:00 UTC. */
static int parse_date(const char *s, uint64_t *ms)
{
	unsigned y, m, d;
	int n = 0;
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (strlen(s) != 10 || sscanf(s, "%4u-%2u-%2u%n", &y, &m, &d, &n) != 3 || n != 10)
		return SL_ECONFIG;
	if (!isdigit((unsigned char)s[5]) || !isdigit((unsigned char)s[8]))
		return SL_ECONFIG;
	if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return SL_ECONFIG;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return SL_ECONFIG;
	*ms = (uint64_t)days_from_civil(y, m, d) * DAY_MS;
	return 0;
}

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) > 63)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

static int cap_value(struct wctx *c, const struct shaping_ynode *v, uint64_t *out)
{
	if (v->kind == SHAPING_Y_SCALAR && !strcmp(v->val, "unlimited")) {
		*out = WARMUP_UNLIMITED;
		return 0;
	}
	if (v->kind != SHAPING_Y_SCALAR || parse_u64(v->val, 1000000000000ull, out) || *out == 0)
		return bad(c, v, "expected a count from 1 (or 'unlimited'), not '%.40s'",
			   v->kind == SHAPING_Y_SCALAR ? v->val : "");
	return 0;
}

static int parse_curve(struct wctx *c, const struct shaping_ynode *seq, uint32_t spread,
		       struct warmup_curve *cv)
{
	if (seq->kind != SHAPING_Y_SEQ || seq->n == 0)
		return bad(c, seq, "expected a list of steps like {day: 1, daily: 50, hourly: 10}");
	cv->steps = calloc(seq->n, sizeof(*cv->steps));
	if (!cv->steps)
		return nomem(c);
	for (size_t i = 0; i < seq->n; i++) {
		const struct shaping_ynode *m = seq->kids[i];
		struct warmup_step *st = &cv->steps[i];
		bool have_day = false, have_daily = false, have_hourly = false;
		size_t old = strlen(c->path);
		int rc = 0;

		path_index(c, i);
		if (m->kind != SHAPING_Y_MAP) {
			rc = bad(c, m, "expected a step like {day: 1, daily: 50}");
			goto out;
		}
		for (size_t k = 0; k + 1 < m->n && !rc; k += 2) {
			const struct shaping_ynode *key = m->kids[k], *v = m->kids[k + 1];
			uint64_t x = 0;

			if (!strcmp(key->val, "day")) {
				if (v->kind != SHAPING_Y_SCALAR || parse_u64(v->val, WARMUP_MAX_DAY, &x) ||
				    x == 0)
					rc = bad(c, v, "day must be a number from 1 to %u",
						 WARMUP_MAX_DAY);
				st->day = (uint32_t)x;
				have_day = true;
			} else if (!strcmp(key->val, "daily")) {
				rc = cap_value(c, v, &st->daily);
				have_daily = true;
			} else if (!strcmp(key->val, "hourly")) {
				rc = cap_value(c, v, &st->hourly);
				have_hourly = true;
			} else {
				rc = bad(c, key, "unknown key '%.40s' (expected day, daily, hourly)",
					 key->val);
			}
		}
		if (rc)
			goto out;
		if (!have_day || !have_daily) {
			rc = bad(c, m, "a step needs day and daily");
			goto out;
		}
		if (i == 0 && st->day != 1) {
			rc = bad(c, m, "the first step must be day 1");
			goto out;
		}
		if (i > 0 && st->day <= cv->steps[i - 1].day) {
			rc = bad(c, m, "days must increase (previous step is day %u)",
				 cv->steps[i - 1].day);
			goto out;
		}
		if (i > 0 && st->daily < cv->steps[i - 1].daily) {
			rc = bad(c, m, "the daily cap must not shrink from one step to the next");
			goto out;
		}
		if (!have_hourly)
			st->hourly = st->daily == WARMUP_UNLIMITED || spread == 0
					     ? WARMUP_UNLIMITED
					     : (st->daily + spread - 1) / spread;
		if (st->daily == WARMUP_UNLIMITED)
			st->hourly = WARMUP_UNLIMITED;
		if (st->hourly != WARMUP_UNLIMITED && st->hourly > st->daily) {
			rc = bad(c, m, "the hourly cap is above the daily cap");
			goto out;
		}
		cv->n_steps = i + 1;
out:
		path_pop(c, old);
		if (rc)
			return rc;
	}
	return 0;
}

static void schedule_free(struct warmup_schedule *s)
{
	if (!s)
		return;
	free(s->def.steps);
	for (size_t i = 0; i < s->n_prov; i++) {
		free(s->prov[i].steps);
		free((char *)s->prov[i].provider);
	}
	free(s->prov);
	free(s->name);
	free(s);
}

static int parse_schedule(struct wctx *c, const struct shaping_ynode *key,
			  const struct shaping_ynode *m, struct warmup_schedule **out)
{
	const struct shaping_ynode *def = NULL, *prov = NULL;
	struct warmup_schedule *s;
	uint64_t spread = 0;
	int rc = 0;

	*out = NULL;
	if (!valid_name(key->val))
		return bad(c, key, "'%.40s' is not a valid schedule name", key->val);
	if (m->kind != SHAPING_Y_MAP)
		return bad(c, m, "expected a mapping with default and providers");
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct shaping_ynode *k = m->kids[i], *v = m->kids[i + 1];

		if (!strcmp(k->val, "default"))
			def = v;
		else if (!strcmp(k->val, "providers"))
			prov = v;
		else if (!strcmp(k->val, "hourly_spread")) {
			if (v->kind != SHAPING_Y_SCALAR || parse_u64(v->val, 24, &spread)) {
				size_t old = path_push(c, "hourly_spread");
				rc = bad(c, v, "expected a number of hours from 0 to 24");
				path_pop(c, old);
				return rc;
			}
		} else
			return bad(c, k, "unknown key '%.40s' (expected hourly_spread, default, "
					 "providers)",
				   k->val);
	}
	if (!def)
		return bad(c, m, "a schedule needs a default curve");
	if (prov && !is_null(prov) && prov->kind != SHAPING_Y_MAP) {
		size_t old = path_push(c, "providers");
		rc = bad(c, prov, "expected a mapping of provider names to curves");
		path_pop(c, old);
		return rc;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return nomem(c);
	s->name = strdup(key->val);
	s->hourly_spread = (uint32_t)spread;
	if (!s->name) {
		rc = nomem(c);
		goto fail;
	}
	s->def.schedule = s->name;
	{
		size_t old = path_push(c, "default");
		rc = parse_curve(c, def, s->hourly_spread, &s->def);
		path_pop(c, old);
		if (rc)
			goto fail;
	}
	if (prov && prov->kind == SHAPING_Y_MAP && prov->n) {
		s->prov = calloc(prov->n / 2, sizeof(*s->prov));
		if (!s->prov) {
			rc = nomem(c);
			goto fail;
		}
		for (size_t i = 0; i + 1 < prov->n; i += 2) {
			const struct shaping_ynode *pk = prov->kids[i];
			struct warmup_curve *cv = &s->prov[s->n_prov];
			size_t old = path_push(c, "providers");

			path_push(c, pk->val);
			if (!valid_name(pk->val))
				rc = bad(c, pk, "'%.40s' is not a valid provider name", pk->val);
			else if (!(cv->provider = strdup(pk->val)))
				rc = nomem(c);
			else {
				cv->schedule = s->name;
				s->n_prov++;
				rc = parse_curve(c, prov->kids[i + 1], s->hourly_spread, cv);
			}
			path_pop(c, old);
			if (rc)
				goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	schedule_free(s);
	return rc;
}

static bool canon_ip(const char *s, char *buf, size_t len)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, s, a) == 1)
		return inet_ntop(AF_INET, a, buf, (socklen_t)len) != NULL;
	if (inet_pton(AF_INET6, s, a) == 1)
		return inet_ntop(AF_INET6, a, buf, (socklen_t)len) != NULL;
	return false;
}

static int parse_ips(struct wctx *c, const struct shaping_ynode *m)
{
	struct warmup_config *cfg = c->cfg;

	if (is_null(m))
		return 0;
	if (m->kind != SHAPING_Y_MAP)
		return bad(c, m, "expected a mapping of source IPs to {schedule, start}");
	cfg->ips = calloc(m->n / 2 + 1, sizeof(*cfg->ips));
	if (!cfg->ips)
		return nomem(c);
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct shaping_ynode *key = m->kids[i], *v = m->kids[i + 1];
		struct warmup_ip *ip = &cfg->ips[cfg->n_ips];
		const struct shaping_ynode *sched = NULL, *start = NULL;
		char canon[INET6_ADDRSTRLEN];
		size_t old = path_push(c, key->val);
		int rc = 0;

		if (!canon_ip(key->val, canon, sizeof canon)) {
			rc = bad(c, key, "'%.60s' is not an IP address (quote IPv6 ones)", key->val);
			goto out;
		}
		if (warmup_ip_for(cfg, canon)) {
			rc = bad(c, key, "address %s is listed twice", canon);
			goto out;
		}
		if (v->kind != SHAPING_Y_MAP) {
			rc = bad(c, v, "expected {schedule: NAME, start: YYYY-MM-DD}");
			goto out;
		}
		for (size_t k = 0; k + 1 < v->n && !rc; k += 2) {
			if (!strcmp(v->kids[k]->val, "schedule"))
				sched = v->kids[k + 1];
			else if (!strcmp(v->kids[k]->val, "start"))
				start = v->kids[k + 1];
			else
				rc = bad(c, v->kids[k], "unknown key '%.40s' (expected schedule, start)",
					 v->kids[k]->val);
		}
		if (rc)
			goto out;
		if (!sched || !start) {
			rc = bad(c, v, "an IP needs schedule and start");
			goto out;
		}
		if (sched->kind != SHAPING_Y_SCALAR ||
		    !(ip->schedule = warmup_schedule_by_name(cfg, sched->val))) {
			rc = bad(c, sched, "no schedule named '%.40s'",
				 sched->kind == SHAPING_Y_SCALAR ? sched->val : "");
			goto out;
		}
		if (start->kind != SHAPING_Y_SCALAR || parse_date(start->val, &ip->start_ms)) {
			rc = bad(c, start, "start must be a date YYYY-MM-DD");
			goto out;
		}
		if (!(ip->ip = strdup(canon))) {
			rc = nomem(c);
			goto out;
		}
		cfg->n_ips++;
out:
		path_pop(c, old);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_pools(struct wctx *c, const struct shaping_ynode *m)
{
	struct warmup_config *cfg = c->cfg;

	if (is_null(m))
		return 0;
	if (m->kind != SHAPING_Y_MAP)
		return bad(c, m, "expected a mapping of pool names to {overflow: spill|wait}");
	cfg->pools = calloc(m->n / 2 + 1, sizeof(*cfg->pools));
	if (!cfg->pools)
		return nomem(c);
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct shaping_ynode *key = m->kids[i], *v = m->kids[i + 1];
		struct warmup_pool *p = &cfg->pools[cfg->n_pools];
		size_t old = path_push(c, key->val);
		int rc = 0;

		if (!valid_name(key->val))
			rc = bad(c, key, "'%.40s' is not a valid pool name", key->val);
		else if (v->kind != SHAPING_Y_MAP)
			rc = bad(c, v, "expected {overflow: spill|wait}");
		for (size_t k = 0; !rc && k + 1 < v->n; k += 2) {
			const struct shaping_ynode *o = v->kids[k + 1];

			if (strcmp(v->kids[k]->val, "overflow"))
				rc = bad(c, v->kids[k], "unknown key '%.40s' (expected overflow)",
					 v->kids[k]->val);
			else if (o->kind == SHAPING_Y_SCALAR && !strcmp(o->val, "spill"))
				p->overflow = WARMUP_SPILL;
			else if (o->kind == SHAPING_Y_SCALAR && !strcmp(o->val, "wait"))
				p->overflow = WARMUP_WAIT;
			else
				rc = bad(c, o, "overflow is 'spill' or 'wait'");
		}
		if (!rc && !(p->name = strdup(key->val)))
			rc = nomem(c);
		if (!rc)
			cfg->n_pools++;
		path_pop(c, old);
		if (rc)
			return rc;
	}
	return 0;
}

void warmup_free(struct warmup_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_sched; i++)
		schedule_free(cfg->sched[i]);
	free(cfg->sched);
	for (size_t i = 0; i < cfg->n_ips; i++)
		free((char *)cfg->ips[i].ip);
	free(cfg->ips);
	for (size_t i = 0; i < cfg->n_pools; i++)
		free(cfg->pools[i].name);
	free(cfg->pools);
	free(cfg);
}

int warmup_load_string(const char *name, const char *yaml, size_t len,
		       struct warmup_config **out, char *err, size_t errlen)
{
	struct wctx c = { .name = name ? name : "<string>", .err = err, .errlen = errlen };
	const struct shaping_ynode *scheds = NULL, *ips = NULL, *pools = NULL;
	struct shaping_ynode *root = NULL;
	int rc;

	*out = NULL;
	c.cfg = calloc(1, sizeof(*c.cfg));
	if (!c.cfg)
		return nomem(&c);
	rc = shaping_yaml_parse(c.name, yaml, len, &root, err, errlen);
	if (rc)
		goto fail;
	if (root && !is_null(root)) {
		if (root->kind != SHAPING_Y_MAP) {
			rc = bad(&c, root, "expected a mapping with schedules, pools, ips");
			goto fail;
		}
		for (size_t i = 0; i + 1 < root->n; i += 2) {
			const struct shaping_ynode *k = root->kids[i];

			if (!strcmp(k->val, "schedules"))
				scheds = root->kids[i + 1];
			else if (!strcmp(k->val, "ips"))
				ips = root->kids[i + 1];
			else if (!strcmp(k->val, "pools"))
				pools = root->kids[i + 1];
			else {
				rc = bad(&c, k, "unknown key '%.40s' (expected schedules, pools, ips)",
					 k->val);
				goto fail;
			}
		}
	}
	if (scheds && !is_null(scheds)) {
		size_t old = path_push(&c, "schedules");

		if (scheds->kind != SHAPING_Y_MAP) {
			rc = bad(&c, scheds, "expected a mapping of schedule names to schedules");
			goto fail;
		}
		c.cfg->sched = calloc(scheds->n / 2 + 1, sizeof(*c.cfg->sched));
		if (!c.cfg->sched) {
			rc = nomem(&c);
			goto fail;
		}
		for (size_t i = 0; i + 1 < scheds->n; i += 2) {
			size_t o2 = path_push(&c, scheds->kids[i]->val);

			rc = parse_schedule(&c, scheds->kids[i], scheds->kids[i + 1],
					    &c.cfg->sched[c.cfg->n_sched]);
			path_pop(&c, o2);
			if (rc)
				goto fail;
			c.cfg->n_sched++;
		}
		path_pop(&c, old);
	}
	if (pools) {
		size_t old = path_push(&c, "pools");
		rc = parse_pools(&c, pools);
		path_pop(&c, old);
		if (rc)
			goto fail;
	}
	if (ips) {
		size_t old = path_push(&c, "ips");
		rc = parse_ips(&c, ips);
		path_pop(&c, old);
		if (rc)
			goto fail;
	}
	shaping_yaml_free(root);
	*out = c.cfg;
	return 0;
fail:
	shaping_yaml_free(root);
	warmup_free(c.cfg);
	return rc;
}

int warmup_load(const char *path, struct warmup_config **out, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int rc;

	*out = NULL;
	rc = sl_file_read(path, WARMUP_MAX_FILE, &buf, &len);
	if (rc) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, sl_strerror(rc));
		return rc;
	}
	rc = warmup_load_string(path, buf, len, out, err, errlen);
	free(buf);
	return rc;
}

/* ---- lookups and caps -------------------------------------------------- */

const struct warmup_schedule *warmup_schedule_by_name(const struct warmup_config *cfg,
						      const char *name)
{
	for (size_t i = 0; cfg && name && i < cfg->n_sched; i++)
		if (!strcmp(cfg->sched[i]->name, name))
			return cfg->sched[i];
	return NULL;
}

const struct warmup_ip *warmup_ip_for(const struct warmup_config *cfg, const char *ip)
{
	char canon[INET6_ADDRSTRLEN];

	if (!cfg || !ip || !canon_ip(ip, canon, sizeof canon))
		return NULL;
	for (size_t i = 0; i < cfg->n_ips; i++)
		if (!strcmp(cfg->ips[i].ip, canon))
			return &cfg->ips[i];
	return NULL;
}

enum warmup_overflow warmup_pool_overflow(const struct warmup_config *cfg, const char *pool)
{
	for (size_t i = 0; cfg && pool && i < cfg->n_pools; i++)
		if (!strcmp(cfg->pools[i].name, pool))
			return cfg->pools[i].overflow;
	return WARMUP_WAIT;
}

const struct warmup_curve *warmup_curve_for(const struct warmup_schedule *s, const char *provider)
{
	if (!s)
		return NULL;
	for (size_t i = 0; provider && i < s->n_prov; i++)
		if (!strcasecmp(s->prov[i].provider, provider))
			return &s->prov[i];
	return &s->def;
}

static const struct warmup_step *step_for(const struct warmup_curve *c, uint32_t day)
{
	size_t lo = 0, hi = c->n_steps;

	if (!c->n_steps)
		return NULL;
	/* the last step with step.day <= day (steps[0].day == 1) */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->steps[mid].day <= day)
			lo = mid;
		else
			hi = mid;
	}
	return &c->steps[lo];
}

struct warmup_cap warmup_curve_cap(const struct warmup_curve *c, uint32_t day)
{
	struct warmup_cap cap = { WARMUP_UNLIMITED, WARMUP_UNLIMITED };
	const struct warmup_step *st;

	if (!c)
		return cap;
	st = step_for(c, day ? day : 1);
	if (st) {
		cap.daily = st->daily;
		cap.hourly = st->hourly;
	}
	return cap;
}

struct warmup_cap warmup_cap(const struct warmup_schedule *s, const char *provider, uint32_t day)
{
	return warmup_curve_cap(warmup_curve_for(s, provider), day);
}

uint32_t warmup_next_increase(const struct warmup_curve *c, uint32_t day)
{
	for (size_t i = 0; c && i < c->n_steps; i++)
		if (c->steps[i].day > day)
			return c->steps[i].day;
	return 0;
}

uint32_t warmup_warm_day(const struct warmup_curve *c)
{
	for (size_t i = 0; c && i < c->n_steps; i++)
		if (c->steps[i].daily == WARMUP_UNLIMITED)
			return c->steps[i].day;
	return 0;
}

/* ---- state ----------------------------------------------------------------- */

void warmup_state_init(struct warmup_state *st, const struct warmup_curve *c, uint64_t start_ms)
{
	memset(st, 0, sizeof(*st));
	st->curve = c;
	st->start_ms = start_ms;
	st->day = 1;
	st->cur_day = (int64_t)(start_ms / DAY_MS);
	st->cur_hour = (int64_t)(start_ms / HOUR_MS);
}

void warmup_state_rebind(struct warmup_state *st, const struct warmup_curve *c)
{
	st->curve = c;
}

void warmup_roll(struct warmup_state *st, uint64_t now_ms)
{
	int64_t d = (int64_t)(now_ms / DAY_MS), h = (int64_t)(now_ms / HOUR_MS);

	if (now_ms < st->start_ms)
		return;
	if (d > st->cur_day) {
		if (st->sent_today > 0 && st->day < UINT32_MAX)
			st->day++;
		st->sent_today = 0;
		st->cur_day = d;
	}
	if (h > st->cur_hour) {
		st->sent_hour = 0;
		st->cur_hour = h;
	}
}

struct warmup_cap warmup_state_cap(struct warmup_state *st, uint64_t now_ms)
{
	warmup_roll(st, now_ms);
	return warmup_curve_cap(st->curve, st->day);
}

static uint64_t left(uint64_t cap, uint64_t used)
{
	if (cap == WARMUP_UNLIMITED)
		return WARMUP_UNLIMITED;
	return used >= cap ? 0 : cap - used;
}

uint64_t warmup_remaining(struct warmup_state *st, uint64_t now_ms)
{
	struct warmup_cap cap;
	uint64_t a, b;

	if (st->paused || now_ms < st->start_ms)
		return 0;
	cap = warmup_state_cap(st, now_ms);
	a = left(cap.daily, st->sent_today);
	b = left(cap.hourly, st->sent_hour);
	return a < b ? a : b;
}

bool warmup_allow(struct warmup_state *st, uint64_t now_ms, uint64_t n)
{
	uint64_t r = warmup_remaining(st, now_ms);

	if (st->paused || now_ms < st->start_ms)
		return false;
	if (r != WARMUP_UNLIMITED && n > r)
		return false;
	st->sent_today += n;
	st->sent_hour += n;
	return true;
}

uint64_t warmup_next_ms(struct warmup_state *st, uint64_t now_ms)
{
	struct warmup_cap cap;

	if (st->paused)
		return UINT64_MAX;
	if (now_ms < st->start_ms)
		return st->start_ms;
	if (warmup_remaining(st, now_ms) > 0)
		return now_ms;
	cap = warmup_curve_cap(st->curve, st->day);
	if (left(cap.daily, st->sent_today) == 0)
		return (uint64_t)(st->cur_day + 1) * DAY_MS;
	return (uint64_t)(st->cur_hour + 1) * HOUR_MS;
}

bool warmup_is_warm(struct warmup_state *st, uint64_t now_ms)
{
	if (st->paused)
		return false;
	if (now_ms < st->start_ms)
		return false;
	return warmup_state_cap(st, now_ms).daily == WARMUP_UNLIMITED;
}

void warmup_pause(struct warmup_state *st)
{
	st->paused = true;
}

void warmup_resume(struct warmup_state *st)
{
	st->paused = false;
}

void warmup_restart(struct warmup_state *st, uint64_t now_ms)
{
	bool paused = st->paused;
	const struct warmup_curve *c = st->curve;
	uint64_t today = now_ms / DAY_MS * DAY_MS;
	uint64_t sd = st->sent_today, sh = st->sent_hour;
	int64_t cd = st->cur_day, ch = st->cur_hour;

	warmup_state_init(st, c, today);
	st->paused = paused;
	if (cd == st->cur_day) {
		st->sent_today = sd;
		if (ch >= st->cur_hour) {
			st->cur_hour = ch;
			st->sent_hour = sh;
		}
	}
}

void warmup_jump(struct warmup_state *st, uint32_t day)
{
	st->day = day ? day : 1;
}

int warmup_spill_pick(struct warmup_state *const *cands, size_t n, size_t start, uint64_t now_ms)
{
	for (size_t k = 0; k < n; k++) {
		size_t i = (start + k) % n;

		if (!cands[i] || warmup_is_warm(cands[i], now_ms))
			return (int)i;
	}
	return SL_ENOTFOUND;
}
