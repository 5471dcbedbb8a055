/*
 * test_shaping.c — shaping rules: precedence (default < provider < site <
 * domain < pool.* < ip.*), provenance for explain, the shipped file,
 * strict YAML errors with FILE:LINE:COL, rate parsing, and the token
 * bucket's math (bursts, refill, next time, clock going backwards).
 *
 * Run from the repository root; SLUICE_SHAPING overrides the shipped file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "err.h"
#include "shaping.h"

#define SEC 1000ull
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static struct shaping_rules *load(const char *yaml)
{
	struct shaping_rules *r = NULL;
	char err[512];
	int rc = shaping_load_string("t.yaml", yaml, strlen(yaml), &r, err, sizeof err);

	if (rc != 0)
		fail_msg("load failed: %s", err);
	return r;
}

static const char layered[] =
	"default:\n"
	"  max_connections: 10\n"
	"  message_rate: 1000/h\n"
	"  max_age: 3d\n"
	"providers:\n"
	"  google:\n"
	"    max_connections: 20\n"
	"    connection_rate: 60/min\n"
	"sites:\n"
	"  \"alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com\":\n"
	"    max_messages_per_connection: 50\n"
	"    max_connections: 15\n"
	"domains:\n"
	"  Gmail.COM:\n"
	"    max_recipients_per_transaction: 50\n"
	"    max_connections: 12\n"
	"pools:\n"
	"  mkt:\n"
	"    default:\n"
	"      retry_schedule: [10m, 1h]\n"
	"      max_connections: 8\n"
	"    providers:\n"
	"      google: {message_rate: 500/h}\n"
	"    domains:\n"
	"      gmail.com: {idle_timeout: 5s}\n"
	"ips:\n"
	"  \"2001:db8::0:10\":\n"
	"    default: {connect_timeout: 10s}\n"
	"  203.0.113.10:\n"
	"    default:\n"
	"      max_connections: 2\n"
	"    providers:\n"
	"      google: {connect_timeout: 5s}\n"
	"    sites:\n"
	"      \"mx.example.net\": {max_age: 1h}\n";

static const char gsite[] = "alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com";

static void test_builtin(void **state)
{
	struct shaping_rules *r = shaping_empty();
	struct shaping_key k = { .ip = "198.51.100.1", .domain = "example.org" };
	struct shaping_values v;

	(void)state;
	assert_int_equal(shaping_resolve(r, &k, &v), 0);
	assert_int_equal(v.max_connections, 32);
	assert_int_equal(v.max_messages_per_connection, 100);
	assert_int_equal(v.max_recipients_per_transaction, 100);
	assert_int_equal(v.message_rate.count, 0);
	assert_int_equal(v.n_retry, 7);
	assert_int_equal(v.retry_ms[0], MIN);
	assert_int_equal(v.max_age_ms, 5 * DAY);
	for (int i = 0; i < SHAPING_N_KNOBS; i++)
		assert_string_equal(v.from[i], "builtin");

	/* operator-provided builtin layer */
	struct shaping_values b;
	shaping_builtin(&b);
	b.max_connections = 7;
	b.from[0] = "ignored";
	shaping_set_builtin(r, &b);
	shaping_resolve(r, &k, &v);
	assert_int_equal(v.max_connections, 7);
	assert_string_equal(v.from[SHAPING_MAX_CONNECTIONS], "builtin");
	shaping_free(r);
}

