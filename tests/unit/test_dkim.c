/*
 * test_dkim.c — DKIM signing, checked by an independent verifier.
 *
 * Keys are generated per run; every signature is verified with libopendkim
 * in verify mode (key records served from memory by a key-lookup callback,
 * built with dkim_dns_record()), so these tests check interoperability, not
 * just self-consistency. Also: the signed header set, From oversigning,
 * dual signing, known body hashes (RFC 8463 A.3) and the error values.
 */
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
#include <opendkim/dkim.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "buf.h"
#include "dkim.h"
#include "err.h"

static char *rsa_pem, *ed_pem, *rsa512_pem;
static char rsa_rec[1024], ed_rec[256];
static DKIM_LIB *vlib;

static const char MSG[] =
	"From: Joe SixPack <joe@football.example.com>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"  (folded, \t with  odd   spacing)\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
	"X-Mailer: not signed\r\n"
	"Received: from a by b; not signed either\r\n"
	"List-Unsubscribe: <mailto:u@example.com>\r\n"
	"\r\n"
	"Hi.\r\n"
	"\r\n"
	"We lost the game.  Are you hungry yet?\r\n"
	"caf\xc3\xa9 \t \r\n"
	"\r\n"
	"Joe.\r\n"
	"\r\n"
	"\r\n";

static char *pem_of(EVP_PKEY *pkey)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p, *pem;
	long n;

	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &p);
	pem = strndup(p, (size_t)n);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return pem;
}

static void record_of(const char *pem, char *out, size_t cap)
{
	struct sl_buf b = {0};

	assert_int_equal(dkim_dns_record(pem, &b), 0);
	assert_true(b.len < cap);
	memcpy(out, b.data, b.len);
	out[b.len] = '\0';
	sl_buf_free(&b);
}

/* libopendkim key lookup: selector "rsa*" gets the RSA key, else Ed25519. */
static DKIM_CBSTAT lookup(DKIM *d, DKIM_SIGINFO *sig, u_char *buf, size_t len)
{
	const char *sel = (const char *)dkim_sig_getselector(sig);
	const char *rec = !strncmp(sel, "rsa", 3) ? rsa_rec : ed_rec;

	(void)d;
	snprintf((char *)buf, len, "%s", rec);
	return DKIM_CBSTAT_CONTINUE;
}

static int group_setup(void **state)
{
	(void)state;
	rsa_pem = pem_of(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048));
	ed_pem = pem_of(EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	rsa512_pem = pem_of(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512));
	record_of(rsa_pem, rsa_rec, sizeof(rsa_rec));
	record_of(ed_pem, ed_rec, sizeof(ed_rec));
	vlib = dkim_init(NULL, NULL);
	if (!vlib || dkim_set_key_lookup(vlib, lookup) != DKIM_STAT_OK)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(rsa_pem);
	free(ed_pem);
	free(rsa512_pem);
	dkim_close(vlib);
	return 0;
}

/* Number of signatures libopendkim finds valid in hdrs + msg. */
static int verify(const struct sl_buf *hdrs, const char *msg, size_t len)
{
	DKIM_STAT st;
	DKIM_SIGINFO **sigs;
	int nsigs = 0, good = 0;
	DKIM *d = dkim_verify(vlib, (const u_char *)"test", NULL, &st);

	assert_non_null(d);
	dkim_chunk(d, (u_char *)hdrs->data, hdrs->len);
	dkim_chunk(d, (u_char *)msg, len);
	dkim_chunk(d, NULL, 0);
	dkim_eom(d, NULL);
	if (dkim_getsiglist(d, &sigs, &nsigs) == DKIM_STAT_OK)
		for (int i = 0; i < nsigs; i++)
			good += DKIM_SIG_CHECK(sigs[i]);
	dkim_free(d);
	return good;
}

static int count(const char *hay, size_t len, const char *needle)
{
	int n = 0;
	size_t nl = strlen(needle);

	for (size_t i = 0; i + nl <= len; i++)
		n += !memcmp(hay + i, needle, nl);
	return n;
}

