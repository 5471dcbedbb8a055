/* test_inject.c — HTTP injection requests: parsing, validation, building (dataplane/inject.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "inject.h"

static const struct inject_limits lim = { .max_messages = 3, .max_rcpts = 2,
					  .max_message_size = 4096 };
#define NOW 1795000000000ull

static int parse(const char *json, struct inject_batch *b, char *err)
{
	return inject_parse(json, strlen(json), &lim, NOW, b, err, 256);
}

static void expect_error(const char *json, const char *needle)
{
	struct inject_batch b;
	char err[256];

	assert_int_equal(parse(json, &b, err), -EINVAL);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" lacks \"%s\"", err, needle);
	assert_null(b.msgs);
}

static void test_structural_errors_name_the_field(void **state)
{
	(void)state;
	expect_error("{", "invalid JSON");
	expect_error("[]", "must be a JSON object");
	expect_error("{}", "messages: required");
	expect_error("{\"messages\": {}}", "messages: expected an array");
	expect_error("{\"messages\": []}", "at least one message");
	expect_error("{\"messages\": [], \"x\": 1}", "x: unknown field");
	expect_error("{\"messages\": [1]}", "messages[0]: expected an object");
	expect_error("{\"messages\": [{\"from\": \"a@b.test\", \"to\": [\"c@d.test\"], "
		     "\"text\": \"x\", \"sbject\": \"y\"}]}",
		     "messages[0].sbject: unknown field");
	expect_error("{\"messages\": [{\"to\": [\"c@d.test\"], \"text\": \"x\"}]}",
		     "messages[0].from: required");
	expect_error("{\"messages\": [{\"from\": 5, \"to\": [\"c@d.test\"], \"text\": \"x\"}]}",
		     "messages[0].from: expected a string, got a number");
	expect_error("{\"messages\": [{\"from\": \"a@b.test\", \"to\": \"c@d.test\", \"text\": \"x\"}]}",
		     "messages[0].to: expected an array");
	expect_error("{\"messages\": [{\"from\": \"a@b.test\", \"to\": [\"c@d.test\", 3], "
		     "\"text\": \"x\"}]}",
		     "messages[0].to[1]: expected a string");
	expect_error("{\"messages\": [{\"from\": \"a@b.test\", \"to\": [\"c@d.test\"]}]}",
		     "needs \"raw\", or \"text\"");
	expect_error("{\"messages\": [{\"from\": \"a@b.test\", \"to\": [\"c@d.test\"], "
		     "\"raw\": \"x\", \"subject\": \"s\"}]}",
		     "messages[0].subject: not allowed with \"raw\"");
	expect_error("{\"messages\": [{\"from\": \"a@b.test\", \"to\": [\"c@d.test\"], "
		     "\"text\": \"x\", \"stream\": \"bulk\"}]}",
		     "messages[0].stream");
	expect_error("{\"messages\": [{\"from\": \"a@b.test\", \"to\": [\"c@d.test\"], "
		     "\"text\": \"x\", \"headers\": {\"Subject\": \"no\"}}]}",
		     "messages[0].headers.Subject: set by sluice");
	expect_error("{\"messages\": [{\"from\": \"a@b.test\", \"to\": [\"c@d.test\"], "
		     "\"text\": \"x\", \"headers\": {\"X-A\": \"a\\r\\nBcc: x@y.test\"}}]}",
		     "line breaks");
	expect_error("{\"messages\": [{\"from\": \"a@b.test\", \"to\": [\"c@d.test\"], "
		     "\"text\": \"x\", \"subject\": \"a\\u0000b\"}]}",
		     "invalid JSON"); /* jansson refuses NUL unless asked */
	expect_error("{\"messages\": [1, 2, 3, 4]}", "at most 3 per request");
	expect_error("{\"messages\": [], \"messages\": []}", "invalid JSON");
}

