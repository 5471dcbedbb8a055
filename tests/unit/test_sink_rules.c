/* test_sink_rules.c — unit tests for bench/sink_rules.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sink_rules.h"
#include "err.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sink_rules *parse_ok(const char *text)
{
	struct sink_rules *r = NULL;
	char err[256];
	int rc = sink_rules_parse(text, strlen(text), "t.rules", &r, err,
				  sizeof err);

	if (rc)
		fail_msg("parse failed: %s", err);
	assert_non_null(r);
	return r;
}

static void parse_err(const char *text, const char *want)
{
	struct sink_rules *r = NULL;
	char err[256];
	int rc = sink_rules_parse(text, strlen(text), "t.rules", &r, err,
				  sizeof err);

	assert_int_equal(rc, SL_ECONFIG);
	assert_null(r);
	if (!strstr(err, want))
		fail_msg("error '%s' does not contain '%s'", err, want);
}

static struct sink_match dom(const char *d)
{
	struct sink_match m = { .domain = d, .domain_len = d ? strlen(d) : 0 };

	return m;
}

static void test_empty_and_comments(void **state)
{
	struct sink_rules *r;
	struct sink_match m = dom(NULL);
	char line[SINK_REPLY_MAX];
	uint64_t rng = 1;

	(void)state;
	r = parse_ok("# nothing\n\n   \t\n  # indented comment\r\n");
	assert_int_equal(sink_rules_count(r), 0);
	assert_int_equal(sink_rules_greeting(r, &m, line, sizeof line), 0);
	assert_int_equal(sink_rules_delay_ms(r, &m), 0);
	assert_int_equal(sink_rules_rcpt(r, &m, "a@b", 3, &rng, line,
					 sizeof line), 0);
	assert_int_equal(sink_rules_data_end(r, &m, NULL, 0, line, sizeof line),
			 0);
	sink_rules_destroy(r);
	r = parse_ok("");
	assert_int_equal(sink_rules_count(r), 0);
	sink_rules_destroy(r);
}

static void test_reject_user(void **state)
{
	struct sink_rules *r;
	struct sink_match m = dom("Example.TEST");
	char line[SINK_REPLY_MAX];
	uint64_t rng = 1;

	(void)state;
	r = parse_ok("example.test reject-user bob Alice\n");
	assert_int_equal(sink_rules_rcpt(r, &m, "BOB@example.test", 16, &rng,
					 line, sizeof line), 550);
	assert_string_equal(line, "550 5.1.1 <BOB@example.test>: Recipient "
				  "address rejected: User unknown");
	assert_int_equal(sink_rules_rcpt(r, &m, "alice@example.test", 18, &rng,
					 line, sizeof line), 550);
	assert_int_equal(sink_rules_rcpt(r, &m, "carol@example.test", 18, &rng,
					 line, sizeof line), 0);
	/* a prefix of a listed name is not that name */
	assert_int_equal(sink_rules_rcpt(r, &m, "bo@example.test", 15, &rng,
					 line, sizeof line), 0);
	m = dom("other.test");
	assert_int_equal(sink_rules_rcpt(r, &m, "bob@other.test", 14, &rng,
					 line, sizeof line), 0);
	sink_rules_destroy(r);
}

static void test_order_first_match_wins(void **state)
{
	struct sink_rules *r;
	struct sink_match m = dom("example.test");
	char line[SINK_REPLY_MAX];
	uint64_t rng = 1;

	(void)state;
	r = parse_ok("example.test reject-user bob\n"
		     "example.test reject-rcpt 550 5.7.1 Blocked\n"
		     "*            reject-rcpt 451 4.3.0 Later\n");
	assert_int_equal(sink_rules_count(r), 3);
	assert_int_equal(sink_rules_rcpt(r, &m, "bob@example.test", 16, &rng,
					 line, sizeof line), 550);
	assert_non_null(strstr(line, "User unknown"));
	assert_int_equal(sink_rules_rcpt(r, &m, "eve@example.test", 16, &rng,
					 line, sizeof line), 550);
	assert_string_equal(line, "550 5.7.1 Blocked");
	m = dom("x.test");
	assert_int_equal(sink_rules_rcpt(r, &m, "eve@x.test", 10, &rng, line,
					 sizeof line), 451);
	assert_string_equal(line, "451 4.3.0 Later");
	m = dom(NULL);
	assert_int_equal(sink_rules_rcpt(r, &m, "eve", 3, &rng, line,
					 sizeof line), 451);
	sink_rules_destroy(r);
}

