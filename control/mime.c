/* mime.c — the small MIME reader behind bounce and ARF parsing; see mime.h. */
#include "mime.h"
#include "base64.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MIME_DEPTH_MAX 8
#define MIME_PARTS_MAX 128

/* Copy n bytes to out (size outlen) with control bytes as spaces, runs of
 * white space collapsed, trimmed. */
void mime_clean_copy(char *out, size_t outlen, const char *s, size_t n)
{
	size_t o = 0;
	int sp = 0;

	if (!outlen)
		return;
	for (size_t i = 0; i < n && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == ' ') {
			sp = o > 0;
			continue;
		}
		if (sp) {
			if (o + 2 >= outlen)
				break;
			out[o++] = ' ';
			sp = 0;
		}
		out[o++] = (char)c;
	}
	out[o] = 0;
}

void mime_split(const char *msg, size_t len, struct mime_part *p)
{
	size_t i = 0;

	p->hdr = msg;
	/* A part that begins with an empty line has no header section. */
	if (len >= 1 && msg[0] == '\n') {
		p->hdr_len = 0;
		p->body = msg + 1;
		p->body_len = len - 1;
		return;
	}
	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n') {
		p->hdr_len = 0;
		p->body = msg + 2;
		p->body_len = len - 2;
		return;
	}
	while (i < len) {
		const char *nl = memchr(msg + i, '\n', len - i);
		if (!nl)
			break;
		size_t next = (size_t)(nl - msg) + 1;
		if (next < len && msg[next] == '\n') {
			p->hdr_len = next;
			p->body = msg + next + 1;
			p->body_len = len - next - 1;
			return;
		}
		if (next + 1 < len && msg[next] == '\r' && msg[next + 1] == '\n') {
			p->hdr_len = next;
			p->body = msg + next + 2;
			p->body_len = len - next - 2;
			return;
		}
		i = next;
	}
	p->hdr_len = len;
	p->body = msg + len;
	p->body_len = 0;
}

int mime_header(const char *hdr, size_t hdr_len, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name), pos = 0;

	if (outlen)
		out[0] = 0;
	while (pos < hdr_len) {
		const char *l = hdr + pos;
		const char *e = memchr(l, '\n', hdr_len - pos);
		size_t ll = e ? (size_t)(e - l) : hdr_len - pos;
		size_t i;

		pos += ll + (e ? 1 : 0);
		if (ll <= nl || strncasecmp(l, name, nl) != 0)
			continue;
		for (i = nl; i < ll && (l[i] == ' ' || l[i] == '\t'); i++)
			;
		if (i >= ll || l[i] != ':')
			continue;
		/* value: rest of this line plus continuation lines */
		size_t vstart = (size_t)(l - hdr) + i + 1, vend = pos;
		while (vend < hdr_len && (hdr[vend] == ' ' || hdr[vend] == '\t')) {
			const char *e2 = memchr(hdr + vend, '\n', hdr_len - vend);
			vend = e2 ? (size_t)(e2 - hdr) + 1 : hdr_len;
		}
		mime_clean_copy(out, outlen, hdr + vstart, vend - vstart);
		return 1;
	}
	return 0;
}

int mime_param(const char *value, const char *param, char *out, size_t outlen)
{
	size_t pl = strlen(param);
	const char *p = value;

	if (outlen)
		out[0] = 0;
	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, param, pl) != 0)
			continue;
		const char *q = p + pl;
		while (*q == ' ')
			q++;
		if (*q != '=')
			continue;
		q++;
		while (*q == ' ')
			q++;
		size_t n;
		if (*q == '"') {
			q++;
			n = strcspn(q, "\"");
		} else {
			n = strcspn(q, "; \t");
		}
		if (n >= outlen)
			n = outlen ? outlen - 1 : 0;
		if (outlen) {
			memcpy(out, q, n);
			out[n] = 0;
		}
		return 1;
	}
	return 0;
}

void mime_ctype(const struct mime_part *p, char *out, size_t outlen)
{
	char v[512];
	size_t n;

	if (!mime_header(p->hdr, p->hdr_len, "Content-Type", v, sizeof v) || !v[0]) {
		snprintf(out, outlen, "text/plain");
		return;
	}
	n = strcspn(v, "; ");
	if (n >= outlen)
		n = outlen - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)v[i]);
	out[n] = 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

