/* test_dsn.c — structure and safety of RFC 3464 DSNs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "dsn.h"

static const char original[] =
	"Received: from client.example by mta.example; Tue, 14 Nov 2023 21:00:00 +0000\r\n"
	"From: Alice <alice@example.org>\r\n"
	"To: bob@example.com, carol@example.net\r\n"
	"Subject: quarterly\r\n"
	"\tnumbers\r\n"
	"Message-ID: <orig-1@example.org>\r\n"
	"\r\n"
	"SECRET BODY LINE\r\n"
	"--=_sluice_Q1.1700000000000\r\n";

static const struct dsn_rcpt two_failed[] = {
	{ .addr = "bob@example.com", .status = "5.1.1",
	  .diagnostic = "smtp; 550 5.1.1 User unknown", .remote_mta = "mx.example.com",
	  .action = "failed" },
	{ .addr = "carol@example.net", .status = "5.4.4", .diagnostic = "no MX or A record",
	  .remote_mta = NULL, .action = "failed" },
};

static struct dsn_info base_info(void)
{
	return (struct dsn_info){
		.reporting_mta = "mta.example",
		.mail_from = "alice@example.org",
		.original_id = "Q1",
		.arrival_ms = 1699995600000ull, /* Tue, 14 Nov 2023 21:00:00 */
		.now_ms = 1700000000123ull,     /* Tue, 14 Nov 2023 22:13:20 */
		.rcpts = two_failed,
		.n_rcpts = 2,
		.original = original,
		.original_len = sizeof original - 1,
		.boundary_seed = "Q1.1700000000000",
	};
}

