/*
 * config.c — the strict YAML configuration parser; see config.h.
 *
 * Two steps. First libyaml's event stream is turned into a small tree of
 * nodes that remember where they were written (aliases, a second document
 * and absurd nesting are refused here). Then the tree is walked against the
 * schema below, filling a struct sl_config that config_defaults() has
 * already primed. References between sections (a tenant's pool, a
 * listener's relay_tenant) are checked last, once everything is known.
 * The first error wins; its message names FILE:LINE:COL and the key path.
 */
#include "config.h"
#include "file.h"

#include "err.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#define CONFIG_MAX_DEPTH 32
#define CONFIG_MAX_FILE (16u << 20)
#define CONFIG_NAME_MAX 64

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define TIB (1024ull * GIB)
#define SEC 1000ull
#define MIN (60ull * SEC)
#define HOUR (60ull * MIN)
#define DAY (24ull * HOUR)

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- defaults: the one place they live ---------------------------------- */

static const uint64_t default_retry_ms[] = {
	1 * MIN, 5 * MIN, 15 * MIN, 30 * MIN, 1 * HOUR, 2 * HOUR, 4 * HOUR,
};

static void set_v4(struct sockaddr_storage *ss, socklen_t *len, const char *ip, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	*len = sizeof(*sin);
}

void config_defaults(struct sl_config *cfg)
{
	char host[HOST_NAME_MAX + 1];

	memset(cfg, 0, sizeof(*cfg));
	cfg->sender_auth.check_interval_ms = 3600 * 1000;
	cfg->sender_auth.verification_ttl_ms = 24 * 3600 * 1000;
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg->hostname = strdup(host);

	cfg->limits.max_line_length = 1000;
	cfg->limits.max_message_size = 25 * MIB;
	cfg->limits.max_recipients = 1000;
	cfg->limits.max_errors = 10;
	cfg->limits.max_clients = 10000;
	cfg->limits.command_timeout_ms = 5 * MIN;
	cfg->limits.data_timeout_ms = 10 * MIN;

	cfg->delivery.retry_ms = malloc(sizeof(default_retry_ms));
	if (cfg->delivery.retry_ms) {
		memcpy(cfg->delivery.retry_ms, default_retry_ms, sizeof(default_retry_ms));
		cfg->delivery.n_retry = ARRAY_LEN(default_retry_ms);
	}
	cfg->delivery.max_age_ms = 5 * DAY;
	cfg->delivery.connect_timeout_ms = 30 * SEC;
	cfg->delivery.command_timeout_ms = 5 * MIN;
	cfg->delivery.max_connections_per_domain = 32;
	cfg->delivery.max_messages_per_connection = 100;
	cfg->delivery.max_connections = 2000;
	cfg->delivery.dsn = true;
	cfg->delivery.tls_verify = false;
	cfg->delivery.stuck_age_ms = HOUR;
	cfg->delivery.stuck_deferrals = 5;

	cfg->spool.path = strdup("/var/lib/sluice/spool");
	cfg->spool.map_size = 8 * GIB;
	cfg->spool.commit_batch = 1024;
	cfg->spool.sync = true;

	/* dns.servers: none listed means the resolver reads /etc/resolv.conf. */
	cfg->events_path = strdup("/var/log/sluice/events.jsonl");
	cfg->warmup_clock_scale = 1;
	set_v4(&cfg->metrics_addr, &cfg->metrics_addr_len, "127.0.0.1", 9025);

	cfg->link_check.dns_timeout_ms = 2 * SEC;
	cfg->link_check.max_scan = 1 * MIB;
	cfg->link_check.max_hosts = 20;
	cfg->dnsbl.interval_ms = HOUR;

	cfg->dpdk.rx_descriptors = 1024;
	cfg->dpdk.tx_descriptors = 1024;
	cfg->dpdk.mbufs = 8191;
	cfg->dpdk.prefix_len = 24;
	cfg->dpdk.mtu = 1500;
	cfg->dpdk.max_conns = 65536;
}

/* ---- the node tree --------------------------------------------------------- */

enum node_kind { NODE_SCALAR, NODE_SEQ, NODE_MAP };

struct node {
	enum node_kind kind;
	unsigned line, col; /* 1-based */
	bool plain;         /* an unquoted scalar */
	char *val;          /* scalars: the text, NUL-terminated */
	size_t len;         /* scalars: its length (may hide a NUL) */
	struct node **kids; /* sequences: items; mappings: key, value, key, value... */
	size_t n, cap;
};

static void node_free(struct node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		node_free(n->kids[i]);
	free(n->kids);
	free(n->val);
	free(n);
}

static int node_add(struct node *parent, struct node *kid)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 8;
		struct node **k = realloc(parent->kids, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		parent->kids = k;
		parent->cap = cap;
	}
	parent->kids[parent->n++] = kid;
	return 0;
}

static bool is_null(const struct node *n)
{
	if (n->kind != NODE_SCALAR || !n->plain)
		return false;
	return n->len == 0 || strcmp(n->val, "~") == 0 || strcmp(n->val, "null") == 0 ||
	       strcmp(n->val, "Null") == 0 || strcmp(n->val, "NULL") == 0;
}

/* The value for key in mapping m (keys already checked), or NULL. */
static const struct node *map_get(const struct node *m, const char *key)
{
	if (m->kind != NODE_MAP)
		return NULL;
	for (size_t i = 0; i + 1 < m->n; i += 2)
		if (strcmp(m->kids[i]->val, key) == 0)
			return m->kids[i + 1];
	return NULL;
}

static const struct node *map_key(const struct node *m, const char *key)
{
	if (m->kind != NODE_MAP)
		return NULL;
	for (size_t i = 0; i + 1 < m->n; i += 2)
		if (strcmp(m->kids[i]->val, key) == 0)
			return m->kids[i];
	return NULL;
}

/* ---- parse context and errors ------------------------------------------------ */

struct ctx {
	const char *name;
	char *err;
	size_t errlen;
	struct sl_config *cfg;
	char path[256]; /* key path of the value being parsed, e.g. listeners[0].tls */
	size_t plen;
	char show[96]; /* scratch for quoting a user's value in a message */
	const struct node *root, *listeners, *tenants, *pools, *routes;
};

static void verr(struct ctx *c, unsigned line, unsigned col, bool with_path, const char *fmt,
		 va_list ap)
{
	int n;

	if (!c->err || c->errlen == 0)
		return;
	if (with_path && c->plen)
		n = snprintf(c->err, c->errlen, "%s:%u:%u: %s: ", c->name, line, col, c->path);
	else
		n = snprintf(c->err, c->errlen, "%s:%u:%u: ", c->name, line, col);
	if (n < 0 || (size_t)n >= c->errlen)
		return;
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
}

/* An error at (line, col), without the key path. */
__attribute__((format(printf, 4, 5))) static int fail_at(struct ctx *c, unsigned line, unsigned col,
							 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(c, line, col, false, fmt, ap);
	va_end(ap);
	return SL_ECONFIG;
}

/* An error about node n, prefixed with the current key path. */
__attribute__((format(printf, 3, 4))) static int bad(struct ctx *c, const struct node *n,
						     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(c, n->line, n->col, true, fmt, ap);
	va_end(ap);
	return SL_ECONFIG;
}

static int nomem(struct ctx *c)
{
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: out of memory", c->name);
	return -ENOMEM;
}

static size_t path_push(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(struct ctx *c, const char *fmt, ...)
{
	size_t old = c->plen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(c->path + c->plen, sizeof(c->path) - c->plen, fmt, ap);
	va_end(ap);
	if (n > 0)
		c->plen += (size_t)n < sizeof(c->path) - c->plen ? (size_t)n
								  : sizeof(c->path) - c->plen - 1;
	return old;
}

static size_t path_key(struct ctx *c, const char *key)
{
	return c->plen ? path_push(c, ".%s", key) : path_push(c, "%s", key);
}

static void path_pop(struct ctx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

static void path_set(struct ctx *c, const char *fmt, size_t i, const char *key)
{
	path_pop(c, 0);
	path_push(c, fmt, i, key);
}

/* A user's text made safe and short enough to quote in a message. */
static const char *show(struct ctx *c, const char *s)
{
	size_t i, max = sizeof(c->show) - 4;

	for (i = 0; s[i] && i < max - 1; i++)
		c->show[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
	if (s[i] && i >= max - 1) {
		memcpy(c->show + i, "...", 4);
		return c->show;
	}
	c->show[i] = '\0';
	return c->show;
}

static const char *kind_name(const struct node *n)
{
	if (n->kind == NODE_MAP)
		return "a mapping";
	if (n->kind == NODE_SEQ)
		return "a sequence";
	return is_null(n) ? "nothing" : "a single value";
}

/* ---- spelling hints ------------------------------------------------------------ */

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[41];

	if (la > 40 || lb > 40)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = row[j];
			size_t sub = prev + (tolower((unsigned char)a[i - 1]) !=
					     tolower((unsigned char)b[j - 1]));
			size_t best = row[j] + 1 < row[j - 1] + 1 ? row[j] + 1 : row[j - 1] + 1;

			row[j] = sub < best ? sub : best;
			prev = cur;
		}
	}
	return row[lb];
}

/* The candidate closest to word if it is a plausible misspelling, else NULL. */
static const char *closest(const char *word, const char *const *cands, size_t n, size_t stride)
{
	size_t best = SIZE_MAX, limit = strlen(word) >= 5 ? 2 : 1;
	const char *pick = NULL;

	for (size_t i = 0; i < n; i++) {
		const char *cand = *(const char *const *)((const char *)cands + i * stride);
		size_t d = edit_distance(word, cand);

		if (d < best) {
			best = d;
			pick = cand;
		}
	}
	return best <= limit ? pick : NULL;
}

/* ---- schema: the keys of every mapping ------------------------------------------ */

static const char *const top_keys[] = {
	"hostname", "listeners", "tenants", "pools", "routes", "limits",
	"delivery", "spool",     "dns",     "events", "metrics", "dkim", "shaping",
	"warmup",
	"control",
	"dpdk",
	"bounces",
	"sender_auth",
	"link_check",
	"dnsbl",
};
static const char *const listener_keys[] = {
	"name", "address", "tls", "relay_networks", "relay_tenant",
	"inbound",
};
static const char *const tls_keys[] = { "cert", "key" };
static const char *const tenant_keys[] = { "name",   "username",          "password_hash",
					   "stream", "pool",              "transactional_pool",
					   "marketing_pool" };
