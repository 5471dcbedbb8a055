/* dsn.c — RFC 3464 delivery status notifications; see dsn.h. */
#include "dsn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DSN_ID_MAX 64       /* Message-ID and boundary pieces */
#define DSN_BOUNDARY_MAX 70 /* RFC 2046 */

/* A field value made safe to put on one header line: controls become a
 * space (a run of CR/LF one space), cut at max bytes on a UTF-8 boundary. */
static size_t dsn_clean(const char *s, char *out, size_t max)
{
	size_t o = 0;
	bool in_eol = false;

	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		size_t need = 1;

		if (c == '\r' || c == '\n') {
			if (in_eol)
				continue;
			in_eol = true;
			c = ' ';
		} else {
			in_eol = false;
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				c = ' ';
			else if (c >= 0xf0)
				need = 4;
			else if (c >= 0xe0)
				need = 3;
			else if (c >= 0xc0)
				need = 2;
		}
		if (o + need > max)
			break;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return o;
}

/* Keep only characters that are safe in a msg-id (a dot-atom: no leading,
 * trailing or doubled dots) and in a MIME boundary. */
static void dsn_token(const char *s, char *out, size_t max)
{
	size_t o = 0;

	for (; s && *s && o < max; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || (c == '.' && o > 0 && out[o - 1] != '.'))
			out[o++] = (char)c;
		else
			out[o++] = '_';
	}
	if (o > 0 && out[o - 1] == '.')
		out[o - 1] = '_';
	out[o] = '\0';
}

/* RFC 5322 date-time in UTC, independent of the locale. */
static void dsn_date(uint64_t ms, char *out, size_t len)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm)) {
		snprintf(out, len, "Thu, 01 Jan 1970 00:00:00 +0000");
		return;
	}
	snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
		 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

static bool dsn_valid_status(const char *s)
{
	int n;

	if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	s += 2;
	for (int part = 0; part < 2; part++) {
		for (n = 0; *s >= '0' && *s <= '9'; s++)
			n++;
		if (n < 1 || n > 3)
			return false;
		if (part == 0 && *s++ != '.')
			return false;
	}
	return *s == '\0';
}

static bool dsn_valid_action(const char *a)
{
	static const char *const ok[] = { "failed", "delayed", "delivered", "relayed", "expanded" };

	for (size_t i = 0; a && i < sizeof ok / sizeof ok[0]; i++)
		if (strcmp(a, ok[i]) == 0)
			return true;
	return false;
}

/* True if v already starts with "type;" (as in "smtp; 550 ..."). */
static bool dsn_has_type(const char *v)
{
	size_t n = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");

	return n > 0 && v[n] == ';';
}

static bool dsn_8bit(const struct sl_buf *b)
{
	for (size_t i = b->off; i < b->len; i++)
		if ((unsigned char)b->data[i] >= 0x80)
			return true;
	return false;
}

/* The original's header section, CRLF-normalised, up to DSN_HEADERS_MAX. */
static int dsn_headers(struct sl_buf *b, const char *msg, size_t len)
{
	size_t p = 0, total = 0;
	int rc;

	while (p < len) {
		size_t s = p, e, next;

		while (p < len && msg[p] != '\r' && msg[p] != '\n')
			p++;
		e = p;
		if (p < len && msg[p] == '\r' && p + 1 < len && msg[p + 1] == '\n')
			next = p + 2;
		else
			next = p < len ? p + 1 : p;
		if (e == s)
			break; /* the blank line: end of the header section */
		if (total + (e - s) + 2 > DSN_HEADERS_MAX)
			break;
		rc = sl_buf_reserve(b, e - s + 2);
		if (rc)
			return rc;
		for (size_t i = s; i < e; i++)
			b->data[b->len++] = msg[i] == '\0' ? ' ' : msg[i];
		b->data[b->len++] = '\r';
		b->data[b->len++] = '\n';
		total += e - s + 2;
		p = next;
	}
	return 0;
}

static const char *dsn_action_text(const char *action)
{
	if (strcmp(action, "failed") == 0)
		return "could not be delivered";
	if (strcmp(action, "delayed") == 0)
		return "not delivered yet; still trying";
	if (strcmp(action, "relayed") == 0)
		return "relayed to a system that does not report delivery";
	if (strcmp(action, "expanded") == 0)
		return "delivered to a list";
	return "delivered";
}

