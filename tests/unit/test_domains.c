/* test_domains.c — sending domains: registration with a generated key,
 * the records to publish, and the DNS check against a libunbound context
 * answering from local data (pass, and each kind of failure). */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns_sync.h"
#include "domains.h"
#include "err.h"
#include "store.h"

struct fx {
	char dir[64];
	struct store *st;
};

static const char *const ips[] = { "198.51.100.10", "198.51.100.11", NULL };
static const struct domains_env env = {
	.spf_ips = ips,
	.return_path = "rp.sluice.test",
	.hostname = "mx.sluice.test",
	.dmarc_rua = "dmarc@sluice.test",
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	struct store_tenant t = { .name = "acme" };

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/sluice-test-domains-XXXXXX");
	if (!mkdtemp(f->dir) || store_open(f->dir, 0, false, &f->st) != 0)
		return -1;
	if (store_tenant_create(f->st, &t, "test", NULL) != 0)
		return -1;
	strcpy(t.name, "other");
	if (store_tenant_create(f->st, &t, "test", NULL) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->st);
	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* An unbound local-data TXT line, the value split in 255-byte strings. */
static char *txt_rr(const char *name, const char *value)
{
	char *out = malloc(strlen(name) + strlen(value) * 2 + 64);
	size_t o, n = strlen(value);

	o = (size_t)sprintf(out, "%s. TXT", name);
	for (size_t i = 0; i < n; i += 255)
		o += (size_t)sprintf(out + o, " \"%.*s\"", (int)(n - i < 255 ? n - i : 255), value + i);
	return out;
}

/* Check d against the records in rr[] (NULL-terminated). */
static void check_with(struct domain *d, const char *const *rr)
{
	const char *data[16] = { "local-zone acme.test. static" };
	struct dns_sync *dns;
	size_t i;

	for (i = 0; rr[i]; i++)
		data[i + 1] = rr[i];
	assert_int_equal(dns_sync_create(NULL, data, &dns), 0);
	assert_int_equal(domains_check_dns(d, &env, dns, 1000), 0);
	dns_sync_destroy(dns);
}

static void test_add_records(void **state)
{
	struct fx *f = *state;
	struct domain d, g, list[4];
	struct domain_record r[DOMAIN_RECS];
	struct sl_buf pem = { 0 };
	size_t n;

	assert_int_equal(domains_add(f->st, "acme", "Mail.Acme.TEST", 1, NULL, "test", &d), 0);
	assert_string_equal(d.domain, "mail.acme.test");
	assert_string_equal(d.selector, DOMAIN_DEFAULT_SELECTOR);
	assert_non_null(strstr(d.dkim_txt, "v=DKIM1; k=rsa; p="));
	assert_int_equal(domains_add(f->st, "other", "mail.acme.test", 0, NULL, "test", NULL),
			 -EEXIST);
	assert_int_equal(domains_add(f->st, "acme", "bad domain", 0, NULL, "test", NULL), -EINVAL);
	assert_int_equal(domains_add(f->st, "nobody", "x.acme.test", 0, NULL, "test", NULL),
			 SL_ENOTFOUND);
	assert_int_equal(domains_get(f->st, NULL, "mail.acme.test", &g), 0);
	assert_string_equal(g.tenant, "acme");
	assert_int_equal(domains_get(f->st, "other", "mail.acme.test", &g), SL_ENOTFOUND);
	assert_int_equal(domains_key_pem(f->st, "acme", "mail.acme.test", &pem), 0);
	assert_non_null(strstr(sl_buf_head(&pem), "BEGIN PRIVATE KEY"));
	sl_buf_free(&pem);

	domains_records(&d, &env, r);
	assert_string_equal(r[DOMAIN_REC_SPF].name, "mail.acme.test");
	assert_string_equal(r[DOMAIN_REC_SPF].value,
			    "v=spf1 ip4:198.51.100.10 ip4:198.51.100.11 ~all");
	assert_string_equal(r[DOMAIN_REC_DKIM].name, "sl1._domainkey.mail.acme.test");
	assert_string_equal(r[DOMAIN_REC_DMARC].value,
			    "v=DMARC1; p=none; rua=mailto:dmarc@sluice.test");
	assert_string_equal(r[DOMAIN_REC_RETURN_PATH].type, "CNAME");
	assert_string_equal(r[DOMAIN_REC_RETURN_PATH].name, "bounces.mail.acme.test");

	assert_int_equal(domains_list(f->st, "acme", list, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(domains_list(f->st, "other", list, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(domains_remove(f->st, "acme", "mail.acme.test", "test"), 0);
	assert_int_equal(domains_get(f->st, NULL, "mail.acme.test", &g), SL_ENOTFOUND);
	assert_int_equal(domains_key_pem(f->st, "acme", "mail.acme.test", &pem), SL_ENOTFOUND);
	sl_buf_free(&pem);
}

static void test_check(void **state)
{
	struct fx *f = *state;
	struct domain d;
	struct domain_record r[DOMAIN_RECS];
	char *spf, *dkim, *dmarc, *bad_spf, *bad_dkim;
	const char *cname = "bounces.mail.acme.test. CNAME rp.sluice.test.";

	assert_int_equal(domains_add(f->st, "acme", "mail.acme.test", 1, NULL, "test", &d), 0);
	domains_records(&d, &env, r);
	spf = txt_rr(r[0].name, "v=spf1 ip4:198.51.100.11 ip4:198.51.100.10 mx ~all");
	dkim = txt_rr(r[1].name, r[1].value);
	dmarc = txt_rr(r[2].name, "v=DMARC1; p=reject");
	bad_spf = txt_rr(r[0].name, "v=spf1 ip4:198.51.100.10 -all");
	bad_dkim = txt_rr(r[1].name, "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA");

	/* nothing published */
	check_with(&d, (const char *const[]){ NULL });
	for (int i = 0; i < DOMAIN_RECS; i++)
		assert_int_equal(d.status[i], DOMAIN_MISSING);
	assert_int_equal(d.verified_ms, 0);

	/* everything right */
	check_with(&d, (const char *const[]){ spf, dkim, dmarc, cname, NULL });
	for (int i = 0; i < DOMAIN_RECS; i++)
		assert_int_equal(d.status[i], DOMAIN_OK);
	assert_int_equal(d.verified_ms, 1000);

	/* wrong SPF, wrong DKIM key, return path pointing elsewhere, no DMARC */
	check_with(&d, (const char *const[]){ bad_spf, bad_dkim,
					      "bounces.mail.acme.test. CNAME elsewhere.test.", NULL });
	assert_int_equal(d.status[DOMAIN_REC_SPF], DOMAIN_MISMATCH);
	assert_int_equal(d.status[DOMAIN_REC_DKIM], DOMAIN_MISMATCH);
	assert_int_equal(d.status[DOMAIN_REC_DMARC], DOMAIN_MISSING);
	assert_int_equal(d.status[DOMAIN_REC_RETURN_PATH], DOMAIN_MISMATCH);
	assert_string_equal(d.found[DOMAIN_REC_RETURN_PATH], "CNAME elsewhere.test");
	assert_int_equal(d.verified_ms, 0);

	/* the return path as an MX to the appliance when there is no CNAME target */
	{
		struct domains_env mx = env;

		mx.return_path = NULL;
		domains_records(&d, &mx, r);
		assert_string_equal(r[DOMAIN_REC_RETURN_PATH].value, "10 mx.sluice.test");
	}
	free(spf);
	free(dkim);
	free(dmarc);
	free(bad_spf);
	free(bad_dkim);
}

static void test_verify_stored(void **state)
{
	struct fx *f = *state;
	struct domain d, g;
	struct domain_record r[DOMAIN_RECS];
	struct dns_sync *dns;
	struct store_audit a[16];
	size_t n;
	bool more, saw = false;
	char *rr[5];

	assert_int_equal(domains_add(f->st, "acme", "mail.acme.test", 1, "s2024", "test", &d), 0);
	domains_records(&d, &env, r);
	rr[0] = txt_rr(r[0].name, r[0].value);
	rr[1] = txt_rr(r[1].name, r[1].value);
	rr[2] = txt_rr(r[2].name, r[2].value);
	rr[3] = "bounces.mail.acme.test. CNAME rp.sluice.test.";
	rr[4] = NULL;
	{
		const char *data[] = { "local-zone acme.test. static", rr[0], rr[1], rr[2], rr[3],
				       NULL };

		assert_int_equal(dns_sync_create(NULL, data, &dns), 0);
	}
	assert_int_equal(domains_verify(f->st, &env, dns, "acme", "mail.acme.test", "test", 5000,
					&g), 0);
	dns_sync_destroy(dns);
	assert_int_equal(g.verified_ms, 5000);
	assert_int_equal(domains_get(f->st, "acme", "mail.acme.test", &g), 0);
	assert_int_equal(g.verified_ms, 5000);
	assert_int_equal(g.status[DOMAIN_REC_DKIM], DOMAIN_OK);
	assert_int_equal(store_audit_list(f->st, 0, "domain:acme/mail.acme.test", a, 16, &n, &more),
			 0);
	for (size_t i = 0; i < n; i++)
		saw = saw || !strcmp(a[i].action, "domain.verified");
	assert_true(saw);
	for (int i = 0; i < 3; i++)
		free(rr[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_stored, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