/* Occurrences of needle in the fields with their folding removed. */
static int count_unfolded(const struct sl_buf *h, const char *needle)
{
	char *u = malloc(h->len + 1);
	size_t n = 0;
	int c;

	assert_non_null(u);
	for (size_t i = 0; i < h->len; i++) {
		if (h->data[i] == '\r' && i + 2 < h->len && h->data[i + 1] == '\n' &&
		    (h->data[i + 2] == '\t' || h->data[i + 2] == ' ')) {
			i += 2;
			continue;
		}
		u[n++] = h->data[i];
	}
	c = count(u, n, needle);
	free(u);
	return c;
}

static struct dkim_signer *signer_with(const char *pem1, const char *pem2)
{
	struct dkim_signer *s = dkim_signer_create();

	assert_non_null(s);
	if (pem1)
		assert_int_equal(dkim_signer_add_key(s, "football.example.com", "rsa1",
						     DKIM_ALGO_AUTO, pem1), 0);
	if (pem2)
		assert_int_equal(dkim_signer_add_key(s, "football.example.com", "ed1",
						     DKIM_ALGO_ED25519_SHA256, pem2), 0);
	return s;
}

static void test_rsa(void **state)
{
	struct dkim_signer *s = signer_with(rsa_pem, NULL);
	struct sl_buf h = {0};

	(void)state;
	assert_int_equal(dkim_signer_sign(s, "football.example.com", MSG, sizeof(MSG) - 1, &h), 0);
	assert_int_equal(count(h.data, h.len, "DKIM-Signature:"), 1);
	assert_int_equal(count(h.data, h.len, "a=rsa-sha256;"), 1);
	assert_int_equal(count(h.data, h.len, "c=relaxed/relaxed;"), 1);
	assert_int_equal(count(h.data, h.len, "d=football.example.com; s=rsa1;"), 1);
	assert_memory_equal(h.data + h.len - 2, "\r\n", 2);
	assert_int_equal(verify(&h, MSG, sizeof(MSG) - 1), 1);
	/* again with the reused scratch state: still valid */
	sl_buf_reset(&h);
	assert_int_equal(dkim_signer_sign(s, "FOOTBALL.example.com", MSG, sizeof(MSG) - 1, &h), 0);
	assert_int_equal(verify(&h, MSG, sizeof(MSG) - 1), 1);
	sl_buf_free(&h);
	dkim_signer_destroy(s);
}

static void test_ed25519(void **state)
{
	struct dkim_signer *s = signer_with(NULL, ed_pem);
	struct sl_buf h = {0};

	(void)state;
	assert_int_equal(dkim_signer_sign(s, "football.example.com", MSG, sizeof(MSG) - 1, &h), 0);
	assert_int_equal(count(h.data, h.len, "a=ed25519-sha256;"), 1);
	assert_int_equal(verify(&h, MSG, sizeof(MSG) - 1), 1);
	sl_buf_free(&h);
	dkim_signer_destroy(s);
}

static void test_dual_and_canon(void **state)
{
	static const enum dkim_c14n c[] = {DKIM_C14N_RELAXED, DKIM_C14N_SIMPLE};
	struct dkim_signer *s = signer_with(rsa_pem, ed_pem);
	struct sl_buf h = {0};

	(void)state;
	assert_int_equal(dkim_signer_nkeys(s, "football.example.com"), 2);
	for (int i = 0; i < 2; i++) {
		for (int j = 0; j < 2; j++) {
			sl_buf_reset(&h);
			dkim_signer_set_canon(s, c[i], c[j]);
			assert_int_equal(dkim_signer_sign(s, "football.example.com", MSG,
						   sizeof(MSG) - 1, &h), 0);
			assert_int_equal(count(h.data, h.len, "DKIM-Signature:"), 2);
			assert_int_equal(verify(&h, MSG, sizeof(MSG) - 1), 2);
		}
	}
	sl_buf_free(&h);
	dkim_signer_destroy(s);
}

static void test_header_set(void **state)
{
	struct dkim_signer *s = signer_with(NULL, ed_pem);
	struct sl_buf h = {0};

	(void)state;
	assert_int_equal(dkim_signer_sign(s, "football.example.com", MSG, sizeof(MSG) - 1, &h), 0);
	assert_int_equal(count_unfolded(&h,
			 "h=from:to:subject:date:message-id:list-unsubscribe:from;"), 1);
	assert_int_equal(count(h.data, h.len, "x-mailer"), 0);
	assert_int_equal(count(h.data, h.len, "received"), 0);
	sl_buf_free(&h);
	dkim_signer_destroy(s);
}

