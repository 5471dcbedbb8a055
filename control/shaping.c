/*
 * shaping.c — shaping rules: the strict YAML loader, the merge, and the
 * token bucket; see shaping.h.
 *
 * Rule sets live in one array sorted by (level, owner, kind, name), where
 * level is base / pool / ip, owner the pool name or canonical IP text, kind
 * default / provider / site / domain. shaping_resolve() looks up at most
 * twelve keys in it with a binary search and copies the knobs each set.
 */
#include "shaping.h"

#include "file.h"

#include "config.h"
#include "err.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define SHAPING_MAX_DEPTH 32
#define SHAPING_MAX_FILE (16u << 20)
#define SEC 1000ull
#define MIN (60ull * SEC)
#define HOUR (60ull * MIN)
#define DAY (24ull * HOUR)

enum { LEVEL_BASE, LEVEL_POOL, LEVEL_IP, N_LEVELS };
enum { KIND_DEFAULT, KIND_PROVIDER, KIND_SITE, KIND_DOMAIN, N_KINDS };

static const char *const kind_names[N_KINDS] = { "default", "provider", "site", "domain" };
static const char *const kind_sections[N_KINDS] = { "default", "providers", "sites", "domains" };

static const char *const knob_names[SHAPING_N_KNOBS] = {
	[SHAPING_MAX_CONNECTIONS] = "max_connections",
	[SHAPING_CONNECTION_RATE] = "connection_rate",
	[SHAPING_MESSAGE_RATE] = "message_rate",
	[SHAPING_MAX_MESSAGES_PER_CONNECTION] = "max_messages_per_connection",
	[SHAPING_MAX_RECIPIENTS_PER_TRANSACTION] = "max_recipients_per_transaction",
	[SHAPING_RETRY_SCHEDULE] = "retry_schedule",
	[SHAPING_MAX_AGE] = "max_age",
	[SHAPING_CONNECT_TIMEOUT] = "connect_timeout",
	[SHAPING_IDLE_TIMEOUT] = "idle_timeout",
};

/* KumoMTA / PowerMTA spellings accepted as synonyms. */
static const struct {
	const char *alias;
	enum shaping_knob knob;
} knob_aliases[] = {
	{ "connection_limit", SHAPING_MAX_CONNECTIONS },
	{ "max_smtp_out", SHAPING_MAX_CONNECTIONS },
	{ "max_connection_rate", SHAPING_CONNECTION_RATE },
	{ "max_message_rate", SHAPING_MESSAGE_RATE },
	{ "max_msg_rate", SHAPING_MESSAGE_RATE },
	{ "max_deliveries_per_connection", SHAPING_MAX_MESSAGES_PER_CONNECTION },
	{ "max_msg_per_connection", SHAPING_MAX_MESSAGES_PER_CONNECTION },
	{ "max_rcpt_per_transaction", SHAPING_MAX_RECIPIENTS_PER_TRANSACTION },
};

struct ruleset {
	unsigned level, kind;
	char *owner; /* "" at the base level */
	char *name;  /* "" for default; lower case otherwise */
	char *label; /* for shaping_values.from */
	uint32_t set; /* bit k: knob k is set */
	struct shaping_values v;
};

struct shaping_rules {
	struct ruleset *rs;
	size_t n, cap;
	bool any_level[N_LEVELS];
	struct shaping_values builtin;
};

const char *shaping_knob_name(enum shaping_knob k)
{
	return (unsigned)k < SHAPING_N_KNOBS ? knob_names[k] : "?";
}

static const uint64_t builtin_retry[] = { 1 * MIN, 5 * MIN, 15 * MIN, 30 * MIN,
					  1 * HOUR, 2 * HOUR, 4 * HOUR };

void shaping_builtin(struct shaping_values *v)
{
	memset(v, 0, sizeof(*v));
	v->max_connections = 32;
	v->max_messages_per_connection = 100;
	v->max_recipients_per_transaction = 100;
	memcpy(v->retry_ms, builtin_retry, sizeof(builtin_retry));
	v->n_retry = sizeof(builtin_retry) / sizeof(builtin_retry[0]);
	v->max_age_ms = 5 * DAY;
	v->connect_timeout_ms = 30 * SEC;
	v->idle_timeout_ms = 60 * SEC;
	for (int k = 0; k < SHAPING_N_KNOBS; k++)
		v->from[k] = "builtin";
}

