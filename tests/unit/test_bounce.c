/*
 * test_bounce.c — bounce classification: the shipped rules over a table of
 * real-world SMTP replies, every sample bounce in tests/unit/samples/bounce
 * (Postfix, Exim, Sendmail, qmail, Exchange/Office 365, Gmail, Yahoo,
 * auto-replies), ARF via the classifier, rules-file errors and order, and
 * truncated inputs.
 *
 * Run from the repository root (as `make unit` does); SLUICE_SAMPLES and
 * SLUICE_BOUNCE_RULES override the sample directory and rules file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bounce.h"
#include "err.h"

static struct bounce_rules *rules;

static const char *samples_dir(void)
{
	const char *e = getenv("SLUICE_SAMPLES");
	return e ? e : "tests/unit/samples";
}

static char *slurp(const char *sub, const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof path, "%s/%s/%s", samples_dir(), sub, name);
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

static int setup(void **state)
{
	const char *p = getenv("SLUICE_BOUNCE_RULES");
	char err[256];
	int rc;

	(void)state;
	rc = bounce_rules_load(p ? p : "configs/bounce-rules.conf", &rules, err, sizeof err);
	if (rc < 0)
		fprintf(stderr, "rules: %s\n", err);
	return rc < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	bounce_rules_free(rules);
	return 0;
}

/* --- bare replies --------------------------------------------------------- */

struct reply_case {
	const char *reply;
	const char *reason;
	int hard;
};

