/*
 * response_rules.c — receiver reply rules and the engine applying them
 * (see response_rules.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "file.h"
#include "response_rules.h"

#define RULES_FILE_MAX (1u << 20)
#define LINE_MAX_LEN 1024
#define TEXT_MAX 255
#define NAME_MAX_LEN 63
#define REPLY_MAX 2048 /* bytes of a reply looked at */
#define DEFAULT_MAX_ENTRIES 65536
#define NIL UINT32_MAX
#define DURATION_MAX (365ull * 24 * 3600 * 1000)

struct rule {
	char provider[RESPONSE_KEY_MAX + 1]; /* "" = any ('*') */
	int code;         /* 0 = any; 100..599 exact */
	int code_class;   /* 0 = any; 2..5 for "4xx" */
	char st[3][4];    /* enhanced status components to match */
	int n_st;         /* how many of them (0 = any) */
	char text[TEXT_MAX + 3]; /* lowercased; a glob is stored as "*pat*" */
	bool glob;
	enum response_action_kind action;
	enum response_scope scope;
	uint64_t duration_ms; /* suspend */
	double factor, step;  /* throttle */
	uint64_t every_ms;
	unsigned trig_n;      /* 0 = immediate */
	uint64_t trig_ms;
	char name[NAME_MAX_LEN + 1];
	unsigned line;
};

struct response_rules {
	struct rule *v;
	size_t n;
};

const char *response_action_name(enum response_action_kind k)
{
	switch (k) {
	case RESPONSE_SUSPEND:
		return "suspend";
	case RESPONSE_THROTTLE:
		return "throttle";
	case RESPONSE_HOLD_TENANT:
		return "hold-tenant";
	default:
		return "none";
	}
}

/* "4.7.28", "5.7", "4": 1..3 numeric components into st; count or -1. */
static int parse_status(const char *s, char st[3][4])
{
	int k = 0;

	while (k < 3) {
		size_t n = 0;
		while (isdigit((unsigned char)s[n]) && n < 3)
			n++;
		if (n == 0 || isdigit((unsigned char)s[n]))
			return -1;
		memcpy(st[k], s, n);
		st[k][n] = 0;
		s += n;
		k++;
		if (!*s)
			break;
		if (*s++ != '.' || k == 3)
			return -1;
	}
	if (st[0][0] < '2' || st[0][0] > '5' || st[0][1])
		return -1;
	return k;
}

/* Next token of line at *p: a bare word or key="quoted value" with \" and
 * \\ escapes, copied into tok. 1, 0 at the end, -1 on a bad token. */
static int next_token(const char **p, char *tok, size_t tokmax)
{
	const char *s = *p;
	size_t n = 0;
	bool q = false;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s || *s == '#')
		return 0;
	while (*s && (q || (*s != ' ' && *s != '\t'))) {
		char c = *s++;
		if (c == '"') {
			q = !q;
			continue;
		}
		if (q && c == '\\' && (*s == '"' || *s == '\\'))
			c = *s++;
		if (n + 1 >= tokmax)
			return -1;
		tok[n++] = c;
	}
	if (q)
		return -1;
	tok[n] = 0;
	*p = s;
	return 1;
}

static bool name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