static void test_bad_addresses_are_per_recipient(void **state)
{
	struct inject_batch b;
	char err[256];

	(void)state;
	assert_int_equal(parse("{\"messages\": ["
			       "{\"from\": \"a@b.test\", \"to\": [\"ok@d.test\", \"bad@\", \"x@y.test\"],"
			       " \"text\": \"hi\"},"
			       "{\"from\": \"nope\", \"to\": [\"ok@d.test\"], \"text\": \"hi\"},"
			       "{\"from\": \"a@b.test\", \"to\": [\"a b@d.test\"], \"text\": \"hi\"}]}",
			       &b, err),
			 0);
	assert_int_equal(b.n_msgs, 3);
	assert_int_equal(b.msgs[0].status, INJECT_PENDING);
	assert_int_equal(b.msgs[0].rcpts[0].status, INJECT_PENDING);
	assert_int_equal(b.msgs[0].rcpts[1].status, INJECT_REJECTED);
	assert_string_equal(b.msgs[0].rcpts[1].reason, "invalid recipient address");
	assert_int_equal(b.msgs[0].rcpts[2].status, INJECT_REJECTED); /* max_rcpts 2 */
	assert_string_equal(b.msgs[0].rcpts[2].reason, "too many recipients");
	assert_int_equal(b.msgs[1].status, INJECT_REJECTED);
	assert_string_equal(b.msgs[1].reason, "invalid sender address");
	assert_int_equal(b.msgs[2].status, INJECT_REJECTED);
	assert_string_equal(b.msgs[2].reason, "no valid recipients");
	inject_batch_free(&b);
}

static void test_address_validation(void **state)
{
	(void)state;
	assert_true(inject_address_valid("a@b.test"));
	assert_true(inject_address_valid("first.last+tag@sub.example-1.test"));
	assert_true(inject_address_valid("x@[203.0.113.25]"));
	assert_false(inject_address_valid("a@b"));
	assert_false(inject_address_valid("@b.test"));
	assert_false(inject_address_valid("a@-b.test"));
	assert_false(inject_address_valid("a..b@b.test"));
	assert_false(inject_address_valid("a<b@b.test"));
	assert_false(inject_address_valid("a@b..test"));
	assert_false(inject_address_valid("\xc3\xa9@b.test"));
}

static const char *body_of(const struct inject_batch *b, size_t i)
{
	static char copy[8192];

	assert_true(b->msgs[i].body.len < sizeof copy);
	memcpy(copy, b->msgs[i].body.data, b->msgs[i].body.len);
	copy[b->msgs[i].body.len] = 0;
	return copy;
}

static void test_structured_builds_mime(void **state)
{
	struct inject_batch b;
	const char *m;
	char err[256];

	(void)state;
	assert_int_equal(parse("{\"messages\": [{\"from\": \"Caf\\u00e9 Team <news@acme.test>\","
			       " \"to\": [\"bob@example.test\"], \"subject\": \"H\\u00e9llo\","
			       " \"text\": \"line one\\n.dot\\nend \", \"html\": \"<p>hi</p>\","
			       " \"headers\": {\"Reply-To\": \"r@acme.test\"},"
			       " \"stream\": \"marketing\"}]}",
			       &b, err),
			 0);
	assert_int_equal(b.msgs[0].stream, 1);
	assert_string_equal(b.msgs[0].mail_from, "news@acme.test");
	m = body_of(&b, 0);
	assert_non_null(strstr(m, "Date: "));
	assert_non_null(strstr(m, "From: =?UTF-8?B?Q2Fmw6kgVGVhbQ==?= <news@acme.test>\r\n"));
	assert_non_null(strstr(m, "To: bob@example.test\r\n"));
	assert_non_null(strstr(m, "Subject: =?UTF-8?B?SMOpbGxv?=\r\n"));
	assert_non_null(strstr(m, "MIME-Version: 1.0\r\n"));
	assert_non_null(strstr(m, "Reply-To: r@acme.test\r\n"));
	assert_non_null(strstr(m, "Content-Type: multipart/alternative; boundary=\""));
	assert_non_null(strstr(m, "Content-Type: text/plain; charset=utf-8\r\n"));
	assert_non_null(strstr(m, "Content-Type: text/html; charset=utf-8\r\n"));
	/* quoted-printable: CRLF lines, a leading dot and trailing space encoded */
	assert_non_null(strstr(m, "line one\r\n=2Edot\r\nend=20\r\n"));
	assert_null(strstr(m, "Message-ID")); /* the acceptance path adds it */
	for (const char *p = m; (p = strchr(p, '\n')); p++)
		assert_true(p > m && p[-1] == '\r');
	inject_batch_free(&b);
}