static void test_suffix_selector(void **state)
{
	struct sink_rules *r;
	struct sink_match m;

	(void)state;
	r = parse_ok("*.example.test delay 2s\n");
	m = dom("mx.Example.test");
	assert_int_equal(sink_rules_delay_ms(r, &m), 2000);
	m = dom("example.test");
	assert_int_equal(sink_rules_delay_ms(r, &m), 0);
	m = dom("badexample.test");
	assert_int_equal(sink_rules_delay_ms(r, &m), 0);
	sink_rules_destroy(r);
}

static void test_addr_selector(void **state)
{
	struct sink_rules *r;
	struct sockaddr_in in = { .sin_family = AF_INET,
				  .sin_port = htons(2525) };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6,
				    .sin6_port = htons(25) };
	struct sink_match m = { 0 };
	char line[SINK_REPLY_MAX];

	(void)state;
	r = parse_ok("[198.51.100.7]:2525 greeting 554 5.7.1 No service\n"
		     "[198.51.100.8] greeting 421 4.3.2 Busy\n"
		     "[::1]:25 greeting 220 custom.test ESMTP\n");
	assert_true(sink_rules_use_local_addr(r));
	assert_int_equal(sink_rules_greeting(r, &m, line, sizeof line), 0);
	inet_pton(AF_INET, "198.51.100.7", &in.sin_addr);
	m.local = (struct sockaddr *)&in;
	assert_int_equal(sink_rules_greeting(r, &m, line, sizeof line), 554);
	assert_string_equal(line, "554 5.7.1 No service");
	in.sin_port = htons(25);
	assert_int_equal(sink_rules_greeting(r, &m, line, sizeof line), 0);
	inet_pton(AF_INET, "198.51.100.8", &in.sin_addr);
	assert_int_equal(sink_rules_greeting(r, &m, line, sizeof line), 421);
	/* an IPv4-mapped IPv6 address matches the IPv4 selector */
	inet_pton(AF_INET6, "::ffff:198.51.100.8", &in6.sin6_addr);
	m.local = (struct sockaddr *)&in6;
	assert_int_equal(sink_rules_greeting(r, &m, line, sizeof line), 421);
	inet_pton(AF_INET6, "::1", &in6.sin6_addr);
	assert_int_equal(sink_rules_greeting(r, &m, line, sizeof line), 220);
	assert_string_equal(line, "220 custom.test ESMTP");
	sink_rules_destroy(r);
}

static void test_counts_and_delay(void **state)
{
	struct sink_rules *r;
	struct sink_match m = dom(NULL);

	(void)state;
	r = parse_ok("*  defer-after-conn 20\n"
		     "*  disconnect-after 3\n"
		     "*  delay 200ms\n"
		     "*  delay 5s\n");
	assert_int_equal(sink_rules_max_msgs(r, &m), 20);
	assert_int_equal(sink_rules_disconnect_after(r, &m), 3);
	assert_int_equal(sink_rules_delay_ms(r, &m), 200);
	sink_rules_destroy(r);
	r = parse_ok("* delay 1.5\n");
	assert_int_equal(sink_rules_delay_ms(r, &m), 1500);
	sink_rules_destroy(r);
	r = parse_ok("* delay 1m\n");
	assert_int_equal(sink_rules_delay_ms(r, &m), 60000);
	sink_rules_destroy(r);
	r = parse_ok("* delay 0.25s\n");
	assert_int_equal(sink_rules_delay_ms(r, &m), 250);
	sink_rules_destroy(r);
}

