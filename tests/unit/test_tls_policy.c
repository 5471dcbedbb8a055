/*
 * test_tls_policy.c — MTA-STS TXT records, the strict policy parser, MX
 * pattern matching, the configured and effective TLS policy, RFC 8460
 * result names and the TLS-RPT JSON view.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "err.h"
#include "metrics.h"
#include "mta_sts.h"
#include "tls_policy.h"
#include "tls_report.h"

static int txt(const char *rec, char id[MTA_STS_ID_MAX + 1])
{
	const char *const v[] = { rec };

	return mta_sts_txt_id(v, 1, id);
}

static void test_txt_record(void **state)
{
	char id[MTA_STS_ID_MAX + 1];
	const char *two[] = { "v=STSv1; id=a1;", "v=STSv1; id=b2;" };
	const char *mixed[] = { "v=spf1 -all", "v=STSv1; id=ok1", "something else" };

	(void)state;
	assert_int_equal(txt("v=STSv1; id=20160831085700Z;", id), 0);
	assert_string_equal(id, "20160831085700Z");
	assert_int_equal(txt("v=STSv1;id=x", id), 0);
	assert_string_equal(id, "x");
	assert_int_equal(txt("v=STSv1; ext=1; id=abc ;", id), 0);
	assert_string_equal(id, "abc");
	assert_int_equal(mta_sts_txt_id(mixed, 3, id), 0);
	assert_string_equal(id, "ok1");
	/* Not STS records at all. */
	assert_int_equal(txt("v=spf1 -all", id), SL_ENOTFOUND);
	assert_int_equal(txt("v=STSv10; id=1", id), SL_ENOTFOUND);
	assert_int_equal(mta_sts_txt_id(NULL, 0, id), SL_ENOTFOUND);
	/* Two STS records: as if none (RFC 8461 §3.1). */
	assert_int_equal(mta_sts_txt_id(two, 2, id), SL_ENOTFOUND);
	/* Malformed. */
	assert_int_equal(txt("v=STSv1;", id), SL_EPROTO);
	assert_int_equal(txt("v=STSv1; id=", id), SL_EPROTO);
	assert_int_equal(txt("v=STSv1; id=a-b", id), SL_EPROTO);
	assert_int_equal(txt("v=STSv1; id=a; id=b", id), SL_EPROTO);
	assert_int_equal(txt("v=STSv1; id=123456789012345678901234567890123", id), SL_EPROTO);
	assert_int_equal(txt("v=STSv1 id=1", id), SL_ENOTFOUND);
}

static int parse(const char *s, struct mta_sts_policy *p)
{
	return mta_sts_parse(s, strlen(s), p);
}