static void test_oversigned_from(void **state)
{
	struct dkim_signer *s = signer_with(rsa_pem, ed_pem);
	struct sl_buf h = {0}, forged = {0};
	char *body_changed = strdup(MSG);

	(void)state;
	assert_int_equal(dkim_signer_sign(s, "football.example.com", MSG, sizeof(MSG) - 1, &h), 0);
	assert_int_equal(count_unfolded(&h, ":list-unsubscribe:from;"), 2);
	/* a From added anywhere in the header breaks both signatures */
	sl_buf_append(&forged, h.data, h.len);
	sl_buf_appendf(&forged, "From: mallory@evil.example\r\n");
	assert_int_equal(verify(&forged, MSG, sizeof(MSG) - 1), 0);
	/* and so does a changed body */
	body_changed[strlen(body_changed) - 8] = 'X';
	assert_int_equal(verify(&h, body_changed, sizeof(MSG) - 1), 0);
	free(body_changed);
	sl_buf_free(&forged);
	sl_buf_free(&h);
	dkim_signer_destroy(s);
}

/* Known body hashes: RFC 8463 A.3 (relaxed) and the empty body. */
static void test_body_hash(void **state)
{
	static const char rfc[] =
		"From: Joe SixPack <joe@football.example.com>\r\n\r\n"
		"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n";
	static const char lf_only[] =
		"From: Joe SixPack <joe@football.example.com>\n\n"
		"Hi.\n\nWe lost the game.  Are you hungry yet?\n\nJoe.\n\n\n";
	struct dkim_signer *s = signer_with(NULL, ed_pem);
	struct sl_buf h = {0};

	(void)state;
	assert_int_equal(dkim_signer_sign(s, "football.example.com", rfc, sizeof(rfc) - 1, &h), 0);
	assert_int_equal(count(h.data, h.len, "bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;"), 1);
	sl_buf_reset(&h);
	assert_int_equal(dkim_signer_sign(s, "football.example.com", lf_only, sizeof(lf_only) - 1, &h), 0);
	assert_int_equal(count(h.data, h.len, "bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;"), 1);
	sl_buf_reset(&h);
	assert_int_equal(dkim_signer_sign(s, "football.example.com", "From: a\r\n", 9, &h), 0);
	assert_int_equal(count(h.data, h.len, "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"), 1);
	sl_buf_reset(&h);
	dkim_signer_set_canon(s, DKIM_C14N_SIMPLE, DKIM_C14N_SIMPLE);
	assert_int_equal(dkim_signer_sign(s, "football.example.com", "From: a\r\n\r\n\r\n", 13, &h), 0);
	assert_int_equal(count(h.data, h.len, "bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=;"), 1);
	sl_buf_free(&h);
	dkim_signer_destroy(s);
}

