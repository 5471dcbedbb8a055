/*
 * test_verp.c — VERP return paths: round-trips, case folding, tampering,
 * truncation, key rotation, age limits and the local-part length bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <errno.h>

#include <cmocka.h>

#include "err.h"
#include "verp.h"

static const uint8_t secret[] = "appliance secret 0123456789abcdef";
static const uint8_t other[] = "another appliance's secret";
static const struct verp_key key = { secret, sizeof secret - 1 };

static void roundtrip(const struct verp_fields *in)
{
	char addr[VERP_ADDR_MAX], *at;
	struct verp_fields out;
	int n;

	n = verp_encode(&key, NULL, "bounce.example.net", in, addr, sizeof addr);
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(addr));
	at = strchr(addr, '@');
	assert_non_null(at);
	assert_true(at - addr <= VERP_LOCAL_MAX);
	assert_string_equal(at, "@bounce.example.net");
	assert_memory_equal(addr, "b+", 2);
	for (char *p = addr; p < at; p++)
		assert_false(isupper((unsigned char)*p));
	assert_int_equal(verp_decode(&key, 1, NULL, addr, in->issue_day, 30, &out), 0);
	assert_true(out.tenant_id == in->tenant_id);
	assert_true(out.queue_id == in->queue_id);
	assert_int_equal(out.rcpt_index, in->rcpt_index);
	assert_int_equal(out.stream, in->stream);
	assert_int_equal(out.issue_day, in->issue_day);
	assert_true(verp_is_candidate(NULL, addr));
}

static void test_roundtrip(void **state)
{
	(void)state;
	struct verp_fields cases[] = {
		{ 0, 0, 0, 0, 0 },
		{ 1, 1, 1, 1, 20000 },
		{ 42, 0x0123456789abcdefull, 3, 0, 20415 },
		{ UINT64_MAX, UINT64_MAX, UINT32_MAX, 15, UINT16_MAX },
		{ 127, 128, 16383, 1, 16384 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		roundtrip(&cases[i]);
}

static void test_case_folding(void **state)
{
	(void)state;
	struct verp_fields f = { 77, 987654321012ull, 5, 1, 20415 }, out;
	char addr[VERP_ADDR_MAX], up[VERP_ADDR_MAX], angle[VERP_ADDR_MAX + 2];

	assert_true(verp_encode(&key, "rp", "Bounce.Example.NET", &f, addr, sizeof addr) > 0);
	for (size_t i = 0; i <= strlen(addr); i++)
		up[i] = (char)toupper((unsigned char)addr[i]);
	assert_int_equal(verp_decode(&key, 1, "rp", up, 20415, 0, &out), 0);
	assert_true(out.queue_id == f.queue_id);
	/* angle brackets, and the local part alone */
	snprintf(angle, sizeof angle, "<%s>", addr);
	assert_int_equal(verp_decode(&key, 1, "rp", angle, 20415, 0, &out), 0);
	*strchr(up, '@') = 0;
	assert_int_equal(verp_decode(&key, 1, "rp", up, 20415, 0, &out), 0);
	assert_int_equal(out.rcpt_index, 5);
}

static void test_tampering(void **state)
{
	(void)state;
	struct verp_fields f = { 9, 123456789, 2, 0, 20415 }, out;
	char addr[VERP_ADDR_MAX], bad[VERP_ADDR_MAX];
	size_t tok_end;
	int rc;

	assert_true(verp_encode(&key, NULL, "rp.example", &f, addr, sizeof addr) > 0);
	tok_end = (size_t)(strchr(addr, '@') - addr);
	/* flip every token character to another base32 character */
	for (size_t i = 2; i < tok_end; i++) {
		strcpy(bad, addr);
		bad[i] = bad[i] == 'a' ? 'b' : 'a';
		rc = verp_decode(&key, 1, NULL, bad, 20415, 0, &out);
		assert_true(rc == SL_EAUTH || rc == SL_EPROTO);
	}
	/* another appliance's key */
	{
		struct verp_key k2 = { other, sizeof other - 1 };
		assert_int_equal(verp_decode(&k2, 1, NULL, addr, 20415, 0, &out), SL_EAUTH);
	}
	/* a forged token with a valid shape: a different recipient index */
	{
		struct verp_key k2 = { other, sizeof other - 1 };
		struct verp_fields g = f;
		g.rcpt_index = 3;
		assert_true(verp_encode(&k2, NULL, "rp.example", &g, bad, sizeof bad) > 0);
		assert_int_equal(verp_decode(&key, 1, NULL, bad, 20415, 0, &out), SL_EAUTH);
	}
	/* wrong prefix, not VERP at all, bad characters */
	assert_int_equal(verp_decode(&key, 1, "x", addr, 20415, 0, &out), SL_EPROTO);
	assert_int_equal(verp_decode(&key, 1, NULL, "postmaster@rp.example", 20415, 0, &out),
			 SL_EPROTO);
	assert_int_equal(verp_decode(&key, 1, NULL, "b+abc!def@x", 20415, 0, &out), SL_EPROTO);
	assert_int_equal(verp_decode(&key, 1, NULL, "b+@x", 20415, 0, &out), SL_EPROTO);
	assert_false(verp_is_candidate(NULL, "bob@example.com"));
}

