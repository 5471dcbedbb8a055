/* link_check.c — URL host extraction, local blocklists, DNS blocklist
 * answers; see link_check.h. */
#include "link_check.h"

#include "config.h"
#include "err.h"
#include "file.h"
#include "mime.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BLOCKLIST_MAX_BYTES (64u << 20)

void link_scan_init(struct link_scan *s, size_t max_hosts)
{
	s->n_hosts = 0;
	s->scanned = 0;
	s->truncated = false;
	s->max_hosts = max_hosts < 1 ? 1 : max_hosts > LINK_HOSTS_MAX ? LINK_HOSTS_MAX : max_hosts;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Bytes that end an authority (host, userinfo, port) besides controls
 * and space: a table, since every byte of a text part is looked at. */
static const bool authority_stop[256] = {
	['/'] = 1, ['\\'] = 1, ['?'] = 1, ['#'] = 1, ['"'] = 1, ['\''] = 1, ['<'] = 1,
	['>'] = 1, ['('] = 1, [')'] = 1, ['['] = 1, [']'] = 1, ['{'] = 1, ['}'] = 1,
	['|'] = 1, ['^'] = 1, ['`'] = 1, [','] = 1, [';'] = 1, [0x7f] = 1,
};

/* Does c end an authority? */
static bool authority_end(unsigned char c)
{
	return c <= ' ' || authority_stop[c];
}

static void scan_add(struct link_scan *s, const char *host)
{
	for (size_t i = 0; i < s->n_hosts; i++)
		if (!strcmp(s->hosts[i], host))
			return;
	if (s->n_hosts == s->max_hosts) {
		s->truncated = true;
		return;
	}
	snprintf(s->hosts[s->n_hosts++], LINK_HOST_LEN, "%s", host);
}

/* The host of the authority at [p, end): userinfo and port dropped,
 * percent-decoded, lower-cased. Adds it to s when it looks like a host. */
static void add_authority(struct link_scan *s, const char *p, size_t n)
{
	char host[LINK_HOST_LEN];
	size_t o = 0;
	const char *at = NULL;

	for (size_t i = 0; i < n; i++)
		if (p[i] == '@')
			at = p + i;
	if (at) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	for (size_t i = 0; i < n && p[i] != ':'; i++) {
		int c = (unsigned char)p[i];

		if (c == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
			c = hexval(p[i + 1]) * 16 + hexval(p[i + 2]);
			i += 2;
		}
		if (o + 1 >= sizeof host)
			return; /* longer than any host name */
		host[o++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
	}
	while (o && host[o - 1] == '.')
		o--;
	host[o] = 0;
	/* a host has a dot and no control bytes or spaces (a decoded %20) */
	if (!o || !memchr(host, '.', o) || host[0] == '.')
		return;
	for (size_t i = 0; i < o; i++)
		if ((unsigned char)host[i] <= ' ' || authority_end((unsigned char)host[i]) ||
		    host[i] == '@' || host[i] == ':' || host[i] == '%')
			return; /* percent-decoded into something no host holds */
	scan_add(s, host);
}

/* Is text[i..] "http:", "https:" followed by two slashes (or backslashes)?
 * Returns the length of the prefix, 0 if not. */
static size_t scheme_at(const char *t, size_t i, size_t len)
{
	size_t k;

	if (i + 7 > len || strncasecmp(t + i, "http", 4))
		return 0;
	k = i + 4;
	if (k < len && (t[k] == 's' || t[k] == 'S'))
		k++;
	if (k + 3 > len || t[k] != ':' || (t[k + 1] != '/' && t[k + 1] != '\\') ||
	    (t[k + 2] != '/' && t[k + 2] != '\\'))
		return 0;
	return k + 3 - i;
}

void link_scan_text(struct link_scan *s, const char *t, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t pre = 0, j;
		int c = t[i] | 0x20; /* 'H' and 'h' alike, 'W' and 'w' */

		if (c != 'h' && c != 'w') {
			i++;
			continue;
		}
		if (c == 'h' && i + 1 < len && (t[i + 1] | 0x20) == 't') {
			pre = scheme_at(t, i, len);
		} else if (c == 'w' && i + 4 < len && !strncasecmp(t + i, "www.", 4) &&
			   (i == 0 || (!isalnum((unsigned char)t[i - 1]) && t[i - 1] != '.' &&
				       t[i - 1] != '/' && t[i - 1] != '@' && t[i - 1] != '-'))) {
			pre = 0;
			j = i;
			while (j < len && !authority_end((unsigned char)t[j]))
				j++;
			add_authority(s, t + i, j - i);
			i = j;
			continue;
		}
		if (!pre) {
			i++;
			continue;
		}
		j = i + pre;
		while (j < len && !authority_end((unsigned char)t[j]))
			j++;
		add_authority(s, t + i + pre, j - i - pre);
		i = j;
	}
}

struct msg_scan {
	struct link_scan *s;
	size_t budget;
	char *scratch;
};

static int scan_part(void *ctx, const struct mime_part *p, const char *ctype, int depth)
{
	struct msg_scan *m = ctx;
	size_t n;

	(void)depth;
	if (strcmp(ctype, "text/plain") && strcmp(ctype, "text/html"))
		return 0;
	if (!m->budget) {
		m->s->truncated = true;
		return 1;
	}
	n = mime_decode(p, m->scratch, m->budget + 1);
	link_scan_text(m->s, m->scratch, n);
	m->s->scanned += n;
	m->budget -= n;
	return 0;
}

void link_scan_message(struct link_scan *s, const char *msg, size_t len, size_t max_scan,
		       char *scratch)
{
	struct msg_scan m = { .s = s, .budget = max_scan, .scratch = scratch };

	mime_walk(msg, len, scan_part, &m);
}

/* --- local blocklists ---------------------------------------------------- */

struct link_blocklist {
	char **domains; /* sorted, lower case */
	size_t n;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void link_blocklist_free(struct link_blocklist *bl)
{
	if (!bl)
		return;
	for (size_t i = 0; i < bl->n; i++)
		free(bl->domains[i]);
	free(bl->domains);
	free(bl);
}

size_t link_blocklist_count(const struct link_blocklist *bl)
{
	return bl ? bl->n : 0;
}

int link_blocklist_parse(const char *name, const char *text, size_t len,
			 struct link_blocklist **out, char *err, size_t errlen)
{
	struct link_blocklist *bl = calloc(1, sizeof *bl);
	size_t cap = 0, k = 0;
	unsigned line = 0;
	int rc = -ENOMEM;

	if (!bl)
		return -ENOMEM;
	for (size_t i = 0; i < len; line++) {
		const char *e = memchr(text + i, '\n', len - i);
		size_t end = e ? (size_t)(e - text) : len, a = i, b;
		char **nd;

		i = end + 1;
		b = end;
		for (size_t h = a; h < b; h++)
			if (text[h] == '#')
				b = h;
		while (a < b && isspace((unsigned char)text[a]))
			a++;
		while (b > a && isspace((unsigned char)text[b - 1]))
			b--;
		if (b - a >= 2 && text[a] == '*' && text[a + 1] == '.')
			a += 2;
		else if (a < b && text[a] == '.')
			a++;
		while (b > a && text[b - 1] == '.')
			b--;
		if (a == b)
			continue;
		if (b - a >= LINK_HOST_LEN) {
			rc = config_error_at(err, errlen, name, line + 1, "domain too long");
			goto fail;
		}
		for (size_t h = a; h < b; h++)
			if ((unsigned char)text[h] <= ' ' || authority_end((unsigned char)text[h]) ||
			    text[h] == '@' || text[h] == ':') {
				rc = config_error_at(err, errlen, name, line + 1,
						     "'%.*s' is not a domain (one domain a line)",
						     (int)(b - a), text + a);
				goto fail;
			}
		if (bl->n == cap) {
			cap = cap ? 2 * cap : 64;
			if (!(nd = realloc(bl->domains, cap * sizeof *nd)))
				goto fail;
			bl->domains = nd;
		}
		if (!(bl->domains[bl->n] = strndup(text + a, b - a)))
			goto fail;
		for (char *c = bl->domains[bl->n]; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		bl->n++;
	}
	if (bl->n)
		qsort(bl->domains, bl->n, sizeof *bl->domains, cmp_str);
	/* drop duplicates */
	for (size_t i = 0; i < bl->n; i++) {
		if (k && !strcmp(bl->domains[k - 1], bl->domains[i])) {
			free(bl->domains[i]);
			continue;
		}
		bl->domains[k++] = bl->domains[i];
	}
	bl->n = k;
	*out = bl;
	return 0;
fail:
	link_blocklist_free(bl);
	return rc;
}

int link_blocklist_load(const char *path, struct link_blocklist **out, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len;
	int rc = sl_file_read(path, BLOCKLIST_MAX_BYTES, &text, &len);

	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, sl_strerror(rc));
		return rc;
	}
	rc = link_blocklist_parse(path, text, len, out, err, errlen);
	free(text);
	return rc;
}

const char *link_blocklist_match(const struct link_blocklist *bl, const char *host)
{
	const char *p = host;

	if (!bl || !bl->n)
		return NULL;
	while (p && *p) {
		char **hit = bsearch(&p, bl->domains, bl->n, sizeof *bl->domains, cmp_str);

		if (hit)
			return *hit;
		p = strchr(p, '.');
		if (p)
			p++;
	}
	return NULL;
}

/* --- DNS blocklists ------------------------------------------------------ */

static bool is_ipv4_literal(const char *h)
{
	for (; *h; h++)
		if (!isdigit((unsigned char)*h) && *h != '.')
			return false;
	return true;
}

int link_uribl_name(const char *host, const char *zone, char *out, size_t outlen)
{
	const char *last = strrchr(host, '.'), *reg = host;
	int n;

	if (!last || last == host || is_ipv4_literal(host))
		return -EINVAL;
	for (const char *p = last - 1; p > host; p--)
		if (*p == '.') {
			reg = p + 1;
			break;
		}
	n = snprintf(out, outlen, "%s.%s", reg, zone);
	return n < 0 || (size_t)n >= outlen ? -EINVAL : 0;
}

enum link_dns_verdict link_dns_verdict(const uint32_t *addrs, size_t n, char *code,
				       size_t codelen)
{
	enum link_dns_verdict v = LINK_DNS_CLEAN;

	for (size_t i = 0; i < n; i++) {
		uint32_t a = addrs[i];

		if ((a >> 8) == 0x7f0000) {
			if (code && codelen)
				snprintf(code, codelen, "127.0.0.%u", a & 0xff);
			return LINK_DNS_LISTED;
		}
		v = LINK_DNS_ERROR;
	}
	return v;
}
