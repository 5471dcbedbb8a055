/*
 * tls_report.h — TLS-RPT-style (RFC 8460) counters per policy domain.
 *
 * Every outbound session that ran under a TLS policy other than none and
 * opportunistic (require, verify, mta-sts, mta-sts-testing), and every
 * MTA-STS policy check that failed, is counted once for its destination
 * domain with its RFC 8460 result type ("success" or the failure). The
 * counts are Prometheus series
 *   sluice_tls_rpt_total{domain="D",policy="P",result="R"}
 * and a JSON view (tls_report_json) for GET /v1/tls. At most
 * TLS_REPORT_MAX_DOMAINS domains get their own series; the rest are
 * counted under domain "_other".
 *
 * Ownership: borrows the metrics (which own the values). Loop thread only.
 * Errors: -ENOMEM.
 */
#ifndef SL_TLS_REPORT_H
#define SL_TLS_REPORT_H

#include "buf.h"
#include "metrics.h"
#include "tls_policy.h"

#define TLS_REPORT_MAX_DOMAINS 10000

struct tls_report;

int tls_report_create(struct metrics *m, struct tls_report **out);
void tls_report_destroy(struct tls_report *r);
/* Count one result for domain under policy mode. Out of memory: not counted. */
void tls_report_count(struct tls_report *r, const char *domain, enum tls_policy_mode mode,
		      enum tls_rpt_result result);
/* Append {"domains":[{"domain":D,"policy":P,"success":N,"failure":N,
 * "failures":{"starttls-not-supported":N,...}},...]} (domains and policies
 * in first-seen order, failure types with a count only). */
int tls_report_json(const struct tls_report *r, struct sl_buf *out);

#endif