static const char *const pool_keys[] = { "name", "ips", "transport" };
static const char *const ip_keys[] = { "address", "ehlo" };
static const char *const route_keys[] = { "domain", "host", "port", "require_tls" };
static const char *const dkim_keys[] = { "domain", "selector", "key", "algorithm" };
static const char *const shaping_keys[] = { "rules", "providers" };
static const char *const warmup_keys[] = { "schedules", "test_clock_scale" };
static const char *const limits_keys[] = {
	"max_line_length", "max_message_size", "max_recipients", "max_errors",
	"max_clients",     "command_timeout",  "data_timeout",
};
static const char *const delivery_keys[] = {
	"retry_schedule",
	"max_age",
	"connect_timeout",
	"command_timeout",
	"max_connections_per_domain",
	"max_messages_per_connection",
	"max_connections",
	"dsn",
	"require_tls_domains",
	"tls_verify",
	"stuck_age",
	"stuck_deferrals",
	"dane",
	"verify_tls_domains",
	"no_tls_domains",
	"tls_ca_file",
	"mta_sts",
};
static const char *const spool_keys[] = { "path", "map_size", "commit_batch", "sync" };
static const char *const dns_keys[] = { "servers", "trust_anchor_file" };
static const char *const events_keys[] = { "path" };
static const char *const metrics_keys[] = { "address" };
static const char *const control_keys[] = { "store", "api" };
static const char *const sender_auth_keys[] = {
	"enforce", "spf_include", "dmarc_rua", "check_interval", "verification_domain",
	"verification_ttl", "webhook_url", "webhook_secret", "unsubscribe_url", "unsubscribe_secret",
};
static const char *const control_api_keys[] = { "address", "tls_cert", "tls_key" };
static const char *const dpdk_keys[] = {
	"eal_args", "port", "rx_descriptors", "tx_descriptors", "mbufs",
	"gateway",  "prefix_len", "mtu", "max_conns", "capture", "idle_sleep",
	"workers",
};
static const char *const bounces_keys[] = {
	"return_path_domain", "secret_file", "fbl_address", "domains",
	"response_rules", "policy", "spamtraps", "bounce_rules",
};

static const char *const link_check_keys[] = {
	"action", "blocklist", "uribl_zones", "dns_timeout", "max_scan", "max_hosts",
};
static const char *const dnsbl_keys[] = { "zones", "interval" };

#define KEYS(a) a, ARRAY_LEN(a)

/* Sections whose keys are worth pointing at when written in the wrong place. */
static const struct {
	const char *section;
	const char *const *keys;
	size_t n;
} sections[] = {
	{ "limits", KEYS(limits_keys) }, { "delivery", KEYS(delivery_keys) },
	{ "spool", KEYS(spool_keys) },   { "dns", KEYS(dns_keys) },
	{ "metrics", KEYS(metrics_keys) }, { "dpdk", KEYS(dpdk_keys) },
};

static int key_index(const char *const *keys, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i], key) == 0)
			return (int)i;
	return -1;
}

static int unknown_key(struct ctx *c, const struct node *k, const char *const *keys, size_t n)
{
	const char *near = closest(k->val, keys, n, sizeof(keys[0]));
	char where[300], hint[400];
	size_t off = 0;

	if (c->plen)
		snprintf(where, sizeof(where), " in %s", c->path);
	else
		where[0] = '\0';
	if (near) {
		snprintf(hint, sizeof(hint), "did you mean '%s'?", near);
	} else {
		for (size_t s = 0; s < ARRAY_LEN(sections); s++)
			if (key_index(sections[s].keys, sections[s].n, k->val) >= 0) {
				snprintf(hint, sizeof(hint), "'%s' belongs under '%s'", k->val,
					 sections[s].section);
				goto out;
			}
		off = (size_t)snprintf(hint, sizeof(hint), "expected one of: ");
		for (size_t i = 0; i < n && off < sizeof(hint); i++)
			off += (size_t)snprintf(hint + off, sizeof(hint) - off, "%s%s", i ? ", " : "",
						keys[i]);
	}
out:
	return fail_at(c, k->line, k->col, "unknown key '%s'%s (%s)", show(c, k->val), where, hint);
}

static int expect_map(struct ctx *c, const struct node *n)
{
	if (n->kind == NODE_MAP || is_null(n))
		return 0;
	return bad(c, n, "expected a mapping (key: value lines), got %s", kind_name(n));
}

static int expect_seq(struct ctx *c, const struct node *n)
{
	if (n->kind == NODE_SEQ || is_null(n))
		return 0;
	return bad(c, n, "expected a sequence (a list of '- item' lines or [a, b]), got %s",
		   kind_name(n));
}

/* Is m a mapping (or nothing) whose keys are all known and unique? */
static int check_keys(struct ctx *c, const struct node *m, const char *const *keys, size_t n)
{
	int rc = expect_map(c, m);

	if (rc)
		return rc;
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct node *k = m->kids[i];

		if (k->kind != NODE_SCALAR || is_null(k) || strlen(k->val) != k->len)
			return bad(c, k, "keys must be plain names, got %s", kind_name(k));
		if (key_index(keys, n, k->val) < 0)
			return unknown_key(c, k, keys, n);
		for (size_t j = 0; j < i; j += 2)
			if (strcmp(m->kids[j]->val, k->val) == 0)
				return fail_at(c, k->line, k->col,
					       "duplicate key '%s'%s%s (first at line %u)", k->val,
					       c->plen ? " in " : "", c->path, m->kids[j]->line);
	}
	return 0;
}

static int missing(struct ctx *c, const struct node *m, const char *key)
{
	return bad(c, m, "missing required key '%s'", key);
}

/* ---- scalar values ---------------------------------------------------------------- */

static int scalar(struct ctx *c, const struct node *v, const char *want, const char **out)
{
	if (v->kind != NODE_SCALAR || is_null(v))
		return bad(c, v, "expected %s, got %s", want, kind_name(v));
	if (strlen(v->val) != v->len)
		return bad(c, v, "contains a NUL character");
	*out = v->val;
	return 0;
}

static int dup_str(struct ctx *c, const char *s, char **dst)
{
	char *d = strdup(s);

	if (!d)
		return nomem(c);
	free(*dst);
	*dst = d;
	return 0;
}

/* Any non-empty text without control characters (paths, hashes, usernames). */
static int get_text(struct ctx *c, const struct node *v, char **dst)
{
	const char *s = NULL;
	int rc = scalar(c, v, "a string", &s);

	if (rc)
		return rc;
	if (*s == '\0')
		return bad(c, v, "must not be empty");
	for (const char *p = s; *p; p++)
		if (iscntrl((unsigned char)*p))
			return bad(c, v, "contains a control character");
	return dup_str(c, s, dst);
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONFIG_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return false;
	return true;
}

/* Names of listeners, tenants and pools: they end up in logs and metrics. */
static int get_name(struct ctx *c, const struct node *v, char **dst)
{
	const char *s = NULL;
	int rc = scalar(c, v, "a name", &s);

	if (rc)
		return rc;
	if (!valid_name(s))
		return bad(c, v,
			   "'%s' is not a valid name (1-%d letters, digits, '.', '_' or '-')",
			   show(c, s), CONFIG_NAME_MAX);
	return dup_str(c, s, dst);
}

/* An LDH host name: labels of letters, digits and '-', joined by dots. */
static bool valid_hostname(const char *s)
{
	size_t n = strlen(s), label = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char ch = s[i];

		if (ch == '.' || ch == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)ch) && ch != '-')
			return false;
		if (label == 0 && ch == '-')
			return false;
		label++;
	}
	return true;
}

static int get_hostname(struct ctx *c, const struct node *v, char **dst)
{
	const char *s = NULL;
	int rc = scalar(c, v, "a host name", &s);

	if (rc)
		return rc;
	if (!valid_hostname(s))
		return bad(c, v, "'%s' is not a valid host name (expected something like mta1.example.com)",
			   show(c, s));
	return dup_str(c, s, dst);
}

static int parse_u64(const char *s, const char **end, uint64_t *out)
{
	uint64_t x = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*end = p;
	*out = x;
	return 0;
}

static int get_uint(struct ctx *c, const struct node *v, uint64_t min, uint64_t max, unsigned *out)
{
	const char *s = NULL, *end;
	uint64_t x;
	int rc = scalar(c, v, "a number", &s);

	if (rc)
		return rc;
	if (parse_u64(s, &end, &x) || *end)
		return bad(c, v, "'%s' is not a whole number (expected %llu-%llu)", show(c, s),
			   (unsigned long long)min, (unsigned long long)max);
	if (x < min || x > max)
		return bad(c, v, "%s is out of range (expected %llu-%llu)", show(c, s),
			   (unsigned long long)min, (unsigned long long)max);
	*out = (unsigned)x;
	return 0;
}

static int get_bool(struct ctx *c, const struct node *v, bool *out)
{
	const char *s = NULL;
	int rc = scalar(c, v, "true or false", &s);

	if (rc)
		return rc;
	if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0)
		*out = true;
	else if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0)
		*out = false;
	else
		return bad(c, v, "'%s' is not a boolean (expected true or false)", show(c, s));
	return 0;
}

int config_parse_duration(const char *s, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = { { "", SEC }, { "ms", 1 },     { "s", SEC },
		      { "m", MIN }, { "h", HOUR }, { "d", DAY } };
	const char *end;
	uint64_t x;

	if (!s || parse_u64(s, &end, &x))
		return SL_ECONFIG;
	for (size_t i = 0; i < ARRAY_LEN(units); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (x > UINT64_MAX / units[i].mult)
			return SL_ECONFIG;
		*ms = x * units[i].mult;
		return 0;
	}
	return SL_ECONFIG;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
	const char *end;
	uint64_t x, mult;

	if (!s || parse_u64(s, &end, &x))
		return SL_ECONFIG;
	switch (*end) {
	case '\0': mult = 1; break;
	case 'k': case 'K': mult = KIB; break;
	case 'm': case 'M': mult = MIB; break;
	case 'g': case 'G': mult = GIB; break;
	case 't': case 'T': mult = TIB; break;
	default: return SL_ECONFIG;
	}
	if (*end && end[1])
		return SL_ECONFIG;
	if (x > UINT64_MAX / mult)
		return SL_ECONFIG;
	*bytes = x * mult;
	return 0;
}

static const char *fmt_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms && ms % DAY == 0)
		snprintf(buf, len, "%llud", (unsigned long long)(ms / DAY));
	else if (ms && ms % HOUR == 0)
		snprintf(buf, len, "%lluh", (unsigned long long)(ms / HOUR));
	else if (ms && ms % MIN == 0)
		snprintf(buf, len, "%llum", (unsigned long long)(ms / MIN));
	else if (ms && ms % SEC == 0)
		snprintf(buf, len, "%llus", (unsigned long long)(ms / SEC));
	else
		snprintf(buf, len, "%llums", (unsigned long long)ms);
	return buf;
}

static const char *fmt_size(uint64_t b, char *buf, size_t len)
{
	if (b && b % TIB == 0)
		snprintf(buf, len, "%lluT", (unsigned long long)(b / TIB));
	else if (b && b % GIB == 0)
		snprintf(buf, len, "%lluG", (unsigned long long)(b / GIB));
	else if (b && b % MIB == 0)
		snprintf(buf, len, "%lluM", (unsigned long long)(b / MIB));
	else if (b && b % KIB == 0)
		snprintf(buf, len, "%lluk", (unsigned long long)(b / KIB));
	else
		snprintf(buf, len, "%llu", (unsigned long long)b);
	return buf;
}

