/*
 * test_response_rules.c — receiver reply rules: the shipped rule set's
 * matches, parse errors, threshold triggers over a window, throttle ramp
 * math, suspension expiry and scope, and the engine's memory bound.
 *
 * Run from the repository root; SLUICE_RESPONSE_RULES overrides the
 * shipped file's path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <math.h>

#include <cmocka.h>

#include "err.h"
#include "response_rules.h"

#define MIN (60ull * 1000)
#define T0 (1000ull * 1000 * 1000)

static const char *rules_path(void)
{
	const char *e = getenv("SLUICE_RESPONSE_RULES");
	return e ? e : "configs/response-rules.conf";
}

static int setup(void **state)
{
	struct response_rules *r;
	char err[256];

	if (response_rules_load(rules_path(), &r, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	response_rules_free(*state);
	return 0;
}

static const char *rule_for(const struct response_rules *r, const char *provider,
			    const char *reply)
{
	int i = response_rules_match(r, provider, reply);
	return i < 0 ? "-" : response_rules_name(r, (size_t)i, NULL);
}

static void test_shipped_matches(void **state)
{
	const struct response_rules *r = *state;
	static const struct {
		const char *provider, *reply, *rule;
	} cases[] = {
		{ "google",
		  "421-4.7.28 [198.51.100.10] Our system has detected an unusual rate of\r\n"
		  "421-4.7.28 unsolicited mail originating from your IP address. To protect our\r\n"
		  "421 4.7.28 users from spam, mail sent from your IP address has been temporarily rate limited.",
		  "google-4.7.28" },
		{ "google", "421 4.7.0 Try again later, closing connection. x-gsmtp",
		  "google-try-later" },
		{ "google",
		  "550-5.7.1 [198.51.100.10] Our system has detected an unusual rate of unsolicited mail "
		  "originating from your IP address. To protect our users from spam, mail sent from "
		  "your IP address has been blocked.",
		  "google-ip-blocked" },
		{ "google", "550-5.7.26 This mail is unauthenticated, which poses a security risk",
		  "google-unauthenticated" },
		{ "yahoo",
		  "421 4.7.0 [TSS04] Messages from 198.51.100.10 temporarily deferred due to "
		  "unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
		  "yahoo-tss04" },
		{ "yahoo", "553 5.7.1 [TS03] All messages from 198.51.100.10 will be permanently deferred",
		  "yahoo-ts03" },
		{ "microsoft",
		  "451 4.7.650 The mail server [198.51.100.10] has been temporarily rate limited due to IP reputation.",
		  "microsoft-4.7.650" },
		{ "microsoft",
		  "550 5.7.515 Access denied, sending domain [EXAMPLE.COM] does not meet the required authentication level.",
		  "microsoft-5.7.515" },
		{ "microsoft",
		  "550 5.7.1 Unfortunately, messages from [198.51.100.10] weren't sent. Please contact your "
		  "Internet service provider since part of their network is on our block list (S3150).",
		  "microsoft-s3150" },
		{ "microsoft", "421 RP-001 (BAY004-MC1F5) Unfortunately, some messages from 198.51.100.10 "
			       "weren't sent. Please try again.",
		  "microsoft-rp" },
		/* the generic rules: for unknown providers and as a fallback */
		{ NULL, "554 5.7.1 Service unavailable; Client host [198.51.100.10] blocked using "
			"zen.spamhaus.org; https://www.spamhaus.org/query/ip/198.51.100.10",
		  "any-spamhaus" },
		{ "google", "550 5.7.1 listed by Spamhaus", "any-spamhaus" },
		{ "", "550 5.7.1 Your IP is blacklisted", "any-blacklisted" },
		{ "zoho", "421 4.7.0 Too many connections from your host", "any-too-many-connections" },
		/* no match */
		{ "google", "250 2.0.0 OK 1700000000 x-gsmtp", "-" },
		{ "yahoo", "550 5.1.1 <nobody@yahoo.com>: user unknown", "-" },
		{ "microsoft", "450 4.7.650 is only a Microsoft code", "microsoft-4.7.650" },
		{ "yahoo", "451 4.7.650 not a Yahoo rule", "-" },
		/* status prefixes are per component: 4.7.2 is not 4.7.28 */
		{ "google", "421 4.7.2 something", "-" },
	};

	assert_true(response_rules_count(r) >= 25);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *got = rule_for(r, cases[i].provider, cases[i].reply);
		if (strcmp(got, cases[i].rule))
			fail_msg("case %zu (%s): got %s, want %s", i, cases[i].reply, got,
				 cases[i].rule);
	}
}

