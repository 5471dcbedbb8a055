/* test_quota.c — tenants' hourly and daily quota windows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "quota.h"

#define HOUR 3600000ull
#define T0 (20000ull * 24 * HOUR) /* a UTC midnight */

static void test_hourly_limit_and_reset(void **state)
{
	struct quota *q;
	char why[128] = "";

	(void)state;
	assert_int_equal(quota_create(&q), 0);
	assert_false(quota_over(q, "acme", 3, 0, T0, why, sizeof why));
	for (int i = 0; i < 3; i++)
		assert_int_equal(quota_count(q, "acme", T0 + 1000 * i), 0);
	assert_true(quota_over(q, "acme", 3, 0, T0 + 5000, why, sizeof why));
	assert_string_equal(why, "hourly quota of 3 messages reached");
	/* another tenant is not affected */
	assert_false(quota_over(q, "globex", 3, 0, T0 + 5000, why, sizeof why));
	/* the next clock hour starts at zero */
	assert_false(quota_over(q, "acme", 3, 0, T0 + HOUR, why, sizeof why));
	quota_destroy(q);
}

static void test_daily_limit_spans_hours(void **state)
{
	struct quota *q;
	char why[128];

	(void)state;
	assert_int_equal(quota_create(&q), 0);
	for (int h = 0; h < 5; h++)
		assert_int_equal(quota_count(q, "acme", T0 + h * HOUR), 0);
	assert_false(quota_over(q, "acme", 10, 6, T0 + 5 * HOUR, why, sizeof why));
	assert_int_equal(quota_count(q, "acme", T0 + 5 * HOUR), 0);
	assert_true(quota_over(q, "acme", 10, 6, T0 + 6 * HOUR, why, sizeof why));
	assert_string_equal(why, "daily quota of 6 messages reached");
	assert_false(quota_over(q, "acme", 10, 6, T0 + 24 * HOUR, why, sizeof why));
	/* no limits: never over */
	assert_false(quota_over(q, "acme", 0, 0, T0 + 6 * HOUR, why, sizeof why));
	quota_destroy(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hourly_limit_and_reset),
		cmocka_unit_test(test_daily_limit_spans_hours),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