static void test_policy_parse(void **state)
{
	struct mta_sts_policy p;

	(void)state;
	assert_int_equal(parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
			       "mx: *.example.net\r\nmx: backupmx.example.com.\r\n"
			       "max_age: 604800\r\n", &p), 0);
	assert_int_equal(p.mode, MTA_STS_ENFORCE);
	assert_int_equal(p.max_age, 604800);
	assert_int_equal(p.n_mx, 3);
	assert_string_equal(p.mx[1], "*.example.net");
	assert_string_equal(p.mx[2], "backupmx.example.com");
	/* LF only, blanks, an extension key, no final newline, upper case MX. */
	assert_int_equal(parse("version:STSv1\nmode:  testing \nx-ext: anything\n"
			       "mx: MX.Example.ORG\nmax_age: 99999999999", &p), SL_EPROTO);
	assert_int_equal(parse("version:STSv1\nmode:  testing \nx-ext: anything\n"
			       "mx: MX.Example.ORG\nmax_age: 9999999999", &p), 0);
	assert_int_equal(p.mode, MTA_STS_TESTING);
	assert_int_equal(p.max_age, MTA_STS_MAX_AGE_MAX); /* clamped */
	assert_string_equal(p.mx[0], "mx.example.org");
	/* mode none needs no mx. */
	assert_int_equal(parse("version: STSv1\nmode: none\nmax_age: 0\n", &p), 0);
	assert_int_equal(p.mode, MTA_STS_NONE);

	/* Strictness. */
	assert_int_equal(parse("", &p), SL_EPROTO);
	assert_int_equal(parse("mode: enforce\nmx: a.example\nmax_age: 1\n", &p), SL_EPROTO);
	assert_int_equal(parse("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", &p),
			 SL_EPROTO);
	assert_int_equal(parse("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", &p),
			 SL_EPROTO);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmax_age: 1\n", &p), SL_EPROTO);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: a.example\n", &p), SL_EPROTO);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", &p),
			 SL_EPROTO);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmode: enforce\nmx: a.example\n"
			       "max_age: 1\n", &p), SL_EPROTO);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n", &p),
			 SL_EPROTO);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: *example.com\nmax_age: 1\n", &p),
			 SL_EPROTO);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n", &p),
			 SL_EPROTO);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: -a.example\nmax_age: 1\n", &p),
			 SL_EPROTO);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: localhost\nmax_age: 1\n", &p),
			 SL_EPROTO);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx a.example\nmax_age: 1\n", &p),
			 SL_EPROTO);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: a.example\x01\nmax_age: 1\n",
			       &p), SL_EPROTO);
}

static void test_policy_limits(void **state)
{
	char *big = malloc(MTA_STS_POLICY_MAX + 2);
	char buf[4096];
	struct mta_sts_policy p;
	size_t o;

	(void)state;
	assert_non_null(big);
	memset(big, '\n', MTA_STS_POLICY_MAX + 1);
	assert_int_equal(mta_sts_parse(big, MTA_STS_POLICY_MAX + 1, &p), SL_EPROTO);
	free(big);
	o = (size_t)snprintf(buf, sizeof buf, "version: STSv1\nmode: enforce\nmax_age: 5\n");
	for (int i = 0; i < MTA_STS_MAX_MX; i++)
		o += (size_t)snprintf(buf + o, sizeof buf - o, "mx: mx%d.example\n", i);
	assert_int_equal(mta_sts_parse(buf, o, &p), 0);
	assert_int_equal(p.n_mx, MTA_STS_MAX_MX);
	o += (size_t)snprintf(buf + o, sizeof buf - o, "mx: one-too-many.example\n");
	assert_int_equal(mta_sts_parse(buf, o, &p), SL_EPROTO);
}

static void test_mx_match(void **state)
{
	struct mta_sts_policy p;

	(void)state;
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: mail.example.com\n"
			       "mx: *.example.net\nmax_age: 1\n", &p), 0);
	assert_true(mta_sts_mx_match(&p, "mail.example.com"));
	assert_true(mta_sts_mx_match(&p, "MAIL.example.com."));
	assert_false(mta_sts_mx_match(&p, "mail.example.com.evil"));
	assert_false(mta_sts_mx_match(&p, "xmail.example.com"));
	assert_true(mta_sts_mx_match(&p, "mx1.example.net"));
	assert_true(mta_sts_mx_match(&p, "Mx1.Example.Net."));
	/* One label only: not the base name, not two labels. */
	assert_false(mta_sts_mx_match(&p, "example.net"));
	assert_false(mta_sts_mx_match(&p, "a.b.example.net"));
	assert_false(mta_sts_mx_match(&p, ".example.net"));
	assert_false(mta_sts_mx_match(&p, ""));
}

static struct sl_config *load(const char *yaml)
{
	struct sl_config *cfg = NULL;
	char err[512] = "";

	if (config_load_string("t.yaml", yaml, strlen(yaml), &cfg, err, sizeof err) != 0)
		fail_msg("config: %s", err);
	return cfg;
}

#define POOL "pools:\n  - name: p\n    ips:\n      - {address: 198.51.100.10, ehlo: mta.example.com}\n"