static int dsn_human(struct sl_buf *b, const struct dsn_info *in, const char *mta,
		     bool any_failed, bool all_delayed)
{
	char addr[DSN_FIELD_MAX + 1], val[DSN_FIELD_MAX + 1];
	int rc;

	rc = sl_buf_appendf(b, "This is the mail delivery system at %s.\r\n\r\n", mta);
	if (!rc && all_delayed)
		rc = sl_buf_appendf(b,
			"Your message has not been delivered yet to one or more of its\r\n"
			"recipients. The mail system will keep trying; you do not need to\r\n"
			"send it again.\r\n\r\n");
	else if (!rc && any_failed)
		rc = sl_buf_appendf(b,
			"Your message could not be delivered to one or more of its\r\n"
			"recipients. The reasons are listed below; the delivery report and\r\n"
			"the headers of your message are attached.\r\n\r\n");
	else if (!rc)
		rc = sl_buf_appendf(b, "Here is the delivery report you asked for.\r\n\r\n");
	for (size_t i = 0; !rc && i < in->n_rcpts; i++) {
		const struct dsn_rcpt *r = &in->rcpts[i];

		dsn_clean(r->addr, addr, sizeof addr - 1);
		rc = sl_buf_appendf(b, "%s<%s>: %s\r\n", i ? "\r\n" : "", addr,
				    dsn_action_text(r->action));
		if (!rc && r->remote_mta && *r->remote_mta) {
			dsn_clean(r->remote_mta, val, sizeof val - 1);
			rc = sl_buf_appendf(b, "    Remote host: %s\r\n", val);
		}
		if (!rc && r->diagnostic && *r->diagnostic) {
			dsn_clean(r->diagnostic, val, sizeof val - 1);
			rc = sl_buf_appendf(b, "    %s\r\n", val);
		}
	}
	return rc;
}

static int dsn_status(struct sl_buf *b, const struct dsn_info *in, const char *mta)
{
	char val[DSN_FIELD_MAX + 1], date[64], now[64];
	int rc;

	dsn_date(in->arrival_ms, date, sizeof date);
	dsn_date(in->now_ms, now, sizeof now);
	rc = sl_buf_appendf(b, "Reporting-MTA: dns; %s\r\n", mta);
	if (!rc && in->original_id && *in->original_id) {
		dsn_clean(in->original_id, val, sizeof val - 1);
		rc = sl_buf_appendf(b, "X-Sluice-Queue-ID: %s\r\n", val);
	}
	if (!rc)
		rc = sl_buf_appendf(b, "Arrival-Date: %s\r\n", date);
	for (size_t i = 0; !rc && i < in->n_rcpts; i++) {
		const struct dsn_rcpt *r = &in->rcpts[i];

		dsn_clean(r->addr, val, sizeof val - 1);
		rc = sl_buf_appendf(b, "\r\nFinal-Recipient: rfc822; %s\r\n"
				       "Action: %s\r\nStatus: %s\r\n",
				    val, r->action, r->status);
		if (!rc && r->remote_mta && *r->remote_mta) {
			dsn_clean(r->remote_mta, val, sizeof val - 1);
			rc = sl_buf_appendf(b, "Remote-MTA: %s%s\r\n",
					    dsn_has_type(val) ? "" : "dns; ", val);
		}
		if (!rc && r->diagnostic && *r->diagnostic) {
			dsn_clean(r->diagnostic, val, sizeof val - 1);
			rc = sl_buf_appendf(b, "Diagnostic-Code: %s%s\r\n",
					    dsn_has_type(val) ? "" : "smtp; ", val);
		}
		if (!rc)
			rc = sl_buf_appendf(b, "Last-Attempt-Date: %s\r\n", now);
	}
	return rc;
}

static bool dsn_contains(const struct sl_buf *b, const char *s, size_t n)
{
	return memmem(sl_buf_head(b), sl_buf_avail(b), s, n) != NULL;
}

/* A boundary from seed that occurs in none of the parts. */
static void dsn_boundary(const struct dsn_info *in, const struct sl_buf *parts, size_t n_parts,
			 char *out, size_t len)
{
	char seed[48], id[25]; /* "=_sluice_" + seed + ".N" stays within 70 */
	size_t bl;

	if (in->boundary_seed && *in->boundary_seed) {
		dsn_token(in->boundary_seed, seed, 40);
	} else {
		dsn_token(in->original_id ? in->original_id : "dsn", id, 24);
		snprintf(seed, sizeof seed, "%s.%" PRIu64, id, in->now_ms);
	}
	for (unsigned n = 0;; n++) {
		bool clash = false;

		if (n == 0)
			bl = (size_t)snprintf(out, len, "=_sluice_%s", seed);
		else
			bl = (size_t)snprintf(out, len, "=_sluice_%s.%u", seed, n);
		for (size_t i = 0; i < n_parts && !clash; i++)
			clash = dsn_contains(&parts[i], out, bl);
		if (!clash)
			return;
	}
}