/* One line's tokens after the provider into r; 0 or -1 with a message. */
static int parse_rule(const char *p, struct rule *r, char *msg, size_t msglen)
{
	char tok[LINE_MAX_LEN + 1];
	bool have_step = false, have_every = false, have_duration = false, have_factor = false;
	bool have_scope = false;
	int rc;

	while ((rc = next_token(&p, tok, sizeof tok)) > 0) {
		char *eq = strchr(tok, '=');
		const char *k = tok, *v;

		if (!eq) {
			snprintf(msg, msglen, "expected key=value, got \"%.40s\"", tok);
			return -1;
		}
		*eq = 0;
		v = eq + 1;
		if (!strcmp(k, "code")) {
			if (strlen(v) == 3 && v[0] >= '2' && v[0] <= '5' && !strcmp(v + 1, "xx")) {
				r->code_class = v[0] - '0';
			} else if (strlen(v) == 3 && v[0] >= '2' && v[0] <= '5' &&
				   isdigit((unsigned char)v[1]) && isdigit((unsigned char)v[2])) {
				r->code = atoi(v);
			} else {
				snprintf(msg, msglen, "bad reply code \"%.20s\" (want 421 or 4xx)", v);
				return -1;
			}
		} else if (!strcmp(k, "status")) {
			r->n_st = parse_status(v, r->st);
			if (r->n_st < 0) {
				snprintf(msg, msglen, "bad enhanced status \"%.20s\" (want 4.7.28, 5.7 or 4)", v);
				return -1;
			}
		} else if (!strcmp(k, "text")) {
			size_t n = strlen(v);
			if (n == 0 || n > TEXT_MAX) {
				snprintf(msg, msglen, "text must be 1..%d characters", TEXT_MAX);
				return -1;
			}
			r->glob = strpbrk(v, "*?") != NULL;
			snprintf(r->text, sizeof r->text, r->glob ? "*%s*" : "%s", v);
			for (char *c = r->text; *c; c++)
				*c = (char)tolower((unsigned char)*c);
		} else if (!strcmp(k, "action")) {
			if (!strcmp(v, "suspend"))
				r->action = RESPONSE_SUSPEND;
			else if (!strcmp(v, "throttle"))
				r->action = RESPONSE_THROTTLE;
			else if (!strcmp(v, "hold-tenant"))
				r->action = RESPONSE_HOLD_TENANT;
			else {
				snprintf(msg, msglen,
					 "unknown action \"%.20s\" (suspend, throttle, hold-tenant)", v);
				return -1;
			}
		} else if (!strcmp(k, "scope")) {
			have_scope = true;
			if (!strcmp(v, "ip"))
				r->scope = RESPONSE_SCOPE_IP;
			else if (!strcmp(v, "tenant"))
				r->scope = RESPONSE_SCOPE_TENANT;
			else {
				snprintf(msg, msglen, "unknown scope \"%.20s\" (ip, tenant)", v);
				return -1;
			}
		} else if (!strcmp(k, "duration") || !strcmp(k, "every")) {
			uint64_t ms;
			if (config_parse_duration(v, &ms) < 0 || ms == 0 || ms > DURATION_MAX) {
				snprintf(msg, msglen, "bad %.8s \"%.20s\" (e.g. 90s, 10m, 2h; at most 365d)",
					 k, v);
				return -1;
			}
			if (k[0] == 'd') {
				r->duration_ms = ms;
				have_duration = true;
			} else {
				r->every_ms = ms;
				have_every = true;
			}
		} else if (!strcmp(k, "factor") || !strcmp(k, "step")) {
			double d;
			if (config_parse_fraction(v, &d) < 0) {
				snprintf(msg, msglen, "bad %.8s \"%.20s\" (a number in 0..1 or a percentage)",
					 k, v);
				return -1;
			}
			if (k[0] == 'f') {
				r->factor = d;
				have_factor = true;
			} else {
				r->step = d;
				have_step = true;
			}
		} else if (!strcmp(k, "trigger")) {
			char *slash;
			unsigned long n;
			if (!strcmp(v, "immediate")) {
				r->trig_n = 0;
				continue;
			}
			slash = strchr(v, '/');
			errno = 0;
			n = strtoul(v, NULL, 10);
			if (!slash || !isdigit((unsigned char)v[0]) || errno || n < 1 ||
			    n > RESPONSE_THRESHOLD_MAX ||
			    config_parse_duration(slash + 1, &r->trig_ms) < 0 || r->trig_ms == 0 ||
			    r->trig_ms > DURATION_MAX) {
				snprintf(msg, msglen,
					 "bad trigger \"%.20s\" (immediate, or N/DURATION with N in 1..%d)",
					 v, RESPONSE_THRESHOLD_MAX);
				return -1;
			}
			r->trig_n = n == 1 ? 0 : (unsigned)n;
		} else if (!strcmp(k, "name")) {
			if (!name_ok(v, NAME_MAX_LEN)) {
				snprintf(msg, msglen, "bad name (1..%d of [A-Za-z0-9._-])", NAME_MAX_LEN);
				return -1;
			}
			strcpy(r->name, v);
		} else {
			snprintf(msg, msglen, "unknown key \"%.20s\"", k);
			return -1;
		}
	}
	if (rc < 0) {
		snprintf(msg, msglen, "bad token (unterminated quote or too long)");
		return -1;
	}
	if (!r->code && !r->code_class && !r->n_st && !r->text[0]) {
		snprintf(msg, msglen, "no match: give code=, status= or text=");
		return -1;
	}
	switch (r->action) {
	case RESPONSE_NONE:
		snprintf(msg, msglen, "no action= given");
		return -1;
	case RESPONSE_SUSPEND:
		if (!have_duration || have_factor || have_step || have_every) {
			snprintf(msg, msglen, "suspend takes duration= (and no factor/step/every)");
			return -1;
		}
		break;
	case RESPONSE_THROTTLE:
		if (!have_factor || r->factor <= 0 || r->factor >= 1 || have_duration ||
		    (have_scope && r->scope != RESPONSE_SCOPE_IP)) {
			snprintf(msg, msglen,
				 "throttle takes factor= in (0,1), optional step= and every=, scope=ip");
			return -1;
		}
		if (!have_step)
			r->step = 0.1;
		if (!have_every)
			r->every_ms = 10 * 60 * 1000;
		if (r->step < 0.001) {
			snprintf(msg, msglen, "throttle step= must be at least 0.001");
			return -1;
		}
		break;
	case RESPONSE_HOLD_TENANT:
		if (have_duration || have_factor || have_step || have_every ||
		    (have_scope && r->scope != RESPONSE_SCOPE_TENANT)) {
			snprintf(msg, msglen, "hold-tenant takes only trigger= and name=");
			return -1;
		}
		r->scope = RESPONSE_SCOPE_TENANT;
		break;
	}
	return 0;
}