/* ---- the YAML tree ---------------------------------------------------- */

void shaping_yaml_free(struct shaping_ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		shaping_yaml_free(n->kids[i]);
	free(n->kids);
	free(n->val);
	free(n);
}

struct yctx {
	const char *name;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 4, 5))) static int yfail(const struct yctx *c, unsigned line,
						      unsigned col, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!c->err || !c->errlen)
		return SL_ECONFIG;
	n = snprintf(c->err, c->errlen, "%s:%u:%u: ", c->name, line, col);
	if (n >= 0 && (size_t)n < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return SL_ECONFIG;
}

static int ynomem(const struct yctx *c)
{
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: out of memory", c->name);
	return -ENOMEM;
}

static void offset_pos(const char *s, size_t len, size_t off, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && i < len; i++) {
		if (s[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)s[i] & 0xc0) != 0x80) {
			(*col)++;
		}
	}
}

static int ysyntax(const struct yctx *c, const yaml_parser_t *p, const char *yaml, size_t len)
{
	unsigned line, col;

	if (p->error == YAML_MEMORY_ERROR)
		return ynomem(c);
	if (p->error == YAML_READER_ERROR) {
		offset_pos(yaml, len, p->problem_offset, &line, &col);
		return yfail(c, line, col, "invalid input: %s", p->problem ? p->problem : "unreadable");
	}
	line = (unsigned)p->problem_mark.line + 1;
	col = (unsigned)p->problem_mark.column + 1;
	return yfail(c, line, col, "YAML syntax error: %s", p->problem ? p->problem : "unknown");
}

/* Add kid to a collection; for mappings, keys must be unique scalars. */
static int yadd(const struct yctx *c, struct shaping_ynode *p, struct shaping_ynode *kid)
{
	if (p->kind == SHAPING_Y_MAP && p->n % 2 == 0) {
		if (kid->kind != SHAPING_Y_SCALAR)
			return yfail(c, kid->line, kid->col, "a mapping key must be a plain name");
		for (size_t i = 0; i < p->n; i += 2)
			if (p->kids[i]->len == kid->len &&
			    memcmp(p->kids[i]->val, kid->val, kid->len) == 0)
				return yfail(c, kid->line, kid->col,
					     "duplicate key '%s' (first at line %u)", kid->val,
					     p->kids[i]->line);
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		struct shaping_ynode **k = realloc(p->kids, cap * sizeof(*k));

		if (!k)
			return ynomem(c);
		p->kids = k;
		p->cap = cap;
	}
	p->kids[p->n++] = kid;
	return 0;
}

int shaping_yaml_parse(const char *name, const char *yaml, size_t len,
		       struct shaping_ynode **root, char *err, size_t errlen)
{
	struct yctx c = { .name = name ? name : "<string>", .err = err, .errlen = errlen };
	struct shaping_ynode *stack[SHAPING_MAX_DEPTH];
	size_t depth = 0;
	int docs = 0, rc = 0;
	bool done = false;
	yaml_parser_t p;

	*root = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!yaml_parser_initialize(&p))
		return ynomem(&c);
	yaml_parser_set_input_string(&p, (const unsigned char *)(yaml ? yaml : ""), yaml ? len : 0);
	while (!done && !rc) {
		struct shaping_ynode *n;
		unsigned line, col;
		yaml_event_t ev;

		if (!yaml_parser_parse(&p, &ev)) {
			rc = ysyntax(&c, &p, yaml, len);
			break;
		}
		line = (unsigned)ev.start_mark.line + 1;
		col = (unsigned)ev.start_mark.column + 1;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				rc = yfail(&c, line, col, "a second YAML document; write one");
			break;
		case YAML_ALIAS_EVENT:
			rc = yfail(&c, line, col, "aliases are not supported; write the value out");
			break;
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (depth == SHAPING_MAX_DEPTH) {
				rc = yfail(&c, line, col, "nested more than %d levels deep",
					   SHAPING_MAX_DEPTH);
				break;
			}
			n = calloc(1, sizeof(*n));
			if (!n) {
				rc = ynomem(&c);
				break;
			}
			n->line = line;
			n->col = col;
			if (ev.type == YAML_SCALAR_EVENT) {
				n->kind = SHAPING_Y_SCALAR;
				n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
				n->len = ev.data.scalar.length;
				n->val = malloc(n->len + 1);
				if (!n->val) {
					free(n);
					rc = ynomem(&c);
					break;
				}
				memcpy(n->val, ev.data.scalar.value, n->len);
				n->val[n->len] = '\0';
				if (strlen(n->val) != n->len) {
					shaping_yaml_free(n);
					rc = yfail(&c, line, col, "NUL byte in a value");
					break;
				}
			} else {
				n->kind = ev.type == YAML_MAPPING_START_EVENT ? SHAPING_Y_MAP
									      : SHAPING_Y_SEQ;
			}
			if (depth == 0) {
				if (*root) { /* cannot happen with one document */
					shaping_yaml_free(n);
					break;
				}
				*root = n;
			} else if ((rc = yadd(&c, stack[depth - 1], n))) {
				shaping_yaml_free(n);
				break;
			}
			if (n->kind != SHAPING_Y_SCALAR)
				stack[depth++] = n;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth)
				depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	if (rc) {
		shaping_yaml_free(*root);
		*root = NULL;
	}
	return rc;
}

