/*
 * spf_eval.h — SPF (RFC 7208) evaluation of (client IP, MAIL FROM, HELO)
 * with libspf2, its DNS answered by a dns_sync (libunbound) context.
 *
 * libspf2's own resolver layer reads /etc/resolv.conf through libresolv;
 * here a small libspf2 DNS layer forwards its lookups to dns_sync, so SPF
 * uses the same servers (dns.servers) as everything else and can be fed
 * local records in tests. Blocks for DNS.
 *
 * Errors: -EINVAL bad client address; -ENOMEM; the result itself (pass,
 * fail, ...) is not an error.
 */
#ifndef SL_SPF_EVAL_H
#define SL_SPF_EVAL_H

#include <stddef.h>
#include <sys/socket.h>

struct dns_sync;

enum spf_eval_result {
	SPF_EVAL_NONE = 0,
	SPF_EVAL_NEUTRAL,
	SPF_EVAL_PASS,
	SPF_EVAL_FAIL,
	SPF_EVAL_SOFTFAIL,
	SPF_EVAL_TEMPERROR,
	SPF_EVAL_PERMERROR,
};

/* "none", "neutral", "pass", ... */
const char *spf_eval_name(enum spf_eval_result r);

/* Evaluate the MAIL FROM identity (mail_from "" or NULL: the HELO
 * identity, postmaster@helo) for client. *res gets the result. */
int spf_eval(struct dns_sync *dns, const struct sockaddr *client, const char *helo,
	     const char *mail_from, enum spf_eval_result *res);

#endif
