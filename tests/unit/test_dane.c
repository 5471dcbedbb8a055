/* test_dane.c — TLSA parsing, the RFC 7672 decision per MX host, and
 * matching real certificates (generated with OpenSSL) in memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "dane.h"
#include "err.h"
#include "tls.h"

static char dir[64];
static char cert_path[128], key_path[128], other_cert[128], other_key[128];
static char ca_path[128], chain_path[128], chain_key[128];

/* A certificate for cn (subjectAltName too) with pkey, signed by
 * (issuer, ikey), or self-signed if issuer is NULL. */
static X509 *make_cert(const char *cn, EVP_PKEY *pkey, bool ca, X509 *issuer, EVP_PKEY *ikey)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	char san[128];

	assert_non_null(x);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pkey);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
				  ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!ca) {
		snprintf(san, sizeof san, "DNS:%s", cn);
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, ikey ? ikey : pkey, EVP_sha256()) > 0);
	return x;
}

/* A CA (ca_path) and a leaf for mx.dane.example it signed: the server's
 * chain (chain_path, leaf first) and key (chain_key). */
static int make_chain(void)
{
	EVP_PKEY *cak = EVP_EC_gen("P-256"), *leafk = EVP_EC_gen("P-256");
	X509 *ca = make_cert("Test DANE CA", cak, true, NULL, NULL);
	X509 *leaf = make_cert("mx.dane.example", leafk, false, ca, cak);
	FILE *f;

	f = fopen(ca_path, "w");
	PEM_write_X509(f, ca);
	fclose(f);
	f = fopen(chain_path, "w");
	PEM_write_X509(f, leaf);
	PEM_write_X509(f, ca);
	fclose(f);
	f = fopen(chain_key, "w");
	PEM_write_PrivateKey(f, leafk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(leaf);
	X509_free(ca);
	EVP_PKEY_free(leafk);
	EVP_PKEY_free(cak);
	return 0;
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/sluice-test-dane-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
	snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
	snprintf(other_cert, sizeof other_cert, "%s/other.pem", dir);
	snprintf(other_key, sizeof other_key, "%s/other.key", dir);
	snprintf(ca_path, sizeof ca_path, "%s/ca.pem", dir);
	snprintf(chain_path, sizeof chain_path, "%s/chain.pem", dir);
	snprintf(chain_key, sizeof chain_key, "%s/chain.key", dir);
	if (make_chain() != 0)
		return -1;
	if (tls_generate_self_signed(cert_path, key_path, "mx.dane.example") != 0 ||
	    tls_generate_self_signed(other_cert, other_key, "mx.dane.example") != 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	unlink(cert_path);
	unlink(key_path);
	unlink(other_cert);
	unlink(other_key);
	unlink(ca_path);
	unlink(chain_path);
	unlink(chain_key);
	rmdir(dir);
	return 0;
}

/* rdata "usage selector mtype" + data. */
static size_t rdata(uint8_t *out, uint8_t u, uint8_t s, uint8_t m, const uint8_t *d, size_t n)
{
	out[0] = u;
	out[1] = s;
	out[2] = m;
	memcpy(out + 3, d, n);
	return n + 3;
}

static void test_parse(void **state)
{
	uint8_t rd[100], d64[64] = { 1 };
	struct dane_tlsa t;

	(void)state;
	assert_int_equal(dane_tlsa_parse(rd, rdata(rd, 3, 1, 1, d64, 32), &t), 0);
	assert_int_equal(t.usage, 3);
	assert_int_equal(t.selector, 1);
	assert_int_equal(t.mtype, 1);
	assert_int_equal(t.len, 32);
	assert_ptr_equal(t.data, rd + 3);
	assert_true(dane_tlsa_usable(&t));

	assert_int_equal(dane_tlsa_parse(rd, rdata(rd, 2, 0, 2, d64, 64), &t), 0);
	assert_true(dane_tlsa_usable(&t));
	/* Digest lengths must match the matching type. */
	assert_int_equal(dane_tlsa_parse(rd, rdata(rd, 3, 1, 1, d64, 31), &t), -EINVAL);
	assert_int_equal(dane_tlsa_parse(rd, rdata(rd, 3, 1, 1, d64, 33), &t), -EINVAL);
	assert_int_equal(dane_tlsa_parse(rd, rdata(rd, 3, 1, 2, d64, 32), &t), -EINVAL);
	/* No association data, or not even the three octets. */
	assert_int_equal(dane_tlsa_parse(rd, 3, &t), -EINVAL);
	assert_int_equal(dane_tlsa_parse(rd, 0, &t), -EINVAL);
	assert_int_equal(dane_tlsa_parse(NULL, 10, &t), -EINVAL);
	/* Full data (mtype 0) of any length >= 1. */
	assert_int_equal(dane_tlsa_parse(rd, rdata(rd, 3, 0, 0, d64, 1), &t), 0);
	assert_true(dane_tlsa_usable(&t));

	/* PKIX usages and unknown parameters parse but are unusable. */
	assert_int_equal(dane_tlsa_parse(rd, rdata(rd, 0, 1, 1, d64, 32), &t), 0);
	assert_false(dane_tlsa_usable(&t));
	assert_int_equal(dane_tlsa_parse(rd, rdata(rd, 1, 1, 1, d64, 32), &t), 0);
	assert_false(dane_tlsa_usable(&t));
	assert_int_equal(dane_tlsa_parse(rd, rdata(rd, 4, 1, 1, d64, 32), &t), 0);
	assert_false(dane_tlsa_usable(&t));
	assert_int_equal(dane_tlsa_parse(rd, rdata(rd, 3, 2, 1, d64, 32), &t), 0);
	assert_false(dane_tlsa_usable(&t));
	assert_int_equal(dane_tlsa_parse(rd, rdata(rd, 3, 1, 3, d64, 32), &t), 0);
	assert_false(dane_tlsa_usable(&t));
	assert_int_equal(dane_tlsa_parse(rd, rdata(rd, 3, 1, 255, d64, 5), &t), 0);
	assert_false(dane_tlsa_usable(&t));
}

/* An MX host with the given statuses and records. */
struct fake_host {
	struct mx_host h;
	const uint8_t *recs[4];
	size_t lens[4];
	uint8_t buf[4][100];
};

static void fake(struct fake_host *f, enum resolver_sec addr, enum resolver_sec tlsa)
{
	memset(f, 0, sizeof *f);
	f->h.name = "mx.dane.example";
	f->h.addr_sec = addr;
	f->h.tlsa_sec = tlsa;
	f->h.tlsa = f->recs;
	f->h.tlsa_len = f->lens;
}

static void fake_add(struct fake_host *f, uint8_t u, uint8_t s, uint8_t m, size_t n)
{
	static const uint8_t d[64] = { 7 };
	size_t i = f->h.n_tlsa++;

	f->lens[i] = rdata(f->buf[i], u, s, m, d, n);
	f->recs[i] = f->buf[i];
}

static void test_decide(void **state)
{
	struct fake_host f;
	struct dane_host *d;

	(void)state;
	fake(&f, RESOLVER_SEC_SECURE, RESOLVER_SEC_SECURE);
	fake_add(&f, 3, 1, 1, 32);
	/* Insecure MX or addresses: DANE does not apply. */
	assert_int_equal(dane_host_create(RESOLVER_SEC_INSECURE, &f.h, &d), DANE_NONE);
	assert_null(d);
	f.h.addr_sec = RESOLVER_SEC_INSECURE;
	assert_int_equal(dane_host_create(RESOLVER_SEC_SECURE, &f.h, &d), DANE_NONE);
	assert_null(d);
	f.h.addr_sec = RESOLVER_SEC_SECURE;

	/* Secure everything, one usable record: required. */
	assert_int_equal(dane_host_create(RESOLVER_SEC_SECURE, &f.h, &d), DANE_REQUIRED);
	assert_non_null(d);
	assert_int_equal(dane_host_state(d), DANE_REQUIRED);
	assert_string_equal(dane_host_name(d), "mx.dane.example");
	assert_int_equal(dane_host_count(d), 1);
	assert_int_equal(dane_host_record(d, 0)->usage, 3);
	assert_int_equal(dane_host_record(d, 0)->data[0], 7);
	assert_null(dane_host_record(d, 1));
	assert_ptr_equal(dane_host_ref(d), d);
	dane_host_unref(d);
	dane_host_unref(d);
	dane_host_unref(NULL);

	/* Bogus or failed TLSA lookups: defer, with a reason. */
	f.h.tlsa_sec = RESOLVER_SEC_BOGUS;
	assert_int_equal(dane_host_create(RESOLVER_SEC_SECURE, &f.h, &d), DANE_DEFER);
	assert_string_equal(dane_host_reason(d), "TLSA lookup for _25._tcp.mx.dane.example is bogus");
	dane_host_unref(d);
	f.h.tlsa_sec = RESOLVER_SEC_FAILED;
	assert_int_equal(dane_host_create(RESOLVER_SEC_SECURE, &f.h, &d), DANE_DEFER);
	dane_host_unref(d);

	/* Insecure TLSA, no records, only unusable ones: the normal policy. */
	f.h.tlsa_sec = RESOLVER_SEC_INSECURE;
	assert_int_equal(dane_host_create(RESOLVER_SEC_SECURE, &f.h, &d), DANE_NONE);
	fake(&f, RESOLVER_SEC_SECURE, RESOLVER_SEC_SECURE);
	assert_int_equal(dane_host_create(RESOLVER_SEC_SECURE, &f.h, &d), DANE_NONE);
	fake_add(&f, 1, 1, 1, 32);  /* PKIX-EE */
	fake_add(&f, 3, 1, 1, 20);  /* malformed */
	fake_add(&f, 3, 7, 1, 32);  /* unknown selector */
	assert_int_equal(dane_host_create(RESOLVER_SEC_SECURE, &f.h, &d), DANE_NONE);
	assert_null(d);
	fake_add(&f, 2, 0, 2, 64);  /* DANE-TA: usable */
	assert_int_equal(dane_host_create(RESOLVER_SEC_SECURE, &f.h, &d), DANE_REQUIRED);
	assert_int_equal(dane_host_count(d), 1);
	assert_int_equal(dane_host_record(d, 0)->usage, 2);
	assert_int_equal(dane_host_record(d, 0)->len, 64);
	dane_host_unref(d);

	assert_string_equal(dane_outcome_name(DANE_OUTCOME_NONE), "none");
	assert_string_equal(dane_outcome_name(DANE_OUTCOME_VERIFIED), "verified");
	assert_string_equal(dane_outcome_name(DANE_OUTCOME_FAILED), "failed");
}

/* TLSA association data for the certificate in path. */
static size_t cert_assoc(const char *path, int selector, int mtype, uint8_t *out)
{
	FILE *f = fopen(path, "r");
	X509 *x;
	unsigned char *der = NULL;
	unsigned int mdlen = 0;
	int len;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	len = selector == 1 ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der) : i2d_X509(x, &der);
	assert_true(len > 0);
	if (mtype == 0) {
		memcpy(out, der, (size_t)len);
		mdlen = (unsigned)len;
	} else {
		assert_int_equal(EVP_Digest(der, (size_t)len, out, &mdlen,
					    mtype == 1 ? EVP_sha256() : EVP_sha512(), NULL), 1);
	}
	OPENSSL_free(der);
	X509_free(x);
	return mdlen;
}

static int dane_handshake_with(const char *srv_cert, const char *srv_key, const char *tlsa_cert,
			       int usage, int selector, int mtype, const char *base,
			       bool *verified);

/* Handshake a DANE client (records from cert `tlsa_cert`, base domain
 * `base`) with a server presenting cert_path: 1, or the client's error. */
static int dane_handshake(const char *tlsa_cert, int usage, int selector, int mtype,
			  const char *base, bool *verified)
{
	return dane_handshake_with(cert_path, key_path, tlsa_cert, usage, selector, mtype, base,
				   verified);
}

static int dane_handshake_with(const char *srv_cert, const char *srv_key, const char *tlsa_cert,
			       int usage, int selector, int mtype, const char *base,
			       bool *verified)
{
	struct tls_ctx *sctx, *cctx;
	struct tls_conn *srv, *cli;
	struct sl_buf wire = { 0 };
	struct fake_host fh;
	struct dane_host *d;
	uint8_t data[4096], rd[4100];
	size_t n = cert_assoc(tlsa_cert, selector, mtype, data);
	int cs = 0, ss = 0, rc = 0;

	fake(&fh, RESOLVER_SEC_SECURE, RESOLVER_SEC_SECURE);
	fh.h.name = (char *)base;
	fh.lens[0] = rdata(rd, (uint8_t)usage, (uint8_t)selector, (uint8_t)mtype, data, n);
	fh.recs[0] = rd;
	fh.h.n_tlsa = 1;
	assert_int_equal(dane_host_create(RESOLVER_SEC_SECURE, &fh.h, &d), DANE_REQUIRED);

	assert_int_equal(tls_ctx_server_create(srv_cert, srv_key, &sctx), 0);
	assert_int_equal(tls_ctx_client_create(false, NULL, &cctx), 0);
	assert_int_equal(tls_ctx_enable_dane(cctx), 0);
	assert_int_equal(tls_conn_create(sctx, true, NULL, &srv), 0);
	assert_int_equal(tls_conn_create(cctx, false, base, &cli), 0);
	assert_int_equal(dane_host_apply(d, cli), 0);
	for (int i = 0; i < 20 && !(cs == 1 && ss == 1); i++) {
		if (cs != 1 && (cs = tls_conn_handshake(cli)) < 0) {
			rc = cs;
			break;
		}
		sl_buf_reset(&wire);
		if (tls_conn_pending_output(cli, &wire) > 0)
			tls_conn_feed(srv, sl_buf_head(&wire), sl_buf_avail(&wire));
		if (ss != 1 && (ss = tls_conn_handshake(srv)) < 0)
			break;
		sl_buf_reset(&wire);
		if (tls_conn_pending_output(srv, &wire) > 0)
			tls_conn_feed(cli, sl_buf_head(&wire), sl_buf_avail(&wire));
	}
	if (!rc)
		rc = cs;
	*verified = tls_conn_dane_verified(cli);
	tls_conn_destroy(cli);
	tls_conn_destroy(srv);
	tls_ctx_destroy(cctx);
	tls_ctx_destroy(sctx);
	sl_buf_free(&wire);
	dane_host_unref(d);
	return rc;
}

static void test_match_dane_ee(void **state)
{
	bool v;

	(void)state;
	assert_int_equal(dane_handshake(cert_path, 3, 1, 1, "mx.dane.example", &v), 1);
	assert_true(v);
	assert_int_equal(dane_handshake(cert_path, 3, 0, 1, "mx.dane.example", &v), 1);
	assert_true(v);
	assert_int_equal(dane_handshake(cert_path, 3, 1, 2, "mx.dane.example", &v), 1);
	assert_true(v);
	assert_int_equal(dane_handshake(cert_path, 3, 0, 0, "mx.dane.example", &v), 1);
	assert_true(v);
	/* DANE-EE: no name check (RFC 7672 §3.1.1). */
	assert_int_equal(dane_handshake(cert_path, 3, 1, 1, "other.name.example", &v), 1);
	assert_true(v);
}

/* DANE-TA: the CA in the server's chain matches, and the leaf must also
 * name the MX host (RFC 7672 §3.2.2). */
static void test_match_dane_ta_checks_name(void **state)
{
	bool v;

	(void)state;
	assert_int_equal(dane_handshake_with(chain_path, chain_key, ca_path, 2, 0, 1,
					     "mx.dane.example", &v), 1);
	assert_true(v);
	assert_int_equal(dane_handshake_with(chain_path, chain_key, ca_path, 2, 1, 1,
					     "mx.dane.example", &v), 1);
	assert_true(v);
	assert_int_equal(dane_handshake_with(chain_path, chain_key, ca_path, 2, 0, 1,
					     "other.name.example", &v), SL_ETLS);
	assert_false(v);
	/* A TA record for a CA that did not sign the chain. */
	assert_int_equal(dane_handshake_with(chain_path, chain_key, cert_path, 2, 0, 1,
					     "mx.dane.example", &v), SL_ETLS);
	assert_false(v);
}

static void test_mismatch_fails(void **state)
{
	char why[256];
	bool v;

	(void)state;
	assert_int_equal(dane_handshake(other_cert, 3, 1, 1, "mx.dane.example", &v), SL_ETLS);
	assert_false(v);
	tls_last_error(why, sizeof why);
	assert_non_null(strstr(why, "DANE TLSA"));
}

static void test_apply_needs_required(void **state)
{
	struct fake_host f;
	struct dane_host *d;

	(void)state;
	fake(&f, RESOLVER_SEC_SECURE, RESOLVER_SEC_BOGUS);
	assert_int_equal(dane_host_create(RESOLVER_SEC_SECURE, &f.h, &d), DANE_DEFER);
	assert_int_equal(dane_host_apply(d, NULL), -EINVAL);
	dane_host_unref(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_match_dane_ee),
		cmocka_unit_test(test_match_dane_ta_checks_name),
		cmocka_unit_test(test_mismatch_fails),
		cmocka_unit_test(test_apply_needs_required),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
