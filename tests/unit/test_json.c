/* test_json.c — JSON writing helpers (common/json.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "json.h"

/* buf's unconsumed bytes as a NUL-terminated string (for assert_string_equal). */
static const char *str(struct sl_buf *b)
{
	assert_int_equal(sl_buf_reserve(b, 1), 0);
	b->data[b->len] = '\0';
	return sl_buf_head(b);
}

static void check_n(const char *in, size_t len, const char *want)
{
	struct sl_buf b = { 0 };

	assert_int_equal(json_append_stringn(&b, in, len), 0);
	assert_string_equal(str(&b), want);
	sl_buf_free(&b);
}

static void check(const char *in, const char *want)
{
	check_n(in, strlen(in), want);
}

static void test_plain(void **state)
{
	(void)state;
	check("", "\"\"");
	check("hello, world", "\"hello, world\"");
	check("<a@b.example> 250 2.0.0 Ok", "\"<a@b.example> 250 2.0.0 Ok\"");
	check("\x7f/~", "\"\x7f/~\""); /* DEL and '/' need no escape */
}

static void test_escapes(void **state)
{
	(void)state;
	check("a\"b\\c", "\"a\\\"b\\\\c\"");
	check("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
	check("\x01\x1f\x0b", "\"\\u0001\\u001f\\u000b\"");
	check_n("a\0b", 3, "\"a\\u0000b\"");
}

static void test_utf8_valid(void **state)
{
	(void)state;
	check("caf\xc3\xa9", "\"caf\xc3\xa9\"");                 /* U+00E9 */
	check("\xe2\x82\xac", "\"\xe2\x82\xac\"");               /* U+20AC */
	check("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");       /* U+1F600 */
	check("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");       /* U+10FFFF */
	check("\xef\xbf\xbd", "\"\xef\xbf\xbd\"");               /* U+FFFD itself */
}

static void test_utf8_invalid(void **state)
{
	(void)state;
	check("\x80", "\"\\ufffd\"");                       /* lone continuation */
	check("a\xff" "b", "\"a\\ufffdb\"");
	check("\xc0\xaf", "\"\\ufffd\\ufffd\"");            /* overlong '/' */
	check("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""); /* overlong 3-byte */
	check("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate D800 */
	check("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
	check("\xf5", "\"\\ufffd\"");
	/* A truncated sequence is one maximal subpart: one replacement. */
	check("\xe2\x82" "A", "\"\\ufffdA\"");
	check("\xf0\x9f\x98", "\"\\ufffd\"");
	check("\xf0\x9f\x98\xf0\x9f\x98\x80", "\"\\ufffd\xf0\x9f\x98\x80\"");
	check("\xc3", "\"\\ufffd\"");
	check("\xc3\n", "\"\\ufffd\\n\"");
}

/* Inputs longer than one internal chunk, with sequences straddling it. */
static void test_long(void **state)
{
	enum { N = 20000 };
	struct sl_buf b = { 0 }, want = { 0 };
	char *in = malloc(N);
	size_t i;

	(void)state;
	assert_non_null(in);
	sl_buf_append(&want, "\"", 1);
	for (i = 0; i < N;) {
		if (i % 4093 == 4090 && i + 4 <= N) {
			memcpy(in + i, "\xf0\x9f\x98\x80", 4);
			sl_buf_append(&want, in + i, 4);
			i += 4;
		} else if (i % 97 == 0) {
			in[i++] = '\x01';
			sl_buf_append(&want, "\\u0001", 6);
		} else if (i % 89 == 0) {
			in[i++] = '\xff';
			sl_buf_append(&want, "\\ufffd", 6);
		} else {
			in[i] = (char)('a' + i % 26);
			sl_buf_append(&want, in + i, 1);
			i++;
		}
	}
	sl_buf_append(&want, "\"", 1);
	assert_int_equal(json_append_stringn(&b, in, N), 0);
	assert_int_equal(sl_buf_avail(&b), sl_buf_avail(&want));
	assert_memory_equal(sl_buf_head(&b), sl_buf_head(&want), sl_buf_avail(&b));
	free(in);
	sl_buf_free(&b);
	sl_buf_free(&want);
}

/* Is p[0..n) valid UTF-8 without raw control characters? */
static int clean_utf8(const unsigned char *p, size_t n)
{
	size_t i = 0, k, need;
	uint32_t cp;

	while (i < n) {
		if (p[i] < 0x20)
			return 0;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] < 0xe0)
			need = 1, cp = p[i] & 0x1f;
		else if (p[i] >= 0xe0 && p[i] < 0xf0)
			need = 2, cp = p[i] & 0x0f;
		else if (p[i] >= 0xf0 && p[i] < 0xf5)
			need = 3, cp = p[i] & 0x07;
		else
			return 0;
		if (i + need >= n)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* Whatever the bytes, the output is clean UTF-8 and starts/ends with '"'. */
static void test_random_bytes(void **state)
{
	struct sl_buf b = { 0 };
	unsigned char in[64];
	uint32_t x = 12345;
	int round;
	size_t i;

	(void)state;
	for (round = 0; round < 20000; round++) {
		size_t n = round % 64;

		for (i = 0; i < n; i++) {
			x = x * 1103515245 + 12345;
			/* Bias towards the interesting high bytes. */
			in[i] = (unsigned char)((x >> 16) & 0xff);
			if ((x >> 8) % 3 == 0)
				in[i] |= 0x80;
		}
		sl_buf_reset(&b);
		assert_int_equal(json_append_stringn(&b, (const char *)in, n), 0);
		assert_true(sl_buf_avail(&b) >= 2);
		assert_int_equal(sl_buf_head(&b)[0], '"');
		assert_int_equal(sl_buf_head(&b)[sl_buf_avail(&b) - 1], '"');
		assert_true(clean_utf8((const unsigned char *)sl_buf_head(&b), sl_buf_avail(&b)));
	}
	sl_buf_free(&b);
}

static void test_numbers(void **state)
{
	struct sl_buf b = { 0 };

	(void)state;
	json_append_u64(&b, 0);
	sl_buf_append(&b, " ", 1);
	json_append_u64(&b, UINT64_MAX);
	sl_buf_append(&b, " ", 1);
	json_append_i64(&b, -1);
	sl_buf_append(&b, " ", 1);
	json_append_i64(&b, INT64_MIN);
	sl_buf_append(&b, " ", 1);
	json_append_i64(&b, INT64_MAX);
	assert_string_equal(str(&b), "0 18446744073709551615 -1 -9223372036854775808 "
				     "9223372036854775807");
	sl_buf_free(&b);
}

static void test_object(void **state)
{
	struct sl_buf b = { 0 };
	struct json_obj o;

	(void)state;
	sl_buf_append(&b, "xx", 2);
	sl_buf_consume(&b, 1); /* appending after consumed data works */
	json_obj_begin(&o, &b);
	json_obj_str(&o, "a", "x\"y");
	json_obj_str(&o, "skipped", NULL);
	json_obj_strn(&o, "n", "a\0b", 3);
	json_obj_u64(&o, "u", 42);
	json_obj_i64(&o, "i", -7);
	json_obj_bool(&o, "t", 1);
	json_obj_bool(&o, "f", 0);
	json_obj_raw(&o, "raw", "[1,2]", 5);
	json_obj_str(&o, "k\n", "v");
	assert_int_equal(json_obj_end(&o), 0);
	assert_string_equal(str(&b), "x{\"a\":\"x\\\"y\",\"n\":\"a\\u0000b\",\"u\":42,\"i\":-7,"
				     "\"t\":true,\"f\":false,\"raw\":[1,2],\"k\\n\":\"v\"}");

	sl_buf_reset(&b);
	json_obj_begin(&o, &b);
	json_obj_str(&o, "only", NULL);
	assert_int_equal(json_obj_end(&o), 0);
	assert_string_equal(str(&b), "{}");
	sl_buf_free(&b);
}

/* A sticky error makes json_obj_end() fail and remove the partial object. */
static void test_object_error(void **state)
{
	struct sl_buf b = { 0 };
	struct json_obj o;

	(void)state;
	sl_buf_append(&b, "keep", 4);
	json_obj_begin(&o, &b);
	json_obj_str(&o, "a", "b");
	o.err = -12; /* as if an append had failed */
	json_obj_str(&o, "c", "d");
	assert_int_equal(json_obj_end(&o), -12);
	assert_string_equal(str(&b), "keep");
	sl_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_utf8_valid),
		cmocka_unit_test(test_utf8_invalid),
		cmocka_unit_test(test_long),
		cmocka_unit_test(test_random_bytes),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_object),
		cmocka_unit_test(test_object_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
