/*
 * test_suppression.c — the suppression set: normalisation, global and
 * per-tenant lists, add/remove/check, store keys, CSV export and import
 * (quoting, scopes, errors), the size bound.
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
#include "suppression.h"

static void test_normalize(void **state)
{
	(void)state;
	char out[SUPPRESSION_ADDR_MAX + 1];
	char long_addr[400];

	assert_int_equal(suppression_normalize(" <Bob@Example.COM>\r\n", out, sizeof out), 15);
	assert_string_equal(out, "bob@example.com");
	assert_int_equal(suppression_normalize("\"a,b\"@example.com", out, sizeof out), 17);
	assert_int_equal(suppression_normalize("nobody", out, sizeof out), -EINVAL);
	assert_int_equal(suppression_normalize("@example.com", out, sizeof out), -EINVAL);
	assert_int_equal(suppression_normalize("bob@", out, sizeof out), -EINVAL);
	assert_int_equal(suppression_normalize("bo b@x", out, sizeof out), -EINVAL);
	assert_int_equal(suppression_normalize("", out, sizeof out), -EINVAL);
	memset(long_addr, 'a', sizeof long_addr);
	long_addr[10] = '@';
	long_addr[sizeof long_addr - 1] = 0;
	assert_int_equal(suppression_normalize(long_addr, out, sizeof out), -EINVAL);
}

static void test_add_check_remove(void **state)
{
	(void)state;
	struct suppression *s = suppression_create(0);
	struct suppression_entry e;

	assert_non_null(s);
	assert_int_equal(suppression_add(s, "acme", "Bob@Example.com", SUPPRESSION_HARD_BOUNCE, 100), 0);
	assert_int_equal(suppression_add(s, "acme", "<bob@example.COM>", SUPPRESSION_COMPLAINT, 200), 1);
	assert_int_equal(suppression_add(s, NULL, "trap@example.net", SUPPRESSION_MANUAL, 300), 0);
	assert_int_equal(suppression_count(s), 2);
	/* the tenant's list applies to the tenant only; it keeps the first reason */
	assert_int_equal(suppression_check(s, "acme", "BOB@example.com", &e), 1);
	assert_string_equal(e.tenant, "acme");
	assert_int_equal(e.reason, SUPPRESSION_HARD_BOUNCE);
	assert_true(e.added_ms == 100);
	assert_int_equal(suppression_check(s, "other", "bob@example.com", &e), 0);
	assert_int_equal(suppression_check(s, NULL, "bob@example.com", &e), 0);
	/* the global list applies to everyone */
	assert_int_equal(suppression_check(s, "other", "Trap@Example.net", &e), 1);
	assert_string_equal(e.tenant, "");
	assert_int_equal(suppression_check(s, NULL, "trap@example.net", NULL), 1);
	assert_int_equal(suppression_check(s, "acme", "garbage", &e), -EINVAL);
	/* remove */
	assert_int_equal(suppression_remove(s, "acme", "bob@example.com"), 0);
	assert_int_equal(suppression_remove(s, "acme", "bob@example.com"), SL_ENOTFOUND);
	assert_int_equal(suppression_check(s, "acme", "bob@example.com", &e), 0);
	assert_int_equal(suppression_count(s), 1);
	/* bad input */
	assert_int_equal(suppression_add(s, "ac me", "x@y", SUPPRESSION_MANUAL, 0), -EINVAL);
	assert_int_equal(suppression_add(s, "acme", "x@y", 9, 0), -EINVAL);
	suppression_free(s);
}

static void test_many_and_bound(void **state)
{
	(void)state;
	struct suppression *s = suppression_create(5000);
	char a[64];

	assert_non_null(s);
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(a, sizeof a, "user%u@example.com", i);
		assert_int_equal(suppression_add(s, i % 2 ? "acme" : "", a, SUPPRESSION_UNSUBSCRIBE, i), 0);
	}
	assert_int_equal(suppression_add(s, "acme", "one.more@example.com", SUPPRESSION_MANUAL, 0),
			 -ENOSPC);
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(a, sizeof a, "USER%u@example.com", i);
		assert_int_equal(suppression_check(s, "acme", a, NULL), 1);
		assert_int_equal(suppression_check(s, "zzz", a, NULL), i % 2 ? 0 : 1);
	}
	/* removing frees room */
	assert_int_equal(suppression_remove(s, "acme", "user1@example.com"), 0);
	assert_int_equal(suppression_add(s, "acme", "one.more@example.com", SUPPRESSION_MANUAL, 0), 0);
	suppression_free(s);
}

static void test_key(void **state)
{
	(void)state;
	char k[400];

	assert_int_equal(suppression_key("acme", "<Bob@X.org>", k, sizeof k), 14);
	assert_memory_equal(k, "acme\0bob@x.org", 15);
	assert_int_equal(suppression_key(NULL, "bob@x.org", k, sizeof k), 10);
	assert_memory_equal(k, "\0bob@x.org", 11);
	assert_int_equal(suppression_key("acme", "bob@x.org", k, 8), SL_ETOOBIG);
	assert_int_equal(suppression_key("acme", "bob", k, sizeof k), -EINVAL);
}

