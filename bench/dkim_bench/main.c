/*
 * dkim_bench — DKIM signing rate per core against raw OpenSSL, same run.
 *
 * For RSA-2048 and Ed25519 keys generated at start it measures, single
 * threaded:
 *   raw       EVP_DigestSignInit + EVP_DigestSign of 32 bytes (the private-
 *             key operation a DKIM signature needs, nothing else);
 *   raw-reuse the same with the context initialised once and reused (RSA:
 *             EVP_PKEY_sign of a SHA-256 digest; Ed25519: EVP_DigestSign),
 *             which is what dkim.c does: the floor for a signer;
 *   sluice    dkim_signer_sign() of a 4 KiB message (split, canonicalise,
 *             body + header hashes, sign, format);
 *   opendkim  libopendkim's own dkim_sign()/dkim_chunk()/dkim_eom()/
 *             dkim_getsighdr_d() on the same message and key (what a naive
 *             integration would cost: it re-parses the PEM key per message);
 * and prints signatures per CPU-second and the ratio to raw. Each
 * measurement is the best of ROUNDS rounds of SECONDS of thread CPU time
 * (CLOCK_THREAD_CPUTIME_ID, so time spent descheduled on a busy machine
 * does not count), interleaved, because machines are noisy.
 *
 * usage: dkim_bench [SECONDS-per-round, default 0.5]
 * build: cc -std=gnu17 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -Icommon \
 *          -Idataplane -o build/dkim_bench \
 *          bench/dkim_bench/main.c dataplane/dkim.c common/buf.c \
 *          common/err.c -lopendkim -lcrypto
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <opendkim/dkim.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "buf.h"
#include "dkim.h"
#include "err.h"

#define ROUNDS 3

static double secs = 0.5;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct job {
	EVP_PKEY *pkey;
	const char *pem;
	int ed;
	struct dkim_signer *signer;
	DKIM_LIB *lib;
	const char *msg;
	size_t len;
	EVP_MD_CTX *md;
	EVP_PKEY_CTX *pctx; /* RSA, sign-initialised */
	struct sl_buf out;
};

static int run_raw(struct job *j)
{
	unsigned char tbs[32] = {1}, sig[512];
	size_t siglen = sizeof(sig);

	if (!EVP_DigestSignInit_ex(j->md, NULL, j->ed ? NULL : "SHA256", NULL, NULL,
				   j->pkey, NULL) ||
	    !EVP_DigestSign(j->md, sig, &siglen, tbs, sizeof(tbs)))
		return -1;
	return 0;
}

static int run_raw_reuse(struct job *j)
{
	unsigned char tbs[32] = {1}, sig[512];
	size_t siglen = sizeof(sig);

	if (j->ed)
		return EVP_DigestSign(j->md, sig, &siglen, tbs, sizeof(tbs)) ? 0 : -1;
	return EVP_PKEY_sign(j->pctx, sig, &siglen, tbs, sizeof(tbs)) > 0 ? 0 : -1;
}

static int run_sluice(struct job *j)
{
	sl_buf_reset(&j->out);
	return dkim_signer_sign(j->signer, "example.com", j->msg, j->len, &j->out);
}

static int run_opendkim(struct job *j)
{
	DKIM_STAT st;
	unsigned char *hdr;
	size_t hlen;
	DKIM *d = dkim_sign(j->lib, (const u_char *)"bench", NULL,
			    (dkim_sigkey_t)j->pem, (const u_char *)"sel",
			    (const u_char *)"example.com", DKIM_CANON_RELAXED,
			    DKIM_CANON_RELAXED,
			    j->ed ? DKIM_SIGN_ED25519SHA256 : DKIM_SIGN_RSASHA256, -1, &st);
	int rc = -1;

	if (!d)
		return -1;
	if (dkim_chunk(d, (u_char *)j->msg, j->len) == DKIM_STAT_OK &&
	    dkim_chunk(d, NULL, 0) == DKIM_STAT_OK && dkim_eom(d, NULL) == DKIM_STAT_OK &&
	    dkim_getsighdr_d(d, 0, &hdr, &hlen) == DKIM_STAT_OK)
		rc = 0;
	dkim_free(d);
	return rc;
}

/* Operations per CPU-second of fn over one round. */
static double rate(int (*fn)(struct job *), struct job *j)
{
	double t0 = now(), t;
	long n = 0;

	do {
		for (int i = 0; i < 8; i++, n++)
			if (fn(j) < 0)
				return 0;
		t = now();
	} while (t - t0 < secs);
	return (double)n / (t - t0);
}