static int get_duration(struct ctx *c, const struct node *v, uint64_t min, uint64_t max,
			uint64_t *out)
{
	char lo[32], hi[32];
	const char *s = NULL;
	uint64_t ms;
	int rc = scalar(c, v, "a duration", &s);

	if (rc)
		return rc;
	if (config_parse_duration(s, &ms))
		return bad(c, v, "'%s' is not a valid duration (expected a duration like 30s, 5m, 2h)",
			   show(c, s));
	if (ms < min || ms > max)
		return bad(c, v, "%s is out of range (expected %s-%s)", show(c, s),
			   fmt_duration(min, lo, sizeof(lo)), fmt_duration(max, hi, sizeof(hi)));
	*out = ms;
	return 0;
}

static int get_size(struct ctx *c, const struct node *v, uint64_t min, uint64_t max, size_t *out)
{
	char lo[32], hi[32];
	const char *s = NULL;
	uint64_t b;
	int rc = scalar(c, v, "a size", &s);

	if (rc)
		return rc;
	if (config_parse_size(s, &b))
		return bad(c, v, "'%s' is not a valid size (expected a size like 512, 64k, 25M, 1G)",
			   show(c, s));
	if (b < min || b > max || b > SIZE_MAX)
		return bad(c, v, "%s is out of range (expected %s-%s)", show(c, s),
			   fmt_size(min, lo, sizeof(lo)), fmt_size(max, hi, sizeof(hi)));
	*out = (size_t)b;
	return 0;
}

/* ---- addresses ------------------------------------------------------------------------ */

static int parse_port(const char *s, uint16_t *port)
{
	const char *end;
	uint64_t x;

	if (strlen(s) > 5 || parse_u64(s, &end, &x) || *end || x < 1 || x > 65535)
		return -1;
	*port = (uint16_t)x;
	return 0;
}

static void fill_sa(int af, const void *ip, uint16_t port, struct sockaddr_storage *ss,
		    socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, ip, 4);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, ip, 16);
		*len = sizeof(*sin6);
	}
}

/*
 * "IPv4:port", "[IPv6]:port", and when defport is non-zero also a bare
 * "IPv4", "IPv6" or "[IPv6]" meaning port defport. NULL or a reason.
 */
static const char *parse_hostport(const char *s, uint16_t defport, struct sockaddr_storage *ss,
				  socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	uint8_t ip[16];
	const char *port_s = NULL;
	uint16_t port = defport;
	int af;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		size_t n = close ? (size_t)(close - s - 1) : 0;

		if (!close)
			return "missing ']'";
		if (n == 0 || n >= sizeof(host))
			return "not an IPv6 address";
		memcpy(host, s + 1, n);
		host[n] = '\0';
		if (inet_pton(AF_INET6, host, ip) != 1)
			return "not an IPv6 address";
		af = AF_INET6;
		if (close[1] == ':')
			port_s = close + 2;
		else if (close[1] != '\0')
			return "unexpected text after ']'";
	} else {
		const char *colon = strchr(s, ':');

		if (colon && strchr(colon + 1, ':')) {
			/* More than one colon: a bare IPv6 address. */
			if (strlen(s) >= sizeof(host) || inet_pton(AF_INET6, s, ip) != 1)
				return "not an IP address";
			if (!defport)
				return "missing port (write IPv6 as [addr]:port)";
			af = AF_INET6;
		} else {
			size_t n = colon ? (size_t)(colon - s) : strlen(s);

			if (n >= sizeof(host))
				return "not an IP address";
			memcpy(host, s, n);
			host[n] = '\0';
			if (inet_pton(AF_INET, host, ip) != 1)
				return "not an IP address";
			af = AF_INET;
			if (colon)
				port_s = colon + 1;
		}
	}
	if (port_s) {
		if (parse_port(port_s, &port))
			return "bad port (expected 1-65535)";
	} else if (!defport) {
		return "missing port";
	}
	fill_sa(af, ip, port, ss, len);
	return NULL;
}

static int get_hostport(struct ctx *c, const struct node *v, struct sockaddr_storage *ss,
			socklen_t *len)
{
	const char *s = NULL, *why;
	int rc = scalar(c, v, "an address", &s);

	if (rc)
		return rc;
	why = parse_hostport(s, 0, ss, len);
	if (why)
		return bad(c, v, "'%s': %s (expected IPv4:port or [IPv6]:port, e.g. 127.0.0.1:2525)",
			   show(c, s), why);
	return 0;
}

/* A source IP: an address without a port. */
static int get_ip(struct ctx *c, const struct node *v, struct sockaddr_storage *ss, socklen_t *len)
{
	static const uint8_t zero[16];
	uint8_t ip[16];
	const char *s = NULL;
	int rc = scalar(c, v, "an IP address", &s);

	if (rc)
		return rc;
	if (inet_pton(AF_INET, s, ip) == 1) {
		fill_sa(AF_INET, ip, 0, ss, len);
		if (memcmp(ip, zero, 4) == 0)
			goto unspecified;
		return 0;
	}
	if (inet_pton(AF_INET6, s, ip) == 1) {
		fill_sa(AF_INET6, ip, 0, ss, len);
		if (memcmp(ip, zero, 16) == 0)
			goto unspecified;
		return 0;
	}
	if (s[0] == '[' || strchr(s, ':'))
		return bad(c, v, "'%s' is not an IP address (a source address takes no port or brackets, e.g. 198.51.100.10 or 2001:db8::10)",
			   show(c, s));
	return bad(c, v, "'%s' is not an IP address (e.g. 198.51.100.10 or 2001:db8::10)",
		   show(c, s));
unspecified:
	return bad(c, v, "'%s' is the unspecified address; a source address must be one of this host's addresses",
		   show(c, s));
}

static void cidr_mask(struct sl_cidr *n)
{
	int bytes = n->family == AF_INET ? 4 : 16;

	for (int i = 0; i < bytes; i++) {
		int keep = n->prefix - i * 8;

		if (keep >= 8)
			continue;
		n->addr[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
	}
}

/* "addr/prefix" or a bare address (a host). NULL or a reason; *masked gets
 * the network when host bits are set. */
static const char *parse_cidr(const char *s, struct sl_cidr *out, struct sl_cidr *masked)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/'), *end;
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	struct sl_cidr net;
	uint64_t prefix;
	int max;

	memset(&net, 0, sizeof(net));
	if (n >= sizeof(host))
		return "not an address";
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, net.addr) == 1)
		net.family = AF_INET;
	else if (inet_pton(AF_INET6, host, net.addr) == 1)
		net.family = AF_INET6;
	else
		return "not an address";
	max = net.family == AF_INET ? 32 : 128;
	if (slash) {
		if (strlen(slash + 1) > 3 || parse_u64(slash + 1, &end, &prefix) || *end ||
		    prefix > (uint64_t)max)
			return net.family == AF_INET ? "bad prefix length (expected /0-/32)"
						     : "bad prefix length (expected /0-/128)";
		net.prefix = (int)prefix;
	} else {
		net.prefix = max;
	}
	*masked = net;
	cidr_mask(masked);
	if (memcmp(masked->addr, net.addr, sizeof(net.addr)) != 0)
		return "host bits set";
	*out = net;
	return NULL;
}

int config_parse_cidr(const char *s, struct sl_cidr *out)
{
	struct sl_cidr masked;

	if (!s || parse_cidr(s, out, &masked))
		return SL_ECONFIG;
	return 0;
}

int config_parse_fraction(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = s ? strtod(s, &end) : 0;
	if (!s || errno || end == s)
		return SL_ECONFIG;
	if (*end == '%') {
		v /= 100;
		end++;
	}
	if (*end || !(v >= 0 && v <= 1))
		return SL_ECONFIG;
	*out = v;
	return 0;
}

int config_error_at(char *err, size_t errlen, const char *name, unsigned line, const char *fmt,
		    ...)
{
	va_list ap;
	int n;

	if (!err || !errlen)
		return SL_ECONFIG;
	n = line ? snprintf(err, errlen, "%s:%u: ", name, line) : snprintf(err, errlen, "%s: ", name);
	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return SL_ECONFIG;
}

static int get_cidr(struct ctx *c, const struct node *v, struct sl_cidr *out)
{
	char addr[INET6_ADDRSTRLEN];
	struct sl_cidr masked;
	const char *s = NULL, *why;
	int rc = scalar(c, v, "a network", &s);

	if (rc)
		return rc;
	why = parse_cidr(s, out, &masked);
	if (why && strcmp(why, "host bits set") == 0) {
		inet_ntop(masked.family, masked.addr, addr, sizeof(addr));
		return bad(c, v, "'%s' has host bits set (did you mean %s/%d?)", show(c, s), addr,
			   masked.prefix);
	}
	if (why)
		return bad(c, v, "'%s': %s (expected a network like 127.0.0.0/8 or ::1/128)",
			   show(c, s), why);
	return 0;
}

static bool sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* ---- sections --------------------------------------------------------------------------- */

static int parse_cidrs(struct ctx *c, const struct node *v, struct sl_cidr **out, size_t *n)
{
	int rc = expect_seq(c, v);

	if (rc || v->n == 0)
		return rc;
	*out = calloc(v->n, sizeof(**out));
	if (!*out)
		return nomem(c);
	*n = v->n;
	for (size_t i = 0; i < v->n; i++) {
		size_t old = path_push(c, "[%zu]", i);

		rc = get_cidr(c, v->kids[i], &(*out)[i]);
		if (rc)
			return rc;
		path_pop(c, old);
	}
	return 0;
}

static int parse_tls(struct ctx *c, const struct node *m, struct sl_listener_cfg *l)
{
	int rc = check_keys(c, m, KEYS(tls_keys));

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		int k = key_index(KEYS(tls_keys), m->kids[i]->val);
		size_t old = path_key(c, m->kids[i]->val);

		rc = get_text(c, m->kids[i + 1], k == 0 ? &l->tls_cert : &l->tls_key);
		path_pop(c, old);
	}
	if (rc)
		return rc;
	if (l->tls_cert && !l->tls_key)
		return bad(c, m, "'cert' is set but 'key' is missing");
	if (l->tls_key && !l->tls_cert)
		return bad(c, m, "'key' is set but 'cert' is missing");
	return 0;
}

