/* test_smtp_reply.c — the SMTP reply parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "smtp_reply.h"

static int parse(const char *s, struct smtp_reply *r, size_t *used)
{
	return smtp_reply_parse(s, strlen(s), r, used);
}

static void test_single_line(void **state)
{
	struct smtp_reply r;
	size_t used;
	const char *s = "250 2.1.0 Sender OK\r\nNEXT";

	(void)state;
	assert_int_equal(parse(s, &r, &used), 1);
	assert_int_equal(used, 21);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.enhanced, "2.1.0");
	assert_string_equal(r.text, "Sender OK");
	assert_int_equal(r.n_lines, 1);
}

static void test_no_text_and_no_enhanced(void **state)
{
	struct smtp_reply r;
	size_t used;

	(void)state;
	assert_int_equal(parse("354\r\n", &r, &used), 1);
	assert_int_equal(r.code, 354);
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "");
	assert_int_equal(used, 5);
	assert_int_equal(parse("220 mx.example.net ESMTP ready\r\n", &r, &used), 1);
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "mx.example.net ESMTP ready");
	/* only the status, no text */
	assert_int_equal(parse("250 2.0.0\r\n", &r, &used), 1);
	assert_string_equal(r.enhanced, "2.0.0");
	assert_string_equal(r.text, "");
}

static void test_multi_line(void **state)
{
	struct smtp_reply r;
	size_t used;
	const char *s = "550-5.1.1 The email account that you tried to reach does\r\n"
			"550-5.1.1 not exist. Please try\r\n"
			"550 5.1.1 double-checking. x12si\r\n";

	(void)state;
	assert_int_equal(parse(s, &r, &used), 1);
	assert_int_equal(used, strlen(s));
	assert_int_equal(r.code, 550);
	assert_int_equal(r.n_lines, 3);
	assert_string_equal(r.enhanced, "5.1.1");
	assert_string_equal(r.text, "The email account that you tried to reach does not exist. "
				    "Please try double-checking. x12si");
}

static void test_bare_lf_and_ehlo_lines(void **state)
{
	struct smtp_reply r;
	size_t used, pos = 0, tl;
	const char *s = "250-mx.example.net\n250-PIPELINING\n250-SIZE 1000\n250 8BITMIME\n";
	const char *t;

	(void)state;
	assert_int_equal(parse(s, &r, &used), 1);
	assert_int_equal(used, strlen(s));
	assert_int_equal(r.n_lines, 4);
	assert_string_equal(r.text, "mx.example.net PIPELINING SIZE 1000 8BITMIME");
	assert_int_equal(smtp_reply_next_line(s, used, &pos, &t, &tl), 1);
	assert_int_equal(tl, 14);
	assert_memory_equal(t, "mx.example.net", 14);
	assert_int_equal(smtp_reply_next_line(s, used, &pos, &t, &tl), 1);
	assert_int_equal(smtp_reply_next_line(s, used, &pos, &t, &tl), 1);
	assert_int_equal(tl, 9);
	assert_memory_equal(t, "SIZE 1000", 9);
	assert_int_equal(smtp_reply_next_line(s, used, &pos, &t, &tl), 1);
	assert_int_equal(smtp_reply_next_line(s, used, &pos, &t, &tl), 0);
}

static void test_incomplete(void **state)
{
	struct smtp_reply r;
	size_t used, i;
	const char *s = "250-first\r\n250 last\r\n";

	(void)state;
	for (i = 0; i < strlen(s); i++)
		assert_int_equal(smtp_reply_parse(s, i, &r, &used), 0);
	assert_int_equal(smtp_reply_parse(s, strlen(s), &r, &used), 1);
}

static void test_scan_incremental(void **state)
{
	const char *s = "250-a\r\n250-b\n250 c\r\n421 x\r\n";
	size_t st = 0, i;
	int rc = 0;

	(void)state;
	for (i = 0; i <= strlen(s); i++) {
		rc = smtp_reply_scan(s, i, &st);
		if (rc)
			break;
	}
	assert_int_equal(rc, 1);
	assert_int_equal(st, 20);
	assert_int_equal(i, 20);
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
		"hello\r\n",            /* not a code */
		"25\r\n",               /* short code */
		"2500 x\r\n",           /* four digits */
		"150 x\r\n",            /* first digit out of range */
		"650 x\r\n",            /* first digit out of range */
		"2x0 x\r\n",            /* non-digit */
		"250_x\r\n",            /* bad separator */
		"250-a\r\n251 b\r\n",   /* mixed codes */
		"250-a\r\n550-b\r\n",   /* mixed codes, detected early */
		"\r\n",                 /* empty line */
		"250\r\r\n",            /* stray CR after code */
		"250-ok\r\nxyz",        /* garbage continuation, partial */
		"X",                    /* partial garbage fails at once */
	};
	struct smtp_reply r;
	size_t used, i;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = parse(bad[i], &r, &used);

		if (rc != SL_EPROTO)
			fail_msg("case %zu (%s) gave %d", i, bad[i], rc);
	}
}

