/*
 * test_providers.c — MX suffix → provider matching (shipped table, label
 * boundaries, longest match, overrides, removals), the file format's
 * errors, and site keys.
 *
 * Run from the repository root; SLUICE_PROVIDERS overrides the shipped
 * table's path.
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
#include "providers.h"

static const char *table_path(void)
{
	const char *e = getenv("SLUICE_PROVIDERS");
	return e ? e : "configs/providers.conf";
}

static int setup(void **state)
{
	struct provider_table *t;
	char err[256];

	if (providers_load(table_path(), &t, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	providers_free(*state);
	return 0;
}

static void test_shipped(void **state)
{
	const struct provider_table *t = *state;
	static const struct {
		const char *mx, *provider;
	} cases[] = {
		{ "gmail-smtp-in.l.google.com", "google" },
		{ "ALT4.GMAIL-SMTP-IN.L.GOOGLE.COM.", "google" },
		{ "aspmx.l.google.com", "google" },
		{ "gmr-smtp-in.l.googlemail.com", "google" },
		{ "example-com.mail.protection.outlook.com", "microsoft" },
		{ "hotmail-com.olc.protection.outlook.com", "microsoft" },
		{ "mta5.am0.yahoodns.net", "yahoo" },
		{ "mx01.mail.icloud.com", "apple" },
		{ "mx.gmx.net", "gmx" },
		{ "mx-ha03.web.de", "gmx" },
		{ "mxs.mail.ru", "mailru" },
		{ "mx.yandex.ru", "yandex" },
		{ "mx1.comcast.net", "comcast" },
		{ "mx.zoho.com", "zoho" },
		{ "in1-smtp.messagingengine.com", "fastmail" },
		{ "mx0a-001234.pphosted.com", "proofpoint" },
		{ "eu-smtp-inbound-1.mimecast.com", "mimecast" },
		/* the test net */
		{ "mx1.google.test", "google" },
		{ "mx.yahoodns.test", "yahoo" },
		{ "mx1.protection.outlook.test", "microsoft" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = provider_for_mx(t, cases[i].mx);

		if (!p || strcmp(p, cases[i].provider) != 0)
			fail_msg("%s: got %s, want %s", cases[i].mx, p ? p : "NULL",
				 cases[i].provider);
	}
	assert_true(providers_count(t) > 30);
}

static void test_no_match(void **state)
{
	const struct provider_table *t = *state;

	assert_null(provider_for_mx(t, "mx.example.com"));
	assert_null(provider_for_mx(t, "notgoogle.com"));   /* label boundary */
	assert_null(provider_for_mx(t, "google.com.evil.example"));
	assert_null(provider_for_mx(t, "outlook.test"));    /* only protection.outlook.test */
	assert_null(provider_for_mx(t, ""));
	assert_null(provider_for_mx(t, "."));
	assert_null(provider_for_mx(t, NULL));
	assert_null(provider_for_mx(NULL, "mx.google.com"));
	/* exact suffix itself matches */
	assert_string_equal(provider_for_mx(t, "google.com"), "google");
}

static void test_mxs(void **state)
{
	const struct provider_table *t = *state;
	const char *mx[] = { "mx.example.net", "aspmx.l.google.com" };

	assert_string_equal(provider_for_mxs(t, mx, 2), "google");
	assert_null(provider_for_mxs(t, mx, 1));
	assert_null(provider_for_mxs(t, mx, 0));
}

static void test_override(void **state)
{
	struct provider_table *t = providers_create();
	const char base[] = "example.com   big\n"
			    "mx.example.com  big-mx   # longer suffix wins\n";
	const char over[] = "# operator overrides\n"
			    "example.com  - \n"
			    "\n"
			    "  other.example.org   other\n"
			    "MX.Example.COM.  renamed\n";
	char err[256];

	(void)state;
	assert_non_null(t);
	assert_int_equal(providers_parse(t, "base", base, strlen(base), err, sizeof err), 0);
	assert_string_equal(provider_for_mx(t, "a.example.com"), "big");
	assert_string_equal(provider_for_mx(t, "a.mx.example.com"), "big-mx");
	assert_int_equal(providers_count(t), 2);
	assert_int_equal(providers_parse(t, "over", over, strlen(over), err, sizeof err), 0);
	assert_null(provider_for_mx(t, "a.example.com"));       /* removed */
	assert_string_equal(provider_for_mx(t, "a.mx.example.com"), "renamed");
	assert_string_equal(provider_for_mx(t, "x.other.example.org"), "other");
	assert_null(provider_for_mx(t, "example.org"));
	assert_int_equal(providers_count(t), 2);
	providers_free(t);
}