/* ---- values ------------------------------------------------------------ */

/* Digits with optional ',' or '_' separators, 1..max. */
static int parse_uint(const char *s, uint64_t max, uint64_t *out)
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

int shaping_parse_rate(const char *s, struct shaping_rate *out)
{
	static const struct {
		const char *name;
		uint64_t ms;
	} periods[] = {
		{ "s", SEC },     { "sec", SEC },     { "second", SEC },   { "seconds", SEC },
		{ "m", MIN },     { "min", MIN },     { "minute", MIN },   { "minutes", MIN },
		{ "h", HOUR },    { "hr", HOUR },     { "hour", HOUR },    { "hours", HOUR },
		{ "d", DAY },     { "day", DAY },     { "days", DAY },
	};
	char num[32];
	const char *slash;
	uint64_t v;

	if (!s)
		return SL_ECONFIG;
	if (strcmp(s, "unlimited") == 0) {
		out->count = 0;
		out->per_ms = SEC;
		return 0;
	}
	slash = strchr(s, '/');
	if (!slash || (size_t)(slash - s) >= sizeof(num))
		return SL_ECONFIG;
	memcpy(num, s, (size_t)(slash - s));
	num[slash - s] = '\0';
	if (parse_uint(num, UINT32_MAX, &v) || v == 0)
		return SL_ECONFIG;
	for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
		if (strcmp(slash + 1, periods[i].name) == 0) {
			out->count = (uint32_t)v;
			out->per_ms = periods[i].ms;
			return 0;
		}
	}
	return SL_ECONFIG;
}

void shaping_format_rate(const struct shaping_rate *r, char *buf, size_t len)
{
	const char *unit = "ms";
	uint64_t div = 1;

	if (r->count == 0 || r->per_ms == 0) {
		snprintf(buf, len, "unlimited");
		return;
	}
	if (r->per_ms % DAY == 0)
		unit = "d", div = DAY;
	else if (r->per_ms % HOUR == 0)
		unit = "h", div = HOUR;
	else if (r->per_ms % MIN == 0)
		unit = "min", div = MIN;
	else if (r->per_ms % SEC == 0)
		unit = "s", div = SEC;
	if (r->per_ms == div)
		snprintf(buf, len, "%u/%s", r->count, unit);
	else
		snprintf(buf, len, "%u/%llu%s", r->count, (unsigned long long)(r->per_ms / div),
			 unit);
}

/* ---- loading ------------------------------------------------------------ */

struct lctx {
	struct yctx y;
	struct shaping_rules *r;
	char path[256];
};

__attribute__((format(printf, 3, 4))) static int bad(struct lctx *c, const struct shaping_ynode *n,
						     const char *fmt, ...)
{
	va_list ap;
	int k;

	if (!c->y.err || !c->y.errlen)
		return SL_ECONFIG;
	k = snprintf(c->y.err, c->y.errlen, "%s:%u:%u: %s%s", c->y.name, n->line, n->col, c->path,
		     c->path[0] ? ": " : "");
	if (k >= 0 && (size_t)k < c->y.errlen) {
		va_start(ap, fmt);
		vsnprintf(c->y.err + k, c->y.errlen - (size_t)k, fmt, ap);
		va_end(ap);
	}
	return SL_ECONFIG;
}

static size_t path_push(struct lctx *c, const char *seg)
{
	size_t old = strlen(c->path);

	snprintf(c->path + old, sizeof(c->path) - old, "%s%s", old ? "." : "", seg);
	return old;
}

