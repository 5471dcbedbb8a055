/* metrics.c — Prometheus counters, gauges and /metrics responder; see metrics.h. */
#include "metrics.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define METRICS_CACHE_LINE 64
#define METRICS_TABLE_MIN 64

enum metric_type { METRIC_COUNTER, METRIC_GAUGE };

struct family {
	uint64_t hash;
	enum metric_type type;
	char *help; /* NULL: no HELP line */
	size_t name_len;
	char name[];
};

/* Cache-line aligned, value first: see "own cache line" in metrics.h. */
struct series {
	union {
		uint64_t u;
		int64_t i;
	} value;
	uint64_t hash;
	struct family *family;
	size_t labels_len;
	char labels[];
};

/* Open addressing, linear probing, power-of-two size, at most half full. */
struct slot {
	uint64_t hash;
	void *p;
};

struct table {
	struct slot *slots;
	size_t mask;
	size_t used;
};

struct metrics {
	struct table families; /* of struct family, by name */
	struct table series;   /* of struct series, by name and labels */
};

/* What a lookup compares against. */
struct key {
	const char *name;
	size_t name_len;
	const char *labels;
	size_t labels_len;
};

static uint64_t hash_bytes(uint64_t h, const char *p, size_t n)
{
	/* FNV-1a, then a final mix so the low bits (the slot index) spread. */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t hash_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static uint64_t hash_family(const struct key *k)
{
	return hash_mix(hash_bytes(0xcbf29ce484222325ULL, k->name, k->name_len));
}

static uint64_t hash_series(const struct key *k)
{
	uint64_t h = hash_bytes(0xcbf29ce484222325ULL, k->name, k->name_len);

	h = hash_bytes(h, "\xff", 1); /* never inside a name */
	return hash_mix(hash_bytes(h, k->labels, k->labels_len));
}

static bool family_eq(const void *p, const struct key *k)
{
	const struct family *f = p;

	return f->name_len == k->name_len && memcmp(f->name, k->name, k->name_len) == 0;
}

static bool series_eq(const void *p, const struct key *k)
{
	const struct series *s = p;

	return s->labels_len == k->labels_len && family_eq(s->family, k) &&
	       memcmp(s->labels, k->labels, k->labels_len) == 0;
}

static int table_init(struct table *t)
{
	t->slots = calloc(METRICS_TABLE_MIN, sizeof *t->slots);
	if (!t->slots)
		return -ENOMEM;
	t->mask = METRICS_TABLE_MIN - 1;
	t->used = 0;
	return 0;
}

/* The slot holding the match for k, or the empty slot where it would go. */
static struct slot *table_find(const struct table *t, uint64_t hash,
			       bool (*eq)(const void *, const struct key *), const struct key *k)
{
	size_t i = hash & t->mask;

	for (;; i = (i + 1) & t->mask) {
		struct slot *s = &t->slots[i];

		if (!s->p || (s->hash == hash && eq(s->p, k)))
			return s;
	}
}

/* Store p in the empty slot s, growing the table if it got half full. */
static int table_insert(struct table *t, struct slot *s, uint64_t hash, void *p)
{
	struct slot *slots, *old = t->slots;
	size_t cap = (t->mask + 1) * 2, i, j;

	s->hash = hash;
	s->p = p;
	if (++t->used * 2 <= t->mask + 1)
		return 0;
	slots = calloc(cap, sizeof *slots);
	if (!slots) /* still correct, only fuller: grow on the next insert */
		return 0;
	for (i = 0; i <= t->mask; i++) {
		if (!old[i].p)
			continue;
		for (j = old[i].hash & (cap - 1); slots[j].p; j = (j + 1) & (cap - 1))
			;
		slots[j] = old[i];
	}
	free(old);
	t->slots = slots;
	t->mask = cap - 1;
	return 0;
}

static bool valid_name(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		      c == ':' || (i > 0 && c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

/* name="value"{,name="value"}, values escaped as by metrics_label_escape(). */
static bool valid_labels(const char *s, size_t n)
{
	size_t i = 0, start;

	if (n == 0)
		return true;
	for (;;) {
		start = i;
		while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
				 s[i] == '_' || (i > start && s[i] >= '0' && s[i] <= '9')))
			i++;
		if (i == start || i + 1 >= n || s[i] != '=' || s[i + 1] != '"')
			return false;
		for (i += 2; i < n && s[i] != '"'; i++) {
			if (s[i] == '\n')
				return false;
			if (s[i] == '\\') {
				if (++i >= n || (s[i] != '\\' && s[i] != '"' && s[i] != 'n'))
					return false;
			}
		}
		if (i++ >= n)
			return false; /* unterminated value */
		if (i == n)
			return true;
		if (s[i++] != ',' || i == n)
			return false;
	}
}

static struct family *family_get(struct metrics *m, const struct key *k, const char *help,
				 enum metric_type type)
{
	uint64_t hash = hash_family(k);
	struct slot *s = table_find(&m->families, hash, family_eq, k);
	struct family *f = s->p;

	if (f) {
		if (f->type != type) {
			errno = EINVAL;
			return NULL;
		}
		return f;
	}
	f = calloc(1, sizeof *f + k->name_len + 1);
	if (!f)
		goto fail;
	if (help) {
		f->help = strdup(help);
		if (!f->help)
			goto fail;
	}
	f->hash = hash;
	f->type = type;
	f->name_len = k->name_len;
	memcpy(f->name, k->name, k->name_len);
	table_insert(&m->families, s, hash, f);
	return f;
fail:
	free(f);
	errno = ENOMEM;
	return NULL;
}

static void *series_get(struct metrics *m, const char *name, const char *help,
			const char *labels, enum metric_type type)
{
	struct key k = { name, strlen(name), labels ? labels : "", 0 };
	struct series *sr;
	struct family *f;
	struct slot *s;
	uint64_t hash;
	size_t size;

	k.labels_len = strlen(k.labels);
	hash = hash_series(&k);
	s = table_find(&m->series, hash, series_eq, &k);
	if (s->p) {
		sr = s->p;
		if (sr->family->type != type) {
			errno = EINVAL;
			return NULL;
		}
		return &sr->value;
	}
	if (!valid_name(k.name, k.name_len) || !valid_labels(k.labels, k.labels_len)) {
		errno = EINVAL;
		return NULL;
	}
	f = family_get(m, &k, help, type);
	if (!f)
		return NULL;
	size = sizeof *sr + k.labels_len + 1;
	size = (size + METRICS_CACHE_LINE - 1) / METRICS_CACHE_LINE * METRICS_CACHE_LINE;
	sr = aligned_alloc(METRICS_CACHE_LINE, size);
	if (!sr) {
		/* The family stays, empty: rendering skips it. */
		errno = ENOMEM;
		return NULL;
	}
	memset(sr, 0, size);
	sr->hash = hash;
	sr->family = f;
	sr->labels_len = k.labels_len;
	memcpy(sr->labels, k.labels, k.labels_len);
	table_insert(&m->series, s, hash, sr);
	return &sr->value;
}

uint64_t *metrics_counter(struct metrics *m, const char *name, const char *help,
			  const char *labels)
{
	return series_get(m, name, help, labels, METRIC_COUNTER);
}

int64_t *metrics_gauge(struct metrics *m, const char *name, const char *help,
		       const char *labels)
{
	return series_get(m, name, help, labels, METRIC_GAUGE);
}

int metrics_create(struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof *m);

	if (!m)
		return -ENOMEM;
	if (table_init(&m->families) || table_init(&m->series))
		goto fail;
	*out = m;
	return 0;
fail:
	free(m->families.slots);
	free(m);
	return -ENOMEM;
}