int response_rules_parse(const char *text, size_t len, const char *name,
			 struct response_rules **out, char *err, size_t errlen)
{
	struct response_rules *rs;
	const char *p = text, *end = text + len;
	unsigned lineno = 0;
	int rc = 0;

	if (err && errlen)
		err[0] = 0;
	if (!out || (!text && len))
		return -EINVAL;
	*out = NULL;
	rs = calloc(1, sizeof *rs);
	if (!rs)
		return -ENOMEM;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		char line[LINE_MAX_LEN + 1], word[RESPONSE_KEY_MAX + 2], msg[160];
		const char *q = line;
		struct rule r;
		int t;

		lineno++;
		if ((size_t)(le - p) > LINE_MAX_LEN) {
			rc = config_error_at(err, errlen, name, lineno, "line too long");
			goto fail;
		}
		if (memchr(p, 0, (size_t)(le - p))) {
			rc = config_error_at(err, errlen, name, lineno, "NUL byte");
			goto fail;
		}
		memcpy(line, p, (size_t)(le - p));
		line[le - p] = 0;
		if (le > p && line[le - p - 1] == '\r')
			line[le - p - 1] = 0;
		p = nl ? nl + 1 : end;
		t = next_token(&q, word, sizeof word);
		if (t == 0)
			continue;
		memset(&r, 0, sizeof r);
		r.line = lineno;
		if (t < 0 || (strcmp(word, "*") && !name_ok(word, RESPONSE_KEY_MAX))) {
			rc = config_error_at(err, errlen, name, lineno, "bad provider (a name or '*')");
			goto fail;
		}
		if (strcmp(word, "*"))
			strcpy(r.provider, word);
		if (parse_rule(q, &r, msg, sizeof msg) < 0) {
			rc = config_error_at(err, errlen, name, lineno, "%s", msg);
			goto fail;
		}
		if (!r.name[0]) {
			const char *base = strrchr(name, '/');
			snprintf(r.name, sizeof r.name, "%.50s:%u", base ? base + 1 : name, lineno);
		}
		if (rs->n % 32 == 0) {
			struct rule *nv = realloc(rs->v, (rs->n + 32) * sizeof *nv);
			if (!nv) {
				rc = -ENOMEM;
				goto fail;
			}
			rs->v = nv;
		}
		rs->v[rs->n++] = r;
	}
	*out = rs;
	return 0;