static void test_data_reply(void **state)
{
	struct sink_rules *r;
	struct sink_match m = dom("example.test");
	char line[SINK_REPLY_MAX];

	(void)state;
	r = parse_ok("other.test data-reply 554 5.7.1 Spam\n"
		     "*          data-reply   451   4.3.0 Try again later  \n");
	assert_int_equal(sink_rules_data_end(r, &m, NULL, 0, line, sizeof line),
			 451);
	assert_string_equal(line, "451 4.3.0 Try again later");
	m = dom("other.test");
	assert_int_equal(sink_rules_data_end(r, &m, NULL, 0, line, sizeof line),
			 554);
	sink_rules_destroy(r);
}

static void test_rate_per_ip(void **state)
{
	struct sink_rules *r;
	struct sink_match m = dom("gmail.test");
	struct sockaddr_in a = { .sin_family = AF_INET }, b = a;
	char line[SINK_REPLY_MAX];
	uint64_t t = 1000000;

	(void)state;
	inet_pton(AF_INET, "203.0.113.1", &a.sin_addr);
	inet_pton(AF_INET, "203.0.113.2", &b.sin_addr);
	r = parse_ok("gmail.test rate-per-ip 3/60 421 4.7.28 Our system has "
		     "detected an unusual rate of unsolicited mail\n");
	assert_true(sink_rules_use_rate(r));
	for (int i = 0; i < 3; i++)
		assert_int_equal(sink_rules_data_end(r, &m, (void *)&a, t + i,
						     line, sizeof line), 0);
	assert_int_equal(sink_rules_data_end(r, &m, (void *)&a, t + 10, line,
					     sizeof line), 421);
	assert_non_null(strstr(line, "4.7.28 Our system"));
	/* another source IP has its own window */
	assert_int_equal(sink_rules_data_end(r, &m, (void *)&b, t + 10, line,
					     sizeof line), 0);
	/* another domain is not limited */
	m = dom("x.test");
	assert_int_equal(sink_rules_data_end(r, &m, (void *)&a, t + 10, line,
					     sizeof line), 0);
	m = dom("gmail.test");
	assert_int_equal(sink_rules_data_end(r, &m, (void *)&a, t + 59999,
					     line, sizeof line), 421);
	/* the window closes 60 s after it opened */
	assert_int_equal(sink_rules_data_end(r, &m, (void *)&a, t + 60000,
					     line, sizeof line), 0);
	sink_rules_destroy(r);
}

static void test_rate_many_ips(void **state)
{
	struct sink_rules *r;
	struct sink_match m = dom(NULL);
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 };
	char line[SINK_REPLY_MAX];

	(void)state;
	r = parse_ok("* rate-per-ip 1/1s 450 4.7.0 Slow down\n");
	for (uint32_t i = 0; i < 5000; i++) {
		memcpy(a.sin6_addr.s6_addr, &i, sizeof i);
		assert_int_equal(sink_rules_data_end(r, &m, (void *)&a, i / 4,
						     line, sizeof line), 0);
		assert_int_equal(sink_rules_data_end(r, &m, (void *)&a, i / 4,
						     line, sizeof line), 450);
	}
	sink_rules_destroy(r);
}

static void test_fail_rate(void **state)
{
	struct sink_rules *r;
	struct sink_match m = dom("example.test");
	char line[SINK_REPLY_MAX];
	uint64_t rng = 42, rng2 = 42;
	int fails = 0;

	(void)state;
	r = parse_ok("* fail-rate 10% 450 4.2.0 Mailbox busy\n");
	for (int i = 0; i < 10000; i++) {
		int c1 = sink_rules_rcpt(r, &m, "a@example.test", 14, &rng,
					 line, sizeof line);
		int c2 = sink_rules_rcpt(r, &m, "a@example.test", 14, &rng2,
					 line, sizeof line);

		assert_int_equal(c1, c2); /* deterministic */
		if (c1 == 450)
			fails++;
	}
	assert_in_range(fails, 800, 1200);
	sink_rules_destroy(r);
	r = parse_ok("* fail-rate 0.5 450 4.2.0 Busy\n* fail-rate 100% 550 No\n");
	for (int i = 0; i < 100; i++) {
		int c = sink_rules_rcpt(r, &m, "a@b", 3, &rng, line, sizeof line);

		assert_true(c == 450 || c == 550);
	}
	sink_rules_destroy(r);
}

