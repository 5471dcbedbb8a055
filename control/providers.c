/*
 * providers.c — MX suffix → provider table and site keys; see providers.h.
 *
 * The table is a sorted array of (suffix, provider); a lookup tries every
 * label-boundary suffix of the host, longest first, with a binary search,
 * so it costs O(labels × log entries) and allocates nothing.
 */
#include "providers.h"

#include "err.h"
#include "file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROVIDERS_FILE_MAX (4u << 20)
#define HOST_MAX 255

struct provider_entry {
	char *suffix; /* lower case, no trailing dot */
	char *name;   /* NULL: removed by an override */
};

struct provider_table {
	struct provider_entry *e;
	size_t n, cap;
	size_t live; /* entries with a name */
};

struct provider_table *providers_create(void)
{
	return calloc(1, sizeof(struct provider_table));
}

void providers_free(struct provider_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].suffix);
		free(t->e[i].name);
	}
	free(t->e);
	free(t);
}

size_t providers_count(const struct provider_table *t)
{
	return t ? t->live : 0;
}

/* Index of suffix (len bytes, already lower case) or where it would go. */
static size_t find(const struct provider_table *t, const char *s, size_t len, bool *found)
{
	size_t lo = 0, hi = t->n;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *m = t->e[mid].suffix;
		size_t mlen = strlen(m);
		int c = strncmp(m, s, mlen < len ? mlen : len);

		if (c == 0)
			c = mlen < len ? -1 : mlen > len ? 1 : 0;
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int put(struct provider_table *t, const char *suffix, size_t slen, const char *name,
	       size_t nlen)
{
	bool found;
	size_t i = find(t, suffix, slen, &found);
	char *nm = NULL;

	if (name) {
		nm = strndup(name, nlen);
		if (!nm)
			return -ENOMEM;
	}
	if (found) {
		if (t->e[i].name)
			t->live--;
		free(t->e[i].name);
		t->e[i].name = nm;
		if (nm)
			t->live++;
		return 0;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct provider_entry *e = realloc(t->e, cap * sizeof(*e));

		if (!e) {
			free(nm);
			return -ENOMEM;
		}
		t->e = e;
		t->cap = cap;
	}
	char *sf = strndup(suffix, slen);
	if (!sf) {
		free(nm);
		return -ENOMEM;
	}
	memmove(&t->e[i + 1], &t->e[i], (t->n - i) * sizeof(*t->e));
	t->e[i].suffix = sf;
	t->e[i].name = nm;
	t->n++;
	if (nm)
		t->live++;
	return 0;
}

static bool host_char(int c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.';
}

static bool name_char(int c)
{
	return (c >= 'a' && c <= 'z') || isdigit(c) || c == '-' || c == '_';
}

__attribute__((format(printf, 5, 6))) static int perr(char *err, size_t errlen, const char *name,
						      unsigned line, const char *fmt, ...)
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

int providers_parse(struct provider_table *t, const char *name, const char *text, size_t len,
		    char *err, size_t errlen)
{
	size_t pos = 0;
	unsigned line = 0;

	if (!name)
		name = "<string>";
	if (err && errlen)
		err[0] = '\0';
	while (pos < len) {
		size_t end = pos, i;
		char suffix[HOST_MAX + 1];
		size_t slen = 0;
		const char *pname;
		size_t nlen;

		while (end < len && text[end] != '\n')
			end++;
		line++;
		i = pos;
		pos = end + 1;
		/* strip a comment and trailing blanks */
		size_t stop = i;
		while (stop < end && text[stop] != '#')
			stop++;
		while (stop > i && isspace((unsigned char)text[stop - 1]))
			stop--;
		while (i < stop && isspace((unsigned char)text[i]))
			i++;
		if (i == stop)
			continue;
		/* SUFFIX */
		while (i < stop && !isspace((unsigned char)text[i])) {
			unsigned char c = (unsigned char)text[i];

			if (c == '\0' || !host_char(c))
				return perr(err, errlen, name, line,
					    "bad character in suffix (letters, digits, '-', '_', '.')");
			if (slen == HOST_MAX)
				return perr(err, errlen, name, line, "suffix longer than %d characters",
					    HOST_MAX);
			suffix[slen++] = (char)tolower(c);
			i++;
		}
		while (slen && suffix[slen - 1] == '.')
			slen--;
		if (slen && suffix[0] == '.') /* ".google.com" means the same as "google.com" */
			memmove(suffix, suffix + 1, --slen);
		if (slen == 0 || memchr(suffix, '.', slen) == suffix ||
		    (slen > 1 && memmem(suffix, slen, "..", 2)))
			return perr(err, errlen, name, line, "empty or malformed suffix");
		while (i < stop && isspace((unsigned char)text[i]))
			i++;
		if (i == stop)
			return perr(err, errlen, name, line,
				    "missing provider name (write 'SUFFIX PROVIDER' or 'SUFFIX -')");
		pname = text + i;
		while (i < stop && !isspace((unsigned char)text[i]))
			i++;
		nlen = (size_t)(text + i - pname);
		if (i != stop)
			return perr(err, errlen, name, line,
				    "trailing text after the provider name");
		if (nlen == 1 && pname[0] == '-') {
			pname = NULL;
		} else {
			if (nlen > PROVIDER_NAME_MAX)
				return perr(err, errlen, name, line,
					    "provider name longer than %d characters",
					    PROVIDER_NAME_MAX);
			for (size_t k = 0; k < nlen; k++)
				if (!name_char((unsigned char)pname[k]))
					return perr(err, errlen, name, line,
						    "bad provider name (use [a-z0-9_-])");
		}
		int rc = put(t, suffix, slen, pname, nlen);
		if (rc) {
			if (err && errlen)
				snprintf(err, errlen, "%s: out of memory", name);
			return rc;
		}
	}
	return 0;
}

int providers_load_file(struct provider_table *t, const char *path, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int rc = sl_file_read(path, PROVIDERS_FILE_MAX, &buf, &len);

	if (rc < 0) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, sl_strerror(rc));
		return rc;
	}
	rc = providers_parse(t, path, buf, len, err, errlen);
	free(buf);
	return rc;
}

