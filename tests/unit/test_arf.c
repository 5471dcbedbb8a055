/*
 * test_arf.c — feedback report parsing over tests/unit/samples/arf: RFC
 * 5965 reports (generic, Yahoo, AOL SComp, a folded CRLF fraud report),
 * Microsoft JMRP and AOL's legacy format; and what is not a report.
 * Run from the repository root; SLUICE_SAMPLES overrides the directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arf.h"
#include "err.h"

static char *slurp(const char *sub, const char *name, size_t *len)
{
	const char *dir = getenv("SLUICE_SAMPLES");
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof path, "%s/%s/%s", dir ? dir : "tests/unit/samples", sub, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	*len = (size_t)n;
	return buf;
}

struct arf_case {
	const char *file;
	enum arf_format format;
	const char *feedback_type, *mail_from, *rcpt_to, *source_ip, *arrival_date,
		*reported_domain, *user_agent, *message_id;
};

static const struct arf_case cases[] = {
	{ "rfc5965_abuse.eml", ARF_RFC5965, "abuse", "bounces+t1.s2.m9f3@bounce.sluice.example",
	  "user@isp.example", "198.51.100.7", "Mon, 23 Nov 2026 09:12:02 +0000", "shop.example",
	  "SomeGenerator/1.0", "<20261123091201.abc123@shop.example>" },
	{ "yahoo_arf.eml", ARF_RFC5965, "abuse", "bounces+t1.s2.m9f3@bounce.sluice.example",
	  "someone@yahoo.com", "", "Mon, 23 Nov 2026 09:12:02 +0000", "shop.example",
	  "Yahoo!-Mail-Feedback/2.0", "<20261123091201.abc123@shop.example>" },
	{ "aol_scomp_arf.eml", ARF_RFC5965, "abuse", "bounces+t1.s2.m9f3@bounce.sluice.example", "",
	  "198.51.100.7", "Mon, 23 Nov 2026 04:12:02 -0500 (EST)", "shop.example", "AOL SComp",
	  "<20261123091201.abc123@shop.example>" },
	{ "fraud_folded.eml", ARF_RFC5965, "fraud", "bounces+t7.s1.c3d4@bounce.sluice.example",
	  "victim@mailbox.example", "2001:db8::25", "Tue, 24 Nov 2026 08:00:00 +0100",
	  "bank-login.example", "Mailbox-Feedback/3.2 (compatible; ARF)",
	  "<phish-42@bank-login.example>" },
	{ "jmrp_hotmail.eml", ARF_JMRP, "abuse", "bounces+t1.s2.m9f3@bounce.sluice.example",
	  "complainer@hotmail.com", "198.51.100.7", "Mon, 23 Nov 2026 01:12:02 -0800",
	  "shop.example", "Microsoft JMRP", "<20261123091201.abc123@shop.example>" },
	{ "aol_legacy.eml", ARF_AOL, "abuse", "bounces+t3.s1.a1b2@bounce.sluice.example", "",
	  "198.51.100.9", "Mon, 23 Nov 2026 04:12:02 -0500", "shop.example", "",
	  "<20261123091201.abc123@shop.example>" },
};

static void test_samples(void **state)
{
	struct arf_report r;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const struct arf_case *c = &cases[i];
		size_t len;
		char *msg = slurp("arf", c->file, &len);

		assert_int_equal(arf_parse(msg, len, &r), 0);
		assert_int_equal(r.format, c->format);
		assert_string_equal(r.feedback_type, c->feedback_type);
		assert_string_equal(r.original_mail_from, c->mail_from);
		assert_string_equal(r.original_rcpt_to, c->rcpt_to);
		assert_string_equal(r.source_ip, c->source_ip);
		assert_string_equal(r.arrival_date, c->arrival_date);
		assert_string_equal(r.reported_domain, c->reported_domain);
		assert_string_equal(r.user_agent, c->user_agent);
		assert_string_equal(r.message_id, c->message_id);
		free(msg);
	}
}

static void test_not_reports(void **state)
{
	static const char *const bounces[] = { "postfix_userunknown.eml", "gmail_userunknown.eml",
					       "o365_recipientnotfound.eml",
					       "vacation_autosubmitted.eml", "not_a_bounce.eml",
					       "appliance_base64_barracuda.eml" };
	static const char plain[] = "From: a@b\nSubject: hi\n\nhello\n";
	static const char fwd[] = "From: friend@aol.com\nContent-Type: multipart/mixed; "
				  "boundary=x\n\n--x\nContent-Type: text/plain\n\nlook at "
				  "this\n--x\nContent-Type: message/rfc822\n\nFrom: "
				  "a@b\nSubject: fwd\n\nbody\n--x--\n";
	struct arf_report r;

	(void)state;
	for (size_t i = 0; i < sizeof bounces / sizeof *bounces; i++) {
		size_t len;
		char *msg = slurp("bounce", bounces[i], &len);
		assert_int_equal(arf_parse(msg, len, &r), SL_EPROTO);
		assert_int_equal(r.format, ARF_NONE);
		free(msg);
	}
	assert_int_equal(arf_parse(plain, sizeof plain - 1, &r), SL_EPROTO);
	assert_int_equal(arf_parse(fwd, sizeof fwd - 1, &r), SL_EPROTO);
	assert_int_equal(arf_parse("", 0, &r), SL_EPROTO);
	assert_string_equal(arf_format_name(ARF_JMRP), "jmrp");
	assert_string_equal(arf_format_name(ARF_NONE), "none");
}

/* A bare feedback-report part without the original: still a report. */
static void test_minimal(void **state)
{
	static const char m[] =
		"Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n"
		"\r\n--b\r\nContent-Type: text/plain\r\n\r\nspam\r\n"
		"--b\r\nContent-Type: message/feedback-report\r\n\r\n"
		"Feedback-Type: Abuse\r\nUser-Agent: x/1\r\nVersion: 1\r\n"
		"Source-IP: [203.0.113.9]\r\n--b--\r\n";
	struct arf_report r;

	(void)state;
	assert_int_equal(arf_parse(m, sizeof m - 1, &r), 0);
	assert_int_equal(r.format, ARF_RFC5965);
	assert_string_equal(r.feedback_type, "abuse");
	assert_string_equal(r.source_ip, "203.0.113.9");
	assert_string_equal(r.message_id, "");
}

static void test_truncated(void **state)
{
	struct arf_report r;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		size_t len;
		char *msg = slurp("arf", cases[i].file, &len);
		for (size_t n = 0; n < len; n += 7) {
			char *cut = malloc(n ? n : 1);
			assert_non_null(cut);
			memcpy(cut, msg, n);
			int rc = arf_parse(cut, n, &r);
			assert_true(rc == 0 || rc == SL_EPROTO);
			free(cut);
		}
		free(msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples),
		cmocka_unit_test(test_not_reports),
		cmocka_unit_test(test_minimal),
		cmocka_unit_test(test_truncated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