static void test_greeting_codes(void **state)
{
	struct sink_rules *r;
	struct sink_match m = dom(NULL);
	char line[SINK_REPLY_MAX];

	(void)state;
	r = parse_ok("* greeting 554\n");
	assert_int_equal(sink_rules_greeting(r, &m, line, sizeof line), 554);
	assert_string_equal(line, "554");
	sink_rules_destroy(r);
}

static void test_parse_errors(void **state)
{
	(void)state;
	parse_err("* bogus 1\n", "t.rules:1: unknown action 'bogus'");
	parse_err("# c\n\n*\n", "t.rules:3: missing action");
	parse_err("* delay\n", "t.rules:1: delay: missing duration");
	parse_err("* delay 5x\n", "unit must be");
	parse_err("* delay 25h\n", "longer than 24h");
	parse_err("* delay 1 2\n", "unexpected '2'");
	parse_err("* defer-after-conn 0\n", "at least 1");
	parse_err("* defer-after-conn -1\n", "not a count");
	parse_err("* defer-after-conn 99999999999\n", "too large");
	parse_err("* reject-rcpt 250 ok\n", "not allowed");
	parse_err("* reject-rcpt 55\n", "not a reply code");
	parse_err("* reject-rcpt\n", "missing reply code");
	parse_err("* greeting 250 hi\n", "not allowed");
	parse_err("* reject-user\n", "missing user names");
	parse_err("* rate-per-ip 100 421 x\n", "not N/DURATION");
	parse_err("* rate-per-ip 100/0 421 x\n", "positive");
	parse_err("* fail-rate 101% 450 x\n", "more than 100%");
	parse_err("* fail-rate 1.5 450 x\n", "more than 100%");
	parse_err("* fail-rate x 450 x\n", "not a rate");
	parse_err("[1.2.3.4 delay 1\n", "missing ']'");
	parse_err("[1.2.3] delay 1\n", "not an IP address");
	parse_err("[1.2.3.4]:0 delay 1\n", "bad port");
	parse_err("[1.2.3.4]x delay 1\n", "bad port");
	parse_err("exa/mple delay 1\n", "bad domain");
	parse_err("* delay 1\n* greeting 554 a\x01b\n", "t.rules:2: control");
}

static void test_long_line(void **state)
{
	char *text = malloc(10000);

	(void)state;
	assert_non_null(text);
	memset(text, 'a', 9999);
	text[9999] = '\0';
	parse_err(text, "longer than");
	free(text);
}

static void test_load(void **state)
{
	char path[] = "/tmp/test_sink_rules_XXXXXX", err[256];
	const char *text = "* data-reply 451 4.3.0 Try again later\n"
			   "* nope\n";
	struct sink_rules *r = NULL;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	assert_int_equal(sink_rules_load(path, &r, err, sizeof err),
			 SL_ECONFIG);
	assert_non_null(strstr(err, ":2: unknown action 'nope'"));
	assert_non_null(strstr(err, path));
	unlink(path);
	assert_true(sink_rules_load(path, &r, err, sizeof err) < 0);
	assert_non_null(strstr(err, path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_and_comments),
		cmocka_unit_test(test_reject_user),
		cmocka_unit_test(test_order_first_match_wins),
		cmocka_unit_test(test_suffix_selector),
		cmocka_unit_test(test_addr_selector),
		cmocka_unit_test(test_counts_and_delay),
		cmocka_unit_test(test_data_reply),
		cmocka_unit_test(test_rate_per_ip),
		cmocka_unit_test(test_rate_many_ips),
		cmocka_unit_test(test_fail_rate),
		cmocka_unit_test(test_greeting_codes),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