static void path_pop(struct lctx *c, size_t old)
{
	c->path[old] = '\0';
}

static bool is_null(const struct shaping_ynode *n)
{
	return n->kind == SHAPING_Y_SCALAR && n->plain &&
	       (n->len == 0 || !strcmp(n->val, "~") || !strcmp(n->val, "null"));
}

static int knob_count(struct lctx *c, const struct shaping_ynode *v, bool unlimited_ok,
		      uint32_t *out)
{
	uint64_t x;

	if (v->kind != SHAPING_Y_SCALAR)
		return bad(c, v, "expected a number");
	if (unlimited_ok && !strcmp(v->val, "unlimited")) {
		*out = 0;
		return 0;
	}
	if (parse_uint(v->val, 1000000000, &x) || x == 0)
		return bad(c, v, "'%.40s' is not a number from 1 to 1000000000%s", v->val,
			   unlimited_ok ? " or 'unlimited'" : "");
	*out = (uint32_t)x;
	return 0;
}

static int knob_duration(struct lctx *c, const struct shaping_ynode *v, bool zero_ok,
			 uint64_t *out)
{
	if (v->kind != SHAPING_Y_SCALAR || config_parse_duration(v->val, out) ||
	    (!zero_ok && *out == 0) || *out > 365 * DAY)
		return bad(c, v, "'%.40s' is not a duration (e.g. 30s, 5m, 2h, 5d)%s",
			   v->kind == SHAPING_Y_SCALAR ? v->val : "", zero_ok ? "" : " above 0");
	return 0;
}

static int knob_rate(struct lctx *c, const struct shaping_ynode *v, struct shaping_rate *out)
{
	if (v->kind != SHAPING_Y_SCALAR || shaping_parse_rate(v->val, out))
		return bad(c, v,
			   "'%.40s' is not a rate (e.g. 100/min, 10/s, 5000/h, 1,000/day or "
			   "'unlimited')",
			   v->kind == SHAPING_Y_SCALAR ? v->val : "");
	return 0;
}

static int lookup_knob(const char *key)
{
	for (int k = 0; k < SHAPING_N_KNOBS; k++)
		if (!strcmp(key, knob_names[k]))
			return k;
	for (size_t i = 0; i < sizeof(knob_aliases) / sizeof(knob_aliases[0]); i++)
		if (!strcmp(key, knob_aliases[i].alias))
			return (int)knob_aliases[i].knob;
	return -1;
}

/* Parse a mapping of knobs into rs. */
static int parse_knobs(struct lctx *c, const struct shaping_ynode *m, struct ruleset *rs)
{
	struct shaping_values *v = &rs->v;

	if (is_null(m))
		return 0;
	if (m->kind != SHAPING_Y_MAP)
		return bad(c, m, "expected a mapping of shaping settings");
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct shaping_ynode *key = m->kids[i], *val = m->kids[i + 1];
		int k = lookup_knob(key->val), rc;
		size_t old;

		if (k < 0)
			return bad(c, key,
				   "unknown key '%.60s' (known: max_connections, connection_rate, "
				   "message_rate, max_messages_per_connection, "
				   "max_recipients_per_transaction, retry_schedule, max_age, "
				   "connect_timeout, idle_timeout)",
				   key->val);
		if (rs->set & (1u << k))
			return bad(c, key, "'%s' is set twice (also via a synonym)",
				   knob_names[k]);
		rs->set |= 1u << k;
		old = path_push(c, key->val);
		switch ((enum shaping_knob)k) {
		case SHAPING_MAX_CONNECTIONS:
			rc = knob_count(c, val, true, &v->max_connections);
			break;
		case SHAPING_CONNECTION_RATE:
			rc = knob_rate(c, val, &v->connection_rate);
			break;
		case SHAPING_MESSAGE_RATE:
			rc = knob_rate(c, val, &v->message_rate);
			break;
		case SHAPING_MAX_MESSAGES_PER_CONNECTION:
			rc = knob_count(c, val, true, &v->max_messages_per_connection);
			break;
		case SHAPING_MAX_RECIPIENTS_PER_TRANSACTION:
			rc = knob_count(c, val, false, &v->max_recipients_per_transaction);
			break;
		case SHAPING_RETRY_SCHEDULE:
			if (val->kind != SHAPING_Y_SEQ || val->n == 0) {
				rc = bad(c, val, "expected a list of durations, e.g. [1m, 5m, 1h]");
				break;
			}
			if (val->n > SHAPING_MAX_RETRY) {
				rc = bad(c, val, "more than %d retry intervals", SHAPING_MAX_RETRY);
				break;
			}
			rc = 0;
			for (size_t j = 0; j < val->n && !rc; j++)
				rc = knob_duration(c, val->kids[j], false, &v->retry_ms[j]);
			v->n_retry = val->n;
			break;
		case SHAPING_MAX_AGE:
			rc = knob_duration(c, val, false, &v->max_age_ms);
			break;
		case SHAPING_CONNECT_TIMEOUT:
			rc = knob_duration(c, val, false, &v->connect_timeout_ms);
			break;
		case SHAPING_IDLE_TIMEOUT:
			rc = knob_duration(c, val, true, &v->idle_timeout_ms);
			break;
		default:
			rc = bad(c, key, "internal error");
			break;
		}
		path_pop(c, old);
		if (rc)
			return rc;
	}
	return 0;
}