static void test_parse_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text, *err;
	} cases[] = {
		{ "google text=\"x\"\n", "t.conf:1: no action= given" },
		{ "# c\n\ngoogle action=suspend duration=1h\n", "t.conf:3: no match" },
		{ "google text=\"x\" action=suspend\n", "t.conf:1: suspend takes duration=" },
		{ "google text=\"x\" action=throttle factor=1.5\n", "t.conf:1: bad factor" },
		{ "google text=\"x\" action=throttle factor=0.5 scope=tenant\n",
		  "t.conf:1: throttle takes" },
		{ "google text=\"x\" action=bounce\n", "t.conf:1: unknown action" },
		{ "google code=42 action=hold-tenant\n", "t.conf:1: bad reply code" },
		{ "google status=6.1.1 action=hold-tenant\n", "t.conf:1: bad enhanced status" },
		{ "google status=4.7.28.1 action=hold-tenant\n", "t.conf:1: bad enhanced status" },
		{ "google text=\"x action=hold-tenant\n", "t.conf:1: bad token" },
		{ "google text=x trigger=0/10m action=hold-tenant\n", "t.conf:1: bad trigger" },
		{ "google text=x trigger=65/10m action=hold-tenant\n", "t.conf:1: bad trigger" },
		{ "google text=x trigger=5 action=hold-tenant\n", "t.conf:1: bad trigger" },
		{ "google text=x colour=red action=hold-tenant\n", "t.conf:1: unknown key" },
		{ "goo/gle text=x action=hold-tenant\n", "t.conf:1: bad provider" },
		{ "google x action=hold-tenant\n", "t.conf:1: expected key=value" },
		{ "google text=x action=throttle factor=0.5 step=0.0001\n", "t.conf:1: throttle step=" },
		{ "google text=x action=suspend duration=400d\n", "t.conf:1: bad duration" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct response_rules *r = NULL;
		char err[256];
		int rc = response_rules_parse(cases[i].text, strlen(cases[i].text), "t.conf", &r,
					      err, sizeof err);
		assert_int_equal(rc, SL_ECONFIG);
		assert_null(r);
		if (strncmp(err, cases[i].err, strlen(cases[i].err)))
			fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].err);
	}
	{
		struct response_rules *r = NULL;
		char err[256];
		assert_int_equal(response_rules_load("/nonexistent/rules.conf", &r, err, sizeof err),
				 -ENOENT);
	}
}

static void test_threshold_window(void **state)
{
	struct response_engine *e = response_engine_create(*state, 0);
	struct response_action a;
	const char *spam = "554 5.7.1 blocked using zen.spamhaus.org";

	assert_non_null(e);
	/* 3 in 10 minutes: two, then the third more than 10 minutes after the first */
	assert_int_equal(response_engine_observe(e, "gmx", "198.51.100.10", "acme", spam, T0, &a), 0);
	assert_int_equal(response_engine_observe(e, "gmx", "198.51.100.10", "acme", spam, T0 + 5 * MIN, &a), 0);
	assert_int_equal(response_engine_observe(e, "gmx", "198.51.100.10", "acme", spam, T0 + 10 * MIN, &a), 0);
	/* other keys count separately */
	assert_int_equal(response_engine_observe(e, "gmx", "198.51.100.11", "acme", spam, T0 + 11 * MIN, &a), 0);
	assert_int_equal(response_engine_observe(e, "orange", "198.51.100.10", "acme", spam, T0 + 11 * MIN, &a), 0);
	assert_false(response_engine_suspended(e, "gmx", "198.51.100.10", NULL, T0 + 11 * MIN, NULL));
	/* the 5m, 10m and 12m matches are within 10 minutes */
	assert_int_equal(response_engine_observe(e, "gmx", "198.51.100.10", "acme", spam, T0 + 12 * MIN, &a), 1);
	assert_int_equal(a.kind, RESPONSE_SUSPEND);
	assert_int_equal(a.scope, RESPONSE_SCOPE_IP);
	assert_string_equal(a.rule, "any-spamhaus");
	assert_string_equal(a.provider, "gmx");
	assert_string_equal(a.key, "198.51.100.10");
	assert_int_equal(a.matches, 3);
	assert_true(a.window_ms == 10 * MIN);
	assert_true(a.until_ms == T0 + 72 * MIN);
	assert_true(response_engine_suspended(e, "gmx", "198.51.100.10", "acme", T0 + 13 * MIN, NULL));
	assert_false(response_engine_suspended(e, "gmx", "198.51.100.11", "acme", T0 + 13 * MIN, NULL));
	/* after firing the count starts afresh */
	assert_int_equal(response_engine_observe(e, "gmx", "198.51.100.10", "acme", spam, T0 + 13 * MIN, &a), 0);
	/* a non-matching reply changes nothing */
	assert_int_equal(response_engine_observe(e, "gmx", "198.51.100.10", "acme", "250 ok", T0, &a), 0);
	assert_int_equal(a.kind, RESPONSE_NONE);
	response_engine_free(e);
}

