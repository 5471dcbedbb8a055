/*
 * suppression.c — the in-memory suppression set (see suppression.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "suppression.h"

#define NIL UINT32_MAX
#define DEFAULT_MAX (10u * 1000 * 1000)
#define CSV_LINE_MAX 1024

struct sentry {
	uint32_t next, hash;
	bool used;
	struct suppression_entry e;
};

struct suppression {
	struct sentry *v;
	uint32_t *bucket;
	size_t alloc, used, cap, nbucket;
	uint32_t free_head;
};

static const char *const reason_names[] = { "hard_bounce", "complaint", "unsubscribe", "manual" };

const char *suppression_reason_name(enum suppression_reason r)
{
	return (unsigned)r < 4 ? reason_names[r] : "?";
}

int suppression_reason_parse(const char *name, enum suppression_reason *out)
{
	for (int i = 0; i < 4; i++)
		if (name && !strcmp(name, reason_names[i])) {
			*out = (enum suppression_reason)i;
			return 0;
		}
	return -EINVAL;
}

int suppression_normalize(const char *addr, char *out, size_t outlen)
{
	const char *b, *e, *at = NULL;
	size_t n;

	if (!addr || !out)
		return -EINVAL;
	b = addr;
	while (*b == ' ' || *b == '\t')
		b++;
	e = b + strlen(b);
	while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		e--;
	if (e - b >= 2 && *b == '<' && e[-1] == '>') {
		b++;
		e--;
	}
	n = (size_t)(e - b);
	if (n == 0 || n > SUPPRESSION_ADDR_MAX || n + 1 > outlen)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b[i];
		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
			return -EINVAL;
		out[i] = (char)tolower(c);
		if (c == '@')
			at = b + i;
	}
	out[n] = 0;
	if (!at || at == b || at == e - 1)
		return -EINVAL;
	return (int)n;
}

static bool tenant_ok(const char *t)
{
	size_t n = strlen(t);

	if (n > SUPPRESSION_TENANT_MAX)
		return false;
	for (; *t; t++)
		if (!isalnum((unsigned char)*t) && *t != '.' && *t != '_' && *t != '-')
			return false;
	return true;
}

int suppression_key(const char *tenant, const char *addr, char *out, size_t outlen)
{
	char a[SUPPRESSION_ADDR_MAX + 1];
	size_t tl;
	int n;

	if (!tenant)
		tenant = "";
	if (!tenant_ok(tenant) || !out)
		return -EINVAL;
	n = suppression_normalize(addr, a, sizeof a);
	if (n < 0)
		return n;
	tl = strlen(tenant);
	if (tl + 1 + (size_t)n + 1 > outlen)
		return SL_ETOOBIG;
	memcpy(out, tenant, tl + 1);
	memcpy(out + tl + 1, a, (size_t)n + 1);
	return (int)(tl + 1 + (size_t)n);
}

struct suppression *suppression_create(size_t max_entries)
{
	struct suppression *s = calloc(1, sizeof *s);

	if (!s)
		return NULL;
	s->cap = max_entries ? max_entries : DEFAULT_MAX;
	s->nbucket = 1024;
	s->bucket = malloc(s->nbucket * sizeof *s->bucket);
	if (!s->bucket) {
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < s->nbucket; i++)
		s->bucket[i] = NIL;
	s->free_head = NIL;
	return s;
}

void suppression_free(struct suppression *s)
{
	if (!s)
		return;
	free(s->v);
	free(s->bucket);
	free(s);
}

size_t suppression_count(const struct suppression *s)
{
	return s ? s->used : 0;
}

static uint32_t hash(const char *tenant, const char *addr)
{
	uint32_t h = 2166136261u;

	for (const char *p = tenant; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (const char *p = addr; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h;
}

static uint32_t find(const struct suppression *s, const char *tenant, const char *addr)
{
	uint32_t h = hash(tenant, addr);

	for (uint32_t i = s->bucket[h & (s->nbucket - 1)]; i != NIL; i = s->v[i].next)
		if (s->v[i].hash == h && !strcmp(s->v[i].e.address, addr) &&
		    !strcmp(s->v[i].e.tenant, tenant))
			return i;
	return NIL;
}

/* Double the bucket array when the load passes 1. */
static int grow(struct suppression *s)
{
	size_t nb = s->nbucket * 2;
	uint32_t *b = malloc(nb * sizeof *b);

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < nb; i++)
		b[i] = NIL;
	for (uint32_t i = 0; i < s->alloc; i++) {
		if (!s->v[i].used)
			continue;
		s->v[i].next = b[s->v[i].hash & (nb - 1)];
		b[s->v[i].hash & (nb - 1)] = i;
	}
	free(s->bucket);
	s->bucket = b;
	s->nbucket = nb;
	return 0;
}