static int rs_cmp(unsigned la, const char *oa, unsigned ka, const char *na, const struct ruleset *b)
{
	int c;

	if (la != b->level)
		return la < b->level ? -1 : 1;
	if ((c = strcmp(oa, b->owner)))
		return c;
	if (ka != b->kind)
		return ka < b->kind ? -1 : 1;
	return strcasecmp(na, b->name);
}

static const struct ruleset *rs_find(const struct shaping_rules *r, unsigned level,
				     const char *owner, unsigned kind, const char *name, size_t *pos)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = rs_cmp(level, owner, kind, name, &r->rs[mid]);

		if (c == 0)
			return &r->rs[mid];
		if (c > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos)
		*pos = lo;
	return NULL;
}

static void rs_clear(struct ruleset *rs)
{
	free(rs->owner);
	free(rs->name);
	free(rs->label);
}

/* Canonical text of an IP address, or false. */
static bool canon_ip(const char *s, char *buf, size_t len)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, s, a) == 1)
		return inet_ntop(AF_INET, a, buf, (socklen_t)len) != NULL;
	if (inet_pton(AF_INET6, s, a) == 1)
		return inet_ntop(AF_INET6, a, buf, (socklen_t)len) != NULL;
	return false;
}

static bool valid_name(const char *s, unsigned kind)
{
	if (!*s || strlen(s) > 1000)
		return false;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.')
			continue;
		if (kind == KIND_SITE && ch == ',')
			continue;
		return false;
	}
	return true;
}

static int add_ruleset(struct lctx *c, unsigned level, const char *owner, unsigned kind,
		       const struct shaping_ynode *keynode, const struct shaping_ynode *body)
{
	struct shaping_rules *r = c->r;
	struct ruleset rs = { .level = level, .kind = kind };
	const char *name = keynode && kind != KIND_DEFAULT ? keynode->val : "";
	char lname[1024];
	size_t pos, nl;
	int rc;

	if (kind != KIND_DEFAULT && !valid_name(name, kind))
		return bad(c, keynode, "'%.60s' is not a valid %s name", name, kind_names[kind]);
	nl = strlen(name);
	while (nl && name[nl - 1] == '.' && kind != KIND_PROVIDER)
		nl--;
	if (nl >= sizeof(lname))
		return bad(c, keynode, "name too long");
	for (size_t i = 0; i < nl; i++)
		lname[i] = (char)tolower((unsigned char)name[i]);
	lname[nl] = '\0';
	if (rs_find(r, level, owner, kind, lname, &pos))
		return bad(c, keynode ? keynode : body, "this rule set is defined twice");
	rs.owner = strdup(owner);
	rs.name = strdup(lname);
	{
		char label[1200];

		if (level == LEVEL_BASE)
			snprintf(label, sizeof label, "%s%s%s", kind_names[kind], nl ? " " : "",
				 lname);
		else
			snprintf(label, sizeof label, "%s %s %s%s%s",
				 level == LEVEL_POOL ? "pool" : "ip", owner, kind_names[kind],
				 nl ? " " : "", lname);
		rs.label = strdup(label);
	}
	if (!rs.owner || !rs.name || !rs.label) {
		rc = ynomem(&c->y);
		goto fail;
	}
	if ((rc = parse_knobs(c, body, &rs)))
		goto fail;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct ruleset *n = realloc(r->rs, cap * sizeof(*n));

		if (!n) {
			rc = ynomem(&c->y);
			goto fail;
		}
		r->rs = n;
		r->cap = cap;
	}
	memmove(&r->rs[pos + 1], &r->rs[pos], (r->n - pos) * sizeof(*r->rs));
	r->rs[pos] = rs;
	r->n++;
	r->any_level[level] = true;
	return 0;