int providers_load(const char *path, struct provider_table **out, char *err, size_t errlen)
{
	struct provider_table *t = providers_create();
	int rc;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	rc = providers_load_file(t, path, err, errlen);
	if (rc) {
		providers_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

/* Lower-case host into buf without a trailing dot; 0 length if unusable. */
static size_t norm_host(const char *host, char *buf, size_t cap)
{
	size_t n = strlen(host);

	while (n && host[n - 1] == '.')
		n--;
	if (n == 0 || n >= cap)
		return 0;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)host[i]);
	buf[n] = '\0';
	return n;
}

const char *provider_for_mx(const struct provider_table *t, const char *mx_host)
{
	char h[HOST_MAX + 2];
	size_t n;

	if (!t || !mx_host || t->n == 0)
		return NULL;
	n = norm_host(mx_host, h, sizeof h);
	for (size_t i = 0; i < n;) {
		bool found;
		size_t k = find(t, h + i, n - i, &found);

		if (found && t->e[k].name)
			return t->e[k].name;
		if (found) /* explicitly removed: a shorter suffix must not match */
			return NULL;
		const char *dot = memchr(h + i, '.', n - i);
		if (!dot)
			break;
		i = (size_t)(dot - h) + 1;
	}
	return NULL;
}

const char *provider_for_mxs(const struct provider_table *t, const char *const *mx, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *p = mx[i] ? provider_for_mx(t, mx[i]) : NULL;
		if (p)
			return p;
	}
	return NULL;
}

/* Compare two host names as site_key() spells them. */
static size_t host_len(const char *s)
{
	size_t n = strlen(s);

	while (n && s[n - 1] == '.')
		n--;
	return n;
}

static int host_cmp(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t xl = host_len(x), yl = host_len(y);
	int c = strncasecmp(x, y, xl < yl ? xl : yl);

	if (c)
		return c;
	return xl < yl ? -1 : xl > yl ? 1 : 0;
}

int site_key(const char *const *mx, size_t n, char *out, size_t outlen)
{
	const char *local[32];
	const char **v = local;
	size_t len = 0;
	int rc = 0;

	if (n == 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!mx[i] || host_len(mx[i]) == 0)
			return -EINVAL;
	if (n > 32) {
		v = malloc(n * sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	memcpy(v, mx, n * sizeof(*v));
	qsort(v, n, sizeof(*v), host_cmp);
	for (size_t i = 0; i < n; i++) {
		size_t hl;

		if (i && host_cmp(&v[i - 1], &v[i]) == 0)
			continue;
		hl = host_len(v[i]);
		if (len + (len ? 1 : 0) + hl + 1 > outlen) {
			rc = SL_ETOOBIG;
			goto out;
		}
		if (len)
			out[len++] = ',';
		for (size_t k = 0; k < hl; k++)
			out[len++] = (char)tolower((unsigned char)v[i][k]);
	}
	out[len] = '\0';
	rc = (int)len;
out:
	if (v != local)
		free(v);
	return rc;
}