static void test_raw_gets_crlf_and_size_limit(void **state)
{
	struct inject_batch b;
	char err[256], big[6000];

	(void)state;
	assert_int_equal(parse("{\"messages\": [{\"from\": \"a@b.test\", \"to\": [\"c@d.test\"],"
			       " \"raw\": \"Subject: x\\n\\nbody\"}]}",
			       &b, err),
			 0);
	assert_string_equal(body_of(&b, 0), "Subject: x\r\n\r\nbody\r\n");
	assert_int_equal(b.msgs[0].stream, -1);
	inject_batch_free(&b);
	snprintf(big, sizeof big, "{\"messages\": [{\"from\": \"a@b.test\", \"to\": [\"c@d.test\"],"
				  " \"raw\": \"%05000d\"}]}", 0);
	expect_error(big, "more than the limit of 4096");
}

static void test_header_encoding_folds_long_values(void **state)
{
	struct sl_buf out = { 0 };
	char v[200];

	(void)state;
	memset(v, 0, sizeof v);
	for (int i = 0; i < 60; i++)
		memcpy(v + 2 * i, "\xc3\xa9", 2); /* 60 x "é" = 120 bytes */
	assert_int_equal(inject_header_encode(&out, v, 9), 0);
	assert_int_equal(sl_buf_append(&out, "", 1), 0);
	/* three words, none splitting a character, each at most 75 chars */
	assert_non_null(strstr(out.data, "?=\r\n =?UTF-8?B?"));
	for (char *w = out.data; w; w = strstr(w + 1, "=?UTF-8")) {
		char *e = strstr(w, "?=");

		assert_true(e - w + 2 <= 75);
	}
	sl_buf_free(&out);
}

static void test_reply_json(void **state)
{
	struct inject_batch b;
	struct sl_buf out = { 0 };
	char err[256];

	(void)state;
	assert_int_equal(parse("{\"messages\": [{\"from\": \"a@b.test\", \"to\": [\"c@d.test\", \"bad\"],"
			       " \"text\": \"x\"}, {\"from\": \"bad\", \"to\": [\"c@d.test\"], \"text\": \"x\"}]}",
			       &b, err),
			 0);
	b.msgs[0].status = INJECT_ACCEPTED; /* as the commit would */
	b.msgs[0].id = 0xabc;
	strcpy(b.msgs[0].am.message_id, "<m@h>");
	assert_int_equal(inject_reply_json(&b, &out), 0);
	assert_int_equal(sl_buf_append(&out, "", 1), 0);
	assert_string_equal(out.data,
			    "{\"accepted\":1,\"rejected\":1,\"messages\":["
			    "{\"index\":0,\"status\":\"accepted\",\"id\":\"0000000000000abc\","
			    "\"message_id\":\"<m@h>\",\"recipients\":["
			    "{\"rcpt\":\"c@d.test\",\"status\":\"accepted\"},"
			    "{\"rcpt\":\"bad\",\"status\":\"rejected\",\"reason\":\"invalid recipient address\"}]},"
			    "{\"index\":1,\"status\":\"rejected\",\"reason\":\"invalid sender address\","
			    "\"recipients\":[{\"rcpt\":\"c@d.test\",\"status\":\"rejected\","
			    "\"reason\":\"invalid sender address\"}]}]}");
	sl_buf_free(&out);
	inject_batch_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_structural_errors_name_the_field),
		cmocka_unit_test(test_bad_addresses_are_per_recipient),
		cmocka_unit_test(test_address_validation),
		cmocka_unit_test(test_structured_builds_mime),
		cmocka_unit_test(test_raw_gets_crlf_and_size_limit),
		cmocka_unit_test(test_header_encoding_folds_long_values),
		cmocka_unit_test(test_reply_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
