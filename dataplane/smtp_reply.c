/* smtp_reply.c — SMTP reply parsing; see smtp_reply.h. */
#include "smtp_reply.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

static inline bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/*
 * Check the first avail bytes of a line that may not be complete yet.
 * first: the reply's first line (for the code every line must repeat), or
 * NULL when this is the first line.
 */
static int check_prefix(const char *line, size_t avail, const char *first)
{
	if (avail > 0 && (line[0] < '2' || line[0] > '5'))
		return SL_EPROTO;
	if (avail > 1 && !is_digit(line[1]))
		return SL_EPROTO;
	if (avail > 2 && !is_digit(line[2]))
		return SL_EPROTO;
	if (first && memcmp(line, first, avail < 3 ? avail : 3) != 0)
		return SL_EPROTO;
	if (avail > 3 && line[3] != '-' && line[3] != ' ' && line[3] != '\r' && line[3] != '\n')
		return SL_EPROTO;
	return 0;
}

/* Length of a complete line's content: without its LF and one CR before it. */
static inline size_t line_end(const char *line, size_t llen)
{
	size_t end = llen - 1;

	if (end > 0 && line[end - 1] == '\r')
		end--;
	return end;
}

/*
 * Check a complete line of llen bytes (its last byte is LF).
 * 1: a continuation line, 0: the last line of the reply, SL_EPROTO.
 */
static int check_line(const char *line, size_t llen, const char *first)
{
	size_t end = line_end(line, llen);

	if (end < 3 || check_prefix(line, 3, first) < 0)
		return SL_EPROTO;
	if (end == 3)
		return 0;
	if (line[3] == '-')
		return 1;
	if (line[3] == ' ')
		return 0;
	return SL_EPROTO;
}

int smtp_reply_scan(const char *buf, size_t len, size_t *state)
{
	size_t pos = *state;

	while (pos < len) {
		const char *line = buf + pos;
		size_t rem = len - pos;
		const char *nl = memchr(line, '\n', rem < SMTP_REPLY_LINE_MAX ? rem : SMTP_REPLY_LINE_MAX);
		int rc;

		if (!nl) {
			if (rem >= SMTP_REPLY_LINE_MAX)
				return SL_EPROTO;
			return check_prefix(line, rem, pos ? buf : NULL);
		}
		rc = check_line(line, (size_t)(nl - line) + 1, pos ? buf : NULL);
		if (rc < 0)
			return rc;
		pos += (size_t)(nl - line) + 1;
		*state = pos;
		if (rc == 0)
			return 1;
		if (pos >= SMTP_REPLY_MAX)
			return SL_EPROTO;
	}
	return 0;
}

size_t smtp_reply_parse_enhanced(const char *t, size_t len, char out[16])
{
	size_t i = 2, part, n;

	out[0] = '\0';
	if (len < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.')
		return 0;
	for (part = 0; part < 2; part++) {
		for (n = 0; n < 3 && i < len && is_digit(t[i]); n++)
			i++;
		if (n == 0)
			return 0;
		if (part == 0) {
			if (i >= len || t[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && t[i] != ' ' && t[i] != '\t')
		return 0;
	memcpy(out, t, i); /* at most "5.999.999" */
	out[i] = '\0';
	while (i < len && (t[i] == ' ' || t[i] == '\t'))
		i++;
	return i;
}

/* Append one line's text to out->text: trimmed, space-joined, sanitized. */
static void text_add(struct smtp_reply *out, size_t *tlen, bool *full, const char *s, size_t n)
{
	size_t room, k, i;
	char *d;

	while (n > 0 && (unsigned char)s[0] <= ' ')
		s++, n--;
	while (n > 0 && (unsigned char)s[n - 1] <= ' ')
		n--;
	if (n == 0 || *full)
		return;
	room = sizeof(out->text) - 1 - *tlen;
	if (*tlen > 0) {
		if (room < 2) {
			*full = true;
			return;
		}
		out->text[(*tlen)++] = ' ';
		room--;
	}
	k = n;
	if (k > room) {
		/* Cut before a UTF-8 character that would be split. */
		k = room;
		for (i = 0; i < 3 && k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80; i++)
			k--;
		*full = true;
	}
	d = out->text + *tlen;
	for (i = 0; i < k; i++) {
		unsigned char ch = (unsigned char)s[i];

		d[i] = (ch < ' ' || ch == 0x7f) ? ' ' : (char)ch;
	}
	*tlen += k;
	out->text[*tlen] = '\0';
}

int smtp_reply_parse(const char *buf, size_t len, struct smtp_reply *out, size_t *consumed)
{
	size_t end = 0, pos = 0, tlen = 0;
	bool full = false;
	int rc;

	rc = smtp_reply_scan(buf, len, &end);
	if (rc <= 0)
		return rc;

	out->code = (buf[0] - '0') * 100 + (buf[1] - '0') * 10 + (buf[2] - '0');
	out->enhanced[0] = '\0';
	out->text[0] = '\0';
	out->n_lines = 0;
	for (;;) {
		const char *t;
		size_t tl, skip;
		char enh[16];

		if (!smtp_reply_next_line(buf, end, &pos, &t, &tl))
			break;
		if (out->n_lines == 0) {
			skip = smtp_reply_parse_enhanced(t, tl, out->enhanced);
			if (skip && out->enhanced[0] != buf[0]) {
				/* A class that contradicts the code is not a status. */
				out->enhanced[0] = '\0';
				skip = 0;
			}
		} else if (out->enhanced[0]) {
			skip = smtp_reply_parse_enhanced(t, tl, enh);
			if (skip && strcmp(enh, out->enhanced) != 0)
				skip = 0;
		} else {
			skip = 0;
		}
		text_add(out, &tlen, &full, t + skip, tl - skip);
		out->n_lines++;
	}
	*consumed = end;
	return 1;
}

int smtp_reply_next_line(const char *buf, size_t len, size_t *pos, const char **text,
			 size_t *text_len)
{
	const char *line, *nl;
	size_t llen, end;

	if (*pos >= len)
		return 0;
	line = buf + *pos;
	nl = memchr(line, '\n', len - *pos);
	if (nl) {
		llen = (size_t)(nl - line) + 1;
		end = line_end(line, llen);
	} else {
		llen = end = len - *pos;
	}
	*text = line + (end > 4 ? 4 : end);
	*text_len = end > 4 ? end - 4 : 0;
	*pos += llen;
	return 1;
}

int smtp_reply_format(const struct smtp_reply *r, char *dst, size_t size)
{
	const char *sep1 = r->enhanced[0] ? " " : "";
	const char *sep2 = r->text[0] ? " " : "";

	return snprintf(dst, size, "%d%s%s%s%s", r->code, sep1, r->enhanced, sep2, r->text);
}
