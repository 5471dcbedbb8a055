/*
 * domains.h — a tenant's sending domains: the DNS records it must publish
 * and whether they are there.
 *
 * A tenant registers a sending (sub)domain for a stream. domains_add()
 * generates an RSA-2048 DKIM key pair for it (the private key is kept in
 * the control store, whose files are 0600) and stores the domain
 * unverified. domains_records() spells the four records to publish:
 *   spf          TXT  D                     "v=spf1 ip4:... ~all" (the pools'
 *                                           source IPs) or "v=spf1 include:X ~all"
 *                                           when the appliance publishes an SPF
 *                                           domain X (domains_env.spf_include)
 *   dkim         TXT  SEL._domainkey.D      "v=DKIM1; k=rsa; p=..."
 *   dmarc        TXT  _dmarc.D              "v=DMARC1; p=none; rua=mailto:..."
 *   return_path  CNAME bounces.D            the appliance's return-path domain
 *                                           (or MX to the appliance's hostname)
 * domains_check() looks each up (dns_sync.h) and classifies it ok, missing
 * (no such record) or mismatch (a record there, not the one asked for):
 *   spf: a "v=spf1" TXT that contains every mechanism asked for;
 *   dkim: a TXT whose p= equals the public key;
 *   dmarc: any "v=DMARC1" TXT (a stricter policy than ours is fine);
 *   return_path: a CNAME to the target, or an MX to it.
 * The domain is verified when all four are ok; a later check that fails
 * unverifies it (audited both ways: "domain.verified", "domain.unverified").
 *
 * Records live in the store's "sendauth" database under 'd' tenant NUL
 * domain (JSON text, {"v":1,...}); the key PEM under 'k' tenant NUL domain.
 *
 * Errors: -EINVAL bad tenant, domain, stream or selector; -EEXIST the
 * domain is registered (by this or another tenant); SL_ENOTFOUND no such
 * tenant or domain; DNS and store errors pass through.
 */
#ifndef SL_DOMAINS_H
#define SL_DOMAINS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

struct dns_sync;

enum domain_rec {
	DOMAIN_REC_SPF = 0,
	DOMAIN_REC_DKIM,
	DOMAIN_REC_DMARC,
	DOMAIN_REC_RETURN_PATH,
	DOMAIN_RECS,
};

enum domain_status {
	DOMAIN_UNCHECKED = 0,
	DOMAIN_OK,
	DOMAIN_MISSING,
	DOMAIN_MISMATCH,
};

#define DOMAIN_DEFAULT_SELECTOR "sl1"
#define DOMAIN_VALUE_MAX 1023

struct domain {
	char tenant[STORE_NAME_MAX + 1];
	char domain[STORE_DOMAIN_MAX + 1];
	uint8_t stream;                          /* enum sl_stream */
	char selector[STORE_SELECTOR_MAX + 1];
	char dkim_txt[DOMAIN_VALUE_MAX + 1];     /* "v=DKIM1; k=rsa; p=..." */
	uint64_t created_ms, checked_ms, verified_ms; /* verified_ms 0 = not verified */
	enum domain_status status[DOMAIN_RECS];
	char found[DOMAIN_RECS][256];            /* what the last check saw (truncated) */
};

/* One record to publish. */
struct domain_record {
	const char *kind;                    /* "spf", "dkim", "dmarc", "return_path" */
	char name[STORE_DOMAIN_MAX + 64];    /* owner name, no final dot */
	const char *type;                    /* "TXT", "CNAME", "MX" */
	char value[DOMAIN_VALUE_MAX + 1];
};

/* What record generation needs from the appliance's configuration. */
struct domains_env {
	const char *const *spf_ips;  /* NULL-terminated source IPs of the pools */
	const char *spf_include;     /* appliance SPF domain, or NULL: ip4:/ip6: mechanisms */
	const char *return_path;     /* return-path domain for the CNAME, or NULL: MX */
	const char *hostname;        /* the appliance's MX host (return_path NULL) */
	const char *dmarc_rua;       /* "dmarc@appliance" for rua=, or NULL: none */
	/* DNS for the checks (dns_sync_create's arguments) */
	const char *const *dns_servers;
	const char *const *dns_local_data;
};

/* "spf" ...; "?" out of range. */
const char *domain_rec_name(enum domain_rec r);
/* "unchecked", "ok", "missing", "mismatch". */
const char *domain_status_name(enum domain_status s);

/* Register domain for (tenant, stream) with a new key pair under selector
 * (NULL/"" = DOMAIN_DEFAULT_SELECTOR). Audited "domain.add". */
int domains_add(struct store *st, const char *tenant, const char *domain, uint8_t stream,
		const char *selector, const char *actor, struct domain *out);
/* tenant NULL: whichever tenant owns domain. */
int domains_get(struct store *st, const char *tenant, const char *domain, struct domain *out);
/* Every domain of tenant (NULL = all tenants), in (tenant, domain) order,
 * into out[limit]; *n how many were found in all (may exceed limit). */
int domains_list(struct store *st, const char *tenant, struct domain *out, size_t limit,
		 size_t *n);
/* Unregister (also the key). Audited "domain.remove". */
int domains_remove(struct store *st, const char *tenant, const char *domain, const char *actor);
/* The private key PEM of the domain into out (reset first). */
int domains_key_pem(struct store *st, const char *tenant, const char *domain, struct sl_buf *out);

/* The records d must publish, in enum domain_rec order. */
void domains_records(const struct domain *d, const struct domains_env *env,
		     struct domain_record out[DOMAIN_RECS]);
/* Look d's records up in dns and set d->status, found, checked_ms (now_ms)
 * and verified_ms. Pure apart from DNS; does not store. */
int domains_check_dns(struct domain *d, const struct domains_env *env, struct dns_sync *dns,
		      uint64_t now_ms);
/* domains_get + domains_check_dns + store the result (audited when the
 * verified state changes). */
int domains_verify(struct store *st, const struct domains_env *env, struct dns_sync *dns,
		   const char *tenant, const char *domain, const char *actor, uint64_t now_ms,
		   struct domain *out);

/* d (with its records when env is non-NULL) as a new JSON object, or NULL. */
json_t *domains_json(const struct domain *d, const struct domains_env *env);

#endif