static int parse_listener(struct ctx *c, const struct node *m, size_t idx)
{
	struct sl_listener_cfg *l = &c->cfg->listeners[idx];
	const struct node *k;
	int rc = check_keys(c, m, KEYS(listener_keys));

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(listener_keys), m->kids[i]->val)) {
		case 0: rc = get_name(c, v, &l->name); break;
		case 1: rc = get_hostport(c, v, &l->addr, &l->addr_len); break;
		case 2: rc = parse_tls(c, v, l); break;
		case 3: rc = parse_cidrs(c, v, &l->relay_networks, &l->n_relay_networks); break;
		case 4: rc = get_name(c, v, &l->relay_tenant); break;
		case 5: rc = get_bool(c, v, &l->inbound); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	if (rc)
		return rc;
	if (!l->name)
		return missing(c, m, "name");
	if (!l->addr_len)
		return missing(c, m, "address");
	if (l->n_relay_networks && !l->relay_tenant) {
		k = map_key(m, "relay_networks");
		return fail_at(c, k->line, k->col,
			       "%s: relay_networks needs relay_tenant (the tenant that unauthenticated relays send as)",
			       c->path);
	}
	for (size_t j = 0; j < idx; j++) {
		const struct sl_listener_cfg *o = &c->cfg->listeners[j];

		if (strcmp(o->name, l->name) == 0 && path_key(c, "name"))
			return bad(c, map_get(m, "name"), "duplicate listener name '%s' (first at line %u)",
				   l->name, map_get(c->listeners->kids[j], "name")->line);
		if (sockaddr_equal(&o->addr, &l->addr) && path_key(c, "address"))
			return bad(c, map_get(m, "address"),
				   "listener '%s' already uses this address (line %u)", o->name,
				   map_get(c->listeners->kids[j], "address")->line);
	}
	return 0;
}

static int parse_listeners(struct ctx *c, const struct node *v)
{
	struct sl_config *cfg = c->cfg;
	int rc = expect_seq(c, v);

	if (rc || v->n == 0)
		return rc;
	c->listeners = v;
	cfg->listeners = calloc(v->n, sizeof(*cfg->listeners));
	if (!cfg->listeners)
		return nomem(c);
	cfg->n_listeners = v->n;
	for (size_t i = 0; i < v->n; i++) {
		size_t old = path_push(c, "[%zu]", i);

		rc = parse_listener(c, v->kids[i], i);
		if (rc)
			return rc;
		path_pop(c, old);
	}
	return 0;
}

static int get_stream(struct ctx *c, const struct node *v, enum sl_stream *out)
{
	const char *s = NULL;
	int rc = scalar(c, v, "a stream", &s);

	if (rc)
		return rc;
	if (strcmp(s, "transactional") == 0)
		*out = SL_STREAM_TRANSACTIONAL;
	else if (strcmp(s, "marketing") == 0)
		*out = SL_STREAM_MARKETING;
	else
		return bad(c, v, "'%s' is not a stream (expected transactional or marketing)",
			   show(c, s));
	return 0;
}

static int parse_tenant(struct ctx *c, const struct node *m, size_t idx)
{
	struct sl_tenant_cfg *t = &c->cfg->tenants[idx];
	int rc = check_keys(c, m, KEYS(tenant_keys));

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(tenant_keys), m->kids[i]->val)) {
		case 0: rc = get_name(c, v, &t->name); break;
		case 1: rc = get_text(c, v, &t->username); break;
		case 2: rc = get_text(c, v, &t->password_hash); break;
		case 3: rc = get_stream(c, v, &t->stream); break;
		case 4: rc = get_name(c, v, &t->pool); break; /* resolved in check_refs() */
		case 5: rc = get_name(c, v, &t->stream_pool[SL_STREAM_TRANSACTIONAL]); break;
		case 6: rc = get_name(c, v, &t->stream_pool[SL_STREAM_MARKETING]); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	if (rc)
		return rc;
	if (!t->name)
		return missing(c, m, "name");
	if (!t->username && (rc = dup_str(c, t->name, &t->username)))
		return rc;
	for (size_t j = 0; j < idx; j++) {
		const struct sl_tenant_cfg *o = &c->cfg->tenants[j];
		const struct node *first = c->tenants->kids[j], *user;

		if (strcmp(o->name, t->name) == 0 && path_key(c, "name"))
			return bad(c, map_get(m, "name"), "duplicate tenant name '%s' (first at line %u)",
				   t->name, map_get(first, "name")->line);
		if (strcmp(o->username, t->username) == 0) {
			user = map_get(m, "username");
			path_key(c, user ? "username" : "name");
			first = map_get(first, "username") ? map_get(first, "username")
							   : map_get(first, "name");
			return bad(c, user ? user : map_get(m, "name"),
				   "username '%s' is already used by tenant '%s' (line %u)",
				   show(c, t->username), o->name, first->line);
		}
	}
	return 0;
}

static int parse_tenants(struct ctx *c, const struct node *v)
{
	struct sl_config *cfg = c->cfg;
	int rc = expect_seq(c, v);

	if (rc || v->n == 0)
		return rc;
	c->tenants = v;
	cfg->tenants = calloc(v->n, sizeof(*cfg->tenants));
	if (!cfg->tenants)
		return nomem(c);
	cfg->n_tenants = v->n;
	for (size_t i = 0; i < v->n; i++) {
		size_t old = path_push(c, "[%zu]", i);

		rc = parse_tenant(c, v->kids[i], i);
		if (rc)
			return rc;
		path_pop(c, old);
	}
	return 0;
}

static int parse_source_ip(struct ctx *c, const struct node *m, struct sl_pool_cfg *p, size_t idx,
			   const struct node *seq)
{
	struct sl_source_ip_cfg *ip = &p->ips[idx];
	int rc = check_keys(c, m, KEYS(ip_keys));

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		if (key_index(KEYS(ip_keys), m->kids[i]->val) == 0)
			rc = get_ip(c, v, &ip->addr, &ip->addr_len);
		else
			rc = get_hostname(c, v, &ip->ehlo);
		if (!rc)
			path_pop(c, old);
	}
	if (rc)
		return rc;
	if (!ip->addr_len)
		return missing(c, m, "address");
	if (!ip->ehlo)
		return missing(c, m, "ehlo");
	for (size_t j = 0; j < idx; j++)
		if (sockaddr_equal(&p->ips[j].addr, &ip->addr) && path_key(c, "address"))
			return bad(c, map_get(m, "address"), "duplicate address in this pool (first at line %u)",
				   map_get(seq->kids[j], "address")->line);
	return 0;
}

static int get_transport(struct ctx *c, const struct node *v, enum sl_transport_kind *out)
{
	const char *s = NULL;
	int rc = scalar(c, v, "a transport", &s);

	if (rc)
		return rc;
	if (strcmp(s, "uring") == 0)
		*out = SL_TRANSPORT_URING;
	else if (strcmp(s, "dpdk") == 0)
		*out = SL_TRANSPORT_DPDK;
	else
		return bad(c, v, "'%s' is not a transport (expected uring or dpdk)", show(c, s));
	return 0;
}

static int parse_pool(struct ctx *c, const struct node *m, size_t idx)
{
	struct sl_pool_cfg *p = &c->cfg->pools[idx];
	const struct node *ips = NULL;
	int rc = check_keys(c, m, KEYS(pool_keys));

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		if (key_index(KEYS(pool_keys), m->kids[i]->val) == 0) {
			rc = get_name(c, v, &p->name);
		} else if (key_index(KEYS(pool_keys), m->kids[i]->val) == 2) {
			rc = get_transport(c, v, &p->transport);
		} else if (!(rc = expect_seq(c, v)) && v->n) {
			ips = v;
			p->ips = calloc(v->n, sizeof(*p->ips));
			if (!p->ips)
				return nomem(c);
			p->n_ips = v->n;
			for (size_t j = 0; !rc && j < v->n; j++) {
				size_t o2 = path_push(c, "[%zu]", j);

				rc = parse_source_ip(c, v->kids[j], p, j, v);
				if (!rc)
					path_pop(c, o2);
			}
		} else if (!rc) {
			rc = bad(c, v, "a pool needs at least one source IP");
		}
		if (!rc)
			path_pop(c, old);
	}
	if (rc)
		return rc;
	if (!p->name)
		return missing(c, m, "name");
	if (!ips)
		return missing(c, m, "ips");
	for (size_t j = 0; j < idx; j++)
		if (strcmp(c->cfg->pools[j].name, p->name) == 0 && path_key(c, "name"))
			return bad(c, map_get(m, "name"), "duplicate pool name '%s' (first at line %u)",
				   p->name, map_get(c->pools->kids[j], "name")->line);
	return 0;
}

static int parse_pools(struct ctx *c, const struct node *v)
{
	struct sl_config *cfg = c->cfg;
	int rc = expect_seq(c, v);

	if (rc)
		return rc;
	if (v->n == 0)
		return bad(c, v, "at least one pool is required");
	c->pools = v;
	cfg->pools = calloc(v->n, sizeof(*cfg->pools));
	if (!cfg->pools)
		return nomem(c);
	cfg->n_pools = v->n;
	for (size_t i = 0; i < v->n; i++) {
		size_t old = path_push(c, "[%zu]", i);

		rc = parse_pool(c, v->kids[i], i);
		if (rc)
			return rc;
		path_pop(c, old);
	}
	return 0;
}

static int get_route_host(struct ctx *c, const struct node *v, char **dst)
{
	uint8_t ip[16];
	const char *s = NULL;
	int rc = scalar(c, v, "a host", &s);

	if (rc)
		return rc;
	if (inet_pton(AF_INET, s, ip) == 1 || inet_pton(AF_INET6, s, ip) == 1 || valid_hostname(s))
		return dup_str(c, s, dst);
	if (strchr(s, ':') || s[0] == '[')
		return bad(c, v, "'%s' is not an IP address or host name (put the port in 'port'; write IPv6 without brackets)",
			   show(c, s));
	return bad(c, v, "'%s' is not an IP address or host name", show(c, s));
}

static int get_domain(struct ctx *c, const struct node *v, bool star, char **dst)
{
	const char *s = NULL;
	int rc = scalar(c, v, "a domain", &s);

	if (rc)
		return rc;
	if ((star && strcmp(s, "*") == 0) || valid_hostname(s))
		return dup_str(c, s, dst);
	if (star && s[0] == '*')
		return bad(c, v, "'%s' is not a domain (only exact domains and \"*\" are supported)",
			   show(c, s));
	return bad(c, v, "'%s' is not a domain", show(c, s));
}

static int parse_route(struct ctx *c, const struct node *m, size_t idx)
{
	struct sl_route_cfg *r = &c->cfg->routes[idx];
	unsigned port;
	int rc = check_keys(c, m, KEYS(route_keys));

	r->port = 25;
	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(route_keys), m->kids[i]->val)) {
		case 0: rc = get_domain(c, v, true, &r->domain); break;
		case 1: rc = get_route_host(c, v, &r->host); break;
		case 2:
			rc = get_uint(c, v, 1, 65535, &port);
			r->port = (uint16_t)port;
			break;
		case 3: rc = get_bool(c, v, &r->require_tls); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	if (rc)
		return rc;
	if (!r->domain)
		return missing(c, m, "domain");
	if (!r->host)
		return missing(c, m, "host");
	for (size_t j = 0; j < idx; j++)
		if (strcasecmp(c->cfg->routes[j].domain, r->domain) == 0 && path_key(c, "domain"))
			return bad(c, map_get(m, "domain"), "duplicate route for '%s' (first at line %u)",
				   show(c, r->domain), map_get(c->routes->kids[j], "domain")->line);
	return 0;
}

