/* tls_policy.c — outbound TLS policies; see tls_policy.h. */
#include "tls_policy.h"

#include <strings.h>

static bool listed(char *const *list, size_t n, const char *domain)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(list[i], domain))
			return true;
	return false;
}

enum tls_policy_mode tls_policy_configured(const struct sl_config *cfg, const char *domain,
					   const struct sl_route_cfg *route)
{
	const struct sl_delivery_cfg *d = &cfg->delivery;

	if (listed(d->verify_tls_domains, d->n_verify_tls_domains, domain))
		return TLS_POLICY_VERIFY;
	if ((route && route->require_tls) ||
	    listed(d->require_tls_domains, d->n_require_tls_domains, domain))
		return d->tls_verify ? TLS_POLICY_VERIFY : TLS_POLICY_REQUIRE;
	if (listed(d->no_tls_domains, d->n_no_tls_domains, domain))
		return TLS_POLICY_NONE;
	return TLS_POLICY_OPPORTUNISTIC;
}

struct tls_policy tls_policy_effective(enum tls_policy_mode configured,
				       const struct mta_sts_policy *sts)
{
	if (configured != TLS_POLICY_OPPORTUNISTIC)
		return (struct tls_policy){ .mode = configured };
	/* DANE, which comes before MTA-STS, is decided per MX host later
	 * (tls_policy_allows_dane). */
	if (sts && sts->mode == MTA_STS_ENFORCE)
		return (struct tls_policy){ .mode = TLS_POLICY_MTA_STS, .sts = sts };
	if (sts && sts->mode == MTA_STS_TESTING)
		return (struct tls_policy){ .mode = TLS_POLICY_MTA_STS_TESTING, .sts = sts };
	return (struct tls_policy){ .mode = TLS_POLICY_OPPORTUNISTIC };
}

bool tls_policy_allows_dane(enum tls_policy_mode m)
{
	return m == TLS_POLICY_OPPORTUNISTIC || m == TLS_POLICY_MTA_STS ||
	       m == TLS_POLICY_MTA_STS_TESTING;
}

bool tls_policy_mandatory(enum tls_policy_mode m)
{
	return m == TLS_POLICY_REQUIRE || m == TLS_POLICY_VERIFY || m == TLS_POLICY_MTA_STS ||
	       m == TLS_POLICY_DANE;
}

bool tls_policy_verifies(enum tls_policy_mode m)
{
	return m == TLS_POLICY_VERIFY || m == TLS_POLICY_MTA_STS;
}

bool tls_policy_tries_tls(enum tls_policy_mode m)
{
	return m != TLS_POLICY_NONE;
}

bool tls_policy_mx_allowed(const struct tls_policy *p, const char *host)
{
	return p->mode != TLS_POLICY_MTA_STS || !p->sts || mta_sts_mx_match(p->sts, host);
}

const char *tls_policy_name(enum tls_policy_mode m)
{
	static const char *const names[TLS_POLICY_N] = {
		[TLS_POLICY_NONE] = "none",
		[TLS_POLICY_OPPORTUNISTIC] = "opportunistic",
		[TLS_POLICY_REQUIRE] = "require",
		[TLS_POLICY_VERIFY] = "verify",
		[TLS_POLICY_MTA_STS] = "mta-sts",
		[TLS_POLICY_MTA_STS_TESTING] = "mta-sts-testing",
		[TLS_POLICY_DANE] = "dane",
	};

	return (unsigned)m < TLS_POLICY_N ? names[m] : "unknown";
}

const char *tls_rpt_result_name(enum tls_rpt_result r)
{
	static const char *const names[TLS_RPT_N] = {
		[TLS_RPT_SUCCESS] = "success",
		[TLS_RPT_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
		[TLS_RPT_CERT_HOST_MISMATCH] = "certificate-host-mismatch",
		[TLS_RPT_CERT_EXPIRED] = "certificate-expired",
		[TLS_RPT_CERT_NOT_TRUSTED] = "certificate-not-trusted",
		[TLS_RPT_VALIDATION_FAILURE] = "validation-failure",
		[TLS_RPT_STS_POLICY_FETCH_ERROR] = "sts-policy-fetch-error",
		[TLS_RPT_STS_POLICY_INVALID] = "sts-policy-invalid",
		[TLS_RPT_STS_WEBPKI_INVALID] = "sts-webpki-invalid",
		[TLS_RPT_DNSSEC_INVALID] = "dnssec-invalid",
	};

	return (unsigned)r < TLS_RPT_N ? names[r] : "unknown";
}

enum tls_rpt_result tls_rpt_from_verify(enum tls_verify_status st)
{
	switch (st) {
	case TLS_VERIFY_OK:
		return TLS_RPT_SUCCESS;
	case TLS_VERIFY_HOST_MISMATCH:
		return TLS_RPT_CERT_HOST_MISMATCH;
	case TLS_VERIFY_EXPIRED:
		return TLS_RPT_CERT_EXPIRED;
	case TLS_VERIFY_UNTRUSTED:
		return TLS_RPT_CERT_NOT_TRUSTED;
	default:
		return TLS_RPT_VALIDATION_FAILURE;
	}
}