static void test_removed_blocks_shorter(void **state)
{
	struct provider_table *t = providers_create();
	const char txt[] = "google.com google\nsmtp.google.com -\n";
	char err[128];

	(void)state;
	assert_int_equal(providers_parse(t, "x", txt, strlen(txt), err, sizeof err), 0);
	assert_string_equal(provider_for_mx(t, "aspmx.l.google.com"), "google");
	assert_null(provider_for_mx(t, "a.smtp.google.com"));
	providers_free(t);
}

static void test_errors(void **state)
{
	static const struct {
		const char *text, *msg;
	} cases[] = {
		{ "google.com\n", "f.conf:1: missing provider name" },
		{ "# c\n\ngoogle.com google extra\n", "f.conf:3: trailing text" },
		{ "goo gle.com x\n", "f.conf:1: trailing text" },
		{ "google!com x\n", "f.conf:1: bad character in suffix" },
		{ "google.com Google\n", "f.conf:1: bad provider name" },
		{ "a..b x\n", "f.conf:1: empty or malformed suffix" },
		{ ". x\n", "f.conf:1: empty or malformed suffix" },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct provider_table *t = providers_create();
		int rc = providers_parse(t, "f.conf", cases[i].text, strlen(cases[i].text), err,
					 sizeof err);

		assert_int_equal(rc, SL_ECONFIG);
		if (strncmp(err, cases[i].msg, strlen(cases[i].msg)) != 0)
			fail_msg("case %zu: got '%s', want '%s...'", i, err, cases[i].msg);
		providers_free(t);
	}
	/* a missing file */
	struct provider_table *t;
	assert_int_equal(providers_load("/nonexistent/providers.conf", &t, err, sizeof err),
			 -ENOENT);
	assert_null(t);
	assert_non_null(strstr(err, "/nonexistent/providers.conf"));
}

static void test_site_key(void **state)
{
	const char *a[] = { "ALT1.gmail-smtp-in.l.google.com.", "gmail-smtp-in.l.google.com",
			    "alt1.gmail-smtp-in.l.google.com", "alt2.gmail-smtp-in.l.google.com" };
	const char *b[] = { "alt2.gmail-smtp-in.l.google.com", "gmail-smtp-in.l.google.com.",
			    "alt1.gmail-smtp-in.l.google.com" };
	char ka[SITE_KEY_MAX], kb[SITE_KEY_MAX], small[10];
	const char *none[] = { "" };
	int n;

	(void)state;
	n = site_key(a, 4, ka, sizeof ka);
	assert_int_equal(n, (int)strlen(ka));
	assert_string_equal(ka, "alt1.gmail-smtp-in.l.google.com,alt2.gmail-smtp-in.l.google.com,"
				"gmail-smtp-in.l.google.com");
	assert_true(site_key(b, 3, kb, sizeof kb) > 0);
	assert_string_equal(ka, kb); /* order, case, dots and duplicates do not matter */

	const char *one[] = { "example.org" };
	assert_int_equal(site_key(one, 1, ka, sizeof ka), 11);
	assert_string_equal(ka, "example.org");

	assert_int_equal(site_key(a, 4, small, sizeof small), SL_ETOOBIG);
	assert_int_equal(site_key(a, 0, ka, sizeof ka), -EINVAL);
	assert_int_equal(site_key(none, 1, ka, sizeof ka), -EINVAL);

	/* more hosts than the on-stack array */
	const char *many[40];
	char names[40][16];
	for (int i = 0; i < 40; i++) {
		snprintf(names[i], sizeof names[i], "mx%02d.x.test", 39 - i);
		many[i] = names[i];
	}
	char big[2048];
	assert_true(site_key(many, 40, big, sizeof big) > 0);
	assert_int_equal(strncmp(big, "mx00.x.test,mx01.x.test,", 24), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped),  cmocka_unit_test(test_no_match),
		cmocka_unit_test(test_mxs),      cmocka_unit_test(test_override),
		cmocka_unit_test(test_removed_blocks_shorter),
		cmocka_unit_test(test_errors),   cmocka_unit_test(test_site_key),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