fail:
	rs_clear(&rs);
	return rc;
}

/* default / providers / sites / domains under one owner. */
static int parse_scope(struct lctx *c, unsigned level, const char *owner,
		       const struct shaping_ynode *m, bool top)
{
	if (is_null(m))
		return 0;
	if (m->kind != SHAPING_Y_MAP)
		return bad(c, m, "expected a mapping");
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct shaping_ynode *key = m->kids[i], *val = m->kids[i + 1];
		unsigned kind = N_KINDS;
		size_t old;
		int rc = 0;

		for (unsigned k = 0; k < N_KINDS; k++)
			if (!strcmp(key->val, kind_sections[k]))
				kind = k;
		if (kind == N_KINDS) {
			if (top && (!strcmp(key->val, "pools") || !strcmp(key->val, "ips")))
				continue;
			return bad(c, key, "unknown key '%.60s' (expected default, providers, "
					   "sites, domains%s)",
				   key->val, top ? ", pools, ips" : "");
		}
		old = path_push(c, key->val);
		if (kind == KIND_DEFAULT) {
			rc = add_ruleset(c, level, owner, kind, key, val);
		} else if (is_null(val)) {
			rc = 0;
		} else if (val->kind != SHAPING_Y_MAP) {
			rc = bad(c, val, "expected a mapping of %s names to settings", kind_names[kind]);
		} else {
			for (size_t j = 0; j + 1 < val->n && !rc; j += 2) {
				size_t o2 = path_push(c, val->kids[j]->val);

				rc = add_ruleset(c, level, owner, kind, val->kids[j], val->kids[j + 1]);
				path_pop(c, o2);
			}
		}
		path_pop(c, old);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_owners(struct lctx *c, unsigned level, const struct shaping_ynode *m)
{
	if (is_null(m))
		return 0;
	if (m->kind != SHAPING_Y_MAP)
		return bad(c, m, "expected a mapping of %s to rule sets",
			   level == LEVEL_POOL ? "pool names" : "source IP addresses");
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct shaping_ynode *key = m->kids[i];
		char ip[INET6_ADDRSTRLEN];
		const char *owner = key->val;
		size_t old;
		int rc;

		if (level == LEVEL_IP) {
			if (!canon_ip(key->val, ip, sizeof ip))
				return bad(c, key, "'%.60s' is not an IP address (quote IPv6 ones)",
					   key->val);
			owner = ip;
			for (size_t j = 0; j < i; j += 2) {
				char o[INET6_ADDRSTRLEN];

				if (canon_ip(m->kids[j]->val, o, sizeof o) && !strcmp(o, ip))
					return bad(c, key, "address %s is listed twice", ip);
			}
		} else if (!valid_name(owner, KIND_PROVIDER)) {
			return bad(c, key, "'%.60s' is not a valid pool name", key->val);
		}
		old = path_push(c, key->val);
		rc = parse_scope(c, level, owner, m->kids[i + 1], false);
		path_pop(c, old);
		if (rc)
			return rc;
	}
	return 0;
}

struct shaping_rules *shaping_empty(void)
{
	struct shaping_rules *r = calloc(1, sizeof(*r));

	if (r)
		shaping_builtin(&r->builtin);
	return r;
}

void shaping_free(struct shaping_rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		rs_clear(&r->rs[i]);
	free(r->rs);
	free(r);
}

int shaping_load_string(const char *name, const char *yaml, size_t len,
			struct shaping_rules **out, char *err, size_t errlen)
{
	struct lctx c = { .y = { .name = name ? name : "<string>", .err = err, .errlen = errlen } };
	struct shaping_ynode *root = NULL;
	int rc;