static void test_csv_roundtrip(void **state)
{
	(void)state;
	struct suppression *s = suppression_create(0), *s2 = suppression_create(0);
	struct sl_buf b = { 0 }, b2 = { 0 };
	struct suppression_entry e;
	size_t added = 0;
	char err[128];

	suppression_add(s, "acme", "bob@example.com", SUPPRESSION_HARD_BOUNCE, 1700000000000ull);
	suppression_add(s, "", "trap@example.net", SUPPRESSION_MANUAL, 5);
	suppression_add(s, "beta", "\"odd,\"\"name\"@example.com", SUPPRESSION_COMPLAINT, 6);
	assert_int_equal(suppression_export(s, NULL, &b), 0);
	assert_int_equal(sl_buf_append(&b, "", 1), 0);
	assert_string_equal(b.data, "tenant,address,reason,added_at_ms\n"
				    "acme,bob@example.com,hard_bounce,1700000000000\n"
				    ",trap@example.net,manual,5\n"
				    "beta,\"\"\"odd,\"\"\"\"name\"\"@example.com\",complaint,6\n");
	assert_int_equal(suppression_import(s2, b.data, b.len - 1, "x.csv", NULL, SUPPRESSION_MANUAL,
					    0, &added, err, sizeof err), 0);
	assert_int_equal(added, 3);
	assert_int_equal(suppression_export(s2, NULL, &b2), 0);
	assert_int_equal(sl_buf_append(&b2, "", 1), 0);
	assert_string_equal(b.data, b2.data);
	assert_int_equal(suppression_check(s2, "beta", "\"odd,\"\"name\"@example.com", &e), 1);
	assert_int_equal(e.reason, SUPPRESSION_COMPLAINT);
	/* one tenant's export, the global export */
	sl_buf_reset(&b);
	assert_int_equal(suppression_export(s, "acme", &b), 0);
	assert_int_equal(sl_buf_append(&b, "", 1), 0);
	assert_string_equal(b.data, "tenant,address,reason,added_at_ms\n"
				    "acme,bob@example.com,hard_bounce,1700000000000\n");
	sl_buf_reset(&b);
	assert_int_equal(suppression_export(s, "", &b), 0);
	assert_int_equal(sl_buf_append(&b, "", 1), 0);
	assert_string_equal(b.data, "tenant,address,reason,added_at_ms\n,trap@example.net,manual,5\n");
	sl_buf_free(&b);
	sl_buf_free(&b2);
	suppression_free(s);
	suppression_free(s2);
}

static void test_import_scopes_and_errors(void **state)
{
	(void)state;
	struct suppression *s = suppression_create(0);
	struct suppression_entry e;
	size_t added = 0;
	char err[160];
	static const char bare[] = "# unsubscribes from the old system\r\n"
				   "alice@example.com\r\n"
				   "\r\n"
				   "<Carol@Example.com>\r\n"
				   "alice@example.com\r\n";
	static const char mixed[] = ",bob@example.com,complaint,9\nacme,dan@example.com,manual,10\n";

	/* a tenant's own import: bare addresses get the caller's reason and time */
	assert_int_equal(suppression_import(s, bare, sizeof bare - 1, "u.csv", "acme",
					    SUPPRESSION_UNSUBSCRIBE, 77, &added, err, sizeof err), 0);
	assert_int_equal(added, 2);
	assert_int_equal(suppression_check(s, "acme", "carol@example.com", &e), 1);
	assert_true(e.reason == SUPPRESSION_UNSUBSCRIBE && e.added_ms == 77);
	/* lines naming no tenant go to the scope too, not to the global list */
	assert_int_equal(suppression_import(s, mixed, sizeof mixed - 1, "m.csv", "acme",
					    SUPPRESSION_MANUAL, 0, &added, err, sizeof err), 0);
	assert_int_equal(suppression_check(s, "other", "bob@example.com", &e), 0);
	assert_int_equal(suppression_check(s, "acme", "bob@example.com", &e), 1);
	/* a tenant cannot write another tenant's list */
	{
		static const char t[] = "beta,x@example.com,manual,1\n";
		assert_int_equal(suppression_import(s, t, sizeof t - 1, "t.csv", "acme",
						    SUPPRESSION_MANUAL, 0, &added, err, sizeof err),
				 SL_ECONFIG);
		assert_string_equal(err, "t.csv:1: tenant \"beta\" is not acme");
	}
	{
		static const struct {
			const char *text, *err;
		} cases[] = {
			{ "acme,x@example.com,spam,1\n", "e.csv:1: unknown reason \"spam\"" },
			{ "acme,x@example.com,manual\n", "e.csv:1: want tenant,address" },
			{ "a@b.c\nacme,x@example.com,manual,soon\n", "e.csv:2: bad added_at_ms" },
			{ "acme,\"x@example.com,manual,1\n", "e.csv:1: bad CSV" },
			{ "acme,x@example.com,manual,1,extra\n", "e.csv:1: bad CSV" },
			{ "not an address\n", "e.csv:1: bad tenant or address" },
			{ "ac me,x@example.com,manual,1\n", "e.csv:1: bad tenant or address" },
		};
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			int rc = suppression_import(s, cases[i].text, strlen(cases[i].text), "e.csv",
						    NULL, SUPPRESSION_MANUAL, 0, &added, err,
						    sizeof err);
			assert_int_equal(rc, SL_ECONFIG);
			if (strncmp(err, cases[i].err, strlen(cases[i].err)))
				fail_msg("case %zu: got \"%s\"", i, err);
		}
	}
	suppression_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_add_check_remove),
		cmocka_unit_test(test_many_and_bound),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_csv_roundtrip),
		cmocka_unit_test(test_import_scopes_and_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