void metrics_destroy(struct metrics *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i <= m->series.mask; i++)
		free(m->series.slots[i].p);
	for (i = 0; i <= m->families.mask; i++) {
		struct family *f = m->families.slots[i].p;

		if (f)
			free(f->help);
		free(f);
	}
	free(m->series.slots);
	free(m->families.slots);
	free(m);
}

/* Escape s as a label value, or as a HELP text (help: '"' stays as it is). */
static int append_escaped(struct sl_buf *out, const char *s, bool help)
{
	const char *run = s;
	int rc = 0;

	for (; *s && !rc; s++) {
		const char *esc = *s == '\\' ? "\\\\"
				: *s == '\n' ? "\\n"
				: *s == '"' && !help ? "\\\""
				: NULL;

		if (!esc)
			continue;
		rc = sl_buf_append(out, run, (size_t)(s - run));
		if (!rc)
			rc = sl_buf_append(out, esc, 2);
		run = s + 1;
	}
	if (!rc)
		rc = sl_buf_append(out, run, (size_t)(s - run));
	return rc;
}

int metrics_label_escape(struct sl_buf *out, const char *value)
{
	size_t mark = out->len - out->off;
	int rc = append_escaped(out, value, false);

	if (rc)
		out->len = out->off + mark;
	return rc;
}

