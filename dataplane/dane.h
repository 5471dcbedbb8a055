/*
 * dane.h — DANE for SMTP (RFC 7672): TLSA records and the per-MX-host
 * decision whether TLS is mandatory and authenticated by them.
 *
 * The resolver (resolver.h, with resolver_set_trust_anchor_file and
 * resolver_set_tlsa) delivers, for every MX host, the DNSSEC status of
 * the MX RRset, of the host's addresses and of its TLSA RRset
 * (_25._tcp.HOST), and the TLSA rdata. dane_host_create() turns that into
 * one of three states:
 *  DANE_NONE      DANE does not apply (MX, addresses or TLSA insecure; no
 *                 TLSA records; none usable): the normal TLS policy.
 *  DANE_REQUIRED  TLS is mandatory and the peer must match one of the
 *                 usable records (dane_host_apply on the client conn);
 *                 no STARTTLS or no match defers the mail.
 *  DANE_DEFER     the TLSA lookup was bogus or failed: the host must not
 *                 be used now (temporary; dane_host_reason says why).
 * Usable records (RFC 7672 §3.1): usage 3 DANE-EE (no name check, §3.1.1)
 * and 2 DANE-TA (the MX host name is checked, §3.2.2), selector 0 (full
 * certificate) or 1 (SubjectPublicKeyInfo), matching type 0 (exact), 1
 * (SHA2-256) or 2 (SHA2-512) with the matching length. Usages 0 and 1
 * (PKIX-TA/EE) and unknown parameters are unusable.
 *
 * Ownership: a dane_host copies what it keeps; it is reference counted
 * (sessions hold one while the destination is re-resolved). Not
 * thread-safe; one thread uses it.
 *
 * Errors: -EINVAL malformed input, -ENOMEM, SL_ETLS from OpenSSL.
 */
#ifndef SL_DANE_H
#define SL_DANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resolver.h"

struct tls_conn;
struct dane_host;

/* TLSA certificate usages, selectors, matching types (RFC 6698, 7218). */
enum {
	DANE_USAGE_PKIX_TA = 0,
	DANE_USAGE_PKIX_EE = 1,
	DANE_USAGE_DANE_TA = 2,
	DANE_USAGE_DANE_EE = 3,
	DANE_SELECTOR_CERT = 0,
	DANE_SELECTOR_SPKI = 1,
	DANE_MTYPE_FULL = 0,
	DANE_MTYPE_SHA256 = 1,
	DANE_MTYPE_SHA512 = 2,
};

/* One TLSA record; data points into the rdata it was parsed from. */
struct dane_tlsa {
	uint8_t usage, selector, mtype;
	const uint8_t *data;
	size_t len;
};

enum dane_state {
	DANE_NONE = 0,
	DANE_REQUIRED,
	DANE_DEFER,
};

/* What became of DANE on one session, for logs and metrics. */
enum dane_outcome {
	DANE_OUTCOME_NONE = 0, /* DANE did not apply */
	DANE_OUTCOME_VERIFIED, /* the peer matched a TLSA record */
	DANE_OUTCOME_FAILED,   /* required, but no STARTTLS or no match */
};

/* Parse TLSA rdata (usage, selector, matching type, association data).
 * Strict: at least one data byte, and a SHA2-256/512 digest must be 32/64
 * bytes. Unknown usages, selectors and matching types parse (they are
 * merely unusable). 0, or -EINVAL. out->data points into rdata. */
int dane_tlsa_parse(const uint8_t *rdata, size_t len, struct dane_tlsa *out);

/* Whether an SMTP client may use t (RFC 7672 §3.1; see above). */
bool dane_tlsa_usable(const struct dane_tlsa *t);

/* The DANE state of MX host h of a lookup whose MX RRset (or, for an
 * implicit MX, its NODATA answer) had DNSSEC status mx_sec. *out is NULL
 * for DANE_NONE. Returns the state (>= 0) or -ENOMEM. */
int dane_host_create(enum resolver_sec mx_sec, const struct mx_host *h,
		     struct dane_host **out);
struct dane_host *dane_host_ref(struct dane_host *d);
/* Drop a reference; NULL is a no-op. */
void dane_host_unref(struct dane_host *d);
/* DANE_REQUIRED or DANE_DEFER (a dane_host is never DANE_NONE). */
enum dane_state dane_host_state(const struct dane_host *d);
/* The MX host name (the TLSA base domain). */
const char *dane_host_name(const struct dane_host *d);
/* Why DANE_DEFER ("TLSA lookup for _25._tcp.mx.example is bogus"); "" else. */
const char *dane_host_reason(const struct dane_host *d);
/* The usable records kept (DANE_REQUIRED: >= 1). */
size_t dane_host_count(const struct dane_host *d);
const struct dane_tlsa *dane_host_record(const struct dane_host *d, size_t i);

/* Make the client conn c (created, handshake not yet started) require a
 * peer that matches d's records, with d's name as the base domain: the
 * handshake then fails unless it matches. 0, -EINVAL (d not
 * DANE_REQUIRED), SL_ETLS. */
int dane_host_apply(const struct dane_host *d, struct tls_conn *c);

/* "none", "verified", "failed". */
const char *dane_outcome_name(enum dane_outcome o);

#endif
