/* test_auth.c — PBKDF2 credential strings and the positive-result cache. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "auth.h"
#include "err.h"

static void test_round_trip(void **state)
{
	char stored[AUTH_HASH_MAX], again[AUTH_HASH_MAX];
	unsigned iters;

	(void)state;
	assert_int_equal(auth_hash_password("s3cret", 0, stored, sizeof stored), 0);
	assert_true(strncmp(stored, "$pbkdf2-sha256$i=100000$", 24) == 0);
	/* 16-byte salt -> 24 chars, 32-byte hash -> 44 chars */
	assert_int_equal(strlen(stored), 24 + 24 + 1 + 44);
	assert_int_equal(auth_verify_password("s3cret", stored), 0);

	/* Fresh salt every time. */
	assert_int_equal(auth_hash_password("s3cret", 1000, again, sizeof again), 0);
	assert_true(strncmp(again, "$pbkdf2-sha256$i=1000$", 22) == 0);
	assert_string_not_equal(stored + 22, again + 22);
	assert_int_equal(auth_verify_password("s3cret", again), 0);
	assert_int_equal(auth_verify_password("s3creT", again), SL_EAUTH);
	assert_int_equal(auth_verify_password("", again), SL_EAUTH);

	/* Empty and non-ASCII passwords are just bytes. */
	assert_int_equal(auth_hash_password("", 1000, again, sizeof again), 0);
	assert_int_equal(auth_verify_password("", again), 0);
	assert_int_equal(auth_verify_password(" ", again), SL_EAUTH);
	assert_int_equal(auth_hash_password("p\xc3\xa4ss", 1000, again, sizeof again), 0);
	assert_int_equal(auth_verify_password("p\xc3\xa4ss", again), 0);
	assert_int_equal(auth_verify_password("pass", again), SL_EAUTH);

	for (iters = 998; iters <= 1000; iters++) {
		int rc = auth_hash_password("x", iters, again, sizeof again);

		assert_int_equal(rc, iters < AUTH_MIN_ITERATIONS ? -EINVAL : 0);
	}
	assert_int_equal(auth_hash_password("x", AUTH_MAX_ITERATIONS + 1, again, sizeof again),
			 -EINVAL);
	assert_int_equal(auth_hash_password("x", 1000, again, 60), -ENOSPC);
	assert_string_equal(again, "");
	assert_int_equal(auth_hash_password(NULL, 1000, again, sizeof again), -EINVAL);
	assert_int_equal(auth_verify_password(NULL, stored), -EINVAL);
}

/* RFC 7914 section 11 / RFC 6070-style vectors for PBKDF2-HMAC-SHA256. */
static void test_known_answers(void **state)
{
	(void)state;
	assert_int_equal(auth_verify_password("password",
		"$pbkdf2-sha256$i=1$c2FsdA==$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs="), 0);
	assert_int_equal(auth_verify_password("password",
		"$pbkdf2-sha256$i=4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o="), 0);
	/* Padding is optional. */
	assert_int_equal(auth_verify_password("password",
		"$pbkdf2-sha256$i=4096$c2FsdA$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o"), 0);
	assert_int_equal(auth_verify_password("passwore",
		"$pbkdf2-sha256$i=4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o="),
		SL_EAUTH);
	/* A 20-byte hash written by some other tool. */
	assert_int_equal(auth_verify_password("p\xc3\xa4ss",
		"$pbkdf2-sha256$i=1000$MDEyMzQ1Njc4OWFiY2RlZg==$b2Cb/b6T319FuYj9nuEyLlLFyfE="), 0);
	/* Right hash, wrong iteration count. */
	assert_int_equal(auth_verify_password("password",
		"$pbkdf2-sha256$i=4097$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o="),
		SL_EAUTH);
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"plaintext",
		"$pbkdf2-sha256$",
		"$pbkdf2-sha256$i=$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha256$i=0$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha256$i=01$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha256$i=-1$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha256$i=10000001$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha256$i=99999999999999999999$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha256$i=4096x$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha256$4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha1$i=4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$PBKDF2-SHA256$i=4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha256$i=4096$c2FsdA==",
		"$pbkdf2-sha256$i=4096$c2FsdA==$",
		"$pbkdf2-sha256$i=4096$$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha256$i=4096$c2F*dA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha256$i=4096$c2FsdA=$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha256$i=4096$c2FsdB==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
		"$pbkdf2-sha256$i=4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=\n",
		"$pbkdf2-sha256$i=4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=$",
		"$pbkdf2-sha256$i=4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZ== ",
		"$pbkdf2-sha256$i=4096$c2FsdA==$AAAAAAAAAAAAAAAAAAAA", /* 15-byte hash */
		("$pbkdf2-sha256$i=4096$c2FsdA==$" /* 66-byte hash */
		 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
		" $pbkdf2-sha256$i=4096$c2FsdA==$xeR41ZKIyEGqUw22hFxMjZYok6ABzk4RpJY4c6qYE0o=",
	};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = auth_verify_password("password", bad[i]);

		if (rc != SL_ECONFIG)
			fail_msg("bad[%zu] \"%s\": %d", i, bad[i], rc);
	}
}

