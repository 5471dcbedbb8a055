/*
 * fuzz_dkim.c — dkim_signer_sign() on arbitrary message bytes.
 *
 * The first byte picks the canonicalisation; the rest is the message. One
 * signer with an RSA and an Ed25519 key (generated once) dual-signs it. On
 * success the output must be two well-formed, CRLF-terminated, folded
 * DKIM-Signature fields, and signing again must give the same bytes (the
 * signer's reused scratch state must not leak between messages).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "buf.h"
#include "dkim.h"
#include "err.h"

static struct dkim_signer *signer;

static char *pem_of(EVP_PKEY *pkey)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p, *pem;
	long n;

	if (!bio || !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL))
		abort();
	n = BIO_get_mem_data(bio, &p);
	pem = strndup(p, (size_t)n);
	BIO_free(bio);
	return pem;
}

static void setup(void)
{
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char *p1, *p2;

	signer = dkim_signer_create();
	if (!rsa || !ed || !signer)
		abort();
	p1 = pem_of(rsa);
	p2 = pem_of(ed);
	if (dkim_signer_add_key(signer, "example.com", "rsa", DKIM_ALGO_RSA_SHA256, p1) ||
	    dkim_signer_add_key(signer, "example.com", "ed", DKIM_ALGO_AUTO, p2))
		abort();
	free(p1);
	free(p2);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
}

static void check(const struct sl_buf *o)
{
	const char *p = o->data, *end = o->data + o->len;
	int fields = 0;

	if (o->len < 2 || memcmp(end - 2, "\r\n", 2))
		abort();
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl || nl == p || nl[-1] != '\r' || nl - p > 80)
			abort();
		if (!strncmp(p, "DKIM-Signature: v=1; a=", 23))
			fields++;
		else if (*p != '\t')
			abort();
		p = nl + 1;
	}
	if (fields != 2)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_buf o1 = {0}, o2 = {0};
	int rc1, rc2;

	if (!signer)
		setup();
	if (size < 1)
		return 0;
	dkim_signer_set_canon(signer, data[0] & 1 ? DKIM_C14N_SIMPLE : DKIM_C14N_RELAXED,
			      data[0] & 2 ? DKIM_C14N_SIMPLE : DKIM_C14N_RELAXED);
	rc1 = dkim_signer_sign_at(signer, "example.com", (const char *)data + 1, size - 1, 1700000000, &o1);
	rc2 = dkim_signer_sign_at(signer, "EXAMPLE.com", (const char *)data + 1, size - 1, 1700000000, &o2);
	if (rc1 != rc2)
		abort();
	if (rc1 == 0) {
		check(&o1);
		if (o1.len != o2.len || memcmp(o1.data, o2.data, o1.len))
			abort();
	} else if (rc1 != SL_EPROTO && rc1 != SL_ETOOBIG) {
		abort();
	} else if (o1.len != 0) {
		abort();
	}
	sl_buf_free(&o1);
	sl_buf_free(&o2);
	return 0;
}