static int parse_routes(struct ctx *c, const struct node *v)
{
	struct sl_config *cfg = c->cfg;
	int rc = expect_seq(c, v);

	if (rc || v->n == 0)
		return rc;
	c->routes = v;
	cfg->routes = calloc(v->n, sizeof(*cfg->routes));
	if (!cfg->routes)
		return nomem(c);
	cfg->n_routes = v->n;
	for (size_t i = 0; i < v->n; i++) {
		size_t old = path_push(c, "[%zu]", i);

		rc = parse_route(c, v->kids[i], i);
		if (rc)
			return rc;
		path_pop(c, old);
	}
	return 0;
}

static int parse_dkim_key(struct ctx *c, const struct node *m, size_t idx)
{
	struct sl_dkim_key_cfg *k = &c->cfg->dkim[idx];
	const char *alg;
	int rc = check_keys(c, m, KEYS(dkim_keys));

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(dkim_keys), m->kids[i]->val)) {
		case 0: rc = get_domain(c, v, false, &k->domain); break;
		case 1: rc = get_name(c, v, &k->selector); break;
		case 2: rc = get_text(c, v, &k->key); break;
		case 3:
			rc = scalar(c, v, "rsa-sha256 or ed25519-sha256", &alg);
			if (!rc && strcmp(alg, "rsa-sha256") && strcmp(alg, "ed25519-sha256"))
				rc = bad(c, v, "'%s' is not a DKIM algorithm (expected rsa-sha256 or "
					       "ed25519-sha256)", show(c, alg));
			if (!rc)
				rc = dup_str(c, alg, &k->algorithm);
			break;
		}
		if (!rc)
			path_pop(c, old);
	}
	if (rc)
		return rc;
	if (!k->domain)
		return missing(c, m, "domain");
	if (!k->selector)
		return missing(c, m, "selector");
	if (!k->key)
		return missing(c, m, "key");
	return 0;
}

static int parse_dkim(struct ctx *c, const struct node *v)
{
	struct sl_config *cfg = c->cfg;
	int rc = expect_seq(c, v);

	if (rc || v->n == 0)
		return rc;
	cfg->dkim = calloc(v->n, sizeof(*cfg->dkim));
	if (!cfg->dkim)
		return nomem(c);
	cfg->n_dkim = v->n;
	for (size_t i = 0; i < v->n; i++) {
		size_t old = path_push(c, "[%zu]", i);

		rc = expect_map(c, v->kids[i]);
		if (!rc)
			rc = parse_dkim_key(c, v->kids[i], i);
		if (rc)
			return rc;
		path_pop(c, old);
	}
	return 0;
}

static int parse_shaping(struct ctx *c, const struct node *m)
{
	int rc = check_keys(c, m, KEYS(shaping_keys));

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(shaping_keys), m->kids[i]->val)) {
		case 0: rc = get_text(c, v, &c->cfg->shaping_rules); break;
		case 1: rc = get_text(c, v, &c->cfg->shaping_providers); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	return rc;
}

/* warmup.test_clock_scale speeds up the warm-up calendar for tests only:
 * refused unless the environment says SLUICE_TEST_CLOCK=1. */
static int parse_warmup(struct ctx *c, const struct node *m)
{
	int rc = check_keys(c, m, KEYS(warmup_keys));
	const char *env;

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(warmup_keys), m->kids[i]->val)) {
		case 0: rc = get_text(c, v, &c->cfg->warmup_schedules); break;
		case 1:
			rc = get_uint(c, v, 1, 86400000, &c->cfg->warmup_clock_scale);
			env = getenv("SLUICE_TEST_CLOCK");
			if (!rc && c->cfg->warmup_clock_scale != 1 && !(env && !strcmp(env, "1")))
				rc = bad(c, v, "test_clock_scale is for tests only (set "
					       "SLUICE_TEST_CLOCK=1 in the environment to allow it)");
			break;
		}
		if (!rc)
			path_pop(c, old);
	}
	return rc;
}

static int parse_limits(struct ctx *c, const struct node *m)
{
	struct sl_limits_cfg *l = &c->cfg->limits;
	int rc = check_keys(c, m, KEYS(limits_keys));

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(limits_keys), m->kids[i]->val)) {
		case 0: rc = get_size(c, v, 1000, 1 * MIB, &l->max_line_length); break;
		case 1: rc = get_size(c, v, 1, 4 * GIB, &l->max_message_size); break;
		case 2: rc = get_uint(c, v, 1, 1000000, &l->max_recipients); break;
		case 3: rc = get_uint(c, v, 1, 1000, &l->max_errors); break;
		case 4: rc = get_uint(c, v, 1, 1000000, &l->max_clients); break;
		case 5: rc = get_duration(c, v, 1, DAY, &l->command_timeout_ms); break;
		case 6: rc = get_duration(c, v, 1, DAY, &l->data_timeout_ms); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	return rc;
}

static int parse_retry(struct ctx *c, const struct node *v)
{
	struct sl_delivery_cfg *d = &c->cfg->delivery;
	uint64_t *ms;
	int rc = expect_seq(c, v);

	if (rc)
		return rc;
	if (v->n == 0)
		return bad(c, v, "needs at least one interval (the last one repeats)");
	ms = calloc(v->n, sizeof(*ms));
	if (!ms)
		return nomem(c);
	free(d->retry_ms);
	d->retry_ms = ms;
	d->n_retry = v->n;
	for (size_t i = 0; i < v->n; i++) {
		size_t old = path_push(c, "[%zu]", i);

		rc = get_duration(c, v->kids[i], 1, 30 * DAY, &ms[i]);
		if (rc)
			return rc;
		path_pop(c, old);
	}
	return 0;
}

/* A TLS policy list (delivery.require_tls_domains and its siblings). */
static int parse_tls_domains(struct ctx *c, const struct node *v, char ***out, size_t *n_out)
{
	int rc = expect_seq(c, v);
	char **list;

	if (rc || v->n == 0)
		return rc;
	list = *out = calloc(v->n, sizeof(char *));
	if (!list)
		return nomem(c);
	*n_out = v->n;
	for (size_t i = 0; i < v->n; i++) {
		size_t old = path_push(c, "[%zu]", i);

		rc = get_domain(c, v->kids[i], false, &list[i]);
		if (rc)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (strcasecmp(list[j], list[i]) == 0)
				return bad(c, v->kids[i], "duplicate domain (first at line %u)",
					   v->kids[j]->line);
		path_pop(c, old);
	}
	return 0;
}

/* delivery.dane-style switches: "off" or "on" (room for more modes). */
static int get_off_on(struct ctx *c, const struct node *v, bool *out)
{
	const char *s = NULL;
	int rc = scalar(c, v, "off or on", &s);

	if (rc)
		return rc;
	if (strcmp(s, "on") == 0)
		*out = true;
	else if (strcmp(s, "off") == 0)
		*out = false;
	else
		return bad(c, v, "'%s' is not off or on", show(c, s));
	return 0;
}

static int parse_delivery(struct ctx *c, const struct node *m)
{
	struct sl_delivery_cfg *d = &c->cfg->delivery;
	int rc = check_keys(c, m, KEYS(delivery_keys));

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(delivery_keys), m->kids[i]->val)) {
		case 0: rc = parse_retry(c, v); break;
		case 1: rc = get_duration(c, v, 1, 365 * DAY, &d->max_age_ms); break;
		case 2: rc = get_duration(c, v, 1, DAY, &d->connect_timeout_ms); break;
		case 3: rc = get_duration(c, v, 1, DAY, &d->command_timeout_ms); break;
		case 4: rc = get_uint(c, v, 1, 100000, &d->max_connections_per_domain); break;
		case 5: rc = get_uint(c, v, 1, 1000000, &d->max_messages_per_connection); break;
		case 6: rc = get_uint(c, v, 1, 1000000, &d->max_connections); break;
		case 7: rc = get_bool(c, v, &d->dsn); break;
		case 8:
			rc = parse_tls_domains(c, v, &d->require_tls_domains,
					       &d->n_require_tls_domains);
			break;
		case 9: rc = get_bool(c, v, &d->tls_verify); break;
		case 10: rc = get_duration(c, v, 1, 365 * DAY, &d->stuck_age_ms); break;
		case 11: rc = get_uint(c, v, 1, 1000000, &d->stuck_deferrals); break;
		case 12: rc = get_off_on(c, v, &d->dane); break;
		case 13:
			rc = parse_tls_domains(c, v, &d->verify_tls_domains,
					       &d->n_verify_tls_domains);
			break;
		case 14: rc = parse_tls_domains(c, v, &d->no_tls_domains, &d->n_no_tls_domains); break;
		case 15: rc = get_text(c, v, &d->tls_ca_file); break;
		case 16: rc = get_bool(c, v, &d->mta_sts); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	return rc;
}

static int parse_spool(struct ctx *c, const struct node *m)
{
	struct sl_spool_cfg *s = &c->cfg->spool;
	int rc = check_keys(c, m, KEYS(spool_keys));

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(spool_keys), m->kids[i]->val)) {
		case 0: rc = get_text(c, v, &s->path); break;
		case 1: rc = get_size(c, v, 1 * MIB, 64 * TIB, &s->map_size); break;
		case 2: rc = get_uint(c, v, 1, 65536, &s->commit_batch); break;
		case 3: rc = get_bool(c, v, &s->sync); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	return rc;
}

static int parse_dns(struct ctx *c, const struct node *m)
{
	struct sl_dns_cfg *d = &c->cfg->dns;
	const struct node *v;
	size_t old;
	int rc = check_keys(c, m, KEYS(dns_keys));

	if (!rc && (v = map_get(m, "trust_anchor_file"))) {
		old = path_key(c, "trust_anchor_file");
		if ((rc = get_text(c, v, &d->trust_anchor_file)))
			return rc;
		path_pop(c, old);
	}
	if (rc || !(v = map_get(m, "servers")))
		return rc;
	old = path_key(c, "servers");
	if ((rc = expect_seq(c, v)) || v->n == 0)
		return rc;
	d->servers = calloc(v->n, sizeof(*d->servers));
	d->server_lens = calloc(v->n, sizeof(*d->server_lens));
	if (!d->servers || !d->server_lens)
		return nomem(c);
	d->n_servers = v->n;
	for (size_t i = 0; i < v->n; i++) {
		size_t o2 = path_push(c, "[%zu]", i);
		const char *s = NULL, *why;

		if ((rc = scalar(c, v->kids[i], "an address", &s)))
			return rc;
		why = parse_hostport(s, 53, &d->servers[i], &d->server_lens[i]);
		if (why)
			return bad(c, v->kids[i], "'%s': %s (expected IP, IPv4:port or [IPv6]:port)",
				   show(c, s), why);
		path_pop(c, o2);
	}
	path_pop(c, old);
	return 0;
}