int dsn_build(const struct dsn_info *in, struct sl_buf *out)
{
	char mta[DSN_FIELD_MAX + 1], to[DSN_FIELD_MAX + 1], date[64];
	char mid_local[2 * DSN_ID_MAX + 32], mid_host[DSN_ID_MAX + 1], tok[DSN_ID_MAX + 1];
	char boundary[DSN_BOUNDARY_MAX + 8];
	struct sl_buf parts[3] = { { 0 }, { 0 }, { 0 } };
	bool any_failed = false, all_delayed = true, eight_bit[3] = { false };
	const char *subject;
	size_t n_parts = 2;
	int rc;

	if (!in || !out || !in->reporting_mta || !*in->reporting_mta || !in->mail_from ||
	    !*in->mail_from || !in->rcpts || in->n_rcpts == 0)
		return -EINVAL;
	for (size_t i = 0; i < in->n_rcpts; i++) {
		const struct dsn_rcpt *r = &in->rcpts[i];

		if (!r->addr || !*r->addr || !dsn_valid_status(r->status) ||
		    !dsn_valid_action(r->action))
			return -EINVAL;
		if (strcmp(r->action, "failed") == 0)
			any_failed = true;
		if (strcmp(r->action, "delayed") != 0)
			all_delayed = false;
	}
	dsn_clean(in->reporting_mta, mta, sizeof mta - 1);
	dsn_clean(in->mail_from, to, sizeof to - 1);

	rc = dsn_human(&parts[0], in, mta, any_failed, all_delayed);
	if (rc)
		goto fail;
	rc = dsn_status(&parts[1], in, mta);
	if (rc)
		goto fail;
	if (in->original && in->original_len > 0) {
		rc = dsn_headers(&parts[2], in->original, in->original_len);
		if (rc)
			goto fail;
		n_parts = 3;
	}
	for (size_t i = 0; i < n_parts; i++)
		eight_bit[i] = dsn_8bit(&parts[i]);
	dsn_boundary(in, parts, n_parts, boundary, sizeof boundary);

	if (all_delayed)
		subject = "Delayed Mail (still being retried)";
	else if (any_failed)
		subject = "Undelivered Mail Returned to Sender";
	else
		subject = "Successful Mail Delivery Report";
	dsn_date(in->now_ms, date, sizeof date);
	dsn_token(in->original_id && *in->original_id ? in->original_id : "noid", tok, 32);
	snprintf(mid_local, sizeof mid_local, "dsn.%" PRIu64 ".%s", in->now_ms, tok);
	if (in->boundary_seed && *in->boundary_seed) {
		size_t l = strlen(mid_local);

		dsn_token(in->boundary_seed, tok, 32);
		snprintf(mid_local + l, sizeof mid_local - l, ".%s", tok);
	}
	dsn_token(in->reporting_mta, mid_host, DSN_ID_MAX);

	rc = sl_buf_appendf(out,
		"From: MAILER-DAEMON@%s (Mail Delivery System)\r\n"
		"To: <%s>\r\n"
		"Subject: %s\r\n"
		"Date: %s\r\n"
		"Message-ID: <%s@%s>\r\n"
		"MIME-Version: 1.0\r\n"
		"Auto-Submitted: auto-replied\r\n"
		"Content-Type: multipart/report; report-type=delivery-status;\r\n"
		"\tboundary=\"%s\"\r\n"
		"%s"
		"\r\n"
		"This is a MIME-encapsulated message.\r\n"
		"\r\n"
		"--%s\r\n"
		"Content-Description: Notification\r\n"
		"Content-Type: text/plain; charset=%s\r\n"
		"%s"
		"\r\n",
		mta, to, subject, date, mid_local, mid_host, boundary,
		eight_bit[0] || eight_bit[1] || eight_bit[2] ? "Content-Transfer-Encoding: 8bit\r\n" : "",
		boundary, eight_bit[0] ? "utf-8" : "us-ascii",
		eight_bit[0] ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	if (!rc)
		rc = sl_buf_append(out, sl_buf_head(&parts[0]), sl_buf_avail(&parts[0]));
	if (!rc)
		rc = sl_buf_appendf(out,
			"\r\n--%s\r\n"
			"Content-Description: Delivery report\r\n"
			"Content-Type: message/delivery-status\r\n"
			"%s"
			"\r\n",
			boundary, eight_bit[1] ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	if (!rc)
		rc = sl_buf_append(out, sl_buf_head(&parts[1]), sl_buf_avail(&parts[1]));
	if (!rc && n_parts == 3) {
		rc = sl_buf_appendf(out,
			"\r\n--%s\r\n"
			"Content-Description: Undelivered Message Headers\r\n"
			"Content-Type: text/rfc822-headers\r\n"
			"%s"
			"\r\n",
			boundary, eight_bit[2] ? "Content-Transfer-Encoding: 8bit\r\n" : "");
		if (!rc)
			rc = sl_buf_append(out, sl_buf_head(&parts[2]), sl_buf_avail(&parts[2]));
	}
	if (!rc)
		rc = sl_buf_appendf(out, "\r\n--%s--\r\n", boundary);
fail:
	for (size_t i = 0; i < 3; i++)
		sl_buf_free(&parts[i]);
	return rc;
}