int suppression_add(struct suppression *s, const char *tenant, const char *addr,
		    enum suppression_reason reason, uint64_t added_ms)
{
	char a[SUPPRESSION_ADDR_MAX + 1];
	struct sentry *x;
	uint32_t idx;

	if (!tenant)
		tenant = "";
	if (!s || !tenant_ok(tenant) || (unsigned)reason > SUPPRESSION_MANUAL ||
	    suppression_normalize(addr, a, sizeof a) < 0)
		return -EINVAL;
	if (find(s, tenant, a) != NIL)
		return 1;
	if (s->used >= s->cap)
		return -ENOSPC;
	if (s->used >= s->nbucket && grow(s) < 0)
		return -ENOMEM;
	if (s->free_head != NIL) {
		idx = s->free_head;
		s->free_head = s->v[idx].next;
	} else {
		if (s->alloc % 1024 == 0) {
			struct sentry *nv = realloc(s->v, (s->alloc + 1024) * sizeof *nv);
			if (!nv)
				return -ENOMEM;
			s->v = nv;
		}
		idx = (uint32_t)s->alloc++;
	}
	x = &s->v[idx];
	memset(x, 0, sizeof *x);
	x->used = true;
	strcpy(x->e.tenant, tenant);
	strcpy(x->e.address, a);
	x->e.reason = reason;
	x->e.added_ms = added_ms;
	x->hash = hash(tenant, a);
	x->next = s->bucket[x->hash & (s->nbucket - 1)];
	s->bucket[x->hash & (s->nbucket - 1)] = idx;
	s->used++;
	return 0;
}

int suppression_remove(struct suppression *s, const char *tenant, const char *addr)
{
	char a[SUPPRESSION_ADDR_MAX + 1];
	uint32_t idx, *pp;

	if (!tenant)
		tenant = "";
	if (!s || !tenant_ok(tenant) || suppression_normalize(addr, a, sizeof a) < 0)
		return -EINVAL;
	idx = find(s, tenant, a);
	if (idx == NIL)
		return SL_ENOTFOUND;
	pp = &s->bucket[s->v[idx].hash & (s->nbucket - 1)];
	while (*pp != idx)
		pp = &s->v[*pp].next;
	*pp = s->v[idx].next;
	s->v[idx].used = false;
	s->v[idx].next = s->free_head;
	s->free_head = idx;
	s->used--;
	return 0;
}

int suppression_check(const struct suppression *s, const char *tenant, const char *addr,
		      struct suppression_entry *out)
{
	char a[SUPPRESSION_ADDR_MAX + 1];
	uint32_t idx;

	if (!s || suppression_normalize(addr, a, sizeof a) < 0)
		return -EINVAL;
	idx = find(s, "", a);
	if (idx == NIL && tenant && *tenant)
		idx = find(s, tenant, a);
	if (idx == NIL)
		return 0;
	if (out)
		*out = s->v[idx].e;
	return 1;
}

/* --- CSV ------------------------------------------------------------------- */

static int csv_field(struct sl_buf *b, const char *f)
{
	int rc;

	if (!strpbrk(f, ",\"\r\n") && f[0] != '#')
		return sl_buf_append(b, f, strlen(f));
	rc = sl_buf_append(b, "\"", 1);
	for (; *f && !rc; f++)
		rc = *f == '"' ? sl_buf_append(b, "\"\"", 2) : sl_buf_append(b, f, 1);
	return rc ? rc : sl_buf_append(b, "\"", 1);
}

int suppression_export(const struct suppression *s, const char *tenant, struct sl_buf *b)
{
	int rc;

	if (!s || !b || (tenant && !tenant_ok(tenant)))
		return -EINVAL;
	rc = sl_buf_appendf(b, "tenant,address,reason,added_at_ms\n");
	for (size_t i = 0; i < s->alloc && !rc; i++) {
		const struct suppression_entry *e = &s->v[i].e;
		if (!s->v[i].used || (tenant && strcmp(e->tenant, tenant)))
			continue;
		rc = sl_buf_append(b, e->tenant, strlen(e->tenant));
		if (!rc)
			rc = sl_buf_append(b, ",", 1);
		if (!rc)
			rc = csv_field(b, e->address);
		if (!rc)
			rc = sl_buf_appendf(b, ",%s,%llu\n", suppression_reason_name(e->reason),
					    (unsigned long long)e->added_ms);
	}
	return rc;
}