static int parse_events(struct ctx *c, const struct node *m)
{
	const struct node *v;
	size_t old;
	int rc = check_keys(c, m, KEYS(events_keys));

	if (rc || !(v = map_get(m, "path")))
		return rc;
	old = path_key(c, "path");
	rc = get_text(c, v, &c->cfg->events_path);
	if (!rc)
		path_pop(c, old);
	return rc;
}

static int parse_metrics(struct ctx *c, const struct node *m)
{
	const struct node *v;
	size_t old;
	int rc = check_keys(c, m, KEYS(metrics_keys));

	if (rc || !(v = map_get(m, "address")))
		return rc;
	old = path_key(c, "address");
	rc = get_hostport(c, v, &c->cfg->metrics_addr, &c->cfg->metrics_addr_len);
	if (!rc)
		path_pop(c, old);
	return rc;
}

static int parse_control_api(struct ctx *c, const struct node *m)
{
	struct sl_control_cfg *ctl = &c->cfg->control;
	int rc = check_keys(c, m, KEYS(control_api_keys));

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);
		struct sockaddr_storage ss;
		socklen_t sl;
		const char *a;

		switch (key_index(KEYS(control_api_keys), m->kids[i]->val)) {
		case 0:
			rc = get_hostport(c, v, &ss, &sl);
			if (!rc)
				rc = scalar(c, v, "an address", &a);
			if (!rc)
				rc = dup_str(c, a, &ctl->api_address);
			break;
		case 1: rc = get_text(c, v, &ctl->api_tls_cert); break;
		case 2: rc = get_text(c, v, &ctl->api_tls_key); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	if (!rc && !ctl->api_tls_cert != !ctl->api_tls_key)
		return bad(c, m, "tls_cert and tls_key go together (both or neither)");
	return rc;
}

static int parse_control(struct ctx *c, const struct node *m)
{
	struct sl_control_cfg *ctl = &c->cfg->control;
	int rc = check_keys(c, m, KEYS(control_keys));

	ctl->enabled = true;
	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(control_keys), m->kids[i]->val)) {
		case 0: rc = get_text(c, v, &ctl->store); break;
		case 1: rc = parse_control_api(c, v); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	if (!rc && !ctl->store)
		rc = dup_str(c, "/var/lib/sluice/control", &ctl->store);
	if (!rc && !ctl->api_address)
		rc = dup_str(c, "127.0.0.1:8025", &ctl->api_address);
	return rc;
}

static int parse_eal_args(struct ctx *c, const struct node *v)
{
	struct sl_dpdk_cfg *d = &c->cfg->dpdk;
	int rc = expect_seq(c, v);

	if (rc)
		return rc;
	if (v->n == 0)
		return bad(c, v, "needs at least one EAL argument (e.g. [\"-l\", \"1\", \"-a\", \"0000:03:00.0\"])");
	d->eal_args = calloc(v->n, sizeof(char *));
	if (!d->eal_args)
		return nomem(c);
	d->n_eal_args = v->n;
	for (size_t i = 0; i < v->n; i++) {
		size_t old = path_push(c, "[%zu]", i);

		if ((rc = get_text(c, v->kids[i], &d->eal_args[i])))
			return rc;
		path_pop(c, old);
	}
	return 0;
}

/* The DPDK port: a port id or a device name (vdev or PCI address). */
static int get_dpdk_port(struct ctx *c, const struct node *v, char **dst)
{
	const char *s = NULL;
	int rc = scalar(c, v, "a port id or device name", &s);

	if (rc)
		return rc;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(":._-", *p))
			return bad(c, v,
				   "'%s' is not a port id or device name (e.g. 0, net_tap0 or 0000:03:00.0)",
				   show(c, s));
	if (*s == '\0')
		return bad(c, v, "must not be empty");
	return dup_str(c, s, dst);
}

static int get_ipv4(struct ctx *c, const struct node *v, uint32_t *out)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int rc = get_ip(c, v, &ss, &len);

	if (rc)
		return rc;
	if (ss.ss_family != AF_INET)
		return bad(c, v, "the DPDK transport is IPv4 only (e.g. 198.51.100.1)");
	*out = ((const struct sockaddr_in *)&ss)->sin_addr.s_addr;
	return 0;
}

static int parse_dpdk(struct ctx *c, const struct node *m)
{
	struct sl_dpdk_cfg *d = &c->cfg->dpdk;
	int rc = check_keys(c, m, KEYS(dpdk_keys));

	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(dpdk_keys), m->kids[i]->val)) {
		case 0: rc = parse_eal_args(c, v); break;
		case 1: rc = get_dpdk_port(c, v, &d->port); break;
		case 2: rc = get_uint(c, v, 64, 32768, &d->rx_descriptors); break;
		case 3: rc = get_uint(c, v, 64, 32768, &d->tx_descriptors); break;
		case 4: rc = get_uint(c, v, 1023, 4194303, &d->mbufs); break;
		case 5: rc = get_ipv4(c, v, &d->gateway); break;
		case 6: rc = get_uint(c, v, 1, 32, &d->prefix_len); break;
		case 7: rc = get_uint(c, v, 576, 9000, &d->mtu); break;
		case 8: rc = get_uint(c, v, 1, 4194304, &d->max_conns); break;
		case 9: rc = get_text(c, v, &d->capture); break;
		case 10: rc = get_duration(c, v, 0, 1 * SEC, &d->idle_sleep_ms); break;
		case 11: rc = get_uint(c, v, 0, 64, &d->workers); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	return rc;
}

static bool same_subnet(uint32_t a, uint32_t b, unsigned prefix)
{
	uint32_t mask = prefix ? htonl(~0u << (32 - prefix)) : 0;

	return ((a ^ b) & mask) == 0;
}

/* Pools on the DPDK port: the section exists, their IPs are IPv4 and no
 * kernel pool shares one, and the gateway is on-link. */
static int check_dpdk(struct ctx *c)
{
	struct sl_config *cfg = c->cfg;
	bool any = false, gw_ok = false;

	for (size_t i = 0; i < cfg->n_pools; i++) {
		const struct sl_pool_cfg *p = &cfg->pools[i];
		const struct node *pm = c->pools->kids[i];

		if (p->transport != SL_TRANSPORT_DPDK)
			continue;
		any = true;
		if (!cfg->dpdk.n_eal_args) {
			path_set(c, "pools[%zu].%s", i, "transport");
			return bad(c, map_get(pm, "transport"),
				   "pool '%s' uses the dpdk transport but there is no dpdk.eal_args (see docs/dpdk.md)",
				   p->name);
		}
		for (size_t j = 0; j < p->n_ips; j++) {
			const struct sockaddr_in *sin = (const void *)&p->ips[j].addr;
			const struct node *a = map_get(map_get(pm, "ips")->kids[j], "address");

			if (sin->sin_family != AF_INET) {
				path_set(c, "pools[%zu].%s", i, "ips");
				return bad(c, a, "pool '%s' uses the dpdk transport, which is IPv4 only",
					   p->name);
			}
			if (cfg->dpdk.gateway &&
			    same_subnet(sin->sin_addr.s_addr, cfg->dpdk.gateway, cfg->dpdk.prefix_len))
				gw_ok = true;
			for (size_t k = 0; k < cfg->n_pools; k++) {
				const struct sl_pool_cfg *q = &cfg->pools[k];

				if (q->transport == SL_TRANSPORT_DPDK)
					continue;
				for (size_t l = 0; l < q->n_ips; l++)
					if (sockaddr_equal(&q->ips[l].addr, &p->ips[j].addr)) {
						path_set(c, "pools[%zu].%s", i, "ips");
						return bad(c, a,
							   "%s belongs to the DPDK port (pool '%s') and cannot also be a kernel source IP (pool '%s')",
							   show(c, a->val), p->name, q->name);
					}
			}
		}
	}
	if (any && cfg->dpdk.gateway && !gw_ok) {
		const struct node *dm = map_get(c->root, "dpdk");

		path_pop(c, 0);
		path_key(c, "dpdk");
		path_key(c, "gateway");
		return bad(c, map_get(dm, "gateway"),
			   "the gateway is not on-link: no dpdk pool IP shares its /%u (dpdk.prefix_len)",
			   cfg->dpdk.prefix_len);
	}
	return 0;
}

static int parse_bounces(struct ctx *c, const struct node *m)
{
	struct sl_bounces_cfg *b = &c->cfg->bounces;
	int rc = check_keys(c, m, KEYS(bounces_keys));

	b->enabled = true;
	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(bounces_keys), m->kids[i]->val)) {
		case 0: rc = get_domain(c, v, false, &b->return_path_domain); break;
		case 1: rc = get_text(c, v, &b->secret_file); break;
		case 2:
			rc = get_text(c, v, &b->fbl_address);
			if (!rc && !strchr(b->fbl_address, '@'))
				rc = bad(c, v, "not an address (local@domain)");
			break;
		case 3:
			rc = expect_seq(c, v);
			if (!rc && v->n && !(b->domains = calloc(v->n, sizeof(char *))))
				rc = nomem(c);
			for (size_t j = 0; !rc && j < v->n; j++) {
				size_t o2 = path_push(c, "[%zu]", j);

				rc = get_domain(c, v->kids[j], false, &b->domains[j]);
				if (!rc) {
					b->n_domains++;
					path_pop(c, o2);
				}
			}
			break;
		case 4: rc = get_text(c, v, &b->response_rules); break;
		case 5: rc = get_text(c, v, &b->policy); break;
		case 6: rc = get_text(c, v, &b->spamtraps); break;
		case 7: rc = get_text(c, v, &b->bounce_rules); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	if (!rc && !b->return_path_domain)
		rc = missing(c, m, "return_path_domain");
	if (!rc && !b->bounce_rules)
		rc = dup_str(c, "/etc/sluice/bounce-rules.conf", &b->bounce_rules);
	return rc;
}

/* A list of DNS zones (link_check.uribl_zones, dnsbl.zones). */
static int get_zones(struct ctx *c, const struct node *v, char ***out, size_t *n)
{
	int rc = expect_seq(c, v);

	if (!rc && v->n && !(*out = calloc(v->n, sizeof(char *))))
		rc = nomem(c);
	for (size_t j = 0; !rc && j < v->n; j++) {
		size_t o2 = path_push(c, "[%zu]", j);

		rc = get_domain(c, v->kids[j], false, &(*out)[j]);
		if (!rc) {
			(*n)++;
			path_pop(c, o2);
		}
	}
	return rc;
}