	*out = NULL;
	c.r = shaping_empty();
	if (!c.r)
		return ynomem(&c.y);
	rc = shaping_yaml_parse(c.y.name, yaml, len, &root, err, errlen);
	if (rc)
		goto fail;
	if (root) {
		if ((rc = parse_scope(&c, LEVEL_BASE, "", root, true)))
			goto fail;
		for (size_t i = 0; i + 1 < root->n; i += 2) {
			const struct shaping_ynode *key = root->kids[i];
			size_t old;

			if (strcmp(key->val, "pools") && strcmp(key->val, "ips"))
				continue;
			old = path_push(&c, key->val);
			rc = parse_owners(&c, key->val[0] == 'p' ? LEVEL_POOL : LEVEL_IP,
					  root->kids[i + 1]);
			path_pop(&c, old);
			if (rc)
				goto fail;
		}
	}
	shaping_yaml_free(root);
	*out = c.r;
	return 0;
fail:
	shaping_yaml_free(root);
	shaping_free(c.r);
	return rc;
}

int shaping_load(const char *path, struct shaping_rules **out, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int rc;

	*out = NULL;
	rc = sl_file_read(path, SHAPING_MAX_FILE, &buf, &len);
	if (rc) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, sl_strerror(rc));
		return rc;
	}
	rc = shaping_load_string(path, buf, len, out, err, errlen);
	free(buf);
	return rc;
}

void shaping_set_builtin(struct shaping_rules *r, const struct shaping_values *v)
{
	r->builtin = *v;
	for (int k = 0; k < SHAPING_N_KNOBS; k++)
		r->builtin.from[k] = "builtin";
}

size_t shaping_count(const struct shaping_rules *r)
{
	return r ? r->n : 0;
}

/* ---- resolving ------------------------------------------------------------ */

static void apply(struct shaping_values *out, const struct ruleset *rs)
{
	const struct shaping_values *v = &rs->v;

	for (int k = 0; k < SHAPING_N_KNOBS; k++) {
		if (!(rs->set & (1u << k)))
			continue;
		out->from[k] = rs->label;
		switch ((enum shaping_knob)k) {
		case SHAPING_MAX_CONNECTIONS:
			out->max_connections = v->max_connections;
			break;
		case SHAPING_CONNECTION_RATE:
			out->connection_rate = v->connection_rate;
			break;
		case SHAPING_MESSAGE_RATE:
			out->message_rate = v->message_rate;
			break;
		case SHAPING_MAX_MESSAGES_PER_CONNECTION:
			out->max_messages_per_connection = v->max_messages_per_connection;
			break;
		case SHAPING_MAX_RECIPIENTS_PER_TRANSACTION:
			out->max_recipients_per_transaction = v->max_recipients_per_transaction;
			break;
		case SHAPING_RETRY_SCHEDULE:
			memcpy(out->retry_ms, v->retry_ms, v->n_retry * sizeof(v->retry_ms[0]));
			out->n_retry = v->n_retry;
			break;
		case SHAPING_MAX_AGE:
			out->max_age_ms = v->max_age_ms;
			break;
		case SHAPING_CONNECT_TIMEOUT:
			out->connect_timeout_ms = v->connect_timeout_ms;
			break;
		case SHAPING_IDLE_TIMEOUT:
			out->idle_timeout_ms = v->idle_timeout_ms;
			break;
		default:
			break;
		}
	}
}

/* name without one trailing dot, into buf ("" when it does not fit). */
static const char *trim_dot(const char *s, char *buf, size_t len)
{
	size_t n = strlen(s);

	if (n == 0 || s[n - 1] != '.')
		return s;
	if (n > len)
		return "";
	memcpy(buf, s, n - 1);
	buf[n - 1] = '\0';
	return buf;
}

int shaping_resolve(const struct shaping_rules *r, const struct shaping_key *key,
		    struct shaping_values *out)
{
	char ip[INET6_ADDRSTRLEN], sbuf[1024], dbuf[256];
	const char *owners[N_LEVELS], *names[N_KINDS];

	*out = r->builtin;
	if (r->n == 0)
		return 0;
	owners[LEVEL_BASE] = "";
	owners[LEVEL_POOL] = key->pool;
	owners[LEVEL_IP] = key->ip && canon_ip(key->ip, ip, sizeof ip) ? ip : key->ip;
	names[KIND_DEFAULT] = "";
	names[KIND_PROVIDER] = key->provider;
	names[KIND_SITE] = key->site ? trim_dot(key->site, sbuf, sizeof sbuf) : NULL;
	names[KIND_DOMAIN] = key->domain ? trim_dot(key->domain, dbuf, sizeof dbuf) : NULL;
	for (unsigned l = 0; l < N_LEVELS; l++) {
		if (!r->any_level[l] || !owners[l])
			continue;
		for (unsigned k = 0; k < N_KINDS; k++) {
			const struct ruleset *rs;

			if (!names[k] || (k != KIND_DEFAULT && !names[k][0]))
				continue;
			rs = rs_find(r, l, owners[l], k, names[k], NULL);
			if (rs)
				apply(out, rs);
		}
	}
	return 0;
}