static const struct reply_case replies[] = {
	{ "550 5.1.1 <x@example.net>: Recipient address rejected: User unknown in virtual mailbox table",
	  "userunknown", 1 },
	{ "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
	  "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
	  "550-5.1.1 unnecessary spaces. For more information, go to\r\n"
	  "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si2 - gsmtp",
	  "userunknown", 1 },
	{ "452-4.2.2 The recipient's inbox is out of storage space. Please direct\r\n"
	  "452-4.2.2 the recipient to\r\n"
	  "452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp a1si2 - gsmtp",
	  "mailboxfull", 0 },
	{ "421-4.7.28 Gmail has detected an unusual rate of mail originating from your IP\n"
	  "421-4.7.28 address. To protect our users from spam, mail has been temporarily\n"
	  "421 4.7.28 rate limited.",
	  "blocked", 0 },
	{ "421-4.7.0 [198.51.100.7] Our system has detected an unusual rate of unsolicited mail originating from your IP address.",
	  "blocked", 0 },
	{ "550-5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail users, and has been blocked.",
	  "authfailure", 1 },
	{ "550 5.7.26 Unauthenticated email from shop.example is not accepted due to domain's DMARC policy.",
	  "authfailure", 1 },
	{ "421 4.7.0 This message is suspicious due to the very low reputation of the sending domain.",
	  "badreputation", 0 },
	{ "421 4.7.0 [TSS04] Messages from 198.51.100.7 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
	  "rejected", 0 },
	{ "553 5.7.2 [TSS09] All messages from 198.51.100.7 will be permanently deferred; Retrying will NOT succeed.",
	  "rejected", 1 },
	{ "550 5.7.1 Unfortunately, messages from [198.51.100.7] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).",
	  "blocked", 1 },
	{ "550 5.7.606 Access denied, banned sending IP [198.51.100.7].", "blocked", 1 },
	{ "554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using zen.spamhaus.org",
	  "blocked", 1 },
	{ "550 5.7.1 Service unavailable, Client host [198.51.100.7] blocked using Barracuda Reputation",
	  "blocked", 1 },
	{ "553 5.7.1 [BL21] Connections will not be accepted from 198.51.100.7, because the ip is in Spamhaus's list",
	  "blocked", 1 },
	{ "552 5.3.4 Message size exceeds fixed limit", "mesgtoobig", 1 },
	{ "552-5.3.4 Your message exceeded Google's message size limits.", "mesgtoobig", 1 },
	{ "554 5.7.1 Message rejected as spam", "spamdetected", 1 },
	{ "550 5.7.1 Our system has detected that this message is likely unsolicited mail.",
	  "spamdetected", 1 },
	{ "554 5.7.1 <x@other.example>: Relay access denied", "norelaying", 1 },
	{ "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "norelaying", 1 },
	{ "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
	  "userunknown", 1 },
	{ "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", "userunknown", 1 },
	{ "451 4.7.500 Server busy. Please try again later from [198.51.100.7]. (S77714)", "speeding",
	  0 },
	{ "451 4.7.650 The mail server [198.51.100.7] has been temporarily rate limited due to IP reputation.",
	  "badreputation", 0 },
	{ "550 5.7.515 Access denied, sending domain shop.example does not meet the required authentication level.",
	  "authfailure", 1 },
	{ "450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered.",
	  "speeding", 0 },
	{ "550 5.2.1 The email account that you tried to reach is disabled.", "suspend", 1 },
	{ "550 5.1.2 We weren't able to find the recipient domain.", "hostunknown", 1 },
	{ "554 5.4.6 Hop count exceeded - possible mail loop", "networkerror", 1 },
	{ "421 4.7.0 Too many connections from your IP, try again later", "toomanyconn", 0 },
	{ "421 4.7.0 Rate limit exceeded, try again later", "speeding", 0 },
	{ "450 4.7.1 Client host rejected: cannot find your reverse hostname, [198.51.100.7]",
	  "requireptr", 0 },
	{ "550 5.7.25 The IP address sending this message does not have a PTR record setup",
	  "requireptr", 1 },
	{ "554 5.7.0 Reject, id=12345-07 - INFECTED: Eicar-Signature", "virusdetected", 1 },
	{ "530 5.7.0 Must issue a STARTTLS command first", "failedstarttls", 1 },
	{ "500 5.5.1 Command unrecognized: \"XYZZY\"", "syntaxerror", 1 },
	{ "552 5.2.2 Mailbox full", "mailboxfull", 1 },
	{ "550 Requested action not taken: mailbox unavailable", "userunknown", 1 },
	{ "551 User not local; please try <forward@example.org>", "hasmoved", 1 },
	{ "553 5.1.8 <news@shop.example>: Sender address rejected: Domain not found", "rejected", 1 },
	{ "550 5.7.1 <news@shop.example>: Sender address rejected: Access denied", "rejected", 1 },
	{ "451 4.3.0 Temporary local problem - please try later", "systemerror", 0 },
	{ "452 4.3.1 Insufficient system storage", "systemfull", 0 },
	{ "550 5.6.0 Invalid header found", "contenterror", 1 },
	{ "550 5.7.1 Email rejected per DMARC policy for shop.example", "authfailure", 1 },
	{ "550 5.4.7 Delivery time expired", "expired", 1 },
	{ "554 5.7.9 Message not accepted for policy reasons. See https://postmaster.yahooinc.com/error-codes",
	  "policyviolation", 1 },
	{ "554 delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0] - mta1.mail.bf1.yahoo.com",
	  "userunknown", 1 },
	{ "450 4.1.1 <x@example.net>: Recipient address rejected: User unknown in local recipient table",
	  "userunknown", 0 },
	{ "550 5.7.1 Message contains a virus", "virusdetected", 1 },
	{ "421 4.7.0 TLS required for RCPT domain, closing connection.", "failedstarttls", 0 },
	{ "554 5.7.1 Client host rejected: Access denied", "blocked", 1 },
	{ "550 5.7.1 Delivery not authorized, message refused", "securityerror", 1 },
};

static void test_replies(void **state)
{
	struct bounce_result r;
	int bad = 0;

	(void)state;
	assert_true(sizeof replies / sizeof *replies >= 40);
	for (size_t i = 0; i < sizeof replies / sizeof *replies; i++) {
		assert_int_equal(bounce_classify_reply(rules, replies[i].reply, &r), 0);
		if (strcmp(bounce_reason_name(r.reason), replies[i].reason) != 0 ||
		    r.hard != replies[i].hard) {
			fprintf(stderr, "reply %zu: got %s/%s, want %s/%s: %s\n", i,
				bounce_reason_name(r.reason), r.hard ? "hard" : "soft",
				replies[i].reason, replies[i].hard ? "hard" : "soft",
				replies[i].reply);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void test_reply_fields(void **state)
{
	struct bounce_result r;

	(void)state;
	assert_int_equal(bounce_classify_reply(rules, replies[1].reply, &r), 0);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.status, "5.1.1");
	/* continuation prefixes are gone, the text is on one line */
	assert_null(strstr(r.diagnostic, "550-"));
	assert_non_null(strstr(r.diagnostic, "typos or unnecessary spaces"));
	assert_int_equal(strncmp(r.diagnostic, "550 5.1.1 The email", 19), 0);

	assert_int_equal(bounce_classify_reply(rules, replies[0].reply, &r), 0);
	assert_string_equal(r.recipient, "x@example.net");

	/* not a reply: still classified by its text, but flagged */
	assert_int_equal(bounce_classify_reply(rules, "mailbox full", &r), SL_EPROTO);
	assert_string_equal(bounce_reason_name(r.reason), "mailboxfull");
	assert_int_equal(bounce_classify_reply(rules, "", &r), SL_EPROTO);
	assert_int_equal(r.reason, BOUNCE_R_UNDEFINED);
	/* an IP address is not a status */
	assert_int_equal(bounce_classify_reply(rules, "421 from 4.16.55.1 go away", &r), 0);
	assert_string_equal(r.status, "");
}

/* --- whole messages ------------------------------------------------------------ */

struct msg_case {
	const char *file;
	const char *reason;
	const char *recipient;
	const char *status;
	int hard;
	int rc;
};

static const struct msg_case messages[] = {
	{ "postfix_userunknown.eml", "userunknown", "alice@example.net", "5.1.1", 1, 0 },
	{ "postfix_mailboxfull.eml", "mailboxfull", "bob@example.net", "5.2.2", 1, 0 },
	{ "postfix_hostunknown.eml", "hostunknown", "carol@nxdomain.example", "5.4.4", 1, 0 },
	{ "postfix_delayed_timeout.eml", "networkerror", "dave@slow.example", "4.4.1", 0, 0 },
	{ "postfix_delivered.eml", "delivered", "erin@example.org", "2.0.0", 0, 0 },
	{ "postfix_spamhaus.eml", "blocked", "frank@corp.example", "5.7.1", 1, 0 },
	{ "postfix_relay_denied.eml", "norelaying", "gina@other.example", "5.7.1", 1, 0 },
	{ "postfix_mesgtoobig.eml", "mesgtoobig", "hank@example.com", "5.3.4", 1, 0 },
	{ "postfix_virus.eml", "virusdetected", "ivy@example.com", "5.7.0", 1, 0 },
	{ "postfix_requireptr.eml", "requireptr", "jack@example.com", "4.7.1", 0, 0 },
	{ "postfix_multi_rcpt.eml", "userunknown", "oscar@example.org", "5.1.1", 1, 0 },
	{ "gmail_ratelimit_421.eml", "blocked", "kim@gmail.com", "4.7.28", 0, 0 },
	{ "gmail_userunknown.eml", "userunknown", "nobody@gmail.com", "5.1.1", 1, 0 },
	{ "gmail_overquota.eml", "mailboxfull", "full@gmail.com", "5.2.2", 1, 0 },
	{ "gmail_dmarc.eml", "authfailure", "ops@gmail.com", "5.7.26", 1, 0 },
	{ "gmail_spam_5.7.1.eml", "spamdetected", "rita@gmail.com", "5.7.1", 1, 0 },
	{ "yahoo_tss04_deferred.eml", "rejected", "lee@yahoo.com", "4.7.0", 0, 0 },
	{ "yahoo_userunknown.eml", "userunknown", "ben.nobody@yahoo.com", "", 1, 0 },
	{ "outlook_s3150_blocked.eml", "blocked", "mia@outlook.com", "5.7.1", 1, 0 },
	{ "o365_banned_5.7.606.eml", "blocked", "ned@contoso.example", "5.7.606", 1, 0 },
	{ "o365_recipientnotfound.eml", "userunknown", "nick@contoso.example", "5.1.10", 1, 0 },
	{ "exchange2010_plain.eml", "userunknown", "olga@fabrikam.example", "5.1.1", 1, 0 },
	{ "exim_userunknown.eml", "userunknown", "sam@example.org", "5.1.1", 1, 0 },
	{ "exim_mailboxfull_local.eml", "mailboxfull", "tom@example.org", "", 1, 0 },
	{ "exim_spam_data.eml", "spamdetected", "uma@example.org", "5.7.1", 1, 0 },
	{ "exim_does_not_like.eml", "norelaying", "vic@example.org", "5.7.1", 1, 0 },
	{ "sendmail_userunknown.eml", "userunknown", "wes@example.edu", "5.1.1", 1, 0 },
	{ "sendmail_plain_hostunknown.eml", "hostunknown", "xena@nxhost.example", "", 1, 0 },
	{ "qmail_userunknown.eml", "userunknown", "yuri@example.com", "5.1.1", 1, 0 },
	{ "qmail_local_nomailbox.eml", "userunknown", "zoe@example.com", "5.1.1", 1, 0 },
	{ "qmail_overquota.eml", "mailboxfull", "amy@example.com", "5.2.2", 1, 0 },
	{ "appliance_base64_barracuda.eml", "blocked", "paul@example.net", "5.7.1", 1, 0 },
	{ "vacation_autosubmitted.eml", "vacation", "", "", 0, 0 },
	{ "vacation_exchange_subject.eml", "vacation", "", "", 0, 0 },
	{ "vacation_xautoreply.eml", "vacation", "", "", 0, 0 },
	{ "not_a_bounce.eml", "undefined", "", "", 0, SL_EPROTO },
};

static void test_messages(void **state)
{
	struct bounce_result r;
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof messages / sizeof *messages; i++) {
		const struct msg_case *m = &messages[i];
		size_t len;
		char *msg = slurp("bounce", m->file, &len);
		int rc = bounce_classify_message(rules, msg, len, &r);
		if (rc != m->rc || strcmp(bounce_reason_name(r.reason), m->reason) ||
		    strcmp(r.recipient, m->recipient) || strcmp(r.status, m->status) ||
		    r.hard != m->hard) {
			fprintf(stderr, "%s: got rc=%d %s <%s> %s %s; want rc=%d %s <%s> %s %s\n",
				m->file, rc, bounce_reason_name(r.reason), r.recipient, r.status,
				r.hard ? "hard" : "soft", m->rc, m->reason, m->recipient, m->status,
				m->hard ? "hard" : "soft");
			bad++;
		}
		free(msg);
	}
	assert_int_equal(bad, 0);
}

static void test_message_details(void **state)
{
	struct bounce_result r;
	size_t len;
	char *msg;

	(void)state;
	msg = slurp("bounce", "postfix_multi_rcpt.eml", &len);
	assert_int_equal(bounce_classify_message(rules, msg, len, &r), 0);
	assert_int_equal(r.n_recipients, 3);
	assert_string_equal(r.diagnostic, "550 5.1.1 <oscar@example.org>... User unknown");
	free(msg);

	/* Diagnostic-Code folding and the type prefix */
	msg = slurp("bounce", "o365_recipientnotfound.eml", &len);
	assert_int_equal(bounce_classify_message(rules, msg, len, &r), 0);
	assert_string_equal(r.diagnostic, "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient "
					  "not found by SMTP address lookup");
	assert_int_equal(r.code, 550);
	free(msg);

	/* the returned original ("user unknown" in its body) is not read */
	msg = slurp("bounce", "exim_mailboxfull_local.eml", &len);
	assert_int_equal(bounce_classify_message(rules, msg, len, &r), 0);
	assert_string_equal(bounce_reason_name(r.reason), "mailboxfull");
	free(msg);
}

static void test_feedback(void **state)
{
	static const char *const files[] = { "rfc5965_abuse.eml", "yahoo_arf.eml",
					     "aol_scomp_arf.eml", "jmrp_hotmail.eml",
					     "aol_legacy.eml", "fraud_folded.eml" };
	struct bounce_result r;

	(void)state;
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		size_t len;
		char *msg = slurp("arf", files[i], &len);
		assert_int_equal(bounce_classify_message(rules, msg, len, &r), 0);
		assert_string_equal(bounce_reason_name(r.reason), "feedback");
		assert_false(r.hard);
		free(msg);
	}
}

/* Every prefix (in steps) of every sample: no crash, no leak (ASan). */
static void test_truncated(void **state)
{
	struct bounce_result r;

	(void)state;
	for (size_t i = 0; i < sizeof messages / sizeof *messages; i++) {
		size_t len;
		char *msg = slurp("bounce", messages[i].file, &len);
		for (size_t n = 0; n < len; n += 61) {
			char *cut = malloc(n ? n : 1);
			assert_non_null(cut);
			memcpy(cut, msg, n);
			int rc = bounce_classify_message(rules, cut, n, &r);
			assert_true(rc == 0 || rc == SL_EPROTO);
			assert_true((unsigned)r.reason < BOUNCE_R_COUNT);
			free(cut);
		}
		free(msg);
	}
}

/* --- rules file --------------------------------------------------------------- */

static void expect_error(const char *text, const char *want)
{
	struct bounce_rules *r = (struct bounce_rules *)1;
	char err[256];

	assert_int_equal(bounce_rules_parse(text, strlen(text), "t.conf", &r, err, sizeof err),
			 SL_ECONFIG);
	assert_null(r);
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_rules_errors(void **state)
{
	char longline[2048];

	(void)state;
	expect_error("userunknown text \"x\"\nnosuchreason text \"y\"\n",
		     "t.conf:2: unknown reason \"nosuchreason\"");
	expect_error("# c\n\nblocked regex \"x\"\n", "t.conf:3: unknown rule kind \"regex\"");
	expect_error("blocked text spamhaus\n", "t.conf:1: text pattern must be");
	expect_error("blocked text \"\"\n", "t.conf:1: text pattern must be");
	expect_error("blocked text \"a\"b\"\n", "t.conf:1: stray");
	expect_error("blocked status 5.7\n", "t.conf:1: bad status \"5.7\"");
	expect_error("blocked status 6.1.1\n", "t.conf:1: bad status");
	expect_error("blocked status 5.1.1x\n", "t.conf:1: bad status");
	expect_error("blocked status 5.1111.1\n", "t.conf:1: bad status");
	expect_error("blocked code 55\n", "t.conf:1: bad reply code \"55\"");
	expect_error("blocked code 650\n", "t.conf:1: bad reply code");
	expect_error("blocked\n", "t.conf:1: expected: REASON");
	expect_error("blocked text\n", "t.conf:1: expected: REASON");
	memset(longline, 'a', sizeof longline - 1);
	longline[sizeof longline - 1] = 0;
	expect_error(longline, "t.conf:1: line too long");

	struct bounce_rules *r;
	char err[256];
	assert_true(bounce_rules_load("/nonexistent/bounce-rules.conf", &r, err, sizeof err) < 0);
	assert_null(r);
	assert_non_null(strstr(err, "/nonexistent/bounce-rules.conf"));
}

static void test_rules_order(void **state)
{
	/* file order: codes first, texts last; evaluation: text, exact status,
	 * wildcard status (fewer '*' first), code */
	static const char text[] = "rejected code 550\n"
				   "filtered status 5.*.*\n"
				   "suspend status 5.1.*\n"
				   "hasmoved status 5.1.6\n"
				   "  # indented comment\n"
				   "blocked   TEXT   \"Foo Bar\"\n"
				   "speeding text \"foo\"\r\n";
	struct bounce_rules *r;
	struct bounce_result res;
	char err[128];

	(void)state;
	assert_int_equal(bounce_rules_parse(text, sizeof text - 1, "o", &r, err, sizeof err), 0);
	assert_int_equal(bounce_rules_count(r), 6);
	bounce_classify_reply(r, "550 5.1.6 hello foo bar", &res);
	assert_string_equal(bounce_reason_name(res.reason), "blocked");
	bounce_classify_reply(r, "550 5.1.6 hello foo", &res);
	assert_string_equal(bounce_reason_name(res.reason), "speeding");
	bounce_classify_reply(r, "550 5.1.6 hello", &res);
	assert_string_equal(bounce_reason_name(res.reason), "hasmoved");
	bounce_classify_reply(r, "550 5.1.7 hello", &res);
	assert_string_equal(bounce_reason_name(res.reason), "suspend");
	bounce_classify_reply(r, "550 5.2.7 hello", &res);
	assert_string_equal(bounce_reason_name(res.reason), "filtered");
	bounce_classify_reply(r, "550 hello", &res);
	assert_string_equal(bounce_reason_name(res.reason), "rejected");
	bounce_classify_reply(r, "551 hello", &res);
	assert_string_equal(bounce_reason_name(res.reason), "undefined");
	assert_true(res.hard);
	bounce_rules_free(r);

	/* an empty rule set classifies nothing */
	assert_int_equal(bounce_rules_parse("", 0, "e", &r, err, sizeof err), 0);
	assert_int_equal(bounce_rules_count(r), 0);
	bounce_classify_reply(r, "550 5.1.1 user unknown", &res);
	assert_int_equal(res.reason, BOUNCE_R_UNDEFINED);
	bounce_rules_free(r);
}

static void test_reason_names(void **state)
{
	(void)state;
	assert_int_equal(BOUNCE_R_COUNT, 35);
	for (int i = 0; i < BOUNCE_R_COUNT; i++)
		assert_int_equal(bounce_reason_from_name(bounce_reason_name(i)), i);
	assert_int_equal(bounce_reason_from_name("UserUnknown"), BOUNCE_R_USERUNKNOWN);
	assert_int_equal(bounce_reason_from_name("nope"), -1);
	assert_string_equal(bounce_reason_name(BOUNCE_R_COUNT), "undefined");
	assert_string_equal(bounce_reason_name(BOUNCE_R_FAILEDSTARTTLS), "failedstarttls");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replies),	       cmocka_unit_test(test_reply_fields),
		cmocka_unit_test(test_messages),       cmocka_unit_test(test_message_details),
		cmocka_unit_test(test_feedback),       cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_rules_errors),   cmocka_unit_test(test_rules_order),
		cmocka_unit_test(test_reason_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
