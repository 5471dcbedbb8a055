/* test_unsubscribe.c — RFC 8058 links: the header fields, token round
 * trip, tampering and a wrong key refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "unsubscribe.h"

static void test_roundtrip(void **state)
{
	uint8_t key[32], other[32];
	struct sl_buf h = { 0 }, t = { 0 };
	char tenant[UNSUBSCRIBE_TENANT_MAX + 1], rcpt[UNSUBSCRIBE_ADDR_MAX + 1], *tok;

	(void)state;
	unsubscribe_key("s3cret", key);
	unsubscribe_key("other", other);
	assert_int_equal(unsubscribe_headers(key, "https://sluice.example/", "acme", "Bob@Example.test",
					     &h), 0);
	assert_int_equal(sl_buf_append(&h, "", 1), 0);
	assert_true(!strncmp(sl_buf_head(&h), "List-Unsubscribe: <https://sluice.example/v1/unsubscribe/",
			     57));
	assert_non_null(strstr(sl_buf_head(&h),
			       ">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
	assert_int_equal(unsubscribe_token(key, "acme", "bob@example.test", &t), 0);
	assert_int_equal(sl_buf_append(&t, "", 1), 0);
	tok = sl_buf_head(&t);
	assert_non_null(strstr(sl_buf_head(&h), tok)); /* case-insensitive recipient */
	assert_int_equal(unsubscribe_parse(key, tok, tenant, rcpt), 0);
	assert_string_equal(tenant, "acme");
	assert_string_equal(rcpt, "bob@example.test");
	assert_int_equal(unsubscribe_parse(other, tok, tenant, rcpt), -EPERM);
	tok[0] = tok[0] == '6' ? '7' : '6'; /* another tenant name, same MAC */
	assert_int_equal(unsubscribe_parse(key, tok, tenant, rcpt), -EPERM);
	assert_int_equal(unsubscribe_parse(key, "zz.zz.00", tenant, rcpt), -EINVAL);
	assert_int_equal(unsubscribe_parse(key, "", tenant, rcpt), -EINVAL);
	sl_buf_free(&h);
	sl_buf_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
