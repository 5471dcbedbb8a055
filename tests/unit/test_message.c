/* test_message.c — header-section helpers (dataplane/message.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "message.h"

static const char MSG[] = "From: a@b.test\r\n"
			  "Subject: hello\r\n"
			  "  world\r\n"
			  "X-Sluice-Stream: marketing\r\n"
			  "message-id:   <1@b.test>  \r\n"
			  "\r\n"
			  "Subject: not a header\r\n";

static void test_header_len(void **state)
{
	(void)state;
	assert_int_equal(message_header_len(MSG, strlen(MSG)),
			 strstr(MSG, "\r\n\r\n") - MSG + 4);
	assert_int_equal(message_header_len("A: b\r\n", 6), 6);
}

static void test_header_get(void **state)
{
	char v[64];

	(void)state;
	assert_true(message_header_get(MSG, strlen(MSG), "Subject", v, sizeof v));
	assert_string_equal(v, "hello world");
	assert_true(message_header_get(MSG, strlen(MSG), "Message-ID", v, sizeof v));
	assert_string_equal(v, "<1@b.test>");
	assert_false(message_header_get(MSG, strlen(MSG), "Subj", v, sizeof v));
	assert_false(message_header_get(MSG, strlen(MSG), "Date", v, sizeof v));
	assert_true(message_header_get(MSG, strlen(MSG), "subject", v, 6));
	assert_string_equal(v, "hello");
}

static void test_append_without(void **state)
{
	struct sl_buf b = { 0 };

	(void)state;
	assert_int_equal(message_append_without(&b, MSG, strlen(MSG), "X-Sluice-Stream"), 0);
	assert_int_equal(b.len, strlen(MSG) - strlen("X-Sluice-Stream: marketing\r\n"));
	assert_null(memmem(b.data, b.len, "X-Sluice", 8));
	assert_non_null(memmem(b.data, b.len, "Subject: not a header", 21));
	sl_buf_reset(&b);
	/* A folded field goes with its continuation lines. */
	assert_int_equal(message_append_without(&b, MSG, strlen(MSG), "Subject"), 0);
	assert_null(memmem(b.data, b.len, "world", 5));
	assert_non_null(memmem(b.data, b.len, "Subject: not a header", 21));
	sl_buf_free(&b);
}

static void test_from_domain(void **state)
{
	char d[64];

	(void)state;
	assert_true(message_from_domain("Acme News <news@Acme.TEST>", d, sizeof d));
	assert_string_equal(d, "acme.test");
	assert_true(message_from_domain("news@acme.test", d, sizeof d));
	assert_string_equal(d, "acme.test");
	assert_true(message_from_domain("\"a@b\" <x@real.test>, y@other.test", d, sizeof d));
	assert_string_equal(d, "real.test");
	assert_false(message_from_domain("undisclosed", d, sizeof d));
	assert_false(message_from_domain("<x@>", d, sizeof d));
	assert_false(message_from_domain("x@averyveryverylongdomain.test", d, 8));
}

static void test_date(void **state)
{
	char d[40];

	(void)state;
	message_date(0, d);
	assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 +0000");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_len),
		cmocka_unit_test(test_header_get),
		cmocka_unit_test(test_append_without),
		cmocka_unit_test(test_from_domain),
		cmocka_unit_test(test_date),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