fail:
	response_rules_free(rs);
	return rc;
}

int response_rules_load(const char *path, struct response_rules **out, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (err && errlen)
		err[0] = 0;
	rc = sl_file_read(path, RULES_FILE_MAX, &text, &len);
	if (rc == SL_ETOOBIG)
		return config_error_at(err, errlen, path, 0, "file larger than %u bytes", RULES_FILE_MAX);
	if (rc < 0) {
		config_error_at(err, errlen, path, 0, "%s", sl_strerror(rc));
		return rc;
	}
	rc = response_rules_parse(text, len, path, out, err, errlen);
	free(text);
	return rc;
}

void response_rules_free(struct response_rules *r)
{
	if (!r)
		return;
	free(r->v);
	free(r);
}

size_t response_rules_count(const struct response_rules *r)
{
	return r ? r->n : 0;
}

const char *response_rules_name(const struct response_rules *r, size_t i, unsigned *line)
{
	if (!r || i >= r->n) {
		if (line)
			*line = 0;
		return NULL;
	}
	if (line)
		*line = r->v[i].line;
	return r->v[i].name;
}

/* --- matching ------------------------------------------------------------ */

struct reply_info {
	int code;
	char st[3][4];
	int n_st;
	char text[REPLY_MAX + 1]; /* lowercased, controls as spaces */
};

static void reply_info(const char *reply, struct reply_info *ri)
{
	size_t n = 0;
	const char *s = reply;

	memset(ri, 0, sizeof *ri);
	for (; *s && n < REPLY_MAX; s++) {
		unsigned char c = (unsigned char)*s;
		ri->text[n++] = c < 0x20 ? ' ' : (char)tolower(c);
	}
	ri->text[n] = 0;
	s = reply;
	if (s[0] >= '2' && s[0] <= '5' && isdigit((unsigned char)s[1]) &&
	    isdigit((unsigned char)s[2]) &&
	    (s[3] == ' ' || s[3] == '-' || s[3] == 0 || s[3] == '\r' || s[3] == '\n')) {
		ri->code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
		s += 3;
		if (*s == ' ' || *s == '-')
			s++;
		while (*s == ' ')
			s++;
	}
	/* an enhanced status: d.d{1,3}.d{1,3} followed by a space or the end */
	{
		char st[3][4];
		const char *e = s;
		while (*e && *e != ' ' && *e != '\r' && *e != '\n')
			e++;
		if (e - s <= 11) {
			char tmp[12];
			memcpy(tmp, s, (size_t)(e - s));
			tmp[e - s] = 0;
			if (parse_status(tmp, st) == 3) {
				memcpy(ri->st, st, sizeof st);
				ri->n_st = 3;
			}
		}
	}
}