static int series_cmp(const void *a, const void *b)
{
	const struct series *x = *(const struct series *const *)a;
	const struct series *y = *(const struct series *const *)b;
	int c;

	if (x->family != y->family) {
		c = strcmp(x->family->name, y->family->name);
		if (c)
			return c;
	}
	return strcmp(x->labels, y->labels);
}

static int render_series(const struct series *s, struct sl_buf *out)
{
	char num[24];
	int n;

	if (s->family->type == METRIC_COUNTER)
		n = snprintf(num, sizeof num, " %llu\n",
			     (unsigned long long)__atomic_load_n(&s->value.u, __ATOMIC_RELAXED));
	else
		n = snprintf(num, sizeof num, " %lld\n",
			     (long long)__atomic_load_n(&s->value.i, __ATOMIC_RELAXED));
	if (sl_buf_reserve(out, s->family->name_len + s->labels_len + 2 + (size_t)n))
		return -ENOMEM;
	sl_buf_append(out, s->family->name, s->family->name_len);
	if (s->labels_len) {
		sl_buf_append(out, "{", 1);
		sl_buf_append(out, s->labels, s->labels_len);
		sl_buf_append(out, "}", 1);
	}
	sl_buf_append(out, num, (size_t)n);
	return 0;
}

static int render_family(const struct family *f, struct sl_buf *out)
{
	int rc = 0;

	if (f->help) {
		rc = sl_buf_appendf(out, "# HELP %s ", f->name);
		if (!rc)
			rc = append_escaped(out, f->help, true);
		if (!rc)
			rc = sl_buf_append(out, "\n", 1);
	}
	if (!rc)
		rc = sl_buf_appendf(out, "# TYPE %s %s\n", f->name,
				    f->type == METRIC_COUNTER ? "counter" : "gauge");
	return rc;
}

int metrics_render(const struct metrics *m, struct sl_buf *out)
{
	size_t mark = out->len - out->off, n = 0, i;
	const struct family *last = NULL;
	struct series **all;
	int rc = 0;

	all = malloc((m->series.used ? m->series.used : 1) * sizeof *all);
	if (!all)
		return -ENOMEM;
	for (i = 0; i <= m->series.mask; i++)
		if (m->series.slots[i].p)
			all[n++] = m->series.slots[i].p;
	qsort(all, n, sizeof *all, series_cmp);
	for (i = 0; i < n && !rc; i++) {
		if (all[i]->family != last) {
			last = all[i]->family;
			rc = render_family(last, out);
		}
		if (!rc)
			rc = render_series(all[i], out);
	}
	free(all);
	if (rc)
		out->len = out->off + mark;
	return rc;
}

/* --- the HTTP responder ------------------------------------------------- */

/* RFC 9110 tchar: the characters of a method or a header field name. */
static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The end of the line starting at i (index of its '\n'), or -1 if none yet. */
static long line_end(const char *p, size_t i, size_t lim)
{
	const char *nl = memchr(p + i, '\n', lim - i);

	return nl ? nl - p : -1;
}

/* Length of the line [i, e) without a final CR. */
static size_t strip_cr(const char *p, size_t i, size_t e)
{
	return e > i && p[e - 1] == '\r' ? e - i - 1 : e - i;
}