static int parse_link_check(struct ctx *c, const struct node *m)
{
	struct sl_link_check_cfg *l = &c->cfg->link_check;
	int rc = check_keys(c, m, KEYS(link_check_keys));
	const char *s;

	l->enabled = true;
	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(link_check_keys), m->kids[i]->val)) {
		case 0:
			if ((rc = scalar(c, v, "reject, hold or log", &s)))
				break;
			if (!strcmp(s, "reject"))
				l->action = SL_LINK_REJECT;
			else if (!strcmp(s, "hold"))
				l->action = SL_LINK_HOLD;
			else if (!strcmp(s, "log"))
				l->action = SL_LINK_LOG;
			else
				rc = bad(c, v, "'%s' is not an action (reject, hold or log)", show(c, s));
			break;
		case 1: rc = get_text(c, v, &l->blocklist); break;
		case 2: rc = get_zones(c, v, &l->uribl_zones, &l->n_uribl_zones); break;
		case 3: rc = get_duration(c, v, 1, 60 * SEC, &l->dns_timeout_ms); break;
		case 4: rc = get_size(c, v, 1024, 64 * MIB, &l->max_scan); break;
		case 5: rc = get_uint(c, v, 1, 1000, &l->max_hosts); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	return rc;
}

static int parse_dnsbl(struct ctx *c, const struct node *m)
{
	struct sl_dnsbl_cfg *d = &c->cfg->dnsbl;
	int rc = check_keys(c, m, KEYS(dnsbl_keys));

	d->enabled = true;
	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);

		switch (key_index(KEYS(dnsbl_keys), m->kids[i]->val)) {
		case 0: rc = get_zones(c, v, &d->zones, &d->n_zones); break;
		case 1: rc = get_duration(c, v, 100, 7 * DAY, &d->interval_ms); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	if (!rc && !d->n_zones)
		rc = missing(c, m, "zones");
	return rc;
}

/* List names for a "did you mean" or "known: ..." hint. */
static void names_hint(char *buf, size_t len, const char *word, const char *const *names, size_t n,
		       size_t stride, const char *what)
{
	const char *near = closest(word, names, n, stride);
	size_t off;

	if (near) {
		snprintf(buf, len, "did you mean '%s'?", near);
		return;
	}
	if (n == 0) {
		snprintf(buf, len, "no %s are defined", what);
		return;
	}
	off = (size_t)snprintf(buf, len, "defined %s: ", what);
	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "",
					*(const char *const *)((const char *)names + i * stride));
}

/* References between sections, checked once everything is parsed. */
static int check_refs(struct ctx *c)
{
	struct sl_config *cfg = c->cfg;
	char hint[300];
	int rc;

	for (size_t i = 0; i < cfg->n_tenants; i++) {
		struct sl_tenant_cfg *t = &cfg->tenants[i];
		const struct node *v = map_get(c->tenants->kids[i], "pool");

		if (!t->pool) {
			if ((rc = dup_str(c, cfg->pools[0].name, &t->pool)))
				return rc;
		} else if (!config_pool_by_name(cfg, t->pool)) {
			path_set(c, "tenants[%zu].%s", i, "pool");
			names_hint(hint, sizeof(hint), t->pool, (const char *const *)&cfg->pools[0].name,
				   cfg->n_pools, sizeof(cfg->pools[0]), "pools");
			return bad(c, v, "no pool named '%s' (%s)", t->pool, hint);
		}
		for (int st = 0; st < 2; st++) {
			const char *key = st ? "marketing_pool" : "transactional_pool";

			if (!t->stream_pool[st]) {
				if ((rc = dup_str(c, t->pool, &t->stream_pool[st])))
					return rc;
			} else if (!config_pool_by_name(cfg, t->stream_pool[st])) {
				path_set(c, "tenants[%zu].%s", i, key);
				names_hint(hint, sizeof(hint), t->stream_pool[st],
					   (const char *const *)&cfg->pools[0].name, cfg->n_pools,
					   sizeof(cfg->pools[0]), "pools");
				return bad(c, map_get(c->tenants->kids[i], key), "no pool named '%s' (%s)",
					   t->stream_pool[st], hint);
			}
		}
	}
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		struct sl_listener_cfg *l = &cfg->listeners[i];
		const struct node *v = map_get(c->listeners->kids[i], "relay_tenant");

		if (l->relay_tenant && !config_tenant_by_name(cfg, l->relay_tenant)) {
			path_set(c, "listeners[%zu].%s", i, "relay_tenant");
			names_hint(hint, sizeof(hint), l->relay_tenant,
				   cfg->n_tenants ? (const char *const *)&cfg->tenants[0].name : NULL,
				   cfg->n_tenants, sizeof(cfg->tenants[0]), "tenants");
			return bad(c, v, "no tenant named '%s' (%s)", l->relay_tenant, hint);
		}
	}
	return 0;
}

static int parse_sender_auth(struct ctx *c, const struct node *m)
{
	struct sl_sender_auth_cfg *a = &c->cfg->sender_auth;
	int rc = check_keys(c, m, KEYS(sender_auth_keys));

	a->enabled = true;
	for (size_t i = 0; !rc && i + 1 < m->n; i += 2) {
		const struct node *v = m->kids[i + 1];
		size_t old = path_key(c, m->kids[i]->val);
		const char *s = NULL;

		switch (key_index(KEYS(sender_auth_keys), m->kids[i]->val)) {
		case 0:
			rc = scalar(c, v, "api_tenants, all or none", &s);
			if (!rc && !strcmp(s, "api_tenants"))
				a->enforce = SL_ENFORCE_API_TENANTS;
			else if (!rc && !strcmp(s, "all"))
				a->enforce = SL_ENFORCE_ALL;
			else if (!rc && !strcmp(s, "none"))
				a->enforce = SL_ENFORCE_NONE;
			else if (!rc)
				rc = bad(c, v, "'%s' is not api_tenants, all or none", show(c, s));
			break;
		case 1: rc = get_domain(c, v, false, &a->spf_include); break;
		case 2: rc = get_text(c, v, &a->dmarc_rua); break;
		case 3: rc = get_duration(c, v, 60000, 7 * 86400000ull, &a->check_interval_ms); break;
		case 4: rc = get_domain(c, v, false, &a->verification_domain); break;
		case 5: rc = get_duration(c, v, 60000, 30 * 86400000ull, &a->verification_ttl_ms); break;
		case 6: rc = get_text(c, v, &a->webhook_url); break;
		case 7: rc = get_text(c, v, &a->webhook_secret); break;
		case 8: rc = get_text(c, v, &a->unsubscribe_url); break;
		case 9: rc = get_text(c, v, &a->unsubscribe_secret); break;
		}
		if (!rc)
			path_pop(c, old);
	}
	if (!rc && a->unsubscribe_url && !a->unsubscribe_secret)
		return bad(c, m, "unsubscribe_url needs unsubscribe_secret (the links' HMAC key)");
	return rc;
}

static int parse_root(struct ctx *c, const struct node *root)
{
	int rc = check_keys(c, root, KEYS(top_keys));

	if (rc)
		return rc;
	for (size_t i = 0; i + 1 < root->n; i += 2) {
		const struct node *v = root->kids[i + 1];
		size_t old = path_key(c, root->kids[i]->val);

		switch (key_index(KEYS(top_keys), root->kids[i]->val)) {
		case 0: rc = get_hostname(c, v, &c->cfg->hostname); break;
		case 1: rc = parse_listeners(c, v); break;
		case 2: rc = parse_tenants(c, v); break;
		case 3: rc = parse_pools(c, v); break;
		case 4: rc = parse_routes(c, v); break;
		case 5: rc = parse_limits(c, v); break;
		case 6: rc = parse_delivery(c, v); break;
		case 7: rc = parse_spool(c, v); break;
		case 8: rc = parse_dns(c, v); break;
		case 9: rc = parse_events(c, v); break;
		case 10: rc = parse_metrics(c, v); break;
		case 11: rc = parse_dkim(c, v); break;
		case 12: rc = parse_shaping(c, v); break;
		case 13: rc = parse_warmup(c, v); break;
		case 14: rc = parse_control(c, v); break;
		case 15: rc = parse_dpdk(c, v); break;
		case 16: rc = parse_bounces(c, v); break;
		case 17: rc = parse_sender_auth(c, v); break;
		case 18: rc = parse_link_check(c, v); break;
		case 19: rc = parse_dnsbl(c, v); break;
		}
		if (rc)
			return rc;
		path_pop(c, old);
	}
	if (!c->pools)
		return fail_at(c, root->line, root->col,
			       "missing required key 'pools' (at least one pool is required)");
	if (c->cfg->delivery.dane && !c->cfg->dns.trust_anchor_file) {
		path_pop(c, 0);
		path_push(c, "%s", "delivery.dane");
		return bad(c, map_get(map_get(root, "delivery"), "dane"),
			   "on needs dns.trust_anchor_file (a validating resolver's trust "
			   "anchor, e.g. /usr/share/dns/root.key)");
	}
	if (c->cfg->sender_auth.enabled && !c->cfg->control.enabled)
		return bad(c, map_get(root, "sender_auth"),
			   "sender_auth needs the control section (domains live in its store)");
	if (c->cfg->bounces.enabled && !c->cfg->control.enabled)
		return bad(c, map_get(root, "bounces"),
			   "bounces needs the control section (suppression lists live in its store)");
	if (c->cfg->link_check.enabled && c->cfg->link_check.action == SL_LINK_HOLD &&
	    !c->cfg->control.enabled)
		return bad(c, map_get(root, "link_check"),
			   "link_check action hold needs the control section (tenant holds live in its store)");
	for (size_t i = 0; i < c->cfg->n_listeners; i++)
		if (c->cfg->listeners[i].inbound && !c->cfg->bounces.enabled) {
			path_set(c, "listeners[%zu].%s", i, "inbound");
			return bad(c, map_get(c->listeners->kids[i], "inbound"),
				   "an inbound listener needs the bounces section (what it accepts)");
		}
	rc = check_refs(c);
	if (rc)
		return rc;
	return check_dpdk(c);
}

/* ---- YAML events to nodes ------------------------------------------------------------------ */

/* 1-based line and column of a byte offset (for reader errors, which carry no mark). */
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

static int syntax_error(struct ctx *c, const yaml_parser_t *p, const char *yaml, size_t len)
{
	unsigned line, col;

	if (p->error == YAML_MEMORY_ERROR)
		return nomem(c);
	if (p->error == YAML_READER_ERROR) {
		offset_pos(yaml, len, p->problem_offset, &line, &col);
		if (p->problem_value != -1)
			return fail_at(c, line, col, "invalid input: %s (#%X)",
				       p->problem ? p->problem : "unreadable", p->problem_value);
		return fail_at(c, line, col, "invalid input: %s", p->problem ? p->problem : "unreadable");
	}
	line = (unsigned)p->problem_mark.line + 1;
	col = (unsigned)p->problem_mark.column + 1;
	if (p->context)
		return fail_at(c, line, col, "YAML syntax error: %s (%s at line %u)",
			       p->problem ? p->problem : "unknown", p->context,
			       (unsigned)p->context_mark.line + 1);
	return fail_at(c, line, col, "YAML syntax error: %s", p->problem ? p->problem : "unknown");
}