static void test_configured(void **state)
{
	struct sl_config *cfg = load(POOL "routes:\n  - {domain: r.example, host: 203.0.113.1, "
				     "require_tls: true}\n"
				     "delivery:\n  require_tls_domains: [req.example, both.example]\n"
				     "  verify_tls_domains: [ver.example, Both.Example]\n"
				     "  no_tls_domains: [plain.example]\n"
				     "  tls_ca_file: /etc/ca.pem\n  mta_sts: true\n");
	const struct sl_route_cfg *r = config_route_for(cfg, "r.example");

	(void)state;
	assert_true(cfg->delivery.mta_sts);
	assert_string_equal(cfg->delivery.tls_ca_file, "/etc/ca.pem");
	assert_int_equal(tls_policy_configured(cfg, "other.example", NULL),
			 TLS_POLICY_OPPORTUNISTIC);
	assert_int_equal(tls_policy_configured(cfg, "REQ.example", NULL), TLS_POLICY_REQUIRE);
	assert_int_equal(tls_policy_configured(cfg, "ver.example", NULL), TLS_POLICY_VERIFY);
	assert_int_equal(tls_policy_configured(cfg, "both.example", NULL), TLS_POLICY_VERIFY);
	assert_int_equal(tls_policy_configured(cfg, "plain.example", NULL), TLS_POLICY_NONE);
	assert_non_null(r);
	assert_int_equal(tls_policy_configured(cfg, "r.example", r), TLS_POLICY_REQUIRE);
	/* tls_verify: require becomes verify. */
	cfg->delivery.tls_verify = true;
	assert_int_equal(tls_policy_configured(cfg, "req.example", NULL), TLS_POLICY_VERIFY);
	assert_int_equal(tls_policy_configured(cfg, "r.example", r), TLS_POLICY_VERIFY);
	config_free(cfg);
}

static void test_effective(void **state)
{
	struct mta_sts_policy enforce, testing, none;
	struct tls_policy p;

	(void)state;
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: mx.example\nmax_age: 1\n",
			       &enforce), 0);
	assert_int_equal(parse("version: STSv1\nmode: testing\nmx: mx.example\nmax_age: 1\n",
			       &testing), 0);
	assert_int_equal(parse("version: STSv1\nmode: none\nmax_age: 1\n", &none), 0);
	p = tls_policy_effective(TLS_POLICY_OPPORTUNISTIC, NULL);
	assert_int_equal(p.mode, TLS_POLICY_OPPORTUNISTIC);
	p = tls_policy_effective(TLS_POLICY_OPPORTUNISTIC, &enforce);
	assert_int_equal(p.mode, TLS_POLICY_MTA_STS);
	assert_ptr_equal(p.sts, &enforce);
	assert_true(tls_policy_mx_allowed(&p, "MX.example"));
	assert_false(tls_policy_mx_allowed(&p, "other.example"));
	p = tls_policy_effective(TLS_POLICY_OPPORTUNISTIC, &testing);
	assert_int_equal(p.mode, TLS_POLICY_MTA_STS_TESTING);
	assert_true(tls_policy_mx_allowed(&p, "other.example")); /* only counted */
	p = tls_policy_effective(TLS_POLICY_OPPORTUNISTIC, &none);
	assert_int_equal(p.mode, TLS_POLICY_OPPORTUNISTIC);
	/* The operator's word wins over a published policy. */
	p = tls_policy_effective(TLS_POLICY_NONE, &enforce);
	assert_int_equal(p.mode, TLS_POLICY_NONE);
	assert_null(p.sts);
	p = tls_policy_effective(TLS_POLICY_REQUIRE, &enforce);
	assert_int_equal(p.mode, TLS_POLICY_REQUIRE);
	assert_true(tls_policy_mx_allowed(&p, "other.example"));

	assert_false(tls_policy_mandatory(TLS_POLICY_OPPORTUNISTIC));
	assert_false(tls_policy_mandatory(TLS_POLICY_MTA_STS_TESTING));
	assert_true(tls_policy_mandatory(TLS_POLICY_REQUIRE));
	assert_true(tls_policy_mandatory(TLS_POLICY_MTA_STS));
	assert_false(tls_policy_verifies(TLS_POLICY_REQUIRE));
	assert_true(tls_policy_verifies(TLS_POLICY_VERIFY));
	assert_true(tls_policy_verifies(TLS_POLICY_MTA_STS));
	assert_false(tls_policy_tries_tls(TLS_POLICY_NONE));
	assert_true(tls_policy_tries_tls(TLS_POLICY_MTA_STS_TESTING));
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(tls_policy_name(TLS_POLICY_MTA_STS), "mta-sts");
	assert_string_equal(tls_policy_name(TLS_POLICY_N), "unknown");
	assert_string_equal(tls_rpt_result_name(TLS_RPT_SUCCESS), "success");
	assert_string_equal(tls_rpt_result_name(TLS_RPT_STS_WEBPKI_INVALID), "sts-webpki-invalid");
	assert_int_equal(tls_rpt_from_verify(TLS_VERIFY_HOST_MISMATCH),
			 TLS_RPT_CERT_HOST_MISMATCH);
	assert_int_equal(tls_rpt_from_verify(TLS_VERIFY_EXPIRED), TLS_RPT_CERT_EXPIRED);
	assert_int_equal(tls_rpt_from_verify(TLS_VERIFY_UNTRUSTED), TLS_RPT_CERT_NOT_TRUSTED);
	assert_int_equal(tls_rpt_from_verify(TLS_VERIFY_OTHER), TLS_RPT_VALIDATION_FAILURE);
	assert_int_equal(tls_rpt_from_verify(TLS_VERIFY_NO_CERT), TLS_RPT_VALIDATION_FAILURE);
}