static void test_truncation(void **state)
{
	(void)state;
	struct verp_fields f = { 1000, 55555555555ull, 12, 1, 20415 }, out;
	char addr[VERP_ADDR_MAX], bad[VERP_ADDR_MAX];
	size_t tok_end;

	assert_true(verp_encode(&key, NULL, "rp.example", &f, addr, sizeof addr) > 0);
	tok_end = (size_t)(strchr(addr, '@') - addr);
	for (size_t cut = 2; cut < tok_end; cut++) {
		int rc;
		memcpy(bad, addr, cut);
		strcpy(bad + cut, strchr(addr, '@'));
		rc = verp_decode(&key, 1, NULL, bad, 20415, 0, &out);
		assert_true(rc == SL_EAUTH || rc == SL_EPROTO);
	}
	/* appended characters */
	snprintf(bad, sizeof bad, "%.*saa%s", (int)tok_end, addr, strchr(addr, '@'));
	assert_int_not_equal(verp_decode(&key, 1, NULL, bad, 20415, 0, &out), 0);
}

static void test_rotation_and_age(void **state)
{
	(void)state;
	struct verp_key keys[2] = { { other, sizeof other - 1 }, key };
	struct verp_fields f = { 5, 6, 7, 0, 20400 }, out;
	char addr[VERP_ADDR_MAX];

	assert_true(verp_encode(&key, NULL, "rp.example", &f, addr, sizeof addr) > 0);
	/* the old key still decodes as the second of two */
	assert_int_equal(verp_decode(keys, 2, NULL, addr, 20400, 0, &out), 0);
	/* age: 14 days fine, 15 days stale with limit 14; fields still filled */
	assert_int_equal(verp_decode(&key, 1, NULL, addr, 20414, 14, &out), 0);
	memset(&out, 0, sizeof out);
	assert_int_equal(verp_decode(&key, 1, NULL, addr, 20415, 14, &out), -ESTALE);
	assert_int_equal(out.queue_id, 6);
	/* one day of clock skew ahead is fine */
	assert_int_equal(verp_decode(&key, 1, NULL, addr, 20399, 14, &out), 0);
	/* day wrap-around */
	f.issue_day = 65535;
	assert_true(verp_encode(&key, NULL, "rp.example", &f, addr, sizeof addr) > 0);
	assert_int_equal(verp_decode(&key, 1, NULL, addr, 3, 14, &out), 0);
}

static void test_limits(void **state)
{
	(void)state;
	struct verp_fields f = { UINT64_MAX, UINT64_MAX, UINT32_MAX, 15, 1 };
	char addr[VERP_ADDR_MAX], small[20];
	struct verp_key empty = { secret, 0 };

	/* the longest token (61 characters) with a one-character prefix fits
	 * in 64 octets; with a long prefix it does not */
	assert_true(verp_encode(&key, NULL, "d.example", &f, addr, sizeof addr) > 0);
	assert_true(strchr(addr, '@') - addr <= VERP_LOCAL_MAX);
	assert_int_equal(verp_encode(&key, "abcdefghijklmnop", "d", &f, addr, sizeof addr),
			 SL_ETOOBIG);
	f.tenant_id = 1000;
	f.queue_id = 1ull << 40;
	f.rcpt_index = 100;
	assert_true(verp_encode(&key, "abcdefghijklmnop", "d", &f, addr, sizeof addr) > 0);
	assert_int_equal(verp_encode(&key, NULL, "d.example", &f, small, sizeof small),
			 SL_ETOOBIG);
	assert_int_equal(verp_encode(&key, "abcdefghijklmnopq", "d", &f, addr, sizeof addr),
			 -EINVAL);
	assert_int_equal(verp_encode(&key, "Bad", "d", &f, addr, sizeof addr), -EINVAL);
	assert_int_equal(verp_encode(&empty, NULL, "d", &f, addr, sizeof addr), -EINVAL);
	f.stream = 16;
	assert_int_equal(verp_encode(&key, NULL, "d", &f, addr, sizeof addr), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_case_folding),
		cmocka_unit_test(test_tampering),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_rotation_and_age),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