/* A 1-iteration stored string, so cache tests need not pay for PBKDF2. */
static void cheap_stored(const char *pw, char *out)
{
	static const unsigned char salt[16] = "fixed-test-salt";
	unsigned char key[32], s64[32], k64[48];

	assert_int_equal(PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, sizeof salt, 1,
					   EVP_sha256(), sizeof key, key), 1);
	EVP_EncodeBlock(s64, salt, sizeof salt);
	EVP_EncodeBlock(k64, key, sizeof key);
	snprintf(out, AUTH_HASH_MAX, "$pbkdf2-sha256$i=1$%s$%s", s64, k64);
}

static void test_cache(void **state)
{
	struct auth_cache_stats a, b;
	char s1[AUTH_HASH_MAX], s2[AUTH_HASH_MAX];

	(void)state;
	auth_cache_clear();
	assert_int_equal(auth_hash_password("tenant-pw", 1000, s1, sizeof s1), 0);
	assert_int_equal(auth_hash_password("tenant-pw", 1000, s2, sizeof s2), 0);

	auth_cache_stats(&a);
	assert_int_equal(auth_verify_password("tenant-pw", s1), 0); /* miss, then cached */
	auth_cache_stats(&b);
	assert_int_equal(b.misses - a.misses, 1);
	assert_int_equal(b.hits - a.hits, 0);

	for (int i = 0; i < 5; i++)
		assert_int_equal(auth_verify_password("tenant-pw", s1), 0);
	auth_cache_stats(&a);
	assert_int_equal(a.hits - b.hits, 5);
	assert_int_equal(a.misses - b.misses, 0);

	/* A wrong password is never served from the cache. */
	assert_int_equal(auth_verify_password("tenant-pX", s1), SL_EAUTH);
	assert_int_equal(auth_verify_password("tenant-pX", s1), SL_EAUTH);
	/* Same password, other stored string (a rotated credential): miss. */
	assert_int_equal(auth_verify_password("tenant-pw", s2), 0);
	auth_cache_stats(&b);
	assert_int_equal(b.misses - a.misses, 3);
	assert_int_equal(b.hits - a.hits, 0);

	/* Many tenants evict each other without breaking anything. */
	for (int i = 0; i < 600; i++) {
		char pw[16], st[AUTH_HASH_MAX];

		snprintf(pw, sizeof pw, "pw%d", i % 300);
		cheap_stored(pw, st);
		assert_int_equal(auth_verify_password(pw, st), 0);
	}
	auth_cache_stats(&a);
	assert_true(a.hits - b.hits < 300); /* 300 keys do not fit in 256 slots */
	b = a;
	assert_int_equal(auth_verify_password("pw299", (cheap_stored("pw299", s2), s2)), 0);
	auth_cache_stats(&a);
	assert_int_equal(a.hits - b.hits, 1); /* the most recent one is there */

	auth_cache_clear();
	auth_cache_stats(&a);
	assert_int_equal(auth_verify_password("tenant-pw", s1), 0);
	auth_cache_stats(&b);
	assert_int_equal(b.misses - a.misses, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_cache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