static void test_line_limits(void **state)
{
	static char big[SMTP_REPLY_MAX + 4096];
	struct smtp_reply r;
	size_t used, n;

	(void)state;
	/* A line of exactly SMTP_REPLY_LINE_MAX bytes with CRLF is fine. */
	memset(big, 'a', sizeof big);
	memcpy(big, "250 ", 4);
	big[SMTP_REPLY_LINE_MAX - 2] = '\r';
	big[SMTP_REPLY_LINE_MAX - 1] = '\n';
	assert_int_equal(smtp_reply_parse(big, SMTP_REPLY_LINE_MAX, &r, &used), 1);
	assert_int_equal(strlen(r.text), sizeof r.text - 1);
	/* Without a line end within the limit: malformed, not "need more". */
	memset(big, 'a', sizeof big);
	memcpy(big, "250 ", 4);
	assert_int_equal(smtp_reply_parse(big, SMTP_REPLY_LINE_MAX - 1, &r, &used), 0);
	assert_int_equal(smtp_reply_parse(big, SMTP_REPLY_LINE_MAX, &r, &used), SL_EPROTO);
	/* Endless continuation lines: malformed after SMTP_REPLY_MAX. */
	for (n = 0; n + 8 <= sizeof big; n += 8)
		memcpy(big + n, "250-xx\r\n", 8);
	assert_int_equal(smtp_reply_parse(big, n, &r, &used), SL_EPROTO);
}

static void test_truncation_utf8(void **state)
{
	char s[3000];
	struct smtp_reply r;
	size_t used, n = 0, i;

	(void)state;
	/* "250 " + "é" repeated: 2-byte characters straddle byte 1023. */
	n += (size_t)sprintf(s, "250 ");
	for (i = 0; i < 700; i++) {
		s[n++] = (char)0xc3;
		s[n++] = (char)0xa9;
	}
	s[n++] = '\r';
	s[n++] = '\n';
	assert_int_equal(smtp_reply_parse(s, n, &r, &used), 1);
	assert_int_equal(strlen(r.text), 1022); /* 511 whole characters */
	assert_int_equal((unsigned char)r.text[1021], 0xa9);
}

static void test_control_bytes_sanitized(void **state)
{
	static const char s[] = "550 5.7.1 bad\0byte\there\x1b[0m\r\n";
	struct smtp_reply r;
	size_t used;

	(void)state;
	assert_int_equal(smtp_reply_parse(s, sizeof s - 1, &r, &used), 1);
	assert_string_equal(r.text, "bad byte here [0m");
}

static void test_enhanced(void **state)
{
	char e[16];

	(void)state;
	assert_int_equal(smtp_reply_parse_enhanced("5.1.1 User unknown", 18, e), 6);
	assert_string_equal(e, "5.1.1");
	assert_int_equal(smtp_reply_parse_enhanced("4.7.28", 6, e), 6);
	assert_string_equal(e, "4.7.28");
	assert_int_equal(smtp_reply_parse_enhanced("2.999.999  x", 12, e), 11);
	assert_string_equal(e, "2.999.999");
	assert_int_equal(smtp_reply_parse_enhanced("3.1.1 x", 7, e), 0);
	assert_string_equal(e, "");
	assert_int_equal(smtp_reply_parse_enhanced("5.1 x", 5, e), 0);
	assert_int_equal(smtp_reply_parse_enhanced("5.1.1x", 6, e), 0);
	assert_int_equal(smtp_reply_parse_enhanced("5.1111.1 x", 10, e), 0);
	assert_int_equal(smtp_reply_parse_enhanced("5..1 x", 6, e), 0);
}

static void test_enhanced_class_mismatch(void **state)
{
	struct smtp_reply r;
	size_t used;

	(void)state;
	assert_int_equal(parse("550 4.1.1 odd\r\n", &r, &used), 1);
	assert_string_equal(r.enhanced, "");
	assert_string_equal(r.text, "4.1.1 odd");
}

static void test_format(void **state)
{
	struct smtp_reply r;
	size_t used;
	char out[64];

	(void)state;
	assert_int_equal(parse("550 5.1.1 User unknown\r\n", &r, &used), 1);
	assert_int_equal(smtp_reply_format(&r, out, sizeof out), 22);
	assert_string_equal(out, "550 5.1.1 User unknown");
	assert_int_equal(parse("250 ok\r\n", &r, &used), 1);
	smtp_reply_format(&r, out, sizeof out);
	assert_string_equal(out, "250 ok");
	assert_int_equal(parse("354\r\n", &r, &used), 1);
	smtp_reply_format(&r, out, sizeof out);
	assert_string_equal(out, "354");
	assert_int_equal(parse("250 2.0.0\r\n", &r, &used), 1);
	smtp_reply_format(&r, out, sizeof out);
	assert_string_equal(out, "250 2.0.0");
	assert_int_equal(smtp_reply_format(&r, out, 4), 9);
	assert_string_equal(out, "250");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_line),
		cmocka_unit_test(test_no_text_and_no_enhanced),
		cmocka_unit_test(test_multi_line),
		cmocka_unit_test(test_bare_lf_and_ehlo_lines),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_scan_incremental),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_line_limits),
		cmocka_unit_test(test_truncation_utf8),
		cmocka_unit_test(test_control_bytes_sanitized),
		cmocka_unit_test(test_enhanced),
		cmocka_unit_test(test_enhanced_class_mismatch),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
