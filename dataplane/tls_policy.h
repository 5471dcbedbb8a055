/*
 * tls_policy.h — which TLS an outbound delivery needs (sans-I/O).
 *
 * The effective policy of a destination domain is one of:
 *   none           never STARTTLS (delivery.no_tls_domains);
 *   opportunistic  STARTTLS when offered, any certificate, plaintext when
 *                  not offered or when the handshake failed (the default);
 *   require        STARTTLS mandatory, any certificate
 *                  (delivery.require_tls_domains, routes[].require_tls);
 *   verify         STARTTLS mandatory, the chain verified against
 *                  delivery.tls_ca_file (default: the system bundle) and the
 *                  name checked against the MX host name
 *                  (delivery.verify_tls_domains; require with
 *                  delivery.tls_verify);
 *   mta-sts        the domain's RFC 8461 policy in mode enforce: only MX
 *                  hosts matching its patterns, TLS as for verify;
 *   mta-sts-testing  a policy in mode testing: delivered as opportunistic,
 *                  failures only counted;
 *   dane           the MX host has usable DNSSEC-signed TLSA records
 *                  (delivery.dane, dane.h): STARTTLS mandatory, the peer
 *                  authenticated by those records, never plaintext.
 * Precedence: the operator's configuration first (verify over require over
 * none when a domain is listed twice), then DANE, then MTA-STS (when
 * delivery.mta_sts is on), then opportunistic. tls_policy_effective gives
 * the domain's policy; DANE is decided later, per MX host, once the MX and
 * TLSA answers are in (RFC 7672 §2.2): a session to a host with usable
 * TLSA records runs under `dane` whenever tls_policy_allows_dane() says the
 * domain's policy gives way to it (RFC 8461 §2: DANE over MTA-STS).
 *
 * Outcomes are classified with RFC 8460 (TLS-RPT) result types for the
 * per-domain counters (dataplane/tls_report.h).
 */
#ifndef SL_TLS_POLICY_H
#define SL_TLS_POLICY_H

#include <stdbool.h>

#include "config.h"
#include "mta_sts.h"
#include "tls.h"

enum tls_policy_mode {
	TLS_POLICY_NONE = 0,
	TLS_POLICY_OPPORTUNISTIC,
	TLS_POLICY_REQUIRE,
	TLS_POLICY_VERIFY,
	TLS_POLICY_MTA_STS,         /* an enforce policy */
	TLS_POLICY_MTA_STS_TESTING, /* a testing policy */
	TLS_POLICY_DANE,            /* per session: the MX host's TLSA records */
	TLS_POLICY_N,
};

struct tls_policy {
	enum tls_policy_mode mode;
	/* MTA_STS and MTA_STS_TESTING: the policy (borrowed from the STS cache,
	 * valid until the next call into it); else NULL. */
	const struct mta_sts_policy *sts;
};

/* RFC 8460 §4.3 result types (and "success"). */
enum tls_rpt_result {
	TLS_RPT_SUCCESS = 0,
	TLS_RPT_STARTTLS_NOT_SUPPORTED,
	TLS_RPT_CERT_HOST_MISMATCH,
	TLS_RPT_CERT_EXPIRED,
	TLS_RPT_CERT_NOT_TRUSTED,
	TLS_RPT_VALIDATION_FAILURE,
	TLS_RPT_STS_POLICY_FETCH_ERROR,
	TLS_RPT_STS_POLICY_INVALID,
	TLS_RPT_STS_WEBPKI_INVALID,
	TLS_RPT_DNSSEC_INVALID,       /* DANE: the TLSA lookup did not validate */
	TLS_RPT_N,
};

/* The policy the configuration gives domain (route: its routes[] entry or
 * NULL): none, opportunistic, require or verify. */
enum tls_policy_mode tls_policy_configured(const struct sl_config *cfg, const char *domain,
					   const struct sl_route_cfg *route);

/*
 * The effective policy from the configured one and the domain's MTA-STS
 * policy (NULL: none known, or MTA-STS off). An explicit configuration
 * (anything but opportunistic) wins; an STS policy in mode none counts as
 * no policy.
 */
struct tls_policy tls_policy_effective(enum tls_policy_mode configured,
				       const struct mta_sts_policy *sts);

/* Does a domain under m give way to DANE where its MX hosts have usable
 * TLSA records? (Yes unless the configuration chose its policy.) */
bool tls_policy_allows_dane(enum tls_policy_mode m);
/* STARTTLS is mandatory: its absence or failure defers the mail. */
bool tls_policy_mandatory(enum tls_policy_mode m);
/* The certificate must verify against the CA bundle (chain and MX host
 * name); DANE authenticates by TLSA records instead (dane_host_apply). */
bool tls_policy_verifies(enum tls_policy_mode m);
/* May a session under m try STARTTLS at all? */
bool tls_policy_tries_tls(enum tls_policy_mode m);
/* May mail for a domain under p go to MX host `host`? (Only an enforce
 * MTA-STS policy restricts; a testing policy's mismatch is a failure to
 * count, not a refusal.) */
bool tls_policy_mx_allowed(const struct tls_policy *p, const char *host);

/* "none", "opportunistic", "require", "verify", "mta-sts", "mta-sts-testing",
 * "dane". */
const char *tls_policy_name(enum tls_policy_mode m);
/* "success", "starttls-not-supported", "certificate-host-mismatch", ... */
const char *tls_rpt_result_name(enum tls_rpt_result r);
/* The result type for a certificate that did not verify. */
enum tls_rpt_result tls_rpt_from_verify(enum tls_verify_status st);

#endif