/* NUL-terminated copy of the built message. */
static char *build(const struct dsn_info *in)
{
	struct sl_buf b = { 0 };
	char *s;

	assert_int_equal(dsn_build(in, &b), 0);
	s = malloc(sl_buf_avail(&b) + 1);
	assert_non_null(s);
	memcpy(s, sl_buf_head(&b), sl_buf_avail(&b));
	s[sl_buf_avail(&b)] = '\0';
	assert_int_equal(strlen(s), sl_buf_avail(&b)); /* no NUL inside */
	sl_buf_free(&b);
	return s;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* Every line ends in CRLF, no bare CR or LF, no line over 998 octets. */
static void assert_crlf_only(const char *s)
{
	size_t line = 0;

	assert_true(strlen(s) >= 2);
	assert_memory_equal(s + strlen(s) - 2, "\r\n", 2);
	for (const char *p = s; *p; p++) {
		if (*p == '\r') {
			assert_int_equal(p[1], '\n');
			p++;
			line = 0;
		} else {
			assert_int_not_equal(*p, '\n');
			line++;
			assert_true(line <= 998);
		}
	}
}

/* The boundary from the top-level Content-Type, into out. */
static void get_boundary(const char *msg, char *out, size_t len)
{
	const char *p = strstr(msg, "boundary=\"");
	const char *e;

	assert_non_null(p);
	p += strlen("boundary=\"");
	e = strchr(p, '"');
	assert_non_null(e);
	assert_true((size_t)(e - p) < len);
	assert_true(e - p <= 70);
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
}

/* The top-level header section (up to the first blank line). */
static char *top_headers(const char *msg)
{
	const char *e = strstr(msg, "\r\n\r\n");

	assert_non_null(e);
	return strndup(msg, (size_t)(e - msg) + 2);
}

static void test_structure(void **state)
{
	struct dsn_info in = base_info();
	char b[128], delim[160], *msg, *hdr;
	const char *p1, *p2, *p3, *end;

	(void)state;
	msg = build(&in);
	assert_crlf_only(msg);
	hdr = top_headers(msg);
	assert_true(strncmp(hdr, "From: MAILER-DAEMON@mta.example", 31) == 0);
	assert_non_null(strstr(hdr, "\r\nTo: <alice@example.org>\r\n"));
	assert_non_null(strstr(hdr, "\r\nSubject: Undelivered Mail Returned to Sender\r\n"));
	assert_non_null(strstr(hdr, "\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
	assert_non_null(strstr(hdr, "\r\nMessage-ID: <dsn.1700000000123.Q1."));
	assert_non_null(strstr(hdr, "@mta.example>\r\n"));
	assert_non_null(strstr(hdr, "\r\nMIME-Version: 1.0\r\n"));
	assert_non_null(strstr(hdr, "\r\nAuto-Submitted: auto-replied\r\n"));
	assert_non_null(strstr(hdr,
		"\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\""));
	assert_null(strstr(hdr, "Content-Transfer-Encoding")); /* all 7-bit */

	/* The seed occurs in the original's body, but only headers are
	 * included, so the first candidate is used. */
	get_boundary(msg, b, sizeof b);
	assert_string_equal(b, "=_sluice_Q1.1700000000000");
	snprintf(delim, sizeof delim, "\r\n--%s\r\n", b);
	assert_int_equal(count(msg, delim), 3);
	snprintf(delim, sizeof delim, "\r\n--%s--\r\n", b);
	end = strstr(msg, delim);
	assert_non_null(end);
	assert_string_equal(end, delim); /* the close delimiter ends the message */

	p1 = strstr(msg, "Content-Type: text/plain; charset=us-ascii\r\n");
	p2 = strstr(msg, "Content-Type: message/delivery-status\r\n");
	p3 = strstr(msg, "Content-Type: text/rfc822-headers\r\n");
	assert_non_null(p1);
	assert_non_null(p2);
	assert_non_null(p3);
	assert_true(p1 < p2 && p2 < p3 && p3 < end);

	/* Human part names both recipients and the reasons. */
	assert_non_null(strstr(p1, "<bob@example.com>: could not be delivered\r\n"));
	assert_non_null(strstr(p1, "    Remote host: mx.example.com\r\n"));
	assert_true(strstr(p1, "550 5.1.1 User unknown") < p2);

	/* Machine-readable part. */
	assert_non_null(strstr(p2, "\r\n\r\nReporting-MTA: dns; mta.example\r\n"
				   "X-Sluice-Queue-ID: Q1\r\n"
				   "Arrival-Date: Tue, 14 Nov 2023 21:00:00 +0000\r\n"
				   "\r\n"
				   "Final-Recipient: rfc822; bob@example.com\r\n"
				   "Action: failed\r\n"
				   "Status: 5.1.1\r\n"
				   "Remote-MTA: dns; mx.example.com\r\n"
				   "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
				   "Last-Attempt-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
				   "\r\n"
				   "Final-Recipient: rfc822; carol@example.net\r\n"
				   "Action: failed\r\n"
				   "Status: 5.4.4\r\n"
				   "Diagnostic-Code: smtp; no MX or A record\r\n"
				   "Last-Attempt-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
	assert_int_equal(count(msg, "Final-Recipient:"), 2);

	/* Headers part: exactly the original header section, no body. */
	assert_non_null(strstr(p3, "\r\n\r\nReceived: from client.example by mta.example;"));
	assert_non_null(strstr(p3, "Subject: quarterly\r\n\tnumbers\r\nMessage-ID: <orig-1@example.org>\r\n"
				   "\r\n--"));
	assert_null(strstr(msg, "SECRET BODY"));

	free(hdr);
	free(msg);
}

static void test_lf_original_headers_only(void **state)
{
	static const char lf[] = "From: a@example.org\nTo: b@example.com\r\nSubject: x\r"
				 "X-Odd: cr only\n\nbody must not appear\n";
	struct dsn_info in = base_info();
	char *msg;

	(void)state;
	in.original = lf;
	in.original_len = sizeof lf - 1;
	msg = build(&in);
	assert_crlf_only(msg);
	assert_non_null(strstr(msg, "\r\n\r\nFrom: a@example.org\r\nTo: b@example.com\r\n"
				    "Subject: x\r\nX-Odd: cr only\r\n\r\n--"));
	assert_null(strstr(msg, "body must not appear"));
	free(msg);

	/* A header-only message without a final newline. */
	in.original = "Subject: only";
	in.original_len = strlen(in.original);
	msg = build(&in);
	assert_crlf_only(msg);
	assert_non_null(strstr(msg, "\r\n\r\nSubject: only\r\n\r\n--"));
	free(msg);

	/* No original: two parts. */
	in.original = NULL;
	in.original_len = 0;
	msg = build(&in);
	assert_null(strstr(msg, "text/rfc822-headers"));
	assert_int_equal(count(msg, "\r\n--=_sluice_"), 3); /* 2 delimiters + close */
	free(msg);
}

static void test_sanitise(void **state)
{
	char diag[5000], *msg;
	struct dsn_rcpt r[2] = {
		{ .addr = "bob@example.com\r\nBcc: victim@example.net", .status = "5.7.1",
		  .diagnostic = "smtp; 550-5.7.1 first line\r\n550 5.7.1 second line",
		  .remote_mta = "mx.example.com\nX-Injected: 1", .action = "failed" },
		{ .addr = "x@example.com", .status = "5.0.0", .diagnostic = diag,
		  .action = "failed" },
	};
	struct dsn_info in = base_info();

	(void)state;
	memset(diag, 'A', sizeof diag - 1);
	diag[sizeof diag - 1] = '\0';
	in.rcpts = r;
	in.mail_from = "alice@example.org>\r\nBcc: <everyone@example.net";
	in.reporting_mta = "mta.example\r\nReply-To: evil@example.net";
	in.original_id = "Q1\r\nX-Evil: 1";
	in.boundary_seed = "seed\"\r\n; evil";
	msg = build(&in);
	assert_crlf_only(msg);
	assert_null(strstr(msg, "\r\nBcc:"));
	assert_null(strstr(msg, "\r\nReply-To:"));
	assert_null(strstr(msg, "\r\nX-Injected:"));
	assert_null(strstr(msg, "\r\nX-Evil:"));
	assert_non_null(strstr(msg, "\r\nTo: <alice@example.org> Bcc: <everyone@example.net>\r\n"));
	assert_non_null(strstr(msg, "Final-Recipient: rfc822; bob@example.com Bcc: victim@example.net\r\n"));
	assert_non_null(strstr(msg, "Diagnostic-Code: smtp; 550-5.7.1 first line 550 5.7.1 second line\r\n"));
	assert_non_null(strstr(msg, "Remote-MTA: dns; mx.example.com X-Injected: 1\r\n"));
	/* The long diagnostic is cut at DSN_FIELD_MAX. */
	{
		char want[DSN_FIELD_MAX + 40];

		snprintf(want, sizeof want, "Diagnostic-Code: smtp; %.*s\r\n", DSN_FIELD_MAX, diag);
		assert_non_null(strstr(msg, want));
	}
	/* Message-ID and boundary are plain tokens. */
	{
		char b[128];

		get_boundary(msg, b, sizeof b);
		assert_null(strpbrk(b, "\" ;\r\n"));
		assert_non_null(strstr(msg, "Message-ID: <dsn.1700000000123.Q1__X-Evil__1.seed"));
	}
	free(msg);
}

static void test_boundary_collision(void **state)
{
	static const char hostile[] = "Subject: hi\r\n"
				      "X-Trap: --=_sluice_S\r\n"
				      "X-Trap2: =_sluice_S.1\r\n"
				      "\r\nbody\r\n";
	struct dsn_info in = base_info();
	char b[128], *msg;

	(void)state;
	in.original = hostile;
	in.original_len = sizeof hostile - 1;
	in.boundary_seed = "S";
	msg = build(&in);
	get_boundary(msg, b, sizeof b);
	assert_string_equal(b, "=_sluice_S.2");
	assert_crlf_only(msg);
	free(msg);
}

static void test_delayed_and_8bit(void **state)
{
	static const char utf8[] = "Subject: Gr\xc3\xbc\xc3\x9f" "e\r\n\r\nbody\r\n";
	static const struct dsn_rcpt delayed[] = {
		{ .addr = "bob@example.com", .status = "4.4.1",
		  .diagnostic = "smtp; 421 4.4.1 try later", .action = "delayed" },
	};
	struct dsn_info in = base_info();
	char *msg, *hdr;

	(void)state;
	in.rcpts = delayed;
	in.n_rcpts = 1;
	in.original = utf8;
	in.original_len = sizeof utf8 - 1;
	in.boundary_seed = NULL;
	msg = build(&in);
	assert_crlf_only(msg);
	hdr = top_headers(msg);
	assert_non_null(strstr(hdr, "Subject: Delayed Mail (still being retried)\r\n"));
	assert_non_null(strstr(hdr, "Content-Transfer-Encoding: 8bit\r\n"));
	assert_non_null(strstr(msg, "Action: delayed\r\nStatus: 4.4.1\r\n"));
	assert_non_null(strstr(msg, "not delivered yet"));
	assert_non_null(strstr(msg, "Content-Type: text/rfc822-headers\r\n"
				    "Content-Transfer-Encoding: 8bit\r\n"));
	/* No seed: built from the queue id and the time. */
	assert_non_null(strstr(hdr, "boundary=\"=_sluice_Q1.1700000000123\""));
	free(hdr);
	free(msg);
}

static void test_invalid(void **state)
{
	struct dsn_rcpt r = two_failed[0];
	struct dsn_info in = base_info();
	struct sl_buf b = { 0 };
	static const char *const bad_status[] = { "5.1", "5.1.1x", "6.1.1", "5..1", "5.1.1234",
						  "", "5.1.1 ", NULL };
	static const char *const bad_action[] = { "bounced", "Failed", "", NULL };

	(void)state;
	in.mail_from = "";
	assert_int_equal(dsn_build(&in, &b), -EINVAL);
	in.mail_from = NULL;
	assert_int_equal(dsn_build(&in, &b), -EINVAL);
	in = base_info();
	in.n_rcpts = 0;
	assert_int_equal(dsn_build(&in, &b), -EINVAL);
	in = base_info();
	in.reporting_mta = "";
	assert_int_equal(dsn_build(&in, &b), -EINVAL);

	in = base_info();
	in.rcpts = &r;
	in.n_rcpts = 1;
	for (size_t i = 0; i < sizeof bad_status / sizeof bad_status[0]; i++) {
		r.status = bad_status[i];
		assert_int_equal(dsn_build(&in, &b), -EINVAL);
	}
	r = two_failed[0];
	for (size_t i = 0; i < sizeof bad_action / sizeof bad_action[0]; i++) {
		r.action = bad_action[i];
		assert_int_equal(dsn_build(&in, &b), -EINVAL);
	}
	r = two_failed[0];
	r.addr = "";
	assert_int_equal(dsn_build(&in, &b), -EINVAL);
	assert_int_equal(sl_buf_avail(&b), 0); /* validation happens before output */
	r = two_failed[0];
	r.status = "2.0.0";
	r.action = "delivered";
	assert_int_equal(dsn_build(&in, &b), 0);
	sl_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_lf_original_headers_only),
		cmocka_unit_test(test_sanitise),
		cmocka_unit_test(test_boundary_collision),
		cmocka_unit_test(test_delayed_and_8bit),
		cmocka_unit_test(test_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