/* "METHOD SP target SP HTTP/1.x": 0 on junk, else the status to answer. */
static int request_line(const char *p, size_t n)
{
	size_t i = 0, m, t0, t1;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i == n || p[i] != ' ')
		return 0;
	m = i++;
	t0 = i;
	while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
		i++;
	t1 = i;
	if (t1 == t0 || i == n || p[i] != ' ')
		return 0;
	i++;
	if (n - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0 || p[i + 7] < '0' || p[i + 7] > '9')
		return 0;
	if (m != 3 || memcmp(p, "GET", 3) != 0)
		return 405;
	if (t1 - t0 >= 8 && memcmp(p + t0, "/metrics", 8) == 0 &&
	    (t1 - t0 == 8 || p[t0 + 8] == '?'))
		return 200;
	return 404;
}

/* "name: value" with a token name and no control characters but HTAB. */
static bool header_line(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i == n || p[i] != ':')
		return false;
	for (i++; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/*
 * Parse the head in p[0, len): 0 if incomplete, SL_ETOOBIG if it cannot
 * end within the limit, else the status to answer (400 for junk).
 */
static int parse_request(const char *p, size_t len)
{
	size_t lim = len < METRICS_HTTP_MAX_REQUEST ? len : METRICS_HTTP_MAX_REQUEST;
	size_t i = 0, n;
	int status;
	long e;

	/* RFC 9112 2.2: ignore empty lines before the request line. */
	while (i < lim && (p[i] == '\n' || p[i] == '\r')) {
		if (p[i] == '\r' && i + 1 < lim && p[i + 1] != '\n')
			return 400;
		i++;
	}
	e = line_end(p, i, lim);
	if (e < 0) {
		/* Refuse what cannot become a method now (a TLS hello, say). */
		for (; i < lim && p[i] != ' '; i++)
			if (!is_tchar((unsigned char)p[i]))
				return 400;
		goto incomplete;
	}
	n = strip_cr(p, i, (size_t)e);
	status = request_line(p + i, n);
	if (!status)
		return 400;
	for (i = (size_t)e + 1;; i = (size_t)e + 1) {
		e = line_end(p, i, lim);
		if (e < 0)
			goto incomplete;
		n = strip_cr(p, i, (size_t)e);
		if (n == 0)
			return status;
		if (!header_line(p + i, n))
			return 400;
	}
incomplete:
	return len >= METRICS_HTTP_MAX_REQUEST ? SL_ETOOBIG : 0;
}

static int respond_error(struct sl_buf *out, int status)
{
	const char *reason, *body, *extra = "";

	switch (status) {
	case 404:
		reason = "Not Found";
		body = "not found\n";
		break;
	case 405:
		reason = "Method Not Allowed";
		body = "method not allowed\n";
		extra = "Allow: GET\r\n";
		break;
	default:
		reason = "Bad Request";
		body = "bad request\n";
		break;
	}
	return sl_buf_appendf(out,
			      "HTTP/1.0 %d %s\r\n"
			      "Content-Type: text/plain; charset=utf-8\r\n"
			      "Content-Length: %zu\r\n"
			      "%s"
			      "Connection: close\r\n"
			      "\r\n"
			      "%s",
			      status, reason, strlen(body), extra, body);
}

/* Render the body, then slide it up to put the header (with its length) first. */
static int respond_metrics(const struct metrics *m, struct sl_buf *out)
{
	size_t mark = out->len - out->off, body_len;
	char head[160];
	char *body;
	int n, rc;

	rc = metrics_render(m, out);
	if (rc)
		return rc;
	body_len = out->len - out->off - mark;
	n = snprintf(head, sizeof head,
		     "HTTP/1.0 200 OK\r\n"
		     "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
		     "Content-Length: %zu\r\n"
		     "Connection: close\r\n"
		     "\r\n",
		     body_len);
	rc = sl_buf_reserve(out, (size_t)n);
	if (rc) {
		out->len = out->off + mark;
		return rc;
	}
	body = out->data + out->off + mark; /* after the reserve: it may compact */
	memmove(body + n, body, body_len);
	memcpy(body, head, (size_t)n);
	out->len += (size_t)n;
	return 0;
}

int metrics_http_respond(const struct metrics *m, const char *request, size_t len,
			 struct sl_buf *out)
{
	int status = parse_request(request, len), rc;

	if (status <= 0)
		return status;
	rc = status == 200 ? respond_metrics(m, out) : respond_error(out, status);
	return rc ? rc : 1;
}