/* Split one CSV line into up to 4 fields (in place); count or -1. */
static int csv_split(char *line, char *f[4])
{
	int n = 0;
	char *p = line;

	for (;;) {
		char *w;
		if (n == 4)
			return -1;
		f[n++] = w = p;
		if (*p == '"') {
			p++;
			for (;;) {
				if (!*p)
					return -1;
				if (*p == '"' && p[1] == '"') {
					*w++ = '"';
					p += 2;
				} else if (*p == '"') {
					p++;
					break;
				} else {
					*w++ = *p++;
				}
			}
			if (*p && *p != ',')
				return -1;
		} else {
			while (*p && *p != ',') {
				if (*p == '"')
					return -1;
				*w++ = *p++;
			}
		}
		if (!*p) {
			*w = 0;
			return n;
		}
		*w = 0;
		p++;
	}
}

static int imp_err(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int imp_err(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || !errlen)
		return SL_ECONFIG;
	n = snprintf(err, errlen, "%s:%u: ", name, line);
	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return SL_ECONFIG;
}

int suppression_import(struct suppression *s, const char *text, size_t len, const char *name,
		       const char *scope, enum suppression_reason reason, uint64_t now_ms,
		       size_t *added, char *err, size_t errlen)
{
	const char *p = text, *end = text + len;
	unsigned lineno = 0;
	size_t n_added = 0;
	int rc = 0;

	if (err && errlen)
		err[0] = 0;
	if (added)
		*added = 0;
	if (!s || (!text && len) || (scope && !tenant_ok(scope)) ||
	    (unsigned)reason > SUPPRESSION_MANUAL)
		return -EINVAL;
	if (!name)
		name = "import";
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		char line[CSV_LINE_MAX + 1], *f[4];
		const char *t;
		enum suppression_reason r = reason;
		uint64_t at = now_ms;
		int nf;

		lineno++;
		if ((size_t)(le - p) > CSV_LINE_MAX) {
			rc = imp_err(err, errlen, name, lineno, "line too long");
			break;
		}
		if (memchr(p, 0, (size_t)(le - p))) {
			rc = imp_err(err, errlen, name, lineno, "NUL byte");
			break;
		}
		memcpy(line, p, (size_t)(le - p));
		line[le - p] = 0;
		p = nl ? nl + 1 : end;
		if (line[0] && line[strlen(line) - 1] == '\r')
			line[strlen(line) - 1] = 0;
		t = line;
		while (*t == ' ' || *t == '\t')
			t++;
		if (!*t || *t == '#')
			continue;
		nf = csv_split(line, f);
		if (nf < 0) {
			rc = imp_err(err, errlen, name, lineno, "bad CSV (quotes or more than 4 fields)");
			break;
		}
		if (nf == 4 && !strcmp(f[0], "tenant") && !strcmp(f[1], "address"))
			continue; /* the header */
		if (nf == 1) {
			t = scope ? scope : "";
			rc = suppression_add(s, t, f[0], r, at);
		} else {
			t = f[0];
			if (nf != 4) {
				rc = imp_err(err, errlen, name, lineno,
					     "want tenant,address,reason,added_at_ms or an address");
				break;
			}
			if (scope && *t && strcmp(t, scope)) {
				rc = imp_err(err, errlen, name, lineno, "tenant \"%.64s\" is not %s", t,
					     scope);
				break;
			}
			if (scope)
				t = scope;
			if (suppression_reason_parse(f[2], &r) < 0) {
				rc = imp_err(err, errlen, name, lineno,
					     "unknown reason \"%.32s\" (hard_bounce, complaint, "
					     "unsubscribe, manual)",
					     f[2]);
				break;
			}
			{
				char *e;
				errno = 0;
				at = strtoull(f[3], &e, 10);
				if (!isdigit((unsigned char)f[3][0]) || *e || errno) {
					rc = imp_err(err, errlen, name, lineno, "bad added_at_ms \"%.32s\"",
						     f[3]);
					break;
				}
			}
			rc = suppression_add(s, t, f[1], r, at);
		}
		if (rc == -EINVAL) {
			rc = imp_err(err, errlen, name, lineno, "bad tenant or address");
			break;
		}
		if (rc < 0) {
			imp_err(err, errlen, name, lineno, "%s", sl_strerror(rc));
			break;
		}
		if (rc == 0)
			n_added++;
		rc = 0;
	}
	if (added)
		*added = n_added;
	return rc;
}
