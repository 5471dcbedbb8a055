/* message.c — header-section helpers; see message.h. */
#include "message.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

size_t message_header_len(const char *msg, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *nl = memchr(msg + i, '\n', len - i);
		size_t line_end = nl ? (size_t)(nl - msg) + 1 : len;
		size_t line_len = line_end - i;

		if (line_len <= 2 && (msg[i] == '\r' || msg[i] == '\n'))
			return line_end;
		i = line_end;
	}
	return len;
}

/* Does the field starting at msg[i] have this name? Returns the offset of
 * the value (after the colon) or 0. */
static size_t field_match(const char *msg, size_t i, size_t end, const char *name)
{
	size_t n = strlen(name);

	if (end - i <= n || strncasecmp(msg + i, name, n))
		return 0;
	i += n;
	while (i < end && (msg[i] == ' ' || msg[i] == '\t'))
		i++;
	return i < end && msg[i] == ':' ? i + 1 : 0;
}

/* End of the field starting at i (after its last continuation line). */
static size_t field_end(const char *msg, size_t i, size_t hlen)
{
	for (;;) {
		const char *nl = memchr(msg + i, '\n', hlen - i);

		if (!nl)
			return hlen;
		i = (size_t)(nl - msg) + 1;
		if (i >= hlen || (msg[i] != ' ' && msg[i] != '\t'))
			return i;
	}
}

bool message_header_get(const char *msg, size_t len, const char *name, char *out,
			size_t outlen)
{
	size_t hlen = message_header_len(msg, len), i = 0;

	while (i < hlen) {
		size_t end = field_end(msg, i, hlen), v = field_match(msg, i, end, name);

		if (v) {
			size_t o = 0;
			bool space = false;

			for (; v < end && o + 1 < outlen; v++) {
				char c = msg[v];

				if (c == '\r' || c == '\n' || c == ' ' || c == '\t') {
					space = o > 0;
					continue;
				}
				if (space && o + 2 < outlen)
					out[o++] = ' ';
				space = false;
				out[o++] = c;
			}
			out[o] = 0;
			return true;
		}
		i = end;
	}
	return false;
}

int message_append_without(struct sl_buf *out, const char *msg, size_t len, const char *name)
{
	size_t hlen = message_header_len(msg, len), i = 0, from = 0;
	int rc;

	while (i < hlen) {
		size_t end = field_end(msg, i, hlen);

		if (field_match(msg, i, end, name)) {
			rc = sl_buf_append(out, msg + from, i - from);
			if (rc)
				return rc;
			from = end;
		}
		i = end;
	}
	return sl_buf_append(out, msg + from, len - from);
}

void message_date(unsigned long long wall_ms, char out[40])
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 40, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

bool message_from_domain(const char *v, char *out, size_t outlen)
{
	const char *lt = strchr(v, '<'), *start = lt ? lt + 1 : v, *end, *at;
	size_t n;

	end = lt ? strchr(start, '>') : NULL;
	if (!end)
		end = start + strcspn(start, " ,;>");
	at = memrchr(start, '@', (size_t)(end - start));
	if (!at || at + 1 >= end)
		return false;
	n = (size_t)(end - at - 1);
	if (n + 1 > outlen)
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)at[1 + i]);
	out[n] = 0;
	return true;
}