static void test_errors(void **state)
{
	struct dkim_signer *s = dkim_signer_create();
	struct sl_buf h = {0};
	enum dkim_algo a;

	(void)state;
	assert_non_null(s);
	assert_int_equal(dkim_signer_add_key(s, "ex.com", "s", DKIM_ALGO_AUTO, "-----BEGIN junk"), SL_ECONFIG);
	assert_int_equal(dkim_signer_add_key(s, "ex.com", "s", DKIM_ALGO_AUTO, "/nonexistent/key.pem"), -ENOENT);
	assert_int_equal(dkim_signer_add_key(s, "ex.com", "s", DKIM_ALGO_RSA_SHA256, ed_pem), SL_ECONFIG);
	assert_int_equal(dkim_signer_add_key(s, "ex.com", "s", DKIM_ALGO_AUTO, rsa512_pem), SL_ECONFIG);
	assert_int_equal(dkim_signer_add_key(s, "ex.com", "s;x=1", DKIM_ALGO_AUTO, ed_pem), SL_ECONFIG);
	assert_int_equal(dkim_signer_add_key(s, "ex..com", "s", DKIM_ALGO_AUTO, ed_pem), SL_ECONFIG);
	assert_int_equal(dkim_signer_add_key(s, "ex.com", "s", DKIM_ALGO_AUTO, NULL), -EINVAL);
	assert_int_equal(dkim_signer_add_key(s, "ex.com", "s", DKIM_ALGO_AUTO, ed_pem), 0);
	assert_int_equal(dkim_signer_add_key(s, "EX.com", "t", DKIM_ALGO_AUTO, ed_pem), -EEXIST);
	assert_int_equal(dkim_signer_nkeys(s, "ex.com"), 1);

	sl_buf_appendf(&h, "Keep: me\r\n");
	assert_int_equal(dkim_signer_sign(s, "other.com", MSG, sizeof(MSG) - 1, &h), SL_ENOTFOUND);
	assert_int_equal(dkim_signer_sign(s, "ex.com", "To: x\r\n\r\nbody", 14, &h), SL_EPROTO);
	assert_int_equal(dkim_signer_sign(s, "ex.com", " From: x\r\n\r\n", 12, &h), SL_EPROTO);
	assert_int_equal(dkim_signer_sign(s, "ex.com", "From x\r\n\r\n", 10, &h), SL_EPROTO);
	assert_int_equal(dkim_signer_sign(s, "ex.com", ": x\r\n\r\n", 7, &h), SL_EPROTO);
	assert_int_equal(dkim_signer_sign(s, "ex.com", "", 0, &h), SL_EPROTO);
	assert_int_equal(dkim_signer_sign(s, "ex.com", NULL, 0, &h), SL_EPROTO);
	assert_int_equal(h.len, 10);

	assert_int_equal(dkim_algo_parse("ed25519", &a), 0);
	assert_int_equal(a, DKIM_ALGO_ED25519_SHA256);
	assert_int_equal(dkim_algo_parse("rsa-sha1", &a), -EINVAL);
	assert_string_equal(dkim_algo_name(DKIM_ALGO_RSA_SHA256), "rsa-sha256");
	sl_buf_free(&h);
	dkim_signer_destroy(s);
}

static void test_too_many_fields(void **state)
{
	struct dkim_signer *s = signer_with(NULL, ed_pem);
	struct sl_buf m = {0}, h = {0};

	(void)state;
	sl_buf_appendf(&m, "From: a@football.example.com\r\n");
	for (int i = 0; i < DKIM_MAX_FIELDS; i++)
		sl_buf_appendf(&m, "X: %d\r\n", i);
	sl_buf_appendf(&m, "\r\nbody\r\n");
	assert_int_equal(dkim_signer_sign(s, "football.example.com", m.data, m.len, &h), SL_ETOOBIG);
	assert_int_equal(h.len, 0);
	sl_buf_free(&m);
	sl_buf_free(&h);
	dkim_signer_destroy(s);
}

static void test_keygen(void **state)
{
	char path[] = "/tmp/test_dkim_XXXXXX";
	char key[64];
	struct sl_buf rec = {0};
	struct dkim_signer *s = dkim_signer_create();
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(dkim_keygen(DKIM_ALGO_ED25519_SHA256, path), -EEXIST);
	unlink(path);
	snprintf(key, sizeof(key), "%s.pem", path);
	assert_int_equal(dkim_keygen(DKIM_ALGO_ED25519_SHA256, key), 0);
	assert_int_equal(access(key, R_OK), 0);
	assert_int_equal(dkim_dns_record(key, &rec), 0);
	assert_int_equal(count(rec.data, rec.len, "v=DKIM1; k=ed25519; p="), 1);
	assert_int_equal(rec.len, strlen("v=DKIM1; k=ed25519; p=") + 44);
	assert_int_equal(dkim_signer_add_key(s, "ex.com", "s", DKIM_ALGO_AUTO, key), 0);
	assert_int_equal(dkim_keygen(DKIM_ALGO_AUTO, key), -EINVAL);
	unlink(key);
	sl_buf_free(&rec);
	dkim_signer_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsa),
		cmocka_unit_test(test_ed25519),
		cmocka_unit_test(test_dual_and_canon),
		cmocka_unit_test(test_header_set),
		cmocka_unit_test(test_oversigned_from),
		cmocka_unit_test(test_body_hash),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_too_many_fields),
		cmocka_unit_test(test_keygen),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
