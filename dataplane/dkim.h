/*
 * dkim.h — DKIM signing (RFC 6376) with RSA-SHA256 and Ed25519-SHA256
 * (RFC 8463).
 *
 * A struct dkim_signer holds the private keys of the sending domains, parsed
 * ONCE by dkim_signer_add_key(). dkim_signer_sign() then produces, for one
 * message, the DKIM-Signature header field(s) to prepend to it: one per key of the
 * domain, so a domain with both an RSA and an Ed25519 key is dual-signed.
 * The fields are folded, CRLF-terminated, and ready to be written in front
 * of the message bytes unchanged.
 *
 * What is signed: the fields of dkim_default_headers that the message
 * carries, each as many times as it occurs, and From once more than it
 * occurs ("oversigned"), so that a From added later breaks the signature.
 * Canonicalisation is relaxed/relaxed unless dkim_signer_set_canon() says
 * otherwise. Input lines may end in CRLF or bare LF; a bare LF is hashed as
 * CRLF, which is what it becomes on the wire.
 *
 * Why not libopendkim for the signing itself: libopendkim 2.11 takes the
 * private key as a string in its dkim_sign() and parses it again for every
 * message (dkim_eom -> dkim_privkey_load -> PEM_read_bio_PrivateKey), and
 * it offers no way to hand it a parsed key or to supply the signature
 * ourselves; its canonicalisation cannot be used without also paying its
 * per-message key parse and private-key operation. For Ed25519 the parse
 * costs more than the signature. So the canonicalisation (RFC 6376 §3.4)
 * is implemented here, SHA-256 and the private-key operation come from
 * OpenSSL with the pre-parsed EVP_PKEY, and libopendkim is used by the
 * tests and the benchmark as the independent reference verifier/signer.
 * (Names: libopendkim owns dkim_sign() and the DKIM_CANON_* macros, so the
 * entry point here is dkim_signer_sign() and the modes are DKIM_C14N_*;
 * both headers can be included in one file and both libraries linked.)
 *
 * Ownership: the signer owns its keys and a scratch buffer reused across
 * messages (no allocation per message in the steady state); headers_out is
 * the caller's and is appended to. Thread-safety: a signer is not
 * thread-safe; use one per worker thread (keys are cheap to load per
 * thread, and signing then shares nothing).
 *
 * Errors: 0 on success or a negative value: -ENOMEM; -EINVAL for bad
 * arguments; -errno (e.g. -ENOENT) when a key file cannot be opened;
 * -EEXIST for a second key of the same algorithm for a domain; SL_ECONFIG
 * for a key that cannot be used (not a PEM private key, wrong algorithm,
 * RSA shorter than 1024 bits) or a bad domain/selector;
 * SL_ENOTFOUND when the signer has no key for the domain; SL_EPROTO for a
 * message whose header section is malformed or has no From field;
 * SL_ETOOBIG for a message with more than DKIM_MAX_FIELDS header fields;
 * SL_ETLS when OpenSSL fails to sign.
 */
#ifndef SL_DKIM_H
#define SL_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum dkim_algo {
	DKIM_ALGO_AUTO = 0,       /* from the key: RSA or Ed25519 */
	DKIM_ALGO_RSA_SHA256,     /* a=rsa-sha256 */
	DKIM_ALGO_ED25519_SHA256, /* a=ed25519-sha256 */
};

enum dkim_c14n {
	DKIM_C14N_RELAXED = 0,
	DKIM_C14N_SIMPLE,
};

#define DKIM_MAX_FIELDS 1024 /* header fields per message */
#define DKIM_RSA_MIN_BITS 1024

struct dkim_signer;

/* The header names signed when present, NULL-terminated (lower case). */
extern const char *const dkim_default_headers[];

/* A new signer with no keys, relaxed/relaxed; NULL if out of memory. */
struct dkim_signer *dkim_signer_create(void);
void dkim_signer_destroy(struct dkim_signer *s);

/* Header and body canonicalisation for signatures made from now on. */
void dkim_signer_set_canon(struct dkim_signer *s, enum dkim_c14n hdr,
			   enum dkim_c14n body);

/*
 * Add the key of (domain, selector). pem_or_path is either PEM text
 * (starting with "-----BEGIN") or the path of a PEM file; it is parsed
 * here, once. algo AUTO takes the algorithm from the key; otherwise the key
 * must match it. At most one key per algorithm per domain.
 */
int dkim_signer_add_key(struct dkim_signer *s, const char *domain,
			const char *selector, enum dkim_algo algo,
			const char *pem_or_path);

/* Number of keys the signer holds for domain (case-insensitive). */
int dkim_signer_nkeys(const struct dkim_signer *s, const char *domain);

/*
 * Sign msg[0..len) for domain with all its keys and append the
 * DKIM-Signature field(s) to headers_out; t= is time(NULL), the only
 * clock read. On error headers_out is left as it was. No allocation once
 * the signer's buffers have grown to the message sizes seen.
 */
int dkim_signer_sign(struct dkim_signer *s, const char *domain,
		     const char *msg, size_t len, struct sl_buf *headers_out);

/* dkim_signer_sign() with t= given (seconds since the epoch), for tests. */
int dkim_signer_sign_at(struct dkim_signer *s, const char *domain,
			const char *msg, size_t len, int64_t now,
			struct sl_buf *headers_out);

/* Name of an algorithm as in a= ("rsa-sha256"); NULL for AUTO. */
const char *dkim_algo_name(enum dkim_algo algo);
/* Parse "rsa-sha256"/"rsa", "ed25519-sha256"/"ed25519"; -EINVAL if not. */
int dkim_algo_parse(const char *name, enum dkim_algo *algo);

/*
 * Generate a private key (RSA-2048 or Ed25519) and write it as PKCS#8 PEM
 * to path, created with mode 0600 (an existing file is an -EEXIST error).
 */
int dkim_keygen(enum dkim_algo algo, const char *path);

/*
 * Append the DNS TXT record text publishing the public half of a private
 * key ("v=DKIM1; k=rsa; p=..."), unsplit, to out. pem_or_path as for
 * dkim_signer_add_key().
 */
int dkim_dns_record(const char *pem_or_path, struct sl_buf *out);

#endif