static void test_ramp(void **state)
{
	struct response_engine *e = response_engine_create(*state, 0);
	struct response_action a;
	const char *ip = "198.51.100.12";
	const char *r428 = "421-4.7.28 [198.51.100.12] unusual rate\r\n421 4.7.28 rate limited";
	static const struct {
		uint64_t at;
		double f;
	} want[] = {
		{ 0, 0.5 }, { 9 * MIN + 59999, 0.5 }, { 10 * MIN, 0.6 }, { 25 * MIN, 0.7 },
		{ 40 * MIN, 0.9 }, { 49 * MIN, 0.9 }, { 50 * MIN, 1.0 }, { 500 * MIN, 1.0 },
	};

	assert_non_null(e);
	assert_true(response_engine_rate_factor(e, "google", ip, T0) == 1.0);
	assert_int_equal(response_engine_observe(e, "google", ip, "acme", r428, T0, &a), 1);
	assert_int_equal(a.kind, RESPONSE_THROTTLE);
	assert_true(fabs(a.factor - 0.5) < 1e-9);
	assert_true(a.until_ms == T0 + 50 * MIN);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		double f = response_engine_rate_factor(e, "google", ip, T0 + want[i].at);
		if (fabs(f - want[i].f) > 1e-9)
			fail_msg("at +%llu ms: factor %f, want %f", (unsigned long long)want[i].at, f,
				 want[i].f);
	}
	/* other IPs and providers are not throttled */
	assert_true(response_engine_rate_factor(e, "google", "198.51.100.10", T0) == 1.0);
	assert_true(response_engine_rate_factor(e, "yahoo", ip, T0) == 1.0);
	/* a second throttle while ramping restarts from the lower factor: 0.3
	 * (low reputation) at +20m, when the first is at 0.7 */
	assert_int_equal(response_engine_observe(e, "google", ip, NULL,
						 "421 4.7.0 very low reputation of the sending IP",
						 T0 + 20 * MIN, &a), 1);
	assert_true(fabs(a.factor - 0.3) < 1e-9);
	assert_true(fabs(response_engine_rate_factor(e, "google", ip, T0 + 34 * MIN) - 0.3) < 1e-9);
	assert_true(fabs(response_engine_rate_factor(e, "google", ip, T0 + 35 * MIN) - 0.4) < 1e-9);
	/* ... and one while at 0.4 with factor 0.5 keeps 0.4 */
	assert_int_equal(response_engine_observe(e, "google", ip, NULL, r428, T0 + 36 * MIN, &a), 1);
	assert_true(fabs(a.factor - 0.4) < 1e-9);
	assert_true(a.until_ms == T0 + 36 * MIN + 60 * MIN);
	response_engine_free(e);
}

static void test_suspend_scopes_and_expiry(void **state)
{
	struct response_engine *e = response_engine_create(*state, 0);
	struct response_action a;
	uint64_t until = 0;
	const char *tss04 = "421 4.7.0 [TSS04] Messages from 198.51.100.10 temporarily deferred";
	const char *r515 = "550 5.7.515 Access denied, sending domain [EXAMPLE.COM] does not meet "
			   "the required authentication level.";

	assert_non_null(e);
	assert_int_equal(response_engine_observe(e, "yahoo", "198.51.100.10", "acme", tss04, T0, &a), 1);
	assert_true(a.until_ms == T0 + 120 * MIN);
	assert_true(response_engine_suspended(e, "yahoo", "198.51.100.10", NULL, T0 + 119 * MIN, &until));
	assert_true(until == T0 + 120 * MIN);
	assert_false(response_engine_suspended(e, "yahoo", "198.51.100.10", NULL, T0 + 120 * MIN, &until));
	assert_true(until == 0);
	assert_false(response_engine_suspended(e, "google", "198.51.100.10", NULL, T0, NULL));
	/* a longer suspension extends, a shorter one does not shorten */
	assert_int_equal(response_engine_observe(e, "yahoo", "198.51.100.10", "acme",
						 "553 5.7.1 [TS03] All messages from x will be permanently deferred",
						 T0 + MIN, &a), 1);
	assert_true(a.until_ms == T0 + MIN + 24 * 60 * MIN);
	assert_int_equal(response_engine_observe(e, "yahoo", "198.51.100.10", "acme", tss04, T0 + 2 * MIN, &a), 1);
	assert_true(a.until_ms == T0 + MIN + 24 * 60 * MIN);

	/* tenant scope: 3 in 10 minutes for tenant acme, any source IP */
	assert_int_equal(response_engine_observe(e, "microsoft", "198.51.100.10", "acme", r515, T0, &a), 0);
	assert_int_equal(response_engine_observe(e, "microsoft", "198.51.100.11", "acme", r515, T0 + MIN, &a), 0);
	assert_int_equal(response_engine_observe(e, "microsoft", "198.51.100.12", "other", r515, T0 + MIN, &a), 0);
	assert_int_equal(response_engine_observe(e, "microsoft", "198.51.100.12", "acme", r515, T0 + 2 * MIN, &a), 1);
	assert_int_equal(a.scope, RESPONSE_SCOPE_TENANT);
	assert_string_equal(a.key, "acme");
	assert_true(response_engine_suspended(e, "microsoft", "198.51.100.10", "acme", T0 + 3 * MIN, NULL));
	assert_false(response_engine_suspended(e, "microsoft", "198.51.100.10", "other", T0 + 3 * MIN, NULL));
	assert_false(response_engine_suspended(e, "microsoft", "198.51.100.10", NULL, T0 + 3 * MIN, NULL));
	assert_false(response_engine_suspended(e, "microsoft", "198.51.100.10", "acme", T0 + 62 * MIN, NULL));
	/* a tenant-scoped rule without a tenant does nothing */
	assert_int_equal(response_engine_observe(e, "microsoft", "198.51.100.10", NULL, r515, T0, &a), 0);
	response_engine_free(e);
}