static void test_precedence_base(void **state)
{
	struct shaping_rules *r = load(layered);
	struct shaping_values v;
	struct shaping_key k = { .ip = "198.51.100.1" };

	(void)state;
	/* default only */
	k.domain = "example.org";
	shaping_resolve(r, &k, &v);
	assert_int_equal(v.max_connections, 10);
	assert_string_equal(v.from[SHAPING_MAX_CONNECTIONS], "default");
	assert_int_equal(v.message_rate.count, 1000);
	assert_int_equal(v.message_rate.per_ms, HOUR);
	assert_string_equal(v.from[SHAPING_IDLE_TIMEOUT], "builtin");

	/* + provider */
	k.provider = "google";
	k.domain = "hosted.example";
	shaping_resolve(r, &k, &v);
	assert_int_equal(v.max_connections, 20);
	assert_string_equal(v.from[SHAPING_MAX_CONNECTIONS], "provider google");
	assert_int_equal(v.connection_rate.count, 60);
	assert_int_equal(v.connection_rate.per_ms, MIN);
	assert_string_equal(v.from[SHAPING_MESSAGE_RATE], "default");

	/* + site */
	k.site = gsite;
	shaping_resolve(r, &k, &v);
	assert_int_equal(v.max_connections, 15);
	assert_string_equal(v.from[SHAPING_MAX_CONNECTIONS], "site alt1.gmail-smtp-in.l.google.com,"
								"gmail-smtp-in.l.google.com");
	assert_int_equal(v.max_messages_per_connection, 50);
	assert_string_equal(v.from[SHAPING_CONNECTION_RATE], "provider google");

	/* + domain (case-insensitive, trailing dot) */
	k.domain = "GMAIL.com.";
	shaping_resolve(r, &k, &v);
	assert_int_equal(v.max_connections, 12);
	assert_string_equal(v.from[SHAPING_MAX_CONNECTIONS], "domain gmail.com");
	assert_int_equal(v.max_recipients_per_transaction, 50);
	assert_int_equal(v.max_age_ms, 3 * DAY);
	assert_true(shaping_has_domain_rule(r, "gmail.com"));
	assert_false(shaping_has_domain_rule(r, "example.org"));
	shaping_free(r);
}

static void test_precedence_pool_ip(void **state)
{
	struct shaping_rules *r = load(layered);
	struct shaping_values v;
	struct shaping_key k = { .ip = "203.0.113.10", .pool = "mkt", .provider = "google",
				 .site = gsite, .domain = "gmail.com" };

	(void)state;
	shaping_resolve(r, &k, &v);
	/* pool.default beats base domain; ip.default beats the pool */
	assert_int_equal(v.max_connections, 2);
	assert_string_equal(v.from[SHAPING_MAX_CONNECTIONS], "ip 203.0.113.10 default");
	assert_int_equal(v.n_retry, 2);
	assert_int_equal(v.retry_ms[0], 10 * MIN);
	assert_int_equal(v.retry_ms[1], HOUR);
	assert_string_equal(v.from[SHAPING_RETRY_SCHEDULE], "pool mkt default");
	assert_int_equal(v.message_rate.count, 500);
	assert_string_equal(v.from[SHAPING_MESSAGE_RATE], "pool mkt provider google");
	assert_int_equal(v.idle_timeout_ms, 5 * SEC);
	assert_string_equal(v.from[SHAPING_IDLE_TIMEOUT], "pool mkt domain gmail.com");
	assert_int_equal(v.connect_timeout_ms, 5 * SEC);
	assert_string_equal(v.from[SHAPING_CONNECT_TIMEOUT], "ip 203.0.113.10 provider google");
	/* base values not overridden stay with their rule set */
	assert_int_equal(v.max_messages_per_connection, 50);
	assert_string_equal(v.from[SHAPING_MAX_RECIPIENTS_PER_TRANSACTION], "domain gmail.com");

	/* same IP, another pool: the pool layer drops out */
	k.pool = "tx";
	shaping_resolve(r, &k, &v);
	assert_int_equal(v.max_connections, 2);
	assert_int_equal(v.n_retry, 7);
	assert_string_equal(v.from[SHAPING_RETRY_SCHEDULE], "builtin");

	/* another IP in the pool: no IP layer */
	k.pool = "mkt";
	k.ip = "203.0.113.11";
	shaping_resolve(r, &k, &v);
	assert_int_equal(v.max_connections, 8);
	assert_string_equal(v.from[SHAPING_MAX_CONNECTIONS], "pool mkt default");

	/* IPv6 keys are canonicalised on both sides */
	k.ip = "2001:DB8:0::10";
	shaping_resolve(r, &k, &v);
	assert_int_equal(v.connect_timeout_ms, 10 * SEC);
	assert_string_equal(v.from[SHAPING_CONNECT_TIMEOUT], "ip 2001:db8::10 default");

	/* IP site rule */
	k.ip = "203.0.113.10";
	k.provider = NULL;
	k.site = "mx.example.net";
	k.domain = "example.net";
	shaping_resolve(r, &k, &v);
	assert_int_equal(v.max_age_ms, HOUR);
	assert_string_equal(v.from[SHAPING_MAX_AGE], "ip 203.0.113.10 site mx.example.net");

	/* NULL everything */
	struct shaping_key none = { 0 };
	shaping_resolve(r, &none, &v);
	assert_int_equal(v.max_connections, 10);
	assert_int_equal(shaping_count(r), 11);
	shaping_free(r);
}