static void test_report(void **state)
{
	struct metrics *m;
	struct tls_report *r;
	struct sl_buf b = { 0 };

	(void)state;
	assert_int_equal(metrics_create(&m), 0);
	assert_int_equal(tls_report_create(m, &r), 0);
	tls_report_count(r, "Bank.Example", TLS_POLICY_VERIFY, TLS_RPT_SUCCESS);
	tls_report_count(r, "bank.example", TLS_POLICY_VERIFY, TLS_RPT_SUCCESS);
	tls_report_count(r, "bank.example", TLS_POLICY_VERIFY, TLS_RPT_CERT_EXPIRED);
	tls_report_count(r, "sts.example", TLS_POLICY_MTA_STS, TLS_RPT_STS_POLICY_FETCH_ERROR);
	assert_int_equal(tls_report_json(r, &b), 0);
	assert_int_equal(sl_buf_append(&b, "", 1), 0);
	assert_string_equal(sl_buf_head(&b),
			    "{\"domains\":[{\"domain\":\"bank.example\",\"policy\":\"verify\","
			    "\"success\":2,\"failure\":1,\"failures\":{\"certificate-expired\":1}},"
			    "{\"domain\":\"sts.example\",\"policy\":\"mta-sts\",\"success\":0,"
			    "\"failure\":1,\"failures\":{\"sts-policy-fetch-error\":1}}]}");
	sl_buf_reset(&b);
	assert_int_equal(metrics_render(m, &b), 0);
	assert_int_equal(sl_buf_append(&b, "", 1), 0);
	assert_non_null(strstr(sl_buf_head(&b), "sluice_tls_rpt_total{domain=\"bank.example\","
					       "policy=\"verify\",result=\"success\"} 2\n"));
	sl_buf_free(&b);
	tls_report_destroy(r);
	metrics_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt_record),
		cmocka_unit_test(test_policy_parse),
		cmocka_unit_test(test_policy_limits),
		cmocka_unit_test(test_mx_match),
		cmocka_unit_test(test_configured),
		cmocka_unit_test(test_effective),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_report),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