size_t mime_decode(const struct mime_part *p, char *out, size_t outlen)
{
	char cte[64];
	size_t o = 0;
	const char *s = p->body;
	size_t n = p->body_len;

	if (!outlen)
		return 0;
	mime_header(p->hdr, p->hdr_len, "Content-Transfer-Encoding", cte, sizeof cte);
	if (strcasecmp(cte, "base64") == 0) {
		unsigned acc = 0;
		int bits = 0;
		for (size_t i = 0; i < n && o + 1 < outlen; i++) {
			int v = base64_value((unsigned char)s[i]);
			if (v < 0) {
				if (s[i] == '=')
					break;
				continue;
			}
			acc = (acc << 6) | (unsigned)v;
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				out[o++] = (char)((acc >> bits) & 0xff);
			}
		}
	} else if (strcasecmp(cte, "quoted-printable") == 0) {
		for (size_t i = 0; i < n && o + 1 < outlen; i++) {
			if (s[i] != '=') {
				out[o++] = s[i];
				continue;
			}
			if (i + 1 < n && s[i + 1] == '\n') {
				i += 1;
				continue;
			}
			if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
				i += 2;
				continue;
			}
			if (i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
			    hexval((unsigned char)s[i + 2]) >= 0) {
				out[o++] = (char)(hexval((unsigned char)s[i + 1]) * 16 +
						  hexval((unsigned char)s[i + 2]));
				i += 2;
				continue;
			}
			out[o++] = '=';
		}
	} else {
		o = n < outlen - 1 ? n : outlen - 1;
		memcpy(out, s, o);
	}
	out[o] = 0;
	return o;
}

/* Find "--boundary" at a line start in [s+from, s+n); returns its offset
 * or n. */
static size_t find_delim(const char *s, size_t n, size_t from, const char *b, size_t bl)
{
	size_t i = from;

	while (i + 2 + bl <= n) {
		if ((i == 0 || s[i - 1] == '\n') && s[i] == '-' && s[i + 1] == '-' &&
		    memcmp(s + i + 2, b, bl) == 0 &&
		    (i + 2 + bl == n || strchr("\r\n \t-", s[i + 2 + bl])))
			return i;
		const char *nl = memchr(s + i, '\n', n - i);
		if (!nl)
			break;
		i = (size_t)(nl - s) + 1;
	}
	return n;
}

struct walk {
	mime_fn fn;
	void *ctx;
	int parts;
	int stop;
};

static void walk_part(struct walk *w, const char *msg, size_t len, int depth)
{
	struct mime_part p;
	char ctype[128], ct[512], bnd[128];

	if (w->stop || ++w->parts > MIME_PARTS_MAX)
		return;
	mime_split(msg, len, &p);
	mime_ctype(&p, ctype, sizeof ctype);
	if (strncmp(ctype, "multipart/", 10) != 0 || depth >= MIME_DEPTH_MAX) {
		if (w->fn(w->ctx, &p, ctype, depth))
			w->stop = 1;
		return;
	}
	mime_header(p.hdr, p.hdr_len, "Content-Type", ct, sizeof ct);
	if (!mime_param(ct, "boundary", bnd, sizeof bnd) || !bnd[0]) {
		if (w->fn(w->ctx, &p, "text/plain", depth))
			w->stop = 1;
		return;
	}
	size_t bl = strlen(bnd), n = p.body_len;
	const char *s = p.body;
	size_t d = find_delim(s, n, 0, bnd, bl);
	while (d < n && !w->stop) {
		/* skip the delimiter line; "--b--" closes */
		if (d + 2 + bl + 1 < n && s[d + 2 + bl] == '-' && s[d + 3 + bl] == '-')
			break;
		const char *nl = memchr(s + d, '\n', n - d);
		if (!nl)
			break;
		size_t start = (size_t)(nl - s) + 1;
		size_t next = find_delim(s, n, start, bnd, bl);
		size_t end = next;
		/* the CRLF before the delimiter belongs to it */
		if (end > start && next < n && s[end - 1] == '\n')
			end--;
		if (end > start && next < n && s[end - 1] == '\r')
			end--;
		walk_part(w, s + start, end - start, depth + 1);
		d = next;
	}
}

void mime_walk(const char *msg, size_t len, mime_fn fn, void *ctx)
{
	struct walk w = { .fn = fn, .ctx = ctx };

	walk_part(&w, msg, len, 0);
}