bool shaping_has_domain_rule(const struct shaping_rules *r, const char *domain)
{
	char dbuf[256];

	if (!r || !domain)
		return false;
	domain = trim_dot(domain, dbuf, sizeof dbuf);
	for (size_t i = 0; i < r->n; i++)
		if (r->rs[i].kind == KIND_DOMAIN && !strcasecmp(r->rs[i].name, domain))
			return true;
	return false;
}

/* ---- token bucket ------------------------------------------------------------ */

uint32_t rate_default_burst(const struct shaping_rate *r)
{
	uint64_t b;

	if (r->count == 0 || r->per_ms == 0)
		return 1;
	b = (uint64_t)r->count * 100 / r->per_ms;
	if (b < 1)
		b = 1;
	if (b > r->count)
		b = r->count;
	return (uint32_t)b;
}

/* The bucket holds burst tokens plus under one token of slack: the units
 * earned past a token within the last ms (count < per_ms) or the fraction
 * of a token one ms earns (count >= per_ms). Keeping them instead of
 * clipping at exactly burst tokens makes a caller that sleeps until
 * rate_next_ms() get the configured rate exactly, not rounded down to
 * whole milliseconds per token. */
static uint64_t capacity(const struct rate_limiter *rl)
{
	uint64_t slack = (rl->count < rl->per_ms ? rl->count : rl->per_ms) - 1;

	return (uint64_t)rl->burst * rl->per_ms + slack;
}

static void refill(struct rate_limiter *rl, uint64_t now_ms)
{
	uint64_t cap = capacity(rl), need, elapsed;

	if (now_ms <= rl->last_ms)
		return;
	elapsed = now_ms - rl->last_ms;
	rl->last_ms = now_ms;
	need = cap - rl->units;
	if (need == 0)
		return;
	if (elapsed >= (need + rl->count - 1) / rl->count)
		rl->units = cap;
	else
		rl->units += elapsed * rl->count;
}

void rate_init(struct rate_limiter *rl, const struct shaping_rate *r, uint32_t burst,
	       uint64_t now_ms)
{
	memset(rl, 0, sizeof(*rl));
	rl->last_ms = now_ms;
	if (r->count == 0 || r->per_ms == 0)
		return;
	rl->count = r->count;
	rl->per_ms = r->per_ms;
	rl->burst = burst ? burst : rate_default_burst(r);
	rl->units = capacity(rl);
}

void rate_update(struct rate_limiter *rl, const struct shaping_rate *r, uint32_t burst,
		 uint64_t now_ms)
{
	uint64_t tokens = 0;
	bool was_limited = rl->count != 0;

	if (was_limited) {
		refill(rl, now_ms);
		tokens = rl->units / rl->per_ms; /* whole tokens carry over */
	}
	rate_init(rl, r, burst, now_ms);
	if (was_limited && rl->count && tokens < rl->burst)
		rl->units = tokens * rl->per_ms; /* whole tokens only; the fraction is lost */
}

bool rate_allow(struct rate_limiter *rl, uint64_t now_ms, uint32_t n)
{
	uint64_t cost;

	if (rl->count == 0 || n == 0)
		return true;
	if (n > rl->burst)
		return false;
	refill(rl, now_ms);
	cost = (uint64_t)n * rl->per_ms;
	if (rl->units < cost)
		return false;
	rl->units -= cost;
	return true;
}

uint32_t rate_available(struct rate_limiter *rl, uint64_t now_ms)
{
	if (rl->count == 0)
		return UINT32_MAX;
	refill(rl, now_ms);
	return (uint32_t)(rl->units / rl->per_ms);
}

uint64_t rate_next_ms(struct rate_limiter *rl, uint64_t now_ms)
{
	uint64_t base;

	if (rl->count == 0)
		return now_ms;
	refill(rl, now_ms);
	base = now_ms > rl->last_ms ? now_ms : rl->last_ms;
	if (rl->units >= rl->per_ms)
		return now_ms;
	return base + (rl->per_ms - rl->units + rl->count - 1) / rl->count;
}