static int build_tree(struct ctx *c, const char *yaml, size_t len, struct node **root)
{
	struct node *stack[CONFIG_MAX_DEPTH];
	size_t depth = 0;
	int docs = 0, rc = 0;
	bool done = false;
	yaml_parser_t p;

	*root = NULL;
	if (!yaml_parser_initialize(&p))
		return nomem(c);
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	while (!done && !rc) {
		unsigned line, col;
		yaml_event_t ev;
		struct node *n;

		if (!yaml_parser_parse(&p, &ev)) {
			rc = syntax_error(c, &p, yaml, len);
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
				rc = fail_at(c, line, col,
					     "a second YAML document; the configuration is one document");
			break;
		case YAML_ALIAS_EVENT:
			rc = fail_at(c, line, col,
				     "aliases (*%s) are not supported; write the value out",
				     (const char *)ev.data.alias.anchor);
			break;
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (depth == CONFIG_MAX_DEPTH) {
				rc = fail_at(c, line, col, "nested more than %d levels deep",
					     CONFIG_MAX_DEPTH);
				break;
			}
			n = calloc(1, sizeof(*n));
			if (!n) {
				rc = nomem(c);
				break;
			}
			n->line = line;
			n->col = col;
			if (ev.type == YAML_SCALAR_EVENT) {
				n->kind = NODE_SCALAR;
				n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
				n->len = ev.data.scalar.length;
				n->val = malloc(n->len + 1);
				if (n->val) {
					memcpy(n->val, ev.data.scalar.value, n->len);
					n->val[n->len] = '\0';
				}
			} else {
				n->kind = ev.type == YAML_MAPPING_START_EVENT ? NODE_MAP : NODE_SEQ;
			}
			if (depth == 0 && !*root)
				*root = n;
			else if (depth == 0 || node_add(stack[depth - 1], n)) {
				node_free(n);
				rc = nomem(c);
				break;
			}
			if (n->kind == NODE_SCALAR && !n->val)
				rc = nomem(c);
			else if (n->kind != NODE_SCALAR)
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
		node_free(*root);
		*root = NULL;
	}
	return rc;
}

/* ---- public API ------------------------------------------------------------------------------ */

int config_load_string(const char *name, const char *yaml, size_t len, struct sl_config **out,
		       char *err, size_t errlen)
{
	struct ctx c = { .name = name ? name : "<string>", .err = err, .errlen = errlen };
	static const struct node empty = { .kind = NODE_SCALAR, .line = 1, .col = 1, .plain = true,
					   .val = (char *)"" };
	struct sl_config *cfg;
	struct node *root = NULL;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return nomem(&c);
	config_defaults(cfg);
	c.cfg = cfg;
	cfg->path = strdup(c.name);
	if (!cfg->path || !cfg->hostname || !cfg->delivery.retry_ms || !cfg->spool.path ||
	    !cfg->events_path) {
		rc = nomem(&c);
		goto fail;
	}
	rc = build_tree(&c, yaml ? yaml : "", yaml ? len : 0, &root);
	if (rc)
		goto fail;
	c.root = root ? root : &empty;
	rc = parse_root(&c, c.root);
	if (rc)
		goto fail;
	node_free(root);
	*out = cfg;
	return 0;
fail:
	node_free(root);
	config_free(cfg);
	return rc;
}

int config_load(const char *path, struct sl_config **out, char *err, size_t errlen)
{
	size_t len = 0;
	char *buf = NULL;
	int rc;

	*out = NULL;
	rc = sl_file_read(path, CONFIG_MAX_FILE, &buf, &len);
	if (rc == SL_ETOOBIG) {
		if (err && errlen)
			snprintf(err, errlen, "%s: larger than %u MiB", path, CONFIG_MAX_FILE >> 20);
		return SL_ECONFIG;
	}
	if (rc < 0) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, sl_strerror(rc));
		return rc;
	}
	rc = config_load_string(path, buf, len, out, err, errlen);
	free(buf);
	return rc;
}

void config_free(struct sl_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->hostname);
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		struct sl_listener_cfg *l = &cfg->listeners[i];

		free(l->name);
		free(l->tls_cert);
		free(l->tls_key);
		free(l->relay_networks);
		free(l->relay_tenant);
	}
	free(cfg->listeners);
	for (size_t i = 0; i < cfg->n_tenants; i++) {
		struct sl_tenant_cfg *t = &cfg->tenants[i];

		free(t->name);
		free(t->username);
		free(t->password_hash);
		free(t->pool);
		free(t->stream_pool[0]);
		free(t->stream_pool[1]);
	}
	free(cfg->tenants);
	for (size_t i = 0; i < cfg->n_pools; i++) {
		struct sl_pool_cfg *p = &cfg->pools[i];

		for (size_t j = 0; j < p->n_ips; j++)
			free(p->ips[j].ehlo);
		free(p->ips);
		free(p->name);
	}
	free(cfg->pools);
	for (size_t i = 0; i < cfg->n_routes; i++) {
		free(cfg->routes[i].domain);
		free(cfg->routes[i].host);
	}
	free(cfg->routes);
	for (size_t i = 0; i < cfg->n_dkim; i++) {
		free(cfg->dkim[i].domain);
		free(cfg->dkim[i].selector);
		free(cfg->dkim[i].key);
		free(cfg->dkim[i].algorithm);
	}
	free(cfg->dkim);
	free(cfg->shaping_rules);
	free(cfg->shaping_providers);
	free(cfg->warmup_schedules);
	free(cfg->delivery.retry_ms);
	for (size_t i = 0; i < cfg->delivery.n_require_tls_domains; i++)
		free(cfg->delivery.require_tls_domains[i]);
	free(cfg->delivery.require_tls_domains);
	for (size_t i = 0; i < cfg->delivery.n_verify_tls_domains; i++)
		free(cfg->delivery.verify_tls_domains[i]);
	free(cfg->delivery.verify_tls_domains);
	for (size_t i = 0; i < cfg->delivery.n_no_tls_domains; i++)
		free(cfg->delivery.no_tls_domains[i]);
	free(cfg->delivery.no_tls_domains);
	free(cfg->delivery.tls_ca_file);
	free(cfg->spool.path);
	free(cfg->dns.servers);
	free(cfg->dns.server_lens);
	free(cfg->dns.trust_anchor_file);
	free(cfg->events_path);
	free(cfg->link_check.blocklist);
	for (size_t i = 0; i < cfg->link_check.n_uribl_zones; i++)
		free(cfg->link_check.uribl_zones[i]);
	free(cfg->link_check.uribl_zones);
	for (size_t i = 0; i < cfg->dnsbl.n_zones; i++)
		free(cfg->dnsbl.zones[i]);
	free(cfg->dnsbl.zones);
	free(cfg->control.store);
	free(cfg->control.api_address);
	free(cfg->control.api_tls_cert);
	free(cfg->control.api_tls_key);
	for (size_t i = 0; i < cfg->dpdk.n_eal_args; i++)
		free(cfg->dpdk.eal_args[i]);
	free(cfg->dpdk.eal_args);
	free(cfg->dpdk.port);
	free(cfg->dpdk.capture);
	free(cfg->sender_auth.spf_include);
	free(cfg->sender_auth.dmarc_rua);
	free(cfg->sender_auth.verification_domain);
	free(cfg->sender_auth.webhook_url);
	free(cfg->sender_auth.webhook_secret);
	free(cfg->sender_auth.unsubscribe_url);
	free(cfg->sender_auth.unsubscribe_secret);
	free(cfg->bounces.return_path_domain);
	free(cfg->bounces.secret_file);
	free(cfg->bounces.fbl_address);
	for (size_t i = 0; i < cfg->bounces.n_domains; i++)
		free(cfg->bounces.domains[i]);
	free(cfg->bounces.domains);
	free(cfg->bounces.response_rules);
	free(cfg->bounces.policy);
	free(cfg->bounces.spamtraps);
	free(cfg->bounces.bounce_rules);
	free(cfg);
}

/* ---- lookups ---------------------------------------------------------------------------------- */

const struct sl_tenant_cfg *config_tenant_by_user(const struct sl_config *cfg, const char *user)
{
	if (!cfg || !user)
		return NULL;
	for (size_t i = 0; i < cfg->n_tenants; i++)
		if (cfg->tenants[i].username && strcmp(cfg->tenants[i].username, user) == 0)
			return &cfg->tenants[i];
	return NULL;
}

const struct sl_tenant_cfg *config_tenant_by_name(const struct sl_config *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_tenants; i++)
		if (cfg->tenants[i].name && strcmp(cfg->tenants[i].name, name) == 0)
			return &cfg->tenants[i];
	return NULL;
}

const struct sl_pool_cfg *config_pool_by_name(const struct sl_config *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_pools; i++)
		if (cfg->pools[i].name && strcmp(cfg->pools[i].name, name) == 0)
			return &cfg->pools[i];
	return NULL;
}

const struct sl_route_cfg *config_route_for(const struct sl_config *cfg, const char *domain)
{
	const struct sl_route_cfg *star = NULL;
	size_t len;

	if (!cfg || !domain)
		return NULL;
	len = strlen(domain);
	if (len && domain[len - 1] == '.')
		len--; /* "example.com." is "example.com" */
	for (size_t i = 0; i < cfg->n_routes; i++) {
		const struct sl_route_cfg *r = &cfg->routes[i];

		if (strcmp(r->domain, "*") == 0)
			star = r;
		else if (strlen(r->domain) == len && strncasecmp(r->domain, domain, len) == 0)
			return r;
	}
	return star;
}

bool cidr_contains(const struct sl_cidr *net, const struct sockaddr *addr)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	uint8_t a[16];
	int bits, full;

	if (!net || !addr)
		return false;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

		if (net->family == AF_INET) {
			memcpy(a, &sin->sin_addr, 4);
		} else {
			/* Matched against an IPv6 network as ::ffff:a.b.c.d. */
			memcpy(a, mapped, 12);
			memcpy(a + 12, &sin->sin_addr, 4);
		}
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
		const uint8_t *b = sin6->sin6_addr.s6_addr;

		if (net->family == AF_INET) {
			if (memcmp(b, mapped, 12) != 0)
				return false;
			memcpy(a, b + 12, 4);
		} else {
			memcpy(a, b, 16);
		}
	} else {
		return false;
	}
	if (net->family != AF_INET && net->family != AF_INET6)
		return false;
	bits = net->prefix;
	if (bits < 0 || bits > (net->family == AF_INET ? 32 : 128))
		return false;
	full = bits / 8;
	if (memcmp(a, net->addr, (size_t)full) != 0)
		return false;
	if (bits % 8) {
		uint8_t mask = (uint8_t)(0xff << (8 - bits % 8));

		if ((a[full] & mask) != (net->addr[full] & mask))
			return false;
	}
	return true;
}