/* Wildcard match of the whole of s against p ('*' any run, '?' one byte). */
static bool glob_match(const char *p, const char *s)
{
	const char *star = NULL, *ss = NULL;

	while (*s) {
		if (*p == '?' || (*p && *p != '*' && *p == *s)) {
			p++;
			s++;
		} else if (*p == '*') {
			star = p++;
			ss = s;
		} else if (star) {
			p = star + 1;
			s = ++ss;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return !*p;
}

static bool rule_matches(const struct rule *r, const struct reply_info *ri)
{
	if (r->code && r->code != ri->code)
		return false;
	if (r->code_class && r->code_class != ri->code / 100)
		return false;
	if (r->n_st) {
		if (ri->n_st < r->n_st)
			return false;
		for (int k = 0; k < r->n_st; k++)
			if (strcmp(r->st[k], ri->st[k]))
				return false;
	}
	if (r->text[0]) {
		if (r->glob ? !glob_match(r->text, ri->text) : !strstr(ri->text, r->text))
			return false;
	}
	return true;
}

static int match_info(const struct response_rules *rs, const char *provider,
		      const struct reply_info *ri)
{
	if (provider && *provider)
		for (size_t i = 0; i < rs->n; i++)
			if (rs->v[i].provider[0] && !strcasecmp(rs->v[i].provider, provider) &&
			    rule_matches(&rs->v[i], ri))
				return (int)i;
	for (size_t i = 0; i < rs->n; i++)
		if (!rs->v[i].provider[0] && rule_matches(&rs->v[i], ri))
			return (int)i;
	return -1;
}

int response_rules_match(const struct response_rules *r, const char *provider, const char *reply)
{
	struct reply_info *ri;
	int i;

	if (!r || !reply)
		return -1;
	ri = malloc(sizeof *ri);
	if (!ri)
		return -1;
	reply_info(reply, ri);
	i = match_info(r, provider, ri);
	free(ri);
	return i;
}

/* --- the engine's bounded tables ------------------------------------------ */

struct entry {
	uint32_t next; /* chain */
	uint32_t hash;
	int32_t rule;  /* counters: the rule; effects: -1 */
	uint8_t scope;
	bool used;
	char provider[RESPONSE_KEY_MAX + 1];
	char key[RESPONSE_KEY_MAX + 1];
	uint64_t touched_ms;
	uint64_t expires_ms; /* may be dropped from then on */
	union {
		struct {
			uint64_t ts[RESPONSE_THRESHOLD_MAX]; /* ring of match times */
			uint32_t head, n;
		} ctr;
		struct {
			uint64_t susp_until;
			uint64_t thr_start, thr_end, thr_every;
			double thr_base, thr_step;
		} eff;
	} u;
};

struct table {
	struct entry *v;
	uint32_t *bucket;
	size_t cap, alloc, used, nbucket;
	uint32_t free_head;
};

struct response_engine {
	const struct response_rules *rules;
	struct table ctr, eff;
	struct reply_info ri;
};

static uint32_t key_hash(int32_t rule, uint8_t scope, const char *provider, const char *key)
{
	uint32_t h = 2166136261u;
	const char *parts[2] = { provider, key };

	h = (h ^ (uint32_t)rule) * 16777619u;
	h = (h ^ scope) * 16777619u;
	for (int k = 0; k < 2; k++) {
		for (const char *s = parts[k]; *s; s++)
			h = (h ^ (uint8_t)tolower((unsigned char)*s)) * 16777619u;
		h = (h ^ 0xff) * 16777619u;
	}
	return h;
}

static int table_init(struct table *t, size_t cap)
{
	size_t nb = 64;

	while (nb < cap)
		nb <<= 1;
	t->bucket = malloc(nb * sizeof *t->bucket);
	if (!t->bucket)
		return -ENOMEM;
	for (size_t i = 0; i < nb; i++)
		t->bucket[i] = NIL;
	t->nbucket = nb;
	t->cap = cap;
	t->free_head = NIL;
	return 0;
}

static void table_free(struct table *t)
{
	free(t->v);
	free(t->bucket);
}

static struct entry *table_find(struct table *t, int32_t rule, uint8_t scope,
				const char *provider, const char *key)
{
	uint32_t h = key_hash(rule, scope, provider, key);

	for (uint32_t i = t->bucket[h & (t->nbucket - 1)]; i != NIL; i = t->v[i].next) {
		struct entry *e = &t->v[i];
		if (e->hash == h && e->rule == rule && e->scope == scope &&
		    !strcasecmp(e->provider, provider) && !strcasecmp(e->key, key))
			return e;
	}
	return NULL;
}

static void table_remove(struct table *t, uint32_t idx)
{
	uint32_t *pp = &t->bucket[t->v[idx].hash & (t->nbucket - 1)];

	while (*pp != idx)
		pp = &t->v[*pp].next;
	*pp = t->v[idx].next;
	t->v[idx].used = false;
	t->v[idx].next = t->free_head;
	t->free_head = idx;
	t->used--;
}

/* Make room for one entry: drop the expired ones, else the least recently
 * touched one. */
static void table_evict(struct table *t, uint64_t now_ms)
{
	uint32_t lru = NIL;

	for (uint32_t i = 0; i < t->alloc; i++) {
		if (!t->v[i].used)
			continue;
		if (t->v[i].expires_ms <= now_ms)
			table_remove(t, i);
		else if (lru == NIL || t->v[i].touched_ms < t->v[lru].touched_ms)
			lru = i;
	}
	if (t->used >= t->cap && lru != NIL)
		table_remove(t, lru);
}

static struct entry *table_get(struct table *t, int32_t rule, uint8_t scope,
			       const char *provider, const char *key, uint64_t now_ms)
{
	struct entry *e = table_find(t, rule, scope, provider, key);
	uint32_t idx;

	if (e)
		return e;
	if (t->used >= t->cap)
		table_evict(t, now_ms);
	if (t->free_head != NIL) {
		idx = t->free_head;
		t->free_head = t->v[idx].next;
	} else {
		if (t->alloc == t->cap)
			return NULL; /* cannot happen after an eviction */
		if (t->alloc % 64 == 0) {
			struct entry *nv = realloc(t->v, (t->alloc + 64) * sizeof *nv);
			if (!nv)
				return NULL;
			t->v = nv;
		}
		idx = (uint32_t)t->alloc++;
	}
	e = &t->v[idx];
	memset(e, 0, sizeof *e);
	e->used = true;
	e->rule = rule;
	e->scope = scope;
	snprintf(e->provider, sizeof e->provider, "%s", provider);
	snprintf(e->key, sizeof e->key, "%s", key);
	e->hash = key_hash(rule, scope, e->provider, e->key);
	e->touched_ms = now_ms;
	e->expires_ms = now_ms;
	e->next = t->bucket[e->hash & (t->nbucket - 1)];
	t->bucket[e->hash & (t->nbucket - 1)] = idx;
	t->used++;
	return e;
}

struct response_engine *response_engine_create(const struct response_rules *rules,
					       size_t max_entries)
{
	struct response_engine *e;

	if (!rules)
		return NULL;
	if (!max_entries || max_entries > DEFAULT_MAX_ENTRIES * 16)
		max_entries = DEFAULT_MAX_ENTRIES;
	e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	e->rules = rules;
	if (table_init(&e->ctr, max_entries) < 0 || table_init(&e->eff, max_entries) < 0) {
		response_engine_free(e);
		return NULL;
	}
	return e;
}

void response_engine_free(struct response_engine *e)
{
	if (!e)
		return;
	table_free(&e->ctr);
	table_free(&e->eff);
	free(e);
}

void response_engine_usage(const struct response_engine *e, size_t *counters, size_t *effects)
{
	if (counters)
		*counters = e ? e->ctr.used : 0;
	if (effects)
		*effects = e ? e->eff.used : 0;
}

static double throttle_factor(const struct entry *x, uint64_t now_ms)
{
	double f;

	if (!x->u.eff.thr_end || now_ms >= x->u.eff.thr_end)
		return 1.0;
	if (now_ms < x->u.eff.thr_start)
		return x->u.eff.thr_base;
	f = x->u.eff.thr_base +
	    x->u.eff.thr_step * (double)((now_ms - x->u.eff.thr_start) / x->u.eff.thr_every);
	return f < 1.0 ? f : 1.0;
}

/* Count a match of rule ri for the key; true when its trigger fires. */
static bool count_match(struct response_engine *e, int32_t ri, const struct rule *r,
			const char *provider, const char *key, uint64_t now_ms, unsigned *matches)
{
	struct entry *c;
	unsigned in_window = 0;

	if (!r->trig_n) {
		*matches = 1;
		return true;
	}
	c = table_get(&e->ctr, ri, (uint8_t)r->scope, provider, key, now_ms);
	if (!c)
		return false;
	c->u.ctr.ts[c->u.ctr.head] = now_ms;
	c->u.ctr.head = (c->u.ctr.head + 1) % r->trig_n;
	if (c->u.ctr.n < r->trig_n)
		c->u.ctr.n++;
	c->touched_ms = now_ms;
	c->expires_ms = now_ms + r->trig_ms;
	for (uint32_t k = 0; k < c->u.ctr.n; k++)
		if (c->u.ctr.ts[k] + r->trig_ms > now_ms && c->u.ctr.ts[k] <= now_ms)
			in_window++;
	if (in_window < r->trig_n)
		return false;
	*matches = in_window;
	/* fired: start counting afresh */
	table_remove(&e->ctr, (uint32_t)(c - e->ctr.v));
	return true;
}

int response_engine_observe(struct response_engine *e, const char *provider,
			    const char *source_ip, const char *tenant, const char *reply,
			    uint64_t now_ms, struct response_action *out)
{
	const struct rule *r;
	const char *key;
	struct entry *x;
	unsigned matches = 0;
	int ri;

	if (!e || !reply || !out)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	if (!provider)
		provider = "";
	reply_info(reply, &e->ri);
	ri = match_info(e->rules, provider, &e->ri);
	if (ri < 0)
		return 0;
	r = &e->rules->v[ri];
	key = r->scope == RESPONSE_SCOPE_IP ? source_ip : tenant;
	if (!key || !*key)
		return 0; /* nothing to act on */
	if (!count_match(e, ri, r, provider, key, now_ms, &matches))
		return 0;

	out->kind = r->action;
	out->scope = r->scope;
	out->rule = r->name;
	out->line = r->line;
	snprintf(out->provider, sizeof out->provider, "%s", provider);
	snprintf(out->key, sizeof out->key, "%s", key);
	out->matches = matches;
	out->window_ms = r->trig_n ? r->trig_ms : 0;
	if (r->action == RESPONSE_HOLD_TENANT)
		return 1;

	x = table_get(&e->eff, -1, (uint8_t)r->scope, provider, key, now_ms);
	if (!x)
		return -ENOMEM;
	x->touched_ms = now_ms;
	if (r->action == RESPONSE_SUSPEND) {
		if (x->u.eff.susp_until < now_ms + r->duration_ms)
			x->u.eff.susp_until = now_ms + r->duration_ms;
		out->until_ms = x->u.eff.susp_until;
	} else {
		double cur = throttle_factor(x, now_ms);
		double base = cur < r->factor ? cur : r->factor;
		uint64_t steps = (uint64_t)((1.0 - base) / r->step + 0.999999);

		x->u.eff.thr_base = base;
		x->u.eff.thr_step = r->step;
		x->u.eff.thr_every = r->every_ms;
		x->u.eff.thr_start = now_ms;
		x->u.eff.thr_end = now_ms + steps * r->every_ms;
		out->until_ms = x->u.eff.thr_end;
		out->factor = base;
	}
	x->expires_ms = x->u.eff.susp_until > x->u.eff.thr_end ? x->u.eff.susp_until
							       : x->u.eff.thr_end;
	return 1;
}

double response_engine_rate_factor(struct response_engine *e, const char *provider,
				   const char *source_ip, uint64_t now_ms)
{
	struct entry *x;

	if (!e || !source_ip)
		return 1.0;
	x = table_find(&e->eff, -1, RESPONSE_SCOPE_IP, provider ? provider : "", source_ip);
	return x ? throttle_factor(x, now_ms) : 1.0;
}

bool response_engine_suspended(struct response_engine *e, const char *provider,
			       const char *source_ip, const char *tenant, uint64_t now_ms,
			       uint64_t *until_ms)
{
	uint64_t until = 0;
	struct entry *x;

	if (!e)
		return false;
	if (!provider)
		provider = "";
	if (source_ip && (x = table_find(&e->eff, -1, RESPONSE_SCOPE_IP, provider, source_ip)) &&
	    x->u.eff.susp_until > now_ms)
		until = x->u.eff.susp_until;
	if (tenant && (x = table_find(&e->eff, -1, RESPONSE_SCOPE_TENANT, provider, tenant)) &&
	    x->u.eff.susp_until > now_ms && x->u.eff.susp_until > until)
		until = x->u.eff.susp_until;
	if (until_ms)
		*until_ms = until;
	return until != 0;
}
