/*
 * fuzz_smtp_reply.c — the SMTP reply parser on arbitrary bytes.
 *
 * Parses replies back to back, checks the results' invariants, and checks
 * that the incremental smtp_reply_scan() fed one byte at a time agrees with
 * a one-shot smtp_reply_parse().
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "smtp_reply.h"

static void check_reply(const struct smtp_reply *r, const char *buf, size_t used)
{
	size_t pos = 0, tl, n = 0;
	const char *t;
	char line[2200];

	if (r->code < 200 || r->code > 599 || r->n_lines == 0)
		abort();
	if (memchr(r->text, '\0', sizeof r->text) == NULL)
		abort();
	if (memchr(r->enhanced, '\0', sizeof r->enhanced) == NULL)
		abort();
	for (const char *p = r->text; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			abort();
	if (r->enhanced[0] && r->enhanced[0] != '0' + r->code / 100)
		abort();
	while (smtp_reply_next_line(buf, used, &pos, &t, &tl))
		n++;
	if (n != r->n_lines || pos != used)
		abort();
	if (smtp_reply_format(r, line, sizeof line) < 3)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct smtp_reply r;
	size_t off = 0, used, st = 0, i, lim;
	int rc, inc = 0;
	char enh[16];

	/* Back to back, as a client reads them. */
	while (off < size) {
		rc = smtp_reply_parse(buf + off, size - off, &r, &used);
		if (rc <= 0)
			break;
		if (used == 0 || used > size - off)
			abort();
		check_reply(&r, buf + off, used);
		off += used;
	}

	/* Incremental scan over growing prefixes agrees with one parse. */
	lim = size < 8192 ? size : 8192;
	for (i = 1; i <= lim; i++) {
		inc = smtp_reply_scan(buf, i, &st);
		if (inc != 0)
			break;
	}
	rc = smtp_reply_parse(buf, lim, &r, &used);
	if (inc != rc)
		abort();
	if (inc == 1 && (used != st || smtp_reply_parse(buf, st, &r, &used) != 1 || used != st))
		abort();

	smtp_reply_parse_enhanced(buf, size, enh);
	if (strlen(enh) > 9)
		abort();
	return 0;
}