static void test_aliases(void **state)
{
	struct shaping_rules *r = load("default:\n"
				       "  connection_limit: 3\n"
				       "  max_message_rate: 10/s\n"
				       "  max_deliveries_per_connection: unlimited\n"
				       "  idle_timeout: 0\n");
	struct shaping_key k = { 0 };
	struct shaping_values v;

	(void)state;
	shaping_resolve(r, &k, &v);
	assert_int_equal(v.max_connections, 3);
	assert_int_equal(v.message_rate.count, 10);
	assert_int_equal(v.message_rate.per_ms, SEC);
	assert_int_equal(v.max_messages_per_connection, 0);
	assert_int_equal(v.idle_timeout_ms, 0);
	shaping_free(r);

	/* empty and null documents are fine */
	r = load("");
	assert_int_equal(shaping_count(r), 0);
	shaping_free(r);
	r = load("default:\nproviders:\npools:\nips:\n");
	shaping_free(r);
}

static void test_shipped_file(void **state)
{
	const char *path = getenv("SLUICE_SHAPING") ? getenv("SLUICE_SHAPING")
						    : "configs/shaping.yaml";
	struct shaping_rules *r;
	struct shaping_values v;
	struct shaping_key k = { .ip = "203.0.113.10", .provider = "microsoft",
				 .domain = "outlook.test" };
	char err[512];

	(void)state;
	if (shaping_load(path, &r, err, sizeof err) != 0)
		fail_msg("%s", err);
	shaping_resolve(r, &k, &v);
	assert_int_equal(v.max_connections, 10);
	assert_int_equal(v.max_messages_per_connection, 20);
	assert_string_equal(v.from[SHAPING_MAX_MESSAGES_PER_CONNECTION], "provider microsoft");
	shaping_free(r);

	assert_int_equal(shaping_load("/nonexistent.yaml", &r, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent.yaml"));
}

static void test_errors(void **state)
{
	static const struct {
		const char *yaml, *msg;
	} cases[] = {
		{ "defaults: {}\n", "t.yaml:1:1: unknown key 'defaults'" },
		{ "default:\n  max_conections: 3\n", "t.yaml:2:3: default: unknown key 'max_conections'" },
		{ "default:\n  max_connections: -1\n", "t.yaml:2:20: default.max_connections: '-1' is not a number" },
		{ "default:\n  max_connections: 0\n", "t.yaml:2:20: default.max_connections:" },
		{ "default:\n  message_rate: 10/fortnight\n", "t.yaml:2:17: default.message_rate: '10/fortnight' is not a rate" },
		{ "default:\n  message_rate: 0/s\n", "t.yaml:2:17: default.message_rate:" },
		{ "default:\n  max_age: soon\n", "t.yaml:2:12: default.max_age: 'soon' is not a duration" },
		{ "default:\n  connect_timeout: 0\n", "t.yaml:2:20: default.connect_timeout:" },
		{ "default:\n  retry_schedule: 5m\n", "t.yaml:2:19: default.retry_schedule: expected a list" },
		{ "default:\n  retry_schedule: [1m, x]\n", "t.yaml:2:24: default.retry_schedule: 'x' is not a duration" },
		{ "providers:\n  google:\n    max_connections: 1\n    connection_limit: 2\n",
		  "t.yaml:4:5: providers.google: 'max_connections' is set twice" },
		{ "providers:\n  google: {}\n  google: {}\n", "t.yaml:3:3: duplicate key 'google' (first at line 2)" },
		{ "domains:\n  Example.com: {}\n  example.com.: {}\n", "t.yaml:3:3: domains.example.com.: this rule set is defined twice" },
		{ "domains:\n  \"bad domain\": {}\n", "t.yaml:2:3: domains.bad domain: 'bad domain' is not a valid domain name" },
		{ "providers: [google]\n", "t.yaml:1:12: providers: expected a mapping" },
		{ "ips:\n  not-an-ip:\n    default: {max_connections: 1}\n", "t.yaml:2:3: ips: 'not-an-ip' is not an IP address" },
		{ "ips:\n  \"10.0.0.1\": {}\n  \"10.0.0.01\": {}\n", "t.yaml:3:3: ips:" },
		{ "pools:\n  mkt:\n    ips: {}\n", "t.yaml:3:5: pools.mkt: unknown key 'ips'" },
		{ "pools:\n  mkt:\n    providers:\n      google:\n        max_age: 1x\n",
		  "t.yaml:5:18: pools.mkt.providers.google.max_age: '1x' is not a duration" },
		{ "default: [1]\n", "t.yaml:1:10: default: expected a mapping of shaping settings" },
		{ "default:\n  max_age: 5d\n max_connections: 2\n", "t.yaml:3:" },
		{ "a: &x 1\nb: *x\n", "t.yaml:2:4: aliases are not supported" },
		{ "a: 1\n---\nb: 2\n", "t.yaml:2:1: a second YAML document" },
		{ "[1, 2]\n", "t.yaml:1:1: expected a mapping" },
		{ "default:\n  max_recipients_per_transaction: unlimited\n",
		  "t.yaml:2:35: default.max_recipients_per_transaction:" },
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct shaping_rules *r = (void *)1;
		int rc = shaping_load_string("t.yaml", cases[i].yaml, strlen(cases[i].yaml), &r,
					     err, sizeof err);

		if (rc != SL_ECONFIG || r != NULL)
			fail_msg("case %zu: rc %d", i, rc);
		if (strncmp(err, cases[i].msg, strlen(cases[i].msg)) != 0)
			fail_msg("case %zu: got '%s', want '%s...'", i, err, cases[i].msg);
	}
	/* NUL inside the document */
	struct shaping_rules *r;
	assert_int_equal(shaping_load_string("t.yaml", "default: {max_age: \"1\0d\"}", 26, &r, err,
					     sizeof err),
			 SL_ECONFIG);
	assert_int_equal(strncmp(err, "t.yaml:1:", 9), 0);
	/* a tiny error buffer is not overrun */
	char tiny[8];
	assert_int_equal(shaping_load_string("t.yaml", "x: 1", 4, &r, tiny, sizeof tiny), SL_ECONFIG);
	assert_string_equal(tiny, "t.yaml:");
}

static void test_parse_rate(void **state)
{
	static const struct {
		const char *s;
		uint32_t count;
		uint64_t per;
	} ok[] = {
		{ "10/s", 10, SEC },       { "10/sec", 10, SEC },     { "10/second", 10, SEC },
		{ "50/m", 50, MIN },       { "50/min", 50, MIN },     { "50/minute", 50, MIN },
		{ "1,000/hr", 1000, HOUR }, { "1_000/h", 1000, HOUR }, { "1000/hour", 1000, HOUR },
		{ "10000/d", 10000, DAY }, { "10,000/day", 10000, DAY }, { "unlimited", 0, SEC },
	};
	const char *bad[] = { "", "10", "/s", "10/", "10/w", "-1/s", "0/s", "1.5/s", "99999999999/s",
			      ",1/s", "10/S", "unlimited/s" };
	struct shaping_rate r;
	char buf[32];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(shaping_parse_rate(ok[i].s, &r), 0);
		assert_int_equal(r.count, ok[i].count);
		if (ok[i].count)
			assert_int_equal(r.per_ms, ok[i].per);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (shaping_parse_rate(bad[i], &r) != SL_ECONFIG)
			fail_msg("'%s' accepted", bad[i]);
	r = (struct shaping_rate){ 100, MIN };
	shaping_format_rate(&r, buf, sizeof buf);
	assert_string_equal(buf, "100/min");
	r = (struct shaping_rate){ 5, 2 * HOUR };
	shaping_format_rate(&r, buf, sizeof buf);
	assert_string_equal(buf, "5/2h");
	r = (struct shaping_rate){ 0, SEC };
	shaping_format_rate(&r, buf, sizeof buf);
	assert_string_equal(buf, "unlimited");
	assert_string_equal(shaping_knob_name(SHAPING_MESSAGE_RATE), "message_rate");
}

static void test_rate_burst_refill(void **state)
{
	struct shaping_rate r = { 10, SEC }; /* 10/s: one token per 100 ms */
	struct rate_limiter rl;
	uint64_t t = 1000000;

	(void)state;
	assert_int_equal(rate_default_burst(&r), 1);
	rate_init(&rl, &r, 5, t);
	assert_int_equal(rate_available(&rl, t), 5);
	/* a full burst, then nothing */
	assert_true(rate_allow(&rl, t, 3));
	assert_true(rate_allow(&rl, t, 2));
	assert_false(rate_allow(&rl, t, 1));
	assert_int_equal(rate_next_ms(&rl, t), t + 100);
	/* 99 ms later still nothing; at 100 ms one token */
	assert_false(rate_allow(&rl, t + 99, 1));
	assert_int_equal(rate_next_ms(&rl, t + 99), t + 100);
	assert_true(rate_allow(&rl, t + 100, 1));
	assert_false(rate_allow(&rl, t + 100, 1));
	/* 250 ms: 2.5 tokens earned; 2 usable, the half is kept */
	assert_int_equal(rate_available(&rl, t + 350), 2);
	assert_false(rate_allow(&rl, t + 350, 3));  /* all-or-nothing */
	assert_true(rate_allow(&rl, t + 350, 2));
	assert_int_equal(rate_next_ms(&rl, t + 350), t + 400);
	/* refill stops at the burst */
	assert_int_equal(rate_available(&rl, t + 100000), 5);
	assert_false(rate_allow(&rl, t + 100000, 6)); /* above the burst: never */
	/* n = 0 always succeeds */
	assert_true(rate_allow(&rl, t + 100000, 0));
}

static void test_rate_exactness(void **state)
{
	/* 7 per minute with burst 1: one token every 8571.4 ms. Polling every
	 * 7 ms up to 3599995 ms earns floor(3599995 * 7 / 60000) = 419 plus
	 * the initial token. */
	struct shaping_rate r = { 7, MIN };
	struct rate_limiter rl;
	unsigned sent = 0;

	(void)state;
	rate_init(&rl, &r, 0, 0);
	assert_int_equal(rl.burst, 1);
	for (uint64_t t = 0; t <= HOUR; t += 7) /* poll every 7 ms */
		if (rate_allow(&rl, t, 1))
			sent++;
	assert_int_equal(sent, 420);

	/* driving by rate_next_ms: the 420th token arrives exactly at 1 h */
	rate_init(&rl, &r, 1, 0);
	sent = 0;
	for (uint64_t t = 0; t <= HOUR; t = rate_next_ms(&rl, t)) {
		assert_true(rate_allow(&rl, t, 1));
		sent++;
	}
	assert_int_equal(sent, 421);

	/* high rate: default burst is 100 ms of it */
	r = (struct shaping_rate){ 10000, SEC };
	assert_int_equal(rate_default_burst(&r), 1000);
	r = (struct shaping_rate){ 3, DAY };
	assert_int_equal(rate_default_burst(&r), 1);
}

static void test_rate_unlimited_backwards_update(void **state)
{
	struct shaping_rate unl = { 0, SEC }, r = { 1, SEC }, fast = { 100, SEC };
	struct rate_limiter rl;

	(void)state;
	rate_init(&rl, &unl, 0, 5);
	assert_true(rate_allow(&rl, 5, 1000000));
	assert_int_equal(rate_next_ms(&rl, 5), 5);
	assert_int_equal(rate_available(&rl, 5), UINT32_MAX);

	rate_init(&rl, &r, 2, 10000);
	assert_true(rate_allow(&rl, 10000, 2));
	/* the clock goes backwards: no refill, next time stays in the future */
	assert_false(rate_allow(&rl, 5000, 1));
	assert_int_equal(rate_next_ms(&rl, 5000), 11000);
	assert_true(rate_allow(&rl, 11000, 1));

	/* update to a faster rate keeps the (empty) fill, then refills faster */
	rate_update(&rl, &fast, 10, 11000);
	assert_int_equal(rate_available(&rl, 11000), 0);
	assert_int_equal(rate_next_ms(&rl, 11000), 11010);
	assert_int_equal(rate_available(&rl, 11100), 10);
	/* update to a slower rate caps the fill at the new burst */
	rate_update(&rl, &r, 3, 11100);
	assert_int_equal(rate_available(&rl, 11100), 3);
	/* from unlimited to limited starts full */
	rate_init(&rl, &unl, 0, 0);
	rate_update(&rl, &r, 2, 0);
	assert_int_equal(rate_available(&rl, 0), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin),
		cmocka_unit_test(test_precedence_base),
		cmocka_unit_test(test_precedence_pool_ip),
		cmocka_unit_test(test_aliases),
		cmocka_unit_test(test_shipped_file),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_parse_rate),
		cmocka_unit_test(test_rate_burst_refill),
		cmocka_unit_test(test_rate_exactness),
		cmocka_unit_test(test_rate_unlimited_backwards_update),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
