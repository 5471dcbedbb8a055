/*
 * test_dnsbl.c — the DNSBL self-check's pure parts: query names of IPv4
 * and IPv6 source IPs, the distinct IPs of the pools, the state before the
 * first round. (Listing and delisting run against the test network's DNS
 * in tests/e2e/test_abuse.py.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "config.h"
#include "dnsbl.h"

static void test_query_name(void **state)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	char q[256];

	(void)state;
	inet_pton(AF_INET, "198.51.100.11", &a4.sin_addr);
	assert_int_equal(dnsbl_query_name((struct sockaddr *)&a4, "zen.test", q, sizeof q), 0);
	assert_string_equal(q, "11.100.51.198.zen.test");
	assert_int_equal(dnsbl_query_name((struct sockaddr *)&a4, "zen.test", q, 10), -EINVAL);
	inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
	assert_int_equal(dnsbl_query_name((struct sockaddr *)&a6, "zen.test", q, sizeof q), 0);
	assert_string_equal(q, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.test");
	assert_int_equal(dnsbl_query_name((struct sockaddr *)&a6, "zen.test", q, 40), -EINVAL);
}

static void test_distinct_ips(void **state)
{
	static const char yaml[] =
		"pools:\n"
		"  - name: a\n    ips:\n"
		"      - {address: 198.51.100.10, ehlo: a.test}\n"
		"      - {address: 198.51.100.11, ehlo: b.test}\n"
		"  - name: b\n    ips:\n"
		"      - {address: 198.51.100.11, ehlo: b.test}\n"
		"dnsbl:\n  zones: [zen.test, bl.test]\n";
	struct sl_config *cfg;
	struct dnsbl *d;
	const char *listed = NULL, *why = NULL;
	char err[256];

	(void)state;
	assert_int_equal(config_load_string("t.yaml", yaml, strlen(yaml), &cfg, err, sizeof err), 0);
	assert_int_equal(dnsbl_create(NULL, cfg, NULL, NULL, &d), 0);
	assert_int_equal(dnsbl_count(d), 2);
	assert_string_equal(dnsbl_get(d, 1)->ip, "198.51.100.11");
	assert_non_null(dnsbl_find(d, "198.51.100.10", &listed, &why));
	assert_string_equal(listed, "");
	assert_string_equal(why, "not checked yet");
	assert_false(dnsbl_get(d, 0)->listed_any);
	assert_null(dnsbl_find(d, "198.51.100.12", NULL, NULL));
	assert_int_equal(dnsbl_rounds(d), 0);
	dnsbl_destroy(d);
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_name),
		cmocka_unit_test(test_distinct_ips),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