static char *pem_of(EVP_PKEY *pkey)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p, *pem;
	long n;

	if (!bio || !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL))
		exit(1);
	n = BIO_get_mem_data(bio, &p);
	pem = strndup(p, (size_t)n);
	BIO_free(bio);
	return pem;
}

static void make_msg(struct sl_buf *m)
{
	sl_buf_appendf(m, "From: Sender <news@example.com>\r\n"
			  "To: someone@example.net\r\n"
			  "Subject: Your weekly digest, with a reasonably long subject\r\n"
			  "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
			  "Message-ID: <1234567890.abcdef@example.com>\r\n"
			  "MIME-Version: 1.0\r\n"
			  "Content-Type: text/plain; charset=utf-8\r\n"
			  "Content-Transfer-Encoding: 8bit\r\n"
			  "List-Unsubscribe: <https://example.com/u/abcdef>\r\n"
			  "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
			  "\r\n");
	while (m->len + 80 < 4096)
		sl_buf_appendf(m, "Lorem ipsum dolor sit amet,  consectetur adipiscing "
				  "elit, sed do eiusmod tempor.\r\n");
	sl_buf_appendf(m, "%.*s\r\n", (int)(4096 - 2 - m->len),
		       "................................................................"
		       "................................................................");
}

static void bench(const char *name, EVP_PKEY *pkey, int ed, struct sl_buf *msg,
		  DKIM_LIB *lib)
{
	struct job j = {
		.pkey = pkey, .pem = pem_of(pkey), .ed = ed, .lib = lib,
		.msg = msg->data, .len = msg->len, .md = EVP_MD_CTX_new(),
		.signer = dkim_signer_create(),
	};
	double raw = 0, reuse = 0, sl = 0, od = 0, r;
	int rc;

	if (!j.md || !j.signer)
		exit(1);
	rc = dkim_signer_add_key(j.signer, "example.com", "sel", DKIM_ALGO_AUTO, j.pem);
	if (rc < 0) {
		fprintf(stderr, "dkim_signer_add_key: %s\n", sl_strerror(rc));
		exit(1);
	}
	for (int i = 0; i < ROUNDS; i++) {
		if ((r = rate(run_raw, &j)) > raw)
			raw = r;
		j.pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
		if (!j.pctx || (!ed && (EVP_PKEY_sign_init(j.pctx) <= 0 ||
			EVP_PKEY_CTX_set_signature_md(j.pctx, EVP_sha256()) <= 0)) ||
		    !EVP_DigestSignInit_ex(j.md, NULL, ed ? NULL : "SHA256", NULL,
					   NULL, pkey, NULL)) {
			fprintf(stderr, "dkim_bench: setting up raw-reuse failed\n");
			exit(1);
		}
		if ((r = rate(run_raw_reuse, &j)) > reuse)
			reuse = r;
		EVP_PKEY_CTX_free(j.pctx);
		if ((r = rate(run_sluice, &j)) > sl)
			sl = r;
		if ((r = rate(run_opendkim, &j)) > od)
			od = r;
	}
	printf("%s: raw %.0f sig/s, raw-reuse %.0f sig/s\n"
	       "%s: sluice dkim_signer_sign %.0f sig/s = %.2f x raw, %.2f x raw-reuse\n"
	       "%s: libopendkim dkim_sign   %.0f sig/s = %.2f x raw%s\n",
	       name, raw, reuse, name, sl, sl / raw, sl / reuse, name, od, od / raw,
	       od == 0 ? " [failed]" : "");
	dkim_signer_destroy(j.signer);
	EVP_MD_CTX_free(j.md);
	sl_buf_free(&j.out);
	free((char *)j.pem);
}

int main(int argc, char **argv)
{
	struct sl_buf msg = {0};
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	DKIM_LIB *lib = dkim_init(NULL, NULL);

	if (argc > 1)
		secs = atof(argv[1]);
	if (!rsa || !ed || !lib || secs <= 0) {
		fprintf(stderr, "usage: dkim_bench [SECONDS-per-round]\n");
		return 2;
	}
	make_msg(&msg);
	printf("dkim_bench: %zu-byte message, best of %d x %.2fs, one core\n",
	       msg.len, ROUNDS, secs);
	bench("rsa2048", rsa, 0, &msg, lib);
	bench("ed25519", ed, 1, &msg, lib);
	dkim_close(lib);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
	sl_buf_free(&msg);
	return 0;
}