static void test_hold_tenant_and_glob(void **state)
{
	(void)state;
	static const char text[] =
		"*  code=5xx text=\"account * suspended for abuse\"  action=hold-tenant name=abuse\n"
		"*  text=\"quota\"  trigger=2/1h  action=hold-tenant\n";
	struct response_rules *r;
	struct response_engine *e;
	struct response_action a;
	char err[128];

	assert_int_equal(response_rules_parse(text, sizeof text - 1, "/etc/x/my.conf", &r, err, sizeof err), 0);
	e = response_engine_create(r, 0);
	assert_non_null(e);
	assert_int_equal(response_engine_observe(e, NULL, "198.51.100.10", "acme",
						 "554 Your ACCOUNT acme is SUSPENDED for abuse", T0, &a), 1);
	assert_int_equal(a.kind, RESPONSE_HOLD_TENANT);
	assert_string_equal(a.key, "acme");
	assert_string_equal(a.rule, "abuse");
	assert_int_equal(response_engine_observe(e, NULL, "198.51.100.10", "acme",
						 "454 Your account is suspended for abuse", T0, &a), 0);
	assert_int_equal(response_engine_observe(e, NULL, "198.51.100.10", "acme", "452 quota", T0, &a), 0);
	assert_int_equal(response_engine_observe(e, NULL, "198.51.100.11", "acme", "452 quota", T0 + MIN, &a), 1);
	assert_string_equal(a.rule, "my.conf:2");
	/* hold-tenant keeps no suspension */
	assert_false(response_engine_suspended(e, NULL, "198.51.100.10", "acme", T0 + MIN, NULL));
	response_engine_free(e);
	response_rules_free(r);
}

static void test_memory_bound(void **state)
{
	struct response_engine *e = response_engine_create(*state, 16);
	struct response_action a;
	size_t ctr, eff;
	char ip[64];

	assert_non_null(e);
	/* 1000 source IPs, each one spamhaus match (a counter) and one TSS04 (a suspension) */
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(ip, sizeof ip, "2001:db8::%x", i);
		response_engine_observe(e, "gmx", ip, "acme", "554 spamhaus", T0 + i * 1000, &a);
		assert_int_equal(response_engine_observe(e, "yahoo", ip, "acme", "421 [TSS04] deferred",
							 T0 + i * 1000, &a), 1);
		response_engine_usage(e, &ctr, &eff);
		assert_true(ctr <= 16);
		assert_true(eff <= 16);
	}
	/* the most recent ones are kept, the oldest evicted */
	assert_true(response_engine_suspended(e, "yahoo", ip, NULL, T0 + 1000 * 1000, NULL));
	assert_false(response_engine_suspended(e, "yahoo", "2001:db8::0", NULL, T0 + 1000 * 1000, NULL));
	/* expired entries go first: after everything expired, new keys reuse them */
	for (unsigned i = 0; i < 32; i++) {
		snprintf(ip, sizeof ip, "198.51.100.%u", i);
		response_engine_observe(e, "yahoo", ip, "acme", "421 [TSS04] deferred", T0 + 1000 * MIN, &a);
	}
	response_engine_usage(e, &ctr, &eff);
	assert_true(eff == 16);
	response_engine_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped_matches),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_threshold_window),
		cmocka_unit_test(test_ramp),
		cmocka_unit_test(test_suspend_scopes_and_expiry),
		cmocka_unit_test(test_hold_tenant_and_glob),
		cmocka_unit_test(test_memory_bound),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
